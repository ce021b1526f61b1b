import math

import pytest
import torch

from suite.discrepancy import (
    discrepancy_map,
    gms_map,
    image_score,
    mean_filter,
    mse_map,
    ssim_map,
)

C1, C2 = 0.01**2, 0.03**2


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_mse_map_hand_computed():
    x = torch.zeros(1, 3, 1, 2)
    y = torch.tensor([[[[1.0, 0.0]], [[1.0, 0.0]], [[1.0, 3.0]]]])  # (1, 3, 1, 2)
    out = mse_map(x, y)
    assert out.shape == (1, 1, 1, 2)
    assert torch.allclose(out, torch.tensor([[[[1.0, 3.0]]]]))  # (1+1+1)/3 and (0+0+9)/3


def test_ssim_map_of_identical_images_is_zero():
    x = _rand(2, 3, 24, 20)
    out = ssim_map(x, x.clone())
    assert out.shape == (2, 1, 24, 20)
    assert out.abs().max() < 1e-5


def test_ssim_map_constant_images_closed_form():
    # Constant images have zero local variance/covariance, so the contrast-structure factor is
    # C2 / C2 = 1 and SSIM = (2ab + C1) / (a^2 + b^2 + C1) at every pixel (replicate padding).
    a = torch.tensor([0.3, 0.5, 0.9]).view(1, 3, 1, 1).expand(1, 3, 16, 16)
    b = torch.tensor([0.7, 0.5, 0.1]).view(1, 3, 1, 1).expand(1, 3, 16, 16)
    per_channel = [1 - (2 * p * q + C1) / (p * p + q * q + C1) for p, q in [(0.3, 0.7), (0.5, 0.5), (0.9, 0.1)]]
    expected = sum(per_channel) / 3
    out = ssim_map(a.contiguous(), b.contiguous())
    assert torch.allclose(out, torch.full_like(out, expected), atol=1e-5)
    assert expected > 0.3  # the case is not trivially near zero


def test_ssim_map_matches_explicit_window_sums_at_an_interior_pixel():
    x, y = _rand(1, 1, 21, 21, seed=7).double(), _rand(1, 1, 21, 21, seed=8).double()
    coords = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    w = torch.outer(g, g) / torch.outer(g, g).sum()
    px, py = x[0, 0, 5:16, 5:16], y[0, 0, 5:16, 5:16]  # the window centred on pixel (10, 10)
    mx, my = (w * px).sum(), (w * py).sum()
    vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
    cxy = (w * (px - mx) * (py - my)).sum()
    ssim = (2 * mx * my + C1) * (2 * cxy + C2) / ((mx**2 + my**2 + C1) * (vx + vy + C2))
    out = ssim_map(x.float(), y.float())
    assert abs(float(out[0, 0, 10, 10]) - float(1 - ssim)) < 1e-5


def test_ssim_map_flags_a_local_change_only_locally():
    x = _rand(1, 3, 32, 32, seed=1)
    y = x.clone()
    y[:, :, 14:18, 14:18] = 1.0 - y[:, :, 14:18, 14:18]
    out = ssim_map(x, y)
    assert out[0, 0, 16, 16] > 0.2
    assert out[0, 0, :4, :4].abs().max() < 1e-5  # further than the window's half-width (5)


def test_gms_map_of_identical_images_is_zero():
    x = _rand(2, 3, 12, 12)
    assert gms_map(x, x.clone()).abs().max() < 1e-6


def test_gms_map_step_edge_against_flat_image_by_hand():
    c = 0.0026
    step = torch.zeros(1, 3, 8, 8)
    step[..., 4:] = 1.0  # columns 0-3 are 0, columns 4-7 are 1, in every channel
    flat = torch.zeros(1, 3, 8, 8)
    out = gms_map(step, flat, c=c)
    # Prewitt with the 1/3 normalisation: at columns 3 and 4 one neighbour is 0 and the other 1
    # in each of the 3 rows, so |g_x| = 3 * 1 / 3 = 1, g_y = 0; the flat image has m = 0 everywhere.
    # Hence GMS = (2 * 1 * 0 + c) / (1 + 0 + c) and map = 1 - c / (1 + c) = 1 / (1 + c) there;
    # elsewhere both magnitudes are 0 and GMS = c / c = 1 (map 0).
    expected = torch.zeros(1, 1, 8, 8)
    expected[..., 3:5] = 1 / (1 + c)
    assert torch.allclose(out, expected, atol=1e-6)

    half_step = step * 0.5  # magnitude 0.5 at the same pixels
    out2 = gms_map(step, half_step, c=c)
    assert torch.allclose(out2[0, 0, 2, 3], torch.tensor(1 - (2 * 1 * 0.5 + c) / (1 + 0.25 + c)), atol=1e-6)


def test_mean_filter_preserves_constant_and_identity_cases():
    const = torch.full((2, 1, 9, 7), 0.37)
    assert torch.allclose(mean_filter(const, 5, 3), const, atol=1e-6)
    x = _rand(1, 1, 6, 6)
    assert torch.equal(mean_filter(x, 5, 0), x)
    assert torch.equal(mean_filter(x, 1, 4), x)
    with pytest.raises(ValueError, match="size"):
        mean_filter(x, 0, 1)


def _box_brute_force(values: torch.Tensor, size: int) -> torch.Tensor:
    """One box filter by explicit loops; replicate padding = clamping the window indices."""
    height, width = values.shape[-2:]
    out = torch.empty_like(values)
    lo, hi = (size - 1) // 2, size // 2
    for i in range(height):
        for j in range(width):
            total = 0.0
            for di in range(-lo, hi + 1):
                for dj in range(-lo, hi + 1):
                    ii = min(max(i + di, 0), height - 1)
                    jj = min(max(j + dj, 0), width - 1)
                    total += float(values[0, 0, ii, jj])
            out[0, 0, i, j] = total / size**2
    return out


@pytest.mark.parametrize("size,repeats", [(3, 1), (3, 2), (4, 1)])
def test_mean_filter_matches_brute_force(size, repeats):
    x = _rand(1, 1, 7, 6, seed=3)
    expected = x
    for _ in range(repeats):
        expected = _box_brute_force(expected, size)
    assert torch.allclose(mean_filter(x, size, repeats), expected, atol=1e-6)


def test_discrepancy_map_dispatch_and_errors():
    x, y = _rand(1, 3, 16, 16, seed=4), _rand(1, 3, 16, 16, seed=5)
    assert torch.equal(discrepancy_map(x, y, "mse"), mse_map(x, y))
    assert torch.equal(discrepancy_map(x, y, "ssim"), ssim_map(x, y))
    assert torch.equal(discrepancy_map(x, y, "gms"), gms_map(x, y))
    with pytest.raises(ValueError, match="unknown discrepancy kind 'l1'"):
        discrepancy_map(x, y, "l1")
    with pytest.raises(ValueError, match="shapes differ"):
        mse_map(x, y[..., :8])


def test_image_score_sum_and_max():
    values = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[0.0, -1.0], [5.0, 0.5]]]])
    assert torch.equal(image_score(values, "sum"), torch.tensor([10.0, 4.5]))
    assert torch.equal(image_score(values, "max"), torch.tensor([4.0, 5.0]))
    with pytest.raises(ValueError, match="mean"):
        image_score(values, "mean")
