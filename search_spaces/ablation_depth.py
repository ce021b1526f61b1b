"""Recursion depth ablation (RcAE paper, Table 3): N = 1..6 with the full RcAE + DPN + CRD.

``data.image_size`` must be divisible by 2**6 (64 px or more).
"""

_PAPER = (
    "Wu et al., 'RcAE: Recursive Reconstruction Framework for Unsupervised Industrial Anomaly Detection', "
    "AAAI 2026"
)

TABLE = {
    "id": "depth",
    "title": "Recursion depth N (RcAE paper Table 3)",
    "source": f"{_PAPER}, Table 3 (recursion depth N)",
    "metrics": ["i_auroc", "p_auroc"],
}

# paper: percent; mvtec = MVTec AD mean, visa = VisA mean
ROWS = [
    {"id": "1", "label": "depth=1", "overrides": {"model.depth": 1},
     "paper": {"mvtec": {"i_auroc": 86.2, "p_auroc": 87.4}, "visa": {"i_auroc": 89.3, "p_auroc": 88.7}}},
    {"id": "2", "label": "depth=2", "overrides": {"model.depth": 2},
     "paper": {"mvtec": {"i_auroc": 90.8, "p_auroc": 89.9}, "visa": {"i_auroc": 93.2, "p_auroc": 92.1}}},
    {"id": "3", "label": "depth=3", "overrides": {"model.depth": 3},
     "paper": {"mvtec": {"i_auroc": 96.3, "p_auroc": 96.8}, "visa": {"i_auroc": 97.3, "p_auroc": 96.4}}},
    {"id": "4", "label": "depth=4", "overrides": {"model.depth": 4},
     "paper": {"mvtec": {"i_auroc": 98.0, "p_auroc": 98.3}, "visa": {"i_auroc": 98.9, "p_auroc": 98.1}}},
    {"id": "5", "label": "depth=5", "overrides": {"model.depth": 5},
     "paper": {"mvtec": {"i_auroc": 98.9, "p_auroc": 98.7}, "visa": {"i_auroc": 99.2, "p_auroc": 98.6}}},
    {"id": "6", "label": "depth=6", "overrides": {"model.depth": 6},
     "paper": {"mvtec": {"i_auroc": 98.7, "p_auroc": 98.4}, "visa": {"i_auroc": 99.2, "p_auroc": 98.1}}},
]
