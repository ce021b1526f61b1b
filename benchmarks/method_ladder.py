"""The RcAE paper's Table 2 ladder on real data: ConvAE, RcAE, RcAE+DPN, RcAE+DPN+CRD, each with
several seeds, every rung scored under every scoring variant (mean ± std over seeds).

The RcAE rungs share stage 1 (and the last two stage 2) through the stage cache, so one seed of
the ladder costs one ConvAE, one RcAE, one DPN and one CRD training. Scoring variants come from
``record.scorings`` (inference only): ``auto|none`` / ``auto|pixel`` score each rung on its own
map (|I - I_D^N| without CRD, the CRD map with it), raw or standardised per pixel by held-out
normals — the same rule for every rung. The full pipeline's per-depth signal
(``record.diagnostics``) is printed and stored as well.

    python benchmarks/method_ladder.py --root ../shared/data/mvtec_bottle_256 --category bottle --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from suite.config import build_config  # noqa: E402
from suite.data import shared_data_dir  # noqa: E402
from suite.pipeline import run_training  # noqa: E402
from suite.records import atomic_write_json, code_versions  # noqa: E402

RUNGS = {
    # The paper's Table 2 ConvAE is the no-skip one (82.4/90.8, the same row in Table 4).
    "ConvAE": {"model.method": "convae", "model.skip": False},
    "RcAE": {"model.use_dpn": False, "model.use_crd": False},
    "RcAE+DPN": {"model.use_dpn": True, "model.use_crd": False},
    "RcAE+DPN+CRD": {"model.use_dpn": True, "model.use_crd": True},
}
METRICS = ("i_auroc", "p_auroc", "aupro")
TRAIN_STAGES = ("stage1", "stage2", "stage3")


def as_overrides(settings: dict) -> list[str]:
    """``{"a.b": value}`` as ``key=json`` config overrides."""
    return [f"{k}={json.dumps(v)}" for k, v in settings.items()]


def timed_training(preset: str, overrides: list[str], work: Path, name: str, seed: int):
    """``run_training`` of one (name, seed) in ``work`` (sharing ``work/stage_cache``); returns the
    record, its wall time and the summary fields every benchmark stores for a run."""
    cfg = build_config(preset=preset, overrides=overrides)
    t0 = time.perf_counter()
    record = run_training(cfg, work / f"{name}-s{seed}-{cfg.hash()}", stage_cache=work / "stage_cache")
    wall = time.perf_counter() - t0
    fields = {"val": record.metrics.get("val", {}), "test": record.metrics.get("test", {}),
              "scorings": record.scorings, "scoring": record.info.get("scoring"), "wall_s": wall,
              "config_hash": record.config_hash}
    return record, wall, fields


def mean_std(values: list[float]) -> dict[str, float]:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "n": len(values)}


def summarise(runs: dict[str, dict[int, dict]]) -> dict[str, dict]:
    """rung -> {"scorings": variant -> metric -> mean/std, "train_s": mean/std, ...}."""
    out: dict[str, dict] = {}
    for rung, by_seed in runs.items():
        variants = sorted({v for r in by_seed.values() for v in r["scorings"]})
        out[rung] = {
            "seeds": sorted(by_seed),
            "configured": next(iter(by_seed.values()))["scoring"],
            "scorings": {
                v: {m: mean_std([r["scorings"].get(v, {}).get("test", {}).get(m) for r in by_seed.values()])
                    for m in METRICS}
                for v in variants
            },
            "val": {m: mean_std([r["val"].get(m) for r in by_seed.values()]) for m in ("i_auroc", "p_auroc")},
            # Training time of this rung's pipeline: every stage it needs, trained or loaded.
            "train_s": mean_std([r["train_s"] for r in by_seed.values()]),
        }
    return out


def print_tables(summary: dict[str, dict]) -> None:
    variants = sorted({v for s in summary.values() for v in s["scorings"]})
    for variant in variants:
        rows = [(rung, s["scorings"][variant]) for rung, s in summary.items() if variant in s["scorings"]]
        if not rows:
            continue
        print(f"\nscoring {variant}  (test, mean ± std over seeds)")
        print(f"{'rung':14s} " + "  ".join(f"{m:>15s}" for m in METRICS))
        for rung, cells in rows:
            print(f"{rung:14s} " + "  ".join(f"{cells[m]['mean']:.3f} ± {cells[m]['std']:.3f}  " for m in METRICS))


def benchmark_parser(doc: str) -> argparse.ArgumentParser:
    """The options every bottle benchmark shares: which category, from where, at which preset."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=str(shared_data_dir() / "mvtec_bottle_256"))
    ap.add_argument("--dataset", default="mvtec")
    ap.add_argument("--category", default="bottle")
    ap.add_argument("--preset", default="cpu")
    return ap


