"""What a trial reports while it runs, without pandas: the mean over its categories
(``pooled_metrics``) and a record another trial already made for the same training
(``answer_from_records``). Imported by the trial processes; no Ray here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from suite.records import RECORD_NAME, TrialRecord, read_record

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


def answer_from_records(records_dir: Path, config_hash: str, exclude_trial: str) -> TrialRecord | None:
    """An ``ok`` record of another trial in this sweep with the same config hash, or None.

    TPE on a small discrete space proposes the same point again and again; the config hash covers
    every value that shapes a result (the category and the seed included), so an equal hash is the
    same training. The sweep then answers the sampler from that record instead of training it
    again (``suite.orchestration.trial``). The oldest matching record wins, so every duplicate
    points at the same original.
    """
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
