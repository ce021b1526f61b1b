"""Photometric changes of whole images: training jitter, offset normalisation and test-set shifts.

Images are float tensors (N, C, H, W) in [0, 1], as everywhere in the suite; every function works on
a whole batch at once (no per-image Python loop) on the images' device. Randomness comes only
from a given CPU ``torch.Generator`` (or, for the seeded test shifts, from a generator seeded with
the given ``seed``), drawn in a fixed order, so the same seed gives identical outputs.

* **Jitter** (training): ``photometric_jitter`` draws, per image, a gain ``g``, an offset ``o`` and
  a gamma ``γ`` and returns ``clamp(g · x^γ + o, 0, 1)`` together with the drawn
  ``PhotometricParams``; ``apply_photometric(target, params)`` gives the target the identical
  change, so an illumination change is never something a model learns to undo or to flag. Jitter
  never produces a mask: it is not an anomaly.
* **Offset normalisation** (every stage and scoring): ``background_level`` is a robust per-image
  level (a quantile, by default the median, of the luminance); ``normalise_offset`` moves each
  image's level to a reference level, the train images' level computed once
  (``reference_level``).
* **Test shifts** (``eval.shifts``): ``SHIFTS`` maps a name to a deterministic transform
  ``fn(images, masks, seed=0) -> (images, masks)``; only a geometric shift moves masks.

Luminance is ``0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601, what Pillow's ``convert("L")`` uses)
for 3 channels and the channel mean otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from suite.scoring import gaussian_blur

LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def _check_images(images: Tensor, what: str) -> None:
    if images.dim() != 4:
        raise ValueError(f"{what}: expected images of shape (N, C, H, W), got {tuple(images.shape)}")


def luminance(images: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, 1, H, W): BT.601 luminance for C = 3, the channel mean otherwise."""
    _check_images(images, "luminance")
    if images.shape[1] == 3:
        weights = torch.tensor(LUMA_WEIGHTS, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        return (images * weights).sum(dim=1, keepdim=True)
    return images.mean(dim=1, keepdim=True)


# ----------------------------------------------------------------------------------------------
# jitter


@dataclass
class PhotometricParams:
    """Per-image jitter parameters, each of shape (N,): ``out = clamp(gain · x^gamma + offset, 0, 1)``."""

    gain: Tensor
    offset: Tensor
    gamma: Tensor

    def __len__(self) -> int:
        return int(self.gain.shape[0])


def _check_range(values: tuple[float, float], name: str, positive: bool) -> tuple[float, float]:
    lo, hi = (float(v) for v in values)
    if not lo <= hi:
        raise ValueError(f"{name} must be (low, high) with low <= high, got {values}")
    if positive and lo <= 0:
        raise ValueError(f"{name} must be > 0, got {values}")
    return lo, hi


def _uniform(n: int, bounds: tuple[float, float], generator: torch.Generator) -> Tensor:
    lo, hi = bounds
    return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float32)


def draw_photometric(
    n: int,
    gain_range: tuple[float, float],
    offset_range: tuple[float, float],
    gamma_range: tuple[float, float],
    generator: torch.Generator,
) -> PhotometricParams:
    """Draw ``n`` parameter triples: gain, offset and gamma each uniform in its (inclusive) range,
    in that order, from ``generator`` (CPU tensors; a range with low == high is a constant)."""
    gains = _check_range(gain_range, "gain_range", positive=True)
    offsets = _check_range(offset_range, "offset_range", positive=False)
    gammas = _check_range(gamma_range, "gamma_range", positive=True)
    return PhotometricParams(
        gain=_uniform(n, gains, generator), offset=_uniform(n, offsets, generator), gamma=_uniform(n, gammas, generator)
    )


def apply_photometric(images: Tensor, params: PhotometricParams) -> Tensor:
    """``clamp(gain · images^gamma + offset, 0, 1)`` with image ``i`` using ``params[i]``.

    Gamma acts first, on values in [0, 1] (so it bends mid-tones and keeps 0 and 1), then gain and
    offset model the illumination level. The clamp keeps the result a valid image; with gain 1,
    offset 0 and gamma 1 the images come back unchanged (bit for bit, for images in [0, 1]).
    """
    _check_images(images, "apply_photometric")
    if len(params) != images.shape[0]:
        raise ValueError(f"apply_photometric: {len(params)} parameter sets for {images.shape[0]} images")

    def per_image(values: Tensor) -> Tensor:
        return values.to(images.device, images.dtype).view(-1, 1, 1, 1)

    # clamp_min before pow: a negative value (never in a valid image) would give NaN under x^gamma.
    out = images.clamp_min(0).pow(per_image(params.gamma))
    return (out * per_image(params.gain) + per_image(params.offset)).clamp(0.0, 1.0)


