"""suite.reporting.ablations: ablation tables grouped by the records' ablation ids, labelled and
given published numbers by the space files."""

import dataclasses
import math

import numpy as np
import pytest

from suite import aggregate as agg
from suite.spaces import Ablation, AblationRow
from suite.records import TrialRecord
from suite.reporting import ablations as A
from suite.reporting.summary import seeds_lines


def _results(frame, **kwargs):
    return {r.ablation.id: r for r in A.ablation_tables(frame, **kwargs)}


def test_ablations_name_missing_rows_and_skip_empty_tables(fake_frame, check_latex):
    results = _results(fake_frame)
    depth = results["depth"]
    assert depth.table is not None
    # depth=4 has only a failed record: it stays missing
    assert depth.missing["mvtec"] == ["depth=4", "depth=5", "depth=6"]
    assert depth.missing["visa"] == ["depth=1", "depth=2", "depth=4", "depth=5", "depth=6"]
    md = depth.table.to_markdown()
    assert "missing (MVTec AD): depth=4, depth=5, depth=6" in md and "depth=3 [visa]" in md
    check_latex(depth.table.to_latex())
    # no record carries the crd_steps ids -> the table is not written
    assert results["crd_steps"].table is None
    comp = results["components"].numeric.set_index(["dataset", "row"])
    # the space file's paper numbers next to ours, and the difference is ours - paper
    row = comp.loc[("mvtec", "rcae_dpn")]
    assert row["paper.i_auroc"] == pytest.approx(95.7) and row["paper.p_auroc"] == pytest.approx(96.6)
    assert row["diff.i_auroc"] == pytest.approx(row["ours.i_auroc"] - 95.7)
    assert row["label"] == "rcae depth=3 use_crd=False coverage=0.3" and row["configurations"] == 1
    assert comp.loc[("mvtec", "convae"), "label"] == "convae data_fraction=1"
    assert comp.loc[("mvtec", "rcae_dpn_crd"), "records"] == 0
    assert "Paper: Wu et al., 'RcAE: Recursive Reconstruction Framework" in results["components"].table.to_markdown()
    skip = results["skip_shared"].numeric.set_index(["dataset", "row"])
    assert skip.loc[("mvtec", "rcae_skip_unshared"), "label"] == "rcae depth=3 shared_weights=False coverage=0.3"
    assert skip.loc[("mvtec", "convae_skip"), "records"] == 0
    # a row without published numbers (not in the paper) shows none
    assert (
        skip.loc[("mvtec", "rcae_noskip_unshared"), "paper.i_auroc"]
        != skip.loc[("mvtec", "rcae_noskip_unshared"), "paper.i_auroc"]
    )


def test_a_row_with_two_configurations_shows_the_best_on_the_selection_split(fake_frame):
    row = _results(fake_frame)["depth"].numeric.set_index(["dataset", "row"]).loc[("mvtec", "3")]
    # the N=3 row holds coverage 0.3 (two seeds) and 0.5; 0.5 is better on val in the fake data
    assert row["label"] == "rcae depth=3 coverage=0.5" and row["configurations"] == 2


def test_ablation_ours_is_mean_over_categories(fake_frame):
    row = _results(fake_frame)["depth"].numeric.set_index(["dataset", "row"]).loc[("mvtec", "1")]
    ok = fake_frame[(fake_frame["status"] == "ok") & (fake_frame["label"] == "rcae depth=1 coverage=0.3")
                    & (fake_frame["dataset"] == "mvtec")]
    assert row["ours.i_auroc"] == pytest.approx(ok.groupby("category")["test.i_auroc"].mean().mean() * 100)


def test_records_without_ablation_ids_are_in_no_table(fake_frame):
    assert any(r.table is not None for r in A.ablation_tables(fake_frame))
    old = fake_frame.drop(columns=[A.TABLE_COLUMN, A.ROW_COLUMN])  # frames of records before ablation ids
    assert all(r.table is None for r in A.ablation_tables(old))
    untagged = fake_frame.assign(**{A.TABLE_COLUMN: None, A.ROW_COLUMN: None})
    assert all(r.table is None for r in A.ablation_tables(untagged))


