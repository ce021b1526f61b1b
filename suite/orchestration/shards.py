"""Category shards: a pooled trial trains its categories at the same time, one Ray task each.

The trial process is a coordinator: it starts one Ray task per category (a *shard*,
``cpus_per_trial`` CPUs and ``--gpus-per-trial`` GPUs, a fraction sharing one GPU), follows their
progress files and reports to Tune the mean over categories at matching epochs
(``suite.orchestration.progress``), then the final mean. (One after another, 15 categories took 15
trainings' time and ASHA's first decisions saw only the first category.)

``--shards elastic`` (default): the trial holds no CPU or GPU (``env.COORDINATOR`` is a token amount of
Ray's built-in ``memory`` resource, so a cluster from a plain ``ray start`` runs it), and each shard
asks for its CPUs outside the trial's placement group (``PlacementGroupSchedulingStrategy(
placement_group=None)``: a child task left in the group would wait for a bundle that does not exist,
ray #25239 / #38706). So a 15-category sweep runs on fewer than 15 slots, and a slot a short category
frees goes to the next queued shard of any trial. The price: a trial's shards may start at different
times, so its matched reports wait for its slowest shard; the driver keeps about
``slots / categories + 1`` trials in flight so the queue stays full.

``--shards reserve``: the trial reserves one empty head bundle plus one per category
(``PlacementGroupFactory``) and starts only when all its shards can (``categories x cpus_per_trial``
CPUs free at once, checked before the sweep starts). ``--shards off``: one category after another in
the trial's process (always so for DDP, ``--num-workers > 1``).

A shard writes its record, checkpoints and progress file in ``records/<trial>/<category>/`` (storage
every node shares). One shard at a time owns a folder: the coordinator writes a new token there
before it starts a shard, and a leftover shard of a dead trial process exits once the token is not
its own. When ASHA stops the trial (``SystemExit`` in ``tune.report``) or a shard fails, the other
shards are cancelled (forced: their stage checkpoints are what a retry resumes from) and
``RecordGaps`` writes their records from the driver. Ray never retries a shard (``max_retries=0``):
Tune retries the trial from its checkpoint.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from suite.config import Config
from suite.orchestration.category_run import node_facts, tracked_training
from suite.orchestration.progress import POLL_S, MatchedProgress, Point, append_progress, read_progress
from suite.orchestration.trial_plan import TrialPlan

ATTEMPT_NAME = ".shard_attempt"  # the token of the shard that owns a category folder
FENCE_POLL_S = 0.5


def shard_bundle(cpus: float, use_gpu: bool | float) -> dict[str, float]:
    """The resources of one category shard: ``cpus`` CPUs and ``use_gpu`` GPUs (True = 1; a fraction
    such as 0.25 shares one GPU between four shards)."""
    bundle = {"CPU": float(cpus)}
    if use_gpu:
        bundle["GPU"] = float(use_gpu)
    return bundle


def _claim(out: Path) -> str:
    """Write a new attempt token for the category folder; the shard launched with it owns the folder."""
    token = uuid.uuid4().hex
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{ATTEMPT_NAME}.{token}.tmp"
    tmp.write_text(token)
    tmp.replace(out / ATTEMPT_NAME)
    return token


def _exit_when_superseded(out: Path, token: str) -> None:
    """Watch the folder's attempt token from a daemon thread; exit this process once it changes.

    A shard whose trial process died (SIGKILL, node loss) is ended by Ray only after it notices
    the owner is gone; meanwhile a retried trial may already run a new shard in the same folder.
    The retry writes a new token first, so the orphan stops within ``FENCE_POLL_S`` instead of
    training on beside it.
    """

    def watch() -> None:
        while True:
            time.sleep(FENCE_POLL_S)
            try:
                current = (out / ATTEMPT_NAME).read_text().strip()
            except OSError:
                continue
            if current != token:
                print(f"[shard] {out}: a newer attempt took over this category; exiting", flush=True)
                os._exit(1)

    threading.Thread(target=watch, name="shard-fence", daemon=True).start()


def _train_category(plan: TrialPlan, cfg: Config, out_dir: str, trial_id: str, ablation: dict[str, str],
                    token: str | None = None) -> dict:
    """Body of a shard task: ``run_training`` for one category; returns the record's report metrics."""
    from suite.pipeline import run_training  # torch: only in the shard's process, not in the sweep driver

    out = Path(out_dir)
    cat = cfg.data.category
    if token is not None:
        _exit_when_superseded(out, token)

    def log(msg: str, _prefix: str = f"[{trial_id}/{cat}] ") -> None:
        print(_prefix + msg, flush=True)

    def report(metrics: dict[str, Any], _ckpt_dir: str | None) -> None:
        if not metrics.get("final"):
            append_progress(out, metrics)

    def train(tracker: Any):
        return run_training(cfg, out, report, stage_cache=plan.stage_cache, trial_id=trial_id, sweep=plan.sweep_name,
                         node=node_facts(), log=log, ablation=ablation,
                         on_epoch=tracker.epoch if tracker is not None else None)

    # ray.cancel(force=True) ends a shard with SystemExit: its trial was stopped (ASHA) or another of
    # its categories failed. Interrupted, not failed: a retry trains it again.
    return tracked_training(plan, trial_id, cat, cfg, out, log, train,
                            "cancelled by its trial (the scheduler stopped the trial, or another of its "
                            "categories failed)")


_train_category_task = ray.remote(max_retries=0)(_train_category)


def _strategy(plan: TrialPlan) -> PlacementGroupSchedulingStrategy:
    if plan.shards == "reserve":
        # Inside the trial's own placement group: any bundle with room (the head bundle is empty).
        return PlacementGroupSchedulingStrategy(placement_group=ray.util.get_current_placement_group())
    return PlacementGroupSchedulingStrategy(placement_group=None)


def run_shards(
    plan: TrialPlan,
    trial_id: str,
    trial_dir: Path,
    categories: list[str],
    to_train: dict[str, Config],
    finals: dict[str, dict[str, float]],
    ablation: dict[str, str],
    reported: Point | None,
    report_point: Any,
) -> dict[str, dict[str, float]]:
    """Train ``to_train`` ({category: config}) as concurrent shards; ``finals`` holds the categories
    already done. ``report_point(point, metrics)`` sends one matched report to Tune (it may raise
    ``SystemExit`` when the scheduler stops the trial). Returns ``finals`` completed."""
    progress = MatchedProgress(categories, reported=reported)
    for cat, metrics in finals.items():
        progress.finish(cat, metrics)
    options = {"num_cpus": plan.cpus_per_trial, "num_gpus": plan.gpus,
               "scheduling_strategy": _strategy(plan)}
    pending = {
        _train_category_task.options(**options).remote(plan, cfg, str(trial_dir / cat), trial_id, ablation,
                                                        _claim(trial_dir / cat)): cat
        for cat, cfg in to_train.items()
    }
    if pending:
        print(f"[{trial_id}] {len(pending)} category shard(s) started ({plan.shards}): "
              f"{', '.join(pending.values())}", flush=True)
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            for ref in ready:
                cat = pending.pop(ref)
                finals[cat] = ray.get(ref)  # a shard's error (e.g. TrainingDiverged) ends the trial here
                progress.update(cat, read_progress(trial_dir / cat))
                progress.finish(cat, finals[cat])
            for cat in categories:
                if cat not in finals:
                    progress.update(cat, read_progress(trial_dir / cat))
            for point, metrics in progress.ready_points():
                report_point(point, metrics)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return finals
