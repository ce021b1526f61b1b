"""suite.reporting.diagnostics: the record-version-2 tables (per-depth signal, scoring variants), the
scoring they state in footers, and reports of older records that lack the new fields."""

import json
import math

import numpy as np
import pytest

from suite import aggregate as agg
from suite.records import TrialRecord
from suite.reporting import diagnostics as D
from suite.reporting import plots as P
from suite.reporting.ablations import ablation_tables
from suite.reporting.comparison import comparison_tables
from suite.reporting.fake_records import write_fake_runs
from suite.reporting.report import build_report
from suite.reporting.table import MISSING


def _record(seed, category, recon, detail, crd, scorings=None, depth=2):
    """RcAE record with ``diagnostics["test"]``: recon / detail = {step: (i, p)}, crd = (i, p)."""
    diag = {"recon": {s: {"i_auroc": i, "p_auroc": p} for s, (i, p) in recon.items()},
            "detail": {s: {"i_auroc": i, "p_auroc": p} for s, (i, p) in detail.items()},
            "crd": {"all": {"i_auroc": crd[0], "p_auroc": crd[1]}}}
    config = {"model": {"method": "rcae", "depth": depth}, "eval": {"anomaly_map": "auto", "standardize": "pixel"},
              "runtime": {"seed": seed}, "data": {"category": category}}
    return TrialRecord(config=config, config_hash=f"s{seed}{category}", dataset="mvtec", category=category,
                       method="rcae", metrics={"test": {"i_auroc": crd[0], "p_auroc": crd[1]}},
                       diagnostics={"test": diag}, scorings=scorings or {},
                       info={"scoring": "auto|pixel"} if scorings else {}, seed=seed)


def _hand_frame():
    return agg.records_frame([
        _record(0, "bottle", {"1": (0.80, 0.70), "2": (0.90, 0.75)}, {"1": (0.85, 0.72), "2": (0.92, 0.80)},
                (0.95, 0.90)),
        _record(1, "bottle", {"1": (0.90, 0.74), "2": (0.94, 0.77)}, {"1": (0.87, 0.76), "2": (0.96, 0.82)},
                (0.97, 0.92)),
        _record(0, "carpet", {"1": (0.60, 0.50), "2": (0.70, 0.55)}, {"1": (0.65, 0.52), "2": (0.72, 0.60)},
                (0.75, 0.70)),
    ])


# ----------------------------------------------------------------------------------------------
# per-depth signal


def test_per_depth_table_per_category_is_the_seed_mean_of_the_records():
    tables = D.per_depth_tables(_hand_frame(), per_category=True)
    assert [t.title for t in tables] == [
        "rcae, carpet (MVTec AD): per-depth test signal", "rcae, bottle (MVTec AD): per-depth test signal"]
    bottle = tables[1]
    assert bottle.header == ["Step", "Recon I-AUROC", "Recon P-AUROC", "Detail I-AUROC", "Detail P-AUROC"]
    # recon step 1 I-AUROC: seeds 0.80 and 0.90 -> 85.0; resampling two seeds gives 80, 85 or 90 with
    # probabilities 1/4, 1/2, 1/4, so the 2.5 and 97.5 percentiles are the two seeds
    assert bottle.rows[0] == ["1", "85.0 [80.0, 90.0]", "72.0 [70.0, 74.0]", "86.0 [85.0, 87.0]", "74.0 [72.0, 76.0]"]
    assert bottle.rows[1] == ["2", "92.0 [90.0, 94.0]", "76.0 [75.0, 77.0]", "94.0 [92.0, 96.0]", "81.0 [80.0, 82.0]"]
    assert bottle.rows[2] == [D.CRD_ROW, MISSING, MISSING, "96.0 [95.0, 97.0]", "91.0 [90.0, 92.0]"]
    assert 2 in bottle.rule_before
    num = bottle.numeric.set_index(["family", "step", "metric"])
    assert num.loc[("recon", "1", "i_auroc"), "value"] == pytest.approx(0.85)
    assert num.loc[("recon", "1", "i_auroc"), "std"] == pytest.approx(np.std([0.80, 0.90], ddof=1))
    assert num.loc[("crd", "all", "p_auroc"), "seeds"] == 2
    assert tables[0].rows[0] == ["1", "60.0", "50.0", "65.0", "52.0"]  # one seed: no interval


