"""Tables built from the records frame: per-category comparison, the RcAE paper's ablations, the
sweep summary. Each table renders to Markdown, LaTeX (booktabs) and a numeric CSV.

Numbers are percentages with one decimal. Cells hold the mean over the seeds of one configuration
on one category, with ``±`` the sample standard deviation (ddof=1) when there are two or more
seeds. Failed and stopped records never enter a mean; they are listed in the summary.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from suite import aggregate as agg
from suite.config import PRESETS, flatten

PAPER_NUMBERS_PATH = Path(__file__).with_name("paper_numbers.json")
MISSING = "–"
METHOD_ORDER = ("convae", "rcae", "fae", "hfr")


# ----------------------------------------------------------------------------------------------
# the table object


@dataclass
class Table:
    """A rendered table: display cells (``**x**`` marks bold), notes, a footer and numeric data."""

    name: str
    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    footer: str = ""
    numeric: pd.DataFrame | None = None
    rule_before: set[int] = field(default_factory=set)  # row indices preceded by a rule (e.g. Mean)

    def __post_init__(self) -> None:
        for i, row in enumerate(self.rows):
            if len(row) != len(self.header):
                raise ValueError(
                    f"table {self.name!r}: row {i} has {len(row)} cells, header has {len(self.header)}"
                )

    def to_markdown(self, level: int = 3) -> str:
        def cell(text: str) -> str:
            return str(text).replace("|", "\\|").replace("\n", " ")

        lines = [f"{'#' * level} {self.title}", ""]
        lines.append("| " + " | ".join(cell(h) for h in self.header) + " |")
        lines.append("|" + "|".join("---:" if self._numeric_column(j) else "---" for j in range(len(self.header))) + "|")
        for row in self.rows:
            lines.append("| " + " | ".join(cell(c) for c in row) + " |")
        lines.append("")
        for note in self.notes:
            lines.append(f"- {note}")
        if self.notes:
            lines.append("")
        if self.footer:
            lines.append(f"*{self.footer}*")
            lines.append("")
        return "\n".join(lines)

    def _numeric_column(self, j: int) -> bool:
        """Right-align columns whose cells are numbers (possibly ``a / b``, ``±``, bold or missing)."""
        if j == 0 or not self.rows:
            return False
        number = re.compile(r"^[+-]?\d+(\.\d+)?(±\d+(\.\d+)?)?$")
        seen_number = False
        for row in self.rows:
            for part in str(row[j]).replace("**", "").split(" / "):
                part = part.strip()
                if part and part not in (MISSING, "missing") and not number.match(part):
                    return False
                seen_number = seen_number or bool(number.match(part))
        return seen_number

    def to_latex(self) -> str:
        ncol = len(self.header)
        spec = "".join("c" if self._numeric_column(j) else "l" for j in range(ncol))
        lines = [
            "\\begin{table}[t]",
            "\\centering",
            "\\small",
            f"\\caption{{{latex_cell(self.title)}}}",
            f"\\begin{{tabular}}{{{spec}}}",
            "\\toprule",
            " & ".join(latex_cell(h) for h in self.header) + " \\\\",
            "\\midrule",
        ]
        for i, row in enumerate(self.rows):
            if i in self.rule_before and i > 0:
                lines.append("\\midrule")
            lines.append(" & ".join(latex_cell(c) for c in row) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}"]
        extra = [latex_cell(n) for n in self.notes] + ([latex_cell(self.footer)] if self.footer else [])
        if extra:
            lines.append("\\par\\vspace{2pt}{\\footnotesize " + " ".join(extra) + "}")
        lines.append("\\end{table}")
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        frame = self.numeric if self.numeric is not None else pd.DataFrame(self.rows, columns=self.header)
        return frame.to_csv(index=False)


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "−": r"$-$",
    "–": r"--",
    "≥": r"$\geq$",
    "×": r"$\times$",
    "ρ": r"$\rho$",
    "τ": r"$\tau$",
    "|": r"\textbar{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def latex_cell(text: str) -> str:
    """Escape a display cell for LaTeX, turning ``**x**`` into ``\\textbf{x}`` and dropping backticks."""
    parts = re.split(r"(\*\*.+?\*\*)", str(text).replace("`", ""))
    out = []
    for part in parts:
        if part.startswith("**") and part.endswith("**") and len(part) > 4:
            out.append("\\textbf{" + latex_escape(part[2:-2]) + "}")
        else:
            out.append(latex_escape(part))
    return "".join(out)


# ----------------------------------------------------------------------------------------------
# formatting helpers


def pct(value: float) -> float:
    """Fraction in [0, 1] -> percent."""
    return float(value) * 100.0 if value is not None and not _isnan(value) else math.nan


def _isnan(value: Any) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def fmt(value: float, std: float = math.nan, digits: int = 1) -> str:
    if _isnan(value):
        return MISSING
    text = f"{value:.{digits}f}"
    if not _isnan(std):
        text += f"±{std:.{digits}f}"
    return text


def fmt_diff(value: float, digits: int = 1) -> str:
    if _isnan(value):
        return MISSING
    return f"{value:+.{digits}f}"


def natural_key(text: str) -> list[Any]:
    """Sort ``depth=10`` after ``depth=2``."""
    return [(0, float(t)) if re.fullmatch(r"\d+(?:\.\d+)?", t) else (1, t) for t in re.split(r"(\d+(?:\.\d+)?)", str(text)) if t]


def label_order(frame: pd.DataFrame) -> list[str]:
    labels = frame[["method", "label"]].drop_duplicates()
    def key(item: tuple[str, str]) -> tuple[int, list[Any]]:
        method, label = item
        rank = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
        return rank, natural_key(label)
    return [label for _, label in sorted(zip(labels["method"], labels["label"]), key=key)]


# ----------------------------------------------------------------------------------------------
# paper numbers


@lru_cache(maxsize=4)
def _load_paper_numbers(path: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read paper numbers {path}: {err}") from err


def load_paper_numbers(path: str | Path | None = None) -> dict[str, Any]:
    data = _load_paper_numbers(str(path or PAPER_NUMBERS_PATH))
    for key in ("ablations", "per_category"):
        if key not in data:
            raise ValueError(f"paper numbers {path or PAPER_NUMBERS_PATH}: missing top-level key {key!r}")
    return data


def reference_keys(frame: pd.DataFrame) -> list[str]:
    """``per_category`` entries of paper_numbers.json matching the methods in ``frame``."""
    keys: list[str] = []
    methods = set(frame["method"]) if "method" in frame else set()
    for method in METHOD_ORDER:
        if method not in methods:
            continue
        if method == "hfr":
            col = "config.hfr.backbone"
            backbones = sorted(set(frame.loc[frame["method"] == "hfr", col])) if col in frame else ["resnet18"]
            keys += [f"hfr:{b}" for b in backbones]
        else:
            keys.append(method)
    return keys


# ----------------------------------------------------------------------------------------------
# footer


def infer_preset(frame: pd.DataFrame) -> str:
    """The config preset the records were built from.

    Uses a recorded ``runtime.preset`` (or top-level ``preset``) when the records carry one. Otherwise compares each preset's values
    with the records', ignoring keys that vary among the records (a sweep over model.depth on top
    of ``tiny`` is still ``tiny``): all match -> the preset; most match -> the closest preset and
    the keys that differ; else ``custom``.
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


