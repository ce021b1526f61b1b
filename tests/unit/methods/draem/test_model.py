"""DRAEM networks: shapes, skips, size checks."""

import pytest
import torch

from suite.methods.draem.config import DRAEMConfig
from suite.methods.draem.model import (
    DRAEM,
    DiscriminativeNet,
    ReconstructiveNet,
    build_draem,
    check_image_size,
    level_widths,
)


@pytest.mark.parametrize("size", [32, 64])
def test_output_shapes(size):
    torch.manual_seed(0)
    model = DRAEM(recon_width=4, disc_width=4)
    x = torch.rand(2, 3, size, size)
    recon, logits = model(x)
    assert recon.shape == (2, 3, size, size)
    assert logits.shape == (2, 2, size, size)
    model.eval()
    with torch.no_grad():
        recon, logits = model(x[:1])
    assert recon.shape == (1, 3, size, size) and torch.isfinite(logits).all()


def test_widths_follow_the_reference_pattern():
    assert level_widths(128, 4) == [128, 256, 512, 1024, 1024]
    assert level_widths(64, 5) == [64, 128, 256, 512, 512, 512]
    net = DiscriminativeNet(width=4, levels=5)
    assert net.encoder[0][0].in_channels == 6
    assert net.head.out_channels == 2
    assert len(net.up) == 5 and len(net.decoder) == 5
    # decoder blocks take the upsampled features and the skip of the same level
    assert [blk[0].in_channels for blk in net.decoder] == [2 * w for w in reversed(level_widths(4, 5)[:-1])]


def test_reconstructor_has_no_skips():
    # Seeded before the weights are drawn: with width 4, an unlucky draw (whatever earlier tests in the same
    # worker left in the global generator) can leave every path from that corner dead behind a ReLU.
    torch.manual_seed(0)
    rec = ReconstructiveNet(width=4, levels=4)
    widths = level_widths(4, 4)
    # each decoder block sees only the upsampled features (no concatenated encoder features)
    assert [blk[0].in_channels for blk in rec.decoder] == list(reversed(widths[:-1]))
    assert [up.conv[0].out_channels for up in rec.up] == list(reversed(widths[:-1]))
    # so everything passes the bottleneck: a 2x2 code at 32 px; the top-left output pixel
    # depends on the far corner of the input
    rec.eval()
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    rec(x)[0, 0, 0, 0].backward()
    assert x.grad[0, :, -1, -1].abs().sum() > 0


def test_wrapper_feeds_input_and_reconstruction_to_the_discriminator():
    torch.manual_seed(0)
    model = DRAEM(recon_width=4, disc_width=4).eval()
    seen = {}
    model.discriminative.register_forward_pre_hook(lambda mod, args: seen.setdefault("x", args[0]))
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        recon, _ = model(x)
    assert seen["x"].shape == (1, 6, 32, 32)
    torch.testing.assert_close(seen["x"][:, :3], x)
    torch.testing.assert_close(seen["x"][:, 3:], recon)


def test_build_from_config():
    model = build_draem(DRAEMConfig(recon_width=4, disc_width=2, recon_levels=3, disc_levels=4))
    assert model.reconstructive.levels == 3 and model.discriminative.levels == 4
    assert model.reconstructive.encoder[0][0].out_channels == 4
    assert model.discriminative.encoder[0][0].out_channels == 2
    recon, logits = model(torch.rand(2, 3, 16, 16))
    assert recon.shape == (2, 3, 16, 16) and logits.shape == (2, 2, 16, 16)


@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_paper_depth_fits_the_supported_sizes(size):
    check_image_size(size, 4, 5)


def test_bad_sizes_name_the_image_size_key():
    with pytest.raises(ValueError, match="data.image_size"):
        check_image_size(48, 4, 5)
    model = DRAEM(recon_width=2, disc_width=2)
    with pytest.raises(ValueError, match="data.image_size"):
        model(torch.rand(1, 3, 48, 48))
