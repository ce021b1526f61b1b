"""Ablation tables: per row ours | paper | Δ (ours − paper), one table per ablation space.

An ablation is declared once, by its space file (``TABLE`` and ``ROWS`` in ``search_spaces/``, read
through ``suite.spaces.load_ablations``): the trials of a row store the table and row
ids in their records (``TrialRecord.ablation``), and a table row here holds exactly the ok records
carrying its ids. Titles, row labels and published numbers come from the space file. Records
without ids (written before ablation ids existed, or by other spaces) are in no ablation table;
records whose table no space file declares get a table titled by its id, without published numbers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from suite import aggregate as agg
from suite.spaces import Ablation, AblationRow, load_ablations, spaces_dir
from suite.reporting.footer import footer_text, uncertainty_text
from suite.reporting.table import MISSING, TIE, Table, fmt, fmt_diff, fmt_interval, natural_key

TABLE_COLUMN = "ablation.table"  # records frame columns holding TrialRecord.ablation
ROW_COLUMN = "ablation.row"


@dataclass
class AblationResult:
    ablation: Ablation
    table: Table | None  # None when no row has records
    missing: dict[str, list[str]]  # dataset -> labels of rows without records
    numeric: pd.DataFrame
    seeds: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # ``closest_pair_seeds`` per dataset


def recorded_ablations(frame: pd.DataFrame, declared: Sequence[Ablation]) -> list[Ablation]:
    """``declared`` in paper order (by source, then id), each with the row ids the records carry
    but it does not declare appended, then a table for every recorded table id nobody declares."""
    recorded: dict[str, list[str]] = {}
    for table_id, row_id in frame[[TABLE_COLUMN, ROW_COLUMN]].dropna().drop_duplicates().itertuples(index=False):
        recorded.setdefault(str(table_id), []).append(str(row_id))
    out = []
    # paper tables in paper order, then the suite's own tables (no paper source)
    for ablation in sorted(declared, key=lambda a: (not a.source, natural_key(a.source), a.id)):
        extra = sorted(set(recorded.get(ablation.id, [])) - {r.id for r in ablation.rows}, key=natural_key)
        if extra:
            ablation = dataclasses.replace(ablation, rows=(*ablation.rows, *(_bare_row(r) for r in extra)))
        out.append(ablation)
    known = {a.id for a in declared}
    for table_id in sorted(set(recorded) - known, key=natural_key):
        rows = tuple(_bare_row(r) for r in sorted(set(recorded[table_id]), key=natural_key))
        out.append(Ablation(id=table_id, title=f"Ablation {table_id!r} (declared by no space file)", rows=rows))
    return out


def _bare_row(row_id: str) -> AblationRow:
    """A row the records name but no space file declares: labelled by its id, no published numbers."""
    return AblationRow(id=row_id, label=f"{row_id} (not in the space file)", overrides={})


def _choose(cand: pd.DataFrame, sel_col: str, metric_cols: list[str]) -> tuple[str, int]:
    """(label, configurations): the configuration covering the most categories (a mean over fewer
    categories is not comparable), then with the best selection metric (seeds averaged first)."""
    columns = list(dict.fromkeys([sel_col, *metric_cols]))  # sel_col may be a test metric
    stats = agg.seed_stats(cand, columns, by=("label", "category"))
    per_label = stats.groupby("label")[columns].mean(numeric_only=True)
    coverage = stats.groupby("label")["category"].nunique().reindex(per_label.index)
    ranking = pd.DataFrame({"coverage": coverage, "score": per_label[sel_col].fillna(-np.inf)})
    order = ranking.sort_values(["coverage", "score"], ascending=False, kind="stable")
    return str(order.index[0]), len(per_label)


def _ours_text(cell: agg.CellStats) -> str:
    return fmt(cell.mean) + (fmt_interval(cell.low, cell.high) if cell.values >= 2 else "")


def _p_text(p: float, pairs: int) -> str:
    if not pairs:
        return f"no pairs {TIE}"
    return f"{p:.3f}" + ("" if agg.separable(p) else f" {TIE}")


def closest_pair_seeds(block: Sequence[tuple[str, dict[str, agg.SeedValues]]], metric: str) -> dict[str, Any]:
    """For the neighbouring rows of ``block`` (label, values per metric) whose paired mean difference of
    ``metric`` is smallest in size: the rows, the difference and spread (percentage points), the
    pairs, categories and seeds behind it, the sign-flip p and the seeds per row a paired test needs
    (``agg.seeds_needed``: a normal power calculation, 80 % power, α = 0.05). {} without two rows."""
    best: dict[str, Any] = {}
    for (above, a), (below, b) in zip(block, block[1:]):
        d = agg.paired_differences(b[metric], a[metric]) * 100.0
        if d.size < 2:
            continue
        if best and abs(d.mean()) >= abs(best["mean_diff"]):
            continue
        categories = len({c for c, _ in set(a[metric]) & set(b[metric])})
        seeds_now = min(max(1, round(d.size / max(categories, 1))), d.size)
        needed = agg.seeds_needed(d, categories)
        best = {
            "above": above, "below": below, "mean_diff": float(d.mean()), "sd_diff": float(d.std(ddof=1)),
            "pairs": int(d.size), "categories": categories, "seeds": seeds_now,
            "p": agg.sign_flip_test(d), "seeds_needed": needed,
            "more_seeds": (max(0.0, needed - seeds_now) if math.isfinite(needed) else needed),
        }
    return best


def ablation_tables(
    frame: pd.DataFrame,
    select_on: str = "val",
    split: str = "test",
    ablations: Sequence[Ablation] | None = None,
) -> list[AblationResult]:
    """Each ablation as rows ours | paper | Δ (ours − paper) per dataset.

    ``ablations`` defaults to every ablation space in ``search_spaces/``. A row holds the ok records
    whose ``ablation.table`` / ``ablation.row`` are its ids. When they hold several configurations
    (e.g. the space run on two base configs), the one covering the most categories, then with the
    best mean ``<select_on>.i_auroc`` over its categories (seeds averaged first), is shown and
    named. Ours = mean over that configuration's categories of the seed-averaged ``<split>``
    metrics, with its 95 % hierarchical bootstrap interval, seeds and categories (``agg.cell_stats``);
    each row is tested against the nearest row above it with records (``agg.paired_test`` over their
    common (category, seed) pairs, per metric). Rows without records are named as missing.
    ``AblationResult.seeds``: per dataset, ``closest_pair_seeds`` of the table's first metric.
    """
    declared = list(ablations) if ablations is not None else load_ablations()
    ok = agg.ok_records(frame)
    sel_col, sel_note = agg.selection_column(frame, select_on)
    if TABLE_COLUMN not in ok or ROW_COLUMN not in ok:  # a frame of records from before ablation ids
        ok = ok.assign(**{TABLE_COLUMN: None, ROW_COLUMN: None})
    tagged = ok[ok[TABLE_COLUMN].notna() & ok[ROW_COLUMN].notna()]
    results = []
    for ablation in recorded_ablations(tagged, declared):
        metrics = list(ablation.metrics)
        metric_cols = [f"{split}.{m}" for m in metrics]
        in_table = tagged[tagged[TABLE_COLUMN].astype(str) == ablation.id]
        datasets = sorted({str(d) for d in in_table["dataset"]}, key=agg.dataset_sort_key)
        display_rows: list[list[str]] = []
        numeric_rows: list[dict[str, Any]] = []
        missing: dict[str, list[str]] = {}
        rule_before: set[int] = set()
        used = []
        seeds_advice: list[dict[str, Any]] = []
        for dataset in datasets:
            dok = in_table[in_table["dataset"] == dataset]
            if display_rows:
                rule_before.add(len(display_rows))
            above: dict[str, agg.SeedValues] | None = None  # the previous row's values, per metric
            above_label = ""
            block: list[tuple[str, dict[str, agg.SeedValues]]] = []
            for row in ablation.rows:
                cand = dok[dok[ROW_COLUMN].astype(str) == row.id]
                cells = {m: agg.EMPTY_CELL for m in metrics}
                values: dict[str, agg.SeedValues] = {m: {} for m in metrics}
                chosen, n_rec, n_cfg = "", 0, 0
                if not cand.empty:
                    chosen, n_cfg = _choose(cand, sel_col, metric_cols)
                    rows_of = cand[cand["label"] == chosen]
                    values = {m: agg.seed_values(rows_of, c).get(chosen, {}) for m, c in zip(metrics, metric_cols)}
                    cells = {m: agg.cell_stats(values[m], scale=100.0) for m in metrics}
                    n_rec = len(rows_of)
                    used.append(rows_of)
                else:
                    missing.setdefault(dataset, []).append(row.label)
                ours = {m: cells[m].mean for m in metrics}
                first = cells[metrics[0]]
                tests = {m: (agg.paired_test(values[m], above[m]) if chosen and above is not None else (math.nan, 0))
                         for m in metrics}
                pub = row.paper.get(dataset, {})
                pub_vals = {m: float(pub.get(m, math.nan)) for m in metrics}
                diff = {m: ours[m] - pub_vals[m] for m in metrics}
                config_text = chosen if chosen else "missing"
                if n_cfg > 1:
                    config_text += f" (best of {n_cfg} by {sel_col})"
                display_rows.append([
                    row.label if len(datasets) == 1 else f"{row.label} [{dataset}]",
                    " / ".join(_ours_text(cells[m]) for m in metrics) if chosen else "missing",
                    " / ".join(fmt(pub_vals[m]) for m in metrics) if pub else MISSING,
                    " / ".join(fmt_diff(diff[m]) for m in metrics) if chosen and pub else MISSING,
                    first.seeds_text if chosen else "0",
                    str(first.categories) if chosen else "0",
                    str(n_rec),
                    " / ".join(_p_text(*tests[m]) for m in metrics) if chosen and above is not None else MISSING,
                    config_text,
                ])
                numeric = {"table": ablation.id, "dataset": dataset, "row": row.id, "name": row.label}
                for m in metrics:
                    numeric[f"ours.{m}"] = ours[m]
                    numeric[f"ours.{m}.low"] = cells[m].low
                    numeric[f"ours.{m}.high"] = cells[m].high
                    numeric[f"paper.{m}"] = pub_vals[m]
                    numeric[f"diff.{m}"] = diff[m]
                    numeric[f"p_above.{m}"] = tests[m][0]
                    numeric[f"pairs_above.{m}"] = tests[m][1]
                    numeric[f"separable_above.{m}"] = agg.separable(tests[m][0]) if tests[m][1] else None
                numeric.update({"seeds": first.seeds_text if chosen else "0", "seeds_min": first.seeds_min,
                                "seeds_max": first.seeds_max, "categories": first.categories, "records": n_rec,
                                "label": chosen or None, "configurations": n_cfg})
                numeric_rows.append(numeric)
                if chosen:
                    if above is not None:
                        block.append((above_label, above))
                    above, above_label = values, row.label
            if above is not None:
                block.append((above_label, above))
            advice = closest_pair_seeds(block, metrics[0])
            if advice:
                seeds_advice.append({"table": ablation.id, "dataset": dataset, "metric": metrics[0], **advice})
        numeric_frame = pd.DataFrame(numeric_rows)
        if not used:
            results.append(AblationResult(ablation, None, {}, numeric_frame))
            continue
        table = _table(ablation, display_rows, numeric_frame, rule_before, missing, pd.concat(used), split, sel_col,
                       sel_note)
        results.append(AblationResult(ablation, table, missing, numeric_frame, seeds_advice))
    return results


def _table(
    ablation: Ablation, rows: list[list[str]], numeric: pd.DataFrame, rule_before: set[int],
    missing: dict[str, list[str]], used: pd.DataFrame, split: str, sel_col: str, sel_note: str,
) -> Table:
    metric_text = " / ".join(agg.METRIC_NAMES.get(m, m) for m in ablation.metrics)
    if ablation.path is None:
        where = "no space file"
    else:
        where = (
            f"`search_spaces/{ablation.path.name}`" if ablation.path.parent == spaces_dir() else f"`{ablation.path}`"
        )
    base = ", ".join(f"{k}={agg.format_value(v)}" for k, v in ablation.base.items())
    notes = [
        f"{metric_text} in % on the {split} split, mean over the chosen configuration's categories "
        "(seeds averaged first) [95 % interval, where a row rests on ≥ 2 values]; Δ = ours − paper.",
        f"Seeds: per category (min–max). p vs row above: the paired test of this row against the nearest row "
        f"above it with records, over their common (category, seed) pairs, per metric; {TIE}: the data cannot "
        f"separate the two rows (p ≥ {agg.ALPHA:g}, or no common pairs).",
        f"Rows: the records carrying this table's ablation ids, written by sweeps of {where}"
        f"{f' (BASE: {base})' if base else ''}; records from before ablation ids carry none and are not shown.",
        *ablation.notes,
        f"Paper: {ablation.source or 'no published numbers'}.",
    ]
    for dataset, labels in missing.items():
        notes.append(f"missing ({agg.DATASET_NAMES.get(dataset, dataset)}): {', '.join(labels)}")
    cats = numeric.loc[numeric["records"] > 0, "categories"]
    if cats.nunique() > 1:
        notes.append("Rows cover different numbers of categories; compare with care.")
    if sel_note:
        notes.append(sel_note)
    return Table(
        name=f"ablation_{ablation.id}",
        title=ablation.title,
        header=["Setting", f"Ours {metric_text}", f"Paper {metric_text}", "Δ (ours − paper)", "Seeds", "Categories",
                "Records", "p vs row above", "Configuration"],
        rows=rows,
        notes=notes,
        footer=footer_text(used, f"rows chosen on `{sel_col}`" + (f" ({sel_note})" if sel_note else ""))
        + " " + uncertainty_text(),
        numeric=numeric,
        rule_before=rule_before,
    )
