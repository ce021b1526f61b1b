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

# The same one thread (see pytest_configure) for every process the tests start: CLI subprocesses,
# gpu_check.py's trainings, Ray nodes and their workers. Two trainings at once with torch's default of
# two threads each on 2 cores spent 63 CPU-seconds on gpu_check.py's dry run against 35 with one
# (2026-12-07). Set before anything is started; a value in the environment is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than ~5 s; deselect with -m 'not slow'")
    # One intra-op thread: on a loaded 2-core machine torch's default of 2 threads makes tiny
    # models 10-50x slower (thread contention), and results do not depend on the thread count.
    import torch

    torch.set_num_threads(1)


def ray_test_files(tests_dir: Path = REPO_ROOT / "tests", root: Path = REPO_ROOT) -> set[str]:
    """Test files (relative to ``root``, as in node IDs) whose module-level ``pytestmark`` marks them ``ray``."""
    return {path.relative_to(root).as_posix() for path in tests_dir.rglob("test_*.py")
            if any(line.startswith("pytestmark") and "pytest.mark.ray" in line
                   for line in path.read_text().splitlines())}


# The Ray test files in two lanes of about equal length (2026-12-06, serial: test_ray_sweep.py about
# 140 s; the other five about 170 s). Each lane runs on one worker, file after file.
RAY_LANE_A = {"tests/integration/test_ray_sweep.py"}
# Folders whose tests share a session fixture (the reporting tests' fake run folders): one unit, so
# it is built once rather than once per worker.
ONE_UNIT_FOLDERS = ("tests/unit/reporting/",)


def pytest_collection_modifyitems(session, config, items):
    """The Ray test files first, each file's tests in their order (tests/integration/conftest.py has
    already put the two-node cluster's tests back to back): the scheduler below hands out work in
    this order."""
    ray_files = ray_test_files()
    items[:] = sorted(items, key=lambda item: item.nodeid.split("::", 1)[0] not in ray_files)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Under ``pytest -n N`` the test files marked ``ray`` run in two lanes, each on one worker and
    each a whole unit, started first; the other tests fill the gaps, a file at a time (a folder of
    ``ONE_UNIT_FOLDERS`` at a time), so a module- or session-scoped fixture is built once, not once
    per worker. So at most two Ray instances run at once, the two-node cluster's tests share one
    cluster, and a module's Ray instance serves all of its tests. One lane for all of them took 498 s
    of pytest on 2 cores against 393 s with two: the sweeps wait on process starts and polls, and a
    second sweep fills those waits (2026-12-06).
    ``--dist loadgroup`` cannot express this: pytest 9.2 builds a node ID from ``Node._id``, so
    pytest-xdist 3.8's ``@group`` suffix (set on ``_nodeid``) never reaches its scheduler.
    tests/unit/test_style.py checks that the files found here are exactly those whose tests carry the
    mark."""
    from xdist.scheduler import LoadScopeScheduling

    ray_files = ray_test_files()
    # collection order (Ray lanes first), not pytest-xdist's default of the units with most tests first
    config.option.loadscopereorder = False

    class RayLanes(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            if path not in ray_files:
                return next((folder for folder in ONE_UNIT_FOLDERS if path.startswith(folder)), path)
            return "ray-a" if path in RAY_LANE_A else "ray-b"

    return RayLanes(config, log)


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
