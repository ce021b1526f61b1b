"""The sweep summary: best configuration per category, the pooled ranking, the data-shift check
per category and the I-AUROC robustness table (``suite.reporting.robustness``), selection fidelity,
failures, missing results, parameter importance (Spearman, and Optuna's where a sweep stored
``optuna_importances.json``: ``suite.reporting.importances``) and where the time goes per stage
(``suite.reporting.step_times``, when records carry a step breakdown).

Cells hold the mean over the seeds of one configuration on one category; failed and stopped
records never enter a mean and are listed in the failures table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from suite import aggregate as agg
from suite.spaces import spaces_dir
from suite.reporting.footer import footer_text, uncertainty_text
from suite.reporting.importances import optuna_importance_tables
from suite.reporting.robustness import data_shift_table, robustness_tables
from suite.reporting.step_times import step_breakdown_table
from suite.reporting.table import MISSING, Table, fmt, fmt_interval, pct


def fidelity_table(frame: pd.DataFrame, footer: str, metrics: Sequence[str] = ("i_auroc", "p_auroc")) -> Table:
    """``agg.selection_fidelity`` per metric as a table; its text lines (and warnings) as notes."""
    results = [agg.selection_fidelity(frame, m) for m in metrics]
    rows = []
    for r in results:
        name = agg.METRIC_NAMES.get(r["metric"], r["metric"])
        corr = (
            [fmt(r["spearman"], digits=2), fmt(r["kendall"], digits=2)] if r["enough"]
            else ["not enough configurations", MISSING]
        )
        skipped = r["skipped_test_selected"] + r["skipped_no_val"] + r["skipped_no_test"]
        rows.append([
            f"val {name} vs test {name}", str(r["n_configurations"]), *corr, fmt(pct(r["saturation"]), digits=0),
            str(skipped),
        ])
    notes = [
        "Configurations: the config without seed and category; each gets the mean over its categories of seed means "
        "on val and on test. Spearman ρ and Kendall τ-b (scipy.stats) rank-correlate the two over configurations; "
        f"saturation = share of configurations with val ≥ {agg.SATURATION_THRESHOLD:g}. Records selected on test "
        "are skipped.",
    ]
    notes += [line for r in results for line in agg.fidelity_lines(r)]
    return Table(
        name="selection_fidelity",
        title="Selection fidelity (does validation rank configurations like test?)",
        header=["Objective", "Configurations", "Spearman ρ", "Kendall τ", "Val saturation (%)", "Skipped records"],
        rows=rows,
        notes=notes,
        footer=footer,
        numeric=pd.DataFrame(results),
    )


def best_per_category(frame: pd.DataFrame, select_on: str = "val") -> tuple[pd.DataFrame, str]:
    """Best configuration per (dataset, category) by the seed-averaged selection metric.

    Returns the frame (dataset, category, label, selection value, test metrics in %, seeds) and a
    note when the selection split had to fall back to test.
    """
    sel_col, note = agg.selection_column(frame, select_on)
    ok = agg.ok_records(frame)
    cols = list(dict.fromkeys([sel_col] + [f"test.{m}" for m in ("i_auroc", "p_auroc", "aupro", "i_f1max", "p_f1max")]))
    rows = []
    if ok.empty:
        return pd.DataFrame(rows), note
    stats = agg.seed_stats(ok, cols, by=("dataset", "label", "category"))
    for dataset, category in agg.ordered_categories(ok):
        group = stats[(stats["dataset"] == dataset) & (stats["category"] == category)]
        group = group.assign(_key=group[sel_col].fillna(-np.inf)).sort_values("_key", ascending=False, kind="stable")
        best = group.iloc[0]
        rows.append(
            {
                "dataset": dataset,
                "category": category,
                "label": best["label"],
                "selection": pct(best[sel_col]),
                **{
                    f"test.{m}": pct(best.get(f"test.{m}", math.nan))
                    for m in ("i_auroc", "p_auroc", "aupro", "i_f1max", "p_f1max")
                },
                "seeds": int(best["seeds"]),
                "candidates": len(group),
            }
        )
    return pd.DataFrame(rows), note


def pooled_best(frame: pd.DataFrame, select_on: str = "val") -> tuple[pd.DataFrame, str]:
    """Configurations ranked by mean selection metric over categories (seeds averaged first).

    Only configurations covering the most categories of their dataset compete, so one lucky
    category cannot win the pooled ranking. ``<test metric>.low`` / ``.high``: the 95 % hierarchical
    bootstrap interval of each test mean (``agg.cell_stats``), ``seeds``: seeds per category (min–max).
    """
    sel_col, note = agg.selection_column(frame, select_on)
    ok = agg.ok_records(frame)
    cols = list(dict.fromkeys([sel_col, "test.i_auroc", "test.p_auroc", "test.aupro"]))
    if ok.empty:
        return pd.DataFrame(), note
    stats = agg.seed_stats(ok, cols, by=("dataset", "label", "category"))
    per = stats.groupby(["dataset", "label"]).agg(
        categories=("category", "nunique"), **{c: (c, "mean") for c in cols}
    ).reset_index()
    out = []
    for dataset, group in per.groupby("dataset", sort=False):
        full = group[group["categories"] == group["categories"].max()]
        out.append(full.sort_values(sel_col, ascending=False, na_position="last"))
    result = pd.concat(out) if out else per
    for c in cols:
        result[c] = result[c].map(pct)
    tests = [c for c in ("test.i_auroc", "test.p_auroc", "test.aupro") if c in ok]
    for dataset in result["dataset"].unique():
        dok = ok[ok["dataset"] == dataset]
        rows = result["dataset"] == dataset
        for c in tests:
            values = agg.seed_values(dok, c)
            cells = [agg.cell_stats(values.get(label, {}), scale=100.0) for label in result.loc[rows, "label"]]
            result.loc[rows, f"{c}.low"] = [cell.low for cell in cells]
            result.loc[rows, f"{c}.high"] = [cell.high for cell in cells]
            if c == "test.i_auroc":
                result.loc[rows, "seeds"] = [cell.seeds_text for cell in cells]
    return result.reset_index(drop=True), note


def sweep_scheduling_lines(run_dirs: Sequence[str | Path]) -> list[str]:
    """How full each sweep kept its slots and how many trials TPE sampled at random, from the
    ``runs`` entries the driver appends to ``sweep.json`` (next to, or one level above, a run folder).

    Utilisation = busy slot-seconds ÷ (slots × wall time) of the sweep's last run.
    """
    import json

    lines: list[str] = []
    for folder in run_dirs:
        folder = Path(folder)
        meta_path = next((p for p in (folder / "sweep.json", folder.parent / "sweep.json") if p.is_file()), None)
        if meta_path is None:
            continue
        try:
            runs = json.loads(meta_path.read_text()).get("runs") or []
        except (OSError, ValueError):
            continue
        if not runs:
            continue
        last = runs[-1]
        usage = last.get("utilisation") or {}
        if usage.get("slots"):
            lines.append(
                f"Sweep `{meta_path.parent.name}`: utilisation {pct(usage.get('utilisation', math.nan)):.0f}% "
                f"({usage.get('busy_s', 0):.0f} busy slot-seconds / ({usage['slots']} slot(s) x "
                f"{usage.get('wall_s', 0):.0f} s wall); shards: {last.get('shards', 'off')}."
            )
        for study, c in (last.get("random_trials") or {}).items():
            lines.append(f"Sweep `{meta_path.parent.name}`, study {study}: {c['random']} of {c['asked']} trial(s) "
                         f"sampled at random by TPE (n_startup_trials = {c['n_startup_trials']}).")
    return lines + ([""] if lines else [])


SEEDS_FORMULA = (
    "pairs needed n = ⌈((z₀.₉₇₅ + z₀.₈) · sd(d) / |mean(d)|)²⌉ (normal power calculation of a paired test at "
    "α = 0.05 with 80 % power; d = the paired differences over (category, seed)), at least 6, the fewest pairs at "
    "which the exact sign-flip test can reach p < 0.05; seeds per row = ⌈n / categories⌉."
)


def seeds_lines(ablations: Sequence[Any]) -> list[str]:
    """Per ablation table (``ablation_tables`` results) and dataset: the closest neighbouring rows, how many
    seeds per row would separate them at the observed spread, and the ``plan`` command that sizes that sweep."""
    lines = []
    for result in ablations:
        if result.table is None:
            continue
        for advice in result.seeds:
            metric = agg.METRIC_NAMES.get(advice["metric"], advice["metric"])
            where = agg.DATASET_NAMES.get(advice["dataset"], advice["dataset"])
            head = (f"**{result.ablation.title}** ({where}): closest neighbouring rows `{advice['above']}` → "
                    f"`{advice['below']}` differ by {advice['mean_diff']:+.2f} points of {metric} (sd "
                    f"{advice['sd_diff']:.2f} over {advice['pairs']} (category, seed) pairs, {advice['categories']} "
                    f"categories; sign-flip p = {advice['p']:.3f}).")
            needed = advice["seeds_needed"]
            if not math.isfinite(needed):
                lines.append(f"- {head} They are equal on every pair: no number of seeds separates them.")
                continue
            space = _space_argument(result.ablation)
            more = int(advice["more_seeds"])
            verdict = "already enough" if more == 0 else f"{more} more than now"
            lines.append(f"- {head} Separating them needs {int(needed)} seeds per row ({verdict}): "
                         f"`python run_suite.py plan --space {space} --trials {int(needed)}`.")
    return lines


def _space_argument(ablation: Any) -> str:
    """The ``--space`` value of the ablation's space file: its name in search_spaces/, else its path."""
    path = ablation.path
    if path is None:
        return f"<space of table {ablation.id}>"
    return path.stem if Path(path).parent == spaces_dir() else str(path)


