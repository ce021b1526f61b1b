"""The sweep driver: Ray Tune trials that call ``run_trial``, sampled by Optuna or a grid.

A sweep reads a declarative space from ``search_spaces/`` (see ``suite.spaces``):
``SPACE`` specs are sampled by ``OptunaSearch`` with a seeded TPE sampler, ``GRID`` / ``CONFIGS``
points and an ablation's ``ROWS`` run through Tune's grid search (``--trials`` then counts seeds per
point: seed, seed+1, ...); a trial of an ablation row stores the table and row ids in its records.

Objectives (validation split only; test data never steers a search):

- ``val_i_auroc``: maximise the image AUROC on the held-out validation set;
- ``val_mix``: maximise ``(1 - w) * val_i_auroc + w * val_p_auroc``, ``w = --p-weight``;
- ``multi``: maximise ``val_i_auroc`` and minimise the cost metric (``latency_ms`` or ``gflops``)
  with a multi-objective Optuna study; the non-dominated trials go to ``pareto.csv`` / ``.json``.

ASHA (single objective, SPACE sweeps) stops weak trials early on the periodic validation reports
of stage 1; when it is on and ``train.eval_every`` is 0, the sweep validates about four times per
stage 1 (``eval_every = max(1, stage1.epochs // 4)``). Grid and list sweeps are ablation tables
whose every row must finish, so they never use ASHA.

Modes: *pooled* (default) — each trial trains every category, as concurrent Ray tasks ("shards",
``--shards elastic|reserve``, ``suite.orchestration.shards``) or one after another in its own
process (``--shards off``; always so for DDP trials), and reports the mean over categories;
*per-category* — one study per category, all in one Tune experiment so their trials run at the
same time (``suite.orchestration.studies``: one seeded sampler and one ASHA per study). Trials in
flight: ``suite.sweep_rules.trials_in_flight``; the cluster's training slots: ``shard_slots``. A trial whose
(configuration, category, seed) another trial already ran answers from that record instead of
training (``suite.orchestration.trial``); the sweep prints how many trials TPE sampled at random.

Layout under ``<storage>/<name>/``::

    sweep.json                      options, space, categories (checked on --resume)
    records/<trial_id>/<category>/  run_trial's out folder: record.json, checkpoints/, gallery.npz,
                                    progress.jsonl (periodic validations; answered_from.json for a repeat)
    records/<trial_id>/params.json  the trial's sampled overrides
    tune-pooled/ | tune-categories/ Ray Tune's experiment (state for --resume, trial checkpoints)
    train_runs/                     Ray Train runs (only with --num-workers > 1)
    records.csv                     one row per record (suite.aggregate.records_frame)
    pareto.csv, pareto.json         multi-objective sweeps only
    tensorboard/<trial>/<category>/ per-epoch event files (--tensorboard only)
    optuna_importances.json         Optuna's parameter importances per study (--optuna-storage only)
    ../stage_cache/                 stage checkpoints shared by every sweep under the same storage

Fault tolerance: a failed trial is retried from its last Tune checkpoint (``--max-failures``; the
trial side is in ``suite.orchestration.trial``); ``RecordGaps`` writes a "stopped" / "failed" record
for every trial that ended without one. A killed sweep continues with ``--resume``
(``Tuner.restore(..., resume_errored=True)``) once its options match ``sweep.json``.

The code that runs inside a trial is ``suite.orchestration.trial``; records.csv, the trial table,
the Pareto set and the best trials are built by ``suite.orchestration.results`` (no Ray).

Watching a sweep (all off by default; ``suite.tracking`` says how and why): ``--mlflow URI`` makes
each (trial, category) one MLflow run in an experiment named after the sweep; ``--tensorboard``
writes per-epoch event files; ``--optuna-storage URL`` gives ``OptunaSearch`` a persistent study
(named after the sweep; ``<sweep>/<category>`` per category) that ``--resume`` continues. A hard
kill can leave a trial in the storage that Tune's last snapshot does not know:
``suite.orchestration.optuna_search.StoredOptunaSearch`` marks such orphans FAIL on restore and
ignores results for trials the storage already finished, so a resumed study gets no phantom or
duplicate trials. ``CloseRuns`` ends the MLflow runs of a trial Tune ended (ASHA) from its records.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray import tune

from suite.config import Config, ConfigError, load_yaml, with_overrides
from suite.orchestration.results import best_trials, trial_table, utilisation, write_pareto, write_records_csv
from suite.spaces import SearchSpace, check_space, encoded_choices, load_space
from suite.orchestration.shards import SHARD_MODES, shard_bundle
from suite.orchestration.studies import STUDY_KEY, MultiStudySearch, PerStudyScheduler
from suite.orchestration.trial import run_sweep_trial
from suite.orchestration.trial_plan import TrialPlan
from suite.sweep_rules import slots_from_resources, sweep_eval_config, trials_in_flight
from suite.records import RECORD_NAME, TrialRecord, atomic_write_json, code_versions, write_record
from suite import tracking
from suite.orchestration import optuna_storage

OBJECTIVES = ("val_i_auroc", "val_mix", "multi")
COST_METRICS = ("latency_ms", "gflops")


@dataclass
class SweepOptions:
    space: str  # a name in search_spaces/ or a path to a .py space file
    categories: list[str] = field(default_factory=lambda: ["synth_texture"])
    trials: int | None = None  # SPACE: number of trials (default 8); GRID/CONFIGS/ROWS: seeds per point (default 1)
    address: str | None = None  # None = local Ray; "auto" or "HOST:PORT" = join a cluster
    storage: str = "runs/sweeps"  # filesystem path (shared by all nodes on a cluster)
    name: str | None = None  # default: <space>-<YYYYmmdd-HHMMSS>
    resume: bool = False
    per_category: bool = False  # one study per category (all studies run at the same time)
    shards: str = "elastic"  # elastic | reserve | off: a trial's categories as concurrent Ray tasks (shards.py)
    objective: str = "val_i_auroc"  # one of OBJECTIVES
    p_weight: float = 0.5  # weight of val_p_auroc in val_mix
    cost_metric: str = "latency_ms"  # one of COST_METRICS (objective multi)
    select_on: str = "val"  # split used for model selection, stored in every record
    num_workers: int = 1  # Ray Train DDP workers per training (1 = run_trial in the trial process)
    use_gpu: bool = False
    cpus_per_trial: float = 1.0  # CPUs per trial (per Train worker when num_workers > 1)
    concurrent: int = 0  # max concurrent trials (0 = as many as the CPUs allow)
    max_failures: int = 1  # retries of a failed trial from its last checkpoint
    asha: bool = True
    seed: int = 0  # sampler seed
    num_cpus: int | None = None  # CPUs of a local Ray instance (default: all)
    use_stage_cache: bool = True  # share trained stages via <storage>/stage_cache (False: every trial trains all)
    verbose: int = 1  # Tune progress output: 0 silent, 1 status table, 2 + trial results
    mlflow: str | None = None  # MLflow tracking URI: one run per (trial, category) (suite.tracking)
    tensorboard: bool = False  # per-epoch TensorBoard event files under <sweep>/tensorboard/
    optuna_storage: str | None = None  # sqlite:///PATH.db | journal:///PATH.log: a persistent Optuna study
    # Testing hook: path of a marker file; the first trial to report a checkpoint while the marker
    # is absent creates it and SIGKILLs its own process (to exercise retry-from-checkpoint).
    kill_once_after_checkpoint: str | None = None


# driver side


def _default_trials(space: SearchSpace, trials: int | None) -> int:
    if trials is not None:
        if trials < 1:
            raise ConfigError("--trials must be >= 1")
        return trials
    return 8 if space.kind == "optuna" else 1


def _check_options(opts: SweepOptions) -> None:
    if opts.objective not in OBJECTIVES:
        raise ConfigError(f"sweep objective {opts.objective!r} is not one of {', '.join(OBJECTIVES)}")
    if opts.cost_metric not in COST_METRICS:
        raise ConfigError(f"sweep cost metric {opts.cost_metric!r} is not one of {', '.join(COST_METRICS)}")
    if opts.select_on not in ("val", "test"):
        raise ConfigError("sweep select_on must be 'val' or 'test'")
    if not 0.0 <= opts.p_weight <= 1.0:
        raise ConfigError("sweep p_weight must be in [0, 1]")
    if opts.num_workers < 1 or opts.cpus_per_trial <= 0 or opts.max_failures < 0 or opts.concurrent < 0:
        raise ConfigError("sweep needs num_workers >= 1, cpus_per_trial > 0, max_failures >= 0, concurrent >= 0")
    if not opts.categories:
        raise ConfigError("sweep needs at least one category")
    if opts.shards not in SHARD_MODES:
        raise ConfigError(f"sweep shards {opts.shards!r} is not one of {', '.join(SHARD_MODES)}")
    # Tracking: fail before anything runs when an extra is missing or a URL is malformed.
    tracking.require_packages(mlflow=bool(opts.mlflow), tensorboard=opts.tensorboard)
    if opts.mlflow:
        tracking.normalize_mlflow_uri(opts.mlflow)
    if opts.optuna_storage:
        optuna_storage.parse_optuna_storage(opts.optuna_storage)
    if "://" in str(opts.storage):
        raise ConfigError(
            f"sweep storage {opts.storage!r}: records and the stage cache are plain files, so --storage must be "
            "a filesystem path (on a cluster: a shared mount such as NFS, the same path on every node)"
        )


def _asha_plan(cfg: Config, space: SearchSpace, opts: SweepOptions) -> tuple[Config, bool, int]:
    """(config with eval/checkpoint cadence set, whether ASHA runs, max reports per trial)."""
    use_asha = opts.asha and opts.objective != "multi" and space.kind == "optuna"
    # Each periodic report carries a checkpoint; a mid-stage one, so a retry resumes there.
    cfg = sweep_eval_config(cfg, use_asha)
    every = cfg.train.eval_every
    epochs = cfg.train.stage1.epochs
    spec = space.space.get("train.stage1.epochs")
    if spec:
        epochs = max(epochs, int(spec.get("high", max(spec.get("choices", [epochs])))))
    per_category = epochs // every if every else 0
    # Sharded trials report each matched epoch once for all their categories; one-after-another
    # trials report every category's validations in turn.
    n_cat = 1 if opts.per_category or _sharded(opts) else len(opts.categories)
    return cfg, use_asha, max(1, n_cat * per_category + 1)


def _sharded(opts: SweepOptions) -> bool:
    """Whether trials fan their categories out as shards (DDP trials never do: see shards.py)."""
    return opts.shards != "off" and opts.num_workers == 1


def _optuna_search(space: SearchSpace, opts: SweepOptions, study_index: int, study_name: str | None = None):
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from ray.tune.search.optuna import OptunaSearch

    dists: dict[str, Any] = {}
    for key, spec in space.space.items():
        if spec["type"] == "int":
            dists[key] = IntDistribution(spec["low"], spec["high"], log=spec["log"], step=spec.get("step", 1))
        elif spec["type"] == "float":
            dists[key] = FloatDistribution(float(spec["low"]), float(spec["high"]), log=spec["log"],
                                           step=spec.get("step"))
        else:
            dists[key] = CategoricalDistribution(encoded_choices(spec))
    # TPE handles one or several objectives; seeded so a sweep's proposals are reproducible.
    sampler = optuna.samplers.TPESampler(seed=opts.seed + study_index)
    search_cls: type = OptunaSearch
    stored: dict[str, Any] = {}
    if opts.optuna_storage:  # a persistent study (suite.orchestration.optuna_storage, optuna_search)
        from suite.orchestration.optuna_search import StoredOptunaSearch

        search_cls = StoredOptunaSearch
        stored = {"storage": optuna_storage.make_optuna_storage(opts.optuna_storage), "study_name": study_name}
    directions, metrics = _study_objectives(opts)
    modes = ["max" if d == "maximize" else "min" for d in directions]
    if len(metrics) == 1:  # a single objective is passed as plain strings
        return search_cls(space=dists, metric=metrics[0], mode=modes[0], sampler=sampler, **stored)
    return search_cls(space=dists, metric=metrics, mode=modes, sampler=sampler, **stored)


def _study_objectives(opts: SweepOptions) -> tuple[list[str], list[str]]:
    """(Optuna directions, metric names) of the sweep's studies."""
    if opts.objective == "multi":
        return ["maximize", "minimize"], ["val_i_auroc", opts.cost_metric]
    return ["maximize"], ["val_mix" if opts.objective == "val_mix" else "val_i_auroc"]


