"""Shared pieces of the data package: sample records, validation, splits and array loading.

A dataset loader turns a category into two lists of ``Sample`` (train normals, test images); the
dispatcher in ``suite.data`` validates them (``validate_samples``), splits off a validation set
(``split_train_val``) and returns a ``CategorySplits``. Pixels are only decoded by ``load_arrays``.

Errors are ``DatasetError`` (a ``ValueError``); a missing file or folder raises
``DatasetNotFoundError``, which is also a ``FileNotFoundError``. Every message names the file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from suite.data.transforms import image_to_rgb_float, mask_to_binary, resize_mask

ENV_DATA_DIR = "RCSUITE_DATA_DIR"  # folder holding real datasets (default: <repo>/../shared/data)
ENV_CACHE_DIR = "RCSUITE_CACHE"  # folder for generated data (default: ~/.cache/rcsuite)

# Extensions (lower case) counted as images when scanning folders; other files (READMEs,
# Thumbs.db, .DS_Store) are ignored.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class DatasetError(ValueError):
    """Invalid dataset content or layout; the message names the offending file or folder."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A required dataset file or folder does not exist."""


@dataclass
class Sample:
    image_path: str
    mask_path: str | None  # None for normal images (their mask is all zeros)
    label: int  # 0 good, 1 anomalous
    defect: str  # "good" or the defect type
    category: str


@dataclass
class CategorySplits:
    category: str
    dataset: str
    root: str
    train: list[Sample] = field(default_factory=list)  # normals used for training
    val: list[Sample] = field(default_factory=list)  # held-out normals (deterministic given the seed)
    calib: list[Sample] = field(default_factory=list)  # held-out normals for scoring statistics
    test: list[Sample] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Sizes of the splits, e.g. for logging: train, val, test, test_good, test_anomalous."""
        anomalous = sum(s.label for s in self.test)
        return {
            "train": len(self.train),
            "val": len(self.val),
            "calib": len(self.calib),
            "test": len(self.test),
            "test_good": len(self.test) - anomalous,
            "test_anomalous": anomalous,
        }

    def defect_types(self) -> list[str]:
        return sorted({s.defect for s in self.test if s.label == 1})


# ----------------------------------------------------------------------------------------------
# locations


def shared_data_dir() -> Path:
    """Where real datasets live: ``$RCSUITE_DATA_DIR``, else ``<repo>/../shared/data``."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    import suite

    return Path(suite.__file__).resolve().parents[1].parent / "shared" / "data"


def default_cache_dir() -> Path:
    """Where generated data is cached: ``$RCSUITE_CACHE``, else ``~/.cache/rcsuite``."""
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "rcsuite"


# ----------------------------------------------------------------------------------------------
# scanning helpers


def is_image_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def list_image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (hidden and non-image files skipped)."""
    return sorted((p for p in Path(folder).iterdir() if is_image_file(p)), key=lambda p: p.name)


def list_subfolders(folder: Path) -> list[Path]:
    folders = (p for p in Path(folder).iterdir() if p.is_dir() and not p.name.startswith("."))
    return sorted(folders, key=lambda p: p.name)


def require_dir(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        reason = "is not a folder" if path.exists() else "does not exist"
        raise DatasetNotFoundError(f"{what} {path} {reason}")
    return path


def require_known_category(category: str, valid: Sequence[str], dataset: str) -> None:
    if category not in valid:
        raise DatasetError(f"unknown {dataset} category {category!r}; valid categories: {', '.join(valid)}")


# ----------------------------------------------------------------------------------------------
# validation


def read_image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` from the file header, after ``PIL.Image.verify`` (which, for PNG, walks
    every chunk and so catches truncated files without decoding pixels)."""
    try:
        with Image.open(path) as image:
            size = image.size
            image.verify()
    except FileNotFoundError as err:
        raise DatasetNotFoundError(f"image file {path} does not exist") from err
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DatasetError(f"cannot read image {path}: {err}") from err
    return size


def validate_samples(samples: Iterable[Sample]) -> None:
    """Check, without decoding pixels, that every image and mask exists and is a readable image,
    that every anomalous sample has a mask and that each mask has its image's size."""
    for sample in samples:
        image_size = read_image_size(sample.image_path)
        if sample.mask_path is None:
            if sample.label == 1:
                raise DatasetNotFoundError(f"mask missing for defective image {sample.image_path}")
            continue
        mask_size = read_image_size(sample.mask_path)
        if mask_size != image_size:
            raise DatasetError(
                f"mask {sample.mask_path} is {mask_size[0]}x{mask_size[1]} but its image "
                f"{sample.image_path} is {image_size[0]}x{image_size[1]}"
            )


