"""Plain per-stage training loops with checkpoints, resume and an epoch callback. No Ray here.

A stage trains one module on a tensor of images (or an ``ImageSource`` streaming them) with a
``loss_fn(model, batch, generator)``.
It checkpoints (model + optimizer + generator state + config + epoch) atomically at the stage end and
every ``checkpoint_every`` epochs, resumes from such a checkpoint, stops on a wall-time budget, and
fails with ``TrainingDiverged`` when the loss is not finite. When ``torch.distributed`` is initialised
(e.g. by a Ray Train worker) the module is wrapped in DDP and every rank takes its share of each epoch.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from suite.config import StageConfig
from suite.data.streaming import ImagesLike, iter_batches
from suite.errors import TrainingDiverged
from suite.models.ops import set_activation_checkpointing, to_channels_last
from suite.records import code_versions
from suite.throughput import BreakdownLog, StepBreakdown, amp_dtype, prefetched
from suite.weights import CheckpointError, load_tensors


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("runtime.device=cuda but CUDA is not available on this machine")
    return torch.device(device)


def stage_generator(seed: int, stage: str) -> torch.Generator:
    """A CPU generator for one training stage, seeded from (seed, stage) alone, so a stage's random
    draws do not depend on whether the stages before it were trained or loaded from a cache."""
    gen = torch.Generator()
    gen.manual_seed((int(seed) * 1_000_003 + zlib.crc32(stage.encode())) % (2**63))
    return gen


def seed_everything(seed: int) -> torch.Generator:
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
    """Load a checkpoint as data only (``weights_only=True``: a pickle that would run code is
    refused); any failure is a ``CheckpointError`` naming the file."""
    state = load_tensors(path, "checkpoint")
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"checkpoint {path} holds no 'model' state (got {type(state).__name__})")
    return state


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
    return tqdm(
        total=total,
        initial=initial,
        desc=name,
        unit="ep",
        leave=False,
        disable=None if sys.stderr.isatty() else True,
        dynamic_ncols=True,
    )


def _build_optimizer(
    params: list[nn.Parameter], cfg: StageConfig, optimizer_factory: OptimizerFactory | None
) -> torch.optim.Optimizer:
    """``optimizer_factory(params)``, or Adam with ``cfg``'s lr, betas, eps and weight decay."""
    if optimizer_factory is not None:
        return optimizer_factory(params)
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)


def _apply_lr_schedule(
    optimizer: torch.optim.Optimizer, base_lrs: list[float], schedule: str, epoch: int, epochs: int
) -> None:
    """Set each group's lr for ``epoch`` (1-based) of ``epochs``; "constant" leaves it alone."""
    if schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / max(epochs, 1)))
        for group, base in zip(optimizer.param_groups, base_lrs):
            group["lr"] = base * factor


def _resume_from_checkpoint(
    name: str,
    checkpoint_path: str | Path | None,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    result: StageResult,
    log: Callable[[str], None],
) -> tuple[int, bool]:
    """Load ``checkpoint_path`` (when it exists) into the model, optimiser, generator and ``result``.

    Returns ``(start_epoch, completed)``: a completed checkpoint only restores the model's weights
    and ``result``; a mid-stage one also the optimiser and generator, to continue at ``start_epoch``.
    """
    if checkpoint_path is None or not Path(checkpoint_path).exists():
        return 0, False
    state = load_checkpoint(checkpoint_path)
    model.load_state_dict(state["model"])
    result.losses = list(state.get("losses", []))
    result.resumed_from = state["epoch"]
    if state.get("completed"):
        result.epochs = state["epoch"]
        log(f"[{name}] loaded completed checkpoint {checkpoint_path} ({state['epoch']} epochs)")
        return state["epoch"], True
    optimizer.load_state_dict(state["optimizer"])
    if "generator" in state:
        generator.set_state(state["generator"])
    log(f"[{name}] resuming from epoch {state['epoch']} ({checkpoint_path})")
    return state["epoch"], False


def _save_checkpoint(
    path: str | Path,
    name: str,
    epoch: int,
    completed: bool,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    losses: list[float],
    config_dict: dict[str, Any] | None,
) -> None:
    """Atomically write a stage checkpoint: model, optimiser and generator state, losses, config."""
    atomic_torch_save(
        {
            "stage": name,
            "epoch": epoch,
            "completed": completed,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "losses": losses,
            "config": config_dict,
            "versions": code_versions(),
        },
        path,
    )


