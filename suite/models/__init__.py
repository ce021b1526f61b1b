"""Networks of the RcAE method (RcAE, DPN, CRD) and the ConvAE baseline; pure PyTorch."""

from suite.models.blocks import ConvAEBlock, DecoderLevel, EncoderLevel
from suite.models.convae import ConvAE
from suite.models.crd import CRD
from suite.models.dpn import DPN
from suite.models.ops import image_gradient
from suite.models.rcae import RcAE

__all__ = ["CRD", "DPN", "ConvAE", "ConvAEBlock", "DecoderLevel", "EncoderLevel", "RcAE", "image_gradient"]
