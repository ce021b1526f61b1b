"""The method registry: every part of the suite that needs to know a method asks here.

A method is one folder ``suite/methods/<name>/`` whose ``__init__.py`` defines ``SPEC``, a
``MethodSpec``. The built-in methods are the modules named in ``BUILTIN_METHODS``; adding a method
is a new folder plus one line there. ``register_method`` adds a spec at run time (a user's own
method, or a toy method inside a test) without touching any file of the suite.

Spec modules stay light (a dataclass for the config section, strings naming the trainer), so
building a ``Config`` does not import the networks; the trainer is imported when a trial runs.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    from suite.config import Config
    from suite.methods.base import TrainContext, TrainedMethod

# One line per built-in method: the module whose ``SPEC`` describes it.
BUILTIN_METHODS: tuple[str, ...] = (
    "suite.methods.rcae",
    "suite.methods.convae",
    "suite.methods.fae",
    "suite.methods.hfr",
    "suite.methods.draem",
)


@dataclass(frozen=True)
class Reference:
    """Published numbers of a method, shown beside the measured ones (values in percent).

    ``values[dataset][category][metric]``; a ``"mean"`` category holds the paper's own mean.
    """

    name: str  # column label, e.g. "RcAE (paper)"
    source: str  # paper, table and column the numbers were transcribed from
    values: Mapping[str, Mapping[str, Mapping[str, float]]]
    metrics: tuple[str, ...] = ("i_auroc", "p_auroc")
    # dataset -> metric -> the mean the paper itself prints (may differ from the mean of ``values``)
    published_mean: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


def load_references(path: str | Path) -> dict[str, Reference]:
    """References from a JSON file ``{key: {name, source, metrics, values, published_mean}}``
    (numbers in percent, transcribed by hand; every entry names its source)."""
    data = json.loads(Path(path).read_text())
    return {
        key: Reference(name=e["name"], source=e["source"], values=e["values"], metrics=tuple(e["metrics"]),
                       published_mean=e.get("published_mean", {}))
        for key, e in data.items()
    }


@dataclass(frozen=True)
class MethodSpec:
    """Everything the suite needs to know about one method.

    ``trainer`` names ``train(ctx: TrainContext) -> TrainedMethod`` as ``"module:function"`` (or is
    the function itself); it is imported only when a trial runs.
    """

    name: str  # the value of ``model.method``
    display_name: str  # in tables, plots and logs
    colour: str  # matplotlib colour in plots
    trainer: str | Callable[["TrainContext"], "TrainedMethod"]
    description: str = ""
    # The top-level config section this method owns (``cfg.<section>``) and its dataclass.
    config_section: str | None = None
    config_class: type | None = None
    # Fields of the own section that change only scoring, not the trained weights: sweeping them
    # reuses cached stages.
    scoring_fields: frozenset[str] = frozenset()
    # Shared config sections whose values shape the weights (besides data, the stage's training
    # settings and the seed), e.g. ("augment",) for methods trained on its corruptions.
    cache_sections: tuple[str, ...] = ()
    # Extra stage-cache key material: (cfg, stage) -> dict; for multi-stage methods whose later
    # stages depend on more than the own section.
    cache_material: Callable[["Config", str], dict[str, Any]] | None = None
    stages: tuple[str, ...] = ("stage1",)  # the stages it trains, in order
    # preset name -> overrides of the own section applied with that preset (e.g. smaller widths)
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Keys holding file paths: where things live, not what a configuration is.
    path_keys: tuple[str, ...] = ()
    # Cross-field checks; raise ``suite.config.ConfigError`` naming the key.
    validate: Callable[["Config"], None] | None = None
    # True when eval.anomaly_map / eval.standardize select this method's pixel map.
    uses_eval_map: bool = False
    # Published numbers. With ``reference_by`` (a config key such as a backbone choice), the
    # references are keyed by that key's value; else by the method name.
    references: Mapping[str, Reference] = field(default_factory=dict)
    reference_by: str | None = None
    # Made-up quality (mean I-AUROC, from flat config overrides) and cost for the fake records
    # that exercise the report without training.
    fake_quality: float | Callable[[Mapping[str, Any]], float] = 0.85
    fake_cost: Mapping[str, Any] | Callable[[Mapping[str, Any]], Mapping[str, Any]] = field(
        default_factory=lambda: {"params": 100_000, "gflops": 0.2, "latency_ms": 3.0}
    )

    def train_fn(self) -> Callable[["TrainContext"], "TrainedMethod"]:
        if callable(self.trainer):
            return self.trainer
        module, _, name = self.trainer.partition(":")
        return getattr(importlib.import_module(module), name or "train")

    def quality(self, overrides: Mapping[str, Any]) -> float:
        q = self.fake_quality
        return float(q(overrides) if callable(q) else q)

    def cost(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        c = self.fake_cost
        return dict(c(overrides) if callable(c) else c)

    def code_paths(self) -> list[Path]:
        """The folders whose Python sources make this method's weights: the trainer's package
        and ``suite/methods/<name>/`` (stage-cache keys carry their fingerprint)."""
        if callable(self.trainer):
            origin = inspect.getsourcefile(self.trainer)
        else:
            found = importlib.util.find_spec(self.trainer.partition(":")[0])
            origin = found.origin if found else None
        folders = [Path(origin).resolve().parent] if origin else []
        own = Path(__file__).resolve().parent / self.name
        if own.is_dir() and own not in folders:
            folders.append(own)
        return folders

    def code_fingerprint(self) -> str:
        """sha1 over the ``.py`` files of ``code_paths`` (names and bytes), 12 hex digits."""
        digest = hashlib.sha1()
        for folder in self.code_paths():
            for path in sorted(folder.rglob("*.py")):
                digest.update(path.relative_to(folder).as_posix().encode())
                digest.update(path.read_bytes())
        return digest.hexdigest()[:12]

    def reference_keys(self, values: list[Any]) -> list[str]:
        """The reference entries matching the ``reference_by`` values seen in a report."""
        if self.reference_by is None:
            return [self.name] if self.name in self.references else []
        return [f"{self.name}:{v}" for v in values if str(v) in self.references]

    def reference(self, key: str) -> Reference | None:
        name, _, variant = key.partition(":")
        return self.references.get(variant or name) if name == self.name else None


_LOCK = threading.RLock()
_SPECS: dict[str, MethodSpec] = {}
_LOADED = False


def _load_builtins() -> None:
    global _LOADED
    if _LOADED:
        return
    with _LOCK:
        if _LOADED:
            return
        _LOADED = True
        for module in BUILTIN_METHODS:
            spec = importlib.import_module(module).SPEC
            _SPECS.setdefault(spec.name, spec)


def register_method(spec: MethodSpec, *, replace: bool = False) -> MethodSpec:
    """Add ``spec`` to the registry (``replace`` to swap an existing one of the same name)."""
    _load_builtins()
    with _LOCK:
        if spec.name in _SPECS and not replace and _SPECS[spec.name] is not spec:
            raise ValueError(f"method {spec.name!r} is already registered")
        sections = {s.config_section for s in _SPECS.values() if s.name != spec.name}
        if spec.config_section is not None and spec.config_section in sections:
            raise ValueError(f"method {spec.name!r}: config section {spec.config_section!r} is taken")
        if (spec.config_section is None) != (spec.config_class is None):
            raise ValueError(f"method {spec.name!r}: config_section and config_class go together")
        _SPECS[spec.name] = spec
    return spec


def unregister_method(name: str) -> None:
    """Remove a method registered at run time (tests clean up with this)."""
    with _LOCK:
        _SPECS.pop(name, None)


def method_specs() -> tuple[MethodSpec, ...]:
    """Every registered method, built-ins first in ``BUILTIN_METHODS`` order."""
    _load_builtins()
    return tuple(_SPECS.values())


def method_names() -> tuple[str, ...]:
    return tuple(s.name for s in method_specs())


def method_spec(name: str) -> MethodSpec:
    _load_builtins()
    try:
        return _SPECS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; registered methods: {', '.join(_SPECS)}") from None


def config_sections() -> dict[str, type]:
    """Method-owned config sections: section name -> dataclass."""
    return {s.config_section: s.config_class for s in method_specs() if s.config_section and s.config_class}


def display_name(name: str) -> str:
    _load_builtins()
    spec = _SPECS.get(name)
    return spec.display_name if spec else name


def method_order(names: list[str] | set[str]) -> list[str]:
    """``names`` in registry order; unknown names (old records) last, sorted."""
    known = [n for n in method_names() if n in names]
    return known + sorted(set(names) - set(known))
