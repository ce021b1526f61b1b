"""Record-version-6 shift fields as frame columns, and the statistics the robustness and data-shift tables need.

Columns (``shift_row``, merged into ``record_row``):

- ``shift.<name>.<metric>``: test metrics of the trained model on the test set under shift ``name``
  (``record.shifts``, config ``eval.shifts``);
- ``data_shift.shifted`` (True / False; None without a check), ``data_shift.statistics`` (the
  statistics that fired, comma separated), and the headline statistic ``data_shift.statistic`` with
  its ``data_shift.outside`` (share of test images outside the train range) and ``data_shift.p``
  (Bonferroni-corrected KS p): the fired statistic with the largest share, or, when none fired, the
  one with the smallest p (``record.info.data_shift``);
- ``info.score_brightness_spearman``: rank correlation of image scores and image brightness.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from suite.aggregate.statistics import ok_records
from suite.aggregate.uncertainty import bootstrap_interval, cell_mean
from suite.config import SHIFT_NAMES

SHIFT_PREFIX = "shift."
DATA_SHIFT_PREFIX = "data_shift."
BRIGHTNESS_SPEARMAN = "info.score_brightness_spearman"


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def shift_column(shift: str, metric: str) -> str:
    return f"{SHIFT_PREFIX}{shift}.{metric}"


def headline_statistic(data_shift: dict[str, Any]) -> tuple[str | None, float, float]:
    """(statistic, share outside, corrected p) that best sums up a ``DataShiftResult.to_dict()``."""
    stats = {k: v for k, v in (data_shift.get("statistics") or {}).items() if isinstance(v, dict)}
    if not stats:
        return None, math.nan, math.nan
    fired = [k for k, v in stats.items() if v.get("shifted")]
    if fired:
        name = max(fired, key=lambda k: _number(stats[k].get("outside_share")))
    else:
        name = min(stats, key=lambda k: (_number(stats[k].get("p_corrected")), -_number(stats[k].get("outside_share"))))
    return name, _number(stats[name].get("outside_share")), _number(stats[name].get("p_corrected"))


def shift_row(record: Any) -> dict[str, Any]:
    """The shift columns of one ``TrialRecord`` (absent fields: no shift columns, None / NaN)."""
    row: dict[str, Any] = {}
    for shift, values in (record.shifts or {}).items():
        for metric, value in (values or {}).items():
            row[shift_column(shift, metric)] = _number(value)
    info = record.info or {}
    data_shift = info.get("data_shift")
    if isinstance(data_shift, dict) and "shifted" in data_shift:
        statistic, outside, p = headline_statistic(data_shift)
        row.update({
            "data_shift.shifted": bool(data_shift["shifted"]),
            "data_shift.statistics": ", ".join(data_shift.get("shifted_statistics") or []),
            "data_shift.statistic": statistic, "data_shift.outside": outside, "data_shift.p": p,
        })
    else:
        row.update({"data_shift.shifted": None, "data_shift.statistics": None, "data_shift.statistic": None,
                    "data_shift.outside": math.nan, "data_shift.p": math.nan})
    row[BRIGHTNESS_SPEARMAN] = _number(info.get("score_brightness_spearman"))
    return row


def shift_names(frame: pd.DataFrame, metric: str = "i_auroc") -> list[str]:
    """Shifts with a ``shift.<name>.<metric>`` column holding a value: the config's order, then by name."""
    found = {
        str(col)[len(SHIFT_PREFIX): -len(metric) - 1]
        for col in frame.columns
        if str(col).startswith(SHIFT_PREFIX) and str(col).endswith(f".{metric}")
        and pd.to_numeric(frame[col], errors="coerce").notna().any()
    }
    return [s for s in SHIFT_NAMES if s in found] + sorted(found - set(SHIFT_NAMES))


