"""What runs inside a sweep trial: ``run_sweep_trial`` (the Tune function), given a ``TrialPlan``.

A trial trains its categories as concurrent Ray tasks (``suite.orchestration.shards``; default)
and reports the mean over them at matching epochs (``suite.orchestration.progress``). With
``--shards off``, or with ``num_workers > 1`` (each category a Ray Train run,
``train_with_ray_train``), it trains them one after another in its own process and reports the
mean over the categories finished so far plus the running one
(``suite.orchestration.pooled.pooled_metrics``); a DDP run's periodic validations come from rank 0.

A category already run by another trial of the sweep (same config hash: same configuration,
category and seed) is not trained again: the trial answers with that record's metrics and leaves
``answered_from.json`` naming the original trial (``_category_state``).

Fault tolerance: every report carries a Tune checkpoint of the trial's stage checkpoints; a trial
that dies is retried (``--max-failures``) after its checkpoints are copied back, so ``run_training``
resumes mid-stage; a category whose record is already ``ok`` is not trained again; a category
that diverged (``TrainingDiverged``) fails again at once on a retry instead of retraining.
``kill_marker`` is a testing hook that SIGKILLs the trial once after a checkpoint.

Watching (``plan.tracking``, ``suite.tracking``): each category opens a ``TrialTracker`` (its MLflow
run and TensorBoard writer) in this process, feeds it ``run_training``'s per-epoch entries and closes
it from the category's record; with ``num_workers > 1`` the Train workers never log, the record of
rank 0 is logged when the category ends.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from ray import tune

from suite.config import Config
from suite.errors import TrainingDiverged
from suite.orchestration.category_run import finished_record, node_facts, record_metrics, tracked_training
from suite.orchestration.pooled import answer_from_records, pooled_metrics
from suite.orchestration.shards import run_shards
from suite.orchestration.temp_dirs import owned_temp_dir, remove_stale_temp_dirs
from suite.orchestration.train_driver import train_with_ray_train
from suite.orchestration.trial_plan import TrialPlan
from suite.records import RECORD_NAME, TrialRecord, atomic_write_json
from suite.tracking import open_trial_tracker

ANSWERED_NAME = "answered_from.json"  # a category answered from another trial's record (item: no duplicate trainings)
PROGRESS_STATE = "progress.json"  # in a Tune checkpoint: the last matched point reported


def _checkpoint_files(trial_dir: Path, categories: list[str]) -> list[tuple[Path, str]]:
    files = []
    for cat in categories:
        folder = trial_dir / cat / "checkpoints"
        if folder.is_dir():
            files.extend((p, f"{cat}/{p.name}") for p in sorted(folder.glob("*.pt")) if not p.name.startswith("."))
    return files


def _report_with_checkpoint(
    payload: dict[str, Any], trial_dir: Path, categories: list[str], reported: tuple[str, int] | None = None
) -> bool:
    """``tune.report`` with a checkpoint of the trial's stage checkpoints (none if there are none yet).

    The files are hard-linked (copied across filesystems) into a temp folder that Tune persists to
    the experiment storage during the call; returns whether a checkpoint was attached. ``reported``
    (a sharded trial's matched point) goes into the checkpoint too, so a retry does not send it again.
    """
    files = _checkpoint_files(trial_dir, categories)
    if not files:
        tune.report(payload)
        return False
    staging = Path(owned_temp_dir("rcs-ckpt-"))
    try:
        for src, rel in files:
            dst = staging / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
        if reported is not None:
            atomic_write_json(staging / PROGRESS_STATE, {"reported": list(reported)})
        tune.report(payload, checkpoint=tune.Checkpoint.from_directory(str(staging)))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def _restore_checkpoint(checkpoint: Any, trial_dir: Path) -> tuple[list[str], tuple[str, int] | None]:
    """Copy a Tune checkpoint's stage files back into the trial's category folders; returns them
    and the last matched point the trial had reported (None for an unsharded trial).

    Files already present are kept: on a shared filesystem they are at least as new as the
    checkpoint (a crash happens after the last report); on a fresh node nothing is present.
    """
    restored = []
    reported = None
    with checkpoint.as_directory() as folder:
        state = Path(folder) / PROGRESS_STATE
        if state.exists():
            stage, epoch = json.loads(state.read_text())["reported"]
            reported = (str(stage), int(epoch))
        for src in Path(folder).glob("*/*.pt"):
            dst = trial_dir / src.parent.name / "checkpoints" / src.name
            if dst.exists():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.restore.tmp")
            shutil.copyfile(src, tmp)
            tmp.replace(dst)
            restored.append(f"{src.parent.name}/{src.name}")
    return restored, reported


def _fault_kill(plan: TrialPlan) -> None:
    if not plan.kill_marker:
        return
    marker = Path(plan.kill_marker)
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def _category_state(plan: TrialPlan, trial_id: str, cat: str, cfg: Config, out: Path) -> dict[str, float] | None:
    """The report metrics of a category that needs no training here, or None to train it.

    Already finished in this trial (a retry or ``--resume``): its record. Already run by another
    trial of the sweep with the same config hash (TPE re-proposing a point): that record's metrics,
    with ``answered_from.json`` saying which, and nothing trained or evaluated again. A category
    that diverged fails again at once (divergence is deterministic given the checkpoint).
    """
    previous = finished_record(out, cfg)
    if previous is not None and previous.status == "ok":
        print(f"[{trial_id}/{cat}] already finished, not retrained", flush=True)
        tracker = open_trial_tracker(plan.tracking, trial_id, cat, cfg, out_dir=out, finished=True)
        if tracker is not None:
            tracker.close(out)  # a no-op unless the process died before it closed the run
        return record_metrics(previous)
    if previous is not None and previous.status == "failed" and (previous.error or "").startswith(
        "TrainingDiverged"
    ):
        raise TrainingDiverged(f"{cat}: {previous.error} (recorded in {out / RECORD_NAME})")
    if previous is None:
        original = answer_from_records(Path(plan.records_dir), cfg.hash(), exclude_trial=trial_id)
        if original is not None:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(out / ANSWERED_NAME, {"trial_id": original.trial_id, "config_hash": original.config_hash,
                                                    "category": cat, "seed": original.seed})
            print(f"[{trial_id}/{cat}] same configuration and seed as trial {original.trial_id}: answered from its "
                  "record, not trained again", flush=True)
            return record_metrics(original)
    return None


def run_sweep_trial(config: dict[str, Any], plan: TrialPlan) -> None:
    """The Tune function of every sweep trial: run the trial's categories, report their mean."""
    trial_id = tune.get_context().get_trial_id()
    remove_stale_temp_dirs()  # this node's folders of a killed trial or driver (a retry may land here)
    overrides, repeat = plan.overrides_for(config)
    categories = plan.categories_for(config)
    ablation = plan.space.ablation_ids(overrides)  # {} unless an ablation space: its table and row ids
    trial_dir = Path(plan.records_dir) / trial_id
    trial_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        trial_dir / "params.json",
        {"trial_id": trial_id, "sweep": plan.sweep_name, "overrides": overrides, "repeat": repeat,
         "categories": categories, "ablation": ablation},
    )
    checkpoint = tune.get_checkpoint()
    reported = None
    if checkpoint is not None:
        restored, reported = _restore_checkpoint(checkpoint, trial_dir)
        print(f"[{trial_id}] retry: restored {len(restored)} checkpoint file(s) from Tune", flush=True)
    finals: dict[str, dict[str, float]] = {}
    to_train: dict[str, Config] = {}
    for cat in categories:
        cfg = plan.config_for(overrides, cat, repeat)
        done = _category_state(plan, trial_id, cat, cfg, trial_dir / cat)
        if done is not None:
            finals[cat] = done
        else:
            to_train[cat] = cfg
    if plan.shards != "off" and plan.num_workers == 1:
        def report_point(point: tuple[str, int], metrics: dict[str, Any]) -> None:
            payload = plan.payload(metrics)
            payload.update({"final": False, "stage": point[0], "epoch": point[1], "n_categories": len(categories)})
            if _report_with_checkpoint(payload, trial_dir, categories, reported=point):
                _fault_kill(plan)

        run_shards(plan, trial_id, trial_dir, categories, to_train, finals, ablation, reported, report_point)
    else:
        for cat, cfg in to_train.items():
            finals[cat] = _train_in_process(plan, trial_id, trial_dir, categories, cat, cfg, finals, ablation)
    final = plan.payload(pooled_metrics(finals))
    final.update({"final": True, "n_categories": len(finals)})
    _report_with_checkpoint(final, trial_dir, categories)


