"""What runs inside a sweep trial: ``TrialPlan`` and ``run_sweep_trial`` (the Tune function).

A trial runs its categories one after another with ``suite.pipeline.run_trial`` (or
``train_with_ray_train`` when ``num_workers > 1``) and reports the mean over the categories
finished so far plus the running one (``suite.orchestration.results.pooled_metrics``).

Fault tolerance: every report carries a Tune checkpoint of the trial's stage checkpoints; a trial
that dies is retried (``--max-failures``) after its checkpoints are copied back, so ``run_trial``
resumes mid-stage; a category whose record is already ``ok`` is not trained again; a category
that diverged (``TrainingDiverged``) fails again at once on a retry instead of retraining.
``kill_marker`` is a testing hook that SIGKILLs the trial once after a checkpoint.

Watching (``plan.tracking``, ``suite.tracking``): each category opens a ``TrialTracker`` (its MLflow
run and TensorBoard writer) in this process, feeds it ``run_trial``'s per-epoch entries and closes
it from the category's record; with ``num_workers > 1`` the Train workers never log, the record of
rank 0 is logged when the category ends.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune

from suite.config import Config, with_overrides
from suite.orchestration.results import COST_KEYS, as_float, pooled_metrics
from suite.orchestration.spaces import SearchSpace, decode_params
from suite.records import RECORD_NAME, TrialRecord, atomic_write_json, read_record, write_record
from suite.tracking import TrackingSpec, open_trial_tracker


@dataclass
class TrialPlan:
    base_cfg: Config  # the sweep's config with the space's BASE applied
    space: SearchSpace
    categories: list[str]
    sweep_name: str
    records_dir: str
    stage_cache: str | None
    train_storage: str
    objective: str
    p_weight: float
    cost_metric: str
    select_on: str
    num_workers: int
    use_gpu: bool
    cpus_per_trial: float
    kill_marker: str | None = None
    tracking: TrackingSpec | None = None  # MLflow / TensorBoard (suite.tracking); None = off

    def overrides_for(self, config: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """The config overrides and the seed offset of a trial from its Tune config."""
        if self.space.kind == "optuna":
            return decode_params(self.space, dict(config)), 0
        return dict(config["point"]), int(config.get("repeat", 0))

    def config_for(self, overrides: dict[str, Any], category: str, repeat: int = 0) -> Config:
        updates = {**overrides, "data.category": category}
        if repeat:
            updates["runtime.seed"] = self.base_cfg.runtime.seed + repeat
        if self.base_cfg.runtime.threads == 0:
            # One trial = cpus_per_trial CPUs; torch's default would use every core of the node.
            updates["runtime.threads"] = max(1, int(self.cpus_per_trial))
        return with_overrides(self.base_cfg, updates)

    def objective_value(self, metrics: dict[str, Any]) -> float:
        i = as_float(metrics.get("val_i_auroc"))
        if self.objective == "val_mix":
            return (1.0 - self.p_weight) * i + self.p_weight * as_float(metrics.get("val_p_auroc"))
        return i

    def payload(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Add the objective (and, for multi, the cost placeholder) Tune checks every result for."""
        out = dict(metrics)
        out.setdefault("val_i_auroc", math.nan)
        if self.objective == "val_mix":
            out["val_mix"] = self.objective_value(out)
        if self.objective == "multi":
            out.setdefault(self.cost_metric, math.nan)
        return out


def record_metrics(record: TrialRecord) -> dict[str, float]:
    """The numbers a trial reports for one finished category: val_* metrics and the cost."""
    out = {f"val_{k}": float(v) for k, v in record.metrics.get("val", {}).items()}
    for key in COST_KEYS:
        if key in record.cost:
            out[key] = float(record.cost[key])
    return out


def _finished_record(out: Path, cfg: Config) -> TrialRecord | None:
    path = out / RECORD_NAME
    if not path.exists():
        return None
    try:
        record = read_record(path)
    except ValueError:
        return None
    return record if record.config_hash == cfg.hash() else None


def _mark_selection(out: Path, select_on: str) -> None:
    path = out / RECORD_NAME
    if not path.exists():
        return
    record = read_record(path)
    if record.selection != select_on:
        record.selection = select_on
        write_record(record, path)


def _mark_stopped(out: Path) -> None:
    path = out / RECORD_NAME
    if path.exists():
        record = read_record(path)
        record.status = "stopped"
        record.error = "stopped early by the scheduler (ASHA)"
        write_record(record, path)


def _checkpoint_files(trial_dir: Path, categories: list[str]) -> list[tuple[Path, str]]:
    files = []
    for cat in categories:
        folder = trial_dir / cat / "checkpoints"
        if folder.is_dir():
            files.extend((p, f"{cat}/{p.name}") for p in sorted(folder.glob("*.pt")) if not p.name.startswith("."))
    return files


