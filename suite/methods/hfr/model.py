"""HFR-AE: hierarchical feature reconstruction over a frozen ResNet (Chen et al., "A Hierarchically
Feature Reconstructed Autoencoder for Unsupervised Anomaly Detection").

Encoder: the stem and ``layer1`` .. ``layer3`` of a ResNet (K = 3 levels), frozen and always in eval
mode; inputs in [0, 1] are normalised with the ImageNet mean/std inside the model.

Decoder (paper Eqs. 3-4 and Sec. 4): coarse to fine,

    f_dec^3 = Conv1x1(Convs_3(f_enc^3))
    f_dec^k = Conv1x1(Convs_k(Upsample(f_dec^{k+1})))      k = 2, 1

where ``Upsample`` is nearest-neighbour to the size of ``f_enc^k`` (x2 for a ResNet) and ``Convs_k``
is three conv blocks with kernels 1x1, 3x3, 1x1, each followed by BatchNorm and LeakyReLU(0.1). The
paper says only that the blocks have "different channels at each level"; here every conv of level k
has ``c_k`` output channels (the channel count of ``f_enc^k``), and the final 1x1 conv (with bias,
no norm/activation) maps ``c_k -> c_k``.

Residual (Eqs. 5-6), loss (Eqs. 7-8), anomaly map (Eqs. 9-10) and score (Eq. 11) are in
``anomaly_map.py``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from suite.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from suite.models.resnet import ResNet, build_backbone

LEAKY_SLOPE = 0.1  # paper Sec. 4


class ResNetEncoder(nn.Module):
    """The stem and ``layer1`` .. ``layer3`` of a ResNet; returns the three stage outputs."""

    def __init__(self, backbone: ResNet) -> None:
        super().__init__()
        self.conv1 = backbone.conv1
        self.bn1 = backbone.bn1
        self.relu = backbone.relu
        self.maxpool = backbone.maxpool
        self.layer1 = backbone.layer1
        self.layer2 = backbone.layer2
        self.layer3 = backbone.layer3
        self.channels = list(backbone.stage_channels[:3])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        return [f1, f2, f3]


def _conv_block(in_ch: int, out_ch: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size=kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
    )


class LevelDecoder(nn.Module):
    """``Conv1x1(Convs(x))`` with ``Convs`` = conv blocks 1x1 -> 3x3 -> 1x1 (BN + LeakyReLU each)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            _conv_block(in_ch, out_ch, 1),
            _conv_block(out_ch, out_ch, 3),
            _conv_block(out_ch, out_ch, 1),
        )
        self.project = nn.Conv2d(out_ch, out_ch, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.convs(x))


class HFRAE(nn.Module):
    """Frozen ResNet encoder + trainable hierarchical feature decoder.

    ``forward(x)`` takes images in [0, 1], shape (B, 3, H, W), and returns ``(enc_feats, dec_feats)``,
    two lists ordered level 1 (``layer1``, finest) to level 3 (``layer3``, coarsest); level k has
    shape (B, c_k, H / 2^(k+1), W / 2^(k+1)) for H, W divisible by 16. Encoder features carry no
    gradient. ``pretrained`` records whether the backbone weights were loaded (file or torchvision).
    """

    def __init__(self, backbone: str = "resnet18", pretrained: bool = False,
                 weights_file: str | Path | None = None) -> None:
        super().__init__()
        try:
            resnet, self.pretrained = build_backbone(backbone, pretrained, weights_file)
        except ImportError as err:
            raise ImportError(f"{err} (here: set hfr.backbone_weights=FILE or hfr.pretrained=false)") from err
        self.backbone_name = backbone
        self.encoder = ResNetEncoder(resnet)
        for param in self.encoder.parameters():
            param.requires_grad_(False)
        self.encoder.eval()
        c1, c2, c3 = self.encoder.channels
        self.decoders = nn.ModuleList([LevelDecoder(c2, c1), LevelDecoder(c3, c2), LevelDecoder(c3, c3)])
        # Not persistent: constants, not weights, so they stay out of checkpoints.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "HFRAE":
        # The encoder is a fixed feature extractor: its BatchNorm must keep using (and never update)
        # the running statistics, whatever mode the decoder is in.
        super().train(mode)
        self.encoder.eval()
        return self

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"HFRAE expects RGB images of shape (B, 3, H, W) in [0, 1], got {tuple(x.shape)}")
        with torch.no_grad():
            return self.encoder((x - self.mean) / self.std)

    def decode(self, enc_feats: list[torch.Tensor]) -> list[torch.Tensor]:
        dec3 = self.decoders[2](enc_feats[2])
        up2 = F.interpolate(dec3, size=enc_feats[1].shape[-2:], mode="nearest")
        dec2 = self.decoders[1](up2)
        up1 = F.interpolate(dec2, size=enc_feats[0].shape[-2:], mode="nearest")
        dec1 = self.decoders[0](up1)
        return [dec1, dec2, dec3]

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        enc_feats = self.encode(x)
        return enc_feats, self.decode(enc_feats)
