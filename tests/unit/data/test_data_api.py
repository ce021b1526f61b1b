"""The public surface of ``suite.data`` and the dataset dispatch."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

import suite.data as data
from suite.config import DataConfig


def test_public_names():
    for name in (
        "MVTEC_CATEGORIES",
        "MVTEC_TEXTURES",
        "VISA_CATEGORIES",
        "SYNTHETIC_CATEGORIES",
        "Sample",
        "CategorySplits",
        "DatasetError",
        "list_categories",
        "load_category",
        "load_arrays",
        "synthetic_root",
        "shared_data_dir",
    ):
        assert hasattr(data, name), name
    sample_fields = [f.name for f in dataclasses.fields(data.Sample)]
    assert sample_fields == ["image_path", "mask_path", "label", "defect", "category"]
    split_fields = [f.name for f in dataclasses.fields(data.CategorySplits)]
    assert split_fields == ["category", "dataset", "root", "train", "val", "calib", "test"]
    assert issubclass(data.DatasetError, ValueError)
    assert issubclass(data.DatasetNotFoundError, FileNotFoundError)


def test_unknown_dataset():
    with pytest.raises(data.DatasetError, match="imagenet"):
        data.list_categories("imagenet")
    with pytest.raises(data.DatasetError, match="mvtec, visa, folder, synthetic"):
        data.load_category(DataConfig(dataset="imagenet", root="/x", category="c"))


def test_root_required_for_real_datasets():
    with pytest.raises(data.DatasetError, match="root"):
        data.load_category(DataConfig(dataset="mvtec", root=None, category="bottle"))


def test_list_categories_default_root_uses_shared_dir(monkeypatch, tmp_path, fake):
    monkeypatch.setenv("RCSUITE_DATA_DIR", str(tmp_path))
    fake.make_mvtec_category(tmp_path / "mvtec", "carpet", n_train=1)
    assert dict(data.list_categories("mvtec"))["carpet"] is True


def test_package_import_is_ray_and_torch_free():
    code = "import sys, suite.data; print(sorted(m for m in ('ray', 'torch', 'scipy') if m in sys.modules))"
    repo = os.path.dirname(os.path.dirname(os.path.abspath(data.__file__)))
    env = dict(os.environ, PYTHONPATH=repo)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == "[]"
