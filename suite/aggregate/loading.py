"""Reading record files: every file under the run folders is read through the record schema
(``suite.records.load_record``); a file that fails is kept with its reason, never dropped silently."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from suite.records import TrialRecord, find_records, load_record


@dataclass
class RecordSet:
    """Records read from run folders, with the files that could not be read (never dropped silently)
    and, per record of a newer version, what of it was ignored."""

    records: list[TrialRecord] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    ignored: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)


def load_records(*roots: str | Path) -> RecordSet:
    """Read every ``record*.json`` under ``roots``; files failing the schema go to ``unreadable``."""
    out = RecordSet()
    for path in find_records(*roots):
        try:
            loaded = load_record(path)
        except ValueError as err:
            out.unreadable.append((path, str(err)))
            continue
        out.records.append(loaded.record)
        out.paths.append(path)
        out.ignored.extend((path, what) for what in loaded.ignored)
    return out
