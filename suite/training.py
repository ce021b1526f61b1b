"""Plain per-stage training loops with checkpoints, resume and an epoch callback. No Ray here.

A stage trains one module on an in-memory tensor of images with a ``loss_fn(model, batch, generator)``.
It checkpoints (model + optimizer + generator state + config + epoch) atomically at the stage end and
every ``checkpoint_every`` epochs, resumes from such a checkpoint, stops on a wall-time budget, and
fails with ``TrainingDiverged`` when the loss is not finite. When ``torch.distributed`` is initialised
(e.g. by a Ray Train worker) the module is wrapped in DDP and every rank takes its share of each epoch.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from suite.config import StageConfig
from suite.records import code_versions


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("runtime.device=cuda but CUDA is not available on this machine")
    return torch.device(device)


def stage_generator(seed: int, stage: str) -> torch.Generator:
    """A CPU generator for one training stage, seeded from (seed, stage) alone, so a stage's random
    draws do not depend on whether the stages before it were trained or loaded from a cache."""
    import zlib

    gen = torch.Generator()
    gen.manual_seed((int(seed) * 1_000_003 + zlib.crc32(stage.encode())) % (2**63))
    return gen


def seed_everything(seed: int) -> torch.Generator:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise RuntimeError(f"cannot read checkpoint {path}: {err}") from err


def distributed_context() -> tuple[int, int]:
    """(rank, world_size); (0, 1) when torch.distributed is not initialised."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


@dataclass
class StageResult:
    name: str
    epochs: int = 0  # epochs completed in total (including resumed ones)
    losses: list[float] = field(default_factory=list)  # mean loss per epoch
    seconds: float = 0.0  # wall time spent in this call
    resumed_from: int = 0  # epochs already done when this call started
    from_cache: bool = False


LOG_EVERY_S = 30.0  # seconds between progress lines when there is no terminal for a bar

LossFn = Callable[[nn.Module, torch.Tensor, torch.Generator], torch.Tensor]
EpochCallback = Callable[[int, float], None]
OptimizerFactory = Callable[[list[nn.Parameter]], torch.optim.Optimizer]


def _progress(name: str, total: int, initial: int):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=name,
        unit="ep",
        leave=False,
        disable=None if sys.stderr.isatty() else True,
        dynamic_ncols=True,
    )


