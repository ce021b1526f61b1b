"""Offset-invariant residual maps (suite.residuals), including the 8 %-darker-normals oracle of issue 19."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from suite.metrics import auroc
from suite.residuals import (
    OFFSET_INVARIANT,
    RESIDUALS,
    fit_gain_offset,
    gain_offset_residual,
    gradient_residual,
    median_centred_residual,
    plain_residual,
    residual_map,
    sobel_magnitude,
    ssim_structure_residual,
)
from suite.scoring import gaussian_blur, topk_mean


def _textures(n: int, size: int = 64, seed: int = 0, low: float = 0.6, spread: float = 0.15) -> torch.Tensor:
    """Smooth random colour textures in [low, low + spread] (bilinear upsampling of 8x8 noise)."""
    coarse = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    return low + spread * F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


@pytest.mark.parametrize("kind", list(RESIDUALS))
def test_every_map_is_n1hw_and_zero_for_a_perfect_reconstruction(kind):
    images = _textures(3, size=20)
    out = residual_map(kind, images, images)
    assert out.shape == (3, 1, 20, 20)
    assert float(out.abs().max()) < 1e-6
    changed = images.clone()
    changed[:, :, 8:12, 8:12] = 0.1
    assert float(residual_map(kind, changed, images)[:, :, 8:12, 8:12].max()) > 0.01


@pytest.mark.parametrize("kind", OFFSET_INVARIANT)
def test_offset_invariant_maps_ignore_a_per_image_offset(kind):
    recon = _textures(4, size=24, seed=1, low=0.3)
    offsets = torch.tensor([-0.08, -0.02, 0.05, 0.1]).view(-1, 1, 1, 1)
    assert float(residual_map(kind, recon + offsets, recon).max()) < 1e-5
    assert float(plain_residual(recon + offsets, recon).min()) > 0.019  # the reference does see it


def test_median_centred_residual_follows_its_formula_per_channel():
    image, recon = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(2)).split(1)
    image = image.repeat(2, 1, 1, 1) + torch.tensor([0.0, 0.3]).view(-1, 1, 1, 1)
    recon = recon.repeat(2, 1, 1, 1)
    d = (image - recon).numpy()
    centred = np.abs(d - np.median(d.reshape(2, 3, -1), axis=2)[..., None, None])  # 25 pixels: a unique median
    assert np.allclose(median_centred_residual(image, recon).numpy(), centred.mean(axis=1, keepdims=True), atol=1e-6)
    assert np.allclose(median_centred_residual(image, recon, reduce="max").numpy(), centred.max(axis=1, keepdims=True),
                       atol=1e-6)
    # per channel: an offset on one channel only is removed too
    tinted = recon.clone()
    tinted[:, 0] += 0.1
    assert float(median_centred_residual(tinted, recon).max()) < 1e-6


def test_gain_offset_fit_recovers_gain_and_offset():
    recon = _textures(3, size=16, seed=3, low=0.2, spread=0.6)
    gains, offsets = torch.tensor([0.92, 1.0, 1.08]), torch.tensor([0.0, 0.05, -0.04])
    image = recon * gains.view(-1, 1, 1, 1) + offsets.view(-1, 1, 1, 1)
    a, b = fit_gain_offset(image, recon)
    assert torch.allclose(a, gains, atol=1e-5) and torch.allclose(b, offsets, atol=1e-5)
    assert float(gain_offset_residual(image, recon).max()) < 1e-5
    assert float(median_centred_residual(image, recon).max()) > 1e-3  # a gain is not an offset
    flat = torch.full((1, 3, 8, 8), 0.4)
    a, b = fit_gain_offset(flat + 0.1, flat)
    assert float(a) == 1.0 and float(b) == pytest.approx(0.1)


def test_gradient_residual_sees_a_new_edge_and_uses_sobel():
    step = torch.zeros(1, 1, 9, 9)
    step[..., 5:] = 1.0
    magnitude = sobel_magnitude(step)
    assert torch.allclose(magnitude[0, 0, :, 4], torch.full((9,), 0.5))  # |[1, 2, 1] x [1, 0, -1]| / 8 = 1/2
    assert torch.allclose(magnitude[0, 0, :, 5], torch.full((9,), 0.5))
    assert float(magnitude[..., :3].abs().max()) == 0.0 and float(magnitude[..., 7:].abs().max()) == 0.0
    flat = torch.zeros_like(step)
    assert torch.allclose(gradient_residual(step, flat), magnitude)


def test_ssim_structure_residual_sees_structure_not_offset():
    recon = _textures(2, size=32, seed=4)
    image = recon + 0.1
    image[:, :, 10:20, 10:20] = 0.5 + 0.3 * (torch.arange(10) % 2).float()  # stripes where the texture was smooth
    out = ssim_structure_residual(image, recon)
    assert float(out[:, :, 12:18, 12:18].min()) > 0.3
    assert float(out[:, :, :, 26:].max()) < 1e-5  # far from the stripes: offset only
    assert float(out.min()) >= 0.0 and float(out.max()) <= 2.0


def test_unknown_kind_and_bad_shapes_raise():
    with pytest.raises(ValueError, match="valid"):
        residual_map("l2", torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="shapes differ"):
        median_centred_residual(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))
    with pytest.raises(ValueError, match="reduction"):
        plain_residual(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), reduce="sum")


# ----------------------------------------------------------------------------------------------
# oracle: test normals 8 % darker than train, anomalies at the train level with a local defect


def _oracle(n_normal: int = 20, n_anomalous: int = 20, size: int = 64):
    """``(images, recons, labels)``: the reconstruction is the clean image at the train level (a perfect
    model of train normals that also removes defects); normals are 8 % darker, anomalies carry a
    10x10 defect (+-0.04) at the train level."""
    clean = _textures(n_normal + n_anomalous, size=size, seed=5)
    images = clean.clone()
    images[:n_normal] *= 0.92
    rng = np.random.default_rng(0)
    for i in range(n_normal, n_normal + n_anomalous):
        y, x = rng.integers(4, size - 14, size=2)
        images[i, :, y : y + 10, x : x + 10] += 0.04 if rng.random() < 0.5 else -0.04
    labels = np.r_[np.zeros(n_normal), np.ones(n_anomalous)].astype(int)
    return images, clean, labels


def _image_scores(maps: torch.Tensor) -> np.ndarray:
    # as the suite scores: Gaussian smoothing, then the mean of the top 1 % of pixels
    return topk_mean(gaussian_blur(maps, 2.0), 0.01).numpy()


def test_oracle_offset_invariant_scoring_ranks_perfectly_and_the_plain_residual_does_not():
    images, recons, labels = _oracle()
    plain = auroc(labels, _image_scores(plain_residual(images, recons)))
    assert plain <= 0.5  # the plain residual ranks by brightness: darker normals score higher
    for kind in ("median_centred", "gain_offset"):
        assert auroc(labels, _image_scores(residual_map(kind, images, recons))) == 1.0, kind


def test_oracle_structure_residuals_rank_perfectly_too():
    images, recons, labels = _oracle()
    for kind in ("gradient", "ssim_structure"):
        assert auroc(labels, _image_scores(residual_map(kind, images, recons))) == 1.0, kind
