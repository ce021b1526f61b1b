"""Issue-19 switches of the RcAE pipeline, kept apart from the trainer and scorer they plug into.

* ``OffsetNormaliser`` (``rcae.normalise``): moves each image's robust level (median luminance) to
  the train normals' reference level (``suite.data.photometric``), in every stage and in scoring.
  The reference is computed once per training from the train normals, kept in the module's buffer
  (so ``TrainedMethod.modules`` carries it) and in ``checkpoints/offset_norm.pt``, which a resumed
  training reloads rather than recomputes, so the scorer always uses the level training used.
* ``StageInput``: normalisation then photometric jitter (``rcae.jitter*``) of a clean batch, before
  any corruption is drawn, so input and target share the change and no mask can mark it.
* ``offset_free_maps``: the scorer's ``residual_centred``, ``residual_gain`` and ``structure`` kinds.
* ``stage3_config``: stage-3 length from ``rcae.crd_iterations`` / ``rcae.crd_min_iterations``.

ConvAE shares the trainer (``recursive=False``) and never reads these switches (they live in the
``rcae`` section, which is not part of ConvAE's stage keys).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
from torch import Tensor, nn

from suite.config import Config, StageConfig
from suite.data.photometric import background_level, normalise_offset, photometric_jitter, reference_level
from suite.data.streaming import ImagesLike
from suite.residuals import gain_offset_residual, gradient_residual, median_centred_residual, ssim_structure_residual
from suite.weights import load_tensors

LEVEL_BATCH = 16  # images per batch when the reference level is computed
GREY_TOLERANCE = 1.0 / 512  # below half an 8-bit grey level: channels count as equal
GREY_PROBE = 16  # train images inspected to decide whether a category is grayscale
OFFSET_NORM_FILE = "offset_norm.pt"


class OffsetNormaliser(nn.Module):
    """``normalise_offset(x, reference, q, mode)``, or the identity with ``mode="none"``."""

    def __init__(self, mode: str = "none", q: float = 0.5):
        super().__init__()
        self.mode, self.q = mode, q
        self.register_buffer("reference", torch.tensor(math.nan))

    def fit(self, images: ImagesLike) -> "OffsetNormaliser":
        levels = [background_level(images[i : i + LEVEL_BATCH].float(), self.q)
                  for i in range(0, len(images), LEVEL_BATCH)]
        self.reference.fill_(reference_level(torch.cat(levels)))
        return self

    def forward(self, images: Tensor) -> Tensor:
        if self.mode == "none":
            return images
        if math.isnan(float(self.reference)):
            raise RuntimeError("OffsetNormaliser: fit() it on the train normals first")
        return normalise_offset(images, float(self.reference), self.q, self.mode)

    def extra_repr(self) -> str:
        return f"mode={self.mode}, q={self.q}, reference={float(self.reference):.4f}"


def offset_normaliser(cfg: Config, images: ImagesLike, checkpoint_dir: Path | None, recursive: bool,
                      log=print) -> OffsetNormaliser | None:
    """The training's normaliser (None when off or for ConvAE): loaded from ``checkpoint_dir`` when a
    previous run of this training stored one, else fitted on ``images`` and stored there."""
    if not recursive or cfg.rcae.normalise == "none":
        return None
    norm = OffsetNormaliser(cfg.rcae.normalise)
    path = Path(checkpoint_dir) / OFFSET_NORM_FILE if checkpoint_dir is not None else None
    if path is not None and path.exists():
        norm.load_state_dict(load_tensors(path, "offset normaliser"))
    else:
        norm.fit(images)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(norm.state_dict(), path)
    log(f"[photometric] offset normalisation ({norm.mode}) to reference level {float(norm.reference):.4f}")
    return norm


class StageInput:
    """What a stage does to its clean batch first: normalise, then jitter (``rcae.jitter``)."""

    def __init__(self, cfg: Config, norm: OffsetNormaliser | None, recursive: bool):
        self.norm = norm
        r = cfg.rcae
        self.jitter = recursive and r.jitter
        self.ranges = (tuple(r.jitter_gain), tuple(r.jitter_offset), tuple(r.jitter_gamma))

    def normalise(self, images: Tensor) -> Tensor:
        return images if self.norm is None else self.norm(images)

    def __call__(self, batch: Tensor, generator: torch.Generator) -> Tensor:
        batch = self.normalise(batch)
        if self.jitter:
            batch, _ = photometric_jitter(batch, *self.ranges, generator)
        return batch


def is_grayscale(images: ImagesLike) -> bool:
    """Whether the first ``GREY_PROBE`` images have R = G = B everywhere (within ``GREY_TOLERANCE``)."""
    probe = images[: min(GREY_PROBE, len(images))].float()
    if probe.shape[1] != 3:
        return probe.shape[1] == 1
    spread = (probe.amax(dim=1) - probe.amin(dim=1)).max()
    return bool(spread <= GREY_TOLERANCE)


def offset_free_maps(images: Tensor, final: Tensor, structure: str) -> dict[str, Tensor]:
    """Raw (B, 1, H, W) maps of the last depth's ``final`` = I_D^N that a global offset leaves alone."""
    structure_fn = gradient_residual if structure == "gradient" else ssim_structure_residual
    return {"residual_centred": median_centred_residual(images, final),
            "residual_gain": gain_offset_residual(images, final),
            "structure": structure_fn(images, final)}


def stage3_config(cfg: Config, n_images: int) -> StageConfig:
    """``train.stage3`` with its epochs set from ``rcae.crd_iterations`` (optimiser steps; 0 = keep
    the epochs) and raised to at least ``rcae.crd_min_iterations`` steps. One epoch is
    ``ceil(n / batch)`` steps, as ``suite.training.train_stage`` batches."""
    stage, r = cfg.train.stage3, cfg.rcae
    per_epoch = math.ceil(n_images / max(1, min(stage.batch_size, n_images))) if n_images else 1
    epochs = math.ceil(r.crd_iterations / per_epoch) if r.crd_iterations else stage.epochs
    if r.crd_min_iterations:
        epochs = max(epochs, math.ceil(r.crd_min_iterations / per_epoch))
    return stage if epochs == stage.epochs else dataclasses.replace(stage, epochs=epochs)
