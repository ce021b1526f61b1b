"""The conv autoencoder block shared by RcAE, ConvAE and DPN, and RcAE's per-level wrappers.

Design choices (the paper fixes only "a standard 4-layer ConvAE with skip connections"):

* All four layers are 3x3 convolutions at the input's resolution; the "auto-encoding" is in
  feature space (in -> w -> 2w -> w -> out). Resolution changes live outside the block (RcAE's
  k=2, s=2 down/up convolutions), so the block works at any spatial size, down to 1x1. This keeps
  the only size constraint at "H, W divisible by 2**depth".
* Skips (``skip=True``), U-Net style but additive, between mirrored layers:
    h3 <- h3 + h1                 (layer 3 output gets layer 1 output)
    out <- out + x                (only when in_ch == out_ch: the block is a residual map)
  With ``skip=False`` both additions are removed; parameters are identical (additive skips have
  none), so the same weights can be loaded into both variants and give different outputs.
* GroupNorm (batch-size independent, so single-image inference, DDP and eval behave the same)
  and LeakyReLU(0.2) after layers 1-3; layer 4 is linear so outputs are unbounded.
"""

from __future__ import annotations

import torch
from torch import nn

NEGATIVE_SLOPE = 0.2


def num_groups(channels: int) -> int:
    """GroupNorm groups: as many as possible (up to 8) while keeping >= 4 channels per group."""
    for groups in (8, 4, 2):
        if channels % groups == 0 and channels // groups >= 4:
            return groups
    return 1


def conv_norm_act(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1),
        nn.GroupNorm(num_groups(out_ch), out_ch),
        nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
    )


class ConvAEBlock(nn.Module):
    """4-layer conv autoencoder block, (B, in_ch, H, W) -> (B, out_ch, H, W).

    layers: conv3x3(in_ch->w) | conv3x3(w->2w) | conv3x3(2w->w) [+ layer-1 skip] |
            conv3x3(w->out_ch) [+ input skip when in_ch == out_ch]
    """

    def __init__(self, in_ch: int, out_ch: int, width: int, skip: bool = True) -> None:
        super().__init__()
        if min(in_ch, out_ch, width) < 1:
            raise ValueError(f"ConvAEBlock: channels must be >= 1, got in_ch={in_ch}, out_ch={out_ch}, width={width}")
        self.in_ch, self.out_ch, self.width, self.skip = in_ch, out_ch, width, skip
        self.layer1 = conv_norm_act(in_ch, width)
        self.layer2 = conv_norm_act(width, 2 * width)
        self.layer3 = conv_norm_act(2 * width, width)
        self.layer4 = nn.Conv2d(width, out_ch, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1 = self.layer1(x)
        h3 = self.layer3(self.layer2(h1))
        if self.skip:
            h3 = h3 + h1
        out = self.layer4(h3)
        if self.skip and self.in_ch == self.out_ch:
            out = out + x
        return out

    def extra_repr(self) -> str:
        return f"in_ch={self.in_ch}, out_ch={self.out_ch}, width={self.width}, skip={self.skip}"


class EncoderLevel(nn.Module):
    """RcAE's encoder E: ConvAEBlock(C->C) then Conv2d(k=2, s=2), (B, C, H, W) -> (B, C, H/2, W/2)."""

    def __init__(self, channels: int, width: int, skip: bool = True) -> None:
        super().__init__()
        self.block = ConvAEBlock(channels, channels, width, skip)
        self.down = nn.Conv2d(channels, channels, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.block(x))


class DecoderLevel(nn.Module):
    """RcAE's decoder D: ConvAEBlock(C->C) then ConvTranspose2d(k=2, s=2), (B, C, H, W) -> (B, C, 2H, 2W)."""

    def __init__(self, channels: int, width: int, skip: bool = True) -> None:
        super().__init__()
        self.block = ConvAEBlock(channels, channels, width, skip)
        self.up = nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.block(x))


def code_adapters(in_ch: int, code_channels: int) -> tuple[nn.Module, nn.Module]:
    """(stem, head): 1x1 convolutions image -> code and code -> image, identities when equal."""
    if code_channels == in_ch:
        return nn.Identity(), nn.Identity()
    return nn.Conv2d(in_ch, code_channels, kernel_size=1), nn.Conv2d(code_channels, in_ch, kernel_size=1)
