"""Scoring-only sweep from trained stages: one ``eval`` (or other scoring) key over a grid of values,
every value scored on validation and test, the pick made on validation alone.

Scoring keys do not shape weights, so each grid point loads the rung's stages from the stage cache of
an earlier ``method_ladder.py`` run (same ``--work``) and only re-runs inference; a stage that is not
in the cache is trained first. The pick: the grid value with the highest validation P-AUROC of the
configured map (seed mean), unless its validation I-AUROC falls below the best value's by more than
that value's seed std; the test columns are printed beside it, never used. Test-set shifts, cost and
per-depth diagnostics are switched off (inference only, about a minute per point on one thread;
``eval.diagnostics=true`` among the overrides brings the per-depth signal back into the JSON).

    python benchmarks/method_ladder.py --rungs RcAE+DPN+CRD --seeds 0 --work /tmp/ladder runtime.threads=1
    python benchmarks/scoring_sweep.py --grid eval.smooth_sigma=1,2,3,4 --seeds 0 --work /tmp/ladder \\
        runtime.threads=1

``--stages-like ROOT,DATASET,CATEGORY`` re-uses the stages trained on another copy of the same train
images (e.g. the unshifted bottle for ``benchmarks/stress_categories.py``'s test-shifted copies):
the script checks that both ``train/good`` folders hold byte-identical files and links the cached
stages under this category's keys; it refuses otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.method_ladder import RUNGS, as_overrides, benchmark_parser, mean_std, timed_training  # noqa: E402
from suite.config import build_config  # noqa: E402
from suite.methods.registry import method_spec  # noqa: E402
from suite.records import atomic_write_json, code_versions  # noqa: E402
from suite.stage_cache import stage_key  # noqa: E402

INFERENCE_ONLY = {"eval.shifts": [], "eval.cost": False, "eval.diagnostics": False}
METRICS = ("i_auroc", "p_auroc", "aupro")


def train_digest(root: str, category: str) -> str:
    """sha256 over the names and bytes of ``<root>/<category>/train/good``."""
    digest = hashlib.sha256()
    for path in sorted((Path(root) / category / "train" / "good").iterdir()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def link_stages(preset: str, source: list[str], target: list[str], cache: Path) -> None:
    """Make the stages cached for ``source`` overrides available under ``target``'s keys."""
    src, dst = build_config(preset=preset, overrides=source), build_config(preset=preset, overrides=target)
    spec = method_spec(src.model.method)
    for stage in spec.stages:
        have = cache / f"{stage_key(src, stage, spec)}.pt"
        want = cache / f"{stage_key(dst, stage, spec)}.pt"
        if have.exists() and not want.exists():
            os.link(have, want)
            print(f"[sweep] {stage}: {have.name} -> {want.name}", flush=True)


def main() -> None:
    ap = benchmark_parser(__doc__)
    ap.add_argument("--rung", default="RcAE+DPN+CRD", choices=list(RUNGS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--grid", required=True, help="key=v1,v2,... (values as JSON; separated by ';' instead where "
                                                  "a value holds commas: key=[\"a\",\"b\"];[\"a\"])")
    ap.add_argument("--work", required=True, help="the method_ladder.py --work folder holding stage_cache")
    ap.add_argument("--stages-like", help="ROOT,DATASET,CATEGORY of a category with the same train images")
    ap.add_argument("--out", required=True, help="JSON file")
    ap.add_argument("overrides", nargs="*", help="extra config overrides key.sub=value")
    args = ap.parse_args()
    key, _, values = args.grid.partition("=")
    grid = [json.loads(v) for v in values.split(";" if ";" in values else ",")]
    work = Path(args.work)
    runs: dict[str, dict[int, dict]] = {}
    if args.stages_like:
        root, dataset, category = args.stages_like.split(",")
        if train_digest(root, category) != train_digest(args.root, args.category):
            raise SystemExit(f"--stages-like {args.stages_like}: train/good differs from {args.root}/{args.category}")
    for seed in [int(s) for s in args.seeds.split(",")]:
        base = {"data.dataset": args.dataset, "data.root": os.path.abspath(args.root),
                "data.category": args.category, "runtime.seed": seed, **RUNGS[args.rung]}
        if args.stages_like:
            source = {**base, "data.dataset": dataset, "data.root": os.path.abspath(root), "data.category": category}
            link_stages(args.preset, as_overrides(source) + args.overrides, as_overrides(base) + args.overrides,
                        work / "stage_cache")
        for value in grid:
            over = as_overrides({**base, **INFERENCE_ONLY, key: value}) + list(args.overrides)
            record, wall, fields = timed_training(args.preset, over, work, f"sweep-{args.rung}", seed)
            runs.setdefault(json.dumps(value), {})[seed] = {**fields, "diagnostics": record.diagnostics}
            val, test = fields["val"], fields["test"]
            print(f"[sweep] seed {seed} {key}={value}: val I {val.get('i_auroc', float('nan')):.3f} "
                  f"P {val.get('p_auroc', float('nan')):.3f} | test I {test.get('i_auroc', float('nan')):.3f} "
                  f"P {test.get('p_auroc', float('nan')):.3f} AUPRO {test.get('aupro', float('nan')):.3f} "
                  f"({wall:.0f}s)", flush=True)
    summary = {
        value: {"val": {m: mean_std([r["val"].get(m) for r in by_seed.values()]) for m in ("i_auroc", "p_auroc")},
                "test": {m: mean_std([r["test"].get(m) for r in by_seed.values()]) for m in METRICS},
                "seeds": sorted(by_seed)}
        for value, by_seed in runs.items()
    }
    best_i = max(summary.values(), key=lambda s: s["val"]["i_auroc"]["mean"])["val"]["i_auroc"]
    allowed = {v: s for v, s in summary.items() if s["val"]["i_auroc"]["mean"] >= best_i["mean"] - best_i["std"]}
    pick = max(allowed, key=lambda v: allowed[v]["val"]["p_auroc"]["mean"])
    print(f"\n{key:>18s}  validation I / P-AUROC          test I / P-AUROC / AUPRO (not used for the pick)")
    for value, s in summary.items():
        cells = " / ".join(f"{s['val'][m]['mean']:.3f}±{s['val'][m]['std']:.3f}" for m in ("i_auroc", "p_auroc"))
        test = " / ".join(f"{s['test'][m]['mean']:.3f}±{s['test'][m]['std']:.3f}" for m in METRICS)
        print(f"{value:>18s}  {cells}   {test}{'   <- validation pick' if value == pick else ''}")
    atomic_write_json(Path(args.out), {
        "dataset": args.dataset, "category": args.category, "preset": args.preset, "rung": args.rung,
        "key": key, "overrides": args.overrides, "pick": json.loads(pick), "summary": summary, "runs": runs,
        "versions": code_versions(), "cpus": os.cpu_count(),
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
