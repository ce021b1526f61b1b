"""Skip connections x shared weights of the recursive AE (RcAE paper, Table 4), with both ConvAE
rows of that table (with and without skips). RcAE without skips and without sharing is not in the
paper; it completes the grid.
"""

_PAPER = (
    "Wu et al., 'RcAE: Recursive Reconstruction Framework for Unsupervised Industrial Anomaly Detection', "
    "AAAI 2026"
)

TABLE = {
    "id": "skip_shared",
    "title": "Skip connections × shared weights (RcAE paper Table 4)",
    "source": f"{_PAPER}, Table 4 (skip connections x parameter sharing)",
    "metrics": ["i_auroc", "p_auroc"],
}

# paper: percent; mvtec = MVTec AD mean, visa = VisA mean
ROWS = [
    {"id": "rcae_skip_shared", "label": "RcAE skip=True shared=True",
     "overrides": {"model.method": "rcae", "model.skip": True, "model.shared_weights": True},
     "paper": {"mvtec": {"i_auroc": 98.9, "p_auroc": 98.7}, "visa": {"i_auroc": 99.2, "p_auroc": 98.6}}},
    {"id": "rcae_skip_unshared", "label": "RcAE skip=True shared=False",
     "overrides": {"model.method": "rcae", "model.skip": True, "model.shared_weights": False},
     "paper": {"mvtec": {"i_auroc": 71.3, "p_auroc": 74.2}, "visa": {"i_auroc": 73.5, "p_auroc": 75.0}}},
    {"id": "rcae_noskip_shared", "label": "RcAE skip=False shared=True",
     "overrides": {"model.method": "rcae", "model.skip": False, "model.shared_weights": True},
     "paper": {"mvtec": {"i_auroc": 92.2, "p_auroc": 95.2}, "visa": {"i_auroc": 94.3, "p_auroc": 95.9}}},
    {"id": "rcae_noskip_unshared", "label": "RcAE skip=False shared=False",
     "overrides": {"model.method": "rcae", "model.skip": False, "model.shared_weights": False}},
    {"id": "convae_skip", "label": "ConvAE skip=True",
     "overrides": {"model.method": "convae", "model.skip": True, "model.use_dpn": False, "model.use_crd": False},
     "paper": {"mvtec": {"i_auroc": 65.2, "p_auroc": 72.4}, "visa": {"i_auroc": 68.5, "p_auroc": 70.1}}},
    {"id": "convae_noskip", "label": "ConvAE skip=False",
     "overrides": {"model.method": "convae", "model.skip": False, "model.use_dpn": False, "model.use_crd": False},
     "paper": {"mvtec": {"i_auroc": 82.4, "p_auroc": 90.8}, "visa": {"i_auroc": 79.7, "p_auroc": 78.5}}},
]
