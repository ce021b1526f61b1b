"""Watching a sweep end to end: a tiny Optuna sweep (2 trials) with ``--mlflow file:``,
``--tensorboard`` and ``--optuna-storage journal://`` is killed (the CLI and its Ray instance, by
pid), left with the journal lock a killed writer holds, and ``--resume``d; then the stale lock was
removed, MLflow holds one finished run per (trial, category) with the validation and test metrics (the
runs started before the kill continued, none duplicated), the TensorBoard event files parse with
per-epoch scalars and no replayed step, and the Optuna study holds each trial once with its value.
The same run also checks the resume itself (it was tests/integration/test_ray_resume.py): each trial
trains its two categories as concurrent shards, and after the resume every (trial, category) has a
record and no stage was trained twice (counted from the stage cache's "build" events). One sweep
serves all of it (a killed and resumed sweep costs about 40 s); restoring the SQLite storage after a
kill is checked without a sweep in tests/unit/orchestration/test_optuna_search.py."""

from __future__ import annotations

import json
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
pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")

from suite.records import find_records, read_record  # noqa: E402
from suite.stage_cache import StageCache  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
OVERRIDES = ["train.stage1.epochs=3", "train.eval_every=1", "train.checkpoint_every=1", "eval.aupro=false",
             "runtime.threads=1", "eval.shifts=[]", "data.val_shifts=[]"]  # shifted copies triple each evaluation


def ok_records(records_dir: Path) -> list:
    out = []
    for path in find_records(records_dir) if records_dir.exists() else []:
        try:
            record = read_record(path)
        except ValueError:
            continue
        if record.status == "ok":
            out.append(record)
    return out


@pytest.fixture
def env():
    folder = tempfile.mkdtemp(prefix="rcs-r", dir="/tmp")  # short: Ray's socket paths
    yield {**os.environ, "PYTHONPATH": str(REPO), "RAY_TMPDIR": folder, "RAY_USAGE_STATS_ENABLED": "0"}
    shutil.rmtree(folder, ignore_errors=True)


def kill_after_first_record(command: list[str], env: dict, records_dir: Path, log: Path, kill_session) -> None:
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 240
            while not ok_records(records_dir) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.3)
            assert proc.poll() is None, f"sweep ended before it could be killed:\n{log.read_text()[-3000:]}"
            assert ok_records(records_dir), "no category finished within 240 s"
        finally:
            kill_session(proc.pid)
            proc.wait(timeout=30)


