"""Issue-19 switches (suite/methods/rcae/photometric_switches.py, pseudo.py, scorer.py; data.val_shifts):
each changes what it claims, and is off by default."""

import dataclasses

import numpy as np
import pytest
import torch

from suite import metrics as M
from suite.config import AugmentConfig, ConfigError, PseudoConfig, build_config, load_yaml, with_overrides
from suite.methods.rcae.networks import build_networks
from suite.methods.rcae.photometric_switches import (
    OFFSET_NORM_FILE,
    OffsetNormaliser,
    StageInput,
    is_grayscale,
    offset_free_maps,
    offset_normaliser,
    stage3_config,
)
from suite.methods.rcae.pseudo import crd_training_batch
from suite.methods.rcae.scorer import RcAEInference, RcAEScorer
from suite.methods.rcae.train import ReconstructionStageLoss
from suite.validation import validation_set
from suite.residuals import plain_residual
from suite.scoring import gaussian_blur, topk_mean


def scene(n=6, size=32, seed=0):
    """Mid-grey backgrounds (most pixels) with a brighter random patch: the median is the background."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, 3, size, size), 0.6)
    x[:, :, 4:12, 4:12] = 0.6 + 0.3 * torch.rand(n, 3, 8, 8, generator=g)
    return x


@pytest.mark.parametrize("mode", ["shift", "gain"])
def test_normalisation_maps_a_darkened_copy_back_to_the_train_level(mode):
    train = scene()
    norm = OffsetNormaliser(mode).fit(train)
    assert float(norm.reference) == pytest.approx(0.6, abs=1e-6)
    dark = train * 0.92
    assert (dark - train).abs().amax() > 0.04  # plain inputs differ everywhere
    back = norm(dark)
    assert torch.allclose(back[:, :, 20:, 20:], train[:, :, 20:, 20:], atol=1e-6)  # background level restored
    if mode == "gain":
        assert torch.allclose(back, train, atol=1e-5)  # a gain change is undone exactly
    assert torch.equal(OffsetNormaliser("none")(dark), dark)


def test_reference_is_stored_with_the_trial_and_reloaded(tmp_path):
    cfg = build_config(preset="tiny", overrides=["rcae.normalise=shift"])
    first = offset_normaliser(cfg, scene(), tmp_path, recursive=True, log=lambda _: None)
    assert (tmp_path / OFFSET_NORM_FILE).exists()
    again = offset_normaliser(cfg, scene() * 0.5, tmp_path, recursive=True, log=lambda _: None)  # resumed: not refitted
    assert float(again.reference) == float(first.reference)
    assert offset_normaliser(cfg, scene(), tmp_path, recursive=False) is None  # ConvAE never reads it
    paper = build_config(preset="tiny", overrides=["rcae.photometric=paper"])
    assert offset_normaliser(paper, scene(), tmp_path, recursive=True) is None


class Capture(torch.nn.Module):
    def forward(self, x, depth=None):
        self.seen = x
        return x


def test_jitter_is_identical_on_input_and_target_and_never_in_a_mask():
    overrides = ["rcae.jitter=true", "augment.enabled=false", "train.depth_loss=sampled"]
    cfg = build_config(preset="tiny", overrides=overrides)
    batch = scene()
    prep = StageInput(cfg, None, recursive=True)
    loss = ReconstructionStageLoss(cfg, batch, torch.device("cpu"), True, prep)
    model = Capture()
    # a model returning its input has zero loss only if input == target (jitter shared)
    assert float(loss(model, batch, torch.Generator().manual_seed(0))) == pytest.approx(0.0, abs=1e-7)
    assert (model.seen - batch).abs().amax() > 1e-3  # and the jitter did change the images
    jittered = prep(batch, torch.Generator().manual_seed(1))
    _, masks = crd_training_batch(jittered, AugmentConfig(), PseudoConfig(clean_fraction=0.95),
                                  torch.Generator().manual_seed(2))
    clean = masks.flatten(1).amax(dim=1) == 0
    assert clean.any() and not torch.equal(jittered, batch)  # jittered yet clean: an empty mask
    off = StageInput(build_config(preset="tiny", overrides=["rcae.jitter=false"]), None, recursive=True)
    assert torch.equal(off(batch, torch.Generator().manual_seed(0)), batch)


def test_grey_fills_on_a_grayscale_category():
    grey = scene().mean(dim=1, keepdim=True).expand(-1, 3, -1, -1).contiguous()
    assert is_grayscale(grey) and not is_grayscale(scene() * torch.tensor([1.0, 0.9, 0.8]).view(1, 3, 1, 1))
    pseudo = PseudoConfig(families=["augment", "occluders"])
    coloured, masks_c = crd_training_batch(grey, AugmentConfig(), pseudo, torch.Generator().manual_seed(0))
    assert (coloured.amax(dim=1) - coloured.amin(dim=1)).amax() > 0.05  # fills as drawn are coloured
    out, masks = crd_training_batch(grey, AugmentConfig(), pseudo, torch.Generator().manual_seed(0), grey=True)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    assert torch.equal(masks, (out != grey).any(dim=1, keepdim=True).float()) and masks.sum() > 0


def test_small_size_prior_shrinks_the_masks():
    x = torch.rand(16, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    areas = {}
    for prior in ("none", "small"):
        pseudo = PseudoConfig(families=["augment", "occluders"], size_prior=prior)
        out, masks = crd_training_batch(x, AugmentConfig(coverage=0.5), pseudo, torch.Generator().manual_seed(1))
        assert torch.equal(masks, (out != x).any(dim=1, keepdim=True).float())
        assert (masks.flatten(1).amax(dim=1) == 1).all()
        areas[prior] = masks.mean().item()
    assert areas["small"] < 0.5 * areas["none"]
    assert areas["small"] <= 0.25**2  # at most one window of a quarter of the side


def test_stage3_iterations_and_floor():
    cfg = build_config(preset="tiny")  # stage 3: 1 epoch, batch 8
    assert stage3_config(cfg, 10) is cfg.train.stage3  # off: unchanged
    floored = stage3_config(with_overrides(cfg, {"rcae.crd_min_iterations": 50}), 10)
    assert floored.epochs * 2 >= 50 and (floored.epochs - 1) * 2 < 50  # 2 steps per epoch on 10 images
    fixed = stage3_config(with_overrides(cfg, {"rcae.crd_iterations": 7, "train.stage3.epochs": 30}), 10)
    assert fixed.epochs == 4


def test_shifted_normals_join_validation_as_normals():
    cfg = build_config(preset="tiny", overrides=["data.val_anomalies=augment", "data.val_shifts=[]"])
    val = scene(n=3)
    images, masks, labels = validation_set(val, scene(n=4, seed=1), cfg)
    shifted_cfg = with_overrides(cfg, {"data.val_shifts": ["gain0.92", "gamma1.1"]})
    s_images, s_masks, s_labels = validation_set(val, scene(n=4, seed=1), shifted_cfg)
    assert len(s_images) == len(images) + 6 and int(s_labels.sum()) == int(labels.sum())
    assert (s_labels[:9] == 0).all() and s_masks[:9].sum() == 0
    assert torch.allclose(s_images[3:6], val * 0.92) and torch.allclose(s_images[6:9], val ** 1.1)
    assert torch.equal(s_images[9:], images[3:])  # the anomalies are unchanged


def test_offset_oracle_offset_free_scoring_ranks_defects_plain_ranks_brightness():
    """Reconstruction = the train-level image; test normals are 8 % darker, defects are local."""
    recon = scene(n=8, seed=3)
    normals = recon * 0.92
    defective = recon.clone()
    defective[:, :, 20:24, 20:24] += 0.05  # weaker than the offset over the bright patch
    images = torch.cat([normals, defective])
    labels = np.array([0] * 8 + [1] * 8)
    recons = torch.cat([recon, recon])
    plain = topk_mean(plain_residual(images, recons), 0.01).numpy()
    assert M.auroc(labels, plain) <= 0.5
    maps = offset_free_maps(images, recons, "gradient")
    for kind in ("residual_gain", "residual_centred", "structure"):
        assert M.auroc(labels, topk_mean(maps[kind], 0.01).numpy()) == 1.0, kind


def test_scorer_normalises_its_input_and_fuses_the_configured_kinds():
    cfg = build_config(preset="tiny", overrides=["rcae.crd_input=both", "rcae.normalise=gain",
                                                 "rcae.fuse=[residual_gain, structure, crd]", "eval.anomaly_map=fused",
                                                 "eval.standardize=pixel"])
    torch.manual_seed(0)
    nets = build_networks(cfg)
    infer = RcAEInference(nets, cfg, [1, 2], [1, 2])
    infer.normaliser = OffsetNormaliser("gain").fit(scene())
    scorer = RcAEScorer(infer, cfg).fit(scene(), torch.device("cpu"))
    with torch.inference_mode():
        raw = scorer.raw_maps(scene() * 0.9)
        assert torch.allclose(raw["input"], scene(), atol=1e-5)
        variants = scorer.variants(raw)
        predicted = scorer.predict(scene() * 0.9)["map"]
    assert torch.allclose(predicted, variants["fused|pixel"], atol=1e-6)
    assert {"residual_centred|pixel", "residual_gain|none", "structure|pixel", "fused|pixel"} <= set(variants)
    parts = [scorer.pixel[k](raw[k]) for k in ("residual_gain", "structure", "crd")]
    expected = scorer.variant_map({**raw}, "fused", "pixel")
    assert torch.allclose(expected, gaussian_blur(torch.stack(parts).mean(0), cfg.eval.smooth_sigma), atol=1e-5)


def test_defaults_are_the_validated_switches_and_the_paper_keeps_its_behaviour():
    # chosen on validation (3 seeds, demo preset; README "Photometric robustness"); the paper preset and the
    # one-key shorthand rcae.photometric=paper keep the paper's behaviour
    robust = ("gain", True, ["residual_gain", "structure", "crd"], "fused")
    paper = ("none", False, ["residual_final", "crd"], "auto")
    floors = {"paper": 0, "cpu": 0, "demo": 300, "tiny": 0}
    # at the cpu preset validation left the CRD map out of the fused map (3 bottle seeds, README)
    cpu = ("gain", True, ["residual_gain", "structure"], "fused")
    for preset, floor in floors.items():
        cfg = build_config(preset=preset)
        r = cfg.rcae
        assert (r.normalise, r.jitter, r.fuse, cfg.eval.anomaly_map) == {"paper": paper, "cpu": cpu}.get(preset, robust)
        assert cfg.data.val_shifts == ["gain0.92", "gain1.08", "gamma0.9", "gamma1.1"]
        assert (r.crd_input, r.crd_iterations, r.crd_min_iterations) == ("paper", 0, floor)
        back = build_config(preset=preset, overrides=["rcae.photometric=paper"])
        assert (back.rcae.normalise, back.rcae.jitter, back.rcae.fuse, back.eval.anomaly_map) == paper
        there = build_config(preset=preset, overrides=["rcae.photometric=robust"])
        assert (there.rcae.normalise, there.rcae.jitter, there.rcae.fuse, there.eval.anomaly_map) == robust
        assert dataclasses.astuple(cfg.pseudo)[-2:] == ("any", "none")
        # the cpu preset's structure map is SSIM-based (validation, 3 bottle seeds); the others keep gradients
        assert r.structure == ("ssim" if preset == "cpu" else "gradient")


def test_photometric_shorthand_expands_in_order_a_key_beside_it_wins_and_a_bad_value_names_the_key(tmp_path):
    cfg = build_config(preset="tiny", overrides=["rcae.photometric=paper", "eval.anomaly_map=crd"])
    assert (cfg.rcae.normalise, cfg.eval.anomaly_map) == ("none", "crd")  # the later override wins
    cfg = build_config(preset="tiny", overrides=["eval.anomaly_map=crd", "rcae.photometric=paper"])
    assert cfg.eval.anomaly_map == "auto"  # overrides apply in order
    cfg = build_config(base={"rcae": {"photometric": "paper", "jitter": True}})
    assert (cfg.rcae.normalise, cfg.rcae.jitter) == ("none", True)  # a key in the same mapping wins
    assert "photometric" not in cfg.to_dict()["rcae"]  # records keep only the expanded keys
    path = tmp_path / "c.yaml"
    path.write_text("rcae:\n  photometric: paper\n")
    assert load_yaml(path).rcae.normalise == "none"
    with pytest.raises(ConfigError, match="'rcae.photometric'.*paper, robust"):
        build_config(overrides=["rcae.photometric=papr"])