SCORED_METHODS = ("rcae", "convae")  # the methods whose pixel map eval.anomaly_map / eval.standardize set


def _standardize_name(value: Any) -> str:
    """``eval.standardize`` as recorded; records before the none|pixel choice stored a bool."""
    if isinstance(value, (bool, np.bool_)):
        return "pixel" if value else "none"
    return agg.format_value(value)


def scoring_text(frame: pd.DataFrame) -> str:
    """The scoring the records used, from ``config.eval.anomaly_map`` and ``config.eval.standardize``.

    ``"scoring: anomaly_map=auto, standardize=pixel"``; several combinations are each followed by
    their record count. Only RcAE/ConvAE records are read (FAE and HFR-AE score their own maps).
    """
    columns = ["config.eval.anomaly_map", "config.eval.standardize"]
    scored = frame[frame["method"].isin(SCORED_METHODS)] if "method" in frame else frame
    others = sorted(set(frame["method"]) - set(SCORED_METHODS), key=str) if "method" in frame else []
    if scored.empty and others:
        return "scoring: each method's own map (" + ", ".join(agg.METHOD_NAMES.get(m, str(m)) for m in others) + ")"
    if scored.empty or not all(c in scored for c in columns):
        return "scoring: not recorded"
    pairs = [
        f"anomaly_map={agg.format_value(m)}, standardize={_standardize_name(z)}"
        for m, z in zip(scored[columns[0]], scored[columns[1]])
    ]
    counts = pd.Series(pairs).value_counts(sort=False)
    text = "; ".join(counts.index) if len(counts) == 1 else "; ".join(f"{p} ({n} records)" for p, n in sorted(counts.items()))
    if others:
        text += " for " + "/".join(agg.METHOD_NAMES[m] for m in SCORED_METHODS if m in set(scored["method"]))
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


# ----------------------------------------------------------------------------------------------
# per-category comparison


def comparison_tables(
    frame: pd.DataFrame,
    metrics: Sequence[str] = ("i_auroc", "p_auroc"),
    split: str = "test",
    paper: dict[str, Any] | None = None,
    name: str = "comparison",
) -> list[Table]:
    """One table per dataset: rows = categories (standard order) + Mean, columns = configurations.

    Cells are ``metric1 / metric2 ...`` in % (seed mean ± std); the Mean row is the mean of the
    column's cells over the categories present; best configuration per row and metric in bold.
    Published per-category numbers of the methods present are added as reference columns (never
    bolded; their Mean is over the same rows, so it can differ from the paper's overall mean).
    """
    paper = paper if paper is not None else load_paper_numbers()
    tables: list[Table] = []
    if frame.empty:
        return tables
    ok = agg.ok_records(frame)
    datasets = sorted({str(d) for d in frame["dataset"]}, key=agg.dataset_sort_key)
    columns = [f"{split}.{m}" for m in metrics]
    for dataset in datasets:
        dframe = frame[frame["dataset"] == dataset]
        dok = ok[ok["dataset"] == dataset]
        if dok.empty or not any(pd.to_numeric(dok.get(c), errors="coerce").notna().any() for c in columns if c in dok):
            continue
        labels = label_order(dok)
        categories = [c for _, c in agg.ordered_categories(dok)]
        stats = agg.seed_stats(dok, columns, by=("label", "category"))
        stats = stats.set_index(["label", "category"])
        refs = []
        for key in reference_keys(dok):
            entry = paper["per_category"].get(key)
            if entry and dataset in entry.get("values", {}) and set(metrics) & set(entry.get("metrics", [])):
                refs.append((key, entry))

        # numeric cells: value[label][metric][category] (percent)
        numeric_rows = []
        means: dict[tuple[str, str], float] = {}
        cell_values: dict[tuple[str, str, str], tuple[float, float, int]] = {}
        for label in labels:
            for metric, col in zip(metrics, columns):
                vals = []
                for category in categories:
                    if (label, category) in stats.index and col in stats.columns:
                        row = stats.loc[(label, category)]
                        value, std, n = pct(row[col]), pct(row[f"{col}.std"]), int(row["n"])
                    else:
                        value, std, n = math.nan, math.nan, 0
                    cell_values[(label, metric, category)] = (value, std, n)
                    if not _isnan(value):
                        vals.append(value)
                means[(label, metric)] = float(np.mean(vals)) if vals else math.nan
        ref_values: dict[tuple[str, str, str], float] = {}
        ref_means: dict[tuple[str, str], float] = {}  # apart from ``means``: a label may equal a key
        for key, entry in refs:
            for metric in metrics:
                vals = []
                for category in categories:
                    v = entry["values"][dataset].get(category, {}).get(metric, math.nan)
                    ref_values[(key, metric, category)] = float(v)
                    if not _isnan(v):
                        vals.append(float(v))
                ref_means[(key, metric)] = float(np.mean(vals)) if vals else math.nan

        header = ["Category", *labels, *(entry.get("name", key) for key, entry in refs)]
        display_rows: list[list[str]] = []
        for category in [*categories, "Mean"]:
            best = {}
            for metric in metrics:
                if category == "Mean":
                    candidates = [round(means[(lb, metric)], 1) for lb in labels if not _isnan(means[(lb, metric)])]
                else:
                    candidates = [
                        round(cell_values[(lb, metric, category)][0], 1)
                        for lb in labels
                        if not _isnan(cell_values[(lb, metric, category)][0])
                    ]
                best[metric] = max(candidates) if len(candidates) > 1 else math.nan
            cells = [category if category != "Mean" else "**Mean**"]
            numeric = {"dataset": dataset, "category": category}
            for label in labels:
                parts = []
                for metric in metrics:
                    if category == "Mean":
                        value, std, n = means[(label, metric)], math.nan, 0
                    else:
                        value, std, n = cell_values[(label, metric, category)]
                    text = fmt(value, std if n >= 2 else math.nan)
                    if not _isnan(value) and round(value, 1) == best[metric]:
                        text = f"**{text}**"
                    parts.append(text)
                    numeric[f"{label} | {metric}"] = value
                    numeric[f"{label} | {metric} | std"] = std
                numeric[f"{label} | n"] = (
                    sum(1 for c in categories if cell_values[(label, metrics[0], c)][2] > 0)
                    if category == "Mean"
                    else cell_values[(label, metrics[0], category)][2]
                )
                cells.append(" / ".join(parts))
            for key, entry in refs:
                parts = []
                for metric in metrics:
                    value = ref_means[(key, metric)] if category == "Mean" else ref_values[(key, metric, category)]
                    parts.append(fmt(value))
                    numeric[f"paper:{key} | {metric}"] = value
                cells.append(" / ".join(parts))
            display_rows.append(cells)
            numeric_rows.append(numeric)

        notes = [
            f"Cells: {' / '.join(agg.METRIC_NAMES.get(m, m) for m in metrics)} in % on the {split} split; "
            "mean over seeds, ± sample std when a configuration has ≥2 seeds on a category.",
            "Mean: mean of the column's cells over the categories it has; bold: best configuration per row and metric.",
        ]
        partial = [
            f"{lb} ({sum(1 for c in categories if not _isnan(cell_values[(lb, metrics[0], c)][0]))}/{len(categories)})"
            for lb in labels
            if any(_isnan(cell_values[(lb, metrics[0], c)][0]) for c in categories)
        ]
        if partial:
            notes.append("Columns missing categories (their Mean covers fewer rows): " + ", ".join(partial) + ".")
        for key, entry in refs:
            pub = entry.get("published_mean", {}).get(dataset, {})
            pub_text = " / ".join(fmt(pub.get(m, math.nan)) for m in metrics)
            notes.append(f"{entry.get('name', key)}: {entry['source']}; published mean {pub_text}.")
        tables.append(
            Table(
                name=f"{name}_{dataset}",
                title=f"{agg.DATASET_NAMES.get(dataset, dataset)}: "
                f"{' / '.join(agg.METRIC_NAMES.get(m, m) for m in metrics)} (%) per category",
                header=header,
                rows=display_rows,
                notes=notes,
                footer=footer_text(dframe),
                numeric=pd.DataFrame(numeric_rows),
                rule_before={len(categories)},
            )
        )
    return tables


