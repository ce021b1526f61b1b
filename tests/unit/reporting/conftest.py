"""Fixtures shared by the reporting tests: one set of fake run folders, and checks of rendered tables."""

from __future__ import annotations

import re

import pytest

from suite import aggregate as agg
from suite.reporting.fake_records import write_fake_runs


@pytest.fixture(scope="session")
def fake_runs(tmp_path_factory):
    """The fake run folders of ``suite.reporting.fake_records`` (written once per session)."""
    return write_fake_runs(tmp_path_factory.mktemp("fake_runs"))


@pytest.fixture(scope="session")
def fake_frame(fake_runs):
    """The records frame of ``fake_runs``; tests must not modify it."""
    return agg.records_frame(agg.load_records(*fake_runs.run_dirs))


def _parse_markdown_table(text: str, title_fragment: str) -> tuple[list[str], list[list[str]]]:
    """(header, body rows) of the first Markdown table under a heading containing ``title_fragment``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#") and title_fragment in line)
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])])
        elif rows:
            break
    return rows[0], rows[2:]


def _numbers(cell: str) -> list[float]:
    """The one-decimal numbers of a cell, without the ``±`` std and the ``[low, high]`` intervals."""
    cell = re.sub(r"\[[^\]]*\]", "", cell.replace("**", ""))
    return [float(x) for x in re.findall(r"(?<![±\d.])(\d+\.\d)(?!\d)", cell)]


def _check_latex(tex: str) -> None:
    """booktabs rules present, braces balanced, every row has the tabular's column count."""
    for rule in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert rule in tex
    unescaped = re.sub(r"\\[{}]", "", tex)
    depth = 0
    for ch in unescaped:
        depth += ch == "{"
        depth -= ch == "}"
        assert depth >= 0
    assert depth == 0
    assert re.search(r"(?<!\\)_", tex.replace("\\_", "")) is None, "unescaped underscore"
    for block in re.findall(r"\\begin\{tabular\}\{([lcr]+)\}(.*?)\\end\{tabular\}", tex, flags=re.S):
        spec, body = block
        data_rows = [r for r in (line.strip() for line in body.splitlines()) if r.endswith("\\\\")]
        assert data_rows
        for row in data_rows:
            cells = len(re.findall(r"(?<!\\)&", row)) + 1
            assert cells == len(spec), row


@pytest.fixture
def parse_markdown_table():
    return _parse_markdown_table


@pytest.fixture
def numbers():
    return _numbers


@pytest.fixture
def check_latex():
    return _check_latex
