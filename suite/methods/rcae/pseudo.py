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

``mask = any_c(x~ != x)``: exactly the changed pixels. An image whose mask comes out empty is
drawn again (up to ``PSEUDO_ATTEMPTS`` times).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from suite.config import AugmentConfig, PseudoConfig
from suite.data.augment import pseudo_anomalies
from suite.data.occluders import OccluderConfig, occlude
from suite.data.pseudo_batched import crd_pseudo_anomalies

PSEUDO_ATTEMPTS = 8


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(1, generator=generator, dtype=torch.float64))


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
) -> tuple[Tensor, Tensor]:
    """Pseudo-anomalies for one stage-3 batch: ``(corrupted, masks)``, masks (B, 1, H, W) in {0, 1}."""
    return crd_pseudo_anomalies(images, augment, pseudo, generator, donors, textures)  # batched (issue 20)
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
            mask = (blended != image).any(dim=1, keepdim=True)
            if mask.any():
                corrupted[i : i + 1] = blended
                masks[i : i + 1] = mask.to(masks.dtype)
                break
    return corrupted, masks
