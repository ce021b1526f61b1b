"""Kill a running sharded sweep (the CLI in a subprocess, with the Ray instance it started; each
trial trains its two categories as concurrent shards) once some trainings have finished, then
``--resume`` it: every (trial, category) ends with a record and no stage 1 is trained twice
(counted from the stage cache's "build" events)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("ray")

from suite.records import find_records, read_record  # noqa: E402
from suite.stage_cache import StageCache  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SPACE = '''\
"""three stage-1 settings"""
CONFIGS = [{"augment.coverage": c} for c in (0.1, 0.2, 0.3)]
'''


def ok_records(records_dir: Path) -> int:
    if not records_dir.exists():
        return 0
    count = 0
    for path in find_records(records_dir):
        try:
            count += read_record(path).status == "ok"
        except ValueError:
            pass
    return count


@pytest.fixture
def ray_tmp():
    """A short Ray temp folder for the subprocesses (unix socket paths must stay short)."""
    folder = tempfile.mkdtemp(prefix="rcs-r", dir="/tmp")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_killed_sweep_resumes_without_retraining(tmp_path, ray_tmp, kill_session):
    space = tmp_path / "space.py"
    space.write_text(SPACE)
    storage = tmp_path / "st"
    command = [
        sys.executable, str(REPO / "run_suite.py"), "sweep", "--space", str(space), "--storage", str(storage),
        "--name", "resumable", "--categories", "synth_texture,synth_object", "--num-cpus", "2", "--concurrent", "1",
        "--preset", "tiny",
    ]
    overrides = ["train.stage1.epochs=4", "train.checkpoint_every=1", "eval.aupro=false", "eval.save_maps=0",
                 "runtime.threads=1"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_TMPDIR": ray_tmp, "RAY_USAGE_STATS_ENABLED": "0"}
    records_dir = storage / "resumable" / "records"
    log1 = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(command + overrides, cwd=REPO, env=env, stdout=log1, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while ok_records(records_dir) < 1 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert proc.poll() is None, f"sweep ended before it could be killed:\n{(tmp_path / 'first.log').read_text()}"
        assert ok_records(records_dir) >= 1, "no trial finished within 180 s"
    finally:
        kill_session(proc.pid)
        proc.wait(timeout=30)
        log1.close()
    finished_before = ok_records(records_dir)
    assert finished_before < 6, "every training finished before the kill; nothing left to resume"

    second = subprocess.Popen(command + ["--resume"] + overrides, cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = second.communicate(timeout=300)
    finally:
        kill_session(second.pid)  # nothing should be left; make sure no Ray process outlives the test
    assert second.returncode == 0, output[-4000:]
    assert "resuming" in output
    # Tune's restored snapshot may list checkpoints deleted after it: skipped, not an error (tune_fixes)
    assert "Path not found" not in output and "Error handling checkpoint" not in output, output[-4000:]

    records = [read_record(p) for p in find_records(records_dir)]
    assert len(records) == 6 and all(r.status == "ok" for r in records)
    assert sorted((r.config["augment"]["coverage"], r.category) for r in records) == [
        (c, cat) for c in (0.1, 0.2, 0.3) for cat in ("synth_object", "synth_texture")]
    assert "category shard(s) started" in output
    builds = Counter(e["key"] for e in StageCache(storage / "stage_cache").events() if e["event"] == "build")
    stage1 = {k: n for k, n in builds.items() if "-stage1-" in k}
    assert len(stage1) == 6 and set(stage1.values()) == {1}, f"a stage 1 was trained twice: {stage1}"
    assert set(builds.values()) == {1}
