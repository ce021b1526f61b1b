"""What every method's trainer gets and returns, so ``run_training`` treats them alike.

A method (``suite.methods.registry.MethodSpec``) names a ``train(ctx: TrainContext) ->
TrainedMethod``. Gradient-trained methods go through ``train_single_stage`` (or ``cached_stage``
with ``suite.training.train_stage``); methods fitted in one pass without gradients (memory banks,
statistics) go through ``fit_single_stage``. Both share the stage cache and the training's resume.
``TrainedMethod.predict`` maps a batch of images (B, 3, H, W) in [0, 1] on the device to a dict
with at least ``"map"`` (B, 1, H, W) and optionally ``"recons"`` / ``"details"`` (B, S, 3, H, W) for
the gallery; image scores come from ``score``.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from suite.config import Config
from suite.data.streaming import ImagesLike
from suite.methods.registry import method_spec
from suite.records import code_versions
from suite.stage_cache import StageCache, stage_key
from suite.throughput import BreakdownLog
from suite.training import CheckpointError, atomic_torch_save, freeze, load_checkpoint, stage_generator, train_stage


@dataclass
class TrainContext:
    cfg: Config
    device: torch.device
    # (N, 3, H, W) clean normals on the CPU: in run_training an ``ImageSource`` (suite.data.streaming)
    # that decodes on demand behind the training's cache budget and indexes like the tensor it replaces
    # (len, shape, [int | slice | index tensor] -> tensor); a plain tensor works too. Read batches
    # (``images[idx]``, ``iter_batches``); ``images[:]`` loads every image at once, for a method
    # that truly needs them together (say so where it does: it costs N*3*H*W*4 bytes).
    train_images: ImagesLike
    checkpoint_dir: Path  # this training's own stage checkpoints (resume after a crash)
    calib_images: ImagesLike | None = None  # held-out normals for scoring statistics (never trained on)
    stage_cache: StageCache | None = None  # shared across trainings and sweeps
    log: Callable[[str], None] = print
    # Called after each epoch with (stage, epoch, loss, probe); ``probe`` is a TrainedMethod scoring
    # with what is trained so far (or None); run_training uses it for periodic validation reports.
    on_epoch_end: Callable[[str, int, float, "TrainedMethod | None"], None] | None = None
    # Every trained stage's step breakdown (``suite.throughput``); run_training copies it into the record.
    step_breakdown: BreakdownLog = field(default_factory=BreakdownLog)


@dataclass
class TrainedMethod:
    predict: Callable[[torch.Tensor], dict[str, torch.Tensor]]
    score: Callable[[torch.Tensor], torch.Tensor]  # maps (B, 1, H, W) -> image scores (B,)
    modules: dict[str, nn.Module]  # every network used at inference (for parameter counts)
    stage_times: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # e.g. stage1_from_cache, backbone_pretrained
    steps: list[int] = field(default_factory=list)  # recursion steps in recons/details, if any
    # Optional maps beyond the configured one, for evaluation only (not timed in the cost):
    # "variant:<kind>|<standardize>" -> (B, 1, H, W) scoring variants, "diag:<family>@<step>" ->
    # per-depth signal maps. run_training scores each into record.scorings / record.diagnostics.
    extra_maps: Callable[[torch.Tensor], dict[str, torch.Tensor]] | None = None


def load_stage_weights(module: nn.Module, path: Path, state: dict[str, Any] | None = None) -> None:
    """Load a stage checkpoint's weights into ``module``; a file whose tensors do not fit the
    network (another architecture, a damaged file) is a ``CheckpointError`` naming it."""
    state = load_checkpoint(path) if state is None else state
    try:
        module.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError) as err:
        raise CheckpointError(f"checkpoint {path} does not fit this {type(module).__name__}: {err}") from err


def cached_stage(
    ctx: TrainContext,
    stage: str,
    module: nn.Module,
    run: Callable[[str], object],
) -> tuple[float, bool]:
    """Train ``stage`` via ``run(checkpoint_path)`` or load it from the shared stage cache.

    Returns (seconds, from_cache). The training's own checkpoint folder is used for resume; a
    finished stage is published to the cache (key: ``suite.stage_cache.stage_key``) under a lock
    so concurrent trainings build it once. Shared by every method's trainer.
    """
    own = ctx.checkpoint_dir / f"{stage}.pt"
    cache = ctx.stage_cache
    t0 = time.perf_counter()
    if cache is None:
        run(str(own))
        return time.perf_counter() - t0, False
    key = stage_key(ctx.cfg, stage, method_spec(ctx.cfg.model.method))
    if cache.has(key):
        load_stage_weights(module, cache.path(key))
        cache.note(key, "hit")
        ctx.log(f"[{stage}] loaded from stage cache ({key})")
        return time.perf_counter() - t0, True
    with cache.lock(key):
        if cache.has(key):  # another training built it while we waited
            load_stage_weights(module, cache.path(key))
            cache.note(key, "hit")
            ctx.log(f"[{stage}] loaded from stage cache after waiting ({key})")
            return time.perf_counter() - t0, True
        run(str(own))
        tmp = cache.path(key).with_name(f".{key}.tmp")
        shutil.copyfile(own, tmp)
        tmp.replace(cache.path(key))
        cache.note(key, "build")
    return time.perf_counter() - t0, False


CHECKPOINTING_FROM_PX = 512  # runtime.activation_checkpointing=None turns it on from this image size


def activation_checkpointing(cfg: Config) -> bool:
    """``runtime.activation_checkpointing``, where None means on from ``CHECKPOINTING_FROM_PX``
    (the paper preset's 1024 px; the cpu/demo/tiny sizes fit without it and skip its recompute)."""
    flag = cfg.runtime.activation_checkpointing
    return cfg.data.image_size >= CHECKPOINTING_FROM_PX if flag is None else bool(flag)


def stage_options(ctx: TrainContext, stage: str) -> dict[str, Any]:
    """The keyword arguments of ``suite.training.train_stage`` that come from the training context.

    The generator is the stage's own (``stage_generator``): same seed, same draws, whether earlier
    stages were trained or came from the stage cache.
    """
    cfg = ctx.cfg
    return dict(
        device=ctx.device,
        generator=stage_generator(cfg.runtime.seed, stage),
        lr_schedule=cfg.train.lr_schedule,
        checkpoint_every=cfg.train.checkpoint_every,
        config_dict=cfg.to_dict(),
        max_time_s=cfg.train.max_time_s,
        amp=cfg.train.amp,
        log=ctx.log,
        channels_last=cfg.runtime.channels_last,
        prefetch=cfg.runtime.prefetch,
        activation_checkpointing=activation_checkpointing(cfg),
        breakdown=ctx.step_breakdown,
    )


def probe_hook(ctx: TrainContext, module: nn.Module, probe: TrainedMethod, stage: str = "stage1"):
    """An ``on_epoch_end`` for train_stage that lets run_training validate ``probe`` mid-training
    (``module`` is switched to eval mode for it and back)."""

    def hook(epoch: int, loss: float) -> None:
        if ctx.on_epoch_end is None:
            return
        was_training = module.training
        module.eval()
        ctx.on_epoch_end(stage, epoch, loss, probe)
        module.train(was_training)

    return hook


def train_single_stage(
    ctx: TrainContext,
    module: nn.Module,
    loss_fn: Callable[[nn.Module, torch.Tensor, torch.Generator], torch.Tensor],
    method: TrainedMethod,
    optimizer_factory: Callable[..., Any] | None = None,
) -> TrainedMethod:
    """Train a one-network method (the baselines) as ``stage1`` through the stage cache.

    ``method`` already holds the method's predict/score/modules/info; it doubles as the probe for
    mid-training validation. Its ``stage_times`` and ``info["stage1_from_cache"]`` are filled in,
    ``module`` is frozen, and the same object is returned.
    """
    def run(path: str) -> None:
        train_stage(
            "stage1", module, loss_fn, ctx.train_images, ctx.cfg.train.stage1,
            checkpoint_path=path, on_epoch_end=probe_hook(ctx, module, method), **stage_options(ctx, "stage1"),
            optimizer_factory=optimizer_factory,
        )

    seconds, method.info["stage1_from_cache"] = cached_stage(ctx, "stage1", module, run)
    method.stage_times["stage1"] = seconds
    freeze(module)
    return method


def fit_single_stage(
    ctx: TrainContext,
    module: nn.Module,
    fit: Callable[[nn.Module, torch.Tensor, torch.Generator], None],
    method: TrainedMethod,
) -> TrainedMethod:
    """Fit a method without gradient training (a memory bank, per-pixel statistics) as ``stage1``.

    ``fit(module, train_images, generator)`` fills ``module``'s parameters or buffers in place (no
    optimiser, no epochs). ``train_images`` is ``ctx.train_images`` as it is: in ``run_training`` an
    ``ImageSource`` streaming from disk, so a fit should read it in batches (``images[a:b]``,
    ``suite.data.streaming.iter_batches``); ``images[:]`` loads all of it at once where the
    statistics truly need every image together. What it fills must be in the module's ``state_dict`` (parameters or
    registered buffers), so the stage cache and resume treat it like a trained stage. ``module``
    is frozen and ``method`` returned with ``stage_times`` and ``info["stage1_from_cache"]``.
    """

    def run(path: str) -> None:
        own = Path(path)
        if own.exists():
            state = load_checkpoint(own)
            if state.get("completed"):
                load_stage_weights(module, own, state)
                ctx.log(f"[stage1] resumed from {own}")
                return
        ctx.log(f"[stage1] fitting on {len(ctx.train_images)} normals (no gradient training)")
        with torch.no_grad():
            fit(module, ctx.train_images, stage_generator(ctx.cfg.runtime.seed, "stage1"))
        atomic_torch_save({"stage": "stage1", "epoch": 0, "completed": True, "model": module.state_dict(),
                           "config": ctx.cfg.to_dict(), "versions": code_versions()}, own)

    seconds, method.info["stage1_from_cache"] = cached_stage(ctx, "stage1", module, run)
    method.stage_times["stage1"] = seconds
    freeze(module)
    return method
