# PRE-REWRITE REFERENCE (issue 20): suite/data/val_anomalies.py as of commit d6f831c (the per-image numpy
# generator), kept verbatim as the oracle for tests/unit/data/test_val_anomalies_distributions.py.
# Not used by the suite.
"""Hard synthetic anomalies for model selection: subtle, realistic defects with a difficulty knob.

``hard_defects(images, donors, seed, difficulty)`` paints one defect on each image, the kinds
cycling in the order of ``HARD_DEFECTS``:

* ``faint_spot``: a small soft-edged irregular blob whose colour shifts by a low contrast
  (darker, lighter or tinted);
* ``thin_scratch``: a thin, slightly curved (quadratic Bezier), anti-aliased, low-contrast line
  whose contrast fades towards its ends;
* ``deformation``: a local warp of the image content (bulge, pinch or shear) with a smooth,
  compactly supported falloff, resampled bilinearly;
* ``misplaced_part``: an irregular soft-edged piece of another normal image (a donor), taken from a
  *different* location, pasted here;
* ``missing_part``: an irregular region whose content is smoothed away (an inpainting-like fill
  from the surrounding pixels).

They are deliberately unlike the methods' training corruptions (RcAE: solid colour blocks,
same-size rectangular copy-paste patches, straight lines; the occluders: textured elastic ellipses and
strokes) and unlike ``synthetic.natural_defects`` (large, high-contrast stains, holes and
scratches), which saturate the validation metrics.

Difficulty ``d`` in [0, 1]: each size / contrast range ``[lo, hi]`` is interpolated geometrically
between its ``d = 0`` and ``d = 1`` values (``lo(d) = lo0 * (lo1 / lo0) ** d``, same for ``hi``)
and a parameter is ``lo(d) + u * (hi(d) - lo(d))`` for a uniform draw ``u`` that does not depend on
``d``. So for a fixed seed the defects sit at the same places and only shrink and fade as ``d``
grows: ``d = 0`` is clearly visible and medium sized (like the old natural defects), ``d = 1`` is
small and faint (peak contrast around 10-25 grey levels, sizes floored in pixels so a defect covers
at least a handful of pixels). Lengths are fractions of the image side ``S`` (the same scene at
32 px and at 1024 px), with floors in pixels.

Masks: exactly the pixels whose value changed by more than ``VISIBLE_CHANGE`` (2/255) in any
channel, computed in float64 from the returned arrays; every other pixel is reset to the clean
value, so pixels outside the mask are bit-identical to the input. A draw changing fewer than
``MIN_DEFECT_PIXELS`` pixels (e.g. a warp of a flat region) is redrawn up to ``MAX_ATTEMPTS``
times, then replaced by a clearly visible spot, so no mask is empty.

All randomness comes from ``np.random.default_rng(seed)`` (one spawned child generator per image,
so an image's defect does not depend on the other images). Each defect is computed on a window
around it, so the cost does not grow with the image area.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

HARD_DEFECTS = ("faint_spot", "thin_scratch", "deformation", "misplaced_part", "missing_part")
VISIBLE_CHANGE = 2.0 / 255.0  # a pixel is defective when some channel changed by more than this
MIN_DEFECT_PIXELS = 4  # a draw changing fewer pixels is redrawn
MAX_ATTEMPTS = 6  # draws per image before falling back to a clearly visible spot

_LUMA = np.array([0.299, 0.587, 0.114])


def defect_kinds() -> tuple[str, ...]:
    """The defect kinds ``hard_defects`` paints, in its cycling order."""
    return HARD_DEFECTS


# ----------------------------------------------------------------------------------------------
# helpers (coordinates are pixel centres: pixel (i, j) has centre (x, y) = (j + 0.5, i + 0.5))


def _ranged(rng: np.random.Generator, d: float, at0: tuple[float, float], at1: tuple[float, float]) -> float:
    """A draw from ``[lo(d), hi(d)]``, the ends interpolated geometrically from ``at0`` (d=0) to
    ``at1`` (d=1); the uniform ``u`` is drawn independently of ``d``."""
    u = rng.random()
    lo = at0[0] * (at1[0] / at0[0]) ** d
    hi = at0[1] * (at1[1] / at0[1]) ** d
    return lo + u * (hi - lo)


def _window(cx: float, cy: float, half: float, size: int) -> tuple[slice, slice, np.ndarray, np.ndarray]:
    """Slices of the square of half-width ``half`` around ``(cx, cy)`` clipped to the image, and
    the pixel-centre coordinates ``xs`` (1, w) and ``ys`` (h, 1) inside it."""
    x0, x1 = max(0, int(math.floor(cx - half))), min(size, int(math.ceil(cx + half)) + 1)
    y0, y1 = max(0, int(math.floor(cy - half))), min(size, int(math.ceil(cy + half)) + 1)
    xs = (np.arange(x0, x1, dtype=np.float64) + 0.5)[None, :]
    ys = (np.arange(y0, y1, dtype=np.float64) + 0.5)[:, None]
    return slice(y0, y1), slice(x0, x1), xs, ys


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _blob_params(rng: np.random.Generator) -> dict:
    """Shape of an irregular blob (drawn the same way at every difficulty)."""
    return {
        "aspect": rng.uniform(0.55, 1.0),
        "angle": rng.uniform(0.0, np.pi),
        "amps": rng.uniform(0.0, 0.13, size=3),  # harmonics k = 2, 3, 4
        "phases": rng.uniform(0.0, 2 * np.pi, size=3),
    }


_BLOB_EXTENT = 1.0 + 3 * 0.13  # the rim never reaches beyond this many radii


def _blob_alpha(xs, ys, cx, cy, radius, shape: dict, softness: float) -> np.ndarray:
    """Soft irregular blob: with ``rho`` the elliptic radius in units of ``radius`` (minor axis
    ``aspect * radius``, rotated by ``angle``) and polar angle ``theta``, the rim is
    ``rim(theta) = 1 + sum_k a_k cos(k theta + phi_k)`` (k = 2, 3, 4) and the opacity
    ``smoothstep((rim - rho) / (softness * rim))``: 1 in the core, falling smoothly to 0 at the rim."""
    c, s = math.cos(shape["angle"]), math.sin(shape["angle"])
    u = ((xs - cx) * c + (ys - cy) * s) / radius
    v = (-(xs - cx) * s + (ys - cy) * c) / (radius * shape["aspect"])
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    rim = 1.0 + sum(a * np.cos(k * theta + p) for k, a, p in zip((2, 3, 4), shape["amps"], shape["phases"]))
    return _smoothstep((rim - rho) / (softness * rim))


def _centre(rng: np.random.Generator, size: int, structure: np.ndarray | None = None) -> tuple[float, float]:
    """A defect centre in the central 76% of the image: uniform, or (with a coarse ``structure``
    map, see ``_structure``) in a cell drawn with probability proportional to its edge energy."""
    lo, hi = 0.12 * size, 0.88 * size
    if structure is None:
        x, y = rng.uniform(lo, hi, size=2)
        return float(x), float(y)
    g = structure.shape[0]
    cell = size / g
    p = structure.ravel() / structure.sum()
    k = int(rng.choice(p.size, p=p))
    jx, jy = rng.random(2)
    x = (k % g + jx) * cell
    y = (k // g + jy) * cell
    return float(np.clip(x, lo, hi)), float(np.clip(y, lo, hi))


def _structure(lum: np.ndarray) -> np.ndarray:
    """Sampling weights on a coarse (about 16 x 16) grid: the square root of the mean gradient
    magnitude of the luminance per cell (the root flattens the preference, so not every defect lands
    on the strongest outline), plus a floor of 20% of its mean, restricted to the central region."""
    size = lum.shape[0]
    grad = np.zeros_like(lum)
    grad[:, :-1] += np.abs(np.diff(lum, axis=1))
    grad[:-1, :] += np.abs(np.diff(lum, axis=0))
    g = min(16, size)
    b = size // g
    cells = grad[: g * b, : g * b].reshape(g, b, g, b).mean(axis=(1, 3))
    centres = (np.arange(g) + 0.5) / g
    inside = (centres > 0.1) & (centres < 0.9)
    keep = inside[:, None] & inside[None, :]
    cells = np.sqrt(cells) * keep
    return (cells + 0.2 * cells.mean() + 1e-12) * keep


def _box_smooth(a: np.ndarray, sigma: float) -> np.ndarray:
    """Approximate Gaussian blur of the last two axes (three box passes, cost independent of sigma)."""
    n = max(1, int(round(math.sqrt(4.0 * sigma * sigma + 1.0))))
    axes = (a.ndim - 2, a.ndim - 1)
    for _ in range(3):
        a = ndimage.uniform_filter(a, size=n, mode="nearest", axes=axes)
    return a


# ----------------------------------------------------------------------------------------------
# the defects: each returns (row slice, column slice, new window (3, h, w) float64)


def _faint_spot(clean, donor, rng, d, size, structure):
    """Radius ``R = S * U(0.06, 0.11)`` at d=0 -> ``S * U(0.015, 0.03)`` at d=1 (at least 2 px),
    irregular blob with a soft edge over 60% of the radius; peak shift ``c = U(0.18, 0.30)`` ->
    ``U(0.04, 0.06)``: ``x + c * alpha * v`` with ``v = -1`` (darker), ``+1`` (lighter) or tinted
    (``v = +-1 + 0.35 n``, ``n ~ N(0, I_3)``, rescaled to max-norm 1). The sign flips when the shift
    would clip (e.g. darker on black)."""
    cx, cy = _centre(rng, size)
    shape = _blob_params(rng)
    radius = max(2.0, size * _ranged(rng, d, (0.06, 0.11), (0.015, 0.03)))
    contrast = _ranged(rng, d, (0.18, 0.30), (0.04, 0.06))
    style = int(rng.integers(0, 3))
    tint = rng.normal(size=3)
    rows, cols, xs, ys = _window(cx, cy, radius * _BLOB_EXTENT + 1, size)
    alpha = _blob_alpha(xs, ys, cx, cy, radius, shape, softness=0.6)
    patch = clean[:, rows, cols]
    core = alpha > 0.5
    mean = float(np.tensordot(_LUMA, patch, axes=1)[core].mean()) if core.any() else 0.5
    sign = -1.0 if style != 1 else 1.0
    if sign < 0 and mean - contrast < 0.03:
        sign = 1.0
    elif sign > 0 and mean + contrast > 0.97:
        sign = -1.0
    direction = np.full(3, sign)
    if style == 2:  # tinted: a darker / lighter shift with a random colour cast, not a pure hue
        direction = direction + 0.35 * tint
        direction = direction / np.abs(direction).max()
    return rows, cols, patch + contrast * alpha[None] * direction[:, None, None]


def _thin_scratch(clean, donor, rng, d, size, structure):
    """Quadratic Bezier ``B(t) = (1-t)^2 P0 + 2t(1-t) P1 + t^2 P2`` with chord ``L = S * U(0.25, 0.40)``
    -> ``S * U(0.08, 0.14)`` (at least 6 px) and control point ``P1`` off the chord midpoint by
    ``U(-0.3, 0.3) * L``; width ``w = 0.018 S`` -> ``0.006 S`` (at least 1 px), anti-aliased
    coverage ``clip(w/2 - dist + 0.5, 0, 1)`` times a taper ``sin(pi t)^0.5`` along the curve; grey
    shift ``c = U(0.25, 0.40)`` -> ``U(0.06, 0.09)``, lighter or darker (flipped when it would clip)."""
    cx, cy = _centre(rng, size)
    angle = rng.uniform(0.0, np.pi)
    bend = rng.uniform(-0.3, 0.3)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    length = max(6.0, size * _ranged(rng, d, (0.25, 0.40), (0.08, 0.14)))
    width = max(1.0, size * 0.018 * (0.006 / 0.018) ** d)
    contrast = _ranged(rng, d, (0.25, 0.40), (0.06, 0.09))
    e = np.array([math.cos(angle), math.sin(angle)])
    n = np.array([-e[1], e[0]])
    mid = np.array([cx, cy])
    p0, p2 = mid - 0.5 * length * e, mid + 0.5 * length * e
    p1 = mid + bend * length * n
    k = int(np.clip(math.ceil(length / 3.0), 8, 64))
    t = np.linspace(0.0, 1.0, k + 1)[:, None]
    pts = (1 - t) ** 2 * p0 + 2 * t * (1 - t) * p1 + t**2 * p2  # (k + 1, 2)
    reach = width / 2 + 1.5
    lo, hi = pts.min(axis=0) - reach, pts.max(axis=0) + reach
    x0, x1 = max(0, int(math.floor(lo[0]))), min(size, int(math.ceil(hi[0])) + 1)
    y0, y1 = max(0, int(math.floor(lo[1]))), min(size, int(math.ceil(hi[1])) + 1)
    rows, cols = slice(y0, y1), slice(x0, x1)
    dist = np.full((y1 - y0, x1 - x0), np.inf)
    tpar = np.zeros_like(dist)
    for i in range(k):  # distance to each segment, evaluated on the segment's own small box
        a, b = pts[i], pts[i + 1]
        slo, shi = np.minimum(a, b) - reach, np.maximum(a, b) + reach
        sx0, sx1 = max(x0, int(math.floor(slo[0]))), min(x1, int(math.ceil(shi[0])) + 1)
        sy0, sy1 = max(y0, int(math.floor(slo[1]))), min(y1, int(math.ceil(shi[1])) + 1)
        if sx1 <= sx0 or sy1 <= sy0:
            continue
        px = (np.arange(sx0, sx1) + 0.5)[None, :] - a[0]
        py = (np.arange(sy0, sy1) + 0.5)[:, None] - a[1]
        ab = b - a
        proj = np.clip((px * ab[0] + py * ab[1]) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
        dseg = np.hypot(px - proj * ab[0], py - proj * ab[1])
        sub = (slice(sy0 - y0, sy1 - y0), slice(sx0 - x0, sx1 - x0))
        better = dseg < dist[sub]
        dist[sub] = np.where(better, dseg, dist[sub])
        tpar[sub] = np.where(better, (i + proj) / k, tpar[sub])
    alpha = np.clip(width / 2 - dist + 0.5, 0.0, 1.0) * np.sqrt(np.sin(np.pi * tpar))
    patch = clean[:, rows, cols]
    on = alpha > 0.5
    mean = float(np.tensordot(_LUMA, patch, axes=1)[on].mean()) if on.any() else 0.5
    if sign < 0 and mean - contrast < 0.03:
        sign = 1.0
    elif sign > 0 and mean + contrast > 0.97:
        sign = -1.0
    return rows, cols, patch + sign * contrast * alpha[None]


def _deformation(clean, donor, rng, d, size, structure):
    """Radius ``R = S * U(0.07, 0.12)`` -> ``S * U(0.03, 0.05)`` (at least 4 px), falloff
    ``f(r) = (1 - (r/R)^2)^2`` for ``r < R``; peak displacement ``delta = S * U(0.025, 0.04)`` ->
    ``S * U(0.006, 0.010)`` (at least 1 px, at most 0.4 R, so the map does not fold). The pixel
    at ``p`` samples the clean image (bilinear, ``map_coordinates(order=1)``) at
    ``c + (p - c)(1 - k f)`` with ``k = +-delta / (0.286 R)`` (bulge / pinch; 0.286 R = max of
    ``r f(r)``), or at ``p - delta f(r) e`` for a random direction ``e`` (shear). The centre is drawn
    where the image has edges (see ``_structure``). Bilinear resampling adds no new colours."""
    cx, cy = _centre(rng, size, structure)
    mode = int(rng.integers(0, 3))  # 0 bulge, 1 pinch, 2 shear
    direction = rng.uniform(0.0, 2 * np.pi)
    radius = max(4.0, size * _ranged(rng, d, (0.07, 0.12), (0.03, 0.05)))
    delta = min(0.4 * radius, max(1.0, size * _ranged(rng, d, (0.025, 0.04), (0.006, 0.010))))
    rows, cols, xs, ys = _window(cx, cy, radius + 1, size)
    dx, dy = xs - cx, ys - cy
    s2 = np.minimum((dx * dx + dy * dy) / (radius * radius), 1.0)
    f = (1.0 - s2) ** 2
    if mode < 2:
        k = (1.0 if mode == 0 else -1.0) * delta / (0.286 * radius)
        sx, sy = cx + dx * (1 - k * f), cy + dy * (1 - k * f)
    else:
        sx = xs - delta * f * math.cos(direction)
        sy = ys - delta * f * math.sin(direction)
    coords = np.stack(np.broadcast_arrays(sy - 0.5, sx - 0.5))
    out = np.stack([ndimage.map_coordinates(ch, coords, order=1, mode="nearest") for ch in clean])
    return rows, cols, out


def _misplaced_part(clean, donor, rng, d, size, structure):
    """Irregular blob of radius ``R = S * U(0.07, 0.12)`` -> ``S * U(0.025, 0.045)`` (at least 3 px),
    soft edge over 35% of the radius, cut from the donor (another normal image; the image itself
    when there is none) at an integer offset of length ``S * U(0.25, 0.45)`` -> ``S * U(0.06, 0.12)``
    (at least 2 px; reversed or shortened to stay inside the image) and pasted at opacity
    ``U(0.9, 1.0)`` -> ``U(0.35, 0.5)``: ``x + a * alpha * (donor(p + offset) - x)``."""
    cx, cy = _centre(rng, size, structure)
    shape = _blob_params(rng)
    direction = rng.uniform(0.0, 2 * np.pi)
    radius = max(3.0, size * _ranged(rng, d, (0.07, 0.12), (0.025, 0.045)))
    shift = max(2.0, size * _ranged(rng, d, (0.25, 0.45), (0.06, 0.12)))
    opacity = _ranged(rng, d, (0.9, 1.0), (0.35, 0.5))
    rows, cols, xs, ys = _window(cx, cy, radius * _BLOB_EXTENT + 1, size)
    alpha = _blob_alpha(xs, ys, cx, cy, radius, shape, softness=0.35)

    def allowed(ox: float, oy: float) -> tuple[int, int]:
        ox = int(np.clip(round(ox), -cols.start, size - cols.stop))
        oy = int(np.clip(round(oy), -rows.start, size - rows.stop))
        return ox, oy

    want = (shift * math.cos(direction), shift * math.sin(direction))
    ox, oy = allowed(*want)
    if math.hypot(ox, oy) < 0.5 * shift:
        back = allowed(-want[0], -want[1])
        if math.hypot(*back) > math.hypot(ox, oy):
            ox, oy = back
    source = donor if donor is not None else clean
    part = source[:, rows.start + oy : rows.stop + oy, cols.start + ox : cols.stop + ox]
    patch = clean[:, rows, cols]
    return rows, cols, patch + opacity * alpha[None] * (part - patch)


def _missing_part(clean, donor, rng, d, size, structure):
    """Irregular blob of radius ``R = S * U(0.06, 0.10)`` -> ``S * U(0.025, 0.04)`` (at least 3 px),
    soft edge over 35% of the radius, whose content is replaced by a fill from its surroundings:
    the normalised convolution ``G(x (1 - m)) / G(1 - m)`` (``m`` the blob support, ``G`` a blur of
    sigma ``0.6 R``), blended at opacity ``U(0.9, 1.0)`` -> ``U(0.4, 0.55)``. The centre is drawn
    where the image has edges."""
    cx, cy = _centre(rng, size, structure)
    shape = _blob_params(rng)
    radius = max(3.0, size * _ranged(rng, d, (0.06, 0.10), (0.025, 0.04)))
    opacity = _ranged(rng, d, (0.9, 1.0), (0.4, 0.55))
    sigma = 0.6 * radius
    half = radius * _BLOB_EXTENT + 1
    crows, ccols, cxs, cys = _window(cx, cy, half + 2.5 * sigma, size)
    alpha = _blob_alpha(cxs, cys, cx, cy, radius, shape, softness=0.35)
    context = clean[:, crows, ccols]
    known = (alpha <= 0).astype(np.float64)
    fill = _box_smooth(context * known[None], sigma) / np.maximum(_box_smooth(known, sigma), 1e-6)[None]
    out = context + opacity * alpha[None] * (fill - context)
    return crows, ccols, out


_PAINTERS = {
    "faint_spot": _faint_spot,
    "thin_scratch": _thin_scratch,
    "deformation": _deformation,
    "misplaced_part": _misplaced_part,
    "missing_part": _missing_part,
}
assert tuple(_PAINTERS) == HARD_DEFECTS


def _visible_spot(clean: np.ndarray, rng: np.random.Generator, size: int):
    """Fallback: a disc of radius ``max(0.06 S, 2.5 px)`` blended at 0.8 towards white where the
    image is dark and black where it is light, so it always shows."""
    cx, cy = _centre(rng, size)
    radius = max(2.5, 0.06 * size)
    rows, cols, xs, ys = _window(cx, cy, radius + 1, size)
    alpha = 0.8 * np.clip(radius - np.hypot(xs - cx, ys - cy) + 0.5, 0.0, 1.0)
    patch = clean[:, rows, cols]
    target = (np.tensordot(_LUMA, patch, axes=1) < 0.5).astype(np.float64)
    return rows, cols, patch + alpha[None] * (target[None] - patch)


# ----------------------------------------------------------------------------------------------
# public API


def hard_defects(
    images: np.ndarray,
    donors: np.ndarray | None,
    seed: int,
    difficulty: float = 0.5,
    kinds: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Paint one subtle defect on each of ``images``; the kinds cycle in the order of ``kinds``
    (default ``HARD_DEFECTS``): image ``i`` gets ``kinds[i % len(kinds)]``.

    ``images``: float (N, 3, S, S) in [0, 1]; ``donors``: float (D, 3, S, S) other normal images
    for ``misplaced_part`` (None or empty: the image's own content at another location).
    ``difficulty`` in [0, 1]: 0 clearly visible and medium sized, 1 small and faint (see the module
    docstring and each defect's docstring for the formulas).

    Returns ``(defective, masks)``: defective (N, 3, S, S) in the dtype of ``images``, masks float32
    (N, 1, S, S) in {0, 1}, exactly the pixels where ``|defective - images| > VISIBLE_CHANGE`` in
    some channel (float64 arithmetic); all other pixels equal the input. No mask is empty.
    Deterministic given ``seed``.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        raise ValueError(f"hard_defects expects (N, 3, S, S) images, got shape {images.shape}")
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"hard_defects expects float images in [0, 1], got dtype {images.dtype}")
    if not 0.0 <= float(difficulty) <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")
    chosen = HARD_DEFECTS if kinds is None else tuple(kinds)
    if not chosen:
        raise ValueError(f"kinds is empty; valid kinds: {', '.join(HARD_DEFECTS)}")
    for kind in chosen:
        if kind not in _PAINTERS:
            raise ValueError(f"unknown defect kind {kind!r}; valid kinds: {', '.join(HARD_DEFECTS)}")
    n, _, size, _ = images.shape
    if donors is not None:
        donors = np.asarray(donors)
        if len(donors) == 0:
            donors = None
        elif donors.ndim != 4 or donors.shape[1:] != images.shape[1:]:
            raise ValueError(f"donors must have shape (D, {', '.join(map(str, images.shape[1:]))}), got {donors.shape}")
    d = float(difficulty)
    defective = images.copy()
    masks = np.zeros((n, 1, size, size), dtype=np.float32)
    for i, rng in enumerate(np.random.default_rng(seed).spawn(n)):
        clean = images[i].astype(np.float64)
        kind = chosen[i % len(chosen)]
        donor_index = int(rng.integers(0, len(donors))) if donors is not None else -1
        donor = donors[donor_index].astype(np.float64) if donors is not None and kind == "misplaced_part" else None
        needs_structure = kind in ("deformation", "misplaced_part", "missing_part")
        structure = _structure(np.tensordot(_LUMA, clean, axes=1)) if needs_structure else None
        for attempt in range(MAX_ATTEMPTS + 1):
            if attempt < MAX_ATTEMPTS:
                rows, cols, new = _PAINTERS[kind](clean, donor, rng, d, size, structure)
            else:
                rows, cols, new = _visible_spot(clean, rng, size)
            new = np.clip(new, 0.0, 1.0).astype(images.dtype).astype(np.float64)
            old = clean[:, rows, cols]
            changed = (np.abs(new - old) > VISIBLE_CHANGE).any(axis=0)
            if changed.sum() >= MIN_DEFECT_PIXELS or attempt == MAX_ATTEMPTS:
                break
        defective[i][:, rows, cols] = np.where(changed[None], new, old).astype(images.dtype)
        masks[i, 0, rows, cols] = changed
    return defective, masks
