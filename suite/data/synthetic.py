"""Built-in synthetic categories, generated deterministically in the MVTec layout.

``synthetic_root(cache_dir, image_size)`` writes (once, atomically) and returns a folder with

* ``synth_texture``: an oriented woven texture (two crossed sinusoid families with random phases,
  a thread-level modulation and smooth low-frequency noise) with a small colour jitter;
* ``synth_object``: a centred bottle-top-like object (outer disc, raised ring, metallic centre with
  a groove and a pose mark at a random angle) with small pose / size / colour jitter on a plain
  background.

Each category has ``NUM_TRAIN_GOOD`` training normals, ``NUM_TEST_GOOD`` good test images and
``NUM_PER_DEFECT`` test images per defect type. The defects are deliberately unlike the stage-1
training corruptions (solid colour blocks, copy-pasted patches, straight lines): blurry stains,
holes with a rim, curved scratches and swirl warps for the texture; missing parts, colour shifts,
curved scratches and dents of the outline for the object.

Masks are exact: a defect only touches pixels inside its support, and the mask is the set of pixels
whose saved 8-bit value differs from the clean rendering (holes inside that set filled). So every
changed pixel is in the mask and every pixel outside it equals the clean image.

Everything derives from ``SYNTHETIC_SEED`` through ``numpy.random.default_rng`` seeded by
(seed, category, split, defect, index); the same call writes the same bytes. Geometry is expressed
in fractions of the image size, so the 128 px and 256 px versions show the same scenes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from suite.data.common import default_cache_dir

SYNTHETIC_VERSION = "v1"
SYNTHETIC_SEED = 20240611
SYNTHETIC_CATEGORIES = ("synth_texture", "synth_object")
TEXTURE_DEFECTS = ("stain", "hole", "bent_scratch", "warp")
OBJECT_DEFECTS = ("missing_part", "color_shift", "bent_scratch", "dent")
DEFECTS = {"synth_texture": TEXTURE_DEFECTS, "synth_object": OBJECT_DEFECTS}
NUM_TRAIN_GOOD = 60
NUM_TEST_GOOD = 12
NUM_PER_DEFECT = 6
MANIFEST = "manifest.json"
MIN_IMAGE_SIZE = 32
SENSOR_NOISE_STD = 0.006  # per-pixel Gaussian noise, so backgrounds are not perfectly flat

_SPLIT_CODES = {"train": 0, "test": 1}


def synthetic_image_size(requested: int) -> int:
    """Resolution the synthetic data is generated at for a requested model input size:
    128 up to 128 px, else 256 (``load_arrays`` resizes from there)."""
    return 128 if requested <= 128 else 256


# ----------------------------------------------------------------------------------------------
# drawing primitives (coordinates in pixels, arrays (H, W) or (H, W, 3) float64 in [0, 1])


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(x, y)``."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    return xs + 0.5, ys + 0.5


def _coverage(signed_inside: np.ndarray) -> np.ndarray:
    """Antialiased coverage from a signed distance in pixels (positive inside): a 1 px ramp."""
    return np.clip(signed_inside + 0.5, 0.0, 1.0)


def _blend(image: np.ndarray, target: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``image + alpha * (target - image)``; exactly ``image`` where ``alpha == 0``."""
    return image + alpha[..., None] * (target - image)


def _ellipse_radius(x, y, cx, cy, a, b, angle) -> np.ndarray:
    """Normalised elliptic radius: 1 on the ellipse with semi-axes ``a, b`` rotated by ``angle``."""
    c, s = np.cos(angle), np.sin(angle)
    u = (x - cx) * c + (y - cy) * s
    v = -(x - cx) * s + (y - cy) * c
    return np.sqrt((u / a) ** 2 + (v / b) ** 2)


def _wrap_angle(theta: np.ndarray) -> np.ndarray:
    return (theta + np.pi) % (2 * np.pi) - np.pi


