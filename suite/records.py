"""Trial records: the one artifact reports are built from.

One ``TrialRecord`` JSON per (trial, category). It carries the full config, its hash, metrics per
split, cost, per-stage wall times and the versions of the code and libraries that made it, so a
table can be rebuilt, merged across machines and diffed without retraining.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy

from suite import __version__
from suite.record_schema import MAX_RECORD_BYTES, RECORD_VERSION, RecordError, check_record, parse_record_bytes

__all__ = ["RECORD_VERSION", "RecordError", "TrialRecord", "LoadedRecord", "load_record", "read_record",
           "write_record", "find_records", "atomic_write_json"]

# RECORD_VERSION (suite.record_schema): 2: diagnostics and scorings fields; 3: ablation ids;
# 4: started/finished, device; 5: every value checked against the schema when written and read;
# 6: ``shifts`` (test metrics under eval.shifts) and the checked ``info.data_shift`` /
# ``info.score_brightness_spearman`` (suite.robustness).
RECORD_GLOB = "record*.json"
RECORD_NAME = "record.json"  # the record a run folder (one trial, one category) holds


@dataclass
class TrialRecord:
    config: dict[str, Any]  # Config.to_dict()
    config_hash: str
    dataset: str
    category: str
    method: str
    status: str = "ok"  # ok | failed | stopped
    error: str | None = None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> name -> value
    cost: dict[str, Any] = field(default_factory=dict)  # params, gflops, latency_ms, ...
    stage_times: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    # Where each trained stage's (and the evaluation's) time went: stage -> name -> finite number >= 0
    # (suite.throughput.StepBreakdown.as_dict); stages loaded from the stage cache have no entry.
    step_breakdown: dict[str, dict[str, float]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # periodic validation reports
    artifacts: dict[str, str] = field(default_factory=dict)  # name -> path relative to the record
    info: dict[str, Any] = field(default_factory=dict)  # method facts: stage cache hits, pretrained backbone
    # Per-depth signal (RcAE): split -> family -> step -> {"i_auroc", "p_auroc"}, with families
    # "recon" (|I - I_R^n|), "detail" (|I - I_D^n|) and "crd" (step "all": the CRD map).
    diagnostics: dict[str, dict[str, dict[str, dict[str, float]]]] = field(default_factory=dict)
    # The same trained stages scored under every scoring variant: variant -> split -> metrics.
    # ``metrics`` holds the configured variant (``info["scoring"]`` names it).
    scorings: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    # The same trained model on shifted copies of the test set (eval.shifts): shift -> metrics.
    shifts: dict[str, dict[str, float]] = field(default_factory=dict)
    # Set when an ablation space ran the trial: {"table": TABLE id, "row": ROWS id} (see
    # suite.spaces); the report's ablation tables group records by these ids.
    ablation: dict[str, str] = field(default_factory=dict)
    trial_id: str | None = None
    sweep: str | None = None
    seed: int = 0
    selection: str = "val"  # which split selected this configuration: val | test
    node: dict[str, Any] = field(default_factory=dict)  # hostname, ray node id (when under Ray)
    # The torch device the trial ran on: {"device": "cpu" | "cuda:0", "name": CUDA device name, "threads"}.
    device: dict[str, Any] = field(default_factory=dict)
    # Wall-clock (time.time()) start and end of the trial's work; None in records older than version 4
    # and in records filled in for a trial that died before writing its own.
    started: float | None = None
    finished: float | None = None
    versions: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    record_version: int = RECORD_VERSION

    @property
    def busy_s(self) -> float | None:
        """``finished - started`` in seconds, or None when either is missing."""
        if self.started is None or self.finished is None:
            return None
        return max(float(self.finished) - float(self.started), 0.0)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrialRecord":
        """The record of a mapping that passes ``check_record`` (else ``RecordError``); the fields a
        newer record version adds are dropped (``check_record`` names them)."""
        clean, _ = check_record(data)
        return cls(**clean)


def git_commit(cwd: str | Path | None = None) -> str | None:
    """Commit of the code that runs (with '-dirty' when the tree has changes), or None outside git."""
    here = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here, capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


_VERSIONS: dict[str, Any] | None = None


def code_versions() -> dict[str, Any]:
    """Versions of this package, python and the numeric libraries, plus the git commit."""
    global _VERSIONS
    if _VERSIONS is None:
        versions: dict[str, Any] = {
            "rcsuite": __version__,
            "git_commit": git_commit(),
            "python": platform.python_version(),
            "numpy": numpy.__version__,
            "platform": platform.platform(),
        }
        torch = sys.modules.get("torch")
        if torch is None:
            try:
                import torch  # noqa: F811
            except ImportError:
                torch = None
        if torch is not None:
            versions["torch"] = str(torch.__version__)  # plain str: checkpoints load with weights_only=True
        _VERSIONS = versions
    return dict(_VERSIONS)


def node_info() -> dict[str, Any]:
    return {"hostname": socket.gethostname(), "pid": os.getpid()}


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """Write JSON to ``path`` via a temp file and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=False, default=_json_default)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_record(record: TrialRecord, path: str | Path) -> Path:
    """Check ``record`` against the schema (a bad value fails here, where it is made) and write it."""
    data = record.to_dict()
    try:
        check_record(data, writing=True)
    except RecordError as err:
        raise RecordError(f"refusing to write record {path}: {err}") from err
    return atomic_write_json(path, data)


@dataclass
class LoadedRecord:
    record: TrialRecord
    ignored: list[str]  # what a newer record version holds that this code does not read


def load_record(path: str | Path) -> LoadedRecord:
    """Read and check one record file: size and nesting limits before parsing, then the schema.

    Any problem is a ``RecordError`` (a ``ValueError``) naming the file and the reason.
    """
    path = Path(path)
    try:
        data = parse_record_bytes(_read_limited(path))
        clean, ignored = check_record(data)
    except RecordError as err:
        raise RecordError(f"record {path}: {err}") from err
    return LoadedRecord(TrialRecord(**clean), ignored)


def read_record(path: str | Path) -> TrialRecord:
    """``load_record(path).record``."""
    return load_record(path).record


def _read_limited(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_RECORD_BYTES:
            raise RecordError(f"file is {size} bytes, over the {MAX_RECORD_BYTES}-byte limit")
        with path.open("rb") as fh:
            return fh.read(MAX_RECORD_BYTES + 1)
    except OSError as err:
        raise RecordError(f"cannot read: {err.strerror or err}") from err


def find_records(*roots: str | Path) -> list[Path]:
    """All record JSON files below the given folders (or the files themselves), sorted."""
    found: list[Path] = []
    for root in roots:
        root = Path(root)
        if root.is_file():
            found.append(root)
        elif root.is_dir():
            found.extend(p for p in root.rglob(RECORD_GLOB) if not p.name.startswith("."))
        else:
            raise FileNotFoundError(f"no such record file or folder: {root}")
    return sorted(set(found))
