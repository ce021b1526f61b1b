"""Structured corruptions: stage-1 training pairs and pseudo-anomalies with exact masks.

The RcAE paper (Sec. "Augmentation") corrupts normal images with three simple families applied to
random blocks of size 32, 64 or 128 px (at the paper's 1024 px, ``cfg.reference_size``; scaled
with the image) at a varying coverage (0-100 %): random colour blocks, copy & paste patches and 1-4
random lines of length 50-150 px forming crack-like structures. They are used

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
     and width uniform in ``[1, 3] * H / 256`` px (the paper gives no width); a pixel is covered when
     its centre lies within ``max(width / 2, 0.71)`` of the segment. One dark (each channel in [0, 0.2]) or bright (in
     [0.8, 1]) colour per block. Lines may leave their block; they are drawn after the block-local
     families, so they paint over them.

The mask is computed from the result, ``mask = any_c(corrupted != original)``, so it is exactly the
set of changed pixels even where a new value happens to equal the old one or a copied patch matches.

Randomness comes only from the given ``torch.Generator``, drawn per batch in a fixed order on the
generator's device (CPU or the training device), so the same seed on the same device gives identical
outputs. All pixel work is batched tensor code on the images' device (``suite.data.augment_families``):
no per-image loop.
"""

from __future__ import annotations

import torch
from torch import Tensor

from suite.config import AugmentConfig, ConfigError
from suite.data.augment_families import (
    BRIGHT_LEVELS,
    COLOR_BLOCK,
    COPY_PASTE,
    DARK_LEVELS,
    DONOR_PROB,
    LINE_WIDTH_PX,
    LINE_WIDTH_REFERENCE,
    LINES,
    MIN_BLOCK_PX,
    MIN_LINE_HALF_WIDTH,
    NO_FAMILY,
    Buffers,
    block_size_px,
    corrupt_batch,
    rasterise_lines,
)

FAMILY_NAMES = {COLOR_BLOCK: "color_blocks", COPY_PASTE: "copy_paste", LINES: "lines"}
WHOLE_BLOCK_PROB = 0.5  # colour blocks: probability of filling the whole block, not a sub-rectangle
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



def corrupt(
    images: Tensor,
    cfg: AugmentConfig,
    generator: torch.Generator,
    donors: Tensor | None = None,
    *,
    whole_block_prob: float = WHOLE_BLOCK_PROB,
    buffers: Buffers | None = None,
) -> tuple[Tensor, Tensor]:
    """Corrupt ``images`` (B, C, H, W) in [0, 1]; return (corrupted, masks (B, 1, H, W) in {0., 1.}).

    ``mask = 1`` exactly where any channel changed. With ``cfg.enabled`` False, every family
    disabled or coverage 0, the images come back unchanged (a copy) with zero masks. ``donors``
    (D, C, H, W) are other normal images copy-paste may take patches from. With ``buffers``
    (``augment_families.Buffers``) both results are written into tensors the next call reuses.
    """
    corrupted, masks, _ = _corrupt(images, cfg, generator, donors, whole_block_prob, want_families=False,
                                   buffers=buffers)
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
    return _corrupt(images, cfg, generator, donors, whole_block_prob, want_families=True)


