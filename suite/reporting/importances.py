"""Optuna's parameter importances next to the Spearman screening, and where the two disagree.

A sweep run with ``--optuna-storage`` stores ``optuna_importances.json`` in its folder at the end
(``suite.tracking.write_optuna_importances``: fANOVA per study and objective). The report is built
only from stored files, so it reads that file when one lies in (or just above) a report input
folder, and compares it with ``suite.aggregate.parameter_importance`` (|Spearman ρ| over records).

The two measure different things: fANOVA apportions the variance of the study's objective (the
value Optuna optimised, pooled over categories for a pooled study) among the sampled parameters,
interactions and non-monotone effects included; Spearman ranks one key at a time by a monotone
association with the selection metric of each record, after centring per category. Disagreement
is flagged per key when one method ranks it in its top half and the other in its bottom half
(or does not rank it at all), and when they name different most-important keys.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from suite.reporting.table import MISSING, Table, fmt

IMPORTANCES_NAME = "optuna_importances.json"  # = suite.tracking.IMPORTANCES_NAME (no optional import here)


def find_importance_files(run_dirs: Sequence[str | Path]) -> list[Path]:
    """``optuna_importances.json`` files in, under, or one level above each report input folder
    (the sweep folder when the input is its ``records/``)."""
    found: list[Path] = []
    for folder in run_dirs:
        folder = Path(folder)
        if folder.is_file():
            folder = folder.parent
        candidates = [folder / IMPORTANCES_NAME, folder.parent / IMPORTANCES_NAME]
        if folder.is_dir():
            candidates += sorted(folder.rglob(IMPORTANCES_NAME))
        for path in candidates:
            if path.is_file() and path.resolve() not in {p.resolve() for p in found}:
                found.append(path)
    return found


def _ranks(values: dict[str, float], tol: float = 1e-9) -> dict[str, int]:
    """Competition ranks (1 = most important; tied values share the better rank)."""
    valid = {k: v for k, v in values.items() if not math.isnan(v)}
    return {k: 1 + sum(other > v + tol for other in valid.values()) for k, v in valid.items()}


def compare_importances(optuna_imp: dict[str, float], spearman: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """One row per key (Optuna importance and rank, |Spearman ρ| and rank, agree) and the
    sentences saying where the two disagree."""
    rho = {str(r["key"]): float(r["abs_spearman"]) for _, r in spearman.iterrows()} if not spearman.empty else {}
    o_rank, s_rank = _ranks(optuna_imp), _ranks(rho)
    keys = list(o_rank) + [k for k in s_rank if k not in o_rank]
    n_o, n_s = len(o_rank), len(s_rank)
    top_o = {k for k, r in o_rank.items() if r <= max(1, n_o // 2)}
    top_s = {k for k, r in s_rank.items() if r <= max(1, n_s // 2)}
    rows, lines = [], []
    for key in keys:
        in_both = key in o_rank and key in s_rank
        if in_both and n_o > 1 and n_s > 1:
            agree = (key in top_o) == (key in top_s)
        else:
            agree = None
        rows.append({"key": key, "optuna_importance": optuna_imp.get(key, math.nan), "optuna_rank": o_rank.get(key),
                     "abs_spearman": rho.get(key, math.nan), "spearman_rank": s_rank.get(key), "agree": agree})
        if agree is False:
            lines.append(
                f"`{key}`: Optuna ranks it {o_rank[key]} of {n_o} (importance {optuna_imp[key]:.3f}), Spearman "
                f"{s_rank[key]} of {n_s} (|ρ| {rho[key]:.3f}): "
                + ("important by fANOVA only (an interaction or a non-monotone effect?)." if key in top_o
                   else "important by Spearman only (a monotone trend the study's objective does not reflect?).")
            )
        elif key in o_rank and key not in s_rank and o_rank[key] <= max(1, n_o // 2):
            lines.append(f"`{key}`: ranked {o_rank[key]} of {n_o} by Optuna; Spearman does not rank it (not a "
                         "numeric key, or not varied over the report's ok records).")
    if o_rank and s_rank:
        first_o = sorted(k for k, r in o_rank.items() if r == 1)
        first_s = sorted(k for k, r in s_rank.items() if r == 1)
        if set(first_o).isdisjoint(first_s):
            names = lambda keys: " and ".join(f"`{k}`" for k in keys)  # noqa: E731
            lines.insert(0, f"Most important: {names(first_o)} by Optuna, {names(first_s)} by Spearman.")
    return pd.DataFrame(rows), lines


def optuna_importance_tables(
    spearman: pd.DataFrame, run_dirs: Sequence[str | Path], footer: str = ""
) -> dict[str, Table]:
    """A table per (study, objective) of every ``optuna_importances.json`` of the inputs."""
    tables: dict[str, Table] = {}
    for path in find_importance_files(run_dirs):
        try:
            data = json.loads(path.read_text())
            entries = list(data.get("studies", []))
        except (OSError, ValueError, AttributeError) as err:
            tables[f"optuna_importance_{len(tables)}"] = Table(
                name=f"optuna_importance_{len(tables)}", title="Parameter importance (Optuna)",
                header=["File", "Error"], rows=[[f"`{path}`", str(err)[:200]]], footer=footer)
            continue
        for entry in entries:
            index = len(tables)
            name = f"optuna_importance_{index}"
            title = f"Parameter importance (Optuna, study `{entry.get('study')}`, objective `{entry.get('objective')}`)"
            notes = [
                f"From `{path}`: {entry.get('evaluator', 'fANOVA')} over {entry.get('n_complete', '?')} complete of "
                f"{entry.get('n_trials', '?')} trials (objective {entry.get('direction', '')}d). Spearman: the "
                "parameter-importance table above (records of this report).",
            ]
            if entry.get("error"):
                rows = [[MISSING, MISSING, MISSING, MISSING, MISSING, f"no importances: {entry['error'][:160]}"]]
                tables[name] = Table(name=name, title=title, header=_HEADER, rows=rows, notes=notes, footer=footer)
                continue
            objective = str(entry.get("objective", ""))
            comparable = objective.startswith("val_")  # an accuracy objective, like the Spearman table's
            empty = pd.DataFrame(columns=["key", "abs_spearman"])
            frame, lines = compare_importances(dict(entry.get("importances") or {}), spearman if comparable else empty)
            if not comparable:
                notes.append(f"The study's objective `{objective}` is a cost, not the selection metric the Spearman "
                             "table ranks keys by: no comparison.")
            elif objective != "val_i_auroc":
                notes.append(f"The study optimised `{objective}`; the Spearman table ranks keys by the selection "
                             "metric, so part of a disagreement can come from the two targets.")
            rows = [
                [f"`{r['key']}`", fmt(r["optuna_importance"], digits=3), _rank(r["optuna_rank"]),
                 fmt(r["abs_spearman"], digits=3), _rank(r["spearman_rank"]),
                 {True: "yes", False: "**no**", None: MISSING}[r["agree"]]]
                for _, r in frame.iterrows()
            ] or [["no parameter", "", "", "", "", ""]]
            if comparable:
                notes.append(
                    "Agree: both put the key in the top half of their ranking, or both in the bottom half. fANOVA "
                    "splits the variance of the study's objective (interactions and non-monotone effects "
                    "included); Spearman measures a monotone trend per key."
                )
                notes += (["Where the two disagree:", *lines] if lines
                          else ["The two rankings agree on every key they share."])
            tables[name] = Table(name=name, title=title, header=_HEADER, rows=rows, notes=notes, footer=footer,
                                 numeric=frame)
    return tables


_HEADER = ["Config key", "Optuna importance", "Optuna rank", "|Spearman ρ|", "Spearman rank", "Agree"]


def _rank(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return str(int(value))
