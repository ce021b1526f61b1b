"""MVTec loader on generated trees and on the real bottle data (suite/data/mvtec.py)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from suite.config import DataConfig
from suite.data import (
    MVTEC_CATEGORIES,
    MVTEC_TEXTURES,
    DatasetError,
    DatasetNotFoundError,
    list_categories,
    load_arrays,
    load_category,
)


def mvtec_cfg(root, category="bottle", **kw) -> DataConfig:
    kw.setdefault("image_size", 16)
    kw.setdefault("calib_fraction", 0.0)  # these tests count the loader's train/val split
    return DataConfig(dataset="mvtec", root=str(root), category=category, **kw)


def test_category_constants():
    assert MVTEC_CATEGORIES == (
        "carpet", "grid", "leather", "tile", "wood", "bottle", "cable", "capsule", "hazelnut",
        "metal_nut", "pill", "screw", "toothbrush", "transistor", "zipper",
    )  # fmt: skip
    assert MVTEC_TEXTURES == MVTEC_CATEGORIES[:5]


def test_load_generated_category(tmp_path, fake):
    fake.make_mvtec_category(tmp_path, "bottle", n_train=10, n_test_good=2, defects={"crack": 2, "stain": 1})
    splits = load_category(mvtec_cfg(tmp_path, val_fraction=0.2), seed=0)
    assert (splits.dataset, splits.category, splits.root) == ("mvtec", "bottle", str(tmp_path))
    assert len(splits.train) == 8 and len(splits.val) == 2 and len(splits.test) == 5
    assert all(s.label == 0 and s.mask_path is None and s.defect == "good" for s in splits.train + splits.val)
    good = [s for s in splits.test if s.label == 0]
    bad = [s for s in splits.test if s.label == 1]
    assert len(good) == 2 and all(s.mask_path is None for s in good)
    assert sorted(s.defect for s in bad) == ["crack", "crack", "stain"]
    for s in bad:
        assert s.mask_path.endswith(f"ground_truth/{s.defect}/{s.image_path[-7:-4]}_mask.png")
    images, masks, labels = load_arrays(splits.test, 16)
    assert images.shape == (5, 3, 16, 16) and labels.sum() == 3
    assert (masks.reshape(5, -1).max(axis=1) == labels).all()  # masks non-empty exactly for defects


def test_grayscale_category_becomes_three_channels(tmp_path, fake):
    fake.make_mvtec_category(tmp_path, "screw", n_train=3, mode="L")
    splits = load_category(mvtec_cfg(tmp_path, "screw", val_fraction=0.0))
    images, _, _ = load_arrays(splits.train, 8)
    assert images.shape == (3, 3, 8, 8)
    np.testing.assert_array_equal(images[:, 0], images[:, 1])
    np.testing.assert_array_equal(images[:, 0], images[:, 2])


def test_list_categories(tmp_path, fake):
    fake.make_mvtec_category(tmp_path, "bottle", n_train=1)
    fake.make_mvtec_category(tmp_path, "grid", n_train=1)
    listed = list_categories("mvtec", tmp_path)
    assert [name for name, _ in listed] == list(MVTEC_CATEGORIES)
    assert {name for name, present in listed if present} == {"bottle", "grid"}
    assert not any(present for _, present in list_categories("mvtec", tmp_path / "nowhere"))


# ----------------------------------------------------------------------------------------------
# bad inputs: every error names the file or folder


def test_unknown_category_lists_valid_ones(tmp_path, fake):
    fake.make_mvtec_category(tmp_path, "bottle", n_train=1)
    with pytest.raises(DatasetError, match="bottel") as info:
        load_category(mvtec_cfg(tmp_path, "bottel"))
    assert "carpet" in str(info.value) and "zipper" in str(info.value)


def test_missing_root(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="no_such_root"):
        load_category(mvtec_cfg(tmp_path / "no_such_root"))


def test_missing_category_folder(tmp_path, fake):
    fake.make_mvtec_category(tmp_path, "grid", n_train=1)
    with pytest.raises(DatasetNotFoundError, match="bottle") as info:
        load_category(mvtec_cfg(tmp_path, "bottle"))
    assert "grid" in str(info.value)  # says what is there


def test_missing_train_good(tmp_path, fake):
    cat = fake.make_mvtec_category(tmp_path, "bottle", n_train=1)
    shutil.rmtree(cat / "train" / "good")
    with pytest.raises(DatasetNotFoundError, match="train/good"):
        load_category(mvtec_cfg(tmp_path))


def test_empty_category(tmp_path, fake):
    cat = fake.make_mvtec_category(tmp_path, "bottle", n_train=0)
    (cat / "train" / "good").mkdir(parents=True)
    (cat / "train" / "good" / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetError, match="train/good"):
        load_category(mvtec_cfg(tmp_path))


def test_missing_test_folder(tmp_path, fake):
    cat = fake.make_mvtec_category(tmp_path, "bottle", n_train=2)
    shutil.rmtree(cat / "test")
    with pytest.raises(DatasetNotFoundError, match="test"):
        load_category(mvtec_cfg(tmp_path))


def test_missing_mask(tmp_path, fake):
    cat = fake.make_mvtec_category(tmp_path, "bottle", n_train=2, defects={"crack": 2})
    (cat / "ground_truth" / "crack" / "001_mask.png").unlink()
    with pytest.raises(DatasetNotFoundError, match="crack/001.png") as info:
        load_category(mvtec_cfg(tmp_path))
    assert "001_mask.png" in str(info.value)


def test_mask_size_differs_from_image(tmp_path, fake):
    cat = fake.make_mvtec_category(tmp_path, "bottle", n_train=2, defects={"crack": 1}, size=(24, 24))
    fake.write_mask(cat / "ground_truth" / "crack" / "000_mask.png", (24, 20))
    with pytest.raises(DatasetError, match="000_mask.png"):
        load_category(mvtec_cfg(tmp_path))


def test_unreadable_training_image(tmp_path, fake):
    cat = fake.make_mvtec_category(tmp_path, "bottle", n_train=3)
    (cat / "train" / "good" / "001.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DatasetError, match="train/good/001.png"):
        load_category(mvtec_cfg(tmp_path))


def test_truncated_png_caught_at_load_category(tmp_path, fake):
    cat = fake.make_mvtec_category(tmp_path, "bottle", n_train=3, size=(64, 64))
    fake.truncate(cat / "test" / "good" / "000.png")
    with pytest.raises(DatasetError, match="test/good/000.png"):
        load_category(mvtec_cfg(tmp_path))


# ----------------------------------------------------------------------------------------------
# the real data


def test_real_bottle_counts_and_masks(bottle_root):
    splits = load_category(mvtec_cfg(bottle_root, "bottle", image_size=64, val_fraction=0.0))
    assert len(splits.train) == 209 and len(splits.test) == 83
    assert splits.counts()["test_good"] == 20
    assert splits.defect_types() == ["broken_large", "broken_small", "contamination"]
    from PIL import Image

    for sample in splits.test:
        if sample.label == 0:
            assert sample.mask_path is None
            continue
        with Image.open(sample.image_path) as image, Image.open(sample.mask_path) as mask:
            assert image.size == mask.size
            assert np.asarray(mask).max() > 0, sample.mask_path
    defective = [s for s in splits.test if s.label == 1][::10]
    _, masks, labels = load_arrays(defective, 64)
    assert labels.all() and (masks.reshape(len(defective), -1).max(axis=1) == 1).all()


def test_real_bottle_default_split(bottle_root):
    splits = load_category(mvtec_cfg(bottle_root, "bottle", val_fraction=0.1), seed=0)
    assert len(splits.val) == 21 and len(splits.train) == 188
    again = load_category(mvtec_cfg(bottle_root, "bottle", val_fraction=0.1), seed=0)
    assert again.val == splits.val
