"""Photometric jitter, offset normalisation and the eval.shifts transforms (suite.data.photometric)."""

from __future__ import annotations

import pytest
import torch

from suite.data.photometric import (
    SHIFTS,
    PhotometricParams,
    apply_photometric,
    apply_shift,
    background_level,
    draw_photometric,
    luminance,
    normalise_offset,
    photometric_jitter,
    reference_level,
)

JITTER = dict(gain_range=(0.8, 1.2), offset_range=(-0.1, 0.1), gamma_range=(0.7, 1.4))


def _images(n=4, c=3, size=16, seed=0) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------
# jitter


def test_neutral_jitter_is_the_identity():
    images = _images()
    out, params = photometric_jitter(images, (1.0, 1.0), (0.0, 0.0), (1.0, 1.0), torch.Generator().manual_seed(3))
    assert torch.equal(out, images)
    assert torch.equal(params.gain, torch.ones(4)) and torch.equal(params.offset, torch.zeros(4))
    neutral = PhotometricParams(gain=torch.ones(4), offset=torch.zeros(4), gamma=torch.ones(4))
    assert torch.equal(apply_photometric(images, neutral), images)


def test_input_and_target_get_the_identical_jitter():
    clean = _images(6, seed=1)
    corrupted = clean.clone()
    corrupted[:, :, 4:8, 4:8] = 0.9  # a stage-1 corruption on the input only
    jittered, params = photometric_jitter(corrupted, **JITTER, generator=torch.Generator().manual_seed(0))
    target = apply_photometric(clean, params)
    outside = torch.ones_like(clean, dtype=torch.bool)
    outside[:, :, 4:8, 4:8] = False
    # Where input and target agreed before, they agree after: the jitter adds no input-target difference.
    assert torch.equal(jittered[outside], target[outside])
    assert not torch.equal(target, clean)


def test_jitter_follows_its_formula_per_image_and_draws_differ_per_image():
    images = _images(5, seed=2)
    out, params = photometric_jitter(images, **JITTER, generator=torch.Generator().manual_seed(7))
    for i in range(5):
        expected = (params.gain[i] * images[i] ** params.gamma[i] + params.offset[i]).clamp(0, 1)
        assert torch.allclose(out[i], expected, atol=1e-6)
        # batched == one image at a time (no leakage across images)
        single = PhotometricParams(params.gain[i : i + 1], params.offset[i : i + 1], params.gamma[i : i + 1])
        assert torch.allclose(apply_photometric(images[i : i + 1], single)[0], out[i], atol=1e-7)
    for values, (lo, hi) in zip((params.gain, params.offset, params.gamma), JITTER.values()):
        assert values.min() >= lo and values.max() <= hi
        assert len(set(values.tolist())) == 5
    assert out.min() >= 0 and out.max() <= 1


def test_jitter_is_deterministic_given_the_generator():
    a = draw_photometric(8, **JITTER, generator=torch.Generator().manual_seed(11))
    b = draw_photometric(8, **JITTER, generator=torch.Generator().manual_seed(11))
    c = draw_photometric(8, **JITTER, generator=torch.Generator().manual_seed(12))
    assert torch.equal(a.gain, b.gain) and torch.equal(a.gamma, b.gamma) and torch.equal(a.offset, b.offset)
    assert not torch.equal(a.gain, c.gain)


@pytest.mark.parametrize("bad", [dict(gain_range=(0.0, 1.0)), dict(gamma_range=(1.2, 1.1)), dict(offset_range=(1, 0))])
def test_jitter_rejects_bad_ranges(bad):
    with pytest.raises(ValueError):
        draw_photometric(2, **{**JITTER, **bad}, generator=torch.Generator())


# ----------------------------------------------------------------------------------------------
# offset normalisation


def test_background_level_is_the_median_luminance_and_ignores_a_small_defect():
    images = _images(3, size=15, seed=4)
    gray = 0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]
    assert torch.allclose(luminance(images)[:, 0], gray, atol=1e-6)
    expected = gray.flatten(1).median(dim=1).values
    assert torch.allclose(background_level(images), expected, atol=1e-6)
    flat = torch.full((2, 3, 20, 20), 0.4)
    flat[:, :, :4, :4] = 1.0  # a bright defect on 4 % of the image
    assert torch.allclose(background_level(flat), torch.full((2,), 0.4))


def test_normalise_offset_moves_each_image_to_the_reference_level():
    base = 0.3 + 0.4 * _images(4, size=16, seed=5)  # values in [0.3, 0.7]: shifts below stay unclamped
    shifted = base + torch.tensor([-0.05, 0.0, 0.03, 0.08]).view(-1, 1, 1, 1)
    reference = reference_level(background_level(base[:1]))
    out = normalise_offset(shifted, reference)
    assert torch.allclose(background_level(out), torch.full((4,), reference), atol=1e-6)
    # one offset per image, the same on every pixel and channel (the colour balance is kept)
    change = (out - shifted).flatten(1)
    assert torch.allclose(change, change[:, :1].expand_as(change), atol=1e-6)
    assert torch.allclose(change[:, 0], reference - background_level(shifted), atol=1e-6)
    at_reference = normalise_offset(base[:1], reference)
    assert torch.allclose(at_reference, base[:1], atol=1e-7)
    darker = base * 0.92
    train_level = reference_level(background_level(base))
    gained = normalise_offset(darker, train_level, mode="gain")
    assert torch.allclose(background_level(gained), torch.full((4,), train_level), atol=1e-5)


