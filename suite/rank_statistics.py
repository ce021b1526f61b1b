"""Rank statistics in numpy: average ranks, Spearman's rho and the two-sample Kolmogorov-Smirnov test.

Every training runs the data-shift check (``suite.data.shift_check``), and importing
``scipy.stats`` for it (with ``scipy.ndimage``, now imported by AUPRO alone) cost each Ray worker
and CLI subprocess about 0.9 CPU-seconds: ``import suite.pipeline`` took 2.7 CPU-seconds before and
1.8 after (2026-12-07, compiled bytecode). These three functions are what the check needs; the tests
compare them with scipy and with brute-force references.
"""

from __future__ import annotations

import math

import numpy as np

# Above this many pooled values the KS p-value comes from Kolmogorov's limit distribution; below it the
# exact lattice-path count runs in well under a second.
KS_EXACT_MAX_N = 20000


def average_ranks(values) -> np.ndarray:
    """Ranks 1..n of ``values`` (1-D), tied values sharing the mean of the ranks they span
    (scipy ``rankdata(method="average")``)."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    order = np.argsort(x, kind="mergesort")
    _, first, counts = np.unique(x[order], return_index=True, return_counts=True)
    # a tie group occupying sorted positions first .. first + count - 1 gets rank first + (count + 1) / 2
    group_rank = first + (counts + 1) / 2.0
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(group_rank, counts)
    return ranks


def spearman(x, y) -> float:
    """Spearman's rho: the Pearson correlation of ``average_ranks(x)`` and ``average_ranks(y)``,
    ``sum((r_x - mean r_x)(r_y - mean r_y)) / sqrt(sum (r_x - mean r_x)^2 * sum (r_y - mean r_y)^2)``.
    NaN when either side is constant or shorter than 2."""
    rx, ry = average_ranks(x), average_ranks(y)
    if rx.shape != ry.shape:
        raise ValueError(f"spearman needs equal lengths, got {rx.size} and {ry.size}")
    if rx.size < 2:
        return math.nan
    dx, dy = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy) / denominator if denominator > 0 else math.nan


def _largest_gap(a: np.ndarray, b: np.ndarray) -> int:
    """``max_t |c_a(t) n_b - c_b(t) n_a|`` over the pooled values t, c = how many values are <= t:
    the KS statistic times ``n_a n_b``, as an integer (so ties and comparisons are exact)."""
    pooled = np.unique(np.concatenate([a, b]))
    count_a = np.searchsorted(np.sort(a), pooled, side="right").astype(np.int64)
    count_b = np.searchsorted(np.sort(b), pooled, side="right").astype(np.int64)
    return int(np.max(np.abs(count_a * len(b) - count_b * len(a))))


def _probability_inside(n_a: int, n_b: int, gap: int) -> float:
    """Probability that a uniformly random monotone lattice path from (0, 0) to (n_a, n_b) keeps
    ``|i n_b - j n_a| < gap`` at every point (i, j).

    ``u(i, j)``, the probability for a path ending at (i, j), obeys
    ``u(i, j) = i / (i + j) u(i - 1, j) + j / (i + j) u(i, j - 1)`` inside and 0 outside (the last
    step of a random path to (i, j) is an a-step with probability i / (i + j)); computed one
    anti-diagonal ``i + j = k`` at a time, every value stays in [0, 1]."""
    i = np.arange(n_a + 1, dtype=np.int64)
    u = np.zeros(n_a + 1)
    u[0] = 1.0
    for k in range(1, n_a + n_b + 1):
        j = k - i
        from_a = np.concatenate(([0.0], u[:-1]))  # u(i - 1, j), i.e. diagonal k - 1 at index i - 1
        new = (i * from_a + np.clip(j, 0, None) * u) / k  # u(i, j - 1) is diagonal k - 1 at index i
        inside = (j >= 0) & (j <= n_b) & (np.abs(i * n_b - j * n_a) < gap)
        u = np.where(inside, new, 0.0)
    return float(u[n_a])


def _kolmogorov_survival(lam: float) -> float:
    """``Q(lam) = 2 sum_{k>=1} (-1)^(k-1) exp(-2 k^2 lam^2)``, the limit of ``P(sqrt(n_e) D > lam)``."""
    if lam < 0.2:
        return 1.0
    total = sum((-1) ** (k - 1) * math.exp(-2.0 * k * k * lam * lam) for k in range(1, 101))
    return min(1.0, max(0.0, 2.0 * total))


def ks_two_sample(a, b) -> tuple[float, float]:
    """Two-sided two-sample Kolmogorov-Smirnov test: ``(D, p)``.

    ``D = max_t |F_a(t) - F_b(t)|`` over all values t, with ``F`` the empirical distribution
    functions. ``p = P(D' >= D)`` under the null hypothesis that both samples come from one
    continuous distribution: every interleaving of the pooled sample is then equally likely, i.e.
    a uniformly random lattice path to (n_a, n_b), and ``p = 1 - P(|i n_b - j n_a| < D n_a n_b at
    every point)`` (``_probability_inside``). That is scipy's ``ks_2samp(a, b)`` with its exact
    method; above ``KS_EXACT_MAX_N`` pooled values ``p = Q(sqrt(n_a n_b / (n_a + n_b)) D)`` from
    Kolmogorov's limit distribution. ``p`` below about 1e-15 reads 0 (one minus a probability).
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.size == 0 or b.size == 0:
        raise ValueError(f"the KS test needs two non-empty samples, got {a.size} and {b.size} values")
    n_a, n_b = a.size, b.size
    gap = _largest_gap(a, b)
    statistic = gap / (n_a * n_b)
    if gap == 0:
        return 0.0, 1.0
    if n_a + n_b > KS_EXACT_MAX_N:
        return statistic, _kolmogorov_survival(math.sqrt(n_a * n_b / (n_a + n_b)) * statistic)
    return statistic, min(1.0, max(0.0, 1.0 - _probability_inside(n_a, n_b, gap)))
