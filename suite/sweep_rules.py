"""The live sweep's rules, shared by the sweep driver and the planner so ``plan`` predicts what a
sweep does: trials admitted at once, training slots of a cluster's resources, the evaluation /
checkpoint cadence under ASHA and the config of one training. Light: config only (no torch, no Ray).
"""

from __future__ import annotations

from typing import Any

from suite.config import with_overrides

# Ray Tune's ASHAScheduler as the driver configures it (``driver._run_study``): reduction factor 2.
ASHA_REDUCTION = 2


def trials_in_flight(kind: str, n_trials: int, slots: int, n_categories: int, *, shards: bool = True,
                     concurrent: int = 0) -> int:
    """How many trials the driver keeps admitted at once (the sweep driver calls this too, so the
    plan simulates what the sweep does).

    - grid / list spaces: every trial (all (row, seed, category) trainings queue at once);
    - Optuna, sharded: ``min(n_trials, ceil(slots / n_categories) + 1)`` (enough trials that the
      queue of shards stays full, few enough that TPE sees results before proposing more);
    - Optuna, a trial = one slot (``shards=False``): ``min(n_trials, slots)``.

    ``n_trials`` counts the trials of the whole experiment (per-category studies all run in one
    experiment: their trials together, with ``n_categories = 1``). ``concurrent`` (> 0) caps it.
    """
    if kind != "optuna":
        n = n_trials
    elif shards:
        n = min(n_trials, -(-slots // max(1, n_categories)) + 1)
    else:
        n = min(n_trials, slots)
    if concurrent:
        n = min(n, concurrent)
    return max(1, n)


def gpus_per_training(gpus_per_trial: float = 0.0, use_gpu: bool = False) -> float:
    """GPUs one training (one Train worker) holds: ``--gpus-per-trial F`` (a fraction such as 0.25
    puts four trainings on one GPU), else 1 with ``--use-gpu``, else 0."""
    if gpus_per_trial < 0:
        raise ValueError("gpus per trial must be >= 0")
    return float(gpus_per_trial) if gpus_per_trial else (1.0 if use_gpu else 0.0)


def slots_from_resources(cpus: float, gpus: float, *, cpus_per_trial: float = 1.0, num_workers: int = 1,
                         use_gpu: bool = False, gpus_per_trial: float = 0.0) -> int:
    """Shard slots a cluster's resources hold: a slot = ``num_workers`` workers of
    ``cpus_per_trial`` CPUs and ``g`` GPUs each (``g = gpus_per_training(gpus_per_trial, use_gpu)``), so
    ``slots = min(floor(cpus / (cpus_per_trial * num_workers)), floor(gpus / (g * num_workers)) if g)``.
    Several trainings share a GPU when ``g < 1`` (Ray's fractional GPU resources): 8 GPUs at 0.25 are 32
    slots. The small CPU-free share a trial's coordinator holds (``memory`` only) takes no slot."""
    by_cpu = int(cpus // (cpus_per_trial * num_workers) + 1e-9)
    g = gpus_per_training(gpus_per_trial, use_gpu)
    if g:
        return max(0, min(by_cpu, int(gpus / (g * num_workers) + 1e-9)))
    return max(0, by_cpu)


def sweep_eval_config(cfg: Any, use_asha: bool) -> Any:
    """The eval/checkpoint cadence a sweep sets (``sweep_options.asha_plan`` calls this): with ASHA and
    ``train.eval_every = 0``, ``eval_every = max(1, stage1.epochs // 4)``; checkpoints follow it."""
    updates: dict[str, Any] = {}
    if use_asha and cfg.train.eval_every == 0:
        updates["train.eval_every"] = max(1, cfg.train.stage1.epochs // 4)
    every = updates.get("train.eval_every", cfg.train.eval_every)
    if every and cfg.train.checkpoint_every == 0:
        updates["train.checkpoint_every"] = every
    return with_overrides(cfg, updates) if updates else cfg


def training_config(base_cfg: Any, overrides: dict[str, Any], category: str, repeat: int = 0,
                    cpus_per_trial: float = 1.0) -> Any:
    """The config one training of a sweep runs (``TrialPlan.config_for`` calls this): category, seed +
    repeat, and ``runtime.threads = cpus_per_trial`` when the base leaves it at 0 (torch's default
    would use every core of the node, not the trial's share)."""
    updates = {**overrides, "data.category": category}
    if repeat:
        updates["runtime.seed"] = base_cfg.runtime.seed + repeat
    if base_cfg.runtime.threads == 0:
        updates["runtime.threads"] = max(1, int(cpus_per_trial))
    return with_overrides(base_cfg, updates)
