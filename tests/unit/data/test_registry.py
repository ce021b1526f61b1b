"""The dataset registry (suite/data/registry.py): one ``DatasetSpec`` per value of ``data.dataset``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import suite.data as data
from suite import aggregate as agg
from suite.config import DataConfig
from suite.data import registry
from suite.data.registry import DatasetSpec, dataset_names, dataset_spec, dataset_specs, register_dataset

# Written out here (not imported) so that a change of order or content fails a test.
MVTEC = (
    "carpet", "grid", "leather", "tile", "wood",  # textures first, as in the RcAE paper
    "bottle", "cable", "capsule", "hazelnut", "metal_nut", "pill", "screw", "toothbrush", "transistor", "zipper",
)  # fmt: skip
VISA = (
    "candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2",
    "pcb1", "pcb2", "pcb3", "pcb4", "pipe_fryum",
)  # fmt: skip


# ----------------------------------------------------------------------------------------------
# built-in datasets


def test_builtin_datasets_are_registered_in_order():
    assert dataset_names() == ("mvtec", "visa", "folder", "synthetic")
    assert tuple(spec.name for spec in dataset_specs()) == dataset_names()
    assert all(dataset_spec(name).name == name for name in dataset_names())


@pytest.mark.parametrize(
    ("name", "display", "categories", "benchmark", "needs_root"),
    [
        ("mvtec", "MVTec AD", MVTEC, True, True),
        ("visa", "VisA", VISA, True, True),
        ("folder", "folder", (), False, True),  # categories discovered under the root
        ("synthetic", "synthetic", ("synth_texture", "synth_object"), False, False),
    ],
)
def test_builtin_spec(name, display, categories, benchmark, needs_root):
    spec = dataset_spec(name)
    assert spec.display_name == display
    assert spec.categories == categories
    assert spec.in_benchmark_tables is benchmark
    assert spec.needs_root is needs_root
    assert (spec.check_layout is None) == (name == "synthetic")
    assert callable(spec.load) and callable(spec.list_categories)


def test_category_lists_are_the_loaders_lists():
    """Each list is defined once, in its loader module; the spec refers to that tuple."""
    assert dataset_spec("mvtec").categories is data.MVTEC_CATEGORIES
    assert dataset_spec("visa").categories is data.VISA_CATEGORIES
    assert dataset_spec("synthetic").categories is data.SYNTHETIC_CATEGORIES
    assert len(MVTEC) == 15 and len(VISA) == 12


def test_specs_are_frozen():
    with pytest.raises(AttributeError):
        dataset_spec("mvtec").display_name = "x"  # type: ignore[misc]


# ----------------------------------------------------------------------------------------------
# unknown datasets


def test_unknown_dataset_names_the_valid_ones():
    with pytest.raises(data.DatasetError, match="imagenet") as info:
        dataset_spec("imagenet")
    message = str(info.value)
    for name in ("mvtec", "visa", "folder", "synthetic"):
        assert name in message
    with pytest.raises(data.DatasetError, match="valid datasets: mvtec, visa, folder, synthetic"):
        data.load_category(DataConfig(dataset="imagenet", root="/x", category="c"))
    with pytest.raises(data.DatasetError, match="valid datasets: mvtec, visa, folder, synthetic"):
        data.list_categories("imagenet")
    with pytest.raises(data.DatasetError, match="valid datasets"):
        data.check_layout("imagenet", "/x")


def test_duplicate_registration_is_refused():
    with pytest.raises(data.DatasetError, match="already registered"):
        register_dataset(dataset_spec("mvtec"))
    assert dataset_names() == ("mvtec", "visa", "folder", "synthetic")


def test_registry_imports_without_suite_config():
    """suite.config imports the registry (inside validate): the registry must not import it back."""
    code = (
        "import sys\n"
        "from suite.data.registry import dataset_names\n"
        "assert dataset_names() == ('mvtec', 'visa', 'folder', 'synthetic'), dataset_names()\n"
        "assert 'suite.config' not in sys.modules, 'suite.data.registry imported suite.config'\n"
    )
    repo = Path(data.__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(repo))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=repo)
    assert result.returncode == 0, result.stderr


# ----------------------------------------------------------------------------------------------
# a dataset registered by a test


TINY_CATEGORIES = ("dots", "stripes")
N_TRAIN, N_TEST_GOOD, N_TEST_BAD = 6, 2, 2


def _tiny_image(category: str, index: int, defective: bool, size: int = 20) -> np.ndarray:
    image = np.full((size, size, 3), 40 + 7 * index, np.uint8)
    if category == "stripes":
        image[:, ::4] = 200
    else:
        image[::5, ::5] = 200
    if defective:
        image[4:10, 4:10] = 255
    return image


def _tiny_load(root: str | None, category: str, image_size: int):
    """Writes the category's images under ``root`` (PNG), then returns their samples."""
    base = Path(root) / "tiny" / category
    train, test = [], []
    for split, count, defective in (("train", N_TRAIN, False), ("test", N_TEST_GOOD, False), ("bad", N_TEST_BAD, True)):
        folder = base / split
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            path = folder / f"{i:02d}.png"
            Image.fromarray(_tiny_image(category, i, defective)).save(path)
            if defective:
                mask = np.zeros((20, 20), np.uint8)
                mask[4:10, 4:10] = 255
                mask_path = folder / f"{i:02d}_mask.png"
                Image.fromarray(mask).save(mask_path)
                test.append(data.Sample(str(path), str(mask_path), 1, "square", category))
            else:
                (train if split == "train" else test).append(data.Sample(str(path), None, 0, "good", category))
    return str(base.parent), train, test


