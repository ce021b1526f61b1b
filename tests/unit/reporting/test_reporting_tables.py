"""suite.reporting.tables: comparison, ablations, summary; Markdown / LaTeX / CSV renderings."""

import math
import re

import numpy as np
import pandas as pd
import pytest

from suite import aggregate as agg
from suite.reporting import tables as T
from suite.reporting.fake_records import write_fake_runs


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    runs = write_fake_runs(tmp_path_factory.mktemp("runs"))
    return agg.records_frame(agg.load_records(*runs.run_dirs))


def parse_markdown_table(text: str, title_fragment: str) -> tuple[list[str], list[list[str]]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#") and title_fragment in line)
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])])
        elif rows:
            break
    return rows[0], rows[2:]


def numbers(cell: str) -> list[float]:
    return [float(x) for x in re.findall(r"(?<![±\d.])(\d+\.\d)(?!\d)", cell.replace("**", ""))]


def check_latex(tex: str) -> None:
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


def test_comparison_mean_row_equals_mean_of_cells(frame):
    tables = T.comparison_tables(frame)
    assert [t.name for t in tables] == ["comparison_mvtec", "comparison_visa"]
    mvtec = tables[0]
    numeric = mvtec.numeric.set_index("category")
    assert list(numeric.index) == ["carpet", "grid", "bottle", "Mean"]  # standard order, Mean last
    value_cols = [c for c in numeric.columns if c.count(" | ") == 1 and not c.endswith(" | n")]
    assert value_cols
    for col in value_cols:
        cells = numeric.loc[["carpet", "grid", "bottle"], col].astype(float)
        expected = cells.mean(skipna=True)
        assert numeric.loc["Mean", col] == pytest.approx(expected, nan_ok=True), col
    # the rendered Mean row agrees with the numeric one (to the displayed precision)
    header, rows = parse_markdown_table(mvtec.to_markdown(), "MVTec AD")
    mean_row = next(r for r in rows if "Mean" in r[0])
    for j, label in enumerate(header[1:], start=1):
        key = label if not label.endswith("(paper)") else None
        shown = numbers(mean_row[j])
        if key is not None:
            assert shown == pytest.approx([round(numeric.loc["Mean", f"{key} | i_auroc"], 1),
                                           round(numeric.loc["Mean", f"{key} | p_auroc"], 1)], abs=0.051)


def test_comparison_cells_seeds_missing_and_bold(frame):
    mvtec = T.comparison_tables(frame)[0]
    header, rows = parse_markdown_table(mvtec.to_markdown(), "MVTec AD")
    col = header.index("rcae depth=3 coverage=0.3")
    carpet = next(r for r in rows if r[0] == "carpet")
    assert "±" in carpet[col]  # two seeds -> mean ± std
    convae = header.index("convae data_fraction=1")
    grid = next(r for r in rows if r[0] == "grid")
    assert grid[convae] == "– / –"  # only a stopped trial there
    # failed trials never become a column
    assert not any(h.startswith("rcae depth=4") for h in header)
    # exactly one bold I-AUROC per row among our configurations (ties aside), none in paper columns
    for row in rows:
        ours = row[1: len(header) - 3]
        assert sum(c.split(" / ")[0].startswith("**") for c in ours) >= 1
        assert not any("**" in c for c in row[len(header) - 3:])
    assert header[-3:] == ["RcAE (paper)", "FAE (paper)", "HFR-AE R18 (paper)"]


def test_comparison_latex_and_csv(frame):
    tables = T.comparison_tables(frame)
    for table in tables:
        tex = table.to_latex()
        check_latex(tex)
        assert "\\textbf{" in tex
        if table.name == "comparison_mvtec":
            assert "data\\_fraction" in tex
        csv = table.to_csv()
        back = pd.read_csv(pd.io.common.StringIO(csv))
        assert {"dataset", "category"} <= set(back.columns)


def test_latex_escaping_and_column_count():
    table = T.Table("t", "a_b & {c} 50% #1", ["k_1", "v"], [["x_y", "**1.0**±0.1"], ["$z$ ~^\\", "2"]])
    tex = table.to_latex()
    check_latex(tex)
    assert "k\\_1" in tex and "\\textbf{1.0$\\pm$0.1}" not in tex and "\\textbf{1.0}$\\pm$0.1" in tex
    assert "\\$z\\$" in tex and "50\\%" in tex and "\\#1" in tex and "\\&" in tex
    with pytest.raises(ValueError, match="row 0 has 1 cells"):
        T.Table("bad", "bad", ["a", "b"], [["only one"]])


def test_ablations_name_missing_rows_and_skip_empty_tables(frame):
    results = {r.spec.key: r for r in T.ablation_tables(frame)}
    depth = results["depth"]
    assert depth.table is not None
    assert depth.missing["mvtec"] == ["depth=4", "depth=5", "depth=6"]
    md = depth.table.to_markdown()
    assert "missing (MVTec AD): depth=4, depth=5, depth=6" in md
    check_latex(depth.table.to_latex())
    # no records with crd_steps at N=5 -> the table is not written
    assert results["crd_steps"].table is None
    comp = results["components"].numeric.set_index(["dataset", "row"])
    # paper numbers next to ours, and the difference is ours - paper
    row = comp.loc[("mvtec", "rcae_dpn_crd")]
    assert row["paper.i_auroc"] == pytest.approx(98.9) and row["paper.p_auroc"] == pytest.approx(98.7)
    assert row["diff.i_auroc"] == pytest.approx(row["ours.i_auroc"] - 98.9)
    # the chosen configuration is the best on the selection split (coverage 0.5 is better in the fake data)
    assert row["label"] == "rcae depth=3 coverage=0.5" and row["configurations"] == 2
    assert comp.loc[("mvtec", "convae"), "label"] == "convae data_fraction=1"
    skip = results["skip_shared"].numeric.set_index(["dataset", "row"])
    assert skip.loc[("mvtec", "rcae_skip_unshared"), "label"] == "rcae depth=3 shared_weights=False coverage=0.3"
    assert skip.loc[("mvtec", "convae_skip"), "records"] == 0


