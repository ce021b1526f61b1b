"""Configurations and their labels, and the standard order of datasets and categories."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from suite.aggregate.names import label_section_order, benchmark_datasets, category_order, non_config_keys


def config_columns(frame: pd.DataFrame) -> list[str]:
    """``config.*`` columns that define a configuration (see ``NON_CONFIG_KEYS``)."""
    return [c for c in frame.columns if c.startswith("config.") and c[len("config."):] not in non_config_keys()]


def _distinct(values: Iterable[Any]) -> list[Any]:
    """Distinct values in first-seen order (equal values once, as ``==`` decides), NaN as None."""
    cleaned = [None if isinstance(v, float) and math.isnan(v) else v for v in values]
    try:
        return list(dict.fromkeys(cleaned))
    except TypeError:  # an unhashable value: compare one by one
        seen: list[Any] = []
        for v in cleaned:
            if v not in seen:
                seen.append(v)
        return seen


def varying_keys(frame: pd.DataFrame) -> list[str]:
    """Configuration keys (``config.`` stripped) with more than one value among the rows."""
    keys = [c for c in config_columns(frame) if len(_distinct(frame[c])) > 1]
    return sorted((c[len("config."):] for c in keys), key=_label_key_order)


def _label_key_order(key: str) -> tuple[int, str]:
    section = key.split(".", 1)[0]
    order = label_section_order()
    rank = order.index(section) if section in order else len(order)
    return rank, key


def short_key_names(keys: Sequence[str]) -> dict[str, str]:
    """Shortest dotted suffix of each key that is unique among ``keys`` (``model.depth`` -> ``depth``)."""
    out: dict[str, str] = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            suffix = ".".join(parts[-n:])
            clash = [k for k in keys if k != key and (k == suffix or k.endswith("." + suffix))]
            if not clash:
                out[key] = suffix
                break
        else:
            out[key] = key
    return out


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "None"
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def configuration_labels(frame: pd.DataFrame) -> pd.Series:
    """``method`` plus ``key=value`` for the config keys that vary among that method's records.

    Variation is judged per method, so a baseline's knob swept in its own trials does not leak into the RcAE
    labels. Numeric, list and string keys are always shown once they vary (``depth=3``); on/off
    switches only where they differ from their most common value (``skip=False``), which keeps
    labels short and still distinct. Records whose configs differ only in ``NON_CONFIG_KEYS``
    (e.g. the seed) share a label.
    """
    if frame.empty or "method" not in frame:
        return pd.Series([], dtype=object, index=frame.index)
    labels = pd.Series("", index=frame.index, dtype=object)
    for method, group in frame.groupby("method", sort=False, dropna=False):
        keys = varying_keys(group)
        short = short_key_names(keys)
        usual: dict[str, bool] = {}
        for key in keys:
            values = list(group[f"config.{key}"])
            if all(_is_bool(v) for v in values):
                n_true = sum(bool(v) for v in values)
                usual[key] = n_true >= len(values) - n_true  # ties go to True, the switches' default
        made: dict[Any, str] = {}  # one label per distinct combination of the keys' values
        columns = [list(group[f"config.{key}"]) for key in keys]
        out = []
        for row_values in zip(*columns) if keys else ((),) * len(group):
            try:
                label = made.get(row_values)
            except TypeError:  # unhashable values: no cache
                label = None
            if label is None:
                parts = [str(method)]
                for key, value in zip(keys, row_values):
                    if key in usual and bool(value) == usual[key]:
                        continue
                    parts.append(f"{short[key]}={format_value(value)}")
                label = " ".join(parts)
                try:
                    made[row_values] = label
                except TypeError:
                    pass
            out.append(label)
        labels[group.index] = out
    return labels


# ----------------------------------------------------------------------------------------------
# ordering


def dataset_sort_key(dataset: str) -> tuple[int, str]:
    order = benchmark_datasets()
    return (order.index(dataset) if dataset in order else len(order), str(dataset))


def category_sort_key(dataset: str, category: str) -> tuple[int, str, int, str]:
    """Standard benchmark order for MVTec AD and VisA; other datasets alphabetical, after them."""
    order = category_order(dataset)
    rank = order.index(category) if category in order else len(order)
    return (*dataset_sort_key(dataset), rank, str(category))


def ordered_categories(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(dataset, category) pairs present in ``frame`` in the standard order."""
    if frame.empty:
        return []
    pairs = {(str(d), str(c)) for d, c in zip(frame["dataset"], frame["category"])}
    return sorted(pairs, key=lambda p: category_sort_key(*p))
