"""Plan a sweep before it trains: trainings, per-epoch times, CPU/GPU-hours, predicted wall time.

No Ray here (``run_suite.py plan`` in ``suite.cli`` and ``benchmarks/`` call it; the one Ray lookup,
a cluster's slots for ``--address``, is ``suite.orchestration.plan_cluster``).

What a sweep costs, in four steps:

1. **Trainings** ``T = trials x categories x seeds``: Optuna spaces run ``--trials`` trials over
   every category; grid / list spaces run ``points x seeds`` rows over every category.
2. **Per-epoch time per stage** at the target image size, batch size and device (``Timing``):
   from earlier records of the same configuration (``timing_from_records``: ``stage_s / epochs``,
   validations included) or, when none exist, from a short calibration run (``calibrate``: a few
   batches of every enabled stage through the real ``run_trial`` in a subprocess, scaled to a full
   epoch by ``ceil(n_train / batch) / ceil(n_cal / batch)``). A training then takes::

       t = pre + sum_s epochs_s * per_epoch_s + n_val * val_s + post

   with ``pre`` (data loading), ``post`` (test evaluation, cost measurement) and
   ``n_val = stage1.epochs // eval_every`` periodic validations.
3. **ASHA's expected stops** (Optuna spaces, single objective): reports ``k = 1 .. R`` come after
   stage-1 epoch ``k * eval_every`` (plus a final report ``R + 1``), ``max_t = R + 1``,
   ``grace = max(1, max_t // 3)``, rungs ``grace * 2^j < max_t`` (Ray's ``ASHAScheduler`` with
   reduction factor 2). At each rung a trial continues with probability 1/2; ``asha_model``:
   ``"expected"`` (default, deterministic: of the trials reaching a rung in submission order the
   1st, 3rd, 5th ... continue) or ``"montecarlo"`` (Ray's own rule — stop below the median of the
   scores recorded so far at the rung — on uniform random scores, seeded, averaged over runs). A
   stopped trial's trainings end at that rung's epoch: ``pre + m * every * (epoch_1 + val_s /
   every)``.
4. **Scheduler simulation** (``simulate``): an event simulation of the slots. A *shard* is one
   training and holds one slot (``shards=True``, the sharded driver): a trial fans its categories out
   as shards queued FIFO on free slots, with at most ``trials_in_flight`` trials admitted at once.
   ``shards=False`` models the older driver where a trial is one slot running its categories one
   after another. Shared stage-cache keys are honoured: a shard reaching a stage another shard is
   building waits (holding its slot) and then loads it; one already built costs nothing. Results:
   ``wall = sweep_start_s + makespan``, ``utilisation = busy slot-seconds / (slots x makespan)``
   (busy = a shard's whole span, waits included, as the driver's records measure it).

CPU-hours = ``sum of training seconds x cpus per slot / 3600``; GPU-hours (``--use-gpu``) =
``sum x gpus per slot / 3600`` (one GPU per worker).
"""

from __future__ import annotations

import heapq
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

STAGES = ("stage1", "stage2", "stage3")
# Ray Tune's ASHAScheduler as the driver configures it (driver._run_study): reduction factor 2.
ASHA_REDUCTION = 2
# Fixed costs outside the trainings, measured on this 2-core machine by benchmarks/plan_accuracy.py
# (a sharded 8-training sweep, load average 7-11; overridable): starting Python + local Ray + Tune and
# writing records.csv (command wall - Tune wall: 21 s), and the gap a slot sits idle between two
# shards (Ray task start, torch import, record collection: 55 idle slot-seconds / 8 shards = 6.9 s).
SWEEP_START_S = 20.0
TRIAL_START_S = 6.0
# Keys of a config that never change how long a training takes (matched away when looking up records).
_TIMING_FREE_KEYS = ("data.category", "runtime.seed", "runtime.preset")
PLAN_JSON_KEYS = ("predicted_wall_s", "utilisation", "trainings", "cpu_hours", "gpu_hours", "per_epoch_s",
                  "slots", "shards", "training_s", "asha", "timing_source")


# ----------------------------------------------------------------------------------------------
# the in-flight rule (align with the driver's scheduler here)


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


# ----------------------------------------------------------------------------------------------
# ASHA


