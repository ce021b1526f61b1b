"""Datasets: MVTec AD, VisA, user folders in the MVTec layout and built-in synthetic categories.

``load_category(data_cfg, seed)`` returns a ``CategorySplits`` of file references (train / val
normals, test images with masks), validated without decoding pixels; ``load_arrays(samples, size)``
decodes them into float arrays; ``suite.data.streaming`` (``FileImages``, ``ImageCache``; it needs
torch, so this package does not import it) decodes them on demand behind a byte-budgeted cache, as
``run_training`` does.
``list_categories(dataset, root)`` reports which categories exist.
Every dataset is one ``DatasetSpec`` in ``suite.data.registry``; the functions here look it up.

Real data lives under ``shared_data_dir()`` (``$RCSUITE_DATA_DIR``, default ``<repo>/../shared/data``);
generated data under ``$RCSUITE_CACHE`` (default ``~/.cache/rcsuite``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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
    resolve_inside,
    shared_data_dir,
    split_normals,
    split_train_val,
    validate_samples,
)
from suite.data.mvtec import MVTEC_CATEGORIES, MVTEC_GRAYSCALE, MVTEC_OBJECTS, MVTEC_TEXTURES
from suite.data.registry import (
    DatasetSpec,
    dataset_names,
    dataset_spec,
    dataset_specs,
    register_dataset,
    unregister_dataset,
)
from suite.data.synthetic import SYNTHETIC_CATEGORIES, synthetic_root
from suite.data.transforms import SoftMaskWarning
from suite.data.visa import VISA_CATEGORIES

if TYPE_CHECKING:
    from suite.config import DataConfig

__all__ = [
    "MVTEC_CATEGORIES",
    "MVTEC_GRAYSCALE",
    "MVTEC_OBJECTS",
    "MVTEC_TEXTURES",
    "SYNTHETIC_CATEGORIES",
    "VISA_CATEGORIES",
    "CategorySplits",
    "DatasetError",
    "DatasetNotFoundError",
    "DatasetSpec",
    "Sample",
    "SoftMaskWarning",
    "category_samples",
    "check_layout",
    "dataset_names",
    "dataset_spec",
    "dataset_specs",
    "default_cache_dir",
    "list_categories",
    "load_arrays",
    "load_category",
    "read_image",
    "read_mask",
    "register_dataset",
    "resolve_inside",
    "shared_data_dir",
    "split_normals",
    "split_train_val",
    "synthetic_root",
    "unregister_dataset",
    "validate_samples",
]


def list_categories(dataset: str, root: str | Path | None = None) -> list[tuple[str, bool]]:
    """``(category, present)`` for every known category of ``dataset``.

    mvtec / visa: the standard categories, present when found under ``root`` (``root=None``:
    ``shared_data_dir()/"mvtec"`` resp. ``"visa"``). folder: the sub-folders of ``root`` with
    ``train/good`` (all present; none when ``root`` is None or missing). synthetic: always present,
    since the categories are generated on demand. Other datasets: their spec's ``list_categories``.
    """
    return dataset_spec(dataset).list_categories(root)


def check_layout(dataset: str, root: str | Path | None) -> None:
    """Check that ``root`` is laid out as ``dataset`` expects, without opening images; raises
    ``DatasetError`` / ``DatasetNotFoundError`` naming the bad path. A dataset without a layout
    check (synthetic) accepts any root."""
    spec = dataset_spec(dataset)
    if root is None:
        if spec.needs_root:
            raise DatasetError(f"dataset {dataset!r} needs a root folder (data.root)")
        return
    if spec.check_layout is not None:
        spec.check_layout(root)


def category_samples(
    dataset: str, root: str | Path | None, category: str, image_size: int = 128
) -> tuple[str, list[Sample], list[Sample]]:
    """``(root, train_normals, test)`` of one category, unvalidated and unsplit. For synthetic,
    ``root`` is the cache folder (None = default) and the returned root is the generated tree.
    A dataset with a fixed category list rejects other category names before loading."""
    spec = dataset_spec(dataset)
    if spec.needs_root and root is None:
        raise DatasetError(f"dataset {dataset!r} needs a root folder (data.root)")
    if spec.categories:
        require_known_category(category, spec.categories, dataset)
    resolved, train, test = spec.load(None if root is None else str(root), category, image_size)
    return str(resolved), train, test


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
