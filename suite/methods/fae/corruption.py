"""FAE's training pairs ("Noise & Pattern", Eq. 3): occluded input, shared noise.

The corruption is ``suite.data.occluders.occlude`` with the ``fae`` section's shape, texture and
opacity switches. Then the SAME Gaussian draw ``eps`` is added to the input and the target,
``(x~ + eps, x + eps)``. The paper's identity anchoring relies on that: with a shared ``eps``,
``E||f(x~ + eps) - x - eps||^2 ~ ||f(x~) - x||^2 + sigma^2 ||J_f(x~) - I||_F^2`` pulls the Jacobian
toward the identity; independent target noise would only add a constant and leave Bishop's
``||J_f||_F^2`` (Jacobian toward zero). The std is drawn per image, ``sigma ~ U[noise_std_min,
noise_std]`` (the paper recommends varying sigma during training); the noisy tensors are not clipped
to [0, 1], since clipping would make input and target noise differ.
"""

from __future__ import annotations

import torch

from suite.data.occluders import ShapeParams, occlude
from suite.methods.fae.config import FAEConfig


def fae_training_pair(
    images: torch.Tensor,
    cfg: FAEConfig,
    generator: torch.Generator | None = None,
    textures: torch.Tensor | None = None,
    shape_params: ShapeParams | None = None,
    return_mask: bool = False,
) -> tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(input, target) = (x~ + eps, x + eps)`` (paper Eq. 3), with ONE noise draw shared by both.

    ``x~`` from ``suite.data.occluders.occlude``; ``eps ~ N(0, sigma_b^2 I)`` with ``sigma_b ~ U[cfg.noise_std_min,
    cfg.noise_std]`` per image; not clipped. ``return_mask`` also returns the corruption masks.
    """
    if cfg.noise_std < 0 or cfg.noise_std_min < 0 or cfg.noise_std_min > cfg.noise_std:
        raise ValueError(
            f"config keys 'fae.noise_std_min' ({cfg.noise_std_min}) and 'fae.noise_std' ({cfg.noise_std}): "
            "need 0 <= noise_std_min <= noise_std"
        )
    corrupted, masks = occlude(images, cfg, generator, textures, shape_params)
    batch = images.shape[0]
    stds = cfg.noise_std_min + (cfg.noise_std - cfg.noise_std_min) * torch.rand(batch, generator=generator)
    noise = torch.randn(images.shape, generator=generator) * stds.view(batch, 1, 1, 1)
    noise = noise.to(images.device, images.dtype)
    inputs, targets = corrupted + noise, images + noise
    if return_mask:
        return inputs, targets, masks
    return inputs, targets