def _grid(group: pd.DataFrame, values: pd.Series) -> np.ndarray:
    """(categories x seeds) array of ``values`` (duplicates of a (category, seed) averaged; NaN where missing)."""
    table = (
        pd.DataFrame({"category": group["category"], "seed": group["seed"], "v": pd.to_numeric(values, "coerce")})
        .groupby(["category", "seed"])["v"].mean().unstack("seed")
    )
    return table.to_numpy(dtype=float) if not table.empty else np.full((0, 0), math.nan)


def _cell(values: np.ndarray, seed: int) -> tuple[float, float, float]:
    if values.size == 0:
        return math.nan, math.nan, math.nan
    low, high = bootstrap_interval(values, seed=seed)
    return cell_mean(values), low, high


def robustness_stats(frame: pd.DataFrame, metric: str = "i_auroc", seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    """One row per (dataset, configuration) of ok records with shift metrics: ``unshifted`` (test
    ``metric``), per shift ``<name>`` and ``<name>.drop`` (unshifted minus shifted, paired over
    (category, seed)), each with ``.low`` / ``.high`` (95 % bootstrap interval over categories and
    seeds), and ``worst`` / ``worst.drop``: the shift with the largest mean drop. Also the shifts."""
    ok = ok_records(frame)
    shifts = shift_names(ok, metric)
    base_col = f"test.{metric}"
    if not shifts or base_col not in ok:
        return pd.DataFrame(), shifts
    has = ok[[shift_column(s, metric) for s in shifts if shift_column(s, metric) in ok]].notna().any(axis=1)
    rows = []
    for (dataset, label), group in ok[has].groupby(["dataset", "label"], sort=False):
        row: dict[str, Any] = {"dataset": dataset, "label": label, "method": group["method"].iloc[0],
                               "categories": group["category"].nunique(), "records": len(group)}
        base = _grid(group, group[base_col])
        row["unshifted"], row["unshifted.low"], row["unshifted.high"] = _cell(base, seed)
        for shift in shifts:
            col = shift_column(shift, metric)
            shifted = _grid(group, group[col] if col in group else pd.Series(math.nan, index=group.index))
            row[shift], row[f"{shift}.low"], row[f"{shift}.high"] = _cell(shifted, seed)
            drop = base - shifted if base.shape == shifted.shape else np.full((0, 0), math.nan)
            row[f"{shift}.drop"], row[f"{shift}.drop.low"], row[f"{shift}.drop.high"] = _cell(drop, seed)
        drops = {s: row[f"{s}.drop"] for s in shifts if not math.isnan(row[f"{s}.drop"])}
        row["worst"] = max(drops, key=drops.get) if drops else None
        row["worst.drop"] = drops[row["worst"]] if drops else math.nan
        rows.append(row)
    return pd.DataFrame(rows), shifts


def data_shift_by_category(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, category) of ok records: ``checked`` / ``fired`` record counts, the
    headline (statistic, outside, p) of the most significant record (fired ones first) and the
    score-brightness Spearman's mean, min and max over records."""
    ok = ok_records(frame)
    if "data_shift.shifted" not in ok or ok.empty:
        return pd.DataFrame()
    rows = []
    for (dataset, category), group in ok.groupby(["dataset", "category"], sort=False):
        checked = group[group["data_shift.shifted"].notna()]
        rho = pd.to_numeric(group.get(BRIGHTNESS_SPEARMAN), errors="coerce").dropna()
        if checked.empty and rho.empty:
            continue
        row: dict[str, Any] = {"dataset": dataset, "category": category, "checked": len(checked),
                               "fired": int(checked["data_shift.shifted"].astype(bool).sum()),
                               "statistic": None, "statistics": "", "outside": math.nan, "p": math.nan}
        if not checked.empty:
            order = checked.assign(_f=~checked["data_shift.shifted"].astype(bool)).sort_values(["_f", "data_shift.p"])
            top = order.iloc[0]
            row.update({"statistic": top["data_shift.statistic"], "statistics": top["data_shift.statistics"] or "",
                        "outside": top["data_shift.outside"], "p": top["data_shift.p"]})
        for key, value in (("spearman", rho.mean()), ("spearman.min", rho.min()), ("spearman.max", rho.max())):
            row[key] = float(value) if len(rho) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)
