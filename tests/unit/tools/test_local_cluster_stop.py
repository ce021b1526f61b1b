"""``LocalCluster.stop`` reaps its ``ray start`` processes, also when one exits during the last check."""

from __future__ import annotations

from pathlib import Path

from suite.tools.local_cluster import LocalCluster, NodeProcess


class _ExitsDuringTheCheck:
    """A Popen stand-in that still runs at the first poll and has exited (a zombie) by the second."""

    pid = 999_999_999

    def __init__(self) -> None:
        self.returncode: int | None = None
        self.polls = 0

    def poll(self) -> int | None:
        self.polls += 1
        if self.polls >= 2:
            self.returncode = 0
        return self.returncode


def test_wait_all_returns_only_after_every_node_process_is_reaped(tmp_path: Path):
    popen = _ExitsDuringTheCheck()
    cluster = LocalCluster(root=tmp_path, address="127.0.0.1:1", token_path=tmp_path / "token",
                           nodes=[NodeProcess("head", "127.0.0.1", popen, tmp_path / "head.log")])
    # no recorded process runs any more, as when the node became a zombie after the last poll
    assert cluster._wait_all(timeout_s=5.0)
    assert popen.returncode == 0 and popen.polls >= 2