def _for_training(model: nn.Module, device: torch.device, world: int) -> nn.Module:
    """Move ``model`` to ``device`` in train mode; wrapped in DDP when there are several ranks."""
    model.to(device)
    model.train()
    if world > 1:
        return nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    return model


def _staged(loss_fn: LossFn) -> tuple[Callable[[torch.Tensor, torch.Generator], Any], Callable[..., torch.Tensor]]:
    """(build_inputs, compute) of a loss: a loss object with ``build_inputs(batch, g)`` and
    ``compute(model, inputs, g)`` (the input construction is then timed on its own and kept out of
    autocast), else (identity, ``loss_fn``)."""
    if hasattr(loss_fn, "build_inputs") and hasattr(loss_fn, "compute"):
        return loss_fn.build_inputs, loss_fn.compute
    return (lambda batch, g: batch), loss_fn


def _to_device(batch: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    batch = batch.to(device, non_blocking=True)
    if channels_last and batch.dim() == 4:
        batch = batch.contiguous(memory_format=torch.channels_last)
    return batch


def _train_epoch(
    name: str,
    epoch: int,
    train_model: nn.Module,
    loss_fn: LossFn,
    data: ImagesLike,
    batch: int,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    generator: torch.Generator,
    device: torch.device,
    amp_type: torch.dtype | None,
    rank: int,
    world: int,
    feed: "FeedOptions",
    steps: StepBreakdown,
) -> float:
    """One pass over this rank's share of a fresh permutation of ``data`` (a tensor or an
    ``ImageSource``); returns the mean loss.

    Raises ``TrainingDiverged`` on a non-finite batch loss: at that batch on the CPU, at the end of
    the epoch on CUDA (the check would otherwise wait for the GPU after every step).
    """
    n = data.shape[0]
    order = torch.randperm(n, generator=generator)
    if world > 1:
        # Every rank must run the same number of steps or DDP's allreduce hangs.
        order = order[: max(world, n - n % world)][rank::world]
    # The batches are fixed by the generator before any image is read, so streaming them (decoded
    # by DataLoader workers, suite.data.streaming, or read ahead by a thread) yields exactly what
    # data[idx] would.
    index_batches = [order[i : i + batch] for i in range(0, len(order), batch)]
    build_inputs, compute = _staged(loss_fn)
    cuda = device.type == "cuda"
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    steps.wait_begins()
    for idx, xb in zip(index_batches, feed.batches(data, index_batches, device)):
        xb = _to_device(xb, device, feed.channels_last)
        steps.data_ready()
        inputs = build_inputs(xb, generator)
        steps.inputs_built()
        with torch.autocast(device.type, dtype=amp_type or torch.float32, enabled=amp_type is not None):
            loss = compute(train_model, inputs, generator)
        if not cuda and not torch.isfinite(loss):
            _diverged(name, epoch, loss.item(), optimizer)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += loss.detach().double() * len(idx)
        count += len(idx)
        steps.step_done(len(idx))
    mean = total.item() / max(count, 1)
    if not math.isfinite(mean):
        _diverged(name, epoch, mean, optimizer)
    return mean


def _diverged(name: str, epoch: int, value: float, optimizer: torch.optim.Optimizer) -> None:
    raise TrainingDiverged(
        f"stage {name}: loss became {value} at epoch {epoch} "
        f"(lr={optimizer.param_groups[0]['lr']}); "
        "lower the learning rate or check the data"
    )


@dataclass
class FeedOptions:
    """How batches reach the device: ``prefetch`` batches read ahead by a thread (0 = none; not
    used when DataLoader workers decode, they read ahead themselves), pinned memory on CUDA, and
    channels-last 4D inputs (``channels_last``, CUDA only)."""

    prefetch: int = 0
    channels_last: bool = False

    def batches(self, data: ImagesLike, index_batches: list[torch.Tensor], device: torch.device):
        workers = getattr(data, "num_workers", 0)
        depth = 0 if workers else self.prefetch
        return prefetched(iter_batches(data, index_batches), depth, pin=device.type == "cuda")


def _show_progress(
    bar: Any, name: str, epoch: int, epochs: int, mean_loss: float, t0: float, last_log: float,
    log: Callable[[str], None],
) -> float:
    """Advance the progress bar by one epoch; returns the time of the last plain progress line."""
    bar.update(1)
    bar.set_postfix(loss=f"{mean_loss:.4f}")
    if bar.disable and time.perf_counter() - last_log >= LOG_EVERY_S:
        # No terminal (logs, Ray workers): a plain line now and then instead of a bar.
        last_log = time.perf_counter()
        log(f"[{name}] epoch {epoch}/{epochs} loss {mean_loss:.4f} ({last_log - t0:.0f}s)")
    return last_log


def train_stage(
    name: str,
    model: nn.Module,
    loss_fn: LossFn,
    data: ImagesLike,
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
    channels_last: bool = False,
    prefetch: int = 0,
    activation_checkpointing: bool = False,
    breakdown: BreakdownLog | None = None,
) -> StageResult:
    """Train ``model`` for ``cfg.epochs`` epochs over ``data``: an (N, ...) tensor kept on the CPU,
    or an ``ImageSource`` streaming the images from disk (the same batches, in the same order).

    Resumes from ``checkpoint_path`` when it exists (a completed checkpoint returns at once).
    ``on_epoch_end(epoch, mean_loss)`` runs on rank 0 after each epoch (1-based epoch).
    ``optimizer_factory(params)`` builds the optimiser over the trainable parameters; the default
    is Adam with ``cfg``'s lr, betas, eps and weight decay. ``lr_schedule``: "constant" or "cosine"
    (epoch e of E runs at ``lr * (1 + cos(pi * (e - 1) / E)) / 2``; computed from the epoch number,
    so a resumed stage continues the same curve).

    Feeding and memory: ``amp`` runs ``compute`` under autocast on CUDA (bfloat16 where supported,
    else float16 with loss scaling; ignored on the CPU, which trains in float32). The others leave
    the values alone: ``channels_last`` stores conv weights and 4D inputs channels-last on CUDA,
    ``prefetch`` batches are read ahead by a thread (pinned on CUDA), ``activation_checkpointing``
    switches it on where the model supports it (``suite.models.ops.set_activation_checkpointing``;
    loss and gradients unchanged, tests/unit/methods/rcae/test_checkpointing.py). ``breakdown`` receives this
    call's ``StepBreakdown`` under ``name`` (wait for data, input building, compute, images/s and,
    on CUDA, peak memory and the GPU busy share; ``suite.throughput``).
    """
    result = StageResult(name=name)
    rank, world = distributed_context()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"stage {name}: the model has no trainable parameters")
    optimizer = _build_optimizer(params, cfg, optimizer_factory)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    start_epoch, completed = _resume_from_checkpoint(name, checkpoint_path, model, optimizer, generator, result, log)
    if completed:
        return result

    cuda = device.type == "cuda"
    set_activation_checkpointing(model, activation_checkpointing)
    if channels_last and cuda:
        to_channels_last(model)
    train_model = _for_training(model, device, world)
    amp_type = amp_dtype(device) if amp and cuda else None
    scaler = torch.amp.GradScaler("cuda", enabled=amp_type == torch.float16)
    feed = FeedOptions(prefetch=prefetch, channels_last=channels_last and cuda)
    steps = StepBreakdown(device).start()

    def save(epoch: int, completed: bool) -> None:
        if checkpoint_path is not None and rank == 0:
            _save_checkpoint(checkpoint_path, name, epoch, completed, model, optimizer, generator, result.losses,
                             config_dict)

    batch = max(1, min(cfg.batch_size, data.shape[0]))
    t0 = time.perf_counter()
    bar = _progress(name, cfg.epochs, start_epoch) if rank == 0 else None
    last_log = t0
    epoch = start_epoch
    try:
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            _apply_lr_schedule(optimizer, base_lrs, lr_schedule, epoch, cfg.epochs)
            mean_loss = _train_epoch(name, epoch, train_model, loss_fn, data, batch, optimizer, scaler, generator,
                                     device, amp_type, rank, world, feed, steps)
            result.losses.append(mean_loss)
            result.epochs = epoch
            t_hooks = time.perf_counter()
            if bar is not None:
                last_log = _show_progress(bar, name, epoch, cfg.epochs, mean_loss, t0, last_log, log)
            if checkpoint_every and epoch % checkpoint_every == 0 and epoch < cfg.epochs:
                save(epoch, completed=False)
            if on_epoch_end is not None and rank == 0:
                on_epoch_end(epoch, mean_loss)
            steps.hooks_s += time.perf_counter() - t_hooks
            if max_time_s and time.perf_counter() - t0 > max_time_s:
                log(f"[{name}] time budget {max_time_s:.0f}s reached after epoch {epoch}/{cfg.epochs}")
                break
    finally:
        if bar is not None:
            bar.close()
        steps.finish()
        if breakdown is not None:
            breakdown.add(name, steps)
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
