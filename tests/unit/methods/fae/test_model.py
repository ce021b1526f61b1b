import pytest
import torch

from suite.methods.fae.config import FAEConfig
from suite.discrepancy import mean_filter, ssim_map
from suite.methods.fae.anomaly_map import fae_anomaly_map, fae_image_score
from suite.methods.fae.model import DilatedResidual, FAEUNet, build_fae




def test_unet_output_shape_and_structure():
    torch.manual_seed(0)
    model = FAEUNet(in_ch=3, width=8, dilations=(1, 2, 4), levels=3)
    x = torch.rand(2, 3, 32, 40)
    assert model(x).shape == x.shape
    blocks = [m for m in model.bottleneck if isinstance(m, DilatedResidual)]
    assert [b.conv.dilation[0] for b in blocks] == [1, 2, 4]
    assert len(model.down) == 3 and len(model.up) == 3
    assert model.bottleneck_in[0].out_channels == 8 * 2**3


def test_unet_rejects_sizes_not_divisible_by_two_to_the_levels():
    model = FAEUNet(width=4, levels=2, dilations=(1,))
    model(torch.rand(1, 3, 12, 12))  # 12 = 3 * 2^2 is fine
    with pytest.raises(ValueError, match="divisible by 2\\*\\*levels = 4"):
        model(torch.rand(1, 3, 12, 10))


def test_bottleneck_is_residual():
    block = DilatedResidual(4, dilation=2)
    torch.nn.init.zeros_(block.conv.weight)
    block.eval()
    h = torch.randn(1, 4, 6, 6)
    # zero conv -> BN(0) = bias 0 -> ReLU 0: the block is the identity
    assert torch.allclose(block(h), h)


def test_build_fae_from_config_and_grayscale():
    cfg = FAEConfig(width=4, dilations=[1, 2])
    model = build_fae(cfg, in_ch=1, levels=2)
    assert model(torch.rand(1, 1, 16, 16)).shape == (1, 1, 16, 16)
    assert len(model.bottleneck) == 2


def test_unet_learns_a_tiny_reconstruction():
    torch.manual_seed(0)
    model = FAEUNet(width=4, dilations=(1, 2), levels=2)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss = ((model(x) - x) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("kind", ["mse", "ssim", "gms"])
def test_anomaly_map_zero_for_perfect_reconstruction(kind):
    cfg = FAEConfig(discrepancy=kind, filter_size=3, filter_repeats=2)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    amap = fae_anomaly_map(x, x.clone(), cfg)
    assert amap.shape == (2, 1, 16, 16)
    assert amap.abs().max() < 1e-5


def test_anomaly_map_is_the_filtered_discrepancy_and_scores():
    cfg = FAEConfig(discrepancy="ssim", filter_size=5, filter_repeats=3, score="sum")
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    amap = fae_anomaly_map(x, y, cfg)
    assert torch.allclose(amap, mean_filter(ssim_map(x, y), 5, 3))
    assert torch.allclose(fae_image_score(amap, cfg), amap.flatten(1).sum(1))
    cfg.score = "max"
    assert torch.allclose(fae_image_score(amap, cfg), amap.flatten(1).amax(1))
