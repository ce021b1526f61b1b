"""suite.reporting.robustness and suite.aggregate.shifts: the data-shift table and the robustness table."""

from __future__ import annotations

import pytest

from suite import aggregate as agg
from suite.records import TrialRecord
from suite.reporting import robustness as R
from suite.reporting.report import build_report
from suite.reporting.summary import summary_markdown
from suite.records import write_record


def _stat(shifted: bool, outside: float, p: float) -> dict:
    return {"train_median": 0.5, "test_median": 0.46 if shifted else 0.5, "train_low": 0.4, "train_high": 0.6,
            "outside_below": outside, "outside_above": 0.0, "ks_statistic": 0.4, "p_value": p / 5,
            "p_corrected": p, "shifted": shifted, "outside_share": outside}


def _data_shift(shifted: bool) -> dict:
    stats = {"brightness": _stat(shifted, 0.35 if shifted else 0.05, 1e-4 if shifted else 0.4),
             "contrast": _stat(False, 0.1, 0.02)}
    return {"shifted": shifted, "shifted_statistics": ["brightness"] if shifted else [], "n_train": 50,
            "n_test": 30, "rule": "r", "statistics": stats}


def _record(category: str, seed: int, shifted_data: bool, i_auroc: float, dark8: float, method: str = "rcae"):
    return TrialRecord(
        config={"model": {"method": method}}, config_hash=method, dataset="mvtec", category=category, method=method,
        seed=seed, metrics={"val": {"i_auroc": 0.9}, "test": {"i_auroc": i_auroc, "p_auroc": 0.8}},
        shifts={"dark8": {"i_auroc": dark8, "p_auroc": 0.7}, "blur": {"i_auroc": i_auroc, "p_auroc": 0.8}},
        info={"data_shift": _data_shift(shifted_data), "score_brightness_spearman": -0.8 if shifted_data else 0.1},
    )


@pytest.fixture
def records():
    return [
        _record("bottle_dark8", 0, True, 0.60, 0.50), _record("bottle_dark8", 1, True, 0.62, 0.52),
        _record("bottle", 0, False, 0.95, 0.65), _record("bottle", 1, False, 0.97, 0.67),
    ]


def test_the_summary_warns_for_the_shifted_category_only(records):
    text, tables = summary_markdown(agg.records_frame(records))
    rows = {r[1]: r for r in tables["data_shift"].rows}
    assert R.WARNING in rows["bottle_dark8"][2] and "brightness" in rows["bottle_dark8"][2]
    assert R.WARNING not in rows["bottle"][2] and rows["bottle"][2] == "no shift"
    assert rows["bottle_dark8"][3:6] == ["brightness", "35", "0.0001"]
    assert rows["bottle"][3:6] == ["contrast", "10", "0.02"]  # the smallest p when none fired
    assert rows["bottle_dark8"][6] == "-0.80" and rows["bottle"][6] == "+0.10"
    assert text.count(R.WARNING) == 1 and "## Data shift" in text


def test_the_robustness_table_shows_each_shift_and_the_drop(records):
    frame = agg.records_frame(records)
    stats, shifts = agg.robustness_stats(frame, "i_auroc")
    assert shifts == ["dark8", "blur"]  # the config's order
    row = stats.iloc[0]
    # categories weigh the same: unshifted (0.61 + 0.96) / 2, dark8 (0.51 + 0.66) / 2
    assert row["unshifted"] == pytest.approx(0.785) and row["dark8"] == pytest.approx(0.585)
    assert row["dark8.drop"] == pytest.approx(0.2) and row["blur.drop"] == pytest.approx(0.0)
    assert row["worst"] == "dark8"
    table = R.robustness_tables(frame, "footer", ("i_auroc",))[0]
    assert table.header == ["Dataset", "Configuration", "Categories", "Unshifted", "dark8", "blur", "Largest drop"]
    cells = table.rows[0]
    assert cells[3].startswith("78.5 [") and cells[4].startswith("58.5 [") and cells[4].endswith("(−20.0)")
    assert cells[5].endswith("(−0.0)") and cells[6].startswith("dark8: 20.0 [")


def test_records_without_shift_fields_make_no_robustness_rows(records):
    plain = TrialRecord(config={"model": {"method": "rcae"}}, config_hash="x", dataset="mvtec", category="bottle",
                        method="rcae", metrics={"test": {"i_auroc": 0.9}})
    frame = agg.records_frame([plain])
    assert agg.robustness_stats(frame)[0].empty and R.robustness_tables(frame, "") == []
    assert R.data_shift_table(frame, "") is None


def test_the_report_has_a_robustness_section_and_plot(records, tmp_path):
    for i, record in enumerate(records):
        write_record(record, tmp_path / "runs" / f"t{i}" / "record.json")
    index = build_report([tmp_path / "runs"], tmp_path / "report")
    report = index.parent
    assert "Robustness: test I-AUROC" in (report / "robustness.md").read_text()
    assert (report / "plots" / "robustness_mvtec.png").is_file()
    assert "robustness.md" in index.read_text()