def test_per_depth_table_aggregated_is_the_mean_over_categories_of_seed_means():
    (table,) = D.per_depth_tables(_hand_frame(), per_category=False)
    assert table.title == "rcae, mean over 2 categories (MVTec AD): per-depth test signal"
    num = table.numeric.set_index(["family", "step", "metric"])
    # recon step 1 I-AUROC: bottle seed mean 0.85, carpet 0.60 -> 0.725; per-seed means 0.70 and 0.90
    assert num.loc[("recon", "1", "i_auroc"), "value"] == pytest.approx((0.85 + 0.60) / 2)
    assert num.loc[("recon", "1", "i_auroc"), "std"] == pytest.approx(np.std([(0.80 + 0.60) / 2, 0.90], ddof=1))
    assert num.loc[("crd", "all", "i_auroc"), "value"] == pytest.approx((0.96 + 0.75) / 2)
    # categories {bottle: 80, 90; carpet: 60}: carpet drawn twice (p = 1/4) gives 60; the top 2.5 %
    # lies at 87.5 (90 needs bottle twice with seed 90 four times: p = 1/64 < 2.5 %)
    assert table.rows[0][1] == "72.5 [60.0, 87.5]"


def test_per_depth_on_fake_records_equals_the_record_files(fake_frame):
    frame = fake_frame
    stats, per_category = D.per_depth_stats(frame)
    assert not per_category  # 24 (configuration, category) pairs carry diagnostics: one table per configuration
    label = "rcae depth=3 coverage=0.3"
    by_category = {}
    for path in frame.loc[(frame["label"] == label) & (frame["dataset"] == "mvtec"), "record_path"]:
        data = json.loads(open(path).read())
        by_category.setdefault(data["category"], []).append(data["diagnostics"]["test"]["detail"]["2"]["p_auroc"])
    assert sorted(len(v) for v in by_category.values()) == [2, 2, 2]  # two seeds on each MVTec category
    expected = np.mean([np.mean(v) for v in by_category.values()])
    row = stats[
        (stats["label"] == label) & (stats["family"] == "detail") & (stats["step"] == "2")
        & (stats["metric"] == "p_auroc")
    ]
    assert row["value"].iloc[0] == pytest.approx(expected)
    # without DPN there is no detail family, without CRD no CRD row
    no_dpn = [t for t in D.per_depth_tables(frame) if t.title.startswith("rcae depth=3 use_crd=False use_dpn=False")][0]
    assert all(r[3] == MISSING for r in no_dpn.rows) and D.CRD_ROW not in [r[0] for r in no_dpn.rows]


def test_per_depth_figure_png_and_svg(tmp_path):
    stats, _ = D.per_depth_stats(_hand_frame(), per_category=True)
    figures = P.per_depth_figures(stats, tmp_path, max_figures=1)
    assert len(figures) == 1 and figures[0].png.name == "per_depth_mvtec_rcae_carpet.png"
    assert figures[0].png.stat().st_size > 2000 and figures[0].svg.stat().st_size > 2000


def test_no_diagnostics_no_tables():
    frame = agg.records_frame([TrialRecord(config={}, config_hash="h", dataset="mvtec", category="bottle", method="fae",
                                           metrics={"test": {"i_auroc": 0.9}})])
    assert D.per_depth_tables(frame) == [] and D.scoring_tables(frame) == []


# ----------------------------------------------------------------------------------------------
# scoring variants, and the scoring stated in footers


