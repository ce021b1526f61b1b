"""Small tensor operations shared by the models and the losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def image_gradient(x: torch.Tensor) -> torch.Tensor:
    """First-order forward finite differences along x (width) and y (height), per channel.

    For a tensor ``x`` of shape (..., C, H, W) (e.g. (B, C, H, W) or (B, S, C, H, W)) this returns
    shape (..., 2C, H, W): the first C channels are the x-gradients, the last C the y-gradients.

        gx[..., c, i, j] = x[..., c, i, j + 1] - x[..., c, i, j]     (kernel [-1, 1] along width)
        gy[..., c, i, j] = x[..., c, i + 1, j] - x[..., c, i, j]     (kernel [-1, 1]^T along height)

    The last column of gx and the last row of gy are 0 (the input is replicate-padded by one
    pixel on the right/bottom before differencing), so the output keeps the input's size.
    This is the ``I'`` of the RcAE paper's losses (Eqs. 5, 7, 9) and the DPN's extra input.
    """
    if x.dim() < 3:
        raise ValueError(f"image_gradient expects a tensor of shape (..., C, H, W), got shape {tuple(x.shape)}")
    # Differences of neighbours; an explicit zero column/row plays the role of replicate padding.
    gx = torch.cat([x[..., :, 1:] - x[..., :, :-1], torch.zeros_like(x[..., :, :1])], dim=-1)
    gy = torch.cat([x[..., 1:, :] - x[..., :-1, :], torch.zeros_like(x[..., :1, :])], dim=-2)
    return torch.cat([gx, gy], dim=-3)


def check_divisible(x: torch.Tensor, depth: int, what: str = "input") -> None:
    """Raise ValueError unless the spatial size of ``x`` is divisible by ``2**depth``."""
    height, width = x.shape[-2], x.shape[-1]
    factor = 2**depth
    if height % factor or width % factor:
        raise ValueError(
            f"{what} size {height}x{width} is not divisible by 2**depth = {factor} (depth {depth}); "
            f"resize or crop it to a multiple of {factor}, or use a smaller depth"
        )


def pad_to_multiple(x: torch.Tensor, factor: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad the last two dims on the bottom/right up to a multiple of ``factor``.

    Returns the padded tensor and the original (H, W) so the caller can crop back.
    """
    height, width = x.shape[-2], x.shape[-1]
    pad_h = (-height) % factor
    pad_w = (-width) % factor
    if pad_h or pad_w:
        if x.dim() not in (4, 5):
            raise ValueError(f"pad_to_multiple expects a 4D or 5D tensor, got shape {tuple(x.shape)}")
        # Replicate padding of a 5D tensor must name all three trailing dims.
        pad = (0, pad_w, 0, pad_h) if x.dim() == 4 else (0, pad_w, 0, pad_h, 0, 0)
        x = F.pad(x, pad, mode="replicate")
    return x, (height, width)
