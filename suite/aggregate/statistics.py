"""Means over seeds, Pareto fronts, rank correlations, parameter importance, status counts and
missing results."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from suite.aggregate.labels import category_sort_key, varying_keys
from suite.aggregate.names import SPLITS, STATUSES


def ok_records(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with ``status == ok``: the only ones that enter means (failed ones are listed instead)."""
    return frame[frame["status"] == "ok"] if "status" in frame else frame


def seed_stats(
    frame: pd.DataFrame, columns: Sequence[str], by: Sequence[str] = ("label", "dataset", "category")
) -> pd.DataFrame:
    """Mean, sample std (ddof=1; NaN for a single record) and count of ``columns`` per group.

    Output columns: the ``by`` keys, ``n`` (records in the group), ``seeds`` (distinct seed values
    among them: two records of one (configuration, seed) are one seed, not two), ``<col>`` (mean)
    and ``<col>.std``. NaNs are skipped, so a metric missing in one seed does not hide the others.
    """
    by = list(by)
    columns = [c for c in columns if c in frame.columns]
    if frame.empty:
        return pd.DataFrame(columns=[*by, "n", "seeds", *columns, *(f"{c}.std" for c in columns)])
    grouped = frame.groupby(by, sort=False, dropna=False)
    out = grouped.size().rename("n").to_frame()
    out["seeds"] = grouped["seed"].nunique(dropna=False) if "seed" in frame.columns else out["n"]
    for col in columns:
        values = pd.to_numeric(frame[col], errors="coerce")
        g = values.groupby([frame[b] for b in by], sort=False, dropna=False)
        out[col] = g.mean()
        out[f"{col}.std"] = g.std(ddof=1)
    return out.reset_index()


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``points`` (n, d), every column to be maximised.

    Row q dominates row p when q >= p in every column and q > p in at least one. Identical rows do
    not dominate each other, so duplicates on the front are all kept. Rows with a NaN are never on
    the front.
    """
    points = np.asarray(points, dtype=float)
    if points.ndim != 2:
        raise ValueError(f"pareto_mask expects an (n, d) array, got shape {points.shape}")
    n = points.shape[0]
    valid = ~np.isnan(points).any(axis=1)
    mask = valid.copy()
    for i in range(n):
        if not valid[i]:
            continue
        others = points[valid]
        dominated = np.any(np.all(others >= points[i], axis=1) & np.any(others > points[i], axis=1))
        mask[i] = not dominated
    return mask


def pareto_front(
    points: pd.DataFrame | Sequence[Mapping[str, Any]],
    maximize: Sequence[str] = (),
    minimize: Sequence[str] = (),
) -> pd.DataFrame | list[Mapping[str, Any]]:
    """The non-dominated subset of ``points`` (same type, original order), see ``pareto_mask``."""
    objectives = [*maximize, *minimize]
    if not objectives:
        raise ValueError("pareto_front needs at least one objective in maximize or minimize")
    if isinstance(points, pd.DataFrame):
        missing = [c for c in objectives if c not in points.columns]
        if missing:
            raise KeyError(f"pareto_front: columns {missing} not in the frame")
        table = points
    else:
        points = list(points)
        for i, p in enumerate(points):
            missing = [c for c in objectives if c not in p]
            if missing:
                raise KeyError(f"pareto_front: point {i} lacks {missing}")
        table = pd.DataFrame([{c: p[c] for c in objectives} for p in points])
    if len(table) == 0:
        return points.iloc[0:0] if isinstance(points, pd.DataFrame) else []
    oriented = np.column_stack(
        [pd.to_numeric(table[c], errors="coerce").to_numpy(float) for c in maximize]
        + [-pd.to_numeric(table[c], errors="coerce").to_numpy(float) for c in minimize]
    )
    mask = pareto_mask(oriented)
    if isinstance(points, pd.DataFrame):
        return points[mask]
    return [p for p, keep in zip(points, mask) if keep]


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks); NaN when undefined."""
    xs = pd.Series(np.asarray(x, dtype=float))
    ys = pd.Series(np.asarray(y, dtype=float))
    keep = xs.notna() & ys.notna()
    xs, ys = xs[keep], ys[keep]
    if len(xs) < 3 or xs.nunique() < 2 or ys.nunique() < 2:
        return math.nan
    return float(xs.rank().corr(ys.rank()))


