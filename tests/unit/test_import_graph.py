"""The suite's imports go one way: no cycle, and no module imports from a layer above its own.

Every ``.py`` under ``suite/`` is parsed (imports inside functions too; ``if TYPE_CHECKING:`` blocks
are skipped, they never run). Importing ``suite.a.b`` also runs ``suite/a/__init__.py``, so an edge
to a submodule adds one to each package above it (unless the importer lives in that package).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO / "suite"

# Bottom to top. A module belongs to the most specific entry that matches it: an entry matches the
# module of that name and everything below it; ``*`` stands for one name; ``.__init__`` means the
# package's own __init__.py only. A module may import from its own layer and the layers below.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("suite.__init__", "suite.errors")),
    # Plain data every layer may read: the method and dataset registries, the methods' specs and
    # config sections, and the dataset readers the dataset specs point to (no config, no torch).
    ("specs", ("suite.methods.__init__", "suite.methods.registry", "suite.methods.spec", "suite.methods.specs",
               "suite.methods.*.__init__", "suite.methods.*.config", "suite.data.__init__", "suite.data.registry",
               "suite.data.common", "suite.data.transforms", "suite.data.mvtec", "suite.data.visa",
               "suite.data.folder", "suite.data.synthetic")),
    ("config", ("suite.config", "suite.config_aliases", "suite.config_presets", "suite.config_types")),
    ("pure", ("suite.data", "suite.models", "suite.metrics", "suite.scoring", "suite.discrepancy", "suite.losses",
              "suite.cost", "suite.residuals", "suite.weights", "suite.throughput", "suite.robustness",
              "suite.rank_statistics")),
    ("records", ("suite.records", "suite.record_schema", "suite.gallery")),
    ("validation", ("suite.validation",)),
    ("training", ("suite.training",)),
    ("stage_cache", ("suite.stage_cache",)),
    ("method_base", ("suite.methods.base",)),
    ("methods", ("suite.methods",)),
    ("pipeline", ("suite.pipeline",)),
    # records -> frames and statistics: read by the sweep driver (records.csv, best trials) and reports
    ("aggregate", ("suite.aggregate",)),
    ("spaces", ("suite.spaces",)),
    ("tracking", ("suite.tracking",)),
    ("sweep_rules", ("suite.sweep_rules",)),
    ("planning", ("suite.planning",)),
    ("orchestration", ("suite.orchestration",)),
    ("reporting", ("suite.reporting",)),
    ("entry_points", ("suite.cli", "suite.demo", "suite.tools")),
]
# Layers side by side although listed one after the other: a report needs no cluster, no tracking
# backend and no planner (it is rebuilt from records alone), so it imports none of them.
SEPARATE: dict[str, tuple[str, ...]] = {"reporting": ("tracking", "sweep_rules", "planning", "orchestration")}


def module_name(path: Path) -> str:
    """``suite/a/b.py`` -> ``suite.a.b``; ``suite/a/__init__.py`` -> ``suite.a.__init__``."""
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.Module, package: str) -> list[str]:
    """Dotted names this module imports (``from a import b`` gives ``a.b``: a submodule or a name in
    ``a``), relative ones resolved against ``package``; ``TYPE_CHECKING`` blocks skipped."""
    names: list[str] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                names.extend(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    parts = package.split(".")
                    base = parts[: len(parts) - (child.level - 1)]
                    module = ".".join(base + ([child.module] if child.module else []))
                else:
                    module = child.module or ""
                names.extend(f"{module}.{alias.name}" for alias in child.names)
            visit(child)

    visit(tree)
    return names


def import_graph() -> dict[str, set[str]]:
    """{module: modules of the suite it imports}, keyed as ``module_name`` does."""
    files = {module_name(p): p for p in SUITE.rglob("*.py")}
    by_import = {(m[: -len(".__init__")] if m.endswith(".__init__") else m): m for m in files}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        package = module.rsplit(".", 1)[0]  # the package the file sits in (for relative imports)
        edges: set[str] = set()
        for name in _imported_names(ast.parse(path.read_text(), str(path)), package):
            while name and name not in by_import:  # "suite.x.func" -> "suite.x"
                name = name.rpartition(".")[0]
            if not name:
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # the target and the package __init__s above it
                target = by_import.get(".".join(parts[:i]))
                if target is None or target == module:
                    continue
                if i < len(parts) and package.startswith(".".join(parts[:i])):
                    continue  # a package the importer lives in is already being imported
                edges.add(target)
        graph[module] = edges
    return graph


def _matches(pattern: str, module: str) -> int:
    """How specific ``pattern``'s match of ``module`` is (its number of names), or 0."""
    if pattern.endswith(".__init__"):
        return pattern.count(".") + 1 if re.fullmatch(_regex(pattern), module) else 0
    full = module[: -len(".__init__")] if module.endswith(".__init__") else module
    return pattern.count(".") + 1 if re.fullmatch(_regex(pattern) + r"(\..+)?", full) else 0


