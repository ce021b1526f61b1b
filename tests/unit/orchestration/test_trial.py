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


@pytest.mark.slow  # a fresh interpreter importing Ray
def test_a_coordinator_recognises_finished_and_diverged_categories_without_torch(tmp_path):
    """A sweep's trial process only coordinates (its categories train in shard processes): deciding
    that a category is already done, or diverged for good, must not import torch (2.4 CPU-s per
    trial process, a few dozen of them in the test suite)."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    code = f"""
import sys
sys.modules["torch"] = None  # any 'import torch' now raises ImportError
from pathlib import Path
from suite.config import build_config
from suite.errors import TrainingDiverged
from suite.orchestration.trial import _category_state
from suite.orchestration.trial_plan import TrialPlan
from suite.records import TrialRecord, write_record
from suite.spaces import load_space

cfg = build_config(preset="tiny")
plan = TrialPlan(base_cfg=cfg, space=load_space("noise"), categories=["synth_texture"], sweep_name="s",
                 records_dir={str(tmp_path / "records")!r}, stage_cache="c", train_storage="t", objective="val_i_auroc",
                 p_weight=0.25, cost_metric="gflops", select_on="val", num_workers=1, use_gpu=False,
                 cpus_per_trial=1.0)
def record(status, error=None):
    return TrialRecord(config=cfg.to_dict(), config_hash=cfg.hash(), dataset="synthetic", category="synth_texture",
                       method="rcae", status=status, error=error, metrics={{"val": {{"i_auroc": 0.7}}}})
done, diverged = Path({str(tmp_path / "done")!r}), Path({str(tmp_path / "diverged")!r})
write_record(record("ok"), done / "record.json")
write_record(record("failed", "TrainingDiverged: stage1 loss is nan"), diverged / "record.json")
assert _category_state(plan, "t1", "synth_texture", cfg, done)["val_i_auroc"] == 0.7
try:
    _category_state(plan, "t1", "synth_texture", cfg, diverged)
except TrainingDiverged as err:
    print("raised:", err)
else:
    raise AssertionError("a diverged category was not failed at once")
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "raised: synth_texture: TrainingDiverged" in result.stdout