def _tiny_list(root):
    return [(c, root is not None and (Path(root) / "tiny" / c).is_dir()) for c in TINY_CATEGORIES]


def _tiny_check(root):
    if not Path(root).is_dir():
        raise data.DatasetNotFoundError(f"tiny root {root} does not exist")


@pytest.fixture
def tiny():
    spec = register_dataset(
        DatasetSpec(
            name="tiny", display_name="Tiny AD", categories=TINY_CATEGORIES, load=_tiny_load,
            list_categories=_tiny_list, check_layout=_tiny_check, in_benchmark_tables=True,
        )
    )
    try:
        yield spec
    finally:
        registry.unregister_dataset("tiny")


def test_registered_dataset_loads_through_load_category(tiny, tmp_path):
    assert dataset_names() == ("mvtec", "visa", "folder", "synthetic", "tiny")
    assert data.list_categories("tiny", tmp_path) == [("dots", False), ("stripes", False)]
    cfg = DataConfig(dataset="tiny", root=str(tmp_path), category="stripes", image_size=16,
                     val_fraction=0.0, calib_fraction=0.0)  # fmt: skip
    splits = data.load_category(cfg, seed=0)
    assert (splits.dataset, splits.category, splits.root) == ("tiny", "stripes", str(tmp_path / "tiny"))
    assert splits.counts() == {"train": N_TRAIN, "val": 0, "calib": 0, "test": N_TEST_GOOD + N_TEST_BAD,
                               "test_good": N_TEST_GOOD, "test_anomalous": N_TEST_BAD}  # fmt: skip
    assert splits.defect_types() == ["square"]
    assert all(Path(s.image_path).is_relative_to(tmp_path) for s in splits.train + splits.test)
    images, masks, labels = data.load_arrays(splits.test, 16)
    assert images.shape == (4, 3, 16, 16) and labels.tolist() == [0, 0, 1, 1]
    assert (masks.reshape(4, -1).max(axis=1) == labels).all()
    assert dict(data.list_categories("tiny", tmp_path))["stripes"] is True


def test_registered_dataset_gets_the_generic_checks(tiny, tmp_path):
    with pytest.raises(data.DatasetError, match="needs a root"):
        data.load_category(DataConfig(dataset="tiny", root=None, category="dots"))
    with pytest.raises(data.DatasetError, match="valid categories: dots, stripes"):
        data.load_category(DataConfig(dataset="tiny", root=str(tmp_path), category="blobs"))
    assert not (tmp_path / "tiny").exists()  # both refused before the loader ran
    with pytest.raises(data.DatasetNotFoundError, match="missing"):
        data.check_layout("tiny", tmp_path / "missing")
    data.check_layout("tiny", tmp_path)