def photometric_jitter(
    images: Tensor,
    gain_range: tuple[float, float],
    offset_range: tuple[float, float],
    gamma_range: tuple[float, float],
    generator: torch.Generator,
) -> tuple[Tensor, PhotometricParams]:
    """``(jittered, params)``: one draw per image (``draw_photometric``) applied by
    ``apply_photometric``. Apply ``params`` to the target as well so input and target change alike."""
    _check_images(images, "photometric_jitter")
    params = draw_photometric(images.shape[0], gain_range, offset_range, gamma_range, generator)
    return apply_photometric(images, params), params


# ----------------------------------------------------------------------------------------------
# offset normalisation


def _kth_quantile(values: Tensor, q: float) -> Tensor:
    """Lower ``q``-quantile along the last dimension (the ``floor(q (n - 1))``-th smallest value;
    q = 0.5 is ``torch.median``). ``kthvalue`` has no size limit, unlike ``torch.quantile``."""
    n = values.shape[-1]
    k = min(n, max(1, int(math.floor(q * (n - 1))) + 1))
    return values.kthvalue(k, dim=-1).values


def background_level(images: Tensor, q: float = 0.5) -> Tensor:
    """Robust level of each image, shape (N,): the ``q``-quantile (default the median) of its
    luminance over all pixels. A defect covering less than half of the image barely moves it."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"background_level quantile must be in [0, 1], got {q}")
    gray = luminance(images)
    return _kth_quantile(gray.flatten(1), q)


def reference_level(levels: Tensor) -> float:
    """The reference a split is normalised to: the median of per-image levels (``background_level``
    of the train images, computed once; concatenate the levels of streamed batches first)."""
    if levels.numel() == 0:
        raise ValueError("reference_level needs the levels of at least one image")
    return float(_kth_quantile(levels.flatten().float(), 0.5))


NORMALISE_MODES = ("shift", "gain")


def normalise_offset(images: Tensor, reference: float, q: float = 0.5, mode: str = "shift") -> Tensor:
    """Move each image's ``background_level(images, q)`` to ``reference``.

    ``shift``: ``x + (reference - level)`` on every channel (undoes an additive offset exactly;
    the colour balance is kept). ``gain``: ``x · reference / level`` (level floored at 1e-3; undoes
    a multiplicative change such as exposure or lamp intensity exactly, which ``shift`` only
    corrects at the background level). The result is clamped to [0, 1]: the models' outputs and the
    corruption colours live in [0, 1], so an unclamped input would ask for values no
    reconstruction can produce, and the clamp only touches pixels within ``|reference - level|``
    of black or white (saturated shadows and highlights, whose exact value carries no structure).
    An image already at the reference comes back unchanged.
    """
    if mode not in NORMALISE_MODES:
        raise ValueError(f"normalise_offset mode {mode!r} is not one of {', '.join(NORMALISE_MODES)}")
    level = background_level(images, q).view(-1, 1, 1, 1)
    if mode == "shift":
        out = images + (reference - level)
    else:
        out = images * (reference / level.clamp_min(1e-3))
    return out.clamp(0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# test-set shifts (eval.shifts)

BRIGHTNESS_STEP = 0.08
CONTRAST_FACTOR = 0.9
BLUR_SIGMA_AT_256 = 1.0  # px at 256 px, scaled with the image size
NOISE_STD = 0.02  # about 5 grey levels of 8-bit sensor noise
TRANSLATE_AT_256 = 4  # px at 256 px, scaled with the image size (at least 1 px)
SCALE_REFERENCE = 256

Shift = Callable[..., tuple[Tensor, "Tensor | None"]]


def _scaled_px(images: Tensor, px_at_reference: float) -> float:
    return px_at_reference * min(images.shape[-2:]) / SCALE_REFERENCE


def brightness(images: Tensor, masks: Tensor | None, factor: float) -> tuple[Tensor, Tensor | None]:
    """``clamp(factor · x, 0, 1)``: illumination brighter (> 1) or darker (< 1); masks unchanged."""
    _check_images(images, "brightness")
    return (images * factor).clamp(0.0, 1.0), masks


def contrast(images: Tensor, masks: Tensor | None, factor: float) -> tuple[Tensor, Tensor | None]:
    """``clamp(m + factor · (x - m), 0, 1)`` with ``m`` each image's mean luminance (so the mean
    level stays and only the spread changes); masks unchanged."""
    mean = luminance(images).mean(dim=(1, 2, 3), keepdim=True)
    return (mean + factor * (images - mean)).clamp(0.0, 1.0), masks


def blur(images: Tensor, masks: Tensor | None, sigma_at_256: float = BLUR_SIGMA_AT_256) -> tuple[Tensor, Tensor | None]:
    """Gaussian blur (``suite.scoring.gaussian_blur``, reflect padding) with sigma
    ``sigma_at_256 · size / 256`` px (slight defocus); masks unchanged."""
    _check_images(images, "blur")
    return gaussian_blur(images, _scaled_px(images, sigma_at_256)), masks


def sensor_noise(
    images: Tensor, masks: Tensor | None, seed: int = 0, std: float = NOISE_STD
) -> tuple[Tensor, Tensor | None]:
    """``clamp(x + ε, 0, 1)`` with ε ~ N(0, std²) i.i.d. per pixel and channel, drawn on the CPU
    from a generator seeded with ``seed`` (so a given batch always gets the same noise; pass a
    different seed per batch, e.g. the seed plus the batch's first index, when evaluating in
    batches). Masks unchanged."""
    _check_images(images, "sensor_noise")
    generator = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(images.shape, generator=generator, dtype=torch.float32)
    return (images + std * noise.to(images.device, images.dtype)).clamp(0.0, 1.0), masks


def translate(
    images: Tensor, masks: Tensor | None, px_at_256: float = TRANSLATE_AT_256
) -> tuple[Tensor, Tensor | None]:
    """Move the content ``d = max(1, round(px_at_256 · size / 256))`` px right and ``d`` px down:
    ``out[y, x] = in[y - d, x - d]``.

    Uncovered borders of an image repeat its nearest edge pixel (replicate padding: a black or
    mirrored band would be a new structure, i.e. an artificial defect); masks move identically and
    their uncovered borders are 0 (nothing anomalous enters from outside the frame; a defect
    pushed out of the frame is gone from image and mask alike).
    """
    _check_images(images, "translate")
    h, w = images.shape[-2:]
    d = min(max(1, int(round(_scaled_px(images, px_at_256)))), h - 1, w - 1)
    moved = F.pad(images, (d, 0, d, 0), mode="replicate")[..., :h, :w]
    if masks is None:
        return moved, None
    return moved, F.pad(masks, (d, 0, d, 0), mode="constant", value=0.0)[..., :h, :w]


def _ignore_seed(fn: Callable[..., tuple[Tensor, Tensor | None]], *args) -> Shift:
    def shift(images: Tensor, masks: Tensor | None, seed: int = 0) -> tuple[Tensor, Tensor | None]:
        return fn(images, masks, *args)

    shift.__doc__ = fn.__doc__
    return shift


def _noise_shift(images: Tensor, masks: Tensor | None, seed: int = 0) -> tuple[Tensor, Tensor | None]:
    return sensor_noise(images, masks, seed, NOISE_STD)


_noise_shift.__doc__ = sensor_noise.__doc__

# Names are safe as record keys and file names. Every transform is deterministic (the noise one
# through its seed).
SHIFTS: dict[str, Shift] = {
    "dark8": _ignore_seed(brightness, 1.0 - BRIGHTNESS_STEP),
    "bright8": _ignore_seed(brightness, 1.0 + BRIGHTNESS_STEP),
    "contrast90": _ignore_seed(contrast, CONTRAST_FACTOR),
    "blur": _ignore_seed(blur, BLUR_SIGMA_AT_256),
    "noise": _noise_shift,
    "translate": _ignore_seed(translate, TRANSLATE_AT_256),
}


def apply_shift(name: str, images: Tensor, masks: Tensor | None, seed: int = 0) -> tuple[Tensor, Tensor | None]:
    """``SHIFTS[name](images, masks, seed)``, with an error listing the valid names."""
    if name not in SHIFTS:
        raise ValueError(f"unknown shift {name!r}; valid shifts: {', '.join(SHIFTS)}")
    return SHIFTS[name](images, masks, seed=seed)
