"""Training losses of the three RcAE stages and the per-batch recursion-depth sampler.

∇ is ``suite.models.ops.image_gradient`` (forward differences, kernel [-1, 1] along x and y, zero
at the last column/row). L1(a, b) = mean |a - b| and L2(a, b) = mean (a - b)^2, each averaged over
all elements of its own pair of tensors (so the gradient terms average over 2C channels).
"""

from __future__ import annotations

import random
from typing import Any

import torch

from suite.models.ops import image_gradient


def _check_same_shape(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name}: shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")


def reconstruction_loss(target: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """Stage 1 (paper Eq. 5):  L1(I, I_R) + L1(∇I, ∇I_R)."""
    _check_same_shape("reconstruction_loss", target, recon)
    intensity = (target - recon).abs().mean()
    edges = (image_gradient(target) - image_gradient(recon)).abs().mean()
    return intensity + edges


def detail_loss(target: torch.Tensor, recon: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """Stage 2 (paper Eq. 7):  L1(I_R + Res, I) + L1(∇(I_R + Res), ∇I)."""
    _check_same_shape("detail_loss", recon, residual)
    return reconstruction_loss(target, recon + residual)


def detection_loss(pred_map: torch.Tensor, pseudo_mask: torch.Tensor) -> torch.Tensor:
    """Stage 3 (paper Eq. 9, as mean squared errors):  L2(M_A, M_P) + L2(∇M_A, ∇M_P).

    ``pred_map`` M_A and ``pseudo_mask`` M_P must have the same shape, e.g. (B, 1, H, W).
    """
    _check_same_shape("detection_loss", pred_map, pseudo_mask)
    pseudo_mask = pseudo_mask.to(pred_map.dtype)
    intensity = (pred_map - pseudo_mask).square().mean()
    edges = (image_gradient(pred_map) - image_gradient(pseudo_mask)).square().mean()
    return intensity + edges


def sample_depth(max_depth: int, generator: Any = None, sampling: str = "uniform") -> int:
    """A recursion depth from {1, ..., max_depth} (stage 1 draws one per batch).

    ``sampling``: "uniform" (the paper: p(n) = 1 / N) or "linear" (p(n) = 2n / (N (N + 1)), so the
    deepest pass, the one scored, gets the most steps). ``generator`` may be a
    ``torch.Generator``, a ``random.Random``, a ``numpy.random.Generator`` or None (torch's global
    RNG); "linear" needs a torch generator or None.
    """
    if isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 1:
        raise ValueError(f"sample_depth: max_depth must be an integer >= 1, got {max_depth!r}")
    if sampling == "linear":
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError("sample_depth: linear sampling needs a torch.Generator")
        weights = torch.arange(1, max_depth + 1, dtype=torch.float64)
        return int(torch.multinomial(weights, 1, generator=generator).item()) + 1
    if sampling != "uniform":
        raise ValueError(f"sample_depth: sampling must be uniform or linear, got {sampling!r}")
    if generator is None or isinstance(generator, torch.Generator):
        return int(torch.randint(1, max_depth + 1, (1,), generator=generator).item())
    if isinstance(generator, random.Random):
        return generator.randint(1, max_depth)
    if hasattr(generator, "integers"):  # numpy.random.Generator
        return int(generator.integers(1, max_depth + 1))
    raise TypeError(f"sample_depth: unsupported generator type {type(generator).__name__}")


def all_depths_loss(target: torch.Tensor, recons: torch.Tensor) -> torch.Tensor:
    """Stage 1, every depth at once:  (1/N) sum_n [L1(I, I_R^n) + L1(∇I, ∇I_R^n)].

    ``recons`` is the (B, N, C, H, W) stack of ``RcAE.reconstruct_all``; ``target`` is (B, C, H, W).
    """
    if recons.dim() != 5 or recons.shape[:1] + recons.shape[2:] != target.shape:
        raise ValueError(
            f"all_depths_loss: recons {tuple(recons.shape)} must be (B, N, C, H, W) of {tuple(target.shape)}")
    # Every depth's pair has the same size, so one mean over the stack is the mean of the per-depth losses.
    return reconstruction_loss(target.unsqueeze(1).expand_as(recons), recons)
