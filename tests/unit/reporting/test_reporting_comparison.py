"""suite.reporting.comparison: the per-category comparison and its published reference columns."""

import re

import numpy as np
import pandas as pd
import pytest

from suite import aggregate as agg
from suite.methods.registry import MethodSpec, Reference, method_specs, register_method, unregister_method
from suite.reporting import comparison as C


def test_comparison_mean_row_equals_mean_of_cells(fake_frame, parse_markdown_table, numbers):
    tables = C.comparison_tables(fake_frame)
    assert [t.name for t in tables] == ["comparison_mvtec", "comparison_visa"]
    mvtec = tables[0]
    numeric = mvtec.numeric.set_index("category")
    assert list(numeric.index) == ["carpet", "grid", "bottle", "Mean"]  # standard order, Mean last
    value_cols = [c for c in numeric.columns if c.count(" | ") == 1 and not c.endswith(" | n")]
    assert not any(c.endswith((" | seeds", " | categories")) for c in value_cols)
    assert value_cols
    for col in value_cols:
        cells = numeric.loc[["carpet", "grid", "bottle"], col].astype(float)
        if cells.isna().all() and col.startswith("paper:"):
            continue  # a paper column without per-category numbers shows the paper's own mean
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


def test_comparison_cells_seeds_missing_and_bold(fake_frame, parse_markdown_table):
    mvtec = C.comparison_tables(fake_frame)[0]
    header, rows = parse_markdown_table(mvtec.to_markdown(), "MVTec AD")
    col = header.index("rcae depth=3 coverage=0.3")
    carpet = next(r for r in rows if r[0] == "carpet")
    assert re.fullmatch(r"\*?\*?\d+\.\d\*?\*? \[\d+\.\d, \d+\.\d\] / .*", carpet[col])  # two seeds: an interval
    one_seed = header.index("rcae depth=2 coverage=0.3")
    assert "[" not in carpet[one_seed]  # one value: no interval
    assert rows[-1][0] == C.SEEDS_ROW and rows[-1][col] == "2 × 3" and rows[-1][one_seed] == "1 × 3"
    convae = header.index("convae data_fraction=1")
    grid = next(r for r in rows if r[0] == "grid")
    assert grid[convae] == "– / –"  # only a stopped trial there
    # failed trials never become a column
    assert not any(h.startswith("rcae depth=4") for h in header)
    # the published columns come last, in registry order: those of every method present with numbers on MVTec AD
    refs = [ref.name for _, ref in C.references(fake_frame) if "mvtec" in ref.values]
    assert header[len(header) - len(refs):] == refs
    assert {"RcAE (paper)", "FAE (paper)", "HFR-AE R18 (paper)"} <= set(refs) and "HFR-AE wR50 (paper)" not in refs
    # a paper column with only the paper's own mean (DRAEM) shows it in the Mean row, dashes elsewhere
    draem = header.index("DRAEM (paper)")
    assert next(r for r in rows if r[0] == "**Mean**")[draem] == "98.0 / 97.3"
    assert carpet[draem] == "– / –"
    # exactly one bold I-AUROC per row among our configurations (ties aside), none in paper columns
    for row in rows:
        if row[0] == C.SEEDS_ROW:
            continue
        ours = row[1: len(header) - len(refs)]
        assert sum(c.split(" / ")[0].startswith("**") for c in ours) >= 1
        assert not any("**" in c for c in row[len(header) - len(refs):])


def test_comparison_latex_and_csv(fake_frame, check_latex):
    tables = C.comparison_tables(fake_frame)
    for table in tables:
        tex = table.to_latex()
        check_latex(tex)
        assert "\\textbf{" in tex
        if table.name == "comparison_mvtec":
            assert "data\\_fraction" in tex
        csv = table.to_csv()
        back = pd.read_csv(pd.io.common.StringIO(csv))
        assert {"dataset", "category"} <= set(back.columns)


def test_reference_columns_follow_methods_and_backbones(fake_frame):
    # registry order; a method without references (ConvAE) adds none; HFR-AE's follow config.hfr.backbone
    def keys(frame):
        return [k for k in C.reference_keys(frame) if k.partition(":")[0] in ("rcae", "convae", "fae", "hfr")]

    assert keys(fake_frame) == ["rcae", "fae", "hfr:resnet18"]
    wide = fake_frame.assign(**{"config.hfr.backbone": "wide_resnet50_2"})
    assert keys(wide) == ["rcae", "fae", "hfr:wide_resnet50_2"]
    assert keys(wide.assign(**{"config.hfr.backbone": "vgg"})) == ["rcae", "fae"]  # no published numbers
    assert keys(wide.drop(columns=["config.hfr.backbone"])) == ["rcae", "fae"]
    assert keys(fake_frame[fake_frame["method"] != "fae"]) == ["rcae", "hfr:resnet18"]


def _toy_frame(values):
    rows = [
        {"status": "ok", "dataset": "mvtec", "category": c, "seed": 0, "method": "toy_ref", "label": "toy",
         "config.toy_ref.variant": "big", "test.i_auroc": v, "test.p_auroc": v}
        for c, v in values.items()
    ]
    return pd.DataFrame(rows)


def test_reference_columns_come_from_the_registered_spec():
    ref = Reference(name="Toy (paper)", source="Toy et al., Table 9", metrics=("i_auroc",),
                    values={"mvtec": {"carpet": {"i_auroc": 91.0}, "grid": {"i_auroc": 93.0}}},
                    published_mean={"mvtec": {"i_auroc": 95.5}})
    spec = MethodSpec(name="toy_ref", display_name="Toy", colour="k", trainer="toy:train",
                      references={"big": ref}, reference_by="toy_ref.variant")
    register_method(spec)
    try:
        frame = _toy_frame({"carpet": 0.80, "grid": 0.90})
        assert C.reference_keys(frame) == ["toy_ref:big"]
        (table,) = C.comparison_tables(frame)
        assert table.header == ["Category", "toy", "Toy (paper)"]
        # the Mean is over the rows shown; the last row (seeds x categories) has nothing for a paper
        assert [r[2] for r in table.rows] == ["91.0 / –", "93.0 / –", "92.0 / –", "–"]
        assert "Toy (paper): Toy et al., Table 9; published mean 95.5 / –." in table.notes
        numeric = table.numeric.set_index("category")
        assert numeric.loc["grid", "paper:toy_ref:big | i_auroc"] == 93.0
        assert C.reference_keys(frame.assign(**{"config.toy_ref.variant": "small"})) == []
    finally:
        unregister_method("toy_ref")
    assert C.reference_keys(frame) == []  # unknown methods (old records) have no references


def test_published_references_cover_their_datasets_and_match_their_means():
    for spec in method_specs():
        for key, ref in spec.references.items():
            assert ref.source, key
            for dataset, cats in ref.values.items():
                order = agg.category_order(dataset)
                published = ref.published_mean.get(dataset) or cats.get("mean", {})
                assert published, (key, dataset)
                if set(cats) <= {"mean"}:
                    continue  # the paper gives its mean only
                assert order and set(cats) - {"mean"} == set(order), (key, dataset)
                for metric in ref.metrics:
                    mean = float(np.mean([cats[c][metric] for c in order]))
                    # the papers' means are of unrounded values; ours of the rounded table entries
                    assert abs(mean - published[metric]) < 0.1, (key, dataset, metric)
