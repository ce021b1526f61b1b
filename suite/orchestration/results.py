"""Sweep results without Ray: pooled metrics, the records CSV, the per-trial table, Pareto set, best trials.

Reads what ``suite.orchestration.driver`` leaves under ``<storage>/<name>/records/`` (one record per
trial and category, plus each trial's ``params.json``) and writes ``records.csv`` and, for a
multi-objective sweep, ``pareto.csv`` / ``pareto.json``. Also the mean over categories a pooled
trial reports (``pooled_metrics``, used inside the trial by ``suite.orchestration.trial``).

No Ray import here (a test checks it): results can be rebuilt on a machine without Ray.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from suite.records import TrialRecord, atomic_write_json

COST_KEYS = ("latency_ms", "gflops", "params")


def as_float(value: Any) -> float:
    """``float(value)``, or NaN when it is missing or not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def nan_mean(values: list[float]) -> float:
    """Mean of the non-NaN values (NaN when there are none)."""
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def pooled_metrics(finals: dict[str, dict[str, float]], current: dict[str, Any] | None = None) -> dict[str, float]:
    """Mean over categories of every numeric key: finished categories plus the running one."""
    parts = list(finals.values()) + ([current] if current else [])
    keys = sorted({k for p in parts for k, v in p.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    keys = [k for k in keys if k.startswith("val_") or k in COST_KEYS]
    return {k: nan_mean([as_float(p[k]) for p in parts if k in p]) for k in keys}


def write_records_csv(records_dir: Path, out_csv: Path) -> tuple[Path, Any]:
    """All records under ``records_dir`` as one CSV (via suite.aggregate); returns (path, frame)."""
    from suite.aggregate import frame_for_csv, load_records, records_frame

    records_dir.mkdir(parents=True, exist_ok=True)
    loaded = load_records(records_dir)
    for path, err in loaded.unreadable:
        print(f"[sweep] warning: unreadable record {path}: {err}", flush=True)
    frame = records_frame(loaded)
    frame_for_csv(frame).to_csv(out_csv, index=False)
    return out_csv, frame


def trial_table(records_dir: Path, select_on: str, cost_metric: str) -> list[dict[str, Any]]:
    """One row per (study, trial): mean val/test metrics and cost over the trial's categories."""
    from suite.aggregate import load_records

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
    import pandas as pd

    from suite.aggregate import pareto_front

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


def answer_from_records(records_dir: Path, config_hash: str, exclude_trial: str) -> TrialRecord | None:
    """An ``ok`` record of another trial in this sweep with the same config hash, or None.

    TPE on a small discrete space proposes the same point again and again; the config hash covers
    every value that shapes a result (the category and the seed included), so an equal hash is the
    same training. The sweep then answers the sampler from that record instead of training it
    again (``suite.orchestration.trial``). The oldest matching record wins, so every duplicate
    points at the same original.
    """
    from suite.records import RECORD_NAME, read_record

    found: list[TrialRecord] = []
    for path in Path(records_dir).glob(f"*/*/{RECORD_NAME}"):
        if path.parent.parent.name == exclude_trial:
            continue
        try:
            record = read_record(path)
        except (OSError, ValueError):
            continue
        if record.config_hash == config_hash and record.status == "ok":
            found.append(record)
    return min(found, key=lambda r: (r.finished or 0.0, str(r.trial_id))) if found else None
