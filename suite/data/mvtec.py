"""MVTec AD and everything stored in its folder layout (user folders, the synthetic categories).

Layout of one category::

    <root>/<category>/train/good/*.png
    <root>/<category>/test/good/*.png                      (label 0, no mask)
    <root>/<category>/test/<defect>/<stem>.png             (label 1)
    <root>/<category>/ground_truth/<defect>/<stem>_mask.png

``scan_mvtec_layout`` is the single implementation used by the mvtec, folder and synthetic
datasets. Grayscale categories (grid, screw, zipper) become 3 channels in ``load_arrays``.
Every folder, image and mask it uses is checked with ``suite.data.common.resolve_inside`` before
it is tested or opened: a category, folder, image or mask that is a symbolic link out of ``root``
is a ``DatasetError`` (see ``suite.data.common``).
"""

from __future__ import annotations

import os
from pathlib import Path

from suite.data.common import (
    IMAGE_EXTENSIONS,
    DatasetError,
    DatasetNotFoundError,
    Sample,
    list_image_files,
    list_subfolders,
    require_dir,
    require_known_category,
    resolve_inside,
)

MVTEC_TEXTURES = ("carpet", "grid", "leather", "tile", "wood")
MVTEC_OBJECTS = (
    "bottle",
    "cable",
    "capsule",
    "hazelnut",
    "metal_nut",
    "pill",
    "screw",
    "toothbrush",
    "transistor",
    "zipper",
)
MVTEC_CATEGORIES = MVTEC_TEXTURES + MVTEC_OBJECTS
MVTEC_GRAYSCALE = ("grid", "screw", "zipper")

GOOD = "good"


def looks_like_mvtec_category(folder: Path) -> bool:
    """A folder is a category in the MVTec layout when it has ``train/good``."""
    return (Path(folder) / "train" / GOOD).is_dir()


def find_mask(
    ground_truth_dir: Path, stem: str, root: str | Path | None = None, source: str | None = None
) -> Path | None:
    """The mask of test image ``<stem>``: ``<stem>_mask.png`` (MVTec's name), else
    ``<stem>_mask`` or ``<stem>`` with any image extension. With ``root`` (``ground_truth_dir``
    being ``root / ...``), each candidate is checked with ``resolve_inside`` before ``is_file``."""
    root_abs = None if root is None else os.path.abspath(root)

    def usable(candidate: Path) -> bool:
        if root_abs is not None:
            relative = Path(os.path.abspath(candidate)).relative_to(root_abs)
            resolve_inside(root_abs, relative, source or f"dataset root {root_abs}", "mask")
        return candidate.is_file()

    preferred = ground_truth_dir / f"{stem}_mask.png"
    if usable(preferred):
        return preferred
    for name in (f"{stem}_mask", stem):
        for ext in IMAGE_EXTENSIONS:
            for candidate in (ground_truth_dir / f"{name}{ext}", ground_truth_dir / f"{name}{ext.upper()}"):
                if usable(candidate):
                    return candidate
    return None


def scan_mvtec_layout(root: str | Path, category: str, dataset: str = "mvtec") -> tuple[list[Sample], list[Sample]]:
    """``(train_normals, test)`` samples of ``<root>/<category>`` (paths absolute, sorted).

    Raises ``DatasetNotFoundError`` for a missing root, category, ``train/good`` or ``test`` folder
    or a missing mask, and ``DatasetError`` when there are no training or no test images, or when
    a category, folder, image or mask leads out of ``root`` (absolute category name, ``..``,
    symbolic link; checked before it is opened).
    """
    root = require_dir(Path(os.path.abspath(root)), f"{dataset} root folder")
    source = f"{dataset} category {category!r} under {root}"

    def inside(*parts: str) -> Path:
        return resolve_inside(root, Path(*parts), source, "folder")

    category_dir = inside(category)
    if not category_dir.is_dir():
        present = [p.name for p in list_subfolders(root) if looks_like_mvtec_category(p)]
        raise DatasetNotFoundError(
            f"{dataset} category folder {category_dir} does not exist "
            f"(categories present under {root}: {', '.join(present) or 'none'})"
        )
    train_dir = require_dir(inside(category, "train", GOOD), "training folder")
    train_files = list_image_files(train_dir, root, source)
    if not train_files:
        raise DatasetError(f"category {category!r} is empty: no training images in {train_dir}")
    train = [Sample(str(p), None, 0, GOOD, category) for p in train_files]

    test_dir = require_dir(inside(category, "test"), "test folder")
    ground_truth_root = inside(category, "ground_truth")
    test: list[Sample] = []
    for defect_dir in list_subfolders(test_dir, root, source):
        defect = defect_dir.name
        for image_path in list_image_files(defect_dir, root, source):
            if defect == GOOD:
                test.append(Sample(str(image_path), None, 0, GOOD, category))
                continue
            mask_dir = inside(category, "ground_truth", defect)
            mask_path = find_mask(mask_dir, image_path.stem, root, source)
            if mask_path is None:
                expected = ground_truth_root / defect / f"{image_path.stem}_mask.png"
                raise DatasetNotFoundError(f"mask missing for defective image {image_path} (expected {expected})")
            test.append(Sample(str(image_path), str(mask_path), 1, defect, category))
    if not test:
        raise DatasetError(f"category {category!r} has no test images under {test_dir}")
    return train, test


def load_mvtec_samples(root: str | Path, category: str) -> tuple[list[Sample], list[Sample]]:
    require_known_category(category, MVTEC_CATEGORIES, "mvtec")
    return scan_mvtec_layout(root, category, "mvtec")


def list_mvtec_categories(root: str | Path | None) -> list[tuple[str, bool]]:
    """Every MVTec category and whether ``<root>/<category>/train/good`` exists."""
    return [(c, root is not None and looks_like_mvtec_category(Path(root) / c)) for c in MVTEC_CATEGORIES]


def check_category_layout(category_dir: str | Path, root: str | Path | None = None) -> None:
    """Raise ``DatasetNotFoundError`` naming the folder unless ``category_dir`` has ``train/good``
    and ``test`` (files are not opened; ``scan_mvtec_layout`` checks those). With ``root`` (the
    dataset root holding ``category_dir``), a category, ``train/good`` or ``test`` folder leading
    out of ``root`` is a ``DatasetError`` (``resolve_inside``)."""
    category_dir = Path(category_dir)
    if root is not None:
        relative = Path(os.path.abspath(category_dir)).relative_to(os.path.abspath(root))
        source = f"category folder {category_dir}"
        for parts in ((), ("train", GOOD), ("test",)):
            resolve_inside(root, relative.joinpath(*parts), source, "folder")
    require_dir(category_dir / "train" / GOOD, "training folder")
    require_dir(category_dir / "test", "test folder")


def check_mvtec_layout(root: str | Path) -> None:
    """Raise naming the bad path unless ``root`` is a folder holding at least one MVTec category,
    each category folder present having ``train/good`` and ``test``."""
    root = require_dir(Path(os.path.abspath(root)), "mvtec root folder")
    source = f"mvtec root folder {root}"
    present = [d for c in MVTEC_CATEGORIES if (d := resolve_inside(root, c, source, "category folder")).is_dir()]
    if not present:
        raise DatasetNotFoundError(
            f"no MVTec AD category folder under {root} (expected e.g. {root / MVTEC_CATEGORIES[0] / 'train' / GOOD}; "
            f"categories: {', '.join(MVTEC_CATEGORIES)})"
        )
    for category_dir in present:
        check_category_layout(category_dir, root)
