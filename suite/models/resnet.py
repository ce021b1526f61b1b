"""ResNet backbones whose state_dict keys match torchvision's, so torchvision stays optional.

``ResNet`` (with ``BasicBlock`` / ``Bottleneck``) reproduces the torchvision layout (ResNet v1.5:
the stride of a bottleneck sits on its 3x3 conv) with identical parameter and buffer names
(``conv1``, ``bn1``, ``layer1`` .. ``layer4`` with ``downsample.0/1``, ``fc``), so a torchvision
weights file loads with ``model.load_state_dict(torch.load(file, weights_only=True))``.

``build_backbone`` returns a backbone with random, file or torchvision weights; only the last
needs torchvision (``pip install 'rcsuite[vision]'``) and network access.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from suite.weights import load_tensors

BACKBONES = ("resnet18", "wide_resnet50_2")
TORCHVISION_HINT = (
    "pretrained backbone weights need torchvision: pip install 'rcsuite[vision]' "
    "(or pip install torch==2.14.1 torchvision==0.29.1, a matching pair); or pass a local "
    "weights file or turn pretrained weights off (the method's backbone_weights / pretrained keys)"
)


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 width_per_group: int = 64) -> None:
        super().__init__()
        if width_per_group != 64:
            raise ValueError("BasicBlock supports only width_per_group=64")
        self.conv1 = _conv3x3(in_ch, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4, residual.

    The inner width is ``planes * width_per_group / 64`` (128 for wide_resnet50_2 doubles it).
    """

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 width_per_group: int = 64) -> None:
        super().__init__()
        width = int(planes * (width_per_group / 64.0))
        self.conv1 = _conv1x1(in_ch, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class ResNet(nn.Module):
    """ImageNet ResNet: 7x7/2 stem, 3x3/2 max-pool, four stages (strides 1, 2, 2, 2), avg-pool, fc.

    ``stage_channels`` lists the output channels of ``layer1`` .. ``layer4``.
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: list[int], num_classes: int = 1000,
                 width_per_group: int = 64) -> None:
        super().__init__()
        self.width_per_group = width_per_group
        self.in_ch = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_stage(block, 64, layers[0], stride=1)
        self.layer2 = self._make_stage(block, 128, layers[1], stride=2)
        self.layer3 = self._make_stage(block, 256, layers[2], stride=2)
        self.layer4 = self._make_stage(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        self.stage_channels = [c * block.expansion for c in (64, 128, 256, 512)]

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _make_stage(self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int,
                    stride: int) -> nn.Sequential:
        downsample = None
        out_ch = planes * block.expansion
        if stride != 1 or self.in_ch != out_ch:
            downsample = nn.Sequential(_conv1x1(self.in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))
        stage = [block(self.in_ch, planes, stride, downsample, self.width_per_group)]
        self.in_ch = out_ch
        stage += [block(self.in_ch, planes, 1, None, self.width_per_group) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18() -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2])


def wide_resnet50_2() -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], width_per_group=128)


_BUILDERS = {"resnet18": resnet18, "wide_resnet50_2": wide_resnet50_2}


def _load_weights_file(model: ResNet, name: str, weights_file: str | Path) -> None:
    path = Path(weights_file)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights file {path} does not exist")
    state = load_tensors(path, "backbone weights file", user_given=True)
    if not isinstance(state, dict):
        raise RuntimeError(f"backbone weights file {path} does not hold a state_dict (got {type(state).__name__})")
    expected = set(model.state_dict())
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise RuntimeError(
            f"backbone weights file {path} does not match a torchvision {name}: "
            f"{len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected keys {unexpected[:5]}"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as err:  # shape mismatches, e.g. a resnet18 file for wide_resnet50_2
        raise RuntimeError(f"backbone weights file {path} does not fit {name}: {err}") from err


def _torchvision_state_dict(name: str) -> dict[str, torch.Tensor]:
    try:
        import torchvision
    except ImportError as err:
        raise ImportError(TORCHVISION_HINT) from err
    weights = torchvision.models.get_model_weights(name).DEFAULT
    return weights.get_state_dict(progress=False)


def build_backbone(name: str, pretrained: bool = False, weights_file: str | Path | None = None) -> tuple[ResNet, bool]:
    """A ``name`` ResNet and whether its weights are pretrained (loaded rather than random).

    Precedence: ``weights_file`` (a local state_dict loaded with ``weights_only=True``; counted as
    pretrained) > ``pretrained`` (torchvision's DEFAULT ImageNet weights, downloaded by torchvision;
    ImportError with the install hint when torchvision is missing) > random initialisation.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown backbone {name!r}; valid: {', '.join(BACKBONES)}")
    model = _BUILDERS[name]()
    if weights_file:
        _load_weights_file(model, name, weights_file)
        return model, True
    if pretrained:
        model.load_state_dict(_torchvision_state_dict(name))
        return model, True
    return model, False
