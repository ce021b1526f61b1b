"""The pure layers must import without Ray; only suite/orchestration may import it."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PURE = ["suite.config", "suite.data", "suite.models", "suite.methods.rcae.losses", "suite.metrics", "suite.scoring",
        "suite.cost", "suite.records", "suite.training", "suite.pipeline", "suite.aggregate", "suite.methods.registry",
        "suite.methods.base", "suite.tracking", "suite.spaces", "suite.gallery"]
# Ray-free modules inside suite/orchestration (the package itself must not import Ray eagerly either).
RAY_FREE_ORCHESTRATION = ["suite.orchestration", "suite.orchestration.results", "suite.orchestration.optuna_storage",
                          "suite.orchestration.sweep_options", "suite.orchestration.pooled",
                          "suite.orchestration.temp_dirs", "suite.orchestration.procs"]


def _import_without_ray(modules: list[str]) -> subprocess.CompletedProcess:
    code = (
        "import sys\n"
        "sys.modules['ray'] = None  # any 'import ray' now raises ImportError\n"
        f"import importlib\nfor name in {modules!r}:\n    importlib.import_module(name)\n"
        "assert not any(m == 'ray' or m.startswith('ray.') for m in sys.modules if sys.modules[m] is not None)\n"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # fresh interpreters importing torch
def test_pure_layers_import_without_ray():
    result = _import_without_ray(PURE)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow  # fresh interpreters importing torch
def test_every_registered_method_imports_without_ray():
    code = (
        "import sys\n"
        "sys.modules['ray'] = None\n"
        "from suite.methods.registry import method_specs\n"
        "for spec in method_specs():\n    spec.train_fn()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# Baselines that are one folder each: their names appear nowhere in suite/ but in their folder
# and the registry (RcAE and ConvAE are the suite's own method and its ladder, named by the reports).
FOLDER_ONLY_METHODS = ("fae", "hfr", "draem")


def test_baseline_names_live_only_in_their_folder_and_the_registry():
    registry = REPO / "suite" / "methods" / "registry.py"
    for name in FOLDER_ONLY_METHODS:
        folder = REPO / "suite" / "methods" / name
        offenders = [
            str(path.relative_to(REPO))
            for path in (REPO / "suite").rglob("*")
            if path.is_file() and path.suffix in (".py", ".json", ".md", ".yaml")
            and folder not in path.parents and path != registry and name in path.read_text().lower()
        ]
        assert not offenders, f"{name!r} is named outside suite/methods/{name}/ and the registry: {offenders}"


# The suite's own method and its ladder are folders too, but reports name them (tables, ablations),
# so the rule for them is on code: nothing outside their folders and the registry imports them or
# names their modules (display labels and colours come from the registry).
IMPORT_ONLY_METHODS = ("rcae", "convae")


def test_rcae_and_convae_code_is_reached_only_through_the_registry():
    registry = REPO / "suite" / "methods" / "registry.py"
    folders = [REPO / "suite" / "methods" / name for name in IMPORT_ONLY_METHODS]
    for name in IMPORT_ONLY_METHODS:
        offenders = []
        for path in (REPO / "suite").rglob("*.py"):
            if any(f in path.parents for f in folders) or path == registry:
                continue
            text = path.read_text()
            tree = ast.parse(text)
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module == "suite.methods":
                    if any(a.name == name for a in node.names):
                        offenders.append(str(path.relative_to(REPO)))
            if f"suite.methods.{name}" in text or f"suite/methods/{name}" in text:
                offenders.append(str(path.relative_to(REPO)))
        assert not offenders, f"suite.methods.{name} is imported or named outside its folder: {sorted(set(offenders))}"


@pytest.mark.slow  # fresh interpreters importing torch
def test_sweep_results_import_without_ray():
    result = _import_without_ray(RAY_FREE_ORCHESTRATION)
    assert result.returncode == 0, result.stderr


def test_only_orchestration_imports_ray_in_source():
    offenders = []
    for path in (REPO / "suite").rglob("*.py"):
        if "orchestration" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "ray" or n.startswith("ray.") for n in names):
                offenders.append(str(path.relative_to(REPO)))
    assert not offenders, f"Ray imported outside suite/orchestration: {offenders}"


def test_search_spaces_are_declarative():
    for path in (REPO / "search_spaces").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mod = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                assert mod is None or not mod.split(".")[0] in {"ray", "optuna", "torch", "suite"}, (
                    f"{path.name} imports {mod}: search spaces declare, they don't train"
                )
