"""Which recursion steps the CRD sees (RcAE paper, Table 6): only the last step, steps 1/3/5, or
all steps (null = 1..N). The steps must be within 1..depth, so depth is fixed at 5 here (the
paper's N); ``data.image_size`` must then be divisible by 32.
"""

BASE = {"model.depth": 5}

CONFIGS = [
    {"model.crd_steps": [5]},
    {"model.crd_steps": [1, 3, 5]},
    {"model.crd_steps": None},
]