def test_registered_dataset_reaches_the_reports(tiny):
    assert agg.DATASET_NAMES["tiny"] == "Tiny AD" and agg.DATASET_NAMES.get("tiny", "?") == "Tiny AD"
    assert agg.benchmark_datasets() == ("mvtec", "visa", "tiny")
    assert agg.category_order("tiny") == TINY_CATEGORIES
    pairs = [("synthetic", "synth_object"), ("tiny", "stripes"), ("mvtec", "bottle"), ("tiny", "dots")]
    assert sorted(pairs, key=lambda p: agg.category_sort_key(*p)) == [
        ("mvtec", "bottle"), ("tiny", "dots"), ("tiny", "stripes"), ("synthetic", "synth_object"),
    ]  # fmt: skip


def test_unregistered_dataset_is_gone(tiny):
    registry.unregister_dataset("tiny")
    try:
        with pytest.raises(data.DatasetError, match="unknown dataset 'tiny'"):
            data.list_categories("tiny")
        assert "tiny" not in agg.DATASET_NAMES and agg.DATASET_NAMES.get("tiny", "tiny") == "tiny"
    finally:
        register_dataset(tiny)  # the fixture unregisters it again


# ----------------------------------------------------------------------------------------------
# report names and orders come from the registry


def test_aggregate_reads_names_and_orders_from_the_registry():
    assert dict(agg.DATASET_NAMES) == {
        "mvtec": "MVTec AD", "visa": "VisA", "folder": "folder", "synthetic": "synthetic"
    }
    assert agg.benchmark_datasets() == ("mvtec", "visa")
    assert agg.category_order("mvtec") == MVTEC and agg.category_order("visa") == VISA
    assert agg.category_order("synthetic") == () and agg.category_order("nope") == ()
    assert agg.DATASET_NAMES.get("nope", "nope") == "nope"
    keys = [agg.category_sort_key("mvtec", c) for c in ("zipper", "carpet", "bottle")]
    assert sorted(keys) == [agg.category_sort_key("mvtec", c) for c in ("carpet", "bottle", "zipper")]


# ----------------------------------------------------------------------------------------------
# layout checks name the bad path


def test_mvtec_layout_check(tmp_path, fake):
    with pytest.raises(data.DatasetNotFoundError, match=re.escape(str(tmp_path / "nowhere"))):
        data.check_layout("mvtec", tmp_path / "nowhere")
    with pytest.raises(data.DatasetNotFoundError, match="no MVTec AD category folder"):
        data.check_layout("mvtec", tmp_path)
    fake.make_mvtec_category(tmp_path, "bottle", n_train=1)
    data.check_layout("mvtec", tmp_path)
    (tmp_path / "cable" / "train" / "good").mkdir(parents=True)  # no test folder
    with pytest.raises(data.DatasetNotFoundError, match=re.escape(str(tmp_path / "cable" / "test"))):
        data.check_layout("mvtec", tmp_path)
    with pytest.raises(data.DatasetError, match="needs a root"):
        data.check_layout("mvtec", None)


def test_visa_layout_check(tmp_path, fake):
    (tmp_path / "candle").mkdir()
    with pytest.raises(data.DatasetNotFoundError, match=re.escape(str(tmp_path / "split_csv" / "1cls.csv"))):
        data.check_layout("visa", tmp_path)
    fake.make_visa(tmp_path / "ok", categories=("candle",))
    data.check_layout("visa", tmp_path / "ok")
    fake.make_visa(tmp_path / "cols", categories=("candle",), columns=("object", "split", "label", "image"))
    with pytest.raises(data.DatasetError, match="lacks column"):
        data.check_layout("visa", tmp_path / "cols")


def test_folder_layout_check(tmp_path, fake):
    (tmp_path / "not_a_category").mkdir()
    with pytest.raises(data.DatasetNotFoundError, match=re.escape(f"no category under folder dataset root {tmp_path}")):
        data.check_layout("folder", tmp_path)
    fake.make_mvtec_category(tmp_path, "widget", n_train=1)
    data.check_layout("folder", tmp_path)


def test_synthetic_needs_no_layout():
    data.check_layout("synthetic", None)
    data.check_layout("synthetic", "/does/not/matter")
