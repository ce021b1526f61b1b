"""The ``hfr`` config section."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class HFRConfig:
    """HFR-AE (feature reconstruction over a frozen ResNet) knobs."""

    backbone: Literal["resnet18", "wide_resnet50_2"] = "resnet18"
    pretrained: bool = True  # load torchvision weights (needs network) unless backbone_weights is set
    backbone_weights: str | None = None  # local state_dict file, loaded with weights_only=True
    sigma: float = 4.0  # Gaussian smoothing of the anomaly map
    normalise_by_area: bool = False  # weight each level's residual by 1/area (the printed Eq. 9)
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.4
    momentum: float = 0.9
    weight_decay: float = 1e-4
