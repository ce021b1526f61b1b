"""Sweep results without Ray (suite/orchestration/results.py): pooled metrics, trial table, Pareto, best."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from suite.config import build_config
from suite.orchestration.results import answer_from_records, best_trials, pooled_metrics, trial_table, write_pareto
from suite.records import TrialRecord, write_record


def test_pooled_metrics_average_finished_and_running_categories():
    finals = {"a": {"val_i_auroc": 0.8, "val_p_auroc": 0.6, "latency_ms": 2.0}, "b": {"val_i_auroc": 0.6}}
    assert pooled_metrics(finals) == pytest.approx({"val_i_auroc": 0.7, "val_p_auroc": 0.6, "latency_ms": 2.0})
    running = pooled_metrics(finals, {"val_i_auroc": 1.0, "stage": "stage1"})
    assert running["val_i_auroc"] == pytest.approx(0.8)
    assert "stage" not in running


def _record(tmp_path: Path, trial: str, cat: str, i_auroc: float, gflops: float, status: str = "ok") -> None:
    cfg = build_config(preset="tiny", overrides=[f"data.category={cat}"])
    rec = TrialRecord(config=cfg.to_dict(), config_hash=cfg.hash(), dataset="synthetic", category=cat,
                      method="rcae", status=status, trial_id=trial,
                      metrics={"val": {"i_auroc": i_auroc, "p_auroc": 0.5}, "test": {"i_auroc": 0.5}},
                      cost={"gflops": gflops, "latency_ms": 1.0, "params": 10})
    write_record(rec, tmp_path / trial / cat / "record.json")
    (tmp_path / trial / "params.json").write_text(
        json.dumps({"overrides": {"model.depth": 1}, "categories": ["a", "b"]})
    )


def test_trial_table_pareto_and_best(tmp_path):
    # t1 accurate and costly, t2 cheap, t3 dominated by t1, t4 incomplete (one category failed)
    for trial, (i, g) in {"t1": (0.9, 2.0), "t2": (0.6, 1.0), "t3": (0.8, 3.0), "t4": (1.0, 0.5)}.items():
        _record(tmp_path, trial, "a", i, g)
        _record(tmp_path, trial, "b", i, g, status="failed" if trial == "t4" else "ok")
    rows = trial_table(tmp_path, "val", "gflops")
    assert [r["trial_id"] for r in rows] == ["t1", "t2", "t3", "t4"]
    assert [r["complete"] for r in rows] == [True, True, True, False]
    csv_path, json_path = write_pareto(rows, tmp_path, "val", "gflops")
    front = pd.read_csv(csv_path)
    assert sorted(front["trial_id"]) == ["t1", "t2"]
    assert json.loads(json_path.read_text())["trials_considered"] == 3
    best = best_trials(rows, "val_i_auroc", 0.5, "val")
    assert best["a,b"]["trial_id"] == "t1"


def _timed(started: float | None, finished: float | None) -> TrialRecord:
    return TrialRecord(config={}, config_hash="h", dataset="synthetic", category="a", method="rcae",
                       started=started, finished=finished)


def test_utilisation_is_busy_slot_seconds_over_slots_times_wall():
    from suite.orchestration.results import utilisation

    # 2 slots for 10 s; one slot busy 0-10 s, the other 0-5 s: 15 of 20 slot-seconds.
    records = [_timed(100.0, 110.0), _timed(100.0, 105.0)]
    usage = utilisation(records, slots=2, wall_s=10.0)
    assert usage["utilisation"] == pytest.approx(0.75)
    assert usage["busy_s"] == pytest.approx(15.0) and usage["timed"] == 2 and usage["untimed"] == 0
    # One slot, sequential: 15 busy seconds over 15 s of wall time is full.
    usage = utilisation([_timed(0.0, 10.0), _timed(10.0, 15.0)], slots=1, wall_s=15.0)
    assert usage["utilisation"] == pytest.approx(1.0)
    # Records without times are skipped and counted; a window clips what a resumed run left behind.
    usage = utilisation(records + [_timed(None, None), _timed(50.0, 60.0)], slots=2, wall_s=10.0, start=100.0)
    assert usage["utilisation"] == pytest.approx(0.75) and usage["untimed"] == 1
    assert math.isnan(utilisation(records, slots=0, wall_s=10.0)["utilisation"])


def test_a_repeated_configuration_is_answered_from_the_oldest_ok_record_of_another_trial(tmp_path):
    _record(tmp_path, "t1", "a", 0.9, 2.0, status="failed")
    other = build_config(preset="tiny", overrides=["data.category=a"]).hash()
    assert answer_from_records(tmp_path, other, "t9") is None
    _record(tmp_path, "t2", "a", 0.7, 2.0)
    _record(tmp_path, "t3", "a", 0.8, 2.0)
    _record(tmp_path, "t4", "b", 0.6, 2.0)
    for trial, finished in (("t2", 20.0), ("t3", 10.0)):
        path = tmp_path / trial / "a" / "record.json"
        data = json.loads(path.read_text())
        data["finished"] = finished
        path.write_text(json.dumps(data))
    key = build_config(preset="tiny", overrides=["data.category=a"]).hash()
    found = answer_from_records(tmp_path, key, exclude_trial="t9")
    assert found is not None and found.trial_id == "t3"  # ok and oldest; t1 failed, t4 another category
    assert answer_from_records(tmp_path, key, exclude_trial="t3").trial_id == "t2"  # never its own record
    other_seed = build_config(preset="tiny", overrides=["data.category=a", "runtime.seed=1"]).hash()
    assert answer_from_records(tmp_path, other_seed, exclude_trial="t9") is None  # another seed is another training