# ----------------------------------------------------------------------------------------------
# splits


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def split_train_val(
    normals: Sequence[Sample], val_fraction: float, data_fraction: float = 1.0, seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """``(train, val)`` of ``split_normals`` with no calibration split."""
    train, val, _ = split_normals(normals, val_fraction, 0.0, data_fraction, seed)
    return train, val


def split_normals(
    normals: Sequence[Sample], val_fraction: float, calib_fraction: float = 0.0, data_fraction: float = 1.0,
    seed: int = 0,
) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """Deterministic ``(train, val, calib)`` split of the training normals.

    The normals are sorted by path and permuted with ``numpy.random.default_rng(seed)``. The first
    ``n_val = round(val_fraction * n)`` of the permutation (at least 1 when ``val_fraction > 0`` and
    ``n >= 2``, at most ``n - 1``) form ``val``; the next ``n_calib = round(calib_fraction * n)``
    (at least 2 when ``calib_fraction > 0``, and only while at least 2 normals remain for training)
    form ``calib``, the held-out normals scoring statistics are fitted on; ``train`` is the first
    ``max(1, round(data_fraction * rest))`` of the rest. So ``val`` and ``calib`` do not depend on
    ``data_fraction``, and a smaller ``data_fraction`` gives a subset of a larger one's train set.
    Lists are returned in path order.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not 0.0 <= calib_fraction < 1.0:
        raise ValueError(f"calib_fraction must be in [0, 1), got {calib_fraction}")
    if not 0.0 < data_fraction <= 1.0:
        raise ValueError(f"data_fraction must be in (0, 1], got {data_fraction}")
    ordered = sorted(normals, key=lambda s: s.image_path)
    n = len(ordered)
    if n == 0:
        raise DatasetError("no training normals to split")
    n_val = 0
    if val_fraction > 0 and n >= 2:
        n_val = min(max(1, _round_half_up(val_fraction * n)), n - 1)
    n_calib = 0
    if calib_fraction > 0 and n - n_val >= 4:
        n_calib = min(max(2, _round_half_up(calib_fraction * n)), n - n_val - 2)
    order = np.random.default_rng(seed).permutation(n)
    val_idx = order[:n_val]
    calib_idx = order[n_val : n_val + n_calib]
    rest = order[n_val + n_calib :]
    n_train = max(1, _round_half_up(data_fraction * len(rest)))
    train_idx = rest[:n_train]

    def pick(idx: np.ndarray) -> list[Sample]:
        return [ordered[i] for i in sorted(idx)]

    return pick(train_idx), pick(val_idx), pick(calib_idx)


# ----------------------------------------------------------------------------------------------
# pixels


def _decode(path: str, convert):
    try:
        with Image.open(path) as image:
            image.load()
            return convert(image)
    except FileNotFoundError as err:
        raise DatasetNotFoundError(f"image file {path} does not exist") from err
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DatasetError(f"cannot decode image {path}: {err}") from err


def read_image(path: str, image_size: int | None = None) -> np.ndarray:
    """One image as float32 ``(3, H, W)`` in [0, 1], resized to ``image_size`` when given."""
    return _decode(path, lambda image: image_to_rgb_float(image, image_size))


def read_mask(path: str | None, image_size: int) -> np.ndarray:
    """One mask as float32 ``(1, S, S)`` in {0, 1} with ``S = image_size``; ``path=None`` gives zeros."""
    if path is None:
        return np.zeros((1, image_size, image_size), np.float32)
    binary = _decode(path, mask_to_binary)
    return resize_mask(binary, image_size)[None].astype(np.float32)


def load_arrays(samples: Sequence[Sample], image_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode ``samples`` into ``(images, masks, labels)``.

    images float32 ``(N, 3, S, S)`` in [0, 1] (bilinear, antialiased resize; gray -> 3 channels;
    alpha dropped), masks float32 ``(N, 1, S, S)`` in {0, 1} (``pixel > 0`` is anomalous;
    nearest-neighbour resize; all zeros for good samples), labels int64 ``(N,)``. ``S = image_size``.
    """
    if image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    n = len(samples)
    images = np.empty((n, 3, image_size, image_size), np.float32)
    masks = np.zeros((n, 1, image_size, image_size), np.float32)
    labels = np.empty((n,), np.int64)
    for i, sample in enumerate(samples):
        images[i] = read_image(sample.image_path, image_size)
        if sample.mask_path is not None:
            masks[i] = read_mask(sample.mask_path, image_size)
        elif sample.label == 1:
            raise DatasetNotFoundError(f"mask missing for defective image {sample.image_path}")
        labels[i] = sample.label
    return images, masks, labels
