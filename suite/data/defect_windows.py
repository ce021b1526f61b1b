"""Batched pixel geometry behind ``suite.data.val_anomalies``: per-image windows of one common size
(crop and paste by index, so a defect costs its own area, not the image's), the distance to a
polyline measured on one small box per segment, and a per-image box blur. Pure torch."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def per_image(t: Tensor) -> Tensor:
    """(B,) per-image values as (B, 1, 1), to broadcast over (B, H, W) pixel grids."""
    return t[:, None, None]


class Windows:
    """One square window per image, all of side ``side`` (the largest any image of the batch needs,
    at most ``S``), each holding the square of half-width ``half[b]`` around ``(cx[b], cy[b])`` and
    shifted inside the image where it would leave it: defects are painted on windows, so the cost
    follows the defect size, not the image area. ``batch`` (B,) are the images' indices in the
    chunk; ``xs`` (B, 1, side) and ``ys`` (B, side, 1) the windows' pixel-centre coordinates."""

    def __init__(self, batch: Tensor, cx: Tensor, cy: Tensor, half: Tensor, size: int):
        self.batch, self.size = batch, size
        self.side = min(size, int(math.ceil(2 * float(half.max()))) + 3)
        steps = torch.arange(self.side, device=cx.device)
        self.rows = torch.floor(cy - self.side / 2).clamp(0, size - self.side).long()[:, None] + steps
        self.cols = torch.floor(cx - self.side / 2).clamp(0, size - self.side).long()[:, None] + steps
        self.xs = (self.cols.to(cx.dtype) + 0.5)[:, None, :]
        self.ys = (self.rows.to(cx.dtype) + 0.5)[:, :, None]

    def select(self, keep: Tensor) -> Windows:
        """The windows of the images where ``keep`` is True."""
        sub = object.__new__(Windows)
        sub.size, sub.side = self.size, self.side
        for name in ("batch", "rows", "cols", "xs", "ys"):
            setattr(sub, name, getattr(self, name)[keep])
        return sub

    def _index(self, channels: int, batch: Tensor, dy: Tensor | None = None, dx: Tensor | None = None):
        rows = self.rows if dy is None else (self.rows + dy[:, None]).clamp(0, self.size - 1)
        cols = self.cols if dx is None else (self.cols + dx[:, None]).clamp(0, self.size - 1)
        ch = torch.arange(channels, device=rows.device)
        return batch[:, None, None, None], ch[None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]

    def crop(self, images: Tensor, own: bool = False, dy: Tensor | None = None, dx: Tensor | None = None) -> Tensor:
        """The windows, float64 (B, C, side, side), read from the chunk ``images`` (N, C, S, S) at the
        images' indices, or (``own``) from a (B, C, S, S) tensor of this batch; ``dy``/``dx`` (B,)
        shift where they are read from (edges repeated beyond the image)."""
        batch = torch.arange(len(self.rows), device=self.rows.device) if own else self.batch
        return images[self._index(images.shape[1], batch, dy, dx)].to(torch.float64)

    def paste(self, target: Tensor, windows: Tensor) -> None:
        """Write ``windows`` (B, C, side, side) into the chunk tensor ``target`` (N, C, S, S) in place."""
        target[self._index(target.shape[1], self.batch)] = windows.to(target.dtype)


def smoothstep(t: Tensor) -> Tensor:
    t = t.clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _box_1d(a: Tensor, n: Tensor, dim: int) -> Tensor:
    """Box mean of width ``n[b]`` (per image) along ``dim`` (-1 or -2) of ``a`` (B, C, H, W), edges
    repeated; the window of output ``i`` is ``[i - n // 2, i - n // 2 + n - 1]`` (scipy's
    ``uniform_filter`` placement), summed from a cumulative sum."""
    left, right = n // 2, n - 1 - n // 2
    pl, pr = int(left.max()) + 1, int(right.max())
    pad = (pl, pr, 0, 0) if dim == -1 else (0, 0, pl, pr)
    cum = F.pad(a, pad, mode="replicate").cumsum(dim=dim)
    length = a.shape[dim]
    i = torch.arange(length, device=a.device)
    shape = [-1, 1, 1, 1]
    shape[dim] = length
    hi = (i[None] + pl + right[:, None]).view(shape).expand_as(a)
    lo = (i[None] + pl - left[:, None] - 1).view(shape).expand_as(a)
    return (cum.gather(dim, hi) - cum.gather(dim, lo)) / per_image(n.to(a.dtype))[:, None]


