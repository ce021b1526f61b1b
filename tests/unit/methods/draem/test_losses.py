"""DRAEM losses: focal loss against a per-pixel formula, SSIM / reconstruction loss."""

import math

import torch

from suite.methods.draem.losses import focal_loss, reconstruction_loss, ssim_loss


def brute_force_focal(logits: torch.Tensor, target: torch.Tensor, gamma: float) -> float:
    total, count = 0.0, 0
    b, k, h, w = logits.shape
    for n in range(b):
        for i in range(h):
            for j in range(w):
                z = [float(logits[n, c, i, j]) for c in range(k)]
                m = max(z)
                denom = sum(math.exp(v - m) for v in z)
                p = math.exp(z[int(target[n, 0, i, j])] - m) / denom
                total += -((1 - p) ** gamma) * math.log(p)
                count += 1
    return total / count


def test_focal_loss_matches_the_per_pixel_formula():
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(2, 2, 5, 6, generator=g)
    target = (torch.rand(2, 1, 5, 6, generator=g) > 0.6).float()
    for gamma in (0.0, 1.0, 2.0, 3.5):
        got = float(focal_loss(logits, target, gamma))
        assert abs(got - brute_force_focal(logits, target, gamma)) < 1e-5, gamma


def test_focal_loss_with_gamma_zero_is_cross_entropy():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 2, 4, 4, generator=g)
    target = (torch.rand(3, 1, 4, 4, generator=g) > 0.5).float()
    ce = torch.nn.functional.cross_entropy(logits, target[:, 0].long())
    torch.testing.assert_close(focal_loss(logits, target, 0.0), ce)


def test_focal_loss_down_weights_easy_pixels():
    target = torch.zeros(1, 1, 1, 2)
    logits = torch.tensor([[[[4.0, 0.5]], [[0.0, 0.0]]]])  # pixel 0 easy, pixel 1 hard
    per_pixel = [brute_force_focal(logits[..., j : j + 1], target[..., j : j + 1], 2.0) for j in range(2)]
    ce = [brute_force_focal(logits[..., j : j + 1], target[..., j : j + 1], 0.0) for j in range(2)]
    assert per_pixel[0] / ce[0] < per_pixel[1] / ce[1]


def test_focal_loss_is_small_for_confident_right_answers_and_large_for_wrong_ones():
    target = (torch.arange(16).view(1, 1, 4, 4) % 2).float()
    right = torch.cat([(1 - target) * 10, target * 10], dim=1)
    wrong = torch.cat([target * 10, (1 - target) * 10], dim=1)
    assert focal_loss(right, target) < 1e-6
    assert focal_loss(wrong, target) > 5


def test_ssim_loss_is_zero_for_identical_images_and_positive_otherwise():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 3, 32, 32, generator=g)
    assert abs(float(ssim_loss(x, x))) < 1e-5
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert float(ssim_loss(x, y)) > 0.05
    assert float(ssim_loss(x, y, window=7)) > 0.05


def test_reconstruction_loss_is_mse_plus_ssim_loss():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 16, 16, generator=g)
    y = torch.rand(2, 3, 16, 16, generator=g)
    expected = ((x - y) ** 2).mean() + ssim_loss(x, y)
    torch.testing.assert_close(reconstruction_loss(x, y), expected)
    assert abs(float(reconstruction_loss(x, x))) < 1e-5


def test_losses_are_differentiable():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(1, 3, 16, 16, generator=g, requires_grad=True)
    logits = torch.randn(1, 2, 16, 16, generator=g, requires_grad=True)
    loss = reconstruction_loss(x, torch.rand(1, 3, 16, 16, generator=g)) + focal_loss(logits, torch.ones(1, 1, 16, 16))
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
