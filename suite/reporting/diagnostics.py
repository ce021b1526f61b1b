"""Tables of the record-version-2 fields: the same models under every scoring variant
(``record.scorings``) and the per-depth signal of the recursion (``record.diagnostics``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from suite import aggregate as agg
from suite.reporting.footer import footer_text, uncertainty_text
from suite.reporting.table import MISSING, Table, fmt, fmt_interval, label_order, natural_key, pct

SCORING_METRICS = ("i_auroc", "p_auroc", "aupro")
DEPTH_METRICS = ("i_auroc", "p_auroc")
PER_DEPTH_MAX_TABLES = 6  # more (configuration, category) pairs than this: one table per configuration
CRD_ROW = "CRD (all steps)"


def long_stats(frame: pd.DataFrame, columns: Mapping[str, Mapping[str, str]], by: Sequence[str]) -> pd.DataFrame:
    """Seed-aware means of many columns in long form: one row per ``by`` group and column ids.

    ``columns`` maps a frame column to its ids (e.g. ``{"variant": "auto|pixel", "metric": ...}``).
    value = mean over the group's categories of the seed-averaged column; std = sample std
    (ddof=1) over seeds of each seed's mean over those categories (NaN for one seed); low, high =
    its 95 % hierarchical bootstrap interval (``agg.cell_stats``); seeds and categories count what
    entered, values the (category, seed) pairs. With ``category`` in ``by`` the value is the plain
    seed mean.
    """
    by = list(by)
    ids = list(next(iter(columns.values()))) if columns else []
    out_cols = [*by, *ids, "value", "std", "low", "high", "seeds", "categories", "values"]
    keep = [c for c in columns if c in frame]
    if frame.empty or not keep:
        return pd.DataFrame(columns=out_cols)
    base = list(dict.fromkeys([*by, "category", "seed"]))
    long = frame[base + keep].melt(id_vars=base, value_vars=keep, var_name="_column", value_name="_x")
    long["_x"] = pd.to_numeric(long["_x"], errors="coerce")
    long = long.dropna(subset=["_x"])
    if long.empty:
        return pd.DataFrame(columns=out_cols)
    for name in ids:
        long[name] = long["_column"].map(lambda c, n=name: columns[c][n])
    keys = [*by, *ids]
    per_cat = long.groupby([*keys, "category"], sort=False)["_x"].mean()
    per_seed = long.groupby([*keys, "seed"], sort=False)["_x"].mean()
    out = pd.DataFrame(
        {
            "value": per_cat.groupby(level=keys, sort=False).mean(),
            "categories": per_cat.groupby(level=keys, sort=False).size(),
            "std": per_seed.groupby(level=keys, sort=False).std(ddof=1),
            "seeds": per_seed.groupby(level=keys, sort=False).size(),
        }
    )
    pairs = long.groupby([*keys, "category", "seed"], sort=False)["_x"].mean()
    cells = {}
    for key, sub in pairs.groupby(level=keys, sort=False):
        cell = agg.cell_stats({(str(idx[-2]), idx[-1]): float(v) for idx, v in sub.items()})
        cells[key] = (cell.low, cell.high, cell.values)
    out["low"], out["high"], out["values"] = (
        [cells[k][i] for k in out.index] for i in range(3)
    )
    return out.reset_index()[out_cols]


def _cell(stats: pd.DataFrame, **ids: str) -> str:
    """The value of the one row of ``stats`` matching ``ids`` in % with its interval (when ≥ 2 values
    entered), or MISSING."""
    mask = np.ones(len(stats), dtype=bool)
    for key, value in ids.items():
        mask &= (stats[key] == value).to_numpy()
    if not mask.any():
        return MISSING
    row = stats[mask].iloc[0]
    interval = fmt_interval(pct(row["low"]), pct(row["high"])) if row["values"] >= 2 else ""
    return fmt(pct(row["value"])) + interval


def scoring_stats(frame: pd.DataFrame, split: str = "test", metrics: Sequence[str] = SCORING_METRICS) -> pd.DataFrame:
    """``record.scorings`` in long form per (dataset, label, variant, metric); see ``long_stats``."""
    ok = agg.ok_records(frame)
    columns = {
        col: {"variant": variant, "metric": metric}
        for col, variant, _, metric in agg.scoring_columns(ok, split)
        if metric in metrics
    }
    return long_stats(ok, columns, by=("dataset", "label"))


def scoring_tables(frame: pd.DataFrame, split: str = "test", metrics: Sequence[str] = SCORING_METRICS) -> list[Table]:
    """One table per dataset: rows = configurations, columns = scoring variants of the same model.

    Cells: ``metric1 / metric2 / ...`` of ``scoring.<variant>.<split>.*`` in % (``long_stats``:
    mean over categories of seed means [95 % interval]); bold = best variant
    per row and metric. Records without ``scorings`` (older records, baselines) do not appear.
    """
    stats = scoring_stats(frame, split, metrics)
    tables: list[Table] = []
    if stats.empty:
        return tables
    ok = agg.ok_records(frame)
    for dataset in sorted(set(stats["dataset"]), key=agg.dataset_sort_key):
        dstats = stats[stats["dataset"] == dataset]
        dok = ok[(ok["dataset"] == dataset) & ok["label"].isin(set(dstats["label"]))]
        present = [m for m in metrics if (dstats["metric"] == m).any()]
        variants = sorted(set(dstats["variant"]), key=natural_key)
        rows = []
        for label in label_order(dok):
            configured = (
                sorted({str(v) for v in dok.loc[dok["label"] == label, "info.scoring"].dropna()})
                if "info.scoring" in dok else []
            )
            cells = [label, ", ".join(configured) or MISSING]
            lstats = dstats[dstats["label"] == label]
            best = {
                m: lstats.loc[lstats["metric"] == m, "value"].map(lambda v: round(pct(v), 1)).max() for m in present
            }
            for variant in variants:
                parts = []
                for m in present:
                    text = _cell(lstats, variant=variant, metric=m)
                    value = lstats.loc[(lstats["variant"] == variant) & (lstats["metric"] == m), "value"]
                    if len(variants) > 1 and len(value) and round(pct(value.iloc[0]), 1) == best[m]:
                        text = f"**{text}**"
                    parts.append(text)
                cells.append(" / ".join(parts))
            rows.append(cells)
        metric_text = " / ".join(agg.METRIC_NAMES.get(m, m) for m in present)
        tables.append(
            Table(
                name=f"scorings_{dataset}",
                title=f"{agg.DATASET_NAMES.get(dataset, dataset)}: scoring variants, {split} {metric_text} (%)",
                header=["Configuration", "Configured", *variants],
                rows=rows,
                notes=[
                    f"Cells: {metric_text} in % on the {split} split of the same trained model scored as "
                    "`anomaly_map|standardize`; mean over categories of seed means [95 % interval, where ≥ 2 "
                    "(category, seed) values entered]; bold: best variant per row and metric.",
                    "Configured: the variant in the records' metrics (record info.scoring), i.e. the one every "
                    "other table uses.",
                    f"Picking a variant by these {split} numbers is selection on the {split} split.",
                ],
                footer=footer_text(dok) + " " + uncertainty_text(test=False),
                numeric=dstats.reset_index(drop=True),
            )
        )
    return tables


def per_depth_stats(
    frame: pd.DataFrame, split: str = "test", per_category: bool | None = None
) -> tuple[pd.DataFrame, bool]:
    """``record.diagnostics`` of ``split`` in long form, and whether it is per category.

    Rows: dataset, label, category, family, step, metric, value, std, seeds, categories (see
    ``long_stats``). Per category (value = mean over seeds) when ``per_category`` is True, or when
    None and at most ``PER_DEPTH_MAX_TABLES`` (label, category) pairs carry diagnostics; else per
    configuration with category ``"mean"`` (value = mean over categories of seed means).
    """
    ok = agg.ok_records(frame)
    columns = {
        col: {"family": family, "step": step, "metric": metric}
        for col, _, family, step, metric in agg.diagnostic_columns(ok, split)
        if metric in DEPTH_METRICS
    }
    if per_category is None:
        has = ok[list(columns)].notna().any(axis=1) if columns else pd.Series(False, index=ok.index)
        per_category = len(ok.loc[has, ["dataset", "label", "category"]].drop_duplicates()) <= PER_DEPTH_MAX_TABLES
    by = ("dataset", "label", "category") if per_category else ("dataset", "label")
    stats = long_stats(ok, columns, by=by)
    if not per_category:
        stats.insert(2, "category", "mean")
    return stats, per_category


def per_depth_groups(stats: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(dataset, label, category) of ``per_depth_stats`` in report order."""
    groups = stats[["dataset", "label", "category"]].drop_duplicates()
    order = {lb: i for i, lb in enumerate(sorted(set(groups["label"]), key=natural_key))}
    return sorted(
        ((str(d), str(lb), str(c)) for d, lb, c in groups.itertuples(index=False)),
        key=lambda g: (agg.dataset_sort_key(g[0]), order[g[1]], agg.category_sort_key(g[0], g[2])),
    )


