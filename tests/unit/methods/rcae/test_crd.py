import pytest
import torch

from suite.methods.rcae.crd import CRD


@pytest.mark.parametrize("steps", [1, 3, 5])
def test_shape_and_range_for_any_number_of_steps(steps):
    torch.manual_seed(0)
    crd = CRD(width=4)
    with torch.no_grad():
        out = crd(torch.rand(2, steps, 6, 32, 32))
    assert out.shape == (2, 1, 32, 32)
    assert out.min() > 0 and out.max() < 1


def test_non_multiple_size_is_padded_and_cropped():
    torch.manual_seed(0)
    crd = CRD(width=4, levels=4)
    stack = torch.rand(1, 2, 6, 30, 27)
    with torch.no_grad():
        assert crd(stack).shape == (1, 1, 30, 27)
        assert torch.allclose(torch.sigmoid(crd.logits(stack)), crd(stack))


def test_make_input_concatenates_details_and_image():
    details, image = torch.rand(2, 3, 3, 8, 8), torch.rand(2, 3, 8, 8)
    stack = CRD.make_input(details, image)
    assert stack.shape == (2, 3, 6, 8, 8)
    assert torch.equal(stack[:, 1, :3], details[:, 1]) and torch.equal(stack[:, 2, 3:], image)
    with pytest.raises(ValueError, match="matching image"):
        CRD.make_input(details, torch.rand(2, 3, 4, 4))


def test_output_depends_on_every_step():
    torch.manual_seed(0)
    crd = CRD(width=4, levels=2)
    stack = torch.rand(1, 3, 6, 16, 16)
    changed = stack.clone()
    changed[:, 2] = torch.rand(1, 6, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(crd.logits(stack), crd.logits(changed))


def test_skip_switch_changes_outputs_with_the_same_weights():
    torch.manual_seed(0)
    a, b = CRD(width=4, levels=2, skip=True), CRD(width=4, levels=2, skip=False)
    b.load_state_dict(a.state_dict())
    stack = torch.rand(1, 2, 6, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(a.logits(stack), b.logits(stack), atol=1e-3)


def test_wrong_input_rejected():
    with pytest.raises(ValueError, match=r"\(B, S, 6, H, W\)"):
        CRD(width=4)(torch.rand(2, 6, 16, 16))
    with pytest.raises(ValueError, match="levels"):
        CRD(levels=0)
