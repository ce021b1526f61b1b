"""Shift checks and robustness metrics of one training, without orchestration (``run_training`` calls these).

* ``check_data_shift``: before training, the label-free data-shift check
  (``suite.data.shift_check``) of all train-folder normals (train, validation and calibration
  normals alike) against the unlabelled test images, streamed batch by batch. It also returns the
  test images' brightness, for ``brightness_spearman`` after scoring.
* ``evaluate_under_shifts``: the trained model on transformed copies of the test set
  (``suite.data.photometric.SHIFTS``, config ``eval.shifts``) at inference cost only. Each test
  batch is read once; every shift is applied to it (the noise seeded by ``seed`` plus the batch's
  first index, so results do not depend on which shifts run) and predicted with the same batches as
  the unshifted evaluation, so an identity shift reproduces the unshifted metrics exactly.

The model enters as two callables (``predict``: images -> (maps, scores); ``evaluate``: the
pipeline's metric function), so this module needs no method, device or Ray.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from suite.data.photometric import SHIFTS, apply_shift
from suite.data.shift_check import (
    DataShiftResult,
    compare_statistics,
    concat_statistics,
    image_statistics,
    score_brightness_correlation,
)
from suite.data.streaming import ImagesLike, iter_batches, sequential_batches

BATCH_SIZE = 16  # the pipeline's predict_all batch size: the same batches give identical maps

Predict = Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray]]
Evaluate = Callable[..., dict[str, float]]


def _statistics(sources: Iterable[ImagesLike | None], batch_size: int) -> dict[str, np.ndarray]:
    parts = [
        image_statistics(batch)
        for source in sources
        if source is not None and len(source)
        for batch in iter_batches(source, sequential_batches(len(source), batch_size))
    ]
    return concat_statistics(parts)


def check_data_shift(
    train_sources: Sequence[ImagesLike | None], test_images: ImagesLike, batch_size: int = BATCH_SIZE
) -> tuple[DataShiftResult | None, np.ndarray]:
    """(the shift check of the train normals in ``train_sources`` vs ``test_images``, the test
    images' brightness (N,) in test order). No label is read. The check is None with fewer than
    2 train or 1 test image (nothing to compare)."""
    sources = [s for s in train_sources if s is not None and len(s)]
    if sum(len(s) for s in sources) < 2 or not len(test_images):
        test = _statistics([test_images], batch_size) if len(test_images) else {"brightness": np.zeros(0)}
        return None, test["brightness"]
    train = _statistics(sources, batch_size)
    test = _statistics([test_images], batch_size)
    return compare_statistics(train, test), test["brightness"]


def _finite(value):
    """NaN / inf -> None, in nested mappings and lists (a record holds finite numbers only)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def data_shift_info(
    train_sources: Sequence[ImagesLike | None], test_images: ImagesLike, log: Callable[[str], None] = print
) -> tuple[dict | None, np.ndarray]:
    """``check_data_shift`` as the record's ``info.data_shift`` mapping (None when not checked),
    logging its one warning line when the check fires; also returns the test brightness."""
    result, brightness = check_data_shift(train_sources, test_images)
    if result is None:
        log("[data] shift check skipped: fewer than 2 train normals or no test image")
        return None, brightness
    line = result.warning_line()
    if line is not None:
        log(f"[warning] {line}")
    return _finite(result.to_dict()), brightness


def brightness_spearman(scores: np.ndarray, brightness: np.ndarray) -> float | None:
    """Spearman correlation of image scores and image brightness; None when undefined (a constant)."""
    value = score_brightness_correlation(scores, brightness)
    return None if math.isnan(value) else value


def check_shift_names(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in SHIFTS]
    if unknown:
        raise ValueError(f"unknown shifts {unknown}; valid shifts: {', '.join(SHIFTS)}")


def evaluate_under_shifts(
    predict: Predict,
    evaluate: Evaluate,
    images: ImagesLike,
    masks: np.ndarray,
    labels: np.ndarray,
    shifts: Sequence[str],
    seed: int = 0,
    with_aupro: bool = True,
    batch_size: int = BATCH_SIZE,
) -> dict[str, dict[str, float]]:
    """``{shift: evaluate(maps, scores, shifted masks, labels, with_aupro=...)}`` for every name in
    ``shifts`` (an empty dict for none). ``masks`` (N, 1, H, W) move with a geometric shift; labels
    never change."""
    check_shift_names(shifts)
    if not shifts:
        return {}
    maps: dict[str, list[np.ndarray]] = {name: [] for name in shifts}
    scores: dict[str, list[np.ndarray]] = {name: [] for name in shifts}
    moved: dict[str, list[np.ndarray]] = {name: [] for name in shifts}
    for index, batch in zip(
        sequential_batches(len(images), batch_size),
        iter_batches(images, sequential_batches(len(images), batch_size)),
    ):
        batch_masks = torch.from_numpy(np.asarray(masks[index[0]: index[-1] + 1], np.float32))
        for name in shifts:
            shifted, shifted_masks = apply_shift(name, batch, batch_masks, seed=seed + index[0])
            batch_maps, batch_scores = predict(shifted)
            maps[name].append(batch_maps)
            scores[name].append(batch_scores)
            moved[name].append((shifted_masks > 0.5).numpy().astype(np.uint8))
    return {
        name: evaluate(
            np.concatenate(maps[name]), np.concatenate(scores[name]), np.concatenate(moved[name]), labels,
            with_aupro=with_aupro,
        )
        for name in shifts
    }
