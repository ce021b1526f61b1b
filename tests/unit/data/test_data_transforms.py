"""Pixel conversions and geometric augmentations (suite/data/transforms.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from suite.data.transforms import (
    denormalize,
    flip_rotate,
    geometric_symmetries,
    image_to_rgb_float,
    mask_to_binary,
    normalize,
    resize_mask,
)


def test_downscale_is_antialiased():
    # A 1-px checkerboard averages to mid-gray when shrunk; plain point sampling would alias.
    board = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    out = image_to_rgb_float(Image.fromarray(board), 16)
    assert out.shape == (3, 16, 16)
    assert abs(out.mean() - 0.5) < 0.02 and out.std() < 0.05


def test_palette_and_rgb_masks():
    palette = Image.fromarray(np.array([[0, 2], [1, 0]], np.uint8), mode="L").convert("P")
    assert mask_to_binary(palette).tolist() == [[False, True], [True, False]]
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 1, 2] = 9
    assert mask_to_binary(Image.fromarray(rgb)).tolist() == [[False, True], [False, False]]


def test_resize_mask_nearest():
    mask = np.zeros((8, 8), bool)
    mask[:, :4] = True
    out = resize_mask(mask, 4)
    assert out.dtype == bool and out[:, :2].all() and not out[:, 2:].any()
    assert resize_mask(mask, None) is not None and resize_mask(mask, None).shape == (8, 8)


def test_normalize_roundtrip():
    x = np.random.default_rng(0).random((2, 3, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(denormalize(normalize(x)), x, atol=1e-6)
    assert normalize(x).dtype == np.float32


def test_flip_rotate_keeps_pairs_aligned():
    rng = np.random.default_rng(0)
    images = rng.random((6, 3, 8, 8)).astype(np.float32)
    masks = (images[:, :1] > 0.5).astype(np.float32)
    out, out_masks = flip_rotate(images, np.random.default_rng(1), flip=True, rotate=True, masks=masks)
    np.testing.assert_array_equal(out_masks, (out[:, :1] > 0.5).astype(np.float32))
    assert not np.array_equal(out, images)
    same, _ = flip_rotate(images, np.random.default_rng(1), flip=False, rotate=False)
    np.testing.assert_array_equal(same, images)
    with pytest.raises(ValueError, match="square"):
        flip_rotate(np.zeros((1, 3, 4, 6)), rng, flip=False, rotate=True)


def test_symmetry_table():
    assert geometric_symmetries("bottle") == (True, True)
    assert geometric_symmetries("metal_nut") == (False, True)
    assert geometric_symmetries("transistor") == (False, False)
    assert geometric_symmetries("pcb1") == (False, False)  # unknown: be conservative
