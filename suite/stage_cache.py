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


# method -> (its config section, the section's fields that only affect scoring, not the weights)
METHOD_SECTIONS: dict[str, tuple[str, frozenset[str]]] = {
    "fae": ("fae", frozenset({"discrepancy", "filter_size", "filter_repeats", "score"})),
    "hfr": ("hfr", frozenset({"sigma", "normalise_by_area"})),
}


# Bumped when a change to the training code makes earlier cached stages stale
# (2: per-stage random generators, code_channels, depth losses, pseudo-anomaly families).
STAGE_FORMAT = 2


def stage_key_material(cfg: Config, stage: str) -> dict[str, Any]:
    """The config subset that determines the weights a stage ends with."""
    data = cfg.data.__dict__.copy()
    for key in ("val_anomaly_ratio", "val_anomalies", "val_difficulty"):  # only shape the validation set
        data.pop(key, None)
    m, t = cfg.model, cfg.train
    material: dict[str, Any] = {
        "format": STAGE_FORMAT,
        "stage": "stage1",
        "data": data,
        "augment": cfg.augment.__dict__,
        "model": {k: getattr(m, k) for k in ("method", "depth", "width", "skip", "shared_weights", "code_channels")},
        "train": cfg.train.stage1.__dict__,
        "schedule": {"depth_loss": t.depth_loss, "depth_sampling": t.depth_sampling, "lr_schedule": t.lr_schedule},
        "seed": cfg.runtime.seed,
        "max_time_s": cfg.train.max_time_s,
    }
    # Baselines train only stage 1; their own config section shapes the weights too. Fields that
    # only change scoring are left out, so sweeping them reuses the trained stage.
    if m.method in METHOD_SECTIONS:
        section, scoring_only = METHOD_SECTIONS[m.method]
        material[section] = {k: v for k, v in getattr(cfg, section).__dict__.items() if k not in scoring_only}
    if stage in ("stage2", "stage3"):
        material = {"stage": "stage2", "prev": material, "dpn_width": m.dpn_width, "dpn_input": m.dpn_input,
                    "train": cfg.train.stage2.__dict__}
    if stage == "stage3":
        material = {
            "stage": "stage3",
            "prev": material,
            "use_dpn": m.use_dpn,
            "crd": {"width": m.crd_width, "steps": m.crd_steps, "pool": m.crd_pool, "input": m.crd_input},
            "pseudo": cfg.pseudo.__dict__,
            "train": cfg.train.stage3.__dict__,
        }
    if stage not in ("stage1", "stage2", "stage3"):
        raise ValueError(f"unknown stage {stage!r}")
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
