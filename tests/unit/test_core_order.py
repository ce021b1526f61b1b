"""The core modules import in one direction:

errors -> methods/registry (+ the methods' spec modules, plain data) -> config -> training ->
stage_cache -> methods/base -> methods/*/ (trainers, networks, losses) -> pipeline.

Every import is read from the source (inside functions too; ``if TYPE_CHECKING:`` blocks are not
imports at run time), so a lazy import cannot hide an edge running back up.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO / "suite"
LAYERS = ("errors", "registry", "config", "training", "stage_cache", "base", "method", "pipeline")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> str | None:
    """The layer of a core module, None for the rest of the suite (data, models, records, ...)."""
    fixed = {
        "suite.errors": "errors",
        "suite.methods": "registry",
        "suite.methods.registry": "registry",
        "suite.config": "config",
        "suite.config_presets": "config",
        "suite.config_aliases": "config",
        "suite.training": "training",
        "suite.stage_cache": "stage_cache",
        "suite.methods.base": "base",
        "suite.pipeline": "pipeline",
    }
    if module in fixed:
        return fixed[module]
    parts = module.split(".")
    if parts[:2] == ["suite", "methods"] and len(parts) >= 3:
        # a method's package and its config module are its spec (plain data); the rest is the method
        return "registry" if len(parts) == 3 or (len(parts) == 4 and parts[3] == "config") else "method"
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _nodes(tree: ast.AST):
    """Every node, without the bodies of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def _exists(module: str) -> bool:
    base = REPO.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports(path: Path) -> set[str]:
    """The suite modules ``path`` imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found: set[str] = set()
    for node in _nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if _exists(sub) else base)
    return {m for m in found if m == "suite" or m.startswith("suite.")}


def core_files() -> list[Path]:
    return sorted(p for p in SUITE.rglob("*.py") if layer(module_name(p)) is not None)


def edges() -> list[tuple[str, str]]:
    return [(module_name(p), target) for p in core_files() for target in sorted(imports(p))]


def test_the_layer_map_knows_the_core_modules():
    names = {module_name(p) for p in core_files()}
    for expected in ("suite.errors", "suite.methods.registry", "suite.methods.rcae", "suite.methods.rcae.config",
                     "suite.config", "suite.training", "suite.stage_cache", "suite.methods.base",
                     "suite.methods.rcae.train", "suite.methods.convae.train", "suite.pipeline"):
        assert expected in names
    assert layer("suite.methods.rcae.losses") == "method" and layer("suite.methods.fae.config") == "registry"


def test_no_core_import_runs_back_up():
    upward = [
        f"{src} ({layer(src)}) imports {dst} ({layer(dst)})"
        for src, dst in edges()
        if layer(dst) is not None and LAYERS.index(layer(dst)) > LAYERS.index(layer(src))
    ]
    assert not upward, "\n".join(upward)


def test_the_reader_finds_lazy_imports_but_not_type_checking_ones(tmp_path):
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from suite.pipeline import run_training\n"
        "def f():\n    from suite.stage_cache import stage_key\n    import suite.training\n"
    )
    path = SUITE / "methods" / "_probe_for_test_core_order.py"
    path.write_text(source)
    try:
        found = imports(path)
    finally:
        path.unlink()
    assert found == {"suite.stage_cache", "suite.training"}


@pytest.mark.parametrize("start", ["suite.errors", "suite.methods.registry", "suite.config"])
def test_the_light_layers_import_no_networks(start):
    """Building a config loads every method's spec but none of its code (no torch)."""
    code = (f"import sys, {start}\nfrom suite.methods.registry import method_specs\nmethod_specs()\n"
            "heavy = [m for m in sys.modules if m == 'torch' or m.startswith(('suite.training', 'suite.stage_cache',"
            " 'suite.pipeline', 'suite.methods.base'))]\nassert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
