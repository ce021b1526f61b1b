"""Per-category comparison: one table per dataset, categories as rows, configurations as columns,
with the published per-category numbers of the methods present as reference columns (the
``references`` of their ``MethodSpec`` in ``suite.methods.registry``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from suite import aggregate as agg
from suite.methods.registry import Reference, method_spec, method_specs
from suite.reporting.footer import footer_text, uncertainty_text
from suite.reporting.table import MISSING, TIE, Table, fmt, fmt_interval, is_nan, label_order

# ----------------------------------------------------------------------------------------------
# published numbers


def reference_keys(frame: pd.DataFrame) -> list[str]:
    """The registered references matching the methods in ``frame``, in registry order.

    A method with ``reference_by`` (a config key) contributes the references of the values its
    records have in ``config.<key>`` (e.g. one per backbone); records without that column none.
    """
    keys: list[str] = []
    methods = set(frame["method"]) if "method" in frame else set()
    for spec in method_specs():
        if spec.name not in methods:
            continue
        values: list[Any] = []
        column = f"config.{spec.reference_by}"
        if spec.reference_by is not None and column in frame:
            values = sorted({v for v in frame.loc[frame["method"] == spec.name, column].dropna()}, key=str)
        keys += spec.reference_keys(values)
    return keys


def references(frame: pd.DataFrame) -> list[tuple[str, Reference]]:
    """(key, reference) of ``reference_keys(frame)``."""
    out = []
    for key in reference_keys(frame):
        ref = method_spec(key.partition(":")[0]).reference(key)
        if ref is not None:
            out.append((key, ref))
    return out


# ----------------------------------------------------------------------------------------------
# per-category comparison

SEEDS_ROW = "Seeds × categories"


def _seeds_text(cell: agg.CellStats) -> str:
    return f"{cell.seeds_text} × {cell.categories}" if cell.categories else MISSING


def _ties_with_best(
    labels: Sequence[str], metrics: Sequence[str], means: dict[tuple[str, str], float],
    seed_vals: dict[str, dict[Any, agg.SeedValues]],
) -> dict[tuple[str, str], float]:
    """p of the paired test of each configuration against the best mean, per metric (best excluded)."""
    out: dict[tuple[str, str], float] = {}
    for metric in metrics:
        ranked = [lb for lb in labels if not is_nan(means[(lb, metric)])]
        if len(ranked) < 2:
            continue
        best = max(ranked, key=lambda lb: means[(lb, metric)])
        for label in ranked:
            if label != best:
                out[(label, metric)], _ = agg.paired_test(seed_vals[metric][label], seed_vals[metric][best])
    return out


def comparison_tables(
    frame: pd.DataFrame,
    metrics: Sequence[str] = ("i_auroc", "p_auroc"),
    split: str = "test",
    name: str = "comparison",
) -> list[Table]:
    """One table per dataset: rows = categories (standard order) + Mean, columns = configurations.

    Cells are ``metric1 / metric2 ...`` in % (seed mean [95 % interval]); the Mean row is the mean of
    the column's cells over the categories present, its interval a hierarchical bootstrap
    (``agg.cell_stats``), ``≈`` where the paired test cannot separate it from the best; a last row
    gives seeds x categories. Best configuration per row and metric in bold.
    Published per-category numbers of the methods present are added as reference columns (never
    bolded; their Mean is over the same rows, so it can differ from the paper's overall mean).
    """
    tables: list[Table] = []
    if frame.empty:
        return tables
    ok = agg.ok_records(frame)
    datasets = sorted({str(d) for d in frame["dataset"]}, key=agg.dataset_sort_key)
    columns = [f"{split}.{m}" for m in metrics]
    for dataset in datasets:
        dframe = frame[frame["dataset"] == dataset]
        dok = ok[ok["dataset"] == dataset]
        if dok.empty or not any(pd.to_numeric(dok.get(c), errors="coerce").notna().any() for c in columns if c in dok):
            continue
        labels = label_order(dok)
        categories = [c for _, c in agg.ordered_categories(dok)]
        refs = [(key, ref) for key, ref in references(dok) if dataset in ref.values and set(metrics) & set(ref.metrics)]

        # numeric cells: CellStats per (label, metric, category) and per (label, metric) over categories
        seed_vals = {m: agg.seed_values(dok, c) for m, c in zip(metrics, columns)}
        cell_values: dict[tuple[str, str, str], agg.CellStats] = {}
        stds: dict[tuple[str, str, str], float] = {}
        mean_cells: dict[tuple[str, str], agg.CellStats] = {}
        for label in labels:
            for metric in metrics:
                values = seed_vals[metric].get(label, {})
                for category in categories:
                    cat_values = {k: v for k, v in values.items() if k[0] == category}
                    cell_values[(label, metric, category)] = agg.cell_stats(cat_values, scale=100.0)
                    spread = np.array(list(cat_values.values())) * 100.0
                    stds[(label, metric, category)] = float(np.std(spread, ddof=1)) if spread.size > 1 else math.nan
                mean_cells[(label, metric)] = agg.cell_stats(values, scale=100.0)
        means = {key: cell.mean for key, cell in mean_cells.items()}
        tied = _ties_with_best(labels, metrics, means, seed_vals)
        numeric_rows = []
        ref_values: dict[tuple[str, str, str], float] = {}
        ref_means: dict[tuple[str, str], float] = {}  # apart from ``means``: a label may equal a key
        for key, ref in refs:
            for metric in metrics:
                vals = []
                for category in categories:
                    v = ref.values[dataset].get(category, {}).get(metric, math.nan)
                    ref_values[(key, metric, category)] = float(v)
                    if not is_nan(v):
                        vals.append(float(v))
                if vals:
                    ref_means[(key, metric)] = float(np.mean(vals))
                else:  # only the paper's own mean is known (no per-category numbers)
                    pub = ref.published_mean.get(dataset) or ref.values[dataset].get("mean", {})
                    ref_means[(key, metric)] = float(pub.get(metric, math.nan))

        header = ["Category", *labels, *(ref.name for _, ref in refs)]
        display_rows: list[list[str]] = []
        for category in [*categories, "Mean"]:
            best = {}
            for metric in metrics:
                if category == "Mean":
                    candidates = [round(means[(lb, metric)], 1) for lb in labels if not is_nan(means[(lb, metric)])]
                else:
                    candidates = [
                        round(cell_values[(lb, metric, category)].mean, 1)
                        for lb in labels
                        if not is_nan(cell_values[(lb, metric, category)].mean)
                    ]
                best[metric] = max(candidates) if len(candidates) > 1 else math.nan
            cells = [category if category != "Mean" else "**Mean**"]
            numeric: dict[str, Any] = {"dataset": dataset, "category": category}
            for label in labels:
                parts = []
                for metric in metrics:
                    if category == "Mean":
                        cell, std = mean_cells[(label, metric)], math.nan
                    else:
                        cell, std = cell_values[(label, metric, category)], stds[(label, metric, category)]
                    text = fmt(cell.mean)
                    if not is_nan(cell.mean) and round(cell.mean, 1) == best[metric]:
                        text = f"**{text}**"
                    text += fmt_interval(cell.low, cell.high) if cell.values >= 2 else ""
                    p = tied.get((label, metric), math.nan) if category == "Mean" else math.nan
                    if category == "Mean" and (label, metric) in tied and not agg.separable(p):
                        text += f" {TIE}"
                    parts.append(text)
                    numeric[f"{label} | {metric}"] = cell.mean
                    numeric[f"{label} | {metric} | std"] = std
                    numeric[f"{label} | {metric} | low"] = cell.low
                    numeric[f"{label} | {metric} | high"] = cell.high
                    numeric[f"{label} | {metric} | p_vs_best"] = p
                first = (mean_cells[(label, metrics[0])] if category == "Mean"
                         else cell_values[(label, metrics[0], category)])
                numeric[f"{label} | n"] = first.categories if category == "Mean" else first.seeds_max
                numeric[f"{label} | n | categories"] = first.categories
                numeric[f"{label} | n | seeds"] = first.seeds_text
                cells.append(" / ".join(parts))
            for key, _ in refs:
                parts = []
                for metric in metrics:
                    value = ref_means[(key, metric)] if category == "Mean" else ref_values[(key, metric, category)]
                    parts.append(fmt(value))
                    numeric[f"paper:{key} | {metric}"] = value
                cells.append(" / ".join(parts))
            display_rows.append(cells)
            numeric_rows.append(numeric)
        display_rows.append(
            [SEEDS_ROW, *(_seeds_text(mean_cells[(lb, metrics[0])]) for lb in labels), *(MISSING for _ in refs)]
        )

        notes = [
            f"Cells: {' / '.join(agg.METRIC_NAMES.get(m, m) for m in metrics)} in % on the {split} split; "
            "mean over seeds [95 % interval, where a cell rests on ≥ 2 values]; a category's interval resamples its "
            "seeds.",
            "Mean: mean of the column's cells over the categories it has (a paper column without per-category "
            "numbers shows the paper's own mean), its interval from the hierarchical bootstrap in the footer; "
            "bold: best configuration per row and metric.",
            f"{TIE} on the Mean row: the paired test cannot separate this configuration from the bold best "
            f"(p ≥ {agg.ALPHA:g} over their common (category, seed) pairs, or none in common).",
            f"{SEEDS_ROW}: seeds per category (min–max) × categories behind the Mean.",
        ]
        partial = [
            f"{lb} ({sum(not is_nan(cell_values[(lb, metrics[0], c)].mean) for c in categories)}/{len(categories)})"
            for lb in labels
            if any(is_nan(cell_values[(lb, metrics[0], c)].mean) for c in categories)
        ]
        if partial:
            notes.append("Columns missing categories (their Mean covers fewer rows): " + ", ".join(partial) + ".")
        for _, ref in refs:
            pub = ref.published_mean.get(dataset) or ref.values[dataset].get("mean", {})  # the paper's own mean
            pub_text = " / ".join(fmt(pub.get(m, math.nan)) for m in metrics)
            notes.append(f"{ref.name}: {ref.source}; published mean {pub_text}.")
        tables.append(
            Table(
                name=f"{name}_{dataset}",
                title=f"{agg.DATASET_NAMES.get(dataset, dataset)}: "
                f"{' / '.join(agg.METRIC_NAMES.get(m, m) for m in metrics)} (%) per category",
                header=header,
                rows=display_rows,
                notes=notes,
                footer=footer_text(dframe) + " " + uncertainty_text(),
                numeric=pd.DataFrame(numeric_rows),
                rule_before={len(categories)},
            )
        )
    return tables
