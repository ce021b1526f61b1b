"""The flat frame: one row per record (identity, config.*, <split>.<metric>, cost.*, time.*, step.*, shift.*)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from suite.aggregate.labels import configuration_labels
from suite.aggregate.loading import RecordSet
from suite.aggregate.shifts import shift_row
from suite.aggregate.names import COSTS, DIAG_PREFIX, METRICS, SCORING_PREFIX, SPLITS, STAGES
from suite.config import flatten
from suite.config_aliases import report_view
from suite.records import TrialRecord

# Per-stage step breakdown (record.step_breakdown): ``step.<stage>.<field>``, e.g. ``step.stage1.data_s``.
# Measurements of a run, not config keys, so they never enter a configuration's label.
STEP_PREFIX = "step."


def _hashable(value: Any) -> Any:
    """Lists become tuples so config values can be grouped and compared."""
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def _number(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def record_row(record: TrialRecord, path: str | Path | None = None) -> dict[str, Any]:
    """One flat row: identity, ``config.*``, ``<split>.<metric>``, ``cost.*``, ``time.*``."""
    row: dict[str, Any] = {
        "record_path": str(path) if path is not None else None,
        "trial_id": record.trial_id,
        "sweep": record.sweep,
        "seed": record.seed,
        "status": record.status,
        "error": record.error,
        "dataset": record.dataset,
        "category": record.category,
        "method": record.method,
        "selection": record.selection,
        "config_hash": record.config_hash,
        "created": record.created,
        "hostname": (record.node or {}).get("hostname"),
        "version.git_commit": (record.versions or {}).get("git_commit"),
        "version.rcsuite": (record.versions or {}).get("rcsuite"),
        "version.torch": (record.versions or {}).get("torch"),
    }
    for key, value in report_view(flatten(record.config or {}), record.method).items():
        row[f"config.{key}"] = _hashable(value)
    for split in SPLITS:
        values = (record.metrics or {}).get(split, {}) or {}
        for name in METRICS:
            row[f"{split}.{name}"] = _number(values.get(name))
    for split, values in (record.metrics or {}).items():  # extra splits or metrics are kept too
        for name, value in (values or {}).items():
            row.setdefault(f"{split}.{name}", _number(value))
    cost = record.cost or {}
    for name in COSTS:
        row[f"cost.{name}"] = _number(cost.get(name))
    for name, value in cost.items():
        if name not in COSTS:
            row[f"cost.{name}"] = value if isinstance(value, (bool, str)) or value is None else _number(value)
    times = record.stage_times or {}
    for stage in STAGES:
        row[f"time.{stage}"] = _number(times.get(stage))
    for stage, value in times.items():
        row.setdefault(f"time.{stage}", _number(value))
    stage_values = [_number(v) for v in times.values()]
    row["time.total"] = float(np.nansum(stage_values)) if stage_values else math.nan
    for stage, values in (record.step_breakdown or {}).items():
        for name, value in (values or {}).items():
            row[breakdown_column(stage, name)] = _number(value)
    row["info.scoring"] = (record.info or {}).get("scoring")
    row["ablation.table"] = (record.ablation or {}).get("table")  # set by ablation spaces' trials
    row["ablation.row"] = (record.ablation or {}).get("row")
    for split, families in (record.diagnostics or {}).items():
        for family, steps in (families or {}).items():
            for step, values in (steps or {}).items():
                for name, value in (values or {}).items():
                    row[diagnostic_column(split, family, step, name)] = _number(value)
    for variant, splits in (record.scorings or {}).items():
        for split, values in (splits or {}).items():
            for name, value in (values or {}).items():
                row[scoring_column(variant, split, name)] = _number(value)
    row.update(shift_row(record))  # shift.*, data_shift.*, info.score_brightness_spearman (record version 6)
    gallery = (record.artifacts or {}).get("gallery")
    if gallery and path is not None:
        row["gallery"] = os.path.realpath(Path(path).parent / gallery)
    else:
        row["gallery"] = None
    return row


def diagnostic_column(split: str, family: str, step: Any, metric: str) -> str:
    return f"{DIAG_PREFIX}{split}.{family}.{step}.{metric}"


def scoring_column(variant: str, split: str, metric: str) -> str:
    return f"{SCORING_PREFIX}{variant}.{split}.{metric}"


def breakdown_column(stage: str, name: str) -> str:
    return f"{STEP_PREFIX}{stage}.{name}"


def breakdown_columns(frame: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(column, stage, field) of every ``step.*`` column."""
    out = []
    for col in frame.columns:
        parts = str(col)[len(STEP_PREFIX):].split(".", 1) if str(col).startswith(STEP_PREFIX) else []
        if len(parts) == 2:
            out.append((str(col), *parts))
    return out


def diagnostic_columns(frame: pd.DataFrame, split: str | None = None) -> list[tuple[str, str, str, str, str]]:
    """(column, split, family, step, metric) of every ``diag.*`` column, optionally of one split."""
    out = []
    for col in frame.columns:
        parts = str(col)[len(DIAG_PREFIX):].split(".") if str(col).startswith(DIAG_PREFIX) else []
        if len(parts) == 4 and (split is None or parts[0] == split):
            out.append((str(col), *parts))
    return out


def scoring_columns(frame: pd.DataFrame, split: str | None = None) -> list[tuple[str, str, str, str]]:
    """(column, variant, split, metric) of every ``scoring.*`` column; the variant may hold dots."""
    out = []
    for col in frame.columns:
        if not str(col).startswith(SCORING_PREFIX):
            continue
        parts = str(col)[len(SCORING_PREFIX):].rsplit(".", 2)
        if len(parts) == 3 and (split is None or parts[1] == split):
            out.append((str(col), *parts))
    return out


def step_sort_key(step: str) -> tuple[int, float, str]:
    """Numeric steps in order ("2" before "10"), then anything else (e.g. "all")."""
    try:
        return (0, float(step), str(step))
    except (TypeError, ValueError):
        return (1, math.inf, str(step))


def records_frame(
    records: RecordSet | Sequence[TrialRecord], paths: Sequence[str | Path] | None = None
) -> pd.DataFrame:
    """One row per record (see ``record_row``) plus a ``label`` column naming its configuration."""
    if isinstance(records, RecordSet):
        paths = records.paths
        records = records.records
    if paths is not None and len(paths) != len(records):
        raise ValueError(f"records_frame: {len(records)} records but {len(paths)} paths")
    rows = [record_row(r, paths[i] if paths is not None else None) for i, r in enumerate(records)]
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=["record_path", "status", "dataset", "category", "method", "seed"])
    frame["label"] = configuration_labels(frame)
    return frame


def frame_for_csv(frame: pd.DataFrame) -> pd.DataFrame:
    """Tuples (config lists) written as JSON-like lists so the CSV reads back unambiguously."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].map(lambda v: "[" + ", ".join(map(str, v)) + "]" if isinstance(v, tuple) else v)
    return out
