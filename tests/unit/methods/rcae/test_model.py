import pytest
import torch

from suite.methods.rcae.model import RcAE


def _params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("size", [(32, 32), (64, 64), (32, 64)])
def test_reconstruction_shape_or_clear_error(depth, size):
    torch.manual_seed(0)
    model = RcAE(width=4, depth=depth)
    x = torch.rand(2, 3, *size)
    if size[0] % 2**depth or size[1] % 2**depth:
        with pytest.raises(ValueError, match=rf"{size[0]}x{size[1]} is not divisible by 2\*\*depth = {2**depth}"):
            model(x)
    else:
        with torch.no_grad():
            assert model(x).shape == x.shape
            assert model.reconstruct_all(x).shape == (2, depth, 3, *size)


def test_divisibility_is_checked_against_the_requested_depth():
    model = RcAE(width=4, depth=6)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert model(x, depth=5).shape == x.shape  # 32 is divisible by 2**5
        assert model.reconstruct_all(x, steps=[1, 5]).shape == (1, 2, 3, 32, 32)
    with pytest.raises(ValueError, match="depth 6"):
        model(x)


def test_invalid_depths_steps_and_inputs():
    model = RcAE(width=4, depth=3)
    x = torch.rand(1, 3, 32, 32)
    for bad in (0, 4, -1, 1.5, True):
        with pytest.raises(ValueError, match=r"integer in 1\.\.3"):
            model(x, depth=bad)
    with pytest.raises(ValueError, match="repeat"):
        model.reconstruct_all(x, steps=[1, 1])
    with pytest.raises(ValueError, match="at least one"):
        model.reconstruct_all(x, steps=[])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match=">= 1"):
        RcAE(depth=0)


def test_shared_parameter_count_is_independent_of_depth():
    counts = {_params(RcAE(width=8, depth=n)) for n in range(1, 7)}
    assert len(counts) == 1


def test_unshared_parameter_count_grows_linearly_with_depth():
    one = _params(RcAE(width=8, depth=1, shared_weights=False))
    counts = [_params(RcAE(width=8, depth=n, shared_weights=False)) for n in range(1, 7)]
    assert counts == [n * one for n in range(1, 7)]
    assert one == _params(RcAE(width=8, depth=1, shared_weights=True))


def test_skip_switch_changes_outputs_with_the_same_weights():
    torch.manual_seed(0)
    with_skip = RcAE(width=4, depth=2, skip=True)
    without_skip = RcAE(width=4, depth=2, skip=False)
    without_skip.load_state_dict(with_skip.state_dict())
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(with_skip(x), without_skip(x), atol=1e-3)


def test_default_depth_and_forward_equals_reconstruct():
    torch.manual_seed(0)
    model = RcAE(width=4, depth=3)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model.reconstruct(x, 3))
        assert torch.equal(model(x, depth=2), model.reconstruct(x, 2))
        assert not torch.allclose(model(x, depth=1), model(x, depth=3))


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("steps", [None, [1], [4], [4, 1], [2, 4, 3], [1, 3]])
def test_batched_reconstruct_all_matches_separate_passes(shared, steps):
    torch.manual_seed(0)
    model = RcAE(width=4, depth=4, shared_weights=shared)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        batched = model.reconstruct_all(x, steps)
        naive = torch.stack([model.reconstruct(x, n) for n in (steps or [1, 2, 3, 4])], dim=1)
    assert batched.shape == naive.shape
    assert torch.allclose(batched, naive, atol=1e-5, rtol=0)


@pytest.mark.parametrize("shared", [True, False])
def test_reconstruct_all_calls_each_level_once_with_joined_batches(shared):
    model = RcAE(width=4, depth=4, shared_weights=shared)
    calls: list[tuple[str, int]] = []
    for kind, modules in (("E", model.encoders), ("D", model.decoders)):
        for module in modules:
            module.register_forward_hook(lambda m, inp, out, kind=kind: calls.append((kind, inp[0].shape[0])))
    with torch.no_grad():
        model.reconstruct_all(torch.rand(2, 3, 32, 32), steps=[1, 2, 4])
    encoder_calls = [b for k, b in calls if k == "E"]
    decoder_calls = [b for k, b in calls if k == "D"]
    assert encoder_calls == [2, 2, 2, 2]  # E_1..E_4 once each
    # level 4: depth 4 only; level 3: depth 4; level 2: depths 4, 2; level 1: depths 4, 2, 1
    assert decoder_calls == [2, 2, 4, 6]


def test_unshared_decoders_are_shared_across_depths_by_level():
    model = RcAE(width=4, depth=3, shared_weights=False)
    assert model.decoder(1) is model.decoders[0] and model.decoder(3) is model.decoders[2]
    assert model.encoder(2) is not model.encoder(1)
    shared = RcAE(width=4, depth=3)
    assert shared.encoder(1) is shared.encoder(3) and shared.decoder(1) is shared.decoder(3)


def test_gradients_flow_through_every_shared_parameter():
    torch.manual_seed(0)
    model = RcAE(width=4, depth=3)
    model(torch.rand(2, 3, 16, 16)).abs().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_code_channels_widen_every_code_and_keep_the_batched_pass_exact():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    wide = RcAE(in_ch=3, width=8, depth=3, code_channels=8)
    assert wide.encoder(1).block.in_ch == 8 and isinstance(wide.stem, torch.nn.Conv2d)
    batched = wide.reconstruct_all(x)
    separate = torch.stack([wide(x, n) for n in (1, 2, 3)], dim=1)
    assert batched.shape == (2, 3, 3, 32, 32) and torch.allclose(batched, separate, atol=1e-6)
    assert torch.equal(wide(x, "all"), batched)
    narrow = RcAE(in_ch=3, width=8, depth=3)
    assert isinstance(narrow.stem, torch.nn.Identity)
    assert sum(p.numel() for p in wide.parameters()) > sum(p.numel() for p in narrow.parameters())
    with pytest.raises(ValueError, match="'all'"):
        wide(x, "every")
