"""DRAEM's training losses (paper Secs. 3.1-3.2): ``L = L_rec + L_seg``.

* ``reconstruction_loss`` (the paper's ``lambda L_SSIM + l2`` with lambda = 1, as in the reference code):
  ``L_rec(I, I_r) = l2(I, I_r) + L_SSIM(I, I_r)`` where ``l2`` is the mean squared error over
  pixels and channels and ``L_SSIM = 1 / N_p * sum_ij (1 - SSIM(I, I_r)_ij)``, i.e. one
  minus the mean SSIM, from ``suite.discrepancy.ssim_map`` (Gaussian window of ``window`` taps,
  sigma 1.5, C1 = 0.01^2, C2 = 0.03^2 for images in [0, 1], averaged over channels; replicate
  padding where the reference code zero-pads).
* ``focal_loss`` (Lin et al. 2017, the paper's L_seg): with ``p = softmax(logits)`` over the two
  classes (normal, anomalous) and ``p_t`` the probability of each pixel's true class,
  ``FL = mean over pixels of -(1 - p_t)^gamma * log(p_t)``. No class weight alpha (the reference
  code's alpha is 1 for both classes); computed from log-softmax for stability, so there is no need
  for the reference code's 1e-5 label smoothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from suite.discrepancy import ssim_map


def ssim_loss(prediction: torch.Tensor, target: torch.Tensor, window: int = 11) -> torch.Tensor:
    """``1 - mean SSIM`` over pixels, channels and the batch (0 for identical images)."""
    return ssim_map(prediction, target, window=window).mean()


def reconstruction_loss(prediction: torch.Tensor, target: torch.Tensor, window: int = 11) -> torch.Tensor:
    """``MSE(prediction, target) + (1 - mean SSIM(prediction, target))``."""
    return F.mse_loss(prediction, target) + ssim_loss(prediction, target, window)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Mean focal loss of (B, K, H, W) ``logits`` against a (B, 1, H, W) or (B, H, W) class map.

    ``FL = mean_pixels( -(1 - p_t)^gamma * log p_t )``, ``p_t = softmax(logits, dim=1)[target]``;
    ``target`` holds class indices (for DRAEM the 0/1 anomaly mask, as floats or ints).
    """
    if logits.dim() != 4:
        raise ValueError(f"focal_loss expects (B, K, H, W) logits, got {tuple(logits.shape)}")
    if target.dim() == 3:
        target = target.unsqueeze(1)
    if target.shape != (logits.shape[0], 1, *logits.shape[2:]):
        raise ValueError(f"focal_loss: target shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}")
    log_p = F.log_softmax(logits.float(), dim=1)
    log_pt = log_p.gather(1, target.round().long())
    pt = log_pt.exp()
    return (-((1.0 - pt) ** gamma) * log_pt).mean()
