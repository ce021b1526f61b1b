"""Batched occluder shapes and fills behind ``suite.data.occluders.occlude`` (issue 20 item 1).

The same shapes, opacities and fills as the pre-rewrite per-image functions kept as the oracle in
tests/reference/legacy_occluders.py (``elastic_ellipse_mask``, ``stroke_mask``, ``rectangle_mask``,
``_texture_patch``), with the
parameters of every shape of the batch drawn at once (on the generator's device) and the pixel work
done for all of them together on the images' device: one ``grid_sample`` for all ellipses, one disc
stamp per distinct stroke radius, one broadcast test for all rectangles, one ``grid_sample`` for all
texture crops. The random stream differs from the per-image functions; the distributions do not
(tests/unit/data/test_augment_distributions.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

ELLIPSE_CHUNK = 8  # ellipses warped at once (each needs an (H, W, 2) sampling grid)


def _uniform(gen: torch.Generator | None, low, high, shape, device) -> Tensor:
    u = torch.rand(shape, generator=gen, device=device, dtype=torch.float64)
    return low + (high - low) * u


def _randint(gen: torch.Generator | None, low: int, high: int, shape, device) -> Tensor:
    """Uniform integers in [low, high] (inclusive)."""
    return torch.randint(low, high + 1, shape, generator=gen, device=device)


def _union(shape: Tensor, owner: Tensor, masks: Tensor) -> None:
    """``shape[owner[k]] |= masks[k]`` for every k."""
    shape.index_add_(0, owner, masks.to(shape.dtype))


def shape_union(count: int, height: int, width: int, use_shapes: bool, gen: torch.Generator | None,
                params, device) -> Tensor:
    """Union of the occlusion shapes of ``count`` images; bool (count, H, W), none empty (as
    the legacy ``occlusion_shape`` per image)."""
    gdev = gen.device if gen is not None else torch.device("cpu")
    shape = torch.zeros((count, height, width), dtype=torch.float32, device=device)
    if count == 0:
        return shape.bool()
    if use_shapes:
        n_ellipses = torch.zeros(count, dtype=torch.long, device=gdev)
        n_strokes = torch.zeros_like(n_ellipses)
        redraw = torch.ones(count, dtype=torch.bool, device=gdev)
        while bool(redraw.any()):  # counts are redrawn until at least one shape is present
            pick = redraw.nonzero().flatten()
            n_ellipses[pick] = _randint(gen, *params.ellipse_count, (pick.numel(),), gdev)
            n_strokes[pick] = _randint(gen, *params.stroke_count, (pick.numel(),), gdev)
            redraw = n_ellipses + n_strokes == 0
        _ellipses(shape, n_ellipses, gen, params, gdev)
        _strokes(shape, n_strokes, gen, params, gdev)
    else:
        n_rects = _randint(gen, *params.rect_count, (count,), gdev).clamp(min=1)
        _rectangles(shape, n_rects, gen, params, gdev)
    return shape > 0


def _ellipses(shape: Tensor, counts: Tensor, gen, params, gdev) -> None:
    """Elastic ellipses, warped ``ELLIPSE_CHUNK`` at a time (as the legacy ``elastic_ellipse_mask``).

    In an ellipse's own frame ``u = R_theta (p - c) / (a, b)`` (the unit disc is the ellipse) a pixel is
    inside iff ``|u + D(u)| <= 1``, ``D`` a displacement field bicubically interpolated from an
    ``elastic_grid^2`` grid of U[-s, s] values over ``u in [-2, 2]^2`` (``s = elastic_strength``): the
    deformation scales with the ellipse, and the centre pixel is always set, so no ellipse is empty.
    """
    _, height, width = shape.shape
    owner = torch.repeat_interleave(torch.arange(counts.numel(), device=gdev), counts)
    n = owner.numel()
    if n == 0:
        return
    side = min(height, width)
    cx, cy = _uniform(gen, 0, width - 1, n, gdev), _uniform(gen, 0, height - 1, n, gdev)
    a = _uniform(gen, *params.ellipse_axis, n, gdev) * side
    b = _uniform(gen, *params.ellipse_axis, n, gdev) * side
    theta = _uniform(gen, 0.0, math.pi, n, gdev)
    grid_n = max(2, params.elastic_grid)
    control = (torch.rand(n, 2, grid_n, grid_n, generator=gen, device=gdev) * 2 - 1) * params.elastic_strength
    dev = shape.device
    cols = torch.arange(width, device=dev, dtype=torch.float32)[None, None, :]
    rows = torch.arange(height, device=dev, dtype=torch.float32)[None, :, None]
    cos, sin = torch.cos(theta), torch.sin(theta)
    to_dev = [v.to(dev, torch.float32)[:, None, None] for v in (cx, cy, cos, sin, a.clamp(min=0.5), b.clamp(min=0.5))]
    control = control.to(dev)
    for first in range(0, n, ELLIPSE_CHUNK):
        sl = slice(first, first + ELLIPSE_CHUNK)
        ex, ey, ec, es, ea, eb = (v[sl] for v in to_dev)
        dx, dy = cols - ex, rows - ey
        u = torch.stack([(ec * dx + es * dy) / ea, (-es * dx + ec * dy) / eb], dim=-1)
        # grid_sample reads the field at u / 2 (the control grid spans [-2, 2] in the ellipse frame).
        field = F.grid_sample(control[sl], u / 2.0, mode="bicubic", padding_mode="border", align_corners=True)
        warped = u + field.permute(0, 2, 3, 1)
        inside = (warped**2).sum(dim=-1) <= 1.0
        centre_rows, centre_cols = cy[sl].round().long().to(dev), cx[sl].round().long().to(dev)
        inside[torch.arange(inside.shape[0], device=dev), centre_rows, centre_cols] = True
        _union(shape, owner[sl].to(dev), inside)


def _disc_offsets(radius: int, device) -> tuple[Tensor, Tensor]:
    offsets = torch.arange(-radius, radius + 1, device=device)
    dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
    keep = (dy**2 + dx**2) <= radius**2 + 0.5
    return dy[keep], dx[keep]


def _strokes(shape: Tensor, counts: Tensor, gen, params, gdev) -> None:
    """Thin Bezier strokes of varying thickness (as the legacy ``stroke_mask``): every stroke's samples
    at once, then one disc stamp per distinct rounded radius.

    A cubic Bezier from a random start along a random direction (chord ``stroke_length``), inner control
    points off the chord by up to ``stroke_bend`` x the chord; half-thickness
    ``r(t) = r_lo + (r_hi - r_lo) (1 - cos(2 pi (f t + phi))) / 2`` rounded to whole pixels (0 = one pixel).
    """
    _, height, width = shape.shape
    owner = torch.repeat_interleave(torch.arange(counts.numel(), device=gdev), counts)
    n = owner.numel()
    if n == 0:
        return
    side = min(height, width)
    start = torch.stack([_uniform(gen, 0, width - 1, n, gdev), _uniform(gen, 0, height - 1, n, gdev)], dim=1)
    length = _uniform(gen, *params.stroke_length, n, gdev) * side
    angle = _uniform(gen, 0.0, 2 * math.pi, n, gdev)
    bend = _uniform(gen, -params.stroke_bend, params.stroke_bend, (n, 2), gdev)
    radius_ab = _uniform(gen, *params.stroke_radius, (n, 2), gdev) * side
    cycles, phase = _uniform(gen, 0.5, 2.0, n, gdev), _uniform(gen, 0.0, 1.0, n, gdev)
    direction = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    normal = torch.stack([-direction[:, 1], direction[:, 0]], dim=1)
    end = start + length[:, None] * direction
    p1 = start + (end - start) / 3 + normal * (bend[:, :1] * length[:, None])
    p2 = start + 2 * (end - start) / 3 + normal * (bend[:, 1:] * length[:, None])
    control = torch.stack([start, p1, p2, end], dim=1)  # (n, 4, 2)
    # The Bezier curve is no longer than its control polygon; 2 samples per polygon pixel suffice.
    polygon = (control[:, 1:] - control[:, :-1]).norm(dim=2).sum(dim=1)
    samples = torch.ceil(2 * polygon).long() + 2
    stroke = torch.repeat_interleave(torch.arange(n, device=gdev), samples)
    ends = samples.cumsum(0)
    # 1-D index_select gathers: far cheaper on CPU than advanced indexing over every sample
    t = (torch.arange(stroke.numel(), device=gdev) - (ends - samples).index_select(0, stroke)).double()
    t = (t / (samples - 1).index_select(0, stroke))[:, None]
    s0, s1, s2, s3 = (control[:, k].index_select(0, stroke) for k in range(4))
    points = ((1 - t) ** 3) * s0 + 3 * ((1 - t) ** 2) * t * s1 + 3 * (1 - t) * (t**2) * s2 + (t**3) * s3
    r_lo, r_hi = radius_ab.amin(dim=1).index_select(0, stroke), radius_ab.amax(dim=1).index_select(0, stroke)
    wave = 1 - torch.cos(2 * math.pi * (cycles.index_select(0, stroke) * t[:, 0] + phase.index_select(0, stroke)))
    radii = (r_lo + (r_hi - r_lo) * 0.5 * wave).round().long()
    dev = shape.device
    cols, rows = points[:, 0].round().long().to(dev), points[:, 1].round().long().to(dev)
    image, radii = owner.index_select(0, stroke).to(dev), radii.to(dev)
    flat = shape.view(-1)
    for radius in torch.unique(radii).tolist():
        pick = (radii == radius).nonzero().flatten()
        dy, dx = _disc_offsets(radius, dev)
        r = (rows.index_select(0, pick)[:, None] + dy).flatten()
        c = (cols.index_select(0, pick)[:, None] + dx).flatten()
        i = image.index_select(0, pick)[:, None].expand(-1, dy.numel()).flatten()
        inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        flat.index_fill_(0, ((i * height + r) * width + c)[inside], 1.0)


def _rectangles(shape: Tensor, counts: Tensor, gen, params, gdev) -> None:
    """Axis-aligned rectangles placed fully inside (as the legacy ``rectangle_mask``)."""
    _, height, width = shape.shape
    owner = torch.repeat_interleave(torch.arange(counts.numel(), device=gdev), counts)
    n = owner.numel()
    side = min(height, width)
    rect_h = (_uniform(gen, *params.rect_side, n, gdev) * side).round().long().clamp(1, height)
    rect_w = (_uniform(gen, *params.rect_side, n, gdev) * side).round().long().clamp(1, width)
    top = (torch.rand(n, generator=gen, device=gdev, dtype=torch.float64) * (height - rect_h + 1)).long()
    left = (torch.rand(n, generator=gen, device=gdev, dtype=torch.float64) * (width - rect_w + 1)).long()
    dev = shape.device
    rows = torch.arange(height, device=dev)
    cols = torch.arange(width, device=dev)
    top, left, rect_h, rect_w = (v.to(dev) for v in (top, left, rect_h, rect_w))
    in_rows = (rows >= top[:, None]) & (rows < (top + rect_h)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + rect_w)[:, None])
    _union(shape, owner.to(dev), in_rows[:, :, None] & in_cols[:, None, :])


def texture_patches(textures: Tensor, count: int, height: int, width: int, gen: torch.Generator | None,
                    params, device) -> Tensor:
    """``count`` random crops of random textures, randomly flipped, resized to (count, 3, H, W) with
    bilinear interpolation (``align_corners=False``, as ``F.interpolate``).

    Upscaled crops (the suite's banks are made at the image size, so crops are never larger than
    the image) are sampled for the whole batch with one ``grid_sample``; a crop larger than the output
    is resized on its own with antialiasing, as before.
    """
    gdev = gen.device if gen is not None else torch.device("cpu")
    t_h, t_w = textures.shape[-2:]
    which = torch.randint(textures.shape[0], (count,), generator=gen, device=gdev)
    frac = _uniform(gen, *params.texture_crop, count, gdev)
    crop_h = (frac * t_h).round().long().clamp(min=2).clamp(max=t_h)
    crop_w = (frac * t_w).round().long().clamp(min=2).clamp(max=t_w)
    top = (torch.rand(count, generator=gen, device=gdev, dtype=torch.float64) * (t_h - crop_h + 1)).long()
    left = (torch.rand(count, generator=gen, device=gdev, dtype=torch.float64) * (t_w - crop_w + 1)).long()
    flips = torch.rand(count, 2, generator=gen, device=gdev) < 0.5
    source = textures.to(device, torch.float32)

    def coords(out: int, size: int, crop: Tensor, offset: Tensor, flip: Tensor) -> Tensor:
        # F.interpolate(align_corners=False): source index (j + 0.5) * crop / out - 0.5, clamped at 0;
        # a flipped crop reads the mirrored index. Normalised for grid_sample(align_corners=True).
        j = torch.arange(out, device=gdev, dtype=torch.float64)
        src = ((j + 0.5) * crop[:, None] / out - 0.5).clamp(min=0)
        src = torch.minimum(src, (crop - 1)[:, None].double())
        src = torch.where(flip[:, None], (crop - 1)[:, None] - src, src)
        return ((offset[:, None] + src) * 2 / max(size - 1, 1) - 1).to(device, torch.float32)

    gx, gy = coords(width, t_w, crop_w, left, flips[:, 0]), coords(height, t_h, crop_h, top, flips[:, 1])
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
    patches = F.grid_sample(source[which.to(device)], grid, mode="bilinear", padding_mode="border",
                            align_corners=True)
    shrink = ((crop_h > height) | (crop_w > width)).nonzero().flatten().tolist()
    for k in shrink:  # only for texture banks larger than the images
        crop = source[int(which[k]), :, int(top[k]):int(top[k] + crop_h[k]), int(left[k]):int(left[k] + crop_w[k])]
        crop = crop.flip(-1) if flips[k, 0] else crop
        crop = crop.flip(-2) if flips[k, 1] else crop
        patches[k] = F.interpolate(crop[None], size=(height, width), mode="bilinear", align_corners=False,
                                   antialias=True)[0]
    return patches.clamp(0.0, 1.0)
