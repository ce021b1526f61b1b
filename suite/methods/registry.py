"""The method registry: every part of the suite that needs to know a method asks here.

A method is one folder ``suite/methods/<name>/`` whose ``__init__.py`` defines ``SPEC``, a
``MethodSpec``. The built-in methods are the modules named in ``BUILTIN_METHODS``; adding a method
is a new folder plus one line there. Methods from outside the suite are found the same way in every
process (driver, Ray workers, subprocesses):

- installed packages declaring an entry point in the group ``rcsuite.methods`` (the value names a
  module with a ``SPEC``, or a ``MethodSpec`` itself);
- the modules listed, comma-separated, in the environment variable ``RCSUITE_METHOD_MODULES``;
- ``load_method_modules([...])`` (a config or command-line list), which also appends them to that
  variable so child processes load them too.

``register_method`` adds a spec at run time in one process only (a toy method inside a test).
Spec modules stay plain data (a dataclass for the config section, strings naming the trainer; they
import only this module, ``suite.errors`` and their ``config.py``), so building a ``Config``
imports no networks; the trainer is imported when a training runs.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from suite.errors import PluginError

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
ENTRY_POINT_GROUP = "rcsuite.methods"
MODULES_ENV = "RCSUITE_METHOD_MODULES"


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
    the function itself); it is imported only when a training runs.
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
    # The stage-cache key covers every config key (deny-list in suite.stage_cache) except these:
    # shared sections or dotted keys this method never reads, e.g. ("pseudo",), so changing them
    # keeps its cached stages. Forgetting one only costs a retraining, never a stale hit.
    unused_keys: tuple[str, ...] = ()
    # Dotted keys (or sections) that first shape a later stage -> that stage, e.g.
    # {"rcae.crd_width": "stage3"}: earlier stages stay shared when they change.
    stage_keys: Mapping[str, str] = field(default_factory=dict)
    # Old flat config keys -> the field of the own section they now set, e.g.
    # {"model.depth": "depth"}: old records, sweeps and search spaces keep loading.
    aliases: Mapping[str, str] = field(default_factory=dict)
    stages: tuple[str, ...] = ("stage1",)  # the stages it trains, in order
    # Packages besides its own folder and the trainer's whose sources shape its weights (a
    # method training through another's code); their sources join the code fingerprint.
    code_modules: tuple[str, ...] = ()
    # preset name -> overrides of the own section applied with that preset (e.g. smaller widths)
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Keys holding file paths: where things live, not what a configuration is.
    path_keys: tuple[str, ...] = ()
    # Cross-field checks of a config selecting this method; raise ``suite.errors.ConfigError``.
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
        for module in self.code_modules:
            found = importlib.util.find_spec(module)
            folder = Path(found.origin).resolve().parent if found and found.origin else None
            if folder is not None and folder not in folders:
                folders.append(folder)
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
_MODULES_LOADED: set[str] = set()


def _spec_of(obj: Any, origin: str) -> MethodSpec:
    spec = getattr(obj, "SPEC", obj)
    if not isinstance(spec, MethodSpec):
        raise PluginError(f"method plugin {origin}: expected a module with SPEC = MethodSpec(...) or a MethodSpec, "
                          f"got {type(spec).__name__}")
    return spec


def _load_module(module: str, origin: str) -> None:
    if module in _MODULES_LOADED:
        return
    try:
        spec = _spec_of(importlib.import_module(module), origin)
    except PluginError:
        raise
    except Exception as err:  # an import failure inside a plugin: name the plugin, keep the cause
        raise PluginError(f"method plugin {origin}: cannot import {module!r}: {type(err).__name__}: {err}") from err
    _add(spec, origin)
    _MODULES_LOADED.add(module)


def _add(spec: MethodSpec, origin: str) -> None:
    try:
        register_method(spec)
    except ValueError as err:
        raise PluginError(f"method plugin {origin}: {err}") from err


def _env_modules() -> list[str]:
    return [m.strip() for m in os.environ.get(MODULES_ENV, "").split(",") if m.strip()]


def _load_plugins() -> None:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {ep.name!r} = {ep.value!r} (group {ENTRY_POINT_GROUP})"
        if ep.attr is None:
            _load_module(ep.module, origin)
            continue
        try:
            spec = _spec_of(ep.load(), origin)
        except PluginError:
            raise
        except Exception as err:
            raise PluginError(f"method plugin {origin}: {type(err).__name__}: {err}") from err
        _add(spec, origin)
    for module in _env_modules():
        _load_module(module, f"module {module!r} (from {MODULES_ENV})")


def _load_builtins() -> None:
    """Built-ins, entry points and ``RCSUITE_METHOD_MODULES``, once per process."""
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
            _MODULES_LOADED.add(module)
        try:
            _load_plugins()
        except PluginError:
            _LOADED = False  # a fixed environment may try again
            raise


def load_method_modules(modules: list[str] | tuple[str, ...]) -> None:
    """Import method modules named by a config or command line (idempotent), and append them to
    ``RCSUITE_METHOD_MODULES`` so every child process of this one finds them too."""
    _load_builtins()
    with _LOCK:
        for module in modules:
            _load_module(module, f"module {module!r}")
        listed = _env_modules()
        extra = [m for m in modules if m not in listed]
        if extra:
            os.environ[MODULES_ENV] = ",".join(listed + extra)


def register_method(spec: MethodSpec, *, replace: bool = False) -> MethodSpec:
    """Add ``spec`` to the registry (``replace`` to swap an existing one of the same name)."""
    if not _LOADED:
        _load_builtins()
    with _LOCK:
        if spec.name in _SPECS and not replace and _SPECS[spec.name] is not spec:
            raise ValueError(f"method {spec.name!r} is already registered")
        sections = {s.config_section for s in _SPECS.values() if s.name != spec.name}
        if spec.config_section is not None and spec.config_section in sections:
            raise ValueError(f"method {spec.name!r}: config section {spec.config_section!r} is taken")
        if (spec.config_section is None) != (spec.config_class is None):
            raise ValueError(f"method {spec.name!r}: config_section and config_class go together")
        if spec.aliases and spec.config_section is None:
            raise ValueError(f"method {spec.name!r}: aliases need a config_section")
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


def aliases() -> dict[str, tuple[str, ...]]:
    """Old flat config key -> the new dotted keys it sets (one per method that claims it)."""
    out: dict[str, tuple[str, ...]] = {}
    for s in method_specs():
        for old, new in s.aliases.items():
            out[old] = out.get(old, ()) + (f"{s.config_section}.{new}",)
    return out


def method_sections() -> dict[str, type]:
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