def asha_rungs(max_t: int, grace: int, rf: int = ASHA_REDUCTION) -> list[int]:
    """Ray's ASHA milestones that can stop a trial early: ``grace * rf^j`` for
    ``j < int(log(max_t / grace) / log(rf) + 1)``, keeping those ``< max_t`` (a report at ``max_t``
    is the last one anyway)."""
    if max_t <= 1 or grace >= max_t:
        return []
    n = int(math.log(max_t / grace) / math.log(rf) + 1)
    return sorted(m for m in (grace * rf**j for j in range(n)) if m < max_t)


def asha_stops(n_trials: int, rungs: Sequence[int], model: str = "expected", seed: int = 0,
               rf: int = ASHA_REDUCTION) -> list[int | None]:
    """The report at which each trial (in submission order) is stopped, or None (runs to the end).

    ``expected``: of the trials reaching a rung, the 1st, 3rd, 5th ... continue (each continues with
    probability 1/2, the first always: Ray has nothing to compare it with). ``montecarlo``: trial
    ``i`` has a uniform score; at a rung it stops when below the ``(1 - 1/rf)`` percentile of the
    scores recorded there before it (Ray's ``_Bracket.cutoff``), then records its own.
    """
    stops: list[int | None] = [None] * n_trials
    if model == "expected":
        alive = list(range(n_trials))
        for rung in rungs:
            stops_here = alive[1::2]
            for i in stops_here:
                stops[i] = rung
            alive = alive[0::2]
        return stops
    if model != "montecarlo":
        raise ValueError(f"asha model {model!r} is not 'expected' or 'montecarlo'")
    rng = random.Random(seed)
    scores = [rng.random() for _ in range(n_trials)]
    recorded: dict[int, list[float]] = {r: [] for r in rungs}
    for i in range(n_trials):
        for rung in rungs:
            seen = recorded[rung]
            cutoff = _percentile(seen, (1 - 1 / rf) * 100) if seen else None
            seen.append(scores[i])
            if cutoff is not None and scores[i] < cutoff:
                stops[i] = rung
                break
    return stops


