"""The batched engine behind ``suite.data.augment``: block choice, colour blocks, copy-paste and lines
for a whole batch at once (the procedure is documented in ``suite.data.augment``).

Every random number is drawn up front per batch, in a fixed order, from the caller's generator on the
generator's own device; the small parameter tensors then move to the images' device, where all pixel
work happens. A block of side ``s`` is C x s row pieces of s pixels, aligned to s in the (padded) output,
so colour fills and pasted patches are one ``index_select`` and one ``index_copy_`` of row pieces per
distinct block side and source, and lines of every image are rasterised together. Only the touched
blocks and the line pixels are read or compared, so the cost grows with the corrupted area, not with
B x H x W (the output copy aside).
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
LINE_CHUNK_ELEMENTS = 1 << 22  # cap on candidate pixels tested at once when rasterising


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
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Corrupt every image; ``coverage`` (B,) float64 per image, ``clean`` (B,) bool images left alone.

    Returns (corrupted, masks (B, 1, H, W) in {0, 1}, family maps (B, 1, H, W) int64 or None).
    """
    batch, channels, height, width = images.shape
    dev, gdev = images.device, gen.device
    corrupted = images.clone(memory_format=torch.contiguous_format)  # block views assume NCHW strides
    # float32 masks (B, H, W): 0/1 per pixel, and the lines' owner map while they are rasterised
    masks = torch.zeros((batch, height, width), dtype=torch.float32, device=dev)
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

    _paint_blocks(corrupted, images, donors, masks, fam_map, colour, paste)
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


def _chunk_starts(image, top, left, side, channels, height, width) -> Tensor:
    """(T, C, side) flat offsets of the side-long row pieces of the side x side windows at (top, left)
    of images ``image`` in a contiguous (B, C, height, width) tensor."""
    steps = torch.arange(side, device=image.device)
    chans = torch.arange(channels, device=image.device)[None, :, None]
    rows = (image[:, None, None] * channels + chans) * height + top[:, None, None] + steps
    return rows * width + left[:, None, None]


def _read_windows(source: Tensor, starts: Tensor, side: int) -> Tensor:
    """Row pieces [start, start + side) of a contiguous tensor, (N, side): ``index_select`` over an
    overlapping sliding-window view copies each piece as one run (far faster on CPU than advanced
    indexing, which computes an address per element)."""
    flat = source.reshape(-1)
    windows = flat.as_strided((flat.numel() - side + 1, side), (1, 1))
    return torch.index_select(windows, 0, starts.reshape(-1))


