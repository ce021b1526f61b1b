"""Skip connections x shared weights of the recursive AE (RcAE paper, architecture ablation), with
the ConvAE baseline as a reference row.
"""

CONFIGS = [
    {"model.method": "rcae", "model.skip": True, "model.shared_weights": True},
    {"model.method": "rcae", "model.skip": True, "model.shared_weights": False},
    {"model.method": "rcae", "model.skip": False, "model.shared_weights": True},
    {"model.method": "rcae", "model.skip": False, "model.shared_weights": False},
    {"model.method": "convae", "model.skip": True, "model.use_dpn": False, "model.use_crd": False},
]