def summary_markdown(
    frame: pd.DataFrame,
    record_set: agg.RecordSet | None = None,
    select_on: str = "val",
    run_dirs: Sequence[str | Path] = (),
    ablations: Sequence[Any] = (),
) -> tuple[str, dict[str, Table]]:
    """The sweep summary (Markdown) and its tables by name; ``ablations``: ``ablation_tables`` results,
    for the section on how many seeds would separate their closest rows."""
    sel_col, sel_note = agg.selection_column(frame, select_on)
    tables: dict[str, Table] = {}
    footer = footer_text(frame, sel_note)
    lines = ["# Sweep summary", ""]
    if run_dirs:
        lines += ["Run folders: " + ", ".join(f"`{d}`" for d in run_dirs), ""]
        lines += sweep_scheduling_lines(run_dirs)
    counts = agg.status_counts(frame)
    lines += [
        f"Records: {len(frame)} — " + ", ".join(f"{n} {s}" for s, n in counts.items()) + ".",
        f"Selection metric: `{sel_col}` (requested split: {select_on}).",
        "",
    ]
    if sel_note:
        lines += [f"**Note:** {sel_note}.", ""]

    # best per category
    best, _ = best_per_category(frame, select_on)
    if not best.empty:
        rows = [
            [
                agg.DATASET_NAMES.get(r["dataset"], r["dataset"]),
                r["category"],
                r["label"],
                fmt(r["selection"]),
                fmt(r["test.i_auroc"]),
                fmt(r["test.p_auroc"]),
                fmt(r["test.aupro"]),
                str(r["seeds"]),
                str(r["candidates"]),
            ]
            for _, r in best.iterrows()
        ]
        tables["best_per_category"] = Table(
            name="best_per_category",
            title="Best configuration per category",
            header=[
                "Dataset", "Category", "Configuration", f"{sel_col} (%)",
                "Test I-AUROC", "Test P-AUROC", "Test AUPRO", "Seeds", "Candidates",
            ],
            rows=rows,
            notes=[f"Chosen by the seed-averaged `{sel_col}`; the test columns are that configuration's test metrics."],
            footer=footer,
            numeric=best,
        )
    pooled, _ = pooled_best(frame, select_on)
    if not pooled.empty:
        rows = [
            [
                agg.DATASET_NAMES.get(r["dataset"], r["dataset"]),
                r["label"],
                str(int(r["categories"])),
                str(r.get("seeds", MISSING)),
                fmt(r[sel_col]),
                *(fmt(r[c]) + fmt_interval(r.get(f"{c}.low", math.nan), r.get(f"{c}.high", math.nan))
                  for c in ("test.i_auroc", "test.p_auroc", "test.aupro")),
            ]
            for _, r in pooled.iterrows()
        ]
        if rows:
            rows[0] = [rows[0][0], f"**{rows[0][1]}**", *rows[0][2:]]
        tables["pooled"] = Table(
            name="pooled",
            title="Pooled ranking (best mean over categories first)",
            header=["Dataset", "Configuration", "Categories", "Seeds", f"Mean {sel_col} (%)", "Test I-AUROC",
                    "Test P-AUROC", "Test AUPRO"],
            rows=rows,
            notes=["Only configurations covering the most categories of their dataset are ranked; the first row per "
                   "dataset is the pooled best. Test columns: mean over categories of seed means [95 % interval]; "
                   "Seeds: per category (min–max)."],
            footer=footer + " " + uncertainty_text(test=False),
            numeric=pooled,
        )

    tables["fidelity"] = fidelity_table(frame, footer)
    shift_check = data_shift_table(frame, footer)  # issue 19: data shift per category, robustness (I-AUROC)
    if shift_check is not None:
        tables["data_shift"] = shift_check
    tables.update({t.name: t for t in robustness_tables(frame, footer, ("i_auroc",))})
    step_times = step_breakdown_table(frame, footer)  # absent when no record has a step breakdown
    if step_times is not None:
        tables["step_breakdown"] = step_times

    # failures, never silently dropped
    bad = frame[frame["status"] != "ok"] if not frame.empty else frame
    fail_rows = []
    for _, r in bad.iterrows():
        error = str(r.get("error") or "").strip().splitlines()
        first = error[-1] if error else "(no error message)"
        fail_rows.append(
            [str(r["status"]), str(r.get("trial_id")), str(r["category"]), str(r["label"]), first[:200],
             f"`{r.get('record_path')}`"]
        )
    if record_set is not None:
        for path, err in record_set.unreadable:
            reason = err.splitlines()[0] if err else "(no reason)"
            reason = reason.removeprefix(f"record {path}: ")
            fail_rows.append(["unreadable", "-", "-", "-", reason[:200], f"`{path}`"])
    tables["failures"] = Table(
        name="failures",
        title="Failed, stopped and unreadable records",
        header=["Status", "Trial", "Category", "Configuration", "Error (last line)", "Record"],
        rows=fail_rows or [["none", "", "", "", "", ""]],
        notes=["Excluded from every mean and table; listed here so nothing disappears silently. Unreadable: the file "
               "failed the record schema (size, nesting, JSON, types, ranges; see suite/record_schema.py)."],
        footer=footer,
    )
    missing = agg.missing_pairs(frame)
    tables["missing"] = Table(
        name="missing",
        title="Missing (configuration, category) results",
        header=["Configuration", "Dataset", "Category", "Reason"],
        rows=[[lb, agg.DATASET_NAMES.get(d, d), c, reason] for lb, d, c, reason in missing] or [["none", "", "", ""]],
        notes=["A configuration is expected on every category of its dataset that any loaded configuration covers."],
        footer=footer,
    )
    importance = agg.parameter_importance(frame, sel_col)
    tables["importance"] = Table(
        name="importance",
        title="Parameter importance",
        header=["Config key", "|Spearman ρ|", "Spearman ρ", "Records", "Distinct values"],
        rows=[
            [f"`{r['key']}`", fmt(r["abs_spearman"], digits=3), fmt(r["spearman"], digits=3), str(r["n"]),
             str(r["distinct"])]
            for _, r in importance.iterrows()
        ]
        or [["no varied numeric key", "", "", "", ""]],
        notes=[
            f"Method: absolute Spearman rank correlation between each varied config key and `{sel_col}` over ok "
            "records, after subtracting each (dataset, category)'s mean objective; booleans count as 0/1 and "
            "lists by their length. Marginal and pooled over the other keys: a screening aid, not a causal estimate."
        ],
        footer=footer,
        numeric=importance,
    )
    # Optuna's importances stored by sweeps run with --optuna-storage, beside the Spearman ones
    tables.update(optuna_importance_tables(importance, run_dirs, footer))
    if record_set is not None and record_set.ignored:
        tables["ignored"] = Table(
            name="ignored",
            title="Records of a newer suite version: parts ignored",
            header=["Record", "Ignored"],
            rows=[[f"`{path}`", what] for path, what in record_set.ignored],
            notes=["These records were read without the fields this version of the suite does not know."],
            footer=footer,
        )
    advice = seeds_lines(ablations)
    if advice:
        lines += ["## How many seeds are enough (ablation tables)", "", *advice, "", f"Formula: {SEEDS_FORMULA} "
                  "For an ablation space, `--trials` of `sweep` and `plan` is the number of seeds per row.", ""]
    for key in ("best_per_category", "pooled", "data_shift", "robustness_i_auroc", "fidelity", "failures", "ignored",
                "missing", "importance", "step_breakdown",
                *(k for k in tables if k.startswith("optuna_importance"))):
        if key in tables:
            lines.append(tables[key].to_markdown(level=2))
    return "\n".join(lines), tables
