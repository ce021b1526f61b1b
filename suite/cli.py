"""The command line: a thin argparse layer over library functions (run_suite.py calls ``main``).

Subcommands: datasets | train | sweep | plan | report | demo | bench. Data options are the same wherever
data is read; ``--config FILE.yaml``, ``--preset NAME`` and trailing ``key.sub=value`` overrides
build the one typed config.

Errors (``main``): a suite error (``suite.errors.SuiteError``: ``ConfigError``, ``SpaceError``,
``DatasetError``, ``TrainingDiverged``, ``CheckpointError``, ...) or an ``OSError`` naming a path
the user gave (``--out``, ``--root``, ``--config``, ...) ends the command with one line
``error: <message>`` on stderr and no traceback; ``--debug`` (before or after the subcommand) also
prints the traceback. Exit codes: 0 success; 2 the input was refused (``suite.errors.InputError``:
arguments, config, search space, dataset root / category / files; argparse's own usage errors are
2 too); 1 a run failed while working (any other suite error, or an ``OSError`` on a user path).
Any other exception is a bug and keeps its traceback.

Inputs are checked before anything is written: ``train``, ``sweep``, ``report`` and ``demo``
validate the config, the dataset root and categories (``check_data``: folder listings, no images
opened), the search space and the output folders first, so a refused command creates nothing.
``train``/``sweep``/``demo`` print ``[cmd] done in Ns`` (stderr) only on success; a run that fails
with exit code 1 prints ``[cmd] failed after Ns`` before its error line instead.

Light modules are imported at the top; a subcommand imports torch, Ray, Optuna, pandas or matplotlib
(through the modules marked so) inside its function, so ``--help``, ``datasets`` and ``plan`` start fast.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import time
import traceback
from pathlib import Path

from suite import planning, tracking
from suite.config import PRESETS, ConfigError, build_config, with_overrides
from suite.data import category_samples, dataset_names, dataset_spec, list_categories, shared_data_dir
from suite.data.common import require_known_category
from suite.errors import InputError, SuiteError
from suite.planning import SWEEP_START_S
from suite.records import RECORD_NAME

REPO = Path(__file__).resolve().parents[1]
TIMED_COMMANDS = ("train", "sweep", "demo")  # print "done in Ns" on success


def _dataset_choices() -> tuple[str, ...]:
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

    kind = dataset_spec(dataset)
    fixed_categories = bool(kind.categories)  # False: discovered under the root
    if kind.needs_root and root is not None and not os.path.isdir(root):
        raise InputError(f"{dataset} root folder {root} does not exist (or is not a folder)")
    known = list_categories(dataset, root)
    names = [name for name, _ in known]
    present = [name for name, here in known if here]
    if not spec or spec == "all":
        if not present:
            raise InputError(f"no categories of dataset '{dataset}' found under {root}")
        return present
    wanted = [c.strip() for c in spec.split(",") if c.strip()]
    for c in wanted:
        if fixed_categories and c not in names:
            raise InputError(f"unknown category '{c}' for {dataset}; valid categories: {', '.join(names)}")
        if c not in present:
            raise InputError(
                f"category '{c}' is not present under {root}; present: {', '.join(present) or 'none'}"
            )
    return wanted


def check_data(data_cfg) -> None:
    """Refuse a dataset root or category that cannot be loaded, before anything is written.

    Raises ``DatasetError`` / ``DatasetNotFoundError`` (``InputError``) naming the problem: a root
    that is needed but missing, an unknown category (listing the valid ones), a root or category
    folder that does not exist, missing ``train/good`` / ``test`` folders or masks. Only folders are
    listed (no image is opened; the run validates the images when it loads them). Datasets without
    a root (synthetic, generated on demand) only have their category name checked.
    """

    spec = dataset_spec(data_cfg.dataset)
    if spec.needs_root:
        category_samples(data_cfg.dataset, data_cfg.root, data_cfg.category, data_cfg.image_size)
    elif spec.categories:
        require_known_category(data_cfg.category, spec.categories, data_cfg.dataset)


def check_out_dir(path: str | Path, option: str = "--out") -> None:
    """Refuse an output folder that cannot be created: it (or a parent) is a file, or the nearest
    existing parent is not writable. Creates nothing."""
    target = Path(os.path.abspath(path))
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is" if existing == target else f"is inside {existing}, which is"
        raise InputError(f"{option} {path} {what} not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: cannot create or write in {existing} (permission denied)")


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
    cfg = _config_from_args(args)  # every input is checked before the run folder is made
    check_data(cfg.data)
    check_out_dir(args.out)
    if args.stage_cache:
        check_out_dir(args.stage_cache, "--stage-cache")

    from suite.pipeline import format_metrics_table, run_training  # torch: only when training, --help stays fast

    out = new_run_dir(args.out, f"{cfg.data.category}-{cfg.model.method}-{cfg.hash()}")
    print(f"[train] config {cfg.hash()} -> {out}")
    record = run_training(cfg, out, stage_cache=args.stage_cache)
    print(format_metrics_table(record))
    print(f"[train] record: {out / RECORD_NAME}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from suite.orchestration import optuna_storage  # Optuna: only for a sweep, --help stays fast
    from suite.spaces import check_space, load_space  # pandas (metric names from suite.aggregate)

    # watching flags first: a missing [tracking] extra or a malformed URL fails before anything runs
    tracking.require_packages(mlflow=bool(args.mlflow), tensorboard=args.tensorboard)
    if args.mlflow:
        tracking.normalize_mlflow_uri(args.mlflow)
    if args.optuna_storage:
        optuna_storage.parse_optuna_storage(args.optuna_storage)
    # every input is checked before Ray starts or the sweep folder is made (run_sweep checks the
    # space and options again, also before writing)
    cfg = _config_from_args(args)  # also decides the dataset and root (flags, --config or overrides)
    categories = resolve_categories(cfg.data.dataset, cfg.data.root, args.categories or args.category)
    cfg = _config_from_args(args, category=categories[0])
    space_cfg = check_space(load_space(args.space), cfg)
    for category in categories:
        check_data(with_overrides(space_cfg, {"data.category": category}).data)
    check_out_dir(args.storage, "--storage")

    from suite.orchestration.driver import SweepOptions, run_sweep  # Ray: only once every input is checked

    opts = SweepOptions(
        space=args.space,
        categories=categories,
        trials=args.trials,
        address=args.address,
        storage=os.path.abspath(args.storage),
        name=args.name,
        resume=args.resume,
        per_category=args.per_category,
        shards=args.shards,
        objective=args.objective,
        p_weight=args.p_weight,
        cost_metric=args.cost_metric,
        select_on=args.select_on,
        num_workers=args.num_workers,
        use_gpu=args.use_gpu,
        gpus_per_trial=args.gpus_per_trial,
        cpus_per_trial=args.cpus_per_trial,
        concurrent=args.concurrent,
        max_failures=args.max_failures,
        asha=not args.no_asha,
        seed=args.seed,
        num_cpus=args.num_cpus,
        mlflow=args.mlflow,
        tensorboard=args.tensorboard,
        optuna_storage=args.optuna_storage,
    )
    result = run_sweep(cfg, opts)
    print(f"[sweep] records: {result['records_dir']}")
    print(f"[sweep] records.csv: {result['records_csv']}")
    print(f"[sweep] report input: python run_suite.py report {result['records_dir']}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Predict a sweep (the same arguments as ``sweep``) without training: ``suite.planning``."""
    from suite.spaces import check_space, load_space  # pandas (metric names from suite.aggregate)

    cfg = _config_from_args(args)
    categories = resolve_categories(cfg.data.dataset, cfg.data.root, args.categories or args.category)
    cfg = _config_from_args(args, category=categories[0])
    space = load_space(args.space)
    base_cfg = check_space(space, cfg)
    if args.slots is not None and args.slots < 1:
        raise ConfigError("--slots must be >= 1")
    if args.trials is not None and args.trials < 1:
        raise ConfigError("--trials must be >= 1")
    use_asha = not args.no_asha and args.objective != "multi" and space.kind == "optuna"
    base_cfg = planning.sweep_eval_config(base_cfg, use_asha)
    n_trials = args.trials if args.trials is not None else (8 if space.kind == "optuna" else 1)
    shards = getattr(args, "shards", "elastic") != "off" and args.num_workers == 1
    resources: dict = {}
    gpus = planning.gpus_per_training(args.gpus_per_trial, args.use_gpu)
    if args.slots is not None:
        slots = args.slots
    elif args.address:
        from suite.orchestration.plan_cluster import cluster_slots  # Ray: only when planning for a running cluster

        slots, resources = cluster_slots(args.address, cpus_per_trial=args.cpus_per_trial,
                                         num_workers=args.num_workers, gpus_per_trial=gpus)
    else:  # --gpus N of a cluster (its CPUs assumed ample), else the local Ray instance a sweep would start
        slots = planning.local_slots(args.num_cpus or os.cpu_count() or 1, args.gpus, num_workers=args.num_workers,
                                     cpus_per_trial=args.cpus_per_trial, gpus_per_trial=gpus)
    plan = planning.build_plan(
        base_cfg, space, categories, n_trials=n_trials, slots=slots, use_asha=use_asha, shards=shards,
        cpus_per_trial=args.cpus_per_trial, num_workers=args.num_workers, gpus_per_trial=gpus,
        storage=Path(os.path.abspath(args.storage)), records=args.records or [], timings=args.timings or [],
        calibrate=args.calibrate, calibration_batches=args.calibration_batches, gpu_memory_gb=args.gpu_memory_gb,
        save_timings=args.save_timings, per_category=args.per_category, concurrent=args.concurrent,
        asha_model=args.asha_model, seed=args.seed, sweep_start_s=args.sweep_start_s,
        log=lambda msg: print(msg, file=sys.stderr, flush=True))
    plan.update({"preset": args.preset, "resources": resources or None})
    if args.json:
        print(json.dumps(plan, indent=2, default=str))
    else:
        print(f"[plan] {space.name} ({space.kind}) on {', '.join(categories)}")
        print(planning.format_plan(plan))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from suite.reporting.report import build_report  # matplotlib, pandas: only for report, --help stays fast

    for run_dir in args.run_dirs:
        if not os.path.exists(run_dir):
            raise InputError(f"no such record file or folder: {run_dir}")
    check_out_dir(args.out)
    index = build_report(args.run_dirs, args.out, select_on=args.select_on, figures=not args.no_figures)
    print(f"[report] {index}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from suite.demo import run_demo  # Ray: only for demo, --help stays fast

    check_out_dir(args.out)
    index = run_demo(out=args.out, quick=args.quick)
    print(f"[demo] report: {index}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:

    script = REPO / "benchmarks" / f"{args.name}.py"
    if not script.exists():
        available = ", ".join(sorted(p.stem for p in (REPO / "benchmarks").glob("*.py")))
        raise InputError(f"no benchmark '{args.name}'; available: {available}")
    sys.argv = [str(script), *args.bench_args]
    runpy.run_path(str(script), run_name="__main__")
    return 0


def _gpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value >= 0 and (value <= 1 or value == int(value))):
        raise argparse.ArgumentTypeError(f"{text}: give 0, a fraction of one GPU (0.5, 0.25, ...) or whole GPUs")
    return value


def _add_sweep_options(p: argparse.ArgumentParser) -> None:
    """A sweep's arguments (``sweep`` and ``plan`` share them: a new sweep flag appears in both)."""
    p.add_argument("--space", required=True, help="search space: a name in search_spaces/ or a .py path")
    _add_data_options(p, many=True)
    p.add_argument("--trials", type=int, default=None,
                   help="number of Optuna trials (default 8); for GRID/CONFIGS/ablation ROWS spaces: seeds per point "
                        "(default 1)")
    p.add_argument("--address", default=None, help="Ray cluster address: auto | HOST:PORT (default: local)")
    p.add_argument("--storage", default="runs/sweeps", help="storage path (shared filesystem for clusters)")
    p.add_argument("--name", default=None, help="sweep name (default: <space>-<time>)")
    p.add_argument("--resume", action="store_true", help="resume the named sweep after a crash")
    p.add_argument("--per-category", action="store_true",
                   help="one study per category instead of a pooled one (all studies run at the same time)")
    p.add_argument("--shards", choices=("elastic", "reserve", "off"), default="elastic",
                   help="a trial's categories as concurrent Ray tasks: elastic (queue for free CPUs; default), "
                        "reserve (a placement group per trial), off (one after another in the trial's process)")
    p.add_argument("--objective", default="val_i_auroc", choices=["val_i_auroc", "val_mix", "multi"],
                   help="val_i_auroc | val_mix (I and P AUROC weighted) | multi (accuracy vs cost, Pareto)")
    p.add_argument("--p-weight", type=float, default=0.5, help="weight of P-AUROC in val_mix")
    p.add_argument("--cost-metric", default="latency_ms", choices=["latency_ms", "gflops"],
                   help="cost objective for --objective multi")
    p.add_argument("--select-on", default="val", choices=["val", "test"],
                   help="split used for model selection (test only to reproduce papers; marked in tables)")
    p.add_argument("--num-workers", type=int, default=1, help="Ray Train workers per training (DDP)")
    p.add_argument("--use-gpu", action="store_true", help="one GPU per training (per Train worker): --gpus-per-trial 1")
    p.add_argument("--gpus-per-trial", type=_gpus, default=0.0, metavar="F",
                   help="GPUs per training (per Train worker); a fraction shares a GPU: 0.25 = four trainings per GPU")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--concurrent", type=int, default=0, help="max concurrent trials (0 = as resources allow)")
    p.add_argument("--max-failures", type=int, default=1, help="retries of a failed trial from its checkpoint")
    p.add_argument("--no-asha", action="store_true", help="disable ASHA early stopping")
    p.add_argument("--seed", type=int, default=0, help="sampler seed")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray instance")
    g = p.add_argument_group("watching (optional extra [tracking]; README 'Watching a sweep')")
    g.add_argument("--mlflow", default=None, metavar="URI",
                   help="one MLflow run per (trial, category): file:FOLDER, sqlite:///FILE.db or http://HOST:PORT")
    g.add_argument("--tensorboard", action="store_true",
                   help="per-epoch TensorBoard event files under <storage>/<name>/tensorboard/")
    g.add_argument("--optuna-storage", default=None, metavar="URL",
                   help="persistent Optuna study: sqlite:///FILE.db (one machine) or journal:///FILE.log (shared "
                        "filesystem); --resume continues it; view with optuna-dashboard")
    _add_config_options(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_suite.py",
        description="rcsuite: train, sweep and report recursive-reconstruction anomaly detectors "
        "(RcAE/DPN/CRD and the registered baselines) on MVTec AD, VisA, your own folders or built-in synthetic data.",
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error, too")
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
    _add_sweep_options(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("plan", help="predict a sweep's trainings, CPU/GPU-hours, wall time and utilisation "
                                    "(the sweep's arguments; trains nothing but a short calibration)")
    _add_sweep_options(p)
    g = p.add_argument_group("plan")
    g.add_argument("--slots", type=int, default=None,
                   help="training slots to plan for (default: from --address or --gpus, else the local CPUs)")
    g.add_argument("--gpus", type=int, default=None, help="GPUs to plan for: slots = GPUs / --gpus-per-trial")
    g.add_argument("--json", action="store_true", help="print the plan as JSON (predicted_wall_s, utilisation, ...)")
    g.add_argument("--calibrate", action="store_true",
                   help="time a short calibration run even when records of the configuration exist")
    g.add_argument("--calibration-batches", type=int, default=6, help="stage-1 batches a calibration epoch runs")
    g.add_argument("--timings", action="append", default=None, metavar="FILE",
                   help="per-epoch times measured elsewhere (a JSON timings file, e.g. from a GPU machine)")
    g.add_argument("--save-timings", default=None, metavar="FILE", help="write the timings this plan used as a file")
    g.add_argument("--gpu-memory-gb", type=float, default=None,
                   help="memory of one GPU, to check --gpus-per-trial (default: the timings' device)")
    g.add_argument("--records", action="append", default=None, metavar="DIR",
                   help="more folders of earlier records to take per-epoch times from (besides --storage)")
    g.add_argument("--asha-model", choices=("expected", "montecarlo"), default="expected",
                   help="ASHA's stops: expected (half continue at each rung) | montecarlo (Ray's rule, 32 runs)")
    g.add_argument("--sweep-start-s", type=float, default=None,
                   help=f"fixed seconds to start Ray/Tune and finish the sweep (default {SWEEP_START_S})")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("report", help="build tables, plots and the gallery from stored records")
    p.add_argument("run_dirs", nargs="+", help="folders (or record files) holding record*.json")
    p.add_argument("--out", default="reports/latest", help="report folder (never overwritten)")
    p.add_argument("--select-on", default="val", choices=["val", "test"])
    p.add_argument("--no-figures", action="store_true",
                   help="tables only: no plots and no heatmap gallery (drawing is most of a report's time)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="the main job: synthetic data, local Ray, small sweep + ladder + report")
    p.add_argument("--out", default="runs/demo", help="where the demo writes its runs and report")
    p.add_argument("--quick", action="store_true", help="an even smaller demo (for smoke tests)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="run a benchmark script from benchmarks/ (writes JSON)")
    p.add_argument("name", help="benchmark name, e.g. metrics_speed")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    p.set_defaults(func=cmd_bench)
    for p in sub.choices.values():  # --debug also after the subcommand (SUPPRESS keeps the global value)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the traceback of an error, too")
    return parser


def _user_paths(args: argparse.Namespace) -> list[Path]:
    """The paths given on the command line (output folders, dataset root, config file, inputs)."""
    values = [getattr(args, name, None) for name in ("out", "root", "config", "storage", "stage_cache")]
    values += list(getattr(args, "run_dirs", None) or [])
    return [Path(os.path.abspath(v)) for v in values if v]


def _user_path_named(err: OSError, args: argparse.Namespace) -> str | None:
    """The path ``err`` is about when it is a path the user gave or one inside it (an environment
    problem: permissions, a missing folder, a full disk; reported in one line), else None."""
    given = _user_paths(args)
    for name in (err.filename, err.filename2):
        if isinstance(name, (str, bytes, os.PathLike)):
            path = Path(os.path.abspath(os.fsdecode(name)))
            if any(path == g or g in path.parents for g in given):
                return os.fsdecode(name)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    t0 = time.time()
    try:
        code = args.func(args)
    except (SuiteError, OSError) as err:  # the rule: see the module docstring
        path = None if isinstance(err, SuiteError) else _user_path_named(err, args)
        if isinstance(err, SuiteError):
            exit_code, message = err.exit_code, str(err) or type(err).__name__
        elif path is not None:
            exit_code, message = 1, f"{err.strerror or type(err).__name__}: {path}"
        else:
            raise  # an OSError about a path the suite chose itself: a bug, keep the traceback
        if args.debug:
            traceback.print_exc()
        if exit_code == 1 and args.command in TIMED_COMMANDS:
            print(f"[{args.command}] failed after {time.time() - t0:.0f}s", file=sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        return exit_code
    if not code and args.command in TIMED_COMMANDS:
        print(f"[{args.command}] done in {time.time() - t0:.0f}s", file=sys.stderr)
    return code
