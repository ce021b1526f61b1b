"""Uncertainty of the tables' means: a hierarchical bootstrap interval, a paired sign-flip
permutation test and the number of seeds a difference needs. Pure numpy; every random draw comes
from a ``numpy.random.Generator`` seeded by the caller, so a report is reproducible.

The data of one table cell is a (categories x seeds) array ``values`` with NaN where a seed is
missing on a category. Its point estimate is ``mean_c ( mean_s values[c, s] )`` (seeds averaged
within a category first, then categories: every category weighs the same).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

ALPHA = 0.05
CONFIDENCE = 0.95
N_RESAMPLES = 1000
EXACT_PAIRS = 16  # up to 2**16 sign vectors enumerated; more pairs: Monte Carlo sign flips
N_FLIPS = 10_000
NORMAL_PAIRS = 200  # above: the sign-flip distribution's normal limit (cheap; exact enough at that size)
POWER = 0.8
BOOTSTRAP_METHOD = (
    "95 % interval: percentile bootstrap, {n} resamples (seeded), hierarchical: categories resampled with "
    "replacement, then seeds with replacement within each drawn category; statistic = mean over categories of "
    "the seed mean"
)
TEST_METHOD = (
    "paired two-sided sign-flip permutation test on the differences over matching (category, seed) pairs "
    "(exact up to {exact} pairs, {flips} random sign vectors up to {normal}, its normal limit above), "
    "α = {alpha:g}; it needs ≥ 6 pairs to reach p < 0.05 (min p = 2/2^pairs)"
)


def cell_mean(values: np.ndarray) -> float:
    """``mean_c ( mean_s values[c, s] )`` over the categories with at least one finite value."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"cell_mean expects a (categories, seeds) array, got shape {values.shape}")
    keep = np.isfinite(values).any(axis=1)
    if not keep.any():
        return math.nan
    return float(np.mean(np.nanmean(values[keep], axis=1)))


