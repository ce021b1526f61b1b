"""A user's own data in the MVTec layout: ``<root>/<category>/{train/good, test/<defect>, ground_truth}``.

Any sub-folder of ``root`` that has ``train/good`` is a category. Scanning is shared with MVTec
(``suite.data.mvtec.scan_mvtec_layout``), and so is its rule that nothing used may lead out of
``root`` (a category name with ``..`` or an absolute one, a symbolic link pointing outside: see
``suite.data.common.resolve_inside``).
"""

from __future__ import annotations

from pathlib import Path

from suite.data.common import DatasetError, DatasetNotFoundError, Sample, list_subfolders, require_dir, resolve_inside
from suite.data.mvtec import check_category_layout, looks_like_mvtec_category, scan_mvtec_layout


def list_folder_categories(root: str | Path) -> list[str]:
    """Names of the sub-folders of ``root`` laid out like an MVTec category (sorted)."""
    root = require_dir(Path(root), "folder dataset root")
    return [p.name for p in list_subfolders(root) if looks_like_mvtec_category(p)]


def load_folder_samples(root: str | Path, category: str) -> tuple[list[Sample], list[Sample]]:
    """``(train_normals, test)`` for ``<root>/<category>``.

    A category folder that exists but lacks ``train/good`` gets the layout error naming the missing
    folder; a name with no folder at all gets the list of categories found under ``root``.
    """
    root = require_dir(Path(root), "folder dataset root")
    if not resolve_inside(root, category, f"folder dataset root {root}", "category folder").is_dir():
        found = list_folder_categories(root)
        raise DatasetError(
            f"unknown category {category!r}: no folder {root / category}; "
            f"categories found under {root}: {', '.join(found) or 'none (a category needs train/good)'}"
        )
    return scan_mvtec_layout(root, category, "folder")


def check_folder_layout(root: str | Path) -> None:
    """Raise naming the bad path unless ``root`` is a folder with at least one category
    (a sub-folder with ``train/good``), each of which also has ``test``."""
    root = require_dir(Path(root), "folder dataset root")
    categories = list_folder_categories(root)
    if not categories:
        raise DatasetNotFoundError(
            f"no category under folder dataset root {root}: a category is a sub-folder with train/good "
            f"(e.g. {root / '<category>' / 'train' / 'good'})"
        )
    for name in categories:
        check_category_layout(root / name, root)
