"""The ``fae`` config section."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class FAEConfig:
    """FAE (noise & pattern filtering AE) knobs; see ``model.py`` for the paper's values."""

    width: int = 32  # U-Net base width
    levels: int = 3  # U-Net down/up-sampling steps; image_size must be divisible by 2**levels
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4, 8])  # bottleneck dilated convs
    texture_root: str | None = None  # DTD-like folder of texture images; None = procedural textures
    texture_max_count: int | None = None  # cap on textures loaded (evenly spaced, deterministic subset)
    ellipse_count: list[int] = field(default_factory=lambda: [0, 2])  # elastic ellipses per image (min, max)
    stroke_count: list[int] = field(default_factory=lambda: [0, 3])  # thin strokes per image (min, max)
    stroke_radius: list[float] = field(default_factory=lambda: [0.002, 0.02])  # half-thickness / image side
    use_shapes: bool = True  # elastic ellipses + thin strokes (False = rectangles)
    use_textures: bool = True  # texture fill (False = uniform random colour)
    vary_opacity: bool = True  # opacity in [opacity_min, 1] (False = always opaque)
    opacity_min: float = 0.2
    smooth_boundary: bool = True
    corruption_prob: float = 0.8  # probability a training image is corrupted
    noise_std: float = 0.05  # max std of Gaussian noise added to both input and target
    noise_std_min: float = 0.0  # the std is drawn uniformly in [noise_std_min, noise_std]
    discrepancy: Literal["mse", "ssim", "gms"] = "gms"  # pixel discrepancy d(x, f(x))
    filter_size: int = 5  # mean filter size applied to the map
    filter_repeats: int = 3
    score: Literal["sum", "max"] = "max"  # image score: sum or max of the map
