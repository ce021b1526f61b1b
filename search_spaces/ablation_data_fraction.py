"""Training-data fraction (RcAE paper, Table 5): 10/25/50/75/100 % of the train normals, for RcAE and
the ConvAE baseline.
"""

_PAPER = (
    "Wu et al., 'RcAE: Recursive Reconstruction Framework for Unsupervised Industrial Anomaly Detection', "
    "AAAI 2026"
)

TABLE = {
    "id": "data_fraction",
    "title": "Training data fraction (RcAE paper Table 5)",
    "source": f"{_PAPER}, Table 5 (training data percentage)",
    "metrics": ["i_auroc", "p_auroc"],
}

# paper: percent; mvtec = MVTec AD mean
ROWS = [
    {"id": "convae_0.1", "label": "ConvAE data=10%",
     "overrides": {"data.data_fraction": 0.1, "model.method": "convae"},
     "paper": {"mvtec": {"i_auroc": 62.3, "p_auroc": 61.5}}},
    {"id": "convae_0.25", "label": "ConvAE data=25%",
     "overrides": {"data.data_fraction": 0.25, "model.method": "convae"},
     "paper": {"mvtec": {"i_auroc": 68.9, "p_auroc": 77.2}}},
    {"id": "convae_0.5", "label": "ConvAE data=50%",
     "overrides": {"data.data_fraction": 0.5, "model.method": "convae"},
     "paper": {"mvtec": {"i_auroc": 71.4, "p_auroc": 87.8}}},
    {"id": "convae_0.75", "label": "ConvAE data=75%",
     "overrides": {"data.data_fraction": 0.75, "model.method": "convae"},
     "paper": {"mvtec": {"i_auroc": 79.1, "p_auroc": 88.9}}},
    {"id": "convae_1.0", "label": "ConvAE data=100%",
     "overrides": {"data.data_fraction": 1.0, "model.method": "convae"},
     "paper": {"mvtec": {"i_auroc": 82.4, "p_auroc": 90.8}}},
    {"id": "rcae_0.1", "label": "RcAE data=10%", "overrides": {"data.data_fraction": 0.1, "model.method": "rcae"},
     "paper": {"mvtec": {"i_auroc": 84.1, "p_auroc": 93.4}}},
    {"id": "rcae_0.25", "label": "RcAE data=25%", "overrides": {"data.data_fraction": 0.25, "model.method": "rcae"},
     "paper": {"mvtec": {"i_auroc": 91.2, "p_auroc": 93.7}}},
    {"id": "rcae_0.5", "label": "RcAE data=50%", "overrides": {"data.data_fraction": 0.5, "model.method": "rcae"},
     "paper": {"mvtec": {"i_auroc": 95.5, "p_auroc": 95.1}}},
    {"id": "rcae_0.75", "label": "RcAE data=75%", "overrides": {"data.data_fraction": 0.75, "model.method": "rcae"},
     "paper": {"mvtec": {"i_auroc": 97.2, "p_auroc": 96.8}}},
    {"id": "rcae_1.0", "label": "RcAE data=100%", "overrides": {"data.data_fraction": 1.0, "model.method": "rcae"},
     "paper": {"mvtec": {"i_auroc": 98.9, "p_auroc": 98.7}}},
]
