"""Watching a sweep without Ray (suite/tracking/, suite/orchestration/optuna_storage.py,
suite/reporting/importances.py): option checks,
the MLflow run and TensorBoard files of one (trial, category) across a retry, Optuna storages,
orphaned trials and the importances the report compares with Spearman."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from suite import tracking
from suite.orchestration import optuna_storage
from suite.config import ConfigError, build_config
from suite.records import RECORD_NAME, TrialRecord, write_record

REPO = Path(__file__).resolve().parents[2]


# --- options and the optional extra


@pytest.mark.slow  # a fresh interpreter
def test_missing_extra_is_named_before_anything_runs():
    """With mlflow and tensorboard unimportable, the sweep flags fail at once naming the extra."""
    code = (
        "import sys\n"
        "sys.modules['mlflow'] = None; sys.modules['tensorboard'] = None\n"
        "import suite.orchestration.driver, suite.orchestration.trial, suite.tracking  # no import-time need\n"
        "import suite.cli\n"
        "from unittest import mock\n"
        "with mock.patch('suite.orchestration.driver.run_sweep', side_effect=AssertionError('ran')):\n"
        "    rc = suite.cli.main(['sweep', '--space', 'noise', '--mlflow', 'file:/tmp/x', '--tensorboard'])\n"
        "sys.exit(rc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "[tracking]" in result.stderr and 'pip install -e ".[tracking]"' in result.stderr
    assert "--mlflow and --tensorboard" in result.stderr and "ran" not in result.stderr


def test_require_packages_passes_when_installed_or_not_asked():
    tracking.require_packages()  # nothing asked: nothing checked
    pytest.importorskip("mlflow")
    pytest.importorskip("tensorboard")
    tracking.require_packages(mlflow=True, tensorboard=True)


def test_uris_are_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert tracking.normalize_mlflow_uri("mlruns") == (tmp_path / "mlruns").as_uri()
    assert tracking.normalize_mlflow_uri("file:mlruns") == (tmp_path / "mlruns").as_uri()
    assert tracking.normalize_mlflow_uri("file:///abs/mlruns") == "file:///abs/mlruns"
    assert tracking.normalize_mlflow_uri("sqlite:///m.db") == f"sqlite:///{tmp_path / 'm.db'}"
    assert tracking.normalize_mlflow_uri("sqlite:////abs/m.db") == "sqlite:////abs/m.db"
    assert tracking.normalize_mlflow_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert optuna_storage.parse_optuna_storage("sqlite:///o.db") == ("rdb", f"sqlite:///{tmp_path / 'o.db'}")
    assert optuna_storage.parse_optuna_storage("journal:///abs/j.log") == ("journal", "/abs/j.log")
    assert optuna_storage.parse_optuna_storage("journal:j.log") == ("journal", str(tmp_path / "j.log"))
    assert optuna_storage.parse_optuna_storage("j.log") == ("journal", str(tmp_path / "j.log"))
    assert optuna_storage.dashboard_target("journal:j.log") == str(tmp_path / "j.log")  # optuna-dashboard FILE
    assert optuna_storage.storage_url("journal", "/abs/j.log") == "journal:///abs/j.log"
    for bad in ("sqlite:///:memory:", "sqlite://x", "journal://host/x.log", "redis://localhost"):
        with pytest.raises(ConfigError):
            optuna_storage.parse_optuna_storage(bad)
    assert not list(tmp_path.iterdir())  # parsing writes nothing


def test_no_flag_means_nothing_to_watch(tmp_path):
    pytest.importorskip("ray")
    from suite.orchestration.sweep_options import SweepOptions, prepare_watching

    opts = SweepOptions(space="noise")
    meta = {"mlflow": None, "tensorboard": False, "optuna_storage": None}
    assert prepare_watching(opts, meta, "s", tmp_path / "s", ["pooled"], create=True) is None
    assert not list(tmp_path.iterdir())


# --- one (trial, category): MLflow run + TensorBoard events across a retry


def _record(cfg, history, status="ok") -> TrialRecord:
    return TrialRecord(
        config=cfg.to_dict(), config_hash=cfg.hash(), dataset=cfg.data.dataset, category=cfg.data.category,
        method=cfg.model.method, status=status, history=history,
        metrics={"val": {"i_auroc": 0.75, "p_auroc": 0.8}, "test": {"i_auroc": 0.7, "p_auroc": 0.85}},
        cost={"latency_ms": 1.5, "params": 1234}, stage_times={"stage1": 2.0, "total": 3.0},
    )


def _tb_steps(folder: Path) -> dict[str, list[int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_a_retried_trial_continues_its_run_and_event_files(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    pytest.importorskip("tensorboard")
    uri = tracking.normalize_mlflow_uri(f"file:{tmp_path / 'mlruns'}")
    exp = tracking.prepare_mlflow_experiment(uri, "sw", resume=False)
    with pytest.raises(ConfigError, match="already exists"):
        tracking.prepare_mlflow_experiment(uri, "sw", resume=False)
    assert tracking.prepare_mlflow_experiment(uri, "sw", resume=True) == exp
    spec = tracking.TrackingSpec(sweep="sw", select_on="val", mlflow_uri=uri, mlflow_experiment_id=exp,
                                 tensorboard_dir=str(tmp_path / "tb"))
    cfg = build_config(preset="tiny", overrides=["data.category=synth_texture"])
    epochs = [{"stage": "stage1", "epoch": 1, "loss": 0.9},
              {"stage": "stage1", "epoch": 2, "loss": 0.8, "val_i_auroc": 0.6, "iteration": 1},
              {"stage": "stage1", "epoch": 3, "loss": 0.7}, {"stage": "stage2", "epoch": 1, "loss": 0.5}]

    out = tmp_path / "records" / "t1" / "synth_texture"
    first = tracking.open_trial_tracker(spec, "t1", "synth_texture", cfg, out_dir=out)
    for entry in epochs[:2]:
        first.epoch(entry)
    run_id = first.run_id
    assert json.loads((out / tracking.RUN_REF_NAME).read_text())["run_id"] == run_id
    # the process is killed while writing: a metric line cut short, a new metric file still empty
    metrics = tmp_path / "mlruns" / exp / run_id / "metrics"
    with (metrics / "stage1" / "loss").open("a") as f:
        f.write("17960")
    (metrics / "stage1" / "val_i_ap").write_text("")
    with pytest.raises(Exception):
        tracking.mlflow_client(uri).get_run(run_id)
    # the retry resumes from a checkpoint at epoch 1 and replays epoch 2
    second = tracking.open_trial_tracker(spec, "t1", "synth_texture", cfg, out_dir=out)
    assert second.run_id == run_id and second.client is not None
    for entry in epochs[1:3]:
        second.epoch(entry)
    write_record(_record(cfg, epochs[1:]), out / RECORD_NAME)  # its history: epochs since the checkpoint
    second.close(out)
    # the finished category is seen again on a --resume: nothing changes
    tracking.open_trial_tracker(spec, "t1", "synth_texture", cfg, out_dir=out, finished=True).close(out)
    tracking.open_trial_tracker(spec, "t1", "synth_texture", cfg, finished=True).close(out)  # found by its tags

    import mlflow

    client = tracking.mlflow_client(uri)
    runs = client.search_runs([exp])
    assert [r.info.run_id for r in runs] == [run_id]
    run = runs[0]
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert (tags["sweep"], tags["trial"], tags["category"], tags["selection"]) == ("sw", "t1", "synth_texture", "val")
    assert tags["config_hash"] == cfg.hash() and "git_commit" in tags
    assert run.data.params["train.stage1.epochs"] == str(cfg.train.stage1.epochs)
    history = {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)]
               for k in ("stage1/loss", "stage1/val_i_auroc", "stage2/loss")}
    assert sorted(history["stage1/loss"]) == [(1, 0.9), (2, 0.8), (3, 0.7)]  # replayed epoch 2 logged once
    assert history["stage1/val_i_auroc"] == [(2, 0.6)] and history["stage2/loss"] == [(1, 0.5)]
    assert run.data.metrics["test_i_auroc"] == 0.7 and run.data.metrics["val_i_auroc"] == 0.75
    assert run.data.metrics["cost_latency_ms"] == 1.5 and run.data.metrics["time_total"] == 3.0
    assert {a.path for a in client.list_artifacts(run_id)} == {"record.json"}
    assert "stage1/val_i_ap" not in run.data.metrics  # the empty file was dropped
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # mlflow.search_runs reads the global URI
    frame = mlflow.search_runs(experiment_ids=[exp], filter_string="tags.trial = 't1'")
    assert len(frame) == 1

    # a Tune result kept as history by RecordGaps: only the loss and val_* values are per-epoch scalars
    assert tracking.epoch_scalars({"stage": "stage1", "epoch": 2, "loss": 0.5, "val_i_auroc": 0.6, "pid": 7,
                                   "training_iteration": 3, "time_total_s": 9.0}) == (
        2, {"stage1/loss": 0.5, "stage1/val_i_auroc": 0.6})

    steps = _tb_steps(tmp_path / "tb" / "t1" / "synth_texture")
    assert steps == {"stage1/loss": [1, 2, 3], "stage1/val_i_auroc": [2], "stage2/loss": [1]}


@pytest.mark.slow  # a new MLflow SQLite store migrates its schema (~7 s)
def test_sweep_end_closes_runs_whose_process_died(tmp_path):
    pytest.importorskip("mlflow")
    uri = tracking.normalize_mlflow_uri(f"sqlite:///{tmp_path / 'm.db'}")
    exp = tracking.prepare_mlflow_experiment(uri, "sw", resume=False)
    spec = tracking.TrackingSpec(sweep="sw", mlflow_uri=uri, mlflow_experiment_id=exp)
    records = tmp_path / "records"
    cfg_a = build_config(preset="tiny", overrides=["data.category=synth_texture"])
    cfg_b = build_config(preset="tiny", overrides=["data.category=synth_object"])
    tracking.open_trial_tracker(spec, "ta", "synth_texture", cfg_a).epoch({"stage": "stage1", "epoch": 1, "loss": 1.0})
    tracking.open_trial_tracker(spec, "tb", "synth_object", cfg_b)
    # RecordGaps wrote a "stopped" record for ta; tb died without one
    out = records / "ta" / "synth_texture"
    out.mkdir(parents=True)
    from suite.config import save_yaml

    save_yaml(cfg_a, out / "config.yaml")
    write_record(_record(cfg_a, [], status="stopped"), out / RECORD_NAME)
    assert tracking.finish_sweep_runs(spec, records) == 2
    client = tracking.mlflow_client(uri)
    status = {r.data.tags["trial"]: (r.info.status, r.data.tags.get("status")) for r in client.search_runs([exp])}
    assert status == {"ta": ("KILLED", "stopped"), "tb": ("KILLED", "stopped")}
    art = tmp_path / "mlartifacts" / "sw"
    assert art.is_dir() and list(art.rglob("record.json"))  # SQLite store: artifacts beside the database
    assert tracking.finish_sweep_runs(spec, records) == 0


# --- Optuna storages and importances


def test_stale_journal_lock_is_removed_and_a_fresh_one_kept(tmp_path):
    journal = tmp_path / "j.log"
    journal.write_text("")
    lock = Path(f"{journal}.lock")
    os.symlink(journal, lock)
    assert not optuna_storage.clear_stale_journal_lock(journal)  # just taken: a live writer's
    old = time.time() - 3600
    os.utime(lock, (old, old), follow_symlinks=False)
    assert optuna_storage.clear_stale_journal_lock(journal) and not os.path.lexists(lock)
    storage = optuna_storage.make_optuna_storage(f"journal://{journal}")
    import optuna

    optuna.create_study(storage=storage, study_name="s").optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 2


def test_orphaned_running_trials_are_failed(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 'o.db'}"
    optuna_storage.prepare_optuna_study(url, "s", ["maximize"], ["val_i_auroc"], {"sweep": "s"}, resume=False)
    with pytest.raises(ConfigError, match="already exists"):
        optuna_storage.prepare_optuna_study(url, "s", ["maximize"], ["val_i_auroc"], {}, resume=False)
    study = optuna.load_study(study_name="s", storage=url)
    assert study.metric_names == ["val_i_auroc"] and study.user_attrs == {"sweep": "s"}
    known, orphan = study.ask(), study.ask()
    assert optuna_storage.fail_orphan_trials(study, {known._trial_id}, "killed") == [orphan.number]
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {known.number: "RUNNING", orphan.number: "FAIL"}
    assert study.trials[orphan.number].user_attrs["orphaned"] == "killed"


def _study_with_trials(url: str, name: str) -> None:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    study = optuna.create_study(storage=url, study_name=name, direction="maximize")
    dists = {"a.x": FloatDistribution(0, 1), "a.flag": CategoricalDistribution([False, True])}
    for i in range(8):
        x, flag = i / 7, bool(i % 2)
        study.add_trial(optuna.trial.create_trial(params={"a.x": x, "a.flag": flag}, distributions=dists,
                                                  value=x + 0.01 * flag))


def test_importances_are_stored_and_compared_with_spearman(tmp_path):
    from suite.reporting.importances import compare_importances, find_importance_files, optuna_importance_tables

    url = f"sqlite:///{tmp_path / 'o.db'}"
    _study_with_trials(url, "sw")
    sweep = tmp_path / "sw"
    (sweep / "records").mkdir(parents=True)
    path = optuna_storage.write_optuna_importances(url, [("sw", ["val_i_auroc"])],
                                                   sweep / optuna_storage.IMPORTANCES_NAME)
    entry = json.loads(path.read_text())["studies"][0]
    assert entry["n_complete"] == 8 and set(entry["importances"]) == {"a.x", "a.flag"}
    assert entry["importances"]["a.x"] > entry["importances"]["a.flag"]
    assert find_importance_files([sweep / "records"]) == [path]  # the report is given records/
    import optuna

    one = optuna.create_study(storage=url, study_name="one")
    one.optimize(lambda t: t.suggest_float("a.x", 0, 1), n_trials=1)
    (short,) = json.loads(optuna_storage.write_optuna_importances(url, [("one", ["val_i_auroc"])],
                                                           tmp_path / "one.json").read_text())["studies"]
    assert short["importances"] == {} and "at least 2" in short["error"]

    agree = pd.DataFrame([{"key": "a.x", "abs_spearman": 0.9}, {"key": "a.flag", "abs_spearman": 0.1}])
    frame, lines = compare_importances(entry["importances"], agree)
    assert list(frame["agree"]) == [True, True] and lines == []
    disagree = pd.DataFrame([{"key": "a.x", "abs_spearman": 0.1}, {"key": "a.flag", "abs_spearman": 0.9}])
    frame, lines = compare_importances(entry["importances"], disagree)
    assert list(frame["agree"]) == [False, False]
    assert lines[0] == "Most important: `a.x` by Optuna, `a.flag` by Spearman."
    assert any(line.startswith("`a.flag`") and "Spearman only" in line for line in lines)

    tables = optuna_importance_tables(disagree, [sweep / "records"])
    (table,) = tables.values()
    text = table.to_markdown()
    assert "study `sw`" in text and "**no**" in text and "Where the two disagree:" in text


def test_report_summary_shows_optuna_importances(tmp_path):
    from suite.reporting.summary import summary_markdown

    url = f"sqlite:///{tmp_path / 'o.db'}"
    _study_with_trials(url, "sw")
    optuna_storage.write_optuna_importances(url, [("sw", ["val_i_auroc"])], tmp_path / optuna_storage.IMPORTANCES_NAME)
    text, tables = summary_markdown(pd.DataFrame({"status": []}), None, "val", [str(tmp_path)])
    assert "Parameter importance (Optuna, study `sw`" in text
    assert text.index("## Parameter importance\n") < text.index("Parameter importance (Optuna")
    text, _ = summary_markdown(pd.DataFrame({"status": []}), None, "val", [str(tmp_path / "other" / "records")])
    assert "Optuna" not in text
