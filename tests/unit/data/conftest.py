"""Fixtures for the data tests: the ``fake`` dataset builders and a shared synthetic cache."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("rcsuite_fake_datasets", Path(__file__).with_name("fake_datasets.py"))
_fake_datasets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fake_datasets)


@pytest.fixture
def fake():
    """The ``fake_datasets`` module (builders of tiny MVTec / VisA trees)."""
    return _fake_datasets


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory) -> Path:
    """A session-wide cache folder holding the synthetic data generated at 128 px (once)."""
    from suite.data import synthetic_root

    cache = tmp_path_factory.mktemp("synthetic-cache")
    synthetic_root(cache_dir=cache, image_size=128)
    return cache
