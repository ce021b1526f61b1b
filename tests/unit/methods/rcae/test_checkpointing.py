"""Activation checkpointing (RcAE recursion levels, CRD blocks) gives the plain path's loss and
gradients. Unit tests run at 128 px (RcAE) and 64 px (CRD), batch 2, the paper's widths: 512 px
takes about a minute per pass on a loaded 2-core CPU; ``benchmarks/memory_peak.py`` checks 512 px."""

import copy

import pytest
import torch

from suite.methods.rcae.crd import CRD
from suite.methods.rcae.losses import all_depths_loss, detection_loss, reconstruction_loss
from suite.methods.rcae.model import RcAE
from suite.models.ops import set_activation_checkpointing

TOL = 1e-5


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _rel(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def _compare(model, loss_of):
    plain, ckpt = model, copy.deepcopy(model)
    assert set_activation_checkpointing(ckpt, True) == 1
    losses = []
    for net in (plain, ckpt):
        loss = loss_of(net)
        loss.backward()
        losses.append(loss.detach())
    assert _rel(losses[1], losses[0]) <= TOL
    g_plain, g_ckpt = _grads(plain), _grads(ckpt)
    assert g_plain.keys() == g_ckpt.keys() and len(g_plain) == len(list(model.parameters()))
    worst = max(_rel(g_ckpt[k], g_plain[k]) for k in g_plain)
    assert worst <= TOL, worst
    return ckpt


@pytest.mark.parametrize("depth_mode", ["sampled", "all"])
def test_rcae_checkpointed_levels_give_the_same_loss_and_gradients(depth_mode):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 128, 128)
    model = RcAE(width=16, depth=5)

    def loss_of(net):
        if depth_mode == "all":
            return all_depths_loss(x, net(x, "all"))
        return reconstruction_loss(x, net(x, 4))

    _compare(model, loss_of)


def test_rcae_checkpointing_really_recomputes_and_is_off_without_grad():
    """A broken switch (checkpoint never applied) would still match the gradients above: count
    the encoder's forward calls (recomputed in backward only when checkpointed)."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32)
    model = RcAE(width=8, depth=2)
    calls = []
    block = model.encoders[0].block
    forward = block.forward

    def counted(*args):
        calls.append(1)
        return forward(*args)

    block.forward = counted  # an instance attribute: checkpoint's recompute calls it too
    reconstruction_loss(x, model(x, 2)).backward()
    plain = len(calls)
    calls.clear()
    set_activation_checkpointing(model, True)
    reconstruction_loss(x, model(x, 2)).backward()
    assert len(calls) == 2 * plain
    calls.clear()
    with torch.no_grad():
        model(x, 2)
    assert len(calls) == plain


def test_crd_checkpointed_blocks_give_the_same_loss_and_gradients():
    torch.manual_seed(0)
    stack = torch.rand(2, 5, 6, 64, 64)
    mask = (torch.rand(2, 1, 64, 64) > 0.8).float()
    _compare(CRD(in_ch=6, width=8), lambda net: detection_loss(net(stack), mask))
