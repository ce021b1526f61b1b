"""DRAEM: a discriminatively trained reconstruction embedding (Zavrtanik, Kristan and Skočaj, ICCV 2021).

Two networks are trained jointly, in one stage, on normal images with simulated anomalies:

* a reconstructive encoder-decoder (no skips) learns to map an image with a simulated anomaly back
  to the clean image (loss: L2 + SSIM);
* a discriminative U-Net sees the image concatenated with its reconstruction and segments the
  simulated anomaly (loss: focal loss on its 2-class softmax).

Simulated anomalies (``synthesis``): thresholded Perlin noise masks filled, with a random opacity,
by augmented textures (the paper: DTD; here ``draem.texture_root`` or procedural textures). At test
time the pixel map is the anomalous-class probability and the image score the maximum of that map
after a mean filter (``draem.score_filter``).

Files: ``config`` (the ``draem`` section), ``model`` (networks, torch only), ``synthesis``,
``losses``, ``anomaly_map`` (inference maps and scores), ``train`` (the trainer, imported only when
a training runs). This module stays light: the config dataclass and the registry only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from suite.methods.draem.config import DRAEMConfig
from suite.errors import ConfigError
from suite.methods.registry import MethodSpec, Reference

if TYPE_CHECKING:
    from suite.config import Config


def validate(cfg: "Config") -> None:
    """Cross-field checks of the ``draem`` section; raises ``ConfigError`` naming the key."""
    d = cfg.draem
    for key in ("recon_width", "disc_width", "recon_levels", "disc_levels", "ssim_window"):
        if getattr(d, key) < 1:
            raise ConfigError(f"config key 'draem.{key}' must be >= 1, got {getattr(d, key)}")
    if d.texture_max_count is not None and d.texture_max_count < 1:
        raise ConfigError(f"config key 'draem.texture_max_count' must be >= 1 or null, got {d.texture_max_count}")
    if not 0.0 <= d.anomaly_prob <= 1.0:
        raise ConfigError(f"config key 'draem.anomaly_prob' must be in [0, 1], got {d.anomaly_prob}")
    if d.perlin_scale_min < 0:
        raise ConfigError(f"config key 'draem.perlin_scale_min' must be >= 0, got {d.perlin_scale_min}")
    if d.perlin_scale_max < d.perlin_scale_min:
        raise ConfigError(
            f"config key 'draem.perlin_scale_max' ({d.perlin_scale_max}) must be >= "
            f"'draem.perlin_scale_min' ({d.perlin_scale_min})"
        )
    if not -1.0 <= d.perlin_threshold < 1.0:
        raise ConfigError(f"config key 'draem.perlin_threshold' must be in [-1, 1), got {d.perlin_threshold}")
    if d.perlin_rotation < 0:
        raise ConfigError(f"config key 'draem.perlin_rotation' must be >= 0 degrees, got {d.perlin_rotation}")
    lo, hi = d.opacity if len(d.opacity) == 2 else (-1.0, -1.0)
    if not 0.0 <= lo <= hi <= 1.0:
        raise ConfigError(f"config key 'draem.opacity': {d.opacity} must be [low, high] with 0 <= low <= high <= 1")
    if d.focal_gamma < 0:
        raise ConfigError(f"config key 'draem.focal_gamma' must be >= 0, got {d.focal_gamma}")
    if d.score_filter < 1 or d.score_filter % 2 == 0:
        raise ConfigError(f"config key 'draem.score_filter' must be an odd size >= 1, got {d.score_filter}")
    levels = max(d.recon_levels, d.disc_levels)
    if cfg.model.method == "draem" and cfg.data.image_size % (2**levels) != 0:
        raise ConfigError(
            f"config key 'data.image_size': {cfg.data.image_size} is not divisible by 2**{levels} = {2**levels} "
            f"(draem.recon_levels / draem.disc_levels)"
        )


SPEC = MethodSpec(
    name="draem",
    display_name="DRAEM",
    colour="tab:orange",
    trainer="suite.methods.draem.train:train",
    description="DRAEM (ICCV 2021): reconstructive + discriminative sub-networks trained jointly on "
    "Perlin-noise texture anomalies; the map is the segmentation net's anomaly probability.",
    config_section="draem",
    config_class=DRAEMConfig,
    scoring_fields=frozenset({"score_filter"}),
    unused_keys=("augment", "pseudo", "train.depth_loss", "train.depth_sampling"),
    # The score filter keeps the reference's share of the image side (21 px at 256 px).
    presets={
        "tiny": {"recon_width": 8, "disc_width": 8, "score_filter": 3},
        "demo": {"recon_width": 8, "disc_width": 8, "score_filter": 5},
        # 128 px on one CPU thread (a loaded 2-core machine), per bottle epoch (167 train images):
        # widths 8/8 ~9 s, 16/8 ~17 s (the cpu preset's 150 epochs: ~40 min), 32/16 ~3x 8/8.
        "cpu": {"recon_width": 16, "disc_width": 8, "score_filter": 11},
    },
    path_keys=("draem.texture_root",),
    validate=validate,
    references={
        "draem": Reference(
            name="DRAEM (paper)",
            source="Zavrtanik et al., ICCV 2021, Table 1 (image AUROC) and Table 2 (pixel AUROC), MVTec AD mean",
            values={"mvtec": {"mean": {"i_auroc": 98.0, "p_auroc": 97.3}}},
            published_mean={"mvtec": {"i_auroc": 98.0, "p_auroc": 97.3}},
        )
    },
    fake_quality=0.9,
    fake_cost={"params": 890_000, "gflops": 0.92, "latency_ms": 25.0},  # the cpu preset at 128 px
)