def _trial_error_summary(trial: Any) -> str:
    """First and last line of the trial's latest failure, from Tune's local error file."""
    try:
        text = Path(trial.error_file).read_text() if trial.error_file else ""
    except OSError:
        text = ""
    block = text.rsplit("Failure # ", 1)[-1]
    lines = [line.strip() for line in block.splitlines()[1:] if line.strip()]
    if not lines:
        return "trial process failed without writing a record"
    summary = lines[0] if len(lines) == 1 or lines[0] == lines[-1] else f"{lines[0]} ... {lines[-1]}"
    return summary[:500]


class RecordGaps(tune.Callback):
    """Tune callback (driver side): write records for trials that ended without one.

    A trial stopped early by ASHA is interrupted inside ``run_trial``; a trial whose process died
    on its last attempt never wrote its record. Both get a record (status "stopped" / "failed") in
    every category folder that was started, so the sweep's records account for every trial.
    """

    def __init__(self, records_dir: str, sweep: str, select_on: str):
        self.records_dir, self.sweep, self.select_on = Path(records_dir), sweep, select_on

    def _fill(self, trial: Any, status: str, error: str) -> None:
        trial_dir = self.records_dir / str(trial.trial_id)
        if not trial_dir.is_dir():
            return
        last = {k: v for k, v in (trial.last_result or {}).items()
                if isinstance(v, (int, float, str, bool)) or v is None}
        for cat_dir in sorted(p for p in trial_dir.iterdir() if p.is_dir()):
            if (cat_dir / RECORD_NAME).exists() or not (cat_dir / "config.yaml").exists():
                continue
            try:
                cfg = load_yaml(cat_dir / "config.yaml")
            except (ConfigError, OSError):
                continue
            record = TrialRecord(
                config=cfg.to_dict(), config_hash=cfg.hash(), dataset=cfg.data.dataset,
                category=cfg.data.category, method=cfg.model.method, status=status, error=error,
                history=[last] if last else [], trial_id=str(trial.trial_id), sweep=self.sweep,
                seed=cfg.runtime.seed, selection=self.select_on, versions=code_versions(),
                # run_trial writes config.yaml first: its mtime is when the category started; it
                # ended no later than now (the scheduler's stop or the error reached the driver).
                started=(cat_dir / "config.yaml").stat().st_mtime, finished=time.time(),
                info={"times": "started = config.yaml mtime, finished = when the driver filled this record"},
            )
            write_record(record, cat_dir / RECORD_NAME)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        if last.get("final") is not True:
            self._fill(trial, "stopped", f"stopped early by the scheduler at report {last.get('training_iteration')}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._fill(trial, "failed", _trial_error_summary(trial))


class CloseRuns(tune.Callback):
    """Tune callback (driver side, after RecordGaps): end the MLflow runs of a trial that Tune ended
    while they were open. Tune stops an ASHA-stopped trial's process without waiting for it, so the
    trial cannot be relied on to end its own runs; this closes them from their records."""

    def __init__(self, spec: tracking.TrackingSpec, records_dir: str):
        self.spec, self.records_dir = spec, records_dir

    def _close(self, trial: Any) -> None:
        try:
            tracking.finish_sweep_runs(self.spec, self.records_dir, str(trial.trial_id))
        except Exception as err:  # noqa: BLE001 - watching never fails a sweep; the sweep's end retries
            print(f"[tracking] could not close the MLflow runs of {trial.trial_id}: {err}", flush=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._close(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._close(trial)


def shard_slots(opts: SweepOptions) -> int:
    """How many trainings (one category of one trial) the cluster runs at once: its CPUs (GPUs with
    ``--gpu``) divided by what one training takes (``suite.sweep_rules.slots_from_resources``)."""
    total = ray.cluster_resources()
    slots = slots_from_resources(float(total.get("CPU", 1)), float(total.get("GPU", 0)),
                                 cpus_per_trial=opts.cpus_per_trial, num_workers=opts.num_workers,
                                 use_gpu=opts.use_gpu)
    return max(1, slots)


def _trial_dirname(trial: Any) -> str:
    return str(trial.trial_id)


def _trainable(plan: TrialPlan, opts: SweepOptions, n_categories: int):
    """The Tune function with the resources of one trial (see shards.py for the two shard modes)."""
    from suite.orchestration.env import TRAIN_DRIVER, has_train_driver_resource

    def sweep_trial(config: dict[str, Any]) -> None:
        run_sweep_trial(config, plan)

    if opts.num_workers > 1 or (_sharded(opts) and opts.shards == "elastic"):
        if not has_train_driver_resource():
            what = f"--num-workers {opts.num_workers}" if opts.num_workers > 1 else "--shards elastic"
            raise ConfigError(
                f"{what} needs the custom resource {TRAIN_DRIVER} on the cluster (a trial that only coordinates "
                f"holds one unit instead of a CPU); start the nodes with: ray start ... --resources "
                f"'{{\"{TRAIN_DRIVER}\": 8}}', or pass --shards off"
            )
        # The trial process only coordinates; its shards (or Train workers) hold the CPUs (see env.py).
        return tune.with_resources(sweep_trial, {TRAIN_DRIVER: 1})
    if _sharded(opts):  # reserve: an empty head bundle plus one bundle per category shard
        bundle = shard_bundle(opts.cpus_per_trial, opts.use_gpu)
        total = float(ray.cluster_resources().get("CPU", 0))
        if n_categories * opts.cpus_per_trial > total + 1e-9:
            raise ConfigError(
                f"--shards reserve: a trial reserves {n_categories} x {opts.cpus_per_trial} CPU(s) at once but the "
                f"cluster has {total:g}; use --shards elastic (shards queue for free CPUs) or fewer categories"
            )
        return tune.with_resources(sweep_trial, tune.PlacementGroupFactory([{}] + [bundle] * n_categories))
    resources = {"cpu": opts.cpus_per_trial}
    if opts.use_gpu:
        resources["gpu"] = 1
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
    tracking_spec: tracking.TrackingSpec | None = None,
) -> tuple[Path, int, Any]:
    """Run one Tune experiment: the pooled study, or every per-category study at once (``studies``
    has several entries; ``suite.orchestration.studies``). Returns its folder, the shard slots and
    the searcher (None for grid/list spaces)."""
    from ray.tune.schedulers import ASHAScheduler

    multi = len(studies) > 1
    categories = list(opts.categories)
    plan = TrialPlan(
        base_cfg=base_cfg, space=space, categories=categories, sweep_name=name,
        records_dir=str(sweep_dir / "records"),
        stage_cache=str(sweep_dir.parent / "stage_cache") if opts.use_stage_cache else None,
        train_storage=str(sweep_dir / "train_runs"), objective=opts.objective, p_weight=opts.p_weight,
        cost_metric=opts.cost_metric, select_on=opts.select_on, num_workers=opts.num_workers,
        use_gpu=opts.use_gpu, cpus_per_trial=opts.cpus_per_trial, kill_marker=opts.kill_once_after_checkpoint,
        tracking=tracking_spec, shards=opts.shards if _sharded(opts) else "off",
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
    in_flight = trials_in_flight(space.kind, total, slots, per_trial_categories, shards=_sharded(opts),
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
            sub = _optuna_search(space, opts, index, optuna_storage.study_name_for(name, sub_study))
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


def _sweep_meta(space: SearchSpace, base_cfg: Config, opts: SweepOptions, n_trials: int) -> dict[str, Any]:
    return {
        "space": str(space.path),
        "space_kind": space.kind,
        "categories": list(opts.categories),
        "per_category": opts.per_category,
        "objective": opts.objective,
        "p_weight": opts.p_weight,
        "cost_metric": opts.cost_metric,
        "trials": n_trials,
        "base_config_hash": base_cfg.hash(),
        "base_config": base_cfg.to_dict(),
        # watching (suite.tracking): a resumed sweep continues the same runs, event files and study
        "mlflow": tracking.normalize_mlflow_uri(opts.mlflow) if opts.mlflow else None,
        "tensorboard": bool(opts.tensorboard),
        "optuna_storage": optuna_storage.storage_url(*optuna_storage.parse_optuna_storage(opts.optuna_storage))
        if opts.optuna_storage else None,
    }


_META_DEFAULTS = {"mlflow": None, "tensorboard": False, "optuna_storage": None}  # sweep.json before these keys


def _check_resume_meta(path: Path, meta: dict[str, Any]) -> None:
    old = json.loads(path.read_text())
    diffs = [k for k in ("space", "categories", "per_category", "objective", "p_weight", "cost_metric", "trials",
                         "base_config_hash", *_META_DEFAULTS) if old.get(k, _META_DEFAULTS.get(k)) != meta.get(k)]
    if diffs:
        detail = "; ".join(f"{k}: was {old.get(k, _META_DEFAULTS.get(k))!r}, now {meta.get(k)!r}" for k in diffs
                           if k != "base_config_hash")
        if "base_config_hash" in diffs:
            detail += ("; " if detail else "") + "the base config (preset/file/overrides) differs"
        raise ConfigError(f"--resume of {path.parent.name} needs the options it started with ({detail})")



def _prepare_watching(
    opts: SweepOptions, meta: dict[str, Any], name: str, sweep_dir: Path, studies: list[str], create: bool
) -> tracking.TrackingSpec | None:
    """The sweep's MLflow experiment and Optuna studies (``create=False``: only check their names
    are free for a new sweep); returns what the trials log to (None when nothing is watched)."""
    if meta["optuna_storage"]:
        directions, metric_names = _study_objectives(opts)
        for study in studies:
            study_name = optuna_storage.study_name_for(name, study)
            optuna_storage.prepare_optuna_study(
                meta["optuna_storage"], study_name, directions, metric_names,
                {"sweep": name, "sweep_dir": str(sweep_dir), "objective": opts.objective,
                 "categories": list(opts.categories) if study == "pooled" else [study]},
                resume=opts.resume, create=create,
            )
            if create:
                print(f"[sweep] Optuna study '{study_name}' in {meta['optuna_storage']}: "
                      f"optuna-dashboard {optuna_storage.dashboard_target(meta['optuna_storage'])}", flush=True)
    experiment_id = None
    if meta["mlflow"]:
        experiment_id = tracking.prepare_mlflow_experiment(meta["mlflow"], name, opts.resume, create=create)
        if create:
            env = "MLFLOW_ALLOW_FILE_STORE=true " if meta["mlflow"].startswith("file:") else ""
            print(f"[sweep] MLflow experiment '{name}' ({experiment_id}) in {meta['mlflow']}: "
                  f"{env}mlflow ui --backend-store-uri {meta['mlflow']}", flush=True)
    if meta["tensorboard"] and create:
        print(f"[sweep] TensorBoard: tensorboard --logdir {sweep_dir}", flush=True)
    if not create or not (meta["mlflow"] or meta["tensorboard"]):
        return None
    return tracking.TrackingSpec(
        sweep=name, select_on=opts.select_on, mlflow_uri=meta["mlflow"], mlflow_experiment_id=experiment_id,
        tensorboard_dir=str(sweep_dir / tracking.TENSORBOARD_DIR) if meta["tensorboard"] else None,
    )


def _finish_watching(opts: SweepOptions, meta: dict[str, Any], name: str, sweep_dir: Path, studies: list[str],
                     spec: tracking.TrackingSpec | None, result: dict[str, Any]) -> None:
    """Close MLflow runs whose process died; store Optuna's parameter importances for the report."""
    if spec is not None and spec.mlflow_uri:
        closed = tracking.finish_sweep_runs(spec, result["records_dir"])
        if closed:
            print(f"[sweep] MLflow: closed {closed} run(s) left open by a killed or stopped trial", flush=True)
    if meta["optuna_storage"]:
        _, metric_names = _study_objectives(opts)
        path = optuna_storage.write_optuna_importances(
            meta["optuna_storage"], [(optuna_storage.study_name_for(name, s), metric_names) for s in studies],
            sweep_dir / optuna_storage.IMPORTANCES_NAME,
        )
        result["optuna_importances"] = str(path)
        print(f"[sweep] Optuna parameter importances: {path}", flush=True)


def _sweep_records(records_dir: Path) -> list[TrialRecord]:
    from suite.aggregate import load_records

    return list(load_records(records_dir).records)


def _utilisation_line(usage: dict[str, Any]) -> str:
    """The summary's utilisation sentence (``results.utilisation``'s dict)."""
    line = (f"utilisation {usage['utilisation']:.0%}: {usage['busy_s']:.1f} busy slot-seconds / "
            f"({usage['slots']} slot(s) x {usage['wall_s']:.1f} s wall)")
    if usage["untimed"]:
        line += f"; {usage['untimed']} record(s) without start/finish times not counted"
    return line


def run_sweep(cfg: Config, opts: SweepOptions) -> dict[str, Any]:
    """Run (or resume) a sweep; returns paths: records_dir, records_csv (+ pareto_csv/json for multi)."""
    from suite.orchestration.cluster import describe_cluster, format_cluster
    from suite.orchestration.env import init_ray, shutdown_ray

    _check_options(opts)
    # Each report carries a checkpoint and CheckpointConfig(num_to_keep) then forces state snapshots;
    # they are what makes --resume exact, so silence Tune's warning about their frequency.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    space = load_space(opts.space)
    base_cfg = check_space(space, cfg)
    for cat in opts.categories:
        with_overrides(base_cfg, {"data.category": cat})
    if opts.objective == "multi" and not base_cfg.eval.cost:
        raise ConfigError("--objective multi needs the cost measured: set eval.cost=true")
    base_cfg, use_asha, max_reports = _asha_plan(base_cfg, space, opts)
    n_trials = _default_trials(space, opts.trials)
    if opts.optuna_storage and space.kind != "optuna":
        raise ConfigError(f"--optuna-storage needs a SPACE (Optuna) search space; {space.name} is a {space.kind} "
                          "space run by Tune's grid search")

    storage = Path(opts.storage).expanduser().resolve()
    name = opts.name or f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    sweep_dir = storage / name
    meta = _sweep_meta(space, base_cfg, opts, n_trials)
    meta_path = sweep_dir / "sweep.json"
    if opts.resume:
        if not meta_path.exists():
            raise ConfigError(f"--resume: no sweep named '{name}' under {storage} (missing {meta_path})")
        _check_resume_meta(meta_path, meta)
    elif sweep_dir.exists() and any(sweep_dir.iterdir()):
        raise ConfigError(f"sweep '{name}' already exists under {storage}; pass --resume or choose another --name")
    studies = [(c, [c]) for c in opts.categories] if opts.per_category else [("pooled", list(opts.categories))]
    experiment = "categories" if opts.per_category else "pooled"  # per-category: every study in one experiment
    if opts.address:
        from suite.orchestration.env import check_cluster_auth

        check_cluster_auth(opts.address)  # a refused or absent cluster fails before anything is written
    _prepare_watching(opts, meta, name, sweep_dir, [s for s, _ in studies], create=False)  # names free?
    tracking_spec = _prepare_watching(opts, meta, name, sweep_dir, [s for s, _ in studies], create=True)
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
        from suite.orchestration.optuna_search import random_trial_counts

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
    print(f"[sweep] {_utilisation_line(usage)}", flush=True)
    # The last run's scheduling facts next to the options (the report states them; records alone
    # cannot say how many slots there were).
    stored = json.loads(meta_path.read_text())
    stored.setdefault("runs", []).append({"finished": time.time(), "utilisation": usage, "random_trials": random_counts,
                                          "resumed": opts.resume, "shards": opts.shards if _sharded(opts) else "off"})
    atomic_write_json(meta_path, stored)
    from suite.aggregate import fidelity_summary  # no Ray: does validation rank the configurations like test?

    for line in fidelity_summary(frame):
        print(f"[sweep] {line}", flush=True)
    _finish_watching(opts, meta, name, sweep_dir, [s for s, _ in studies], tracking_spec, result)
    return result