def _percentile(values: Sequence[float], q: float) -> float:
    """numpy's default (linear) percentile, without numpy."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


# ----------------------------------------------------------------------------------------------
# timings


@dataclass
class Timing:
    """How long one training of a configuration takes on one slot (seconds)."""

    per_epoch_s: dict[str, float]  # stage -> seconds per epoch (only the stages that train)
    pre_s: float = 0.0  # before training: data loading
    post_s: float = 0.0  # after training: test evaluation, cost measurement, record
    val_s: float = 0.0  # one periodic validation (0 when per_epoch_s already includes them)
    source: str = "assumed"  # records (N) | calibration | assumed | ...

    def scaled(self, factor: float, source: str | None = None) -> "Timing":
        """Every duration times ``factor`` (e.g. another device's speed)."""
        return Timing({k: v * factor for k, v in self.per_epoch_s.items()}, self.pre_s * factor,
                      self.post_s * factor, self.val_s * factor, source or self.source)


@dataclass(frozen=True)
class Segment:
    """A piece of a shard's timeline; ``key`` = the stage-cache key it builds (None: not shared)."""

    seconds: float
    key: str | None = None
    busy: bool = True  # False: the slot is held but no training runs yet (a shard's start-up), so
    # it counts towards wall time but not towards busy slot-seconds, as the sweep's records count it


@dataclass
class TrainingPlan:
    """One (trial, category, seed) training: its segments and when ASHA stops it."""

    trial: int
    category: str
    segments: list[Segment]
    stopped_at: int | None = None  # ASHA report that stopped it (None: runs to the end)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.segments)


def stage_epochs(cfg: Any) -> dict[str, int]:
    """Epochs per stage of ``cfg`` (a ``suite.config.Config``)."""
    return {s: int(getattr(cfg.train, s).epochs) for s in STAGES}


def training_segments(timing: Timing, epochs: dict[str, int], eval_every: int, *, stop_report: int | None = None,
                      keys: dict[str, str] | None = None, trial_start_s: float = 0.0) -> list[Segment]:
    """A training's timeline: ``start + pre + stages + post`` (see the module docstring). With
    ``stop_report = m`` it ends after stage-1 epoch ``m * eval_every`` and its ``m`` validations."""
    keys = keys or {}
    e1 = epochs.get("stage1", 0)
    n_val = e1 // eval_every if eval_every else 0
    segs = [Segment(trial_start_s, busy=False), Segment(timing.pre_s)]
    if stop_report is not None:
        done = min(e1, stop_report * eval_every)
        segs.append(Segment(done * timing.per_epoch_s.get("stage1", 0.0) + stop_report * timing.val_s))
        return segs
    for stage in STAGES:
        if stage not in timing.per_epoch_s or not epochs.get(stage):
            continue
        seconds = epochs[stage] * timing.per_epoch_s[stage] + (n_val * timing.val_s if stage == "stage1" else 0.0)
        segs.append(Segment(seconds, keys.get(stage)))
    segs.append(Segment(timing.post_s))
    return segs


# ----------------------------------------------------------------------------------------------
# the scheduler simulation


@dataclass
class Simulation:
    makespan_s: float
    busy_s: float
    slots: int
    jobs: int
    spans: list[tuple[float, float]] = field(default_factory=list)  # (start, end) per job, in start order

    @property
    def utilisation(self) -> float:
        return self.busy_s / (self.slots * self.makespan_s) if self.slots and self.makespan_s > 0 else float("nan")


def simulate(trials: Sequence[Sequence[Sequence[Segment]]], slots: int, in_flight: int,
             built: dict[str, float] | None = None) -> Simulation:
    """Event simulation of ``trials`` (each a list of jobs, a job a list of ``Segment``) on ``slots``.

    Trials are admitted in order, at most ``in_flight`` at once; an admitted trial's jobs join one
    FIFO queue; a free slot takes the queue's head. A trial leaves when all its jobs ended, and the
    next trial is admitted at that moment. A job's segment with a stage-cache ``key`` that another
    job already built costs nothing; one being built makes the job wait (slot held) until it is.
    ``built`` maps keys already in the cache to 0.0. Returns the makespan and busy slot-seconds.
    """
    if slots < 1:
        raise ValueError("simulate needs at least one slot")
    built = dict(built or {})
    queue: deque[tuple[int, Sequence[Segment]]] = deque()
    running: list[tuple[float, int, int]] = []  # (end, seq, trial)
    left = [len(jobs) for jobs in trials]
    next_trial, active, free, now, seq = 0, 0, slots, 0.0, 0
    busy, spans = 0.0, []

    def admit() -> None:
        nonlocal next_trial, active
        while active < in_flight and next_trial < len(trials):
            jobs = trials[next_trial]
            if jobs:
                active += 1
                queue.extend((next_trial, job) for job in jobs)
            next_trial += 1

    def run(job: Sequence[Segment], start: float) -> tuple[float, float]:
        """(end, seconds not counted busy: start-up segments)."""
        cur, idle = start, 0.0
        for seg in job:
            if seg.key is not None and seg.key in built:
                cur = max(cur, built[seg.key])  # wait for the builder, then load (free)
                continue
            if seg.key is not None:
                built[seg.key] = cur + seg.seconds
            cur += seg.seconds
            idle += 0.0 if seg.busy else seg.seconds
        return cur, idle

    admit()
    while queue or running:
        while free and queue:
            trial, job = queue.popleft()
            end, idle = run(job, now)
            spans.append((now, end))
            busy += end - now - idle
            heapq.heappush(running, (end, seq, trial))
            seq += 1
            free -= 1
        if not running:
            break
        now, _, trial = heapq.heappop(running)
        free += 1
        left[trial] -= 1
        if left[trial] == 0:
            active -= 1
            admit()
    return Simulation(makespan_s=max((e for _, e in spans), default=0.0), busy_s=busy, slots=slots,
                      jobs=len(spans), spans=spans)


# ----------------------------------------------------------------------------------------------
# the plan of a sweep


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
    gpus_per_slot: int = 0
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
            stops_all = asha_stops(len(units), rungs, spec.asha_model, spec.seed + run) if rungs else [None] * len(units)
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
                      + (f" ({plan['n_points']} points x {plan['n_trials']} seeds)" if plan["kind"] != "optuna" else "")),
        ("epochs per stage", ", ".join(f"{s} {e}" for s, e in plan["epochs"].items() if e)),
        ("per-epoch seconds", ", ".join(f"{s} {v:.3g}" for s, v in plan["per_epoch_s"].items()) or "-"),
        ("timing source", plan["timing_source"]),
        ("training s / shard", f"{plan['training_s']['mean_full']:.1f} (full, mean over points and categories)"),
        ("total training", hms(plan["total_training_s"])),
        ("CPU-hours", f"{plan['cpu_hours']:.3g}"),
        ("GPU-hours", f"{plan['gpu_hours']:.3g}"),
        ("slots", f"{plan['slots']} ({'shards' if plan['shards'] else 'one slot per trial'}"
                  f"{', per category' if plan['per_category'] else ''}; {plan['trials_in_flight']} trial(s) in flight)"),
        ("ASHA", (f"max_t {a['max_t']}, grace {a['grace_period']}, rungs {a['rungs']}, "
                  f"expected stopped {a['expected_stopped']:.1f}/{a['trials']} ({a['model']}"
                  + (f", {a['runs']} runs" if a["model"] == "montecarlo" else "") + ")") if a["on"] else "off"),
        ("predicted wall", f"{hms(plan['predicted_wall_s'])} ({plan['predicted_wall_s']:.0f} s, "
                           f"incl. {plan['sweep_start_s']:.0f} s sweep start)"),
        ("utilisation", f"{plan['utilisation']:.0%}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


# ----------------------------------------------------------------------------------------------
# timings from records


def timing_key(config: dict[str, Any], free_keys: Iterable[str] = ()) -> str:
    """A hash of a config dict with the keys that never change a training's duration removed
    (category, seed, preset name) plus ``free_keys`` (an Optuna space's sampled keys)."""
    import copy
    import hashlib

    cfg = copy.deepcopy(config)
    for key in (*_TIMING_FREE_KEYS, *free_keys):
        parts = key.split(".")
        cur = cfg
        for part in parts[:-1]:
            cur = cur.get(part, {}) if isinstance(cur, dict) else {}
        if isinstance(cur, dict):
            cur.pop(parts[-1], None)
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


def timing_from_record(record: Any) -> Timing | None:
    """Per-epoch seconds of one ok record (``stage_s / epochs``; validations included), its
    ``pre`` (data) and ``post`` (``busy - data - stages``) seconds; None when a stage came from the
    stage cache (its time is not a training's) or the record is not ok."""
    if getattr(record, "status", "ok") != "ok" or not record.stage_times:
        return None
    info = record.info or {}
    train = record.config.get("train", {})
    per_epoch: dict[str, float] = {}
    for stage in STAGES:
        if stage not in record.stage_times:
            continue
        if info.get(f"{stage}_from_cache"):
            return None
        epochs = int(train.get(stage, {}).get("epochs", 0) or 0)
        if epochs:
            per_epoch[stage] = float(record.stage_times[stage]) / epochs
    if not per_epoch:
        return None
    stages_s = sum(float(record.stage_times[s]) for s in STAGES if s in record.stage_times)
    pre = float(record.stage_times.get("data", 0.0))
    busy = record.busy_s if getattr(record, "busy_s", None) is not None else float(record.stage_times.get("total", 0.0))
    return Timing(per_epoch, pre_s=pre, post_s=max(0.0, busy - pre - stages_s), val_s=0.0, source="records")


def _mean_timing(timings: list[Timing], source: str) -> Timing:
    stages = sorted({s for t in timings for s in t.per_epoch_s})
    avg = lambda xs: sum(xs) / len(xs)  # noqa: E731
    return Timing({s: avg([t.per_epoch_s[s] for t in timings if s in t.per_epoch_s]) for s in stages},
                  avg([t.pre_s for t in timings]), avg([t.post_s for t in timings]),
                  avg([t.val_s for t in timings]), source)


class RecordTimings:
    """Timings of earlier records under ``roots`` (``**/record.json``), indexed by ``timing_key``."""

    def __init__(self, roots: Iterable[str | Path], free_keys: Iterable[str] = ()):
        from suite.records import find_records, read_record

        self.free_keys = tuple(free_keys)
        self.by_key: dict[str, dict[str, list[Timing]]] = {}  # key -> category -> timings
        self.n_records = 0
        for root in roots:
            if not Path(root).exists():
                continue
            for path in find_records(root):
                try:
                    record = read_record(path)
                except ValueError:
                    continue
                timing = timing_from_record(record)
                if timing is None:
                    continue
                key = timing_key(record.config, self.free_keys)
                self.by_key.setdefault(key, {}).setdefault(record.category, []).append(timing)
                self.n_records += 1

    def lookup(self, config: dict[str, Any], category: str) -> Timing | None:
        """The mean timing of records of the same configuration and category; else of the same
        configuration on other categories (marked so in ``source``); else None."""
        found = self.by_key.get(timing_key(config, self.free_keys))
        if not found:
            return None
        if category in found:
            return _mean_timing(found[category], f"records ({len(found[category])})")
        others = [t for ts in found.values() for t in ts]
        return _mean_timing(others, f"records of other categories ({len(others)})")


# ----------------------------------------------------------------------------------------------
# calibration: a few real batches in a subprocess


def calibration_overrides(cfg: Any, fraction: float) -> dict[str, Any]:
    """What a calibration run changes: 3 stage-1 epochs (validation after the 2nd when the sweep
    validates, so ``val_s = (t2 - t1) - (t3 - t2)``), 2 epochs of every later stage, a smaller
    ``data.data_fraction``, no checkpoints."""
    updates: dict[str, Any] = {"train.checkpoint_every": 0, "train.max_time_s": 0.0,
                               "data.data_fraction": fraction,
                               "train.eval_every": 2 if cfg.train.eval_every else 0}
    for stage in STAGES:
        if getattr(cfg.train, stage).epochs:
            updates[f"train.{stage}.epochs"] = 3 if stage == "stage1" else 2
    return updates


def _calibrate_child(cfg_path: str, out_dir: str, max_batches: int) -> dict[str, Any]:
    """Runs inside the calibration subprocess: ``run_trial`` on a shortened config, per-epoch
    seconds from the per-epoch timestamps, scaled to the full training set."""
    from suite.config import load_yaml, with_overrides
    from suite.data import load_category
    from suite.pipeline import run_trial

    cfg = load_yaml(cfg_path)
    n_full = max(1, round(len(load_category(cfg.data, seed=cfg.runtime.seed).train)))
    bs1 = cfg.train.stage1.batch_size
    fraction = min(1.0, max_batches * bs1 / n_full) * cfg.data.data_fraction
    short = with_overrides(cfg, calibration_overrides(cfg, fraction))
    stamps: list[tuple[str, int, float]] = []
    record = run_trial(short, out_dir, on_epoch=lambda e: stamps.append((e["stage"], e["epoch"], time.perf_counter())),
                       log=lambda msg: None)
    n_cal = int(record.cost.get("n_train") or 1)
    n_full_train = max(1, round(n_cal * cfg.data.data_fraction / fraction)) if fraction < cfg.data.data_fraction \
        else n_cal
    per_epoch: dict[str, float] = {}
    val_s = 0.0
    for stage in STAGES:
        if stage not in record.stage_times:
            continue
        ts = [t for s, _, t in stamps if s == stage]
        bs = getattr(cfg.train, stage).batch_size
        scale = math.ceil(n_full_train / bs) / math.ceil(n_cal / bs)
        if len(ts) >= 2:
            last = ts[-1] - ts[-2]
            if stage == "stage1" and short.train.eval_every and len(ts) >= 3:
                val_s = max(0.0, (ts[1] - ts[0]) - last)
        else:
            last = record.stage_times[stage] / max(1, getattr(short.train, stage).epochs)
        per_epoch[stage] = last * scale
    stages_s = sum(record.stage_times.get(s, 0.0) for s in STAGES)
    pre = record.stage_times.get("data", 0.0)
    busy = record.busy_s or record.stage_times.get("total", 0.0)
    return {"per_epoch_s": per_epoch, "pre_s": pre, "post_s": max(0.0, busy - pre - stages_s), "val_s": val_s,
            "n_train": n_full_train, "n_calibration": n_cal, "wall_s": busy}


def calibrate(cfg: Any, *, max_batches: int = 6, timeout_s: float = 1800.0, python: str | None = None) -> Timing:
    """Time a few batches of every enabled stage of ``cfg`` through the real ``run_trial`` in a
    subprocess (its own torch, its own thread count), at the target size, batch size and device.

    The training set is cut (``data.data_fraction``) to about ``max_batches`` stage-1 batches; each
    stage's per-epoch time is its last epoch's time scaled by ``ceil(n_full / batch) / ceil(n_cal /
    batch)``. ``pre``/``post`` are the calibration run's data and evaluation times (test set unchanged).
    """
    from suite.config import save_yaml

    with tempfile.TemporaryDirectory(prefix="rcsuite-calib-") as tmp:
        cfg_path = Path(tmp) / "config.yaml"
        save_yaml(cfg, cfg_path)
        code = ("import json, sys\nfrom suite.planning import _calibrate_child\n"
                f"print('CALIB ' + json.dumps(_calibrate_child({str(cfg_path)!r}, {str(Path(tmp) / 'run')!r}, "
                f"{int(max_batches)})))\n")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                             os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run([python or sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=timeout_s, env=env)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("CALIB ")), None)
        if proc.returncode != 0 or line is None:
            raise RuntimeError(f"calibration run failed: {(proc.stderr or proc.stdout)[-800:]}")
        data = json.loads(line[len("CALIB "):])
    return Timing(data["per_epoch_s"], data["pre_s"], data["post_s"], data["val_s"], source="calibration")


