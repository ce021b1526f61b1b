"""Component ablation (RcAE paper, Table 2): ConvAE; RcAE without DPN and CRD; RcAE + DPN;
RcAE + DPN + CRD.
"""

CONFIGS = [
    {"model.method": "convae", "model.skip": False, "model.use_dpn": False, "model.use_crd": False},
    {"model.method": "rcae", "model.use_dpn": False, "model.use_crd": False},
    {"model.method": "rcae", "model.use_dpn": True, "model.use_crd": False},
    {"model.method": "rcae", "model.use_dpn": True, "model.use_crd": True},
]
