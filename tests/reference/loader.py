"""The one loader of the pre-rewrite generators kept here as oracles (tests and benchmarks/augment_speed.py).

Each module is loaded by path once per process under a fixed name, so the legacy copies that load one
another (legacy_pseudo uses legacy_augment and legacy_occluders) share one instance with their callers.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REFERENCE = Path(__file__).resolve().parent


def load_reference(name: str) -> ModuleType:
    """tests/reference/``name``.py (e.g. ``legacy_augment``), loaded once."""
    key = f"rcsuite_reference_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, REFERENCE / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]
