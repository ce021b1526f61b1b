"""Issue 19, done-when: the report of a run on the darkened bottle shows the data-shift warning and the
robustness table; on the unshifted bottle no shift warning appears (run_training, no Ray, tiny preset)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from suite.config import SHIFT_NAMES, build_config
from suite.pipeline import run_training
from suite.reporting.report import build_report
from suite.reporting.robustness import WARNING

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("rcsuite_stress", REPO / "benchmarks" / "stress_categories.py")
stress = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stress)


def _report(tmp_path: Path, name: str, data: list[str]) -> tuple[str, str, list[str]]:
    """(summary.md, robustness.md, logged lines) of one tiny-preset trial on ``data``."""
    cfg = build_config("tiny", overrides=[*data, "runtime.device=cpu", "eval.cost=false", "eval.save_maps=0"])
    lines: list[str] = []
    run_training(cfg, tmp_path / "runs" / name, log=lines.append)
    index = build_report([tmp_path / "runs" / name], tmp_path / f"report_{name}", figures=False)
    return (index.parent / "summary.md").read_text(), (index.parent / "robustness.md").read_text(), lines


def _section(text: str, heading: str) -> list[str]:
    """The table lines of the Markdown section starting with ``heading``."""
    lines = text.split(heading, 1)[1].split("\n## ", 1)[0].splitlines()
    return [line for line in lines if line.startswith("| ")]


@pytest.mark.slow
def test_the_darkened_bottle_warns_and_the_unshifted_bottle_does_not(bottle_root, tmp_path):
    stress_root = tmp_path / "stress"
    stress.write_stress_categories(stress_root, bottle_root, names=["dark8"])
    dark, dark_robust, dark_log = _report(
        tmp_path, "dark8", ["data.dataset=folder", f"data.root={stress_root}", "data.category=bottle_dark8"])
    plain, plain_robust, plain_log = _report(
        tmp_path, "plain", ["data.dataset=mvtec", f"data.root={bottle_root}", "data.category=bottle"])

    warnings = [line for line in dark_log if "data shift:" in line]
    assert len(warnings) == 1 and "brightness" in warnings[0]
    assert not any("data shift:" in line for line in plain_log)
    dark_row = next(line for line in _section(dark, "## Data shift") if "| bottle_dark8 |" in line)
    plain_row = next(line for line in _section(plain, "## Data shift") if "| bottle |" in line)
    assert WARNING in dark_row and "brightness" in dark_row
    assert WARNING not in plain_row and "no shift" in plain_row
    assert WARNING not in plain
    for text in (dark_robust, plain_robust):
        header = next(line for line in text.splitlines() if line.startswith("| Dataset | Configuration"))
        assert all(f"| {name} |" in header for name in SHIFT_NAMES) and "Largest drop" in header
