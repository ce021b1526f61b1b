"""Building blocks shared by the methods' networks (conv AE levels, image ops, ResNet backbones);
pure PyTorch. Each method's own networks live in its folder under ``suite/methods/``."""

from suite.models.blocks import ConvAEBlock, DecoderLevel, EncoderLevel, code_adapters
from suite.models.ops import image_gradient
from suite.models.resnet import build_backbone

__all__ = ["ConvAEBlock", "DecoderLevel", "EncoderLevel", "build_backbone", "code_adapters", "image_gradient"]
