import pytest
import torch

from suite.methods.convae.model import ConvAE
from suite.methods.rcae.model import RcAE


def _params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("depth", [1, 3, 5])
def test_shape(depth):
    torch.manual_seed(0)
    with torch.no_grad():
        assert ConvAE(width=4, depth=depth)(torch.rand(2, 3, 32, 64)).shape == (2, 3, 32, 64)


def test_size_error():
    with pytest.raises(ValueError, match=r"40x40 is not divisible by 2\*\*depth = 16"):
        ConvAE(width=4, depth=4)(torch.rand(1, 3, 40, 40))


def test_is_eq2_stack_of_distinct_blocks():
    # Same blocks as the unshared RcAE run at full depth: identical parameters and outputs.
    torch.manual_seed(0)
    convae = ConvAE(width=4, depth=3)
    rcae = RcAE(width=4, depth=3, shared_weights=False)
    rcae.load_state_dict(convae.state_dict())
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(convae(x), rcae(x), atol=1e-6)
    assert _params(convae) == 3 * _params(RcAE(width=4, depth=3))
    assert _params(ConvAE(width=4, depth=5)) > _params(convae)


def test_skip_switch_changes_outputs():
    torch.manual_seed(0)
    a, b = ConvAE(width=4, depth=2, skip=True), ConvAE(width=4, depth=2, skip=False)
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(a(x), b(x), atol=1e-3)
