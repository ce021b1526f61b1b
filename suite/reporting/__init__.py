"""Reports built only from stored TrialRecord JSON files (tables, plots, gallery, index).

``build_report(run_dirs, out_dir, select_on="val")`` is the entry point; importing this package
does not import matplotlib until ``build_report`` is used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_report"]


def __getattr__(name: str) -> Any:
    if name == "build_report":
        from suite.reporting.report import build_report  # matplotlib and pandas only when a report is built

        return build_report
    raise AttributeError(f"module 'suite.reporting' has no attribute {name!r}")
