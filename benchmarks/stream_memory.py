"""Peak RSS of one trial at 1024 px with the images in RAM (before) and streamed from disk (after).

Issue 11, item 5. One RcAE trial (``tiny`` widths, 1 epoch per stage, batch 4) on MVTec bottle
from ``$RCSUITE_DATA_DIR`` (default ``/work/shared/data``; the 256 px copy ``mvtec_bottle_256``
resized with ``data.image_size=1024``) runs in a fresh subprocess per arm:

* ``before``: the code of ``--before-ref`` (the last commit without streaming; extracted with
  ``git archive``, nothing in the working tree changes): every split decoded by ``load_arrays``
  into float32 arrays held for the whole run.
* ``stream_<B>mb``: this tree, ``runtime.cache_mb=B`` (default 256), ``runtime.num_workers=0``.
* ``stream_0mb``: no cache at all; its training-phase peak minus its baseline is the "model memory"
  (parameters, optimiser state, activations and gradients of one batch, the batch itself, the
  allocator's slack), measured rather than estimated.

Each child reads ``VmHWM`` (peak resident set) at the phase boundaries and resets it there
(``/proc/self/clear_refs`` = 5): ``data`` (splits, validation set), ``train`` (all stages and the
scoring fit) and, with ``--with-eval`` only (slow: the pixel metrics of 83 maps of 1024 px),
``eval`` (prediction and metrics on validation and test); without it a child stops after training.
``baseline`` is ``VmRSS`` after importing torch and the suite. The claim checked: ``train
peak(stream B) <= baseline + B + model memory``, with model memory from the ``stream_0mb`` arm.

    PYTHONPATH=. python benchmarks/stream_memory.py --out benchmarks/results/stream_memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEFORE_REF = "67fa20fc93c2f6e9eb592edc209657572bbf7115"  # the last commit before streaming
OVERRIDES = [
    "data.dataset=mvtec", "data.category=bottle", "data.image_size=1024", "data.data_fraction=0.1",
    "train.stage1.epochs=1", "train.stage2.epochs=1", "train.stage3.epochs=1",
    "train.stage1.batch_size=4", "train.stage2.batch_size=4", "train.stage3.batch_size=4",
    "eval.cost=false", "eval.aupro=false", "eval.save_maps=0", "eval.scoring_variants=false",
    "eval.diagnostics=false", "runtime.device=cpu", "runtime.threads=2",
]


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


class StopAfterTraining(Exception):
    """Ends a child after its training phase (evaluation at 1024 px takes most of the time)."""


def child(args: argparse.Namespace) -> None:
    """One trial in this process; phase peaks (MiB) as JSON on the last stdout line."""
    import torch  # noqa: F401 - counted in the baseline

    import suite.pipeline as pipeline
    from suite.config import build_config
    from suite.methods.registry import method_spec

    cfg = build_config(preset="tiny", overrides=[*OVERRIDES, f"data.root={args.root}", *args.override])
    method_spec(cfg.model.method).train_fn()  # the method's imports, before the baseline
    baseline = _status_kib("VmRSS") / 1024
    phases: dict[str, float] = {}
    params: dict[str, float] = {}
    original = pipeline.method_trainer

    def mark(phase: str) -> None:
        phases[phase] = _status_kib("VmHWM") / 1024
        _reset_peak()

    def traced(name):
        train = original(name)

        def wrapped(ctx):
            mark("data")
            method = train(ctx)
            mark("train")
            params["params_mb"] = sum(p.numel() * p.element_size() for m in method.modules.values()
                                      for p in m.parameters()) / 2**20
            cache = getattr(ctx.train_images, "cache", None)
            params["image_cache"] = None if cache is None else cache.stats()
            if not args.with_eval:
                raise StopAfterTraining
            return method

        return wrapped

    pipeline.method_trainer = traced
    _reset_peak()
    t0 = time.perf_counter()
    record = None
    with tempfile.TemporaryDirectory() as out:
        try:
            record = pipeline.run_training(cfg, out, log=lambda line: print(line, file=sys.stderr))
            mark("eval")
        except StopAfterTraining:
            pass
    result = {"baseline_rss_mb": baseline, "peak_rss_mb": phases, **params, "wall_s": time.perf_counter() - t0}
    if record is not None:
        result.update({"stage_times": record.stage_times, "test": record.metrics.get("test"),
                       "image_cache": record.info.get("image_cache")})
    print(json.dumps(result))


def run_arm(name: str, pythonpath: Path, root: str, overrides: list[str], with_eval: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "RAY_USAGE_STATS_ENABLED": "0"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--root", root,
           *(f"--override={o}" for o in overrides), *(["--with-eval"] if with_eval else [])]
    print(f"[{name}] running ...", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=pythonpath, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"arm {name} failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["overrides"] = overrides
    print(f"[{name}] {time.perf_counter() - t0:.0f}s: baseline {result['baseline_rss_mb']:.0f} MB, peaks "
          + ", ".join(f"{k} {v:.0f} MB" for k, v in result["peak_rss_mb"].items()), flush=True)
    return result


def extract(ref: str, folder: Path) -> Path:
    """The ``suite`` package of ``ref`` under ``folder`` (``git archive``: read-only for the repo)."""
    archive = folder / "before.tar"
    with open(archive, "wb") as fh:
        subprocess.run(["git", "archive", ref, "suite"], cwd=REPO, stdout=fh, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder / "before", filter="data")
    return folder / "before"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "stream_memory.json"))
    parser.add_argument("--cache-mb", type=float, default=256.0)
    parser.add_argument("--before-ref", default=BEFORE_REF)
    parser.add_argument("--root", default=None, help="folder holding bottle/ (default: the shared 256 px copy)")
    parser.add_argument("--with-eval", action="store_true", help="also evaluate (slow at 1024 px)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--override", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    data_dir = Path(os.environ.get("RCSUITE_DATA_DIR", "/work/shared/data"))
    root = Path(args.root) if args.root else data_dir / "mvtec_bottle_256"
    if not (root / "bottle" / "train" / "good").is_dir():
        print(f"SKIPPED: MVTec bottle not found under {root} (set RCSUITE_DATA_DIR or --root)")
        return
    arms: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        before = extract(args.before_ref, Path(tmp))
        arms["before"] = run_arm("before", before, str(root), [], args.with_eval)
    arms["stream_0mb"] = run_arm("stream_0mb", REPO, str(root), ["runtime.cache_mb=0"], args.with_eval)
    name = f"stream_{args.cache_mb:g}mb"
    arms[name] = run_arm(name, REPO, str(root), [f"runtime.cache_mb={args.cache_mb}"], args.with_eval)

    model_mb = arms["stream_0mb"]["peak_rss_mb"]["train"] - arms["stream_0mb"]["baseline_rss_mb"]
    stream = arms[name]
    bound = stream["baseline_rss_mb"] + args.cache_mb + model_mb
    report = {
        "benchmark": "stream_memory",
        "issue": "11.5",
        "settings": {"overrides": OVERRIDES, "root": str(root), "cache_mb": args.cache_mb,
                     "before_ref": args.before_ref, "image_bytes_float32_mb": 3 * 1024 * 1024 * 4 / 2**20},
        "arms": arms,
        "model_memory_mb": model_mb,
        "claim": {
            "train_peak_rss_mb": stream["peak_rss_mb"]["train"],
            "bound_mb": bound,
            "holds": stream["peak_rss_mb"]["train"] <= bound,
            "text": "train peak RSS (streaming, cache B) <= baseline RSS + B + model memory (train peak - "
                    "baseline of the cache-0 arm)",
        },
        "saved_vs_before_mb": {phase: arms["before"]["peak_rss_mb"][phase] - stream["peak_rss_mb"][phase]
                               for phase in ("data", "train", "eval") if phase in stream["peak_rss_mb"]},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["claim"], indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
