"""The ``draem`` config section: DRAEM's networks, anomaly simulation, losses and scoring.

Epochs, learning rate and batch size are not here: like the other one-stage methods, DRAEM trains
with ``train.stage1`` (the paper: 700 epochs, Adam lr 1e-4, batch 8, the lr cut by 10 after 400 and
600 epochs; the reference code cuts it by 5 at 80 % and 90 % of the epochs).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DRAEMConfig:
    # Base channel width of the reconstructive encoder-decoder (paper / reference code: 128). Level
    # i has width * min(2**i, 8) channels.
    recon_width: int = 128
    # Max-pool steps of the reconstructive encoder (reference: 4, a bottleneck at image_size / 16).
    recon_levels: int = 4
    # Base channel width of the discriminative U-Net (paper / reference code: 64).
    disc_width: int = 64
    # Max-pool steps of the discriminative U-Net (reference: 5, a bottleneck at image_size / 32).
    # data.image_size must be divisible by 2**max(recon_levels, disc_levels).
    disc_levels: int = 5
    # Folder of anomaly-source texture images (the paper: DTD), read recursively; None = a bank of
    # procedural textures made from the seed.
    texture_root: str | None = None
    # Cap on the textures read from texture_root (an evenly spaced, deterministic subset) and on the
    # procedural bank (64 textures); None = all.
    texture_max_count: int | None = None
    # Randomly augment each anomaly source (gamma contrast, brightness, flips, rotation); the paper
    # applies 3 random augmentations out of a larger set.
    texture_augment: bool = True
    # Share of training images given a synthetic anomaly (reference code: 0.5); the rest are left
    # unchanged with an empty mask.
    anomaly_prob: float = 0.5
    # Perlin noise lattice: per axis an exponent e is drawn uniformly from
    # [perlin_scale_min, perlin_scale_max] (inclusive) and the noise has 2**e lattice cells along
    # that image side, at any image size. The reference code draws e with torch.randint(0, 6), i.e.
    # 0..5 (cells of 256..8 px at its 256 px).
    perlin_scale_min: int = 0
    perlin_scale_max: int = 5
    # Pixels whose Perlin noise (range about [-1, 1]) exceeds this form the anomaly mask (reference: 0.5).
    perlin_threshold: float = 0.5
    # The noise field is rotated by an angle drawn from [-perlin_rotation, perlin_rotation] degrees
    # (reference code: 90).
    perlin_rotation: float = 90.0
    # [low, high] of the opacity beta ~ U(low, high): inside the mask the image becomes
    # (1 - beta) * I + beta * A, A the augmented texture (paper: beta in [0.1, 1.0]).
    opacity: list[float] = field(default_factory=lambda: [0.1, 1.0])
    # Gaussian window (taps, sigma 1.5) of the SSIM term of the reconstruction loss (reference code: 11).
    ssim_window: int = 11
    # Focusing parameter gamma of the focal segmentation loss (reference code: 2). It uses no
    # class weighting alpha, so there is no focal_alpha.
    focal_gamma: float = 2.0
    # Image score = max of the anomaly map after a score_filter x score_filter mean filter (stride 1,
    # same size, zero padding counted); odd. Reference code: 21 at 256 px.
    score_filter: int = 21
