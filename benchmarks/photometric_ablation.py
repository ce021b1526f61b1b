"""The photometric ablation (``search_spaces/ablation_photometric.py``) on a stress category, several
seeds: validation and test metrics of every row, and the selection fidelity of validation over the
rows (issue 19: choose the photometric defaults from validation only; the darkened bottle is a test).

Every row trains with the space's ``BASE`` (validation holds gain- and gamma-shifted held-out
normals). Rows that differ only in scoring share their trained stages through the stage cache, so a
seed costs one training per distinct training setup (paper, normalise, jitter, all).

    python benchmarks/stress_categories.py --out /tmp/rcsuite-stress --only dark8
    python benchmarks/photometric_ablation.py --root /tmp/rcsuite-stress --category bottle_dark8 \\
        --preset demo --seeds 0,1,2

Output (``--out``): per (row, seed) the validation and test metrics and ``record.scorings``; per row
mean ± std over seeds; and the Spearman / Kendall correlation of the rows' seed-mean validation and
test I-AUROC and P-AUROC. (row, seed) runs already in the file are kept unless run again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from method_ladder import as_overrides, mean_std, timed_training  # noqa: E402
from scipy import stats  # noqa: E402

from suite.records import atomic_write_json, code_versions  # noqa: E402
from suite.spaces import load_ablations  # noqa: E402

METRICS = ("i_auroc", "p_auroc", "aupro")


def rank_agreement(val: list[float], test: list[float]) -> dict[str, float | int]:
    """Spearman rho and Kendall tau-b of the rows' validation and test means (NaN below 3 rows)."""
    if len(val) < 3:
        return {"spearman": float("nan"), "kendall": float("nan"), "rows": len(val)}
    return {"spearman": float(stats.spearmanr(val, test).statistic),
            "kendall": float(stats.kendalltau(val, test).statistic), "rows": len(val)}


def summarise(runs: dict[str, dict[int, dict]]) -> dict:
    rows = {
        row: {split: {m: mean_std([r[split].get(m) for r in by_seed.values()]) for m in METRICS}
              for split in ("val", "test")} | {"seeds": sorted(by_seed)}
        for row, by_seed in runs.items()
    }
    fidelity = {}
    for metric in ("i_auroc", "p_auroc"):
        names = [r for r in rows if rows[r]["val"][metric]["n"] and rows[r]["test"][metric]["n"]]
        fidelity[metric] = rank_agreement([rows[r]["val"][metric]["mean"] for r in names],
                                          [rows[r]["test"][metric]["mean"] for r in names])
    return {"rows": rows, "fidelity": fidelity}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="folder holding the stress categories (stress_categories.py)")
    ap.add_argument("--category", default="bottle_dark8")
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--rows", default="", help="comma-separated row ids (default: all)")
    ap.add_argument("--space", default="ablation_photometric")
    ap.add_argument("--work", default=str(REPO / "runs" / "bench_photometric"))
    ap.add_argument("--out", default="", help="JSON (default benchmarks/results/photometric_<category>_<preset>.json)")
    ap.add_argument("overrides", nargs="*", help="extra config overrides key.sub=value (before each row's)")
    args = ap.parse_args()
    (ablation,) = load_ablations([args.space])
    wanted = [r.strip() for r in args.rows.split(",") if r.strip()] or [r.id for r in ablation.rows]
    unknown = sorted(set(wanted) - {r.id for r in ablation.rows})
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; {args.space} has {[r.id for r in ablation.rows]}")
    out_path = Path(args.out or REPO / "benchmarks" / "results" / f"photometric_{args.category}_{args.preset}.json")
    previous = json.loads(out_path.read_text()) if out_path.exists() else {}
    same = previous.get("overrides") == args.overrides and previous.get("category") == args.category
    runs: dict[str, dict[int, dict]] = {
        row: {int(s): r for s, r in by_seed.items()} for row, by_seed in previous.get("runs", {}).items()
    } if same else {}
    work = Path(args.work) / f"{args.category}-{args.preset}"
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        for row_id in wanted:
            row = ablation.row(row_id)
            over = {"data.dataset": "folder", "data.root": os.path.abspath(args.root),
                    "data.category": args.category, "runtime.seed": seed, **ablation.base}
            record, wall, fields = timed_training(
                args.preset, as_overrides(over) + list(args.overrides) + as_overrides(row.overrides), work, row_id,
                seed)
            runs.setdefault(row_id, {})[seed] = {
                **fields, "shifts": getattr(record, "shifts", {}),
                "score_brightness_spearman": record.info.get("score_brightness_spearman"),
            }
            val, test = record.metrics.get("val", {}), record.metrics.get("test", {})
            print(f"[photometric] seed {seed} {row_id:15s} val I/P {val.get('i_auroc', float('nan')):.3f}/"
                  f"{val.get('p_auroc', float('nan')):.3f}  test I/P/PRO {test.get('i_auroc', float('nan')):.3f}/"
                  f"{test.get('p_auroc', float('nan')):.3f}/{test.get('aupro', float('nan')):.3f}  ({wall:.0f}s)",
                  flush=True)
            summary = summarise(runs)
            atomic_write_json(out_path, {
                "category": args.category, "preset": args.preset, "space": args.space, "overrides": args.overrides,
                "base": ablation.base, "summary": summary, "runs": runs, "versions": code_versions(),
                "cpus": os.cpu_count()})
    summary = summarise(runs)
    print(f"\n{args.category}, preset {args.preset} (mean ± std over seeds)")
    print(f"{'row':16s} {'val I-AUROC':>15s} {'val P-AUROC':>15s} {'test I-AUROC':>15s} {'test P-AUROC':>15s}")
    for row_id, cells in summary["rows"].items():
        print(f"{row_id:16s} " + " ".join(f"{cells[s][m]['mean']:.3f} ± {cells[s][m]['std']:.3f}"
                                          for s in ("val", "test") for m in ("i_auroc", "p_auroc")))
    for metric, f in summary["fidelity"].items():
        print(f"selection fidelity {metric}: Spearman {f['spearman']:.2f}, Kendall {f['kendall']:.2f} "
              f"over {f['rows']} rows")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
