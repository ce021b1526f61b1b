"""User folders in the MVTec layout (suite/data/folder.py)."""

from __future__ import annotations

import pytest

from suite.config import DataConfig
from suite.data import DatasetError, DatasetNotFoundError, list_categories, load_category


def folder_cfg(root, category, **kw) -> DataConfig:
    kw.setdefault("calib_fraction", 0.0)  # these tests count the loader's train/val split
    return DataConfig(dataset="folder", root=str(root), category=category, image_size=16, **kw)


def test_any_category_name(tmp_path, fake):
    fake.make_mvtec_category(tmp_path, "my_widget", n_train=5, defects={"dent": 2})
    splits = load_category(folder_cfg(tmp_path, "my_widget", val_fraction=0.2))
    assert splits.dataset == "folder" and splits.category == "my_widget"
    assert len(splits.train) == 4 and len(splits.val) == 1 and len(splits.test) == 4
    assert [s.defect for s in splits.test if s.label] == ["dent", "dent"]


def test_list_categories_only_mvtec_like_folders(tmp_path, fake):
    fake.make_mvtec_category(tmp_path, "b_part", n_train=1)
    fake.make_mvtec_category(tmp_path, "a_part", n_train=1)
    (tmp_path / "not_a_category" / "images").mkdir(parents=True)
    (tmp_path / "readme.txt").write_text("x")
    assert list_categories("folder", tmp_path) == [("a_part", True), ("b_part", True)]
    assert list_categories("folder", None) == []
    assert list_categories("folder", tmp_path / "missing") == []


def test_unknown_category_lists_found_ones(tmp_path, fake):
    fake.make_mvtec_category(tmp_path, "a_part", n_train=1)
    with pytest.raises(DatasetError, match="z_part") as info:
        load_category(folder_cfg(tmp_path, "z_part"))
    assert "a_part" in str(info.value)


def test_category_without_train_good(tmp_path):
    (tmp_path / "widget" / "test" / "good").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="widget/train/good"):
        load_category(folder_cfg(tmp_path, "widget"))


def test_missing_root(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="absent"):
        load_category(folder_cfg(tmp_path / "absent", "x"))