def _regex(pattern: str) -> str:
    return r"\.".join(r"[A-Za-z0-9_]+" if part == "*" else re.escape(part) for part in pattern.split("."))


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (specificity, layer index)
    for index, (_, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            score = _matches(pattern, module)
            if score and (best is None or score > best[0]):
                best = (score, index)
    return None if best is None else best[1]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = walk(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = walk(node)
            if found:
                return found
    return None


def upward_edges(graph: dict[str, set[str]]) -> list[str]:
    """Edges to a higher layer, or between layers ``SEPARATE`` keeps apart."""
    out = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            low, high = layer_of(module), layer_of(target)
            if low is None or high is None:
                continue
            if high > low or LAYERS[high][0] in SEPARATE.get(LAYERS[low][0], ()):
                out.append(f"{module} ({LAYERS[low][0]}) -> {target} ({LAYERS[high][0]})")
    return out


def test_every_module_has_a_layer():
    unknown = sorted(m for m in import_graph() if layer_of(m) is None)
    assert not unknown, f"modules in no layer (add them to LAYERS): {unknown}"


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_upward_import():
    upward = upward_edges(import_graph())
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


# The checks themselves, on small made-up graphs: a broken checker must fail these.


def test_checker_finds_a_cycle_and_an_upward_edge():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a"}}) is None
    assert upward_edges({"suite.config": {"suite.pipeline"}}) == [
        "suite.config (config) -> suite.pipeline (pipeline)"
    ]
    assert upward_edges({"suite.pipeline": {"suite.config"}}) == []
    # listed below reporting, yet kept apart from it
    assert upward_edges({"suite.reporting.ablations": {"suite.orchestration.spaces"}}) == [
        "suite.reporting.ablations (reporting) -> suite.orchestration.spaces (orchestration)"
    ]


def test_layer_patterns():
    names = [name for name, _ in LAYERS]
    assert names[layer_of("suite.methods.fae.__init__")] == "specs"
    assert names[layer_of("suite.methods.fae.config")] == "specs"
    assert names[layer_of("suite.methods.fae.train")] == "methods"
    assert names[layer_of("suite.methods.rcae.losses")] == "methods"
    assert names[layer_of("suite.methods.base")] == "method_base"
    assert names[layer_of("suite.data.augment")] == "pure"
    assert names[layer_of("suite.data.registry")] == "specs"
    assert names[layer_of("suite.__init__")] == "base"
    assert layer_of("suite.unheard_of") is None
    assert layer_of("suitex.config") is None


def test_graph_sees_imports_inside_functions_and_not_type_checking(tmp_path):
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from suite.pipeline import run_training\n"
        "def f():\n    from suite.config import Config\n    from . import sibling\n"
    )
    names = _imported_names(tree, "suite.orchestration")
    assert "suite.config.Config" in names and "suite.orchestration.sibling" in names
    assert not any(n.startswith("suite.pipeline") for n in names)
    graph = import_graph()
    # imports inside functions count: the CLI imports its subcommands lazily
    assert "suite.pipeline" in graph["suite.cli"]
    # a submodule's package __init__ runs too
    assert "suite.data.__init__" in graph["suite.pipeline"]
