"""Shared pieces of the data package: sample records, validation, splits and array loading.

A dataset loader turns a category into two lists of ``Sample`` (train normals, test images); the
dispatcher in ``suite.data`` validates them (``validate_samples``), splits off a validation set
(``split_train_val``) and returns a ``CategorySplits``. Pixels are only decoded by ``read_image`` /
``read_mask``: all at once by ``load_arrays``, on demand by ``suite.data.streaming``.

Errors are ``DatasetError`` (a ``ValueError``); a missing file or folder raises
``DatasetNotFoundError``, which is also a ``FileNotFoundError``. Every message names the file.
An empty (0-byte) image or mask file is reported as empty; a file Pillow cannot identify or decode
is reported with its path and Pillow's reason.

Paths never leave the dataset root. Every path a loader takes from the dataset (a row of VisA's
split CSV, an entry found while scanning an MVTec-layout folder, a texture under a texture folder)
goes through ``resolve_inside(root, relative, source)`` before anything is opened or even tested
with ``exists()`` / ``is_file()``. It refuses an absolute path, a path whose ``..`` climb out
of ``root`` (without touching the disk), and a path whose real location (every symbolic link
followed, as ``Path.resolve()`` does, but with ``os.path.realpath``, which never ``stat``s the
target) is not inside the real location of ``root``; the ``DatasetError`` names ``source`` (e.g.
the CSV and its line), the path as given and where it really points. Symbolic links that stay
inside the root are followed as usual; a symlinked file or folder inside the root that points
outside it (a symlinked category, ``train/good`` or image) is refused like a ``../`` path: point
``data.root`` at the real location, or copy the files, instead. Scans skip hidden entries and
files without an image extension by name, so only entries a loader would use are resolved. The
root itself may be a symbolic link. (``suite.reporting.gallery`` applies the same helper to a
record's gallery artifact, with the record's folder as the root.)

Masks: ``pixel > 0`` is anomalous. A mask with at most two distinct values ({0, 255}, {0, 1},
all zeros) is binary and passes silently; any other mask (soft edges from a bilinear resize,
JPEG artefacts, several class ids) is still thresholded at ``> 0`` but ``read_mask`` emits a
``SoftMaskWarning`` naming the file (once per file per process); see ``suite.data.transforms``.
"""

from __future__ import annotations

import math
import os
import stat
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

import suite
from suite.data.transforms import image_to_rgb_float, mask_to_binary, resize_mask
from suite.errors import InputError

ENV_DATA_DIR = "RCSUITE_DATA_DIR"  # folder holding real datasets (default: <repo>/../shared/data)
ENV_CACHE_DIR = "RCSUITE_CACHE"  # folder for generated data (default: ~/.cache/rcsuite)

# Extensions (lower case) counted as images when scanning folders; other files (READMEs,
# Thumbs.db, .DS_Store) are ignored.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class DatasetError(ValueError, InputError):
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
    return Path(suite.__file__).resolve().parents[1].parent / "shared" / "data"


def default_cache_dir() -> Path:
    """Where generated data is cached: ``$RCSUITE_CACHE``, else ``~/.cache/rcsuite``."""
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "rcsuite"


# ----------------------------------------------------------------------------------------------
# containment: paths never leave the dataset root


def resolve_inside(
    root: str | Path,
    relative: str | Path,
    source: str,
    what: str = "file",
    error: type[Exception] | None = None,
    root_name: str = "root",
) -> Path:
    """``root / relative`` as an absolute path (``..`` collapsed, symbolic links kept), after
    checking, without opening anything, that it may be read.

    Raises ``error`` (default ``DatasetError``) naming ``source`` (where the path came from, e.g.
    ``"VisA split file /r/split_csv/1cls.csv line 7"``), ``what`` and the path as given when
    ``relative`` is absolute, when its ``..`` climb out of ``root`` (decided lexically), or when
    the real location of the path (every symbolic link followed, ``os.path.realpath``) is not
    inside the real location of ``root``. Whether the file exists is not checked (test that on
    the returned path; it is known to be inside by then). Raising touches no file outside ``root``
    beyond ``lstat`` / ``readlink`` of a symbolic link's target while resolving it. ``root_name``
    is what messages call ``root`` (e.g. "record folder").
    """
    error = DatasetError if error is None else error
    text = os.fspath(relative)
    if os.path.isabs(text):
        raise error(f"{source}: {what} path {text} is absolute; paths must be relative to the {root_name} {root}")
    root_abs = Path(os.path.abspath(root))
    joined = Path(os.path.abspath(root_abs / text))  # the path the loaders use ('..' collapsed)
    if not joined.is_relative_to(root_abs):  # '..' climbs out: refused without touching the disk
        raise error(
            f"{source}: {what} path {text} leads to {joined}, outside the {root_name} {root_abs}; "
            f"paths must stay inside the {root_name}"
        )
    # os.path.realpath only lstat()s and readlink()s: unlike Path.resolve() (which also stat()s the
    # result) it never follows a link to the file it points at.
    real_root = Path(os.path.realpath(root_abs))
    real = Path(os.path.realpath(joined))
    if not real.is_relative_to(real_root):  # (the root itself counts as inside)
        raise error(
            f"{source}: {what} path {text} leads through a symbolic link to {real}, outside the "
            f"{root_name} {real_root}; paths must stay inside the {root_name} (a symbolic link inside "
            f"it points out of it: use the real location as the {root_name}, or copy the files)"
        )
    return joined


