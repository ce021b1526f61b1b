"""The main job behind `make demo`: a small sweep plus the component ladder on the built-in
synthetic categories with a local Ray instance, then the report.

Re-runnable: each run writes new sweep folders, and the shared stage cache under ``out/sweeps``
lets a second run reuse every stage the first one trained.
"""

from __future__ import annotations

import time
from pathlib import Path

from suite.config import build_config
from suite.orchestration.driver import SweepOptions, run_sweep
from suite.reporting.report import build_report

# `--quick`: the `tiny` preset's sizes, for smoke tests of the whole chain.
QUICK_OVERRIDES = {"data.image_size": 32, "model.depth": 2, "train.stage1.epochs": 2, "train.stage2.epochs": 1,
                   "train.stage3.epochs": 1, "train.eval_every": 1}


def run_demo(out: str | Path = "runs/demo", quick: bool = False, num_cpus: int | None = None) -> Path:
    out = Path(out).resolve()
    storage = out / "sweeps"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    categories = ["synth_texture"] if quick else ["synth_texture", "synth_object"]
    cfg = build_config(preset="demo", overrides=QUICK_OVERRIDES if quick else None)
    print(f"[demo] synthetic categories {', '.join(categories)}; results under {out}", flush=True)

    t0 = time.time()
    runs = []
    steps = [
        # 4 trials: with the CRD's 300-step floor (issue 19) 6 trials took the demo to 392 s, over its 6 minutes
        ("demo", {"trials": 2 if quick else 4, "asha": True}),
        ("ablation_components", {"trials": 1, "asha": False}),
    ]
    for space, extra in steps:
        print(f"[demo] sweep '{space}' ({time.time() - t0:.0f}s elapsed)", flush=True)
        opts = SweepOptions(
            space=space,
            categories=categories,
            storage=str(storage),
            name=f"{space}-{stamp}",
            num_cpus=num_cpus,
            verbose=1,
            **extra,
        )
        result = run_sweep(cfg, opts)
        runs.append(result["records_dir"])
    print(f"[demo] building the report ({time.time() - t0:.0f}s elapsed)", flush=True)
    index = build_report(runs, out / "report")
    print(f"[demo] finished in {time.time() - t0:.0f}s", flush=True)
    return Path(index)