def test_ablation_ours_is_mean_over_categories(frame):
    results = {r.spec.key: r for r in T.ablation_tables(frame)}
    row = results["depth"].numeric.set_index(["dataset", "row"]).loc[("mvtec", "1")]
    ok = frame[(frame["status"] == "ok") & (frame["label"] == "rcae depth=1 coverage=0.3") & (frame["dataset"] == "mvtec")]
    assert row["ours.i_auroc"] == pytest.approx(ok.groupby("category")["test.i_auroc"].mean().mean() * 100)


def test_ablations_with_only_baselines_write_nothing_for_rcae_tables(frame):
    fae_only = frame[frame["method"].isin(["fae", "hfr"])]
    assert all(r.table is None for r in T.ablation_tables(fae_only))


def test_summary_lists_failures_missing_and_importance(frame):
    text, tables = T.summary_markdown(frame, select_on="val")
    assert "RuntimeError: out of memory" in text
    assert "stopped by the scheduler" in text
    failures = tables["failures"]
    statuses = [r[0] for r in failures.rows]
    assert statuses.count("failed") == 1 and statuses.count("stopped") == 1
    assert "only stopped" in tables["missing"].to_markdown()
    assert "Spearman" in text and "model.depth" in text
    best = tables["best_per_category"].numeric.set_index("category")
    assert list(best.index) == ["carpet", "grid", "bottle", "candle", "pcb1"]
    # the best per category maximises the seed-averaged selection metric
    ok = frame[(frame["status"] == "ok") & (frame["category"] == "carpet")]
    by_label = ok.groupby("label")["val.i_auroc"].mean()
    assert best.loc["carpet", "label"] == by_label.idxmax()
    assert best.loc["carpet", "selection"] == pytest.approx(by_label.max() * 100)


def test_footer_reports_dataset_size_preset_trials_selection_versions(frame, tmp_path):
    footer = T.footer_text(frame[frame["dataset"] == "mvtec"])
    assert "MVTec AD" in footer and "32 px" in footer and "preset: tiny" in footer
    assert "1 failed" in footer and "1 stopped" in footer
    assert "no record selected on the test split" in footer and "git 0123456789ab" in footer and "rcsuite 0.1.0" in footer
    runs = write_fake_runs(tmp_path, test_selected=2)
    tested = agg.records_frame(agg.load_records(*runs.run_dirs))
    assert "TEST split used for selection in 2 of" in T.footer_text(tested)


def test_paper_numbers_file_is_consistent():
    data = T.load_paper_numbers()
    for key, table in data["ablations"].items():
        assert table["source"] and "Table" in table["source"], key
        for dataset, rows in table["values"].items():
            for row, values in rows.items():
                assert set(values) == {"i_auroc", "p_auroc"}, (key, row)
                assert all(50.0 <= v <= 100.0 for v in values.values()), (key, row)
    assert data["ablations"]["depth"]["values"]["mvtec"]["5"] == {"i_auroc": 98.9, "p_auroc": 98.7}
    assert data["ablations"]["components"]["values"]["mvtec"]["convae"] == {"i_auroc": 82.4, "p_auroc": 90.8}
    for key, entry in data["per_category"].items():
        assert entry["source"], key
        for dataset, cats in entry["values"].items():
            order = agg.CATEGORY_ORDER[dataset]
            assert set(cats) == set(order), (key, dataset)
            for metric in entry["metrics"]:
                mean = float(np.mean([cats[c][metric] for c in order]))
                # the papers' means are of unrounded values; ours of the rounded table entries
                assert abs(mean - entry["published_mean"][dataset][metric]) < 0.1, (key, dataset, metric)
    # every ablation row the code knows has a published entry, and vice versa
    for spec in T.ablation_specs():
        known = {r.key for r in spec.rows}
        published = set(data["ablations"][spec.key]["values"]["mvtec"])
        assert known == published, spec.key


def test_reference_columns_follow_methods_and_backbones(frame):
    assert T.reference_keys(frame) == ["convae", "rcae", "fae", "hfr:resnet18"]
    assert math.isclose(T.pct(0.5), 50.0) and T.fmt(math.nan) == T.MISSING and T.fmt(1.234, 0.5) == "1.2±0.5"


def test_selection_on_test_split_keeps_percentages_and_says_so(frame):
    pooled, note = T.pooled_best(frame, "test")
    assert "TEST" in note
    assert pooled["test.i_auroc"].between(0, 100).all()
    best, _ = T.best_per_category(frame, "test")
    assert (best["selection"] == best["test.i_auroc"]).all()
    results = {r.spec.key: r for r in T.ablation_tables(frame, select_on="test")}
    assert "TEST split" in results["depth"].table.footer
