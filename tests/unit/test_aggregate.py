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
