"""Hard synthetic anomalies for model selection: subtle, realistic defects with a difficulty knob.

``hard_defects(images, donors, seed, difficulty)`` paints one defect per image, the kinds cycling
in the order of ``HARD_DEFECTS``: ``faint_spot`` (soft irregular blob, low-contrast darker, lighter
or tinted shift), ``thin_scratch`` (thin curved anti-aliased line fading at its ends),
``deformation`` (local bulge, pinch or shear of the content), ``misplaced_part`` (an irregular piece
of another normal image from a different location) and ``missing_part`` (a region smoothed away
from its surroundings). They are unlike the methods' training corruptions and unlike
``synthetic.natural_defects``, which saturate the validation metrics.

Difficulty ``d`` in [0, 1]: each size / contrast range is interpolated geometrically between its
``d = 0`` (clearly visible, medium sized) and ``d = 1`` (small and faint, sizes floored in pixels)
ends, and a parameter is ``lo(d) + u (hi(d) - lo(d))`` for a draw ``u`` independent of ``d``: for
a fixed seed the defects stay in place and only shrink and fade. Lengths are fractions of the side.

Masks: exactly the pixels where some channel changed by more than ``VISIBLE_CHANGE`` (2/255),
computed in float64 from the returned arrays; every other pixel keeps its input value. A draw
changing fewer than ``MIN_DEFECT_PIXELS`` pixels is redrawn up to ``MAX_ATTEMPTS`` times, then
replaced by a clearly visible spot, so no mask is empty.

Batched (issue 20): all uniform draws come from one ``(N, MAX_ATTEMPTS + 1, slots)`` array of
``np.random.default_rng(seed)`` (row ``i`` is image ``i``: the first ``k`` images of a call equal a
call on those ``k``); each kind is painted for all its images at once in torch on ``device``, on one
window per image (``suite.data.defect_windows``: the cost follows the defect's size), in chunks of
at most ``CHUNK_PIXELS`` pixels. Same distributions as the pre-rewrite per-image painter
(tests/reference/legacy_val_anomalies.py; tests/unit/data/test_val_anomalies_distributions.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from suite.data.defect_windows import Windows, box_smooth, per_image, polyline_distance, smoothstep

HARD_DEFECTS = ("faint_spot", "thin_scratch", "deformation", "misplaced_part", "missing_part")
VISIBLE_CHANGE = 2.0 / 255.0  # a pixel is defective when some channel changed by more than this
MIN_DEFECT_PIXELS = 4  # a draw changing fewer pixels is redrawn
MAX_ATTEMPTS = 6  # draws per image before falling back to a clearly visible spot
CHUNK_PIXELS = 1 << 22  # images painted at once: about 4 M pixels (4 images at 1024 px)

_LUMA = (0.299, 0.587, 0.114)
# Slots of an attempt's uniform draws: centre (3), blob shape (8), kind scalars (5), tint (3), donor.
_CENTRE, _BLOB, _SCALARS, _TINT, _DONOR = 0, 3, 11, 16, 19
_SLOTS = 20
_BLOB_EXTENT = 1.0 + 3 * 0.13  # a blob's rim never reaches beyond this many radii
_SCRATCH_MAX_SEGMENTS = 64


def defect_kinds() -> tuple[str, ...]:
    """The defect kinds ``hard_defects`` paints, in its cycling order."""
    return HARD_DEFECTS


# ----------------------------------------------------------------------------------------------
# helpers; coordinates are pixel centres: pixel (i, j) has centre (x, y) = (j + 0.5, i + 0.5).
# Per-image parameters are (B,) tensors; ``_col`` makes them (B, 1, 1) for the pixel grids.


def _ranged(u: Tensor, d: float, at0: tuple[float, float], at1: tuple[float, float]) -> Tensor:
    """``lo(d) + u (hi(d) - lo(d))``, the ends interpolated geometrically from ``at0`` (d=0) to ``at1`` (d=1)."""
    lo = at0[0] * (at1[0] / at0[0]) ** d
    hi = at0[1] * (at1[1] / at0[1]) ** d
    return lo + u * (hi - lo)


def _luma(images: Tensor) -> Tensor:
    w = torch.tensor(_LUMA, dtype=images.dtype, device=images.device)
    return torch.einsum("c,bchw->bhw", w, images)


def _masked_mean(values: Tensor, where: Tensor, empty: float) -> Tensor:
    """Per image mean of ``values`` (B, H, W) over ``where``; ``empty`` when ``where`` is empty."""
    count = where.sum(dim=(1, 2))
    total = (values * where).sum(dim=(1, 2))
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, empty))


def _blob_alpha(u: Tensor, win: Windows, cx: Tensor, cy: Tensor, radius: Tensor,
                softness: float) -> Tensor:
    """Soft irregular blob on the windows (B, side, side): with ``rho`` the elliptic radius in units
    of ``radius`` (minor axis ``aspect * radius``, ``aspect ~ U(0.55, 1)``, rotated by
    ``angle ~ U(0, pi)``) and polar angle ``theta``, the rim is
    ``rim(theta) = 1 + sum_k a_k cos(k theta + phi_k)`` (k = 2, 3, 4,
    ``a_k ~ U(0, 0.13)``, ``phi_k ~ U(0, 2 pi)``) and the opacity
    ``smoothstep((rim - rho) / (softness * rim))``: 1 in the core, falling smoothly to 0 at the rim."""
    b = u[:, _BLOB:_BLOB + 8]
    aspect, angle = 0.55 + 0.45 * b[:, 0], math.pi * b[:, 1]
    c, s = per_image(torch.cos(angle)), per_image(torch.sin(angle))
    dx, dy = win.xs - per_image(cx), win.ys - per_image(cy)
    uu = (dx * c + dy * s) / per_image(radius)
    vv = (-dx * s + dy * c) / per_image(radius * aspect)
    rho, theta = torch.hypot(uu, vv), torch.atan2(vv, uu)
    amps, phases = 0.13 * b[:, 2:5], 2 * math.pi * b[:, 5:8]  # harmonics k = 2, 3, 4
    rim = 1.0 + sum(per_image(amps[:, j]) * torch.cos((j + 2) * theta + per_image(phases[:, j]))
                    for j in range(3))
    return smoothstep((rim - rho) / (softness * rim))


def _centre_uniform(u: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """A defect centre uniform in the central 76 % of the image."""
    lo, hi = 0.12 * size, 0.88 * size
    return lo + u[:, _CENTRE] * (hi - lo), lo + u[:, _CENTRE + 1] * (hi - lo)


def _centre_on_structure(u: Tensor, structure: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """A centre in a cell of the coarse ``structure`` grid (B, g, g) drawn with probability
    proportional to its weight (inverse CDF), uniform inside the cell, clipped to the central 76 %."""
    g = structure.shape[-1]
    cdf = structure.flatten(1).cumsum(dim=1)
    target = (u[:, _CENTRE] * cdf[:, -1])[:, None].contiguous()
    k = torch.searchsorted(cdf.contiguous(), target, right=True)[:, 0].clamp(max=g * g - 1)
    cell = size / g
    x = ((k % g).to(u.dtype) + u[:, _CENTRE + 1]) * cell
    y = (torch.div(k, g, rounding_mode="floor").to(u.dtype) + u[:, _CENTRE + 2]) * cell
    return x.clamp(0.12 * size, 0.88 * size), y.clamp(0.12 * size, 0.88 * size)


def _structure(clean: Tensor) -> Tensor:
    """Sampling weights on a coarse (about 16 x 16) grid, (B, g, g): the square root of the mean
    gradient magnitude of the luminance per cell (the root flattens the preference, so not every
    defect lands on the strongest outline), plus a floor of 20 % of its mean, restricted to the
    central region."""
    lum = _luma(clean.float())
    size = lum.shape[-1]
    grad = torch.zeros_like(lum)
    grad[:, :, :-1] += (lum[:, :, 1:] - lum[:, :, :-1]).abs()
    grad[:, :-1, :] += (lum[:, 1:, :] - lum[:, :-1, :]).abs()
    g = min(16, size)
    b = size // g
    cells = grad[:, : g * b, : g * b].reshape(-1, g, b, g, b).mean(dim=(2, 4))
    centres = (torch.arange(g, dtype=lum.dtype, device=lum.device) + 0.5) / g
    inside = (centres > 0.1) & (centres < 0.9)
    keep = (inside[:, None] & inside[None, :]).to(lum.dtype)
    cells = cells.sqrt() * keep
    return ((cells + 0.2 * cells.mean(dim=(1, 2), keepdim=True) + 1e-12) * keep).to(torch.float64)


def _flip_if_clipping(sign: Tensor, mean: Tensor, contrast: Tensor) -> Tensor:
    """The shift's sign, flipped where it would clip (darker on near-black, lighter on near-white)."""
    to_lighter = (sign < 0) & (mean - contrast < 0.03)
    to_darker = (sign > 0) & (mean + contrast > 0.97)
    return torch.where(to_lighter, torch.ones_like(sign), torch.where(to_darker, -torch.ones_like(sign), sign))


