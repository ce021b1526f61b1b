"""From stored ``TrialRecord`` JSON files to one flat table, and the statistics reports need.

Nothing here trains or imports torch / ray: every number comes from the record files, so a report
can be rebuilt on any machine from the run folders alone.

Vocabulary
- *record*: one ``TrialRecord`` (one trial on one category).
- *configuration*: the records' config minus the keys that do not change the model or its data
  (category, dataset root, seed, devices, bookkeeping); seeds of one configuration are averaged.
- *label*: a short name of a configuration, ``method`` plus the config keys that vary among the
  loaded records of that method, e.g. ``"rcae depth=3 coverage=0.5"``.
- *diagnostics* (record version 2): per-depth signal, flattened to columns
  ``diag.<split>.<family>.<step>.<metric>`` (family recon | detail | crd, step "1".."N" or "all").
- *scorings* (record version 2): the same model under several scoring variants, flattened to
  ``scoring.<variant>.<split>.<metric>`` (variant e.g. ``"auto|pixel"``). Older records lack both.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from suite.config import flatten
from suite.config_aliases import report_view
from suite.data.registry import dataset_names, dataset_spec, dataset_specs
from suite.methods.registry import display_name, method_specs
from suite.records import TrialRecord, find_records, read_record

SPLITS = ("val", "test")
DIAG_FAMILIES = ("recon", "detail", "crd")
DIAG_PREFIX = "diag."
SCORING_PREFIX = "scoring."
SATURATION_THRESHOLD = 0.98  # a validation metric at or above this cannot tell configurations apart
FIDELITY_MIN_CONFIGURATIONS = 3
FIDELITY_WARN_BELOW = 0.5
METRICS = ("i_auroc", "p_auroc", "aupro", "i_ap", "p_ap", "i_f1max", "p_f1max")
COSTS = ("params", "gflops", "latency_ms", "latency_ms_batch", "throughput_ips", "peak_mem_mb")
STAGES = ("stage1", "stage2", "stage3")
STATUSES = ("ok", "failed", "stopped")

METRIC_NAMES = {
    "i_auroc": "I-AUROC",
    "p_auroc": "P-AUROC",
    "aupro": "AUPRO",
    "i_ap": "I-AP",
    "p_ap": "P-AP",
    "i_f1max": "I-F1max",
    "p_f1max": "P-F1max",
}


# Dataset display names, the benchmark datasets' order and their category orders (the papers'
# orders, textures first for MVTec AD) come from the dataset registry (suite.data.registry).
class _DatasetDisplayNames(Mapping[str, str]):
    """Read-only, live view ``dataset name -> display name`` of the registered datasets, so
    ``DATASET_NAMES.get(d, d)`` names any registered dataset and leaves others as they are."""

    def __getitem__(self, dataset: str) -> str:
        if dataset not in dataset_names():
            raise KeyError(dataset)
        return dataset_spec(dataset).display_name

    def __iter__(self):
        return iter(dataset_names())

    def __len__(self) -> int:
        return len(dataset_names())


DATASET_NAMES: Mapping[str, str] = _DatasetDisplayNames()


def benchmark_datasets() -> tuple[str, ...]:
    """The datasets reports order first (mvtec, visa), in registration order."""
    return tuple(spec.name for spec in dataset_specs() if spec.in_benchmark_tables)


def category_order(dataset: str) -> tuple[str, ...]:
    """The standard category order of a benchmark dataset; () for any other (sorted by name)."""
    if dataset not in benchmark_datasets():
        return ()
    return dataset_spec(dataset).categories


# Config keys that do not define a configuration: where the data lives, which category, seeds,
# devices and bookkeeping. Records differing only in these are the same configuration.
NON_CONFIG_KEYS = frozenset(
    {
        "data.root",
        "data.category",
        "data.dataset",
        "runtime.seed",
        "runtime.preset",
        "runtime.device",
        "runtime.num_workers",
        "runtime.cache_mb",
        "runtime.threads",
        "runtime.prefetch", "runtime.channels_last", "runtime.activation_checkpointing", "runtime.infer_mpx",
        "eval.save_maps",
        "eval.cost",
        "eval.scoring_variants",  # extra scorings / diagnostics are recorded beside the metrics,
        "eval.diagnostics",  # they never change them
        "eval.aupro",
        "train.checkpoint_every",
        "train.eval_every",
        "train.amp",
        "train.max_time_s",
        "pseudo.texture_root",
    }
)


def non_config_keys() -> frozenset[str]:
    """``NON_CONFIG_KEYS`` plus every registered method's path keys (where its files live)."""
    return NON_CONFIG_KEYS | {key for spec in method_specs() for key in spec.path_keys}


