"""Mid-training progress of a trial's category shards, matched by epoch (no Ray here).

A sharded trial (``suite.orchestration.shards``) trains its categories at the same time, each in
its own Ray task, possibly on another node. Each shard appends its periodic validations to
``<trial>/<category>/progress.jsonl`` (one JSON object per line: ``stage``, ``epoch``, ``val_*``;
the records folder is on storage every node shares). The trial reads those files and reports to
Tune the mean over its categories **at matching points** ``(stage, epoch)``, so ASHA's rungs compare
like with like: report *k* of every trial is "every category at the same epoch".

Point ``p`` is *ready* once every category has reported ``p``, has reported a later point, or has
finished. The value a category contributes at ``p``:

1. its own report at ``p`` (the latest line, if a retried shard wrote it twice);
2. else, if it finished, its final validation metrics (e.g. a stage served from the stage cache
   trains no epochs, so it never reports ``p``);
3. else its latest report before ``p``; else its first report after ``p``.

Points are reported in increasing order (stage name, then epoch), each once: ``reported`` holds the
last one sent, and is stored in the trial's Tune checkpoint so a retried trial does not send a
point twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from suite.orchestration.pooled import pooled_metrics

PROGRESS_NAME = "progress.jsonl"
POLL_S = 1.0  # how often a coordinator reads progress files while training runs elsewhere

Point = tuple[str, int]


def append_progress(out_dir: str | Path, entry: dict[str, Any]) -> None:
    """Append one periodic validation (``stage``, ``epoch``, ``val_*``) to the category's progress file.

    One ``write`` of one line in append mode: readers never see half of an earlier line, and a
    torn last line (a killed writer) is skipped by ``read_progress``.
    """
    keep = {k: v for k, v in entry.items() if k in ("stage", "epoch") or k.startswith("val_")}
    line = json.dumps(keep, sort_keys=True) + "\n"
    path = Path(out_dir) / PROGRESS_NAME
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()


def read_progress(out_dir: str | Path) -> dict[Point, dict[str, float]]:
    """``{(stage, epoch): val metrics}`` from a category's progress file (latest line per point)."""
    path = Path(out_dir) / PROGRESS_NAME
    points: dict[Point, dict[str, float]] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return points
    for line in text.splitlines():
        try:
            entry = json.loads(line)
            point = (str(entry["stage"]), int(entry["epoch"]))
        except (ValueError, KeyError, TypeError):
            continue  # a line being written right now, or torn by a kill
        points[point] = {k: v for k, v in entry.items() if k.startswith("val_")}
    return points


class MatchedProgress:
    """The mean over categories at matching ``(stage, epoch)`` points (rules in the module docstring)."""

    def __init__(self, categories: list[str], reported: Point | None = None):
        self.categories = list(categories)
        self.points: dict[str, dict[Point, dict[str, float]]] = {c: {} for c in self.categories}
        self.finals: dict[str, dict[str, float]] = {}
        self.reported = reported

    def update(self, category: str, points: dict[Point, dict[str, float]]) -> None:
        self.points[category] = dict(points)

    def finish(self, category: str, final_metrics: dict[str, float]) -> None:
        self.finals[category] = dict(final_metrics)

    def _value_at(self, category: str, point: Point) -> dict[str, float] | None:
        own = self.points[category]
        if point in own:
            return own[point]
        if category in self.finals:
            return self.finals[category]
        before = [p for p in own if p < point]
        if before:
            return own[max(before)]
        after = [p for p in own if p > point]
        return own[min(after)] if after else None

    def _ready(self, point: Point) -> bool:
        return all(
            c in self.finals or any(p >= point for p in self.points[c]) for c in self.categories
        )

    def ready_points(self) -> list[tuple[Point, dict[str, float]]]:
        """Points not yet reported that every category has reached, in order, with their means.

        Marks them reported: each point is returned once.
        """
        candidates = sorted({p for pts in self.points.values() for p in pts})
        out = []
        for point in candidates:
            if self.reported is not None and point <= self.reported:
                continue
            if not self._ready(point):
                break  # later points cannot be ready before this one
            values = {c: self._value_at(c, point) for c in self.categories}
            out.append((point, pooled_metrics({c: v for c, v in values.items() if v is not None})))
            self.reported = point
        return out
