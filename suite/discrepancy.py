"""Pixel discrepancy maps between an image and its reconstruction, and their smoothing.

Reconstruction-based methods score ``d(x, f(x))`` (mean squared error, SSIM or gradient-magnitude
similarity), optionally smoothed by ``n`` applications of an ``s x s`` mean filter, then reduced to
an image score by sum or max. Gaussian smoothing lives in ``suite.scoring``.

All maps have shape (B, 1, H, W) for inputs of shape (B, C, H, W); images are expected in [0, 1]
(the SSIM and GMS stabilising constants assume that range). Every filter here keeps the spatial
size ("same" output) by replicate padding: it is defined for any map size (reflect padding is not,
for maps smaller than the kernel) and leaves constant images constant.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from suite.scoring import gaussian_kernel1d

DISCREPANCY_KINDS = ("mse", "ssim", "gms")
SCORE_REDUCTIONS = ("sum", "max")


def _check_pair(x: torch.Tensor, y: torch.Tensor, what: str) -> None:
    if x.dim() != 4 or y.dim() != 4:
        raise ValueError(f"{what}: expected two (B, C, H, W) tensors, got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape != y.shape:
        raise ValueError(f"{what}: shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")


def _check_map(values: torch.Tensor, what: str) -> None:
    if values.dim() != 4:
        raise ValueError(f"{what}: expected a (B, C, H, W) map, got shape {tuple(values.shape)}")


def _pad_same(x: torch.Tensor, size_h: int, size_w: int) -> torch.Tensor:
    """Replicate-pad so that a valid ``size_h x size_w`` correlation returns the input size.

    For an even size the extra row/column goes to the bottom/right.
    """
    return F.pad(x, ((size_w - 1) // 2, size_w // 2, (size_h - 1) // 2, size_h // 2), mode="replicate")


def _depthwise(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Correlate every channel of ``x`` with the 2D ``kernel`` (same size, replicate padding)."""
    channels = x.shape[1]
    kh, kw = kernel.shape
    weight = kernel.to(dtype=x.dtype, device=x.device).expand(channels, 1, kh, kw)
    return F.conv2d(_pad_same(x, kh, kw), weight, groups=channels)


