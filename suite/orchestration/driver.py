"""The sweep driver: ``run_sweep`` runs Ray Tune trials that call ``run_training``, sampled by Optuna or a grid.

``SPACE`` specs (``suite.spaces``) are sampled by ``OptunaSearch`` with a seeded TPE sampler
(``suite.orchestration.optuna_search``); ``GRID`` / ``CONFIGS`` points and an ablation's ``ROWS`` run
through Tune's grid search (``--trials`` then counts seeds per point). Options and objectives
(validation only): ``suite.orchestration.sweep_options``. ASHA (single objective, SPACE sweeps) stops
weak trials on the periodic stage-1 validations; every row of a grid or list sweep finishes.
*Pooled* (default): each trial trains every category, as concurrent Ray tasks
(``suite.orchestration.shards``) or one after another (``--shards off``; always for DDP), and reports
their mean; *per-category*: one study per category in one Tune experiment (``...studies``). Trials in
flight follow ``suite.sweep_rules`` (which ``plan`` simulates); inside a trial:
``suite.orchestration.trial``; records.csv, Pareto set, best trials: ``suite.orchestration.results``.

Layout under ``<storage>/<name>/``::

    sweep.json                      options, space, categories (checked on --resume)
    records/<trial_id>/<category>/  run_training's out folder: record.json, checkpoints/, gallery.npz,
                                    progress.jsonl (periodic validations; answered_from.json for a repeat)
    records/<trial_id>/params.json  the trial's sampled overrides
    tune-pooled/ | tune-categories/ Ray Tune's experiment (state for --resume, trial checkpoints)
    train_runs/                     Ray Train runs (only with --num-workers > 1)
    records.csv                     one row per record (suite.aggregate.records_frame)
    pareto.csv, pareto.json         multi-objective sweeps only
    tensorboard/<trial>/<category>/ per-epoch event files (--tensorboard; MLflow: suite.tracking)
    optuna_importances.json         Optuna's parameter importances per study (--optuna-storage only)
    ../stage_cache/                 stage checkpoints shared by every sweep under the same storage

Faults: a failed trial is retried from its last Tune checkpoint; ``RecordGaps`` (``...callbacks``) writes
a "stopped" / "failed" record for every trial that ended without one; ``--resume`` (``Tuner.restore(...,
resume_errored=True)``) continues a killed sweep, after ``...tune_fixes`` clears what the kill left.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from suite.aggregate import fidelity_summary, load_records
from suite.config import Config, ConfigError, with_overrides
from suite.orchestration.callbacks import CloseRuns, RecordGaps
from suite.orchestration.cluster import describe_cluster, format_cluster
from suite.orchestration.env import COORDINATOR, check_cluster_auth, init_ray, shutdown_ray
from suite.orchestration.optuna_search import make_optuna_search, random_trial_counts
from suite.orchestration.optuna_storage import study_name_for
from suite.orchestration.results import best_trials, trial_table, utilisation, write_pareto, write_records_csv
from suite.orchestration.shards import shard_bundle
from suite.orchestration.studies import STUDY_KEY, MultiStudySearch, PerStudyScheduler
from suite.orchestration.temp_dirs import remove_stale_temp_dirs
from suite.orchestration.tune_fixes import restore_from_existing_checkpoints, tolerate_missing_checkpoints
from suite.orchestration.sweep_options import (
    COST_METRICS,
    OBJECTIVES,
    SweepOptions,
    asha_plan,
    check_options,
    check_resume_meta,
    default_trials,
    finish_watching,
    gpus_of,
    prepare_watching,
    sharded,
    sweep_meta,
    utilisation_line,
)
from suite.orchestration.trial import run_sweep_trial
from suite.orchestration.trial_plan import TrialPlan
from suite.records import TrialRecord, atomic_write_json
from suite.spaces import SearchSpace, check_space, load_space
from suite.sweep_rules import slots_from_resources, trials_in_flight
from suite.tracking import TrackingSpec

__all__ = ["COST_METRICS", "OBJECTIVES", "SweepOptions", "run_sweep", "shard_slots"]


def shard_slots(opts: SweepOptions) -> int:
    """How many trainings (one category of one trial) the cluster runs at once: its CPUs (and GPUs with
    ``--gpus-per-trial`` / ``--use-gpu``) divided by what one training takes
    (``suite.sweep_rules.slots_from_resources``)."""
    total = ray.cluster_resources()
    slots = slots_from_resources(float(total.get("CPU", 1)), float(total.get("GPU", 0)),
                                 cpus_per_trial=opts.cpus_per_trial, num_workers=opts.num_workers,
                                 gpus_per_trial=gpus_of(opts))
    return max(1, slots)


def _trial_dirname(trial: Any) -> str:
    return str(trial.trial_id)


def _trainable(plan: TrialPlan, opts: SweepOptions, n_categories: int):
    """The Tune function with the resources of one trial (see shards.py for the two shard modes)."""
    def sweep_trial(config: dict[str, Any]) -> None:
        run_sweep_trial(config, plan)

    if opts.num_workers > 1 or (sharded(opts) and opts.shards == "elastic"):
        # The trial process only coordinates; its shards (or Train workers) hold the CPUs and GPUs
        # (env.COORDINATOR: no custom resource, so a plain `ray start` cluster runs it).
        return tune.with_resources(sweep_trial, dict(COORDINATOR))
    if sharded(opts):  # reserve: an empty head bundle plus one bundle per category shard
        bundle = shard_bundle(opts.cpus_per_trial, gpus_of(opts))
        total = float(ray.cluster_resources().get("CPU", 0))
        if n_categories * opts.cpus_per_trial > total + 1e-9:
            raise ConfigError(
                f"--shards reserve: a trial reserves {n_categories} x {opts.cpus_per_trial} CPU(s) at once but the "
                f"cluster has {total:g}; use --shards elastic (shards queue for free CPUs) or fewer categories"
            )
        return tune.with_resources(sweep_trial, tune.PlacementGroupFactory([{}] + [bundle] * n_categories))
    resources = {"cpu": opts.cpus_per_trial}
    if gpus_of(opts):
        resources["gpu"] = gpus_of(opts)
    return tune.with_resources(sweep_trial, resources)


def _run_study(
    study: str,
    studies: list[tuple[str, list[str]]],
    base_cfg: Config,
    space: SearchSpace,
    opts: SweepOptions,
    sweep_dir: Path,
    name: str,
    use_asha: bool,
    max_reports: int,
    n_trials: int,
    tracking_spec: TrackingSpec | None = None,
) -> tuple[Path, int, Any]:
    """Run one Tune experiment: the pooled study, or every per-category study at once (``studies``
    has several entries; ``suite.orchestration.studies``). Returns its folder, the shard slots and
    the searcher (None for grid/list spaces)."""
    multi = len(studies) > 1
    categories = list(opts.categories)
    plan = TrialPlan(
        base_cfg=base_cfg, space=space, categories=categories, sweep_name=name,
        records_dir=str(sweep_dir / "records"),
        stage_cache=str(sweep_dir.parent / "stage_cache") if opts.use_stage_cache else None,
        train_storage=str(sweep_dir / "train_runs"), objective=opts.objective, p_weight=opts.p_weight,
        cost_metric=opts.cost_metric, select_on=opts.select_on, num_workers=opts.num_workers,
        use_gpu=gpus_of(opts) > 0, gpus_per_trial=gpus_of(opts), cpus_per_trial=opts.cpus_per_trial,
        kill_marker=opts.kill_once_after_checkpoint,
        tracking=tracking_spec, shards=opts.shards if sharded(opts) else "off",
    )
    per_trial_categories = 1 if multi else len(categories)
    trainable = _trainable(plan, opts, per_trial_categories)

    exp_name = f"tune-{study}"
    exp_path = sweep_dir / exp_name
    run_config = tune.RunConfig(
        name=exp_name,
        storage_path=str(sweep_dir),
        failure_config=tune.FailureConfig(max_failures=opts.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        callbacks=[RecordGaps(plan.records_dir, name, opts.select_on)]
        + ([CloseRuns(tracking_spec, plan.records_dir)] if tracking_spec and tracking_spec.mlflow_uri else []),
        verbose=opts.verbose,
    )
    slots = shard_slots(opts)
    total = n_trials * len(studies) if space.kind == "optuna" else len(space.points) * n_trials * len(studies)
    in_flight = trials_in_flight(space.kind, total, slots, per_trial_categories, shards=sharded(opts),
                                 concurrent=opts.concurrent)
    print(f"[sweep] {slots} training slot(s); up to {in_flight} trial(s) in flight", flush=True)
    if opts.resume and tune.Tuner.can_restore(str(exp_path)):
        print(f"[sweep] resuming {exp_path}", flush=True)
        tuner = tune.Tuner.restore(str(exp_path), trainable=trainable, resume_errored=True)
        tuner.fit()
        return exp_path, slots, None

    single = opts.objective != "multi"
    metric = opts.objective if single else None
    mode = "max" if single else None
    search_alg = None
    param_space: dict[str, Any] | None = None
    num_samples = 1
    if space.kind == "optuna":
        subs = {}
        for index, (sub_study, _) in enumerate(studies):
            sub = make_optuna_search(space, opts, index, study_name_for(name, sub_study))
            if opts.resume and opts.optuna_storage:
                sub.fail_orphans()  # killed before Tune's first snapshot: nothing runs in the study
            subs[sub_study] = sub
        search_alg = MultiStudySearch(subs, n_trials, metric=metric, mode=mode) if multi else subs[study]
        num_samples = total
    else:
        param_space = {"point": tune.grid_search(space.points)}
        if n_trials > 1:
            param_space["repeat"] = tune.grid_search(list(range(n_trials)))
        if multi:
            param_space[STUDY_KEY] = tune.grid_search([s for s, _ in studies])
    scheduler = None
    if use_asha:
        def make_asha() -> ASHAScheduler:
            return ASHAScheduler(time_attr="training_iteration", max_t=max_reports,
                                 grace_period=max(1, max_reports // 3), reduction_factor=2)

        scheduler = PerStudyScheduler([s for s, _ in studies], make_asha) if multi else make_asha()
    tune_config = tune.TuneConfig(
        metric=metric,
        mode=mode,
        search_alg=search_alg,
        scheduler=scheduler,
        num_samples=num_samples,
        max_concurrent_trials=in_flight,
        # A new trial reuses an idle trial process (no new worker, no torch import), except with DDP:
        # a trial the scheduler stopped must end its process, which owns the Train run still training.
        reuse_actors=opts.num_workers == 1,
        trial_dirname_creator=_trial_dirname,
    )
    tuner = tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config)
    tuner.fit()
    return exp_path, slots, search_alg



def _sweep_records(records_dir: Path) -> list[TrialRecord]:
    return list(load_records(records_dir).records)


def run_sweep(cfg: Config, opts: SweepOptions) -> dict[str, Any]:
    """Run (or resume) a sweep; returns paths: records_dir, records_csv (+ pareto_csv/json for multi)."""
    check_options(opts)
    remove_stale_temp_dirs()  # what a killed sweep left in /tmp (its Ray folder, checkpoint staging)
    tolerate_missing_checkpoints()
    restore_from_existing_checkpoints()
    # Each report carries a checkpoint and CheckpointConfig(num_to_keep) then forces state snapshots;
    # they are what makes --resume exact, so silence Tune's warning about their frequency.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    space = load_space(opts.space)
    base_cfg = check_space(space, cfg)
    for cat in opts.categories:
        with_overrides(base_cfg, {"data.category": cat})
    if opts.objective == "multi" and not base_cfg.eval.cost:
        raise ConfigError("--objective multi needs the cost measured: set eval.cost=true")
    base_cfg, use_asha, max_reports = asha_plan(base_cfg, space, opts)
    n_trials = default_trials(space, opts.trials)
    if opts.optuna_storage and space.kind != "optuna":
        raise ConfigError(f"--optuna-storage needs a SPACE (Optuna) search space; {space.name} is a {space.kind} "
                          "space run by Tune's grid search")

    storage = Path(opts.storage).expanduser().resolve()
    name = opts.name or f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    sweep_dir = storage / name
    meta = sweep_meta(space, base_cfg, opts, n_trials)
    meta_path = sweep_dir / "sweep.json"
    if opts.resume:
        if not meta_path.exists():
            raise ConfigError(f"--resume: no sweep named '{name}' under {storage} (missing {meta_path})")
        check_resume_meta(meta_path, meta)
    elif sweep_dir.exists() and any(sweep_dir.iterdir()):
        raise ConfigError(f"sweep '{name}' already exists under {storage}; pass --resume or choose another --name")
    studies = [(c, [c]) for c in opts.categories] if opts.per_category else [("pooled", list(opts.categories))]
    experiment = "categories" if opts.per_category else "pooled"  # per-category: every study in one experiment
    if opts.address:
        check_cluster_auth(opts.address)  # a refused or absent cluster fails before anything is written
    prepare_watching(opts, meta, name, sweep_dir, [s for s, _ in studies], create=False)  # names free?
    tracking_spec = prepare_watching(opts, meta, name, sweep_dir, [s for s, _ in studies], create=True)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if not opts.resume:
        atomic_write_json(meta_path, {**meta, "options": asdict(opts), "created": time.time()})
    (sweep_dir / "records").mkdir(exist_ok=True)

    started = init_ray(opts.address, opts.num_cpus)
    try:
        print(format_cluster(describe_cluster()), flush=True)
        kind = {"optuna": f"{n_trials} Optuna trial(s)", "grid": f"{len(space.points)} grid point(s)",
                "list": f"{len(space.points)} config(s)"}[space.kind]
        if space.kind != "optuna" and n_trials > 1:
            kind += f" x {n_trials} seeds"
        mode = "per category" if opts.per_category else f"pooled over {len(opts.categories)} categories"
        print(
            f"[sweep] {name}: space {space.name} ({kind}), {mode}, objective {opts.objective}"
            f"{' + ASHA' if use_asha else ''} -> {sweep_dir}",
            flush=True,
        )
        sweep_start, wall_t0 = time.time(), time.perf_counter()
        exp_path, slots, search_alg = _run_study(experiment, studies, base_cfg, space, opts, sweep_dir, name,
                                                 use_asha, max_reports, n_trials, tracking_spec)
        experiments = [exp_path]
        wall_s = time.perf_counter() - wall_t0
    finally:
        shutdown_ray(started)

    records_dir = sweep_dir / "records"
    random_counts: dict[str, dict[str, int]] = {}
    if search_alg is not None:
        random_counts = random_trial_counts(search_alg)
        for study, c in random_counts.items():
            print(f"[sweep] {study}: {c['random']} of {c['asked']} trial(s) were sampled at random (TPE samples at "
                  f"random until {c['n_startup_trials']} trials have finished; trials in flight are asked before "
                  "that)", flush=True)
    records_csv, frame = write_records_csv(records_dir, sweep_dir / "records.csv")
    rows = trial_table(records_dir, opts.select_on, opts.cost_metric)
    result: dict[str, Any] = {
        "name": name,
        "sweep_dir": str(sweep_dir),
        "records_dir": str(records_dir),
        "records_csv": str(records_csv),
        "experiments": [str(p) for p in experiments],
        "n_records": int(len(frame)),
        "status": {str(k): int(v) for k, v in frame["status"].value_counts().items()} if len(frame) else {},
        "trials": rows,
        "random_trials": random_counts,
    }
    if opts.objective == "multi":
        pareto_csv, pareto_json = write_pareto(rows, sweep_dir, opts.select_on, opts.cost_metric)
        result["pareto_csv"], result["pareto_json"] = str(pareto_csv), str(pareto_json)
        print(f"[sweep] pareto set: {pareto_csv}", flush=True)
    else:
        result["best"] = best_trials(rows, opts.objective, opts.p_weight, opts.select_on)
        for study, row in result["best"].items():
            print(f"[sweep] best trial of {study}: {row['trial_id']} ({opts.objective} on {opts.select_on} "
                  f"{row['objective']:.4f}) {row['overrides']}", flush=True)
    print(f"[sweep] {result['n_records']} record(s) {result['status']} in {records_dir}", flush=True)
    usage = utilisation(_sweep_records(records_dir), slots, wall_s, start=sweep_start)
    result["utilisation"] = usage
    print(f"[sweep] {utilisation_line(usage)}", flush=True)
    # The last run's scheduling facts next to the options (the report states them; records alone
    # cannot say how many slots there were).
    stored = json.loads(meta_path.read_text())
    stored.setdefault("runs", []).append({"finished": time.time(), "utilisation": usage, "random_trials": random_counts,
                                          "resumed": opts.resume, "shards": opts.shards if sharded(opts) else "off"})
    atomic_write_json(meta_path, stored)
    for line in fidelity_summary(frame):
        print(f"[sweep] {line}", flush=True)
    finish_watching(opts, meta, name, sweep_dir, [s for s, _ in studies], tracking_spec, result)
    return result