# ----------------------------------------------------------------------------------------------
# the defects: each takes the chunk's clean images (N, 3, S, S), the indices of its batch (B,), the
# batch's donors (B, 3, S, S) or None, one attempt's uniform draws (B, slots), the difficulty and the
# structure grids (B, g, g); returns the windows it painted and their new content (B, 3, side, side)
# in float64, before clipping.


def _faint_spot(images, batch, donor, u, d, structure):
    """Radius ``R = S * U(0.06, 0.11)`` at d=0 -> ``S * U(0.015, 0.03)`` at d=1 (at least 2 px),
    irregular blob with a soft edge over 60% of the radius; peak shift ``c = U(0.18, 0.30)`` ->
    ``U(0.04, 0.06)``: ``x + c * alpha * v`` with ``v = -1`` (darker), ``+1`` (lighter) or tinted
    (``v = +-1 + 0.35 n``, ``n ~ N(0, I_3)``, rescaled to max-norm 1). The sign flips when the shift
    would clip (e.g. darker on black)."""
    size = images.shape[-1]
    cx, cy = _centre_uniform(u, size)
    q = u[:, _SCALARS:]
    radius = (size * _ranged(q[:, 0], d, (0.06, 0.11), (0.015, 0.03))).clamp(min=2.0)
    contrast = _ranged(q[:, 1], d, (0.18, 0.30), (0.04, 0.06))
    style = torch.floor(3 * q[:, 2])  # 0 darker, 1 lighter, 2 tinted
    tint = torch.special.ndtri(u[:, _TINT:_TINT + 3].clamp(1e-12, 1 - 1e-12))
    win = Windows(batch, cx, cy, radius * _BLOB_EXTENT + 1, size)
    alpha = _blob_alpha(u, win, cx, cy, radius, 0.6)
    patch = win.crop(images)
    mean = _masked_mean(_luma(patch), alpha > 0.5, 0.5)
    sign = _flip_if_clipping(torch.where(style == 1, 1.0, -1.0).to(u.dtype), mean, contrast)
    direction = sign[:, None].expand(-1, 3)
    tinted = direction + 0.35 * tint  # a darker / lighter shift with a colour cast, not a pure hue
    tinted = tinted / tinted.abs().amax(dim=1, keepdim=True)
    direction = torch.where((style == 2)[:, None], tinted, direction)
    return win, patch + per_image(contrast)[:, None] * alpha[:, None] * direction[:, :, None, None]


