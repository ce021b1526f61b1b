"""Plan a sweep before it trains: trainings, per-epoch times, CPU/GPU-hours, predicted wall time.

No Ray, no torch at import (``run_suite.py plan`` in ``suite.cli`` and ``benchmarks/`` call it; the one
Ray lookup, a cluster's slots for ``--address``, is ``suite.orchestration.plan_cluster``). Modules:
``simulate`` (timings, ASHA, the slot simulation), ``timings`` (from records or a calibration run),
``plan`` (points, ``plan_sweep``, ``format_plan``). The rules the live sweep shares with the plan
(trials in flight, slots, eval cadence, a training's config) are ``suite.sweep_rules``.

What a sweep costs, in four steps:

1. **Trainings** ``T = trials x categories x seeds``: Optuna spaces run ``--trials`` trials over
   every category; grid / list spaces run ``points x seeds`` rows over every category.
2. **Per-epoch time per stage** (``Timing``) from a timings file (``--timings FILE``:
   ``timings_file``), earlier records of the same configuration (``timing_from_records``) or a short
   calibration (``calibration``: a few batches of every stage through the real ``run_training``).
   A training then takes ``t = pre + sum_s epochs_s * per_epoch_s + n_val * val_s + post``.
3. **ASHA's expected stops** (Optuna spaces, single objective): which trials stop at which rung.
4. **Scheduler simulation**: shards queued on the slots, trials in flight, stages shared through
   the stage cache; gives ``wall`` and ``utilisation``. Steps 3 and 4: ``simulate``.

CPU-hours = ``sum of training seconds x cpus per slot / 3600``; GPU-hours = ``sum x gpus per slot /
3600`` (``--gpus-per-trial F`` per worker, ``--use-gpu`` = 1). With ``F < 1`` a GPU holds ``1 / F``
slots, and ``command.gpu_fit`` refuses a fraction whose measured peak memory does not fit the GPU.
Timings measured while trainings shared a GPU already carry that sharing's slowdown; the simulation
does not model contention itself.
"""

from suite.planning.plan import (
    PLAN_JSON_KEYS,
    PlanPoint,
    PlanSpec,
    asha_schedule,
    expected_overrides,
    format_plan,
    plan_sweep,
    point_overrides,
    sweep_points,
)
from suite.planning.simulate import (
    STAGES,
    SWEEP_START_S,
    TRIAL_START_S,
    Segment,
    Simulation,
    Timing,
    TrainingPlan,
    asha_rungs,
    asha_stops,
    simulate,
    stage_epochs,
    training_segments,
)
from suite.planning.timings import RecordTimings, peak_gpu_mb, timing_dict, timing_from_record, timing_key
from suite.planning.calibration import calibrate, calibrate_many, calibration_overrides
from suite.planning.timings_file import (
    TimingProvider,
    TimingsFile,
    timing_entry,
    timing_provider,
    timings_document,
    write_timings,
)
from suite.planning.command import GpuMemoryError, build_plan, gpu_fit, local_slots
from suite.sweep_rules import (
    gpus_per_training,
    slots_from_resources,
    sweep_eval_config,
    training_config,
    trials_in_flight,
)

__all__ = [
    "GpuMemoryError", "TimingProvider", "TimingsFile", "build_plan", "calibrate_many", "gpu_fit", "gpus_per_training",
    "local_slots",
    "peak_gpu_mb", "point_overrides", "timing_entry", "timings_document", "write_timings",
    "PLAN_JSON_KEYS", "STAGES", "SWEEP_START_S", "TRIAL_START_S", "PlanPoint", "PlanSpec", "RecordTimings", "Segment",
    "Simulation", "Timing", "TrainingPlan", "asha_rungs", "asha_schedule", "asha_stops", "calibrate",
    "calibration_overrides", "expected_overrides", "format_plan", "plan_sweep", "simulate", "slots_from_resources",
    "stage_epochs", "sweep_eval_config", "sweep_points", "timing_dict", "timing_from_record", "timing_key",
    "timing_provider", "training_config", "training_segments", "trials_in_flight",
]
