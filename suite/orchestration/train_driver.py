"""Data-parallel training of one (config, category) with Ray Train (``TorchTrainer``, DDP).

Every Train worker calls ``run_training``: the worker's process group is initialised by Ray Train
(gloo on CPU, nccl on GPU), so ``suite.training`` wraps each stage's module in DDP and gives each
rank its share of every epoch, and rank 0 writes the stage checkpoints. Rank 0 runs in the real
``out_dir`` and writes the record; ranks > 0 run in a scratch folder whose ``checkpoints`` entry
links to rank 0's, so every rank resumes from the same stage checkpoints and takes the same
decisions (a rank that skipped a stage another rank trains would hang DDP).

For the same reason the shared stage cache is not handed to the workers (its per-stage file lock
would let rank 0 train while rank 1 waits on the lock). Instead this driver copies the completed
cached stages into ``out_dir/checkpoints`` before the run, where every rank loads them, and
publishes newly trained stages to the cache afterwards (events "hit" / "build" as usual).

Periodic validations reach the caller from rank 0 through a file, not ``ray.train.report`` (a
barrier all ranks must reach, while only rank 0 validates mid-stage): rank 0 appends each one to
``out_dir/progress.jsonl`` (``suite.orchestration.progress``), and with ``report=`` the caller's
thread polls that file while the run trains in a background thread and calls ``report`` for each
new line, so a sweep's ASHA sees a DDP trial like any other and can stop it (``report`` raising
``SystemExit`` ends the caller; the sweep then does not reuse that trial process, whose exit ends
the Train run it owns). With ``num_workers == 1`` a sweep does not use Ray Train at all (no worker
group, no process group).
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import ray
import ray.train
from ray.train import RunConfig, ScalingConfig
from ray.util.placement_group import PlacementGroup, remove_placement_group

from suite.config import Config
from suite.methods.registry import method_spec
from suite.orchestration.progress import POLL_S, append_progress, read_progress
from suite.orchestration.temp_dirs import owned_temp_dir
from suite.records import RECORD_NAME, TrialRecord, read_record, write_record
from suite.stage_cache import StageCache, stage_key

STAGES = ("stage1", "stage2", "stage3")
TRAIN_GROUP_NAME = ".train_placement_group"  # rank 0 writes its run's placement group id here


def _train_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train worker: run the whole trial on this rank (DDP inside), then one report per rank."""
    from suite.pipeline import run_training  # torch: only in the Train workers, not in the sweep driver

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    out_dir = Path(loop_config["out_dir"])
    node = {**(loop_config.get("node") or {}), "train_rank": rank, "train_world_size": world}
    scratch = None
    if rank == 0:
        run_dir = out_dir
    else:
        scratch = Path(owned_temp_dir(f"rcs-rank{rank}-"))
        (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (scratch / "checkpoints").symlink_to(out_dir / "checkpoints", target_is_directory=True)
        run_dir = scratch
    try:
        node["ray_node_id"] = ray.get_runtime_context().get_node_id()
        prefix = loop_config.get("log_prefix") or ""
        group = ray.util.get_current_placement_group()
        if rank == 0 and group is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / TRAIN_GROUP_NAME).write_text(group.id.hex())

        def log(msg: str) -> None:
            if rank == 0:
                print(f"{prefix}{msg}", flush=True)

        def report(metrics: dict[str, Any], _ckpt_dir: str | None) -> None:
            if not metrics.get("final"):
                append_progress(out_dir, metrics)

        record = run_training(
            loop_config["cfg"],
            run_dir,
            report=report if rank == 0 and loop_config.get("progress") else None,
            stage_cache=None,
            trial_id=loop_config.get("trial_id"),
            sweep=loop_config.get("sweep"),
            node=node,
            log=log,
            ablation=loop_config.get("ablation"),
        )
        ray.train.report({"status": record.status, "rank": rank})
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _seed_from_cache(cfg: Config, cache: StageCache, ckpt_dir: Path) -> list[str]:
    """Copy the completed stages the cache holds into the trial's checkpoint folder."""
    seeded: list[str] = []
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for stage in STAGES:
        key = stage_key(cfg, stage, method_spec(cfg.model.method))
        target = ckpt_dir / f"{stage}.pt"
        if cache.has(key) and not target.exists():
            tmp = target.with_name(f".{target.name}.seed.tmp")
            shutil.copyfile(cache.path(key), tmp)
            tmp.replace(target)
            cache.note(key, "hit")
            seeded.append(stage)
    return seeded


def _publish_to_cache(cfg: Config, cache: StageCache, ckpt_dir: Path, skip: list[str]) -> list[str]:
    """Store the trial's completed stage checkpoints in the cache (under its lock), once per key."""
    published: list[str] = []
    for stage in STAGES:
        own = ckpt_dir / f"{stage}.pt"
        if stage in skip or not own.exists():
            continue
        key = stage_key(cfg, stage, method_spec(cfg.model.method))
        with cache.lock(key):
            if cache.has(key):
                continue
            tmp = cache.path(key).with_name(f".{key}.tmp")
            shutil.copyfile(own, tmp)
            tmp.replace(cache.path(key))
            cache.note(key, "build")
            published.append(stage)
    return published


