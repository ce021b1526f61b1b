"""Sweep results without Ray: pooled metrics, the records CSV, the per-trial table, Pareto set, best trials.

Reads what ``suite.orchestration.driver`` leaves under ``<storage>/<name>/records/`` (one record per
trial and category, plus each trial's ``params.json``) and writes ``records.csv`` and, for a
multi-objective sweep, ``pareto.csv`` / ``pareto.json``. What a trial reports while it runs (the
mean over its categories) is ``suite.orchestration.pooled``, which trial processes import instead.

No Ray import here (a test checks it): results can be rebuilt on a machine without Ray.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from suite.aggregate import frame_for_csv, load_records, pareto_front, records_frame
from suite.orchestration.pooled import COST_KEYS, answer_from_records, as_float, nan_mean, pooled_metrics
from suite.records import TrialRecord, atomic_write_json

__all__ = ["COST_KEYS", "answer_from_records", "as_float", "best_trials", "nan_mean", "pooled_metrics",
           "trial_table", "utilisation", "write_pareto", "write_records_csv"]

def write_records_csv(records_dir: Path, out_csv: Path) -> tuple[Path, Any]:
    """All records under ``records_dir`` as one CSV (via suite.aggregate); returns (path, frame)."""
    records_dir.mkdir(parents=True, exist_ok=True)
    loaded = load_records(records_dir)
    for path, err in loaded.unreadable:
        print(f"[sweep] warning: unreadable record {path}: {err}", flush=True)
    frame = records_frame(loaded)
    frame_for_csv(frame).to_csv(out_csv, index=False)
    return out_csv, frame


def trial_table(records_dir: Path, select_on: str, cost_metric: str) -> list[dict[str, Any]]:
    """One row per (study, trial): mean val/test metrics and cost over the trial's categories."""
    loaded = load_records(records_dir)
    by_trial: dict[str, list[TrialRecord]] = {}
    for record in loaded.records:
        by_trial.setdefault(str(record.trial_id), []).append(record)
    rows = []
    for trial_id, records in sorted(by_trial.items()):
        params_path = records_dir / trial_id / "params.json"
        params = json.loads(params_path.read_text()) if params_path.exists() else {}
        expected = params.get("categories") or sorted({r.category for r in records})
        ok = [r for r in records if r.status == "ok"]
        row: dict[str, Any] = {
            "trial_id": trial_id,
            "study": ",".join(expected),
            "categories": ",".join(sorted(r.category for r in records)),
            "complete": len(ok) == len(expected) and len(ok) > 0,
            "status": ",".join(sorted({r.status for r in records})),
            "overrides": json.dumps(params.get("overrides", {}), sort_keys=True),
        }
        for split in ("val", "test"):
            for metric in ("i_auroc", "p_auroc", "aupro"):
                row[f"{split}_{metric}"] = nan_mean([as_float(r.metrics.get(split, {}).get(metric)) for r in ok])
        for key in COST_KEYS:
            row[key] = nan_mean([as_float(r.cost.get(key)) for r in ok])
        row["selection"] = select_on
        rows.append(row)
    return rows


def write_pareto(rows: list[dict[str, Any]], sweep_dir: Path, select_on: str, cost_metric: str) -> tuple[Path, Path]:
    """Non-dominated complete trials (max ``<select_on>_i_auroc``, min cost) to pareto.csv / .json.

    One front per study (the pooled study, or each category of a per-category sweep).
    """
    accuracy = f"{select_on}_i_auroc"
    complete = pd.DataFrame([r for r in rows if r["complete"]])
    fronts = []
    if not complete.empty:
        for _, group in complete.groupby("study", sort=True):
            fronts.append(pareto_front(group, maximize=[accuracy], minimize=[cost_metric]).sort_values(cost_metric))
    columns = ["trial_id", "study", accuracy, cost_metric, "overrides"]
    front = pd.concat(fronts, ignore_index=True) if fronts else pd.DataFrame(columns=columns)
    csv_path, json_path = sweep_dir / "pareto.csv", sweep_dir / "pareto.json"
    front.to_csv(csv_path, index=False)
    atomic_write_json(
        json_path,
        {"objectives": {accuracy: "max", cost_metric: "min"}, "selection": select_on,
         "trials_considered": int(len(complete)), "front": json.loads(front.to_json(orient="records"))},
    )
    return csv_path, json_path


def best_trials(rows: list[dict[str, Any]], objective: str, p_weight: float, select_on: str) -> dict[str, Any]:
    """The best complete trial of each study by the objective on the ``select_on`` split."""
    best: dict[str, Any] = {}
    for row in rows:
        if not row["complete"]:
            continue
        i = row[f"{select_on}_i_auroc"]
        value = (1 - p_weight) * i + p_weight * row[f"{select_on}_p_auroc"] if objective == "val_mix" else i
        if math.isnan(value):
            continue
        if row["study"] not in best or value > best[row["study"]]["objective"]:
            best[row["study"]] = {**row, "objective": value}
    return best


def utilisation(
    records: list[TrialRecord], slots: int, wall_s: float, start: float | None = None
) -> dict[str, Any]:
    """How full the sweep kept its slots: busy slot-seconds ÷ (slots × wall time).

    ``busy`` is the sum over records of ``finished - started`` (one record = one category of one
    trial; a trial runs its categories one after another in its slot, so their intervals add up).
    With ``start`` (the sweep's wall-clock start, ``time.time()``), each interval is clipped to
    ``[start, start + wall_s]`` so records an earlier, resumed run left behind do not count.
    Records without both timestamps (older than record version 4, or filled in for a trial that
    died) are skipped and counted in ``untimed``. Returns ``{"utilisation", "busy_s", "slots",
    "wall_s", "timed", "untimed"}``; ``utilisation`` is NaN when ``slots`` or ``wall_s`` is not
    positive. It can exceed 1 only if records overlap within a slot (e.g. a DDP trial's shards).
    """
    busy = 0.0
    timed = untimed = 0
    for record in records:
        if record.started is None or record.finished is None:
            untimed += 1
            continue
        begin, end = float(record.started), float(record.finished)
        if start is not None:
            begin, end = max(begin, start), min(end, start + wall_s)
        busy += max(end - begin, 0.0)
        timed += 1
    capacity = slots * wall_s
    value = busy / capacity if slots > 0 and wall_s > 0 else math.nan
    return {"utilisation": value, "busy_s": busy, "slots": int(slots), "wall_s": float(wall_s), "timed": timed,
            "untimed": untimed}
