"""Tune's checkpoints after ``--resume``: one that is already gone is neither deleted nor restored from.

Every report of a trial carries a checkpoint and ``CheckpointConfig(num_to_keep=2)`` deletes the
older ones. Tune's experiment snapshot is written every few seconds, so after a hard kill the
snapshot a ``--resume`` starts from can still list checkpoints that were deleted after it was taken.
Registering the next checkpoint then asks to delete one of those, and Ray's ``_delete_fs_path``
checks whether the path is a folder before its ``try``: ``FileNotFoundError("Path not found: ...")``
escapes, Tune logs "Error handling checkpoint" with a traceback and skips the rest of that
checkpoint's bookkeeping (the remaining deletions, the snapshot it would have forced); ray #27790
and #29099 describe the same drift. ``tolerate_missing_checkpoints`` makes the trials' checkpoint
managers (in the driver process) skip a path that no longer exists; everything else is deleted as
before. It touches a private Ray name, so it does nothing if that name moves.

The same drift breaks the restore itself: a trial whose newest listed checkpoint was deleted fails
with "Could not recover from checkpoint as it does not exist on storage anymore", retries the same
path and ends in ERROR, so its Optuna trial is lost (seen under load in the journal-resume test).
``restore_from_existing_checkpoints`` makes Tune restore such a trial from the newest checkpoint
that is still in its folder (written after the snapshot, so at least as new), or start it without
one when none is left: a trial resumes from its stage files and records either way.
"""

from __future__ import annotations

import posixpath
from typing import Any, Callable

from ray.train import Checkpoint
from ray.train._internal import checkpoint_manager as _checkpoint_manager
from ray.train._internal.session import _TrainingResult
from ray.train._internal.storage import _exists_at_fs_path, _list_at_fs_path
from ray.tune.execution.tune_controller import TuneController


def _skip_missing(delete: Callable[..., Any]) -> Callable[..., Any]:
    skipped: list[str] = []

    def delete_if_present(fs: Any, fs_path: str) -> None:
        if not _exists_at_fs_path(fs, fs_path):
            if not skipped:  # once per sweep: it says why a resumed sweep lists fewer checkpoints
                print(f"[sweep] Tune's restored state lists checkpoints deleted before the kill (skipped), "
                      f"e.g. {fs_path}", flush=True)
            skipped.append(fs_path)
            return
        delete(fs=fs, fs_path=fs_path)

    delete_if_present.skips_missing = True  # type: ignore[attr-defined]
    return delete_if_present


def _wrap_once(owner: Any, name: str, wrap: Callable[..., Any], marker: str) -> bool:
    """Replace ``owner.name`` by ``wrap(owner.name)`` unless already wrapped (the wrapper carries
    ``marker``); False when Ray no longer has that name."""
    current = getattr(owner, name, None)
    if current is None:
        return False
    if not getattr(current, marker, False):
        setattr(owner, name, wrap(current))
    return True


def tolerate_missing_checkpoints() -> bool:
    """Install the check (idempotent); returns whether it is in place."""
    return _wrap_once(_checkpoint_manager, "_delete_fs_path", _skip_missing, "skips_missing")


def _exists(result: _TrainingResult) -> bool:
    checkpoint = result.checkpoint
    return checkpoint is not None and _exists_at_fs_path(checkpoint.filesystem, checkpoint.path)


def existing_checkpoint_result(manager: Any) -> _TrainingResult | None:
    """Make a restored checkpoint manager list only checkpoints that exist; returns the one to restore.

    When the newest listed checkpoint is gone, the newest ``checkpoint_*`` folder beside it (one a
    later report wrote) takes its place; with none left the manager lists nothing.
    """
    latest = manager.latest_checkpoint_result
    if latest is None or _exists(latest):
        return latest
    fs, gone = latest.checkpoint.filesystem, latest.checkpoint.path
    kept = [r for r in manager._checkpoint_results if _exists(r)]
    parent = posixpath.dirname(gone.rstrip("/"))
    names = sorted(n for n in _list_at_fs_path(fs, parent) if n.startswith("checkpoint_"))
    replacement = None
    if names:
        replacement = _TrainingResult(checkpoint=Checkpoint(posixpath.join(parent, names[-1]), fs),
                                      metrics=latest.metrics)
        kept = [r for r in kept if r.checkpoint.path != replacement.checkpoint.path] + [replacement]
    print(f"[sweep] Tune's restored state names a deleted checkpoint ({gone}); "
          + (f"restoring from {replacement.checkpoint.path}" if replacement else "starting the trial without one"),
          flush=True)
    manager._checkpoint_results = kept
    manager._latest_checkpoint_result = replacement
    return replacement


def _restore_existing(schedule_restore: Callable[..., Any]) -> Callable[..., Any]:
    def schedule_restore_from_existing(self: Any, trial: Any) -> bool:
        existing_checkpoint_result(trial.run_metadata.checkpoint_manager)
        return schedule_restore(self, trial)

    schedule_restore_from_existing.restores_existing = True  # type: ignore[attr-defined]
    return schedule_restore_from_existing


def restore_from_existing_checkpoints() -> bool:
    """Install the check on Tune's trial restore (idempotent); returns whether it is in place."""
    return _wrap_once(TuneController, "_schedule_trial_restore", _restore_existing, "restores_existing")
