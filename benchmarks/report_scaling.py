"""Report build time at 10,000 records, intervals (1,000 bootstrap resamples per cell) and plots included.

The records are copies of the fake sweep of ``suite.reporting.fake_records`` (real-looking records:
several methods, ablation ids, diagnostics, scorings, a failed, a stopped and an unreadable one):
each ok record is copied with a distinct trial id and seed and its metrics moved by a seeded
jitter (clipped to [0, 1]), until there are ``--records`` files. Only the originals keep their
gallery artifacts (a copy pointing at another trial's gallery file is not what a sweep writes).
The build runs in this process with ``--threads`` BLAS/OpenMP threads (2: the target machine).
Target: <= 60 s for 10,000 records.

    python benchmarks/report_scaling.py    # writes benchmarks/results/report_scaling.json
"""

from __future__ import annotations

import argparse
import os
import sys

THREADS_DEFAULT = 2
if __name__ == "__main__":  # thread counts must be set before numpy loads its BLAS
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(THREADS_DEFAULT))

import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from suite import aggregate as agg  # noqa: E402
from suite.records import TrialRecord, load_record, write_record  # noqa: E402
from suite.reporting.fake_records import write_fake_runs  # noqa: E402
from suite.reporting.report import build_report  # noqa: E402

TARGET_S = 60.0
RESULTS = Path(__file__).resolve().parent / "results" / "report_scaling.json"


def _jitter(metrics: dict, rng: np.random.Generator, scale: float) -> dict:
    return {split: {name: float(np.clip(v + rng.normal(0.0, scale), 0.0, 1.0)) for name, v in values.items()}
            for split, values in metrics.items()}


def make_records(root: Path, n_records: int, seed: int = 0) -> tuple[list[Path], int]:
    """Fake sweep under ``root`` plus jittered copies up to ``n_records`` files; (run dirs, files)."""
    runs = write_fake_runs(root / "fake")
    originals = [(p, load_record(p).record) for p in runs.records]
    ok = [(p, r) for p, r in originals if r.status == "ok"]
    rng = np.random.default_rng(seed)
    count = len(runs.records) + len(runs.unreadable)
    copies = root / "copies"
    k = 0
    while count < n_records:
        k += 1
        for path, record in ok:
            if count >= n_records:
                break
            data = record.to_dict()
            data.update(trial_id=f"{record.trial_id}-c{k}", seed=record.seed + 100 * k, artifacts={},
                        metrics=_jitter(record.metrics, rng, 0.01),
                        scorings={v: _jitter(s, rng, 0.01) for v, s in record.scorings.items()})
            write_record(TrialRecord(**data), copies / f"c{k}" / path.parent.name / path.name)
            count += 1
    return [*runs.run_dirs, copies], count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=THREADS_DEFAULT)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory(prefix="rcsuite-report-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        run_dirs, n_files = make_records(root, args.records)
        made_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        loaded = agg.load_records(*run_dirs)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        index = build_report(run_dirs, root / "report")
        report_s = time.perf_counter() - t0
        plots = sorted(p.name for p in (index.parent / "plots").glob("*.png"))
        ablations = (index.parent / "ablations.md").read_text()
    result = {
        "benchmark": "report_scaling",
        "records": n_files,
        "records_loaded": len(loaded),
        "unreadable": len(loaded.unreadable),
        "bootstrap_resamples": agg.N_RESAMPLES,
        "threads": args.threads,
        "make_records_s": round(made_s, 2),
        "load_records_s": round(load_s, 2),
        "report_s": round(report_s, 2),
        "target_s": TARGET_S,
        "met": report_s <= TARGET_S,
        "png_plots": len(plots),
        "ablation_tables_have_intervals": "[" in ablations and "p vs row above" in ablations,
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