def _arc_alpha(
    x, y, rng: np.random.Generator, size: int, thickness: float, mid_centre: tuple[float, float], mid_spread: float
) -> np.ndarray:
    """Coverage of a curved scratch with round caps: an arc of a circle (radius 0.25-0.6 S, length
    0.2-0.4 S) whose midpoint is uniform in the square of half-width ``mid_spread`` around
    ``mid_centre``."""
    radius = rng.uniform(0.25, 0.6) * size
    length = rng.uniform(0.2, 0.4) * size
    half_span = 0.5 * length / radius
    mid = np.asarray(mid_centre) + rng.uniform(-mid_spread, mid_spread, size=2)
    facing = rng.uniform(-np.pi, np.pi)  # direction from the circle centre to the arc midpoint
    cx, cy = mid[0] - radius * np.cos(facing), mid[1] - radius * np.sin(facing)
    dx, dy = x - cx, y - cy
    rel = _wrap_angle(np.arctan2(dy, dx) - facing)
    on_span = np.abs(rel) <= half_span
    dist_to_circle = np.abs(np.hypot(dx, dy) - radius)
    ends = [
        (cx + radius * np.cos(facing + sign * half_span), cy + radius * np.sin(facing + sign * half_span))
        for sign in (-1.0, 1.0)
    ]
    dist_to_ends = np.minimum(*(np.hypot(x - ex, y - ey) for ex, ey in ends))
    dist = np.where(on_span, dist_to_circle, dist_to_ends)
    return _coverage(thickness / 2.0 - dist)


