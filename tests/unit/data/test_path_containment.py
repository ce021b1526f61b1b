"""Paths never leave the dataset root (suite/data/common.py ``resolve_inside`` and every loader).

Hostile trees are generated in ``tmp_path``: a VisA CSV naming ``../outside.png`` or an absolute
path, MVTec-layout folders with symbolic links pointing outside the root. Each must raise
``DatasetError`` naming the source and the path, and the ``touched`` spy shows the outside file was
never stat'ed (``exists`` / ``is_file``) nor opened (``PIL.Image.open``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from suite.config import DataConfig
from suite.data import DatasetError, check_layout, load_category
from suite.data.common import resolve_inside
from suite.data.occluders import load_textures


class Touched:
    """After ``start()``: the real locations of every path given to ``os.stat`` (behind
    ``Path.exists / is_file / is_dir``; resolving a path only ``lstat``s) or to ``PIL.Image.open``."""

    def __init__(self, monkeypatch) -> None:
        self.monkeypatch = monkeypatch
        self.stat: set[str] = set()
        self.opened: set[str] = set()

    def start(self) -> None:
        real_stat, real_open = os.stat, PIL.Image.open

        def stat(path, *args, **kwargs):
            if isinstance(path, (str, bytes, os.PathLike)):
                self.stat.add(os.path.realpath(os.fsdecode(path)))
            return real_stat(path, *args, **kwargs)

        def image_open(fp, *args, **kwargs):
            if isinstance(fp, (str, os.PathLike)):
                self.opened.add(os.path.realpath(fp))
            return real_open(fp, *args, **kwargs)

        self.monkeypatch.setattr(os, "stat", stat)
        self.monkeypatch.setattr(PIL.Image, "open", image_open)

    def any(self, path: Path) -> bool:
        real = os.path.realpath(path)
        return real in self.stat or real in self.opened


@pytest.fixture
def touched(monkeypatch) -> Touched:
    return Touched(monkeypatch)


def outside_image(tmp_path: Path, fake, name: str = "outside.png") -> Path:
    """A perfectly readable image next to (not inside) the dataset root ``tmp_path / "root"``."""
    return fake.write_image(tmp_path / name, (32, 24), 77)


def visa_cfg(root: Path) -> DataConfig:
    return DataConfig(dataset="visa", root=str(root), category="candle", image_size=16, val_fraction=0.0,
                      calib_fraction=0.0)


def mvtec_cfg(root: Path, dataset: str = "mvtec", category: str = "bottle") -> DataConfig:
    return DataConfig(dataset=dataset, root=str(root), category=category, image_size=16, val_fraction=0.0,
                      calib_fraction=0.0)


def visa_row(split: str, label: str, image: str, mask: str = "") -> dict[str, str]:
    return {"object": "candle", "split": split, "label": label, "image": image, "mask": mask}


def csv_line_of(csv_path: Path, text: str) -> int:
    return next(i for i, line in enumerate(csv_path.read_text().splitlines(), start=1) if text in line)


# ----------------------------------------------------------------------------------------------
# the helper


def test_resolve_inside_rules(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "a" / "x.png").write_bytes(b"x")
    assert resolve_inside(root, "a/x.png", "src") == root / "a" / "x.png"
    assert resolve_inside(root, "a/../a/x.png", "src") == root / "a" / "x.png"  # '..' staying inside is fine
    assert resolve_inside(root, "a/missing.png", "src") == root / "a" / "missing.png"  # existence not checked
    with pytest.raises(DatasetError, match=r"src: image path \.\./elsewhere/y\.png leads to .*elsewhere/y\.png"):
        resolve_inside(root, "../elsewhere/y.png", "src", "image")
    with pytest.raises(DatasetError, match="is absolute"):
        resolve_inside(root, str(root / "a" / "x.png"), "src")  # even one pointing inside
    (root / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(DatasetError, match="through a symbolic link") as info:
        resolve_inside(root, "link/y.png", "src")
    assert "link/y.png" in str(info.value) and str(tmp_path / "elsewhere" / "y.png") in str(info.value)
    (root / "inner").symlink_to(root / "a", target_is_directory=True)
    assert resolve_inside(root, "inner/x.png", "src") == root / "inner" / "x.png"  # a link inside the root
    # the root may itself be a symbolic link
    alias = tmp_path / "alias"
    alias.symlink_to(root, target_is_directory=True)
    assert resolve_inside(alias, "a/x.png", "src") == alias / "a" / "x.png"
    with pytest.raises(DatasetError, match="outside the root"):
        resolve_inside(alias, "link/y.png", "src")


# ----------------------------------------------------------------------------------------------
# VisA


@pytest.mark.parametrize("kind", ["dotdot", "absolute"])
def test_visa_row_leaving_the_root_is_refused_before_opening(tmp_path, fake, touched, kind):
    root = tmp_path / "root"
    outside = outside_image(tmp_path, fake)
    written = "../outside.png" if kind == "dotdot" else str(outside)
    csv_path = fake.make_visa(root, extra_rows=[visa_row("train", "normal", written)])
    line = csv_line_of(csv_path, written)
    touched.start()
    with pytest.raises(DatasetError) as info:
        load_category(visa_cfg(root))
    message = str(info.value)
    assert str(csv_path) in message and f"line {line}" in message and written in message
    assert ("is absolute" if kind == "absolute" else "outside the root") in message
    assert not touched.any(outside), "the file outside the root was stat'ed or opened"
    assert touched.stat, "spy not live: the rows before the hostile one were checked with is_file()"


def test_visa_mask_path_leaving_the_root_is_refused(tmp_path, fake, touched):
    root = tmp_path / "root"
    outside = fake.write_mask(tmp_path / "stolen_mask.png", (32, 24))
    image = "candle/Data/Images/Anomaly/000.JPG"
    csv_path = fake.make_visa(root, extra_rows=[visa_row("test", "anomaly", image, "../stolen_mask.png")])
    touched.start()
    with pytest.raises(DatasetError, match="mask path ../stolen_mask.png") as info:
        load_category(visa_cfg(root))
    assert f"line {csv_line_of(csv_path, 'stolen_mask')}" in str(info.value)
    assert not touched.any(outside)


def test_visa_symlinked_image_inside_the_root_pointing_out(tmp_path, fake, touched):
    root = tmp_path / "root"
    outside = outside_image(tmp_path, fake)
    fake.make_visa(root, extra_rows=[visa_row("train", "normal", "candle/Data/Images/Normal/link.JPG")])
    (root / "candle" / "Data" / "Images" / "Normal" / "link.JPG").symlink_to(outside)
    touched.start()
    with pytest.raises(DatasetError, match="Normal/link.JPG leads through a symbolic link"):
        load_category(visa_cfg(root))
    assert not touched.any(outside)


def test_visa_paths_staying_inside_still_load(tmp_path, fake):
    root = tmp_path / "root"
    extra = [visa_row("train", "normal", "candle/Data/../Data/Images/Normal/0000.JPG")]
    fake.make_visa(root, n_train=3, extra_rows=extra)
    splits = load_category(visa_cfg(root))
    assert len(splits.train) == 4
    assert str(root / "candle" / "Data" / "Images" / "Normal" / "0000.JPG") in {s.image_path for s in splits.train}


# ----------------------------------------------------------------------------------------------
# MVTec layout (mvtec, folder and synthetic share the scanner)


def test_mvtec_symlinked_image_pointing_out_is_refused_before_opening(tmp_path, fake, touched):
    root = tmp_path / "root"
    outside = outside_image(tmp_path, fake)
    cat = fake.make_mvtec_category(root, "bottle", n_train=3, size=(32, 24))
    (cat / "train" / "good" / "005.png").symlink_to(outside)
    touched.start()
    with pytest.raises(DatasetError, match="bottle/train/good/005.png leads through a symbolic link") as info:
        load_category(mvtec_cfg(root))
    assert str(outside) in str(info.value) and "'bottle'" in str(info.value)
    assert not touched.any(outside)
    assert touched.stat, "spy not live"


def test_mvtec_symlinked_mask_pointing_out_is_refused(tmp_path, fake, touched):
    root = tmp_path / "root"
    outside = fake.write_mask(tmp_path / "outside_mask.png")
    cat = fake.make_mvtec_category(root, "bottle", n_train=2, defects={"crack": 1})
    (cat / "ground_truth" / "crack" / "000_mask.png").unlink()
    (cat / "ground_truth" / "crack" / "000_mask.png").symlink_to(outside)
    touched.start()
    with pytest.raises(DatasetError, match="mask path bottle/ground_truth/crack/000_mask.png"):
        load_category(mvtec_cfg(root))
    assert not touched.any(outside)


def test_mvtec_symlinked_folder_pointing_out_is_refused(tmp_path, fake, touched):
    root = tmp_path / "root"
    elsewhere = fake.make_mvtec_category(tmp_path / "elsewhere", "bottle", n_train=2, defects={"crack": 1})
    cat = fake.make_mvtec_category(root, "bottle", n_train=2, defects={})
    (cat / "test" / "crack").symlink_to(elsewhere / "test" / "crack", target_is_directory=True)
    touched.start()
    with pytest.raises(DatasetError, match="bottle/test/crack leads through a symbolic link"):
        load_category(mvtec_cfg(root))
    assert not touched.any(elsewhere / "test" / "crack" / "000.png")


def test_symlinked_category_folder_is_refused_by_load_and_layout_check(tmp_path, fake, touched):
    root = tmp_path / "root"
    root.mkdir()
    elsewhere = fake.make_mvtec_category(tmp_path / "elsewhere", "bottle", n_train=2)
    (root / "bottle").symlink_to(elsewhere, target_is_directory=True)
    touched.start()
    for dataset in ("mvtec", "folder"):
        with pytest.raises(DatasetError, match="outside the root"):
            load_category(mvtec_cfg(root, dataset))
        with pytest.raises(DatasetError, match="outside the root"):
            check_layout(dataset, root)
    assert not any(touched.any(p) for p in elsewhere.rglob("*.png"))


@pytest.mark.parametrize("kind", ["dotdot", "absolute"])
def test_folder_category_name_leaving_the_root(tmp_path, fake, kind):
    root = tmp_path / "root"
    fake.make_mvtec_category(root, "widget", n_train=2)
    other = fake.make_mvtec_category(tmp_path, "other", n_train=2)  # a valid category next to the root
    category = "../other" if kind == "dotdot" else str(other)
    with pytest.raises(DatasetError, match="is absolute" if kind == "absolute" else "outside the root") as info:
        load_category(mvtec_cfg(root, "folder", category))
    assert category in str(info.value)


def test_symlinks_inside_the_root_are_followed(tmp_path, fake):
    root = tmp_path / "root"
    cat = fake.make_mvtec_category(root, "bottle", n_train=3, defects={"crack": 1})
    (cat / "train" / "good" / "009.png").symlink_to(cat / "train" / "good" / "000.png")
    alias = tmp_path / "alias"
    alias.symlink_to(root, target_is_directory=True)  # a symlinked root is fine
    splits = load_category(mvtec_cfg(alias))
    assert len(splits.train) == 4 and len(splits.test) == 3
    assert all(s.image_path.startswith(str(alias)) for s in splits.train)


# ----------------------------------------------------------------------------------------------
# texture folders (occluders)


def test_texture_symlink_pointing_out_is_refused(tmp_path, fake, touched):
    folder = tmp_path / "textures"
    fake.write_image(folder / "banded" / "a.jpg", (16, 16), 50, fmt="JPEG")
    outside = fake.write_image(tmp_path / "secret.png", (16, 16), 60)
    (folder / "banded" / "b.png").symlink_to(outside)
    touched.start()
    with pytest.raises(DatasetError, match="banded/b.png leads through a symbolic link"):
        load_textures(folder, 8)
    assert not touched.any(outside)
    (folder / "banded" / "b.png").unlink()
    (folder / "banded" / "c.png").symlink_to(folder / "banded" / "a.jpg")  # inside: fine
    assert tuple(load_textures(folder, 8).shape) == (2, 3, 8, 8)
    assert np.isfinite(load_textures(folder, 8).numpy()).all()
