"""Residual maps between an image and its reconstruction that ignore a global illumination change.

A reconstruction trained on normals reproduces the *train* illumination. When test images are
darker or brighter (an illumination change, not a defect), the plain residual ``|I - R|`` carries
that offset over every pixel, and top-k image scores then rank images by brightness. The maps
here remove what a global change explains before looking at the residual:

* ``median_centred_residual``: the signed residual minus its per-image median (an offset);
* ``gain_offset_residual``: the residual after a per-image least-squares fit ``I ≈ a R + b``
  (a gain and an offset);
* ``gradient_residual``: the difference of Sobel gradient magnitudes (structure; blind to offsets);
* ``ssim_structure_residual``: one minus SSIM's contrast-structure term (blind to offsets).

Pure torch. Every function takes ``image`` and ``recon`` of shape (N, C, H, W) (float, images in
[0, 1]) and returns a map of shape (N, 1, H, W) that is 0 where nothing differs. Per-channel
maps are reduced over channels by ``reduce``: ``"mean"`` (default; as the suite's plain residual
``|I - R|`` averages channels) or ``"max"`` (a defect visible in one channel only keeps its full
strength).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from suite.scoring import gaussian_blur

REDUCTIONS = ("mean", "max")


def _check_pair(image: Tensor, recon: Tensor, what: str) -> None:
    if image.dim() != 4 or recon.dim() != 4:
        shapes = f"{tuple(image.shape)} and {tuple(recon.shape)}"
        raise ValueError(f"{what}: expected two (N, C, H, W) tensors, got {shapes}")
    if image.shape != recon.shape:
        raise ValueError(f"{what}: shapes differ: {tuple(image.shape)} vs {tuple(recon.shape)}")


def reduce_channels(maps: Tensor, reduce: str = "mean") -> Tensor:
    """(N, C, H, W) -> (N, 1, H, W): mean or max over channels."""
    if reduce == "mean":
        return maps.mean(dim=1, keepdim=True)
    if reduce == "max":
        return maps.amax(dim=1, keepdim=True)
    raise ValueError(f"unknown channel reduction {reduce!r}; valid: {', '.join(REDUCTIONS)}")


def _median_per_channel(values: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, C, 1, 1): the lower median over the pixels of each image and channel."""
    flat = values.flatten(2)
    k = (flat.shape[-1] - 1) // 2 + 1  # torch.median's lower median, via kthvalue (no size limit)
    return flat.kthvalue(k, dim=-1).values[..., None, None]


def plain_residual(image: Tensor, recon: Tensor, reduce: str = "mean") -> Tensor:
    """``|I - R|`` per channel, reduced over channels: the reference the maps below improve on."""
    _check_pair(image, recon, "plain_residual")
    return reduce_channels((image - recon).abs(), reduce)


def median_centred_residual(image: Tensor, recon: Tensor, reduce: str = "mean") -> Tensor:
    """``|(I - R) - median_{x,y}(I - R)|`` per image and channel, then reduced over channels.

    The median of the signed residual over all pixels of one image and channel is the offset a
    global illumination change adds; a defect covering less than half of the image leaves it
    (nearly) unchanged, so the defect keeps its full residual. ``I = R + c`` gives 0 exactly;
    ``I = g R`` leaves ``|g - 1| · |R - median R|``.
    """
    _check_pair(image, recon, "median_centred_residual")
    signed = image - recon
    return reduce_channels((signed - _median_per_channel(signed)).abs(), reduce)


def fit_gain_offset(image: Tensor, recon: Tensor, eps: float = 1e-8) -> tuple[Tensor, Tensor]:
    """Per-image least squares ``(a, b) = argmin Σ (I - a R - b)²`` over all pixels and channels of
    the image, each of shape (N,): ``a = cov(R, I) / var(R)``, ``b = mean(I) - a · mean(R)``
    (closed form). A flat reconstruction (``var(R) <= eps``) has no gain to fit: ``a = 1`` and
    ``b = mean(I - R)``. One gain and offset per image, shared by the channels, since an
    illumination change acts on all of them alike. Computed in float64."""
    _check_pair(image, recon, "fit_gain_offset")
    x = recon.flatten(1).double()
    y = image.flatten(1).double()
    mean_x, mean_y = x.mean(dim=1), y.mean(dim=1)
    xc, yc = x - mean_x[:, None], y - mean_y[:, None]
    var = (xc * xc).mean(dim=1)
    cov = (xc * yc).mean(dim=1)
    flat = var <= eps
    a = torch.where(flat, torch.ones_like(var), cov / var.clamp_min(eps))
    b = mean_y - a * mean_x
    return a.to(image.dtype), b.to(image.dtype)


