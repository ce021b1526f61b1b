"""ConvAE's network factory and trainer: RcAE's stage 1 and scorer on a ConvAE, run at its full
depth only (``suite.methods.rcae.train.train_reconstruction`` with ``recursive=False``)."""

from __future__ import annotations

from torch import nn

from suite.config import Config
from suite.methods.base import TrainContext, TrainedMethod
from suite.methods.convae.model import ConvAE
from suite.methods.rcae.train import train_reconstruction


def build_networks(cfg: Config) -> dict[str, nn.Module]:
    c = cfg.convae
    return {"ae": ConvAE(in_ch=3, width=c.width, depth=c.depth, skip=c.skip, code_channels=c.code_channels)}


def train(ctx: TrainContext) -> TrainedMethod:
    depth = ctx.cfg.convae.depth
    return train_reconstruction(ctx, build_networks(ctx.cfg), steps=[depth], crd_steps_=[depth], recursive=False)
