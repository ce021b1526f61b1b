"""Deep ConvAE baseline (RcAE paper Eq. 2): N distinct encoder blocks, then N distinct decoders.

    f_deep(x) = D_1 o D_2 o ... o D_N o E_N o ... o E_2 o E_1 (x)

E_i / D_i are the same level modules as RcAE's (ConvAEBlock + k=2,s=2 down / up convolution), so
the comparison isolates weight sharing and recursion: ConvAE always runs the full depth N, has
no shared weights and is trained at that one depth. Its parameter count equals that of
``RcAE(shared_weights=False)`` with the same depth. Outputs are unbounded (no sigmoid).
"""

from __future__ import annotations

import torch
from torch import nn

from suite.models.blocks import DecoderLevel, EncoderLevel, code_adapters
from suite.models.ops import check_divisible


class ConvAE(nn.Module):
    def __init__(
        self, in_ch: int = 3, width: int = 16, depth: int = 5, skip: bool = True, code_channels: int | None = None
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"ConvAE: depth must be >= 1, got {depth}")
        self.in_ch, self.width, self.depth, self.skip = in_ch, width, depth, skip
        self.code_channels = code = code_channels or in_ch
        self.encoders = nn.ModuleList(EncoderLevel(code, width, skip) for _ in range(depth))
        # decoders[i - 1] is D_i, mapping level i (H/2^i) to level i - 1.
        self.decoders = nn.ModuleList(DecoderLevel(code, width, skip) for _ in range(depth))
        self.stem, self.head = code_adapters(in_ch, code)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_ch:
            raise ValueError(f"ConvAE: expected input of shape (B, {self.in_ch}, H, W), got {tuple(x.shape)}")
        check_divisible(x, self.depth, "ConvAE input")
        h = self.stem(x)
        for encoder in self.encoders:
            h = encoder(h)
        for decoder in reversed(self.decoders):
            h = decoder(h)
        return self.head(h)

    def extra_repr(self) -> str:
        return f"in_ch={self.in_ch}, width={self.width}, depth={self.depth}, skip={self.skip}"
