"""The method-fidelity switches through run_training: each changes what it claims, seeds reproduce
with and without the stage cache, records carry the per-depth signal and every scoring variant."""

import pytest
import torch

from suite.config import build_config
from suite.pipeline import run_training
from suite.methods.registry import method_spec
from suite.stage_cache import StageCache, stage_key
from suite.training import load_checkpoint


def _key(cfg, stage):
    return stage_key(cfg, stage, method_spec(cfg.model.method))


pytestmark = pytest.mark.slow


def tiny(*overrides):
    return build_config(preset="tiny", overrides=["eval.cost=false", "eval.save_maps=0", *overrides])


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """One run of the default tiny config, every stage trained (its stage cache starts empty), shared
    by the tests below: the reference numbers, the record inspected, and the cache the switches reuse."""
    folder = tmp_path_factory.mktemp("base")
    cache = folder / "cache"
    return run_training(tiny(), folder / "run", stage_cache=cache), cache


def test_same_seed_same_numbers_whether_earlier_stages_were_cached_or_trained(base, tmp_path):
    """Stage 1 loaded from the cache must not change what stages 2 and 3 draw."""
    fresh, _ = base
    assert not any(fresh.info[f"{s}_from_cache"] for s in ("stage1", "stage2", "stage3"))
    cache = tmp_path / "cache"
    # Fill the cache with stage 1 only (an RcAE-only rung shares it), then run the full pipeline.
    run_training(tiny("model.use_dpn=false", "model.use_crd=false"), tmp_path / "stage1", stage_cache=cache)
    mixed = run_training(tiny(), tmp_path / "mixed", stage_cache=cache)
    assert mixed.info["stage1_from_cache"] is True and mixed.info["stage2_from_cache"] is False
    assert mixed.metrics == fresh.metrics
    again = run_training(tiny(), tmp_path / "again", stage_cache=cache)
    assert again.info["stage3_from_cache"] is True and again.metrics == fresh.metrics


def test_records_carry_per_depth_signal_and_every_scoring_variant(base, tmp_path):
    record, _ = base
    depth = record.config["rcae"]["depth"]
    for split in ("val", "test"):
        diag = record.diagnostics[split]
        assert sorted(diag["recon"]) == [str(n) for n in range(1, depth + 1)]
        assert sorted(diag["detail"]) == sorted(diag["recon"]) and list(diag["crd"]) == ["all"]
        assert all(0 <= v["p_auroc"] <= 1 and 0 <= v["i_auroc"] <= 1 for f in diag.values() for v in f.values())
    kinds = ("auto", "residual_final", "residual_mean", "crd", "fused",
             "residual_centred", "residual_gain", "structure")
    expected = {f"{k}|{s}" for k in kinds for s in ("none", "pixel")}
    assert set(record.scorings) == expected
    assert record.scorings["auto|pixel"] == record.scorings["crd|pixel"]
    assert "aupro" in record.scorings["fused|none"]["test"] and "aupro" not in record.scorings["fused|none"]["val"]
    # The CRD's per-depth entry is the unstandardised CRD map: same pixel ranking as crd|none
    # up to the shared smoothing, so the pixel AUROCs agree.
    assert record.diagnostics["test"]["crd"]["all"]["p_auroc"] == pytest.approx(
        record.scorings["crd|none"]["test"]["p_auroc"], abs=1e-9
    )
    convae = run_training(tiny("model.method=convae"), tmp_path / "c")
    convae_kinds = ("auto", "residual_final", "residual_centred", "residual_gain", "structure", "fused")
    assert convae.diagnostics == {}
    assert set(convae.scorings) == {f"{k}|{s}" for k in convae_kinds for s in ("none", "pixel")}
    # the default fused map without a CRD fuses the other kinds of rcae.fuse, and the record names them
    assert convae.info["scoring"] == "fused|pixel" and convae.info["fused"] == ["residual_gain", "structure"]
    assert record.info["scoring"] == "fused|pixel" and record.info["fused"] == ["residual_gain", "structure", "crd"]
    assert convae.scorings["fused|pixel"] != convae.scorings["residual_gain|pixel"]


def test_scoring_statistics_are_fitted_on_held_out_normals(base, tmp_path):
    held_out, _ = base
    on_train = run_training(tiny("eval.fit_on=train"), tmp_path / "train")
    assert held_out.info["scoring_fit_on"] == "calib" and held_out.info["scoring_fit_n"] == held_out.cost["n_calib"] > 0
    assert on_train.info["scoring_fit_on"] == "train" and on_train.info["scoring_fit_n"] == on_train.cost["n_train"]
    assert held_out.scorings["auto|pixel"] != on_train.scorings["auto|pixel"]
    # Unstandardised variants do not depend on where the statistics came from.
    assert held_out.scorings["crd|none"] == on_train.scorings["crd|none"]


@pytest.mark.parametrize(
    "override, stage",
    [
        ("model.dpn_input=corrupted", "stage2"),
        ("model.crd_input=discrepancy", "stage3"),
        ("pseudo.families=[occluders]", "stage3"),
        ("pseudo.clean_fraction=0.5", "stage3"),
        ("train.depth_loss=all", "stage1"),
        ("train.depth_sampling=linear", "stage1"),
        ("train.lr_schedule=cosine", "stage1"),
        ("model.code_channels=6", "stage1"),
        ("augment.clean_fraction=0.5", "stage1"),
    ],
)
def test_each_training_switch_changes_its_stage_and_no_earlier_one(base, tmp_path, override, stage):
    _, cache = base  # the default config's stages are in it already: only the switched run trains
    default, switched = tiny(), tiny(override)
    stages = ["stage1", "stage2", "stage3"]
    for s in stages:
        same = _key(default, s) == _key(switched, s)
        assert same == (stages.index(s) < stages.index(stage)), (s, override)
    record = run_training(switched, tmp_path / "switched", stage_cache=cache)
    assert record.status == "ok"
    assert record.info[f"{stage}_from_cache"] is False
    store = StageCache(cache)
    before = load_checkpoint(store.path(_key(default, stage)))["model"]
    after = load_checkpoint(store.path(_key(switched, stage)))["model"]
    assert any(k not in before or before[k].shape != v.shape or not torch.equal(before[k], v) for k, v in after.items())
