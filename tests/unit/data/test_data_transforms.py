"""Pixel conversions (suite/data/transforms.py)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from suite.data.transforms import image_to_rgb_float, mask_to_binary, resize_mask


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