def _fit_reporting(trainer: Any, out: Path, report: Callable[[dict[str, Any], str | None], None] | None):
    """``trainer.fit()``; with ``report``, in a daemon thread while this one forwards rank 0's new
    progress lines. Returns the run's exception (None on success); ``report``'s own exceptions
    (``SystemExit`` from a stopping scheduler) propagate."""
    outcome: dict[str, BaseException | None] = {"error": None}

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as err:  # noqa: BLE001 - the record (if any) says what happened; re-raised by the caller
            outcome["error"] = err

    if report is None:
        fit()
        return outcome["error"]
    seen = dict(read_progress(out))  # lines an earlier attempt left: already reported then
    thread = threading.Thread(target=fit, name=f"train-{out.name}", daemon=True)
    thread.start()
    try:
        while True:
            thread.join(POLL_S)
            for point, metrics in sorted(read_progress(out).items()):
                if seen.get(point) != metrics:
                    seen[point] = metrics
                    report({"stage": point[0], "epoch": point[1], **metrics, "final": False}, None)
            if not thread.is_alive():
                return outcome["error"]
    except BaseException:
        _release_workers(out)
        raise


def _release_workers(out: Path) -> None:
    """End a Train run this process abandons (its scheduler stopped the trial mid-run).

    The run's controller dies with this process, but its workers' placement group outlives it
    until Ray Train's cleaner notices, and on a small cluster the next trial's run waits for those
    CPUs meanwhile (seen here: a 2-CPU sweep hung). Rank 0 wrote the group's id into ``out``;
    removing the group ends its workers and frees the CPUs at once.
    """
    path = out / TRAIN_GROUP_NAME
    try:
        group = PlacementGroup(ray.PlacementGroupID(bytes.fromhex(path.read_text().strip())))
        remove_placement_group(group)
    except Exception as err:  # noqa: BLE001 - best effort: the group may be gone already
        print(f"[train] could not remove the Train run's placement group ({path}): {err}", flush=True)


def train_with_ray_train(
    cfg: Config,
    out_dir: str | Path,
    num_workers: int,
    use_gpu: bool = False,
    *,
    storage_path: str | Path,
    run_name: str | None = None,
    stage_cache: str | Path | None = None,
    trial_id: str | None = None,
    sweep: str | None = None,
    node: dict[str, Any] | None = None,
    cpus_per_worker: float = 1.0,
    log: Callable[[str], None] = print,
    ablation: dict[str, str] | None = None,
    report: Callable[[dict[str, Any], str | None], None] | None = None,
) -> TrialRecord:
    """Train and evaluate ``cfg`` with ``num_workers`` DDP workers; returns rank 0's record.

    ``storage_path`` (absolute) holds Ray Train's run folder; ``run_name`` must be unique per
    run because Ray Train restores a run that reuses a name (a timestamp and random suffix are
    appended). Raises when the run fails; a failed trial's record is still in ``out_dir``.
    ``ablation`` (an ablation row's table and row ids) is stored in the record, as by ``run_training``.
    ``report(metrics, None)`` gets rank 0's periodic validations (``stage``, ``epoch``, ``val_*``)
    in this thread while the run trains (see the module docstring).
    """
    from ray.train.torch import TorchConfig, TorchTrainer  # imports torch: only DDP trials need it

    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    cache = StageCache(stage_cache) if stage_cache else None
    seeded = _seed_from_cache(cfg, cache, ckpt_dir) if cache else []
    if seeded:
        log(f"[train] stages {', '.join(seeded)} taken from the stage cache")
    base_name = run_name or f"{trial_id or 'run'}-{cfg.data.category}"
    unique = f"{base_name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    resources = {"CPU": cpus_per_worker}
    if use_gpu:
        resources["GPU"] = 1
    trainer = TorchTrainer(
        _train_worker,
        train_loop_config={
            "cfg": cfg,
            "out_dir": str(out.resolve()),
            "trial_id": trial_id,
            "sweep": sweep,
            "node": node or {},
            "ablation": dict(ablation or {}),
            "log_prefix": f"[{trial_id or 'train'}/{cfg.data.category}] " if trial_id else "",
            "progress": report is not None,
        },
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=RunConfig(name=unique, storage_path=str(Path(storage_path).resolve())),
    )
    error = _fit_reporting(trainer, out, report)
    record_path = out / RECORD_NAME
    if not record_path.exists():
        if error is not None:
            raise error
        raise RuntimeError(f"Ray Train run {unique} finished without writing {record_path}")
    record = read_record(record_path)
    if cache and record.status == "ok":
        published = _publish_to_cache(cfg, cache, ckpt_dir, skip=seeded)
        for stage in seeded:
            record.info[f"{stage}_from_cache"] = True
        record.info["train_workers"] = num_workers
        write_record(record, record_path)
        if published:
            log(f"[train] published {', '.join(published)} to the stage cache")
    if error is not None:
        raise error
    return record

