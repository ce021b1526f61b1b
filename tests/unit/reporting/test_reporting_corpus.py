"""A corpus of hostile record files beside real-looking records (suite.reporting.fake_records): the
report builds (exit 0), names each bad file and why, and its comparison and ablation tables are exactly
those of the clean records."""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from suite.cli import main
from suite.records import RECORD_VERSION
from suite.reporting.fake_records import write_fake_runs

pytestmark = pytest.mark.slow  # every case builds a report (the clean one with its figures)

TABLE_FILES = ("comparison.md", "comparison.csv", "comparison.tex", "ablations.md", "ablations.csv", "ablations.tex")


def _set(path: tuple, value) -> Callable[[dict], dict]:
    def change(data: dict) -> dict:
        data = copy.deepcopy(data)
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return data
    return change


def _both(data: dict) -> dict:
    data = copy.deepcopy(data)
    data["metrics"]["test"]["i_auroc"] = 7.5
    data["metrics"]["test"]["p_auroc"] = -3.0
    return data


def _without(key: str) -> Callable[[dict], dict]:
    return lambda data: {k: v for k, v in data.items() if k != key}


# name -> (what the file holds: bytes, or a change to a real record's JSON; a reason the summary gives)
CASES: dict[str, tuple[bytes | Callable[[dict], dict], str]] = {
    "metric_out_of_range": (_both, "metrics.test.i_auroc: 7.5 is outside [0, 1]"),
    "nan_metrics": (_set(("metrics", "test", "i_auroc"), math.nan), "metrics.test.i_auroc: nan is not finite"),
    "infinite_metric": (_set(("metrics", "val", "p_auroc"), math.inf), "metrics.val.p_auroc: inf is not finite"),
    "metrics_val_a_list": (_set(("metrics", "val"), [0.9, 0.8]), "metrics.val: expected a mapping, got list"),
    "metric_as_text": (_set(("metrics", "test", "aupro"), "0.9"), "metrics.test.aupro: expected a number, got str"),
    "bad_scoring": (_set(("scorings",), {"auto|pixel": {"test": {"p_auroc": 2.0}}}),
                    "scorings.auto|pixel.test.p_auroc"),
    "negative_cost": (_set(("cost", "latency_ms"), -1.0), "cost.latency_ms: -1 is outside"),
    "unknown_status": (_set(("status",), "exploded"), "status: 'exploded' is not one of ok, failed, stopped"),
    "seed_as_text": (_set(("seed",), "0"), "seed: expected an integer, got str"),
    "missing_config": (_without("config"), "config: missing"),
    "unknown_field_same_version": (_set(("surprise",), 1), "unknown fields ['surprise']"),
    "deep_nesting": (b"[" * 200_000 + b"]" * 200_000, "nested 200000 levels deep"),
    "deep_inside_a_record": (None, "nested"),  # filled in below: a real record with a deep value
    "torn": (None, "not valid JSON"),  # filled in below: a real record cut in half
    "empty": (b"", "file is empty"),
    "binary": (bytes(range(256)) * 8, "not UTF-8 text"),
    "top_level_list": (b"[1, 2, 3]", "expected a JSON object, got list"),
}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The fake run folders and their tables (the reference: no figures; the together case draws)."""
    root = tmp_path_factory.mktemp("corpus")
    runs = write_fake_runs(root / "clean")
    out = root / "clean_report"
    assert main(["report", *map(str, runs.run_dirs), "--out", str(out), "--no-figures"]) == 0
    return runs, out


def _copy_runs(runs, target: Path) -> list[Path]:
    shutil.copytree(runs.root, target)
    return [target / d.relative_to(runs.root) for d in runs.run_dirs]


def _hostile_bytes(name: str, real: dict) -> bytes:
    content, _ = CASES[name]
    if name == "deep_inside_a_record":
        return json.dumps(real).encode()[:-1] + b', "info": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    if name == "torn":
        return json.dumps(real).encode()[: len(json.dumps(real)) // 2]
    if callable(content):
        return json.dumps(content(real)).encode()
    return content


def _add_case(name: str, run_dirs: list[Path], real: dict) -> Path:
    path = run_dirs[0] / f"hostile_{name}" / "record.json"  # beside the real trials of the first run
    path.parent.mkdir(parents=True)
    path.write_bytes(_hostile_bytes(name, real))
    return path


def _assert_same_tables(out: Path, clean_out: Path) -> None:
    for name in TABLE_FILES:
        assert (out / name).read_text() == (clean_out / name).read_text(), name


def _summary_failures(out: Path) -> str:
    return (out / "summary.md").read_text().replace("\\|", "|")  # Markdown escapes a | in a cell


def test_other_hostile_paths_change_no_table(clean, tmp_path):
    """A folder named record.json, links to a file outside and to nowhere, and a newer record version
    (replacing a record with the same values: it loads, and the summary names what was ignored)."""
    runs, clean_out = clean
    run_dirs = _copy_runs(runs, tmp_path / "runs")
    (run_dirs[0] / "hostile_dir" / "record.json").mkdir(parents=True)
    outside = tmp_path / "outside.txt"
    outside.write_text("not a record\n")
    (run_dirs[0] / "hostile_link").mkdir()
    os.symlink(outside, run_dirs[0] / "hostile_link" / "record.json")
    (run_dirs[1] / "hostile_dangling").mkdir()
    os.symlink(tmp_path / "nowhere.json", run_dirs[1] / "hostile_dangling" / "record.json")
    newer = run_dirs[0] / runs.records[0].relative_to(runs.run_dirs[0])
    data = json.loads(newer.read_text())
    newer.write_text(json.dumps({**data, "record_version": RECORD_VERSION + 1, "future_section": {"x": [1]}}))
    # no drawing: figures come from the same loaded records (the together case below draws)
    assert main(["report", *map(str, run_dirs), "--out", str(tmp_path / "report"), "--no-figures"]) == 0
    _assert_same_tables(tmp_path / "report", clean_out)
    summary = _summary_failures(tmp_path / "report")
    for path in ("hostile_dir", "hostile_link", "hostile_dangling"):
        assert any(line.startswith("| unreadable |") and path in line for line in summary.splitlines()), path
    assert f"`{newer}` | field 'future_section' (record version {RECORD_VERSION + 1}" in summary


def test_all_hostile_records_together_change_no_table(clean, tmp_path):
    """Every case of CASES in one report (the cases are independent: a bad file is refused on its own,
    so one report shows what one report per case would, at a seventeenth of the cost)."""
    runs, clean_out = clean
    run_dirs = _copy_runs(runs, tmp_path / "runs")
    real = json.loads(runs.records[0].read_text())
    bad = {name: _add_case(name, run_dirs, real) for name in CASES}
    assert main(["report", *map(str, run_dirs), "--out", str(tmp_path / "report")]) == 0  # plots and gallery too
    _assert_same_tables(tmp_path / "report", clean_out)
    summary = _summary_failures(tmp_path / "report").splitlines()
    for name, path in bad.items():
        lines = [line for line in summary if f"`{path}`" in line]
        assert len(lines) == 1 and lines[0].startswith("| unreadable |") and CASES[name][1] in lines[0], name
    index = (tmp_path / "report" / "index.md").read_text()
    assert f"{len(bad) + 1} record file(s) could not be read" in index  # + the fake runs' own broken record
