"""DRAEM anomaly simulation: Perlin noise, masks, anomaly sources and the blend."""

import dataclasses

import pytest
import torch

from suite.methods.draem.config import DRAEMConfig
from suite.methods.draem.synthesis import anomaly_source, perlin_mask, perlin_noise, synthesize


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_perlin_noise_is_deterministic_under_a_seed():
    a = perlin_noise(48, 40, 4.0, 2.0, gen(3), angle=30.0)
    b = perlin_noise(48, 40, 4.0, 2.0, gen(3), angle=30.0)
    assert a.shape == (48, 40) and a.dtype == torch.float32
    assert torch.equal(a, b)


def test_perlin_noise_varies_across_seeds():
    fields = [perlin_noise(32, 32, 4.0, 4.0, gen(s)) for s in range(5)]
    for i in range(5):
        for j in range(i + 1, 5):
            assert (fields[i] - fields[j]).abs().max() > 0.1


def test_perlin_noise_range_and_smoothness():
    field = perlin_noise(128, 128, 4.0, 4.0, gen(0))
    assert field.abs().max() <= 1.0 + 1e-5  # sqrt(2) * |gradient noise| <= 1 in 2D
    assert field.std() > 0.1  # not degenerate
    # 32 px per cell: neighbouring pixels differ little
    assert (field[1:] - field[:-1]).abs().max() < 0.15
    assert (field[:, 1:] - field[:, :-1]).abs().max() < 0.15


def test_perlin_noise_is_zero_on_lattice_points():
    # 32 cells over 16 px put pixel centres (i + 0.5) * 2 = 2i + 1 on lattice points, where
    # gradient noise vanishes.
    field = perlin_noise(16, 16, 32.0, 32.0, gen(1))
    assert field.abs().max() < 1e-6


def test_perlin_mask_is_bool_and_thresholded():
    cfg = DRAEMConfig()
    masks = [perlin_mask(64, 64, cfg, gen(s)) for s in range(20)]
    assert all(m.dtype == torch.bool and m.shape == (64, 64) for m in masks)
    shares = torch.tensor([m.float().mean() for m in masks])
    assert (shares > 0).sum() >= 10  # most draws give a non-empty mask
    assert shares.max() < 0.6  # threshold 0.5 on noise in [-1, 1] keeps the masks partial
    higher = dataclasses.replace(cfg, perlin_threshold=0.8)
    for s in range(20):
        assert (perlin_mask(64, 64, higher, gen(s)) <= masks[s]).all()  # same draws, a subset


def constant_bank(colour=(0.9, 0.1, 0.5), size=16) -> torch.Tensor:
    return torch.tensor(colour).view(1, 3, 1, 1).expand(1, 3, size, size).clone()


def test_synthesis_blend_formula_inside_and_identity_outside():
    cfg = DRAEMConfig(anomaly_prob=1.0, opacity=[0.3, 0.3], texture_augment=False)
    images = torch.rand(12, 3, 32, 32, generator=gen(0))
    colour = torch.tensor([0.9, 0.1, 0.5]).view(3, 1, 1)
    out, masks = synthesize(images, cfg, gen(5), constant_bank())
    assert out.shape == images.shape and masks.shape == (12, 1, 32, 32)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    inside = masks.bool().expand_as(images)
    assert inside.any()
    assert torch.equal(out[~inside], images[~inside])
    expected = 0.7 * images + 0.3 * colour
    torch.testing.assert_close(out[inside], expected[inside], atol=1e-6, rtol=0)


def test_synthesis_with_augmented_textures_changes_only_masked_pixels():
    cfg = DRAEMConfig(anomaly_prob=1.0)
    images = torch.rand(16, 3, 32, 32, generator=gen(1))
    bank = torch.rand(4, 3, 32, 32, generator=gen(2))
    out, masks = synthesize(images, cfg, gen(7), bank)
    inside = masks.bool().expand_as(images)
    assert torch.equal(out[~inside], images[~inside])
    assert out.min() >= 0 and out.max() <= 1
    changed = (out != images).any(dim=1, keepdim=True)
    assert (changed <= masks.bool()).all()
    assert changed.sum() > 0.5 * masks.sum()  # opacity >= 0.1: almost every masked pixel changes


def test_synthesis_is_deterministic():
    cfg = DRAEMConfig(anomaly_prob=0.7)
    images = torch.rand(8, 3, 32, 32, generator=gen(0))
    bank = torch.rand(3, 3, 32, 32, generator=gen(1))
    a = synthesize(images, cfg, gen(11), bank)
    b = synthesize(images, cfg, gen(11), bank)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = synthesize(images, cfg, gen(12), bank)
    assert not torch.equal(a[1], c[1])


def test_anomaly_prob_zero_gives_no_anomalies():
    cfg = DRAEMConfig(anomaly_prob=0.0)
    images = torch.rand(16, 3, 32, 32, generator=gen(0))
    out, masks = synthesize(images, cfg, gen(0), constant_bank())
    assert torch.equal(out, images)
    assert masks.sum() == 0


def test_anomaly_prob_one_gives_mostly_non_empty_masks():
    cfg = DRAEMConfig(anomaly_prob=1.0)
    images = torch.rand(40, 3, 32, 32, generator=gen(0))
    _, masks = synthesize(images, cfg, gen(4), constant_bank())
    non_empty = (masks.flatten(1).sum(1) > 0).float().mean()
    assert non_empty >= 0.6, non_empty  # Perlin masks may come out empty, as in the reference code


def test_anomaly_prob_half_leaves_about_half_unchanged():
    cfg = DRAEMConfig(anomaly_prob=0.5, perlin_threshold=-1.0)  # every drawn mask covers the image
    images = torch.rand(200, 3, 8, 8, generator=gen(0))
    _, masks = synthesize(images, cfg, gen(9), constant_bank(size=8))
    share = (masks.flatten(1).sum(1) > 0).float().mean()
    assert 0.38 < share < 0.62, share


def test_anomaly_source_is_in_range_and_resized():
    bank = torch.rand(2, 3, 20, 20, generator=gen(0))
    src = anomaly_source(bank, 32, 32, gen(1), augment=True)
    assert src.shape == (3, 32, 32) and src.min() >= 0 and src.max() <= 1
    plain = anomaly_source(bank, 20, 20, gen(1), augment=False)
    assert any(torch.equal(plain, t) for t in bank)


def test_grey_images_get_grey_sources():
    cfg = DRAEMConfig(anomaly_prob=1.0, opacity=[1.0, 1.0], texture_augment=False)
    images = torch.rand(6, 1, 32, 32, generator=gen(0))
    out, masks = synthesize(images, cfg, gen(3), constant_bank())
    inside = masks.bool()
    assert inside.any()
    torch.testing.assert_close(out[inside], torch.full_like(out[inside], 0.5), atol=1e-6, rtol=0)


def test_bad_settings_raise_naming_the_key():
    images = torch.rand(2, 3, 32, 32)
    with pytest.raises(ValueError, match="draem.anomaly_prob"):
        synthesize(images, DRAEMConfig(anomaly_prob=1.5), gen(0), constant_bank())
    with pytest.raises(ValueError, match="draem.opacity"):
        synthesize(images, DRAEMConfig(opacity=[0.8, 0.2]), gen(0), constant_bank())
