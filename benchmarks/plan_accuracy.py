"""How close ``run_suite.py plan`` comes to a real small sweep's wall time (issue 11, item 6; aim ±35 %).

One small sweep on local Ray, 2 CPUs, 2 slots: the built-in synthetic data (both categories), the
``tiny`` preset with stage 1 lengthened so training dominates (``train.stage1.epochs=16``,
``stage2.epochs=4``, ``stage3.epochs=4``), a list space of 4 configurations (4 trials x 2
categories = 8 trainings). Steps:

1. ``plan --json`` on a fresh storage: per-epoch times from a calibration run (no records yet);
2. the sweep itself (``run_suite.py sweep``, same arguments), timed from the command's start to
   its end (Python start, Ray start, trials, records.csv) — that is what ``predicted_wall_s``
   predicts; the sweep's own utilisation line is parsed too;
3. ``plan --json`` again, now with the sweep's records as the timing source (``--records``; a fresh
   ``--storage`` so the filled stage cache does not make it a resume).

Ratios ``predicted / measured`` for both plans. The shard mode the sweep used is recorded
(``SweepOptions.shards``; ``elastic`` = every training is its own shard). The machine is shared:
``os.getloadavg()`` before and after goes into the JSON.

    python benchmarks/plan_accuracy.py     # writes benchmarks/results/plan_accuracy.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SPACE = '''"""plan_accuracy: four configurations with distinct stage-1 settings (nothing shared)."""
CONFIGS = [
    {"model.depth": 1, "model.width": 8},
    {"model.depth": 2, "model.width": 8},
    {"model.depth": 2, "model.width": 12},
    {"model.depth": 1, "model.width": 12},
]
'''
OVERRIDES = ["train.stage1.epochs=16", "train.stage2.epochs=4", "train.stage3.epochs=4", "eval.aupro=false"]


def run(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=3600)
    return proc, time.perf_counter() - t0


def plan_json(args: list[str], env: dict[str, str]) -> tuple[dict, float]:
    proc, seconds = run([sys.executable, str(REPO / "run_suite.py"), "plan", *args, "--json"], env)
    if proc.returncode != 0:
        raise SystemExit(f"plan failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "plan_accuracy.json"))
    parser.add_argument("--keep", action="store_true", help="keep the temporary sweep folder")
    args = parser.parse_args()

    from suite.orchestration.driver import SweepOptions

    fields = {f.name: f.default for f in dataclasses.fields(SweepOptions)}
    shard_mode = fields.get("shards", "absent (older driver: categories one after another per trial)")

    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO)}
    tmp = Path(tempfile.mkdtemp(prefix="plan-accuracy-"))
    space = tmp / "plan_accuracy_space.py"
    space.write_text(SPACE)
    sweep_args = ["--space", str(space), "--dataset", "synthetic", "--categories", "synth_texture,synth_object",
                  "--preset", "tiny", "--num-cpus", "2", "--no-asha"]
    load_before = os.getloadavg()

    plan_cal, plan_cal_s = plan_json([*sweep_args, "--storage", str(tmp / "plan1"), "--slots", "2", *OVERRIDES], env)
    sweep_cmd = [sys.executable, str(REPO / "run_suite.py"), "sweep", *sweep_args, "--storage", str(tmp / "sweeps"),
                 "--name", "acc", *OVERRIDES]
    proc, measured = run(sweep_cmd, env)
    if proc.returncode != 0:
        raise SystemExit(f"sweep failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    util = re.search(r"utilisation (\d+)%: ([\d.]+) busy slot-seconds / \((\d+) slot\(s\) x ([\d.]+) s wall\)",
                     proc.stdout + proc.stderr)
    plan_rec, plan_rec_s = plan_json([*sweep_args, "--storage", str(tmp / "plan2"), "--records", str(tmp / "sweeps"),
                                      "--slots", "2", *OVERRIDES], env)
    load_after = os.getloadavg()

    def summary(plan: dict, seconds: float) -> dict:
        ratio = plan["predicted_wall_s"] / measured
        return {"predicted_wall_s": plan["predicted_wall_s"], "ratio": ratio, "within_35pct": abs(ratio - 1) <= 0.35,
                "predicted_utilisation": plan["utilisation"], "timing_source": plan["timing_source"],
                "per_epoch_s": plan["per_epoch_s"], "training_s_mean": plan["training_s"]["mean_full"],
                "makespan_s": plan["makespan_s"], "sweep_start_s": plan["sweep_start_s"], "plan_command_s": seconds}

    result = {
        "benchmark": "plan_accuracy",
        "what": "run_suite.py plan's predicted wall time vs a real small sweep (aim: ratio within 1 +- 0.35)",
        "setup": {"dataset": "synthetic", "categories": ["synth_texture", "synth_object"], "preset": "tiny",
                  "overrides": OVERRIDES, "space": "4 CONFIGS (depth x width), no ASHA", "trials": 4,
                  "trainings": plan_cal["trainings"], "num_cpus": 2, "slots": 2,
                  "sweep_shard_mode": shard_mode, "plan_shards": plan_cal["shards"]},
        "measured": {"wall_s": measured,
                     "sweep_utilisation": float(util.group(1)) / 100 if util else None,
                     "sweep_inner_wall_s": float(util.group(4)) if util else None},
        "plan_calibration": summary(plan_cal, plan_cal_s),
        "plan_records": summary(plan_rec, plan_rec_s),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "created": time.time(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("measured", "plan_calibration", "plan_records", "loadavg_before",
                                             "loadavg_after")}, indent=2))
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"kept {tmp}")


if __name__ == "__main__":
    main()
