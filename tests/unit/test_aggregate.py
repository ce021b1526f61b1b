"""suite.aggregate: records -> frame, labels, statistics, Pareto fronts (no training, no torch)."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from suite import aggregate as agg
from suite.records import TrialRecord, write_record
from suite.reporting.fake_records import write_fake_runs


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    runs = write_fake_runs(tmp_path_factory.mktemp("runs"))
    record_set = agg.load_records(*runs.run_dirs)
    return runs, record_set, agg.records_frame(record_set)


# ----------------------------------------------------------------------------------------------
# Pareto


def test_pareto_front_hand_example_with_ties_and_duplicates():
    points = [
        {"name": "a", "acc": 0.90, "ms": 10.0},  # front
        {"name": "b", "acc": 0.95, "ms": 20.0},  # front
        {"name": "c", "acc": 0.90, "ms": 12.0},  # same acc as a, slower -> dominated by a
        {"name": "d", "acc": 0.95, "ms": 20.0},  # duplicate of b -> kept with b
        {"name": "e", "acc": 0.80, "ms": 5.0},  # fastest -> front
        {"name": "f", "acc": 0.85, "ms": 10.0},  # same cost as a, worse -> dominated
        {"name": "g", "acc": 0.99, "ms": 50.0},  # best accuracy -> front
        {"name": "h", "acc": 0.70, "ms": 60.0},  # dominated by everything
        {"name": "i", "acc": float("nan"), "ms": 1.0},  # undefined -> never on the front
    ]
    front = agg.pareto_front(points, maximize=["acc"], minimize=["ms"])
    assert [p["name"] for p in front] == ["a", "b", "d", "e", "g"]

    frame = pd.DataFrame(points).set_index("name")
    front_frame = agg.pareto_front(frame, maximize=["acc"], minimize=["ms"])
    assert list(front_frame.index) == ["a", "b", "d", "e", "g"]


def test_pareto_front_three_objectives_and_errors():
    points = pd.DataFrame({"acc": [1, 1, 0, 1], "ms": [1, 1, 0, 2], "mb": [5, 4, 0, 1]})
    # row0 dominated by row1 (same acc/ms, less memory); row2 cheapest on everything; row3 least memory among acc=1
    front = agg.pareto_front(points, maximize=["acc"], minimize=["ms", "mb"])
    assert list(front.index) == [1, 2, 3]
    with pytest.raises(ValueError):
        agg.pareto_front(points)
    with pytest.raises(KeyError, match="latency"):
        agg.pareto_front(points, maximize=["acc"], minimize=["latency"])
    assert agg.pareto_front([], maximize=["acc"]) == []


def test_pareto_mask_all_identical_points_are_all_kept():
    assert agg.pareto_mask(np.ones((4, 2))).all()


# ----------------------------------------------------------------------------------------------
# frame and labels


def test_records_frame_columns(fake):
    runs, record_set, frame = fake
    assert len(frame) == len(runs.records) and len(record_set.unreadable) == 1
    for col in ["config.model.depth", "val.i_auroc", "test.p_auroc", "test.aupro", "cost.params", "cost.latency_ms",
                "time.stage1", "time.total", "status", "category", "method", "label", "gallery", "version.git_commit"]:
        assert col in frame.columns, col
    assert set(frame["status"]) == {"ok", "failed", "stopped"}
    # config lists become tuples (hashable, groupable)
    assert isinstance(frame["config.augment.block_sizes"].iloc[0], tuple)
    ok = frame[frame["status"] == "ok"]
    assert ok["test.i_auroc"].between(0, 1).all()
    assert frame.loc[frame["status"] == "failed", "test.i_auroc"].isna().all()
    with_gallery = frame[frame["gallery"].notna()]
    assert len(with_gallery) == 3  # two real, one pointing to a missing file


def test_labels_name_the_varying_keys_per_method(fake):
    _, _, frame = fake
    labels = set(frame["label"])
    assert "rcae depth=3 coverage=0.5" in labels
    assert "rcae depth=3 skip=False coverage=0.3" in labels  # switches shown only off their usual value
    assert "rcae depth=3 use_crd=False use_dpn=False coverage=0.3" in labels
    assert {"fae", "hfr", "convae data_fraction=1", "convae data_fraction=0.5"} <= labels
    # seeds do not split a configuration
    seeds = frame[frame["label"] == "rcae depth=3 coverage=0.3"]
    assert set(seeds["seed"]) == {0, 1}
    # distinct configurations get distinct labels
    cfg_cols = agg.config_columns(frame)
    for label, group in frame.groupby("label"):
        assert len(group[cfg_cols].astype(str).drop_duplicates()) == 1, label


def test_labels_of_a_pure_sweep_always_show_the_swept_key():
    rows = [{"method": "rcae", "config.model.depth": d, "config.model.skip": True, "status": "ok"} for d in (1, 2, 3)]
    labels = agg.configuration_labels(pd.DataFrame(rows))
    assert list(labels) == ["rcae depth=1", "rcae depth=2", "rcae depth=3"]
    assert agg.short_key_names(["augment.noise_std", "fae.noise_std", "model.depth"]) == {
        "augment.noise_std": "augment.noise_std", "fae.noise_std": "fae.noise_std", "model.depth": "depth"}


def test_category_order_standard_then_sorted():
    pairs = [("synthetic", "zeta"), ("visa", "pcb1"), ("mvtec", "bottle"), ("synthetic", "alpha"), ("mvtec", "carpet"),
             ("visa", "candle"), ("mvtec", "zipper")]
    frame = pd.DataFrame(pairs, columns=["dataset", "category"])
    assert agg.ordered_categories(frame) == [
        ("mvtec", "carpet"), ("mvtec", "bottle"), ("mvtec", "zipper"), ("visa", "candle"), ("visa", "pcb1"),
        ("synthetic", "alpha"), ("synthetic", "zeta")]


# ----------------------------------------------------------------------------------------------
# statistics


def test_seed_stats_mean_std_count():
    frame = pd.DataFrame({"label": ["a", "a", "b"], "category": ["x", "x", "x"], "m": [0.8, 0.9, 0.5]})
    stats = agg.seed_stats(frame, ["m"], by=("label", "category")).set_index("label")
    assert stats.loc["a", "n"] == 2 and stats.loc["a", "m"] == pytest.approx(0.85)
    assert stats.loc["a", "m.std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert math.isnan(stats.loc["b", "m.std"])


def test_spearman_and_importance():
    assert agg.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert agg.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(agg.spearman([1, 1, 1], [1, 2, 3]))
    rows = []
    for category, offset in (("a", 0.0), ("b", 0.3)):
        for depth in (1, 2, 3, 4):
            for width in (8, 16):
                rows.append({"status": "ok", "dataset": "d", "category": category, "method": "rcae",
                             "config.model.depth": depth, "config.model.width": width,
                             "val.i_auroc": 0.5 + offset + 0.1 * depth + 0.001 * (width == 16)})
    imp = agg.parameter_importance(pd.DataFrame(rows), "val.i_auroc").set_index("key")
    assert imp.loc["model.depth", "abs_spearman"] > 0.9  # the category offset is centred away
    assert imp.loc["model.depth", "abs_spearman"] > imp.loc["model.width", "abs_spearman"]
    assert imp.index[0] == "model.depth"


def test_missing_pairs_and_status_counts(fake):
    _, _, frame = fake
    missing = agg.missing_pairs(frame)
    assert ("convae data_fraction=1", "mvtec", "grid", "only stopped") in missing
    assert any(lb.startswith("rcae depth=4") and c == "carpet" and r == "only failed" for lb, _, c, r in missing)
    counts = agg.status_counts(frame)
    assert counts["failed"] == 1 and counts["stopped"] == 1


def test_selection_column_falls_back_to_test():
    frame = pd.DataFrame({"status": ["ok"], "val.i_auroc": [float("nan")], "test.i_auroc": [0.9]})
    col, note = agg.selection_column(frame, "val")
    assert col == "test.i_auroc" and "fell back" in note
    with pytest.raises(ValueError):
        agg.selection_column(frame, "train")


def test_unreadable_records_are_collected_not_raised(tmp_path):
    good = TrialRecord(config={}, config_hash="h", dataset="mvtec", category="bottle", method="rcae")
    write_record(good, tmp_path / "a" / "record_bottle.json")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "record_x.json").write_text(json.dumps({"not_a_field": 1}))
    loaded = agg.load_records(tmp_path)
    assert len(loaded) == 1
    assert len(loaded.unreadable) == 1 and "record_x.json" in str(loaded.unreadable[0][0])
    assert "not_a_field" in loaded.unreadable[0][1]


# ----------------------------------------------------------------------------------------------
# record-version-2 fields and selection fidelity


def _record(depth, category, seed, val, test, selection="val", metric="i_auroc", **extra):
    config = {"model": {"method": "rcae", "depth": depth}, "data": {"category": category}, "runtime": {"seed": seed}}
    metrics = {"val": {metric: val}, "test": {metric: test}} if val is not None else {"test": {metric: test}}
    return TrialRecord(config=config, config_hash=f"d{depth}s{seed}", dataset="mvtec", category=category, method="rcae",
                       metrics=metrics, seed=seed, selection=selection, **extra)


def _configurations(vals, tests):
    """One configuration per (val, test) pair, on two categories with two seeds whose mean is the pair."""
    return agg.records_frame([
        _record(depth, category, seed, v + sign * 0.005, t - sign * 0.005)
        for depth, (v, t) in enumerate(zip(vals, tests), start=1)
        for category in ("carpet", "grid")
        for seed, sign in ((0, 1), (1, -1))
    ])


def test_diagnostics_and_scorings_become_columns_and_old_records_lack_them():
    diag = {
        "test": {"recon": {"1": {"i_auroc": 0.7, "p_auroc": 0.8}}, "crd": {"all": {"i_auroc": 0.9, "p_auroc": 0.95}}}
    }
    scorings = {"auto|pixel": {"test": {"i_auroc": 0.9}}, "fused|pixel": {"test": {"aupro": 0.6}}}
    new = _record(1, "carpet", 0, 0.9, 0.8, diagnostics=diag, scorings=scorings, info={"scoring": "auto|pixel"})
    old = _record(1, "grid", 0, 0.9, 0.8)
    frame = agg.records_frame([new, old])
    assert frame.loc[0, "diag.test.recon.1.p_auroc"] == 0.8 and frame.loc[0, "diag.test.crd.all.i_auroc"] == 0.9
    assert frame.loc[0, "scoring.fused|pixel.test.aupro"] == 0.6 and frame.loc[0, "info.scoring"] == "auto|pixel"
    assert math.isnan(frame.loc[1, "diag.test.recon.1.p_auroc"]) and pd.isna(frame.loc[1, "info.scoring"])
    assert sorted(c[1:] for c in agg.diagnostic_columns(frame, "test")) == [
        ("test", "crd", "all", "i_auroc"), ("test", "crd", "all", "p_auroc"),
        ("test", "recon", "1", "i_auroc"), ("test", "recon", "1", "p_auroc")]
    assert sorted(c[1:] for c in agg.scoring_columns(frame)) == [
        ("auto|pixel", "test", "i_auroc"), ("fused|pixel", "test", "aupro")]
    assert sorted(["all", "10", "2"], key=agg.step_sort_key) == ["2", "10", "all"]
    # switching the extra recordings on or off is not a different configuration
    assert {"eval.diagnostics", "eval.scoring_variants"} <= agg.NON_CONFIG_KEYS


def test_fidelity_known_order_is_one_and_reversed_is_minus_one_with_warning():
    vals, tests = [0.80, 0.85, 0.90, 0.95], [0.70, 0.72, 0.81, 0.90]
    same = agg.selection_fidelity(_configurations(vals, tests))
    assert same["n_configurations"] == 4 and same["enough"]
    assert same["spearman"] == pytest.approx(1.0) and same["kendall"] == pytest.approx(1.0)
    assert same["saturation"] == 0.0
    assert agg.fidelity_lines(same) == [
        "Selection fidelity (val vs test I-AUROC, 4 configurations): Spearman 1.00, Kendall 1.00; "
        "validation saturation 0% (val I-AUROC >= 0.98)."]
    rev = agg.selection_fidelity(_configurations(vals, tests[::-1]))
    assert rev["spearman"] == pytest.approx(-1.0) and rev["kendall"] == pytest.approx(-1.0)
    assert "Warning: validation ranks configurations poorly against test (Spearman -1.00, Kendall -1.00 < 0.5); " \
        "the selected configuration may not be the best on test." in agg.fidelity_lines(rev)


def test_fidelity_matches_scipy_on_a_mixed_order():
    from scipy import stats

    vals, tests = [0.80, 0.85, 0.90, 0.95, 0.97], [0.75, 0.70, 0.90, 0.80, 0.85]
    result = agg.selection_fidelity(_configurations(vals, tests))
    assert result["spearman"] == pytest.approx(stats.spearmanr(vals, tests).statistic)  # 0.6
    assert result["kendall"] == pytest.approx(stats.kendalltau(vals, tests).statistic)  # 0.4 < 0.5: warned
    assert result["spearman"] == pytest.approx(0.6) and result["kendall"] == pytest.approx(0.4)
    assert any(
        line.startswith("Warning: validation ranks configurations poorly") for line in agg.fidelity_lines(result)
    )


def test_fidelity_saturation_share_is_exact():
    tests = [0.6, 0.7, 0.8, 0.9]
    half = agg.selection_fidelity(_configurations([0.50, 0.97, 0.98, 0.99], tests))
    assert half["saturation"] == 0.5  # 0.98 counts (>=), 0.97 does not
    assert not any("saturates" in line for line in agg.fidelity_lines(half))
    most = agg.selection_fidelity(_configurations([0.50, 0.981, 0.985, 0.99], tests))
    assert most["saturation"] == 0.75
    assert "Warning: validation saturates: 75% of configurations (3 of 4) reach val I-AUROC >= 0.98, where it " \
        "cannot tell them apart." in agg.fidelity_lines(most)


def test_fidelity_needs_three_configurations_and_skips_test_selected_records():
    two = agg.selection_fidelity(_configurations([0.8, 0.9], [0.7, 0.8]))
    assert not two["enough"] and math.isnan(two["spearman"]) and math.isnan(two["kendall"])
    assert agg.fidelity_lines(two)[0] == (
        "Selection fidelity (val vs test I-AUROC): not enough configurations (2; at least 3 needed).")
    records = [_record(d, "carpet", 0, 0.7 + 0.1 * d, 0.6 + 0.1 * d) for d in (1, 2, 3)]
    records += [_record(9, "carpet", 0, 0.99, 0.1, selection="test"), _record(8, "carpet", 0, None, 0.95)]
    result = agg.selection_fidelity(agg.records_frame(records))
    assert result["n_configurations"] == 3 and result["spearman"] == pytest.approx(1.0)
    assert result["skipped_test_selected"] == 1 and result["skipped_no_val"] == 1
    assert ("Selection fidelity (val vs test I-AUROC): skipped ok records: 1 selected on the test split, "
            "1 without a validation value.") in agg.fidelity_lines(result)
    summary = agg.fidelity_summary(agg.records_frame(records))
    assert len([s for s in summary if "not enough configurations" in s]) == 1  # p_auroc: no values at all


def test_fidelity_on_fake_runs(fake):
    _, _, frame = fake
    result = agg.selection_fidelity(frame, "i_auroc")
    ok = frame[(frame["status"] == "ok") & frame["val.i_auroc"].notna()]
    assert result["n_configurations"] == ok["label"].nunique()
    assert -1.0 <= result["spearman"] <= 1.0 and -1.0 <= result["kendall"] <= 1.0