def method_display_name(method: Any) -> str:
    """A method's name in tables and plots (the registry's display name; unknown names as they are)."""
    return display_name(str(method))

# Order of config sections in a label: the model first, then what it is trained on.
def _label_section_order() -> tuple[str, ...]:
    methods = tuple(s.config_section for s in method_specs() if s.config_section)
    return ("model", "augment", "data", *methods, "train", "eval", "runtime")


# ----------------------------------------------------------------------------------------------
# loading


@dataclass
class RecordSet:
    """Records read from run folders, with the files that could not be read (never dropped silently)."""

    records: list[TrialRecord] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)


def load_records(*roots: str | Path) -> RecordSet:
    """Read every ``record*.json`` under ``roots``; malformed files go to ``unreadable``."""
    out = RecordSet()
    for path in find_records(*roots):
        try:
            record = read_record(path)
        except ValueError as err:
            out.unreadable.append((path, str(err)))
            continue
        out.records.append(record)
        out.paths.append(path)
    return out


# ----------------------------------------------------------------------------------------------
# the flat frame


def _hashable(value: Any) -> Any:
    """Lists become tuples so config values can be grouped and compared."""
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def _number(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def record_row(record: TrialRecord, path: str | Path | None = None) -> dict[str, Any]:
    """One flat row: identity, ``config.*``, ``<split>.<metric>``, ``cost.*``, ``time.*``."""
    row: dict[str, Any] = {
        "record_path": str(path) if path is not None else None,
        "trial_id": record.trial_id,
        "sweep": record.sweep,
        "seed": record.seed,
        "status": record.status,
        "error": record.error,
        "dataset": record.dataset,
        "category": record.category,
        "method": record.method,
        "selection": record.selection,
        "config_hash": record.config_hash,
        "created": record.created,
        "hostname": (record.node or {}).get("hostname"),
        "version.git_commit": (record.versions or {}).get("git_commit"),
        "version.rcsuite": (record.versions or {}).get("rcsuite"),
        "version.torch": (record.versions or {}).get("torch"),
    }
    for key, value in report_view(flatten(record.config or {}), record.method).items():
        row[f"config.{key}"] = _hashable(value)
    for split in SPLITS:
        values = (record.metrics or {}).get(split, {}) or {}
        for name in METRICS:
            row[f"{split}.{name}"] = _number(values.get(name))
    for split, values in (record.metrics or {}).items():  # extra splits or metrics are kept too
        for name, value in (values or {}).items():
            row.setdefault(f"{split}.{name}", _number(value))
    cost = record.cost or {}
    for name in COSTS:
        row[f"cost.{name}"] = _number(cost.get(name))
    for name, value in cost.items():
        if name not in COSTS:
            row[f"cost.{name}"] = value if isinstance(value, (bool, str)) or value is None else _number(value)
    times = record.stage_times or {}
    for stage in STAGES:
        row[f"time.{stage}"] = _number(times.get(stage))
    for stage, value in times.items():
        row.setdefault(f"time.{stage}", _number(value))
    stage_values = [_number(v) for v in times.values()]
    row["time.total"] = float(np.nansum(stage_values)) if stage_values else math.nan
    row["info.scoring"] = (record.info or {}).get("scoring")
    row["ablation.table"] = (record.ablation or {}).get("table")  # set by ablation spaces' trials
    row["ablation.row"] = (record.ablation or {}).get("row")
    for split, families in (record.diagnostics or {}).items():
        for family, steps in (families or {}).items():
            for step, values in (steps or {}).items():
                for name, value in (values or {}).items():
                    row[diagnostic_column(split, family, step, name)] = _number(value)
    for variant, splits in (record.scorings or {}).items():
        for split, values in (splits or {}).items():
            for name, value in (values or {}).items():
                row[scoring_column(variant, split, name)] = _number(value)
    gallery = (record.artifacts or {}).get("gallery")
    if gallery and path is not None:
        row["gallery"] = os.path.realpath(Path(path).parent / gallery)
    else:
        row["gallery"] = None
    return row


def diagnostic_column(split: str, family: str, step: Any, metric: str) -> str:
    return f"{DIAG_PREFIX}{split}.{family}.{step}.{metric}"


def scoring_column(variant: str, split: str, metric: str) -> str:
    return f"{SCORING_PREFIX}{variant}.{split}.{metric}"


def diagnostic_columns(frame: pd.DataFrame, split: str | None = None) -> list[tuple[str, str, str, str, str]]:
    """(column, split, family, step, metric) of every ``diag.*`` column, optionally of one split."""
    out = []
    for col in frame.columns:
        parts = str(col)[len(DIAG_PREFIX):].split(".") if str(col).startswith(DIAG_PREFIX) else []
        if len(parts) == 4 and (split is None or parts[0] == split):
            out.append((str(col), *parts))
    return out


def scoring_columns(frame: pd.DataFrame, split: str | None = None) -> list[tuple[str, str, str, str]]:
    """(column, variant, split, metric) of every ``scoring.*`` column; the variant may hold dots."""
    out = []
    for col in frame.columns:
        if not str(col).startswith(SCORING_PREFIX):
            continue
        parts = str(col)[len(SCORING_PREFIX):].rsplit(".", 2)
        if len(parts) == 3 and (split is None or parts[1] == split):
            out.append((str(col), *parts))
    return out


def step_sort_key(step: str) -> tuple[int, float, str]:
    """Numeric steps in order ("2" before "10"), then anything else (e.g. "all")."""
    try:
        return (0, float(step), str(step))
    except (TypeError, ValueError):
        return (1, math.inf, str(step))


def records_frame(
    records: RecordSet | Sequence[TrialRecord], paths: Sequence[str | Path] | None = None
) -> pd.DataFrame:
    """One row per record (see ``record_row``) plus a ``label`` column naming its configuration."""
    if isinstance(records, RecordSet):
        paths = records.paths
        records = records.records
    if paths is not None and len(paths) != len(records):
        raise ValueError(f"records_frame: {len(records)} records but {len(paths)} paths")
    rows = [record_row(r, paths[i] if paths is not None else None) for i, r in enumerate(records)]
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=["record_path", "status", "dataset", "category", "method", "seed"])
    frame["label"] = configuration_labels(frame)
    return frame


