"""Networks of the RcAE method (RcAE, DPN, CRD) and the ConvAE, FAE and HFR-AE baselines; pure PyTorch."""

from suite.models.blocks import ConvAEBlock, DecoderLevel, EncoderLevel
from suite.models.convae import ConvAE
from suite.models.crd import CRD
from suite.models.dpn import DPN
from suite.models.fae import FAEUNet
from suite.models.hfr import HFRAE
from suite.models.ops import image_gradient
from suite.models.rcae import RcAE
from suite.models.resnet import build_backbone

__all__ = [
    "CRD",
    "DPN",
    "HFRAE",
    "ConvAE",
    "ConvAEBlock",
    "DecoderLevel",
    "EncoderLevel",
    "FAEUNet",
    "RcAE",
    "build_backbone",
    "image_gradient",
]