def resume(command: list[str], env: dict, log: Path, kill_session) -> str:
    proc = subprocess.Popen(command + ["--resume"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=360)
    finally:
        kill_session(proc.pid)
    log.write_text(output or "")
    assert proc.returncode == 0, output[-5000:]
    assert "resuming" in output
    return output


def test_killed_and_resumed_sweep_retrains_nothing_and_keeps_one_run_per_trial_and_category(tmp_path, env,
                                                                                             kill_session):
    import mlflow
    import optuna
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from suite.orchestration.optuna_storage import make_optuna_storage

    storage, mlruns, journal = tmp_path / "st", tmp_path / "mlruns", tmp_path / "shared" / "study.log"
    command = [
        sys.executable, str(REPO / "run_suite.py"), "sweep", "--space", "noise", "--trials", "2",
        "--storage", str(storage), "--name", "watched", "--categories", "synth_texture,synth_object",
        "--num-cpus", "2", "--concurrent", "1", "--no-asha", "--preset", "tiny",
        "--mlflow", f"file:{mlruns}", "--tensorboard", "--optuna-storage", f"journal://{journal}", *OVERRIDES,
    ]
    sweep_dir = storage / "watched"
    kill_after_first_record(command, env, sweep_dir / "records", tmp_path / "first.log", kill_session)

    # the runs started before the kill (each category folder names its run; the store itself may hold a
    # half-written file until the resumed driver repairs it)
    before = {(ref.parent.parent.name, ref.parent.name): json.loads(ref.read_text())["run_id"]
              for ref in (sweep_dir / "records").rglob("mlflow_run.json")}
    assert before, "no MLflow run before the kill"
    assert len(ok_records(sweep_dir / "records")) < 4, "every training finished before the kill; nothing to resume"
    # the kill came while a writer held the journal's lock: it stays behind
    lock = Path(f"{journal}.lock")
    if not os.path.lexists(lock):
        os.symlink(journal, lock)
    old = time.time() - 600
    os.utime(lock, (old, old), follow_symlinks=False)

    started = time.monotonic()
    output = resume(command, env, tmp_path / "resume.log", kill_session)
    assert "removed a stale journal lock" in output and not os.path.lexists(lock)
    assert time.monotonic() - started < 300
    # the resume itself: shards again, and Tune's restored snapshot may list checkpoints deleted after
    # it: skipped, not an error (tune_fixes)
    assert "category shard(s) started" in output
    assert "Path not found" not in output and "Error handling checkpoint" not in output, output[-4000:]
    uri = mlruns.resolve().as_uri()
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)

    records = ok_records(sweep_dir / "records")
    pairs = {(r.trial_id, r.category) for r in records}
    assert len(records) == 4 and len(pairs) == 4
    assert len(find_records(sweep_dir / "records")) == 4  # and no failed or stopped one besides
    # no training ran twice across the kill: one stage-1 build per (trial, category), every key built once
    builds = Counter(e["key"] for e in StageCache(storage / "stage_cache").events() if e["event"] == "build")
    stage1 = {k: n for k, n in builds.items() if "-stage1-" in k}
    assert len(stage1) == 4 and set(stage1.values()) == {1}, f"a stage 1 was trained twice: {stage1}"
    assert set(builds.values()) == {1}, builds

    # MLflow: one run per (trial, category), the pre-kill ones continued, with val and test metrics
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        frame = mlflow.search_runs(experiment_names=["watched"])
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]
    assert len(frame) == 4
    assert set(zip(frame["tags.trial"], frame["tags.category"])) == pairs
    assert set(frame["status"]) == {"FINISHED"} and set(frame["tags.sweep"]) == {"watched"}
    assert set(frame["tags.selection"]) == {"val"} and frame["tags.git_commit"].notna().all()
    for column in ("metrics.val_i_auroc", "metrics.test_i_auroc", "metrics.test_p_auroc", "metrics.cost_latency_ms"):
        assert frame[column].notna().all(), column
    assert frame["params.augment.noise_std"].notna().all()
    after = dict(zip(zip(frame["tags.trial"], frame["tags.category"]), frame["run_id"]))
    assert all(after[key] == run_id for key, run_id in before.items()), (before, after)
    for run_id in frame["run_id"]:
        steps = {key: [m.step for m in client.get_metric_history(run_id, key)]
                 for key in ("stage1/loss", "stage1/val_i_auroc", "stage3/loss")}
        assert {k: sorted(v) for k, v in steps.items()} == {"stage1/loss": [1, 2, 3], "stage1/val_i_auroc": [1, 2, 3],
                                                            "stage3/loss": [1]}, (run_id, steps)
        artifacts = {a.path for a in client.list_artifacts(run_id)}
        assert {"record.json", "config.yaml", "gallery"} <= artifacts
        assert [a.path for a in client.list_artifacts(run_id, "gallery") if a.path.endswith(".png")]

    # TensorBoard: event files parse and hold the per-epoch scalars, each step once
    for trial, category in pairs:
        acc = EventAccumulator(str(sweep_dir / "tensorboard" / trial / category))
        acc.Reload()
        assert {"stage1/loss", "stage1/val_i_auroc", "stage2/loss", "stage3/loss"} <= set(acc.Tags()["scalars"])
        assert [e.step for e in acc.Scalars("stage1/loss")] == [1, 2, 3]

    # Optuna: the same study, each Tune trial once, with its value
    study = optuna.load_study(study_name="watched", storage=make_optuna_storage(f"journal://{journal}"))
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert sorted(t.user_attrs["tune_trial_id"] for t in complete) == sorted({t for t, _ in pairs})
    assert all(t.values and 0.0 <= t.values[0] <= 1.0 for t in complete)
    assert all(t.state.name == "FAIL" and "orphaned" in t.user_attrs for t in study.trials if t not in complete)
    assert study.metric_names == ["val_i_auroc"]

    importances = json.loads((sweep_dir / "optuna_importances.json").read_text())
    assert importances["studies"][0]["study"] == "watched"
    assert "Optuna parameter importances" in output
