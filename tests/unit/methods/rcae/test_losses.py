import random

import numpy as np
import pytest
import torch

from suite.methods.rcae.losses import detail_loss, detection_loss, reconstruction_loss, sample_depth
from suite.methods.rcae.crd import CRD
from suite.methods.rcae.dpn import DPN
from suite.methods.rcae.model import RcAE

# I = [[0, 1], [2, 3]]:  ∇_x I = [[1, 0], [1, 0]],  ∇_y I = [[2, 2], [0, 0]]
IMAGE = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])


def test_reconstruction_loss_hand_computed():
    # |I - 0| mean = (0 + 1 + 2 + 3) / 4 = 1.5;  |∇I - 0| mean = (1 + 1 + 2 + 2) / 8 = 0.75
    loss = reconstruction_loss(IMAGE, torch.zeros_like(IMAGE))
    assert loss.item() == pytest.approx(2.25)
    assert reconstruction_loss(IMAGE, IMAGE.clone()).item() == 0.0


def test_detail_loss_hand_computed():
    recon = torch.zeros_like(IMAGE)
    residual = torch.tensor([[[[0.0, 1.0], [2.0, 2.0]]]])
    # I_D = [[0, 1], [2, 2]]: |I_D - I| mean = 1 / 4 = 0.25
    # ∇_x I_D = [[1, 0], [0, 0]] (vs [[1, 0], [1, 0]]), ∇_y I_D = [[2, 1], [0, 0]] (vs [[2, 2], [0, 0]])
    # |∇I_D - ∇I| mean = (1 + 1) / 8 = 0.25
    assert detail_loss(IMAGE, recon, residual).item() == pytest.approx(0.5)
    # only the sum recon + residual matters
    assert detail_loss(IMAGE, residual, recon).item() == pytest.approx(0.5)


def test_detection_loss_hand_computed():
    pred = torch.tensor([[[[0.5, 0.0], [0.0, 0.0]]]])
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    # (0.5 - 1)^2 / 4 = 0.0625;  ∇_x, ∇_y of pred = -0.5 and of mask = -1 at (0, 0):
    # (0.25 + 0.25) / 8 = 0.0625
    assert detection_loss(pred, mask).item() == pytest.approx(0.125)
    assert detection_loss(pred, mask.bool()).item() == pytest.approx(0.125)


def test_losses_reject_shape_mismatch():
    with pytest.raises(ValueError, match="reconstruction_loss: shapes differ"):
        reconstruction_loss(IMAGE, torch.zeros(1, 1, 2, 3))
    with pytest.raises(ValueError, match="detection_loss"):
        detection_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2))


def test_sample_depth_uniform_range_and_reproducible():
    draws = [sample_depth(5, torch.Generator().manual_seed(s)) for s in range(200)]
    assert set(draws) == {1, 2, 3, 4, 5}
    gen_a, gen_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert [sample_depth(5, gen_a) for _ in range(20)] == [sample_depth(5, gen_b) for _ in range(20)]
    assert sample_depth(1, torch.Generator()) == 1
    assert 1 <= sample_depth(3, random.Random(0)) <= 3
    assert 1 <= sample_depth(3, np.random.default_rng(0)) <= 3
    with pytest.raises(ValueError, match="max_depth"):
        sample_depth(0, None)


def test_frozen_rcae_gets_no_gradient_while_dpn_trains():
    torch.manual_seed(0)
    rcae, dpn = RcAE(width=4, depth=2).requires_grad_(False), DPN(width=4)
    image = torch.rand(2, 3, 16, 16)
    recon = rcae(image, depth=2)
    _, residual = dpn.detail(recon, image)
    detail_loss(image, recon, residual).backward()
    assert all(p.grad is None for p in rcae.parameters())
    assert all(p.grad is not None for p in dpn.parameters())
    assert any(p.grad.abs().sum() > 0 for p in dpn.parameters())


def test_stage3_trains_only_crd():
    torch.manual_seed(0)
    rcae = RcAE(width=4, depth=2).requires_grad_(False)
    dpn = DPN(width=4).requires_grad_(False)
    crd = CRD(width=4, levels=2)
    image = torch.rand(2, 3, 16, 16)
    details, _ = dpn.detail(rcae.reconstruct_all(image), image)
    pred = crd(CRD.make_input(details, image))
    mask = (torch.rand(2, 1, 16, 16) > 0.8).float()
    detection_loss(pred, mask).backward()
    assert all(p.grad is None for p in (*rcae.parameters(), *dpn.parameters()))
    assert all(p.grad is not None for p in crd.parameters())


def test_linear_depth_sampling_is_proportional_to_depth():
    from suite.methods.rcae.losses import sample_depth

    gen = torch.Generator().manual_seed(0)
    draws = torch.tensor([sample_depth(4, gen, "linear") for _ in range(4000)])
    freq = torch.stack([(draws == n).float().mean() for n in range(1, 5)])
    assert torch.allclose(freq, torch.tensor([0.1, 0.2, 0.3, 0.4]), atol=0.025)
    uniform = torch.tensor([sample_depth(4, torch.Generator().manual_seed(0), "uniform") for _ in range(1)])
    assert 1 <= uniform.item() <= 4
    with pytest.raises(ValueError, match="uniform or linear"):
        sample_depth(4, gen, "square")


def test_all_depths_loss_is_the_mean_of_the_per_depth_losses():
    from suite.methods.rcae.losses import all_depths_loss

    gen = torch.Generator().manual_seed(1)
    target = torch.rand(2, 3, 8, 8, generator=gen)
    recons = torch.rand(2, 4, 3, 8, 8, generator=gen)
    expected = sum(reconstruction_loss(target, recons[:, n]) for n in range(4)) / 4
    assert torch.allclose(all_depths_loss(target, recons), expected, atol=1e-6)
    with pytest.raises(ValueError, match="all_depths_loss"):
        all_depths_loss(target, recons[:, 0])
