"""Cross Recursion Detection (CRD), RcAE paper Eq. 8: a 3D conv autoencoder over recursion steps.

    M_A = f_CRD({I_D^n ⊕ I}_{n in steps})

Input: a stack (B, S, in_ch, H, W), where step n carries I_D^n ⊕ I (6 channels for RGB; build it
with ``CRD.make_input``). It is viewed as (B, in_ch, S, H, W) so Conv3d kernels (3x3x3) mix
neighbouring recursion steps and pixels. Architecture (c_l = width * 2^min(l, 3)):

    stem     Conv3d(in_ch -> c_0)                                  full resolution
    down_l   Conv3d(c_{l-1} -> c_l, stride (1, 2, 2)),  l = 1..levels
    up_l     ConvTranspose3d(c_l -> c_{l-1}, k = s = (1, 2, 2)) [+ skip: level l-1 encoder
             feature] then Conv3d(c_{l-1} -> c_{l-1}),           l = levels..1
    head     mean over the step axis, then Conv2d 1x1 (c_0 -> 1)

Only the spatial axes are down-sampled, so any number of steps S >= 1 works (Table 6 uses S = 1,
3, 5). Every conv is followed by GroupNorm and LeakyReLU(0.2). Output: one map per image,
(B, 1, H, W), passed through a sigmoid (values in (0, 1), matching the {0, 1} pseudo masks of the
L2 stage-3 loss); ``logits`` gives the pre-sigmoid map. H, W that are not multiples of
2**levels are replicate-padded on the bottom/right internally and the output is cropped back.

``activation_checkpointing`` (set by the trainer): in a pass that records gradients the stem,
every down block and every up level keep only their inputs (the skip features, which are kept
anyway) and recompute their convolutions, norms and activations in the backward pass; values and
gradients are unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from suite.models.blocks import NEGATIVE_SLOPE, num_groups
from suite.models.ops import pad_to_multiple, run_segment


def conv3d_norm_act(in_ch: int, out_ch: int, stride: tuple[int, int, int] = (1, 1, 1)) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1),
        nn.GroupNorm(num_groups(out_ch), out_ch),
        nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
    )


class _UpLevel(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.up = nn.Sequential(
            nn.ConvTranspose3d(in_ch, out_ch, kernel_size=(1, 2, 2), stride=(1, 2, 2)),
            nn.GroupNorm(num_groups(out_ch), out_ch),
            nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
        )
        self.refine = conv3d_norm_act(out_ch, out_ch)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        h = self.up(x)
        if skip is not None:
            h = h + skip
        return self.refine(h)


class CRD(nn.Module):
    def __init__(self, in_ch: int = 6, width: int = 8, levels: int = 4, skip: bool = True) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError(f"CRD: levels must be >= 1, got {levels}")
        self.in_ch, self.width, self.levels, self.skip = in_ch, width, levels, skip
        channels = [width * 2 ** min(level, 3) for level in range(levels + 1)]
        self.stem = conv3d_norm_act(in_ch, channels[0])
        self.down = nn.ModuleList(
            conv3d_norm_act(channels[level - 1], channels[level], stride=(1, 2, 2)) for level in range(1, levels + 1)
        )
        # up[level - 1] maps level -> level - 1.
        self.up = nn.ModuleList(_UpLevel(channels[level], channels[level - 1]) for level in range(1, levels + 1))
        self.head = nn.Conv2d(channels[0], 1, kernel_size=1)
        self.activation_checkpointing = False

    @staticmethod
    def make_input(details: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Stack (B, S, C, H, W) of I_D^n and image (B, C, H, W) -> (B, S, 2C, H, W) of I_D^n ⊕ I."""
        if details.dim() != 5 or details.shape[:1] + details.shape[2:] != image.shape:
            raise ValueError(
                f"CRD.make_input: details {tuple(details.shape)} must be (B, S, C, H, W) matching image "
                f"{tuple(image.shape)}"
            )
        return torch.cat([details, image.unsqueeze(1).expand_as(details)], dim=2)

    def logits(self, stack: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid anomaly map (B, 1, H, W) for ``stack`` (B, S, in_ch, H, W)."""
        if stack.dim() != 5 or stack.shape[2] != self.in_ch:
            raise ValueError(f"CRD: expected input of shape (B, S, {self.in_ch}, H, W), got {tuple(stack.shape)}")
        padded, (height, width) = pad_to_multiple(stack, 2**self.levels)
        ckpt = self.activation_checkpointing
        h = run_segment(self.stem, padded.transpose(1, 2), checkpointed=ckpt)  # (B, in_ch, S, H, W)
        features = [h]
        for down in self.down:
            h = run_segment(down, h, checkpointed=ckpt)
            features.append(h)
        for level in range(self.levels, 0, -1):
            h = run_segment(self.up[level - 1], h, features[level - 1] if self.skip else None, checkpointed=ckpt)
        out = self.head(h.mean(dim=2))
        return out[..., :height, :width]

    def forward(self, stack: torch.Tensor) -> torch.Tensor:
        """Anomaly map M_A in (0, 1), shape (B, 1, H, W), for ``stack`` (B, S, in_ch, H, W)."""
        return torch.sigmoid(self.logits(stack))

    def extra_repr(self) -> str:
        return f"in_ch={self.in_ch}, width={self.width}, levels={self.levels}, skip={self.skip}"
