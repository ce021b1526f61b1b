"""The GPU check (issue 20, item 8): one script, at most 8 minutes on one GPU, no Ray.

Every measurement is a real ``run_suite.py train`` in a subprocess (as a user runs it; Ray and Optuna
are not needed, so it runs on a GPU machine that has neither), on MVTec AD bottle under
``$RCSUITE_DATA_DIR/mvtec_bottle_256`` (or ``--root``), one step after another so no step shares the
GPU with another unless it is meant to:

1. ``amp`` / ``fp32``: the ``cpu`` preset (128 px, 150/40/30 epochs), full pipeline, seed 0, with
   mixed precision (the default) and with ``train.amp=false``, side by side: the test AUROC they
   reach (mixed precision should cost at most 0.01) and the 128-px per-stage epoch times.
2. ``alone``: one ``cpu``-preset training of 20 stage-1 epochs (stage 2 and 3 off).
3. ``together``: four such trainings at once (seeds 0-3) on the one GPU: their last finish against
   the wall time of ``alone`` (target at most 1.5x).
4. ``paper``: the ``paper`` preset (1024 px, batch 8/8/4) for 2/1/1 epochs: per-stage epoch times,
   peak memory per phase (target at most 20 GB reserved) and the step breakdown where records carry it.
5. ``calibrate`` (when the budget leaves room): ``plan --calibrate`` of ``ablation_components`` at the
   ``paper`` preset on bottle, timed (target at most 90 s), its timings saved as a timings file.

Throughout, ``nvidia-smi`` (else ``torch.cuda.utilization``) is sampled every second: the GPU's busy
share and memory in use per step. Results: JSON (``--out``, default ``benchmarks/results/
gpu_check.json``) and a table on stdout.

``--dry-run`` runs the same steps at toy sizes on the built-in synthetic data (``tiny`` preset, any
device, 2 trainings at once instead of 4), so a test shows the script works without a GPU.

    RCSUITE_DATA_DIR=/data python benchmarks/gpu_check.py --out $OUT/gpu_check.json
    python benchmarks/gpu_check.py --dry-run --out /tmp/gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from suite.records import find_records, read_record  # noqa: E402

STAGES = ("stage1", "stage2", "stage3")
QUIET = ["eval.aupro=false", "eval.save_maps=0"]


class GpuSampler:
    """Samples the GPU's busy share (%) and memory in use (MiB) every ``period_s`` from a thread."""

    def __init__(self, period_s: float = 1.0):
        self.period_s = period_s
        self.samples: list[tuple[float, float, float]] = []  # (time, busy %, memory MiB)
        self.how = "none"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> tuple[float, float] | None:
        if self.how == "nvidia-smi":
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                                  "--format=csv,noheader,nounits", "-i", "0"], capture_output=True, text=True,
                                 timeout=10)
            busy, mem = (float(x) for x in out.stdout.strip().splitlines()[0].split(","))
            return busy, mem
        if self.how == "torch":
            import torch  # only when nvidia-smi is missing: the sampler needs no torch otherwise

            return float(torch.cuda.utilization(0)), float(torch.cuda.memory_usage(0))
        return None

    def start(self) -> "GpuSampler":
        if shutil.which("nvidia-smi"):
            self.how = "nvidia-smi"
        else:
            try:
                import torch

                torch.cuda.utilization(0)
                self.how = "torch"
            except Exception:  # noqa: BLE001 - no GPU, no NVML: nothing to sample
                return self
        try:
            self._read()
        except Exception:  # noqa: BLE001 - nvidia-smi present but no GPU answers
            self.how = "none"
            return self
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                got = self._read()
            except Exception:  # noqa: BLE001 - one missed sample
                continue
            if got is not None:
                self.samples.append((time.time(), *got))

    def between(self, t0: float, t1: float) -> dict[str, Any]:
        xs = [(b, m) for t, b, m in self.samples if t0 <= t <= t1]
        if not xs:
            return {"busy_mean": None, "memory_used_max_mb": None, "samples": 0, "how": self.how}
        return {"busy_mean": sum(b for b, _ in xs) / len(xs) / 100.0, "memory_used_max_mb": max(m for _, m in xs),
                "samples": len(xs), "how": self.how}

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _train_cmd(args: argparse.Namespace, preset: str, out: Path, overrides: list[str]) -> list[str]:
    data = (["--dataset", "synthetic", "--category", "synth_texture"] if args.dry_run
            else ["--dataset", "mvtec", "--root", str(args.root), "--category", "bottle"])
    return [sys.executable, str(REPO / "run_suite.py"), "train", *data, "--preset", preset, "--out", str(out),
            *overrides]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "PYTHONUNBUFFERED": "1"}