# ----------------------------------------------------------------------------------------------
# ablations shaped like the RcAE paper's Tables 2-6

Condition = Callable[[Mapping[str, Any]], bool]  # on one record's flat row (a dict)


def _eq(key: str, value: Any) -> Condition:
    column = f"config.{key}"

    def check(row: Mapping[str, Any]) -> bool:
        if column not in row:
            return False
        got = row[column]
        want = tuple(value) if isinstance(value, list) else value
        if isinstance(want, bool) or isinstance(got, (bool, np.bool_)):
            return isinstance(got, (bool, np.bool_)) and isinstance(want, bool) and bool(got) == want
        if got is None or want is None:
            return got is None and want is None
        if isinstance(want, float) or isinstance(got, float):
            try:
                return not _isnan(got) and math.isclose(float(got), float(want), rel_tol=1e-6, abs_tol=1e-9)
            except (TypeError, ValueError):
                return False
        return got == want

    check.__name__ = f"{key}={value}"
    return check


def _crd_all(row: Mapping[str, Any]) -> bool:
    """CRD sees every recursion step: crd_steps is None (the default) or exactly 1..N."""
    steps = row.get("config.model.crd_steps")
    if steps is None or (isinstance(steps, float) and math.isnan(steps)):
        return True
    depth = row.get("config.model.depth")
    return tuple(steps) == tuple(range(1, int(depth) + 1))


@dataclass
class AblationRow:
    key: str  # row id in paper_numbers.json
    name: str  # shown in the table and in "missing: ..." notes
    conditions: list[Condition]
    prefer: list[Condition] = field(default_factory=list)  # used only if some candidates satisfy them


@dataclass
class AblationSpec:
    key: str  # table id in paper_numbers.json
    title: str
    rows: list[AblationRow]
    controls: str  # the settings held fixed, for the notes


def reference_depth(frame: pd.DataFrame) -> int:
    """Depth N the non-depth ablations hold fixed: the paper's 5 when run, else the commonest RcAE depth."""
    rcae = agg.ok_records(frame)
    rcae = rcae[rcae["method"] == "rcae"] if "method" in rcae else rcae
    if rcae.empty or "config.model.depth" not in rcae:
        return 5
    depths = rcae["config.model.depth"].dropna().astype(int)
    if (depths == 5).any() or depths.empty:
        return 5
    return int(depths.value_counts().sort_index(ascending=False).idxmax())


