"""Tune's checkpoint clean-up after ``--resume``: a checkpoint that is already gone is not an error.

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
"""

from __future__ import annotations

from typing import Any, Callable

from ray.train._internal import checkpoint_manager as _checkpoint_manager
from ray.train._internal.storage import _exists_at_fs_path


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


def tolerate_missing_checkpoints() -> bool:
    """Install the check (idempotent); returns whether it is in place."""
    current = getattr(_checkpoint_manager, "_delete_fs_path", None)
    if current is None:
        return False
    if not getattr(current, "skips_missing", False):
        _checkpoint_manager._delete_fs_path = _skip_missing(current)
    return True
