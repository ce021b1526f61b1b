"""ConvAE: the deep convolutional autoencoder baseline of the RcAE paper (Eq. 2), N distinct
encoder and decoder levels run once. ``config.py`` holds the ``convae`` section, ``model.py`` the
network, ``train.py`` its factory and trainer: RcAE's stage 1 and scorer (the same corruption, loss
and maps, through ``suite.methods.rcae.train.train_reconstruction``), so the comparison isolates
weight sharing and recursion.
"""

from __future__ import annotations

from suite.errors import ConfigError
from suite.methods.convae.config import ALIASES, ConvAEConfig
from suite.methods.registry import MethodSpec


def _validate(cfg) -> None:
    c, size = cfg.convae, cfg.data.image_size
    if c.depth < 1:
        raise ConfigError(f"config key 'convae.depth': {c.depth} must be >= 1")
    if size % (2**c.depth) != 0:
        raise ConfigError(f"config key 'data.image_size': {size} is not divisible by 2**convae.depth = {2 ** c.depth}")
    if c.code_channels < 1:
        raise ConfigError(f"config key 'convae.code_channels': {c.code_channels} must be >= 1")


SPEC = MethodSpec(
    name="convae",
    display_name="ConvAE",
    colour="tab:blue",
    trainer="suite.methods.convae.train:train",
    description="deep conv AE (no recursion, no shared weights), stage 1 only",
    config_section="convae",
    config_class=ConvAEConfig,
    aliases=ALIASES,
    # It trains through RcAE's stage-1 code: those sources shape its weights too.
    code_modules=("suite.methods.rcae",),
    unused_keys=("pseudo", "train.depth_loss", "train.depth_sampling"),
    presets={
        "paper": {"depth": 5},
        "cpu": {"depth": 5, "width": 16},
        "demo": {"depth": 4, "width": 8},
        "tiny": {"depth": 2, "width": 8},
    },
    validate=_validate,
    uses_eval_map=True,
    fake_quality=0.75,
    fake_cost={"params": 150_000, "gflops": 0.12, "latency_ms": 1.6},
)
