import pytest
import math
import torch

from suite.scoring import ResidualStandardizer, gaussian_blur, gaussian_kernel1d, topk_mean


def test_topk_mean_fraction_and_count():
    maps = torch.arange(100, dtype=torch.float32).reshape(1, 1, 10, 10)
    assert topk_mean(maps, 0.03).item() == (99 + 98 + 97) / 3
    assert topk_mean(maps, 2).item() == (99 + 98) / 2
    assert topk_mean(maps, 1e-9).item() == 99  # at least one pixel


def test_gaussian_blur_keeps_constants_and_mass():
    const = torch.full((2, 1, 16, 16), 3.0)
    assert torch.allclose(gaussian_blur(const, 2.0), const, atol=1e-5)
    assert torch.allclose(gaussian_kernel1d(1.5).sum(), torch.tensor(1.0))
    spike = torch.zeros(1, 1, 21, 21)
    spike[0, 0, 10, 10] = 1
    out = gaussian_blur(spike, 1.0)
    assert abs(out.sum().item() - 1) < 1e-5 and out[0, 0, 10, 10] < 1
    assert torch.equal(gaussian_blur(spike, 0), spike)


def test_standardizer_divides_out_normal_structure():
    base = torch.zeros(8, 1, 4, 4)
    base[:, 0, 0, 0] = torch.linspace(1.0, 2.0, 8)  # a noisy "edge" pixel in normals
    std = ResidualStandardizer().fit(base)
    test = torch.zeros(1, 1, 4, 4)
    test[0, 0, 0, 0] = 1.5  # typical for the edge pixel
    test[0, 0, 3, 3] = 1.5  # same residual where normals are flat: a defect
    z = std(test)
    assert z[0, 0, 3, 3] > 5 * abs(z[0, 0, 0, 0])


def test_gaussian_blur_kernel_and_constant():
    k = gaussian_kernel1d(4.0)
    assert k.numel() == 25 and math.isclose(float(k.sum()), 1.0, rel_tol=1e-6)
    assert torch.argmax(k) == 12
    const = torch.full((1, 1, 10, 10), 2.5)
    assert torch.allclose(gaussian_blur(const, 4.0), const, atol=1e-5)
    impulse = torch.zeros(1, 1, 41, 41)
    impulse[0, 0, 20, 20] = 1.0
    blurred = gaussian_blur(impulse, 2.0)
    assert math.isclose(float(blurred.sum()), 1.0, rel_tol=1e-5)
    assert torch.allclose(blurred, blurred.transpose(-1, -2), atol=1e-7)


def test_gaussian_blur_padding_changes_only_the_border():
    ramp = torch.arange(16.0).view(1, 1, 1, 16).expand(1, 1, 16, 16).contiguous()
    reflect, replicate = gaussian_blur(ramp, 2.0), gaussian_blur(ramp, 2.0, padding="replicate")
    assert torch.allclose(reflect[..., 6:10], replicate[..., 6:10], atol=1e-5)
    assert not torch.allclose(reflect[..., 0], replicate[..., 0])
    with pytest.raises(ValueError, match="padding"):
        gaussian_blur(ramp, 2.0, padding="zeros")
