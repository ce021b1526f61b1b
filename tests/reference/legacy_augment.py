# PRE-REWRITE REFERENCE (issue 20): a verbatim copy of suite/data/augment.py before the batched rewrite.
# Kept only as the oracle for the distribution tests (tests/unit/data/test_augment_distributions.py)
# and the speed benchmark (benchmarks/augment_speed.py). Not used by the suite; do not edit.
"""Structured corruptions: stage-1 training pairs and pseudo-anomalies with exact masks.

The RcAE paper (Sec. "Augmentation") corrupts normal images with three simple families applied to
random blocks of size 32, 64 or 128 px (at the paper's 1024 px, ``cfg.reference_size``; scaled
with the image) at a varying coverage (0-100 %): random colour blocks, copy & paste patches
and 1-4 random lines of length 50-150 px
forming crack-like structures. They are used

* in stage 1: the RcAE input is corrupted and its target is the clean image (``training_pair``);
* in stage 3 and for validation: the corrupted image is a pseudo-anomaly and the mask says where
  (``pseudo_anomalies``).

Images are float tensors (B, C, H, W) in [0, 1] (C = 3 for RGB). The procedure, per image:

0. With probability ``cfg.clean_fraction`` (stage 1 only) the image is left clean. Its coverage
   is ``cfg.coverage``, or with ``cfg.coverage_sampling == "uniform"`` a draw ``U(0, coverage)``.
1. A block size ``b = clamp(round(s * H / R), 4, min(H, W))`` with ``s`` drawn uniformly from
   ``cfg.block_sizes`` and ``R = cfg.reference_size``; the image is cut into a
   ``ceil(H / b) x ceil(W / b)`` grid (edge blocks may be smaller).
2. ``k`` blocks out of the grid's ``n`` are touched, with ``k = floor(coverage * n)`` plus one more
   with probability ``coverage * n - floor(coverage * n)`` (so E[k] / n = coverage exactly,
   coverage 0 touches none and coverage 1 touches all).
3. Each touched block gets one family drawn uniformly among the enabled ones:

   * colour block: with probability ``whole_block_prob`` the whole block, otherwise a random
     sub-rectangle (sides uniform in [ceil(side / 4), side]), filled with a uniform random colour;
   * copy-paste: the block is replaced by the same-size patch at a random other position of the
     clean image itself or (probability 1/2 when ``donors`` are given) of a random donor image;
   * lines: ``cfg.num_lines`` (inclusive range) straight segments, each starting at a uniform
     point of the block, with uniform direction, length uniform in ``cfg.line_length * H / R``
     and width uniform in ``[1, 3] * H / 256`` px (the paper gives no width);
     a pixel is covered when its centre lies within
     ``max(width / 2, 0.71)`` of the segment. One dark (each channel in [0, 0.2]) or bright (in
     [0.8, 1]) colour per block. Lines may leave their block; they are drawn after the block-local
     families, so they paint over them.

The mask is computed from the result, ``mask = any_c(corrupted != original)``, so it is exactly the
set of changed pixels even where a new value happens to equal the old one or a copied patch matches.

Randomness comes only from the given ``torch.Generator`` (a CPU generator), drawn in a fixed order,
so the same seed gives identical outputs. Pixel work runs on the images' device.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from suite.config import AugmentConfig, ConfigError

# Family codes, as stored in the family maps returned by ``corrupt_with_families``.
NO_FAMILY = 0
COLOR_BLOCK = 1
COPY_PASTE = 2
LINES = 3
FAMILY_NAMES = {COLOR_BLOCK: "color_blocks", COPY_PASTE: "copy_paste", LINES: "lines"}

LINE_WIDTH_REFERENCE = 256  # line widths are px at this size (the paper gives none)
MIN_BLOCK_PX = 4
LINE_WIDTH_PX = (1.0, 3.0)  # at LINE_WIDTH_REFERENCE
# Just above sqrt(2)/2: every point of a segment then has a covered pixel centre within reach, so
# even sub-pixel-wide lines (small images) rasterise as cracks without gaps.
MIN_LINE_HALF_WIDTH = 0.71
DARK_LEVELS = (0.0, 0.2)
BRIGHT_LEVELS = (0.8, 1.0)
WHOLE_BLOCK_PROB = 0.5  # colour blocks: probability of filling the whole block, not a sub-rectangle
DONOR_PROB = 0.5  # copy-paste: probability of taking the patch from a donor image (when given)
LINE_CHUNK_ELEMENTS = 1 << 22  # cap on (lines x candidate pixels) tested at once when rasterising
MIN_PSEUDO_COVERAGE = 0.1
PSEUDO_ATTEMPTS = 16


def enabled_families(cfg: AugmentConfig) -> list[int]:
    """The family codes switched on in ``cfg`` (ignores ``cfg.enabled``)."""
    flags = ((COLOR_BLOCK, cfg.color_blocks), (COPY_PASTE, cfg.copy_paste), (LINES, cfg.lines))
    return [code for code, on in flags if on]


def check_augment_config(cfg: AugmentConfig) -> None:
    """Raise ConfigError naming the bad ``augment.*`` key."""
    if not 0.0 <= float(cfg.coverage) <= 1.0:
        raise ConfigError(f"augment.coverage must be in [0, 1], got {cfg.coverage}")
    if not cfg.block_sizes or any(int(s) <= 0 for s in cfg.block_sizes):
        raise ConfigError(f"augment.block_sizes must be a non-empty list of positive ints, got {cfg.block_sizes}")
    for key, low_min in (("line_length", 0), ("num_lines", 1)):
        value = getattr(cfg, key)
        if len(value) != 2 or not low_min <= value[0] <= value[1]:
            raise ConfigError(f"augment.{key} must be [low, high] with {low_min} <= low <= high, got {value}")
    if float(cfg.noise_std) < 0:
        raise ConfigError(f"augment.noise_std must be >= 0, got {cfg.noise_std}")
    if not 0.0 <= float(cfg.clean_fraction) <= 1.0:
        raise ConfigError(f"augment.clean_fraction must be in [0, 1], got {cfg.clean_fraction}")
    if cfg.coverage_sampling not in ("fixed", "uniform"):
        raise ConfigError(f"augment.coverage_sampling must be fixed or uniform, got {cfg.coverage_sampling!r}")
    if int(cfg.reference_size) < 1:
        raise ConfigError(f"augment.reference_size must be >= 1, got {cfg.reference_size}")


def block_size_px(size_at_reference: int, height: int, width: int, reference: int = 1024) -> int:
    """``clamp(round(size * H / reference), 4, min(H, W))``: a block size in px for an H x W image."""
    scaled = round(size_at_reference * height / reference)
    return int(min(max(scaled, MIN_BLOCK_PX), height, width))


def corrupt(
    images: Tensor,
    cfg: AugmentConfig,
    generator: torch.Generator,
    donors: Tensor | None = None,
    *,
    whole_block_prob: float = WHOLE_BLOCK_PROB,
) -> tuple[Tensor, Tensor]:
    """Corrupt ``images`` (B, C, H, W) in [0, 1]; return (corrupted, masks (B, 1, H, W) in {0., 1.}).

    ``mask = 1`` exactly where any channel changed. With ``cfg.enabled`` False, every family
    disabled or coverage 0, the images come back unchanged (a copy) with zero masks. ``donors``
    (D, C, H, W) are other normal images copy-paste may take patches from.
    """
    corrupted, masks, _ = corrupt_with_families(images, cfg, generator, donors, whole_block_prob=whole_block_prob)
    return corrupted, masks


def corrupt_with_families(
    images: Tensor,
    cfg: AugmentConfig,
    generator: torch.Generator,
    donors: Tensor | None = None,
    *,
    whole_block_prob: float = WHOLE_BLOCK_PROB,
) -> tuple[Tensor, Tensor, Tensor]:
    """Like ``corrupt``, plus a family map (B, 1, H, W) int64: the family code (``COLOR_BLOCK``,
    ``COPY_PASTE``, ``LINES``) that last changed each pixel, ``NO_FAMILY`` (0) where unchanged."""
    check_augment_config(cfg)
    families = enabled_families(cfg) if cfg.enabled else []
    return _corrupt_batch(
        images, cfg, generator, donors, float(cfg.coverage), families, 0, whole_block_prob,
        clean_fraction=float(cfg.clean_fraction), coverage_sampling=cfg.coverage_sampling,
    )


def pseudo_anomalies(
    images: Tensor,
    cfg: AugmentConfig,
    generator: torch.Generator,
    donors: Tensor | None = None,
    min_coverage: float = MIN_PSEUDO_COVERAGE,
    *,
    whole_block_prob: float = WHOLE_BLOCK_PROB,
) -> tuple[Tensor, Tensor]:
    """Pseudo-anomalies for validation and stage 3: (images, masks) with every mask nonzero.

    Coverage is ``max(cfg.coverage, min_coverage)`` and at least one block per image is touched,
    so a coverage-0 sweep still has anomalies to validate on. ``cfg.enabled`` is ignored (it only
    switches stage-1 corruption); if every family is disabled all three are used. An image whose
    mask still comes out empty (e.g. a copy-pasted patch identical to the block) is re-corrupted,
    up to ``PSEUDO_ATTEMPTS`` times; after that a RuntimeError is raised (only a constant image
    with copy-paste as the sole family and no donors can get there).
    """
    check_augment_config(cfg)
    if not 0.0 <= min_coverage <= 1.0:
        raise ValueError(f"min_coverage must be in [0, 1], got {min_coverage}")
    families = enabled_families(cfg) or [COLOR_BLOCK, COPY_PASTE, LINES]
    coverage = max(float(cfg.coverage), float(min_coverage))
    corrupted, masks, _ = _corrupt_batch(images, cfg, generator, donors, coverage, families, 1, whole_block_prob)
    for _ in range(PSEUDO_ATTEMPTS):
        empty = (masks.flatten(1).amax(dim=1) == 0).nonzero().flatten()
        if empty.numel() == 0:
            return corrupted, masks
        # Donor images stay available; the retried images only lose themselves as a same-batch pool.
        retry, retry_masks, _ = _corrupt_batch(
            images[empty], cfg, generator, donors, coverage, families, 1, whole_block_prob
        )
        corrupted[empty] = retry
        masks[empty] = retry_masks
    empty = (masks.flatten(1).amax(dim=1) == 0).nonzero().flatten()
    if empty.numel():
        raise RuntimeError(
            f"pseudo_anomalies: images {empty.tolist()} are unchanged after {PSEUDO_ATTEMPTS} attempts with families "
            f"{[FAMILY_NAMES[f] for f in families]}; enable augment.color_blocks or augment.lines, or pass donors"
        )
    return corrupted, masks


def add_noise(images: Tensor, std: float, generator: torch.Generator) -> Tensor:
    """``clamp(images + std * N(0, 1), 0, 1)``; a new tensor (a copy of ``images`` when std == 0).

    Clipping keeps inputs and targets in the images' [0, 1] range.
    """
    if std < 0:
        raise ValueError(f"noise std must be >= 0, got {std}")
    if std == 0:
        return images.clone()
    noise = torch.randn(images.shape, generator=generator, dtype=torch.float32).to(images.device, images.dtype)
    return (images + std * noise).clamp_(0.0, 1.0)


def random_flips_rotations(images: Tensor, flip: bool, rotate: bool, generator: torch.Generator) -> Tensor:
    """Per image: horizontal and vertical flips (each with probability 1/2) when ``flip``, then a
    rotation by k * 90 degrees (k uniform in 0..3) when ``rotate`` (square images only)."""
    if not flip and not rotate:
        return images
    if rotate and images.shape[-1] != images.shape[-2]:
        raise ValueError(f"augment.rotate needs square images, got {images.shape[-2]}x{images.shape[-1]}")
    batch = images.shape[0]
    flips = torch.rand(batch, 2, generator=generator) < 0.5
    turns = torch.randint(4, (batch,), generator=generator)
    out = []
    for i in range(batch):
        image = images[i]
        if flip:
            dims = [d for d, on in ((-1, flips[i, 0]), (-2, flips[i, 1])) if on]
            if dims:
                image = torch.flip(image, dims)
        if rotate and turns[i]:
            image = torch.rot90(image, int(turns[i]), dims=(-2, -1))
        out.append(image)
    return torch.stack(out)


def training_pair(
    images: Tensor,
    cfg: AugmentConfig,
    generator: torch.Generator,
    donors: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Stage-1 pair: (input, target, mask).

    ``clean = flips/rot90(images)`` (when ``cfg.flip`` / ``cfg.rotate``, shared by input and target),
    ``input = noise(corrupt(clean))``, ``target = noise'(clean)`` if ``cfg.noise_on_target`` else
    ``clean``, with ``noise`` / ``noise'`` independent draws of ``add_noise(., cfg.noise_std)``.
    ``mask`` marks the structured corruption only (noise is not in it).
    """
    check_augment_config(cfg)
    clean = random_flips_rotations(images, cfg.flip, cfg.rotate, generator)
    corrupted, mask = corrupt(clean, cfg, generator, donors)
    if cfg.noise_std > 0:
        corrupted = add_noise(corrupted, cfg.noise_std, generator)
        target = add_noise(clean, cfg.noise_std, generator) if cfg.noise_on_target else clean
    else:
        target = clean
    return corrupted, target, mask


