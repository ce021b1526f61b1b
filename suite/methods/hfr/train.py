"""HFR-AE baseline (hierarchical feature reconstruction over a frozen ResNet) trained by ``run_training``.

One stage ("stage1"): the ResNet encoder (``hfr.backbone``; weights from ``hfr.backbone_weights``,
else torchvision's ImageNet weights when ``hfr.pretrained``, else random) stays frozen and the
level decoders learn to reconstruct its ``layer1..layer3`` features from clean normals by
minimising ``hfr_loss`` (the mean over levels of ``1 - cos(f_enc, f_dec)`` per pixel, paper
Eqs. 5-8). The paper's optimiser is the default: SGD, lr 0.4, momentum 0.9, weight decay 1e-4
(``hfr.optimizer`` = sgd | adam, ``hfr.lr``, ``hfr.momentum``, ``hfr.weight_decay``); the paper
states only an initial rate, so the rate here is constant. Epochs and batch size come from
``train.stage1`` (its lr / betas are not used). Clean normals are flipped / rotated when
``augment.flip`` / ``augment.rotate`` are on, as for the other methods.

Inference: ``map = G_sigma(sum_k Resize(phi_k))`` (``hfr_anomaly_map`` with ``hfr.sigma`` and
``hfr.normalise_by_area``), image score = max of the map (paper Eq. 11).

``info`` carries ``backbone`` and ``backbone_pretrained`` (True when the weights were loaded from a
file or torchvision), so a report can tell a random-backbone run from the paper's setup.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from suite.data.augment import random_flips_rotations
from suite.methods.base import TrainContext, TrainedMethod, train_single_stage
from suite.methods.hfr.anomaly_map import hfr_anomaly_map, hfr_image_score, hfr_loss, hfr_residuals
from suite.methods.hfr.config import HFRConfig
from suite.methods.hfr.model import HFRAE

OPTIMIZERS = ("sgd", "adam")


def optimizer_factory(cfg: HFRConfig) -> Callable[[list[nn.Parameter]], torch.optim.Optimizer]:
    """The optimiser ``hfr.optimizer`` over the decoder parameters, with ``hfr``'s lr / momentum / decay."""
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"config key 'hfr.optimizer': {cfg.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
    if cfg.lr <= 0:
        raise ValueError(f"config key 'hfr.lr' must be > 0, got {cfg.lr}")

    def build(params: list[nn.Parameter]) -> torch.optim.Optimizer:
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    return build


def backbone_source(cfg: HFRConfig) -> str:
    if cfg.backbone_weights:
        return "file"
    return "torchvision" if cfg.pretrained else "random"


def train(ctx: TrainContext) -> TrainedMethod:
    cfg, device = ctx.cfg, ctx.device
    make_optimizer = optimizer_factory(cfg.hfr)  # fail on a bad optimiser before building the backbone
    model = HFRAE(cfg.hfr.backbone, pretrained=cfg.hfr.pretrained, weights_file=cfg.hfr.backbone_weights).to(device)
    info: dict[str, object] = {
        "backbone": cfg.hfr.backbone,
        "backbone_pretrained": bool(model.pretrained),
        "backbone_source": backbone_source(cfg.hfr),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }

    def stage1_loss(net: nn.Module, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if cfg.augment.flip or cfg.augment.rotate:
            batch = random_flips_rotations(batch.cpu(), cfg.augment.flip, cfg.augment.rotate, g).to(device)
        enc_feats, dec_feats = net(batch)
        return hfr_loss(enc_feats, dec_feats)

    def predict(images: torch.Tensor) -> dict[str, torch.Tensor]:
        enc_feats, dec_feats = model(images)
        residuals = hfr_residuals(enc_feats, dec_feats)
        amap = hfr_anomaly_map(residuals, tuple(images.shape[-2:]), sigma=cfg.hfr.sigma,
                               normalise_by_area=cfg.hfr.normalise_by_area)
        return {"map": amap}

    method = TrainedMethod(predict=predict, score=hfr_image_score, modules={"hfr": model}, info=info)
    return train_single_stage(ctx, model, stage1_loss, method, optimizer_factory=make_optimizer)
