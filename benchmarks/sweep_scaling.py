"""Sweep orchestration costs on this machine: concurrency scaling, per-trial Ray overhead, stage cache.

Four measurements on the built-in synthetic data (``tiny`` preset, stage 1 made the dominant cost):

1. *scaling*: the same 8 trials (8 distinct stage-1 settings, so nothing is shared) as a sweep with
   1 and with 2 concurrent trials; every trial holds 1 CPU and runs torch with 1 thread. Target:
   2-way wall time <= 0.6x the 1-way wall time.
2. *overhead*: the 8 trials called one after another with ``run_training`` in this process (no Ray)
   vs the 1-way sweep: ``(sweep wall - direct wall) / 8`` is Ray Tune's cost per trial (trial
   scheduling, reports, checkpoint copies, record collection); ``(sweep wall - time spent inside
   run_training) / 8`` is the same cost measured within one run (immune to load drift between runs).
   Target: <= 2 s per trial.
3. *stage cache*: a sweep of 8 trials that vary only DPN / CRD settings (stage 1 identical), with
   the shared stage cache vs without it, both 2-way. Target: >= 40 % less wall time with the cache.

The Ray instance (2 CPUs) is started once, before the timed sweeps, and its start-up time is
reported separately. Other processes on a shared machine slow some runs more than others; the
load average before each run is recorded next to its time, and ``trials_in_flight`` (time inside
``run_training`` per second of wall time) shows whether the 2-way sweep really overlapped its trials
even when a busy machine keeps its wall time from halving.

    python benchmarks/sweep_scaling.py            # writes benchmarks/results/sweep_scaling.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from suite.config import build_config, with_overrides  # noqa: E402
from suite.orchestration.env import init_ray, shutdown_ray  # noqa: E402
from suite.orchestration.driver import SweepOptions, run_sweep  # noqa: E402
from suite.pipeline import run_training  # noqa: E402
from suite.stage_cache import StageCache  # noqa: E402

TARGET_TWO_WAY_RATIO = 0.6
TARGET_OVERHEAD_S = 2.0
TARGET_CACHE_SAVING = 0.4

SCALING_SPACE = '''\
"""8 distinct stage-1 settings: nothing can be shared between trials"""
CONFIGS = [{"augment.coverage": round(0.1 * (i + 1), 2)} for i in range(8)]
'''
CACHE_SPACE = '''\
"""8 trials that differ only in DPN / CRD settings: stage 1 is the same for all"""
CONFIGS = [
    {"model.dpn_width": d, "model.crd_width": c, "model.crd_steps": s}
    for d in (4, 8) for c in (4, 8) for s in ([2], None)
]
'''


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20, help="stage-1 epochs per trial (the dominant cost)")
    parser.add_argument("--out", default="benchmarks/results/sweep_scaling.json")
    parser.add_argument("--keep", action="store_true", help="keep the sweep folders (printed) instead of deleting")
    return parser.parse_args(argv)


def load() -> float:
    return round(os.getloadavg()[0], 2)


def timed_sweep(cfg, space: Path, storage: Path, name: str, **kw) -> dict:
    load_before = load()
    t0 = time.perf_counter()
    result = run_sweep(cfg, SweepOptions(space=str(space), storage=str(storage), name=name, verbose=0, **kw))
    wall = time.perf_counter() - t0
    from suite.aggregate import load_records

    inside = sum(r.stage_times.get("total", 0.0) for r in load_records(result["records_dir"]).records)
    return {
        "run_training_total_s": round(inside, 2),
        # time spent inside run_training per second of wall time: ~1 for 1-way, ~2 if 2-way truly overlaps
        "trials_in_flight": round(inside / wall, 2),
        "wall_s": round(wall, 2),
        "load_before": load_before,
        "records": result["n_records"],
        "status": result["status"],
        "complete_trials": sum(bool(r["complete"]) for r in result["trials"]),
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    work = Path(tempfile.mkdtemp(prefix="rcs-bench-"))
    (work / "scaling.py").write_text(textwrap.dedent(SCALING_SPACE))
    (work / "cache.py").write_text(textwrap.dedent(CACHE_SPACE))
    cfg = build_config(
        preset="tiny",
        overrides=[f"train.stage1.epochs={args.epochs}", "runtime.threads=1", "eval.save_maps=0",
                   "eval.cost=false", "eval.aupro=false", "data.category=synth_texture"],
    )
    results: dict = {
        "benchmark": "sweep_scaling",
        "config": {
            "preset": "tiny",
            "image_size": cfg.data.image_size,
            "stage1_epochs": cfg.train.stage1.epochs,
            "stage2_epochs": cfg.train.stage2.epochs,
            "stage3_epochs": cfg.train.stage3.epochs,
            "trials": 8,
            "cpus_per_trial": 1,
            "torch_threads": 1,
            "ray_cpus": 2,
        },
    }

    # 2. direct run_training baseline (no Ray), the same 8 trials as the scaling sweeps
    points = [{"augment.coverage": round(0.1 * (i + 1), 2)} for i in range(8)]
    load_before = load()
    t0 = time.perf_counter()
    per_trial = []
    for i, point in enumerate(points):
        t1 = time.perf_counter()
        run_training(with_overrides(cfg, point), work / "direct" / str(i), log=lambda _: None)
        per_trial.append(round(time.perf_counter() - t1, 2))
    direct = {"wall_s": round(time.perf_counter() - t0, 2), "load_before": load_before, "per_trial_s": per_trial}

    t0 = time.perf_counter()
    ray_info = init_ray(num_cpus=2)
    ray_start = time.perf_counter() - t0
    try:
        one = timed_sweep(cfg, work / "scaling.py", work / "s1", "one_way", concurrent=1, use_stage_cache=False)
        two = timed_sweep(cfg, work / "scaling.py", work / "s2", "two_way", concurrent=2, use_stage_cache=False)
        cached = timed_sweep(cfg, work / "cache.py", work / "c1", "cached", concurrent=2)
        uncached = timed_sweep(cfg, work / "cache.py", work / "c2", "uncached", concurrent=2, use_stage_cache=False)
    finally:
        shutdown_ray(ray_info)
    builds = Counter(
        e["key"].split("-")[3] for e in StageCache(work / "c1" / "stage_cache").events() if e["event"] == "build"
    )
    ratio = two["wall_s"] / one["wall_s"]
    overhead = (one["wall_s"] - direct["wall_s"]) / len(points)
    # The same cost without the load noise between two separate runs: the 1-way sweep's wall time
    # minus the time its trials spent inside run_training.
    overhead_inside = (one["wall_s"] - one["run_training_total_s"]) / len(points)
    saving = 1.0 - cached["wall_s"] / uncached["wall_s"]
    results.update(
        {
            "ray_start_s": round(ray_start, 2),
            "scaling": {
                "one_way": one,
                "two_way": two,
                "two_way_over_one_way": round(ratio, 3),
                "target": f"<= {TARGET_TWO_WAY_RATIO}",
                "met": ratio <= TARGET_TWO_WAY_RATIO,
            },
            "overhead": {
                "direct_run_training": direct,
                "sweep_one_way_wall_s": one["wall_s"],
                "per_trial_s": round(overhead, 2),
                "per_trial_s_from_records": round(overhead_inside, 2),
                "target": f"<= {TARGET_OVERHEAD_S} s",
                "met": max(overhead, overhead_inside) <= TARGET_OVERHEAD_S,
            },
            "stage_cache": {
                "with_cache": cached,
                "without_cache": uncached,
                "builds_with_cache": dict(builds),
                "wall_time_saving": round(saving, 3),
                "target": f">= {TARGET_CACHE_SAVING:.0%} less wall time",
                "met": saving >= TARGET_CACHE_SAVING,
            },
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "note": "2-core machine shared with other jobs; see load_before of each run",
            },
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    if args.keep:
        print(f"sweep folders kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"scaling: 1-way {one['wall_s']:.1f}s, 2-way {two['wall_s']:.1f}s -> {ratio:.2f}x "
        f"(target <= {TARGET_TWO_WAY_RATIO}) | overhead {overhead:.2f} s/trial vs direct {direct['wall_s']:.1f}s, "
        f"{overhead_inside:.2f} s/trial outside run_training ("
        f"target <= {TARGET_OVERHEAD_S}) | stage cache {cached['wall_s']:.1f}s vs {uncached['wall_s']:.1f}s -> "
        f"{saving:.0%} saved (target >= {TARGET_CACHE_SAVING:.0%}) | written {out}"
    )
    return results


if __name__ == "__main__":
    main()
