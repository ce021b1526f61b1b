"""HFR-AE: hierarchical feature reconstruction over a frozen ResNet (Chen et al., "A Hierarchically
Feature Reconstructed Autoencoder for Unsupervised Anomaly Detection"), a baseline.

``model.py`` holds the frozen encoder and the level decoders, ``anomaly_map.py`` the residuals,
loss and scoring, ``train.py`` the one-stage trainer, ``config.py`` the ``hfr`` section.
"""

from __future__ import annotations

from pathlib import Path

from suite.methods.hfr.config import HFRConfig
from suite.errors import ConfigError
from suite.methods.registry import MethodSpec, load_references


def _validate(cfg) -> None:
    if cfg.hfr.lr <= 0:
        raise ConfigError(f"config key 'hfr.lr': {cfg.hfr.lr} must be > 0")
    if cfg.hfr.sigma < 0:
        raise ConfigError(f"config key 'hfr.sigma': {cfg.hfr.sigma} must be >= 0")


SPEC = MethodSpec(
    name="hfr",
    display_name="HFR-AE",
    colour="tab:purple",
    trainer="suite.methods.hfr.train:train",
    description="decoders reconstruct a frozen ResNet's layer1-3 features; cosine residual map",
    config_section="hfr",
    config_class=HFRConfig,
    scoring_fields=frozenset({"sigma", "normalise_by_area"}),
    unused_keys=("pseudo", "train.depth_loss", "train.depth_sampling"),
    presets={"demo": {"pretrained": False}, "tiny": {"pretrained": False}},
    path_keys=("hfr.backbone_weights",),
    validate=_validate,
    references=load_references(Path(__file__).with_name("references.json")),
    reference_by="hfr.backbone",
    fake_quality=0.93,
    fake_cost={"params": 3_100_000, "gflops": 2.4, "latency_ms": 6.5, "backbone_pretrained": True},
)
