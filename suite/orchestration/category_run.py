"""One category's training inside a sweep trial, shared by the in-process path (``trial``) and the
shard tasks (``shards``): the node it ran on, its tracker (MLflow / TensorBoard) kept open around
the training, and the record's ending (selection split; "stopped" with a reason on ``SystemExit``).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import ray

from suite.config import Config
from suite.orchestration.pooled import COST_KEYS
from suite.orchestration.trial_plan import TrialPlan
from suite.records import RECORD_NAME, TrialRecord, read_record, write_record
from suite.tracking import open_trial_tracker


def record_metrics(record: TrialRecord) -> dict[str, float]:
    """The numbers a trial reports for one finished category: val_* metrics and the cost."""
    out = {f"val_{k}": float(v) for k, v in record.metrics.get("val", {}).items()}
    for key in COST_KEYS:
        if key in record.cost:
            out[key] = float(record.cost[key])
    return out


def finished_record(out: Path, cfg: Config) -> TrialRecord | None:
    path = out / RECORD_NAME
    if not path.exists():
        return None
    try:
        record = read_record(path)
    except ValueError:
        return None
    return record if record.config_hash == cfg.hash() else None


def mark_selection(out: Path, select_on: str) -> None:
    path = out / RECORD_NAME
    if not path.exists():
        return
    record = read_record(path)
    if record.selection != select_on:
        record.selection = select_on
        write_record(record, path)


def mark_stopped(out: Path, reason: str = "stopped early by the scheduler (ASHA)") -> None:
    path = out / RECORD_NAME
    if path.exists():
        record = read_record(path)
        record.status = "stopped"
        record.error = reason
        write_record(record, path)


def node_facts() -> dict[str, Any]:
    """The record's ``node``: host, Ray node, and the GPUs this process was given: Ray's GPU ids and
    ``CUDA_VISIBLE_DEVICES`` as Ray set it (trainings sharing a GPU through a fraction see the same one)."""
    facts: dict[str, Any] = {"hostname": socket.gethostname()}
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        facts["cuda_visible_devices"] = visible
    try:
        context = ray.get_runtime_context()
        facts["ray_node_id"] = context.get_node_id()
        facts["ray_node_ip"] = ray.util.get_node_ip_address()
        gpu_ids = context.get_accelerator_ids().get("GPU", [])
        if gpu_ids:
            facts["ray_gpu_ids"] = ",".join(str(g) for g in gpu_ids)
    except Exception:  # noqa: BLE001 - outside Ray (unit use) there is no node id
        pass
    return facts


def tracked_training(
    plan: TrialPlan, trial_id: str, cat: str, cfg: Config, out: Path, log: Any, train: Any, stop_reason: str,
) -> dict[str, float]:
    """Run ``train(tracker)`` for one category with its tracker (MLflow / TensorBoard) open; returns
    the record's report metrics.

    Whatever the ending, the record gets the sweep's selection split and the tracker is closed from
    it: ``SystemExit`` (the trial was stopped, or this shard cancelled) marks the record "stopped"
    with ``stop_reason``, any other exception leaves it "failed". A retry or ``--resume`` reopens
    the same MLflow run.
    """
    tracker = open_trial_tracker(plan.tracking, trial_id, cat, cfg, out_dir=out, log=log)
    try:
        record = train(tracker)
    except SystemExit:
        mark_stopped(out, stop_reason)
        mark_selection(out, plan.select_on)
        if tracker is not None:
            tracker.close(out, "stopped")
        raise
    except BaseException:
        mark_selection(out, plan.select_on)
        if tracker is not None:
            tracker.close(out, "failed")
        raise
    mark_selection(out, plan.select_on)
    if tracker is not None:
        tracker.close(out)
    return record_metrics(record)