# ----------------------------------------------------------------------------------------------
# scanning helpers


def is_image_file(path: Path) -> bool:
    return is_image_name(path) and path.is_file()


def is_image_name(path: Path) -> bool:
    """Not hidden and with an image extension (decided from the name alone, nothing is opened)."""
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def list_image_files(folder: Path, root: str | Path | None = None, source: str | None = None) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (hidden and non-image files skipped).

    With ``root`` (``folder`` must then be ``root / ...``), every candidate is first checked with
    ``resolve_inside(root, ..., source)``, so an image that is a symbolic link out of ``root``
    raises ``DatasetError`` before its target is touched.
    """
    folder = Path(folder)
    found = []
    for path in folder.iterdir():
        if not is_image_name(path):
            continue
        if root is not None:
            _check_entry(root, path, source, "image")
        if path.is_file():
            found.append(path)
    return sorted(found, key=lambda p: p.name)


def list_subfolders(folder: Path, root: str | Path | None = None, source: str | None = None) -> list[Path]:
    """Non-hidden folders directly inside ``folder``, sorted by name. With ``root``, every
    non-hidden entry is first checked with ``resolve_inside`` (see ``list_image_files``)."""
    folders = []
    for path in Path(folder).iterdir():
        if path.name.startswith("."):
            continue
        if root is not None:
            _check_entry(root, path, source, "folder entry")
        if path.is_dir():
            folders.append(path)
    return sorted(folders, key=lambda p: p.name)


def _check_entry(root: str | Path, path: Path, source: str | None, what: str) -> Path:
    """``resolve_inside`` for a path found by scanning under ``root`` (given as ``root / ...``)."""
    relative = Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
    return resolve_inside(root, relative, source or f"dataset root {root}", what)


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


# What Pillow raises for a file it cannot identify or decode (UnidentifiedImageError is an OSError;
# struct.error / EOFError come out of some plugins' header parsers).
_UNREADABLE = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)


def require_nonempty_file(path: str | Path, what: str = "image") -> None:
    """``DatasetNotFoundError`` if ``path`` does not exist, ``DatasetError`` calling it empty if it is
    a 0-byte file (Pillow would only say it "cannot identify" it)."""
    try:
        info = os.stat(path)
    except FileNotFoundError as err:
        raise DatasetNotFoundError(f"{what} file {path} does not exist") from err
    except OSError:
        return  # e.g. permission denied: opening it reports the reason with the path
    if stat.S_ISREG(info.st_mode) and info.st_size == 0:
        raise DatasetError(f"{what} file {path} is empty (0 bytes)")


def read_image_size(path: str | Path, what: str = "image") -> tuple[int, int]:
    """``(width, height)`` from the file header, after ``PIL.Image.verify`` (which, for PNG, walks
    every chunk and so catches truncated files without decoding pixels). ``what`` ("image",
    "mask") names the file's role in errors."""
    require_nonempty_file(path, what)
    try:
        with Image.open(path) as image:
            size = image.size
            image.verify()
    except FileNotFoundError as err:
        raise DatasetNotFoundError(f"{what} file {path} does not exist") from err
    except _UNREADABLE as err:
        raise DatasetError(f"cannot read {what} {path}: {err}") from err
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
        mask_size = read_image_size(sample.mask_path, "mask")
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


def _decode(path: str, convert, what: str = "image"):
    require_nonempty_file(path, what)
    try:
        with Image.open(path) as image:
            image.load()
            return convert(image)
    except FileNotFoundError as err:
        raise DatasetNotFoundError(f"{what} file {path} does not exist") from err
    except _UNREADABLE as err:
        raise DatasetError(f"cannot decode {what} {path}: {err}") from err


def read_image(path: str, image_size: int | None = None) -> np.ndarray:
    """One image as float32 ``(3, H, W)`` in [0, 1], resized to ``image_size`` when given."""
    return _decode(path, lambda image: image_to_rgb_float(image, image_size))


def read_mask(path: str | None, image_size: int) -> np.ndarray:
    """One mask as float32 ``(1, S, S)`` in {0, 1} with ``S = image_size``; ``path=None`` gives zeros.

    ``pixel > 0`` is anomalous; a mask with more than two distinct values gets a ``SoftMaskWarning``
    naming ``path`` (once per file; ``suite.data.transforms.mask_to_binary`` states the rule)."""
    if path is None:
        return np.zeros((1, image_size, image_size), np.float32)
    binary = _decode(path, lambda mask: mask_to_binary(mask, source=str(path)), "mask")
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
