"""Component ablation (RcAE paper, Table 2): ConvAE; RcAE without DPN and CRD; RcAE + DPN;
RcAE + DPN + CRD.
"""

_PAPER = (
    "Wu et al., 'RcAE: Recursive Reconstruction Framework for Unsupervised Industrial Anomaly Detection', "
    "AAAI 2026"
)

TABLE = {
    "id": "components",
    "title": "Components ladder (RcAE paper Table 2)",
    "source": f"{_PAPER}, Table 2 (ablation on core components)",
    "metrics": ["i_auroc", "p_auroc"],
}

# paper: percent; mvtec = MVTec AD, mean over 15 categories
ROWS = [
    {"id": "convae", "label": "ConvAE",
     "overrides": {"model.method": "convae", "model.skip": False, "model.use_dpn": False, "model.use_crd": False},
     "paper": {"mvtec": {"i_auroc": 82.4, "p_auroc": 90.8}}},
    {"id": "rcae", "label": "RcAE",
     "overrides": {"model.method": "rcae", "model.use_dpn": False, "model.use_crd": False},
     "paper": {"mvtec": {"i_auroc": 94.1, "p_auroc": 95.8}}},
    {"id": "rcae_dpn", "label": "RcAE + DPN",
     "overrides": {"model.method": "rcae", "model.use_dpn": True, "model.use_crd": False},
     "paper": {"mvtec": {"i_auroc": 95.7, "p_auroc": 96.6}}},
    {"id": "rcae_dpn_crd", "label": "RcAE + DPN + CRD",
     "overrides": {"model.method": "rcae", "model.use_dpn": True, "model.use_crd": True},
     "paper": {"mvtec": {"i_auroc": 98.9, "p_auroc": 98.7}}},
]
