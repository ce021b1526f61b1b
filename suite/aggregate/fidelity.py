"""Selection fidelity: does the validation split rank configurations as the test split does?"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from suite.aggregate.names import FIDELITY_MIN_CONFIGURATIONS, FIDELITY_WARN_BELOW, METRIC_NAMES, SATURATION_THRESHOLD
from suite.aggregate.statistics import ok_records, seed_stats


def _rank_correlations(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(Spearman rho, Kendall tau-b) of x and y with scipy.stats; NaN when either is constant."""
    if len(x) < 2 or np.unique(x).size < 2 or np.unique(y).size < 2:
        return math.nan, math.nan
    from scipy import stats  # only here: importing aggregate stays light

    return float(stats.spearmanr(x, y).statistic), float(stats.kendalltau(x, y).statistic)


def configuration_means(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Per configuration (``label``): mean over its (dataset, category) pairs of seed-averaged ``columns``.

    ``value[label] = mean_c ( mean_seeds record[column] )``, pairs lacking any of ``columns``
    dropped first, so every column of a configuration is averaged over the same categories.
    Columns: label, categories, and each of ``columns``.
    """
    columns = list(columns)
    data = frame.assign(**{c: pd.to_numeric(frame[c], errors="coerce") for c in columns})
    per_cat = seed_stats(data, columns, by=("label", "dataset", "category")).dropna(subset=columns)
    if per_cat.empty:
        return pd.DataFrame(columns=["label", "categories", *columns])
    grouped = per_cat.groupby("label", sort=True)
    out = grouped[columns].mean()
    out.insert(0, "categories", grouped.size())
    return out.reset_index()


def selection_fidelity(
    frame: pd.DataFrame, metric: str = "i_auroc", threshold: float = SATURATION_THRESHOLD
) -> dict[str, Any]:
    """How well ``val.<metric>`` ranks configurations against ``test.<metric>``.

    Over ok records selected on val that have both values, configurations (``label``: the config
    minus ``NON_CONFIG_KEYS``, so seeds and categories pool) get ``v_k``, ``t_k`` from
    ``configuration_means``. Then over the K configurations:
    ``spearman`` = Pearson correlation of the average ranks of v and t (scipy ``spearmanr``),
    ``kendall`` = Kendall tau-b (scipy ``kendalltau``), both NaN when K < 3 or a side is constant;
    ``saturation`` = #{k : v_k >= threshold} / K. Records selected on test and records without
    ``val.<metric>`` (or ``test.<metric>``) are skipped and counted.
    """
    val_col, test_col = f"val.{metric}", f"test.{metric}"
    ok = ok_records(frame)
    n_test_sel = int((ok["selection"] == "test").sum()) if "selection" in ok else 0
    if "selection" in ok:
        ok = ok[ok["selection"] != "test"]
    val = pd.to_numeric(ok[val_col], errors="coerce") if val_col in ok else pd.Series(np.nan, index=ok.index)
    test = pd.to_numeric(ok[test_col], errors="coerce") if test_col in ok else pd.Series(np.nan, index=ok.index)
    usable = ok[val.notna() & test.notna()]
    means = configuration_means(usable, [val_col, test_col]) if not usable.empty else pd.DataFrame()
    k = len(means)
    v = means[val_col].to_numpy(float) if k else np.array([])
    t = means[test_col].to_numpy(float) if k else np.array([])
    enough = k >= FIDELITY_MIN_CONFIGURATIONS
    rho, tau = _rank_correlations(v, t) if enough else (math.nan, math.nan)
    return {
        "metric": metric,
        "n_configurations": k,
        "enough": enough,
        "spearman": rho,
        "kendall": tau,
        "saturation": float(np.mean(v >= threshold)) if k else math.nan,
        "threshold": threshold,
        "skipped_test_selected": n_test_sel,
        "skipped_no_val": int(val.isna().sum()),
        "skipped_no_test": int((val.notna() & test.isna()).sum()),
    }


def fidelity_lines(result: Mapping[str, Any]) -> list[str]:
    """Plain-text verdict of one ``selection_fidelity`` result: the numbers, skip notes, warnings."""
    name = METRIC_NAMES.get(result["metric"], result["metric"])
    k, rho, tau, sat = result["n_configurations"], result["spearman"], result["kendall"], result["saturation"]
    head = f"Selection fidelity (val vs test {name}"
    if not result["enough"]:
        lines = [f"{head}): not enough configurations ({k}; at least {FIDELITY_MIN_CONFIGURATIONS} needed)."]
    else:
        lines = [
            f"{head}, {k} configurations): Spearman {rho:.2f}, Kendall {tau:.2f}; "
            f"validation saturation {sat:.0%} (val {name} >= {result['threshold']:g})."
        ]
    skipped = [
        f"{n} {what}"
        for n, what in (
            (result["skipped_test_selected"], "selected on the test split"),
            (result["skipped_no_val"], "without a validation value"),
            (result["skipped_no_test"], "without a test value"),
        )
        if n
    ]
    if skipped:
        lines.append(f"{head}): skipped ok records: {', '.join(skipped)}.")
    if result["enough"] and (math.isnan(rho) or math.isnan(tau)):
        lines.append(f"Warning: validation does not rank configurations ({name} constant on val or test).")
    elif result["enough"] and min(rho, tau) < FIDELITY_WARN_BELOW:
        lines.append(
            f"Warning: validation ranks configurations poorly against test (Spearman {rho:.2f}, Kendall {tau:.2f} "
            f"< {FIDELITY_WARN_BELOW:g}); the selected configuration may not be the best on test."
        )
    if k and sat > 0.5:
        lines.append(
            f"Warning: validation saturates: {sat:.0%} of configurations ({round(sat * k)} of {k}) reach val {name} "
            f">= {result['threshold']:g}, where it cannot tell them apart."
        )
    return lines


def fidelity_summary(frame: pd.DataFrame, metrics: Sequence[str] = ("i_auroc", "p_auroc")) -> list[str]:
    """``fidelity_lines`` of ``selection_fidelity`` for each metric: what a sweep prints at its end."""
    return [line for metric in metrics for line in fidelity_lines(selection_fidelity(frame, metric))]
