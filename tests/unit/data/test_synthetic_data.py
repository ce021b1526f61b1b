"""The built-in synthetic categories (suite/data/synthetic.py)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from suite.config import DataConfig
from suite.data import SYNTHETIC_CATEGORIES, DatasetError, list_categories, load_arrays, load_category, synthetic_root
from suite.data.synthetic import (
    DEFECTS,
    MANIFEST,
    NUM_PER_DEFECT,
    NUM_TEST_GOOD,
    NUM_TRAIN_GOOD,
    render_sample,
    synthetic_image_size,
)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_categories_and_defect_types():
    assert set(SYNTHETIC_CATEGORIES) >= {"synth_texture", "synth_object"}
    assert all(len(DEFECTS[c]) >= 3 for c in SYNTHETIC_CATEGORIES)
    training_corruptions = {"color_block", "colour_block", "copy_paste", "line", "lines"}
    assert not training_corruptions & {d for c in SYNTHETIC_CATEGORIES for d in DEFECTS[c]}


def test_generation_is_byte_identical(tmp_path):
    first = Path(synthetic_root(cache_dir=tmp_path / "a", image_size=32))
    second = Path(synthetic_root(cache_dir=tmp_path / "b", image_size=32))
    assert first.name == second.name == "synthetic-v1-32"
    files_a, files_b = tree_bytes(first), tree_bytes(second)
    assert files_a.keys() == files_b.keys()
    assert files_a == files_b
    # no staging folders left behind
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["synthetic-v1-32"]


def test_layout_counts_and_masks(synthetic_cache):
    root = Path(synthetic_root(cache_dir=synthetic_cache, image_size=128))
    manifest = json.loads((root / MANIFEST).read_text())
    assert manifest["image_size"] == 128 and manifest["version"] == "v1"
    for category in SYNTHETIC_CATEGORIES:
        cat = root / category
        assert len(list((cat / "train" / "good").glob("*.png"))) == NUM_TRAIN_GOOD
        assert len(list((cat / "test" / "good").glob("*.png"))) == NUM_TEST_GOOD
        assert not (cat / "ground_truth" / "good").exists()
        assert len(DEFECTS[category]) * NUM_PER_DEFECT >= 24
        for defect in DEFECTS[category]:
            images = sorted((cat / "test" / defect).glob("*.png"))
            assert len(images) == NUM_PER_DEFECT
            for image_path in images:
                mask = np.asarray(Image.open(cat / "ground_truth" / defect / f"{image_path.stem}_mask.png"))
                assert mask.shape == (128, 128) and set(np.unique(mask)) == {0, 255}


def test_masks_are_the_changed_pixels():
    """Every changed pixel is in the mask, pixels outside it equal the clean rendering, and the
    mask holds no unchanged pixels beyond filled holes (a few percent at most)."""
    for category in SYNTHETIC_CATEGORIES:
        for defect in DEFECTS[category]:
            for index in range(2):
                clean, image, mask = render_sample(category, "test", defect, index, 64)
                changed = np.any(clean != image, axis=2)
                assert changed.any(), (category, defect, index)
                assert not (changed & ~mask).any()
                np.testing.assert_array_equal(image[~mask], clean[~mask])
                assert mask.sum() <= 1.1 * changed.sum() + 2, (category, defect, index)
        clean, image, mask = render_sample(category, "test", "good", 0, 64)
        assert not mask.any() and np.array_equal(clean, image)


def test_normals_vary(synthetic_cache):
    cfg = DataConfig(dataset="synthetic", root=str(synthetic_cache), category="synth_object", image_size=32)
    splits = load_category(cfg)
    images, _, _ = load_arrays(splits.train[:4], 32)
    assert not np.allclose(images[0], images[1])


def test_load_category_synthetic(synthetic_cache):
    for category in SYNTHETIC_CATEGORIES:
        cfg = DataConfig(dataset="synthetic", root=str(synthetic_cache), category=category, image_size=64,
                         calib_fraction=0.0)
        splits = load_category(cfg, seed=0)
        assert splits.dataset == "synthetic" and Path(splits.root).name == "synthetic-v1-128"
        assert len(splits.train) + len(splits.val) == NUM_TRAIN_GOOD and len(splits.val) == 6
        assert len(splits.test) == NUM_TEST_GOOD + len(DEFECTS[category]) * NUM_PER_DEFECT
        _, masks, labels = load_arrays(splits.test, 64)
        has_mask = masks.reshape(len(labels), -1).max(axis=1) > 0
        np.testing.assert_array_equal(has_mask, labels == 1)  # nonzero exactly for defective images


def test_unknown_synthetic_category(synthetic_cache):
    cfg = DataConfig(dataset="synthetic", root=str(synthetic_cache), category="synth_blob")
    with pytest.raises(DatasetError, match="synth_blob") as info:
        load_category(cfg)
    assert "synth_texture" in str(info.value)


def test_reuse_does_not_regenerate(synthetic_cache):
    root = Path(synthetic_root(cache_dir=synthetic_cache, image_size=128))
    stamp = (root / MANIFEST).stat().st_mtime_ns
    assert synthetic_root(cache_dir=synthetic_cache, image_size=128) == str(root)
    assert (root / MANIFEST).stat().st_mtime_ns == stamp


def test_default_cache_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("RCSUITE_CACHE", str(tmp_path))
    assert synthetic_root(image_size=32) == str(tmp_path / "synthetic-v1-32")


def test_incomplete_tree_is_replaced(tmp_path):
    debris = tmp_path / "synthetic-v1-32" / "synth_texture"
    debris.mkdir(parents=True)
    root = Path(synthetic_root(cache_dir=tmp_path, image_size=32))
    assert (root / MANIFEST).is_file() and (root / "synth_object" / "train" / "good").is_dir()


def test_concurrent_generation_is_safe(tmp_path):
    results, errors = [], []

    def worker():
        try:
            results.append(synthetic_root(cache_dir=tmp_path, image_size=32))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["synthetic-v1-32"]
    assert len(list(Path(results[0]).rglob("*.png"))) == 2 * (NUM_TRAIN_GOOD + NUM_TEST_GOOD + 4 * NUM_PER_DEFECT * 2)


def test_image_size_rule_and_listing():
    assert synthetic_image_size(32) == 128 and synthetic_image_size(128) == 128
    assert synthetic_image_size(256) == 256 and synthetic_image_size(1024) == 256
    assert list_categories("synthetic") == [(c, True) for c in SYNTHETIC_CATEGORIES]
    with pytest.raises(ValueError):
        synthetic_root(cache_dir="/nonexistent-never-created", image_size=8)