def test_scoring_table_cells_are_seed_means_and_best_is_bold():
    def scorings(i_pixel, i_none):
        return {"auto|pixel": {"test": {"i_auroc": i_pixel, "p_auroc": 0.9}},
                "auto|none": {"test": {"i_auroc": i_none, "p_auroc": 0.8}}}

    frame = agg.records_frame([
        _record(0, "bottle", {}, {}, (0.9, 0.9), scorings(0.90, 0.80)),
        _record(1, "bottle", {}, {}, (0.9, 0.9), scorings(0.94, 0.70)),
    ])
    (table,) = D.scoring_tables(frame)
    assert table.header == ["Configuration", "Configured", "auto|none", "auto|pixel"]
    assert table.rows == [["rcae", "auto|pixel", "75.0 [70.0, 80.0] / 80.0 [80.0, 80.0]",
                           "**92.0 [90.0, 94.0]** / **90.0 [90.0, 90.0]**"]]
    assert "scoring: anomaly_map=auto, standardize=pixel" in table.footer
    num = table.numeric.set_index(["variant", "metric"])
    assert (
        num.loc[("auto|pixel", "i_auroc"), "value"] == pytest.approx(0.92)
        and num.loc[("auto|pixel", "i_auroc"), "seeds"] == 2
    )
    assert "auto\\|pixel" in table.to_markdown() and "auto\\textbar{}pixel" in table.to_latex()


def test_scoring_tables_on_fake_records_cover_the_rcae_mvtec_configurations(fake_frame):
    frame = fake_frame
    (table,) = D.scoring_tables(frame)  # VisA records carry no scorings
    assert table.header[2:] == ["auto|none", "auto|pixel", "fused|pixel", "residual_mean|pixel"]
    assert len(table.rows) == frame.loc[
        frame["method"].eq("rcae") & frame["dataset"].eq("mvtec") & frame["status"].eq("ok"), "label"
    ].nunique()
    # the configured variant equals the records' metrics
    num = table.numeric.set_index(["label", "variant", "metric"])
    ok = frame[(frame["label"] == "rcae depth=2 coverage=0.3") & (frame["status"] == "ok")]
    assert num.loc[("rcae depth=2 coverage=0.3", "auto|pixel", "aupro"), "value"] == pytest.approx(
        ok["test.aupro"].mean()
    )


def test_ladder_ablation_and_comparison_footers_state_the_scoring(fake_frame):
    frame = fake_frame
    tables = comparison_tables(frame) + [r.table for r in ablation_tables(frame) if r.table is not None]
    for table in tables:
        assert "scoring: anomaly_map=" in table.footer and "standardize=" in table.footer, table.name


# ----------------------------------------------------------------------------------------------
# whole reports of older records


def _strip_v2(path):
    """Rewrite a record as older code wrote it: no diagnostics / scorings, a bool standardize, version 1."""
    data = json.loads(path.read_text())
    for key in ("diagnostics", "scorings"):
        data.pop(key, None)
    data["info"] = {}
    data["record_version"] = 1
    data["config"]["eval"]["standardize"] = True
    data["config"]["eval"]["anomaly_map"] = "crd"
    path.write_text(json.dumps(data))


@pytest.mark.slow  # builds a full report
def test_old_records_without_the_new_fields_still_build_a_report(tmp_path):
    runs = write_fake_runs(tmp_path / "runs")
    for path in runs.records:
        _strip_v2(path)
    index = build_report(runs.run_dirs, tmp_path / "out", gallery_per_category=0)
    out = index.parent
    assert not (out / "per_depth.md").exists() and not (out / "scorings.md").exists()
    assert not list((out / "plots").glob("per_depth_*"))
    md = index.read_text()
    assert (
        "## Per-depth signal (which recursion steps carry signal)" in md
        and "No record carries per-depth diagnostics" in md
    )
    assert "No record carries scoring variants" in md
    assert "scoring: anomaly_map=crd, standardize=pixel" in (out / "ablations.md").read_text()
    assert "## Selection fidelity" in (out / "summary.md").read_text()
    assert not math.isnan(agg.selection_fidelity(agg.records_frame(agg.load_records(*runs.run_dirs)))["spearman"])