def _quantize(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# synth_texture


@dataclass
class _Texture:
    angle: float
    frequency: float  # thread cycles per image width
    phases: np.ndarray  # (3,)
    noise_freqs: np.ndarray  # (K, 2) low frequencies in cycles per image
    noise_phases: np.ndarray  # (K,)
    noise_amps: np.ndarray  # (K,)
    colour: np.ndarray  # (3,)


def _texture_params(rng: np.random.Generator) -> _Texture:
    k = 6
    return _Texture(
        angle=np.deg2rad(30.0 + rng.uniform(-4.0, 4.0)),
        frequency=rng.uniform(9.0, 11.0),
        phases=rng.uniform(0.0, 2 * np.pi, size=3),
        noise_freqs=rng.uniform(-3.5, 3.5, size=(k, 2)),
        noise_phases=rng.uniform(0.0, 2 * np.pi, size=k),
        noise_amps=rng.uniform(0.5, 1.0, size=k) / k,
        colour=np.array([0.62, 0.50, 0.36]) * rng.uniform(0.96, 1.04) + rng.normal(0.0, 0.008, size=3),
    )


def _render_texture(p: _Texture, x: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    """Woven pattern at (possibly warped) pixel coordinates ``x, y``.

    With ``u, v`` the coordinates rotated by the weave angle (in image widths) and ``f`` the thread
    frequency: ``warp = sin(2 pi f u + p0)``, ``weft = sin(2 pi f v + p1)``; the visible thread
    alternates with ``sign-ish(sin(pi f (u + v) + p2))`` (over/under), plus smooth noise
    ``sum_k a_k sin(2 pi (f_k . (x, y)) / S + phi_k)``.
    """
    xn, yn = x / size, y / size
    c, s = np.cos(p.angle), np.sin(p.angle)
    u, v = xn * c + yn * s, -xn * s + yn * c
    two_pi_f = 2 * np.pi * p.frequency
    warp = np.sin(two_pi_f * u + p.phases[0])
    weft = np.sin(two_pi_f * v + p.phases[1])
    over = np.tanh(3.0 * np.sin(np.pi * p.frequency * (u + v) + p.phases[2]))  # which thread is on top
    threads = 0.5 + 0.22 * (over * warp + (1 - np.abs(over)) * 0.5 * weft) - 0.12 * over * weft
    noise = np.zeros_like(xn)
    for (fx, fy), phase, amp in zip(p.noise_freqs, p.noise_phases, p.noise_amps):
        noise += amp * np.sin(2 * np.pi * (fx * xn + fy * yn) + phase)
    brightness = np.clip(threads + 0.35 * noise, 0.0, 1.0)
    return p.colour[None, None, :] * (0.55 + 0.8 * brightness[..., None])


def _texture_defect(
    kind: str, clean: np.ndarray, p: _Texture, noise: np.ndarray, rng: np.random.Generator, size: int
) -> np.ndarray:
    x, y = _grid(size)
    scale = size / 128.0
    if kind == "stain":
        # Blurry darker, lighter or tinted ellipse: alpha falls off linearly over half the radius.
        cx, cy = rng.uniform(0.2, 0.8, size=2) * size
        a, b = rng.uniform(0.07, 0.14, size=2) * size
        r = _ellipse_radius(x, y, cx, cy, a, b, rng.uniform(0, np.pi))
        alpha = rng.uniform(0.6, 0.85) * np.clip((1.0 - r) / 0.5, 0.0, 1.0)
        style = rng.integers(0, 3)
        if style == 0:
            target = clean * 0.45
        elif style == 1:
            target = clean + (1.0 - clean) * 0.6
        else:
            target = clean * np.array([0.75, 0.55, 0.25])
        return _blend(clean, target, alpha)
    if kind == "hole":
        # Dark round hole with a lighter, raised rim.
        cx, cy = rng.uniform(0.2, 0.8, size=2) * size
        radius = rng.uniform(0.035, 0.06) * size
        d = np.hypot(x - cx, y - cy)
        rim = _coverage(1.45 * radius - d)
        inside = _coverage(radius - d)
        out = _blend(clean, np.clip(clean * 1.35 + 0.12, 0, 1), 0.8 * rim)
        hole_colour = np.full(3, 0.05) + 0.05 * (d / radius)[..., None]
        return _blend(out, hole_colour, inside)
    if kind == "bent_scratch":
        alpha = _arc_alpha(x, y, rng, size, rng.uniform(1.6, 2.6) * scale, (size / 2, size / 2), 0.3 * size)
        target = np.full(3, 0.93) if rng.random() < 0.5 else clean * 0.3
        return _blend(clean, target, 0.9 * alpha)
    if kind == "warp":
        # Swirl: points within ~2 sigma of the centre are rotated by angle0 * exp(-r^2 / 2 sigma^2).
        # Displacements under 0.75 px are cut to zero so the support (the mask) stays close to the
        # visibly distorted area instead of spreading over the faint tail of the Gaussian.
        cx, cy = rng.uniform(0.25, 0.75, size=2) * size
        sigma = rng.uniform(0.05, 0.07) * size
        angle0 = rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 1.5)
        dx, dy = x - cx, y - cy
        theta = angle0 * np.exp(-(dx**2 + dy**2) / (2 * sigma**2))
        c, s = np.cos(theta), np.sin(theta)
        wx, wy = cx + c * dx - s * dy, cy + s * dx + c * dy
        moved = np.hypot(wx - x, wy - y) >= 0.75
        wx, wy = np.where(moved, wx, x), np.where(moved, wy, y)
        return _render_texture(p, wx, wy, size) + noise
    raise ValueError(f"unknown synth_texture defect {kind!r}")


NATURAL_DEFECTS = ("stain", "hole", "bent_scratch")


def natural_defects(images: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Paint one stain, hole or bent scratch (cycling in that order) on each of ``images``.

    ``images``: float (N, 3, S, S) in [0, 1]. Returns ``(defective, masks)`` with masks float
    (N, 1, S, S) in {0, 1}, exactly the pixels that changed by more than half a grey level. These
    are the synthetic texture category's generic defects; no method trains on them (RcAE's
    augmentation paints blocks, pastes and straight lines, the filtering baseline's textured elastic shapes), so they
    make a validation set that does not reward memorising one's own training corruption.
    Deterministic given ``seed``.
    """
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        raise ValueError(f"natural_defects expects (N, 3, S, S) images, got shape {images.shape}")
    rng = np.random.default_rng(seed)
    size = images.shape[2]
    defective = images.astype(np.float64, copy=True)
    masks = np.zeros((images.shape[0], 1, size, size), dtype=np.float32)
    for i in range(images.shape[0]):
        clean = images[i].transpose(1, 2, 0).astype(np.float64)
        for _attempt in range(8):
            kind = NATURAL_DEFECTS[i % len(NATURAL_DEFECTS)]
            final = np.clip(_texture_defect(kind, clean, None, None, rng, size), 0.0, 1.0)
            changed = np.any(np.abs(final - clean) > 0.5 / 255, axis=2)
            if changed.any():
                break
        else:  # e.g. a stain on a black image: fall back to a hole, which always shows
            final = np.clip(_texture_defect("hole", clean, None, None, rng, size), 0.0, 1.0)
            changed = np.any(np.abs(final - clean) > 0.5 / 255, axis=2)
        final = np.where(changed[..., None], final, clean)
        defective[i] = final.transpose(2, 0, 1)
        masks[i, 0] = changed
    return defective.astype(images.dtype), masks


# ----------------------------------------------------------------------------------------------
# synth_object


@dataclass
class _Object:
    cx: float  # centre in image widths
    cy: float
    radius: float  # outer radius in image widths
    body: np.ndarray  # (3,) outer disc colour
    metal: np.ndarray  # (3,) centre colour
    mark_angle: float  # pose: angle of the mark on the ring
    background: np.ndarray  # (3,)


def _object_params(rng: np.random.Generator) -> _Object:
    return _Object(
        cx=0.5 + rng.normal(0.0, 0.012),
        cy=0.5 + rng.normal(0.0, 0.012),
        radius=0.34 * (1.0 + rng.uniform(-0.03, 0.03)),
        body=np.array([0.16, 0.40, 0.28]) + rng.normal(0.0, 0.015, size=3),
        metal=np.array([0.68, 0.68, 0.71]) + rng.normal(0.0, 0.01),
        mark_angle=rng.uniform(-np.pi, np.pi),
        background=np.array([0.86, 0.85, 0.82]) + rng.normal(0.0, 0.005),
    )


def _render_object(
    p: _Object,
    size: int,
    radius_change: Callable[[np.ndarray], np.ndarray] | None = None,
    keep: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(image, object_coverage)``. ``radius_change(theta)`` (pixels) deforms the outline;
    ``keep`` (coverage in [0, 1]) removes parts of the object, revealing the background."""
    x, y = _grid(size)
    cx, cy, radius = p.cx * size, p.cy * size, p.radius * size
    dx, dy = x - cx, y - cy
    r, theta = np.hypot(dx, dy), np.arctan2(dy, dx)
    outline = radius + (radius_change(theta) if radius_change is not None else 0.0)
    coverage = _coverage(outline - r)
    if keep is not None:
        coverage = coverage * keep
    rel = r / radius
    # Lit from the top-left: darker towards the rim and on the lower-right side.
    shade = 1.0 - 0.22 * rel**2 + 0.12 * rel * np.cos(theta + 0.75 * np.pi)
    image = p.body[None, None, :] * shade[..., None]
    ring = _coverage(0.80 * radius - r) * _coverage(r - 0.70 * radius)
    image = _blend(image, np.clip(p.body * 1.6 + 0.05, 0, 1) * shade[..., None], ring)
    centre = _coverage(0.5 * radius - r)
    metal = p.metal * (0.85 + 0.25 * np.cos(3.0 * rel * np.pi))[..., None]
    image = _blend(image, metal, centre)
    groove = _coverage(0.025 * radius - np.abs(r - 0.33 * radius))
    image = _blend(image, p.metal * 0.45, groove)
    mx, my = cx + 0.75 * radius * np.cos(p.mark_angle), cy + 0.75 * radius * np.sin(p.mark_angle)
    mark = _coverage(0.06 * radius - np.hypot(x - mx, y - my))
    image = _blend(image, np.array([0.95, 0.92, 0.55]), mark)
    background = p.background[None, None, :] * (1.0 - 0.04 * (y / size))[..., None]
    return _blend(background, image, coverage), coverage


def _object_defect(
    kind: str, clean: np.ndarray, cover: np.ndarray, p: _Object, noise: np.ndarray, rng: np.random.Generator, size: int
) -> np.ndarray:
    x, y = _grid(size)
    radius = p.radius * size
    cx, cy = p.cx * size, p.cy * size
    if kind == "missing_part":
        # A bite out of the rim: a disc centred on the outline removed from the object.
        angle = rng.uniform(-np.pi, np.pi)
        bite_r = rng.uniform(0.25, 0.4) * radius
        bx, by = cx + radius * np.cos(angle), cy + radius * np.sin(angle)
        keep = 1.0 - _coverage(bite_r - np.hypot(x - bx, y - by))
        image, _ = _render_object(p, size, keep=keep)
        return image + noise
    if kind == "color_shift":
        # Rust-like discolouration of an ellipse on the object, sharp (1 px) edge.
        rho, phi = rng.uniform(0.0, 0.5) * radius, rng.uniform(-np.pi, np.pi)
        ex, ey = cx + rho * np.cos(phi), cy + rho * np.sin(phi)
        a, b = rng.uniform(0.15, 0.3, size=2) * radius
        r = _ellipse_radius(x, y, ex, ey, a, b, rng.uniform(0, np.pi))
        alpha = _coverage((1.0 - r) * min(a, b)) * cover
        shift = np.array([0.30, -0.05, -0.20]) * rng.uniform(0.8, 1.2)
        return _blend(clean, np.clip(clean + shift, 0, 1), alpha)
    if kind == "bent_scratch":
        # Redraw until at least 90% of the arc lies on the object (the part off it is clipped).
        for _ in range(50):
            arc = _arc_alpha(x, y, rng, size, rng.uniform(1.6, 2.6) * size / 128.0, (cx, cy), 0.4 * radius)
            if (arc * cover).sum() >= 0.9 * arc.sum():
                break
        return _blend(clean, np.full(3, 0.92), 0.85 * arc * cover)
    if kind == "dent":
        # Outline pushed in (dent) or out (bulge) by depth * exp(-d_theta^2 / 2 w^2); changes under
        # 0.3 px are cut so pixels away from the deformation are untouched.
        centre_angle = rng.uniform(-np.pi, np.pi)
        width = rng.uniform(0.18, 0.3)
        depth = rng.uniform(0.10, 0.16) * radius * rng.choice([-1.0, 1.0])

        def radius_change(theta: np.ndarray) -> np.ndarray:
            change = depth * np.exp(-_wrap_angle(theta - centre_angle) ** 2 / (2 * width**2))
            return np.where(np.abs(change) >= 0.3, change, 0.0)

        image, _ = _render_object(p, size, radius_change=radius_change)
        return image + noise
    raise ValueError(f"unknown synth_object defect {kind!r}")


# ----------------------------------------------------------------------------------------------
# one sample


def _rng(category: str, split: str, defect_index: int, index: int) -> np.random.Generator:
    return np.random.default_rng(
        [SYNTHETIC_SEED, SYNTHETIC_CATEGORIES.index(category), _SPLIT_CODES[split], defect_index, index]
    )


def render_sample(
    category: str, split: str, defect: str, index: int, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(clean, image, mask)``: uint8 ``(S, S, 3)`` clean and final images and a bool ``(S, S)``
    mask for one synthetic sample. ``defect`` is "good" or one of the category's defect types; for
    "good", ``image == clean`` and the mask is empty."""
    if category not in SYNTHETIC_CATEGORIES:
        raise ValueError(f"unknown synthetic category {category!r}; valid: {', '.join(SYNTHETIC_CATEGORIES)}")
    defects = DEFECTS[category]
    if defect != "good" and defect not in defects:
        raise ValueError(f"unknown {category} defect {defect!r}; valid: {', '.join(defects)}")
    defect_index = 0 if defect == "good" else 1 + defects.index(defect)
    rng = _rng(category, split, defect_index, index)
    noise = rng.normal(0.0, SENSOR_NOISE_STD, size=(size, size, 3))
    if category == "synth_texture":
        params = _texture_params(rng)
        clean = _render_texture(params, *_grid(size), size) + noise
        final = clean if defect == "good" else _texture_defect(defect, clean, params, noise, rng, size)
    else:
        params = _object_params(rng)
        base, cover = _render_object(params, size)
        clean = base + noise
        final = clean if defect == "good" else _object_defect(defect, clean, cover, params, noise, rng, size)
    clean_q, final_q = _quantize(clean), _quantize(final)
    changed = np.any(clean_q != final_q, axis=2)
    from scipy import ndimage  # deferred: scipy is slow to import and only needed when generating

    mask = ndimage.binary_fill_holes(changed)
    if defect != "good" and not mask.any():
        raise RuntimeError(f"synthetic {category}/{defect} #{index} changed no pixel")  # a generator bug
    return clean_q, final_q, mask


# ----------------------------------------------------------------------------------------------
# writing


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, format="PNG", compress_level=1)


def generate_synthetic(destination: str | Path, image_size: int = 128) -> dict:
    """Write both synthetic categories under ``destination`` (non-atomically; see
    ``synthetic_root``) and return the manifest, which is also written last as ``manifest.json``."""
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"synthetic image_size must be >= {MIN_IMAGE_SIZE}, got {image_size}")
    destination = Path(destination)
    manifest: dict = {
        "version": SYNTHETIC_VERSION,
        "seed": SYNTHETIC_SEED,
        "image_size": image_size,
        "categories": {},
    }
    for category in SYNTHETIC_CATEGORIES:
        cat_dir = destination / category
        plan = [("train", "good", NUM_TRAIN_GOOD), ("test", "good", NUM_TEST_GOOD)]
        plan += [("test", defect, NUM_PER_DEFECT) for defect in DEFECTS[category]]
        counts: dict[str, int] = {}
        for split, defect, count in plan:
            image_dir = cat_dir / split / defect
            image_dir.mkdir(parents=True, exist_ok=True)
            if defect != "good":
                (cat_dir / "ground_truth" / defect).mkdir(parents=True, exist_ok=True)
            for index in range(count):
                _, image, mask = render_sample(category, split, defect, index, image_size)
                _save_png(image, image_dir / f"{index:03d}.png")
                if defect != "good":
                    _save_png(mask.astype(np.uint8) * 255, cat_dir / "ground_truth" / defect / f"{index:03d}_mask.png")
            counts[f"{split}/{defect}"] = count
        manifest["categories"][category] = counts
    (destination / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def synthetic_root(cache_dir: str | Path | None = None, image_size: int = 128) -> str:
    """Folder holding the synthetic categories at ``image_size`` px, generated on first use.

    Located at ``<cache_dir>/synthetic-v1-<image_size>`` (``cache_dir`` defaults to
    ``$RCSUITE_CACHE`` or ``~/.cache/rcsuite``). Generation goes to a temporary sibling folder that
    is renamed into place once complete (rename is atomic), so a reader never sees a partial tree;
    when two processes race, the loser discards its copy (both are byte-identical).
    """
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    final = base / f"synthetic-{SYNTHETIC_VERSION}-{image_size}"
    if (final / MANIFEST).is_file():
        return str(final)
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"synthetic image_size must be >= {MIN_IMAGE_SIZE}, got {image_size}")
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=base))
    try:
        os.chmod(staging, 0o755)
        generate_synthetic(staging, image_size)
        if final.exists() and not (final / MANIFEST).is_file():
            # Only complete trees are ever renamed into place, so this is debris from something
            # else (e.g. an interrupted manual copy): replace it.
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.rename(staging, final)
        except OSError:
            if not (final / MANIFEST).is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return str(final)
