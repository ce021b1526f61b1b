"""build_report end to end on fake run folders: every file written, nothing dropped, never overwritten."""

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from suite.reporting.fake_records import write_fake_runs
from suite.reporting.report import NO_FIGURES, build_report, resolve_out_dir

pytestmark = pytest.mark.slow  # the module's report (plots, gallery) takes ~15 s to build

REPO = Path(__file__).resolve().parents[3]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    runs = write_fake_runs(root / "runs")
    index = build_report(runs.run_dirs, root / "out", select_on="val")
    return runs, index


def test_index_points_into_the_requested_folder(report):
    runs, index = report
    assert index.name == "index.md" and index.parent.name == "out"


def test_every_table_and_plot_is_built(report):
    _, index = report
    out = index.parent
    for name in ["records.csv", "summary.md", "comparison.md", "comparison.csv", "comparison.tex", "ablations.md",
                 "ablations.csv", "ablations.tex", "pareto.md", "pareto.tex", "index.md", "index.html",
                 "per_depth.md", "per_depth.csv", "per_depth.tex", "scorings.md", "scorings.csv", "scorings.tex"]:
        path = out / name
        assert path.is_file() and path.stat().st_size > 0, name
    plots = out / "plots"
    for dataset in ("mvtec", "visa"):
        for cost in ("latency_ms", "gflops"):
            for ext in ("png", "svg"):
                assert (plots / f"accuracy_vs_{cost}_{dataset}.{ext}").stat().st_size > 0
    # depth and coverage vary among RcAE records; noise_std does not
    assert (plots / "response_model.depth_rcae.png").is_file()
    assert (plots / "response_augment.coverage_rcae.png").is_file()
    assert not list(plots.glob("response_augment.noise_std*"))
    # one per-depth figure (PNG + SVG) per RcAE configuration with diagnostics (the MVTec AD ones)
    per_depth = sorted(p.name for p in plots.glob("per_depth_*.png"))
    assert len(per_depth) == 8 and "per_depth_mvtec_rcae_depth=3_coverage=0.5_mean.png" in per_depth
    assert all((plots / name.replace(".png", ".svg")).stat().st_size > 0 for name in per_depth)
    index_md = index.read_text()
    assert "## Per-depth signal (which recursion steps carry signal)" in index_md and "## Scoring variants" in index_md


def test_images_are_non_empty_pngs(report):
    _, index = report
    pngs = list(index.parent.rglob("*.png"))
    assert len(pngs) >= 10
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 2000, png


def test_gallery_figures_per_saved_image(report):
    runs, index = report
    gallery = index.parent / "gallery"
    # two readable gallery artifacts with two images each; the missing one is a warning, not a crash
    figures = sorted(p.relative_to(gallery).as_posix() for p in gallery.rglob("*.png"))
    assert len(figures) == 4
    assert any(f.startswith("mvtec_bottle/") for f in figures) and any(f.startswith("mvtec_carpet/") for f in figures)
    summary = (index.parent / "summary.md").read_text()
    assert "gallery file missing" in summary and "gallery_gone.npz" in summary


def test_records_csv_is_flat_and_complete(report):
    runs, index = report
    frame = pd.read_csv(index.parent / "records.csv")
    assert len(frame) == len(runs.records)
    for col in ["config.model.depth", "val.i_auroc", "test.p_auroc", "cost.latency_ms", "time.stage1", "status",
                "category", "method", "label"]:
        assert col in frame.columns
    assert frame.loc[frame["status"] == "failed", "error"].str.contains("out of memory").all()


def test_failed_stopped_and_unreadable_are_listed(report):
    runs, index = report
    summary = (index.parent / "summary.md").read_text()
    for trial in runs.failed + runs.stopped:
        assert f"| {trial} |" in summary
    assert "record_broken.json" in summary
    assert "could not be read" in index.read_text()
    # failed trials are excluded from means: the depth=4 configuration never becomes a column
    comparison = (index.parent / "comparison.md").read_text()
    assert "rcae depth=4" not in comparison


def test_every_table_has_a_footer(report):
    _, index = report
    for name in ("comparison.md", "ablations.md", "pareto.md", "summary.md", "per_depth.md", "scorings.md"):
        text = (index.parent / name).read_text()
        # sections that are text, not tables: summary's seeds advice and gallery warnings
        tables = len(re.findall(r"^#{2,3} (?!How many seeds|Gallery warnings)", text, flags=re.M))
        footers = len(re.findall(r"^\*Dataset: .*trials: \d+ records.*scoring: .*code: .*\*$", text, flags=re.M))
        assert footers >= 1 and footers >= tables, name


