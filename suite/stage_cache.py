"""A content-addressed cache of trained stage checkpoints shared by trials and sweeps.

Stage 1 (RcAE) is the expensive part and many trials share its settings, so a stage checkpoint is
stored under the hash of everything that may affect it: every config key except a short deny-list
of scoring and runtime keys, other methods' sections and later stages' settings. Two processes that need the same
missing stage serialise on a file lock: the second waits and then loads what the first wrote. Files
are written to a temp name and renamed, so a reader never sees half a checkpoint. Pure Python: works
on any shared filesystem with POSIX locks, no Ray.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

from suite.config import Config, config_hash, flatten
from suite.methods.registry import MethodSpec, method_sections

# Bumped when a change to shared training code makes earlier cached stages stale (2: per-stage
# random generators; 3: keys from the method registry with a per-method code fingerprint; 4: the
# key covers every config key but the deny-list below).
# Changes inside a method's own folder are caught by that fingerprint.
STAGE_FORMAT = 4

# Config keys (a section, or a dotted key) that never shape trained weights: scoring and
# evaluation, validation-set-only data settings, where and how a training runs. Everything else is
# in every stage's key unless the method says it does not read it (``MethodSpec.unused_keys``), so
# a forgotten field costs a retraining, never a stale hit.
NOT_WEIGHT_SHAPING: tuple[str, ...] = (
    "eval",  # scoring only, applied after training
    "model.method",  # in the key's name
    "data.val_anomaly_ratio", "data.val_anomalies", "data.val_difficulty", "data.val_shifts",  # the validation set only
    "runtime.device", "runtime.threads", "runtime.num_workers", "runtime.cache_mb", "runtime.preset",
    "runtime.prefetch", "runtime.channels_last", "runtime.activation_checkpointing", "runtime.infer_mpx",
    "train.checkpoint_every", "train.eval_every",  # when checkpoints / validation reports happen
)


def _covered(key: str, prefixes) -> bool:
    return any(key == p or key.startswith(f"{p}.") for p in prefixes)


def weight_shaping_keys(cfg: Config, stage: str, spec: MethodSpec) -> list[str]:
    """The flat config keys whose values are in ``stage``'s cache key for ``spec``'s method.

    Every key of the config except: ``NOT_WEIGHT_SHAPING``; the method's ``unused_keys`` and its
    own section's ``scoring_fields``; other methods' sections; the training settings of later
    stages and the method's keys that first shape a later stage (``stage_keys``).
    """
    if stage not in spec.stages:
        raise ValueError(f"unknown stage {stage!r} for method {spec.name!r} (its stages: {', '.join(spec.stages)})")
    later = spec.stages[spec.stages.index(stage) + 1:]
    others = [s for s in method_sections() if s != spec.config_section]
    scoring = [f"{spec.config_section}.{f}" for f in spec.scoring_fields]
    later_keys = [f"train.{s}" for s in later] + [k for k, first in spec.stage_keys.items() if first in later]
    denied = (*NOT_WEIGHT_SHAPING, *spec.unused_keys, *others, *scoring, *later_keys)
    return [k for k in flatten(cfg.to_dict()) if not _covered(k, denied)]


def stage_key_material(cfg: Config, stage: str, spec: MethodSpec) -> dict[str, Any]:
    """What determines the weights ``stage`` ends with: the method's name and code fingerprint (the
    sources of its folder) and the values of ``weight_shaping_keys``."""
    flat = flatten(cfg.to_dict())
    material: dict[str, Any] = {
        "format": STAGE_FORMAT,
        "method": spec.name,
        "code": spec.code_fingerprint(),
        "stage": stage,
        "config": {k: flat[k] for k in weight_shaping_keys(cfg, stage, spec)},
    }
    return json.loads(json.dumps(material, default=str))


def stage_key(cfg: Config, stage: str, spec: MethodSpec) -> str:
    """The cache key of ``stage`` of ``spec``'s method (``spec`` is the one ``cfg.model.method`` names)."""
    digest = config_hash(stage_key_material(cfg, stage, spec), 16)
    return f"{cfg.data.dataset}-{cfg.data.category}-{spec.name}-{stage}-{digest}"


class StageCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.pt"

    def has(self, key: str) -> bool:
        return self.path(key).exists()

    @contextlib.contextmanager
    def lock(self, key: str, timeout_s: float = 24 * 3600) -> Iterator[None]:
        """Exclusive lock for building ``key``; other builders of the same key wait here."""
        lock_path = self.root / f"{key}.lock"
        with open(lock_path, "a+") as fh:
            t0 = time.monotonic()
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() - t0 > timeout_s:
                        raise TimeoutError(f"stage cache lock {lock_path} held for over {timeout_s:.0f}s")
                    time.sleep(0.2)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def note(self, key: str, event: str) -> None:
        """Append an event (hit / build) to the cache log, used to count trainings."""
        with open(self.root / "events.jsonl", "a") as fh:
            fh.write(json.dumps({"key": key, "event": event, "time": time.time(), "pid": os.getpid()}) + "\n")

    def events(self) -> list[dict[str, Any]]:
        path = self.root / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