def _thin_scratch(images, batch, donor, u, d, structure):
    """Quadratic Bezier ``B(t) = (1-t)^2 P0 + 2t(1-t) P1 + t^2 P2`` with chord ``L = S * U(0.25, 0.40)``
    -> ``S * U(0.08, 0.14)`` (at least 6 px) and control point ``P1`` off the chord midpoint by
    ``U(-0.3, 0.3) * L``; width ``w = 0.018 S`` -> ``0.006 S`` (at least 1 px), anti-aliased
    coverage ``clip(w/2 - dist + 0.5, 0, 1)`` times a taper ``sin(pi t)^0.5`` along the curve
    (``dist`` to a polyline of ``clip(ceil(L / 3), 8, 64)`` segments); grey shift
    ``c = U(0.25, 0.40)`` -> ``U(0.06, 0.09)``, lighter or darker (flipped when it would clip)."""
    size = images.shape[-1]
    cx, cy = _centre_uniform(u, size)
    q = u[:, _SCALARS:]
    angle, bend = math.pi * q[:, 0], -0.3 + 0.6 * q[:, 1]
    sign = torch.where(q[:, 2] < 0.5, 1.0, -1.0).to(u.dtype)
    length = (size * _ranged(q[:, 3], d, (0.25, 0.40), (0.08, 0.14))).clamp(min=6.0)
    width = max(1.0, size * 0.018 * (0.006 / 0.018) ** d)
    contrast = _ranged(q[:, 4], d, (0.25, 0.40), (0.06, 0.09))
    e = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    normal = torch.stack([-e[:, 1], e[:, 0]], dim=1)
    mid = torch.stack([cx, cy], dim=1)
    p0, p2 = mid - 0.5 * length[:, None] * e, mid + 0.5 * length[:, None] * e
    p1 = mid + (bend * length)[:, None] * normal
    k = torch.ceil(length / 3.0).clamp(8, _SCRATCH_MAX_SEGMENTS)

    def curve(t: Tensor) -> Tensor:  # (B, T) -> (B, T, 2)
        t = t[..., None]
        return (1 - t) ** 2 * p0[:, None] + 2 * t * (1 - t) * p1[:, None] + t**2 * p2[:, None]

    vertices = curve((torch.arange(_SCRATCH_MAX_SEGMENTS + 1, device=u.device)[None] / k[:, None]).clamp(max=1))
    lo, hi = vertices.amin(dim=1), vertices.amax(dim=1)
    centre = (lo + hi) / 2
    win = Windows(batch, centre[:, 0], centre[:, 1], ((hi - lo) / 2).amax(dim=1) + width / 2 + 1.5, size)
    dist, along = polyline_distance(win, vertices, k, width / 2 + 1.5)
    alpha = (width / 2 - dist + 0.5).clamp(0.0, 1.0) * torch.sin(math.pi * along).clamp(min=0).sqrt()
    patch = win.crop(images)
    sign = _flip_if_clipping(sign, _masked_mean(_luma(patch), alpha > 0.5, 0.5), contrast)
    return win, patch + per_image(sign * contrast)[:, None] * alpha[:, None]


