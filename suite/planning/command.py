"""``run_suite.py plan`` behind the argument parsing: where the timings come from (``--timings``
files, records, one calibration run), the GPU memory check of ``--gpus-per-trial``, the simulation,
and ``--save-timings``. No Ray (the CLI reads a cluster's slots for ``--address`` itself).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from suite.errors import InputError
from suite.planning.plan import PlanPoint, PlanSpec, plan_sweep, point_overrides, sweep_points
from suite.planning.timings import timing_dict
from suite.planning.timings_file import TimingProvider, write_timings
from suite.sweep_rules import slots_from_resources, training_config


class GpuMemoryError(InputError):
    """``--gpus-per-trial`` puts more trainings on one GPU than its memory holds (measured peaks)."""


def gpu_fit(points: Sequence[PlanPoint], gpus_per_trial: float, gpu_memory_mb: float | None) -> dict[str, Any]:
    """Whether ``1 / gpus_per_trial`` trainings fit one GPU of ``gpu_memory_mb`` MiB, from the measured
    peak memory of one training (``Timing.peak_gpu_mb``; the largest over the plan's points).

    Ray packs fractional GPUs so their sum stays at most 1, so a GPU runs ``floor(1 / F)`` trainings at
    once; they fit when ``floor(1 / F) x peak <= memory``. Raises ``GpuMemoryError`` naming the
    numbers when they do not; returns what was checked (``checked`` False when a number is missing)."""
    per_gpu = int(1 / gpus_per_trial + 1e-9) if 0 < gpus_per_trial < 1 else 1
    peaks = [(p.timing.peak_gpu_mb, p) for p in points if p.timing.peak_gpu_mb is not None]
    out: dict[str, Any] = {"gpus_per_trial": gpus_per_trial, "trainings_per_gpu": per_gpu,
                           "gpu_memory_mb": gpu_memory_mb, "peak_gpu_mb": None, "checked": False}
    if not peaks or not gpu_memory_mb:
        missing = "no measured peak GPU memory (records or a calibration on a GPU)" if not peaks \
            else "the GPU's memory unknown (--gpu-memory-gb, or a timings file measured on the GPU)"
        out["summary"] = f"{per_gpu} training(s) per GPU; not checked: {missing}"
        return out
    peak, worst = max(peaks, key=lambda x: x[0])
    out.update(peak_gpu_mb=peak, worst=f"point {worst.point} ({worst.category})", checked=True)
    fits = max(1, int(gpu_memory_mb // peak)) if peak <= gpu_memory_mb else 0
    largest = "no fraction: one training alone does not fit" if fits == 0 else \
        f"the smallest --gpus-per-trial that fits is {_fraction(fits)}"
    if per_gpu * peak > gpu_memory_mb:
        raise GpuMemoryError(
            f"--gpus-per-trial {gpus_per_trial:g} puts {per_gpu} training(s) on one GPU of {gpu_memory_mb / 1024:.1f} "
            f"GiB, but one training of point {worst.point} ({worst.category}) peaks at {peak / 1024:.1f} GiB "
            f"({worst.timing.source}): {per_gpu} x {peak / 1024:.1f} = {per_gpu * peak / 1024:.1f} GiB > "
            f"{gpu_memory_mb / 1024:.1f} GiB; {largest}")
    out["summary"] = (f"{per_gpu} training(s) per GPU x {peak / 1024:.1f} GiB peak = {per_gpu * peak / 1024:.1f} "
                      f"of {gpu_memory_mb / 1024:.1f} GiB ({largest})")
    return out


def local_slots(cpus: float, gpus: int | None, *, cpus_per_trial: float = 1.0, num_workers: int = 1,
                gpus_per_trial: float = 0.0) -> int:
    """``plan``'s slots without ``--slots`` / ``--address``: ``--gpus N`` (a GPU cluster whose CPUs are
    taken as ample: ``N / (F x workers)`` slots, ``F`` = GPUs per training, 1 when not given), else the
    local CPUs a sweep's own Ray instance would have."""
    if gpus:
        g = gpus_per_trial or 1.0
        return max(1, slots_from_resources(gpus / g * num_workers * cpus_per_trial, gpus, cpus_per_trial=cpus_per_trial,
                                           num_workers=num_workers, gpus_per_trial=g))
    return max(1, slots_from_resources(cpus, 0, cpus_per_trial=cpus_per_trial, num_workers=num_workers))


def _fraction(n: int) -> str:
    """The ``--gpus-per-trial`` for ``n`` trainings per GPU: 1, 0.5, 0.333, 0.25, ..."""
    return "1" if n <= 1 else f"{math.floor(1e3 / n) / 1e3:g}"


def build_plan(base_cfg: Any, space: Any, categories: list[str], *, n_trials: int, slots: int, use_asha: bool,
               shards: bool, cpus_per_trial: float, num_workers: int, gpus_per_trial: float, storage: Path,
               records: Sequence[str] = (), timings: Sequence[str] = (), calibrate: bool = False,
               calibration_batches: int = 6, gpu_memory_gb: float | None = None, save_timings: str | None = None,
               per_category: bool = False, concurrent: int = 0, asha_model: str = "expected", seed: int = 0,
               sweep_start_s: float | None = None, log: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    """The plan ``run_suite.py plan`` prints (``plan_sweep``'s dict plus the timings, their device, the
    GPU memory check and, with ``save_timings``, the file written)."""
    free = list(space.space) if space.kind == "optuna" else []
    provider = TimingProvider([storage, *records], free_keys=free, files=timings, force_calibration=calibrate,
                              max_batches=calibration_batches, log=log)
    first = categories[0]
    provider.prepare([(i, first, training_config(base_cfg, over, first, 0, cpus_per_trial))
                      for i, over in enumerate(point_overrides(space))])
    points, cached = sweep_points(base_cfg, space, categories, cpus_per_trial=cpus_per_trial, timing_for=provider,
                                  repeats=n_trials, stage_cache=storage / "stage_cache")
    device = provider.device
    memory_mb = gpu_memory_gb * 1024 if gpu_memory_gb else device.get("memory_mb")
    fit = gpu_fit(points, gpus_per_trial, memory_mb) if gpus_per_trial else None
    spec = PlanSpec(
        kind=space.kind, categories=categories, n_points=len(space.points) if space.kind != "optuna" else 1,
        n_trials=n_trials, slots=slots, eval_every=base_cfg.train.eval_every, use_asha=use_asha,
        per_category=per_category, shards=shards, concurrent=concurrent,
        cpus_per_slot=cpus_per_trial * num_workers, gpus_per_slot=gpus_per_trial * num_workers,
        asha_model=asha_model, seed=seed, cached_keys=cached)
    if sweep_start_s is not None:
        spec = replace(spec, sweep_start_s=sweep_start_s)
    plan = plan_sweep(spec, points)
    plan.update({"space": space.name, "image_size": base_cfg.data.image_size, "device": base_cfg.runtime.device,
                 "timings_device": device or None, "gpu_memory": fit,
                 "timings": {f"{p.point}/{p.category}": timing_dict(p.timing) for p in points}})
    if provider.calibration_info:
        plan["calibration"] = {k: provider.calibration_info.get(k) for k in ("distinct_stages", "device")}
        plan["calibration"]["seconds"] = [p.get("calibration_s") for p in provider.calibration_info.get("points", [])]
    if save_timings:
        doc = provider.document(source=f"run_suite.py plan --space {space.name} ({', '.join(categories)})",
                                note="per-epoch seconds of one slot; see suite/planning/timings_file.py")
        plan["saved_timings"] = str(write_timings(save_timings, doc))
    return plan
