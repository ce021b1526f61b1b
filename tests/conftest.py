"""Repository-wide test setup: make ``suite`` importable, register markers, shared fixtures."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than ~5 s; deselect with -m 'not slow'")
    # One intra-op thread: on a loaded 2-core machine torch's default of 2 threads makes tiny
    # models 10-50x slower (thread contention), and results do not depend on the thread count.
    import torch

    torch.set_num_threads(1)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist turns xdist_group marks into node IDs
def pytest_collection_modifyitems(session, config, items):
    """Under ``pytest -n N --dist loadgroup`` every test marked ``ray`` runs on one worker, one after
    another: two Ray instances at once on 2 cores made timing-sensitive sweeps flaky (2026-12-05),
    while the other worker runs everything else beside them."""
    for item in items:
        if item.get_closest_marker("ray") is not None:
            item.add_marker(pytest.mark.xdist_group("ray"))


@pytest.fixture
def bottle_root() -> Path:
    """Root of the real MVTec AD bottle data (``<shared data>/mvtec_bottle_256``); skips if absent."""
    from suite.data import shared_data_dir

    root = shared_data_dir() / "mvtec_bottle_256"
    if not (root / "bottle" / "train" / "good").is_dir():
        pytest.skip(f"real MVTec bottle data not found at {root} (set RCSUITE_DATA_DIR to its parent folder)")
    return root


def _session_pids(sid: int) -> list[int]:
    """Processes of the session ``sid`` (a subprocess started with start_new_session)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[3]) == sid:
            pids.append(int(entry))
    return pids


def _kill_session(sid: int) -> None:
    """SIGKILL a sweep driver and every Ray process it started (all in its session), by pid."""
    for _ in range(3):
        pids = _session_pids(sid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)


@pytest.fixture
def kill_session():
    """``kill_session(pid)``: hard-kill a subprocess's whole session (driver plus its Ray)."""
    return _kill_session
