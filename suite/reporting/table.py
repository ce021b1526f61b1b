"""The table object every report table is: display cells plus numeric data, rendered to Markdown,
LaTeX (booktabs) and CSV, and the number formatting and column order the tables share.

Numbers are percentages with one decimal; ``fmt`` writes ``mean±std``; ``MISSING`` marks an empty cell.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from suite.methods.registry import method_order

MISSING = "–"
TIE = "≈"  # the paired test cannot separate this cell from the one it is compared with


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
        lines.append(
            "|" + "|".join("---:" if self._numeric_column(j) else "---" for j in range(len(self.header))) + "|"
        )
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
        number = re.compile(r"^[+-]?\d+(\.\d+)?(±\d+(\.\d+)?)?( \[[+-]?\d+(\.\d+)?, [+-]?\d+(\.\d+)?\])?( ≈)?$")
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
    "≈": r"$\approx$",
    "α": r"$\alpha$",
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
    return float(value) * 100.0 if value is not None and not is_nan(value) else math.nan


def is_nan(value: Any) -> bool:
    """True for NaN and for anything that is not a number (None, text)."""
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def fmt(value: float, std: float = math.nan, digits: int = 1) -> str:
    if is_nan(value):
        return MISSING
    text = f"{value:.{digits}f}"
    if not is_nan(std):
        text += f"±{std:.{digits}f}"
    return text


def fmt_interval(low: float, high: float, digits: int = 1) -> str:
    """`` [low, high]`` (leading space), or empty when the interval is unknown."""
    if is_nan(low) or is_nan(high):
        return ""
    return f" [{low:.{digits}f}, {high:.{digits}f}]"


def fmt_diff(value: float, digits: int = 1) -> str:
    if is_nan(value):
        return MISSING
    return f"{value:+.{digits}f}"


def natural_key(text: str) -> list[Any]:
    """Sort ``depth=10`` after ``depth=2``."""
    return [
        (0, float(t)) if re.fullmatch(r"\d+(?:\.\d+)?", t) else (1, t)
        for t in re.split(r"(\d+(?:\.\d+)?)", str(text))
        if t
    ]


def label_order(frame: pd.DataFrame) -> list[str]:
    """The configuration labels of ``frame``: by method in registry order, then naturally by label."""
    labels = frame[["method", "label"]].drop_duplicates()
    rank = {m: i for i, m in enumerate(method_order({str(m) for m in labels["method"]}))}

    def key(item: tuple[str, str]) -> tuple[int, list[Any]]:
        method, label = item
        return rank[str(method)], natural_key(label)

    return [label for _, label in sorted(zip(labels["method"], labels["label"]), key=key)]