def ablation_specs(ref_depth: int = 5) -> list[AblationSpec]:
    rcae = _eq("model.method", "rcae")
    convae = _eq("model.method", "convae")
    full_data = _eq("data.data_fraction", 1.0)
    arch = [_eq("model.skip", True), _eq("model.shared_weights", True)]
    full = [_eq("model.use_dpn", True), _eq("model.use_crd", True), _crd_all]
    depth = _eq("model.depth", ref_depth)
    prefer_noskip = [_eq("model.skip", False)]
    specs = [
        AblationSpec(
            "components",
            "Components ladder (RcAE paper Table 2)",
            [
                AblationRow("convae", "ConvAE", [convae, full_data], prefer_noskip),
                AblationRow("rcae", "RcAE", [rcae, full_data, depth, *arch, _eq("model.use_dpn", False), _eq("model.use_crd", False)]),
                AblationRow("rcae_dpn", "RcAE + DPN", [rcae, full_data, depth, *arch, _eq("model.use_dpn", True), _eq("model.use_crd", False)]),
                AblationRow("rcae_dpn_crd", "RcAE + DPN + CRD", [rcae, full_data, depth, *arch, *full]),
            ],
            f"RcAE rows: N={ref_depth}, skip and shared weights on, full training data; ConvAE prefers skip=False "
            "(the paper's plain ConvAE).",
        ),
        AblationSpec(
            "depth",
            "Recursion depth N (RcAE paper Table 3)",
            [AblationRow(str(n), f"depth={n}", [rcae, full_data, *arch, *full, _eq("model.depth", n)]) for n in range(1, 7)],
            "full model (DPN + CRD over all steps), skip and shared weights on, full training data.",
        ),
        AblationSpec(
            "skip_shared",
            "Skip connections × shared weights (RcAE paper Table 4)",
            [
                AblationRow("convae_skip", "ConvAE skip=True", [convae, full_data, _eq("model.skip", True)]),
                AblationRow("convae_noskip", "ConvAE skip=False", [convae, full_data, _eq("model.skip", False)]),
                AblationRow(
                    "rcae_noskip_shared", "RcAE skip=False shared=True",
                    [rcae, full_data, depth, *full, _eq("model.skip", False), _eq("model.shared_weights", True)],
                ),
                AblationRow(
                    "rcae_skip_unshared", "RcAE skip=True shared=False",
                    [rcae, full_data, depth, *full, _eq("model.skip", True), _eq("model.shared_weights", False)],
                ),
                AblationRow(
                    "rcae_skip_shared", "RcAE skip=True shared=True",
                    [rcae, full_data, depth, *full, _eq("model.skip", True), _eq("model.shared_weights", True)],
                ),
            ],
            f"RcAE rows: full model, N={ref_depth}, full training data.",
        ),
        AblationSpec(
            "data_fraction",
            "Training data fraction (RcAE paper Table 5)",
            [
                AblationRow(f"{m}_{f}", f"{agg.METHOD_NAMES[m]} data={int(round(f * 100))}%", conds + [_eq("data.data_fraction", f)], prefer)
                for m, conds, prefer in (
                    ("convae", [convae], prefer_noskip),
                    ("rcae", [rcae, depth, *arch, *full], []),
                )
                for f in (0.1, 0.25, 0.5, 0.75, 1.0)
            ],
            f"RcAE rows: full model, N={ref_depth}, skip and shared weights on; ConvAE prefers skip=False.",
        ),
        AblationSpec(
            "crd_steps",
            "Recursion steps fed to CRD (RcAE paper Table 6, N=5)",
            [
                AblationRow("5", "crd_steps=[5]", [rcae, full_data, *arch, _eq("model.depth", 5), _eq("model.use_dpn", True), _eq("model.use_crd", True), _eq("model.crd_steps", [5])]),
                AblationRow("1,3,5", "crd_steps=[1,3,5]", [rcae, full_data, *arch, _eq("model.depth", 5), _eq("model.use_dpn", True), _eq("model.use_crd", True), _eq("model.crd_steps", [1, 3, 5])]),
                AblationRow("all", "crd_steps=all (1..5)", [rcae, full_data, *arch, _eq("model.depth", 5), *full]),
            ],
            "N=5, DPN and CRD on, skip and shared weights on, full training data.",
        ),
    ]
    return specs


def _row_dicts(frame: pd.DataFrame) -> dict[Any, dict[str, Any]]:
    """Each row as a dict, keyed by index (DataFrame.apply / to_dict per row are far slower)."""
    columns = list(frame.columns)
    return {idx: dict(zip(columns, values)) for idx, values in zip(frame.index, frame.to_numpy(dtype=object))}


def _matches(frame: pd.DataFrame, conditions: Sequence[Condition], rows: Mapping[Any, Mapping[str, Any]]) -> pd.Series:
    """Rows of ``frame`` meeting every condition; ``rows`` from ``_row_dicts`` of a superset of ``frame``."""
    return pd.Series([all(cond(rows[idx]) for cond in conditions) for idx in frame.index], index=frame.index, dtype=bool)


@dataclass
class AblationResult:
    spec: AblationSpec
    table: Table | None  # None when no row has records
    missing: dict[str, list[str]]  # dataset -> row names without records
    numeric: pd.DataFrame


