"""HFR-AE baseline (feature reconstruction over a frozen ResNet): optimiser, learning rate and the
map smoothing. The backbone is randomly initialised (no network needed); set
``hfr.backbone_weights`` to a local state_dict file for pretrained features.
"""

BASE = {"model.method": "hfr", "hfr.pretrained": False}

SPACE = {
    "hfr.optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
    "hfr.lr": {"type": "float", "low": 1e-3, "high": 0.5, "log": True},
    "hfr.sigma": {"type": "float", "low": 1.0, "high": 8.0},
}
