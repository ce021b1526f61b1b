"""DRAEM's two networks (Zavrtanik et al., ICCV 2021, Sec. 3); torch only, no training.

* ``ReconstructiveNet``: an encoder-decoder without skip connections that maps an image with a
  simulated anomaly back to its anomaly-free version. Encoder level i (i = 0..levels) is two 3x3
  conv + BatchNorm + ReLU layers with ``width * min(2**i, 8)`` channels, a 2x2 max pool between
  levels; each decoder step upsamples 2x (bilinear), a 3x3 conv + BN + ReLU narrows to the next
  level's width and a two-conv block refines it; a final 3x3 conv gives the 3-channel image (no
  output activation, as in the reference code).
* ``DiscriminativeNet``: a U-Net of the same blocks with skip connections (the upsampled features
  are concatenated with the encoder's features of the same level) on the 6-channel input
  (image ⊕ reconstruction); a final 3x3 conv gives 2-channel logits (normal, anomalous).
* ``DRAEM`` holds both: ``forward(x) -> (reconstruction, mask_logits)``.

The reference code uses 4 pooling steps (reconstructive) and 5 (discriminative), so the image side
must be divisible by 32 (32, 64, 128, 256 all are); ``check_image_size`` says so naming
``data.image_size``. Weights start as in the reference code: conv weights ~ N(0, 0.02), BatchNorm
scales ~ N(1, 0.02), BatchNorm shifts 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MAX_WIDTH_FACTOR = 8  # level widths stop doubling at 8 x the base width (the reference's widest layer)


def check_image_size(size: int, recon_levels: int, disc_levels: int) -> None:
    """Raise ValueError (naming ``data.image_size``) unless both networks' pooling fits ``size``."""
    levels = max(recon_levels, disc_levels)
    if levels < 1:
        raise ValueError(f"DRAEM needs at least one pooling level, got {levels}")
    if size % (2**levels) != 0:
        raise ValueError(
            f"config key 'data.image_size': {size} is not divisible by 2**{levels} = {2**levels} "
            f"(draem.recon_levels = {recon_levels}, draem.disc_levels = {disc_levels})"
        )


def level_widths(width: int, levels: int) -> list[int]:
    """Channels of encoder levels 0..levels: ``width * min(2**i, 8)``."""
    return [width * min(2**i, MAX_WIDTH_FACTOR) for i in range(levels + 1)]


def conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(*conv_bn_relu(cin, cout), *conv_bn_relu(cout, cout))


class UpStep(nn.Module):
    """2x bilinear upsampling followed by a 3x3 conv + BN + ReLU from ``cin`` to ``cout`` channels."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(*conv_bn_relu(cin, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))


def _check_input(x: torch.Tensor, levels: int, channels: int, what: str) -> None:
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"{what} expects (B, {channels}, H, W), got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % (2**levels) or w % (2**levels):
        raise ValueError(
            f"config key 'data.image_size': {what} needs H and W divisible by 2**{levels} = {2**levels}, "
            f"got {h}x{w}"
        )


class ReconstructiveNet(nn.Module):
    """Encoder-decoder without skips: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, width: int = 128, levels: int = 4, channels: int = 3):
        super().__init__()
        if width < 1 or levels < 1:
            raise ValueError(f"ReconstructiveNet needs width >= 1 and levels >= 1, got {width}, {levels}")
        widths = level_widths(width, levels)
        self.levels, self.channels = levels, channels
        self.encoder = nn.ModuleList(
            [double_conv(channels if i == 0 else widths[i - 1], widths[i]) for i in range(levels + 1)]
        )
        # Decoder step k goes from level k to level k - 1 (k = levels..1).
        self.up = nn.ModuleList([UpStep(widths[k], widths[k - 1]) for k in range(levels, 0, -1)])
        self.decoder = nn.ModuleList([double_conv(widths[k - 1], widths[k - 1]) for k in range(levels, 0, -1)])
        self.head = nn.Conv2d(widths[0], channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.levels, self.channels, "ReconstructiveNet")
        h = x
        for i, block in enumerate(self.encoder):
            if i > 0:
                h = F.max_pool2d(h, 2)
            h = block(h)
        for up, block in zip(self.up, self.decoder):
            h = block(up(h))
        return self.head(h)


class DiscriminativeNet(nn.Module):
    """U-Net with skips: (B, in_channels, H, W) -> (B, 2, H, W) logits (normal, anomalous)."""

    def __init__(self, width: int = 64, levels: int = 5, in_channels: int = 6, out_channels: int = 2):
        super().__init__()
        if width < 1 or levels < 1:
            raise ValueError(f"DiscriminativeNet needs width >= 1 and levels >= 1, got {width}, {levels}")
        widths = level_widths(width, levels)
        self.levels, self.in_channels = levels, in_channels
        self.encoder = nn.ModuleList(
            [double_conv(in_channels if i == 0 else widths[i - 1], widths[i]) for i in range(levels + 1)]
        )
        self.up = nn.ModuleList([UpStep(widths[k], widths[k - 1]) for k in range(levels, 0, -1)])
        # After concatenating the skip of level k - 1: 2 * widths[k - 1] channels in.
        self.decoder = nn.ModuleList([double_conv(2 * widths[k - 1], widths[k - 1]) for k in range(levels, 0, -1)])
        self.head = nn.Conv2d(widths[0], out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.levels, self.in_channels, "DiscriminativeNet")
        skips = []
        h = x
        for i, block in enumerate(self.encoder):
            if i > 0:
                h = F.max_pool2d(h, 2)
            h = block(h)
            skips.append(h)
        skips.pop()  # the bottleneck is not a skip
        for up, block in zip(self.up, self.decoder):
            h = block(torch.cat([up(h), skips.pop()], dim=1))
        return self.head(h)


def init_weights(module: nn.Module) -> None:
    """The reference code's initialisation: conv weights ~ N(0, 0.02), BN scale ~ N(1, 0.02), BN shift 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DRAEM(nn.Module):
    """Both sub-networks: ``forward(x) -> (reconstruction, mask_logits)``.

    ``mask_logits`` (B, 2, H, W) come from the discriminative net on ``cat([x, reconstruction])``;
    softmax over dim 1 gives (normal, anomalous) probabilities.
    """

    def __init__(self, recon_width: int = 128, disc_width: int = 64, recon_levels: int = 4, disc_levels: int = 5,
                 channels: int = 3):
        super().__init__()
        self.reconstructive = ReconstructiveNet(recon_width, recon_levels, channels)
        self.discriminative = DiscriminativeNet(disc_width, disc_levels, in_channels=2 * channels, out_channels=2)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        recon = self.reconstructive(x)
        return recon, self.discriminative(torch.cat([x, recon], dim=1))


def build_draem(cfg, channels: int = 3) -> DRAEM:
    """A ``DRAEM`` from a ``DRAEMConfig``."""
    return DRAEM(cfg.recon_width, cfg.disc_width, cfg.recon_levels, cfg.disc_levels, channels)
