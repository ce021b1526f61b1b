"""Stage-1 structured corruption: how much of the image is corrupted, at which block sizes, and
which corruption families (colour blocks, copy-paste patches, crack-like lines) are used.

Block sizes are given at 256 px and scaled with ``data.image_size``. With every family off the
pseudo-anomaly generator falls back to all families.
"""

SPACE = {
    "augment.coverage": {"type": "float", "low": 0.0, "high": 1.0},
    "augment.block_sizes": {"type": "categorical", "choices": [[16, 32], [32, 64], [32, 64, 128], [64, 128]]},
    "augment.color_blocks": {"type": "categorical", "choices": [True, False]},
    "augment.copy_paste": {"type": "categorical", "choices": [True, False]},
    "augment.lines": {"type": "categorical", "choices": [True, False]},
}
