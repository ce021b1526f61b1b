"""Soft masks warn instead of being thresholded silently; empty and undecodable files get named
errors (suite/data/transforms.py ``mask_to_binary``, suite/data/common.py ``read_mask`` /
``read_image_size`` / ``load_arrays``)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from suite.config import DataConfig
from suite.data import DatasetError, Sample, load_arrays, load_category, read_mask
from suite.data.common import read_image_size
from suite.data.transforms import SoftMaskWarning, mask_to_binary


def soft_mask(path: Path, size: int = 32) -> Path:
    """A 0/255 square made soft by a bilinear down- and up-scale: grey edges around it."""
    array = np.zeros((size, size), np.uint8)
    array[8:20, 8:20] = 255
    blurred = Image.fromarray(array).resize((size // 4, size // 4), Image.Resampling.BILINEAR)
    blurred = blurred.resize((size, size), Image.Resampling.BILINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    blurred.save(path)
    levels = np.unique(np.asarray(Image.open(path)))
    assert len(levels) > 2  # the fixture really is soft
    return path


def soft_mask_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, SoftMaskWarning)]


def read_recording(path: Path, size: int = 16) -> tuple[np.ndarray, list[str]]:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        mask = read_mask(str(path), size)
    return mask, soft_mask_warnings(record)


# ----------------------------------------------------------------------------------------------
# soft masks


@pytest.mark.parametrize("value", [255, 1, 3])  # MVTec 0/255, VisA 0/1, a single class id
def test_binary_masks_pass_silently(tmp_path, fake, value):
    path = fake.write_mask(tmp_path / f"m{value}.png", (32, 32), box=(4, 4, 12, 12), value=value)
    mask, messages = read_recording(path, 32)
    assert messages == []
    assert mask.sum() == 64 and set(np.unique(mask)) == {0.0, 1.0}


def test_all_zero_mask_passes_silently(tmp_path, fake):
    path = fake.write_mask(tmp_path / "empty_defect.png", (16, 16), box=(0, 0, 0, 0))
    _, messages = read_recording(path)
    assert messages == []


def test_soft_mask_warns_naming_the_file_and_the_rule_once(tmp_path):
    path = soft_mask(tmp_path / "ground_truth" / "crack" / "000_mask.png")
    values = np.asarray(Image.open(path))
    levels = len(np.unique(values))
    mask, messages = read_recording(path, 32)
    assert len(messages) == 1
    message = messages[0]
    assert str(path) in message and f"{levels} grey levels" in message
    assert "> 0" in message and "rule" in message
    faint = int(((values > 0) & (values < values.max() / 2)).sum())
    assert re.search(rf"\b{faint} of its {int((values > 0).sum())} marked pixels", message)
    # the documented rule: still thresholded at > 0
    np.testing.assert_array_equal(mask[0] > 0, values > 0)
    _, again = read_recording(path, 32)
    assert again == []  # once per file


def test_soft_mask_warns_through_load_arrays(tmp_path, fake):
    image = fake.write_image(tmp_path / "img.png", (32, 32))
    path = soft_mask(tmp_path / "img_mask.png")
    with pytest.warns(SoftMaskWarning, match=re.escape(str(path))):
        load_arrays([Sample(str(image), str(path), 1, "x", "c")], 16)


def test_palette_label_masks_are_not_soft():
    # palette indices are class ids, never blended grey levels
    palette = Image.fromarray(np.array([[0, 2], [1, 3]], np.uint8), mode="L").convert("P")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert mask_to_binary(palette, source="labels.png").tolist() == [[False, True], [True, True]]
    assert soft_mask_warnings(record) == []
    gray = Image.fromarray(np.array([[0, 2], [1, 3]], np.uint8), mode="L")
    with pytest.warns(SoftMaskWarning, match="4 grey levels"):
        mask_to_binary(gray, source="gray_ids.png")


# ----------------------------------------------------------------------------------------------
# empty and undecodable files


def mvtec_cfg(root: Path) -> DataConfig:
    return DataConfig(dataset="mvtec", root=str(root), category="bottle", image_size=16, val_fraction=0.0,
                      calib_fraction=0.0)


def test_empty_image_is_called_empty(tmp_path, fake):
    cat = fake.make_mvtec_category(tmp_path, "bottle", n_train=3)
    empty = cat / "train" / "good" / "001.png"
    empty.write_bytes(b"")
    with pytest.raises(DatasetError, match=re.escape(f"image file {empty} is empty")):
        load_category(mvtec_cfg(tmp_path))
    with pytest.raises(DatasetError, match=re.escape(f"image file {empty} is empty")):
        load_arrays([Sample(str(empty), None, 0, "good", "bottle")], 8)


def test_empty_mask_is_called_empty(tmp_path, fake):
    cat = fake.make_mvtec_category(tmp_path, "bottle", n_train=2, defects={"crack": 1})
    empty = cat / "ground_truth" / "crack" / "000_mask.png"
    empty.write_bytes(b"")
    with pytest.raises(DatasetError, match=re.escape(f"mask file {empty} is empty")):
        load_category(mvtec_cfg(tmp_path))
    image = cat / "test" / "crack" / "000.png"
    with pytest.raises(DatasetError, match=re.escape(f"mask file {empty} is empty")):
        load_arrays([Sample(str(image), str(empty), 1, "crack", "bottle")], 8)


def test_undecodable_mask_names_the_file_as_a_mask(tmp_path, fake):
    cat = fake.make_mvtec_category(tmp_path, "bottle", n_train=2, defects={"crack": 1}, size=(64, 64))
    junk = cat / "ground_truth" / "crack" / "000_mask.png"
    junk.write_bytes(b"this is no image")
    with pytest.raises(DatasetError, match=re.escape(f"cannot read mask {junk}")):
        load_category(mvtec_cfg(tmp_path))
    fake.write_mask(junk, (64, 64))
    fake.truncate(junk, keep=0.6)
    with pytest.raises(DatasetError, match=re.escape(f"mask {junk}")):
        load_arrays([Sample(str(cat / "test" / "crack" / "000.png"), str(junk), 1, "crack", "bottle")], 8)


def test_read_image_size_empty_and_missing(tmp_path):
    empty = tmp_path / "zero.png"
    empty.write_bytes(b"")
    with pytest.raises(DatasetError, match=r"zero\.png is empty \(0 bytes\)"):
        read_image_size(empty)
    with pytest.raises(FileNotFoundError, match="gone.png"):
        read_image_size(tmp_path / "gone.png", "mask")
