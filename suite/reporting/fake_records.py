"""Fake run folders (TrialRecord JSON + gallery npz) for tests and for previewing a report.

The metrics are made up (a deterministic formula plus seeded noise); nothing is trained. The set
covers what the report must handle: several methods and depths, a coverage sweep, two seeds of
one configuration, two datasets, a failed trial, a stopped trial, a configuration missing a
category, an unreadable record file and a record whose gallery file is missing. The RcAE records
on MVTec AD carry the record-version-2 fields ``diagnostics`` (per-depth signal) and ``scorings``
(scoring variants); the VisA and baseline records do not, as records of older code.

    python -m suite.reporting.fake_records /tmp/fake_runs   # then build_report on it
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from suite.config import build_config, from_dict
from suite.data.registry import dataset_spec
from suite.methods.registry import method_spec, method_specs
from suite.records import TrialRecord, write_record

MVTEC = ("carpet", "bottle", "grid")  # deliberately not in the standard order
VISA = ("pcb1", "candle")
VERSIONS = {"git_commit": "0123456789abcdef0123456789abcdef01234567", "rcsuite": "0.1.0", "torch": "2.13.0"}
CATEGORY_OFFSET = {"carpet": 0.02, "bottle": 0.03, "grid": -0.04, "pcb1": 0.0, "candle": 0.01}


@dataclass
class FakeRuns:
    root: Path
    run_dirs: list[Path]
    records: list[Path] = field(default_factory=list)
    galleries: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # trial ids
    stopped: list[str] = field(default_factory=list)
    unreadable: list[Path] = field(default_factory=list)


def _config(method: str, dataset: str, category: str, seed: int, **overrides: Any) -> dict[str, Any]:
    base = {
        "model.method": method,
        "data.dataset": dataset,
        "data.root": f"/data/{dataset}" if dataset_spec(dataset).needs_root else None,
        "data.category": category,
        "runtime.seed": seed,
    }
    base.update(overrides)
    return build_config(preset="tiny", overrides=base).to_dict()


def _quality(method: str, o: dict[str, Any]) -> float:
    """Made-up mean I-AUROC of a configuration (the method spec's ``fake_quality``, lower with
    less training data), so ablations and curves have a visible shape."""
    return method_spec(method).quality(o) - 0.1 * (1.0 - o.get("data.data_fraction", 1.0))


def _cost(method: str, o: dict[str, Any]) -> dict[str, Any]:
    cost = method_spec(method).cost(o)
    cost.update({
        "latency_ms_batch": cost["latency_ms"] * 6, "throughput_ips": 1000.0 / cost["latency_ms"], "peak_mem_mb": 120.0,
    })
    return cost


def _metrics(rng: np.random.Generator, quality: float, category: str) -> dict[str, dict[str, float]]:
    base = quality + CATEGORY_OFFSET.get(category, 0.0)
    out = {}
    for split, extra in (("test", 0.0), ("val", 0.01)):
        def clip(v: float) -> float:
            return float(np.clip(v, 0.5, 1.0))

        i = clip(base + extra + rng.normal(0, 0.01))
        out[split] = {
            "i_auroc": i,
            "p_auroc": clip(base + 0.03 + extra + rng.normal(0, 0.01)),
            "aupro": clip(base - 0.05 + rng.normal(0, 0.01)),
            "i_ap": clip(i + 0.01),
            "p_ap": clip(base - 0.3 + rng.normal(0, 0.02)),
            "i_f1max": clip(i - 0.02),
            "p_f1max": clip(base - 0.25 + rng.normal(0, 0.02)),
        }
    return out


CONFIGURED_SCORING = "auto|pixel"
# scoring variant -> offsets of (i_auroc, p_auroc, aupro) from the configured variant's metrics
SCORING_OFFSETS = {
    "auto|none": (-0.01, -0.04, -0.03),
    CONFIGURED_SCORING: (0.0, 0.0, 0.0),
    "residual_mean|pixel": (-0.02, 0.01, 0.0),
    "fused|pixel": (0.01, 0.02, 0.01),
}


def _clip(v: float) -> float:
    return float(np.clip(v, 0.5, 1.0))


def fake_scorings(metrics: dict[str, dict[str, float]]) -> dict[str, dict[str, dict[str, float]]]:
    """Every variant of ``SCORING_OFFSETS``: the record's metrics plus fixed offsets (no noise)."""
    return {
        variant: {
            split: {m: _clip(values[m] + d) for m, d in zip(("i_auroc", "p_auroc", "aupro"), offsets)}
            for split, values in metrics.items()
        }
        for variant, offsets in SCORING_OFFSETS.items()
    }


