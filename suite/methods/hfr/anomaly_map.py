"""HFR-AE residuals, loss and scoring (paper Eqs. 5-11), apart from the network."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from suite.scoring import gaussian_blur


def hfr_residuals(
    enc_feats: list[torch.Tensor], dec_feats: list[torch.Tensor], eps: float = 1e-12
) -> list[torch.Tensor]:
    """Per-level residual maps (paper Eqs. 5-6), each (B, 1, h_k, w_k):

        phi_k = 1/2 * sum_c (f_enc / ||f_enc||_2 - f_dec / ||f_dec||_2)^2

    with the L2 norm taken over channels at every pixel (``eps`` guards all-zero vectors). For unit
    vectors this equals ``1 - cos(f_enc, f_dec)``, so ``phi_k`` lies in [0, 2].
    """
    if len(enc_feats) != len(dec_feats):
        raise ValueError(f"hfr_residuals: {len(enc_feats)} encoder levels vs {len(dec_feats)} decoder levels")
    residuals = []
    for level, (enc, dec) in enumerate(zip(enc_feats, dec_feats), start=1):
        if enc.shape != dec.shape:
            raise ValueError(f"hfr_residuals: level {level} shapes differ: {tuple(enc.shape)} vs {tuple(dec.shape)}")
        diff = F.normalize(enc, dim=1, eps=eps) - F.normalize(dec, dim=1, eps=eps)
        residuals.append(0.5 * (diff**2).sum(dim=1, keepdim=True))
    return residuals


def hfr_loss(enc_feats: list[torch.Tensor], dec_feats: list[torch.Tensor]) -> torch.Tensor:
    """``L = 1/K sum_k L_k`` with ``L_k`` the mean of ``phi_k`` over pixels (and the batch) (Eqs. 7-8)."""
    residuals = hfr_residuals(enc_feats, dec_feats)
    return torch.stack([r.mean() for r in residuals]).mean()


def hfr_anomaly_map(residuals: list[torch.Tensor], size: int | tuple[int, int], sigma: float = 4.0,
                    truncate: float = 3.0, normalise_by_area: bool = False) -> torch.Tensor:
    """Anomaly map ``f_a = G_sigma(sum_k Resize(phi_k))`` of shape (B, 1, H, W) (paper Eqs. 9-10).

    Each residual map is resized to ``size`` bilinearly (``align_corners=False``); the sum is blurred
    by a Gaussian of std ``sigma`` (paper: 4) with ``2 * ceil(truncate * sigma) + 1`` taps (25 for
    sigma 4), replicate padding. Eq. 9 as printed also divides level k by its area ``w_k h_k``, which
    would weight the coarse levels far more than the fine ones and contradicts the text ("the
    summation of all resized residual maps"); ``normalise_by_area=True`` applies it anyway.
    """
    if not residuals:
        raise ValueError("hfr_anomaly_map: no residual maps given")
    out_size = (size, size) if isinstance(size, int) else tuple(size)
    total = None
    for phi in residuals:
        resized = F.interpolate(phi, size=out_size, mode="bilinear", align_corners=False)
        if normalise_by_area:
            resized = resized / (phi.shape[-1] * phi.shape[-2])
        total = resized if total is None else total + resized
    return gaussian_blur(total, sigma, truncate=truncate, padding="replicate")


def hfr_image_score(anomaly_map: torch.Tensor) -> torch.Tensor:
    """``A = max(f_a)`` per image (paper Eq. 11), shape (B,)."""
    return anomaly_map.flatten(1).amax(dim=1)
