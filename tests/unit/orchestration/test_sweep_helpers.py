"""The sweep's Ray-free parts (suite/orchestration/sweep.py): payloads, trial table, Pareto, options."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from suite.config import ConfigError, build_config
from suite.orchestration.spaces import load_space
from suite.orchestration.sweep import (
    SweepOptions,
    TrialPlan,
    _asha_plan,
    _check_options,
    best_trials,
    pooled_metrics,
    trial_table,
    write_pareto,
)
from suite.records import TrialRecord, write_record


def make_plan(objective="val_i_auroc", **kw) -> TrialPlan:
    cfg = build_config(preset="tiny")
    return TrialPlan(
        base_cfg=cfg, space=load_space("noise"), categories=["synth_texture"], sweep_name="s", records_dir="r",
        stage_cache="c", train_storage="t", objective=objective, p_weight=0.25, cost_metric="gflops",
        select_on="val", num_workers=1, use_gpu=False, cpus_per_trial=1.0, **kw,
    )


def test_pooled_metrics_average_finished_and_running_categories():
    finals = {"a": {"val_i_auroc": 0.8, "val_p_auroc": 0.6, "latency_ms": 2.0}, "b": {"val_i_auroc": 0.6}}
    assert pooled_metrics(finals) == pytest.approx({"val_i_auroc": 0.7, "val_p_auroc": 0.6, "latency_ms": 2.0})
    running = pooled_metrics(finals, {"val_i_auroc": 1.0, "stage": "stage1"})
    assert running["val_i_auroc"] == pytest.approx(0.8)
    assert "stage" not in running


def test_payload_adds_the_objective_tune_checks_for():
    mix = make_plan("val_mix").payload({"val_i_auroc": 0.8, "val_p_auroc": 0.4})
    assert mix["val_mix"] == pytest.approx(0.75 * 0.8 + 0.25 * 0.4)
    multi = make_plan("multi").payload({"val_i_auroc": 0.8})
    assert math.isnan(multi["gflops"])
    assert math.isnan(make_plan().payload({})["val_i_auroc"])


def test_trial_configs_get_category_seed_offset_and_threads():
    plan = make_plan()
    cfg = plan.config_for({"augment.noise_std": 0.1}, "synth_object", repeat=2)
    assert cfg.data.category == "synth_object" and cfg.augment.noise_std == 0.1
    assert cfg.runtime.seed == plan.base_cfg.runtime.seed + 2 and cfg.runtime.threads == 1


def test_asha_sets_a_validation_cadence_only_when_needed():
    cfg = build_config(preset="tiny", overrides=["train.stage1.epochs=8"])
    opts = SweepOptions(space="noise", categories=["a", "b"])
    new, on, max_t = _asha_plan(cfg, load_space("noise"), opts)
    assert on and new.train.eval_every == 2 and new.train.checkpoint_every == 2 and max_t == 2 * 4 + 1
    _, on, _ = _asha_plan(cfg, load_space("ablation_depth"), opts)
    assert not on  # grid ablations run every row to the end
    _, on, _ = _asha_plan(cfg, load_space("noise"), SweepOptions(space="noise", objective="multi"))
    assert not on


@pytest.mark.parametrize(
    "change, message",
    [
        ({"objective": "acc"}, "objective"),
        ({"cost_metric": "watts"}, "cost metric"),
        ({"p_weight": 2.0}, "p_weight"),
        ({"storage": "s3://bucket/x"}, "filesystem path"),
        ({"categories": []}, "category"),
    ],
)
def test_bad_options_are_rejected(change, message):
    with pytest.raises(ConfigError, match=message):
        _check_options(SweepOptions(space="noise", **change))


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
