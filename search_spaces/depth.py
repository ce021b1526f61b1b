"""Recursion depth N of RcAE (Table 3 of the RcAE paper as a search).

``data.image_size`` must be divisible by 2**N, so N = 6 needs images of 64 px or more.
"""

SPACE = {
    "model.depth": {"type": "int", "low": 1, "high": 6},
}
