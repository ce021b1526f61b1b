"""A real two-node cluster as the README starts one (suite/tools/local_cluster.py): ``ray start
--head`` and ``ray start --address`` as separate processes with token authentication, a sweep joining
it with ``--address``, and a stop that ends exactly the processes it started.

Unlike test_ray_multinode.py (``ray.cluster_utils.Cluster``, nodes started from the test process),
this goes through the ``ray`` command and the token a user must hand to every node and driver.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

ray = pytest.importorskip("ray")

from suite.tools.local_cluster import (  # noqa: E402
    HEAD_IP,
    REPO_ROOT,
    TINY_OVERRIDES,
    WORKER_IP,
    is_running as _is_running,
    ray_cli,
    run_tiny_sweep,
    start_local_cluster,
)

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_two_node_cluster_with_token_auth_runs_a_sweep_and_stops_only_its_processes(two_node_cluster, tmp_path):
    """The bystander the stop must leave alone is the simulated two-node cluster this process joined
    (tests/integration/conftest.py); a Ray instance of its own cost this test about 5 CPU-seconds."""
    if ray_cli() is None:
        pytest.skip("the `ray` command is not installed in this environment (it comes with ray[default])")
    t0 = time.monotonic()
    cluster = start_local_cluster()
    try:
        # both nodes joined, each with its own IP and the TRAIN_DRIVER unit
        assert sorted(n["ip"] for n in cluster.node_info) == sorted([HEAD_IP, WORKER_IP])
        assert all(n["resources"].get("TRAIN_DRIVER") == 1 for n in cluster.node_info)
        assert cluster.token_path.stat().st_mode & 0o077 == 0  # the token file is private

        # a driver without the cluster's token: the suite's one-line error, at once
        no_token = {k: v for k, v in cluster.env().items() if k != "RAY_AUTH_TOKEN_PATH"}
        no_token["RAY_AUTH_MODE"] = "disabled"
        started = time.monotonic()
        out = subprocess.run(
            [sys.executable, str(REPO_ROOT / "run_suite.py"), "sweep", "--address", cluster.address,
             "--preset", "tiny", "--space", "noise", "--category", "synth_texture",
             "--storage", str(tmp_path / "refused"), *TINY_OVERRIDES],
            env=no_token, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        refused_s = time.monotonic() - started
        errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
        assert out.returncode == 2, out.stderr[-3000:]
        assert len(errors) == 1 and "requires token authentication" in errors[0], out.stderr[-3000:]
        assert "RAY_AUTH_MODE=token" in errors[0] and "RAY_AUTH_TOKEN_PATH" in errors[0]
        assert refused_s < 60, f"refusal took {refused_s:.0f}s (ray.init alone retries for ~20 s)"

        # the sweep, with the token: one trial per node
        result = run_tiny_sweep(cluster, tmp_path / "sweeps", "local-cluster", timeout_s=300)
        assert result["returncode"] == 0, result["output"][-4000:]
        records = result["records"]
        assert len(records) == 2 and all(r["status"] == "ok" for r in records), records
        assert len(result["nodes"]) == 2, f"both trials ran on one node: {records}"
        assert {r["node_ip"] for r in records} == {HEAD_IP, WORKER_IP}
        assert set(result["nodes"]) == {n["node_id"] for n in cluster.node_info}

        pids = cluster.started_pids()
        assert {n.popen.pid for n in cluster.nodes} <= set(pids)
    finally:
        cluster.stop()
    assert not [pid for pid, start in pids.items() if _is_running(pid, start)], "a started process survived stop"
    assert all(n.popen.returncode is not None for n in cluster.nodes)
    assert not cluster.root.exists()
    # this process's own Ray was not touched: both of its nodes are alive and run a task
    assert ray.is_initialized() and ray.get(ray.remote(lambda: 7).remote(), timeout=60) == 7
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    assert os.getpid() not in pids
    print(f"local cluster test: {time.monotonic() - t0:.0f}s, sweep {result['seconds']:.0f}s, "
          f"refusal {refused_s:.0f}s, {len(pids)} processes started and stopped")
