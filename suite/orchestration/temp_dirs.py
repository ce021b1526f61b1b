"""The suite's own ``rcs-*`` temp folders, and the removal of those a killed process left behind.

A local Ray instance's short temp folder (``env.short_temp_dir``), a trial's checkpoint staging
folder and a DDP rank's scratch folder are removed by whoever made them, unless that process was
killed. Each is made by ``owned_temp_dir``, which writes an owner file (PID, start time, user) into
it; ``remove_stale_temp_dirs`` (run when a sweep starts or resumes and when a trial starts on a
node) removes a folder only when all of these hold: its name starts with ``rcs-``, it belongs to
this user, it holds an owner file written on this machine, its owner process is gone (the same PID
with another start time is another process), and no running process names the folder on its
command line (the Ray nodes of a killed driver may outlive it). A folder without an owner file
(another tool's, or a test's) is never touched. No Ray here.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from suite.orchestration.procs import is_running, processes_mentioning, start_time

PREFIX = "rcs-"
OWNER_NAME = ".rcsuite-owner.json"


def temp_parents() -> list[Path]:
    """Where the suite makes temp folders: /tmp (short paths, for Ray's sockets) and Python's temp dir."""
    parents = [Path("/tmp")] if os.path.isdir("/tmp") else []
    default = Path(tempfile.gettempdir())
    return parents + ([default] if default not in parents else [])


def owned_temp_dir(prefix: str = PREFIX, parent: str | Path | None = None) -> str:
    """``tempfile.mkdtemp`` with an owner file naming this process (``prefix`` must start with ``rcs-``)."""
    if not prefix.startswith(PREFIX):
        raise ValueError(f"temp folder prefix {prefix!r} must start with {PREFIX!r}")
    folder = tempfile.mkdtemp(prefix=prefix, dir=None if parent is None else str(parent))
    owner = {"pid": os.getpid(), "start": start_time(os.getpid()), "uid": os.getuid(), "host": socket.gethostname(),
             "created": time.time()}
    (Path(folder) / OWNER_NAME).write_text(json.dumps(owner))
    return folder


def is_stale(folder: Path) -> bool:
    """Whether ``folder`` is an ``rcs-*`` folder of this user whose owner process is gone and that no
    running process names (see the module docstring); False whenever in doubt."""
    try:
        if not folder.name.startswith(PREFIX) or folder.is_symlink() or not folder.is_dir():
            return False
        if folder.stat().st_uid != os.getuid():
            return False
        owner = json.loads((folder / OWNER_NAME).read_text())
        pid, start = int(owner["pid"]), owner.get("start")
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if owner.get("host", socket.gethostname()) != socket.gethostname():
        return False  # a temp folder shared between machines: this one cannot see the owner's processes
    if is_running(pid, None if start is None else int(start)):
        return False
    return not processes_mentioning(str(folder))


def remove_stale_temp_dirs(parents: list[Path] | None = None, log=print) -> list[str]:
    """Remove the stale ``rcs-*`` folders under ``parents`` (default ``temp_parents()``); returns them."""
    removed = []
    for parent in parents if parents is not None else temp_parents():
        try:
            candidates = sorted(p for p in parent.iterdir() if p.name.startswith(PREFIX))
        except OSError:
            continue
        for folder in candidates:
            if is_stale(folder):
                shutil.rmtree(folder, ignore_errors=True)
                if not folder.exists():
                    removed.append(str(folder))
    if removed:
        log(f"[cleanup] removed {len(removed)} temp folder(s) left by killed processes: {', '.join(removed)}")
    return removed