def main() -> None:
    ap = benchmark_parser(__doc__)
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds ('' with --merge: only merge)")
    ap.add_argument("--rungs", default=",".join(RUNGS), help="comma-separated subset of " + ",".join(RUNGS))
    ap.add_argument("--work", default=str(REPO / "runs" / "bench_ladder"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "method_ladder.json"),
                    help="JSON file; (rung, seed) runs already in it are kept unless run again")
    ap.add_argument("--merge", nargs="*", default=[], metavar="JSON",
                    help="also take the runs of these earlier outputs (same category and overrides)")
    ap.add_argument("overrides", nargs="*", help="extra config overrides key.sub=value")
    args = ap.parse_args()
    if args.dataset != "synthetic" and not Path(args.root).exists():
        raise SystemExit(f"data root {args.root} not found (set --root or RCSUITE_DATA_DIR)")
    work = Path(args.work)
    out_path = Path(args.out)
    previous = json.loads(out_path.read_text()) if out_path.exists() else {}
    same_setup = previous.get("overrides") == args.overrides and previous.get("category") == args.category
    runs: dict[str, dict[int, dict]] = {
        rung: {int(s): r for s, r in by_seed.items()} for rung, by_seed in previous.get("runs", {}).items()
    } if same_setup else {}
    diagnostics: dict[int, dict] = {int(k): v for k, v in previous.get("diagnostics", {}).items()} if same_setup else {}
    for other in args.merge:
        data = json.loads(Path(other).read_text())
        if data.get("overrides") != args.overrides or data.get("category") != args.category:
            raise SystemExit(f"{other}: other category or overrides ({data.get('category')}, {data.get('overrides')})")
        for rung, by_seed in data.get("runs", {}).items():
            runs.setdefault(rung, {}).update({int(s): r for s, r in by_seed.items()})
        diagnostics.update({int(k): v for k, v in data.get("diagnostics", {}).items()})
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else []
    for seed in seeds:
        for name in args.rungs.split(","):
            over = {"data.dataset": args.dataset, "data.root": os.path.abspath(args.root),
                    "data.category": args.category, "runtime.seed": seed, **RUNGS[name]}
            record, wall, fields = timed_training(args.preset, as_overrides(over) + list(args.overrides), work,
                                                  name, seed)
            # Training time of the rung: stages loaded from the cache count with the time they took
            # when they were built (looked up from the rung that built them in this benchmark).
            runs.setdefault(name, {})[seed] = {
                **fields, "stage_times": record.stage_times,
                "cached": {k: v for k, v in record.info.items() if "cache" in k}, "cost": record.cost,
            }
            if name == "RcAE+DPN+CRD":
                diagnostics[seed] = record.diagnostics
            test = record.metrics.get("test", {})
            print(f"[ladder] seed {seed} {name:14s} {record.info.get('scoring')}: "
                  f"I-AUROC {test.get('i_auroc', float('nan')):.3f}"
                  f"  P-AUROC {test.get('p_auroc', float('nan')):.3f}  AUPRO {test.get('aupro', float('nan')):.3f}"
                  f"  ({wall:.0f}s)", flush=True)
    built: dict[tuple[int, str], float] = {}
    for name, by_seed in runs.items():
        for seed, r in by_seed.items():
            for stage in TRAIN_STAGES:
                if stage in r["stage_times"] and not r["cached"].get(f"{stage}_from_cache"):
                    built[(seed, f"{'convae' if name == 'ConvAE' else 'rcae'}-{stage}")] = r["stage_times"][stage]
    for name, by_seed in runs.items():
        for seed, r in by_seed.items():
            kind = "convae" if name == "ConvAE" else "rcae"
            r["train_s"] = sum(built.get((seed, f"{kind}-{s}"), 0.0) for s in TRAIN_STAGES if s in r["stage_times"])
    summary = summarise(runs)
    print_tables(summary)
    print("\ntraining time per rung (s, mean over seeds): "
          + ", ".join(f"{k} {v['train_s']['mean']:.0f}" for k, v in summary.items()))
    per_depth: dict[str, dict] = {}
    for seed_diag in diagnostics.values():
        for family, steps in seed_diag.get("test", {}).items():
            for step, values in steps.items():
                for metric, value in values.items():
                    per_depth.setdefault(family, {}).setdefault(step, {}).setdefault(metric, []).append(value)
    per_depth_summary = {f: {s: {m: mean_std(v) for m, v in ms.items()} for s, ms in steps.items()}
                         for f, steps in per_depth.items()}
    if per_depth_summary:
        print("\nper-depth signal of the full pipeline (test, mean over seeds): family step I-AUROC P-AUROC")
        for family, steps in per_depth_summary.items():
            for step, ms in sorted(steps.items()):
                print(f"  {family:7s} {step:>4s}  {ms['i_auroc']['mean']:.3f}  {ms['p_auroc']['mean']:.3f}")
    out = {"dataset": args.dataset, "category": args.category, "preset": args.preset, "overrides": args.overrides,
           "summary": summary, "per_depth": per_depth_summary, "runs": runs, "diagnostics": diagnostics,
           "versions": code_versions(), "cpus": os.cpu_count()}
    atomic_write_json(out_path, out)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
