"""DRAEM inference (paper Sec. 3): the pixel map and the image score.

* pixel map ``M_o``: the discriminative net's softmax probability of the anomalous class,
  (B, 1, H, W) in [0, 1];
* image score ``eta = max(M_o * f_sf)``: the map mean-filtered by an ``sf x sf`` box (stride 1,
  padding ``sf // 2`` so the size is kept; the zero padding counts in the average, as
  ``avg_pool2d`` in the reference code), then its maximum. The reference code uses sf = 21 at 256 px.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def anomaly_map(mask_logits: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) logits -> (B, 1, H, W) probability of the anomalous class (channel 1)."""
    if mask_logits.dim() != 4 or mask_logits.shape[1] != 2:
        raise ValueError(f"anomaly_map expects (B, 2, H, W) logits, got {tuple(mask_logits.shape)}")
    return torch.softmax(mask_logits.float(), dim=1)[:, 1:2]


def image_score(maps: torch.Tensor, score_filter: int = 21) -> torch.Tensor:
    """(B, 1, H, W) maps -> (B,) scores: max of the ``score_filter`` mean-filtered map (odd size)."""
    if maps.dim() != 4:
        raise ValueError(f"image_score expects (B, C, H, W) maps, got {tuple(maps.shape)}")
    if score_filter < 1 or score_filter % 2 == 0:
        raise ValueError(f"config key 'draem.score_filter' must be an odd size >= 1, got {score_filter}")
    smoothed = maps.float()
    if score_filter > 1:
        smoothed = F.avg_pool2d(smoothed, score_filter, stride=1, padding=score_filter // 2, count_include_pad=True)
    return smoothed.flatten(1).amax(dim=1)