def box_smooth(a: Tensor, sigma: Tensor) -> Tensor:
    """Approximate Gaussian blur of (B, C, H, W) with a per-image ``sigma``: three box passes of width
    ``round(sqrt(4 sigma^2 + 1))``, so the cost does not depend on sigma."""
    n = torch.round(torch.sqrt(4.0 * sigma * sigma + 1.0)).long().clamp(min=1)
    for _ in range(3):
        a = _box_1d(_box_1d(a, n, -1), n, -2)
    return a


def polyline_distance(win: Windows, vertices: Tensor, k: Tensor, reach: float) -> tuple[Tensor, Tensor]:
    """Distance (B, side, side) from each window pixel to its image's polyline (the first ``k[b]``
    segments of ``vertices`` (B, K + 1, 2)), and the curve parameter ``t = (i + proj) / k`` of the
    nearest point (the earliest segment on ties), ``inf`` / 0 farther than ``reach`` from every
    segment. Every segment of every image is measured on its own small box at once, then reduced into
    the windows with a scatter-min."""
    batch, count = len(vertices), int(k.max())
    a, b = vertices[:, :count], vertices[:, 1:count + 1]
    corner = torch.floor(torch.minimum(a, b) - reach)
    box = int(math.ceil(float((b - a).abs().max()) + 2 * reach)) + 2
    steps = torch.arange(box, device=vertices.device)
    cols = corner[..., 0, None].long() + steps  # (B, K, box) image columns / rows of each segment's box
    rows = corner[..., 1, None].long() + steps
    ab = (b - a)[..., None, None, :]
    px = (cols.to(a.dtype) + 0.5)[:, :, None, :] - a[..., 0, None, None]
    py = (rows.to(a.dtype) + 0.5)[:, :, :, None] - a[..., 1, None, None]
    proj = ((px * ab[..., 0] + py * ab[..., 1]) / (ab * ab).sum(-1).clamp(min=1e-12)).clamp(0, 1)
    seg = torch.hypot(px - proj * ab[..., 0], py - proj * ab[..., 1])
    local_x, local_y = cols - win.cols[:, :1, None], rows - win.rows[:, :1, None]
    in_x, in_y = (local_x >= 0) & (local_x < win.side), (local_y >= 0) & (local_y < win.side)
    inside = in_x[:, :, None, :] & in_y[:, :, :, None]
    inside &= (torch.arange(count, device=k.device)[None] < k[:, None])[..., None, None]
    seg = torch.where(inside, seg, math.inf).reshape(batch, -1)
    flat = (local_y.clamp(0, win.side - 1)[:, :, :, None] * win.side + local_x.clamp(0, win.side - 1)[:, :, None, :])
    flat = flat.reshape(batch, -1)
    dist = torch.full((batch, win.side * win.side), math.inf, dtype=a.dtype, device=a.device)
    dist = dist.scatter_reduce(1, flat, seg, "amin")
    t = ((torch.arange(count, device=k.device)[None, :, None, None] + proj) / k[:, None, None, None]).reshape(batch, -1)
    nearest = torch.isfinite(seg) & (seg <= dist.gather(1, flat))
    along = torch.full_like(dist, math.inf).scatter_reduce(1, flat, torch.where(nearest, t, math.inf), "amin")
    along = torch.where(torch.isfinite(along), along, 0.0)
    shape = (batch, win.side, win.side)
    return dist.view(shape), along.view(shape)
