"""Data-parallel training of one (config, category) with Ray Train (``TorchTrainer``, DDP).

Every Train worker calls ``run_trial``: the worker's process group is initialised by Ray Train
(gloo on CPU, nccl on GPU), so ``suite.training`` wraps each stage's module in DDP and gives each
rank its share of every epoch, and rank 0 writes the stage checkpoints. Rank 0 runs in the real
``out_dir`` and writes the record; ranks > 0 run in a scratch folder whose ``checkpoints`` entry
links to rank 0's, so every rank resumes from the same stage checkpoints and takes the same
decisions (a rank that skipped a stage another rank trains would hang DDP).

For the same reason the shared stage cache is not handed to the workers (its per-stage file lock
would let rank 0 train while rank 1 waits on the lock). Instead this driver copies the completed
cached stages into ``out_dir/checkpoints`` before the run, where every rank loads them, and
publishes newly trained stages to the cache afterwards (events "hit" / "build" as usual).

Periodic validation reports are not forwarded from inside a Train run (``ray.train.report`` is a
barrier all ranks must reach, and only rank 0 validates mid-stage); the caller gets the final
record. With ``num_workers == 1`` a sweep calls ``run_trial`` directly in the Tune trial's process
instead, which is cheaper (no worker group, no process group) and keeps the periodic reports.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from suite.config import Config
from suite.records import RECORD_NAME, TrialRecord, read_record, write_record
from suite.stage_cache import StageCache, stage_key

STAGES = ("stage1", "stage2", "stage3")


def _train_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train worker: run the whole trial on this rank (DDP inside), then one report per rank."""
    import ray
    import ray.train

    from suite.pipeline import run_trial

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    out_dir = Path(loop_config["out_dir"])
    node = {**(loop_config.get("node") or {}), "train_rank": rank, "train_world_size": world}
    scratch = None
    if rank == 0:
        run_dir = out_dir
    else:
        scratch = Path(tempfile.mkdtemp(prefix=f"rcs-rank{rank}-"))
        (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (scratch / "checkpoints").symlink_to(out_dir / "checkpoints", target_is_directory=True)
        run_dir = scratch
    try:
        node["ray_node_id"] = ray.get_runtime_context().get_node_id()
        prefix = loop_config.get("log_prefix") or ""

        def log(msg: str) -> None:
            if rank == 0:
                print(f"{prefix}{msg}", flush=True)

        record = run_trial(
            loop_config["cfg"],
            run_dir,
            report=None,
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
        key = stage_key(cfg, stage)
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
        key = stage_key(cfg, stage)
        with cache.lock(key):
            if cache.has(key):
                continue
            tmp = cache.path(key).with_name(f".{key}.tmp")
            shutil.copyfile(own, tmp)
            tmp.replace(cache.path(key))
            cache.note(key, "build")
            published.append(stage)
    return published


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
) -> TrialRecord:
    """Train and evaluate ``cfg`` with ``num_workers`` DDP workers; returns rank 0's record.

    ``storage_path`` (absolute) holds Ray Train's run folder; ``run_name`` must be unique per
    run because Ray Train restores a run that reuses a name (a timestamp and random suffix are
    appended). Raises when the run fails; a failed trial's record is still in ``out_dir``.
    ``ablation`` (an ablation row's table and row ids) is stored in the record, as by ``run_trial``.
    """
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

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
        },
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=RunConfig(name=unique, storage_path=str(Path(storage_path).resolve())),
    )
    error: BaseException | None = None
    try:
        trainer.fit()
    except BaseException as err:  # noqa: BLE001 - the record (if any) says what happened; re-raised below
        error = err
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