def ablation_tables(
    frame: pd.DataFrame,
    select_on: str = "val",
    split: str = "test",
    metrics: Sequence[str] = ("i_auroc", "p_auroc"),
    paper: dict[str, Any] | None = None,
) -> list[AblationResult]:
    """Each ablation of the RcAE paper as rows ours | paper | Δ (ours − paper) per dataset.

    A row matches ok records by its config conditions. When several configurations match (e.g. a
    sweep over coverage at depth 3), the one with the best mean ``<select_on>.i_auroc`` over its
    categories (seeds averaged first) is shown and named. Ours = mean over that configuration's
    categories of the seed-averaged ``<split>`` metrics. Rows without records are named as missing.
    """
    paper = paper if paper is not None else load_paper_numbers()
    ok = agg.ok_records(frame)
    sel_col, sel_note = agg.selection_column(frame, select_on)
    ref_depth = reference_depth(frame)
    metric_cols = [f"{split}.{m}" for m in metrics]
    row_dicts = _row_dicts(ok)
    results = []
    for spec in ablation_specs(ref_depth):
        published = paper["ablations"].get(spec.key, {})
        datasets = sorted({str(d) for d in ok["dataset"]}, key=agg.dataset_sort_key) if not ok.empty else []
        display_rows: list[list[str]] = []
        numeric_rows: list[dict[str, Any]] = []
        missing: dict[str, list[str]] = {}
        rule_before: set[int] = set()
        any_records = False
        used = []
        for dataset in datasets:
            dok = ok[ok["dataset"] == dataset]
            pvals = published.get("values", {}).get(dataset, {})
            section: list[tuple[list[str], dict[str, Any]]] = []
            section_has_records = False
            for row in spec.rows:
                cand = dok[_matches(dok, row.conditions, row_dicts)]
                if row.prefer and not cand.empty:
                    preferred = cand[_matches(cand, row.prefer, row_dicts)]
                    if not preferred.empty:
                        cand = preferred
                ours = {m: math.nan for m in metrics}
                chosen, n_cat, n_rec, n_cfg = "", 0, 0, 0
                if not cand.empty:
                    columns = list(dict.fromkeys([sel_col, *metric_cols]))  # sel_col may be a test metric
                    stats = agg.seed_stats(cand, columns, by=("label", "category"))
                    per_label = stats.groupby("label")[columns].mean(numeric_only=True)
                    n_cfg = len(per_label)
                    # Configurations that cover the most categories first (a mean over fewer
                    # categories is not comparable), then the best selection metric.
                    coverage = stats.groupby("label")["category"].nunique().reindex(per_label.index)
                    ranking = pd.DataFrame({"coverage": coverage, "score": per_label[sel_col].fillna(-np.inf)})
                    order = ranking.sort_values(["coverage", "score"], ascending=False, kind="stable")
                    chosen = str(order.index[0])
                    chosen_stats = stats[stats["label"] == chosen]
                    ours = {m: pct(chosen_stats[c].mean()) for m, c in zip(metrics, metric_cols)}
                    n_cat = int(chosen_stats[metric_cols[0]].notna().sum())
                    n_rec = int(chosen_stats["n"].sum())
                    used.append(cand[cand["label"] == chosen])
                    section_has_records = True
                else:
                    missing.setdefault(dataset, []).append(row.name)
                pub = pvals.get(row.key, {})
                pub_vals = {m: float(pub.get(m, math.nan)) for m in metrics}
                diff = {m: ours[m] - pub_vals[m] for m in metrics}
                config_text = chosen if chosen else "missing"
                if n_cfg > 1:
                    config_text += f" (best of {n_cfg} by {sel_col})"
                cells = [
                    row.name if len(datasets) == 1 else f"{row.name} [{dataset}]",
                    " / ".join(fmt(ours[m]) for m in metrics) if chosen else "missing",
                    " / ".join(fmt(pub_vals[m]) for m in metrics) if pub else MISSING,
                    " / ".join(fmt_diff(diff[m]) for m in metrics) if chosen and pub else MISSING,
                    str(n_cat) if chosen else "0",
                    str(n_rec) if chosen else "0",
                    config_text,
                ]
                numeric = {"table": spec.key, "dataset": dataset, "row": row.key, "name": row.name}
                for m in metrics:
                    numeric[f"ours.{m}"] = ours[m]
                    numeric[f"paper.{m}"] = pub_vals[m]
                    numeric[f"diff.{m}"] = diff[m]
                numeric.update({"categories": n_cat, "records": n_rec, "label": chosen or None, "configurations": n_cfg})
                section.append((cells, numeric))
            if section_has_records:
                any_records = True
                if display_rows:
                    rule_before.add(len(display_rows))
                for cells, numeric in section:
                    display_rows.append(cells)
                    numeric_rows.append(numeric)
            else:
                missing.pop(dataset, None)
        numeric_frame = pd.DataFrame(numeric_rows)
        if not any_records:
            results.append(AblationResult(spec, None, {}, numeric_frame))
            continue
        metric_text = " / ".join(agg.METRIC_NAMES.get(m, m) for m in metrics)
        notes = [
            f"{metric_text} in % on the {split} split, mean over the chosen configuration's categories "
            "(seeds averaged first); Δ = ours − paper.",
            f"Held fixed: {spec.controls}",
            f"Paper: {published.get('source', 'no published numbers')}.",
        ]
        for dataset, names in missing.items():
            notes.append(f"missing ({agg.DATASET_NAMES.get(dataset, dataset)}): {', '.join(names)}")
        cats = numeric_frame.loc[numeric_frame["records"] > 0, "categories"]
        if cats.nunique() > 1:
            notes.append("Rows cover different numbers of categories; compare with care.")
        if sel_note:
            notes.append(sel_note)
        used_frame = pd.concat(used) if used else ok.iloc[0:0]
        table = Table(
            name=f"ablation_{spec.key}",
            title=spec.title,
            header=["Setting", f"Ours {metric_text}", f"Paper {metric_text}", "Δ (ours − paper)", "Categories", "Records", "Configuration"],
            rows=display_rows,
            notes=notes,
            footer=footer_text(used_frame, f"rows chosen on `{sel_col}`" + (f" ({sel_note})" if sel_note else "")),
            numeric=numeric_frame,
            rule_before=rule_before,
        )
        results.append(AblationResult(spec, table, missing, numeric_frame))
    return results


# ----------------------------------------------------------------------------------------------
# record-version-2 fields: scoring variants and per-depth signal

SCORING_METRICS = ("i_auroc", "p_auroc", "aupro")
DEPTH_METRICS = ("i_auroc", "p_auroc")
PER_DEPTH_MAX_TABLES = 6  # more (configuration, category) pairs than this: one table per configuration
CRD_ROW = "CRD (all steps)"


def long_stats(frame: pd.DataFrame, columns: Mapping[str, Mapping[str, str]], by: Sequence[str]) -> pd.DataFrame:
    """Seed-aware means of many columns in long form: one row per ``by`` group and column ids.

    ``columns`` maps a frame column to its ids (e.g. ``{"variant": "auto|pixel", "metric": ...}``).
    value = mean over the group's categories of the seed-averaged column; std = sample std
    (ddof=1) over seeds of each seed's mean over those categories (NaN for one seed); seeds and
    categories count what entered. With ``category`` in ``by`` the value is the plain seed mean.
    """
    by = list(by)
    ids = list(next(iter(columns.values()))) if columns else []
    out_cols = [*by, *ids, "value", "std", "seeds", "categories"]
    keep = [c for c in columns if c in frame]
    if frame.empty or not keep:
        return pd.DataFrame(columns=out_cols)
    base = list(dict.fromkeys([*by, "category", "seed"]))
    long = frame[base + keep].melt(id_vars=base, value_vars=keep, var_name="_column", value_name="_x")
    long["_x"] = pd.to_numeric(long["_x"], errors="coerce")
    long = long.dropna(subset=["_x"])
    if long.empty:
        return pd.DataFrame(columns=out_cols)
    for name in ids:
        long[name] = long["_column"].map(lambda c, n=name: columns[c][n])
    keys = [*by, *ids]
    per_cat = long.groupby([*keys, "category"], sort=False)["_x"].mean()
    per_seed = long.groupby([*keys, "seed"], sort=False)["_x"].mean()
    out = pd.DataFrame(
        {
            "value": per_cat.groupby(level=keys, sort=False).mean(),
            "categories": per_cat.groupby(level=keys, sort=False).size(),
            "std": per_seed.groupby(level=keys, sort=False).std(ddof=1),
            "seeds": per_seed.groupby(level=keys, sort=False).size(),
        }
    ).reset_index()
    return out[out_cols]