def timing_dict(timing: Timing) -> dict[str, Any]:
    return asdict(timing)


# ----------------------------------------------------------------------------------------------
# from a sweep's arguments to the plan's points (mirrors the driver; pure)


def sweep_eval_config(cfg: Any, use_asha: bool) -> Any:
    """The eval/checkpoint cadence a sweep sets (``driver._asha_plan`` calls this): with ASHA and
    ``train.eval_every = 0``, ``eval_every = max(1, stage1.epochs // 4)``; checkpoints follow it."""
    from suite.config import with_overrides

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
    from suite.config import with_overrides

    updates = {**overrides, "data.category": category}
    if repeat:
        updates["runtime.seed"] = base_cfg.runtime.seed + repeat
    if base_cfg.runtime.threads == 0:
        updates["runtime.threads"] = max(1, int(cpus_per_trial))
    return with_overrides(base_cfg, updates)


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


def sweep_points(base_cfg: Any, space: Any, categories: Sequence[str], *, cpus_per_trial: float = 1.0,
                 timing_for: Callable[[Any, str, int], Timing], repeats: int = 1,
                 stage_cache: str | Path | None = None) -> tuple[list[PlanPoint], frozenset[str]]:
    """The plan's points: one per (grid/list point, category), or per category for an Optuna space
    (its base config with ``expected_overrides``). ``timing_for(cfg, category, point)`` gives their
    timing. With ``stage_cache``, grid/list points get stage-cache keys for each of ``repeats``
    seeds (``suite.stage_cache.stage_key``) so the simulation shares stages as the cache would; keys
    already in the cache are returned too (they cost nothing)."""
    from suite.methods.registry import method_spec
    from suite.stage_cache import stage_key

    overrides = [expected_overrides(space)] if space.kind == "optuna" else [dict(p) for p in space.points]
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