def per_depth_tables(frame: pd.DataFrame, split: str = "test", per_category: bool | None = None) -> list[Table]:
    """Rows = recursion steps 1..N and a CRD row; columns = recon / detail I-AUROC and P-AUROC (%).

    One table per (configuration, category), or per configuration averaged over categories (see
    ``per_depth_stats``). recon = the map |I - I_R^n|, detail = |I - I_D^n|, each scored alone;
    the CRD row (under the detail columns: CRD reads every step's I_D^n) is the CRD map.
    """
    stats, per_category = per_depth_stats(frame, split, per_category)
    tables: list[Table] = []
    ok = agg.ok_records(frame)
    families = [("recon", "Recon"), ("detail", "Detail")]
    header = ["Step", *(f"{name} {agg.METRIC_NAMES[m]}" for _, name in families for m in DEPTH_METRICS)]
    for i, (dataset, label, category) in enumerate(per_depth_groups(stats)):
        g = stats[(stats["dataset"] == dataset) & (stats["label"] == label) & (stats["category"] == category)]
        steps = sorted(set(g.loc[g["family"] != "crd", "step"]), key=agg.step_sort_key)
        rows = [
            [step, *(_cell(g, family=f, step=step, metric=m) for f, _ in families for m in DEPTH_METRICS)]
            for step in steps
        ]
        rule_before = set()
        if (g["family"] == "crd").any():
            rule_before.add(len(rows))
            crd = [_cell(g, family="crd", metric=m) for m in DEPTH_METRICS]
            rows.append([CRD_ROW, *([MISSING] * len(DEPTH_METRICS)), *crd])
        n_cat = int(g["categories"].max())
        where = category if per_category else f"mean over {n_cat} categor{'y' if n_cat == 1 else 'ies'}"
        used = ok[(ok["dataset"] == dataset) & (ok["label"] == label)]
        used = used[used["category"] == category] if per_category else used
        how = (
            "mean over seeds [95 % interval when ≥ 2 seeds]" if per_category
            else "mean over categories of seed means [95 % interval when ≥ 2 (category, seed) values]"
        )
        tables.append(
            Table(
                name=f"per_depth_{i}",
                title=f"{label}, {where} ({agg.DATASET_NAMES.get(dataset, dataset)}): per-depth {split} signal",
                header=header,
                rows=rows,
                notes=[
                    f"Each map scored alone on the {split} split, in %: recon = |I − I_R^n|, detail = |I − I_D^n| at "
                    f"recursion step n; {how}.",
                    f"{CRD_ROW}: the CRD map, under the detail columns (CRD reads the detail reconstructions of "
                    "every step).",
                ],
                footer=footer_text(used) + " " + uncertainty_text(test=False),
                numeric=g.reset_index(drop=True),
                rule_before=rule_before,
            )
        )
    return tables