def train_stage(
    name: str,
    model: nn.Module,
    loss_fn: LossFn,
    data: torch.Tensor,
    cfg: StageConfig,
    *,
    device: torch.device,
    generator: torch.Generator,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 0,
    config_dict: dict[str, Any] | None = None,
    on_epoch_end: EpochCallback | None = None,
    max_time_s: float = 0.0,
    amp: bool = True,
    log: Callable[[str], None] = print,
    optimizer_factory: OptimizerFactory | None = None,
    lr_schedule: str = "constant",
) -> StageResult:
    """Train ``model`` for ``cfg.epochs`` epochs over ``data`` (an (N, ...) tensor kept on the CPU).

    Resumes from ``checkpoint_path`` when it exists (a completed checkpoint returns at once).
    ``on_epoch_end(epoch, mean_loss)`` runs on rank 0 after each epoch (1-based epoch).
    ``optimizer_factory(params)`` builds the optimiser over the trainable parameters; the default
    is Adam with ``cfg``'s lr, betas, eps and weight decay. ``lr_schedule``: "constant" or "cosine"
    (epoch e of E runs at ``lr * (1 + cos(pi * (e - 1) / E)) / 2``; computed from the epoch number,
    so a resumed stage continues the same curve).
    """
    result = StageResult(name=name)
    rank, world = distributed_context()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"stage {name}: the model has no trainable parameters")
    if optimizer_factory is None:
        optimizer = torch.optim.Adam(
            params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay
        )
    else:
        optimizer = optimizer_factory(params)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    start_epoch = 0
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        state = load_checkpoint(checkpoint_path)
        model.load_state_dict(state["model"])
        if state.get("completed"):
            result.epochs = state["epoch"]
            result.losses = list(state.get("losses", []))
            result.resumed_from = state["epoch"]
            log(f"[{name}] loaded completed checkpoint {checkpoint_path} ({state['epoch']} epochs)")
            return result
        optimizer.load_state_dict(state["optimizer"])
        if "generator" in state:
            generator.set_state(state["generator"])
        start_epoch = state["epoch"]
        result.losses = list(state.get("losses", []))
        result.resumed_from = start_epoch
        log(f"[{name}] resuming from epoch {start_epoch} ({checkpoint_path})")

    model.to(device)
    model.train()
    train_model: nn.Module = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    use_amp = amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    def save(epoch: int, completed: bool) -> None:
        if checkpoint_path is None or rank != 0:
            return
        atomic_torch_save(
            {
                "stage": name,
                "epoch": epoch,
                "completed": completed,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "generator": generator.get_state(),
                "losses": result.losses,
                "config": config_dict,
                "versions": code_versions(),
            },
            checkpoint_path,
        )

    n = data.shape[0]
    batch = max(1, min(cfg.batch_size, n))
    t0 = time.perf_counter()
    bar = _progress(name, cfg.epochs, start_epoch) if rank == 0 else None
    last_log = t0
    epoch = start_epoch
    try:
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            if lr_schedule == "cosine":
                factor = 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / max(cfg.epochs, 1)))
                for group, base in zip(optimizer.param_groups, base_lrs):
                    group["lr"] = base * factor
            order = torch.randperm(n, generator=generator)
            if world > 1:
                # Every rank must run the same number of steps or DDP's allreduce hangs.
                order = order[: max(world, n - n % world)][rank::world]
            total, count = 0.0, 0
            for i in range(0, max(len(order), 1), batch):
                idx = order[i : i + batch]
                if len(idx) == 0:
                    break
                xb = data[idx].to(device, non_blocking=True)
                with torch.autocast(device.type, enabled=use_amp):
                    loss = loss_fn(train_model, xb, generator)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(
                        f"stage {name}: loss became {loss.item()} at epoch {epoch} "
                        f"(lr={optimizer.param_groups[0]['lr']}); "
                        "lower the learning rate or check the data"
                    )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                total += loss.item() * len(idx)
                count += len(idx)
            mean_loss = total / max(count, 1)
            result.losses.append(mean_loss)
            result.epochs = epoch
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{mean_loss:.4f}")
                if bar.disable and time.perf_counter() - last_log >= LOG_EVERY_S:
                    # No terminal (logs, Ray workers): a plain line now and then instead of a bar.
                    last_log = time.perf_counter()
                    log(f"[{name}] epoch {epoch}/{cfg.epochs} loss {mean_loss:.4f} "
                        f"({last_log - t0:.0f}s)")
            if checkpoint_every and epoch % checkpoint_every == 0 and epoch < cfg.epochs:
                save(epoch, completed=False)
            if on_epoch_end is not None and rank == 0:
                on_epoch_end(epoch, mean_loss)
            if max_time_s and time.perf_counter() - t0 > max_time_s:
                log(f"[{name}] time budget {max_time_s:.0f}s reached after epoch {epoch}/{cfg.epochs}")
                break
    finally:
        if bar is not None:
            bar.close()
    result.epochs = epoch
    result.seconds = time.perf_counter() - t0
    model.eval()
    save(result.epochs, completed=True)
    last = result.losses[-1] if result.losses else math.nan
    log(f"[{name}] {result.epochs} epochs in {result.seconds:.1f}s, final loss {last:.4f}")
    return result


def freeze(module: nn.Module) -> nn.Module:
    """Stop gradients into ``module`` and put it in eval mode (frozen earlier stages)."""
    module.requires_grad_(False)
    module.eval()
    return module