def _deformation(images, batch, donor, u, d, structure):
    """Radius ``R = S * U(0.07, 0.12)`` -> ``S * U(0.03, 0.05)`` (at least 4 px), falloff
    ``f(r) = (1 - (r/R)^2)^2`` for ``r < R``; peak displacement ``delta = S * U(0.025, 0.04)`` ->
    ``S * U(0.006, 0.010)`` (at least 1 px, at most 0.4 R, so the map does not fold). The pixel
    at ``p`` samples the clean image (bilinear, edges repeated) at ``c + (p - c)(1 - k f)`` with
    ``k = +-delta / (0.286 R)`` (bulge / pinch; 0.286 R = max of ``r f(r)``), or at
    ``p - delta f(r) e`` for a random direction ``e`` (shear). The centre is drawn where the image
    has edges (see ``_structure``). Bilinear resampling adds no new colours."""
    size = images.shape[-1]
    cx, cy = _centre_on_structure(u, structure, size)
    q = u[:, _SCALARS:]
    mode, direction = torch.floor(3 * q[:, 0]), 2 * math.pi * q[:, 1]  # mode 0 bulge, 1 pinch, 2 shear
    radius = (size * _ranged(q[:, 2], d, (0.07, 0.12), (0.03, 0.05))).clamp(min=4.0)
    delta = torch.minimum(0.4 * radius, (size * _ranged(q[:, 3], d, (0.025, 0.04), (0.006, 0.010))).clamp(min=1.0))
    win = Windows(batch, cx, cy, radius + delta + 2, size)  # every pixel a warped pixel samples is inside
    dx, dy = win.xs - per_image(cx), win.ys - per_image(cy)
    f = (1.0 - ((dx * dx + dy * dy) / per_image(radius * radius)).clamp(max=1.0)) ** 2
    k = per_image(torch.where(mode == 0, 1.0, -1.0).to(u.dtype) * delta / (0.286 * radius))
    shear = per_image(mode == 2)
    sx = torch.where(shear, win.xs - per_image(delta * torch.cos(direction)) * f, per_image(cx) + dx * (1 - k * f))
    sy = torch.where(shear, win.ys - per_image(delta * torch.sin(direction)) * f, per_image(cy) + dy * (1 - k * f))
    # grid_sample's align_corners=False: -1 and 1 are the outer edges of the window's pixels
    x0, y0 = per_image(win.cols[:, 0].to(u.dtype)), per_image(win.rows[:, 0].to(u.dtype))
    grid = torch.stack([2 * (sx - x0) / win.side - 1, 2 * (sy - y0) / win.side - 1], dim=-1)
    return win, F.grid_sample(win.crop(images), grid, mode="bilinear", padding_mode="border", align_corners=False)


