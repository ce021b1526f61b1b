import torch

from suite.models.blocks import ConvAEBlock, DecoderLevel, EncoderLevel, num_groups


def _params(module):
    return sum(p.numel() for p in module.parameters())


def test_block_keeps_resolution_and_maps_channels():
    torch.manual_seed(0)
    assert ConvAEBlock(3, 3, 4)(torch.rand(2, 3, 16, 12)).shape == (2, 3, 16, 12)
    assert ConvAEBlock(9, 3, 4)(torch.rand(2, 9, 8, 8)).shape == (2, 3, 8, 8)
    assert ConvAEBlock(3, 3, 4)(torch.rand(1, 3, 1, 1)).shape == (1, 3, 1, 1)  # works down to 1x1


def test_block_has_four_conv_layers():
    block = ConvAEBlock(3, 3, 8)
    convs = [m for m in block.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 8), (8, 16), (16, 8), (8, 3)]


def test_skip_switch_changes_outputs_with_the_same_weights():
    torch.manual_seed(0)
    with_skip, without_skip = ConvAEBlock(3, 3, 4, skip=True), ConvAEBlock(3, 3, 4, skip=False)
    without_skip.load_state_dict(with_skip.state_dict())  # additive skips carry no parameters
    assert _params(with_skip) == _params(without_skip)
    x = torch.rand(2, 3, 8, 8)
    assert not torch.allclose(with_skip(x), without_skip(x), atol=1e-3)
    # with skips: out = layer4(layer3(layer2(h1)) + h1) + x, where h1 = layer1(x)
    b = with_skip
    h1 = b.layer1(x)
    assert torch.allclose(b(x), b.layer4(b.layer3(b.layer2(h1)) + h1) + x, atol=1e-6)


def test_levels_halve_and_double_resolution():
    assert EncoderLevel(3, 4)(torch.rand(1, 3, 16, 8)).shape == (1, 3, 8, 4)
    assert DecoderLevel(3, 4)(torch.rand(1, 3, 8, 4)).shape == (1, 3, 16, 8)


def test_output_is_independent_of_batch_composition():
    # GroupNorm: an image's output must not depend on the other images in its batch.
    torch.manual_seed(0)
    block = ConvAEBlock(3, 3, 8)
    x = torch.rand(4, 3, 8, 8)
    assert torch.allclose(block(x)[1:2], block(x[1:2]), atol=1e-6)


def test_num_groups_keeps_at_least_four_channels_per_group():
    assert [num_groups(c) for c in (3, 4, 8, 16, 32, 64)] == [1, 1, 2, 4, 8, 8]
