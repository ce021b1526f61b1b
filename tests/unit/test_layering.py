"""The pure layers must import without Ray; only suite/orchestration may import it."""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PURE = ["suite.config", "suite.data", "suite.models", "suite.losses", "suite.metrics", "suite.scoring",
        "suite.cost", "suite.records", "suite.training", "suite.pipeline", "suite.aggregate"]


def test_pure_layers_import_without_ray():
    code = (
        "import sys\n"
        "sys.modules['ray'] = None  # any 'import ray' now raises ImportError\n"
        f"import importlib\nfor name in {PURE!r}:\n    importlib.import_module(name)\n"
        "assert not any(m == 'ray' or m.startswith('ray.') for m in sys.modules if sys.modules[m] is not None)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
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