def _misplaced_part(images, batch, donor, u, d, structure):
    """Irregular blob of radius ``R = S * U(0.07, 0.12)`` -> ``S * U(0.025, 0.045)`` (at least 3 px),
    soft edge over 35% of the radius, cut from the donor (another normal image; the image itself
    when there is none) at an integer offset of length ``S * U(0.25, 0.45)`` -> ``S * U(0.06, 0.12)``
    (at least 2 px; reversed or shortened so the blob's square stays inside the image) and pasted at
    opacity ``U(0.9, 1.0)`` -> ``U(0.35, 0.5)``: ``x + a * alpha * (donor(p + offset) - x)``."""
    size = images.shape[-1]
    cx, cy = _centre_on_structure(u, structure, size)
    q = u[:, _SCALARS:]
    direction = 2 * math.pi * q[:, 0]
    radius = (size * _ranged(q[:, 1], d, (0.07, 0.12), (0.025, 0.045))).clamp(min=3.0)
    shift = (size * _ranged(q[:, 2], d, (0.25, 0.45), (0.06, 0.12))).clamp(min=2.0)
    opacity = _ranged(q[:, 3], d, (0.9, 1.0), (0.35, 0.5))
    half = radius * _BLOB_EXTENT + 1
    win = Windows(batch, cx, cy, half, size)
    alpha = _blob_alpha(u, win, cx, cy, radius, 0.35)
    # the blob's own square (not the batch's common window) bounds the offset
    x0, x1 = torch.floor(cx - half).clamp(min=0), (torch.ceil(cx + half) + 1).clamp(max=size)
    y0, y1 = torch.floor(cy - half).clamp(min=0), (torch.ceil(cy + half) + 1).clamp(max=size)

    def allowed(ox: Tensor, oy: Tensor) -> tuple[Tensor, Tensor]:
        return (torch.maximum(torch.minimum(torch.round(ox), size - x1), -x0),
                torch.maximum(torch.minimum(torch.round(oy), size - y1), -y0))

    want_x, want_y = shift * torch.cos(direction), shift * torch.sin(direction)
    ox, oy = allowed(want_x, want_y)
    bx, by = allowed(-want_x, -want_y)
    reverse = (torch.hypot(ox, oy) < 0.5 * shift) & (torch.hypot(bx, by) > torch.hypot(ox, oy))
    ox, oy = torch.where(reverse, bx, ox).long(), torch.where(reverse, by, oy).long()
    part = win.crop(images, dy=oy, dx=ox) if donor is None else win.crop(donor, own=True, dy=oy, dx=ox)
    patch = win.crop(images)
    return win, patch + per_image(opacity)[:, None] * alpha[:, None] * (part - patch)


