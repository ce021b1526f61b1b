"""Occluders: textured elastic shapes blended into images (the "Noise & Pattern" corruption model).

A corrupted image is ``x~ = (1 - A) x + A t``: a fill ``t`` (a texture patch or a uniform colour)
blended into the clean image ``x`` through an opacity map ``A = alpha * S`` (``S`` the union of the
occlusion shapes, optionally with a blurred edge). Variation along three axes, each switchable
through ``OccluderConfig`` (a method's config section with the same fields works too):

* shape (``use_shapes``): elastically deformed ellipses (bulky forms) plus independent thin
  curve-like strokes of varying length and varying local thickness; off = axis-aligned rectangles;
* texture (``use_textures``): random crops of real textures (a DTD-like folder, ``load_textures``)
  or, without a folder, procedural textures (``procedural_textures``); off = a uniform random colour;
* opacity (``vary_opacity``): ``alpha ~ U[opacity_min, 1]`` per image; off = opaque (alpha 1).

``smooth_boundary`` blurs the edge of ``A``. The shape statistics are the fields of
``ShapeParams`` (pass ``shape_params=`` to override them). Used by a baseline's training
corruption and by the stage-3 pseudo-anomalies of the recursive method.

All randomness comes from the given ``torch.Generator``; ``occlude`` draws per batch on the
generator's device and does the pixel work for the whole batch at once on the images' device
(``suite.data.occluders_batched``), so results are reproducible for a seed on one device.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from suite.data.common import resolve_inside
from suite.data.occluders_batched import shape_union, texture_patches
from suite.scoring import gaussian_blur, gaussian_kernel1d

TEXTURE_SUFFIXES = (".jpg", ".jpeg", ".png")
# An opacity below one 8-bit grey level is invisible; dropping it keeps blurred fringes from
# producing mask pixels that did not visibly change.
MIN_ALPHA = 1.0 / 255.0


@dataclass(frozen=True)
class ShapeParams:
    """Statistics of the occlusion shapes. Lengths are fractions of the image side ``min(H, W)``.

    Counts are inclusive ranges drawn uniformly per corrupted image; the counts are redrawn until at
    least one shape is present.
    """

    ellipse_count: tuple[int, int] = (0, 2)  # elastic ellipses per image
    ellipse_axis: tuple[float, float] = (0.04, 0.25)  # semi-axis length range
    elastic_strength: float = 0.35  # displacement amplitude in units of the ellipse's semi-axes (< 1)
    elastic_grid: int = 5  # control points per side of the random displacement field (more = wigglier)
    stroke_count: tuple[int, int] = (0, 3)  # thin curves per image
    stroke_length: tuple[float, float] = (0.1, 0.6)  # chord length of a stroke
    stroke_radius: tuple[float, float] = (0.002, 0.02)  # half-thickness range along a stroke (0.5..5 px at 256)
    stroke_bend: float = 0.5  # control-point offset from the chord, as a fraction of the chord length
    rect_count: tuple[int, int] = (1, 2)  # rectangles per image when use_shapes is False
    rect_side: tuple[float, float] = (0.05, 0.4)  # rectangle side range
    texture_crop: tuple[float, float] = (0.3, 1.0)  # crop side as a fraction of the texture's side
    boundary_sigma: float = 1.0 / 256.0  # edge blur std when smooth_boundary (at least 0.5 px)


DEFAULT_SHAPES = ShapeParams()


@dataclass
class OccluderConfig:
    """How ``occlude`` corrupts a batch (see the module docstring)."""

    use_shapes: bool = True  # elastic ellipses + thin strokes (False = rectangles)
    use_textures: bool = True  # texture fill (False = uniform random colour)
    vary_opacity: bool = True  # opacity in [opacity_min, 1] (False = always opaque)
    opacity_min: float = 0.2
    smooth_boundary: bool = True
    corruption_prob: float = 1.0  # probability an image is corrupted


# ----------------------------------------------------------------------------------------------
# random helpers (all on CPU, driven by one generator)


def _uniform(gen: torch.Generator | None, low: float, high: float) -> float:
    return float(low + (high - low) * torch.rand((), generator=gen))


def _randint(gen: torch.Generator | None, low: int, high: int) -> int:
    """Uniform integer in [low, high] (inclusive)."""
    return int(torch.randint(low, high + 1, (), generator=gen))


# ----------------------------------------------------------------------------------------------
# shapes: batched in suite.data.occluders_batched (the pre-rewrite per-image functions are the oracle in
# tests/reference/legacy_occluders.py)


def _pixel_grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    ys = torch.arange(height, dtype=torch.float32).view(-1, 1).expand(height, width)
    xs = torch.arange(width, dtype=torch.float32).view(1, -1).expand(height, width)
    return xs, ys


# ----------------------------------------------------------------------------------------------
# textures


def load_textures(folder: str | Path, size: int, max_count: int | None = None) -> torch.Tensor:
    """Texture images under ``folder`` (recursive; .jpg/.jpeg/.png) as a float tensor (T, 3, size, size) in [0, 1].

    Each image is centre-cropped to a square and resized (bilinear). Files are taken in sorted path
    order; with ``max_count`` an evenly spaced subset of that many is kept (deterministic). A texture
    file that leads out of ``folder`` (a symbolic link pointing outside) is a ``DatasetError``,
    raised before it is tested or opened (``suite.data.common.resolve_inside``).
    """
    from PIL import Image

    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"texture folder {root} does not exist or is not a directory")
    candidates = [p for p in root.rglob("*") if p.suffix.lower() in TEXTURE_SUFFIXES]
    for p in candidates:
        resolve_inside(root, p.relative_to(root), f"texture folder {root}", "texture")
    files = sorted(p for p in candidates if p.is_file())
    if not files:
        raise FileNotFoundError(f"no texture images ({', '.join(TEXTURE_SUFFIXES)}) found under texture folder {root}")
    if max_count is not None and max_count < len(files):
        if max_count < 1:
            raise ValueError(f"load_textures max_count must be >= 1, got {max_count}")
        step = len(files) / max_count
        files = [files[int(i * step)] for i in range(max_count)]
    textures = []
    for path in files:
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                w, h = img.size
                s = min(w, h)
                left, top = (w - s) // 2, (h - s) // 2
                img = img.crop((left, top, left + s, top + s)).resize((size, size), Image.BILINEAR)
                data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        except OSError as err:
            raise OSError(f"cannot read texture image {path}: {err}") from err
        textures.append(data.view(size, size, 3).permute(2, 0, 1).float() / 255.0)
    return torch.stack(textures)


def _smooth_noise(size: int, cells: int, gen: torch.Generator | None) -> torch.Tensor:
    coarse = torch.rand(1, 1, cells, cells, generator=gen)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)[0, 0]


def _normalise01(field: torch.Tensor) -> torch.Tensor:
    low, high = field.min(), field.max()
    return (field - low) / (high - low).clamp_min(1e-8)


def procedural_textures(n: int, size: int, gen: torch.Generator | None = None) -> torch.Tensor:
    """``n`` synthetic textures (n, 3, size, size) in [0, 1], a fallback when no texture folder is given.

    Each texture picks one of four scalar patterns in [0, 1] — oriented stripes (a sinusoidal
    grating, optionally hardened by tanh), a checkerboard of random period, multi-octave smooth
    noise (blotchy / marble-like) or blurred random speckles — adds a little fine noise, and maps it
    onto a random two-colour ramp ``c0 + s (c1 - c0)``.
    """
    xs, ys = _pixel_grid(size, size)
    out = torch.empty(n, 3, size, size)
    for i in range(n):
        kind = _randint(gen, 0, 3)
        if kind == 0:
            angle = _uniform(gen, 0.0, math.pi)
            period = _uniform(gen, 3.0, max(4.0, size / 3))
            phase = _uniform(gen, 0.0, 2 * math.pi)
            wave = torch.sin(2 * math.pi * (math.cos(angle) * xs + math.sin(angle) * ys) / period + phase)
            hardness = _uniform(gen, 0.5, 5.0)
            pattern = _normalise01(torch.tanh(hardness * wave))
        elif kind == 1:
            period = _uniform(gen, 2.0, max(3.0, size / 4))
            pattern = ((torch.floor(xs / period) + torch.floor(ys / period)) % 2).float()
        elif kind == 2:
            pattern = torch.zeros(size, size)
            cells = _randint(gen, 2, 4)
            amplitude = 1.0
            while cells <= size:
                pattern += amplitude * _smooth_noise(size, cells, gen)
                cells *= 2
                amplitude *= 0.5
            pattern = _normalise01(pattern)
        else:
            density = _uniform(gen, 0.01, 0.1)
            spots = (torch.rand(1, 1, size, size, generator=gen) < density).float()
            pattern = _normalise01(F.avg_pool2d(spots, 3, stride=1, padding=1)[0, 0])
        pattern = (pattern + 0.05 * torch.randn(size, size, generator=gen)).clamp(0.0, 1.0)
        c0, c1 = torch.rand(3, generator=gen), torch.rand(3, generator=gen)
        out[i] = c0.view(3, 1, 1) + pattern.unsqueeze(0) * (c1 - c0).view(3, 1, 1)
    return out.clamp(0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# corruption and training pairs


def _edge_blur(opacity: torch.Tensor, sigma: float) -> torch.Tensor:
    """``scoring.gaussian_blur(opacity, sigma, padding="replicate")``. On CPU as shifted sums of the padded
    map, one pass per tap: a one-channel conv2d with a one-row kernel goes through im2col (a taps x pixels
    matrix) and was about 6x slower at 1024 px; same kernel, padding and products."""
    if opacity.device.type != "cpu":
        return gaussian_blur(opacity, sigma, padding="replicate")
    kernel = gaussian_kernel1d(sigma).tolist()
    before, after = (len(kernel) - 1) // 2, len(kernel) // 2
    b, c, h, w = opacity.shape
    x = opacity.reshape(b * c, 1, h, w)
    for dim, pad in ((3, (before, after, 0, 0)), (2, (0, 0, before, after))):
        padded = F.pad(x, pad, mode="replicate")
        x = torch.zeros_like(x)
        for tap, weight in enumerate(kernel):
            x.add_(padded.narrow(dim, tap, x.shape[dim]), alpha=weight)
    return x.reshape(b, c, h, w)


def _check_cfg(cfg: OccluderConfig) -> None:
    if not 0.0 <= cfg.opacity_min <= 1.0:
        raise ValueError(f"occluder opacity_min must be in [0, 1], got {cfg.opacity_min}")
    if not 0.0 <= cfg.corruption_prob <= 1.0:
        raise ValueError(f"occluder corruption_prob must be in [0, 1], got {cfg.corruption_prob}")


def occlude(
    images: torch.Tensor,
    cfg: OccluderConfig,
    generator: torch.Generator | None = None,
    textures: torch.Tensor | None = None,
    shape_params: ShapeParams | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt each image with probability ``cfg.corruption_prob``; returns ``(corrupted, masks)``.

    ``images``: (B, C, H, W) in [0, 1] with C = 3 (or 1: fills are converted to grey).
    ``corrupted = (1 - A) x + A t`` where ``A = alpha * S`` (blurred at the edge when
    ``cfg.smooth_boundary``; values below 1/255 dropped), ``t`` the fill, ``S`` the shape union.
    ``textures``: (T, 3, h, w) in [0, 1]; None with ``cfg.use_textures`` = procedural textures made
    on the fly. ``masks``: float (B, 1, H, W) in {0, 1}, exactly the pixels where ``corrupted``
    differs from ``images`` in any channel.
    """
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"occlude expects images of shape (B, 1 or 3, H, W), got {tuple(images.shape)}")
    _check_cfg(cfg)
    params = shape_params or DEFAULT_SHAPES
    batch, channels, height, width = images.shape
    dev = images.device
    gdev = generator.device if generator is not None else torch.device("cpu")
    corrupted = images.clone()
    # Batched (issue 20): every draw for the whole batch at once, the pixel work on the images' device.
    hit = (torch.rand(batch, generator=generator, device=gdev) < cfg.corruption_prob).nonzero().flatten()
    count = hit.numel()
    if count:
        shape = shape_union(count, height, width, cfg.use_shapes, generator, params, dev).float()
        alpha = torch.ones(count, dtype=torch.float64, device=gdev)
        if cfg.vary_opacity:
            alpha = cfg.opacity_min + (1.0 - cfg.opacity_min) * torch.rand(
                count, generator=generator, device=gdev, dtype=torch.float64)
        opacity = alpha.to(dev, torch.float32)[:, None, None, None] * shape[:, None]
        if cfg.smooth_boundary:
            sigma = max(0.5, params.boundary_sigma * min(height, width))
            opacity = _edge_blur(opacity, sigma).clamp(0.0, 1.0)
        opacity = torch.where(opacity < MIN_ALPHA, torch.zeros_like(opacity), opacity)
        if cfg.use_textures:
            source = textures if textures is not None else procedural_textures(count, max(height, width), generator)
            fill = texture_patches(source, count, height, width, generator, params, dev)
        else:
            fill = torch.rand(count, 3, 1, 1, generator=generator, device=gdev).to(dev).expand(-1, -1, height, width)
        if channels == 1:
            fill = fill.mean(dim=1, keepdim=True)
        opacity, fill = opacity.to(dev, images.dtype), fill.to(dev, images.dtype)
        index = hit.to(dev)
        clean = images[index]
        blended = ((1 - opacity) * clean + opacity * fill).clamp(0.0, 1.0)
        corrupted[index] = torch.where(opacity > 0, blended, clean)
    masks = (corrupted != images).any(dim=1, keepdim=True).to(images.dtype)
    return corrupted, masks


PROCEDURAL_BANK_SIZE = 64  # textures in a procedural bank (when no texture folder is given)


@functools.lru_cache(maxsize=4)
def _cached_textures(root: str, size: int, max_count: int | None) -> torch.Tensor:
    # Trials of one sweep running in the same worker process share the decoded folder.
    return load_textures(root, size, max_count)


def texture_bank(root: str | None, size: int, seed: int, key: str,
                 max_count: int | None = None) -> tuple[torch.Tensor, str]:
    """A trial's texture bank (T, 3, size, size) and where it came from.

    From ``root`` (a DTD-like folder, decoded once per process; callers must not modify the tensor)
    or, without a folder, ``min(PROCEDURAL_BANK_SIZE, max_count)`` procedural textures drawn from
    their own generator seeded with ``seed``. ``key`` is the config key named in errors.
    """
    if root:
        try:
            return _cached_textures(str(root), size, max_count), f"folder {root}"
        except FileNotFoundError as err:
            raise FileNotFoundError(f"config key '{key}': {err}") from err
    count = PROCEDURAL_BANK_SIZE if max_count is None else min(PROCEDURAL_BANK_SIZE, max_count)
    return procedural_textures(count, size, torch.Generator().manual_seed(seed)), "procedural"
