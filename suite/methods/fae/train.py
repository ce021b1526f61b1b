"""FAE baseline ("Noise & Pattern" filtering autoencoder) trained by ``run_training``: stage 1 only.

Training (paper Eq. 1 in its simplified form, with the noise of Eq. 3): each batch of clean normals
``x`` is flipped / rotated when ``augment.flip`` / ``augment.rotate`` are on (the paper's
category-dependent augmentation), corrupted into ``x~`` by the FAE corruption model
(``corruption.py``) and given ONE Gaussian draw ``eps`` shared by input and target. The
U-Net ``f`` (``model.py``) minimises the mean squared error

    L = mean over pixels and channels of (f(x~ + eps) - (x + eps))^2

which is the paper's squared L2 norm up to a constant factor (the pixel count), so Adam behaves
the same. Epochs, batch size and Adam's settings come from ``train.stage1``. The corruption and
noise are ``fae``'s own (``fae.noise_std`` etc.); ``augment``'s corruption families and noise are
RcAE's and unused here (only ``augment.flip`` / ``augment.rotate`` apply).

Texture fills come from ``fae.texture_root`` (a DTD-like folder, read once per training and kept in a
small per-process cache) or, without a folder, from a bank of procedural textures made once per
training from the seed (its own generator, so a resumed training sees the same bank).

Inference: ``map = M_s^n(d(x, f(x)))`` (``fae_anomaly_map``: discrepancy ``fae.discrepancy``
smoothed by a ``fae.filter_size`` mean filter ``fae.filter_repeats`` times), image score =
``fae.score`` (sum | max) of the map (``fae_image_score``). ``recons`` (B, 1, 3, H, W) is returned
for the report's gallery.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from suite.config import Config
from suite.data.occluders import texture_bank
from suite.data.augment import random_flips_rotations
from suite.methods.base import TrainContext, TrainedMethod, train_single_stage
from suite.methods.fae.anomaly_map import fae_anomaly_map, fae_image_score
from suite.methods.fae.corruption import fae_training_pair
from suite.methods.fae.model import FAEUNet, build_fae

# Offset of the texture bank's seed from runtime.seed, so the bank does not replay the draws of
# the training generator.
BANK_SEED_OFFSET = 104_729


def fae_texture_bank(cfg: Config) -> tuple[torch.Tensor | None, str]:
    """The fills for this training's corruptions and where they came from; None when
    ``fae.use_textures`` is off (uniform colour fills need no bank)."""
    fae = cfg.fae
    if not fae.use_textures:
        return None, "none (uniform colour fills)"
    return texture_bank(fae.texture_root, cfg.data.image_size, cfg.runtime.seed + BANK_SEED_OFFSET,
                        "fae.texture_root", fae.texture_max_count)


def fae_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between ``f(x~ + eps)`` and ``x + eps``."""
    return F.mse_loss(prediction, target)


def train(ctx: TrainContext) -> TrainedMethod:
    cfg, device = ctx.cfg, ctx.device
    net: FAEUNet = build_fae(cfg.fae, in_ch=3, levels=cfg.fae.levels).to(device)
    textures, texture_source = fae_texture_bank(cfg)
    info: dict[str, object] = {
        "texture_source": texture_source,
        "texture_count": 0 if textures is None else int(textures.shape[0]),
    }

    def stage1_loss(model: nn.Module, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        clean = random_flips_rotations(batch.cpu(), cfg.augment.flip, cfg.augment.rotate, g)
        inputs, targets = fae_training_pair(clean, cfg.fae, g, textures=textures)
        return fae_loss(model(inputs.to(device)), targets.to(device))

    def predict(images: torch.Tensor) -> dict[str, torch.Tensor]:
        recon = net(images)
        return {"map": fae_anomaly_map(images, recon, cfg.fae), "recons": recon.unsqueeze(1)}

    def score(maps: torch.Tensor) -> torch.Tensor:
        return fae_image_score(maps, cfg.fae)

    method = TrainedMethod(predict=predict, score=score, modules={"fae": net}, info=info, steps=[1])
    return train_single_stage(ctx, net, stage1_loss, method)
