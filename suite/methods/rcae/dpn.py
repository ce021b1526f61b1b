"""Detail Preservation Network (DPN), RcAE paper Eq. 6.

    Res^n = f_DPN(I_R^n ⊕ ∇I),     I_D^n = I_R^n + Res^n

``⊕`` is channel concatenation and ∇I = ``image_gradient(I)`` of the *input* image (x- then
y-forward differences, 2C channels), so the network sees C + 2C = 3C channels (9 for RGB) and
predicts a C-channel residual. The network is one ``ConvAEBlock`` (4 conv layers with the
layer-1 -> layer-3 skip; the input -> output skip does not apply since 3C != C). The residual
is unbounded. It is trained with RcAE frozen, on clean normals, through ``detail_loss``.
"""

from __future__ import annotations

import torch
from torch import nn

from suite.models.blocks import ConvAEBlock
from suite.models.ops import image_gradient


class DPN(nn.Module):
    def __init__(self, in_ch: int = 3, width: int = 16, skip: bool = True) -> None:
        super().__init__()
        self.in_ch, self.width, self.skip = in_ch, width, skip
        self.net = ConvAEBlock(3 * in_ch, in_ch, width, skip)

    def forward(self, recon: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Residual Res^n for ``recon`` (B, C, H, W) or a stack (B, S, C, H, W) of reconstructions
        of ``image`` (B, C, H, W); the output has ``recon``'s shape."""
        if image.dim() != 4 or image.shape[1] != self.in_ch:
            raise ValueError(f"DPN: expected image of shape (B, {self.in_ch}, H, W), got {tuple(image.shape)}")
        gradient = image_gradient(image)
        if recon.dim() == 4 and recon.shape == image.shape:
            return self.net(torch.cat([recon, gradient], dim=1))
        if recon.dim() == 5 and recon.shape[:1] + recon.shape[2:] == image.shape:
            batch, steps = recon.shape[:2]
            # Fold the step axis into the batch: every step gets the same ∇I.
            gradient = gradient.unsqueeze(1).expand(-1, steps, -1, -1, -1)
            joined = torch.cat([recon, gradient], dim=2).flatten(0, 1)
            return self.net(joined).unflatten(0, (batch, steps))
        raise ValueError(
            f"DPN: recon of shape {tuple(recon.shape)} does not match image {tuple(image.shape)} "
            "(expected (B, C, H, W) or (B, S, C, H, W))"
        )

    def detail(self, recon: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(I_D, Res) with I_D = recon + Res: the detail-enhanced reconstruction and the residual."""
        residual = self(recon, image)
        return recon + residual, residual

    def extra_repr(self) -> str:
        return f"in_ch={self.in_ch}, width={self.width}, skip={self.skip}"
