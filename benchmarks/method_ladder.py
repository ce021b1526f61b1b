"""The RcAE paper's Table 2 ladder on real data with the `cpu` preset: ConvAE, RcAE, RcAE+DPN,
RcAE+DPN+CRD. Writes I-AUROC, P-AUROC, AUPRO and wall time per rung to JSON.

The three RcAE rungs share stage 1 (and the last two stage 2) through the stage cache, so the
whole ladder costs one ConvAE, one RcAE, one DPN and one CRD training.

    python benchmarks/method_ladder.py --root ../shared/data/mvtec_bottle_256 --category bottle
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from suite.config import build_config  # noqa: E402
from suite.data import shared_data_dir  # noqa: E402
from suite.pipeline import run_trial  # noqa: E402
from suite.records import atomic_write_json, code_versions  # noqa: E402

RUNGS = {
    # The paper's Table 2 ConvAE is the no-skip one (82.4/90.8, the same row in Table 4).
    "ConvAE": {"model.method": "convae", "model.skip": False},
    "RcAE": {"model.use_dpn": False, "model.use_crd": False},
    "RcAE+DPN": {"model.use_dpn": True, "model.use_crd": False},
    "RcAE+DPN+CRD": {"model.use_dpn": True, "model.use_crd": True},
    # Not in the paper: the CRD map averaged with the standardised residual (scoring only, so the
    # stages come from the cache).
    "RcAE+DPN+CRD fused": {"model.use_dpn": True, "model.use_crd": True, "eval.anomaly_map": "fused"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=str(shared_data_dir() / "mvtec_bottle_256"))
    ap.add_argument("--dataset", default="mvtec")
    ap.add_argument("--category", default="bottle")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--rungs", default=",".join(RUNGS), help="comma-separated subset of " + ",".join(RUNGS))
    ap.add_argument("--work", default=str(REPO / "runs" / "bench_ladder"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "method_ladder.json"),
                    help="JSON file; rungs already in it are kept unless run again")
    ap.add_argument("overrides", nargs="*", help="extra config overrides key.sub=value")
    args = ap.parse_args()
    if args.dataset != "synthetic" and not Path(args.root).exists():
        raise SystemExit(f"data root {args.root} not found (set --root or RCSUITE_DATA_DIR)")
    work = Path(args.work)
    previous = json.loads(Path(args.out).read_text()).get("rungs", {}) if Path(args.out).exists() else {}
    results = dict(previous)
    for name in args.rungs.split(","):
        over = {"data.dataset": args.dataset, "data.root": os.path.abspath(args.root),
                "data.category": args.category, **RUNGS[name]}
        cfg = build_config(preset=args.preset, overrides=[f"{k}={json.dumps(v)}" for k, v in over.items()]
                           + list(args.overrides))
        t0 = time.perf_counter()
        record = run_trial(cfg, work / f"{name}-{cfg.hash()}", stage_cache=work / "stage_cache")
        wall = time.perf_counter() - t0
        test = record.metrics.get("test", {})
        results[name] = {
            "i_auroc": test.get("i_auroc"), "p_auroc": test.get("p_auroc"), "aupro": test.get("aupro"),
            "val": record.metrics.get("val", {}), "wall_s": wall, "stage_times": record.stage_times,
            "cached": record.info, "cost": record.cost, "config_hash": record.config_hash,
        }
        print(f"{name:14s} I-AUROC {test.get('i_auroc', float('nan')):.3f}  P-AUROC "
              f"{test.get('p_auroc', float('nan')):.3f}  AUPRO {test.get('aupro', float('nan')):.3f}  {wall:.0f}s",
              flush=True)
    out = {"dataset": args.dataset, "category": args.category, "preset": args.preset,
           "overrides": args.overrides, "rungs": results, "versions": code_versions(), "cpus": os.cpu_count(),
           "total_train_s": sum(sum(v for k, v in r["stage_times"].items() if k.startswith("stage"))
                                for r in results.values())}
    atomic_write_json(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