# --------------------------------------------------------------------------------------------------


def _corrupt_batch(
    images: Tensor,
    cfg: AugmentConfig,
    generator: torch.Generator,
    donors: Tensor | None,
    coverage: float,
    families: list[int],
    min_blocks: int,
    whole_block_prob: float,
    clean_fraction: float = 0.0,
    coverage_sampling: str = "fixed",
) -> tuple[Tensor, Tensor, Tensor]:
    """Corrupt every image; per image, the clean draw and the coverage draw come first (and only
    when ``clean_fraction > 0`` / ``coverage_sampling == "uniform"``, so the default stream of
    random numbers is unchanged)."""
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    if donors is not None and (donors.dim() != 4 or donors.shape[1:] != images.shape[1:]):
        expected = ", ".join(map(str, images.shape[1:]))
        raise ValueError(f"donors must have shape (D, {expected}) like the images, got {tuple(donors.shape)}")
    batch, _, height, width = images.shape
    corrupted = images.clone()
    family_maps = torch.zeros((batch, 1, height, width), dtype=torch.long, device=images.device)
    if families and batch:
        has_donors = donors is not None and donors.shape[0] > 0
        pool = torch.cat([images, donors.to(images.device, images.dtype)]) if has_donors else images
        n_donors = donors.shape[0] if has_donors else 0
        for i in range(batch):
            if clean_fraction > 0 and float(torch.rand(1, generator=generator, dtype=torch.float64)) < clean_fraction:
                continue
            image_coverage = coverage
            if coverage_sampling == "uniform":
                image_coverage = coverage * float(torch.rand(1, generator=generator, dtype=torch.float64))
            corrupted[i], family_maps[i, 0] = _corrupt_image(
                images[i], pool, i, n_donors, cfg, families, image_coverage, min_blocks, whole_block_prob, generator
            )
    changed = (corrupted != images).any(dim=1, keepdim=True)
    family_maps = torch.where(changed, family_maps, torch.zeros_like(family_maps))
    return corrupted, changed.to(images.dtype), family_maps


