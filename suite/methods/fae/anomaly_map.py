"""FAE scoring (paper Eq. 2): ``map = M_s^n(d(x, f(x)))``, image score = sum or max of the map."""

from __future__ import annotations

import torch

from suite.discrepancy import discrepancy_map, image_score, mean_filter
from suite.methods.fae.config import FAEConfig


def fae_anomaly_map(images: torch.Tensor, reconstructions: torch.Tensor, cfg: FAEConfig) -> torch.Tensor:
    """``M_s^n(d(x, f(x)))`` (paper Eq. 2): discrepancy ``cfg.discrepancy`` smoothed by a
    ``cfg.filter_size`` mean filter applied ``cfg.filter_repeats`` times; shape (B, 1, H, W)."""
    raw = discrepancy_map(images, reconstructions, cfg.discrepancy)
    return mean_filter(raw, cfg.filter_size, cfg.filter_repeats)


def fae_image_score(anomaly_map: torch.Tensor, cfg: FAEConfig) -> torch.Tensor:
    """Image score: ``cfg.score`` ("sum" or "max") of the anomaly map, shape (B,)."""
    return image_score(anomaly_map, cfg.score)