def _missing_part(images, batch, donor, u, d, structure):
    """Irregular blob of radius ``R = S * U(0.06, 0.10)`` -> ``S * U(0.025, 0.04)`` (at least 3 px),
    soft edge over 35% of the radius, whose content is replaced by a fill from its surroundings:
    the normalised convolution ``G(x (1 - m)) / G(1 - m)`` (``m`` the blob support, ``G`` a blur of
    sigma ``0.6 R`` over a window reaching 2.5 sigma beyond the blob), blended at opacity
    ``U(0.9, 1.0)`` -> ``U(0.4, 0.55)``. The centre is drawn where the image has edges."""
    size = images.shape[-1]
    cx, cy = _centre_on_structure(u, structure, size)
    q = u[:, _SCALARS:]
    radius = (size * _ranged(q[:, 0], d, (0.06, 0.10), (0.025, 0.04))).clamp(min=3.0)
    opacity = _ranged(q[:, 1], d, (0.9, 1.0), (0.4, 0.55))
    sigma = 0.6 * radius
    win = Windows(batch, cx, cy, radius * _BLOB_EXTENT + 1 + 2.5 * sigma, size)
    alpha = _blob_alpha(u, win, cx, cy, radius, 0.35)
    context = win.crop(images)
    known = (alpha <= 0).to(u.dtype)[:, None]
    fill = box_smooth(context * known, sigma) / box_smooth(known, sigma).clamp(min=1e-6)
    return win, context + per_image(opacity)[:, None] * alpha[:, None] * (fill - context)


def _visible_spot(images, batch, donor, u, d, structure):
    """Fallback: a disc of radius ``max(0.06 S, 2.5 px)`` blended at 0.8 towards white where the
    image is dark and black where it is light, so it always shows."""
    size = images.shape[-1]
    cx, cy = _centre_uniform(u, size)
    radius = max(2.5, 0.06 * size)
    win = Windows(batch, cx, cy, torch.full_like(cx, radius + 1), size)
    alpha = 0.8 * (radius - torch.hypot(win.xs - per_image(cx), win.ys - per_image(cy)) + 0.5).clamp(0.0, 1.0)
    patch = win.crop(images)
    target = (_luma(patch) < 0.5).to(u.dtype)
    return win, patch + alpha[:, None] * (target[:, None] - patch)


_PAINTERS = {
    "faint_spot": _faint_spot,
    "thin_scratch": _thin_scratch,
    "deformation": _deformation,
    "misplaced_part": _misplaced_part,
    "missing_part": _missing_part,
}
assert tuple(_PAINTERS) == HARD_DEFECTS
_NEEDS_STRUCTURE = ("deformation", "misplaced_part", "missing_part")


# ----------------------------------------------------------------------------------------------
# public API


