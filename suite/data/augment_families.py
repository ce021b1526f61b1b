"""The batched engine behind ``suite.data.augment``: block choice, colour blocks, copy-paste and lines
for a whole batch at once (the procedure is documented in ``suite.data.augment``).

Every random number is drawn up front per batch, in a fixed order, from the caller's generator on the
generator's own device; the small parameter tensors then move to the images' device, where all pixel
work happens. A block of side ``s`` is C x s row pieces of s pixels, aligned to s in the (padded) output,
so colour fills and pasted patches are one ``index_select`` and one ``index_copy_`` of row pieces per
distinct block side and source, and lines of every image are rasterised together. Only the touched
blocks and the line pixels are read or compared, so the cost grows with the corrupted area, not with
B x H x W (the output copy aside). On CPU, freshly allocated large tensors cost page faults comparable
to the arithmetic, so the per-pixel steps reuse their buffers in place where they can.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

NO_FAMILY = 0
COLOR_BLOCK = 1
COPY_PASTE = 2
LINES = 3

LINE_WIDTH_REFERENCE = 256  # line widths are px at this size (the paper gives none)
MIN_BLOCK_PX = 4
LINE_WIDTH_PX = (1.0, 3.0)  # at LINE_WIDTH_REFERENCE
# Just above sqrt(2)/2: every point of a segment then has a covered pixel centre within reach, so
# even sub-pixel-wide lines (small images) rasterise as cracks without gaps.
MIN_LINE_HALF_WIDTH = 0.71
DARK_LEVELS = (0.0, 0.2)
BRIGHT_LEVELS = (0.8, 1.0)
DONOR_PROB = 0.5  # copy-paste: probability of taking the patch from a donor image (when given)


class Buffers:
    """Output tensors kept from one call to the next, so a training loop stops paying for fresh ones.

    On CPU a freshly allocated image-batch tensor (100 MB at 1024 px, batch 8) costs page faults
    comparable to all the corruption work. A caller that passes ``buffers`` must be done with the
    tensors the previous call returned before it calls again: they are overwritten.
    """

    def __init__(self) -> None:
        self._store: dict[str, Tensor] = {}

    def get(self, name: str, shape, dtype: torch.dtype, device, avoid: Tensor | None = None) -> Tensor:
        """An uninitialised tensor of that shape, dtype and device (never sharing memory with ``avoid``)."""
        held = self._store.get(name)
        stale = held is None or held.shape != torch.Size(shape) or held.dtype != dtype
        if stale or held.device != torch.device(device) or (
                avoid is not None and held.untyped_storage().data_ptr() == avoid.untyped_storage().data_ptr()):
            held = torch.empty(shape, dtype=dtype, device=device)
            self._store[name] = held
        return held

    def scratch(self, name: str, shape, dtype: torch.dtype, device) -> Tensor:
        """An uninitialised tensor of that shape viewed from a flat buffer kept across calls and grown
        when short: for temporaries whose size changes from call to call (touched blocks, line pixels)."""
        numel = math.prod(shape)
        held = self._store.get(name)
        if held is None or held.numel() < numel or held.dtype != dtype or held.device != torch.device(device):
            held = torch.empty(numel + numel // 4, dtype=dtype, device=device)  # headroom for the next call
            self._store[name] = held
        return held[:numel].view(shape)


def _scratch(buffers: Buffers | None, name: str, shape, dtype: torch.dtype, device) -> Tensor:
    if buffers is None:
        return torch.empty(shape, dtype=dtype, device=device)
    return buffers.scratch(name, shape, dtype, device)


def block_size_px(size_at_reference: int, height: int, width: int, reference: int = 1024) -> int:
    """``clamp(round(size * H / reference), 4, min(H, W))``: a block size in px for an H x W image."""
    scaled = round(size_at_reference * height / reference)
    return int(min(max(scaled, MIN_BLOCK_PX), height, width))


def _rand(shape, gen: torch.Generator, dtype=torch.float32) -> Tensor:
    return torch.rand(shape, generator=gen, device=gen.device, dtype=dtype)


def _randint(high: int, shape, gen: torch.Generator) -> Tensor:
    return torch.randint(high, shape, generator=gen, device=gen.device)


def uniform_int(low: Tensor, high: Tensor, gen: torch.Generator) -> Tensor:
    """Integers uniform in [low, high] (inclusive, elementwise; int64 on the generator's device)."""
    u = _rand(low.shape, gen, torch.float64)
    return low + torch.minimum((u * (high - low + 1)).long(), high - low)


def corrupt_batch(
    images: Tensor,
    cfg,
    gen: torch.Generator,
    donors: Tensor | None,
    coverage: Tensor,
    families: list[int],
    min_blocks: int,
    whole_block_prob: float,
    clean: Tensor | None = None,
    want_families: bool = False,
    buffers: Buffers | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Corrupt every image; ``coverage`` (B,) float64 per image, ``clean`` (B,) bool images left alone.

    Returns (corrupted, masks (B, 1, H, W) in {0, 1}, family maps (B, 1, H, W) int64 or None);
    corrupted and masks live in ``buffers`` when given.
    """
    batch, channels, height, width = images.shape
    dev, gdev = images.device, gen.device
    if buffers is None:
        corrupted = images.clone(memory_format=torch.contiguous_format)  # block views assume NCHW strides
        # float32 masks (B, H, W): 0/1 per pixel, and the lines' owner map while they are rasterised
        masks = torch.zeros((batch, height, width), dtype=torch.float32, device=dev)
    else:
        corrupted = buffers.get("corrupted", images.shape, images.dtype, dev, avoid=images).copy_(images)
        masks = buffers.get("masks", (batch, height, width), torch.float32, dev, avoid=images).zero_()
    fam_map = torch.zeros((batch, height, width), dtype=torch.int8, device=dev) if want_families else None
    if not families or not batch:
        return corrupted, masks[:, None].to(images.dtype), _long(fam_map)

    sizes = torch.tensor(
        [block_size_px(int(s), height, width, int(cfg.reference_size)) for s in cfg.block_sizes], device=gdev
    )
    block = sizes[_randint(len(sizes), (batch,), gen)]
    grid_w = (width + block - 1) // block
    n_blocks = ((height + block - 1) // block) * grid_w
    exact = coverage.to(gdev, torch.float64) * n_blocks
    n_touched = exact.floor().long()
    n_touched += (_rand(batch, gen, torch.float64) < exact - n_touched).long()
    n_touched = torch.minimum(n_touched.clamp(min=min_blocks), n_blocks)
    if clean is not None:
        n_touched = torch.where(clean.to(gdev), torch.zeros_like(n_touched), n_touched)
    # A uniform random subset of k_i of the n_i blocks: the k_i smallest of n_i uniform keys.
    slots = torch.arange(int(n_blocks.max()), device=gdev)
    keys = _rand((batch, slots.numel()), gen).masked_fill_(slots >= n_blocks[:, None], 2.0)
    image, rank = (slots < n_touched[:, None]).nonzero(as_tuple=True)
    touched = keys.argsort(dim=1)[image, rank]
    family = torch.tensor(families, device=gdev)[_randint(len(families), (image.numel(),), gen)]
    side = block[image]
    top, left = (touched // grid_w[image]) * side, (touched % grid_w[image]) * side
    geometry = image, top, left, side, (height - top).clamp(max=side), (width - left).clamp(max=side)

    pick = family == COLOR_BLOCK
    colour = _colour_params(*(g[pick] for g in geometry), channels, whole_block_prob, gen) if pick.any() else None
    pick = family == COPY_PASTE
    paste = _paste_params(*(g[pick] for g in geometry[:4]), height, width, donors, gen) if pick.any() else None
    pick = family == LINES
    lines = _line_params(*(g[pick] for g in geometry), channels, height, cfg, gen) if pick.any() else None

    _paint_blocks(corrupted, images, donors, masks, fam_map, colour, paste, buffers)
    if lines is not None:
        _paint_lines(corrupted, images, masks, fam_map, lines)
    return corrupted, masks[:, None].to(images.dtype), _long(fam_map)


def _long(fam_map: Tensor | None) -> Tensor | None:
    return None if fam_map is None else fam_map[:, None].long()


def _colour_params(image, top, left, side, block_h, block_w, channels, whole_block_prob, gen) -> dict:
    count = image.numel()
    whole = _rand(count, gen) < whole_block_prob
    rect_h = uniform_int((block_h + 3) // 4, block_h, gen)
    rect_w = uniform_int((block_w + 3) // 4, block_w, gen)
    rect_top = uniform_int(torch.zeros_like(rect_h), block_h - rect_h, gen)
    rect_left = uniform_int(torch.zeros_like(rect_w), block_w - rect_w, gen)
    colors = _rand((count, channels), gen)
    zero = torch.zeros_like(rect_top)
    return {
        "image": image, "top": top, "left": left, "side": side, "colors": colors,
        # rectangle bounds relative to the block: rows [r0, r1), columns [c0, c1)
        "r0": torch.where(whole, zero, rect_top), "r1": torch.where(whole, block_h, rect_top + rect_h),
        "c0": torch.where(whole, zero, rect_left), "c1": torch.where(whole, block_w, rect_left + rect_w),
    }


def _paste_params(image, top, left, side, height, width, donors, gen) -> dict:
    """Source of each pasted block: the clean image itself at a position other than the block's own,
    or (probability ``DONOR_PROB`` when donors are given) a donor at any position."""
    count = image.numel()
    n_donors = 0 if donors is None else donors.shape[0]
    pos_rows, pos_cols = height - side + 1, width - side + 1
    n_positions = pos_rows * pos_cols
    use_donor = _rand(count, gen) < DONOR_PROB
    if not n_donors:
        use_donor.zero_()
    donor = _randint(max(n_donors, 1), (count,), gen)
    zeros = torch.zeros_like(image)
    any_position = uniform_int(zeros, n_positions - 1, gen)
    # Edge blocks smaller than the side have no own position, so nothing is skipped for them.
    has_own = (top < pos_rows) & (left < pos_cols)
    own = torch.where(has_own, top * pos_cols + left, n_positions)
    other = uniform_int(zeros, (n_positions - 1 - has_own.long()).clamp(min=0), gen)
    other = other + (other >= own).long()
    # A single possible position (block as large as the image) leaves nothing "other" to take.
    position = torch.where(use_donor, any_position, torch.minimum(other, n_positions - 1))
    return {
        "image": image, "top": top, "left": left, "side": side, "use_donor": use_donor,
        "source": torch.where(use_donor, donor, image), "src_top": position // pos_cols,
        "src_left": position % pos_cols,
    }


def _line_params(image, top, left, side, block_h, block_w, channels, height, cfg, gen) -> dict:
    n_blocks = image.numel()
    low, high = int(cfg.num_lines[0]), int(cfg.num_lines[1])
    counts = uniform_int(torch.full_like(image, low), torch.full_like(image, high), gen)
    owner = torch.repeat_interleave(torch.arange(n_blocks, device=image.device), counts)
    u = _rand((owner.numel(), 5), gen, torch.float64)
    # Pixel centres are at integer coordinates; a block's pixels span [top - 0.5, top + h - 0.5).
    start_y = top[owner] - 0.5 + u[:, 0] * block_h[owner]
    start_x = left[owner] - 0.5 + u[:, 1] * block_w[owner]
    angle = u[:, 2] * (2 * math.pi)
    scale = height / float(cfg.reference_size)
    length_low, length_high = (float(v) * scale for v in cfg.line_length)
    length = length_low + u[:, 3] * (length_high - length_low)
    line_width = (LINE_WIDTH_PX[0] + u[:, 4] * (LINE_WIDTH_PX[1] - LINE_WIDTH_PX[0])) * (height / LINE_WIDTH_REFERENCE)
    bright = _rand(n_blocks, gen) < 0.5
    levels = _rand((n_blocks, channels), gen)
    lo = torch.where(bright, BRIGHT_LEVELS[0], DARK_LEVELS[0])[:, None]
    hi = torch.where(bright, BRIGHT_LEVELS[1], DARK_LEVELS[1])[:, None]
    return {
        "image": image[owner], "start_y": start_y, "start_x": start_x,
        "delta_y": length * torch.sin(angle), "delta_x": length * torch.cos(angle),
        "radius": (line_width / 2).clamp(min=MIN_LINE_HALF_WIDTH), "colors": (lo + levels * (hi - lo))[owner],
    }


def _piece_starts(image, top, left, side, channels, height, width) -> Tensor:
    """(T, C, side) flat offsets of the side-long row pieces of the side x side windows at (top, left)
    of images ``image`` in a contiguous (B, C, height, width) tensor."""
    steps = torch.arange(side, device=image.device)
    chans = torch.arange(channels, device=image.device)[None, :, None]
    rows = (image[:, None, None] * channels + chans) * height + top[:, None, None] + steps
    return rows * width + left[:, None, None]


def _read_windows(source: Tensor, starts: Tensor, side: int, out: Tensor) -> Tensor:
    """Row pieces [start, start + side) of a contiguous tensor, (N, side): ``index_select`` over an
    overlapping sliding-window view copies each piece as one run (far faster on CPU than advanced
    indexing, which computes an address per element)."""
    flat = source.reshape(-1)
    windows = flat.as_strided((flat.numel() - side + 1, side), (1, 1))
    return torch.index_select(windows, 0, starts.reshape(-1), out=out)


def _paint_blocks(corrupted, images, donors, masks, fam_map, colour, paste, buffers=None) -> None:
    """Colour fills and pasted patches, one gather and one scatter of block rows per distinct block side
    and source. Blocks are disjoint, so what a block reads before writing is the clean image and the
    changed-test is local to the block."""
    if colour is None and paste is None:
        return
    batch, channels, height, width = images.shape
    dev = images.device
    sides = torch.cat([p["side"] for p in (colour, paste) if p is not None]).unique().tolist()
    # Partial edge blocks: work on a canvas padded to whole blocks of every side used (cropped after),
    # so every block row piece is aligned to its side in the flat canvas.
    hp = max(-(-height // s) * s for s in sides)
    wp = max(-(-width // s) * s for s in sides)
    padded = (hp, wp) != (height, width)
    canvas, mask_canvas, fam_canvas = corrupted, masks, fam_map
    if padded:
        canvas = torch.zeros((batch, channels, hp, wp), dtype=images.dtype, device=dev)
        canvas[..., :height, :width] = images
        mask_canvas = torch.zeros((batch, hp, wp), dtype=torch.float32, device=dev)
        fam_canvas = None if fam_map is None else torch.zeros((batch, hp, wp), dtype=torch.int8, device=dev)
    groups = []
    if colour is not None:
        groups.append((COLOR_BLOCK, colour, None))
    if paste is not None:
        groups.append((COPY_PASTE, {k: v[~paste["use_donor"]] for k, v in paste.items()}, images))
        if donors is not None:
            groups.append((COPY_PASTE, {k: v[paste["use_donor"]] for k, v in paste.items()}, donors))
    for side in sides:
        steps = torch.arange(side, device=dev)
        rows = canvas.view(-1, side)
        for code, params, source in groups:
            pick = (params["side"] == side).to(dev)
            p = {k: v.to(dev)[pick] for k, v in params.items()}
            count = p["image"].numel()
            if not count:
                continue
            ids = _piece_starts(p["image"], p["top"], p["left"], side, channels, hp, wp) // side
            before = _scratch(buffers, "before", (ids.numel(), side), images.dtype, dev)
            before = torch.index_select(rows, 0, ids.reshape(-1), out=before).view(count, channels, side, side)
            if code == COLOR_BLOCK:
                inside_rows = (steps >= p["r0"][:, None]) & (steps < p["r1"][:, None])
                inside_cols = (steps >= p["c0"][:, None]) & (steps < p["c1"][:, None])
                inside = (inside_rows[:, :, None] & inside_cols[:, None, :])[:, None]
                fill = p["colors"].to(images.dtype)[:, :, None, None]
                changed = (before != fill).any(dim=1).logical_and_(inside[:, 0])
                after = torch.where(inside, fill, before, out=before)  # in place: no second block-sized tensor
            else:
                # A side x side window at a valid source position never leaves the image.
                starts = _piece_starts(p["source"], p["src_top"], p["src_left"], side, channels, height, width)
                after = _scratch(buffers, "windows", (starts.numel(), side), images.dtype, dev)
                after = _read_windows(source, starts, side, after).view(count, channels, side, side)
                changed = (after != before).any(dim=1)  # (T, side, side)
            rows.index_copy_(0, ids.reshape(-1), after.reshape(-1, side))
            mask_ids = _piece_starts(p["image"], p["top"], p["left"], side, 1, hp, wp)[:, 0] // side
            mask_canvas.view(-1, side).index_copy_(0, mask_ids.reshape(-1), changed.to(torch.float32).reshape(-1, side))
            if fam_canvas is not None:
                codes = (changed.to(torch.int8) * code).reshape(-1, side)
                fam_canvas.view(-1, side).index_copy_(0, mask_ids.reshape(-1), codes)
    if padded:
        corrupted.copy_(canvas[..., :height, :width])
        masks.copy_(mask_canvas[:, :height, :width])
        if fam_map is not None:
            fam_map.copy_(fam_canvas[:, :height, :width])


def _paint_lines(corrupted, images, masks, fam_map, lines) -> None:
    """Lines go after the block families and paint over them; the mask is re-tested at their pixels.

    The float mask doubles as the owner map: ``amax`` of ``segment + 2`` (above the 0/1 mask values,
    exact in float32) leaves the last segment covering each pixel. Every candidate then takes its
    pixel's owner colour, so pixels covered twice get the same value from both writes and the result
    does not depend on the order of the writes. Per-segment tables are looked up with ``segment + 2``
    directly (two padding rows in front), which saves a pass over the line pixels.
    """
    batch, channels, height, width = images.shape
    dev = images.device
    flat, run_line, run_count = _rasterise(
        lines["image"], lines["start_y"], lines["start_x"], lines["delta_y"], lines["delta_x"], lines["radius"],
        height, width, dev,
    )
    owner = masks.view(-1)
    tags = torch.repeat_interleave(run_line.to(torch.float32).add_(2), run_count)
    owner.scatter_reduce_(0, flat, tags, reduce="amax")
    winner = owner.index_select(0, flat).long()  # segment + 2 of the pixel's last segment
    plane = height * width
    no_shift = torch.zeros(2, dtype=torch.long, device=dev)  # the two padding rows
    # flat = image * H * W + pixel; channel c of that pixel sits at (image * C + c) * H * W + pixel.
    channel_shift = torch.cat([no_shift, lines["image"].to(dev) * ((channels - 1) * plane)])
    index = channel_shift.index_select(0, winner).add_(flat)
    no_colour = torch.zeros((2, channels), dtype=images.dtype, device=dev)
    colours = torch.cat([no_colour, lines["colors"].to(dev, images.dtype)])
    values = colours.t().contiguous().index_select(1, winner)  # (C, N)
    out, clean = corrupted.view(-1), images.reshape(-1)
    changed = torch.zeros(flat.shape, dtype=torch.bool, device=dev)
    for c in range(channels):
        if c:
            index.add_(plane)
        changed |= values[c] != clean.index_select(0, index)
        out.index_copy_(0, index, values[c])
    owner.index_copy_(0, flat, changed.to(torch.float32))
    if fam_map is not None:
        fam_map.view(-1).index_copy_(0, flat, changed.to(torch.int8) * LINES)


def rasterise_lines(
    image: Tensor,
    start_y: Tensor,
    start_x: Tensor,
    delta_y: Tensor,
    delta_x: Tensor,
    radius: Tensor,
    batch: int,
    height: int,
    width: int,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Owner map (B * H * W,) int64 of thick segments over a batch: the index of the last segment
    (in the given order) covering each pixel of its own image ``image[i]``, -1 where none does.

    Segment ``i`` runs from (start_y, start_x) to (start_y + delta_y, start_x + delta_x) in pixel
    coordinates (pixel centres at integers); pixel p is covered when ``dist(p, segment_i) <= radius_i``.
    """
    owner = torch.full((batch * height * width,), -1, dtype=torch.long, device=device)
    flat, run_line, run_count = _rasterise(image, start_y, start_x, delta_y, delta_x, radius, height, width, device)
    return owner.scatter_reduce_(0, flat, torch.repeat_interleave(run_line, run_count), reduce="amax")


def _rasterise(image, start_y, start_x, delta_y, delta_x, radius, height, width, device):
    """Flat pixel index (image * H * W + y * W + x) of every covered (pixel, segment), in runs: the
    pixels of run ``k`` belong to segment ``run_line[k]`` and there are ``run_count[k]`` of them
    (``repeat_interleave(run_line, run_count)`` gives the segment of every pixel).

    The covered set of a segment is a capsule (the points within ``radius`` of it), which is convex,
    so each pixel row across the segment's major axis meets it in one interval: the union of the
    strip part (projection in [0, 1], perpendicular distance <= radius) and the two end discs, all
    solved in closed form per row (float64). Only the pixels inside the intervals are generated, so the
    cost is per row plus per covered pixel.
    """
    empty = torch.zeros(0, dtype=torch.long, device=device)
    if start_y.numel() == 0:
        return empty, empty, empty
    # Work in each segment's (major, minor) frame: distances are the same, the axes only swap.
    major_is_y = delta_y.abs() >= delta_x.abs()
    a0 = torch.where(major_is_y, start_y, start_x).double()
    b0 = torch.where(major_is_y, start_x, start_y).double()
    da = torch.where(major_is_y, delta_y, delta_x).double()
    db = torch.where(major_is_y, delta_x, delta_y).double()
    radius = radius.double()
    a_first = torch.ceil(torch.minimum(a0, a0 + da) - radius)
    n_major = (torch.floor(torch.maximum(a0, a0 + da) + radius) - a_first + 1).clamp(min=0).long()
    a_size = torch.where(major_is_y, height, width)
    b_size = torch.where(major_is_y, width, height)
    per_line = [v.to(device) for v in (a0, b0, da, db, radius, a_first, a_size, b_size, major_is_y)]
    line = torch.repeat_interleave(torch.arange(start_y.numel(), device=device), n_major.to(device))
    starts = (n_major.cumsum(0) - n_major).to(device)
    la0, lb0, lda, ldb, r, la_first, la_size, lb_size, major = (v.index_select(0, line) for v in per_line)
    a = la_first + (torch.arange(line.numel(), device=device) - starts.index_select(0, line))
    pa = a - la0
    inf = torch.full_like(pa, math.inf)
    lo, hi = inf, -inf
    # End discs: |b - b_end| <= sqrt(r^2 - (a - a_end)^2).
    for ea, eb in ((la0, lb0), (la0 + lda, lb0 + ldb)):
        reach2 = r * r - (a - ea) ** 2
        reach = reach2.clamp(min=0).sqrt()
        lo = torch.where(reach2 >= 0, torch.minimum(lo, eb - reach), lo)
        hi = torch.where(reach2 >= 0, torch.maximum(hi, eb + reach), hi)
    # Strip: |pa db - pb da| <= r L (perpendicular distance) and 0 <= pa da + pb db <= L^2 (projection),
    # with pb = b - b0; |da| >= |db|, so da is 0 only for a zero-length segment (the discs cover it).
    length = torch.sqrt(lda * lda + ldb * ldb)
    safe_da = torch.where(lda == 0, torch.ones_like(lda), lda)
    p1, p2 = (pa * ldb - r * length) / safe_da, (pa * ldb + r * length) / safe_da
    s_lo, s_hi = torch.minimum(p1, p2), torch.maximum(p1, p2)
    safe_db = torch.where(ldb == 0, torch.ones_like(ldb), ldb)
    q1, q2 = -pa * lda / safe_db, (length * length - pa * lda) / safe_db
    along = (pa * lda >= 0) & (pa * lda <= length * length)  # db == 0: the projection does not depend on b
    s_lo = torch.where(ldb == 0, torch.where(along, s_lo, inf), torch.maximum(s_lo, torch.minimum(q1, q2)))
    s_hi = torch.where(ldb == 0, torch.where(along, s_hi, -inf), torch.minimum(s_hi, torch.maximum(q1, q2)))
    strip = (lda != 0) & (s_lo <= s_hi)
    lo = torch.where(strip, torch.minimum(lo, lb0 + s_lo), lo)
    hi = torch.where(strip, torch.maximum(hi, lb0 + s_hi), hi)
    first_b = torch.ceil(lo).clamp(min=0)
    last_b = torch.minimum(torch.floor(hi), lb_size - 1.0)
    inside_rows = (a >= 0) & (a < la_size)
    count = torch.where(inside_rows & (last_b >= first_b), last_b - first_b + 1, torch.zeros_like(a)).long()
    # Per row: the flat index of its first covered pixel and the flat step between neighbours along b.
    a_long, b_long = a.long(), first_b.long()
    plane = image.to(device, torch.int64).index_select(0, line) * (height * width)
    row_base = plane + torch.where(major, a_long * width + b_long, b_long * width + a_long)
    row_step = torch.where(major, 1, width)
    keep = count > 0
    count, row_base, row_step, line = count[keep], row_base[keep], row_step[keep], line[keep]
    # Per pixel only three full-size tensors are made: the flat index is a running sum of per-pixel
    # increments (the row's step, or at a row's first pixel the jump from the previous row's last one),
    # exact in int64. Each large temporary costs page faults on CPU comparable to the arithmetic itself.
    jump = row_base.clone()
    jump[1:] -= row_base[:-1] + (count[:-1] - 1) * row_step[:-1]
    increments = torch.repeat_interleave(row_step, count)
    increments.index_copy_(0, count.cumsum(0) - count, jump)
    return increments.cumsum_(0), line, count
