"""FAE: the filtering autoencoder of "Noise & Pattern: Identity-Anchored Tikhonov Regularization for
Robust Structural Anomaly Detection", a baseline.

``model.py`` holds the U-Net, ``corruption.py`` the training pairs (occluders plus shared noise),
``anomaly_map.py`` the scoring, ``train.py`` the one-stage trainer, ``config.py`` the ``fae``
section.
"""

from __future__ import annotations

from pathlib import Path

from suite.methods.fae.config import FAEConfig
from suite.errors import ConfigError
from suite.methods.registry import MethodSpec, load_references


def _validate(cfg) -> None:
    f = cfg.fae
    if cfg.model.method == "fae" and cfg.data.image_size % (2**f.levels) != 0:
        raise ConfigError(
            f"config key 'data.image_size': {cfg.data.image_size} is not divisible by 2**fae.levels = {2 ** f.levels}"
        )
    if f.levels < 1:
        raise ConfigError(f"config key 'fae.levels': {f.levels} must be >= 1")
    if f.noise_std < 0 or f.noise_std_min < 0 or f.noise_std_min > f.noise_std:
        raise ConfigError(
            f"config keys 'fae.noise_std_min' ({f.noise_std_min}) and 'fae.noise_std' ({f.noise_std}): "
            "need 0 <= noise_std_min <= noise_std"
        )
    for key in ("opacity_min", "corruption_prob"):
        value = getattr(f, key)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"config key 'fae.{key}': {value} is outside the allowed range [0, 1]")


SPEC = MethodSpec(
    name="fae",
    display_name="FAE",
    colour="tab:green",
    trainer="suite.methods.fae.train:train",
    description="filtering autoencoder: occluders + shared noise, U-Net with a dilated bottleneck",
    config_section="fae",
    config_class=FAEConfig,
    scoring_fields=frozenset({"discrepancy", "filter_size", "filter_repeats", "score"}),
    unused_keys=("pseudo", "train.depth_loss", "train.depth_sampling"),
    presets={
        "cpu": {"width": 16},
        "demo": {"width": 8, "dilations": [1, 2], "levels": 2},
        "tiny": {"width": 8, "dilations": [1, 2], "levels": 2},
    },
    path_keys=("fae.texture_root",),
    validate=_validate,
    references=load_references(Path(__file__).with_name("references.json")),
    fake_quality=0.90,
    fake_cost={"params": 480_000, "gflops": 0.9, "latency_ms": 4.0},
)
