"""Named starting points of a ``Config`` (``build_config(preset=...)``): the shared sections only.

Defaults are the ``cpu``-sized settings that run the full pipeline on one category in minutes on a
2-core machine; the ``paper`` preset is the RcAE paper's setup (1024 px, N=5, 1500/400/300 epochs,
Adam lr 1e-4, betas 0.9/0.999, eps 1e-8).

Each method adds its own section's values for a preset in its spec (``MethodSpec.presets``), e.g.
RcAE's depth and widths. Plain data: imports nothing.
"""

from __future__ import annotations

from typing import Any

# The test-set shifts of eval.shifts (suite.data.photometric.SHIFTS' names, tests/unit/test_robustness.py): all of
# them by default, none at the paper preset.
SHIFT_NAMES = ("dark8", "bright8", "contrast90", "blur", "noise", "translate")

# One-key switches between whole behaviours (``suite.config_aliases.expand_shorthands``): the key is
# replaced by the flat keys it stands for as the config is read; a key given beside it wins, and
# records store only the expanded keys. ``rcae.photometric=paper`` is the paper's photometric
# behaviour (no normalisation, no jitter, the rung's own map: README "Photometric robustness").
SHORTHANDS: dict[str, dict[str, dict[str, Any]]] = {
    "rcae.photometric": {
        "paper": {"rcae.normalise": "none", "rcae.jitter": False, "eval.anomaly_map": "auto",
                  "rcae.fuse": ["residual_final", "crd"]},
        "robust": {"rcae.normalise": "gain", "rcae.jitter": True, "eval.anomaly_map": "fused",
                   "rcae.fuse": ["residual_gain", "structure", "crd"]},
    },
}

PRESETS: dict[str, dict[str, Any]] = {
    # The RcAE paper's setup (Training Setup section): 1024 px, N=5, Adam(1e-4, 0.9/0.999, 1e-8),
    # 1500/400/300 epochs for stages 1/2/3.
    "paper": {
        "data": {"image_size": 1024},
        # "Applied to random blocks of size 32, 64, or 128 with varying coverage (0-100%)".
        "augment": {"coverage": 1.0, "coverage_sampling": "uniform", "reference_size": 1024},
        # The CRD's map M_A as it is, no standardisation (the paper describes none).
        "eval": {"anomaly_map": "auto", "standardize": "none", "shifts": []},  # no test-set shifts (README Robustness)
        "train": {
            "stage1": {"epochs": 1500, "lr": 1e-4, "betas": [0.9, 0.999], "eps": 1e-8, "batch_size": 8},
            "stage2": {"epochs": 400, "lr": 1e-4, "betas": [0.9, 0.999], "eps": 1e-8, "batch_size": 8},
            "stage3": {"epochs": 300, "lr": 1e-4, "betas": [0.9, 0.999], "eps": 1e-8, "batch_size": 4},
        },
    },
    # Full pipeline on one category on 2 CPU cores (bottle: ~50 single-thread minutes, README):
    # 128 px, width 16, CRD on 2x pooled input.
    "cpu": {
        "data": {"image_size": 128},
        "augment": {"coverage": 0.5, "coverage_sampling": "uniform", "clean_fraction": 0.1},
        "pseudo": {"families": ["augment", "occluders"], "clean_fraction": 0.25, "opacity": [0.3, 1.0]},
        # Smoothing of the maps at 128 px, picked on validation P-AUROC over sigma 1-6 (3 bottle seeds,
        # benchmarks/scoring_sweep.py; README "Map smoothing at the cpu preset"); other presets keep 2.
        "eval": {"smooth_sigma": 4.0},
        "train": {
            "stage1": {"epochs": 150, "lr": 1e-3, "batch_size": 16},
            "stage2": {"epochs": 40, "lr": 1e-3, "batch_size": 16},
            "stage3": {"epochs": 30, "lr": 1e-3, "batch_size": 8},
            "depth_sampling": "linear",
            "lr_schedule": "cosine",
        },
    },
    # The demo's trials (`make demo`): the full pipeline in well under a minute on 2 cores, 64 px.
    "demo": {
        "data": {"image_size": 64},
        "train": {
            "stage1": {"epochs": 36, "lr": 2e-3, "batch_size": 16},
            "stage2": {"epochs": 8, "lr": 2e-3, "batch_size": 16},
            "stage3": {"epochs": 12, "lr": 2e-3, "batch_size": 8},
            "eval_every": 9,
        },
        "eval": {"save_maps": 3},
    },
    # Seconds per trial: for tests and smoke runs.
    "tiny": {
        "data": {"image_size": 32},
        "train": {
            "stage1": {"epochs": 2, "lr": 2e-3, "batch_size": 8},
            "stage2": {"epochs": 1, "lr": 2e-3, "batch_size": 8},
            "stage3": {"epochs": 1, "lr": 2e-3, "batch_size": 8},
        },
        "eval": {"aupro": True, "cost": True},
    },
}
