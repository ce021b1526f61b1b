"""Sample splits, array loading, locations and validation helpers (suite/data/common.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from suite.data.common import (
    CategorySplits,
    DatasetError,
    DatasetNotFoundError,
    Sample,
    default_cache_dir,
    list_image_files,
    load_arrays,
    read_image_size,
    shared_data_dir,
    split_normals,
    split_train_val,
    validate_samples,
)


def normals(n: int) -> list[Sample]:
    return [Sample(f"/data/c/train/good/{i:03d}.png", None, 0, "good", "c") for i in range(n)]


# ----------------------------------------------------------------------------------------------
# splits


def test_split_is_deterministic_and_disjoint():
    samples = normals(50)
    train_a, val_a = split_train_val(samples, 0.2, 1.0, seed=3)
    train_b, val_b = split_train_val(list(reversed(samples)), 0.2, 1.0, seed=3)
    assert train_a == train_b and val_a == val_b  # input order does not matter
    assert len(val_a) == 10 and len(train_a) == 40
    paths_train = {s.image_path for s in train_a}
    paths_val = {s.image_path for s in val_a}
    assert not paths_train & paths_val
    assert paths_train | paths_val == {s.image_path for s in samples}
    assert [s.image_path for s in train_a] == sorted(paths_train)  # returned in path order


def test_split_depends_on_seed():
    samples = normals(50)
    _, val0 = split_train_val(samples, 0.2, seed=0)
    _, val1 = split_train_val(samples, 0.2, seed=1)
    assert val0 != val1


def test_data_fraction_keeps_val_and_nests_train():
    samples = normals(41)
    full_train, full_val = split_train_val(samples, 0.1, 1.0, seed=5)
    half_train, half_val = split_train_val(samples, 0.1, 0.5, seed=5)
    tiny_train, tiny_val = split_train_val(samples, 0.1, 0.01, seed=5)
    assert full_val == half_val == tiny_val  # val does not depend on data_fraction
    assert len(full_val) == 4 and len(full_train) == 37
    assert len(half_train) == 19  # round_half_up(0.5 * 37)
    assert len(tiny_train) == 1  # at least one image
    assert set(map(id, tiny_train)) <= set(map(id, half_train)) <= set(map(id, full_train))
    assert not {s.image_path for s in half_train} & {s.image_path for s in half_val}


def test_val_fraction_edge_cases():
    assert split_train_val(normals(2), 0.01)[1] != []  # at least one val image when >= 2 normals
    train, val = split_train_val(normals(2), 0.9)
    assert len(train) == 1 and len(val) == 1  # never leaves train empty
    train, val = split_train_val(normals(1), 0.5)
    assert len(train) == 1 and val == []
    train, val = split_train_val(normals(10), 0.0)
    assert len(train) == 10 and val == []
    with pytest.raises(ValueError, match="val_fraction"):
        split_train_val(normals(10), 1.0)
    with pytest.raises(ValueError, match="data_fraction"):
        split_train_val(normals(10), 0.1, 0.0)
    with pytest.raises(DatasetError):
        split_train_val([], 0.1)


def test_calibration_split_is_disjoint_and_independent_of_data_fraction():
    items = normals(40)
    train, val, calib = split_normals(items, 0.1, 0.1, 1.0, seed=3)
    assert (len(train), len(val), len(calib)) == (32, 4, 4)
    paths = [s.image_path for s in train + val + calib]
    assert len(set(paths)) == 40
    small_train, val2, calib2 = split_normals(items, 0.1, 0.1, 0.5, seed=3)
    assert val2 == val and calib2 == calib and set(s.image_path for s in small_train) < set(s.image_path for s in train)
    assert split_normals(items, 0.1, 0.0, 1.0, seed=3)[1] == val  # val does not move when calib is off
    assert split_normals(normals(4), 0.25, 0.5, 1.0)[2] == []  # too few normals: no calibration split


def test_category_splits_counts():
    test = [Sample("a.png", None, 0, "good", "c"), Sample("b.png", "b_mask.png", 1, "crack", "c")]
    splits = CategorySplits("c", "folder", "/r", normals(3), normals(1), normals(2), test)
    assert splits.counts() == {"train": 3, "val": 1, "calib": 2, "test": 2, "test_good": 1, "test_anomalous": 1}
    assert splits.defect_types() == ["crack"]


# ----------------------------------------------------------------------------------------------
# load_arrays


def test_load_arrays_shapes_values_and_modes(tmp_path, fake):
    rgb = fake.write_image(tmp_path / "rgb.png", (20, 10), 200)
    gray = fake.write_image(tmp_path / "gray.png", (16, 16), 60, mode="L")
    rgba = fake.write_image(tmp_path / "rgba.png", (16, 16), 90, mode="RGBA")
    mask = fake.write_mask(tmp_path / "mask.png", (16, 16), box=(0, 0, 8, 16), value=3)  # class id, not 255
    samples = [
        Sample(str(rgb), None, 0, "good", "c"),
        Sample(str(gray), None, 0, "good", "c"),
        Sample(str(rgba), str(mask), 1, "x", "c"),
    ]
    images, masks, labels = load_arrays(samples, 8)
    assert images.shape == (3, 3, 8, 8) and images.dtype == np.float32
    assert masks.shape == (3, 1, 8, 8) and masks.dtype == np.float32
    assert labels.dtype == np.int64 and labels.tolist() == [0, 0, 1]
    assert 0.0 <= images.min() and images.max() <= 1.0
    np.testing.assert_allclose(images[0, 0], 200 / 255, atol=1e-6)  # non-square input resized to square
    np.testing.assert_allclose(images[0, 1], 55 / 255, atol=1e-6)
    np.testing.assert_allclose(images[1], 60 / 255, atol=1e-6)  # gray repeated into 3 channels
    np.testing.assert_allclose(images[2, :, 0, 0], [90 / 255, 165 / 255, 7 / 255], atol=1e-6)  # alpha dropped
    assert masks[0].sum() == 0 and masks[1].sum() == 0
    assert set(np.unique(masks[2])) == {0.0, 1.0}
    assert masks[2, 0, :, :4].all() and not masks[2, 0, :, 4:].any()  # left half, resized by nearest


def test_load_arrays_sixteen_bit_gray(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 65535 // 4, np.uint16)).save(path)
    images, _, _ = load_arrays([Sample(str(path), None, 0, "good", "c")], 4)
    np.testing.assert_allclose(images, 0.25, atol=1e-4)


def test_load_arrays_mask_nearest_stays_binary(tmp_path, fake):
    image = fake.write_image(tmp_path / "i.png", (32, 32), 10)
    mask = fake.write_mask(tmp_path / "m.png", (32, 32), box=(5, 7, 19, 23))
    _, masks, _ = load_arrays([Sample(str(image), str(mask), 1, "x", "c")], 24)
    assert set(np.unique(masks)) == {0.0, 1.0}
    assert abs(masks.sum() / (24 * 24) - (14 * 16) / (32 * 32)) < 0.05


def test_load_arrays_empty():
    images, masks, labels = load_arrays([], 16)
    assert images.shape == (0, 3, 16, 16) and masks.shape == (0, 1, 16, 16) and labels.shape == (0,)


def test_load_arrays_names_truncated_file(tmp_path, fake):
    path = fake.truncate(fake.write_image(tmp_path / "broken.jpg", (32, 32), 10, fmt="JPEG"))
    with pytest.raises(DatasetError, match="broken.jpg"):
        load_arrays([Sample(str(path), None, 0, "good", "c")], 16)


def test_load_arrays_missing_mask_for_defective(tmp_path, fake):
    image = fake.write_image(tmp_path / "d.png")
    with pytest.raises(DatasetNotFoundError, match="d.png"):
        load_arrays([Sample(str(image), None, 1, "x", "c")], 16)


# ----------------------------------------------------------------------------------------------
# validation helpers


def test_read_image_size_errors_name_the_file(tmp_path, fake):
    assert read_image_size(fake.write_image(tmp_path / "ok.png", (20, 12))) == (20, 12)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(DatasetError, match="junk.png"):
        read_image_size(junk)
    cut = fake.truncate(fake.write_image(tmp_path / "cut.png", (64, 64)))
    with pytest.raises(DatasetError, match="cut.png"):
        read_image_size(cut)
    with pytest.raises(FileNotFoundError, match="gone.png"):
        read_image_size(tmp_path / "gone.png")


def test_validate_samples_mask_size_mismatch(tmp_path, fake):
    image = fake.write_image(tmp_path / "img.png", (24, 24))
    mask = fake.write_mask(tmp_path / "img_mask.png", (20, 24))
    with pytest.raises(DatasetError, match="img_mask.png") as info:
        validate_samples([Sample(str(image), str(mask), 1, "x", "c")])
    assert "20x24" in str(info.value) and "24x24" in str(info.value)


def test_list_image_files_skips_hidden_and_non_images(tmp_path, fake):
    fake.write_image(tmp_path / "b.png")
    fake.write_image(tmp_path / "a.JPG", fmt="JPEG")
    (tmp_path / ".DS_Store").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_image_files(tmp_path)] == ["a.JPG", "b.png"]


# ----------------------------------------------------------------------------------------------
# locations


def test_shared_data_dir_default_and_env(monkeypatch):
    monkeypatch.delenv("RCSUITE_DATA_DIR", raising=False)
    import suite

    expected = Path(suite.__file__).resolve().parents[1].parent / "shared" / "data"
    assert shared_data_dir() == expected
    monkeypatch.setenv("RCSUITE_DATA_DIR", "/somewhere/data")
    assert shared_data_dir() == Path("/somewhere/data")


def test_default_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("RCSUITE_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("RCSUITE_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "rcsuite"