def _uniform_int(low: Tensor, high: Tensor, generator: torch.Generator) -> Tensor:
    """Integers uniform in [low, high] (inclusive, elementwise; int64 CPU tensors)."""
    u = torch.rand(low.shape, generator=generator, dtype=torch.float64)
    return low + torch.minimum((u * (high - low + 1)).long(), high - low)


def _corrupt_image(
    image: Tensor,
    pool: Tensor,
    own_index: int,
    n_donors: int,
    cfg: AugmentConfig,
    families: list[int],
    coverage: float,
    min_blocks: int,
    whole_block_prob: float,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """One image: returns (corrupted image (C, H, W), family map (H, W) before the changed-test)."""
    _, height, width = image.shape
    device = image.device
    scale = height / float(cfg.reference_size)
    out = image.clone()
    family_map = torch.zeros((height, width), dtype=torch.long, device=device)

    choice = int(torch.randint(len(cfg.block_sizes), (1,), generator=generator))
    block = block_size_px(int(cfg.block_sizes[choice]), height, width, int(cfg.reference_size))
    grid_w = math.ceil(width / block)
    n_blocks = math.ceil(height / block) * grid_w
    exact = coverage * n_blocks
    n_touched = math.floor(exact)
    if float(torch.rand(1, generator=generator, dtype=torch.float64)) < exact - n_touched:
        n_touched += 1
    n_touched = min(max(n_touched, min_blocks), n_blocks)
    if n_touched == 0:
        return out, family_map

    touched = torch.randperm(n_blocks, generator=generator)[:n_touched]
    family_of = torch.tensor(families)[torch.randint(len(families), (n_touched,), generator=generator)]
    top = (touched // grid_w) * block
    left = (touched % grid_w) * block
    block_h = (height - top).clamp(max=block)
    block_w = (width - left).clamp(max=block)

    # Per-pixel lookup of per-block tables: block_id[y, x] indexes tables of length n_blocks.
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    block_id = (rows // block)[:, None] * grid_w + (cols // block)[None, :]
    family_table = torch.zeros(n_blocks, dtype=torch.long)
    family_table[touched] = family_of
    pixel_family = family_table.to(device)[block_id]

    is_color = family_of == COLOR_BLOCK
    if is_color.any():
        _paint_color_blocks(
            out, family_map, pixel_family, block_id, n_blocks, touched[is_color], top[is_color], left[is_color],
            block_h[is_color], block_w[is_color], whole_block_prob, generator,
        )
    is_copy = family_of == COPY_PASTE
    if is_copy.any():
        _paste_patches(
            out, family_map, pixel_family, block_id, n_blocks, touched[is_copy], top[is_copy], left[is_copy],
            block, pool, own_index, n_donors, generator,
        )
    is_lines = family_of == LINES
    if is_lines.any():
        _draw_lines(
            out, family_map, top[is_lines], left[is_lines], block_h[is_lines], block_w[is_lines], cfg, scale, generator
        )
    return out, family_map


def _paint_color_blocks(
    out, family_map, pixel_family, block_id, n_blocks, ids, top, left, block_h, block_w, whole_block_prob, generator
) -> None:
    channels = out.shape[0]
    count = ids.numel()
    whole = torch.rand(count, generator=generator) < whole_block_prob
    rect_h = _uniform_int((block_h + 3) // 4, block_h, generator)
    rect_w = _uniform_int((block_w + 3) // 4, block_w, generator)
    rect_top = top + _uniform_int(torch.zeros_like(rect_h), block_h - rect_h, generator)
    rect_left = left + _uniform_int(torch.zeros_like(rect_w), block_w - rect_w, generator)
    colors = torch.rand(count, channels, generator=generator)
    rect_h, rect_w = torch.where(whole, block_h, rect_h), torch.where(whole, block_w, rect_w)
    rect_top, rect_left = torch.where(whole, top, rect_top), torch.where(whole, left, rect_left)

    # Per-block tables (rectangle bounds [y0, y1) x [x0, x1) and colour), gathered per pixel.
    bounds = torch.zeros(n_blocks, 4, dtype=torch.long)
    bounds[ids] = torch.stack([rect_top, rect_top + rect_h, rect_left, rect_left + rect_w], dim=1)
    color_table = torch.zeros(n_blocks, channels)
    color_table[ids] = colors
    device = out.device
    pixel_bounds = bounds.to(device)[block_id]  # (H, W, 4)
    rows = torch.arange(out.shape[1], device=device)[:, None]
    cols = torch.arange(out.shape[2], device=device)[None, :]
    inside = (
        (pixel_family == COLOR_BLOCK)
        & (rows >= pixel_bounds[..., 0]) & (rows < pixel_bounds[..., 1])
        & (cols >= pixel_bounds[..., 2]) & (cols < pixel_bounds[..., 3])
    )
    fill = color_table.to(device, out.dtype)[block_id].permute(2, 0, 1)
    out.copy_(torch.where(inside, fill, out))
    family_map[inside] = COLOR_BLOCK


def _paste_patches(
    out, family_map, pixel_family, block_id, n_blocks, ids, top, left, block, pool, own_index, n_donors, generator
) -> None:
    """Each block <- the block-sized patch at a random position of its source image (the clean
    image itself, at a position other than the block's own, or a donor)."""
    height, width = out.shape[1:]
    count = ids.numel()
    pos_rows, pos_cols = height - block + 1, width - block + 1
    n_positions = pos_rows * pos_cols
    use_donor = torch.rand(count, generator=generator) < DONOR_PROB
    if not n_donors:
        use_donor.zero_()
    donor = torch.randint(max(n_donors, 1), (count,), generator=generator)
    source = torch.where(use_donor, len(pool) - n_donors + donor, torch.full_like(donor, own_index))
    zeros = torch.zeros(count, dtype=torch.long)
    any_position = _uniform_int(zeros, torch.full((count,), n_positions - 1), generator)
    # Same image: draw among the other n_positions - 1 positions by skipping the block's own one
    # (edge blocks smaller than ``block`` have no own position, so nothing is skipped).
    has_own = (top < pos_rows) & (left < pos_cols)
    own = torch.where(has_own, top * pos_cols + left, torch.full_like(top, n_positions))
    other = _uniform_int(zeros, (n_positions - 1 - has_own.long()).clamp(min=0), generator)
    other = other + (other >= own).long()
    # A single possible position (block as large as the image) leaves nothing "other" to take.
    position = torch.where(use_donor, any_position, other.clamp(max=n_positions - 1))
    src_top, src_left = position // pos_cols, position % pos_cols

    # Per-block tables (source image, row shift, column shift), gathered per pixel.
    tables = torch.zeros(3, n_blocks, dtype=torch.long)
    tables[:, ids] = torch.stack([source, src_top - top, src_left - left])
    ys, xs = (pixel_family == COPY_PASTE).nonzero(as_tuple=True)
    which = block_id[ys, xs]
    tables = tables.to(out.device)
    values = pool[tables[0][which], :, ys + tables[1][which], xs + tables[2][which]]  # (N, C)
    out[:, ys, xs] = values.T.to(out.dtype)
    family_map[ys, xs] = COPY_PASTE


def _draw_lines(out, family_map, top, left, block_h, block_w, cfg, scale, generator) -> None:
    channels, height, width = out.shape
    device = out.device
    n_blocks = top.numel()
    low, high = int(cfg.num_lines[0]), int(cfg.num_lines[1])
    counts = _uniform_int(torch.full((n_blocks,), low), torch.full((n_blocks,), high), generator)
    owner_block = torch.repeat_interleave(torch.arange(n_blocks), counts)
    n_lines = owner_block.numel()

    u = torch.rand(n_lines, 5, generator=generator, dtype=torch.float64)
    # Pixel centres are at integer coordinates; a block's pixels span [top - 0.5, top + h - 0.5).
    start_y = top[owner_block] - 0.5 + u[:, 0] * block_h[owner_block]
    start_x = left[owner_block] - 0.5 + u[:, 1] * block_w[owner_block]
    angle = u[:, 2] * (2 * math.pi)
    length_low, length_high = (float(v) * scale for v in cfg.line_length)
    length = length_low + u[:, 3] * (length_high - length_low)
    width_scale = out.shape[1] / LINE_WIDTH_REFERENCE
    line_width = (LINE_WIDTH_PX[0] + u[:, 4] * (LINE_WIDTH_PX[1] - LINE_WIDTH_PX[0])) * width_scale
    radius = (line_width / 2).clamp(min=MIN_LINE_HALF_WIDTH)
    delta_y, delta_x = length * torch.sin(angle), length * torch.cos(angle)

    bright = torch.rand(n_blocks, generator=generator) < 0.5
    levels = torch.rand(n_blocks, channels, generator=generator)
    lo = torch.where(bright, BRIGHT_LEVELS[0], DARK_LEVELS[0])[:, None]
    hi = torch.where(bright, BRIGHT_LEVELS[1], DARK_LEVELS[1])[:, None]
    line_colors = (lo + levels * (hi - lo))[owner_block].to(device, out.dtype)

    owner = rasterise_segments(start_y, start_x, delta_y, delta_x, radius, height, width, device)
    painted = (owner >= 0).nonzero().flatten()
    rows, cols = painted // width, painted % width
    out[:, rows, cols] = line_colors[owner[painted]].T
    family_map[rows, cols] = LINES


def rasterise_segments(
    start_y: Tensor,
    start_x: Tensor,
    delta_y: Tensor,
    delta_x: Tensor,
    radius: Tensor,
    height: int,
    width: int,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Owner map (H * W,) int64 of thick segments: the index of the last segment covering each
    pixel, -1 where none does.

    Segment ``i`` runs from (start_y, start_x) to (start_y + delta_y, start_x + delta_x) in pixel
    coordinates (pixel centres at integers); pixel p is covered when
    ``dist(p, segment_i) <= radius_i``. Only a band of candidate pixels around each segment is
    tested, so the cost grows with length x radius rather than with the bounding box's area.
    """
    n_lines = start_y.numel()
    owner = torch.full((height * width,), -1, dtype=torch.long, device=device)
    if n_lines == 0:
        return owner
    # Candidate pixels: a band around each segment. Along the segment's major axis (the one it
    # extends most along) every integer coordinate a in the segment's range +- radius; across it
    # the integers within K = ceil(2 * radius) + 1 of the segment's (end-clamped) minor coordinate
    # at a. Any pixel within ``radius`` of the segment is in this band (slope <= 1 along the major
    # axis, so the offset across it is <= 2 * radius, plus rounding); the exact distance test then
    # decides. Band sizes are shared by all lines so the test vectorises over lines.
    major_is_y = delta_y.abs() >= delta_x.abs()
    a0 = torch.where(major_is_y, start_y, start_x)
    b0 = torch.where(major_is_y, start_x, start_y)
    da = torch.where(major_is_y, delta_y, delta_x)
    db = torch.where(major_is_y, delta_x, delta_y)
    a_first = torch.floor(torch.minimum(a0, a0 + da) - radius)
    n_major = int(torch.ceil(da.abs() + 2 * radius).max()) + 2
    half_band = math.ceil(2 * float(radius.max())) + 1
    safe_da = torch.where(da.abs() < 1e-9, torch.ones_like(da), da)  # zero-length: t = 0 below
    # Per-line parameters as (n_lines, 1, 1) float32 columns on the pixel device.
    sy, sx, dy, dx, r, a0, b0, db, a_first, safe_da = (
        v.to(device, torch.float32)[:, None, None]
        for v in (start_y, start_x, delta_y, delta_x, radius, a0, b0, db, a_first, safe_da)
    )
    major_is_y = major_is_y.to(device)[:, None, None]
    major_steps = torch.arange(n_major, device=device, dtype=torch.float32)
    minor_steps = torch.arange(-half_band, half_band + 1, device=device, dtype=torch.float32)

    per_chunk = max(1, LINE_CHUNK_ELEMENTS // (n_major * minor_steps.numel()))
    for first in range(0, n_lines, per_chunk):
        sl = slice(first, min(first + per_chunk, n_lines))
        a = a_first[sl] + major_steps[None, :, None]  # (L, Na, 1)
        t_major = ((a - a0[sl]) / safe_da[sl]).clamp(0.0, 1.0)
        b = torch.round(b0[sl] + db[sl] * t_major) + minor_steps[None, None, :]  # (L, Na, Nb)
        a = a.expand_as(b)
        ys, xs = torch.where(major_is_y[sl], a, b), torch.where(major_is_y[sl], b, a)
        # Distance to the segment: project onto it, clamp to [0, 1], measure the remainder.
        ly, lx, ldy, ldx, lr = sy[sl], sx[sl], dy[sl], dx[sl], r[sl]
        py, px = ys - ly, xs - lx
        t = ((py * ldy + px * ldx) / (ldy * ldy + ldx * ldx).clamp(min=1e-12)).clamp(0.0, 1.0)
        covered = (py - t * ldy) ** 2 + (px - t * ldx) ** 2 <= lr * lr
        covered &= (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
        line_idx = covered.nonzero(as_tuple=True)[0]
        flat = ys[covered].long() * width + xs[covered].long()
        owner.scatter_reduce_(0, flat, line_idx + first, reduce="amax")
    return owner


__all__ = [
    "COLOR_BLOCK",
    "COPY_PASTE",
    "FAMILY_NAMES",
    "LINES",
    "NO_FAMILY",
    "add_noise",
    "block_size_px",
    "check_augment_config",
    "corrupt",
    "corrupt_with_families",
    "enabled_families",
    "pseudo_anomalies",
    "random_flips_rotations",
    "rasterise_segments",
    "training_pair",
]
