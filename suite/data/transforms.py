"""Pixel-level conversions shared by the loaders.

* ``image_to_rgb_float``: any PIL image -> float32 ``(3, H, W)`` in [0, 1] (grayscale is repeated to
  three channels, alpha is dropped, 16-bit grayscale is scaled by 1/65535), resized with Pillow's
  bilinear filter, which widens its kernel by the downscale factor and therefore antialiases.
* ``mask_to_binary`` / ``resize_mask``: any PIL mask -> boolean ``(H, W)`` with ``pixel > 0`` meaning
  anomalous (MVTec masks are 0/255, VisA masks may hold class ids), resized with nearest neighbour so
  it stays binary.
* ``IMAGENET_MEAN`` / ``IMAGENET_STD``: the per-channel statistics pretrained backbones expect (the
  suite's one definition; models normalise their [0, 1] inputs with them).

Pure numpy / Pillow; no torch, no ray.
"""

from __future__ import annotations

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


def mask_to_binary(mask: Image.Image) -> np.ndarray:
    """PIL mask -> boolean ``(H, W)``; a pixel is anomalous when any colour channel is > 0.

    Palette masks are read by palette index (class ids, index 0 = background); alpha channels are
    ignored.
    """
    if mode_has_alpha(mask.mode):
        mask = mask.convert("RGB") if mask.mode != "LA" else mask.convert("L")
    values = np.asarray(mask)
    if values.ndim == 3:
        return np.any(values > 0, axis=2)
    return values > 0


def mode_has_alpha(mode: str) -> bool:
    return mode in ("RGBA", "LA", "PA", "RGBa", "La")


def resize_mask(binary: np.ndarray, size: int | None = None) -> np.ndarray:
    """Nearest-neighbour resize of a boolean mask to ``size x size`` (no resize when ``size`` is None)."""
    if size is None or binary.shape == (size, size):
        return binary.astype(bool, copy=False)
    image = Image.fromarray(binary.astype(np.uint8) * 255)
    return np.asarray(image.resize((size, size), Image.Resampling.NEAREST)) > 0
