"""FAE and HFR-AE baselines on real data with the `cpu` preset, through ``run_trial``.

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

    python benchmarks/baselines.py                                  # both methods, bottle
    python benchmarks/baselines.py --methods hfr --hfr-epochs 10 hfr.sigma=2
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

from suite.config import build_config  # noqa: E402
from suite.data import shared_data_dir  # noqa: E402
from suite.pipeline import run_trial  # noqa: E402
from suite.records import RECORD_NAME, atomic_write_json, code_versions  # noqa: E402

METHODS = ("fae", "hfr")
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
    if method == "fae":
        over["train.stage1.epochs"] = args.fae_epochs
        if args.textures:
            over["fae.texture_root"] = os.path.abspath(args.textures)
    else:
        over["train.stage1.epochs"] = args.hfr_epochs
        over["hfr.pretrained"] = False
    return over


def epochs_trained(history: list[dict[str, Any]]) -> int:
    return max((h["epoch"] for h in history if h.get("stage") == "stage1" and "epoch" in h), default=0)


def run_method(method: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    over = method_overrides(method, args)
    cfg = build_config(preset=args.preset, overrides=[f"{k}={json.dumps(v)}" for k, v in over.items()]
                       + list(args.overrides))
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    record = run_trial(cfg, work / f"{method}-{cfg.hash()}")
    wall = time.perf_counter() - t0
    test = record.metrics.get("test", {})
    stage1 = cfg.train.stage1
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
            "fae": cfg.fae.__dict__ if method == "fae" else None,
            "hfr": cfg.hfr.__dict__ if method == "hfr" else None,
            "lr": stage1.lr if method == "fae" else cfg.hfr.lr,
            "optimizer": "adam" if method == "fae" else cfg.hfr.optimizer,
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
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=str(shared_data_dir() / "mvtec_bottle_256"))
    ap.add_argument("--dataset", default="mvtec")
    ap.add_argument("--category", default="bottle")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of fae,hfr")
    ap.add_argument("--textures", default=str(shared_data_dir() / "dtd_small"),
                    help="FAE texture folder ('' = procedural textures)")
    ap.add_argument("--fae-epochs", type=int, default=12, help="FAE stage-1 epochs (preset: 150)")
    ap.add_argument("--hfr-epochs", type=int, default=30, help="HFR-AE stage-1 epochs (preset: 150)")
    ap.add_argument("--max-train-s", type=float, default=360.0, help="wall-time budget of a training stage")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (runtime.threads)")
    ap.add_argument("--work", default=str(REPO / "runs" / "bench_baselines"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "baselines.json"))
    ap.add_argument("overrides", nargs="*", help="extra config overrides key.sub=value (applied to every method)")
    args = ap.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
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
            "note": "HFR-AE uses a random (not ImageNet) backbone; epochs shortened from the preset's 150 "
                    "to fit a 2-core machine; timings depend on the machine load (load_avg_*).",
        }
        atomic_write_json(out_path, out)  # after each method, so a crash keeps what finished
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
