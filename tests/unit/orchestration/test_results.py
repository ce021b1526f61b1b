"""Sweep results without Ray (suite/orchestration/results.py): pooled metrics, trial table, Pareto, best."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from suite.config import build_config
from suite.orchestration.results import best_trials, pooled_metrics, trial_table, write_pareto
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
