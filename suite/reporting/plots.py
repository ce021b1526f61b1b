"""Figures from the records frame: accuracy vs cost with its Pareto front, response curves, and
the per-depth signal of the recursion (from ``diagnostics.per_depth_stats``).

Matplotlib runs on the Agg backend (no display); every figure is closed after saving.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from suite import aggregate as agg  # noqa: E402
from suite.methods.registry import method_order, method_spec  # noqa: E402
from suite.reporting.diagnostics import DEPTH_METRICS, per_depth_groups  # noqa: E402
from suite.reporting.footer import footer_text, uncertainty_text  # noqa: E402
from suite.reporting.table import Table, fmt, fmt_interval, label_order  # noqa: E402



def method_colour(method: str) -> str:
    """The registry's colour for ``method`` (grey for names no method registers)."""
    try:
        return method_spec(str(method)).colour
    except KeyError:
        return "tab:gray"

COST_AXES = {
    "cost.latency_ms": "latency per image (ms)",
    "cost.gflops": "GFLOPs per image",
}
RESPONSE_KEYS = ("model.depth", "augment.coverage", "augment.noise_std")
DPI = 110


def save_figure(fig, out_dir: Path, stem: str) -> tuple[Path, Path]:
    """Write ``fig`` to ``out_dir/<stem>.png`` (at ``DPI``) and ``.svg``, close it, return both paths."""
    png, svg = out_dir / f"{stem}.png", out_dir / f"{stem}.svg"
    fig.savefig(png, dpi=DPI)
    fig.savefig(svg)
    plt.close(fig)
    return png, svg


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", str(text)).strip("_")[:80] or "x"


@dataclass
class Figure:
    title: str
    png: Path
    svg: Path | None = None
    notes: list[str] = field(default_factory=list)


