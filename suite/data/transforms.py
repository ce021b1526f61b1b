"""Pixel-level conversions shared by the loaders.

* ``image_to_rgb_float``: any PIL image -> float32 ``(3, H, W)`` in [0, 1] (grayscale is repeated to
  three channels, alpha is dropped, 16-bit grayscale is scaled by 1/65535), resized with Pillow's
  bilinear filter, which widens its kernel by the downscale factor and therefore antialiases.
* ``mask_to_binary`` / ``resize_mask``: any PIL mask -> boolean ``(H, W)`` with ``pixel > 0`` meaning
  anomalous (MVTec masks are 0/255, VisA masks may hold class ids), resized with nearest neighbour so
  it stays binary.
* ``normalize`` / ``denormalize``: ``(x - mean) / std`` with the ImageNet statistics that pretrained
  backbones expect.
* ``flip_rotate``: random flips / 90-degree rotations of a batch, and ``geometric_symmetries`` which
  says which of them keep a category's normal images normal.

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


def normalize(images: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """``(x - mean) / std`` per channel for a ``(N, 3, H, W)`` or ``(3, H, W)`` float array."""
    shape = (3, 1, 1)
    return ((images - np.asarray(mean, np.float32).reshape(shape)) / np.asarray(std, np.float32).reshape(shape)).astype(
        np.float32
    )


def denormalize(images: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """Inverse of ``normalize``: ``x * std + mean``."""
    shape = (3, 1, 1)
    return (images * np.asarray(std, np.float32).reshape(shape) + np.asarray(mean, np.float32).reshape(shape)).astype(
        np.float32
    )


# Which geometric augmentations keep a normal image normal, per category: (flips, 90-degree rotations).
# Textures without a dominant direction and rotation-invariant objects allow both; objects with
# printed text or a fixed layout allow neither (metal_nut: a flipped nut IS its "flip" defect; screw:
# mirroring reverses the thread's handedness; wood: rotating turns the vertical grain sideways).
_SYMMETRIES: dict[str, tuple[bool, bool]] = {
    "carpet": (True, True),
    "grid": (True, True),
    "leather": (True, True),
    "tile": (True, True),
    "wood": (True, False),
    "bottle": (True, True),
    "cable": (False, False),
    "capsule": (False, False),
    "hazelnut": (True, True),
    "metal_nut": (False, True),
    "pill": (False, False),
    "screw": (False, True),
    "toothbrush": (False, False),
    "transistor": (False, False),
    "zipper": (True, False),
    "synth_texture": (True, False),  # the weave has a fixed orientation
    "synth_object": (True, True),
}


def geometric_symmetries(category: str) -> tuple[bool, bool]:
    """``(flips_ok, rot90_ok)`` for a category; unknown categories (VisA, user folders) get neither."""
    return _SYMMETRIES.get(category, (False, False))


def flip_rotate(
    images: np.ndarray,
    rng: np.random.Generator,
    flip: bool,
    rotate: bool,
    masks: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Independently per sample: horizontal and vertical flips (p = 0.5 each) when ``flip``, and a
    rotation by k * 90 degrees (k uniform in 0..3) when ``rotate`` (square images only). Arrays are
    ``(N, C, H, W)``; the same transform is applied to ``masks`` when given. Returns new arrays."""
    out = images.copy()
    out_masks = masks.copy() if masks is not None else None
    if rotate and images.shape[-1] != images.shape[-2]:
        raise ValueError(f"90-degree rotations need square images, got {images.shape[-2:]}")
    for i in range(images.shape[0]):
        ops: list[tuple[str, int]] = []
        if flip:
            if rng.random() < 0.5:
                ops.append(("flip", -1))
            if rng.random() < 0.5:
                ops.append(("flip", -2))
        if rotate:
            k = int(rng.integers(0, 4))
            if k:
                ops.append(("rot", k))
        for op, arg in ops:
            if op == "flip":
                out[i] = np.flip(out[i], axis=arg)
                if out_masks is not None:
                    out_masks[i] = np.flip(out_masks[i], axis=arg)
            else:
                out[i] = np.rot90(out[i], k=arg, axes=(-2, -1))
                if out_masks is not None:
                    out_masks[i] = np.rot90(out_masks[i], k=arg, axes=(-2, -1))
    return out, out_masks
