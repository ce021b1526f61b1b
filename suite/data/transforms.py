"""Pixel-level conversions shared by the loaders.

* ``image_to_rgb_float``: any PIL image -> float32 ``(3, H, W)`` in [0, 1] (grayscale is repeated to
  three channels, alpha is dropped, 16-bit grayscale is scaled by 1/65535), resized with Pillow's
  bilinear filter, which widens its kernel by the downscale factor and therefore antialiases.
* ``mask_to_binary`` / ``resize_mask``: any PIL mask -> boolean ``(H, W)`` with ``pixel > 0`` meaning
  anomalous (MVTec masks are 0/255, VisA masks may hold class ids), resized with nearest neighbour so
  it stays binary. The soft-mask rule: a mask whose values (the maximum over colour channels) take
  at most two distinct levels ({0, 255}, {0, 1}, all zeros) is binary and passes silently; a mask
  with more levels (grey edges left by a bilinear resize or JPEG compression, or several class ids)
  is still thresholded at ``> 0`` but a ``SoftMaskWarning`` (a ``UserWarning``) names the file, the
  number of levels and how much of the ``> 0`` area lies below half the maximum, once per file per
  process. ``> 0`` is kept rather than switching soft masks to ``>= max / 2``: it is the right rule
  for class-id masks (VisA stores ids 1, 2, ... where half the maximum would drop id 1), it keeps
  the ground truth, and so every metric, of existing datasets unchanged, and a mask that is soft
  by accident should be fixed at its source rather than re-thresholded by a guess. Palette ("P")
  masks are label maps (indices, never blended grey levels) and are not checked.
  Silence the warning with ``warnings.filterwarnings("ignore", category=SoftMaskWarning)``.
* ``IMAGENET_MEAN`` / ``IMAGENET_STD``: the per-channel statistics pretrained backbones expect (the
  suite's one definition; models normalise their [0, 1] inputs with them).

Pure numpy / Pillow; no torch, no ray.
"""

from __future__ import annotations

import warnings

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Pillow modes holding more than 8 bits per sample (16-bit PNG/TIFF grayscale, 32-bit int, float).
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_FLOAT_MODES = ("F",)


def _resize_plane(plane: np.ndarray, size: int) -> np.ndarray:
    """Bilinear (antialiased when shrinking) resize of one float32 plane to ``size x size``."""
    if plane.shape == (size, size):
        return plane
    resized = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32)).resize(
        (size, size), Image.Resampling.BILINEAR
    )
    return np.asarray(resized, dtype=np.float32)


def image_to_rgb_float(image: Image.Image, size: int | None = None) -> np.ndarray:
    """Decoded PIL image -> float32 array ``(3, size, size)`` with values in [0, 1].

    8-bit modes (L, P, RGB, RGBA, LA, CMYK, ...) go through ``convert("RGB")`` (alpha dropped, gray
    repeated) and are resized in 8 bits, like torchvision does on PIL images. Higher bit depths are
    resized as float planes so no precision is lost: ``I;16``/``I`` values are divided by 65535,
    ``F`` values are taken as already in [0, 1].
    """
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode in _FLOAT_MODES:
        scale = 65535.0 if mode in _SIXTEEN_BIT_MODES else 1.0
        gray = np.clip(np.asarray(image, dtype=np.float32) / scale, 0.0, 1.0)
        if size is not None:
            gray = np.clip(_resize_plane(gray, size), 0.0, 1.0)
        return np.repeat(gray[None], 3, axis=0)
    rgb = image.convert("RGB")
    if size is not None and rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(rgb, dtype=np.float32) / 255.0
    return np.ascontiguousarray(array.transpose(2, 0, 1))


class SoftMaskWarning(UserWarning):
    """A mask has more than two distinct values and was thresholded at ``> 0`` (see the module doc)."""


_SOFT_MASKS_WARNED: set[str] = set()  # files already warned about in this process


def mask_to_binary(mask: Image.Image, source: str | None = None) -> np.ndarray:
    """PIL mask -> boolean ``(H, W)``; a pixel is anomalous when any colour channel is > 0.

    Palette masks are read by palette index (class ids, index 0 = background); alpha channels are
    ignored. A non-palette mask with more than two distinct levels gets a ``SoftMaskWarning``
    naming ``source`` (the file; once per ``source``) before it is thresholded at ``> 0``.
    """
    palette = mask.mode in ("P", "PA")
    if mode_has_alpha(mask.mode):
        mask = mask.convert("RGB") if mask.mode != "LA" else mask.convert("L")
    values = np.asarray(mask)
    if values.ndim == 3:
        values = values.max(axis=2)
    binary = values > 0
    if not palette:
        _check_soft_mask(values, source)
    return binary


def _check_soft_mask(values: np.ndarray, source: str | None) -> None:
    if source is not None and source in _SOFT_MASKS_WARNED:
        return
    if values.dtype == np.uint8:
        counts = np.bincount(values.ravel(), minlength=256)
        levels = int(np.count_nonzero(counts))
    else:
        levels = int(np.unique(values).size)
    if levels <= 2:
        return
    if source is not None:
        _SOFT_MASKS_WARNED.add(source)
    peak = values.max()
    marked = int(np.count_nonzero(values > 0))
    faint = int(np.count_nonzero((values > 0) & (values < peak / 2)))
    warnings.warn(
        f"mask {source or '(unnamed)'} has {levels} grey levels, not 2; thresholded at > 0 "
        f"({faint} of its {marked} marked pixels are below half the maximum {peak}) "
        f"(rule: a mask with at most two distinct values is binary; any other mask is thresholded "
        f"at > 0 with this warning, once per file: fine for class-id masks, but a resized or "
        f"JPEG-compressed mask is enlarged by its grey fringe)",
        SoftMaskWarning,
        stacklevel=2,
    )


def mode_has_alpha(mode: str) -> bool:
    return mode in ("RGBA", "LA", "PA", "RGBa", "La")


def resize_mask(binary: np.ndarray, size: int | None = None) -> np.ndarray:
    """Nearest-neighbour resize of a boolean mask to ``size x size`` (no resize when ``size`` is None)."""
    if size is None or binary.shape == (size, size):
        return binary.astype(bool, copy=False)
    image = Image.fromarray(binary.astype(np.uint8) * 255)
    return np.asarray(image.resize((size, size), Image.Resampling.NEAREST)) > 0