def test_ablation_rows_selected_on_test_say_so(fake_frame):
    assert "TEST split" in _results(fake_frame, select_on="test")["depth"].table.footer


# ----------------------------------------------------------------------------------------------
# hand-made records: the ids alone decide the rows


def _record(i_auroc, table, row, category="bottle", dataset="mvtec"):
    config = {"model": {"method": "m", "depth": 2}, "data": {"category": category}}
    return TrialRecord(config=config, config_hash="same", dataset=dataset, category=category, method="m",
                       metrics={"val": {"i_auroc": i_auroc, "p_auroc": i_auroc},
                                "test": {"i_auroc": i_auroc, "p_auroc": i_auroc}},
                       ablation={"table": table, "row": row} if table else {})


TOY = Ablation(
    id="toy", title="Toy ablation", source="Someone et al., Table 7",
    rows=(AblationRow("a", "Row A", {"model.depth": 2}, {"mvtec": {"i_auroc": 85.0, "p_auroc": 80.0}}),
          AblationRow("b", "Row B", {"model.depth": 3})),
)


def test_two_records_differing_only_in_their_row_id_land_in_different_rows():
    frame = agg.records_frame([_record(0.9, "toy", "a"), _record(0.7, "toy", "b")])
    assert frame["label"].nunique() == 1  # the same configuration
    (result,) = A.ablation_tables(frame, ablations=[TOY])
    numeric = result.numeric.set_index("row")
    assert numeric.loc["a", "ours.i_auroc"] == pytest.approx(90.0)
    assert numeric.loc["b", "ours.i_auroc"] == pytest.approx(70.0)
    assert [r[0] for r in result.table.rows] == ["Row A", "Row B"]
    # paper numbers of the row that has them, Δ = ours − paper; none for the other row
    assert result.table.rows[0][2:4] == ["85.0 / 80.0", "+5.0 / +10.0"]
    assert result.table.rows[1][2:4] == ["–", "–"]
    assert result.table.title == "Toy ablation" and "Paper: Someone et al., Table 7." in result.table.notes


def test_the_table_id_counts_too_and_unknown_ids_get_their_own_rows_and_tables():
    frame = agg.records_frame([
        _record(0.9, "toy", "a"), _record(0.6, "other", "a"), _record(0.8, "toy", "c"), _record(0.5, None, None),
    ])
    results = {r.ablation.id: r for r in A.ablation_tables(frame, ablations=[TOY])}
    assert list(results) == ["toy", "other"]
    toy = results["toy"].numeric.set_index("row")
    assert toy.loc["a", "ours.i_auroc"] == pytest.approx(90.0) and toy.loc["a", "records"] == 1
    assert toy.loc["b", "records"] == 0 and results["toy"].missing == {"mvtec": ["Row B"]}
    # a row id the space file does not declare is shown under its id
    assert toy.loc["c", "ours.i_auroc"] == pytest.approx(80.0) and toy.loc["c", "name"] == "c (not in the space file)"
    other = results["other"]
    assert other.table.title == "Ablation 'other' (declared by no space file)"
    assert other.numeric.set_index("row").loc["a", "ours.i_auroc"] == pytest.approx(60.0)
    assert "Paper: no published numbers." in other.table.notes


def test_the_shipped_ablation_spaces_are_the_default(fake_frame):
    titles = [r.ablation.title for r in A.ablation_tables(fake_frame)]
    assert titles == [
        "Components ladder (RcAE paper Table 2)", "Recursion depth N (RcAE paper Table 3)",
        "Skip connections × shared weights (RcAE paper Table 4)", "Training data fraction (RcAE paper Table 5)",
        "Recursion steps fed to CRD (RcAE paper Table 6, N=5)", "Photometric robustness switches (issue 19)",
    ]


# ----------------------------------------------------------------------------------------------
# uncertainty: intervals, separability of neighbouring rows, seeds needed (constructed records)

THREE = Ablation(id="three", title="Three rows", rows=(
    AblationRow("a", "Row A", {}), AblationRow("b", "Row B", {}), AblationRow("c", "Row C", {})))
PATTERN = (-1.0, 0.0, 1.0)  # seed s moves a value by spread * PATTERN[s]


