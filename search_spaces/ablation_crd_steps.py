"""Which recursion steps the CRD sees (RcAE paper, Table 6): only the last step, steps 1/3/5, or
all steps (null = 1..N). The steps must be within 1..depth, so depth is fixed at 5 here (the
paper's N); ``data.image_size`` must then be divisible by 32.
"""

_PAPER = (
    "Wu et al., 'RcAE: Recursive Reconstruction Framework for Unsupervised Industrial Anomaly Detection', "
    "AAAI 2026"
)

BASE = {"model.depth": 5}

TABLE = {
    "id": "crd_steps",
    "title": "Recursion steps fed to CRD (RcAE paper Table 6, N=5)",
    "source": f"{_PAPER}, Table 6 (reconstructions fed to CRD, N=5)",
    "metrics": ["i_auroc", "p_auroc"],
}

# paper: percent; mvtec = MVTec AD mean
ROWS = [
    {"id": "5", "label": "crd_steps=[5]", "overrides": {"model.crd_steps": [5]},
     "paper": {"mvtec": {"i_auroc": 95.7, "p_auroc": 96.6}}},
    {"id": "1,3,5", "label": "crd_steps=[1,3,5]", "overrides": {"model.crd_steps": [1, 3, 5]},
     "paper": {"mvtec": {"i_auroc": 98.0, "p_auroc": 97.1}}},
    {"id": "all", "label": "crd_steps=all (1..5)", "overrides": {"model.crd_steps": None},
     "paper": {"mvtec": {"i_auroc": 98.9, "p_auroc": 98.7}}},
]
