"""Matched progress of a sharded trial (suite/orchestration/progress.py): the mean over categories
at the same (stage, epoch), reported once, in order."""

from __future__ import annotations

import pytest

from suite.orchestration.progress import MatchedProgress, append_progress, read_progress


def test_progress_file_round_trips_and_skips_a_torn_line(tmp_path):
    append_progress(tmp_path, {"stage": "stage1", "epoch": 2, "loss": 0.3, "val_i_auroc": 0.6, "final": False})
    append_progress(tmp_path, {"stage": "stage1", "epoch": 4, "val_i_auroc": 0.7})
    append_progress(tmp_path, {"stage": "stage1", "epoch": 2, "val_i_auroc": 0.65})  # a retry re-validated epoch 2
    with open(tmp_path / "progress.jsonl", "a") as fh:
        fh.write('{"stage": "stage1", "ep')  # a writer killed mid-line
    points = read_progress(tmp_path)
    assert points == {("stage1", 2): {"val_i_auroc": 0.65}, ("stage1", 4): {"val_i_auroc": 0.7}}
    assert read_progress(tmp_path / "missing") == {}


def test_a_point_is_reported_only_when_every_category_reached_it():
    board = MatchedProgress(["a", "b"])
    board.update("a", {("stage1", 1): {"val_i_auroc": 0.6}, ("stage1", 2): {"val_i_auroc": 0.8}})
    assert board.ready_points() == []  # b has not validated yet: nothing to compare
    board.update("b", {("stage1", 1): {"val_i_auroc": 0.4}})
    ready = board.ready_points()
    assert ready == [(("stage1", 1), {"val_i_auroc": pytest.approx(0.5)})]
    assert board.ready_points() == []  # reported once
    board.update("b", {("stage1", 1): {"val_i_auroc": 0.4}, ("stage1", 2): {"val_i_auroc": 1.0}})
    assert board.ready_points() == [(("stage1", 2), {"val_i_auroc": pytest.approx(0.9)})]


def test_a_finished_category_contributes_its_final_metrics_to_points_it_never_reported():
    # b's stage 1 came from the stage cache: no epochs, no progress lines, only its final metrics.
    board = MatchedProgress(["a", "b"])
    board.update("a", {("stage1", 1): {"val_i_auroc": 0.6}})
    assert board.ready_points() == []
    board.finish("b", {"val_i_auroc": 1.0})
    assert board.ready_points() == [(("stage1", 1), {"val_i_auroc": pytest.approx(0.8)})]


def test_points_come_in_stage_then_epoch_order_and_a_retry_skips_what_was_reported():
    pts = {("stage1", 2): {"val_i_auroc": 0.2}, ("stage1", 10): {"val_i_auroc": 0.3},
           ("stage2", 1): {"val_i_auroc": 0.4}}
    board = MatchedProgress(["a"])
    board.update("a", pts)
    assert [p for p, _ in board.ready_points()] == [("stage1", 2), ("stage1", 10), ("stage2", 1)]
    retried = MatchedProgress(["a"], reported=("stage1", 10))
    retried.update("a", pts)
    assert [p for p, _ in retried.ready_points()] == [("stage2", 1)]


def test_a_category_that_skipped_a_point_uses_its_last_earlier_value():
    board = MatchedProgress(["a", "b"])
    board.update("a", {("stage1", 1): {"val_i_auroc": 0.2}, ("stage1", 2): {"val_i_auroc": 0.4}})
    board.update("b", {("stage1", 1): {"val_i_auroc": 0.6}, ("stage1", 3): {"val_i_auroc": 0.8}})
    got = dict(board.ready_points())
    assert got[("stage1", 2)]["val_i_auroc"] == pytest.approx((0.4 + 0.6) / 2)
    assert ("stage1", 3) not in got  # a has not reached epoch 3
