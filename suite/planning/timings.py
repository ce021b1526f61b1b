"""Per-epoch timings for a plan from earlier records of the same configuration (``RecordTimings``);
calibration runs are ``suite.planning.calibration``, timings files ``suite.planning.timings_file``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable

from suite.planning.simulate import STAGES, Timing
from suite.records import find_records, read_record

# Keys of a config that never change how long a training takes (matched away when looking up records).
# The dataset root too: a timings file measured on a GPU machine is read where the data lives elsewhere.
_TIMING_FREE_KEYS = ("data.category", "data.root", "runtime.seed", "runtime.preset")


def timing_key(config: dict[str, Any], free_keys: Iterable[str] = ()) -> str:
    """A hash of a config dict with the keys that never change a training's duration removed
    (category, seed, preset name) plus ``free_keys`` (an Optuna space's sampled keys)."""
    cfg = copy.deepcopy(config)
    for key in (*_TIMING_FREE_KEYS, *free_keys):
        parts = key.split(".")
        cur = cfg
        for part in parts[:-1]:
            cur = cur.get(part, {}) if isinstance(cur, dict) else {}
        if isinstance(cur, dict):
            cur.pop(parts[-1], None)
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


def timing_from_record(record: Any) -> Timing | None:
    """Per-epoch seconds of one ok record (``stage_s / epochs``; validations included), its
    ``pre`` (data) and ``post`` (``busy - data - stages``) seconds; None when a stage came from the
    stage cache (its time is not a training's) or the record is not ok."""
    if getattr(record, "status", "ok") != "ok" or not record.stage_times:
        return None
    info = record.info or {}
    train = record.config.get("train", {})
    per_epoch: dict[str, float] = {}
    for stage in STAGES:
        if stage not in record.stage_times:
            continue
        if info.get(f"{stage}_from_cache"):
            return None
        epochs = int(train.get(stage, {}).get("epochs", 0) or 0)
        if epochs:
            per_epoch[stage] = float(record.stage_times[stage]) / epochs
    if not per_epoch:
        return None
    stages_s = sum(float(record.stage_times[s]) for s in STAGES if s in record.stage_times)
    pre = float(record.stage_times.get("data", 0.0))
    busy = record.busy_s if getattr(record, "busy_s", None) is not None else float(record.stage_times.get("total", 0.0))
    return Timing(per_epoch, pre_s=pre, post_s=max(0.0, busy - pre - stages_s), val_s=0.0, source="records",
                  peak_gpu_mb=peak_gpu_mb(record))


def peak_gpu_mb(record: Any) -> float | None:
    """The most GPU memory one training of a record took, in MiB, or None (not measured: a CPU run):
    the largest of ``cost.train_peak_cuda_mb``, ``cost.eval_peak_cuda_mb`` and the per-stage
    ``peak_reserved_mb`` / ``peak_allocated_mb`` of the record's step breakdown, where present."""
    values: list[float] = []
    cost = getattr(record, "cost", None) or {}
    for key in ("train_peak_cuda_mb", "eval_peak_cuda_mb"):
        if isinstance(cost.get(key), (int, float)):
            values.append(float(cost[key]))
    breakdown = getattr(record, "step_breakdown", None) or (getattr(record, "info", None) or {}).get("step_breakdown")
    for stage in (breakdown or {}).values():
        if isinstance(stage, dict):
            values += [float(stage[k]) for k in ("peak_reserved_mb", "peak_allocated_mb")
                       if isinstance(stage.get(k), (int, float))]
    values = [v for v in values if math.isfinite(v) and v > 0]
    return max(values) if values else None


def _mean_timing(timings: list[Timing], source: str) -> Timing:
    stages = sorted({s for t in timings for s in t.per_epoch_s})
    avg = lambda xs: sum(xs) / len(xs)  # noqa: E731
    peaks = [t.peak_gpu_mb for t in timings if t.peak_gpu_mb is not None]
    return Timing({s: avg([t.per_epoch_s[s] for t in timings if s in t.per_epoch_s]) for s in stages},
                  avg([t.pre_s for t in timings]), avg([t.post_s for t in timings]),
                  avg([t.val_s for t in timings]), source, peak_gpu_mb=max(peaks) if peaks else None)


class RecordTimings:
    """Timings of earlier records under ``roots`` (``**/record.json``), indexed by ``timing_key``."""

    def __init__(self, roots: Iterable[str | Path], free_keys: Iterable[str] = ()):
        self.free_keys = tuple(free_keys)
        self.by_key: dict[str, dict[str, list[Timing]]] = {}  # key -> category -> timings
        self.n_records = 0
        for root in roots:
            if not Path(root).exists():
                continue
            for path in find_records(root):
                try:
                    record = read_record(path)
                except ValueError:
                    continue
                timing = timing_from_record(record)
                if timing is None:
                    continue
                key = timing_key(record.config, self.free_keys)
                self.by_key.setdefault(key, {}).setdefault(record.category, []).append(timing)
                self.n_records += 1

    def lookup(self, config: dict[str, Any], category: str) -> Timing | None:
        """The mean timing of records of the same configuration and category; else of the same
        configuration on other categories (marked so in ``source``); else None."""
        found = self.by_key.get(timing_key(config, self.free_keys))
        if not found:
            return None
        if category in found:
            return _mean_timing(found[category], f"records ({len(found[category])})")
        others = [t for ts in found.values() for t in ts]
        return _mean_timing(others, f"records of other categories ({len(others)})")


def timing_dict(timing: Timing) -> dict[str, Any]:
    return asdict(timing)


