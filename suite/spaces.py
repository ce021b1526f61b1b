"""Load and check the declarative search spaces in ``search_spaces/`` (no Ray, no Optuna here).

A space module defines exactly one of

- ``SPACE``: ``{config key: spec}`` sampled by Optuna, where a spec is
  ``{"type": "int", "low": 1, "high": 6}`` (bounds inclusive, optional ``"step"``/``"log"``),
  ``{"type": "float", "low": 0.0, "high": 1.0, "log": False}`` or
  ``{"type": "categorical", "choices": [...]}`` (choices may be lists, e.g. block sizes);
- ``GRID``: ``{config key: [values]}``, run as the full cross product;
- ``CONFIGS``: a list of ``{config key: value}`` dicts, run one by one;
- ``TABLE`` and ``ROWS``: an ablation table, run row by row like ``CONFIGS`` (see below);

plus an optional ``BASE`` dict of overrides applied to every trial, and a docstring describing it.
Every key and value is checked against the base config with ``suite.config.with_overrides`` before
anything runs, so a typo fails at once with the space file and the key in the message.

An ablation space is the one place an ablation is declared: what runs, and how the report shows it::

    TABLE = {"id": "components", "title": "Components ladder", "source": "Wu et al., ..., Table 2",
             "metrics": ["i_auroc", "p_auroc"], "notes": ["optional lines under the table"]}
    ROWS = [
        {"id": "convae", "label": "ConvAE", "overrides": {"model.method": "convae"},
         "paper": {"mvtec": {"i_auroc": 82.4, "p_auroc": 90.8}}},   # optional, in percent
        ...
    ]

``id`` and ``title`` of ``TABLE`` are required (``metrics`` defaults to I-AUROC and P-AUROC); every
row needs ``id``, ``label`` and ``overrides``. A trial of a row writes ``{"table": ..., "row": ...}``
into its record (``TrialRecord.ablation``), and the report groups its ablation tables by those ids,
taking titles, labels and published numbers from here (``load_ablations``).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suite.config import Config, ConfigError, with_overrides
from suite.metrics import METRICS  # the metric names records carry

SPEC_TYPES = ("int", "float", "categorical")
KINDS = ("optuna", "grid", "list")
TABLE_KEYS = {"id": True, "title": True, "source": False, "metrics": False, "notes": False}  # key -> required
ROW_KEYS = {"id": True, "label": True, "overrides": True, "paper": False}
DEFAULT_ABLATION_METRICS = ("i_auroc", "p_auroc")
_TABLE_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


class SpaceError(ConfigError):
    """A search space file is missing or malformed; the message names the file and the key."""


@dataclass(frozen=True)
class AblationRow:
    id: str  # stored in the records of this row (``TrialRecord.ablation["row"]``)
    label: str  # shown in the table
    overrides: dict[str, Any]
    paper: dict[str, dict[str, float]] = field(default_factory=dict)  # dataset -> metric -> percent


@dataclass(frozen=True)
class Ablation:
    """An ablation table declared by a space file (``TABLE`` and ``ROWS``)."""

    id: str  # stored in the records (``TrialRecord.ablation["table"]``)
    title: str
    rows: tuple[AblationRow, ...]
    source: str = ""  # where the published numbers come from (paper, table)
    metrics: tuple[str, ...] = DEFAULT_ABLATION_METRICS
    notes: tuple[str, ...] = ()
    path: Path | None = None  # the space file
    base: dict[str, Any] = field(default_factory=dict)  # the space's BASE

    def row(self, row_id: str) -> AblationRow | None:
        return next((r for r in self.rows if r.id == row_id), None)


@dataclass
class SearchSpace:
    name: str
    path: Path
    kind: str  # optuna (SPACE) | grid (GRID) | list (CONFIGS, or the ROWS of an ablation)
    doc: str = ""
    base: dict[str, Any] = field(default_factory=dict)  # flat overrides applied to every trial
    space: dict[str, dict[str, Any]] = field(default_factory=dict)  # optuna: key -> spec
    points: list[dict[str, Any]] = field(default_factory=list)  # grid / list: one override dict per point
    ablation: Ablation | None = None  # TABLE and ROWS; ``points`` are then the rows' overrides, in order

    @property
    def keys(self) -> list[str]:
        if self.kind == "optuna":
            return list(self.space)
        seen: list[str] = []
        for point in self.points:
            seen.extend(k for k in point if k not in seen)
        return seen

    def ablation_ids(self, overrides: dict[str, Any]) -> dict[str, str]:
        """``{"table": ..., "row": ...}`` of the ablation row whose overrides are ``overrides``
        (what a trial of that row stores in its record); ``{}`` outside an ablation space."""
        if self.ablation is None:
            return {}
        for row in self.ablation.rows:
            if row.overrides == dict(overrides):
                return {"table": self.ablation.id, "row": row.id}
        raise SpaceError(f"search space {self.path}: no row of ROWS has the overrides {overrides!r}")


def spaces_dir() -> Path:
    """The ``search_spaces`` folder of this checkout (or of the installed package)."""
    here = Path(__file__).resolve().parents[1] / "search_spaces"
    if here.is_dir():
        return here
    try:
        import search_spaces  # type: ignore[import-not-found]  # an installed suite without its checkout

        return Path(next(iter(search_spaces.__path__)))
    except (ImportError, StopIteration):
        return here


def available_spaces() -> list[str]:
    folder = spaces_dir()
    return sorted(p.stem for p in folder.glob("*.py") if not p.name.startswith("_"))


def resolve_space_path(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    candidate = Path(text)
    if text.endswith(".py") or candidate.parent != Path("."):
        if not candidate.is_file():
            raise SpaceError(f"search space file {candidate} does not exist")
        return candidate.resolve()
    path = spaces_dir() / f"{text}.py"
    if not path.is_file():
        raise SpaceError(
            f"unknown search space '{text}'; available in {spaces_dir()}: {', '.join(available_spaces()) or 'none'}"
        )
    return path


def _import_file(path: Path) -> Any:
    module_name = f"_rcsuite_space_{path.stem}_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SpaceError(f"search space {path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - any error in a user file is reported with its path
        raise SpaceError(f"search space {path}: import failed: {type(err).__name__}: {err}") from err
    return module


def _check_spec(path: Path, key: str, spec: Any) -> dict[str, Any]:
    where = f"search space {path}: key '{key}'"
    if not isinstance(spec, dict) or spec.get("type") not in SPEC_TYPES:
        raise SpaceError(f"{where}: spec must be a dict with 'type' in {SPEC_TYPES}, got {spec!r}")
    kind = spec["type"]
    allowed = {"int": {"type", "low", "high", "step", "log"}, "float": {"type", "low", "high", "step", "log"},
               "categorical": {"type", "choices"}}[kind]
    extra = set(spec) - allowed
    if extra:
        raise SpaceError(f"{where}: unknown spec fields {sorted(extra)} for type '{kind}'")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            raise SpaceError(f"{where}: 'choices' must be a non-empty list")
        return {"type": kind, "choices": list(choices)}
    if "low" not in spec or "high" not in spec:
        raise SpaceError(f"{where}: '{kind}' spec needs 'low' and 'high'")
    low, high = spec["low"], spec["high"]
    number = int if kind == "int" else (int, float)
    if not isinstance(low, number) or not isinstance(high, number) or isinstance(low, bool) or isinstance(high, bool):
        raise SpaceError(f"{where}: 'low'/'high' must be {'integers' if kind == 'int' else 'numbers'}")
    if low > high:
        raise SpaceError(f"{where}: low {low} > high {high}")
    if spec.get("log") and low <= 0:
        raise SpaceError(f"{where}: a log-scale range needs low > 0")
    out = {"type": kind, "low": low, "high": high, "log": bool(spec.get("log", False))}
    if spec.get("step") is not None:
        out["step"] = spec["step"]
    return out


def spec_values(spec: dict[str, Any]) -> list[Any]:
    """Representative values of a spec: every choice, or the bounds (and middle) of a range."""
    if spec["type"] == "categorical":
        return list(spec["choices"])
    low, high = spec["low"], spec["high"]
    if spec["type"] == "int":
        return sorted({low, (low + high) // 2, high})
    mid = math.sqrt(low * high) if spec.get("log") else (low + high) / 2
    return [float(low), float(mid), float(high)]


def load_space(name_or_path: str | Path) -> SearchSpace:
    """Read a space module (a name in ``search_spaces/`` or a ``.py`` path); structure checked here,
    config keys checked by ``check_space`` against a base config."""
    path = resolve_space_path(name_or_path)
    module = _import_file(path)
    present = [n for n in ("SPACE", "GRID", "CONFIGS") if getattr(module, n, None) is not None]
    ablation = [n for n in ("TABLE", "ROWS") if getattr(module, n, None) is not None]
    if ablation and (present or len(ablation) != 2):
        raise SpaceError(
            f"search space {path}: an ablation space defines TABLE and ROWS and none of SPACE, GRID or CONFIGS "
            f"(found: {', '.join(ablation + present)})"
        )
    if not ablation and len(present) != 1:
        raise SpaceError(
            f"search space {path}: define exactly one of SPACE, GRID or CONFIGS, or TABLE and ROWS "
            f"(found: {', '.join(present) or 'none'})"
        )
    base = getattr(module, "BASE", None) or {}
    if not isinstance(base, dict):
        raise SpaceError(f"search space {path}: BASE must be a dict of config key -> value")
    out = SearchSpace(name=path.stem, path=path, kind="optuna", doc=(module.__doc__ or "").strip(), base=dict(base))
    if ablation:
        out.kind = "list"
        out.ablation = _ablation(path, module.TABLE, module.ROWS, dict(base))
        out.points = [dict(r.overrides) for r in out.ablation.rows]
    elif present[0] == "SPACE":
        space = module.SPACE
        if not isinstance(space, dict) or not space:
            raise SpaceError(f"search space {path}: SPACE must be a non-empty dict of config key -> spec")
        out.space = {key: _check_spec(path, key, spec) for key, spec in space.items()}
    elif present[0] == "GRID":
        grid = module.GRID
        if not isinstance(grid, dict) or not grid:
            raise SpaceError(f"search space {path}: GRID must be a non-empty dict of config key -> list of values")
        for key, values in grid.items():
            if not isinstance(values, (list, tuple)) or not values:
                raise SpaceError(f"search space {path}: GRID key '{key}' must map to a non-empty list")
        keys = list(grid)
        out.kind = "grid"
        out.points = [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]
    else:
        configs = module.CONFIGS
        if not isinstance(configs, (list, tuple)) or not configs:
            raise SpaceError(f"search space {path}: CONFIGS must be a non-empty list of override dicts")
        for i, point in enumerate(configs):
            if not isinstance(point, dict):
                raise SpaceError(f"search space {path}: CONFIGS[{i}] must be a dict, got {point!r}")
        out.kind = "list"
        out.points = [dict(p) for p in configs]
    return out


def _ablation(path: Path, table: Any, rows: Any, base: dict[str, Any]) -> Ablation:
    """``TABLE`` and ``ROWS`` checked; every error names the file and the key."""
    where = f"search space {path}"
    if not isinstance(table, dict):
        raise SpaceError(f"{where}: TABLE must be a dict with keys {', '.join(TABLE_KEYS)}")
    _check_keys(f"{where}: TABLE", table, TABLE_KEYS)
    for key in ("id", "title", "source"):
        if key in table and (not isinstance(table[key], str) or not table[key].strip()):
            raise SpaceError(f"{where}: TABLE['{key}'] must be a non-empty string")
    if not _TABLE_ID.match(table["id"]):
        raise SpaceError(f"{where}: TABLE['id'] {table['id']!r} may hold only letters, digits, '_', '.' and '-'")
    metrics = table.get("metrics", list(DEFAULT_ABLATION_METRICS))
    if not isinstance(metrics, (list, tuple)) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise SpaceError(f"{where}: TABLE['metrics'] must be a non-empty list of metric names")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise SpaceError(f"{where}: TABLE['metrics'] has unknown metrics {unknown}; known: {', '.join(METRICS)}")
    notes = table.get("notes", [])
    if not isinstance(notes, (list, tuple)) or not all(isinstance(n, str) for n in notes):
        raise SpaceError(f"{where}: TABLE['notes'] must be a list of strings")
    if not isinstance(rows, (list, tuple)) or not rows:
        raise SpaceError(f"{where}: ROWS must be a non-empty list of dicts with keys {', '.join(ROW_KEYS)}")
    out: list[AblationRow] = []
    for i, row in enumerate(rows):
        at = f"{where}: ROWS[{i}]"
        if not isinstance(row, dict):
            raise SpaceError(f"{at} must be a dict, got {row!r}")
        _check_keys(at, row, ROW_KEYS)
        for key in ("id", "label"):
            if not isinstance(row[key], str) or not row[key].strip():
                raise SpaceError(f"{at}['{key}'] must be a non-empty string")
        at = f"{at} (id {row['id']!r})"
        if not isinstance(row["overrides"], dict):
            raise SpaceError(f"{at}['overrides'] must be a dict of config key -> value")
        for j, other in enumerate(out):
            if other.id == row["id"]:
                raise SpaceError(f"{at}: the id is also ROWS[{j}]'s")
            if other.overrides == row["overrides"]:
                raise SpaceError(f"{at}: the same overrides as ROWS[{j}] (id {other.id!r})")
        paper = _paper(at, row.get("paper", {}), metrics)
        out.append(AblationRow(row["id"], row["label"], dict(row["overrides"]), paper))
    return Ablation(
        id=table["id"], title=table["title"], rows=tuple(out), source=table.get("source", ""), metrics=tuple(metrics),
        notes=tuple(notes), path=path, base=base,
    )


def _check_keys(where: str, given: dict[str, Any], allowed: dict[str, bool]) -> None:
    unknown = sorted(set(given) - set(allowed), key=str)
    if unknown:
        raise SpaceError(f"{where}: unknown keys {unknown}; allowed: {', '.join(allowed)}")
    missing = [k for k, required in allowed.items() if required and k not in given]
    if missing:
        raise SpaceError(f"{where}: missing keys {missing}")


def _paper(where: str, paper: Any, metrics: list[str]) -> dict[str, dict[str, float]]:
    """``{dataset: {metric: percent}}``, metrics among the table's."""
    if not isinstance(paper, dict):
        raise SpaceError(f"{where}['paper'] must be a dict of dataset -> {{metric: percent}}")
    out: dict[str, dict[str, float]] = {}
    for dataset, values in paper.items():
        at = f"{where}['paper'][{dataset!r}]"
        if not isinstance(dataset, str) or not isinstance(values, dict) or not values:
            raise SpaceError(f"{at} must be a non-empty dict of metric -> percent")
        for metric, value in values.items():
            if metric not in metrics:
                raise SpaceError(f"{at}: metric {metric!r} is not in TABLE['metrics'] {list(metrics)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 100.0:
                raise SpaceError(f"{at}[{metric!r}] must be a percentage in [0, 100], got {value!r}")
        out[dataset] = {m: float(v) for m, v in values.items()}
    return out


def load_ablations(names: list[str | Path] | None = None) -> list[Ablation]:
    """The ablation tables declared by the space files ``names`` (default: every file in
    ``search_spaces/``, in name order). Two files declaring the same table id is an error."""
    found: dict[str, Ablation] = {}
    for name in available_spaces() if names is None else names:
        ablation = load_space(name).ablation
        if ablation is None:
            continue
        if ablation.id in found:
            raise SpaceError(
                f"search space {ablation.path}: TABLE id {ablation.id!r} is also declared by {found[ablation.id].path}"
            )
        found[ablation.id] = ablation
    return list(found.values())


def check_space(space: SearchSpace, cfg: Config) -> Config:
    """Validate every key and value of ``space`` against ``cfg``; returns ``cfg`` with ``BASE`` applied.

    Grid and list points are checked in full (each one must give a valid config). Optuna specs are
    checked value by value (bounds and choices); combinations are only known once sampled.
    """
    try:
        base_cfg = with_overrides(cfg, space.base)
    except ConfigError as err:
        raise SpaceError(f"search space {space.path}: BASE: {err}") from err
    if space.kind == "optuna":
        for key, spec in space.space.items():
            for value in spec_values(spec):
                try:
                    with_overrides(base_cfg, {key: value})
                except ConfigError as err:
                    raise SpaceError(f"search space {space.path}: key '{key}' value {value!r}: {err}") from err
    else:
        for i, point in enumerate(space.points):
            try:
                with_overrides(base_cfg, point)
            except ConfigError as err:
                label = "GRID point" if space.kind == "grid" else "CONFIGS" if space.ablation is None else "ROWS"
                raise SpaceError(f"search space {space.path}: {label}[{i}] {point!r}: {err}") from err
    return base_cfg


# ----------------------------------------------------------------------------------------------
# categorical choices that are not plain scalars travel through Optuna as JSON strings


def is_plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def needs_encoding(spec: dict[str, Any]) -> bool:
    return spec["type"] == "categorical" and not all(is_plain(c) for c in spec["choices"])


def encoded_choices(spec: dict[str, Any]) -> list[Any]:
    """The choices as given to Optuna: unchanged when all are scalars, else every one as JSON."""
    if needs_encoding(spec):
        return [json.dumps(c) for c in spec["choices"]]
    return list(spec["choices"])


def decode_params(space: SearchSpace, params: dict[str, Any]) -> dict[str, Any]:
    """Sampled Optuna params back to config overrides (JSON-encoded choices decoded)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        spec = space.space.get(key)
        if spec and needs_encoding(spec) and isinstance(value, str):
            value = json.loads(value)
        out[key] = value
    return out
