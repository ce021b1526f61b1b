"""Recursive Convolutional Autoencoder (RcAE).

A depth-n pass compresses the image n times with an encoder E and reconstructs it n times with a
decoder D (paper Eqs. 3-4):

    I_C^0 = x,      I_C^i = E_i(I_C^{i-1})      i = 1..n     (resolution H / 2^i)
    I_R^0 = I_C^n,  I_R^j = D_{n-j+1}(I_R^{j-1})  j = 1..n   (back to H)

With ``shared_weights=True`` (the paper's RcAE) all E_i are one module E and all D_i one module D,
so the parameter count does not depend on the depth. With ``shared_weights=False`` there is a
distinct E_i per encoder application and a distinct D_i per decoder *level*: D_i maps level i
(H/2^i) to level i-1, so a depth-3 and a depth-5 pass use the same D_1 for their last step.

Every intermediate code keeps the image's C channels (the paper's X_i has C channels), so the
bottleneck of a depth-n pass is C x H/2^n x W/2^n. ``code_channels = K != C`` widens every code
to K channels: a 1x1 stem (C -> K) runs before the recursion and a 1x1 head (K -> C) after it,
both outside the shared E/D (so a small image keeps a usable bottleneck at depth 5). Outputs are
unbounded (no sigmoid): images are in [0, 1] and the L1 losses pull reconstructions there; clamp
for display if needed.

``activation_checkpointing`` (set by the trainer, ``runtime.activation_checkpointing``): in a pass
that records gradients each encoder / decoder application keeps only its input code (C channels)
and recomputes its block in the backward pass, so a pass holds one level's activations at a time
instead of every level's; values and gradients are unchanged.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch
from torch import nn

from suite.models.blocks import DecoderLevel, EncoderLevel, code_adapters
from suite.models.ops import check_divisible, run_segment


class RcAE(nn.Module):
    def __init__(
        self, in_ch: int = 3, width: int = 16, depth: int = 5, skip: bool = True, shared_weights: bool = True,
        code_channels: int | None = None,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"RcAE: depth must be >= 1, got {depth}")
        self.in_ch, self.width, self.depth = in_ch, width, depth
        self.skip, self.shared_weights = skip, shared_weights
        self.code_channels = code = code_channels or in_ch
        copies = 1 if shared_weights else depth
        self.encoders = nn.ModuleList(EncoderLevel(code, width, skip) for _ in range(copies))
        self.decoders = nn.ModuleList(DecoderLevel(code, width, skip) for _ in range(copies))
        self.stem, self.head = code_adapters(in_ch, code)
        self.activation_checkpointing = False

    # -- modules per level ---------------------------------------------------------------------

    def encoder(self, level: int) -> nn.Module:
        """E_level: maps level-1 (H/2^(level-1)) to level (H/2^level); level in 1..depth."""
        return self.encoders[0 if self.shared_weights else level - 1]

    def decoder(self, level: int) -> nn.Module:
        """D_level: maps level (H/2^level) to level-1; level in 1..depth."""
        return self.decoders[0 if self.shared_weights else level - 1]

    # -- checks --------------------------------------------------------------------------------

    def _check_depth(self, depth: int) -> int:
        """Return ``depth`` as an int (numpy/torch integers accepted) or raise ValueError."""
        try:
            value = operator.index(depth) if not isinstance(depth, bool) else None
        except TypeError:
            value = None
        if value is None or not 1 <= value <= self.depth:
            raise ValueError(f"RcAE: recursion depth must be an integer in 1..{self.depth}, got {depth!r}")
        return value

    def _check_input(self, x: torch.Tensor, depth: int) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_ch:
            raise ValueError(f"RcAE: expected input of shape (B, {self.in_ch}, H, W), got {tuple(x.shape)}")
        check_divisible(x, depth, "RcAE input")

    def _check_steps(self, steps: Sequence[int] | None) -> list[int]:
        if steps is None:
            return list(range(1, self.depth + 1))
        steps = [self._check_depth(s) for s in steps]
        if not steps:
            raise ValueError("RcAE: steps must name at least one recursion depth")
        if len(set(steps)) != len(steps):
            raise ValueError(f"RcAE: steps must not repeat, got {steps}")
        return steps

    # -- passes --------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor, depth: int | str | None = None) -> torch.Tensor:
        """Reconstruction I_R^n of ``x`` (B, C, H, W) at recursion depth n (default: self.depth);
        ``depth="all"`` gives ``reconstruct_all(x)`` (so DDP-wrapped training can ask for it)."""
        if isinstance(depth, str):
            if depth != "all":
                raise ValueError(f"RcAE: depth must be an integer in 1..{self.depth} or 'all', got {depth!r}")
            return self.reconstruct_all(x)
        return self.reconstruct(x, self.depth if depth is None else depth)

    def reconstruct(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """The plain depth-n pass: E_1..E_n then D_n..D_1. Needs H, W divisible by 2^n."""
        n = self._check_depth(n)
        self._check_input(x, n)
        ckpt = self.activation_checkpointing
        h = self.stem(x)
        for level in range(1, n + 1):
            h = run_segment(self.encoder(level), h, checkpointed=ckpt)
        for level in range(n, 0, -1):
            h = run_segment(self.decoder(level), h, checkpointed=ckpt)
        return self.head(h)

    def reconstruct_all(self, x: torch.Tensor, steps: Sequence[int] | None = None) -> torch.Tensor:
        """Reconstructions at several depths, stacked as (B, S, C, H, W) in the order of ``steps``.

        ``steps`` defaults to 1..depth. Equal to ``stack([reconstruct(x, n) for n in steps], 1)``
        but cheaper:
          * the encoder chain is a common prefix of every depth, so E_1..E_max run once and
            each level's code I_C^i is kept (max(steps) encoder calls instead of sum(steps));
          * every decoder call at level i has the same input shape (B, C, H/2^i, W/2^i) and the
            same module D_i, so the pending inputs of all depths at that level are concatenated
            along the batch and decoded in one call (max(steps) calls instead of sum(steps)).
        """
        steps = self._check_steps(steps)
        deepest = max(steps)
        self._check_input(x, deepest)
        batch = x.shape[0]
        wanted = set(steps)

        ckpt = self.activation_checkpointing
        codes = [self.stem(x)]
        for level in range(1, deepest + 1):
            codes.append(run_segment(self.encoder(level), codes[-1], checkpointed=ckpt))

        # States of the depths being decoded, deepest first (a depth joins at its own level).
        started: list[int] = []
        states: list[torch.Tensor] = []
        for level in range(deepest, 0, -1):
            if level in wanted:
                started.append(level)
                states.append(codes[level])
            joined = states[0] if len(states) == 1 else torch.cat(states, dim=0)
            states = list(run_segment(self.decoder(level), joined, checkpointed=ckpt).split(batch, dim=0))

        by_depth = dict(zip(started, states, strict=True))
        stacked = torch.stack([by_depth[n] for n in steps], dim=1)
        if isinstance(self.head, nn.Identity):
            return stacked
        return self.head(stacked.flatten(0, 1)).unflatten(0, stacked.shape[:2])

    def extra_repr(self) -> str:
        return (
            f"in_ch={self.in_ch}, width={self.width}, depth={self.depth}, skip={self.skip}, "
            f"shared_weights={self.shared_weights}, code_channels={self.code_channels}"
        )