def pseudo_anomalies(
    images: Tensor,
    cfg: AugmentConfig,
    generator: torch.Generator,
    donors: Tensor | None = None,
    min_coverage: float = MIN_PSEUDO_COVERAGE,
    *,
    whole_block_prob: float = WHOLE_BLOCK_PROB,
    coverage: Tensor | None = None,
    buffers: Buffers | None = None,
) -> tuple[Tensor, Tensor]:
    """Pseudo-anomalies for validation and stage 3: (images, masks) with every mask nonzero.

    Coverage is ``max(cfg.coverage, min_coverage)`` (or ``max(coverage[i], min_coverage)`` per image
    when a (B,) ``coverage`` tensor is given) and at least one block per image is touched, so a
    coverage-0 sweep still has anomalies to validate on. ``cfg.enabled`` is ignored (it only
    switches stage-1 corruption); if every family is disabled all three are used. Images whose
    mask still comes out empty (e.g. a copy-pasted patch identical to the block) are re-corrupted
    together, up to ``PSEUDO_ATTEMPTS`` times; after that a RuntimeError is raised (only a constant
    image with copy-paste as the sole family and no donors can get there). ``buffers``: as in
    ``corrupt``.
    """
    check_augment_config(cfg)
    if not 0.0 <= min_coverage <= 1.0:
        raise ValueError(f"min_coverage must be in [0, 1], got {min_coverage}")
    _check_shapes(images, donors)
    families = enabled_families(cfg) or [COLOR_BLOCK, COPY_PASTE, LINES]
    if coverage is None:
        coverage = torch.full((images.shape[0],), float(cfg.coverage), dtype=torch.float64)
    coverage = coverage.to(torch.float64).clamp(min=float(min_coverage))
    donors = _donors_on(images, donors)
    corrupted, masks, _ = corrupt_batch(
        images, cfg, generator, donors, coverage, families, 1, whole_block_prob, buffers=buffers
    )
    for _ in range(PSEUDO_ATTEMPTS):
        empty = (masks.flatten(1).amax(dim=1) == 0).nonzero().flatten()
        if empty.numel() == 0:
            return corrupted, masks
        # Donor images stay available; the retried images only lose themselves as a same-batch pool.
        retry, retry_masks, _ = corrupt_batch(
            images[empty], cfg, generator, donors, coverage[empty.to(coverage.device)], families, 1,
            whole_block_prob,
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

    Clipping keeps inputs and targets in the images' [0, 1] range. The noise is drawn on the
    generator's device.
    """
    if std < 0:
        raise ValueError(f"noise std must be >= 0, got {std}")
    if std == 0:
        return images.clone()
    noise = torch.randn(images.shape, generator=generator, dtype=torch.float32, device=generator.device)
    return (images + std * noise.to(images.device, images.dtype)).clamp_(0.0, 1.0)


def random_flips_rotations(images: Tensor, flip: bool, rotate: bool, generator: torch.Generator) -> Tensor:
    """Per image: horizontal and vertical flips (each with probability 1/2) when ``flip``, then a
    rotation by k * 90 degrees (k uniform in 0..3) when ``rotate`` (square images only)."""
    if not flip and not rotate:
        return images
    if rotate and images.shape[-1] != images.shape[-2]:
        raise ValueError(f"augment.rotate needs square images, got {images.shape[-2]}x{images.shape[-1]}")
    batch = images.shape[0]
    flips = (torch.rand(batch, 2, generator=generator, device=generator.device) < 0.5).to(images.device)
    turns = torch.randint(4, (batch,), generator=generator, device=generator.device).to(images.device)
    out = images.clone()
    if flip:
        for column, dim in ((0, -1), (1, -2)):
            pick = flips[:, column].nonzero().flatten()
            if pick.numel():
                out[pick] = out[pick].flip(dim)
    if rotate:
        for k in (1, 2, 3):
            pick = (turns == k).nonzero().flatten()
            if pick.numel():
                out[pick] = torch.rot90(out[pick], k, dims=(-2, -1))
    return out


def training_pair(
    images: Tensor,
    cfg: AugmentConfig,
    generator: torch.Generator,
    donors: Tensor | None = None,
    *,
    buffers: Buffers | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Stage-1 pair: (input, target, mask).

    ``clean = flips/rot90(images)`` (when ``cfg.flip`` / ``cfg.rotate``, shared by input and target),
    ``input = noise(corrupt(clean))``, ``target = noise'(clean)`` if ``cfg.noise_on_target`` else
    ``clean``, with ``noise`` / ``noise'`` independent draws of ``add_noise(., cfg.noise_std)``.
    ``mask`` marks the structured corruption only (noise is not in it). With ``buffers``
    (``augment_families.Buffers``) the input and mask are written into tensors the next call reuses:
    a training loop passes one that lives as long as its stage.
    """
    check_augment_config(cfg)
    clean = random_flips_rotations(images, cfg.flip, cfg.rotate, generator)
    corrupted, mask = corrupt(clean, cfg, generator, donors, buffers=buffers)
    if cfg.noise_std > 0:
        corrupted = add_noise(corrupted, cfg.noise_std, generator)
        target = add_noise(clean, cfg.noise_std, generator) if cfg.noise_on_target else clean
    else:
        target = clean
    return corrupted, target, mask


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
    """Owner map (H * W,) int64 of thick segments on one image: the index of the last segment
    covering each pixel, -1 where none does (``augment_families.rasterise_lines`` for one image)."""
    image = torch.zeros(start_y.shape, dtype=torch.long)
    return rasterise_lines(image, start_y, start_x, delta_y, delta_x, radius, 1, height, width, device)


# --------------------------------------------------------------------------------------------------


def _check_shapes(images: Tensor, donors: Tensor | None) -> None:
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    if donors is not None and (donors.dim() != 4 or donors.shape[1:] != images.shape[1:]):
        expected = ", ".join(map(str, images.shape[1:]))
        raise ValueError(f"donors must have shape (D, {expected}) like the images, got {tuple(donors.shape)}")


def _donors_on(images: Tensor, donors: Tensor | None) -> Tensor | None:
    if donors is None or donors.shape[0] == 0:
        return None
    return donors.to(images.device, images.dtype)


def _corrupt(images, cfg, generator, donors, whole_block_prob, want_families, buffers=None):
    """Stage-1 corruption: per image a clean draw (when ``clean_fraction > 0``) and a coverage draw
    (when ``coverage_sampling == "uniform"``), then the batched families."""
    check_augment_config(cfg)
    _check_shapes(images, donors)
    families = enabled_families(cfg) if cfg.enabled else []
    batch = images.shape[0]
    coverage = torch.full((batch,), float(cfg.coverage), dtype=torch.float64, device=generator.device)
    clean = None
    if families and batch:
        if cfg.clean_fraction > 0:
            u = torch.rand(batch, generator=generator, device=generator.device, dtype=torch.float64)
            clean = u < float(cfg.clean_fraction)
        if cfg.coverage_sampling == "uniform":
            coverage = coverage * torch.rand(batch, generator=generator, device=generator.device, dtype=torch.float64)
    corrupted, masks, fam = corrupt_batch(
        images, cfg, generator, _donors_on(images, donors), coverage, families, 0, whole_block_prob, clean,
        want_families, buffers,
    )
    if want_families and fam is None:
        fam = torch.zeros_like(masks, dtype=torch.long)
    return corrupted, masks, fam


__all__ = [
    "BRIGHT_LEVELS",
    "Buffers",
    "COLOR_BLOCK",
    "COPY_PASTE",
    "DARK_LEVELS",
    "DONOR_PROB",
    "FAMILY_NAMES",
    "LINES",
    "LINE_WIDTH_PX",
    "LINE_WIDTH_REFERENCE",
    "MIN_BLOCK_PX",
    "MIN_LINE_HALF_WIDTH",
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
