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
from suite.reporting.footer import footer_text
from suite.reporting.table import Table, fmt, is_nan, label_order, pct

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


def comparison_tables(
    frame: pd.DataFrame,
    metrics: Sequence[str] = ("i_auroc", "p_auroc"),
    split: str = "test",
    name: str = "comparison",
) -> list[Table]:
    """One table per dataset: rows = categories (standard order) + Mean, columns = configurations.

    Cells are ``metric1 / metric2 ...`` in % (seed mean ± std); the Mean row is the mean of the
    column's cells over the categories present; best configuration per row and metric in bold.
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
        stats = agg.seed_stats(dok, columns, by=("label", "category"))
        stats = stats.set_index(["label", "category"])
        refs = [(key, ref) for key, ref in references(dok) if dataset in ref.values and set(metrics) & set(ref.metrics)]

        # numeric cells: value[label][metric][category] (percent)
        numeric_rows = []
        means: dict[tuple[str, str], float] = {}
        cell_values: dict[tuple[str, str, str], tuple[float, float, int]] = {}
        for label in labels:
            for metric, col in zip(metrics, columns):
                vals = []
                for category in categories:
                    if (label, category) in stats.index and col in stats.columns:
                        row = stats.loc[(label, category)]
                        value, std, n = pct(row[col]), pct(row[f"{col}.std"]), int(row["n"])
                    else:
                        value, std, n = math.nan, math.nan, 0
                    cell_values[(label, metric, category)] = (value, std, n)
                    if not is_nan(value):
                        vals.append(value)
                means[(label, metric)] = float(np.mean(vals)) if vals else math.nan
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
                        round(cell_values[(lb, metric, category)][0], 1)
                        for lb in labels
                        if not is_nan(cell_values[(lb, metric, category)][0])
                    ]
                best[metric] = max(candidates) if len(candidates) > 1 else math.nan
            cells = [category if category != "Mean" else "**Mean**"]
            numeric = {"dataset": dataset, "category": category}
            for label in labels:
                parts = []
                for metric in metrics:
                    if category == "Mean":
                        value, std, n = means[(label, metric)], math.nan, 0
                    else:
                        value, std, n = cell_values[(label, metric, category)]
                    text = fmt(value, std if n >= 2 else math.nan)
                    if not is_nan(value) and round(value, 1) == best[metric]:
                        text = f"**{text}**"
                    parts.append(text)
                    numeric[f"{label} | {metric}"] = value
                    numeric[f"{label} | {metric} | std"] = std
                numeric[f"{label} | n"] = (
                    sum(1 for c in categories if cell_values[(label, metrics[0], c)][2] > 0)
                    if category == "Mean"
                    else cell_values[(label, metrics[0], category)][2]
                )
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

        notes = [
            f"Cells: {' / '.join(agg.METRIC_NAMES.get(m, m) for m in metrics)} in % on the {split} split; "
            "mean over seeds, ± sample std when a configuration has ≥2 seeds on a category.",
            "Mean: mean of the column's cells over the categories it has (a paper column without per-category "
            "numbers shows the paper's own mean); bold: best configuration per row and metric.",
        ]
        partial = [
            f"{lb} ({sum(1 for c in categories if not is_nan(cell_values[(lb, metrics[0], c)][0]))}/{len(categories)})"
            for lb in labels
            if any(is_nan(cell_values[(lb, metrics[0], c)][0]) for c in categories)
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
                footer=footer_text(dframe),
                numeric=pd.DataFrame(numeric_rows),
                rule_before={len(categories)},
            )
        )
    return tables
