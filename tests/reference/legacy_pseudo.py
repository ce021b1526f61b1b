# PRE-REWRITE REFERENCE (issue 20): suite/data/pseudo.py's crd_training_batch before the batched rewrite,
# verbatim except that it calls the legacy copies of pseudo_anomalies and occlude (tests/reference/loader.py).
# Kept only as the oracle for the distribution tests and the speed benchmark. Not used by the suite.
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from suite.config import AugmentConfig, PseudoConfig
from tests.reference.loader import load_reference as load_legacy


pseudo_anomalies = load_legacy("legacy_augment").pseudo_anomalies
_occluders = load_legacy("legacy_occluders")
OccluderConfig, occlude = _occluders.OccluderConfig, _occluders.occlude

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
