"""FAE and HFR-AE through ``run_training`` on tiny synthetic data: records, stage cache, backbones."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from suite.config import build_config
from suite.methods.base import TrainContext
from suite.pipeline import run_training
from suite.records import read_record
from suite.methods.registry import method_spec
from suite.stage_cache import StageCache, stage_key
from suite.training import load_checkpoint


def _key(cfg, stage):
    return stage_key(cfg, stage, method_spec(cfg.model.method))


TEST_METRICS = {"i_auroc", "i_ap", "i_f1max", "p_auroc", "p_ap", "p_f1max", "aupro"}
VAL_METRICS = {"i_auroc", "p_auroc"}
COST_KEYS = {"params", "gflops", "latency_ms"}


def tiny(method: str, **overrides):
    base = {"model.method": method, "runtime.threads": 1, "eval.save_maps": 2}
    base.update(overrides)
    return build_config(preset="tiny", overrides=[f"{k}={json.dumps(v)}" for k, v in base.items()])


def quiet(_msg: str) -> None:
    pass


def dtd_folder():
    from suite.data import shared_data_dir

    root = shared_data_dir() / "dtd_small"
    if not root.is_dir():
        pytest.skip(f"shared DTD textures not found at {root} (set RCSUITE_DATA_DIR)")
    return root


def check_record(out_dir, method: str):
    record = read_record(out_dir / "record.json")
    assert record.status != "failed", record.error
    assert record.method == method
    assert TEST_METRICS <= set(record.metrics["test"])
    assert VAL_METRICS <= set(record.metrics["val"])
    for value in list(record.metrics["test"].values()) + list(record.metrics["val"].values()):
        assert 0.0 <= value <= 1.0
    assert COST_KEYS <= set(record.cost)
    assert record.cost["params"] > 0 and record.cost["gflops"] > 0 and record.cost["latency_ms"] > 0
    assert record.stage_times["stage1"] > 0
    assert record.info["stage1_from_cache"] is False
    return record


@pytest.mark.slow  # a run_training on tiny data
def test_fae_run_training_writes_record_with_procedural_textures(tmp_path):
    cfg = tiny("fae", **{"train.eval_every": 1})
    run_training(cfg, tmp_path, log=quiet)
    record = check_record(tmp_path, "fae")
    assert record.info["texture_source"] == "procedural" and record.info["texture_count"] > 0
    # The per-epoch probe validated both epochs.
    probed = [h for h in record.history if "val_i_auroc" in h]
    assert [h["epoch"] for h in probed] == [1, 2]
    gallery = np.load(tmp_path / "gallery.npz")
    assert gallery["recons"].shape[1:] == (1, 3, 32, 32)
    assert gallery["maps"].shape[1:] == (32, 32)


@pytest.mark.slow  # a run_training on tiny data
def test_hfr_run_training_random_backbone_with_sgd(tmp_path):
    cfg = tiny("hfr", **{"train.eval_every": 1})
    run_training(cfg, tmp_path, log=quiet)
    record = check_record(tmp_path, "hfr")
    assert record.info["backbone"] == "resnet18"
    assert record.info["backbone_pretrained"] is False
    assert record.info["backbone_source"] == "random"
    assert 0 < record.info["trainable_params"] < record.cost["params"]  # the encoder is frozen
    assert len([h for h in record.history if "val_i_auroc" in h]) == 2
    # The paper's optimiser reached train_stage through optimizer_factory.
    state = load_checkpoint(tmp_path / "checkpoints" / "stage1.pt")
    group = state["optimizer"]["param_groups"][0]
    assert group["lr"] == pytest.approx(0.4) and group["momentum"] == pytest.approx(0.9)
    assert group["weight_decay"] == pytest.approx(1e-4)


@pytest.mark.slow  # a run_training on tiny data
@pytest.mark.parametrize("discrepancy", ["mse", "ssim", "gms"])
def test_fae_each_discrepancy_with_dtd_textures(tmp_path, discrepancy):
    root = dtd_folder()
    cfg = tiny(
        "fae",
        **{
            "fae.discrepancy": discrepancy,
            "fae.texture_root": str(root),
            "fae.texture_max_count": 6,
            "train.stage1.epochs": 1,
            "eval.cost": False,
            "eval.aupro": False,
            "eval.save_maps": 0,
        },
    )
    record = run_training(cfg, tmp_path, log=quiet)
    assert record.info["texture_source"] == f"folder {root}"
    assert record.info["texture_count"] == 6
    assert {"i_auroc", "p_auroc"} <= set(record.metrics["test"])
    assert all(np.isfinite(v) for v in record.metrics["test"].values())


def test_fae_missing_texture_folder_names_the_key(tmp_path):
    cfg = tiny("fae", **{"fae.texture_root": str(tmp_path / "nowhere")})
    with pytest.raises(FileNotFoundError, match="fae.texture_root"):
        run_training(cfg, tmp_path / "run", log=quiet)
    assert read_record(tmp_path / "run" / "record.json").status == "failed"


@pytest.mark.slow  # a run_training on tiny data
def test_hfr_backbone_weights_file_round_trip(tmp_path):
    from suite.methods.hfr.train import train
    from suite.models.resnet import resnet18

    torch.manual_seed(123)
    weights = resnet18().state_dict()
    path = tmp_path / "resnet18.pt"
    torch.save(weights, path)
    cfg = tiny("hfr", **{"hfr.backbone_weights": str(path), "train.stage1.epochs": 1, "eval.save_maps": 0})

    record = run_training(cfg, tmp_path / "run", log=quiet)
    assert record.info["backbone_pretrained"] is True
    assert record.info["backbone_source"] == "file"

    # The trained model's frozen encoder holds exactly the file's weights.
    ctx = TrainContext(cfg=cfg, device=torch.device("cpu"),
                       train_images=torch.rand(4, 3, 32, 32), checkpoint_dir=tmp_path / "ckpt", log=quiet)
    (tmp_path / "ckpt").mkdir()
    trained = train(ctx)
    encoder = trained.modules["hfr"].encoder.state_dict()
    for name in ("conv1.weight", "layer1.0.conv1.weight", "layer3.1.bn2.running_var"):
        assert torch.equal(encoder[name], weights[name])


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed")
def test_hfr_pretrained_without_torchvision_fails_with_hint(tmp_path):
    cfg = tiny("hfr", **{"hfr.pretrained": True})
    with pytest.raises(ImportError, match="hfr.pretrained=false"):
        run_training(cfg, tmp_path, log=quiet)
    record = read_record(tmp_path / "record.json")
    assert record.status == "failed" and "torchvision" in record.error


@pytest.mark.slow  # a run_training on tiny data
def test_hfr_adam_and_a_bad_optimizer(tmp_path):
    cfg = tiny("hfr", **{"hfr.optimizer": "adam", "hfr.lr": 1e-3, "train.stage1.epochs": 1,
                         "eval.cost": False, "eval.save_maps": 0})
    run_training(cfg, tmp_path / "adam", log=quiet)
    group = load_checkpoint(tmp_path / "adam" / "checkpoints" / "stage1.pt")["optimizer"]["param_groups"][0]
    assert "betas" in group and group["lr"] == pytest.approx(1e-3)

    # An unknown optimiser is refused when the config is built, before any training.
    with pytest.raises(ValueError, match="hfr.optimizer"):
        tiny("hfr", **{"hfr.optimizer": "lbfgs"})


def test_stage_keys_include_the_method_section_but_not_scoring_knobs():
    fae = tiny("fae")
    assert _key(fae, "stage1") != _key(tiny("fae", **{"fae.noise_std": 0.1}), "stage1")
    assert _key(fae, "stage1") != _key(tiny("fae", **{"fae.use_shapes": False}), "stage1")
    assert _key(fae, "stage1") == _key(tiny("fae", **{"fae.discrepancy": "mse", "fae.score": "sum",
                                                                "fae.filter_repeats": 1}), "stage1")
    hfr = tiny("hfr")
    assert _key(hfr, "stage1") != _key(tiny("hfr", **{"hfr.lr": 0.1}), "stage1")
    assert _key(hfr, "stage1") != _key(tiny("hfr", **{"hfr.backbone_weights": "/x.pt"}), "stage1")
    assert _key(hfr, "stage1") == _key(tiny("hfr", **{"hfr.sigma": 2.0, "hfr.normalise_by_area": True}),
                                                 "stage1")
    # Sections of other methods do not touch a method's key.
    rcae = tiny("rcae")
    assert _key(rcae, "stage1") == _key(tiny("rcae", **{"fae.noise_std": 0.1, "hfr.lr": 0.1}), "stage1")


@pytest.mark.slow  # a run_training on tiny data
@pytest.mark.parametrize("method", ["fae", "hfr"])
def test_stage_cache_shares_stage1_across_scoring_changes(tmp_path, method):
    common = {"train.stage1.epochs": 1, "eval.cost": False, "eval.aupro": False, "eval.save_maps": 0}
    scoring = {"fae": {"fae.discrepancy": "mse"}, "hfr": {"hfr.sigma": 1.0}}[method]
    cache = tmp_path / "cache"
    first = run_training(tiny(method, **common), tmp_path / "a", stage_cache=cache, log=quiet)
    second = run_training(tiny(method, **common, **scoring), tmp_path / "b", stage_cache=cache, log=quiet)
    assert first.info["stage1_from_cache"] is False
    assert second.info["stage1_from_cache"] is True
    assert [e["event"] for e in StageCache(cache).events()] == ["build", "hit"]
    # Same weights scored differently: the maps, hence the pixel metrics, change.
    assert first.metrics["test"]["p_auroc"] != second.metrics["test"]["p_auroc"]