def fake_diagnostics(
    rng: np.random.Generator, metrics: dict[str, dict[str, float]], depth: int, dpn: bool, crd: bool
) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """Per-depth signal rising with the step (recon below detail); CRD equals the record's metrics."""
    out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for split, values in metrics.items():
        families: dict[str, dict[str, dict[str, float]]] = {}
        for family, start, slope in (("recon", -0.12, 0.02), ("detail", -0.06, 0.01)):
            if family == "detail" and not dpn:
                continue
            families[family] = {
                str(n): {m: _clip(values[m] + start + slope * n + rng.normal(0, 0.005)) for m in ("i_auroc", "p_auroc")}
                for n in range(1, depth + 1)
            }
        if crd:
            families["crd"] = {"all": {m: values[m] for m in ("i_auroc", "p_auroc")}}
        out[split] = families
    return out


def write_gallery(path: Path, rng: np.random.Generator, size: int = 32, steps: int = 0, k: int = 2) -> Path:
    """A small gallery npz: K images with a bright square defect, maps peaking on it, masks."""
    images = rng.uniform(0.3, 0.6, size=(k, 3, size, size)).astype(np.float32)
    masks = np.zeros((k, size, size), dtype=np.float32)
    masks[0, size // 4 : size // 2, size // 4 : size // 2] = 1.0  # first image anomalous, the rest normal
    images[0, :, masks[0] > 0] = 0.95
    maps = (rng.uniform(0, 0.2, size=(k, size, size)) + 0.8 * masks).astype(np.float32)
    data: dict[str, np.ndarray] = {
        "images": images,
        "maps": maps,
        "masks": masks,
        "scores": maps.reshape(k, -1).max(axis=1),
        "labels": (masks.reshape(k, -1).max(axis=1) > 0).astype(np.int64),
        "names": np.array([f"defect_{i:03d}.png" if i == 0 else f"good_{i:03d}.png" for i in range(k)]),
    }
    if steps:
        recon = np.repeat(images[:, None], steps, axis=1) * np.linspace(1.0, 0.7, steps)[None, :, None, None, None]
        data["recons"] = recon.astype(np.float32)
        data["details"] = np.clip(recon + 0.05, 0, 1).astype(np.float32)
        data["steps"] = np.arange(1, steps + 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **data)
    return path


def write_fake_runs(root: str | Path, seed: int = 0, test_selected: int = 0) -> FakeRuns:
    """Write two run folders of fake records under ``root``; ``test_selected`` records select on test."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    runs = FakeRuns(root, [root / "run_a", root / "run_b"])
    counter = {"n": 0}

    def add(run: int, method: str, dataset: str, category: str, overrides: dict[str, Any], seed_: int = 0,
            status: str = "ok", error: str | None = None, gallery_steps: int | None = None,
            gallery_missing: bool = False, v2: bool = False, ablation: tuple[str, str] | None = None) -> TrialRecord:
        counter["n"] += 1
        trial = f"t{counter['n']:03d}"
        config = _config(method, dataset, category, seed_, **overrides)
        folder = runs.run_dirs[run] / trial
        metrics = _metrics(rng, _quality(method, overrides), category) if status == "ok" else {}
        artifacts = {}
        if gallery_steps is not None:
            write_gallery(folder / "gallery.npz", rng, steps=gallery_steps)
            runs.galleries.append(folder / "gallery.npz")
            artifacts["gallery"] = "gallery.npz"
        if gallery_missing:
            artifacts["gallery"] = "gallery_gone.npz"
        selection = "test" if counter["n"] <= test_selected else "val"
        extra: dict[str, Any] = {}
        if v2 and status == "ok":  # own generator: the main stream (and so the metrics) stay as before
            sub = np.random.default_rng([seed, counter["n"]])
            extra = {
                "diagnostics": fake_diagnostics(
                    sub, metrics, int(overrides.get("model.depth", 2)),
                    overrides.get("model.use_dpn", True), overrides.get("model.use_crd", True),
                ),
                "scorings": fake_scorings(metrics),
                "info": {"scoring": CONFIGURED_SCORING},
            }
        record = TrialRecord(
            config=config,
            config_hash=from_dict(config).hash(),
            dataset=dataset,
            category=category,
            method=method,
            status=status,
            error=error,
            metrics=metrics,
            cost=_cost(method, overrides) if status == "ok" else {},
            stage_times=(
                {"stage1": 10.0 + rng.uniform(0, 2), "stage2": 3.0, "stage3": 4.0}
                if status == "ok" else {"stage1": 1.0}
            ),
            history=[],
            artifacts=artifacts,
            trial_id=trial,
            sweep=f"fake_{run}",
            seed=seed_,
            selection=selection,
            node={"hostname": "fakehost"},
            versions=dict(VERSIONS),
            created=1_700_000_000.0 + counter["n"],
            ablation={"table": ablation[0], "row": ablation[1]} if ablation else {},  # an ablation space's row
            **extra,
        )
        path = folder / f"record_{category}.json"
        write_record(record, path)
        runs.records.append(path)
        if status == "failed":
            runs.failed.append(trial)
        elif status == "stopped":
            runs.stopped.append(trial)
        return record

    full = {"model.use_dpn": True, "model.use_crd": True, "model.skip": True, "model.shared_weights": True}
    # run_a: RcAE depth ladder (depth 3 with two seeds), coverage sweep, components, architecture;
    # ``ablation`` = the (table, row) ids the ablation spaces' trials store (search_spaces/ablation_*.py).
    # The coverage-0.5 records are the depth ladder's N=3 row run on a second base config.
    for depth in (1, 2, 3):
        for category in MVTEC:
            add(0, "rcae", "mvtec", category, {**full, "model.depth": depth},
                gallery_steps=depth if (depth == 3 and category == "bottle") else None, v2=True,
                ablation=("depth", str(depth)))
    for category in MVTEC:
        add(0, "rcae", "mvtec", category, {**full, "model.depth": 3}, seed_=1, v2=True, ablation=("depth", "3"))
        add(0, "rcae", "mvtec", category, {**full, "model.depth": 3, "augment.coverage": 0.5}, v2=True,
            ablation=("depth", "3"))
        add(0, "rcae", "mvtec", category, {**full, "model.depth": 3, "model.use_dpn": False, "model.use_crd": False},
            v2=True, ablation=("components", "rcae"))
        add(0, "rcae", "mvtec", category, {**full, "model.depth": 3, "model.use_crd": False}, v2=True,
            ablation=("components", "rcae_dpn"))
        add(0, "rcae", "mvtec", category, {**full, "model.depth": 3, "model.skip": False}, v2=True,
            ablation=("skip_shared", "rcae_noskip_shared"))
        add(0, "rcae", "mvtec", category, {**full, "model.depth": 3, "model.shared_weights": False}, v2=True,
            ablation=("skip_shared", "rcae_skip_unshared"))
    add(0, "rcae", "mvtec", "carpet", {**full, "model.depth": 4}, status="failed",
        error="Traceback (most recent call last):\n  File \"train.py\", line 1\nRuntimeError: out of memory",
        ablation=("depth", "4"))
    for category in VISA:
        add(0, "rcae", "visa", category, {**full, "model.depth": 3}, ablation=("depth", "3"))
    # run_b: baselines; ConvAE lacks grid (one stopped trial there), one data-fraction row
    for category in ("carpet", "bottle"):
        add(1, "convae", "mvtec", category, {"model.skip": False, "model.depth": 3}, ablation=("components", "convae"))
    add(1, "convae", "mvtec", "grid", {"model.skip": False, "model.depth": 3}, status="stopped",
        error="stopped by the scheduler (ASHA) at epoch 1", ablation=("components", "convae"))
    # every registered baseline (a method with its own map, not RcAE's scorer) on every category;
    # the first has a gallery without steps on carpet, the second a missing gallery file on grid
    baselines = [spec.name for spec in method_specs() if not spec.uses_eval_map]
    for category in MVTEC:
        add(1, "convae", "mvtec", category, {"model.skip": False, "model.depth": 3, "data.data_fraction": 0.5},
            ablation=("data_fraction", "convae_0.5"))
        for i, name in enumerate(baselines):
            add(1, name, "mvtec", category, {}, gallery_steps=0 if (i == 0 and category == "carpet") else None,
                gallery_missing=i == 1 and category == "grid")
    broken = runs.run_dirs[1] / "t999" / "record_broken.json"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_text('{"config": {"data": ')
    runs.unreadable.append(broken)
    return runs


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "fake_runs")
    made = write_fake_runs(target)
    print(f"wrote {len(made.records)} records under {[str(d) for d in made.run_dirs]}")
