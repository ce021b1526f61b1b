"""The planner's model of a sweep: per-stage timings, a training's segments, ASHA's expected stops
and an event simulation of the cluster's slots (steps 2-4 of ``suite.planning``). Pure: no I/O.

A training takes ``pre + sum_s epochs_s * per_epoch_s + n_val * val_s + post``: ``pre`` data loading,
``post`` test evaluation and cost, ``n_val = stage1.epochs // eval_every`` periodic validations.
Calibrated per-epoch times are scaled to a full epoch by ``ceil(n_train / batch) / ceil(n_cal / batch)``.

ASHA: reports ``k = 1 .. R`` come after stage-1 epoch ``k * eval_every`` (plus a final report
``R + 1``), ``max_t = R + 1``, ``grace = max(1, max_t // 3)``, rungs ``grace * 2^j < max_t`` (Ray's
``ASHAScheduler`` with reduction factor 2). At each rung a trial continues with probability 1/2;
``asha_model``: ``"expected"`` (default, deterministic: of the trials reaching a rung in submission
order the 1st, 3rd, 5th ... continue) or ``"montecarlo"`` (Ray's own rule, stop below the median of
the scores so far at the rung, on uniform random scores, seeded, averaged over runs). A stopped
trial's trainings end at that rung's epoch: ``pre + m * every * (epoch_1 + val_s / every)``.

Slots: a *shard* is one training and holds one slot (``shards=True``): a trial fans its categories
out as shards queued FIFO on free slots, at most ``trials_in_flight`` trials admitted at once;
``shards=False`` models a trial as one slot running its categories one after another. A shard
reaching a stage another shard is building waits (holding its slot) and then loads it; one already
built costs nothing. ``wall = sweep_start_s + makespan``, ``utilisation = busy slot-seconds /
(slots x makespan)`` (busy = a shard's whole span, waits included, as the driver's records measure it).
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Sequence

from suite.sweep_rules import ASHA_REDUCTION

STAGES = ("stage1", "stage2", "stage3")
# Fixed costs outside the trainings, measured on this 2-core machine by benchmarks/plan_accuracy.py
# (a sharded 8-training sweep, load average 7-11; overridable): starting Python + local Ray + Tune and
# writing records.csv (command wall - Tune wall: 21 s), and the gap a slot sits idle between two
# shards (Ray task start, torch import, record collection: 55 idle slot-seconds / 8 shards = 6.9 s).
SWEEP_START_S = 20.0
TRIAL_START_S = 6.0


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


@dataclass
class Timing:
    """How long one training of a configuration takes on one slot (seconds)."""

    per_epoch_s: dict[str, float]  # stage -> seconds per epoch (only the stages that train)
    pre_s: float = 0.0  # before training: data loading
    post_s: float = 0.0  # after training: test evaluation, cost measurement, record
    val_s: float = 0.0  # one periodic validation (0 when per_epoch_s already includes them)
    source: str = "assumed"  # records (N) | calibration | assumed | ...
    peak_gpu_mb: float | None = None  # most GPU memory one training takes (MiB); None: not measured

    def scaled(self, factor: float, source: str | None = None) -> "Timing":
        """Every duration times ``factor`` (e.g. another device's speed); memory unchanged."""
        return Timing({k: v * factor for k, v in self.per_epoch_s.items()}, self.pre_s * factor,
                      self.post_s * factor, self.val_s * factor, source or self.source, self.peak_gpu_mb)


@dataclass(frozen=True)
class Segment:
    """A piece of a shard's timeline; ``key`` = the stage-cache key it builds (None: not shared)."""

    seconds: float
    key: str | None = None
    busy: bool = True  # False: the slot is held but no training runs yet (a shard's start-up), so


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
