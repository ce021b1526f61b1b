"""benchmarks/stress_categories.py: shift-stress copies of bottle that the suite's folder loader reads."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from suite.config import DataConfig
from suite.data import load_arrays, load_category, shared_data_dir

pytestmark = pytest.mark.slow  # the module's fixture writes every stress category

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("rcsuite_stress", REPO / "benchmarks" / "stress_categories.py")
stress = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stress)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """``(source category folder, {name: folder})`` with every stress category written once."""
    root = shared_data_dir() / "mvtec_bottle_256"
    if not (root / "bottle" / "train" / "good").is_dir():
        pytest.skip(f"real MVTec bottle data not found at {root} (set RCSUITE_DATA_DIR to its parent folder)")
    out = tmp_path_factory.mktemp("stress")
    return root / "bottle", stress.write_stress_categories(out, root)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".png")


def test_every_category_is_written_and_loads_with_the_suites_loader(written):
    source, categories = written
    assert sorted(categories) == sorted(f"bottle_{s}" for s in ("dark8", "gray", "gray_dark8", "bright8", "gamma12"))
    original = load_category(DataConfig(dataset="mvtec", root=str(source.parent), category="bottle", image_size=256))
    for name, folder in categories.items():
        assert folder.parent == next(iter(categories.values())).parent and folder.name == name
        splits = load_category(DataConfig(dataset="folder", root=str(folder.parent), category=name, image_size=256))
        assert splits.counts() == original.counts(), name
        assert splits.defect_types() == original.defect_types(), name
        for defect in original.defect_types():  # masks copied byte for byte
            for mask in (source / "ground_truth" / defect).iterdir():
                assert (folder / "ground_truth" / defect / mask.name).read_bytes() == mask.read_bytes()


@pytest.mark.parametrize("name,expect", [
    ("bottle_dark8", lambda v: np.rint(v * 0.92)),
    ("bottle_bright8", lambda v: np.clip(np.rint(v * 1.08), 0, 255)),
    ("bottle_gamma12", lambda v: np.rint(255 * (v / 255) ** 1.2)),
])
def test_test_normals_are_transformed_and_everything_else_is_a_copy(written, name, expect):
    source, categories = written
    folder = categories[name]
    good = _files(source / "test" / "good")
    assert good and _files(folder / "test" / "good") == good
    for file in good[:5]:
        assert np.array_equal(_pixels(folder / "test" / "good" / file), expect(_rgb(source / "test" / "good" / file)))
    for sub in ("train/good", "test/broken_large"):
        for file in _files(source / sub)[:5]:
            assert (folder / sub / file).read_bytes() == (source / sub / file).read_bytes()


def test_gray_categories_have_equal_channels_in_train_and_test(written):
    _, categories = written
    for name in ("bottle_gray", "bottle_gray_dark8"):
        splits = load_category(DataConfig(dataset="folder", root=str(categories[name].parent), category=name,
                                          image_size=64))
        images, _, _ = load_arrays(splits.train[:4] + splits.test[:4] + splits.test[-4:], 64)
        assert np.array_equal(images[:, 0], images[:, 1]) and np.array_equal(images[:, 1], images[:, 2]), name
    gray, dark = categories["bottle_gray"], categories["bottle_gray_dark8"]
    file = _files(gray / "test" / "good")[0]
    expected = np.rint(_pixels(gray / "test" / "good" / file) * 0.92)
    assert np.array_equal(_pixels(dark / "test" / "good" / file), expected)
    file = _files(gray / "train" / "good")[0]
    assert np.array_equal(_pixels(dark / "train" / "good" / file), _pixels(gray / "train" / "good" / file))


def test_existing_categories_are_kept_and_the_repository_is_refused(written, tmp_path):
    source, categories = written
    folder = categories["bottle_dark8"]
    stamp = os.stat(folder / "stress.json").st_mtime_ns
    again = stress.write_stress_categories(folder.parent, source.parent, names=["dark8"])
    assert again == {"bottle_dark8": folder} and os.stat(folder / "stress.json").st_mtime_ns == stamp
    with pytest.raises(SystemExit, match="inside the repository"):
        stress.write_stress_categories(REPO / "benchmarks" / "results" / "stress", source.parent)
    assert not (REPO / "benchmarks" / "results" / "stress").exists()
    with pytest.raises(ValueError, match="unknown stress"):
        stress.write_stress_categories(tmp_path, source.parent, names=["sepia"])


def test_scoring_sweep_reuses_stages_only_across_identical_train_images(written, tmp_path):
    spec = importlib.util.spec_from_file_location("rcsuite_scoring_sweep", REPO / "benchmarks" / "scoring_sweep.py")
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    source, categories = written
    dark, gray = categories["bottle_dark8"], categories["bottle_gray"]
    assert sweep.train_digest(source.parent, "bottle") == sweep.train_digest(dark.parent, dark.name)
    assert sweep.train_digest(source.parent, "bottle") != sweep.train_digest(gray.parent, gray.name)

    def overrides(dataset, folder):
        return [f"data.dataset={dataset}", f"data.root={folder.parent}", f"data.category={folder.name}"]

    cache = tmp_path / "stage_cache"
    cache.mkdir()
    src, dst = overrides("mvtec", source), overrides("folder", dark)
    cfg_src, cfg_dst = (sweep.build_config(preset="tiny", overrides=o) for o in (src, dst))
    method = sweep.method_spec(cfg_src.model.method)
    for stage in method.stages:
        (cache / f"{sweep.stage_key(cfg_src, stage, method)}.pt").write_bytes(stage.encode())
    sweep.link_stages("tiny", src, dst, cache)
    for stage in method.stages:
        target = cache / f"{sweep.stage_key(cfg_dst, stage, method)}.pt"
        assert target.read_bytes() == stage.encode()  # the source's checkpoint under the copy's key
