"""Load and check the declarative search spaces in ``search_spaces/`` (no Ray, no Optuna here).

A space module defines exactly one of

- ``SPACE``: ``{config key: spec}`` sampled by Optuna, where a spec is
  ``{"type": "int", "low": 1, "high": 6}`` (bounds inclusive, optional ``"step"``/``"log"``),
  ``{"type": "float", "low": 0.0, "high": 1.0, "log": False}`` or
  ``{"type": "categorical", "choices": [...]}`` (choices may be lists, e.g. block sizes);
- ``GRID``: ``{config key: [values]}``, run as the full cross product;
- ``CONFIGS``: a list of ``{config key: value}`` dicts, run one by one (e.g. an ablation ladder);

plus an optional ``BASE`` dict of overrides applied to every trial, and a docstring describing it.
Every key and value is checked against the base config with ``suite.config.with_overrides`` before
anything runs, so a typo fails at once with the space file and the key in the message.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suite.config import Config, ConfigError, with_overrides

SPEC_TYPES = ("int", "float", "categorical")
KINDS = ("optuna", "grid", "list")


class SpaceError(ConfigError):
    """A search space file is missing or malformed; the message names the file and the key."""


@dataclass
class SearchSpace:
    name: str
    path: Path
    kind: str  # optuna (SPACE) | grid (GRID) | list (CONFIGS)
    doc: str = ""
    base: dict[str, Any] = field(default_factory=dict)  # flat overrides applied to every trial
    space: dict[str, dict[str, Any]] = field(default_factory=dict)  # optuna: key -> spec
    points: list[dict[str, Any]] = field(default_factory=list)  # grid / list: one override dict per point

    @property
    def keys(self) -> list[str]:
        if self.kind == "optuna":
            return list(self.space)
        seen: list[str] = []
        for point in self.points:
            seen.extend(k for k in point if k not in seen)
        return seen


def spaces_dir() -> Path:
    """The ``search_spaces`` folder of this checkout (or of the installed package)."""
    here = Path(__file__).resolve().parents[2] / "search_spaces"
    if here.is_dir():
        return here
    try:
        import search_spaces  # type: ignore[import-not-found]

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
    if len(present) != 1:
        raise SpaceError(
            f"search space {path}: define exactly one of SPACE, GRID or CONFIGS (found: {', '.join(present) or 'none'})"
        )
    base = getattr(module, "BASE", None) or {}
    if not isinstance(base, dict):
        raise SpaceError(f"search space {path}: BASE must be a dict of config key -> value")
    out = SearchSpace(name=path.stem, path=path, kind="optuna", doc=(module.__doc__ or "").strip(), base=dict(base))
    if present[0] == "SPACE":
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
                label = "GRID point" if space.kind == "grid" else "CONFIGS"
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
