"""Structured test images shared by the validation-anomaly tests (unit and distribution)."""

from __future__ import annotations

import numpy as np


def scenes(n=10, size=32, seed=0, dtype=np.float32):
    """Structured images in [0.1, 0.9]: tilted sinusoid stripes plus a disc of another colour."""
    rng = np.random.default_rng(seed)
    ys, xs = (np.mgrid[0:size, 0:size] + 0.5) / size
    out = np.empty((n, 3, size, size))
    for i in range(n):
        f, phase = rng.uniform(2, 6, size=2), rng.uniform(0, 2 * np.pi)
        stripes = np.sin(2 * np.pi * (f[0] * xs + f[1] * ys) + phase)
        base = rng.uniform(0.35, 0.55, size=3)[:, None, None] + 0.15 * stripes[None]
        cx, cy, r = *rng.uniform(0.3, 0.7, size=2), rng.uniform(0.15, 0.3)
        disc = (np.hypot(xs - cx, ys - cy) < r)[None]
        out[i] = np.where(disc, rng.uniform(0.15, 0.85, size=(3, 1, 1)), base)
    return np.clip(out, 0.1, 0.9).astype(dtype)