def _paint_blocks(corrupted, images, donors, masks, fam_map, colour, paste) -> None:
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
            ids = _chunk_starts(p["image"], p["top"], p["left"], side, channels, hp, wp) // side
            before = rows.index_select(0, ids.reshape(-1)).view(count, channels, side, side)
            if code == COLOR_BLOCK:
                inside_rows = (steps >= p["r0"][:, None]) & (steps < p["r1"][:, None])
                inside_cols = (steps >= p["c0"][:, None]) & (steps < p["c1"][:, None])
                inside = (inside_rows[:, :, None] & inside_cols[:, None, :])[:, None]
                after = torch.where(inside, p["colors"].to(images.dtype)[:, :, None, None], before)
            else:
                # A side x side window at a valid source position never leaves the image.
                starts = _chunk_starts(p["source"], p["src_top"], p["src_left"], side, channels, height, width)
                after = _read_windows(source, starts, side).view(count, channels, side, side)
            rows.index_copy_(0, ids.reshape(-1), after.reshape(-1, side))
            changed = (after != before).any(dim=1)  # (T, side, side)
            mask_ids = _chunk_starts(p["image"], p["top"], p["left"], side, 1, hp, wp)[:, 0] // side
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
    does not depend on the order of the writes.
    """
    batch, channels, height, width = images.shape
    dev = images.device
    flat, segment = _rasterise(
        lines["image"], lines["start_y"], lines["start_x"], lines["delta_y"], lines["delta_x"], lines["radius"],
        height, width, dev,
    )
    owner = masks.view(-1)
    owner.scatter_reduce_(0, flat, (segment + 2).to(torch.float32), reduce="amax")
    segment = owner.index_select(0, flat).long() - 2
    plane = height * width
    # flat = image * H * W + pixel; channel c of that pixel sits at (image * C + c) * H * W + pixel.
    base = flat + (flat // plane) * ((channels - 1) * plane)
    values = lines["colors"].to(dev, images.dtype).t().contiguous().index_select(1, segment)  # (C, N)
    out, clean = corrupted.view(-1), images.reshape(-1)
    changed = torch.zeros(flat.shape, dtype=torch.bool, device=dev)
    for c in range(channels):
        index = base + c * plane
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
    flat, segment = _rasterise(image, start_y, start_x, delta_y, delta_x, radius, height, width, device)
    return owner.scatter_reduce_(0, flat, segment, reduce="amax")


def _rasterise(image, start_y, start_x, delta_y, delta_x, radius, height, width, device):
    """Flat pixel index (image * H * W + y * W + x) and segment index of every covered (pixel, segment).

    Only a band of candidate pixels around each segment is tested: along the segment's major axis each
    integer coordinate in its range +- radius (a ragged number of rows per segment), across it the
    integers within ``ceil(radius * sqrt(1 + slope^2)) + 1`` of the (end-clamped) centre line, which
    holds every pixel within ``radius`` of the segment; the exact distance test then decides. Segments
    are processed in groups of equal band width, so the cost is about length x width per segment.
    """
    empty = torch.zeros(0, dtype=torch.long, device=device)
    if start_y.numel() == 0:
        return empty, empty
    # Work in each segment's (major, minor) frame: distances are the same, the axes only swap.
    major_is_y = delta_y.abs() >= delta_x.abs()
    a0 = torch.where(major_is_y, start_y, start_x)
    b0 = torch.where(major_is_y, start_x, start_y)
    da = torch.where(major_is_y, delta_y, delta_x)
    db = torch.where(major_is_y, delta_x, delta_y)
    a_first = torch.floor(torch.minimum(a0, a0 + da) - radius)
    n_major = (torch.ceil(da.abs() + 2 * radius).long() + 2).to(device)
    slope = db.abs() / da.abs().clamp(min=1e-12)
    half_band = (torch.ceil(radius * torch.sqrt(1 + slope * slope)).long() + 1).to(device)
    safe_da = torch.where(da.abs() < 1e-9, torch.ones_like(da), da)  # zero-length: t = 0 below
    inv_len2 = 1.0 / (da * da + db * db).clamp(min=1e-12)
    a_size = torch.where(major_is_y, height, width).to(device)
    b_size = torch.where(major_is_y, width, height).to(device)
    params = [v.to(device, torch.float32) for v in (a0, b0, da, db, radius * radius, a_first, safe_da, inv_len2)]
    major_is_y = major_is_y.to(device)
    plane = image.to(device, torch.int64) * (height * width)
    flats, segments = [], []
    for band in half_band.unique().tolist():
        minor_steps = torch.arange(-band, band + 1, device=device, dtype=torch.float32)
        ids = (half_band == band).nonzero().flatten()
        ends = n_major[ids].cumsum(0)
        rows_per_chunk = max(1, LINE_CHUNK_ELEMENTS // minor_steps.numel())
        first = 0
        while first < ids.numel():
            base = int(ends[first - 1]) if first else 0
            last = min(max(int(torch.searchsorted(ends, base + rows_per_chunk, right=True)), first + 1), ids.numel())
            counts = n_major[ids[first:last]]
            local = torch.repeat_interleave(torch.arange(first, last, device=device), counts)
            line = ids.index_select(0, local)
            # One candidate row per major coordinate of every segment in the chunk: (R, 1) columns,
            # the minor offsets across the band along the second axis.
            starts = ends[first:last] - counts - base  # first row of each segment within the chunk
            step = torch.arange(local.numel(), device=device) - starts.index_select(0, local - first)
            # 1-D index_select: much faster on CPU than advanced indexing for these gathers
            la0, lb0, lda, ldb, r2, la_first, lsafe, inv = (v.index_select(0, line)[:, None] for v in params)
            a = la_first + step.to(torch.float32)[:, None]
            centre = torch.round(lb0 + ldb * ((a - la0) / lsafe).clamp(0.0, 1.0))
            pa = a - la0
            pb = (centre - lb0) + minor_steps  # (R, Nb): b - b0
            # Distance to the segment: project onto it, clamp to [0, 1], measure the remainder.
            t = (pa * lda * inv + pb * (ldb * inv)).clamp_(0.0, 1.0)
            ea, eb = pa - t * lda, pb - t * ldb
            covered = ea * ea + eb * eb <= r2
            b = pb + lb0
            covered &= (b >= 0) & (b < b_size.index_select(0, line)[:, None])
            covered &= (a >= 0) & (a < a_size.index_select(0, line)[:, None])
            hit = covered.view(-1).nonzero().flatten()
            row = hit // minor_steps.numel()
            a_int = a.view(-1).index_select(0, row).long()
            b_int = b.view(-1).index_select(0, hit).long()
            seg = line.index_select(0, row)
            major = major_is_y.index_select(0, seg)
            ys, xs = torch.where(major, a_int, b_int), torch.where(major, b_int, a_int)
            flats.append(plane.index_select(0, seg) + ys * width + xs)
            segments.append(seg)
            first = last
    return torch.cat(flats), torch.cat(segments)
