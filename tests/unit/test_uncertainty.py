"""suite.aggregate.uncertainty / cells: bootstrap intervals, the sign-flip test and seeds needed, checked
against values worked out by hand on constructed (not random) data."""

import itertools
import math

import numpy as np
import pytest

from suite import aggregate as agg
from suite.aggregate import uncertainty as U


def test_cell_mean_averages_seeds_within_categories_first():
    values = np.array([[0.8, 0.9, np.nan], [0.5, np.nan, np.nan], [np.nan] * 3])
    assert U.cell_mean(values) == pytest.approx((0.85 + 0.5) / 2)  # the empty category is skipped
    assert math.isnan(U.cell_mean(np.full((2, 2), np.nan)))


def test_constant_values_give_a_zero_width_interval():
    low, high = U.bootstrap_interval(np.full((3, 4), 0.7))
    assert low == pytest.approx(0.7) and high == pytest.approx(0.7)
    assert U.bootstrap_interval(np.array([[0.4]])) == pytest.approx((0.4, 0.4))


def test_interval_contains_the_mean_is_seeded_and_narrows_with_less_spread():
    values = np.array([[0.80, 0.84, 0.82], [0.90, 0.88, 0.93], [0.70, 0.75, 0.71]])
    low, high = U.bootstrap_interval(values, seed=3)
    assert low < U.cell_mean(values) < high
    assert U.bootstrap_interval(values, seed=3) == (low, high)  # reproducible
    assert U.bootstrap_interval(values, seed=4) != (low, high)  # and the seed is used
    tight = U.cell_mean(values) + (values - U.cell_mean(values)) / 10
    t_low, t_high = U.bootstrap_interval(tight, seed=3)
    assert t_high - t_low == pytest.approx((high - low) / 10)


def test_bootstrap_resamples_categories_then_seeds():
    # one seed per category: only categories vary, so every replicate is a mean of drawn categories
    reps = U.bootstrap_means(np.array([[0.0], [1.0]]), 2000, np.random.default_rng(0))
    assert set(np.round(reps, 9)) == {0.0, 0.5, 1.0}
    assert np.mean(reps == 0.5) == pytest.approx(0.5, abs=0.05)  # (0,1) or (1,0): probability 1/2
    # one category: only seeds vary; replicates are means of 2 seeds drawn from {0, 1}
    reps = U.bootstrap_means(np.array([[0.0, 1.0]]), 2000, np.random.default_rng(0))
    assert set(np.round(reps, 9)) == {0.0, 0.5, 1.0}
    # ragged: a category's missing seeds are never drawn
    reps = U.bootstrap_means(np.array([[0.2, np.nan, np.nan], [0.6, 0.6, 0.6]]), 500, np.random.default_rng(0))
    assert np.all(np.isfinite(reps)) and set(np.round(reps, 9)) <= {0.2, 0.4, 0.6}


def test_sign_flip_test_exact_values():
    assert U.sign_flip_test([0.0] * 6) == 1.0  # identical rows: never separable
    assert U.sign_flip_test([0.2] * 6) == pytest.approx(2 / 64)  # all-equal sign vectors only
    assert U.sign_flip_test([0.2] * 5) == pytest.approx(2 / 32)  # 5 pairs cannot reach 0.05
    d = [0.3, -0.1, 0.2]
    brute = np.mean([abs(sum(s * x for s, x in zip(signs, d))) >= abs(sum(d)) - 1e-12
                     for signs in itertools.product((-1, 1), repeat=3)])
    assert U.sign_flip_test(d) == pytest.approx(brute)
    assert math.isnan(U.sign_flip_test([]))
    assert U.min_pairs() == 6


def test_sign_flip_test_many_pairs_is_monte_carlo_and_seeded():
    d = np.linspace(0.01, 0.05, 40)
    assert U.sign_flip_test(d, seed=1) == U.sign_flip_test(d, seed=1) == pytest.approx(1 / (1 + U.N_FLIPS))
    assert U.sign_flip_test(np.zeros(40)) == 1.0
    # 20 pairs of +1 and -1 around 0.5: the Monte Carlo p agrees with the enumerable truth closely
    half = np.array([1.0, -1.0] * 10) + np.array([0.5] + [0.0] * 19)
    assert U.sign_flip_test(half, seed=2) == pytest.approx(1.0, abs=0.02)


def test_sign_flip_test_normal_limit_for_many_pairs():
    n = U.NORMAL_PAIRS + 50
    d = np.array([1.0, -1.0] * (n // 2)) + 0.2  # sum = 0.2 n, variance of the flipped sum = sum d^2
    expected = math.erfc(abs(d.sum()) / math.sqrt(2 * np.sum(d * d)))
    assert U.sign_flip_test(d) == pytest.approx(expected) and U.sign_flip_test(d) < 0.05
    assert U.sign_flip_test(np.zeros(n)) == 1.0


def _values(offset, spread=0.01, seeds=3, categories=("a", "b")):
    """Constructed cell: base per category + offset + a fixed seed pattern scaled by ``spread``."""
    pattern = [-1.0, 0.0, 1.0, 0.5, -0.5][:seeds]
    base = {"a": 0.70, "b": 0.80}
    return {(c, s): base[c] + offset + spread * pattern[s] for c in categories for s in range(seeds)}


def test_identical_rows_are_not_separable():
    p, pairs = agg.paired_test(_values(0.0), _values(0.0))
    assert pairs == 6 and p == 1.0 and not agg.separable(p)


def test_rows_02_apart_with_spread_001_over_3_seeds_x_2_categories_are_separable():
    p, pairs = agg.paired_test(_values(0.2, spread=0.01), _values(0.0, spread=0.01))
    assert pairs == 6 and p == pytest.approx(2 / 64) and agg.separable(p)
    # without common (category, seed) pairs there is nothing to test
    other = {(c, s + 10): v for (c, s), v in _values(0.0).items()}
    p, pairs = agg.paired_test(_values(0.2), other)
    assert pairs == 0 and not agg.separable(p)


def test_cell_stats_counts_seeds_and_categories():
    values = {("a", 0): 0.5, ("a", 1): 0.7, ("b", 0): 0.9}
    cell = agg.cell_stats(values, scale=100.0)
    assert cell.mean == pytest.approx((60.0 + 90.0) / 2)
    assert (cell.categories, cell.seeds_min, cell.seeds_max, cell.values, cell.seeds_text) == (2, 1, 2, 3, "1–2")
    assert cell.low <= cell.mean <= cell.high
    assert agg.cell_stats({}) == agg.EMPTY_CELL


def test_pairs_and_seeds_needed_follow_the_formula():
    d = [0.01, 0.03] * 3  # mean 0.02, sd 0.01095
    z = U._z(0.975) + U._z(0.8)
    assert U._z(0.975) == pytest.approx(1.959964, abs=1e-5) and U._z(0.8) == pytest.approx(0.841621, abs=1e-5)
    assert U.pairs_needed(d) == max(6, math.ceil((z * np.std(d, ddof=1) / 0.02) ** 2))
    noisy = [0.05, -0.03] * 3  # mean 0.01, sd 0.0438: (2.8 * 4.38)^2 = 150.6 -> 151 pairs
    assert U.pairs_needed(noisy) == math.ceil((z * np.std(noisy, ddof=1) / 0.01) ** 2) == 151
    assert U.seeds_needed(noisy, n_categories=2) == 76
    assert U.pairs_needed([0.0, 0.0, 0.0]) == math.inf  # identical rows: no number of seeds helps
    assert math.isnan(U.pairs_needed([0.1]))