def gain_offset_residual(image: Tensor, recon: Tensor, reduce: str = "mean") -> Tensor:
    """``|I - (a R + b)|`` per channel with ``(a, b) = fit_gain_offset(image, recon)``, then
    reduced over channels. ``I = g R + c`` gives 0 exactly (up to rounding). The fit sees the
    defect pixels too, so a defect covering a share ``s`` of the image pulls ``a``, ``b`` by about
    ``s`` times its contrast: negligible for the small defects this is meant for."""
    a, b = fit_gain_offset(image, recon)
    fitted = recon * a.view(-1, 1, 1, 1) + b.view(-1, 1, 1, 1)
    return reduce_channels((image - fitted).abs(), reduce)


def sobel_magnitude(images: Tensor) -> Tensor:
    """Per-channel Sobel gradient magnitude ``sqrt(g_x² + g_y²)``, shape (N, C, H, W), with
    ``g_x = images * [[1, 0, -1], [2, 0, -2], [1, 0, -1]] / 8``, ``g_y`` its transpose
    (replicate padding, so a constant image has gradient 0 at its borders too). The 1/8 makes a
    unit step per pixel have magnitude 1/2 per side, i.e. values stay in intensity units."""
    channels = images.shape[1]
    kx = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]], dtype=images.dtype) / 8.0
    weight = torch.stack([kx, kx.t()]).to(images.device).unsqueeze(1).repeat(channels, 1, 1, 1)
    grads = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), weight, groups=channels)
    gx, gy = grads[:, 0::2], grads[:, 1::2]
    return torch.sqrt(gx * gx + gy * gy)


def gradient_residual(image: Tensor, recon: Tensor, reduce: str = "mean") -> Tensor:
    """``| |∇I| - |∇R| |`` per channel (``sobel_magnitude``), reduced over channels.

    Edges that appear, vanish or change strength show up; a constant offset does not (its
    gradient is 0), and a gain ``g`` leaves only ``|g - 1| · |∇R|`` along existing edges. Flat
    defects (a uniform stain larger than the 3x3 kernel) show up along their outline only.
    """
    _check_pair(image, recon, "gradient_residual")
    return reduce_channels((sobel_magnitude(image) - sobel_magnitude(recon)).abs(), reduce)


SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C2 = 0.03**2  # (0.03 L)² with dynamic range L = 1 (Wang et al. 2004)


def ssim_structure_residual(
    image: Tensor, recon: Tensor, reduce: str = "mean", sigma: float = SSIM_SIGMA, window: int = SSIM_WINDOW
) -> Tensor:
    """``1 - cs`` per channel, reduced over channels, where ``cs`` is SSIM's contrast-structure
    term under a Gaussian window ``w`` (``window`` taps, std ``sigma``, replicate padding):

        σ_I² = w * (I - μ_I)²,  σ_R² likewise,  σ_IR = w * ((I - μ_I)(R - μ_R)),  μ = w * ·
        cs = (2 σ_IR + C2) / (σ_I² + σ_R² + C2),   C2 = (0.03)²

    The luminance term ``(2 μ_I μ_R + C1) / (μ_I² + μ_R² + C1)`` of full SSIM is left out on
    purpose: it is the part that sees a global offset. ``cs`` is unchanged by ``I + c`` and
    the map lies in [0, 2] (0 where local structure agrees).
    """
    _check_pair(image, recon, "ssim_structure_residual")

    def local_mean(t: Tensor) -> Tensor:
        return gaussian_blur(t, sigma, size=window, padding="replicate")

    # Centring per image and channel first avoids float32 cancellation in E[x²] - μ², which is
    # not small against C2 (variances do not depend on the centring).
    x = image - image.mean(dim=(2, 3), keepdim=True)
    y = recon - recon.mean(dim=(2, 3), keepdim=True)
    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = (local_mean(x * x) - mu_x * mu_x).clamp_min(0)
    var_y = (local_mean(y * y) - mu_y * mu_y).clamp_min(0)
    cov = local_mean(x * y) - mu_x * mu_y
    cs = (2 * cov + SSIM_C2) / (var_x + var_y + SSIM_C2)
    # |cs| <= 1 (Cauchy-Schwarz); the clamp only removes float rounding just outside [0, 2].
    return reduce_channels((1.0 - cs).clamp(0.0, 2.0), reduce)


Residual = Callable[..., Tensor]

# Map kinds by name (for the scorer's fusable map kinds); "plain" is the offset-sensitive reference.
RESIDUALS: dict[str, Residual] = {
    "plain": plain_residual,
    "median_centred": median_centred_residual,
    "gain_offset": gain_offset_residual,
    "gradient": gradient_residual,
    "ssim_structure": ssim_structure_residual,
}
OFFSET_INVARIANT = ("median_centred", "gain_offset", "gradient", "ssim_structure")


def residual_map(kind: str, image: Tensor, recon: Tensor, reduce: str = "mean") -> Tensor:
    """``RESIDUALS[kind](image, recon, reduce)``, with an error listing the valid kinds."""
    if kind not in RESIDUALS:
        raise ValueError(f"unknown residual kind {kind!r}; valid: {', '.join(RESIDUALS)}")
    return RESIDUALS[kind](image, recon, reduce=reduce)