def test_normalise_offset_clamps_to_the_image_range():
    bright = torch.full((1, 3, 8, 8), 0.95)
    bright[..., :2, :] = 0.5
    out = normalise_offset(bright, 0.99)
    assert out.max() <= 1.0 and out.min() >= 0.0
    assert torch.allclose(out[..., :2, :], torch.full_like(out[..., :2, :], 0.54))
    with pytest.raises(ValueError, match="mode"):
        normalise_offset(bright, 0.5, mode="bogus")


def test_reference_level_is_the_median_of_levels():
    assert reference_level(torch.tensor([0.2, 0.9, 0.4])) == pytest.approx(0.4)


# ----------------------------------------------------------------------------------------------
# test-set shifts


def _masks(n=2, size=32) -> torch.Tensor:
    masks = torch.zeros(n, 1, size, size)
    masks[:, :, 10:14, 12:18] = 1.0
    return masks


def test_brightness_shifts_scale_by_exactly_eight_percent():
    images = 0.9 * _images(2, size=32)  # <= 0.9: 1.08 x stays below 1, no clamping
    masks = _masks()
    dark, dark_masks = SHIFTS["dark8"](images, masks)
    bright, bright_masks = SHIFTS["bright8"](images, masks)
    assert torch.equal(dark, images * 0.92) and torch.equal(bright, images * 1.08)
    assert torch.equal(dark_masks, masks) and torch.equal(bright_masks, masks)
    clipped, _ = SHIFTS["bright8"](torch.ones(1, 3, 4, 4), None)
    assert torch.equal(clipped, torch.ones(1, 3, 4, 4))


def test_contrast_keeps_the_mean_level_and_scales_the_spread():
    images = 0.25 + 0.5 * _images(2, size=32, seed=3)
    out, masks = SHIFTS["contrast90"](images, _masks())
    lum_in, lum_out = luminance(images), luminance(out)
    assert torch.allclose(lum_out.mean(dim=(1, 2, 3)), lum_in.mean(dim=(1, 2, 3)), atol=1e-6)
    assert torch.allclose(lum_out.std(dim=(1, 2, 3)), 0.9 * lum_in.std(dim=(1, 2, 3)), atol=1e-6)
    assert torch.equal(masks, _masks())


# (a sampled Gaussian under ~1 px has a visibly smaller variance than sigma², so no 128 px case)
@pytest.mark.parametrize("size,sigma", [(256, 1.0), (384, 1.5), (512, 2.0)])
def test_blur_sigma_scales_with_the_image_size(size, sigma):
    impulse = torch.zeros(1, 1, size, size)
    impulse[..., size // 2, size // 2] = 1.0
    out, _ = SHIFTS["blur"](impulse, None)
    row = out[0, 0, size // 2] / out[0, 0, size // 2].sum()
    coords = torch.arange(size, dtype=torch.float32) - size // 2
    assert float((row * coords**2).sum()) == pytest.approx(sigma**2, rel=0.05)
    constant, _ = SHIFTS["blur"](torch.full((1, 3, 32, 32), 0.3), None)
    assert torch.allclose(constant, torch.full_like(constant, 0.3))


def test_noise_is_seeded_and_has_the_stated_strength():
    images = torch.full((2, 3, 64, 64), 0.5)
    a, masks = SHIFTS["noise"](images, _masks(size=64), seed=1)
    b, _ = SHIFTS["noise"](images, None, seed=1)
    c, _ = SHIFTS["noise"](images, None, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float((a - images).std()) == pytest.approx(0.02, rel=0.05)
    assert torch.equal(masks, _masks(size=64))


@pytest.mark.parametrize("size,d", [(256, 4), (128, 2), (32, 1)])
def test_translation_moves_image_and_mask_together(size, d):
    images = torch.full((1, 3, size, size), 0.2)
    images[..., 5, 7] = 1.0
    images[..., 0, :] = 0.6  # top edge row: replicated into the uncovered border
    masks = torch.zeros(1, 1, size, size)
    masks[..., 5, 7] = 1.0
    masks[..., 0, 0] = 1.0
    out, out_masks = SHIFTS["translate"](images, masks)
    assert out[0, 0, 5 + d, 7 + d] == 1.0 and out_masks[0, 0, 5 + d, 7 + d] == 1.0
    assert out_masks[0, 0, d, d] == 1.0 and out_masks.sum() == 2  # nothing enters from outside the frame
    assert torch.all(out[..., :d, d:] == 0.6)  # replicate padding, not black
    assert torch.equal(out[..., d:, d:], images[..., : size - d, : size - d])


def test_every_shift_keeps_shapes_range_and_determinism():
    images, masks = _images(2, size=256, seed=9), _masks(size=256)  # at 32 px the blur's sigma is 1/8 px
    for name in SHIFTS:
        out, out_masks = apply_shift(name, images, masks, seed=5)
        again, _ = apply_shift(name, images, masks, seed=5)
        assert out.shape == images.shape and out_masks.shape == masks.shape, name
        assert out.min() >= 0 and out.max() <= 1 and torch.equal(out, again), name
        assert not torch.equal(out, images), name
    with pytest.raises(ValueError, match="valid shifts"):
        apply_shift("sepia", images, masks)
