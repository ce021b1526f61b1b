"""Stage-3 pseudo-anomalies: what the CRD learns to segment, with exact masks.

Per image, in this order (all draws from one ``torch.Generator``, on its device, for the whole
batch at once: no per-image loop; the seeded stream is reproducible on one device):

1. with probability ``pseudo.clean_fraction`` the image stays clean and its mask is empty, so the
   CRD is penalised for firing on a normal image (what a top-k image score punishes);
2. otherwise a family is drawn uniformly from ``pseudo.families``:

   * ``augment``: the stage-1 families (``suite.data.augment``: colour blocks, copy & paste, lines,
     per ``augment.*``), with at least one block touched and coverage ``augment.coverage`` or, with
     ``pseudo.coverage_sampling == "uniform"``, ``U(0, augment.coverage)`` per image;
   * ``occluders``: elastic ellipses and thin strokes filled with a texture crop (from
     ``pseudo.texture_root``, e.g. DTD, or procedural textures) — families the RcAE never saw in
     stage 1 (``suite.data.occluders``);

3. the corruption is blended in with an opacity ``alpha ~ U(pseudo.opacity)``:
   ``x~ = x + alpha (c - x)``.

Two optional post-steps (issue 19; both off by default, so the draws above stay as they were):
``pseudo.size_prior="small"`` keeps the corruption only inside a square window of side
``exp(U(log 0.05, log 0.25))`` of the image, centred on one of its changed pixels (a fixed prior
favouring small defects, fitted to no mask), and ``grey=True`` (``pseudo.colour="match"`` on a
grayscale category) turns the changed pixels to their luminance, so fills are grey where the
category is.

``mask = any_c(x~ != x)``: exactly the changed pixels. An image whose mask comes out empty is
drawn again, together with the others still empty (up to ``PSEUDO_ATTEMPTS`` times).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from suite.config import AugmentConfig, PseudoConfig
from suite.data.augment import Buffers, pseudo_anomalies
from suite.data.occluders import OccluderConfig, occlude
from suite.data.photometric import luminance

PSEUDO_ATTEMPTS = 8
SMALL_WINDOW = (0.05, 0.25)  # pseudo.size_prior="small": window side as a fraction of the image side


def small_windows(images: Tensor, blended: Tensor, generator: torch.Generator) -> Tensor:
    """``blended`` (B, C, H, W) kept only inside one square window per image, centred on one of its
    changed pixels (drawn uniformly) with a side log-uniform in ``SMALL_WINDOW`` of the image side (at
    least 2 px); ``images`` elsewhere. A fixed prior favouring small defects, fitted to no mask."""
    gdev, dev = generator.device, images.device
    batch, _, height, width = images.shape
    changed = (blended != images).any(dim=1).flatten(1)
    weights = changed.to(gdev, torch.float32)
    weights[weights.sum(dim=1) == 0] = 1.0  # nothing changed: any centre (the window keeps nothing new)
    centre = torch.multinomial(weights, 1, generator=generator).squeeze(1).to(dev)
    low, high = (math.log(f * min(height, width)) for f in SMALL_WINDOW)
    u = torch.rand(batch, generator=generator, device=gdev, dtype=torch.float64).to(dev)
    side = torch.exp(low + (high - low) * u).round().clamp(min=2).long()
    y0 = (centre // width - side // 2).clamp(min=0)
    x0 = (centre % width - side // 2).clamp(min=0)
    ys = torch.arange(height, device=dev)[None, :, None]
    xs = torch.arange(width, device=dev)[None, None, :]
    y0, x0, side = y0[:, None, None], x0[:, None, None], side[:, None, None]
    keep = (ys >= y0) & (ys < y0 + side) & (xs >= x0) & (xs < x0 + side)
    return torch.where(keep[:, None], blended, images)


def grey_fill(images: Tensor, blended: Tensor) -> Tensor:
    """The changed pixels of ``blended`` as their luminance on every channel; the rest stays ``images``
    bit for bit (on a grey image the luminance of an unchanged pixel may differ by rounding)."""
    changed = (blended != images).any(dim=1, keepdim=True)
    return torch.where(changed, luminance(blended).expand_as(blended), images)


def occluder_config() -> OccluderConfig:
    """Occluder settings for the ``occluders`` family: always corrupted, opaque (the opacity is
    applied afterwards, the same way for every family), textured fills."""
    return dataclasses.replace(
        OccluderConfig(), corruption_prob=1.0, vary_opacity=False, use_shapes=True, use_textures=True,
        smooth_boundary=True,
    )


def crd_training_batch(
    images: Tensor,
    augment: AugmentConfig,
    pseudo: PseudoConfig,
    generator: torch.Generator,
    donors: Tensor | None = None,
    textures: Tensor | None = None,
    grey: bool = False,
    *,
    buffers: Buffers | None = None,
) -> tuple[Tensor, Tensor]:
    """Pseudo-anomalies for one stage-3 batch: ``(corrupted, masks)``, masks (B, 1, H, W) in {0, 1}.
    ``grey``: grey fills (the caller decides, from ``pseudo.colour`` and the train images);
    ``pseudo.size_prior == "small"``: each corruption cut to a small window (``small_windows``). Both
    run after blending and before the mask, so the mask stays exactly the changed pixels. With
    ``buffers`` (``augment_families.Buffers``) the results may live in tensors the next call reuses."""
    gdev, dev = generator.device, images.device
    batch = images.shape[0]
    corrupted, masks = None, None
    pending = torch.arange(batch, device=gdev)
    if pseudo.clean_fraction > 0:
        u = torch.rand(batch, generator=generator, device=gdev, dtype=torch.float64)
        pending = pending[u >= pseudo.clean_fraction]
    low, high = (float(v) for v in pseudo.opacity)
    for _ in range(PSEUDO_ATTEMPTS):
        count = pending.numel()
        if count == 0:
            break
        family = torch.randint(len(pseudo.families), (count,), generator=generator, device=gdev)
        is_augment = torch.tensor([name == "augment" for name in pseudo.families], device=gdev)[family]
        coverage = torch.full((count,), float(augment.coverage), dtype=torch.float64, device=gdev)
        if pseudo.coverage_sampling == "uniform":
            coverage = coverage * torch.rand(count, generator=generator, device=gdev, dtype=torch.float64)
        alpha = low + (high - low) * torch.rand(count, generator=generator, device=gdev, dtype=torch.float64)
        whole = count == batch  # every image pending: no gather, and usually no scatter either
        image = images if whole else images[pending.to(dev)]
        changed, mask = _changed(image, is_augment, coverage, augment, generator, donors, textures,
                                 buffers if whole else None)
        alpha = alpha.to(dev, images.dtype)
        opaque = bool((alpha == 1).all())
        # x + alpha (c - x), in place on the fresh ``changed`` (same arithmetic, no extra full-size copies);
        # a product with 1 is exact, so opaque batches skip it
        blended = changed.sub_(image) if opaque else changed.sub_(image).mul_(alpha[:, None, None, None])
        blended = blended.add_(image)
        if pseudo.size_prior == "small":
            blended = small_windows(image, blended, generator)
        if grey:
            blended = grey_fill(image, blended)
        if not opaque or pseudo.size_prior == "small" or grey:
            mask = (blended != image).any(dim=1, keepdim=True)
        # else: for finite floats, (c - x) + x differs from x exactly where c does (exact by Sterbenz when c
        # and x are within a factor 2, else it moves x by at least |x| / 2): the corruption's mask is the answer.
        done = mask.flatten(1).any(dim=1)
        if whole and corrupted is None and bool(done.all()):
            return blended, mask.to(images.dtype)
        if corrupted is None:
            corrupted, masks = images.clone(), torch.zeros_like(images[:, :1])
        target = pending.to(dev)[done]
        corrupted[target] = blended[done]
        masks[target] = mask[done].to(masks.dtype)
        pending = pending[~done.to(gdev)]
    if corrupted is None:
        corrupted, masks = images.clone(), torch.zeros_like(images[:, :1])
    return corrupted, masks


def _changed(image, is_augment, coverage, augment, generator, donors, textures, buffers) -> tuple[Tensor, Tensor]:
    """The unblended corruption of every image and its mask (B, 1, H, W): one batched call per family present."""
    pick = is_augment.nonzero().flatten()
    if pick.numel() == is_augment.numel():
        return pseudo_anomalies(image, augment, generator, donors=donors, min_coverage=0.0, coverage=coverage,
                                buffers=buffers)
    if pick.numel() == 0:
        return occlude(image, occluder_config(), generator, textures)
    changed = torch.empty_like(image)
    mask = torch.empty_like(image[:, :1])
    dev = image.device
    changed[pick.to(dev)], mask[pick.to(dev)] = pseudo_anomalies(
        image[pick.to(dev)], augment, generator, donors=donors, min_coverage=0.0, coverage=coverage[pick]
    )
    pick = (~is_augment).nonzero().flatten().to(dev)
    changed[pick], mask[pick] = occlude(image[pick], occluder_config(), generator, textures)
    return changed, mask
