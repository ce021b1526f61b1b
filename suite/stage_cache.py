"""A content-addressed cache of trained stage checkpoints shared by trials and sweeps.

Stage 1 (RcAE) is the expensive part and many trials share its settings, so a stage checkpoint is
stored under the hash of everything that affects it (data, category, model, augmentation, the stage's
training settings, seed and the settings of the stages before it). Two processes that need the same
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

from suite.config import Config, config_hash


# Bumped when a change to shared training code makes earlier cached stages stale (2: per-stage
# random generators; 3: keys from the method registry with a per-method code fingerprint).
# Changes inside a method's own folder are caught by that fingerprint.
STAGE_FORMAT = 3

# data keys that only shape the validation set, never the weights
VALIDATION_ONLY_DATA = ("val_anomaly_ratio", "val_anomalies", "val_difficulty")


def stage_key_material(cfg: Config, stage: str) -> dict[str, Any]:
    """The config subset that determines the weights a stage ends with.

    Generic part: the data, the seed, the time budget, the lr schedule and the training settings of
    this stage and every stage before it; the method's name and code fingerprint (the sources of
    its folder); its own config section minus the fields that only change scoring; the shared
    sections it names in ``cache_sections``; and its ``cache_material`` for the stage.
    """
    from suite.methods.registry import method_spec

    spec = method_spec(cfg.model.method)
    if stage not in spec.stages:
        raise ValueError(f"unknown stage {stage!r} for method {spec.name!r} (its stages: {', '.join(spec.stages)})")
    data = {k: v for k, v in cfg.data.__dict__.items() if k not in VALIDATION_ONLY_DATA}
    upto = spec.stages[: spec.stages.index(stage) + 1]
    material: dict[str, Any] = {
        "format": STAGE_FORMAT,
        "method": spec.name,
        "code": spec.code_fingerprint(),
        "stage": stage,
        "data": data,
        "train": {s: getattr(cfg.train, s).__dict__ for s in upto},
        "lr_schedule": cfg.train.lr_schedule,
        "seed": cfg.runtime.seed,
        "max_time_s": cfg.train.max_time_s,
    }
    for section in spec.cache_sections:
        material[section] = getattr(cfg, section).__dict__
    if spec.config_section:
        own = getattr(cfg, spec.config_section).__dict__
        material[spec.config_section] = {k: v for k, v in own.items() if k not in spec.scoring_fields}
    if spec.cache_material is not None:
        material["method_material"] = spec.cache_material(cfg, stage)
    return json.loads(json.dumps(material, default=str))


def stage_key(cfg: Config, stage: str) -> str:
    return f"{cfg.data.dataset}-{cfg.data.category}-{cfg.model.method}-{stage}-{config_hash(stage_key_material(cfg, stage), 16)}"


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
