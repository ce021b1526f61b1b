"""Timings files, and where a plan's per-epoch times come from.

A timings file (``plan --calibrate --save-timings FILE`` writes one; ``plan --timings FILE`` reads it)
holds the measured timing of every (point, category) a plan used, keyed by ``timings.timing_key`` (the
configuration without category, seed, preset name and dataset root), with the device it was measured
on. So a laptop plans a GPU cluster from a calibration made on one of its GPUs, and gets the same
numbers: the plan is a pure function of the timings (``tests/unit/test_planning.py`` checks it)::

    {"format": "rcsuite-timings", "version": 1, "created": "...", "source": "...", "note": "...",
     "device": {"type": "cuda", "name": "NVIDIA H200", "memory_mb": 143771},
     "entries": [{"key": "<timing_key>", "category": "bottle", "point": 0, "label": "...",
                  "per_epoch_s": {"stage1": 18.2, ...}, "pre_s": 0.0, "post_s": 19.6, "val_s": 0.0,
                  "peak_gpu_mb": 81920.0, "source": "..."}]}

``TimingProvider`` answers ``timing_for(cfg, category, point)`` for ``sweep_points``: timings files
first, then earlier records, then one calibration of all missing points together
(``suite.planning.calibration.calibrate_many``, prepared by ``prepare``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from suite.errors import InputError
from suite.planning import calibration
from suite.planning.simulate import STAGES, Timing
from suite.planning.timings import RecordTimings, timing_key

FORMAT = "rcsuite-timings"
VERSION = 1
MAX_BYTES = 4 << 20


class TimingsFile:
    """A read timings file: ``lookup(config_dict, category)`` and the ``device`` it was measured on."""

    def __init__(self, path: str | Path, free_keys: Iterable[str] = ()):
        self.path = Path(path)
        self.free_keys = tuple(free_keys)
        doc = _read(self.path)
        self.device: dict[str, Any] = dict(doc.get("device") or {})
        self.source = str(doc.get("source") or self.path.name)
        self.by_key: dict[str, dict[str, Timing]] = {}
        for index, entry in enumerate(doc["entries"]):
            timing = _entry_timing(entry, f"{self.path}: entries[{index}]")
            self.by_key.setdefault(str(entry["key"]), {})[str(entry["category"])] = timing

    def lookup(self, config: dict[str, Any], category: str) -> Timing | None:
        found = self.by_key.get(timing_key(config, self.free_keys))
        if not found:
            return None
        if category in found:
            return found[category]
        other = sorted(found)[0]
        t = found[other]
        return Timing(dict(t.per_epoch_s), t.pre_s, t.post_s, t.val_s, f"{t.source}, of {other}", t.peak_gpu_mb)


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise InputError(f"--timings {path}: cannot read it ({err.strerror or err})") from err
    if len(raw) > MAX_BYTES:
        raise InputError(f"--timings {path}: {len(raw)} bytes, more than a timings file's {MAX_BYTES}")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise InputError(f"--timings {path}: not JSON ({err})") from err
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("entries"), list):
        raise InputError(f"--timings {path}: not a timings file (format {FORMAT!r} with a list of entries; "
                         "`plan --calibrate --save-timings FILE` writes one)")
    if doc.get("version") != VERSION:
        raise InputError(f"--timings {path}: version {doc.get('version')!r}, this suite reads version {VERSION}")
    return doc


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InputError(f"{where}: {value!r} is not a finite number >= 0")
    return float(value)


def _entry_timing(entry: Any, where: str) -> Timing:
    if not (isinstance(entry, dict) and isinstance(entry.get("key"), str) and isinstance(entry.get("category"), str)):
        raise InputError(f"{where}: an entry needs a string key and category")
    per_epoch = entry.get("per_epoch_s")
    if not isinstance(per_epoch, dict) or not per_epoch or set(per_epoch) - set(STAGES):
        raise InputError(f"{where}: per_epoch_s must map some of {', '.join(STAGES)} to seconds")
    peak = entry.get("peak_gpu_mb")
    return Timing({s: _number(v, f"{where}.per_epoch_s.{s}") for s, v in per_epoch.items()},
                  _number(entry.get("pre_s", 0.0), f"{where}.pre_s"),
                  _number(entry.get("post_s", 0.0), f"{where}.post_s"),
                  _number(entry.get("val_s", 0.0), f"{where}.val_s"), str(entry.get("source") or "timings file"),
                  None if peak is None else _number(peak, f"{where}.peak_gpu_mb"))


def timings_document(entries: Sequence[dict[str, Any]], *, device: dict[str, Any] | None = None,
                     source: str = "", note: str = "") -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": source, "note": note, "device": dict(device or {}), "entries": list(entries)}


def timing_entry(config: dict[str, Any], category: str, timing: Timing, *, free_keys: Iterable[str] = (),
                 point: int = 0, label: str | None = None) -> dict[str, Any]:
    return {"key": timing_key(config, free_keys), "category": category, "point": point, "label": label,
            "per_epoch_s": dict(timing.per_epoch_s), "pre_s": timing.pre_s, "post_s": timing.post_s,
            "val_s": timing.val_s, "peak_gpu_mb": timing.peak_gpu_mb, "source": timing.source}


def write_timings(path: str | Path, doc: dict[str, Any]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(out)
    return out


class TimingProvider:
    """``timing_for(cfg, category, point)``: timings files, then records of the same configuration
    (``RecordTimings``), then the calibration ``prepare`` made (one run for every missing point, on
    the first category asked; the point's other categories reuse it). ``force_calibration`` skips
    files and records; without ``calibrate_missing`` a missing point is an error."""

    def __init__(self, record_roots: Iterable[str | Path] = (), *, free_keys: Iterable[str] = (),
                 files: Iterable[str | Path] = (), calibrate_missing: bool = True, force_calibration: bool = False,
                 max_batches: int = 6, log: Callable[[str], None] = lambda msg: None):
        self.free_keys = tuple(free_keys)
        self.files = [] if force_calibration else [TimingsFile(f, self.free_keys) for f in files]
        self.records = None if force_calibration else RecordTimings(record_roots, self.free_keys)
        self.calibrate_missing, self.max_batches, self.log = calibrate_missing, max_batches, log
        self.calibrated: dict[int, Timing] = {}
        self.calibration_info: dict[str, Any] = {}
        self.used: list[tuple[Any, str, int, Timing]] = []  # (cfg, category, point, timing) as answered

    def known(self, cfg: Any, category: str) -> Timing | None:
        config = cfg.to_dict()
        for tf in self.files:
            found = tf.lookup(config, category)
            if found is not None:
                return found
        return self.records.lookup(config, category) if self.records is not None else None

    @property
    def device(self) -> dict[str, Any]:
        """The device the timings were measured on: the calibration's, else the first file's."""
        if self.calibration_info.get("device"):
            return self.calibration_info["device"]
        return next((tf.device for tf in self.files if tf.device), {})

    def prepare(self, requests: Sequence[tuple[int, str, Any]]) -> None:
        """Calibrate, in one run, every ``(point, category, cfg)`` no file or record answers (one per point)."""
        missing: dict[int, tuple[str, Any]] = {}
        for point, category, cfg in requests:
            if point not in missing and point not in self.calibrated and self.known(cfg, category) is None:
                missing[point] = (category, cfg)
        if not missing or not self.calibrate_missing:
            return
        t0 = time.perf_counter()
        timings, info = calibration.calibrate_many([cfg for _, cfg in missing.values()], max_batches=self.max_batches)
        self.calibration_info = info
        for (point, (category, _)), timing, detail in zip(missing.items(), timings, info.get("points", [])):
            reused = detail.get("reused_stages") or []
            timing.source = f"calibration ({category}" + (f"; {', '.join(reused)} shared" if reused else "") + ")"
            self.calibrated[point] = timing
        self.log(f"[plan] calibrated {len(missing)} point(s), {info.get('distinct_stages')} distinct stage(s), "
                 f"in one run of {time.perf_counter() - t0:.1f}s")

    def __call__(self, cfg: Any, category: str, point: int) -> Timing:
        found = self.known(cfg, category)
        if found is None and point not in self.calibrated:
            if not self.calibrate_missing:
                where = ", ".join(str(tf.path) for tf in self.files) or "the records"
                raise InputError(f"no timing of point {point} ({category}) in {where} and calibration is off")
            self.prepare([(point, category, cfg)])
        timing = found if found is not None else self.calibrated[point]
        self.used.append((cfg, category, point, timing))
        return timing

    def document(self, source: str = "", note: str = "") -> dict[str, Any]:
        """The timings answered so far as a timings file (``--save-timings``)."""
        entries = [timing_entry(cfg.to_dict(), category, timing, free_keys=self.free_keys, point=point)
                   for cfg, category, point, timing in self.used]
        return timings_document(entries, device=self.device, source=source, note=note)


def timing_provider(record_roots: Iterable[str | Path] = (), **kw: Any) -> TimingProvider:
    """A ``TimingProvider`` (kept as a function: callers before timings files used it so)."""
    return TimingProvider(record_roots, **kw)
