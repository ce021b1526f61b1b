"""Config values against their field annotations: ``coerce`` (Literal choices, unions, lists,
bool/int/float/str) and ``check_range``; one place for the checks every config key gets."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

from suite.errors import ConfigError


def type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it (ints accepted for floats)."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value in allowed and type(value) is type(allowed[0]):
            return value
        raise ConfigError(f"config key '{key}': {value!r} is not allowed; valid values: {', '.join(map(str, allowed))}")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"config key '{key}': {value!r} is not a valid {type_name(tp)}")
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"config key '{key}': expected a list, got {value!r}")
        return [coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key '{key}': expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"config key '{key}': expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"config key '{key}': expected a string, got {value!r}")
    if tp is Any:
        return value
    raise ConfigError(f"config key '{key}': unsupported type {tp}")


def check_range(key: str, value: float, low: float, high: float, low_in: bool, high_in: bool) -> None:
    ok = (low <= value if low_in else low < value) and (value <= high if high_in else value < high)
    if not ok:
        allowed = f"{'[' if low_in else '('}{low}, {high}{']' if high_in else ')'}"
        raise ConfigError(f"config key '{key}': {value} is outside the allowed range {allowed}")