def frame_for_csv(frame: pd.DataFrame) -> pd.DataFrame:
    """Tuples (config lists) written as JSON-like lists so the CSV reads back unambiguously."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].map(lambda v: "[" + ", ".join(map(str, v)) + "]" if isinstance(v, tuple) else v)
    return out


# ----------------------------------------------------------------------------------------------
# configurations and labels


def config_columns(frame: pd.DataFrame) -> list[str]:
    """``config.*`` columns that define a configuration (see ``NON_CONFIG_KEYS``)."""
    return [c for c in frame.columns if c.startswith("config.") and c[len("config."):] not in non_config_keys()]


def _distinct(values: Iterable[Any]) -> list[Any]:
    seen: list[Any] = []
    for v in values:
        if isinstance(v, float) and math.isnan(v):
            v = None
        if v not in seen:
            seen.append(v)
    return seen


def varying_keys(frame: pd.DataFrame) -> list[str]:
    """Configuration keys (``config.`` stripped) with more than one value among the rows."""
    keys = [c for c in config_columns(frame) if len(_distinct(frame[c])) > 1]
    return sorted((c[len("config."):] for c in keys), key=_label_key_order)


def _label_key_order(key: str) -> tuple[int, str]:
    section = key.split(".", 1)[0]
    order = _label_section_order()
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
        for idx, row in group.iterrows():
            parts = [str(method)]
            for key in keys:
                value = row[f"config.{key}"]
                if key in usual and bool(value) == usual[key]:
                    continue
                parts.append(f"{short[key]}={format_value(value)}")
            labels[idx] = " ".join(parts)
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


# ----------------------------------------------------------------------------------------------
# statistics


def ok_records(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with ``status == ok``: the only ones that enter means (failed ones are listed instead)."""
    return frame[frame["status"] == "ok"] if "status" in frame else frame