def _compact(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows with a finite value, each row's finite values moved to its front; (array, counts)."""
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    rows = finite.any(axis=1)
    values, finite = values[rows], finite[rows]
    order = np.argsort(~finite, axis=1, kind="stable")  # finite entries first, in their order
    return np.take_along_axis(values, order, axis=1), finite.sum(axis=1)


def bootstrap_means(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``n_resamples`` hierarchical bootstrap replicates of ``cell_mean(values)``.

    Replicate b: draw C categories c_1..c_C with replacement from the C categories that have values;
    for each drawn c_j draw k_j seeds with replacement from its k_j finite values; replicate =
    mean_j ( mean of the drawn seeds of c_j ). Vectorised over replicates: (B, C, S_max) indices.
    """
    packed, counts = _compact(values)
    n_cat = len(counts)
    if n_cat == 0:
        return np.full(n_resamples, math.nan)
    cats = rng.integers(0, n_cat, size=(n_resamples, n_cat))
    k = counts[cats]  # (B, C) seeds of each drawn category
    s_max = int(counts.max())
    picks = np.floor(rng.random((n_resamples, n_cat, s_max)) * k[..., None]).astype(np.int64)
    drawn = packed[cats[..., None], picks]  # (B, C, S_max)
    used = np.arange(s_max)[None, None, :] < k[..., None]
    seed_means = np.where(used, drawn, 0.0).sum(axis=2) / k
    return seed_means.mean(axis=1)


def bootstrap_interval(
    values: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = 0, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """(low, high): the ``(1 ± confidence) / 2`` percentiles of ``bootstrap_means`` (NaN when empty).

    Constant values give a zero-width interval; one category with one seed too (nothing to resample).
    """
    reps = bootstrap_means(values, n_resamples, np.random.default_rng(seed))
    if np.isnan(reps).all():
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(reps, [tail, 100.0 - tail])
    return float(low), float(high)


def sign_flip_test(differences: Sequence[float], seed: int = 0, exact_pairs: int = EXACT_PAIRS,
                   n_flips: int = N_FLIPS) -> float:
    """Two-sided p-value of H0 "the paired differences d_1..d_n are symmetric about 0".

    Statistic T(s) = |sum_i s_i d_i| over sign vectors s in {-1, +1}^n; p = #{s : T(s) >= T(1)} / 2^n,
    enumerated exactly for n <= ``exact_pairs``; else (1 + #{draws with T >= T(1)}) / (1 + n_flips) over
    ``n_flips`` random sign vectors; above ``NORMAL_PAIRS`` pairs the limit of that distribution,
    sum_i s_i d_i ~ N(0, sum_i d_i^2): p = erfc(T(1) / sqrt(2 sum_i d_i^2)). All-zero differences give
    p = 1; with n pairs the smallest p is 2 / 2^n (both all-equal sign vectors), so n >= 6 is needed
    for p < 0.05. NaN when n = 0.
    """
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    n = d.size
    if n == 0:
        return math.nan
    observed = abs(d.sum())
    tol = 1e-12 * max(1.0, float(np.abs(d).sum()))  # equal sums must count as reaching the observed one
    if n <= exact_pairs:
        bits = (np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1
        signs = 1.0 - 2.0 * bits
        return float(np.mean(np.abs(signs @ d) >= observed - tol))
    if n > NORMAL_PAIRS:
        scale = math.sqrt(2.0 * float(np.sum(d * d)))
        return 1.0 if scale == 0.0 else float(math.erfc(observed / scale))
    rng = np.random.default_rng(seed)
    hits, block = 0, max(1, 2_000_000 // n)  # bounded memory for many pairs
    for start in range(0, n_flips, block):
        signs = 1.0 - 2.0 * rng.integers(0, 2, size=(min(block, n_flips - start), n))
        hits += int(np.sum(np.abs(signs @ d) >= observed - tol))
    return float((1 + hits) / (1 + n_flips))


def paired_differences(a: dict[tuple[str, int], float], b: dict[tuple[str, int], float]) -> np.ndarray:
    """``a[k] - b[k]`` over the keys (category, seed) both hold with finite values, in sorted key order."""
    keys = sorted(k for k in set(a) & set(b) if np.isfinite(a[k]) and np.isfinite(b[k]))
    return np.array([a[k] - b[k] for k in keys], dtype=float)


def _z(p: float) -> float:
    """Standard normal quantile (inverse CDF) by bisection on ``math.erf``: no scipy needed here."""
    low, high = -10.0, 10.0
    for _ in range(100):
        mid = (low + high) / 2.0
        if 0.5 * (1.0 + math.erf(mid / math.sqrt(2.0))) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


def pairs_needed(differences: Sequence[float], alpha: float = ALPHA, power: float = POWER) -> float:
    """Pairs a paired test needs to separate the observed mean difference at the observed spread.

    n = ceil( ((z_{1-alpha/2} + z_{power}) * sd / |mean|)^2 ), with mean and sd (ddof=1) of the
    differences (the normal-approximation power calculation of a paired test), and at least 6, the
    fewest pairs at which the sign-flip test can reach p < 0.05. ``inf`` when the mean difference
    is 0 (no number of pairs separates identical rows), NaN for fewer than 2 differences.
    """
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    if d.size < 2:
        return math.nan
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if mean == 0.0:
        return math.inf
    n = math.ceil(((_z(1.0 - alpha / 2.0) + _z(power)) * sd / abs(mean)) ** 2)
    return float(max(n, min_pairs(alpha)))


def min_pairs(alpha: float = ALPHA) -> int:
    """Fewest pairs at which the exact sign-flip test can give p < alpha: min n with 2 / 2^n < alpha."""
    n = 1
    while 2.0 / 2 ** n >= alpha:
        n += 1
    return n


def seeds_needed(differences: Sequence[float], n_categories: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """Seeds per row so that seeds x ``n_categories`` pairs reach ``pairs_needed``: ceil(pairs / categories)."""
    pairs = pairs_needed(differences, alpha, power)
    if not math.isfinite(pairs) or n_categories < 1:
        return pairs
    return float(math.ceil(pairs / n_categories))
