"""From per-pixel anomaly maps to smoothed maps and image scores. Pure torch, no training."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_kernel1d(sigma: float, size: int | None = None, truncate: float = 3.0) -> torch.Tensor:
    """Normalised 1-D Gaussian ``g[i] ∝ exp(-(i - c)² / (2σ²))`` summing to 1.

    ``size`` defaults to ``2 * max(1, ceil(truncate * sigma)) + 1`` taps (25 for sigma = 4).
    """
    if sigma <= 0:
        raise ValueError(f"gaussian sigma must be > 0, got {sigma}")
    if size is None:
        size = 2 * max(1, math.ceil(truncate * sigma)) + 1
    if size < 1:
        raise ValueError(f"gaussian kernel size must be >= 1, got {size}")
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    kernel = torch.exp(-(coords**2) / (2.0 * sigma**2))
    return (kernel / kernel.sum()).float()


PADDINGS = ("reflect", "replicate")


def gaussian_blur(
    maps: torch.Tensor, sigma: float, size: int | None = None, truncate: float = 3.0, padding: str = "reflect"
) -> torch.Tensor:
    """Separable Gaussian smoothing of every channel of (B, C, H, W) maps; same size out.

    Kernel ``gaussian_kernel1d(sigma, size, truncate)`` along rows, then columns. ``padding``:
    reflect (the suite's map smoothing; falls back to replicate when the map is smaller than the
    kernel's radius) or replicate (for methods whose paper pads that way). ``sigma <= 0`` returns the input unchanged.
    """
    if maps.dim() != 4:
        raise ValueError(f"gaussian_blur expects (B, C, H, W), got shape {tuple(maps.shape)}")
    if padding not in PADDINGS:
        raise ValueError(f"gaussian_blur padding {padding!r} is not one of {', '.join(PADDINGS)}")
    if sigma <= 0:
        return maps
    kernel = gaussian_kernel1d(sigma, size, truncate).to(maps.device, maps.dtype)
    n = kernel.numel()
    before, after = (n - 1) // 2, n // 2
    b, c, h, w = maps.shape
    x = maps.reshape(b * c, 1, h, w)
    mode = padding if padding == "replicate" or min(h, w) > after else "replicate"
    x = F.conv2d(F.pad(x, (before, after, 0, 0), mode=mode), kernel.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, before, after), mode=mode), kernel.view(1, 1, -1, 1))
    return x.reshape(b, c, h, w)


def topk_mean(maps: torch.Tensor, top_k: float) -> torch.Tensor:
    """Image score = mean of the k highest pixels of each map (B, ...) -> (B,).

    ``top_k`` < 1 is a fraction of the pixels (at least one pixel), >= 1 an absolute count.
    """
    flat = maps.reshape(maps.shape[0], -1)
    n = flat.shape[1]
    k = max(1, int(round(top_k * n))) if top_k < 1 else min(n, int(top_k))
    return flat.topk(k, dim=1).values.mean(dim=1)


class ResidualStandardizer:
    """Per-pixel standardisation of residual maps by statistics of normal images.

    z(x, y) = (r(x, y) - μ(x, y)) / (σ(x, y) + ε), with μ, σ the per-pixel mean and standard
    deviation of the residual maps of clean normal images. Normal images leave structured residuals
    (edges, fine texture) in the same places; dividing them out lets a defect stand out.
    """

    def __init__(self, eps: float = 1e-3):
        self.eps = eps
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def fit(self, residual_maps: torch.Tensor) -> "ResidualStandardizer":
        if residual_maps.shape[0] < 2:
            raise ValueError("standardisation needs residual maps of at least 2 normal images")
        self.mean = residual_maps.mean(dim=0, keepdim=True)
        self.std = residual_maps.std(dim=0, keepdim=True)
        return self

    def __call__(self, maps: torch.Tensor) -> torch.Tensor:
        if self.mean is None or self.std is None:
            raise RuntimeError("ResidualStandardizer used before fit()")
        # A floor on σ relative to its typical value keeps flat regions from exploding.
        floor = self.std.mean() * 0.1 + self.eps
        return (maps - self.mean.to(maps.device)) / (self.std.to(maps.device).clamp_min(0) + floor)