def seed_stats(
    frame: pd.DataFrame, columns: Sequence[str], by: Sequence[str] = ("label", "dataset", "category")
) -> pd.DataFrame:
    """Mean, sample std (ddof=1; NaN for a single record) and count of ``columns`` per group.

    Output columns: the ``by`` keys, ``n`` (records in the group), ``seeds`` (distinct seed values
    among them: two records of one (configuration, seed) are one seed, not two), ``<col>`` (mean)
    and ``<col>.std``. NaNs are skipped, so a metric missing in one seed does not hide the others.
    """
    by = list(by)
    columns = [c for c in columns if c in frame.columns]
    if frame.empty:
        return pd.DataFrame(columns=[*by, "n", "seeds", *columns, *(f"{c}.std" for c in columns)])
    grouped = frame.groupby(by, sort=False, dropna=False)
    out = grouped.size().rename("n").to_frame()
    out["seeds"] = grouped["seed"].nunique(dropna=False) if "seed" in frame.columns else out["n"]
    for col in columns:
        values = pd.to_numeric(frame[col], errors="coerce")
        g = values.groupby([frame[b] for b in by], sort=False, dropna=False)
        out[col] = g.mean()
        out[f"{col}.std"] = g.std(ddof=1)
    return out.reset_index()


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``points`` (n, d), every column to be maximised.

    Row q dominates row p when q >= p in every column and q > p in at least one. Identical rows do
    not dominate each other, so duplicates on the front are all kept. Rows with a NaN are never on
    the front.
    """
    points = np.asarray(points, dtype=float)
    if points.ndim != 2:
        raise ValueError(f"pareto_mask expects an (n, d) array, got shape {points.shape}")
    n = points.shape[0]
    valid = ~np.isnan(points).any(axis=1)
    mask = valid.copy()
    for i in range(n):
        if not valid[i]:
            continue
        others = points[valid]
        dominated = np.any(np.all(others >= points[i], axis=1) & np.any(others > points[i], axis=1))
        mask[i] = not dominated
    return mask


def pareto_front(
    points: pd.DataFrame | Sequence[Mapping[str, Any]],
    maximize: Sequence[str] = (),
    minimize: Sequence[str] = (),
) -> pd.DataFrame | list[Mapping[str, Any]]:
    """The non-dominated subset of ``points`` (same type, original order), see ``pareto_mask``."""
    objectives = [*maximize, *minimize]
    if not objectives:
        raise ValueError("pareto_front needs at least one objective in maximize or minimize")
    if isinstance(points, pd.DataFrame):
        missing = [c for c in objectives if c not in points.columns]
        if missing:
            raise KeyError(f"pareto_front: columns {missing} not in the frame")
        table = points
    else:
        points = list(points)
        for i, p in enumerate(points):
            missing = [c for c in objectives if c not in p]
            if missing:
                raise KeyError(f"pareto_front: point {i} lacks {missing}")
        table = pd.DataFrame([{c: p[c] for c in objectives} for p in points])
    if len(table) == 0:
        return points.iloc[0:0] if isinstance(points, pd.DataFrame) else []
    oriented = np.column_stack(
        [pd.to_numeric(table[c], errors="coerce").to_numpy(float) for c in maximize]
        + [-pd.to_numeric(table[c], errors="coerce").to_numpy(float) for c in minimize]
    )
    mask = pareto_mask(oriented)
    if isinstance(points, pd.DataFrame):
        return points[mask]
    return [p for p, keep in zip(points, mask) if keep]


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks); NaN when undefined."""
    xs = pd.Series(np.asarray(x, dtype=float))
    ys = pd.Series(np.asarray(y, dtype=float))
    keep = xs.notna() & ys.notna()
    xs, ys = xs[keep], ys[keep]
    if len(xs) < 3 or xs.nunique() < 2 or ys.nunique() < 2:
        return math.nan
    return float(xs.rank().corr(ys.rank()))


