"""Skip connections x shared weights of the recursive AE (RcAE paper, Table 4), with both ConvAE
rows of that table (with and without skips). RcAE without skips and without sharing is not in the
paper; it completes the grid.
"""

CONFIGS = [
    {"model.method": "rcae", "model.skip": True, "model.shared_weights": True},
    {"model.method": "rcae", "model.skip": True, "model.shared_weights": False},
    {"model.method": "rcae", "model.skip": False, "model.shared_weights": True},
    {"model.method": "rcae", "model.skip": False, "model.shared_weights": False},
    {"model.method": "convae", "model.skip": True, "model.use_dpn": False, "model.use_crd": False},
    {"model.method": "convae", "model.skip": False, "model.use_dpn": False, "model.use_crd": False},
]
