"""Processes read from ``/proc`` (Linux; psutil is not a dependency): a PID together with its start
time names one process for good, so a PID the kernel reused is never taken for the one we meant.
No Ray here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    start: int  # clock ticks since boot: with the PID it names one process for good
    state: str


def read_proc(pid: int) -> Proc | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return Proc(pid, int(fields[1]), int(fields[2]), int(fields[19]), fields[0])


def all_procs() -> list[Proc]:
    procs = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (p := read_proc(int(entry))) is not None:
            procs.append(p)
    return procs


def is_running(pid: int, start: int | None) -> bool:
    """True while the process ``pid`` that started at ``start`` exists and is not a zombie
    (``start=None``: any process with that PID, where /proc cannot tell start times)."""
    p = read_proc(pid)
    if p is None:
        if start is None and not Path("/proc").is_dir():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True
        return False
    return (start is None or p.start == start) and p.state not in ("Z", "X")


def start_time(pid: int) -> int | None:
    p = read_proc(pid)
    return p.start if p is not None else None


def processes_mentioning(text: str) -> list[int]:
    """PIDs of running processes whose command line contains ``text`` (e.g. a Ray node started with
    ``--temp-dir`` or a session folder under a temp folder); [] where /proc is missing."""
    found = []
    if not Path("/proc").is_dir():
        return found
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and is_running(int(entry), None):
            found.append(int(entry))
    return found
