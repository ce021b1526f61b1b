"""The footer under every table: dataset, image size, preset, trial counts, selection split,
scoring and code versions of the records the table was built from.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from suite import aggregate as agg
from suite.aggregate import uncertainty as U
from suite.config import PRESETS, flatten
from suite.methods.registry import display_name, method_order, method_specs


def infer_preset(frame: pd.DataFrame) -> str:
    """The config preset the records were built from.

    Uses a recorded ``runtime.preset`` (or top-level ``preset``) when the records carry one.
    Otherwise compares each preset's values with the records', ignoring keys that vary among the
    records (a sweep over model.depth on top of ``tiny`` is still ``tiny``): all match -> the
    preset; most match -> the closest preset and the keys that differ; else ``custom``.
    """
    if frame.empty:
        return "n/a"
    for column in ("config.runtime.preset", "config.preset"):  # recorded preset, when the config has one
        if column in frame:
            values = sorted({str(v) for v in frame[column].dropna()})
            if values:
                return ", ".join(values)
    varied = set(agg.varying_keys(frame))
    best: tuple[float, str, list[str]] | None = None
    for name, values in PRESETS.items():
        checks = {k: v for k, v in flatten(values).items() if k not in varied and f"config.{k}" in frame}
        if not checks:
            continue
        differ = [k for k, v in checks.items() if not all(_same(x, v) for x in frame[f"config.{k}"])]
        score = 1.0 - len(differ) / len(checks)
        if best is None or score > best[0]:
            best = (score, name, differ)
    if best is None or best[0] < 0.5:
        return "custom (matches no preset)"
    score, name, differ = best
    if not differ:
        return f"{name} (inferred from config values)"
    return f"{name} with changes to {', '.join(differ)} (inferred)"


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, list):
        want = tuple(want)
    return got == want or _close(got, want)


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return False


def scored_methods() -> list[str]:
    """The registered methods whose pixel map ``eval.anomaly_map`` / ``eval.standardize`` select."""
    return [spec.name for spec in method_specs() if spec.uses_eval_map]


def _standardize_name(value: Any) -> str:
    """``eval.standardize`` as recorded; records before the none|pixel choice stored a bool."""
    if isinstance(value, (bool, np.bool_)):
        return "pixel" if value else "none"
    return agg.format_value(value)


def scoring_text(frame: pd.DataFrame) -> str:
    """The scoring the records used, from ``config.eval.anomaly_map`` and ``config.eval.standardize``.

    ``"scoring: anomaly_map=auto, standardize=pixel"``; several combinations are each followed by
    their record count. Only records of methods with ``uses_eval_map`` are read (the others score
    their own maps).
    """
    columns = ["config.eval.anomaly_map", "config.eval.standardize"]
    eval_map = scored_methods()
    scored = frame[frame["method"].isin(eval_map)] if "method" in frame else frame
    others = method_order({str(m) for m in frame["method"]} - set(eval_map)) if "method" in frame else []
    if scored.empty and others:
        return "scoring: each method's own map (" + ", ".join(display_name(m) for m in others) + ")"
    if scored.empty or not all(c in scored for c in columns):
        return "scoring: not recorded"
    pairs = [
        f"anomaly_map={agg.format_value(m)}, standardize={_standardize_name(z)}"
        for m, z in zip(scored[columns[0]], scored[columns[1]])
    ]
    counts = pd.Series(pairs).value_counts(sort=False)
    text = (
        "; ".join(counts.index) if len(counts) == 1
        else "; ".join(f"{p} ({n} records)" for p, n in sorted(counts.items()))
    )
    if others:
        text += " for " + "/".join(display_name(m) for m in eval_map if m in set(scored["method"]))
    return "scoring: " + text


def footer_text(frame: pd.DataFrame, selection_note: str = "") -> str:
    """Dataset, image size, preset, trial counts, use of the test split for selection, scoring, code versions."""
    if frame.empty:
        return "no records"
    datasets = sorted({str(d) for d in frame["dataset"]}, key=agg.dataset_sort_key)
    sizes = sorted({int(s) for s in frame.get("config.data.image_size", pd.Series(dtype=float)).dropna()})
    counts = agg.status_counts(frame)
    count_text = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    test_sel = int((frame.get("selection", pd.Series(dtype=object)) == "test").sum())
    if test_sel:
        selection = f"TEST split used for selection in {test_sel} of {len(frame)} records"
    else:
        selection = "no record selected on the test split"
    if selection_note:
        selection += f"; {selection_note}"
    commits = sorted({str(c)[:12] for c in frame.get("version.git_commit", pd.Series(dtype=object)).dropna()})
    versions = sorted({str(v) for v in frame.get("version.rcsuite", pd.Series(dtype=object)).dropna()})
    code = []
    if commits:
        code.append("git " + ", ".join(commits))
    if versions:
        code.append("rcsuite " + ", ".join(versions))
    return (
        f"Dataset: {', '.join(agg.DATASET_NAMES.get(d, d) for d in datasets)}; "
        f"image size: {', '.join(map(str, sizes)) or 'n/a'} px; preset: {infer_preset(frame)}; "
        f"trials: {len(frame)} records ({count_text}); selection: {selection}; {scoring_text(frame)}; "
        f"code: {'; '.join(code) or 'version not recorded'}."
    )


def uncertainty_text(test: bool = True) -> str:
    """The footer sentence naming how intervals (and, with ``test``, separability marks) are computed."""
    text = agg.BOOTSTRAP_METHOD.format(n=agg.N_RESAMPLES) + "."
    if test:
        text += " Separability: " + agg.TEST_METHOD.format(exact=agg.EXACT_PAIRS, flips=f"{U.N_FLIPS:,}",
                                                          normal=U.NORMAL_PAIRS, alpha=agg.ALPHA) + "."
    return text