def hard_defects(
    images: np.ndarray,
    donors: np.ndarray | None,
    seed: int,
    difficulty: float = 0.5,
    kinds: Sequence[str] | None = None,
    device: str | torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Paint one subtle defect on each of ``images``; the kinds cycle in the order of ``kinds``
    (default ``HARD_DEFECTS``): image ``i`` gets ``kinds[i % len(kinds)]``.

    ``images``: float (N, 3, S, S) in [0, 1]; ``donors``: float (D, 3, S, S) other normal images
    for ``misplaced_part`` (None or empty: the image's own content at another location; only the
    donors drawn are read, so a memory-mapped array stays on disk). ``difficulty`` in [0, 1]: 0
    clearly visible and medium sized, 1 small and faint (see the module docstring and each
    defect's docstring for the formulas). ``device``: where the pixels are painted ("auto": CUDA
    when present; default CPU).

    Returns ``(defective, masks)``: defective (N, 3, S, S) in the dtype of ``images``, masks float32
    (N, 1, S, S) in {0, 1}, exactly the pixels where ``|defective - images| > VISIBLE_CHANGE`` in
    some channel (float64 arithmetic); all other pixels equal the input. No mask is empty.
    Deterministic given ``seed`` on one device.
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
        elif donors.ndim != 4 or tuple(donors.shape[1:]) != images.shape[1:]:
            raise ValueError(f"donors must have shape (D, {', '.join(map(str, images.shape[1:]))}), got {donors.shape}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device or "cpu")
    draws = np.random.default_rng(seed).random((n, MAX_ATTEMPTS + 1, _SLOTS))
    kind_of = [chosen[i % len(chosen)] for i in range(n)]
    donor_of = (draws[:, 0, _DONOR] * len(donors)).astype(np.int64) if donors is not None else None
    defective = images.copy()
    masks = np.zeros((n, 1, size, size), dtype=np.float32)
    step = max(1, CHUNK_PIXELS // (size * size))
    for start in range(0, n, step):
        part = slice(start, min(n, start + step))
        _paint(defective[part], masks[part, 0], donors, None if donor_of is None else donor_of[part],
               kind_of[part], draws[part], float(difficulty), device)
    return defective, masks


def _paint(out: np.ndarray, masks: np.ndarray, donors, donor_of, kind_of: list[str], draws: np.ndarray,
           d: float, device) -> None:
    """One chunk of ``hard_defects``, painted into ``out`` (the clean images on entry) and ``masks``
    (zeros on entry): every kind for all its images at once, attempt after attempt for the images
    whose draw changed fewer than ``MIN_DEFECT_PIXELS`` pixels. Only the windows are converted to
    float64; on the CPU the arrays are painted in place."""
    result = torch.from_numpy(out).to(device)
    changed = torch.from_numpy(masks).to(device)
    clean = result  # each image is pasted once, after its last read, so one tensor serves both
    u = torch.as_tensor(draws, device=device)
    needs = [i for i, k in enumerate(kind_of) if k in _NEEDS_STRUCTURE]
    structure = None
    if needs:  # only for the images whose kind places its defect by structure
        need = torch.tensor(needs, device=device)
        grids = _structure(clean[need])
        structure = grids.new_zeros((len(clean), *grids.shape[1:]))
        structure[need] = grids
    pending = {kind: [i for i, k in enumerate(kind_of) if k == kind] for kind in dict.fromkeys(kind_of)}
    for attempt in range(MAX_ATTEMPTS + 1):
        last = attempt == MAX_ATTEMPTS
        for kind, members in pending.items():
            if not members:
                continue
            idx = torch.tensor(members, device=device)
            donor = None
            if kind == "misplaced_part" and donor_of is not None:
                donor = torch.from_numpy(np.asarray(donors[donor_of[members]])).to(device)
            painter = _visible_spot if last else _PAINTERS[kind]
            win, new = painter(clean, idx, donor, u[idx, attempt], d, None if structure is None else structure[idx])
            old = win.crop(clean)
            new = new.clamp(0.0, 1.0).to(clean.dtype).to(torch.float64)
            diff = ((new - old).abs() > VISIBLE_CHANGE).any(dim=1, keepdim=True)
            done = (diff.sum(dim=(1, 2, 3)) >= MIN_DEFECT_PIXELS) | last
            if bool(done.any()):
                kept = win.select(done)
                kept.paste(result, torch.where(diff[done], new[done], old[done]))
                kept.paste(changed[:, None], diff[done])
            pending[kind] = [m for m, fin in zip(members, done.tolist()) if not fin]
        if not any(pending.values()):
            break
    if result.device.type != "cpu":
        out[...] = result.cpu().numpy()
        masks[...] = changed.cpu().numpy()
