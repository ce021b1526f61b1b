"""The dataset registry: one ``DatasetSpec`` per value of ``data.dataset``.

Everything that depends on which dataset a run reads (loading a category, listing categories,
checking a root folder, whether a root is needed, the order and name reports use) is looked up
here; nothing else branches on dataset names. The built-in datasets (mvtec, visa, folder,
synthetic) are registered at import; ``register_dataset`` adds others, e.g. in a test::

    register_dataset(DatasetSpec(name="tiny", display_name="Tiny", categories=("a",),
                                 load=my_load, list_categories=my_list))

This module imports only the data loaders (numpy / PIL, no torch), never ``suite.config``, so
``suite.config`` may import it (inside a function) without a cycle. Category lists are defined in
the loader modules (``MVTEC_CATEGORIES``, ``VISA_CATEGORIES``, ``SYNTHETIC_CATEGORIES``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from suite.data.common import DatasetError, Sample, shared_data_dir
from suite.data.folder import check_folder_layout, list_folder_categories, load_folder_samples
from suite.data.mvtec import (
    MVTEC_CATEGORIES,
    check_mvtec_layout,
    list_mvtec_categories,
    load_mvtec_samples,
    scan_mvtec_layout,
)
from suite.data.synthetic import SYNTHETIC_CATEGORIES, synthetic_image_size, synthetic_root
from suite.data.visa import VISA_CATEGORIES, check_visa_layout, list_visa_categories, load_visa_samples

# load(root, category, image_size) -> (resolved root, train normals, test samples), unvalidated and
# unsplit. ``root`` is never None when the spec has ``needs_root``; for a dataset without a root
# (synthetic) it is an optional cache folder and the returned root is where the data actually is.
LoadFn = Callable[[str | None, str, int], tuple[str, list[Sample], list[Sample]]]
# list_categories(root) -> [(category, present under root)]; root may be None.
ListFn = Callable[[str | Path | None], list[tuple[str, bool]]]
# check_layout(root) -> None, raising DatasetError / DatasetNotFoundError naming the bad path.
CheckFn = Callable[[str | Path], None]


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # the value of data.dataset
    display_name: str  # as reports print it: "MVTec AD", "VisA", ...
    categories: tuple[str, ...]  # in the benchmark paper's order; empty = discovered under the root
    load: LoadFn
    list_categories: ListFn
    check_layout: CheckFn | None = None  # validates a root's layout (None: nothing to check)
    needs_root: bool = True  # data.root is required (False: the data is generated / cached)
    in_benchmark_tables: bool = False  # reports order it (and its categories) among the benchmarks

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise DatasetError(f"a dataset name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.categories, tuple):
            object.__setattr__(self, "categories", tuple(self.categories))


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Add ``spec`` under ``spec.name`` (registration order is the order of ``dataset_names``).
    A name already registered is an error unless ``replace``."""
    if not isinstance(spec, DatasetSpec):
        raise TypeError(f"register_dataset expects a DatasetSpec, got {type(spec).__name__}")
    if spec.name in _REGISTRY and not replace:
        raise DatasetError(f"dataset {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def unregister_dataset(name: str) -> DatasetSpec:
    """Remove and return the spec registered as ``name`` (e.g. a test's temporary dataset)."""
    spec = dataset_spec(name)
    del _REGISTRY[name]
    return spec


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of dataset ``name``; ``DatasetError`` listing the valid names if there is none."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise DatasetError(f"unknown dataset {name!r}; valid datasets: {', '.join(_REGISTRY)}") from None


def dataset_specs() -> tuple[DatasetSpec, ...]:
    """Every registered spec, in registration order."""
    return tuple(_REGISTRY.values())


def dataset_names() -> tuple[str, ...]:
    """Every valid value of ``data.dataset``, in registration order."""
    return tuple(_REGISTRY)


# ----------------------------------------------------------------------------------------------
# the built-in datasets


def _load_mvtec(root: str | None, category: str, image_size: int) -> tuple[str, list[Sample], list[Sample]]:
    return (os.path.abspath(root), *load_mvtec_samples(root, category))


def _load_visa(root: str | None, category: str, image_size: int) -> tuple[str, list[Sample], list[Sample]]:
    return (os.path.abspath(root), *load_visa_samples(root, category))


def _load_folder(root: str | None, category: str, image_size: int) -> tuple[str, list[Sample], list[Sample]]:
    return (os.path.abspath(root), *load_folder_samples(root, category))


def _load_synthetic(cache_dir: str | None, category: str, image_size: int) -> tuple[str, list[Sample], list[Sample]]:
    tree = synthetic_root(cache_dir=cache_dir, image_size=synthetic_image_size(image_size))
    return (tree, *scan_mvtec_layout(tree, category, "synthetic"))


def _list_mvtec(root: str | Path | None) -> list[tuple[str, bool]]:
    return list_mvtec_categories(root if root is not None else shared_data_dir() / "mvtec")


def _list_visa(root: str | Path | None) -> list[tuple[str, bool]]:
    return list_visa_categories(root if root is not None else shared_data_dir() / "visa")


def _list_folder(root: str | Path | None) -> list[tuple[str, bool]]:
    if root is None or not Path(root).is_dir():
        return []
    return [(name, True) for name in list_folder_categories(root)]


def _list_synthetic(root: str | Path | None) -> list[tuple[str, bool]]:
    return [(name, True) for name in SYNTHETIC_CATEGORIES]  # generated on demand: always present


for _spec in (
    DatasetSpec(
        name="mvtec", display_name="MVTec AD", categories=MVTEC_CATEGORIES, load=_load_mvtec,
        list_categories=_list_mvtec, check_layout=check_mvtec_layout, in_benchmark_tables=True,
    ),
    DatasetSpec(
        name="visa", display_name="VisA", categories=VISA_CATEGORIES, load=_load_visa,
        list_categories=_list_visa, check_layout=check_visa_layout, in_benchmark_tables=True,
    ),
    DatasetSpec(
        name="folder", display_name="folder", categories=(), load=_load_folder,
        list_categories=_list_folder, check_layout=check_folder_layout,
    ),
    DatasetSpec(
        name="synthetic", display_name="synthetic", categories=SYNTHETIC_CATEGORIES, load=_load_synthetic,
        list_categories=_list_synthetic, check_layout=None, needs_root=False,
    ),
):
    register_dataset(_spec)
del _spec