def slots_from_resources(cpus: float, gpus: float, *, cpus_per_trial: float = 1.0, num_workers: int = 1,
                         use_gpu: bool = False) -> int:
    """Shard slots a cluster's resources hold: a slot = ``num_workers`` workers of
    ``cpus_per_trial`` CPUs each (and one GPU each with ``use_gpu``), so
    ``slots = min(floor(cpus / (cpus_per_trial * num_workers)), floor(gpus / num_workers) if GPUs)``."""
    by_cpu = int(cpus // (cpus_per_trial * num_workers) + 1e-9)
    if use_gpu:
        return max(0, min(by_cpu, int(gpus // num_workers + 1e-9)))
    return max(0, by_cpu)


def timing_provider(record_roots: Iterable[str | Path] = (), *, free_keys: Iterable[str] = (),
                    calibrate_missing: bool = True, force_calibration: bool = False, max_batches: int = 6,
                    log: Callable[[str], None] = lambda msg: None) -> Callable[[Any, str, int], Timing]:
    """``timing_for(cfg, category, point)`` for ``sweep_points``: records of the same configuration
    first (``RecordTimings``), else one calibration run per point (on the first category asked;
    the point's other categories reuse it); ``force_calibration`` skips the records."""
    records = None if force_calibration else RecordTimings(record_roots, free_keys)
    calibrated: dict[int, Timing] = {}

    def timing_for(cfg: Any, category: str, point: int) -> Timing:
        if records is not None:
            found = records.lookup(cfg.to_dict(), category)
            if found is not None:
                return found
        if not calibrate_missing:
            raise LookupError(f"no records of this configuration for {category} and calibration is off")
        if point not in calibrated:
            t0 = time.perf_counter()
            calibrated[point] = calibrate(cfg, max_batches=max_batches)
            calibrated[point].source = f"calibration ({category})"
            log(f"[plan] calibrated point {point} on {category} in {time.perf_counter() - t0:.1f}s")
        return calibrated[point]

    return timing_for
