"""The schema of a ``TrialRecord`` file, checked where records are written and where they are read.

A record file comes from a shared filesystem, written by many nodes over days and by several
versions of the suite, so a report must survive any file. Before parsing, a file must be at most
``MAX_RECORD_BYTES`` and its JSON nested at most ``MAX_DEPTH`` deep; the depth is measured on the
raw text (strings blanked out, then a cumulative sum of brackets), so no untrusted depth ever
reaches a recursive parser. After parsing, ``check_record`` checks every field's type and range:

- required: ``config`` (mapping), ``config_hash``, ``dataset``, ``category``, ``method`` (text);
- ``status`` in ``STATUSES``, ``selection`` in ("val", "test"), ``seed`` an integer;
- metric values (``metrics``, ``scorings``, ``diagnostics``) finite numbers; the accuracy metrics
  (names ending in auroc, ap, f1max or aupro) in [0, 1];
- ``shifts`` (version 6): shift name -> metrics, as ``metrics``; ``info.data_shift`` null or a
  ``DataShiftResult.to_dict()`` (a flag, counts and per-statistic numbers or null) and
  ``info.score_brightness_spearman`` null or in [-1, 1], in records of any version;
- ``cost`` and ``stage_times`` numbers finite and >= 0; times (``started``, ``finished``,
  ``created``) finite and >= 0; the remaining sections of their container type.

A record of a newer ``record_version`` may hold fields this code does not know: they are ignored
and named; in a record of this or an older version an unknown field is an error.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import re
from collections.abc import Callable
from typing import Any

import numpy as np

RECORD_VERSION = 6  # see suite.records for the history
MAX_RECORD_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 32  # a record nests 5 levels (diagnostics); configs a few more
STATUSES = ("ok", "failed", "stopped")
SELECTIONS = ("val", "test")
ACCURACY_METRIC = re.compile(r"(?:^|_)(auroc|ap|f1max|aupro)$")
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)  # a JSON string, escapes included
_BRACKET_STEP = np.zeros(256, dtype=np.int8)
_BRACKET_STEP[[ord("["), ord("{")]] = 1
_BRACKET_STEP[[ord("]"), ord("}")]] = -1


class RecordError(ValueError):
    """A record file or mapping that fails the schema; the message says why."""


def json_depth(raw: bytes) -> int:
    """Deepest bracket nesting of JSON text, strings ignored (no parsing, no recursion)."""
    step = _BRACKET_STEP[np.frombuffer(_STRING.sub(b'""', raw), dtype=np.uint8)]
    return int(np.cumsum(step, dtype=np.int64).max()) if step.size else 0


def parse_record_bytes(raw: bytes) -> Any:
    """The JSON value of a record file's bytes, after the size and depth limits; ``RecordError``."""
    if len(raw) > MAX_RECORD_BYTES:
        raise RecordError(f"file is over the {MAX_RECORD_BYTES}-byte limit")
    if not raw.strip():
        raise RecordError("file is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RecordError(f"not UTF-8 text (byte {err.start})") from None
    depth = json_depth(raw)
    if depth > MAX_DEPTH:
        raise RecordError(f"JSON nested {depth} levels deep, over the limit of {MAX_DEPTH}")
    try:
        return json.loads(text)
    except ValueError as err:
        raise RecordError(f"not valid JSON ({err})") from None


# ----------------------------------------------------------------------------------------------
# field checks: each appends "where: what is wrong" to ``problems``

Check = Callable[[Any, str, list[str]], None]


def _is_number(value: Any) -> bool:
    kind = type(value)
    if kind is float or kind is int:  # the common case, without the slower ABC check
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def text(value: Any, where: str, problems: list[str]) -> None:
    if not isinstance(value, str):
        problems.append(f"{where}: expected text, got {_kind(value)}")


def optional(check: Check) -> Check:
    def run(value: Any, where: str, problems: list[str]) -> None:
        if value is not None:
            check(value, where, problems)
    return run


def one_of(choices: tuple[str, ...]) -> Check:
    def run(value: Any, where: str, problems: list[str]) -> None:
        if value not in choices:
            problems.append(f"{where}: {value!r} is not one of {', '.join(choices)}")
    return run


def integer(value: Any, where: str, problems: list[str]) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)):
        problems.append(f"{where}: expected an integer, got {_kind(value)}")


def number(low: float = -math.inf, high: float = math.inf) -> Check:
    def run(value: Any, where: str, problems: list[str]) -> None:
        if not _is_number(value):
            problems.append(f"{where}: expected a number, got {_kind(value)}")
        elif not math.isfinite(float(value)):
            problems.append(f"{where}: {value} is not finite")
        elif not low <= float(value) <= high:
            problems.append(f"{where}: {value:g} is outside [{low:g}, {high:g}]")
    return run


def metric_value(value: Any, where: str, problems: list[str]) -> None:
    name = where.rsplit(".", 1)[-1]
    (_FRACTION if _is_accuracy(name) else _FINITE)(value, where, problems)


@functools.lru_cache(maxsize=4096)
def _is_accuracy(name: str) -> bool:
    return ACCURACY_METRIC.search(name) is not None


def mapping_of(check: Check | None = None) -> Check:
    """A mapping with text keys whose values pass ``check`` (any value when None)."""
    def run(value: Any, where: str, problems: list[str]) -> None:
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a mapping, got {_kind(value)}")
            return
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(f"{where}: key {key!r} is not text")
            elif check is not None:
                check(item, f"{where}.{key}", problems)
    return run


