"""Calibration runs for a plan: a few real batches of every stage through ``run_training``.

Every point that needs one is calibrated in **one** subprocess (its own torch and thread count; on a
GPU one CUDA start), one point after another, with a stage cache of their own: a stage that an
earlier point already trained (the same ``suite.stage_cache.stage_key``, e.g. the stage 1 that the
RcAE, RcAE + DPN and RcAE + DPN + CRD rows of a grid share) is loaded, not trained again, and its
per-epoch time is the one measured when it was built. So a Table 2 grid calibrates ConvAE's stage 1,
RcAE's stage 1, stage 2 and stage 3 once each, not stage 1 three times.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from suite.config import load_yaml, save_yaml, with_overrides
from suite.data import load_category
from suite.methods.registry import method_spec
from suite.planning.simulate import STAGES, Timing
from suite.planning.timings import peak_gpu_mb
from suite.stage_cache import stage_key

MARK = "CALIB "  # the subprocess's one result line


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


def device_facts() -> dict[str, Any]:
    """The device a calibration ran on (a timings file states it): CUDA name and memory, else the CPU."""
    import torch  # only in the calibration subprocess

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return {"type": "cuda", "name": props.name, "memory_mb": props.total_memory / 2**20,
                "count": torch.cuda.device_count()}
    return {"type": "cpu", "name": "cpu", "cores": os.cpu_count()}


def _calibrate_one(cfg: Any, out_dir: Path, max_batches: int, cache_dir: Path,
                   built: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One point: ``run_training`` on a shortened config; per-epoch seconds from the per-epoch
    timestamps scaled to the full training set; stages found in ``built`` (stage key -> its measured
    per-epoch time, validation time and peak memory) are loaded from the cache and keep those figures."""
    from suite.pipeline import run_training  # torch: only in the calibration subprocess, `plan` stays light

    n_full = max(1, round(len(load_category(cfg.data, seed=cfg.runtime.seed).train)))
    bs1 = cfg.train.stage1.batch_size
    fraction = min(1.0, max_batches * bs1 / n_full) * cfg.data.data_fraction
    short = with_overrides(cfg, calibration_overrides(cfg, fraction))
    stamps: list[tuple[str, int, float]] = []
    record = run_training(short, out_dir,
                          on_epoch=lambda e: stamps.append((e["stage"], e["epoch"], time.perf_counter())),
                          log=lambda msg: None, stage_cache=cache_dir)
    n_cal = int(record.cost.get("n_train") or 1)
    n_full_train = max(1, round(n_cal * cfg.data.data_fraction / fraction)) if fraction < cfg.data.data_fraction \
        else n_cal
    per_epoch: dict[str, float] = {}
    val_s, reused = 0.0, []
    peaks = [p for p in (peak_gpu_mb(record),) if p is not None]
    spec = method_spec(short.model.method)
    for stage in STAGES:
        if stage not in record.stage_times:
            continue
        key = stage_key(short, stage, spec)
        if record.info.get(f"{stage}_from_cache") and key in built:
            per_epoch[stage] = built[key]["per_epoch_s"]
            val_s = built[key]["val_s"] if stage == "stage1" else val_s
            peaks += [built[key]["peak_gpu_mb"]] if built[key]["peak_gpu_mb"] is not None else []
            reused.append(stage)
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
        built[key] = {"per_epoch_s": per_epoch[stage], "val_s": val_s if stage == "stage1" else 0.0,
                      "peak_gpu_mb": peak_gpu_mb(record)}
    stages_s = sum(record.stage_times.get(s, 0.0) for s in STAGES)
    pre = record.stage_times.get("data", 0.0)
    busy = record.busy_s or record.stage_times.get("total", 0.0)
    return {"per_epoch_s": per_epoch, "pre_s": pre, "post_s": max(0.0, busy - pre - stages_s), "val_s": val_s,
            "n_train": n_full_train, "n_calibration": n_cal, "wall_s": busy, "reused_stages": reused,
            "peak_gpu_mb": max(peaks) if peaks else None}


def calibration_child(cfg_paths: Sequence[str], out_root: str, max_batches: int) -> dict[str, Any]:
    """Runs inside the calibration subprocess: every config in turn, sharing one stage cache."""
    root = Path(out_root)
    built: dict[str, dict[str, Any]] = {}
    points = []
    for index, path in enumerate(cfg_paths):
        t0 = time.perf_counter()
        result = _calibrate_one(load_yaml(path), root / f"point{index}", max_batches, root / "stage_cache", built)
        result["calibration_s"] = time.perf_counter() - t0
        points.append(result)
    return {"points": points, "device": device_facts(), "distinct_stages": len(built)}


def calibrate_many(cfgs: Sequence[Any], *, max_batches: int = 6, timeout_s: float = 3600.0,
                   python: str | None = None) -> tuple[list[Timing], dict[str, Any]]:
    """Calibrate every config of ``cfgs`` in one subprocess (see the module docstring); returns their
    timings (``source`` "calibration"; ``peak_gpu_mb`` on CUDA) and what the run says of itself
    (``device``, ``distinct_stages``, per point ``calibration_s`` and ``reused_stages``)."""
    if not cfgs:
        return [], {}
    with tempfile.TemporaryDirectory(prefix="rcsuite-calib-") as tmp:
        paths = []
        for index, cfg in enumerate(cfgs):
            paths.append(str(Path(tmp) / f"config{index}.yaml"))
            save_yaml(cfg, paths[-1])
        code = ("import json\nfrom suite.planning.calibration import calibration_child\n"
                f"print({MARK!r} + json.dumps(calibration_child({paths!r}, {str(Path(tmp) / 'runs')!r}, "
                f"{int(max_batches)})))\n")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                             os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run([python or sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=timeout_s, env=env)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)), None)
        if proc.returncode != 0 or line is None:
            raise RuntimeError(f"calibration run failed: {(proc.stderr or proc.stdout)[-800:]}")
        data = json.loads(line[len(MARK):])
    timings = [Timing(p["per_epoch_s"], p["pre_s"], p["post_s"], p["val_s"], source="calibration",
                      peak_gpu_mb=p.get("peak_gpu_mb")) for p in data["points"]]
    return timings, data


def calibrate(cfg: Any, *, max_batches: int = 6, timeout_s: float = 1800.0, python: str | None = None) -> Timing:
    """One config's calibration (``calibrate_many`` of one): a few batches of every enabled stage at the
    target size, batch size and device. The training set is cut (``data.data_fraction``) to about
    ``max_batches`` stage-1 batches; each stage's per-epoch time is its last epoch's time scaled by
    ``ceil(n_full / batch) / ceil(n_cal / batch)``; ``pre``/``post`` are the run's data and evaluation
    times (test set unchanged)."""
    timings, _ = calibrate_many([cfg], max_batches=max_batches, timeout_s=timeout_s, python=python)
    return timings[0]
