import pytest
import torch

from suite.data.occluders import occlude
from suite.methods.fae.config import FAEConfig
from suite.methods.fae.corruption import fae_training_pair

SIZE = 32


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(batch: int = 4, seed: int = 123) -> torch.Tensor:
    return torch.rand(batch, 3, SIZE, SIZE, generator=_gen(seed))


def _cfg(**kw) -> FAEConfig:
    return FAEConfig(**{"corruption_prob": 1.0, **kw})


def test_training_pair_shares_one_noise_draw():
    images = _images()
    cfg = _cfg(noise_std=0.1, noise_std_min=0.1)
    inputs, targets, masks = fae_training_pair(images, cfg, _gen(9), None, return_mask=True)
    corrupted, masks_again = occlude(images, cfg, _gen(9), None)
    assert torch.equal(masks, masks_again)
    # same eps on input and target: their difference is exactly the corruption
    assert torch.allclose(inputs - targets, corrupted - images, atol=1e-6)
    noise = targets - images
    assert abs(float(noise.std()) - 0.1) < 0.005
    assert float(noise.abs().max()) > 0.3  # not clipped to [0, 1]


def test_training_pair_noise_std_is_drawn_per_image_in_range():
    cfg = _cfg(corruption_prob=0.0, noise_std=0.2, noise_std_min=0.05)
    images = torch.full((16, 3, 64, 64), 0.5)
    inputs, targets = fae_training_pair(images, cfg, _gen(10), None)
    assert torch.equal(inputs, targets)
    stds = (targets - images).flatten(1).std(dim=1)
    assert stds.min() > 0.05 * 0.95 and stds.max() < 0.2 * 1.05
    assert stds.max() - stds.min() > 0.03  # actually varies
    zero, _ = fae_training_pair(images, _cfg(corruption_prob=0.0, noise_std=0.0), _gen(10), None)
    assert torch.equal(zero, images)


def test_bad_noise_range_names_the_keys():
    with pytest.raises(ValueError, match="fae.noise_std_min"):
        fae_training_pair(_images(1), _cfg(noise_std=0.01, noise_std_min=0.1), _gen(), None)
