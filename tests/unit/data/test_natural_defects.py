import numpy as np
import pytest

from suite.data.synthetic import NATURAL_DEFECTS, natural_defects


def images(n=6, size=32, seed=0):
    return (np.random.default_rng(seed).random((n, 3, size, size)) * 0.5 + 0.25).astype(np.float32)


def test_masks_are_exactly_the_changed_pixels_and_never_empty():
    for size in (32, 64):
        clean = images(size=size)
        defective, masks = natural_defects(clean, seed=3)
        assert masks.shape == (6, 1, size, size) and defective.dtype == clean.dtype
        assert np.array_equal((defective != clean).any(axis=1), masks[:, 0] > 0)
        assert (masks.reshape(6, -1).sum(axis=1) > 0).all()


def test_deterministic_and_seed_dependent():
    clean = images()
    a, _ = natural_defects(clean, seed=1)
    b, _ = natural_defects(clean, seed=1)
    c, _ = natural_defects(clean, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_defects_stay_local():
    _, masks = natural_defects(images(n=len(NATURAL_DEFECTS), size=64), seed=0)
    assert (masks.reshape(len(NATURAL_DEFECTS), -1).mean(axis=1) < 0.25).all()


def test_rejects_non_square_input():
    with pytest.raises(ValueError, match="S, S"):
        natural_defects(np.zeros((1, 3, 16, 32), dtype=np.float32), seed=0)
