"""suite.reporting.summary: best per category, pooled ranking, selection fidelity, failures, missing, importance."""

import pytest

from suite import aggregate as agg
from suite.records import TrialRecord
from suite.reporting import summary as S


def test_summary_lists_failures_missing_and_importance(fake_frame):
    frame = fake_frame
    text, tables = S.summary_markdown(frame, select_on="val")
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


def test_selection_on_test_split_keeps_percentages_and_says_so(fake_frame):
    pooled, note = S.pooled_best(fake_frame, "test")
    assert "TEST" in note
    assert pooled["test.i_auroc"].between(0, 100).all()
    best, _ = S.best_per_category(fake_frame, "test")
    assert (best["selection"] == best["test.i_auroc"]).all()


def test_summary_has_selection_fidelity(fake_frame):
    text, tables = S.summary_markdown(fake_frame)
    assert "## Selection fidelity" in text
    numeric = tables["fidelity"].numeric.set_index("metric")
    expected = agg.selection_fidelity(fake_frame, "p_auroc")
    assert numeric.loc["p_auroc", "kendall"] == pytest.approx(expected["kendall"])
    for line in agg.fidelity_lines(expected):
        assert line in text


def test_summary_warns_when_validation_ranks_poorly_and_saturates():
    vals, tests = (0.5, 0.985, 0.99), (0.9, 0.8, 0.7)
    records = [
        TrialRecord(config={"model": {"method": "rcae", "depth": d}}, config_hash=f"h{d}", dataset="mvtec",
                    category="bottle", method="rcae", metrics={"val": {"i_auroc": v}, "test": {"i_auroc": t}})
        for d, v, t in zip((1, 2, 3), vals, tests)
    ]
    text, _ = S.summary_markdown(agg.records_frame(records))
    assert ("Warning: validation ranks configurations poorly against test (Spearman -1.00, Kendall -1.00 < 0.5); "
            "the selected configuration may not be the best on test.") in text
    assert "Warning: validation saturates: 67% of configurations (2 of 3) reach val I-AUROC >= 0.98" in text
    assert "| val P-AUROC vs test P-AUROC | 0 | not enough configurations |" in text


def test_summary_counts_distinct_seeds_not_records():
    # TPE proposed the same (configuration, seed) twice: two records, one seed
    records = [
        TrialRecord(config={"model": {"method": "rcae", "depth": 3}}, config_hash="h3", dataset="mvtec",
                    category="bottle", method="rcae", seed=seed, trial_id=trial,
                    metrics={"val": {"i_auroc": 0.8}, "test": {"i_auroc": 0.7}})
        for trial, seed in (("t1", 0), ("t2", 0), ("t3", 1))
    ]
    best, _ = S.best_per_category(agg.records_frame(records))
    assert best.iloc[0]["seeds"] == 2
    best, _ = S.best_per_category(agg.records_frame(records[:2]))
    assert best.iloc[0]["seeds"] == 1


def test_summary_states_the_sweeps_utilisation_and_random_trials(tmp_path, fake_frame):
    import json

    sweep = tmp_path / "noise-1"
    (sweep / "records").mkdir(parents=True)
    (sweep / "sweep.json").write_text(json.dumps({"runs": [{
        "utilisation": {"utilisation": 0.75, "busy_s": 15.0, "slots": 2, "wall_s": 10.0},
        "random_trials": {"pooled": {"random": 5, "asked": 6, "n_startup_trials": 10}}, "shards": "elastic"}]}))
    text, _ = S.summary_markdown(fake_frame, run_dirs=[sweep / "records"])
    assert "Sweep `noise-1`: utilisation 75% (15 busy slot-seconds / (2 slot(s) x 10 s wall); shards: elastic." in text
    assert "study pooled: 5 of 6 trial(s) sampled at random by TPE (n_startup_trials = 10)" in text
