"""The validation set of a training: held-out train normals (optionally photometrically shifted
copies, ``data.val_shifts``) plus synthetic anomalies made from them, never from test images; in
memory (``validation_set``) or spilled to disk and streamed (``streamed_validation_set``)."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import numpy as np
import torch

from suite.config import Config
from suite.data.augment import pseudo_anomalies
from suite.data.streaming import ImageSource, ImagesLike, SpilledImages, spill
from suite.data.synthetic import natural_defects
from suite.data.val_anomalies import hard_defects
from suite.data.val_shifts import iter_shifted, shifted_normals


def validation_anomalies(
    val_images: ImagesLike, donors: ImagesLike, cfg: Config
) -> tuple[torch.Tensor, torch.Tensor]:
    """The synthetic anomalies of the validation set: images (A, 3, H, W) and masks (A, 1, H, W),
    ``A = max(1, round(len(val_images) * data.val_anomaly_ratio))``; see ``validation_set``.

    ``donors`` (the train normals) may be an ``ImageSource``: "augment" reads its first 8 images,
    "hard" picks one donor per anomaly at random, so it gets the source as an array spilled to a
    temporary file and memory-mapped (only the donors it picks are read), unless the whole source
    fits the source's cache budget, in which case it is loaded (and cached) as before.
    """
    gen = torch.Generator().manual_seed(cfg.runtime.seed + 7919)
    n_anom = max(1, int(round(len(val_images) * cfg.data.val_anomaly_ratio)))
    src = val_images[torch.arange(n_anom) % len(val_images)]
    if cfg.data.val_anomalies == "hard":
        with _donor_array(donors) as donor_array:
            defective, defect_masks = hard_defects(
                src.numpy(), donor_array, seed=cfg.runtime.seed + 7919, difficulty=cfg.data.val_difficulty,
                device=cfg.runtime.device,
            )
        return torch.from_numpy(defective), torch.from_numpy(defect_masks)
    if cfg.data.val_anomalies == "natural":
        defective, defect_masks = natural_defects(src.numpy(), seed=cfg.runtime.seed + 7919)
        return torch.from_numpy(defective), torch.from_numpy(defect_masks)
    return pseudo_anomalies(src, cfg.augment, gen, donors=donors[: min(8, len(donors))])


@contextlib.contextmanager
def _donor_array(donors: ImagesLike):
    """``donors`` as a numpy array for ``hard_defects`` (which indexes it at random)."""
    if isinstance(donors, torch.Tensor):
        yield donors.numpy()
        return
    if donors.nbytes <= donors.cache.budget_bytes:
        yield donors.materialize().numpy()
        return
    with tempfile.TemporaryDirectory(prefix="rcsuite-donors-") as folder:
        path = spill(donors, len(donors), donors.image_size, Path(folder) / "donors.npy")
        array = np.load(path, mmap_mode="r")
        try:
            yield array
        finally:
            del array  # unmapped before the folder goes


def validation_set(
    val_images: ImagesLike, donors: ImagesLike, cfg: Config
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Held-out train normals plus synthetic anomalies made from them (never test images).

    ``data.val_anomalies``: "hard" paints small, faint or thin defects, local deformations and
    parts misplaced from other normals (``suite.data.val_anomalies``, ``data.val_difficulty``);
    "natural" paints stains, holes and bent scratches (easy: they saturate); neither is a training
    corruption of any method. "augment" uses RcAE's training corruption (easiest for RcAE).

    Returns images (M, 3, H, W), masks (M, 1, H, W), labels (M,). Deterministic given the seed.
    (``run_training`` builds the same set with ``validation_anomalies`` and keeps it on disk.)
    """
    anomalous, masks = validation_anomalies(val_images, donors, cfg)
    normals = val_images if isinstance(val_images, torch.Tensor) else val_images.materialize()
    normals = torch.cat([normals, shifted_normals(normals, cfg.data.val_shifts)])  # data.val_shifts: label 0
    images = torch.cat([normals, anomalous])
    all_masks = torch.cat([torch.zeros_like(masks[:1]).expand(len(normals), -1, -1, -1), masks])
    labels = torch.cat([torch.zeros(len(normals)), torch.ones(len(anomalous))]).long()
    return images, all_masks, labels


def streamed_validation_set(
    val_images: ImageSource, donors: ImagesLike, cfg: Config, folder: str | Path
) -> tuple[SpilledImages, np.ndarray, np.ndarray]:
    """``validation_set`` with the images written to ``folder/val_images.npy`` and read back
    through ``val_images``' cache (a ``SpilledImages``), masks as uint8: the same values, but only
    the anomalies are ever all in memory at once (``hard_defects`` paints them in one call)."""
    anomalous, masks = validation_anomalies(val_images, donors, cfg)
    n_val, n_anom = len(val_images) * (1 + len(cfg.data.val_shifts)), len(anomalous)

    def rows():
        yield from val_images
        yield from iter_shifted(val_images, cfg.data.val_shifts)  # shifted held-out normals (label 0)
        yield from anomalous

    path = spill(rows(), n_val + n_anom, val_images.image_size, Path(folder) / "val_images.npy")
    size = val_images.image_size
    all_masks = np.zeros((n_val + n_anom, 1, size, size), np.uint8)
    all_masks[n_val:] = masks.numpy()
    labels = np.concatenate([np.zeros(n_val, np.int64), np.ones(n_anom, np.int64)])
    return SpilledImages(path, val_images.cache, val_images.num_workers), all_masks, labels
