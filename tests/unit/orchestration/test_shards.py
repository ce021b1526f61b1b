"""Category shards (suite/orchestration/shards.py): one shard at a time owns a category folder."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

from suite.orchestration.shards import ATTEMPT_NAME, _claim, shard_bundle  # noqa: E402

REPO = Path(__file__).resolve().parents[3]


def test_a_shard_exits_once_a_newer_attempt_claims_its_folder(tmp_path):
    token = _claim(tmp_path)
    assert (tmp_path / ATTEMPT_NAME).read_text() == token
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from suite.orchestration.shards import _exit_when_superseded; "
         f"_exit_when_superseded(Path({str(tmp_path)!r}), {token!r}); print('watching', flush=True); time.sleep(60)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout.readline().strip() == "watching"
        time.sleep(1.0)
        assert child.poll() is None  # its own token: it keeps going
        newer = _claim(tmp_path)
        assert newer != token
        assert child.wait(timeout=20) == 1  # superseded: it left within a poll or two
    finally:
        child.kill()


def test_shard_bundle_asks_for_cpus_and_a_gpu_only_with_gpu():
    assert shard_bundle(2, use_gpu=False) == {"CPU": 2.0}
    assert shard_bundle(1, use_gpu=True) == {"CPU": 1.0, "GPU": 1.0}
    assert shard_bundle(1, 0.25) == {"CPU": 1.0, "GPU": 0.25}  # --gpus-per-trial 0.25: four shards per GPU


@pytest.mark.slow  # measured over 5 s on a loaded 2-core machine
def test_a_cancelled_shard_leaves_a_stopped_record_not_a_failed_one(tmp_path, monkeypatch):
    """ray.cancel(force=True) raises SystemExit in the shard; run_training has then written "failed"."""
    from types import SimpleNamespace

    import suite.pipeline
    from suite.config import build_config
    from suite.orchestration.shards import _train_category
    from suite.records import TrialRecord, read_record, write_record

    cfg = build_config(preset="tiny")

    def cancelled_run_training(config, out, *args, **kwargs):
        write_record(TrialRecord(config=config.to_dict(), config_hash=config.hash(), dataset="synthetic",
                                 category=config.data.category, method="rcae", status="failed",
                                 error="SystemExit: 1"), out / "record.json")
        raise SystemExit(1)

    monkeypatch.setattr(suite.pipeline, "run_training", cancelled_run_training)
    plan = SimpleNamespace(tracking=None, stage_cache=None, sweep_name="s", select_on="val")
    with pytest.raises(SystemExit):
        _train_category(plan, cfg, str(tmp_path), "t1", {})
    record = read_record(tmp_path / "record.json")
    assert record.status == "stopped" and "cancelled by its trial" in record.error and record.selection == "val"


def test_a_shard_trains_through_the_sweeps_stage_cache(tmp_path, monkeypatch):
    """The quick-suite guard for the sweep test that counts stage builds: a shard hands the sweep's
    stage cache to run_training (without it every trial retrains stage 1)."""
    from types import SimpleNamespace

    import suite.pipeline
    from suite.config import build_config
    from suite.orchestration.shards import _train_category

    seen = {}

    def fake_run_training(config, out, *args, **kwargs):
        seen.update(kwargs)
        raise SystemExit(1)  # stop right there: only the call's arguments matter

    monkeypatch.setattr(suite.pipeline, "run_training", fake_run_training)
    plan = SimpleNamespace(tracking=None, stage_cache=str(tmp_path / "cache"), sweep_name="s", select_on="val")
    with pytest.raises(SystemExit):
        _train_category(plan, build_config(preset="tiny"), str(tmp_path / "cat"), "t1", {})
    assert seen["stage_cache"] == plan.stage_cache and seen["trial_id"] == "t1" and seen["sweep"] == "s"


def test_elastic_shards_leave_the_trials_placement_group_and_reserved_ones_stay_in_it(monkeypatch):
    """The quick-suite guard for "shards pinned to the coordinator's node": elastic shards are scheduled
    outside the trial's placement group (anywhere on the cluster); reserved shards inside it."""
    from types import SimpleNamespace

    import ray
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    from suite.orchestration import shards

    trials_group = object()
    monkeypatch.setattr(ray.util, "get_current_placement_group", lambda: trials_group)
    elastic = shards._strategy(SimpleNamespace(shards="elastic"))
    reserve = shards._strategy(SimpleNamespace(shards="reserve"))
    assert isinstance(elastic, PlacementGroupSchedulingStrategy) and elastic.placement_group is None
    assert isinstance(reserve, PlacementGroupSchedulingStrategy) and reserve.placement_group is trials_group