def run_jobs(jobs: dict[str, list[str]], work: Path, timeout_s: float) -> dict[str, dict[str, Any]]:
    """Start every job at once, wait for all; per job its wall time, exit code, log tail and record."""
    procs = {}
    t0 = time.time()
    for name, cmd in jobs.items():
        log = open(work / f"{name}.log", "w")
        procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_env(), cwd=REPO), log)
    results = {}
    for name, (proc, log) in procs.items():
        try:
            left = timeout_s - (time.time() - t0)
            code = proc.wait(timeout=max(1.0, left) if left != float("inf") else None)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        log.close()
        results[name] = {"exit_code": code, "wall_s": time.time() - t0, "started": t0, "ended": time.time()}
        results[name]["record"] = _record_facts(work / name)
        if code != 0:
            results[name]["log_tail"] = (work / f"{name}.log").read_text()[-1500:]
    return results


def _record_facts(out: Path) -> dict[str, Any] | None:
    paths = list(find_records(out)) if out.exists() else []
    if not paths:
        return None
    rec = read_record(paths[0])
    epochs = {s: int(rec.config.get("train", {}).get(s, {}).get("epochs", 0) or 0) for s in STAGES}
    test = rec.metrics.get("test", {})
    return {
        "status": rec.status, "error": rec.error, "device": rec.device, "busy_s": rec.busy_s,
        "started": rec.started, "finished": rec.finished, "stage_times": rec.stage_times,
        "epoch_s": {s: rec.stage_times[s] / epochs[s] for s in STAGES if s in rec.stage_times and epochs[s]},
        "test": {k: test.get(k) for k in ("i_auroc", "p_auroc", "aupro") if k in test},
        "peak_memory_mb": {k: v for k, v in rec.cost.items() if "peak" in k and isinstance(v, (int, float))},
        "step_breakdown": getattr(rec, "step_breakdown", None) or rec.info.get("step_breakdown"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "gpu_check.json"))
    parser.add_argument("--root", default=None, help="MVTec AD root holding bottle/ (default: $RCSUITE_DATA_DIR/"
                                                     "mvtec_bottle_256)")
    parser.add_argument("--dry-run", action="store_true", help="toy sizes on synthetic data, any device (a test)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="start no step after this many seconds (default 460; unlimited with --dry-run)")
    parser.add_argument("--together", type=int, default=None, help="trainings at once in step 3 (default 4; 2 dry)")
    args = parser.parse_args()
    if not args.dry_run:
        from suite.data import shared_data_dir

        args.root = Path(args.root or shared_data_dir() / "mvtec_bottle_256")
        if not (args.root / "bottle" / "train").is_dir():
            print(f"error: no MVTec AD bottle under {args.root} (set RCSUITE_DATA_DIR or --root)", file=sys.stderr)
            return 2
    together = args.together or (2 if args.dry_run else 4)
    if args.budget_s is None:
        args.budget_s = float("inf") if args.dry_run else 460.0
    if args.dry_run:
        small = ["train.stage1.epochs=1", "train.stage2.epochs=1", "train.stage3.epochs=1", "eval.cost=false",
                 "eval.diagnostics=false", "eval.scoring_variants=false", "data.data_fraction=0.25",
                 "eval.shifts=[]", "data.val_shifts=[]"]  # shifted copies multiply the toy eval ~3x
        cpu, paper, alone = ("tiny", small), ("tiny", small + ["data.image_size=48"]), ["train.stage1.epochs=2"]
    else:
        # as the measurement in ../shared/GPU.md: diagnostics and scoring variants off (cost stays on: it
        # records the training's peak CUDA memory)
        cpu = ("cpu", [])
        paper = ("paper", ["train.stage1.epochs=2", "train.stage2.epochs=1", "train.stage3.epochs=1",
                           "eval.diagnostics=false", "eval.scoring_variants=false"])
        alone = ["train.stage1.epochs=20"]
    alone = alone + ["model.use_dpn=false", "model.use_crd=false", "runtime.seed=0"]
    result: dict[str, Any] = {"benchmark": "gpu_check", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "dry_run": args.dry_run, "steps": {}}
    try:
        import torch

        result["torch"] = torch.__version__
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            result["gpu"] = {"name": props.name, "memory_mb": props.total_memory / 2**20}
    except ImportError:
        pass
    sampler = GpuSampler().start()
    work = Path(tempfile.mkdtemp(prefix="rcs-gpucheck-"))
    t_start = time.time()

    def step(name: str, jobs: dict[str, list[str]]) -> dict[str, Any]:
        left = args.budget_s - (time.time() - t_start)
        if left < 20:
            result["steps"][name] = {"skipped": f"budget: {left:.0f}s left"}
            return result["steps"][name]
        t0 = time.time()
        runs = run_jobs(jobs, work, left)
        out = {"wall_s": time.time() - t0, "gpu": sampler.between(t0, time.time()), "runs": runs}
        result["steps"][name] = out
        print(f"[gpu_check] {name}: {out['wall_s']:.1f}s, busy {out['gpu']['busy_mean']}", flush=True)
        return out

    try:
        step("amp_vs_fp32", {"amp": _train_cmd(args, cpu[0], work / "amp", cpu[1] + QUIET + ["runtime.seed=0"]),
                             "fp32": _train_cmd(args, cpu[0], work / "fp32",
                                                cpu[1] + QUIET + ["runtime.seed=0", "train.amp=false"])})
        step("alone", {"alone": _train_cmd(args, cpu[0], work / "alone", cpu[1] + QUIET + alone)})
        step("together", {f"t{i}": _train_cmd(args, cpu[0], work / f"t{i}", cpu[1] + QUIET + alone[:-1]
                                              + [f"runtime.seed={i}"]) for i in range(together)})
        step("paper", {"paper": _train_cmd(args, paper[0], work / "paper", paper[1] + QUIET)})
        left = args.budget_s - (time.time() - t_start)
        if args.dry_run or left > 100:
            data = (["--dataset", "synthetic", "--category", "synth_texture", "--preset", "tiny"] if args.dry_run
                    else ["--dataset", "mvtec", "--root", str(args.root), "--category", "bottle", "--preset", "paper"])
            timings = Path(args.out).with_name("gpu_check_timings.json")
            cmd = [sys.executable, str(REPO / "run_suite.py"), "plan", "--space", "ablation_components", *data,
                   "--calibrate", "--slots", "1", "--json", "--storage", str(work / "plan"),
                   "--save-timings", str(timings), "--calibration-batches", "2" if args.dry_run else "4"]
            t0 = time.time()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=REPO,
                                  timeout=max(30.0, left) if left != float("inf") else None)
            plan = json.loads(proc.stdout) if proc.returncode == 0 else None
            result["steps"]["calibrate"] = {
                "wall_s": time.time() - t0, "exit_code": proc.returncode, "gpu": sampler.between(t0, time.time()),
                "per_epoch_s": plan and plan["per_epoch_s"], "timings_file": str(timings) if plan else None,
                "calibration": plan and plan.get("calibration"), "log_tail": None if plan else proc.stderr[-1500:]}
        else:
            result["steps"]["calibrate"] = {"skipped": f"budget: {left:.0f}s left"}
    finally:
        sampler.stop()
        shutil.rmtree(work, ignore_errors=True)
    result["total_s"] = time.time() - t_start
    result["summary"] = summarise(result)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result["summary"], indent=2, default=str))
    failed = [f"{s}/{n}" for s, st in result["steps"].items() for n, r in st.get("runs", {}).items()
              if r["exit_code"] != 0]
    if failed:
        print(f"[gpu_check] failed runs: {failed}", file=sys.stderr)
    return 1 if failed else 0


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """The numbers the issue's targets name, from the steps (None where a step did not run)."""
    steps = result["steps"]

    def rec(step: str, run: str) -> dict[str, Any]:
        return ((steps.get(step) or {}).get("runs", {}).get(run) or {}).get("record") or {}

    amp, fp32, paper = rec("amp_vs_fp32", "amp"), rec("amp_vs_fp32", "fp32"), rec("paper", "paper")
    alone = (steps.get("alone") or {}).get("wall_s")
    together = (steps.get("together") or {}).get("wall_s")
    amp_i, fp_i = amp.get("test", {}).get("i_auroc"), fp32.get("test", {}).get("i_auroc")
    return {
        "gpu": result.get("gpu"),
        "epoch_s_128px": amp.get("epoch_s"), "epoch_s_1024px": paper.get("epoch_s"),
        "peak_memory_mb_1024px": paper.get("peak_memory_mb"), "step_breakdown_1024px": paper.get("step_breakdown"),
        "busy_share": {s: (v.get("gpu") or {}).get("busy_mean") for s, v in steps.items()},
        "alone_s": alone, "together_s": together, "together_over_alone": together / alone if alone and together
        else None, "test_i_auroc_amp": amp_i, "test_i_auroc_fp32": fp_i,
        "amp_minus_fp32_i_auroc": amp_i - fp_i if amp_i is not None and fp_i is not None else None,
        "calibrate_s": (steps.get("calibrate") or {}).get("wall_s"),
        "calibrate_per_epoch_s": (steps.get("calibrate") or {}).get("per_epoch_s"),
    }


if __name__ == "__main__":
    sys.exit(main())
