"""Stage-3 pseudo-anomalies (suite/methods/rcae/pseudo.py): exact masks, clean samples, opacity, families."""

import dataclasses

import torch

from suite.config import AugmentConfig, PseudoConfig
from suite.methods.rcae.pseudo import crd_training_batch


def images(batch=6, size=32, seed=0):
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 0.5 + 0.25


def run(pseudo, seed=0, batch=6, augment=None):
    x = images(batch)
    out, masks = crd_training_batch(x, augment or AugmentConfig(), pseudo, torch.Generator().manual_seed(seed))
    return x, out, masks


def test_masks_are_exactly_the_changed_pixels_for_every_family():
    for families in (["augment"], ["occluders"], ["augment", "occluders"]):
        x, out, masks = run(PseudoConfig(families=families, opacity=[0.3, 1.0]))
        assert torch.equal(masks, (out != x).any(dim=1, keepdim=True).float())
        assert (masks.flatten(1).amax(dim=1) == 1).all(), families


def test_clean_fraction_one_gives_untouched_images_and_empty_masks():
    x, out, masks = run(PseudoConfig(families=["augment", "occluders"], clean_fraction=1.0))
    assert torch.equal(out, x) and masks.sum() == 0
    clean = []
    for seed in range(20):
        _, _, masks = run(PseudoConfig(clean_fraction=0.5), seed=seed)
        clean.append((masks.flatten(1).amax(dim=1) == 0).float().mean().item())
    assert 0.35 < sum(clean) / len(clean) < 0.65


def test_opacity_blends_the_same_corruption():
    x, opaque, mask_opaque = run(PseudoConfig(opacity=[1.0, 1.0]), seed=3)
    _, half, mask_half = run(PseudoConfig(opacity=[0.5, 0.5]), seed=3)
    assert torch.allclose(half - x, 0.5 * (opaque - x), atol=1e-6)
    assert torch.equal(mask_half, mask_opaque)


def test_occluders_are_not_the_stage1_families():
    """Occluder fills are textures blended into elastic shapes: the changed region is not made of
    whole grid blocks of one colour, unlike augment's colour blocks."""
    augment = dataclasses.replace(AugmentConfig(), copy_paste=False, lines=False, coverage=0.2)
    x, blocks, _ = run(PseudoConfig(families=["augment"]), augment=augment)
    _, occluded, masks = run(PseudoConfig(families=["occluders"]), augment=augment)
    def colours_per_pixel(out, masks):
        return [out[i][:, m[0] > 0].T.unique(dim=0).shape[0] / max(1, int(m.sum())) for i, m in enumerate(masks)]

    block_ratio = colours_per_pixel(blocks, (blocks != x).any(1, keepdim=True))
    occluder_ratio = colours_per_pixel(occluded, masks)
    assert max(block_ratio) < 0.2 < min(occluder_ratio)


def test_uniform_coverage_varies_the_area():
    augment = dataclasses.replace(AugmentConfig(), coverage=0.8, reference_size=256)
    areas = {}
    for sampling in ("fixed", "uniform"):
        _, _, masks = run(PseudoConfig(coverage_sampling=sampling), augment=augment, batch=24)
        areas[sampling] = masks.flatten(1).mean(dim=1)
    # E[coverage] halves under U(0, c); the fixed run's area has no such drop.
    assert areas["uniform"].mean() < 0.75 * areas["fixed"].mean()
