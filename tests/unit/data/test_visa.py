"""VisA loader on generated trees in VisA's layout (suite/data/visa.py)."""

from __future__ import annotations

import numpy as np
import pytest

from suite.config import DataConfig
from suite.data import VISA_CATEGORIES, DatasetError, DatasetNotFoundError, list_categories, load_arrays, load_category


def visa_cfg(root, category="candle", **kw) -> DataConfig:
    kw.setdefault("image_size", 16)
    kw.setdefault("val_fraction", 0.0)
    kw.setdefault("calib_fraction", 0.0)
    return DataConfig(dataset="visa", root=str(root), category=category, **kw)


def test_category_constants():
    assert VISA_CATEGORIES == (
        "candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2",
        "pcb1", "pcb2", "pcb3", "pcb4", "pipe_fryum",
    )  # fmt: skip


def test_load_generated_visa(tmp_path, fake):
    fake.make_visa(tmp_path, ("candle", "pcb1"), n_train=6, n_test_good=2, n_anomaly=3, mask_value=1)
    splits = load_category(visa_cfg(tmp_path, "pcb1"))
    assert len(splits.train) == 6 and len(splits.test) == 5
    assert all(s.category == "pcb1" and "/pcb1/" in s.image_path for s in splits.train + splits.test)
    assert [s.label for s in splits.test] == [0, 0, 1, 1, 1]
    assert {s.defect for s in splits.test} == {"good", "anomaly"}
    images, masks, labels = load_arrays(splits.test, 16)
    assert images.shape == (5, 3, 16, 16) and labels.tolist() == [0, 0, 1, 1, 1]
    # class-id masks (value 1, not 255) are anomalous wherever > 0
    assert masks[:2].sum() == 0 and (masks[2:].reshape(3, -1).max(axis=1) == 1).all()
    assert set(np.unique(masks)) == {0.0, 1.0}


def test_val_split_from_train_normals(tmp_path, fake):
    fake.make_visa(tmp_path, ("candle",), n_train=10)
    splits = load_category(visa_cfg(tmp_path, val_fraction=0.3), seed=1)
    assert len(splits.val) == 3 and len(splits.train) == 7
    assert not {s.image_path for s in splits.val} & {s.image_path for s in splits.train}


def test_list_categories(tmp_path, fake):
    fake.make_visa(tmp_path, ("cashew", "pcb4"))
    listed = dict(list_categories("visa", tmp_path))
    assert list(listed) == list(VISA_CATEGORIES)
    assert {c for c, present in listed.items() if present} == {"cashew", "pcb4"}
    assert not any(dict(list_categories("visa", tmp_path / "missing")).values())


def test_csv_missing_columns(tmp_path, fake):
    csv_path = fake.make_visa(tmp_path, columns=("object", "split", "image"))
    with pytest.raises(DatasetError, match="1cls.csv") as info:
        load_category(visa_cfg(tmp_path))
    assert "label" in str(info.value) and "mask" in str(info.value)
    assert csv_path.is_file()


def test_csv_missing(tmp_path, fake):
    csv_path = fake.make_visa(tmp_path)
    csv_path.unlink()
    with pytest.raises(DatasetNotFoundError, match="1cls.csv"):
        load_category(visa_cfg(tmp_path))


def test_unknown_category(tmp_path, fake):
    fake.make_visa(tmp_path)
    with pytest.raises(DatasetError, match="pcb9") as info:
        load_category(visa_cfg(tmp_path, "pcb9"))
    assert "pipe_fryum" in str(info.value)


def test_missing_category_folder(tmp_path, fake):
    fake.make_visa(tmp_path, ("candle",))
    with pytest.raises(DatasetNotFoundError, match="cashew"):
        load_category(visa_cfg(tmp_path, "cashew"))


def row(split: str, label: str, image: str, mask: str = "") -> dict[str, str]:
    return {"object": "candle", "split": split, "label": label, "image": image, "mask": mask}


NORMAL_0 = "candle/Data/Images/Normal/0000.JPG"


def test_missing_mask_path_for_anomaly(tmp_path, fake):
    extra = [row("test", "anomaly", NORMAL_0)]
    fake.make_visa(tmp_path, extra_rows=extra)
    with pytest.raises(DatasetNotFoundError, match="0000.JPG"):
        load_category(visa_cfg(tmp_path))


def test_missing_image_file_names_it_and_the_line(tmp_path, fake):
    extra = [row("train", "normal", "candle/Data/Images/Normal/9999.JPG")]
    fake.make_visa(tmp_path, extra_rows=extra)
    with pytest.raises(DatasetNotFoundError, match="9999.JPG") as info:
        load_category(visa_cfg(tmp_path))
    assert "line" in str(info.value)


def test_mask_file_missing(tmp_path, fake):
    fake.make_visa(tmp_path)
    (tmp_path / "candle" / "Data" / "Masks" / "Anomaly" / "001.png").unlink()
    with pytest.raises(DatasetNotFoundError, match="Anomaly/001.png"):
        load_category(visa_cfg(tmp_path))


def test_anomaly_in_train_split_rejected(tmp_path, fake):
    extra = [row("train", "anomaly", "candle/Data/Images/Anomaly/000.JPG", "candle/Data/Masks/Anomaly/000.png")]
    fake.make_visa(tmp_path, extra_rows=extra)
    with pytest.raises(DatasetError, match="train split"):
        load_category(visa_cfg(tmp_path))


def test_bad_label_value(tmp_path, fake):
    extra = [row("test", "weird", NORMAL_0)]
    fake.make_visa(tmp_path, extra_rows=extra)
    with pytest.raises(DatasetError, match="weird"):
        load_category(visa_cfg(tmp_path))


def test_mask_size_mismatch(tmp_path, fake):
    fake.make_visa(tmp_path, size=(32, 24))
    fake.write_mask(tmp_path / "candle" / "Data" / "Masks" / "Anomaly" / "002.png", (24, 24))
    with pytest.raises(DatasetError, match="Anomaly/002.png"):
        load_category(visa_cfg(tmp_path))


def test_truncated_jpeg_caught_at_load_arrays(tmp_path, fake):
    fake.make_visa(tmp_path, size=(64, 64))
    fake.truncate(tmp_path / "candle" / "Data" / "Images" / "Normal" / "0003.JPG", keep=0.9)
    splits = load_category(visa_cfg(tmp_path))  # the JPEG header survives the cut: found when decoding
    with pytest.raises(DatasetError, match="0003.JPG"):
        load_arrays(splits.train, 16)


def test_truncated_jpeg_header_caught_at_load_category(tmp_path, fake):
    fake.make_visa(tmp_path, size=(64, 64))
    fake.truncate(tmp_path / "candle" / "Data" / "Images" / "Normal" / "0003.JPG", keep=0.3)
    with pytest.raises(DatasetError, match="0003.JPG"):
        load_category(visa_cfg(tmp_path))
