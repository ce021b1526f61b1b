"""FAE: the Filtering Autoencoder of "Noise & Pattern: Identity-Anchored Tikhonov Regularization for
Robust Structural Anomaly Detection".

The paper trains "a modified U-Net with dilated convolutions in the bottleneck" (Sec. 5) to map a
corrupted, noisy image ``x~ + eps`` to the equally noisy clean image ``x + eps`` (Eq. 3; the
corruption and the training pair are in ``corruption.py``). Its exact widths, depth and
dilation rates are not given; ``FAEUNet`` is our choice:

    encoder level i (i = 0 .. levels-1):  ConvBlock(width * 2^i) then 2x2 max-pool
    bottleneck:                            ConvBlock(width * 2^levels), then per dilation d:
                                           h = h + ReLU(BN(Conv3x3_dilation=d(h)))
    decoder level i (reversed):            bilinear x2 upsample, concat skip, ConvBlock(width * 2^i)
    head:                                  1x1 conv to ``in_ch``, linear output

with ConvBlock = 2 x (Conv3x3 -> BatchNorm -> ReLU). The output is linear (no sigmoid) because the
target ``x + eps`` leaves [0, 1]; the paper's theory (Sec. 3) also favours a piecewise-linear
network, whose curvature term vanishes.

Scoring (Eq. 2) is in ``anomaly_map.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from suite.methods.fae.config import FAEConfig


def _conv_block(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class DilatedResidual(nn.Module):
    """``h + ReLU(BN(Conv3x3(h, dilation=d)))``: widens the receptive field at constant size."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        if dilation < 1:
            raise ValueError(f"dilation must be >= 1, got {dilation}")
        self.conv = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.act(self.norm(self.conv(h)))


class FAEUNet(nn.Module):
    """U-Net with ``levels`` down/up-sampling steps and a residual dilated-conv bottleneck.

    ``forward(x)`` maps (B, in_ch, H, W) to a reconstruction of the same shape; H and W must be
    divisible by ``2**levels``. Channel widths: ``width * 2^i`` at level i, ``width * 2^levels`` in
    the bottleneck.
    """

    def __init__(
        self, in_ch: int = 3, width: int = 32, dilations: Sequence[int] = (1, 2, 4, 8), levels: int = 3
    ) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError(f"FAEUNet levels must be >= 1, got {levels}")
        if width < 1:
            raise ValueError(f"FAEUNet width must be >= 1, got {width}")
        self.levels = levels
        widths = [width * 2**i for i in range(levels + 1)]
        self.down = nn.ModuleList()
        prev = in_ch
        for w in widths[:-1]:
            self.down.append(_conv_block(prev, w))
            prev = w
        self.bottleneck_in = _conv_block(prev, widths[-1])
        self.bottleneck = nn.Sequential(*[DilatedResidual(widths[-1], d) for d in dilations])
        self.up = nn.ModuleList()
        prev = widths[-1]
        for w in reversed(widths[:-1]):
            self.up.append(_conv_block(prev + w, w))
            prev = w
        self.head = nn.Conv2d(prev, in_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2**self.levels
        if x.dim() != 4 or x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(
                f"FAEUNet input of shape {tuple(x.shape)}: H and W must be divisible by 2**levels = {factor} "
                f"(levels={self.levels}); resize the images to a multiple of {factor}"
            )
        skips = []
        h = x
        for block in self.down:
            h = block(h)
            skips.append(h)
            h = F.max_pool2d(h, 2)
        h = self.bottleneck(self.bottleneck_in(h))
        for block, skip in zip(self.up, reversed(skips)):
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], dim=1))
        return self.head(h)


def build_fae(cfg: FAEConfig, in_ch: int = 3, levels: int = 3) -> FAEUNet:
    """An ``FAEUNet`` with the width and dilations of ``cfg``."""
    return FAEUNet(in_ch=in_ch, width=cfg.width, dilations=tuple(cfg.dilations), levels=levels)
