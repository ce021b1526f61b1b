"""The plan of a sweep: its points (configuration x category), the jobs of its trials, the
simulated wall time, CPU/GPU-hours and utilisation, and the table ``run_suite.py plan`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from suite.methods.registry import method_spec
from suite.planning.simulate import (
    STAGES,
    SWEEP_START_S,
    TRIAL_START_S,
    Segment,
    Timing,
    asha_rungs,
    asha_stops,
    simulate,
    stage_epochs,
    training_segments,
)
from suite.stage_cache import stage_key
from suite.sweep_rules import training_config, trials_in_flight

PLAN_JSON_KEYS = ("predicted_wall_s", "utilisation", "trainings", "cpu_hours", "gpu_hours", "per_epoch_s",
                  "slots", "shards", "training_s", "asha", "timing_source")


@dataclass
class PlanPoint:
    """One configuration of the sweep for one category (a grid row, or an Optuna trial's base)."""

    point: int  # index of the grid/list point (0 for Optuna)
    category: str
    timing: Timing
    epochs: dict[str, int]
    keys_for_repeat: Callable[[int], dict[str, str]] | None = None  # repeat -> stage -> stage-cache key


@dataclass
class PlanSpec:
    kind: str  # optuna | grid | list
    categories: list[str]
    n_points: int  # grid/list points (1 for Optuna)
    n_trials: int  # Optuna trials, or seeds per point
    slots: int
    eval_every: int = 0
    use_asha: bool = False
    per_category: bool = False
    shards: bool = True
    concurrent: int = 0
    cpus_per_slot: float = 1.0
    gpus_per_slot: float = 0.0  # GPUs a slot holds (a fraction: several trainings share a GPU)
    asha_model: str = "expected"
    asha_runs: int = 32  # Monte-Carlo runs (asha_model montecarlo)
    seed: int = 0
    sweep_start_s: float = SWEEP_START_S
    trial_start_s: float = TRIAL_START_S
    cached_keys: frozenset[str] = frozenset()  # stage-cache keys already on disk


def asha_schedule(spec: PlanSpec, stage1_epochs: int) -> tuple[int, int, list[int]]:
    """(reports per category R, max_t, rungs) of the sweep's ASHA: ``max_t = R + 1`` for shards and
    per-category studies; the older pooled driver counts every category's reports (``n_cat * R + 1``)."""
    per = stage1_epochs // spec.eval_every if spec.eval_every else 0
    n_cat = 1 if (spec.per_category or spec.shards) else len(spec.categories)
    max_t = max(1, n_cat * per + 1)
    return per, max_t, asha_rungs(max_t, max(1, max_t // 3)) if spec.use_asha else []


def _trial_jobs(spec: PlanSpec, points: dict[tuple[int, str], PlanPoint], point: int, repeat: int,
                categories: list[str], stop: int | None, per_cat_reports: int) -> tuple[list[list[Segment]], float]:
    """The jobs of one trial and its total training seconds (trial start included)."""
    trainings = []
    for index, cat in enumerate(categories):
        pp = points[(point, cat)]
        keys = pp.keys_for_repeat(repeat) if pp.keys_for_repeat else {}
        stop_here: int | None = None
        skip = False
        if stop is not None:
            if spec.shards or spec.per_category:
                stop_here = stop
            else:  # older pooled driver: reports numbered across its sequential categories
                c, k = divmod(stop - 1, max(1, per_cat_reports))
                if index > c:
                    skip = True
                elif index == c:
                    stop_here = k + 1
        if skip:
            continue
        first = index == 0 or spec.shards or spec.per_category
        trainings.append(training_segments(pp.timing, pp.epochs, spec.eval_every, stop_report=stop_here,
                                           keys=keys, trial_start_s=spec.trial_start_s if first else 0.0))
    seconds = sum(s.seconds for t in trainings for s in t)
    if spec.shards or spec.per_category:
        return trainings, seconds
    return [[seg for t in trainings for seg in t]], seconds


def plan_sweep(spec: PlanSpec, points: Iterable[PlanPoint]) -> dict[str, Any]:
    """Predict a sweep: trainings, per-epoch times, CPU/GPU-hours, ASHA stops, wall time, utilisation.

    ``points`` gives the timing of every (point, category). Returns a JSON-ready dict (keys
    ``PLAN_JSON_KEYS`` and more); ``format_plan`` prints it.
    """
    pts = {(p.point, p.category): p for p in points}
    cats = list(spec.categories)
    e1 = max((p.epochs.get("stage1", 0) for p in pts.values()), default=0)
    per, max_t, rungs = asha_schedule(spec, e1)
    if spec.kind == "optuna":
        units = [(0, r) for r in range(spec.n_trials)]  # (point, repeat)
    else:
        units = [(p, r) for p in range(spec.n_points) for r in range(spec.n_trials)]
    runs = spec.asha_runs if (rungs and spec.asha_model == "montecarlo") else 1
    built = {k: 0.0 for k in spec.cached_keys}
    results = []
    for run in range(runs):
        if spec.per_category:
            # one study (own ASHA, own trials) per category, all in one experiment: trials interleaved
            stops_by_cat = [asha_stops(len(units), rungs, spec.asha_model, spec.seed + run + 7919 * c) if rungs
                            else [None] * len(units) for c in range(len(cats))]
            trials = [_trial_jobs(spec, pts, p, r, [cat], stops_by_cat[c][i], per)
                      for i, (p, r) in enumerate(units) for c, cat in enumerate(cats)]
            flight = trials_in_flight(spec.kind, len(trials), spec.slots, 1, shards=spec.shards,
                                      concurrent=spec.concurrent)
            sims = [simulate([j for j, _ in trials], spec.slots, flight, built)]
            stops_all = [s for stops in stops_by_cat for s in stops]
        else:
            stops_all = (asha_stops(len(units), rungs, spec.asha_model, spec.seed + run) if rungs
                         else [None] * len(units))
            trials = [_trial_jobs(spec, pts, p, r, cats, stops_all[i], per) for i, (p, r) in enumerate(units)]
            flight = trials_in_flight(spec.kind, len(trials), spec.slots, len(cats), shards=spec.shards,
                                      concurrent=spec.concurrent)
            sims = [simulate([j for j, _ in trials], spec.slots, flight, built)]
        makespan = sum(s.makespan_s for s in sims)
        busy = sum(s.busy_s for s in sims)
        results.append({"makespan": makespan, "busy": busy, "seconds": sum(sec for _, sec in trials),
                        "stopped": sum(1 for s in stops_all if s is not None),
                        "stopped_at": [s for s in stops_all if s is not None]})
    mean = lambda key: sum(r[key] for r in results) / len(results)  # noqa: E731
    makespan, busy, train_s = mean("makespan"), mean("busy"), mean("seconds")
    n_units = len(units) * (len(cats) if spec.per_category else 1)
    full = [sum(s.seconds for s in training_segments(p.timing, p.epochs, spec.eval_every)) for p in pts.values()]
    per_epoch = _mean_per_epoch(pts.values())
    util = busy / (spec.slots * makespan) if makespan > 0 else float("nan")
    wall = spec.sweep_start_s + makespan
    sources = sorted({p.timing.source for p in pts.values()})
    return {
        "kind": spec.kind,
        "categories": cats,
        "n_points": spec.n_points,
        "n_trials": spec.n_trials,
        "trainings": len(units) * len(cats),
        "slots": spec.slots,
        "shards": spec.shards,
        "per_category": spec.per_category,
        "trials_in_flight": trials_in_flight(spec.kind, n_units, spec.slots, 1 if spec.per_category else len(cats),
                                             shards=spec.shards, concurrent=spec.concurrent),
        "per_epoch_s": per_epoch,
        "epochs": {s: max((p.epochs.get(s, 0) for p in pts.values()), default=0) for s in STAGES},
        "training_s": {"mean_full": sum(full) / len(full) if full else 0.0,
                       "per_category": {c: sum(s.seconds for s in training_segments(
                           pts[(0, c)].timing, pts[(0, c)].epochs, spec.eval_every)) for c in cats if (0, c) in pts}},
        "total_training_s": train_s,
        "cpu_hours": train_s * spec.cpus_per_slot / 3600,
        "gpu_hours": train_s * spec.gpus_per_slot / 3600,
        "gpus_per_slot": spec.gpus_per_slot,
        "asha": {"on": bool(rungs), "model": spec.asha_model if rungs else None, "runs": runs if rungs else 0,
                 "reports_per_category": per, "max_t": max_t, "grace_period": max(1, max_t // 3),
                 "rungs": rungs, "expected_stopped": mean("stopped"), "trials": len(units)},
        "makespan_s": makespan,
        "sweep_start_s": spec.sweep_start_s,
        "predicted_wall_s": wall,
        "utilisation": util,
        "busy_slot_s": busy,
        "timing_source": ", ".join(sources),
    }


def _mean_per_epoch(points: Iterable[PlanPoint]) -> dict[str, float]:
    sums: dict[str, list[float]] = {}
    for p in points:
        for stage, sec in p.timing.per_epoch_s.items():
            sums.setdefault(stage, []).append(sec)
    return {s: sum(v) / len(v) for s, v in sums.items()}


def format_plan(plan: dict[str, Any]) -> str:
    """The plan as a readable table."""
    def hms(s: float) -> str:
        return f"{s:.1f} s" if s < 120 else (f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.2f} h")

    a = plan["asha"]
    rows = [
        ("trainings", f"{plan['trainings']} = {plan['n_trials'] * max(1, plan['n_points'])} trial(s) x "
                      f"{len(plan['categories'])} categor{'y' if len(plan['categories']) == 1 else 'ies'}"
                      + (f" ({plan['n_points']} points x {plan['n_trials']} seeds)"
                         if plan["kind"] != "optuna" else "")),
        ("epochs per stage", ", ".join(f"{s} {e}" for s, e in plan["epochs"].items() if e)),
        ("per-epoch seconds", ", ".join(f"{s} {v:.3g}" for s, v in plan["per_epoch_s"].items()) or "-"),
        ("timing source", plan["timing_source"]),
        ("training s / shard", f"{plan['training_s']['mean_full']:.1f} (full, mean over points and categories)"),
        ("total training", hms(plan["total_training_s"])),
        ("CPU-hours", f"{plan['cpu_hours']:.3g}"),
        ("GPU-hours", f"{plan['gpu_hours']:.3g}"),
        ("slots", f"{plan['slots']} ({'shards' if plan['shards'] else 'one slot per trial'}"
                  + (f", {plan['gpus_per_slot']:g} GPU each" if plan.get("gpus_per_slot") else "")
                  + f"{', per category' if plan['per_category'] else ''}; "
                  f"{plan['trials_in_flight']} trial(s) in flight)"),
        ("ASHA", (f"max_t {a['max_t']}, grace {a['grace_period']}, rungs {a['rungs']}, "
                  f"expected stopped {a['expected_stopped']:.1f}/{a['trials']} ({a['model']}"
                  + (f", {a['runs']} runs" if a["model"] == "montecarlo" else "") + ")") if a["on"] else "off"),
        ("predicted wall", f"{hms(plan['predicted_wall_s'])} ({plan['predicted_wall_s']:.0f} s, "
                           f"incl. {plan['sweep_start_s']:.0f} s sweep start)"),
        ("utilisation", f"{plan['utilisation']:.0%}"),
    ]
    if plan.get("gpu_memory"):
        rows.append(("GPU memory", plan["gpu_memory"]["summary"]))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def expected_overrides(space: Any) -> dict[str, Any]:
    """For an Optuna space: the sampled ``train.stageN.epochs`` at their expected value (mean of
    the choices, or the middle of ``[low, high]``); other sampled keys keep the base value (their
    effect on time is not modelled)."""
    out: dict[str, Any] = {}
    for key, spec in getattr(space, "space", {}).items():
        if not (key.startswith("train.stage") and key.endswith(".epochs")):
            continue
        if spec["type"] == "categorical":
            values = [int(v) for v in spec["choices"]]
            out[key] = max(1, round(sum(values) / len(values)))
        else:
            out[key] = max(1, round((spec["low"] + spec["high"]) / 2))
    return out


def point_overrides(space: Any) -> list[dict[str, Any]]:
    """The overrides of every plan point: the grid/list points, or one Optuna point (``expected_overrides``)."""
    return [expected_overrides(space)] if space.kind == "optuna" else [dict(p) for p in space.points]


def sweep_points(base_cfg: Any, space: Any, categories: Sequence[str], *, cpus_per_trial: float = 1.0,
                 timing_for: Callable[[Any, str, int], Timing], repeats: int = 1,
                 stage_cache: str | Path | None = None) -> tuple[list[PlanPoint], frozenset[str]]:
    """The plan's points: one per (grid/list point, category), or per category for an Optuna space
    (its base config with ``expected_overrides``). ``timing_for(cfg, category, point)`` gives their
    timing. With ``stage_cache``, grid/list points get stage-cache keys for each of ``repeats``
    seeds (``suite.stage_cache.stage_key``) so the simulation shares stages as the cache would; keys
    already in the cache are returned too (they cost nothing)."""
    overrides = point_overrides(space)
    cache = Path(stage_cache) if stage_cache else None  # read only: a plan creates nothing
    points: list[PlanPoint] = []
    cached: set[str] = set()
    for index, over in enumerate(overrides):
        for cat in categories:
            cfg = training_config(base_cfg, over, cat, 0, cpus_per_trial)
            timing = timing_for(cfg, cat, index)
            keys_for = None
            if space.kind != "optuna" and cache is not None:
                table = []
                for repeat in range(repeats):
                    c = training_config(base_cfg, over, cat, repeat, cpus_per_trial)
                    keys = {s: stage_key(c, s, method_spec(c.model.method)) for s in timing.per_epoch_s}
                    cached.update(k for k in keys.values() if (cache / f"{k}.pt").exists())
                    table.append(keys)
                keys_for = table.__getitem__
            points.append(PlanPoint(index, cat, timing, stage_epochs(cfg), keys_for))
    return points, frozenset(cached)
