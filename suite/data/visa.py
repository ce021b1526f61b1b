"""VisA, read through its one-class split file ``<root>/split_csv/1cls.csv``.

The CSV has the columns ``object, split, label, image, mask``; ``image`` and ``mask`` are paths
relative to ``root`` (VisA's layout is ``<category>/Data/Images/{Normal,Anomaly}/*.JPG`` and
``<category>/Data/Masks/Anomaly/*.png``), ``label`` is ``normal`` or ``anomaly`` and ``mask`` is
empty for normal images. Train = the ``train`` rows (all must be normal); test = the ``test`` rows.
VisA masks may hold class ids instead of 255: any value > 0 is anomalous. The one-class split names
no defect types, so anomalous samples get ``defect = "anomaly"``.

The split file and every ``image`` / ``mask`` path of a row go through
``suite.data.common.resolve_inside`` before anything is opened or tested: an absolute path, or one
whose real location (``..`` and symbolic links resolved) is outside the real ``root``, is a
``DatasetError`` naming the CSV, the line and the path as written.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from suite.data.common import (
    DatasetError,
    DatasetNotFoundError,
    Sample,
    require_dir,
    require_known_category,
    resolve_inside,
)

VISA_CATEGORIES = (
    "candle",
    "capsules",
    "cashew",
    "chewinggum",
    "fryum",
    "macaroni1",
    "macaroni2",
    "pcb1",
    "pcb2",
    "pcb3",
    "pcb4",
    "pipe_fryum",
)
VISA_SPLIT_CSV = Path("split_csv") / "1cls.csv"
VISA_COLUMNS = ("object", "split", "label", "image", "mask")
VISA_ANOMALY_DEFECT = "anomaly"


def _check_columns(csv_path: Path, fieldnames) -> None:
    columns = [name.strip() for name in (fieldnames or [])]
    missing = [c for c in VISA_COLUMNS if c not in columns]
    if missing:
        raise DatasetError(
            f"VisA split file {csv_path} lacks column(s) {', '.join(missing)}; "
            f"found: {', '.join(columns) or 'no header'}; required: {', '.join(VISA_COLUMNS)}"
        )


def _read_rows(csv_path: Path) -> list[tuple[int, dict[str, str]]]:
    """``(line_number, row)`` pairs with stripped keys and values; checks the header."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            _check_columns(csv_path, reader.fieldnames)
            rows = []
            for row in reader:
                clean = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
                rows.append((reader.line_num, clean))
            return rows
    except UnicodeDecodeError as err:
        raise DatasetError(f"VisA split file {csv_path} is not UTF-8 text: {err}") from err
    except csv.Error as err:
        raise DatasetError(f"VisA split file {csv_path} is not valid CSV: {err}") from err


def _split_csv(root: Path) -> Path:
    """``root/split_csv/1cls.csv``, checked to lead nowhere outside ``root`` and to exist."""
    csv_path = resolve_inside(root, VISA_SPLIT_CSV, f"visa root folder {root}", "split file")
    if not csv_path.is_file():
        raise DatasetNotFoundError(f"VisA split file {csv_path} does not exist")
    return csv_path


def _existing(root: Path, relative: str, csv_path: Path, line: int, what: str) -> str:
    # containment first: nothing outside the root is tested or opened
    path = resolve_inside(root, relative, f"VisA split file {csv_path} line {line}", what)
    if not path.is_file():
        raise DatasetNotFoundError(f"{what} {path} listed in {csv_path} line {line} does not exist")
    return str(path)


def load_visa_samples(root: str | Path, category: str) -> tuple[list[Sample], list[Sample]]:
    """``(train_normals, test)`` samples of one VisA category, in CSV order."""
    require_known_category(category, VISA_CATEGORIES, "visa")
    root = require_dir(Path(os.path.abspath(root)), "visa root folder")
    require_dir(root / category, "visa category folder")
    csv_path = _split_csv(root)

    train: list[Sample] = []
    test: list[Sample] = []
    for line, row in _read_rows(csv_path):
        if row["object"] != category:
            continue
        split, label = row["split"].lower(), row["label"].lower()
        if label not in ("normal", "anomaly"):
            raise DatasetError(f"{csv_path} line {line}: label {row['label']!r} is not 'normal' or 'anomaly'")
        if split not in ("train", "test"):
            raise DatasetError(f"{csv_path} line {line}: split {row['split']!r} is not 'train' or 'test'")
        if not row["image"]:
            raise DatasetError(f"{csv_path} line {line}: empty image path")
        image_path = _existing(root, row["image"], csv_path, line, "image")
        if label == "normal":
            sample = Sample(image_path, None, 0, "good", category)
            (train if split == "train" else test).append(sample)
            continue
        if split == "train":
            raise DatasetError(
                f"{csv_path} line {line}: anomalous image {image_path} in the train split "
                f"(the one-class split trains on normals only)"
            )
        if not row["mask"]:
            raise DatasetNotFoundError(f"mask missing for defective image {image_path} ({csv_path} line {line})")
        mask_path = _existing(root, row["mask"], csv_path, line, "mask")
        test.append(Sample(image_path, mask_path, 1, VISA_ANOMALY_DEFECT, category))

    if not train:
        raise DatasetError(f"category {category!r} is empty: no train rows for it in {csv_path}")
    if not test:
        raise DatasetError(f"category {category!r} has no test rows in {csv_path}")
    return train, test


def list_visa_categories(root: str | Path | None) -> list[tuple[str, bool]]:
    """Every VisA category and whether its folder and the split CSV exist under ``root``."""
    if root is None:
        return [(c, False) for c in VISA_CATEGORIES]
    root = Path(root)
    has_csv = (root / VISA_SPLIT_CSV).is_file()
    return [(c, has_csv and (root / c).is_dir()) for c in VISA_CATEGORIES]


def check_visa_layout(root: str | Path) -> None:
    """Raise naming the bad path unless ``root`` is a folder with the split file
    ``split_csv/1cls.csv`` (readable, with the required columns) and at least one VisA category
    folder. Rows and images are checked when a category is loaded."""
    root = require_dir(Path(os.path.abspath(root)), "visa root folder")
    csv_path = _split_csv(root)
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            _check_columns(csv_path, csv.DictReader(handle).fieldnames)
    except UnicodeDecodeError as err:
        raise DatasetError(f"VisA split file {csv_path} is not UTF-8 text: {err}") from err
    except csv.Error as err:
        raise DatasetError(f"VisA split file {csv_path} is not valid CSV: {err}") from err
    if not any((root / c).is_dir() for c in VISA_CATEGORIES):
        raise DatasetNotFoundError(
            f"no VisA category folder under {root} (expected e.g. {root / VISA_CATEGORIES[0]}; "
            f"categories: {', '.join(VISA_CATEGORIES)})"
        )
