"""Stage-3 pseudo-anomalies: what the CRD learns to segment, with exact masks.

Per image, in this order (all draws from one CPU ``torch.Generator``):

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
drawn again (up to ``PSEUDO_ATTEMPTS`` times).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from suite.config import AugmentConfig, PseudoConfig
from suite.data.augment import pseudo_anomalies
from suite.data.occluders import OccluderConfig, occlude
from suite.data.photometric import luminance

PSEUDO_ATTEMPTS = 8
SMALL_WINDOW = (0.05, 0.25)  # pseudo.size_prior="small": window side as a fraction of the image side


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(1, generator=generator, dtype=torch.float64))


def small_window(image: Tensor, blended: Tensor, generator: torch.Generator) -> Tensor:
    """``blended`` (1, C, H, W) kept only inside a square window around one of its changed pixels
    (side log-uniform in ``SMALL_WINDOW`` of the image side, at least 2 px); ``image`` elsewhere."""
    changed = (blended != image).any(dim=1)[0]
    where = changed.nonzero()
    if where.numel() == 0:
        return blended
    y, x = (int(v) for v in where[int(torch.randint(len(where), (1,), generator=generator))])
    h, w = changed.shape
    low, high = (math.log(f * min(h, w)) for f in SMALL_WINDOW)
    side = max(2, int(round(math.exp(_uniform(generator, low, high)))))
    y0, x0 = max(0, y - side // 2), max(0, x - side // 2)
    keep = torch.zeros_like(changed)
    keep[y0 : y0 + side, x0 : x0 + side] = True
    return torch.where(keep, blended, image)


def grey_fill(image: Tensor, blended: Tensor) -> Tensor:
    """The changed pixels of ``blended`` as their luminance on every channel; the rest stays ``image``
    bit for bit (on a grey image the luminance of an unchanged pixel may differ by rounding)."""
    changed = (blended != image).any(dim=1, keepdim=True)
    return torch.where(changed, luminance(blended).expand_as(blended), image)


def occluder_config() -> OccluderConfig:
    """Occluder settings for the ``occluders`` family: always corrupted, opaque (the
    opacity is applied afterwards, the same way for every family), textured fills."""
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
) -> tuple[Tensor, Tensor]:
    """Pseudo-anomalies for one stage-3 batch: ``(corrupted, masks)``, masks (B, 1, H, W) in {0, 1}.
    ``grey``: grey fills (the caller decides, from ``pseudo.colour`` and the train images)."""
    corrupted = images.clone()
    masks = torch.zeros_like(images[:, :1])
    occluders = occluder_config()
    for i in range(images.shape[0]):
        if pseudo.clean_fraction > 0 and _uniform(generator, 0.0, 1.0) < pseudo.clean_fraction:
            continue
        image = images[i : i + 1]
        for _ in range(PSEUDO_ATTEMPTS):
            family = pseudo.families[int(torch.randint(len(pseudo.families), (1,), generator=generator))]
            if family == "augment":
                cfg = augment
                if pseudo.coverage_sampling == "uniform":
                    cfg = dataclasses.replace(augment, coverage=_uniform(generator, 0.0, augment.coverage))
                changed, _ = pseudo_anomalies(image, cfg, generator, donors=donors, min_coverage=0.0)
            else:
                changed, _ = occlude(image, occluders, generator, textures)
            alpha = _uniform(generator, *pseudo.opacity)
            blended = image + alpha * (changed - image)
            if pseudo.size_prior == "small":
                blended = small_window(image, blended, generator)
            if grey:
                blended = grey_fill(image, blended)
            mask = (blended != image).any(dim=1, keepdim=True)
            if mask.any():
                corrupted[i : i + 1] = blended
                masks[i : i + 1] = mask.to(masks.dtype)
                break
    return corrupted, masks
