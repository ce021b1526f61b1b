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
