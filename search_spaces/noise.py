"""Gaussian noise on the stage-1 training input, optionally also on the target (as the FAE paper
does), for RcAE. Images are in [0, 1], so std 0.2 is strong noise.
"""

SPACE = {
    "augment.noise_std": {"type": "float", "low": 0.0, "high": 0.2},
    "augment.noise_on_target": {"type": "categorical", "choices": [False, True]},
}