def _cell(stats: pd.DataFrame, **ids: str) -> str:
    """``fmt`` of the one row of ``stats`` matching ``ids`` in % (± std with ≥2 seeds), or MISSING."""
    mask = np.ones(len(stats), dtype=bool)
    for key, value in ids.items():
        mask &= (stats[key] == value).to_numpy()
    if not mask.any():
        return MISSING
    row = stats[mask].iloc[0]
    return fmt(pct(row["value"]), pct(row["std"]) if row["seeds"] >= 2 else math.nan)


def scoring_stats(frame: pd.DataFrame, split: str = "test", metrics: Sequence[str] = SCORING_METRICS) -> pd.DataFrame:
    """``record.scorings`` in long form per (dataset, label, variant, metric); see ``long_stats``."""
    ok = agg.ok_records(frame)
    columns = {
        col: {"variant": variant, "metric": metric}
        for col, variant, _, metric in agg.scoring_columns(ok, split)
        if metric in metrics
    }
    return long_stats(ok, columns, by=("dataset", "label"))


def scoring_tables(frame: pd.DataFrame, split: str = "test", metrics: Sequence[str] = SCORING_METRICS) -> list[Table]:
    """One table per dataset: rows = configurations, columns = scoring variants of the same model.

    Cells: ``metric1 / metric2 / ...`` of ``scoring.<variant>.<split>.*`` in % (``long_stats``:
    mean over categories of seed means, ± std over seeds of per-seed means); bold = best variant
    per row and metric. Records without ``scorings`` (older records, baselines) do not appear.
    """
    stats = scoring_stats(frame, split, metrics)
    tables: list[Table] = []
    if stats.empty:
        return tables
    ok = agg.ok_records(frame)
    for dataset in sorted(set(stats["dataset"]), key=agg.dataset_sort_key):
        dstats = stats[stats["dataset"] == dataset]
        dok = ok[(ok["dataset"] == dataset) & ok["label"].isin(set(dstats["label"]))]
        present = [m for m in metrics if (dstats["metric"] == m).any()]
        variants = sorted(set(dstats["variant"]), key=natural_key)
        rows = []
        for label in label_order(dok):
            configured = sorted({str(v) for v in dok.loc[dok["label"] == label, "info.scoring"].dropna()}) if "info.scoring" in dok else []
            cells = [label, ", ".join(configured) or MISSING]
            lstats = dstats[dstats["label"] == label]
            best = {m: lstats.loc[lstats["metric"] == m, "value"].map(lambda v: round(pct(v), 1)).max() for m in present}
            for variant in variants:
                parts = []
                for m in present:
                    text = _cell(lstats, variant=variant, metric=m)
                    value = lstats.loc[(lstats["variant"] == variant) & (lstats["metric"] == m), "value"]
                    if len(variants) > 1 and len(value) and round(pct(value.iloc[0]), 1) == best[m]:
                        text = f"**{text}**"
                    parts.append(text)
                cells.append(" / ".join(parts))
            rows.append(cells)
        metric_text = " / ".join(agg.METRIC_NAMES.get(m, m) for m in present)
        tables.append(
            Table(
                name=f"scorings_{dataset}",
                title=f"{agg.DATASET_NAMES.get(dataset, dataset)}: scoring variants, {split} {metric_text} (%)",
                header=["Configuration", "Configured", *variants],
                rows=rows,
                notes=[
                    f"Cells: {metric_text} in % on the {split} split of the same trained model scored as "
                    "`anomaly_map|standardize`; mean over categories of seed means, ± sample std over seeds of "
                    "the per-seed category mean when ≥2 seeds; bold: best variant per row and metric.",
                    "Configured: the variant in the records' metrics (record info.scoring), i.e. the one every other table uses.",
                    f"Picking a variant by these {split} numbers is selection on the {split} split.",
                ],
                footer=footer_text(dok),
                numeric=dstats.reset_index(drop=True),
            )
        )
    return tables


def per_depth_stats(frame: pd.DataFrame, split: str = "test", per_category: bool | None = None) -> tuple[pd.DataFrame, bool]:
    """``record.diagnostics`` of ``split`` in long form, and whether it is per category.

    Rows: dataset, label, category, family, step, metric, value, std, seeds, categories (see
    ``long_stats``). Per category (value = mean over seeds) when ``per_category`` is True, or when
    None and at most ``PER_DEPTH_MAX_TABLES`` (label, category) pairs carry diagnostics; else per
    configuration with category ``"mean"`` (value = mean over categories of seed means).
    """
    ok = agg.ok_records(frame)
    columns = {
        col: {"family": family, "step": step, "metric": metric}
        for col, _, family, step, metric in agg.diagnostic_columns(ok, split)
        if metric in DEPTH_METRICS
    }
    if per_category is None:
        has = ok[list(columns)].notna().any(axis=1) if columns else pd.Series(False, index=ok.index)
        per_category = len(ok.loc[has, ["dataset", "label", "category"]].drop_duplicates()) <= PER_DEPTH_MAX_TABLES
    by = ("dataset", "label", "category") if per_category else ("dataset", "label")
    stats = long_stats(ok, columns, by=by)
    if not per_category:
        stats.insert(2, "category", "mean")
    return stats, per_category


