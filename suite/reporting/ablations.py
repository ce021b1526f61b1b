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
from suite.reporting.footer import footer_text
from suite.reporting.table import MISSING, Table, fmt, fmt_diff, natural_key, pct

TABLE_COLUMN = "ablation.table"  # records frame columns holding TrialRecord.ablation
ROW_COLUMN = "ablation.row"


@dataclass
class AblationResult:
    ablation: Ablation
    table: Table | None  # None when no row has records
    missing: dict[str, list[str]]  # dataset -> labels of rows without records
    numeric: pd.DataFrame


def recorded_ablations(frame: pd.DataFrame, declared: Sequence[Ablation]) -> list[Ablation]:
    """``declared`` in paper order (by source, then id), each with the row ids the records carry
    but it does not declare appended, then a table for every recorded table id nobody declares."""
    recorded: dict[str, list[str]] = {}
    for table_id, row_id in frame[[TABLE_COLUMN, ROW_COLUMN]].dropna().drop_duplicates().itertuples(index=False):
        recorded.setdefault(str(table_id), []).append(str(row_id))
    out = []
    for ablation in sorted(declared, key=lambda a: (natural_key(a.source), a.id)):
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
    metrics. Rows without records are named as missing.
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
        for dataset in datasets:
            dok = in_table[in_table["dataset"] == dataset]
            if display_rows:
                rule_before.add(len(display_rows))
            for row in ablation.rows:
                cand = dok[dok[ROW_COLUMN].astype(str) == row.id]
                ours = {m: math.nan for m in metrics}
                chosen, n_cat, n_rec, n_cfg = "", 0, 0, 0
                if not cand.empty:
                    columns = list(dict.fromkeys([sel_col, *metric_cols]))  # sel_col may be a test metric
                    stats = agg.seed_stats(cand, columns, by=("label", "category"))
                    per_label = stats.groupby("label")[columns].mean(numeric_only=True)
                    n_cfg = len(per_label)
                    # Configurations that cover the most categories first (a mean over fewer
                    # categories is not comparable), then the best selection metric.
                    coverage = stats.groupby("label")["category"].nunique().reindex(per_label.index)
                    ranking = pd.DataFrame({"coverage": coverage, "score": per_label[sel_col].fillna(-np.inf)})
                    order = ranking.sort_values(["coverage", "score"], ascending=False, kind="stable")
                    chosen = str(order.index[0])
                    chosen_stats = stats[stats["label"] == chosen]
                    ours = {m: pct(chosen_stats[c].mean()) if c in chosen_stats else math.nan for m, c in zip(metrics, metric_cols)}
                    n_cat = int(chosen_stats[metric_cols[0]].notna().sum()) if metric_cols[0] in chosen_stats else 0
                    n_rec = int(chosen_stats["n"].sum())
                    used.append(cand[cand["label"] == chosen])
                else:
                    missing.setdefault(dataset, []).append(row.label)
                pub = row.paper.get(dataset, {})
                pub_vals = {m: float(pub.get(m, math.nan)) for m in metrics}
                diff = {m: ours[m] - pub_vals[m] for m in metrics}
                config_text = chosen if chosen else "missing"
                if n_cfg > 1:
                    config_text += f" (best of {n_cfg} by {sel_col})"
                display_rows.append([
                    row.label if len(datasets) == 1 else f"{row.label} [{dataset}]",
                    " / ".join(fmt(ours[m]) for m in metrics) if chosen else "missing",
                    " / ".join(fmt(pub_vals[m]) for m in metrics) if pub else MISSING,
                    " / ".join(fmt_diff(diff[m]) for m in metrics) if chosen and pub else MISSING,
                    str(n_cat) if chosen else "0",
                    str(n_rec) if chosen else "0",
                    config_text,
                ])
                numeric = {"table": ablation.id, "dataset": dataset, "row": row.id, "name": row.label}
                for m in metrics:
                    numeric[f"ours.{m}"] = ours[m]
                    numeric[f"paper.{m}"] = pub_vals[m]
                    numeric[f"diff.{m}"] = diff[m]
                numeric.update({"categories": n_cat, "records": n_rec, "label": chosen or None, "configurations": n_cfg})
                numeric_rows.append(numeric)
        numeric_frame = pd.DataFrame(numeric_rows)
        if not used:
            results.append(AblationResult(ablation, None, {}, numeric_frame))
            continue
        results.append(AblationResult(ablation, _table(ablation, display_rows, numeric_frame, rule_before, missing,
                                                       pd.concat(used), split, sel_col, sel_note), missing, numeric_frame))
    return results


def _table(
    ablation: Ablation, rows: list[list[str]], numeric: pd.DataFrame, rule_before: set[int],
    missing: dict[str, list[str]], used: pd.DataFrame, split: str, sel_col: str, sel_note: str,
) -> Table:
    metric_text = " / ".join(agg.METRIC_NAMES.get(m, m) for m in ablation.metrics)
    if ablation.path is None:
        where = "no space file"
    else:
        where = f"`search_spaces/{ablation.path.name}`" if ablation.path.parent == spaces_dir() else f"`{ablation.path}`"
    base = ", ".join(f"{k}={agg.format_value(v)}" for k, v in ablation.base.items())
    notes = [
        f"{metric_text} in % on the {split} split, mean over the chosen configuration's categories "
        "(seeds averaged first); Δ = ours − paper.",
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
        header=["Setting", f"Ours {metric_text}", f"Paper {metric_text}", "Δ (ours − paper)", "Categories", "Records", "Configuration"],
        rows=rows,
        notes=notes,
        footer=footer_text(used, f"rows chosen on `{sel_col}`" + (f" ({sel_note})" if sel_note else "")),
        numeric=numeric,
        rule_before=rule_before,
    )
