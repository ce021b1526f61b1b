"""The trial side of a sweep (suite/orchestration/trial.py): per-trial configs and report payloads."""

from __future__ import annotations

import math

import pytest

from suite.config import build_config
from suite.spaces import load_space
from suite.orchestration.trial_plan import TrialPlan


def make_plan(objective="val_i_auroc", **kw) -> TrialPlan:
    cfg = build_config(preset="tiny")
    return TrialPlan(
        base_cfg=cfg, space=load_space("noise"), categories=["synth_texture"], sweep_name="s", records_dir="r",
        stage_cache="c", train_storage="t", objective=objective, p_weight=0.25, cost_metric="gflops",
        select_on="val", num_workers=1, use_gpu=False, cpus_per_trial=1.0, **kw,
    )


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


def _outside_tune(monkeypatch, fake_run_training) -> None:
    """Run ``run_sweep_trial`` without Tune: trial id "t1", no checkpoint, no report, ``fake_run_training``."""
    import suite.orchestration.trial as trial_mod
    import suite.pipeline

    class FakeContext:
        def get_trial_id(self):
            return "t1"

    monkeypatch.setattr(trial_mod.tune, "get_context", lambda: FakeContext())
    monkeypatch.setattr(trial_mod.tune, "get_checkpoint", lambda: None)
    monkeypatch.setattr(trial_mod, "_report_with_checkpoint", lambda *a, **k: False)
    monkeypatch.setattr(trial_mod, "node_facts", lambda: {})
    monkeypatch.setattr(suite.pipeline, "run_training", fake_run_training)


def test_a_trial_of_an_ablation_row_passes_its_ids_to_the_record(tmp_path, monkeypatch):
    import suite.orchestration.trial as trial_mod
    from suite.records import TrialRecord

    calls = []

    def fake_run_training(cfg, out, report=None, **kwargs):
        calls.append(kwargs)
        return TrialRecord(config=cfg.to_dict(), config_hash=cfg.hash(), dataset="synthetic",
                           category=cfg.data.category,
                           method=cfg.model.method, metrics={"val": {"i_auroc": 0.9}})

    _outside_tune(monkeypatch, fake_run_training)
    plan = make_plan()
    plan.space = load_space("ablation_components")
    plan.records_dir = str(tmp_path)
    trial_mod.run_sweep_trial({"point": dict(plan.space.points[2])}, plan)
    assert calls[-1]["ablation"] == {"table": "components", "row": "rcae_dpn"}
    plan.space = load_space("noise")  # not an ablation space: no ids
    trial_mod.run_sweep_trial({"augment.noise_std": 0.1}, plan)
    assert calls[-1]["ablation"] == {}


def test_a_retried_trial_trains_only_its_categories_without_a_finished_record(tmp_path, monkeypatch):
    """A retry or ``--resume`` of a trial reuses each category's finished record; only a category
    whose record is missing trains again (a resume that retrains everything fails here)."""
    import suite.orchestration.trial as trial_mod
    from suite.records import RECORD_NAME, TrialRecord, write_record

    trained = []

    def fake_run_training(cfg, out, report=None, **kwargs):
        trained.append(cfg.data.category)
        record = TrialRecord(config=cfg.to_dict(), config_hash=cfg.hash(), dataset="synthetic",
                             category=cfg.data.category, method=cfg.model.method, status="ok",
                             metrics={"val": {"i_auroc": 0.9}})
        write_record(record, out / RECORD_NAME)  # as run_training does
        return record

    _outside_tune(monkeypatch, fake_run_training)
    plan = make_plan()
    plan.categories = ["synth_texture", "synth_object"]
    plan.records_dir = str(tmp_path)
    point = {"augment.noise_std": 0.1}
    trial_mod.run_sweep_trial(point, plan)
    assert trained == ["synth_texture", "synth_object"]
    trial_mod.run_sweep_trial(point, plan)  # the same trial again: both records are finished
    assert trained == ["synth_texture", "synth_object"]
    (tmp_path / "t1" / "synth_object" / RECORD_NAME).unlink()  # killed before this category finished
    trial_mod.run_sweep_trial(point, plan)
    assert trained == ["synth_texture", "synth_object", "synth_object"]
