"""suite.reporting.step_times: the step breakdown as ``step.*`` frame columns and the "Where the time goes" table."""

import math

import pytest

from suite import aggregate as agg
from suite.records import TrialRecord
from suite.reporting import summary as S
from suite.reporting.step_times import step_breakdown_stats, step_breakdown_table

CPU = {"seconds": 4.0, "data_s": 1.0, "inputs_s": 0.5, "compute_s": 2.0, "hooks_s": 0.5, "steps": 10.0,
       "images": 70.0, "images_per_s": 20.0}
CUDA = {**CPU, "peak_allocated_mb": 300.0, "peak_reserved_mb": 512.0, "gpu_busy": 0.8}


def _record(depth: int, category: str, seed: int = 0, breakdown=None, status: str = "ok") -> TrialRecord:
    return TrialRecord(
        config={"model": {"method": "rcae", "depth": depth}, "data": {"category": category},
                "runtime": {"seed": seed}},
        config_hash=f"h{depth}", dataset="mvtec", category=category, method="rcae", seed=seed, status=status,
        metrics={"val": {"i_auroc": 0.9}, "test": {"i_auroc": 0.9}} if status == "ok" else {},
        step_breakdown=breakdown or {},
    )


def _frame():
    return agg.records_frame([
        # depth 2: two records, stage1 data share 25 % and 50 % (mean 37.5 %), one with CUDA fields
        _record(2, "bottle", breakdown={"stage1": CPU, "eval": {**CPU, "seconds": 2.0, "data_s": 0.2}}),
        _record(2, "grid", breakdown={"stage1": {**CUDA, "data_s": 2.0, "images_per_s": 40.0}}),
        _record(2, "carpet"),  # an older record: no breakdown, adds nothing
        _record(2, "carpet", seed=1, status="failed", breakdown={"stage1": {**CPU, "data_s": 4.0}}),
        _record(3, "bottle"),  # only old records: no row at all
    ])


def test_records_frame_flattens_the_step_breakdown_outside_the_configuration():
    frame = _frame()
    assert frame.loc[0, "step.stage1.data_s"] == 1.0 and frame.loc[0, "step.eval.seconds"] == 2.0
    assert frame.loc[1, "step.stage1.gpu_busy"] == pytest.approx(0.8)
    assert math.isnan(frame.loc[2, "step.stage1.seconds"]) and math.isnan(frame.loc[0, "step.stage1.gpu_busy"])
    assert ("step.stage1.compute_s", "stage1", "compute_s") in agg.breakdown_columns(frame)
    assert not any(c.startswith("step.") for c in agg.config_columns(frame))
    assert set(frame["label"]) == {"rcae depth=2", "rcae depth=3"}  # breakdowns differ, labels do not


def test_stats_are_means_of_per_record_shares():
    stats = step_breakdown_stats(_frame()).set_index(["label", "stage"])
    assert list(stats.index) == [("rcae depth=2", "stage1"), ("rcae depth=2", "eval")]
    s1 = stats.loc[("rcae depth=2", "stage1")]
    assert s1["records"] == 2  # the failed record's breakdown never enters the mean
    assert s1["data_s_share"] == pytest.approx((1 / 4 + 2 / 4) / 2)
    assert s1["inputs_s_share"] == pytest.approx(0.125) and s1["compute_s_share"] == pytest.approx(0.5)
    assert s1["images_per_s"] == pytest.approx(30.0) and s1["seconds"] == pytest.approx(4.0)
    assert s1["peak_allocated_mb"] == pytest.approx(300.0) and s1["gpu_busy"] == pytest.approx(0.8)
    ev = stats.loc[("rcae depth=2", "eval")]
    assert ev["data_s_share"] == pytest.approx(0.1) and math.isnan(ev["gpu_busy"])


def test_table_cells_and_summary_section(parse_markdown_table):
    table = step_breakdown_table(_frame())
    assert [r[:2] for r in table.rows] == [["rcae depth=2", "stage1"], ["rcae depth=2", "eval"]]
    text, tables = S.summary_markdown(_frame())
    assert tables["step_breakdown"] is not None
    header, rows = parse_markdown_table(text, "Where the time goes")
    cells = [dict(zip(header, row)) for row in rows]
    assert cells[0]["Data (%)"] == "37.5" and cells[0]["Inputs (%)"] == "12.5" and cells[0]["Compute (%)"] == "50.0"
    assert cells[0]["Images/s"] == "30.0" and cells[0]["Records"] == "2"
    assert cells[0]["Peak alloc. (MB)"] == "300" and cells[0]["Peak reserved (MB)"] == "512"
    assert cells[0]["GPU busy (%)"] == "80"
    # CPU only: the device cells are blank, not a dash or zero
    assert cells[1]["Data (%)"] == "10.0" and cells[1]["Peak alloc. (MB)"] == "" and cells[1]["GPU busy (%)"] == ""
    assert "rcae depth=3" not in [c["Configuration"] for c in cells]


def test_single_record_data_share_of_25_percent():
    table = step_breakdown_table(agg.records_frame([_record(2, "bottle", breakdown={"stage2": CPU})]))
    assert table.rows == [["rcae", "stage2", "1", "4.0", "25.0", "12.5", "50.0", "20.0", "", "", ""]]


def test_no_table_without_any_breakdown(fake_frame):
    old = agg.records_frame([_record(2, "bottle"), _record(3, "grid")])
    assert not agg.breakdown_columns(old)
    assert step_breakdown_table(old) is None
    text, tables = S.summary_markdown(old)
    assert "step_breakdown" not in tables and "Where the time goes" not in text
    assert step_breakdown_stats(fake_frame).empty  # the fake runs are records of older code
