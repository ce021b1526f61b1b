"""A table cell's data and uncertainty: the values of one configuration per (category, seed), their
mean with a hierarchical bootstrap interval, and paired tests between two cells.

Two records of one configuration with the same (category, seed) are one seed: their values are
averaged first (``seed_values``), as ``seed_stats`` counts them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from suite.aggregate.uncertainty import (
    ALPHA,
    N_RESAMPLES,
    bootstrap_interval,
    cell_mean,
    paired_differences,
    sign_flip_test,
)

SeedValues = dict[tuple[str, int], float]  # (category, seed) -> value
BOOTSTRAP_SEED = 0  # one fixed seed: the same records always give the same report


@dataclass(frozen=True)
class CellStats:
    """Mean, 95 % interval and what the cell rests on: categories and seeds per category (min, max)."""

    mean: float
    low: float
    high: float
    categories: int
    seeds_min: int
    seeds_max: int
    values: int = 0  # (category, seed) values behind the mean

    @property
    def seeds_text(self) -> str:
        if self.seeds_min == self.seeds_max:
            return str(self.seeds_min)
        return f"{self.seeds_min}–{self.seeds_max}"


EMPTY_CELL = CellStats(math.nan, math.nan, math.nan, 0, 0, 0)


def seed_values(frame: pd.DataFrame, column: str, by: str = "label") -> dict[object, SeedValues]:
    """``{by value: {(category, seed): mean of column}}`` over the rows with a finite value."""
    if frame.empty or column not in frame:
        return {}
    values = pd.to_numeric(frame[column], errors="coerce")
    data = pd.DataFrame({"key": frame[by], "category": frame["category"].astype(str),
                         "seed": frame["seed"], "value": values})
    data = data[np.isfinite(data["value"].to_numpy(float))]
    means = data.groupby(["key", "category", "seed"], sort=False)["value"].mean()
    out: dict[object, SeedValues] = {}
    for (key, category, seed), value in means.items():
        out.setdefault(key, {})[(str(category), seed)] = float(value)
    return out


def seed_matrix(values: Mapping[tuple[str, int], float]) -> np.ndarray:
    """(categories x seeds) array of ``values`` (categories and seeds sorted), NaN where missing."""
    categories = sorted({c for c, _ in values})
    seeds = sorted({s for _, s in values}, key=str)
    out = np.full((len(categories), len(seeds)), math.nan)
    ci = {c: i for i, c in enumerate(categories)}
    si = {s: j for j, s in enumerate(seeds)}
    for (c, s), v in values.items():
        out[ci[c], si[s]] = v
    return out


def cell_stats(values: Mapping[tuple[str, int], float], n_resamples: int = N_RESAMPLES,
               scale: float = 1.0) -> CellStats:
    """``CellStats`` of one cell; ``scale`` multiplies mean and interval (100: percent)."""
    if not values:
        return EMPTY_CELL
    matrix = seed_matrix(values)
    low, high = bootstrap_interval(matrix, n_resamples, seed=BOOTSTRAP_SEED)
    per_cat = np.isfinite(matrix).sum(axis=1)
    return CellStats(cell_mean(matrix) * scale, low * scale, high * scale, int(len(per_cat)),
                     int(per_cat.min()), int(per_cat.max()), int(per_cat.sum()))


def paired_test(a: Mapping[tuple[str, int], float], b: Mapping[tuple[str, int], float]) -> tuple[float, int]:
    """(p, pairs): ``sign_flip_test`` of a − b over their common (category, seed) pairs."""
    d = paired_differences(dict(a), dict(b))
    return sign_flip_test(d, seed=BOOTSTRAP_SEED), int(d.size)


def separable(p: float, alpha: float = ALPHA) -> bool:
    """True when the paired test separates two cells (p < alpha); False when it cannot or has no pairs."""
    return not math.isnan(p) and p < alpha
