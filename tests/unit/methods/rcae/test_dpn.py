import pytest
import torch

from suite.methods.rcae.dpn import DPN
from suite.models.ops import image_gradient


def test_input_is_recon_plus_image_gradient_nine_channels():
    torch.manual_seed(0)
    dpn = DPN(in_ch=3, width=4)
    assert dpn.net.layer1[0].in_channels == 9
    recon, image = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        expected = dpn.net(torch.cat([recon, image_gradient(image)], dim=1))
        assert torch.equal(dpn(recon, image), expected)


def test_shapes_and_detail_helper():
    torch.manual_seed(0)
    dpn = DPN(width=4)
    recon, image = torch.rand(2, 3, 32, 48), torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        residual = dpn(recon, image)
        detailed, residual2 = dpn.detail(recon, image)
    assert residual.shape == recon.shape
    assert torch.equal(residual, residual2) and torch.equal(detailed, recon + residual)


def test_stack_of_steps_equals_per_step_calls():
    torch.manual_seed(0)
    dpn = DPN(width=4)
    stack, image = torch.rand(2, 3, 3, 16, 16), torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        batched = dpn(stack, image)
        per_step = torch.stack([dpn(stack[:, s], image) for s in range(3)], dim=1)
    assert batched.shape == stack.shape
    assert torch.allclose(batched, per_step, atol=1e-6)


def test_shape_mismatch_errors():
    dpn = DPN(width=4)
    with pytest.raises(ValueError, match="does not match"):
        dpn(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="image"):
        dpn(torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16))