def _seeded(value, row, category, seed, spread=0.01):
    record = _record(value + spread * PATTERN[seed], "three", row, category=category)
    return dataclasses.replace(record, seed=seed)


def _three_rows(b_offset, c_offset):
    """Rows A, B, C on 2 categories x 3 seeds: A at 0.6 / 0.7, B and C moved by their offsets."""
    records = []
    for category, base in (("bottle", 0.6), ("carpet", 0.7)):
        for seed in range(3):
            for row, offset in (("a", 0.0), ("b", b_offset), ("c", c_offset)):
                records.append(_seeded(base + offset, row, category, seed))
    return agg.records_frame(records)


def test_identical_rows_are_not_separable_and_rows_02_apart_are():
    (result,) = A.ablation_tables(_three_rows(0.0, 0.2), ablations=[THREE])
    numeric = result.numeric.set_index("row")
    # B equals A on every (category, seed): p = 1; C is 0.2 above B on all 6 pairs: p = 2/64
    assert numeric.loc["b", "p_above.i_auroc"] == 1.0 and not numeric.loc["b", "separable_above.i_auroc"]
    assert numeric.loc["c", "p_above.i_auroc"] == pytest.approx(2 / 64) and numeric.loc["c", "separable_above.i_auroc"]
    assert numeric.loc["a", "separable_above.i_auroc"] is None  # nothing above the first row
    rows = {r[0]: r for r in result.table.rows}
    header = result.table.header
    assert rows["Row B"][header.index("p vs row above")] == "1.000 ≈ / 1.000 ≈"
    assert rows["Row C"][header.index("p vs row above")] == "0.031 / 0.031"
    assert rows["Row A"][header.index("Seeds")] == "3" and rows["Row A"][header.index("Categories")] == "2"
    # the interval: categories 60 and 70, seeds ±1: inside [59, 71], around the mean 65
    assert numeric.loc["a", "ours.i_auroc"] == pytest.approx(65.0)
    assert 59.0 <= numeric.loc["a", "ours.i_auroc.low"] < 65.0 < numeric.loc["a", "ours.i_auroc.high"] <= 71.0
    assert rows["Row A"][1].startswith("65.0 [")
    assert "sign-flip permutation test" in result.table.footer and "bootstrap" in result.table.footer
    # the closest neighbouring pair (A, B) is identical: no number of seeds separates it
    (advice,) = result.seeds
    assert (advice["above"], advice["below"], advice["mean_diff"]) == ("Row A", "Row B", 0.0)
    assert advice["seeds_needed"] == math.inf


def test_seeds_needed_for_the_closest_pair_follows_the_formula():
    # B is 0.5 points above A but pairs differ by +1.5 / -0.5 alternately; C far above B
    records = []
    for category, base in (("bottle", 0.6), ("carpet", 0.7)):
        for seed in range(3):
            wobble = 0.01 if (seed + (category == "carpet")) % 2 == 0 else -0.01
            records += [_seeded(base, "a", category, seed, spread=0.0),
                        _seeded(base + 0.005 + wobble, "b", category, seed, spread=0.0),
                        _seeded(base + 0.3, "c", category, seed, spread=0.0)]
    (result,) = A.ablation_tables(agg.records_frame(records), ablations=[THREE])
    (advice,) = result.seeds
    d = np.array([1.5, -0.5, 1.5, -0.5, 1.5, -0.5])  # in points, (bottle 0..2, carpet 0..2) by the wobble
    assert (advice["above"], advice["below"]) == ("Row A", "Row B")
    assert advice["mean_diff"] == pytest.approx(d.mean()) and advice["sd_diff"] == pytest.approx(d.std(ddof=1))
    pairs = math.ceil(((1.959964 + 0.841621) * d.std(ddof=1) / d.mean()) ** 2)
    assert advice["seeds_needed"] == math.ceil(pairs / 2) and advice["more_seeds"] == math.ceil(pairs / 2) - 3
    lines = seeds_lines([result])
    assert len(lines) == 1 and f"--trials {math.ceil(pairs / 2)}" in lines[0] and "Row A" in lines[0]