def _report_with_checkpoint(payload: dict[str, Any], trial_dir: Path, categories: list[str]) -> bool:
    """``tune.report`` with a checkpoint of the trial's stage checkpoints (none if there are none yet).

    The files are hard-linked (copied across filesystems) into a temp folder that Tune persists to
    the experiment storage during the call; returns whether a checkpoint was attached.
    """
    files = _checkpoint_files(trial_dir, categories)
    if not files:
        tune.report(payload)
        return False
    staging = Path(tempfile.mkdtemp(prefix="rcs-ckpt-"))
    try:
        for src, rel in files:
            dst = staging / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
        tune.report(payload, checkpoint=tune.Checkpoint.from_directory(str(staging)))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def _restore_checkpoint(checkpoint: Any, trial_dir: Path) -> list[str]:
    """Copy a Tune checkpoint's stage files back into the trial's category folders.

    Files already present are kept: on a shared filesystem they are at least as new as the
    checkpoint (a crash happens after the last report); on a fresh node nothing is present.
    """
    restored = []
    with checkpoint.as_directory() as folder:
        for src in Path(folder).glob("*/*.pt"):
            dst = trial_dir / src.parent.name / "checkpoints" / src.name
            if dst.exists():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.restore.tmp")
            shutil.copyfile(src, tmp)
            tmp.replace(dst)
            restored.append(f"{src.parent.name}/{src.name}")
    return restored


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


def _node_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {"hostname": socket.gethostname()}
    try:
        facts["ray_node_id"] = ray.get_runtime_context().get_node_id()
        facts["ray_node_ip"] = ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - outside Ray (unit use) there is no node id
        pass
    return facts


def run_sweep_trial(config: dict[str, Any], plan: TrialPlan) -> None:
    """The Tune function of every sweep trial: run the trial's categories, report their mean."""
    from suite.pipeline import run_trial
    from suite.training import TrainingDiverged

    trial_id = tune.get_context().get_trial_id()
    overrides, repeat = plan.overrides_for(config)
    ablation = plan.space.ablation_ids(overrides)  # {} unless an ablation space: its table and row ids
    trial_dir = Path(plan.records_dir) / trial_id
    trial_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        trial_dir / "params.json",
        {"trial_id": trial_id, "sweep": plan.sweep_name, "overrides": overrides, "repeat": repeat,
         "categories": plan.categories, "ablation": ablation},
    )
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        restored = _restore_checkpoint(checkpoint, trial_dir)
        print(f"[{trial_id}] retry: restored {len(restored)} checkpoint file(s) from Tune", flush=True)
    node = _node_facts()
    finals: dict[str, dict[str, float]] = {}
    for cat in plan.categories:
        cfg = plan.config_for(overrides, cat, repeat)
        out = trial_dir / cat
        previous = _finished_record(out, cfg)
        if previous is not None and previous.status == "ok":
            finals[cat] = record_metrics(previous)
            print(f"[{trial_id}/{cat}] already finished, not retrained", flush=True)
            tracker = open_trial_tracker(plan.tracking, trial_id, cat, cfg, out_dir=out, finished=True)
            if tracker is not None:
                tracker.close(out)  # a no-op unless the process died before it closed the run
            continue
        if previous is not None and previous.status == "failed" and (previous.error or "").startswith(
            "TrainingDiverged"
        ):
            # Divergence is deterministic given the checkpoint; retraining would only diverge again.
            raise TrainingDiverged(f"{cat}: {previous.error} (recorded in {out / RECORD_NAME})")

        def log(msg: str, _prefix: str = f"[{trial_id}/{cat}] ") -> None:
            print(_prefix + msg, flush=True)

        def report(metrics: dict[str, Any], _ckpt_dir: str | None, _cat: str = cat) -> None:
            if metrics.get("final"):
                return  # the trial's final report is built below from the records
            current = {k: v for k, v in metrics.items() if k.startswith("val_")}
            payload = plan.payload(pooled_metrics(finals, current))
            payload.update({"final": False, "category": _cat, "stage": metrics.get("stage"),
                            "epoch": metrics.get("epoch")})
            if _report_with_checkpoint(payload, trial_dir, plan.categories):
                _fault_kill(plan)

        # Opened in the trial process only: under DDP the Train workers never log (rank 0's record
        # is logged by close()); a retry or --resume reopens the same MLflow run.
        tracker = open_trial_tracker(plan.tracking, trial_id, cat, cfg, out_dir=out, log=log)
        try:
            if plan.num_workers > 1:
                from suite.orchestration.train_driver import train_with_ray_train

                record = train_with_ray_train(
                    cfg, out, plan.num_workers, plan.use_gpu,
                    storage_path=plan.train_storage, run_name=f"{trial_id}-{cat}",
                    stage_cache=plan.stage_cache, trial_id=trial_id, sweep=plan.sweep_name, node=node,
                    cpus_per_worker=plan.cpus_per_trial, log=log, ablation=ablation,
                )
            else:
                record = run_trial(cfg, out, report, stage_cache=plan.stage_cache, trial_id=trial_id,
                                   sweep=plan.sweep_name, node=node, log=log, ablation=ablation,
                                   on_epoch=tracker.epoch if tracker is not None else None)
        except SystemExit:
            # Tune ends a trial its scheduler stopped by raising SystemExit inside tune.report.
            _mark_stopped(out)
            if tracker is not None:
                _mark_selection(out, plan.select_on)
                tracker.close(out, "stopped")
            raise
        except BaseException:
            if tracker is not None:
                _mark_selection(out, plan.select_on)
                tracker.close(out, "failed")
            raise
        finally:
            _mark_selection(out, plan.select_on)
        if tracker is not None:
            tracker.close(out)
        finals[cat] = record_metrics(record)
    final = plan.payload(pooled_metrics(finals))
    final.update({"final": True, "n_categories": len(finals)})
    _report_with_checkpoint(final, trial_dir, plan.categories)
