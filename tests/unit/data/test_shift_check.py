"""The label-free data-shift check (suite.data.shift_check) on synthetic data and on real MVTec bottle."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from suite.data import load_arrays, shared_data_dir
from suite.data.mvtec import load_mvtec_samples
from suite.data.shift_check import (
    STATISTICS,
    check_shift,
    compare_statistics,
    concat_statistics,
    image_statistics,
    score_brightness_correlation,
)


def _scenes(n: int, seed: int, size: int = 48) -> torch.Tensor:
    """Normal images of one synthetic 'product': a bright disc on a dark textured background, with small
    per-image variation in illumination, position and texture."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centre = size / 2 + 2 * (torch.rand(n, 2, generator=g) - 0.5)
    disc = (((yy - centre[:, 0, None, None]) ** 2 + (xx - centre[:, 1, None, None]) ** 2) < (size / 3) ** 2).float()
    texture = F.interpolate(torch.rand(n, 3, 6, 6, generator=g), size=(size, size), mode="bilinear")
    colour = torch.tensor([0.75, 0.65, 0.5]).view(1, 3, 1, 1)
    images = 0.2 + 0.1 * texture + disc[:, None] * (colour - 0.2)
    illumination = 1.0 + 0.01 * torch.randn(n, 1, 1, 1, generator=g)
    return (images * illumination).clamp(0, 1)


def _quantise(images) -> np.ndarray:
    return np.rint(np.clip(np.asarray(images), 0, 1) * 255) / 255


def test_statistics_follow_their_definitions():
    grey = torch.full((2, 3, 8, 8), 0.25)
    values = image_statistics(grey)
    assert set(values) == set(STATISTICS)
    assert values["brightness"] == pytest.approx([0.25, 0.25]) and values["background"] == pytest.approx([0.25, 0.25])
    assert values["contrast"] == pytest.approx([0, 0], abs=1e-7) and values["sharpness"] == pytest.approx([0, 0])
    assert values["colourfulness"] == pytest.approx([0, 0])
    red = torch.zeros(1, 3, 8, 8)
    red[:, 0] = 1.0  # rg = 1, yb = 1/2, no spread: 0.3 * sqrt(1 + 1/4)
    assert image_statistics(red)["colourfulness"] == pytest.approx([0.3 * 1.25**0.5])
    assert image_statistics(red)["brightness"] == pytest.approx([0.299])
    parts = [image_statistics(grey), image_statistics(red)]
    assert concat_statistics(parts)["brightness"].shape == (3,)


def test_checkerboard_laplacian_variance():
    # On a checkerboard the 4-neighbour Laplacian alternates between -4 and +4: variance 16.
    checker = ((torch.arange(10)[:, None] + torch.arange(10)[None, :]) % 2).float()  # 8x8 interior: 32 of each
    assert image_statistics(checker.expand(1, 1, 10, 10))["sharpness"][0] == pytest.approx(16.0)


def test_fires_on_synthetic_darkened_test_images_and_not_on_the_same_distribution():
    train, test = _scenes(80, seed=0), _scenes(40, seed=1)
    same = check_shift(train, test)
    assert not same.shifted and same.warning_line() is None
    darker = test.clone()
    darker[:15] *= 0.92  # only part of the test set (its "good" images) is darker
    shifted = check_shift(train, darker)
    assert shifted.shifted
    assert "brightness" in shifted.shifted_statistics
    brightness = next(s for s in shifted.statistics if s.name == "brightness")
    assert brightness.direction == "lower" and brightness.outside_below >= 15 / 40 - 1e-9
    line = shifted.warning_line()
    assert line is not None and "\n" not in line and "brightness" in line and "lower" in line
    record = json.loads(json.dumps(shifted.to_dict()))
    assert record["shifted"] is True and "brightness" in record["shifted_statistics"]
    assert set(record["statistics"]) == set(STATISTICS)


def test_a_few_outliers_or_a_tiny_shift_do_not_fire():
    train, test = _scenes(80, seed=0), _scenes(40, seed=1)
    few = test.clone()
    few[:3] *= 0.8  # 3 of 40 far outside: below the share the rule needs
    assert not check_shift(train, few).shifted
    assert not check_shift(train, test * 0.998).shifted  # well inside the train range


# ----------------------------------------------------------------------------------------------
# real data


@pytest.fixture(scope="module")
def bottle_arrays():
    root = shared_data_dir() / "mvtec_bottle_256"
    if not (root / "bottle" / "train" / "good").is_dir():
        pytest.skip(f"real MVTec bottle data not found at {root} (set RCSUITE_DATA_DIR to its parent folder)")
    train_samples, test_samples = load_mvtec_samples(root, "bottle")
    train, _, _ = load_arrays(train_samples, 256)
    test, _, labels = load_arrays(test_samples, 256)
    return train, test, labels


def test_bottle_with_darker_test_normals_fires(bottle_arrays):
    train, test, labels = bottle_arrays
    dark = test.copy()
    dark[labels == 0] = _quantise(dark[labels == 0] * 0.92)  # as benchmarks/stress_categories.py writes it
    result = check_shift(train, dark)
    assert result.shifted, result.to_dict()
    assert "brightness" in result.shifted_statistics
    assert result.warning_line().startswith("data shift:")


@pytest.mark.slow  # measured over 5 s on a loaded 2-core machine
def test_unshifted_bottle_and_a_reshuffled_split_stay_silent(bottle_arrays):
    train, test, _ = bottle_arrays
    unshifted = check_shift(train, test)
    assert not unshifted.shifted and unshifted.warning_line() is None, unshifted.to_dict()
    # statistics are per image, so a re-split can reuse them
    pool = image_statistics(np.concatenate([train, test]))
    n = len(pool["brightness"])
    for seed in range(5):
        order = np.random.default_rng(seed).permutation(n)
        first, second = order[: len(train)], order[len(train) :]
        result = compare_statistics({k: v[first] for k, v in pool.items()}, {k: v[second] for k, v in pool.items()})
        assert not result.shifted, (seed, result.to_dict())


# ----------------------------------------------------------------------------------------------
# after scoring: score vs brightness


def test_score_brightness_correlation_is_spearman():
    images = torch.linspace(0.1, 0.9, 6).view(-1, 1, 1, 1).expand(6, 3, 4, 4)
    assert score_brightness_correlation(np.arange(6.0) ** 3, images) == pytest.approx(1.0)
    assert score_brightness_correlation(-np.arange(6.0), images) == pytest.approx(-1.0)
    assert score_brightness_correlation([3.0, 1.0, 2.0], np.array([0.2, 0.5, 0.9])) == pytest.approx(-0.5)
    assert np.isnan(score_brightness_correlation(np.ones(6), images))
    with pytest.raises(ValueError, match="scores for"):
        score_brightness_correlation(np.arange(5.0), images)


def test_compare_statistics_rejects_too_few_images():
    one = image_statistics(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match=">= 2 train"):
        compare_statistics(one, one)
