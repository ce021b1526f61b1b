"""Per-epoch timings for a plan: from earlier records of the same configuration, or from a short
calibration run (a few real batches of every stage through ``run_trial`` in a subprocess).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterable

from suite.config import load_yaml, save_yaml, with_overrides
from suite.planning.simulate import STAGES, Timing
from suite.records import find_records, read_record

# Keys of a config that never change how long a training takes (matched away when looking up records).
_TIMING_FREE_KEYS = ("data.category", "runtime.seed", "runtime.preset")


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
    return Timing(per_epoch, pre_s=pre, post_s=max(0.0, busy - pre - stages_s), val_s=0.0, source="records")


def _mean_timing(timings: list[Timing], source: str) -> Timing:
    stages = sorted({s for t in timings for s in t.per_epoch_s})
    avg = lambda xs: sum(xs) / len(xs)  # noqa: E731
    return Timing({s: avg([t.per_epoch_s[s] for t in timings if s in t.per_epoch_s]) for s in stages},
                  avg([t.pre_s for t in timings]), avg([t.post_s for t in timings]),
                  avg([t.val_s for t in timings]), source)


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


def calibration_overrides(cfg: Any, fraction: float) -> dict[str, Any]:
    """What a calibration run changes: 3 stage-1 epochs (validation after the 2nd when the sweep
    validates, so ``val_s = (t2 - t1) - (t3 - t2)``), 2 epochs of every later stage, a smaller
    ``data.data_fraction``, no checkpoints."""
    updates: dict[str, Any] = {"train.checkpoint_every": 0, "train.max_time_s": 0.0,
                               "data.data_fraction": fraction,
                               "train.eval_every": 2 if cfg.train.eval_every else 0}
    for stage in STAGES:
        if getattr(cfg.train, stage).epochs:
            updates[f"train.{stage}.epochs"] = 3 if stage == "stage1" else 2
    return updates


def _calibrate_child(cfg_path: str, out_dir: str, max_batches: int) -> dict[str, Any]:
    """Runs inside the calibration subprocess: ``run_trial`` on a shortened config, per-epoch
    seconds from the per-epoch timestamps, scaled to the full training set."""
    # torch: only in the calibration subprocess, so `plan` and the sweep driver stay light
    from suite.data import load_category
    from suite.pipeline import run_trial

    cfg = load_yaml(cfg_path)
    n_full = max(1, round(len(load_category(cfg.data, seed=cfg.runtime.seed).train)))
    bs1 = cfg.train.stage1.batch_size
    fraction = min(1.0, max_batches * bs1 / n_full) * cfg.data.data_fraction
    short = with_overrides(cfg, calibration_overrides(cfg, fraction))
    stamps: list[tuple[str, int, float]] = []
    record = run_trial(short, out_dir, on_epoch=lambda e: stamps.append((e["stage"], e["epoch"], time.perf_counter())),
                       log=lambda msg: None)
    n_cal = int(record.cost.get("n_train") or 1)
    n_full_train = max(1, round(n_cal * cfg.data.data_fraction / fraction)) if fraction < cfg.data.data_fraction \
        else n_cal
    per_epoch: dict[str, float] = {}
    val_s = 0.0
    for stage in STAGES:
        if stage not in record.stage_times:
            continue
        ts = [t for s, _, t in stamps if s == stage]
        bs = getattr(cfg.train, stage).batch_size
        scale = math.ceil(n_full_train / bs) / math.ceil(n_cal / bs)
        if len(ts) >= 2:
            last = ts[-1] - ts[-2]
            if stage == "stage1" and short.train.eval_every and len(ts) >= 3:
                val_s = max(0.0, (ts[1] - ts[0]) - last)
        else:
            last = record.stage_times[stage] / max(1, getattr(short.train, stage).epochs)
        per_epoch[stage] = last * scale
    stages_s = sum(record.stage_times.get(s, 0.0) for s in STAGES)
    pre = record.stage_times.get("data", 0.0)
    busy = record.busy_s or record.stage_times.get("total", 0.0)
    return {"per_epoch_s": per_epoch, "pre_s": pre, "post_s": max(0.0, busy - pre - stages_s), "val_s": val_s,
            "n_train": n_full_train, "n_calibration": n_cal, "wall_s": busy}


def calibrate(cfg: Any, *, max_batches: int = 6, timeout_s: float = 1800.0, python: str | None = None) -> Timing:
    """Time a few batches of every enabled stage of ``cfg`` through the real ``run_trial`` in a
    subprocess (its own torch, its own thread count), at the target size, batch size and device.

    The training set is cut (``data.data_fraction``) to about ``max_batches`` stage-1 batches; each
    stage's per-epoch time is its last epoch's time scaled by ``ceil(n_full / batch) / ceil(n_cal /
    batch)``. ``pre``/``post`` are the calibration run's data and evaluation times (test set unchanged).
    """
    with tempfile.TemporaryDirectory(prefix="rcsuite-calib-") as tmp:
        cfg_path = Path(tmp) / "config.yaml"
        save_yaml(cfg, cfg_path)
        code = ("import json, sys\nfrom suite.planning.timings import _calibrate_child\n"
                f"print('CALIB ' + json.dumps(_calibrate_child({str(cfg_path)!r}, {str(Path(tmp) / 'run')!r}, "
                f"{int(max_batches)})))\n")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                             os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run([python or sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=timeout_s, env=env)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("CALIB ")), None)
        if proc.returncode != 0 or line is None:
            raise RuntimeError(f"calibration run failed: {(proc.stderr or proc.stdout)[-800:]}")
        data = json.loads(line[len("CALIB "):])
    return Timing(data["per_epoch_s"], data["pre_s"], data["post_s"], data["val_s"], source="calibration")


def timing_dict(timing: Timing) -> dict[str, Any]:
    return asdict(timing)


def timing_provider(record_roots: Iterable[str | Path] = (), *, free_keys: Iterable[str] = (),
                    calibrate_missing: bool = True, force_calibration: bool = False, max_batches: int = 6,
                    log: Callable[[str], None] = lambda msg: None) -> Callable[[Any, str, int], Timing]:
    """``timing_for(cfg, category, point)`` for ``sweep_points``: records of the same configuration
    first (``RecordTimings``), else one calibration run per point (on the first category asked;
    the point's other categories reuse it); ``force_calibration`` skips the records."""
    records = None if force_calibration else RecordTimings(record_roots, free_keys)
    calibrated: dict[int, Timing] = {}

    def timing_for(cfg: Any, category: str, point: int) -> Timing:
        if records is not None:
            found = records.lookup(cfg.to_dict(), category)
            if found is not None:
                return found
        if not calibrate_missing:
            raise LookupError(f"no records of this configuration for {category} and calibration is off")
        if point not in calibrated:
            t0 = time.perf_counter()
            calibrated[point] = calibrate(cfg, max_batches=max_batches)
            calibrated[point].source = f"calibration ({category})"
            log(f"[plan] calibrated point {point} on {category} in {time.perf_counter() - t0:.1f}s")
        return calibrated[point]

    return timing_for
