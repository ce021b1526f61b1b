"""A sweep's options and what is settled before Ray starts: their checks, the ASHA / evaluation
cadence, what ``sweep.json`` stores and how ``--resume`` compares it, and the watching set-up
(MLflow experiment, Optuna studies) and its end. No Ray here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suite import tracking
from suite.config import Config, ConfigError
from suite.orchestration import optuna_storage
from suite.spaces import SearchSpace
from suite.sweep_rules import gpus_per_training, sweep_eval_config

SHARD_MODES = ("elastic", "reserve", "off")  # how a trial runs its categories (suite.orchestration.shards)
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
    num_workers: int = 1  # Ray Train DDP workers per training (1 = run_training in the trial process)
    use_gpu: bool = False  # one GPU per training (per Train worker); same as gpus_per_trial=1
    gpus_per_trial: float = 0.0  # GPUs per training (per Train worker): 0.25 = four trainings share one GPU
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


def default_trials(space: SearchSpace, trials: int | None) -> int:
    if trials is not None:
        if trials < 1:
            raise ConfigError("--trials must be >= 1")
        return trials
    return 8 if space.kind == "optuna" else 1


def check_options(opts: SweepOptions) -> None:
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
    check_gpus_per_trial(opts.gpus_per_trial, opts.num_workers)
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


def check_gpus_per_trial(gpus: float, num_workers: int = 1) -> None:
    """``--gpus-per-trial``: 0 (none), a fraction in (0, 1) that several trainings share, or a whole
    number. Ray packs fractions on one GPU only when they sum to at most 1, so ``1 / F`` should be
    whole; DDP ranks on one GPU are refused (NCCL needs one device per rank)."""
    if gpus < 0 or (gpus > 1 and abs(gpus - round(gpus)) > 1e-9):
        raise ConfigError(f"--gpus-per-trial {gpus:g}: give 0, a fraction of one GPU (0.5, 0.25, ...) or a whole "
                          "number of GPUs")
    if 0 < gpus < 1 and num_workers > 1:
        raise ConfigError(f"--gpus-per-trial {gpus:g} with --num-workers {num_workers}: DDP needs one whole GPU "
                          "per worker (NCCL refuses two ranks on one device); use --num-workers 1")


def gpus_of(opts: SweepOptions) -> float:
    """GPUs one training (one Train worker) of the sweep holds (``--gpus-per-trial``, else ``--use-gpu``)."""
    return gpus_per_training(opts.gpus_per_trial, opts.use_gpu)


def asha_plan(cfg: Config, space: SearchSpace, opts: SweepOptions) -> tuple[Config, bool, int]:
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
    n_cat = 1 if opts.per_category or sharded(opts) else len(opts.categories)
    return cfg, use_asha, max(1, n_cat * per_category + 1)


def sharded(opts: SweepOptions) -> bool:
    """Whether trials fan their categories out as shards (DDP trials never do: see shards.py)."""
    return opts.shards != "off" and opts.num_workers == 1


def study_objectives(opts: SweepOptions) -> tuple[list[str], list[str]]:
    """(Optuna directions, metric names) of the sweep's studies."""
    if opts.objective == "multi":
        return ["maximize", "minimize"], ["val_i_auroc", opts.cost_metric]
    return ["maximize"], ["val_mix" if opts.objective == "val_mix" else "val_i_auroc"]


def sweep_meta(space: SearchSpace, base_cfg: Config, opts: SweepOptions, n_trials: int) -> dict[str, Any]:
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


def check_resume_meta(path: Path, meta: dict[str, Any]) -> None:
    old = json.loads(path.read_text())
    diffs = [k for k in ("space", "categories", "per_category", "objective", "p_weight", "cost_metric", "trials",
                         "base_config_hash", *_META_DEFAULTS) if old.get(k, _META_DEFAULTS.get(k)) != meta.get(k)]
    if diffs:
        detail = "; ".join(f"{k}: was {old.get(k, _META_DEFAULTS.get(k))!r}, now {meta.get(k)!r}" for k in diffs
                           if k != "base_config_hash")
        if "base_config_hash" in diffs:
            detail += ("; " if detail else "") + "the base config (preset/file/overrides) differs"
        raise ConfigError(f"--resume of {path.parent.name} needs the options it started with ({detail})")


def prepare_watching(
    opts: SweepOptions, meta: dict[str, Any], name: str, sweep_dir: Path, studies: list[str], create: bool
) -> tracking.TrackingSpec | None:
    """The sweep's MLflow experiment and Optuna studies (``create=False``: only check their names
    are free for a new sweep); returns what the trials log to (None when nothing is watched)."""
    if meta["optuna_storage"]:
        directions, metric_names = study_objectives(opts)
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


def finish_watching(opts: SweepOptions, meta: dict[str, Any], name: str, sweep_dir: Path, studies: list[str],
                     spec: tracking.TrackingSpec | None, result: dict[str, Any]) -> None:
    """Close MLflow runs whose process died; store Optuna's parameter importances for the report."""
    if spec is not None and spec.mlflow_uri:
        closed = tracking.finish_sweep_runs(spec, result["records_dir"])
        if closed:
            print(f"[sweep] MLflow: closed {closed} run(s) left open by a killed or stopped trial", flush=True)
    if meta["optuna_storage"]:
        _, metric_names = study_objectives(opts)
        path = optuna_storage.write_optuna_importances(
            meta["optuna_storage"], [(optuna_storage.study_name_for(name, s), metric_names) for s in studies],
            sweep_dir / optuna_storage.IMPORTANCES_NAME,
        )
        result["optuna_importances"] = str(path)
        print(f"[sweep] Optuna parameter importances: {path}", flush=True)


def utilisation_line(usage: dict[str, Any]) -> str:
    """The summary's utilisation sentence (``results.utilisation``'s dict)."""
    line = (f"utilisation {usage['utilisation']:.0%}: {usage['busy_s']:.1f} busy slot-seconds / "
            f"({usage['slots']} slot(s) x {usage['wall_s']:.1f} s wall)")
    if usage["untimed"]:
        line += f"; {usage['untimed']} record(s) without start/finish times not counted"
    return line