def numeric_config_value(value: Any) -> float:
    """Bools as 0/1, numbers as floats, lists by their length (e.g. number of CRD steps), else NaN."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (tuple, list)):
        return float(len(value))
    return math.nan


def parameter_importance(frame: pd.DataFrame, objective: str) -> pd.DataFrame:
    """|Spearman rho| between each varied numeric config key and ``objective`` over ok records.

    The objective is centred per (dataset, category) first, so the easy-vs-hard category effect
    does not masquerade as an effect of whichever key happens to be tied to categories.
    Columns: key, abs_spearman, spearman, n, distinct.
    """
    ok = ok_records(frame)
    rows = []
    if ok.empty or objective not in ok.columns:
        return pd.DataFrame(columns=["key", "abs_spearman", "spearman", "n", "distinct"])
    target = pd.to_numeric(ok[objective], errors="coerce")
    centred = target - target.groupby([ok["dataset"], ok["category"]]).transform("mean")
    for key in varying_keys(ok):
        values = ok[f"config.{key}"].map(numeric_config_value)
        if values.isna().all() or values.nunique() < 2:
            continue
        rho = spearman(values, centred)
        rows.append(
            {
                "key": key,
                "abs_spearman": abs(rho) if not math.isnan(rho) else math.nan,
                "spearman": rho,
                "n": int((values.notna() & centred.notna()).sum()),
                "distinct": int(values.nunique()),
            }
        )
    out = pd.DataFrame(rows, columns=["key", "abs_spearman", "spearman", "n", "distinct"])
    return out.sort_values("abs_spearman", ascending=False, na_position="last").reset_index(drop=True)


def status_counts(frame: pd.DataFrame) -> dict[str, int]:
    counts = Counter(frame["status"]) if "status" in frame else Counter()
    out = {s: int(counts.get(s, 0)) for s in STATUSES}
    for s, n in counts.items():
        out.setdefault(str(s), int(n))
    return out


def missing_pairs(frame: pd.DataFrame) -> list[tuple[str, str, str, str]]:
    """(label, dataset, category, reason) for configurations lacking an ok record on a category.

    A configuration is expected on every category of its dataset that any configuration of the
    loaded records covers; a pair with only failed/stopped records is reported with that status.
    """
    out: list[tuple[str, str, str, str]] = []
    if frame.empty:
        return out
    for dataset, dgroup in frame.groupby("dataset", sort=False):
        categories = sorted(set(dgroup["category"]), key=lambda c: category_sort_key(str(dataset), str(c)))
        for label, lgroup in dgroup.groupby("label", sort=True):
            for category in categories:
                cgroup = lgroup[lgroup["category"] == category]
                if (cgroup["status"] == "ok").any():
                    continue
                reason = "no record" if cgroup.empty else "only " + "/".join(sorted(set(cgroup["status"])))
                out.append((str(label), str(dataset), str(category), reason))
    return out


def selection_column(frame: pd.DataFrame, select_on: str, metric: str = "i_auroc") -> tuple[str, str]:
    """Column used to select configurations: ``<select_on>.<metric>``, or test when that is empty.

    Returns (column, note); the note is non-empty when selection uses the test split (asked for, or
    because the requested split had no values), so reports can say so.
    """
    if select_on not in SPLITS:
        raise ValueError(f"select_on must be one of {SPLITS}, got {select_on!r}")
    col = f"{select_on}.{metric}"
    ok = ok_records(frame)
    if col in ok.columns and pd.to_numeric(ok[col], errors="coerce").notna().any():
        return col, ("configurations selected on the TEST split: optimistic" if select_on == "test" else "")
    fallback = f"test.{metric}"
    return fallback, f"no `{col}` values in the records; selection fell back to `{fallback}` (test split)"


# ----------------------------------------------------------------------------------------------
# selection fidelity: does the validation split rank configurations as the test split does?


def _rank_correlations(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(Spearman rho, Kendall tau-b) of x and y with scipy.stats; NaN when either is constant."""
    if len(x) < 2 or np.unique(x).size < 2 or np.unique(y).size < 2:
        return math.nan, math.nan
    from scipy import stats  # only here: importing aggregate stays light

    return float(stats.spearmanr(x, y).statistic), float(stats.kendalltau(x, y).statistic)