def _train_in_process(
    plan: TrialPlan, trial_id: str, trial_dir: Path, categories: list[str], cat: str, cfg: Config,
    finals: dict[str, dict[str, float]], ablation: dict[str, str],
) -> dict[str, float]:
    """Train one category in this process (``--shards off``) or as a Ray Train run (DDP); every
    periodic validation is reported as the mean of the finished categories and this one."""
    from suite.pipeline import run_training  # torch: only where a category trains, not in the sweep driver

    out = trial_dir / cat
    node = node_facts()

    def log(msg: str, _prefix: str = f"[{trial_id}/{cat}] ") -> None:
        print(_prefix + msg, flush=True)

    def report(metrics: dict[str, Any], _ckpt_dir: str | None) -> None:
        if metrics.get("final"):
            return  # the trial's final report is built from the records
        current = {k: v for k, v in metrics.items() if k.startswith("val_")}
        payload = plan.payload(pooled_metrics(finals, current))
        payload.update({"final": False, "category": cat, "stage": metrics.get("stage"),
                        "epoch": metrics.get("epoch")})
        if _report_with_checkpoint(payload, trial_dir, categories):
            _fault_kill(plan)

    def train(tracker: Any) -> TrialRecord:
        if plan.num_workers > 1:
            # Under DDP the Train workers never log; rank 0's record is logged by the tracker's close().
            return train_with_ray_train(
                cfg, out, plan.num_workers, plan.gpus > 0,
                storage_path=plan.train_storage, run_name=f"{trial_id}-{cat}",
                stage_cache=plan.stage_cache, trial_id=trial_id, sweep=plan.sweep_name, node=node,
                cpus_per_worker=plan.cpus_per_trial, log=log, ablation=ablation, report=report,
            )
        return run_training(cfg, out, report, stage_cache=plan.stage_cache, trial_id=trial_id,
                         sweep=plan.sweep_name, node=node, log=log, ablation=ablation,
                         on_epoch=tracker.epoch if tracker is not None else None)

    # Tune ends a trial its scheduler stopped by raising SystemExit inside tune.report.
    return tracked_training(plan, trial_id, cat, cfg, out, log, train, "stopped early by the scheduler (ASHA)")
