"""DRAEM trained by ``run_training``: one joint stage ``stage1`` (both sub-networks together, as in the paper).

Each batch of clean normals ``I`` gets simulated anomalies (``synthesis.synthesize``: Perlin masks
filled with textures, probability ``draem.anomaly_prob`` per image) giving ``(I_a, M)``. The
``DRAEM`` module maps ``I_a`` to its reconstruction ``I_r`` and mask logits; the loss is

    L = MSE(I_r, I) + (1 - mean SSIM(I_r, I)) + Focal(softmax(logits), M)

(``losses.reconstruction_loss`` + ``losses.focal_loss``, gamma ``draem.focal_gamma``). Epochs,
batch size and Adam's settings come from ``train.stage1``; ``train.lr_schedule`` applies.

Anomaly sources: ``draem.texture_root`` (a DTD-like folder, read once per training, kept in a small
per-process cache, capped by ``draem.texture_max_count``) or, without a folder, a bank of
procedural textures (``suite.data.occluders.procedural_textures``) made once per training from
``runtime.seed`` plus an offset (its own generator: a resumed training sees the same bank).

Inference: ``map`` = softmax probability of the anomalous class, image score = max of the map
after a ``draem.score_filter`` mean filter (``anomaly_map``); ``recons`` (B, 1, 3, H, W) is the
reconstruction for the report's gallery.

The networks run in the channels-last memory format (a speed-up of about 1.5x for the small
widths of the cpu preset on one CPU thread at 128 px; the weights and results are the same up to
float rounding).
"""

from __future__ import annotations


import torch
from torch import nn

from suite.config import Config
from suite.data.occluders import texture_bank
from suite.methods.base import TrainContext, TrainedMethod, train_single_stage
from suite.methods.draem.anomaly_map import anomaly_map, image_score
from suite.methods.draem.losses import focal_loss, reconstruction_loss
from suite.methods.draem.model import DRAEM, build_draem, check_image_size
from suite.methods.draem.synthesis import check_synthesis_cfg, synthesize

# Offset of the texture bank's seed from runtime.seed, so the bank does not replay the draws of the
# training generator (nor another method's bank).
BANK_SEED_OFFSET = 130_363
CHANNELS_LAST = torch.channels_last


def draem_texture_bank(cfg: Config) -> tuple[torch.Tensor, str]:
    """The anomaly-source textures of this training (T, 3, S, S) and where they came from."""
    d = cfg.draem
    return texture_bank(d.texture_root, cfg.data.image_size, cfg.runtime.seed + BANK_SEED_OFFSET,
                        "draem.texture_root", d.texture_max_count)


def train(ctx: TrainContext) -> TrainedMethod:
    cfg, device = ctx.cfg, ctx.device
    d = cfg.draem
    check_image_size(cfg.data.image_size, d.recon_levels, d.disc_levels)
    check_synthesis_cfg(d)
    model: DRAEM = build_draem(d, channels=ctx.train_images.shape[1]).to(device, memory_format=CHANNELS_LAST)
    textures, texture_source = draem_texture_bank(cfg)
    info: dict[str, object] = {"texture_source": texture_source, "texture_count": int(textures.shape[0])}

    def stage1_loss(module: nn.Module, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if batch.shape[0] == 1:
            # BatchNorm needs more than one value per channel, and at 32 px the discriminator's
            # bottleneck is 1x1: a last batch of one image gets a second, differently corrupted copy.
            batch = batch.expand(2, -1, -1, -1)
        augmented, masks = synthesize(batch, d, g, textures)
        recon, logits = module(augmented.contiguous(memory_format=CHANNELS_LAST))
        # The losses in float32 even under CUDA mixed precision: SSIM's constants (C1 = 1e-4) are
        # near float16's smallest normal number.
        with torch.autocast(recon.device.type, enabled=False):
            rec = reconstruction_loss(recon.float(), batch.float(), d.ssim_window)
            return rec + focal_loss(logits.float(), masks, d.focal_gamma)

    def predict(images: torch.Tensor) -> dict[str, torch.Tensor]:
        recon, logits = model(images.contiguous(memory_format=CHANNELS_LAST))
        return {"map": anomaly_map(logits), "recons": recon.unsqueeze(1)}

    def score(maps: torch.Tensor) -> torch.Tensor:
        return image_score(maps, d.score_filter)

    method = TrainedMethod(predict=predict, score=score, modules={"draem": model}, info=info, steps=[1])
    return train_single_stage(ctx, model, stage1_loss, method)