def mse_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel squared error averaged over channels: ``m[b, 0, i, j] = mean_c (x - y)^2``."""
    _check_pair(x, y, "mse_map")
    return ((x - y) ** 2).mean(dim=1, keepdim=True)


def ssim_map(
    x: torch.Tensor,
    y: torch.Tensor,
    window: int = 11,
    sigma: float = 1.5,
    C1: float = 0.01**2,
    C2: float = 0.03**2,
) -> torch.Tensor:
    """Per-pixel structural dissimilarity ``1 - SSIM``, averaged over channels, shape (B, 1, H, W).

    With local statistics taken under a normalised Gaussian window ``w`` (``window`` taps, std
    ``sigma``; same-size output, replicate padding), per channel:

        mu_x = w * x,  sigma_x^2 = w * x^2 - mu_x^2,  sigma_xy = w * (x y) - mu_x mu_y
        SSIM = (2 mu_x mu_y + C1) (2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1) (sigma_x^2 + sigma_y^2 + C2))

    ``C1 = (0.01 L)^2`` and ``C2 = (0.03 L)^2`` with dynamic range ``L = 1``. The map is 0 where the
    images agree and lies in [0, 2]. For constant images ``a`` and ``b`` the variances vanish and
    ``SSIM = (2ab + C1) / (a^2 + b^2 + C1)``.
    """
    _check_pair(x, y, "ssim_map")
    k = gaussian_kernel1d(sigma, window)

    def local_mean(t: torch.Tensor) -> torch.Tensor:
        # The 2D Gaussian window is separable: rows then columns.
        return _depthwise(_depthwise(t, k.view(1, -1)), k.view(-1, 1))

    # (Co)variances are shift invariant; computing them on per-image, per-channel centred values
    # avoids the float32 cancellation of E[x^2] - mu^2, which is not small against C2.
    shift_x = x.mean(dim=(2, 3), keepdim=True)
    shift_y = y.mean(dim=(2, 3), keepdim=True)
    xc, yc = x - shift_x, y - shift_y
    mu_xc, mu_yc = local_mean(xc), local_mean(yc)
    var_x = local_mean(xc * xc) - mu_xc**2
    var_y = local_mean(yc * yc) - mu_yc**2
    cov = local_mean(xc * yc) - mu_xc * mu_yc
    mu_x, mu_y = mu_xc + shift_x, mu_yc + shift_y
    ssim = ((2 * mu_x * mu_y + C1) * (2 * cov + C2)) / ((mu_x**2 + mu_y**2 + C1) * (var_x + var_y + C2))
    return (1.0 - ssim).mean(dim=1, keepdim=True)


def _prewitt_magnitude(gray: torch.Tensor) -> torch.Tensor:
    # Prewitt kernels with the 1/3 normalisation of the GMSD paper (Xue et al. 2014).
    hx = torch.tensor([[1.0, 0.0, -1.0], [1.0, 0.0, -1.0], [1.0, 0.0, -1.0]]) / 3.0
    gx = _depthwise(gray, hx)
    gy = _depthwise(gray, hx.t())
    return torch.sqrt(gx**2 + gy**2)


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """Grayscale as the plain mean over channels, shape (B, 1, H, W)."""
    return x.mean(dim=1, keepdim=True)


def gms_map(x: torch.Tensor, y: torch.Tensor, c: float = 0.0026) -> torch.Tensor:
    """Gradient-magnitude dissimilarity ``1 - GMS`` on grayscale images, shape (B, 1, H, W).

    Grayscale ``g = mean_c x``; Prewitt gradients ``g_x = g * h_x``, ``g_y = g * h_y`` with
    ``h_x = [[1, 0, -1]] * 3 rows / 3`` and ``h_y = h_x^T`` (same size, replicate padding);
    magnitude ``m = sqrt(g_x^2 + g_y^2)``; then

        GMS = (2 m_x m_y + c) / (m_x^2 + m_y^2 + c),   map = 1 - GMS  (in [0, 1)).

    ``c = 0.0026`` is the GMSD paper's 170 for 8-bit images rescaled to [0, 1] (170 / 255^2).
    Unlike GMSD, the images are not downsampled first.
    """
    _check_pair(x, y, "gms_map")
    m_x = _prewitt_magnitude(to_gray(x))
    m_y = _prewitt_magnitude(to_gray(y))
    gms = (2 * m_x * m_y + c) / (m_x**2 + m_y**2 + c)
    return 1.0 - gms


def mean_filter(values: torch.Tensor, size: int, repeats: int = 1) -> torch.Tensor:
    """Apply a ``size x size`` box filter (entries ``1 / size^2``) ``repeats`` times (a box filter
    iterated; approximates a Gaussian).

    Same-size output with replicate padding (for an even size the window reaches one pixel further
    to the bottom/right). ``repeats = 0`` or ``size = 1`` returns the input unchanged.
    """
    _check_map(values, "mean_filter")
    if size < 1:
        raise ValueError(f"mean_filter size must be >= 1, got {size}")
    if repeats < 0:
        raise ValueError(f"mean_filter repeats must be >= 0, got {repeats}")
    if size == 1 or repeats == 0:
        return values
    k = torch.full((size,), 1.0 / size)
    out = values
    for _ in range(repeats):
        out = _depthwise(out, k.view(1, -1))
        out = _depthwise(out, k.view(-1, 1))
    return out


def discrepancy_map(x: torch.Tensor, y: torch.Tensor, kind: str = "gms") -> torch.Tensor:
    """``mse_map``, ``ssim_map`` or ``gms_map`` (with their default constants) by name."""
    if kind == "mse":
        return mse_map(x, y)
    if kind == "ssim":
        return ssim_map(x, y)
    if kind == "gms":
        return gms_map(x, y)
    raise ValueError(f"unknown discrepancy kind {kind!r}; valid: {', '.join(DISCREPANCY_KINDS)}")


def image_score(values: torch.Tensor, how: str = "max") -> torch.Tensor:
    """Reduce a (B, C, H, W) map to one score per image, shape (B,): sum or max over all pixels."""
    _check_map(values, "image_score")
    flat = values.flatten(1)
    if how == "sum":
        return flat.sum(dim=1)
    if how == "max":
        return flat.amax(dim=1)
    raise ValueError(f"unknown image score reduction {how!r}; valid: {', '.join(SCORE_REDUCTIONS)}")