def configuration_means(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Per configuration (``label``): mean over its (dataset, category) pairs of seed-averaged ``columns``.

    ``value[label] = mean_c ( mean_seeds record[column] )``, pairs lacking any of ``columns``
    dropped first, so every column of a configuration is averaged over the same categories.
    Columns: label, categories, and each of ``columns``.
    """
    columns = list(columns)
    data = frame.assign(**{c: pd.to_numeric(frame[c], errors="coerce") for c in columns})
    per_cat = seed_stats(data, columns, by=("label", "dataset", "category")).dropna(subset=columns)
    if per_cat.empty:
        return pd.DataFrame(columns=["label", "categories", *columns])
    grouped = per_cat.groupby("label", sort=True)
    out = grouped[columns].mean()
    out.insert(0, "categories", grouped.size())
    return out.reset_index()


def selection_fidelity(frame: pd.DataFrame, metric: str = "i_auroc", threshold: float = SATURATION_THRESHOLD) -> dict[str, Any]:
    """How well ``val.<metric>`` ranks configurations against ``test.<metric>``.

    Over ok records selected on val that have both values, configurations (``label``: the config
    minus ``NON_CONFIG_KEYS``, so seeds and categories pool) get ``v_k``, ``t_k`` from
    ``configuration_means``. Then over the K configurations:
    ``spearman`` = Pearson correlation of the average ranks of v and t (scipy ``spearmanr``),
    ``kendall`` = Kendall tau-b (scipy ``kendalltau``), both NaN when K < 3 or a side is constant;
    ``saturation`` = #{k : v_k >= threshold} / K. Records selected on test and records without
    ``val.<metric>`` (or ``test.<metric>``) are skipped and counted.
    """
    val_col, test_col = f"val.{metric}", f"test.{metric}"
    ok = ok_records(frame)
    n_test_sel = int((ok["selection"] == "test").sum()) if "selection" in ok else 0
    if "selection" in ok:
        ok = ok[ok["selection"] != "test"]
    val = pd.to_numeric(ok[val_col], errors="coerce") if val_col in ok else pd.Series(np.nan, index=ok.index)
    test = pd.to_numeric(ok[test_col], errors="coerce") if test_col in ok else pd.Series(np.nan, index=ok.index)
    usable = ok[val.notna() & test.notna()]
    means = configuration_means(usable, [val_col, test_col]) if not usable.empty else pd.DataFrame()
    k = len(means)
    v = means[val_col].to_numpy(float) if k else np.array([])
    t = means[test_col].to_numpy(float) if k else np.array([])
    enough = k >= FIDELITY_MIN_CONFIGURATIONS
    rho, tau = _rank_correlations(v, t) if enough else (math.nan, math.nan)
    return {
        "metric": metric,
        "n_configurations": k,
        "enough": enough,
        "spearman": rho,
        "kendall": tau,
        "saturation": float(np.mean(v >= threshold)) if k else math.nan,
        "threshold": threshold,
        "skipped_test_selected": n_test_sel,
        "skipped_no_val": int(val.isna().sum()),
        "skipped_no_test": int((val.notna() & test.isna()).sum()),
    }


def fidelity_lines(result: Mapping[str, Any]) -> list[str]:
    """Plain-text verdict of one ``selection_fidelity`` result: the numbers, skip notes, warnings."""
    name = METRIC_NAMES.get(result["metric"], result["metric"])
    k, rho, tau, sat = result["n_configurations"], result["spearman"], result["kendall"], result["saturation"]
    head = f"Selection fidelity (val vs test {name}"
    if not result["enough"]:
        lines = [f"{head}): not enough configurations ({k}; at least {FIDELITY_MIN_CONFIGURATIONS} needed)."]
    else:
        lines = [
            f"{head}, {k} configurations): Spearman {rho:.2f}, Kendall {tau:.2f}; "
            f"validation saturation {sat:.0%} (val {name} >= {result['threshold']:g})."
        ]
    skipped = [
        f"{n} {what}"
        for n, what in (
            (result["skipped_test_selected"], "selected on the test split"),
            (result["skipped_no_val"], "without a validation value"),
            (result["skipped_no_test"], "without a test value"),
        )
        if n
    ]
    if skipped:
        lines.append(f"{head}): skipped ok records: {', '.join(skipped)}.")
    if result["enough"] and (math.isnan(rho) or math.isnan(tau)):
        lines.append(f"Warning: validation does not rank configurations ({name} constant on val or test).")
    elif result["enough"] and min(rho, tau) < FIDELITY_WARN_BELOW:
        lines.append(
            f"Warning: validation ranks configurations poorly against test (Spearman {rho:.2f}, Kendall {tau:.2f} "
            f"< {FIDELITY_WARN_BELOW:g}); the selected configuration may not be the best on test."
        )
    if k and sat > 0.5:
        lines.append(
            f"Warning: validation saturates: {sat:.0%} of configurations ({round(sat * k)} of {k}) reach val {name} "
            f">= {result['threshold']:g}, where it cannot tell them apart."
        )
    return lines


def fidelity_summary(frame: pd.DataFrame, metrics: Sequence[str] = ("i_auroc", "p_auroc")) -> list[str]:
    """``fidelity_lines`` of ``selection_fidelity`` for each metric: what a sweep prints at its end."""
    return [line for metric in metrics for line in fidelity_lines(selection_fidelity(frame, metric))]
