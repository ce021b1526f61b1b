"""From per-pixel anomaly maps to smoothed maps and image scores. Pure torch, no training."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_kernel1d(sigma: float, truncate: float = 3.0) -> torch.Tensor:
    """Normalised 1-D Gaussian with radius ceil(truncate * sigma): g(x) ∝ exp(-x² / 2σ²)."""
    radius = max(1, int(math.ceil(truncate * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian smoothing of (B, C, H, W) maps with reflect padding; sigma <= 0 is identity."""
    if sigma <= 0:
        return maps
    kernel = gaussian_kernel1d(sigma).to(maps.device, maps.dtype)
    radius = kernel.numel() // 2
    b, c, h, w = maps.shape
    x = maps.reshape(b * c, 1, h, w)
    mode = "reflect" if min(h, w) > radius else "replicate"
    x = F.pad(x, (radius, radius, 0, 0), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    x = F.pad(x, (0, 0, radius, radius), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
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
