"""The registered baselines (FAE, HFR-AE, DRAEM, ...) on real data with the `cpu` preset, through ``run_training``.

Writes, per method, test metrics (I-AUROC, P-AUROC, AUPRO and the rest), validation metrics
(held-out normals + synthetic anomalies, as for every method), cost (params, GFLOPs, latency,
throughput) and the training time to JSON, with the settings that made them.

Settings: the `cpu` preset (128 px, FAE width 16) with the training shortened so each run fits in a
few minutes on a 2-core machine: the preset's 150 stage-1 epochs would take ~1-1.5 h for FAE there.
FAE gets the shared DTD textures (``<shared data>/dtd_small``); HFR-AE a RANDOM ResNet-18 backbone
(``hfr.pretrained=false``: no torchvision / network here), so its numbers are far below the paper's
ImageNet-backbone ones. Every run uses one torch thread (``runtime.threads=1``) and a wall-time
budget per stage (``--max-train-s``, stops at an epoch boundary; the epochs actually trained are
recorded). The machine load at start and end is recorded too, since timings depend on it.

    python benchmarks/baselines.py                                  # fae and hfr, bottle
    python benchmarks/baselines.py --methods hfr --epochs hfr=10 hfr.sigma=2
    python benchmarks/baselines.py --methods draem --epochs draem=150 --max-train-s 0

A method's texture folder (``<section>.texture_root``) gets ``--textures`` and a pretrained backbone
(``<section>.pretrained``) is turned off, whatever the method.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dataclasses  # noqa: E402

from benchmarks.method_ladder import benchmark_parser  # noqa: E402

from suite.config import build_config  # noqa: E402
from suite.data import shared_data_dir  # noqa: E402
from suite.methods.registry import method_spec, method_specs  # noqa: E402
from suite.pipeline import run_training  # noqa: E402
from suite.records import RECORD_NAME, atomic_write_json, code_versions  # noqa: E402

DEFAULT_METHODS = ("fae", "hfr")
# Shortened stage-1 epochs per method (the preset's own where absent); --epochs overrides them.
DEFAULT_EPOCHS = {"fae": 12, "hfr": 30}
COST_KEYS = ("params", "gflops", "latency_ms", "latency_ms_batch", "throughput_ips", "peak_mem_mb")


def method_overrides(method: str, args: argparse.Namespace) -> dict[str, Any]:
    """What the benchmark sets on top of the preset for ``method`` (user overrides come after)."""
    over: dict[str, Any] = {
        "data.dataset": args.dataset,
        "data.category": args.category,
        "model.method": method,
        "runtime.threads": args.threads,
        "train.max_time_s": args.max_train_s,
    }
    if args.dataset != "synthetic":
        over["data.root"] = os.path.abspath(args.root)
    epochs = args.epochs.get(method, DEFAULT_EPOCHS.get(method))
    if epochs:
        over["train.stage1.epochs"] = epochs
    spec = method_spec(method)
    fields = {f.name for f in dataclasses.fields(spec.config_class)} if spec.config_class else set()
    if args.textures and "texture_root" in fields:
        over[f"{spec.config_section}.texture_root"] = os.path.abspath(args.textures)
    if "pretrained" in fields:
        over[f"{spec.config_section}.pretrained"] = False
    return over


def parse_epochs(text: str) -> dict[str, int]:
    """``"fae=12,hfr=30"`` -> {"fae": 12, "hfr": 30}."""
    out: dict[str, int] = {}
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        if not value.isdigit():
            raise argparse.ArgumentTypeError(f"--epochs item {item!r} is not method=N")
        out[name] = int(value)
    return out


def epochs_trained(history: list[dict[str, Any]]) -> int:
    return max((h["epoch"] for h in history if h.get("stage") == "stage1" and "epoch" in h), default=0)


def run_method(method: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    over = method_overrides(method, args)
    cfg = build_config(preset=args.preset, overrides=[f"{k}={json.dumps(v)}" for k, v in over.items()]
                       + list(args.overrides))
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    record = run_training(cfg, work / f"{method}-{cfg.hash()}")
    wall = time.perf_counter() - t0
    test = record.metrics.get("test", {})
    stage1 = cfg.train.stage1
    section = method_spec(method).config_section
    result = {
        "test": test,
        "val": record.metrics.get("val", {}),
        "cost": {k: record.cost[k] for k in COST_KEYS if k in record.cost},
        "train_s": record.stage_times.get("stage1"),
        "wall_s": wall,
        "stage_times": record.stage_times,
        "epochs_requested": stage1.epochs,
        "epochs_trained": epochs_trained(record.history),
        "final_loss": next((h["loss"] for h in reversed(record.history) if "loss" in h), None),
        "settings": {
            "image_size": cfg.data.image_size,
            "batch_size": stage1.batch_size,
            "overrides": {**over, **dict(o.split("=", 1) for o in args.overrides)},
            "section": getattr(cfg, section).__dict__ if section else None,
            "lr": getattr(getattr(cfg, section, None), "lr", stage1.lr) if section else stage1.lr,
            "optimizer": getattr(getattr(cfg, section, None), "optimizer", "adam") if section else "adam",
        },
        "info": record.info,
        "n_train": record.cost.get("n_train"),
        "n_test": record.cost.get("n_test"),
        "config_hash": record.config_hash,
        "record": str(work / f"{method}-{cfg.hash()}" / RECORD_NAME),
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
    }
    print(
        f"{method:4s} I-AUROC {test.get('i_auroc', float('nan')):.3f}  P-AUROC {test.get('p_auroc', float('nan')):.3f}"
        f"  AUPRO {test.get('aupro', float('nan')):.3f}  {result['epochs_trained']} epochs, "
        f"train {result['train_s']:.0f}s, wall {wall:.0f}s",
        flush=True,
    )
    return result


def main() -> None:
    ap = benchmark_parser(__doc__)
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma-separated registered baselines")
    ap.add_argument("--textures", default=str(shared_data_dir() / "dtd_small"),
                    help="FAE texture folder ('' = procedural textures)")
    ap.add_argument("--epochs", type=parse_epochs, default={},
                    help="stage-1 epochs per method, e.g. fae=12,hfr=30 (defaults: %s; else the preset's)"
                    % DEFAULT_EPOCHS)
    ap.add_argument("--max-train-s", type=float, default=360.0, help="wall-time budget of a training stage")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (runtime.threads)")
    ap.add_argument("--work", default=str(REPO / "runs" / "bench_baselines"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "baselines.json"))
    ap.add_argument("overrides", nargs="*", help="extra config overrides key.sub=value (applied to every method)")
    args = ap.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    baselines = [s.name for s in method_specs() if not s.uses_eval_map]
    unknown = sorted(set(methods) - set(baselines))
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; choose from {', '.join(baselines)}")
    if args.dataset != "synthetic" and not Path(args.root).exists():
        raise SystemExit(f"data root {args.root} not found (set --root or RCSUITE_DATA_DIR)")
    if args.textures and not Path(args.textures).is_dir():
        raise SystemExit(f"texture folder {args.textures} not found (pass --textures '' for procedural textures)")

    out_path = Path(args.out)
    # Keep the other method's result when only one is re-run.
    previous = json.loads(out_path.read_text()) if out_path.exists() else {}
    results = previous.get("methods", {}) if previous.get("category") == args.category else {}
    work = Path(args.work)
    for method in methods:
        results[method] = run_method(method, args, work)
        out = {
            "benchmark": "baselines",
            "dataset": args.dataset,
            "category": args.category,
            "preset": args.preset,
            "methods": results,
            "versions": code_versions(),
            "cpus": os.cpu_count(),
            "note": "pretrained backbones are off (random weights: no torchvision / network here); epochs "
                    "shortened from the preset's 150 where settings.overrides say so; timings depend on the "
                    "machine load (load_avg_*).",
        }
        atomic_write_json(out_path, out)  # after each method, so a crash keeps what finished
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
