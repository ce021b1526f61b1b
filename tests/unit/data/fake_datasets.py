"""Builders of tiny on-disk datasets (MVTec layout, VisA layout) for the data tests.

Loaded by ``tests/unit/data/conftest.py`` from its file path (no package imports needed) and
exposed through the ``fake`` fixture. Image content is a deterministic function of the file index,
so tests can predict pixel values.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image


def pixel_value(index: int) -> int:
    """The uniform gray level written into image number ``index`` (distinct for index < 200)."""
    return 20 + index


def write_image(
    path: Path, size: tuple[int, int] = (24, 24), value: int = 128, mode: str = "RGB", fmt: str | None = None
) -> Path:
    """A uniform image of ``size = (width, height)``; the first channel holds ``value``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    if mode == "L":
        array = np.full((h, w), value, np.uint8)
    elif mode == "RGBA":
        array = np.zeros((h, w, 4), np.uint8)
        array[..., 0], array[..., 1], array[..., 2], array[..., 3] = value, 255 - value, 7, 31
    else:
        array = np.zeros((h, w, 3), np.uint8)
        array[..., 0], array[..., 1], array[..., 2] = value, 255 - value, 7
    Image.fromarray(array).save(path, format=fmt)
    return path


def write_mask(
    path: Path, size: tuple[int, int] = (24, 24), box: tuple[int, int, int, int] = (4, 4, 12, 12), value: int = 255
) -> Path:
    """A mask that is ``value`` inside ``box = (x0, y0, x1, y1)`` (exclusive ends) and 0 elsewhere."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    array = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = box
    array[y0:y1, x0:x1] = value
    Image.fromarray(array).save(path)
    return path


def make_mvtec_category(
    root: Path,
    category: str = "bottle",
    n_train: int = 10,
    n_test_good: int = 2,
    defects: dict[str, int] | None = None,
    size: tuple[int, int] = (24, 24),
    mode: str = "RGB",
    mask_value: int = 255,
) -> Path:
    """``root/category`` in the MVTec layout; returns the category folder."""
    defects = {"crack": 2, "stain": 1} if defects is None else defects
    cat = Path(root) / category
    for i in range(n_train):
        write_image(cat / "train" / "good" / f"{i:03d}.png", size, pixel_value(i), mode)
    for i in range(n_test_good):
        write_image(cat / "test" / "good" / f"{i:03d}.png", size, pixel_value(100 + i), mode)
    for defect, count in defects.items():
        for i in range(count):
            write_image(cat / "test" / defect / f"{i:03d}.png", size, pixel_value(150 + i), mode)
            write_mask(cat / "ground_truth" / defect / f"{i:03d}_mask.png", size, value=mask_value)
    return cat


def make_visa(
    root: Path,
    categories: tuple[str, ...] = ("candle",),
    n_train: int = 6,
    n_test_good: int = 2,
    n_anomaly: int = 3,
    size: tuple[int, int] = (32, 24),
    mask_value: int = 1,
    columns: tuple[str, ...] = ("object", "split", "label", "image", "mask"),
    extra_rows: list[dict[str, str]] | None = None,
) -> Path:
    """VisA's layout (JPG images, PNG masks with class-id values) plus ``split_csv/1cls.csv``;
    returns the CSV path. Normal file names are shared by train and test as in VisA (distinct
    indices)."""
    root = Path(root)
    rows: list[dict[str, str]] = []
    for category in categories:
        images = Path(category) / "Data" / "Images"
        masks = Path(category) / "Data" / "Masks" / "Anomaly"
        for i in range(n_train + n_test_good):
            rel = images / "Normal" / f"{i:04d}.JPG"
            write_image(root / rel, size, pixel_value(i), fmt="JPEG")
            split = "train" if i < n_train else "test"
            rows.append({"object": category, "split": split, "label": "normal", "image": str(rel), "mask": ""})
        for i in range(n_anomaly):
            rel = images / "Anomaly" / f"{i:03d}.JPG"
            mask_rel = masks / f"{i:03d}.png"
            write_image(root / rel, size, pixel_value(150 + i), fmt="JPEG")
            write_mask(root / mask_rel, size, value=mask_value)
            row = {"object": category, "split": "test", "label": "anomaly", "image": str(rel), "mask": str(mask_rel)}
            rows.append(row)
    rows.extend(extra_rows or [])
    csv_path = root / "split_csv" / "1cls.csv"
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return csv_path


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path
