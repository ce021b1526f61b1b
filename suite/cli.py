"""The command line: a thin argparse layer over library functions (run_suite.py calls ``main``).

Subcommands: datasets | train | sweep | report | demo | bench. Data options are the same wherever
data is read; ``--config FILE.yaml``, ``--preset NAME`` and trailing ``key.sub=value`` overrides
build the one typed config.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from suite.config import PRESETS, ConfigError, build_config

REPO = Path(__file__).resolve().parents[1]


def _dataset_choices() -> tuple[str, ...]:
    from suite.data.registry import dataset_names

    return dataset_names()


def _add_data_options(p: argparse.ArgumentParser, many: bool) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=_dataset_choices(), default=None, help="dataset kind (default: synthetic)")
    g.add_argument("--root", default=None, help="dataset root folder (not needed for synthetic)")
    if many:
        g.add_argument("--categories", default=None, help="'all' or a comma-separated list of categories")
        g.add_argument("--category", default=None, help="a single category (same as --categories NAME)")
    else:
        g.add_argument("--category", default=None, help="category name, e.g. bottle")


def _add_config_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("configuration")
    g.add_argument("--config", default=None, help="YAML config file (nested keys as in suite/config.py)")
    g.add_argument("--preset", default=None, choices=sorted(PRESETS), help="named preset applied before the file")
    g.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides, e.g. model.depth=3")


def _config_from_args(args: argparse.Namespace, category: str | None = None):
    overrides = list(args.overrides or [])
    base: dict = {"data": {}}
    if args.dataset:
        base["data"]["dataset"] = args.dataset
    if args.root:
        base["data"]["root"] = os.path.abspath(args.root)
    cat = category or getattr(args, "category", None)
    if cat:
        base["data"]["category"] = cat
    return build_config(preset=args.preset, base=base, file=args.config, overrides=overrides)


def resolve_categories(dataset: str, root: str | None, spec: str | None) -> list[str]:
    """'all' → every present category of the dataset; 'a,b' → those (each checked)."""
    from suite.data import dataset_spec, list_categories

    fixed_categories = bool(dataset_spec(dataset).categories)  # False: discovered under the root
    known = list_categories(dataset, root)
    names = [name for name, _ in known]
    present = [name for name, here in known if here]
    if not spec or spec == "all":
        if not present:
            raise SystemExit(f"error: no categories of dataset '{dataset}' found under {root}")
        return present
    wanted = [c.strip() for c in spec.split(",") if c.strip()]
    for c in wanted:
        if fixed_categories and c not in names:
            raise SystemExit(f"error: unknown category '{c}' for {dataset}; known: {', '.join(names)}")
        if c not in present:
            raise SystemExit(f"error: category '{c}' is not present under {root}")
    return wanted


def new_run_dir(base: str | Path, name: str) -> Path:
    """A fresh folder under ``base``: runs are never overwritten (name, name-2, name-3, ...)."""
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    candidate = base / name
    k = 2
    while candidate.exists():
        candidate = base / f"{name}-{k}"
        k += 1
    candidate.mkdir(parents=True)
    return candidate


# ----------------------------------------------------------------------------------------------


def cmd_datasets(args: argparse.Namespace) -> int:
    from suite.data import dataset_names, dataset_spec, list_categories, shared_data_dir

    kinds = [args.dataset] if args.dataset else list(dataset_names())
    for kind in kinds:
        root = args.root
        if root is None and kind == "mvtec":
            guess = shared_data_dir() / "mvtec_bottle_256"
            root = str(guess) if guess.exists() else None
        if not dataset_spec(kind).categories and root is None:  # categories are discovered under a root
            print(f"{kind}: give --root DIR to list a {kind} dataset")
            continue
        try:
            cats = list_categories(kind, root)
        except Exception as err:  # noqa: BLE001 - report and go on to the next dataset
            print(f"{kind}: {err}")
            continue
        where = f" under {root}" if root else ""
        print(f"{kind}{where}: {sum(p for _, p in cats)}/{len(cats)} present")
        for name, present in cats:
            print(f"  {'[x]' if present else '[ ]'} {name}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from suite.pipeline import format_metrics_table, run_trial
    from suite.records import RECORD_NAME

    cfg = _config_from_args(args)
    out = new_run_dir(args.out, f"{cfg.data.category}-{cfg.model.method}-{cfg.hash()}")
    print(f"[train] config {cfg.hash()} -> {out}")
    record = run_trial(cfg, out, stage_cache=args.stage_cache)
    print(format_metrics_table(record))
    print(f"[train] record: {out / RECORD_NAME}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from suite.orchestration.driver import SweepOptions, run_sweep

    dataset = args.dataset or "synthetic"
    categories = resolve_categories(dataset, args.root, args.categories or args.category)
    cfg = _config_from_args(args, category=categories[0])
    opts = SweepOptions(
        space=args.space,
        categories=categories,
        trials=args.trials,
        address=args.address,
        storage=os.path.abspath(args.storage),
        name=args.name,
        resume=args.resume,
        per_category=args.per_category,
        objective=args.objective,
        p_weight=args.p_weight,
        cost_metric=args.cost_metric,
        select_on=args.select_on,
        num_workers=args.num_workers,
        use_gpu=args.use_gpu,
        cpus_per_trial=args.cpus_per_trial,
        concurrent=args.concurrent,
        max_failures=args.max_failures,
        asha=not args.no_asha,
        seed=args.seed,
        num_cpus=args.num_cpus,
    )
    result = run_sweep(cfg, opts)
    print(f"[sweep] records: {result['records_dir']}")
    print(f"[sweep] records.csv: {result['records_csv']}")
    print(f"[sweep] report input: python run_suite.py report {result['records_dir']}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from suite.reporting.report import build_report

    index = build_report(args.run_dirs, args.out, select_on=args.select_on)
    print(f"[report] {index}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from suite.demo import run_demo

    index = run_demo(out=args.out, quick=args.quick)
    print(f"[demo] report: {index}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import runpy

    script = REPO / "benchmarks" / f"{args.name}.py"
    if not script.exists():
        available = ", ".join(sorted(p.stem for p in (REPO / "benchmarks").glob("*.py")))
        raise SystemExit(f"error: no benchmark '{args.name}'; available: {available}")
    sys.argv = [str(script), *args.bench_args]
    runpy.run_path(str(script), run_name="__main__")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_suite.py",
        description="rcsuite: train, sweep and report recursive-reconstruction anomaly detectors "
        "(RcAE/DPN/CRD and the registered baselines) on MVTec AD, VisA, your own folders or built-in synthetic data.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("datasets", help="list the categories each dataset has and which are present")
    p.add_argument("--dataset", choices=_dataset_choices(), default=None)
    p.add_argument("--root", default=None, help="dataset root to check for present categories")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("train", help="train and evaluate one configuration on one category (no Ray)")
    _add_data_options(p, many=False)
    p.add_argument("--out", default="runs/train", help="parent folder; a new run folder is made inside")
    p.add_argument("--stage-cache", default=None, help="folder of cached stage checkpoints to reuse/fill")
    _add_config_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sweep", help="Ray Tune + Optuna sweep over a search space (local Ray or a cluster)")
    p.add_argument("--space", required=True, help="search space: a name in search_spaces/ or a .py path")
    _add_data_options(p, many=True)
    p.add_argument("--trials", type=int, default=None,
                   help="number of Optuna trials (default 8); for GRID/CONFIGS/ablation ROWS spaces: seeds per point (default 1)")
    p.add_argument("--address", default=None, help="Ray cluster address: auto | HOST:PORT (default: local)")
    p.add_argument("--storage", default="runs/sweeps", help="storage path (shared filesystem for clusters)")
    p.add_argument("--name", default=None, help="sweep name (default: <space>-<time>)")
    p.add_argument("--resume", action="store_true", help="resume the named sweep after a crash")
    p.add_argument("--per-category", action="store_true", help="one study per category instead of a pooled one")
    p.add_argument("--objective", default="val_i_auroc", choices=["val_i_auroc", "val_mix", "multi"],
                   help="val_i_auroc | val_mix (I and P AUROC weighted) | multi (accuracy vs cost, Pareto)")
    p.add_argument("--p-weight", type=float, default=0.5, help="weight of P-AUROC in val_mix")
    p.add_argument("--cost-metric", default="latency_ms", choices=["latency_ms", "gflops"],
                   help="cost objective for --objective multi")
    p.add_argument("--select-on", default="val", choices=["val", "test"],
                   help="split used for model selection (test only to reproduce papers; marked in tables)")
    p.add_argument("--num-workers", type=int, default=1, help="Ray Train workers per training (DDP)")
    p.add_argument("--use-gpu", action="store_true", help="one GPU per Train worker")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--concurrent", type=int, default=0, help="max concurrent trials (0 = as resources allow)")
    p.add_argument("--max-failures", type=int, default=1, help="retries of a failed trial from its checkpoint")
    p.add_argument("--no-asha", action="store_true", help="disable ASHA early stopping")
    p.add_argument("--seed", type=int, default=0, help="sampler seed")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray instance")
    _add_config_options(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("report", help="build tables, plots and the gallery from stored records")
    p.add_argument("run_dirs", nargs="+", help="folders (or record files) holding record*.json")
    p.add_argument("--out", default="reports/latest", help="report folder (never overwritten)")
    p.add_argument("--select-on", default="val", choices=["val", "test"])
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="the main job: synthetic data, local Ray, small sweep + ladder + report")
    p.add_argument("--out", default="runs/demo", help="where the demo writes its runs and report")
    p.add_argument("--quick", action="store_true", help="an even smaller demo (for smoke tests)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="run a benchmark script from benchmarks/ (writes JSON)")
    p.add_argument("name", help="benchmark name, e.g. metrics_speed")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    t0 = time.time()
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if args.command in ("train", "sweep", "demo"):
            print(f"[{args.command}] done in {time.time() - t0:.0f}s", file=sys.stderr)
