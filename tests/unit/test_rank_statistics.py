"""suite.rank_statistics against scipy.stats and brute-force references, and the reason it exists:
the training path imports no scipy."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from suite.rank_statistics import KS_EXACT_MAX_N, average_ranks, ks_two_sample, spearman

REPO = Path(__file__).resolve().parents[2]


def brute_force_ks_p(a: np.ndarray, b: np.ndarray) -> float:
    """Share of all splits of the pooled (distinct) values into |a| and |b| values whose statistic
    reaches the observed one: the permutation distribution the exact p-value counts."""
    pooled, n_a = np.concatenate([a, b]), len(a)

    def statistic(x, y):
        grid = np.sort(pooled)
        return np.max(np.abs(np.searchsorted(np.sort(x), grid, "right") * len(y)
                             - np.searchsorted(np.sort(y), grid, "right") * len(x)))

    observed = statistic(a, b)
    hits = total = 0
    for chosen in itertools.combinations(range(len(pooled)), n_a):
        mask = np.zeros(len(pooled), dtype=bool)
        mask[list(chosen)] = True
        hits += statistic(pooled[mask], pooled[~mask]) >= observed
        total += 1
    return hits / total


@pytest.mark.parametrize("n_a,n_b,shift", [(4, 5, 0.0), (4, 5, 2.0), (3, 6, 1.0), (5, 5, 0.5), (1, 7, 0.3)])
def test_ks_p_value_is_the_share_of_splits_as_extreme(n_a, n_b, shift):
    rng = np.random.default_rng(n_a * 10 + n_b)
    a, b = rng.normal(size=n_a), rng.normal(loc=shift, size=n_b)
    _, p = ks_two_sample(a, b)
    assert p == pytest.approx(brute_force_ks_p(a, b), abs=1e-12)


def test_ks_matches_scipy_exact_on_random_samples_with_and_without_ties():
    rng = np.random.default_rng(0)
    for trial in range(120):
        n_a, n_b = (int(n) for n in rng.integers(1, 90, 2))
        a, b = rng.normal(size=n_a), rng.normal(loc=rng.uniform(0, 1.5), size=n_b)
        if trial % 3 == 0:  # ties within and across the samples
            a, b = np.round(a, 1), np.round(b, 1)
        statistic, p = ks_two_sample(a, b)
        reference = stats.ks_2samp(a, b, method="exact")
        assert statistic == pytest.approx(float(reference.statistic), abs=1e-12), (n_a, n_b)
        assert p == pytest.approx(float(reference.pvalue), abs=1e-12), (n_a, n_b)


def test_ks_on_a_test_set_sized_sample_and_its_edge_cases():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=167), rng.normal(loc=0.8, size=83)  # bottle's train / test sizes
    statistic, p = ks_two_sample(a, b)
    assert p < 1e-3 and p == pytest.approx(float(stats.ks_2samp(a, b).pvalue), rel=1e-9)
    assert ks_two_sample(a, a) == (0.0, 1.0)
    assert ks_two_sample([0.0, 1.0], [5.0, 6.0, 7.0]) == (1.0, pytest.approx(0.2))  # 2 of 10 splits
    with pytest.raises(ValueError, match="non-empty"):
        ks_two_sample([], [1.0])


def test_ks_switches_to_the_limit_distribution_only_for_large_samples():
    rng = np.random.default_rng(2)
    half = KS_EXACT_MAX_N // 2 + 1
    a, b = rng.normal(size=half), rng.normal(loc=0.03, size=half)
    statistic, p = ks_two_sample(a, b)
    reference = stats.ks_2samp(a, b, method="asymp")
    assert statistic == pytest.approx(float(reference.statistic))
    assert p == pytest.approx(float(reference.pvalue), rel=0.05)


def test_average_ranks_and_spearman_match_scipy():
    rng = np.random.default_rng(3)
    for n in (2, 3, 10, 57):
        x, y = rng.integers(0, 4, n), rng.normal(size=n)
        assert np.array_equal(average_ranks(x), stats.rankdata(x))
        expected = stats.spearmanr(x, y).statistic if np.ptp(x) else math.nan
        assert spearman(x, y) == pytest.approx(expected, abs=1e-12, nan_ok=True)
    assert list(average_ranks([3.0, 1.0, 3.0, 2.0])) == [3.5, 1.0, 3.5, 2.0]
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3])) and math.isnan(spearman([1], [2]))
    with pytest.raises(ValueError, match="equal lengths"):
        spearman([1, 2], [1, 2, 3])


def test_the_training_path_imports_no_scipy():
    """scipy.stats and scipy.ndimage cost every training process about 0.9 CPU-seconds to import (a third
    of its imports); only AUPRO's region labelling and the reports' Kendall tau still import scipy,
    inside functions."""
    code = "import sys\nsys.modules['scipy'] = None  # importing scipy now fails\nimport suite.pipeline\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
