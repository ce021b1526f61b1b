"""The demo's small sweep: recursion depth and augmentation coverage together.

Depth stops at 4 so the demo's 64 px images stay divisible by 2**N with room to spare.
"""

SPACE = {
    "model.depth": {"type": "int", "low": 1, "high": 4},
    "augment.coverage": {"type": "float", "low": 0.0, "high": 1.0},
}