def list_of_mappings(value: Any, where: str, problems: list[str]) -> None:
    if not isinstance(value, list):
        problems.append(f"{where}: expected a list, got {_kind(value)}")
    elif not all(isinstance(item, dict) for item in value):
        problems.append(f"{where}: expected a list of mappings")


def cost_value(value: Any, where: str, problems: list[str]) -> None:
    """Costs are counts, times and sizes (>= 0), also per batch size (a mapping); a method may add flags
    or names."""
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, dict):
        mapping_of(cost_value)(value, where, problems)
    else:
        _NON_NEGATIVE(value, where, problems)


def anything(value: Any, where: str, problems: list[str]) -> None:
    return None


def boolean(value: Any, where: str, problems: list[str]) -> None:
    if not isinstance(value, (bool, np.bool_)):
        problems.append(f"{where}: expected true/false, got {_kind(value)}")


def fields_of(checks: dict[str, Check], required: tuple[str, ...] = ()) -> Check:
    """A mapping whose listed keys pass their checks (``required`` ones present); other keys: any value."""
    def run(value: Any, where: str, problems: list[str]) -> None:
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a mapping, got {_kind(value)}")
            return
        for key in required:
            if key not in value:
                problems.append(f"{where}.{key}: missing")
        for key, check in checks.items():
            if key in value:
                check(value[key], f"{where}.{key}", problems)
    return run


def text_list(value: Any, where: str, problems: list[str]) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        problems.append(f"{where}: expected a list of text")


def statistic_value(value: Any, where: str, problems: list[str]) -> None:
    if value is None:  # a statistic that could not be computed (written as null, never as NaN)
        return
    (boolean if isinstance(value, (bool, np.bool_)) else _FINITE)(value, where, problems)


_FRACTION = number(0.0, 1.0)
_FINITE = number()
METRICS = mapping_of(mapping_of(metric_value))  # split -> name -> value
_NON_NEGATIVE = number(0.0)
TIME = optional(_NON_NEGATIVE)
# info.data_shift: suite.data.shift_check.DataShiftResult.to_dict()
DATA_SHIFT = fields_of(
    {
        "shifted": boolean,
        "shifted_statistics": text_list,
        "n_train": integer,
        "n_test": integer,
        "rule": text,
        "statistics": mapping_of(mapping_of(statistic_value)),
    },
    required=("shifted", "statistics"),
)
INFO = fields_of({"data_shift": optional(DATA_SHIFT), "score_brightness_spearman": optional(number(-1.0, 1.0))})

# field -> (required, check); the field names are TrialRecord's (tests/unit/test_records.py)
FIELDS: dict[str, tuple[bool, Check]] = {
    "config": (True, mapping_of()),
    "config_hash": (True, text),
    "dataset": (True, text),
    "category": (True, text),
    "method": (True, text),
    "status": (False, one_of(STATUSES)),
    "error": (False, optional(text)),
    "metrics": (False, METRICS),
    "cost": (False, mapping_of(cost_value)),
    "stage_times": (False, mapping_of(number(0.0))),
    "step_breakdown": (False, mapping_of(mapping_of(number(0.0)))),  # stage -> data_s, inputs_s, ...
    "history": (False, list_of_mappings),
    "artifacts": (False, mapping_of(text)),
    "info": (False, INFO),
    "diagnostics": (False, mapping_of(mapping_of(mapping_of(mapping_of(metric_value))))),
    "scorings": (False, mapping_of(METRICS)),
    "shifts": (False, mapping_of(mapping_of(metric_value))),
    "ablation": (False, mapping_of(text)),
    "trial_id": (False, optional(text)),
    "sweep": (False, optional(text)),
    "seed": (False, integer),
    "selection": (False, one_of(SELECTIONS)),
    "node": (False, mapping_of()),
    "device": (False, mapping_of()),
    "started": (False, TIME),
    "finished": (False, TIME),
    "versions": (False, mapping_of()),
    "created": (False, number(0.0)),
    "record_version": (False, integer),
}
_MAX_LISTED = 5


def check_record(data: Any, writing: bool = False) -> tuple[dict[str, Any], list[str]]:
    """(the known fields of ``data``, what was ignored) or ``RecordError`` listing the problems.

    ``writing``: the record is about to be written by this code, so it cannot be of a newer version (an
    older record rewritten, e.g. marked stopped on resume, keeps its version).
    """
    if not isinstance(data, dict):
        raise RecordError(f"expected a JSON object, got {_kind(data)}")
    version = data.get("record_version", 1)
    problems: list[str] = []
    integer(version, "record_version", problems)
    if problems:
        raise RecordError(problems[0])
    if writing and version > RECORD_VERSION:
        raise RecordError(f"record_version {version}; this code writes at most {RECORD_VERSION}")
    unknown = sorted(set(data) - set(FIELDS))
    ignored: list[str] = []
    if unknown and version <= RECORD_VERSION:
        raise RecordError(f"unknown fields {unknown} in a version-{version} record")
    if unknown:
        ignored = [f"field {name!r} (record version {version}, this code reads {RECORD_VERSION})" for name in unknown]
    for name, (required, check) in FIELDS.items():
        if name not in data:
            if required:
                problems.append(f"{name}: missing")
            continue
        check(data[name], name, problems)
    if problems:
        more = f" (and {len(problems) - _MAX_LISTED} more)" if len(problems) > _MAX_LISTED else ""
        raise RecordError("; ".join(problems[:_MAX_LISTED]) + more)
    return {k: v for k, v in data.items() if k in FIELDS}, ignored
