"""Small tensor operations shared by the models and the losses, and the memory/layout switches
(activation checkpointing, channels-last) the trainer turns on."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


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


def run_segment(module: nn.Module, *args: Any, checkpointed: bool) -> Any:
    """``module(*args)``; with ``checkpointed`` and autograd recording, its activations are not kept
    but recomputed in the backward pass (``torch.utils.checkpoint``, non-reentrant): the same
    values and gradients for less memory and one more forward of the segment."""
    if checkpointed and torch.is_grad_enabled():
        return checkpoint(module, *args, use_reentrant=False)
    return module(*args)


def set_activation_checkpointing(module: nn.Module, enabled: bool) -> int:
    """Switch activation checkpointing on every submodule that supports it (an
    ``activation_checkpointing`` attribute: RcAE's recursion levels, the CRD's blocks); returns
    how many were switched."""
    count = 0
    for sub in module.modules():
        if hasattr(sub, "activation_checkpointing"):
            sub.activation_checkpointing = bool(enabled)
            count += 1
    return count


def to_channels_last(module: nn.Module) -> nn.Module:
    """Store every 2D conv weight channels-last and every 3D conv weight channels-last-3d (tensor
    cores on CUDA read NHWC directly); ``Module.to(memory_format=...)`` cannot, since it would
    apply one format to 4D and 5D weights alike. Values are unchanged."""
    for sub in module.modules():
        fmt = None
        if isinstance(sub, (nn.Conv2d, nn.ConvTranspose2d)):
            fmt = torch.channels_last
        elif isinstance(sub, (nn.Conv3d, nn.ConvTranspose3d)):
            fmt = torch.channels_last_3d
        if fmt is None:
            continue
        for name, param in sub.named_parameters(recurse=False):
            if param.dim() in (4, 5):
                param.data = param.data.contiguous(memory_format=fmt)
    return module
