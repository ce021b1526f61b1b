"""Robustness of the reported numbers (issue 19): the data-shift check per category, the test
metrics under ``eval.shifts`` per configuration, and accuracy vs shift figures.

Everything comes from ``suite.aggregate.shifts`` (record version 6); older records carry no shift
fields and simply enter none of these tables.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from suite import aggregate as agg  # noqa: E402
from suite.reporting.footer import uncertainty_text  # noqa: E402
from suite.reporting.plots import Figure, method_colour, save_figure, slug  # noqa: E402
from suite.reporting.table import MISSING, Table, fmt, fmt_interval, label_order, pct  # noqa: E402

WARNING = "⚠ shift"
ROBUSTNESS_METRICS = ("i_auroc", "p_auroc", "aupro")
SHIFT_TITLES = {
    "dark8": "8 % darker", "bright8": "8 % brighter", "contrast90": "contrast × 0.9", "blur": "blur (σ = 1 px at 256)",
    "noise": "sensor noise (σ = 0.02)", "translate": "translation (4 px at 256)",
}


def _p(value: float) -> str:
    return MISSING if math.isnan(value) else f"{value:.1g}"


def data_shift_table(frame: pd.DataFrame, footer: str) -> Table | None:
    """Per category: did the label-free shift check fire, on which statistic, how strongly, and how
    closely image scores follow image brightness. None when no record carries either."""
    stats = agg.data_shift_by_category(frame)
    if stats.empty:
        return None
    rows = []
    for _, r in stats.iterrows():
        if r["checked"] == 0:
            verdict = "not checked"
        elif r["fired"]:
            verdict = f"**{WARNING}** ({r['statistics']})" + (
                f" in {r['fired']} of {r['checked']} records" if r["fired"] < r["checked"] else "")
        else:
            verdict = "no shift"
        rho = r["spearman"]
        rho_text = MISSING if math.isnan(rho) else f"{rho:+.2f}" + (
            f" ({r['spearman.min']:+.2f} to {r['spearman.max']:+.2f})" if r["spearman.max"] > r["spearman.min"] else "")
        rows.append([
            agg.DATASET_NAMES.get(r["dataset"], r["dataset"]), str(r["category"]), verdict,
            str(r["statistic"] or MISSING), fmt(pct(r["outside"]), digits=0), _p(r["p"]), rho_text,
        ])
    return Table(
        name="data_shift",
        title="Data shift (test images vs train normals, no labels)",
        header=["Dataset", "Category", "Shift check", "Statistic", "Test images outside train range (%)",
                "p (Bonferroni)", "Score–brightness ρ"],
        rows=rows,
        notes=[
            "Before training, per-image brightness, background level, contrast, sharpness and colourfulness of all "
            "train-folder normals are compared with the unlabelled test images (suite/data/shift_check.py): the check "
            "fires when a statistic's two-sample KS p (Bonferroni-corrected) is below 0.01 and at least 20 % of the "
            "test images lie outside the train images' 1–99 % range widened by a quarter of its width. Statistic: "
            "the fired one with the largest share, else the one with the smallest p.",
            "Score–brightness ρ: Spearman rank correlation between the test image scores and the images' mean "
            "luminance (mean over records, min to max); near ±1 the scores rank brightness, not defects.",
        ],
        footer=footer,
        numeric=stats,
    )


def _cell(row: pd.Series, key: str, with_drop: bool) -> str:
    text = fmt(pct(row[key]))
    if row["records"] > 1:  # one record: nothing to resample
        text += fmt_interval(pct(row[f"{key}.low"]), pct(row[f"{key}.high"]))
    if with_drop and not math.isnan(row[f"{key}.drop"]):
        drop = pct(row[f"{key}.drop"])
        text += f" (−{drop:.1f})" if drop >= 0 else f" (+{-drop:.1f})"
    return text


def robustness_tables(frame: pd.DataFrame, footer: str, metrics=ROBUSTNESS_METRICS) -> list[Table]:
    """One table per metric: per (dataset, configuration), the unshifted test metric, the metric
    under each shift with its drop, and the largest drop with its interval."""
    tables = []
    for metric in metrics:
        stats, shifts = agg.robustness_stats(frame, metric)
        if stats.empty:
            continue
        order = {label: i for i, label in enumerate(label_order(stats))}
        stats = stats.assign(_o=stats["label"].map(order)).sort_values(["dataset", "_o"]).drop(columns="_o")
        rows = []
        for _, r in stats.iterrows():
            worst = r["worst"]
            worst_text = MISSING if worst is None else f"{worst}: {pct(r['worst.drop']):.1f}" + (
                fmt_interval(pct(r[f"{worst}.drop.low"]), pct(r[f"{worst}.drop.high"])) if r["records"] > 1 else "")
            rows.append([
                agg.DATASET_NAMES.get(r["dataset"], r["dataset"]), str(r["label"]), str(int(r["categories"])),
                _cell(r, "unshifted", False), *(_cell(r, s, True) for s in shifts), worst_text,
            ])
        name = agg.METRIC_NAMES.get(metric, metric)
        tables.append(Table(
            name=f"robustness_{metric}",
            title=f"Robustness: test {name} under test-set shifts",
            header=["Dataset", "Configuration", "Categories", "Unshifted", *shifts, "Largest drop"],
            rows=rows,
            notes=[
                "The trained model scored on transformed copies of the test set (config `eval.shifts`, inference "
                "only; " + "; ".join(f"{s}: {SHIFT_TITLES.get(s, s)}" for s in shifts) + "). Cells: mean over "
                "categories of seed means (%) [95 % interval], the drop from the unshifted column in parentheses; "
                "Largest drop: the shift with the largest mean drop, paired over (category, seed).",
            ],
            footer=footer + " " + uncertainty_text(test=False),
            numeric=stats.assign(metric=metric),
        ))
    return tables


def robustness_figures(frame: pd.DataFrame, out_dir: str | Path, max_datasets: int = 4) -> list[Figure]:
    """Accuracy vs shift: per dataset, one panel per metric, one line per configuration (x: the
    unshifted test set, then each shift; error bars: 95 % interval)."""
    out_dir = Path(out_dir)
    per_metric = {m: agg.robustness_stats(frame, m) for m in ("i_auroc", "p_auroc")}
    per_metric = {m: v for m, v in per_metric.items() if not v[0].empty}
    if not per_metric:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    datasets = sorted({d for stats, _ in per_metric.values() for d in stats["dataset"]})[:max_datasets]
    for dataset in datasets:
        fig, axes = plt.subplots(1, len(per_metric), figsize=(4.6 * len(per_metric), 3.8), squeeze=False)
        for ax, (metric, (stats, shifts)) in zip(axes[0], per_metric.items()):
            keys = ["unshifted", *shifts]
            x = np.arange(len(keys))
            for _, r in stats[stats["dataset"] == dataset].iterrows():
                y = np.array([pct(r[k]) for k in keys])
                err = np.array([[y[i] - pct(r[f"{k}.low"]), pct(r[f"{k}.high"]) - y[i]] for i, k in enumerate(keys)]).T
                ax.errorbar(x, y, yerr=np.clip(np.nan_to_num(err), 0, None), marker="o", ms=4, lw=1.3, capsize=2,
                            color=method_colour(r["method"]), label=textwrap.shorten(str(r["label"]), 40))
            ax.set_xticks(x, keys, rotation=30, ha="right", fontsize=7)
            ax.set_ylabel(f"test {agg.METRIC_NAMES[metric]} (%)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6, loc="best")
        title = f"{agg.DATASET_NAMES.get(dataset, dataset)}: accuracy vs test-set shift"
        fig.suptitle(title, fontsize=8)
        fig.tight_layout()
        stem = f"robustness_{slug(dataset)}"
        png, svg = save_figure(fig, out_dir, stem)
        figures.append(Figure(title, png, svg))
    return figures