def numeric_config_value(value: Any) -> float:
    """Bools as 0/1, numbers as floats, lists by their length (e.g. number of CRD steps), else NaN."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (tuple, list)):
        return float(len(value))
    return math.nan


def parameter_importance(frame: pd.DataFrame, objective: str) -> pd.DataFrame:
    """|Spearman rho| between each varied numeric config key and ``objective`` over ok records.

    The objective is centred per (dataset, category) first, so the easy-vs-hard category effect
    does not masquerade as an effect of whichever key happens to be tied to categories.
    Columns: key, abs_spearman, spearman, n, distinct.
    """
    ok = ok_records(frame)
    rows = []
    if ok.empty or objective not in ok.columns:
        return pd.DataFrame(columns=["key", "abs_spearman", "spearman", "n", "distinct"])
    target = pd.to_numeric(ok[objective], errors="coerce")
    centred = target - target.groupby([ok["dataset"], ok["category"]]).transform("mean")
    for key in varying_keys(ok):
        values = ok[f"config.{key}"].map(numeric_config_value)
        if values.isna().all() or values.nunique() < 2:
            continue
        rho = spearman(values, centred)
        rows.append(
            {
                "key": key,
                "abs_spearman": abs(rho) if not math.isnan(rho) else math.nan,
                "spearman": rho,
                "n": int((values.notna() & centred.notna()).sum()),
                "distinct": int(values.nunique()),
            }
        )
    out = pd.DataFrame(rows, columns=["key", "abs_spearman", "spearman", "n", "distinct"])
    return out.sort_values("abs_spearman", ascending=False, na_position="last").reset_index(drop=True)


def status_counts(frame: pd.DataFrame) -> dict[str, int]:
    counts = Counter(frame["status"]) if "status" in frame else Counter()
    out = {s: int(counts.get(s, 0)) for s in STATUSES}
    for s, n in counts.items():
        out.setdefault(str(s), int(n))
    return out


def missing_pairs(frame: pd.DataFrame) -> list[tuple[str, str, str, str]]:
    """(label, dataset, category, reason) for configurations lacking an ok record on a category.

    A configuration is expected on every category of its dataset that any configuration of the
    loaded records covers; a pair with only failed/stopped records is reported with that status.
    """
    out: list[tuple[str, str, str, str]] = []
    if frame.empty:
        return out
    for dataset, dgroup in frame.groupby("dataset", sort=False):
        categories = sorted(set(dgroup["category"]), key=lambda c: category_sort_key(str(dataset), str(c)))
        for label, lgroup in dgroup.groupby("label", sort=True):
            for category in categories:
                cgroup = lgroup[lgroup["category"] == category]
                if (cgroup["status"] == "ok").any():
                    continue
                reason = "no record" if cgroup.empty else "only " + "/".join(sorted(set(cgroup["status"])))
                out.append((str(label), str(dataset), str(category), reason))
    return out


def selection_column(frame: pd.DataFrame, select_on: str, metric: str = "i_auroc") -> tuple[str, str]:
    """Column used to select configurations: ``<select_on>.<metric>``, or test when that is empty.

    Returns (column, note); the note is non-empty when selection uses the test split (asked for, or
    because the requested split had no values), so reports can say so.
    """
    if select_on not in SPLITS:
        raise ValueError(f"select_on must be one of {SPLITS}, got {select_on!r}")
    col = f"{select_on}.{metric}"
    ok = ok_records(frame)
    if col in ok.columns and pd.to_numeric(ok[col], errors="coerce").notna().any():
        return col, ("configurations selected on the TEST split: optimistic" if select_on == "test" else "")
    fallback = f"test.{metric}"
    return fallback, f"no `{col}` values in the records; selection fell back to `{fallback}` (test split)"