def configuration_points(frame: pd.DataFrame, split: str = "test", metric: str = "i_auroc") -> pd.DataFrame:
    """One point per configuration: mean over categories of the seed-averaged metric (in %), mean cost.

    Columns: label, method, accuracy, low, high (its 95 % hierarchical bootstrap interval, see
    ``agg.cell_stats``), categories, seeds (per category, min–max), and every ``cost.*`` mean.
    """
    ok = agg.ok_records(frame)
    col = f"{split}.{metric}"
    cost_cols = [c for c in ok.columns if c.startswith("cost.")]
    numeric_costs = [c for c in cost_cols if pd.to_numeric(ok[c], errors="coerce").notna().any()]
    if ok.empty or col not in ok:
        columns = ["label", "method", "accuracy", "low", "high", "categories", "seeds", *numeric_costs]
        return pd.DataFrame(columns=columns)
    per_cat = agg.seed_stats(ok, [col, *numeric_costs], by=("label", "category"))
    values = agg.seed_values(ok, col)
    rows = []
    for label in label_order(ok):
        group = per_cat[per_cat["label"] == label]
        method = ok.loc[ok["label"] == label, "method"].iloc[0]
        cell = agg.cell_stats(values.get(label, {}), scale=100.0)
        row = {
            "label": label,
            "method": method,
            "accuracy": cell.mean,
            "low": cell.low,
            "high": cell.high,
            "categories": cell.categories,
            "seeds": cell.seeds_text,
        }
        for c in numeric_costs:
            row[c] = float(group[c].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def accuracy_vs_cost(
    frame: pd.DataFrame, out_dir: str | Path, split: str = "test", metric: str = "i_auroc", *, draw: bool = True
) -> tuple[list[Figure], list[Table]]:
    """Accuracy (y) vs latency and vs GFLOPs (x): size ∝ params, colour = method, Pareto step line.

    The Pareto front maximises accuracy and minimises the cost on the x axis; its members are
    returned as tables (written to pareto.md by the report). ``draw=False``: the tables only.
    """
    out_dir = Path(out_dir)
    if draw:
        out_dir.mkdir(parents=True, exist_ok=True)
    figures: list[Figure] = []
    tables: list[Table] = []
    ok = agg.ok_records(frame)
    datasets = sorted({str(d) for d in ok["dataset"]}, key=agg.dataset_sort_key) if not ok.empty else []
    for dataset in datasets:
        # Accuracy is averaged over categories, so datasets are never mixed in one point.
        suffix = f"_{slug(dataset)}" if len(datasets) > 1 else ""
        figs, tabs = _accuracy_vs_cost_one(frame[frame["dataset"] == dataset], out_dir, split, metric, dataset, suffix,
                                           draw)
        figures += figs
        tables += tabs
    return figures, tables


def _accuracy_vs_cost_one(
    frame: pd.DataFrame, out_dir: Path, split: str, metric: str, dataset: str, suffix: str, draw: bool
) -> tuple[list[Figure], list[Table]]:
    points = configuration_points(frame, split, metric)
    figures: list[Figure] = []
    tables: list[Table] = []
    metric_name = agg.METRIC_NAMES.get(metric, metric)
    dataset_name = agg.DATASET_NAMES.get(dataset, dataset)
    for x_col, x_name in COST_AXES.items():
        if x_col not in points:
            continue
        pts = points[np.isfinite(pd.to_numeric(points[x_col], errors="coerce")) & np.isfinite(points["accuracy"])]
        pts = pts[pts[x_col] > 0] if not pts.empty else pts
        if pts.empty:
            continue
        front = agg.pareto_front(pts, maximize=["accuracy"], minimize=[x_col]).sort_values(x_col)
        if draw:
            figures.append(_draw_accuracy_vs_cost(pts, front, x_col, x_name, out_dir, split, metric_name, dataset_name,
                                                  suffix))
        rows = [
            [
                str(r["label"]),
                agg.method_display_name(r["method"]),
                fmt(r["accuracy"]) + fmt_interval(r["low"], r["high"]),
                f"{r[x_col]:.4g}",
                f"{r['cost.params'] / 1e6:.3f}" if "cost.params" in r and np.isfinite(r["cost.params"]) else "–",
                str(r["seeds"]),
                str(r["categories"]),
            ]
            for _, r in front.iterrows()
        ]
        tables.append(
            Table(
                name=f"pareto_{x_col.split('.', 1)[1]}{suffix}",
                title=f"{dataset_name} Pareto front: {split} {metric_name} vs {x_name}",
                header=["Configuration", "Method", f"{metric_name} (%) [95 % interval]", x_name, "Params (M)", "Seeds",
                        "Categories"],
                rows=rows,
                notes=[
                    f"Non-dominated configurations (maximise {metric_name}, minimise {x_name}) among "
                    f"{len(pts)} configurations with both values; accuracy is the mean over categories "
                    "of seed-averaged values, cost the mean over records; error bars in the figure: the interval."
                ],
                numeric=front.reset_index(drop=True),
                footer=footer_text(frame) + " " + uncertainty_text(test=False),
            )
        )
    return figures, tables


def _draw_accuracy_vs_cost(pts: pd.DataFrame, front: pd.DataFrame, x_col: str, x_name: str, out_dir: Path, split: str,
                           metric_name: str, dataset_name: str, suffix: str) -> Figure:
    """One accuracy-vs-cost figure (PNG and SVG) with the Pareto front ``front`` of ``pts``."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    params = pd.to_numeric(pts.get("cost.params", pd.Series(np.nan, index=pts.index)), errors="coerce")
    pmax = params.max() if params.notna().any() else math.nan
    sizes = (
        30.0 + 470.0 * (params / pmax).fillna(0.0) if not math.isnan(pmax) and pmax > 0
        else pd.Series(60.0, index=pts.index)
    )
    for method, group in pts.groupby("method", sort=False):
        yerr = np.vstack([group["accuracy"] - group["low"], group["high"] - group["accuracy"]])
        ax.errorbar(group[x_col], group["accuracy"], yerr=np.clip(np.nan_to_num(yerr), 0.0, None), fmt="none",
                    ecolor=method_colour(method), elinewidth=0.8, capsize=2, alpha=0.8)
        ax.scatter(
            group[x_col], group["accuracy"], s=sizes[group.index], alpha=0.6,
            color=method_colour(method), edgecolors="k", linewidths=0.5,
            label=agg.method_display_name(method),
        )
    ax.step(front[x_col], front["accuracy"], where="post", color="k", lw=1.2, ls="--", label="Pareto front")
    for _, r in front.iterrows():
        ax.annotate(str(r["label"]), (r[x_col], r["accuracy"]), fontsize=6, xytext=(3, 3),
                    textcoords="offset points")
    xs = pts[x_col].to_numpy(float)
    if xs.max() / max(xs.min(), 1e-12) > 30:
        ax.set_xscale("log")
    ax.set_xlabel(x_name)
    ax.set_ylabel(f"{split} {metric_name} (%), mean over categories [95 % interval]")
    ax.set_title(f"{dataset_name}: {metric_name} vs {x_name.split(' (')[0]} (marker area ∝ parameters)", fontsize=9)
    ax.grid(alpha=0.3)
    legend = ax.legend(fontsize=7, loc="best")
    for handle in legend.legend_handles:  # legend markers at one size, not the first point's
        if hasattr(handle, "set_sizes"):
            handle.set_sizes([40.0])
    fig.tight_layout()
    stem = out_dir / f"accuracy_vs_{x_col.split('.', 1)[1]}{suffix}"
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    fig.savefig(png, dpi=DPI)
    fig.savefig(svg)
    plt.close(fig)
    return Figure(f"{dataset_name}: {metric_name} vs {x_name}", png, svg)


def _numeric(values: pd.Series) -> pd.Series:
    return values.map(agg.numeric_config_value)


def response_curves(
    frame: pd.DataFrame,
    out_dir: str | Path,
    keys: Sequence[str] = RESPONSE_KEYS,
    split: str = "test",
    metric: str = "i_auroc",
    select_on: str = "val",
) -> list[Figure]:
    """Metric vs a config key, one line per category plus their mean, per method.

    Drawn for each (method, key) whose ok records have ≥2 distinct values. The other varied keys
    are held at one combination of values: the one with the most values of ``key``, ties to the
    best mean ``<select_on>.i_auroc`` (see ``_slice_at_best``); the figure says which. Error bars:
    a category's line: sample std over seeds (≥2 seeds); the mean line: the 95 % hierarchical bootstrap
    interval over categories and seeds (``agg.cell_stats``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ok = agg.ok_records(frame)
    col = f"{split}.{metric}"
    figures: list[Figure] = []
    if ok.empty or col not in ok:
        return figures
    sel_col, _ = agg.selection_column(frame, select_on)
    metric_name = agg.METRIC_NAMES.get(metric, metric)
    for method in method_order(set(ok["method"])):
        mok = ok[ok["method"] == method]
        varied = agg.varying_keys(mok)
        for key in keys:
            column = f"config.{key}"
            if column not in mok:
                continue
            x_all = _numeric(mok[column])
            if x_all.dropna().nunique() < 2:
                continue
            sub, how = _slice_at_best(mok, key, [k for k in varied if k != key], sel_col)
            data = sub.assign(_x=_numeric(sub[column]), _y=pd.to_numeric(sub[col], errors="coerce") * 100.0)
            data = data.dropna(subset=["_x", "_y"])
            if data["_x"].nunique() < 2:
                continue
            per_seed = data.groupby(["category", "_x", "seed"])["_y"].mean().reset_index()
            fig, ax = plt.subplots(figsize=(6.4, 4.2))
            categories = [c for _, c in agg.ordered_categories(data)]
            cmap = plt.get_cmap("tab20" if len(categories) > 10 else "tab10")
            for i, category in enumerate(categories):
                cdata = per_seed[per_seed["category"] == category].groupby("_x")["_y"]
                mean, std, n = cdata.mean(), cdata.std(ddof=1), cdata.count()
                yerr = std.where(n >= 2)
                ax.errorbar(
                    mean.index, mean.values, yerr=yerr.values if yerr.notna().any() else None,
                    marker="o", ms=3, lw=1, alpha=0.7, capsize=2, color=cmap(i % cmap.N), label=category,
                )
            by_x = agg.seed_values(per_seed, "_y", by="_x")
            xs = sorted(by_x)
            cells = [agg.cell_stats(by_x[x]) for x in xs]
            means = np.array([c.mean for c in cells])
            yerr = np.array([[m - c.low, c.high - m] for m, c in zip(means, cells)]).T
            yerr = np.clip(np.nan_to_num(yerr), 0.0, None)
            ax.errorbar(xs, means, yerr=yerr, marker="s", ms=5, lw=2.5, color="k", capsize=3,
                        label="mean [95 % interval]")
            ax.set_xlabel(key + (" (list length)" if isinstance(mok[column].dropna().iloc[0], tuple) else ""))
            ax.set_ylabel(f"{split} {metric_name} (%)")
            if np.allclose(data["_x"], np.round(data["_x"])):
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            subtitle = textwrap.fill(how, 95)
            ax.set_title(f"{agg.method_display_name(method)}: {metric_name} vs {key}\n{subtitle}", fontsize=7)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6, ncol=2 if len(categories) > 8 else 1, loc="best")
            fig.tight_layout()
            png = out_dir / f"response_{slug(key)}_{slug(method)}.png"
            fig.savefig(png, dpi=DPI)
            plt.close(fig)
            figures.append(Figure(f"{agg.method_display_name(method)}: {metric_name} vs {key}", png, None, [how]))
    return figures


def _slice_at_best(frame: pd.DataFrame, key: str, others: list[str], sel_col: str) -> tuple[pd.DataFrame, str]:
    """Rows sharing the other varied keys' values, so the curve moves ``key`` alone.

    Among the combinations of the other keys' values, the one with the most distinct values of
    ``key`` wins, ties going to the best mean selection metric (categories first averaged over
    seeds). When no combination has two values of ``key``, everything is pooled.
    """
    if not others:
        return frame, "no other key varies"
    columns = [f"config.{o}" for o in others]
    x = _numeric(frame[f"config.{key}"])
    score = pd.to_numeric(frame.get(sel_col), errors="coerce")
    best: tuple[int, float, tuple] | None = None
    combos = frame[columns].apply(lambda row: tuple(agg.format_value(v) for v in row), axis=1)
    for combo in combos.drop_duplicates():
        mask = combos == combo
        n_x = int(x[mask].dropna().nunique())
        s = frame[mask].assign(_s=score[mask]).groupby("category")["_s"].mean().mean()
        s = -math.inf if s is None or math.isnan(s) else float(s)
        if best is None or (n_x, s) > best[:2]:
            best = (n_x, s, combo)
    if best is not None and best[0] >= 2:
        fixed = ", ".join(f"{o}={v}" for o, v in zip(others, best[2]))
        return frame[combos == best[2]], f"other varied keys fixed: {fixed}"
    return frame, "other varied keys pooled: " + ", ".join(others)


FAMILY_STYLES = {"recon": ("tab:blue", "o", "recon |I − I_R^n|"), "detail": ("tab:orange", "s", "detail |I − I_D^n|")}


def per_depth_figures(
    stats: pd.DataFrame, out_dir: str | Path, split: str = "test", max_figures: int = 8
) -> list[Figure]:
    """I-AUROC and P-AUROC (%) vs recursion step, one line per map family, CRD as a horizontal line.

    ``stats`` is ``diagnostics.per_depth_stats(...)[0]``; one figure (PNG + SVG) per (dataset,
    configuration, category) group in report order, at most ``max_figures``. Error bars: the
    stats' 95 % interval where ≥2 (category, seed) values entered.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures: list[Figure] = []
    for dataset, label, category in per_depth_groups(stats)[:max_figures]:
        g = stats[(stats["dataset"] == dataset) & (stats["label"] == label) & (stats["category"] == category)]
        fig, axes = plt.subplots(1, len(DEPTH_METRICS), figsize=(8.4, 3.6), sharex=True)
        for ax, metric in zip(np.atleast_1d(axes), DEPTH_METRICS):
            gm = g[g["metric"] == metric]
            for family, (colour, marker, name) in FAMILY_STYLES.items():
                f = (
                    gm[gm["family"] == family]
                    .assign(_x=lambda d: pd.to_numeric(d["step"], errors="coerce"))
                    .dropna(subset=["_x"])
                )
                if f.empty:
                    continue
                f = f.sort_values("_x")
                shown = (f["values"] >= 2).to_numpy()
                yerr = np.where(shown, 100.0 * np.vstack([f["value"] - f["low"], f["high"] - f["value"]]), 0.0)
                yerr = np.clip(np.nan_to_num(yerr), 0.0, None) if shown.any() else None
                ax.errorbar(f["_x"], f["value"] * 100.0, yerr=yerr,
                            color=colour, marker=marker, ms=4, lw=1.5, capsize=2, label=name)
            crd = gm[gm["family"] == "crd"]
            if not crd.empty:
                ax.axhline(float(crd["value"].iloc[0]) * 100.0, color="tab:red", ls="--", lw=1.2,
                           label="CRD map (all steps)")
            ax.set_xlabel("recursion step n")
            ax.set_ylabel(f"{split} {agg.METRIC_NAMES[metric]} (%)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6, loc="best")
        where = category if category != "mean" else "mean over categories"
        title = f"{label}, {where} ({agg.DATASET_NAMES.get(dataset, dataset)}): per-depth signal"
        fig.suptitle(textwrap.fill(title, 100), fontsize=8)
        fig.tight_layout()
        stem = f"per_depth_{slug(dataset)}_{slug(label)}_{slug(category)}"  # labels hold dots: no with_suffix
        png, svg = save_figure(fig, out_dir, stem)
        figures.append(Figure(title, png, svg))
    return figures