def per_depth_groups(stats: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(dataset, label, category) of ``per_depth_stats`` in report order."""
    groups = stats[["dataset", "label", "category"]].drop_duplicates()
    order = {lb: i for i, lb in enumerate(sorted(set(groups["label"]), key=natural_key))}
    return sorted(
        ((str(d), str(lb), str(c)) for d, lb, c in groups.itertuples(index=False)),
        key=lambda g: (agg.dataset_sort_key(g[0]), order[g[1]], agg.category_sort_key(g[0], g[2])),
    )


def per_depth_tables(frame: pd.DataFrame, split: str = "test", per_category: bool | None = None) -> list[Table]:
    """Rows = recursion steps 1..N and a CRD row; columns = recon / detail I-AUROC and P-AUROC (%).

    One table per (configuration, category), or per configuration averaged over categories (see
    ``per_depth_stats``). recon = the map |I - I_R^n|, detail = |I - I_D^n|, each scored alone;
    the CRD row (under the detail columns: CRD reads every step's I_D^n) is the CRD map.
    """
    stats, per_category = per_depth_stats(frame, split, per_category)
    tables: list[Table] = []
    ok = agg.ok_records(frame)
    families = [("recon", "Recon"), ("detail", "Detail")]
    header = ["Step", *(f"{name} {agg.METRIC_NAMES[m]}" for _, name in families for m in DEPTH_METRICS)]
    for i, (dataset, label, category) in enumerate(per_depth_groups(stats)):
        g = stats[(stats["dataset"] == dataset) & (stats["label"] == label) & (stats["category"] == category)]
        steps = sorted(set(g.loc[g["family"] != "crd", "step"]), key=agg.step_sort_key)
        rows = [[step, *(_cell(g, family=f, step=step, metric=m) for f, _ in families for m in DEPTH_METRICS)] for step in steps]
        rule_before = set()
        if (g["family"] == "crd").any():
            rule_before.add(len(rows))
            crd = [_cell(g, family="crd", metric=m) for m in DEPTH_METRICS]
            rows.append([CRD_ROW, *([MISSING] * len(DEPTH_METRICS)), *crd])
        n_cat = int(g["categories"].max())
        where = category if per_category else f"mean over {n_cat} categor{'y' if n_cat == 1 else 'ies'}"
        used = ok[(ok["dataset"] == dataset) & (ok["label"] == label)]
        used = used[used["category"] == category] if per_category else used
        how = (
            "mean over seeds (± sample std when ≥2 seeds)" if per_category
            else "mean over categories of seed means (± sample std over seeds of the per-seed category mean)"
        )
        tables.append(
            Table(
                name=f"per_depth_{i}",
                title=f"{label}, {where} ({agg.DATASET_NAMES.get(dataset, dataset)}): per-depth {split} signal",
                header=header,
                rows=rows,
                notes=[
                    f"Each map scored alone on the {split} split, in %: recon = |I − I_R^n|, detail = |I − I_D^n| at "
                    f"recursion step n; {how}.",
                    f"{CRD_ROW}: the CRD map, under the detail columns (CRD reads the detail reconstructions of every step).",
                ],
                footer=footer_text(used),
                numeric=g.reset_index(drop=True),
                rule_before=rule_before,
            )
        )
    return tables


def fidelity_table(frame: pd.DataFrame, footer: str, metrics: Sequence[str] = ("i_auroc", "p_auroc")) -> Table:
    """``agg.selection_fidelity`` per metric as a table; its text lines (and warnings) as notes."""
    results = [agg.selection_fidelity(frame, m) for m in metrics]
    rows = []
    for r in results:
        name = agg.METRIC_NAMES.get(r["metric"], r["metric"])
        corr = [fmt(r["spearman"], digits=2), fmt(r["kendall"], digits=2)] if r["enough"] else ["not enough configurations", MISSING]
        skipped = r["skipped_test_selected"] + r["skipped_no_val"] + r["skipped_no_test"]
        rows.append([f"val {name} vs test {name}", str(r["n_configurations"]), *corr, fmt(pct(r["saturation"]), digits=0), str(skipped)])
    notes = [
        "Configurations: the config without seed and category; each gets the mean over its categories of seed means "
        "on val and on test. Spearman ρ and Kendall τ-b (scipy.stats) rank-correlate the two over configurations; "
        f"saturation = share of configurations with val ≥ {agg.SATURATION_THRESHOLD:g}. Records selected on test are skipped.",
    ]
    notes += [line for r in results for line in agg.fidelity_lines(r)]
    return Table(
        name="selection_fidelity",
        title="Selection fidelity (does validation rank configurations like test?)",
        header=["Objective", "Configurations", "Spearman ρ", "Kendall τ", "Val saturation (%)", "Skipped records"],
        rows=rows,
        notes=notes,
        footer=footer,
        numeric=pd.DataFrame(results),
    )


# ----------------------------------------------------------------------------------------------
# sweep summary


def best_per_category(frame: pd.DataFrame, select_on: str = "val") -> tuple[pd.DataFrame, str]:
    """Best configuration per (dataset, category) by the seed-averaged selection metric.

    Returns the frame (dataset, category, label, selection value, test metrics in %, seeds) and a
    note when the selection split had to fall back to test.
    """
    sel_col, note = agg.selection_column(frame, select_on)
    ok = agg.ok_records(frame)
    cols = list(dict.fromkeys([sel_col] + [f"test.{m}" for m in ("i_auroc", "p_auroc", "aupro", "i_f1max", "p_f1max")]))
    rows = []
    if ok.empty:
        return pd.DataFrame(rows), note
    stats = agg.seed_stats(ok, cols, by=("dataset", "label", "category"))
    for dataset, category in agg.ordered_categories(ok):
        group = stats[(stats["dataset"] == dataset) & (stats["category"] == category)]
        group = group.assign(_key=group[sel_col].fillna(-np.inf)).sort_values("_key", ascending=False, kind="stable")
        best = group.iloc[0]
        rows.append(
            {
                "dataset": dataset,
                "category": category,
                "label": best["label"],
                "selection": pct(best[sel_col]),
                **{f"test.{m}": pct(best.get(f"test.{m}", math.nan)) for m in ("i_auroc", "p_auroc", "aupro", "i_f1max", "p_f1max")},
                "seeds": int(best["n"]),
                "candidates": len(group),
            }
        )
    return pd.DataFrame(rows), note


def pooled_best(frame: pd.DataFrame, select_on: str = "val") -> tuple[pd.DataFrame, str]:
    """Configurations ranked by mean selection metric over categories (seeds averaged first).

    Only configurations covering the most categories of their dataset compete, so one lucky
    category cannot win the pooled ranking.
    """
    sel_col, note = agg.selection_column(frame, select_on)
    ok = agg.ok_records(frame)
    cols = list(dict.fromkeys([sel_col, "test.i_auroc", "test.p_auroc", "test.aupro"]))
    if ok.empty:
        return pd.DataFrame(), note
    stats = agg.seed_stats(ok, cols, by=("dataset", "label", "category"))
    per = stats.groupby(["dataset", "label"]).agg(
        categories=("category", "nunique"), **{c: (c, "mean") for c in cols}
    ).reset_index()
    out = []
    for dataset, group in per.groupby("dataset", sort=False):
        full = group[group["categories"] == group["categories"].max()]
        out.append(full.sort_values(sel_col, ascending=False, na_position="last"))
    result = pd.concat(out) if out else per
    for c in cols:
        result[c] = result[c].map(pct)
    return result.reset_index(drop=True), note


def summary_markdown(
    frame: pd.DataFrame,
    record_set: agg.RecordSet | None = None,
    select_on: str = "val",
    run_dirs: Sequence[str | Path] = (),
) -> tuple[str, dict[str, Table]]:
    """The sweep summary (Markdown) and its tables by name."""
    sel_col, sel_note = agg.selection_column(frame, select_on)
    tables: dict[str, Table] = {}
    footer = footer_text(frame, sel_note)
    lines = ["# Sweep summary", ""]
    if run_dirs:
        lines += ["Run folders: " + ", ".join(f"`{d}`" for d in run_dirs), ""]
    counts = agg.status_counts(frame)
    lines += [
        f"Records: {len(frame)} — " + ", ".join(f"{n} {s}" for s, n in counts.items()) + ".",
        f"Selection metric: `{sel_col}` (requested split: {select_on}).",
        "",
    ]
    if sel_note:
        lines += [f"**Note:** {sel_note}.", ""]

    # best per category
    best, _ = best_per_category(frame, select_on)
    if not best.empty:
        rows = [
            [
                agg.DATASET_NAMES.get(r["dataset"], r["dataset"]),
                r["category"],
                r["label"],
                fmt(r["selection"]),
                fmt(r["test.i_auroc"]),
                fmt(r["test.p_auroc"]),
                fmt(r["test.aupro"]),
                str(r["seeds"]),
                str(r["candidates"]),
            ]
            for _, r in best.iterrows()
        ]
        tables["best_per_category"] = Table(
            name="best_per_category",
            title="Best configuration per category",
            header=["Dataset", "Category", "Configuration", f"{sel_col} (%)", "Test I-AUROC", "Test P-AUROC", "Test AUPRO", "Seeds", "Candidates"],
            rows=rows,
            notes=[f"Chosen by the seed-averaged `{sel_col}`; the test columns are that configuration's test metrics."],
            footer=footer,
            numeric=best,
        )
    pooled, _ = pooled_best(frame, select_on)
    if not pooled.empty:
        rows = [
            [
                agg.DATASET_NAMES.get(r["dataset"], r["dataset"]),
                r["label"],
                str(int(r["categories"])),
                fmt(r[sel_col]),
                fmt(r["test.i_auroc"]),
                fmt(r["test.p_auroc"]),
                fmt(r["test.aupro"]),
            ]
            for _, r in pooled.iterrows()
        ]
        if rows:
            rows[0] = [rows[0][0], f"**{rows[0][1]}**", *rows[0][2:]]
        tables["pooled"] = Table(
            name="pooled",
            title="Pooled ranking (best mean over categories first)",
            header=["Dataset", "Configuration", "Categories", f"Mean {sel_col} (%)", "Test I-AUROC", "Test P-AUROC", "Test AUPRO"],
            rows=rows,
            notes=["Only configurations covering the most categories of their dataset are ranked; the first row per dataset is the pooled best."],
            footer=footer,
            numeric=pooled,
        )

    tables["fidelity"] = fidelity_table(frame, footer)

    # failures, never silently dropped
    bad = frame[frame["status"] != "ok"] if not frame.empty else frame
    fail_rows = []
    for _, r in bad.iterrows():
        error = str(r.get("error") or "").strip().splitlines()
        first = error[-1] if error else "(no error message)"
        fail_rows.append(
            [str(r["status"]), str(r.get("trial_id")), str(r["category"]), str(r["label"]), first[:200], f"`{r.get('record_path')}`"]
        )
    if record_set is not None:
        for path, err in record_set.unreadable:
            fail_rows.append(["unreadable", "-", "-", "-", err.splitlines()[0][:200], f"`{path}`"])
    tables["failures"] = Table(
        name="failures",
        title="Failed, stopped and unreadable records",
        header=["Status", "Trial", "Category", "Configuration", "Error (last line)", "Record"],
        rows=fail_rows or [["none", "", "", "", "", ""]],
        notes=["Excluded from every mean and table; listed here so nothing disappears silently."],
        footer=footer,
    )
    missing = agg.missing_pairs(frame)
    tables["missing"] = Table(
        name="missing",
        title="Missing (configuration, category) results",
        header=["Configuration", "Dataset", "Category", "Reason"],
        rows=[[lb, agg.DATASET_NAMES.get(d, d), c, reason] for lb, d, c, reason in missing] or [["none", "", "", ""]],
        notes=["A configuration is expected on every category of its dataset that any loaded configuration covers."],
        footer=footer,
    )
    importance = agg.parameter_importance(frame, sel_col)
    tables["importance"] = Table(
        name="importance",
        title="Parameter importance",
        header=["Config key", "|Spearman ρ|", "Spearman ρ", "Records", "Distinct values"],
        rows=[
            [f"`{r['key']}`", fmt(r["abs_spearman"], digits=3), fmt(r["spearman"], digits=3), str(r["n"]), str(r["distinct"])]
            for _, r in importance.iterrows()
        ]
        or [["no varied numeric key", "", "", "", ""]],
        notes=[
            f"Method: absolute Spearman rank correlation between each varied config key and `{sel_col}` over ok "
            "records, after subtracting each (dataset, category)'s mean objective; booleans count as 0/1 and "
            "lists by their length. Marginal and pooled over the other keys: a screening aid, not a causal estimate."
        ],
        footer=footer,
        numeric=importance,
    )
    for key in ("best_per_category", "pooled", "fidelity", "failures", "missing", "importance"):
        if key in tables:
            lines.append(tables[key].to_markdown(level=2))
    return "\n".join(lines), tables
