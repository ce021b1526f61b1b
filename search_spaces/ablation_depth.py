"""Recursion depth ablation (RcAE paper, Table 3): N = 1..6 with the full RcAE + DPN + CRD.

``data.image_size`` must be divisible by 2**6 (64 px or more).
"""

GRID = {
    "model.depth": [1, 2, 3, 4, 5, 6],
}
