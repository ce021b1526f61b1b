"""Everything at once: recursion depth, corruption (coverage, block sizes, families), training-input
noise, the stage-1 learning rate and the top-k fraction used for the image score.

``data.image_size`` must be divisible by 2**6 (64 px or more) for the deepest depth.
"""

SPACE = {
    "model.depth": {"type": "int", "low": 1, "high": 6},
    "augment.coverage": {"type": "float", "low": 0.0, "high": 1.0},
    "augment.block_sizes": {"type": "categorical", "choices": [[16, 32], [32, 64], [32, 64, 128], [64, 128]]},
    "augment.color_blocks": {"type": "categorical", "choices": [True, False]},
    "augment.copy_paste": {"type": "categorical", "choices": [True, False]},
    "augment.lines": {"type": "categorical", "choices": [True, False]},
    "augment.noise_std": {"type": "float", "low": 0.0, "high": 0.2},
    "augment.noise_on_target": {"type": "categorical", "choices": [False, True]},
    "train.stage1.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    "eval.top_k": {"type": "float", "low": 0.001, "high": 0.1, "log": True},
}
