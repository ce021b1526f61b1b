"""What a killed sweep leaves behind, handled without a sweep: stale ``rcs-*`` temp folders are
removed (only provably dead ones), and Tune's restored checkpoint bookkeeping tolerates checkpoints
deleted after its snapshot (the "Path not found" error on ``--resume``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray")

from suite.orchestration import temp_dirs  # noqa: E402
from suite.orchestration.procs import start_time  # noqa: E402
from suite.orchestration.temp_dirs import OWNER_NAME, owned_temp_dir, remove_stale_temp_dirs  # noqa: E402


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _owned_by(parent, name: str, pid: int, start) -> os.PathLike:
    folder = parent / name
    folder.mkdir()
    (folder / OWNER_NAME).write_text(json.dumps({"pid": pid, "start": start, "uid": os.getuid()}))
    (folder / "session_x").mkdir()
    return folder


def test_only_folders_of_dead_owners_are_removed(tmp_path):
    dead = _owned_by(tmp_path, "rcs-dead", _dead_pid(), None)
    # the same PID as this live process but another start time: a reused PID, so the owner is gone
    reused = _owned_by(tmp_path, "rcs-reused", os.getpid(), (start_time(os.getpid()) or 0) + 12345)
    alive = _owned_by(tmp_path, "rcs-alive", os.getpid(), start_time(os.getpid()))
    unowned = tmp_path / "rcs-unowned"  # a test's or another tool's folder: never touched
    unowned.mkdir()
    other_prefix = _owned_by(tmp_path, "ray-dead", _dead_pid(), None)
    elsewhere = _owned_by(tmp_path, "rcs-elsewhere", _dead_pid(), None)  # made on another machine
    owner = json.loads((elsewhere / OWNER_NAME).read_text())
    (elsewhere / OWNER_NAME).write_text(json.dumps({**owner, "host": "another-node"}))
    lines = []
    removed = remove_stale_temp_dirs([tmp_path], log=lines.append)
    assert sorted(removed) == sorted([str(dead), str(reused)])
    assert not dead.exists() and not reused.exists()
    assert alive.exists() and unowned.exists() and other_prefix.exists() and elsewhere.exists()
    assert len(lines) == 1 and "2 temp folder(s)" in lines[0]
    assert remove_stale_temp_dirs([tmp_path], log=lines.append) == [] and len(lines) == 1


def test_a_folder_a_running_process_names_is_kept(tmp_path):
    """The Ray nodes of a killed driver may outlive it: their command line names the folder."""
    folder = _owned_by(tmp_path, "rcs-nodes", _dead_pid(), None)
    holder = subprocess.Popen([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)",
                               str(folder / "session_x")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "up"  # running its own command line, not mid-exec
        assert remove_stale_temp_dirs([tmp_path], log=lambda m: None) == []
        assert folder.exists()
    finally:
        holder.kill()
        holder.wait()
    assert remove_stale_temp_dirs([tmp_path], log=lambda m: None) == [str(folder)]


def test_a_killed_owner_leaves_a_folder_the_next_start_removes(tmp_path):
    code = ("import os, signal; from suite.orchestration.temp_dirs import owned_temp_dir; "
            f"print(owned_temp_dir('rcs-ckpt-', {str(tmp_path)!r}), flush=True); os.kill(os.getpid(), signal.SIGKILL)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    folder = proc.stdout.strip()
    assert proc.returncode == -9 and os.path.isdir(folder)  # what a SIGKILL leaves behind
    mine = owned_temp_dir("rcs-", tmp_path)  # this live process's own folder stays
    assert remove_stale_temp_dirs([tmp_path], log=lambda m: None) == [folder]
    assert os.path.isdir(mine) and not os.path.exists(folder)


def test_owned_temp_dir_needs_the_suite_prefix(tmp_path):
    with pytest.raises(ValueError):
        owned_temp_dir("tmp-", tmp_path)
    assert temp_dirs.PREFIX == "rcs-"


def test_a_restored_checkpoint_list_with_deleted_entries_does_not_raise(tmp_path):
    """num_to_keep deletes checkpoints Tune's snapshot still lists (they were deleted after it was
    taken): without the fix Ray raises FileNotFoundError("Path not found") before deleting the rest."""
    from ray.train import Checkpoint, CheckpointConfig
    from ray.train._internal import checkpoint_manager as cm
    from ray.train._internal.session import _TrainingResult

    from suite.orchestration.tune_fixes import tolerate_missing_checkpoints

    def result(i: int, exists: bool = True) -> _TrainingResult:
        path = tmp_path / f"checkpoint_{i:06d}"
        if exists:
            path.mkdir(exist_ok=True)
        return _TrainingResult(checkpoint=Checkpoint.from_directory(str(path)), metrics={"i": i})

    def restored_manager() -> cm._CheckpointManager:
        # as restored from an old snapshot: it still lists checkpoint 0, which is gone
        manager = cm._CheckpointManager(CheckpointConfig(num_to_keep=1))
        manager._checkpoint_results = [result(0, exists=False), result(1)]
        manager._latest_checkpoint_result = manager._checkpoint_results[-1]
        return manager

    from ray.train._internal.storage import _delete_fs_path as ray_delete

    original = cm._delete_fs_path
    cm._delete_fs_path = ray_delete  # Ray's own, even when an earlier sweep in this process installed the fix
    try:
        with pytest.raises(FileNotFoundError, match="Path not found"):
            restored_manager().register_checkpoint(result(2))  # Ray as it is: the bug this fixes
        assert tolerate_missing_checkpoints() and tolerate_missing_checkpoints()  # idempotent
        manager = restored_manager()
        manager.register_checkpoint(result(3))
        assert not (tmp_path / "checkpoint_000001").exists()  # the rest is still deleted
        assert (tmp_path / "checkpoint_000003").exists()
        assert [r.checkpoint.path for r in manager._checkpoint_results] == [str(tmp_path / "checkpoint_000003")]
    finally:
        cm._delete_fs_path = original


def test_a_restored_trial_whose_listed_checkpoint_is_gone_restores_from_one_that_exists(tmp_path, capsys):
    from ray.train import Checkpoint, CheckpointConfig
    from ray.train._internal import checkpoint_manager as cm
    from ray.train._internal.session import _TrainingResult

    from suite.orchestration.tune_fixes import existing_checkpoint_result

    def result(folder: Path, i: int, exists: bool) -> _TrainingResult:
        path = folder / f"checkpoint_{i:06d}"
        if exists:
            path.mkdir(parents=True, exist_ok=True)
        return _TrainingResult(checkpoint=Checkpoint.from_directory(str(path)), metrics={"i": i})

    def restored_manager(folder: Path, listed: list[tuple[int, bool]]) -> cm._CheckpointManager:
        manager = cm._CheckpointManager(CheckpointConfig(num_to_keep=2))
        manager._checkpoint_results = [result(folder, i, exists) for i, exists in listed]
        manager._latest_checkpoint_result = manager._checkpoint_results[-1]
        return manager

    # the snapshot lists 0 and 1; both were deleted after it, when 2 and 3 were written
    later = tmp_path / "later"
    result(later, 2, True), result(later, 3, True)
    manager = restored_manager(later, [(0, False), (1, False)])
    chosen = existing_checkpoint_result(manager)
    assert chosen.checkpoint.path == str(later / "checkpoint_000003") and chosen.metrics == {"i": 1}
    assert manager.latest_checkpoint_result is chosen and manager._checkpoint_results == [chosen]
    assert "restoring from" in capsys.readouterr().out

    # nothing left: the trial starts without a checkpoint (Tune then runs it from its records)
    manager = restored_manager(tmp_path / "none", [(0, False), (1, False)])
    assert existing_checkpoint_result(manager) is None
    assert manager.latest_checkpoint_result is None and manager._checkpoint_results == []

    # an existing checkpoint is left alone
    manager = restored_manager(tmp_path / "fine", [(0, True), (1, True)])
    listed = list(manager._checkpoint_results)
    assert existing_checkpoint_result(manager) is listed[-1] and manager._checkpoint_results == listed


def test_tunes_trial_restore_goes_through_the_check():
    from ray.tune.execution.tune_controller import TuneController

    from suite.orchestration.tune_fixes import restore_from_existing_checkpoints

    assert restore_from_existing_checkpoints() and restore_from_existing_checkpoints()  # idempotent
    assert TuneController._schedule_trial_restore.restores_existing