def test_ablations_file_names_missing_rows_and_unwritten_tables(report):
    _, index = report
    text = (index.parent / "ablations.md").read_text()
    assert "missing (MVTec AD): depth=4, depth=5, depth=6" in text
    assert "Not written (no records for any of their rows): Recursion steps fed to CRD" in text
    assert "Photometric robustness switches" in text.partition("Not written")[2]
    assert "Paper: Wu et al." in text


def test_index_links_everything_and_html_is_self_contained(report):
    _, index = report
    out = index.parent
    md = index.read_text()
    for target in re.findall(r"\]\(([^)]+)\)", md):
        assert (out / target).exists(), target
    for name in ("summary.md", "comparison.csv", "comparison.tex", "ablations.md", "pareto.md", "records.csv"):
        assert f"({name})" in md
    html = (out / "index.html").read_text()
    assert html.count("data:image/png;base64,") == len(list(out.rglob("*.png")))
    assert not re.search(r'<img[^>]+src="(?!data:)', html), "an image is linked, not inlined"
    assert "<table>" in html and "<strong>" in html and "RuntimeError: out of memory" in html


def test_without_figures_every_table_is_the_same_and_nothing_is_drawn(report, tmp_path):
    """``--no-figures`` leaves out drawing only: every table file (Pareto fronts included, which the
    accuracy-vs-cost plotting computes) is byte for byte the one of the full report."""
    runs, index = report
    full = index.parent
    tables_only = build_report(runs.run_dirs, tmp_path / "t", select_on="val", figures=False).parent
    written = sorted(p.relative_to(tables_only).as_posix() for p in tables_only.rglob("*") if p.is_file())
    expected = sorted(p.relative_to(full).as_posix() for p in full.rglob("*")
                      if p.is_file() and p.suffix in {".md", ".csv", ".tex", ".html"})
    assert written == expected and "pareto.md" in written
    assert not list(tables_only.rglob("*.png")) and not list(tables_only.rglob("*.svg"))
    for name in written:
        if name.startswith("index."):  # the index says when it was built and where the figures are
            continue
        expected_text = (full / name).read_text()
        if name == "summary.md":  # but for the gallery's warnings: no gallery was built
            expected_text = expected_text.split("\n## Gallery warnings\n")[0]
        assert (tables_only / name).read_text() == expected_text, name
    text = (tables_only / "index.md").read_text()
    # per-depth, accuracy vs cost, response curves, gallery (the fake records carry no shifted test metrics)
    assert text.count(NO_FIGURES) == 4 and "No record carries shifted test metrics" in text


def test_second_build_goes_to_a_new_folder(report, tmp_path, capsys):
    runs, _ = report
    out = tmp_path / "rep"
    first = build_report(runs.run_dirs[1], out, figures=False)
    second = build_report(runs.run_dirs[1], out, figures=False)
    assert first.parent == out
    assert second.parent == tmp_path / "rep-2"
    assert "rep-2" in capsys.readouterr().err
    assert "already held a report" in second.read_text()
    # the first report is untouched
    assert first.is_file() and (out / "summary.md").is_file()
    # an empty existing folder is reused
    empty = tmp_path / "empty"
    empty.mkdir()
    assert resolve_out_dir(empty) == (empty, False)


def test_reporting_does_not_import_torch_or_ray():
    code = (
        "import sys\n"
        "sys.modules['torch'] = None; sys.modules['ray'] = None  # importing either now fails\n"
        "import suite.aggregate, suite.reporting.report, suite.reporting.fake_records\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_select_on_is_validated(tmp_path):
    with pytest.raises(ValueError, match="select_on"):
        build_report(tmp_path, tmp_path / "out", select_on="train")


def test_selection_on_test_is_flagged(report, tmp_path):
    runs, _ = report
    index = build_report(runs.run_dirs[1], tmp_path / "t", select_on="test", figures=False)
    assert "selected on the test split" in index.read_text()
    assert "configurations selected on the TEST split" in (index.parent / "summary.md").read_text()


def test_missing_run_folder_fails_before_creating_the_report(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build_report(tmp_path / "nowhere", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_comparison_csv_mean_rows_equal_the_mean_of_cells(report):
    _, index = report
    table = pd.read_csv(index.parent / "comparison.csv")
    value_cols = [c for c in table.columns if " | " in c and c.split(" | ")[-1] not in
                  ("n", "std", "low", "high", "p_vs_best", "seeds", "categories")]
    assert any(c.endswith("| aupro") for c in value_cols) and any(c.startswith("paper:") for c in value_cols)
    for dataset, group in table.groupby("dataset"):
        cells = group[group["category"] != "Mean"]
        mean = group[group["category"] == "Mean"].iloc[0]
        for col in value_cols:
            if cells[col].notna().any():
                assert mean[col] == pytest.approx(cells[col].mean()), (dataset, col)
