"""Datasets: MVTec AD, VisA, user folders in the MVTec layout and built-in synthetic categories.

``load_category(data_cfg, seed)`` returns a ``CategorySplits`` of file references (train / val
normals, test images with masks), validated without decoding pixels; ``load_arrays(samples, size)``
decodes them into float arrays. ``list_categories(dataset, root)`` reports which categories exist.

Real data lives under ``shared_data_dir()`` (``$RCSUITE_DATA_DIR``, default ``<repo>/../shared/data``);
generated data under ``$RCSUITE_CACHE`` (default ``~/.cache/rcsuite``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from suite.config import DATASETS
from suite.data.common import (
    CategorySplits,
    DatasetError,
    DatasetNotFoundError,
    Sample,
    default_cache_dir,
    load_arrays,
    read_image,
    read_mask,
    require_known_category,
    shared_data_dir,
    split_normals,
    split_train_val,
    validate_samples,
)
from suite.data.folder import list_folder_categories, load_folder_samples
from suite.data.mvtec import (
    MVTEC_CATEGORIES,
    MVTEC_GRAYSCALE,
    MVTEC_OBJECTS,
    MVTEC_TEXTURES,
    list_mvtec_categories,
    load_mvtec_samples,
    scan_mvtec_layout,
)
from suite.data.synthetic import SYNTHETIC_CATEGORIES, synthetic_image_size, synthetic_root
from suite.data.visa import VISA_CATEGORIES, list_visa_categories, load_visa_samples

if TYPE_CHECKING:
    from suite.config import DataConfig

DATASET_NAMES = DATASETS  # mvtec, visa, folder, synthetic

__all__ = [
    "DATASET_NAMES",
    "MVTEC_CATEGORIES",
    "MVTEC_GRAYSCALE",
    "MVTEC_OBJECTS",
    "MVTEC_TEXTURES",
    "SYNTHETIC_CATEGORIES",
    "VISA_CATEGORIES",
    "CategorySplits",
    "DatasetError",
    "DatasetNotFoundError",
    "Sample",
    "category_samples",
    "default_cache_dir",
    "list_categories",
    "load_arrays",
    "load_category",
    "read_image",
    "read_mask",
    "shared_data_dir",
    "split_normals",
    "split_train_val",
    "synthetic_root",
    "validate_samples",
]


def _unknown_dataset(dataset: str) -> DatasetError:
    return DatasetError(f"unknown dataset {dataset!r}; valid datasets: {', '.join(DATASET_NAMES)}")


def list_categories(dataset: str, root: str | Path | None = None) -> list[tuple[str, bool]]:
    """``(category, present)`` for every known category of ``dataset``.

    mvtec / visa: the standard categories, present when found under ``root`` (``root=None``:
    ``shared_data_dir()/"mvtec"`` resp. ``"visa"``). folder: the sub-folders of ``root`` with
    ``train/good`` (all present; none when ``root`` is None or missing). synthetic: always present,
    since the categories are generated on demand.
    """
    if dataset == "mvtec":
        return list_mvtec_categories(root if root is not None else shared_data_dir() / "mvtec")
    if dataset == "visa":
        return list_visa_categories(root if root is not None else shared_data_dir() / "visa")
    if dataset == "folder":
        if root is None or not Path(root).is_dir():
            return []
        return [(name, True) for name in list_folder_categories(root)]
    if dataset == "synthetic":
        return [(name, True) for name in SYNTHETIC_CATEGORIES]
    raise _unknown_dataset(dataset)


def category_samples(
    dataset: str, root: str | Path | None, category: str, image_size: int = 128
) -> tuple[str, list[Sample], list[Sample]]:
    """``(root, train_normals, test)`` of one category, unvalidated and unsplit. For synthetic,
    ``root`` is the cache folder (None = default) and the returned root is the generated tree."""
    if dataset == "synthetic":
        require_known_category(category, SYNTHETIC_CATEGORIES, "synthetic")
        tree = synthetic_root(cache_dir=root, image_size=synthetic_image_size(image_size))
        train, test = scan_mvtec_layout(tree, category, "synthetic")
        return tree, train, test
    if root is None:
        raise DatasetError(f"dataset {dataset!r} needs a root folder (data.root)")
    if dataset == "mvtec":
        train, test = load_mvtec_samples(root, category)
    elif dataset == "visa":
        train, test = load_visa_samples(root, category)
    elif dataset == "folder":
        train, test = load_folder_samples(root, category)
    else:
        raise _unknown_dataset(dataset)
    return os.path.abspath(root), train, test


def load_category(data_cfg: DataConfig, seed: int = 0) -> CategorySplits:
    """Find, validate and split one category described by ``data_cfg``.

    Validation opens every image and mask header (existence, readability, truncated PNGs, mask
    size equal to image size); pixels are decoded later by ``load_arrays``. The train normals are
    split by ``split_normals(normals, val_fraction, calib_fraction, data_fraction, seed)``.
    """
    root, train_normals, test = category_samples(
        data_cfg.dataset, data_cfg.root, data_cfg.category, data_cfg.image_size
    )
    validate_samples(train_normals)
    validate_samples(test)
    train, val, calib = split_normals(
        train_normals, data_cfg.val_fraction, data_cfg.calib_fraction, data_cfg.data_fraction, seed
    )
    return CategorySplits(
        category=data_cfg.category, dataset=data_cfg.dataset, root=root, train=train, val=val, calib=calib,
        test=test,
    )
