"""Speed of suite.metrics.pixel_metrics (all four pixel metrics) against sklearn's roc_auc_score alone.

Builds ``--n-maps`` smooth random anomaly maps of ``--size`` px with blob-shaped defects in about
half of the images, times ``sklearn.metrics.roc_auc_score`` on all pixels and then
``suite.metrics.pixel_metrics`` (p_auroc, p_ap, p_f1max, aupro from one sort), checks that p_auroc
and p_ap equal scikit-learn's to 1e-9, and writes a JSON report. The target is
``pixel_metrics time <= 0.5 x roc_auc_score time``. Times are the median of ``--repeats``
runs, the two methods alternating run by run.

    PYTHONPATH=. python benchmarks/metrics_speed.py --out benchmarks/results/metrics_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy
import sklearn
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

from suite.metrics import pixel_metrics

TARGET_RATIO = 0.5
AGREEMENT_TOL = 1e-9


def blob_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """One irregular blob: a rotated ellipse whose boundary is roughened by smoothed noise."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    cy, cx = rng.uniform(0.15, 0.85, size=2) * size
    ry, rx = rng.uniform(0.02, 0.12, size=2) * size
    angle = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / rx
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / ry
    roughness = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma=size / 32)
    roughness /= np.abs(roughness).max() + 1e-12
    return (u * u + v * v) < 1.0 + 0.6 * roughness


def build_maps(n_maps: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(masks bool, maps float32), both (n_maps, size, size); defects in about half the images."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n_maps, size, size), dtype=bool)
    maps = np.empty((n_maps, size, size), dtype=np.float32)
    defective = rng.random(n_maps) < 0.5
    for i in range(n_maps):
        background = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma=2.0)
        signal = np.zeros((size, size))
        if defective[i]:
            for _ in range(rng.integers(1, 4)):
                blob = blob_mask(rng, size)
                masks[i] |= blob
                # Some defects are barely visible in the map so the metrics are far from 1.
                signal += rng.uniform(0.0, 0.4) * ndimage.gaussian_filter(blob.astype(float), sigma=3.0)
        maps[i] = background + signal
    return masks, maps


def interleaved_times(fns: dict, repeats: int) -> tuple[dict[str, list[float]], dict]:
    """Run each function once per round, ``repeats`` rounds, alternating so that background load on
    a shared machine hits every method alike. Returns per-method run times and last results."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    results: dict = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - start)
    return times, results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/metrics_speed.json", help="JSON report path")
    parser.add_argument("--n-maps", type=int, default=100, help="number of anomaly maps")
    parser.add_argument("--size", type=int, default=256, help="map height and width in px")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method (median reported)")
    args = parser.parse_args(argv)

    masks, maps = build_maps(args.n_maps, args.size, args.seed)
    labels_flat, scores_flat = masks.ravel(), maps.ravel()

    runs, results = interleaved_times(
        {
            "sklearn": lambda: roc_auc_score(labels_flat, scores_flat),
            "suite": lambda: pixel_metrics(masks, maps),
        },
        args.repeats,
    )
    sklearn_runs, suite_runs = runs["sklearn"], runs["suite"]
    sklearn_s, suite_s = statistics.median(sklearn_runs), statistics.median(suite_runs)
    sklearn_auroc, suite_result = results["sklearn"], results["suite"]
    sklearn_ap = average_precision_score(labels_flat, scores_flat)  # untimed agreement check

    auroc_diff = abs(suite_result["p_auroc"] - sklearn_auroc)
    ap_diff = abs(suite_result["p_ap"] - sklearn_ap)
    agree = auroc_diff <= AGREEMENT_TOL and ap_diff <= AGREEMENT_TOL
    ratio = suite_s / sklearn_s
    report = {
        "benchmark": "metrics_speed",
        "n_maps": args.n_maps,
        "size": args.size,
        "seed": args.seed,
        "repeats": args.repeats,
        "n_pixels": int(masks.size),
        "defect_pixel_fraction": float(masks.mean()),
        "images_with_defects": int(masks.any(axis=(1, 2)).sum()),
        "sklearn_roc_auc_s": sklearn_s,
        "sklearn_roc_auc_runs_s": sklearn_runs,
        "pixel_metrics_s": suite_s,
        "pixel_metrics_runs_s": suite_runs,
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "speed_pass": ratio <= TARGET_RATIO,
        "metrics": {k: float(v) for k, v in suite_result.items()},
        "sklearn_p_auroc": float(sklearn_auroc),
        "sklearn_p_ap": float(sklearn_ap),
        "p_auroc_abs_diff": auroc_diff,
        "p_ap_abs_diff": ap_diff,
        "agreement_tol": AGREEMENT_TOL,
        "agree": agree,
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "sklearn": sklearn.__version__,
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "platform": platform.platform(),
            "processor": platform.machine(),
            "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
        "created": time.time(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"sklearn roc_auc_score {sklearn_s:.3f} s | pixel_metrics (4 metrics) {suite_s:.3f} s | "
        f"ratio {ratio:.3f} (target <= {TARGET_RATIO}) {'PASS' if ratio <= TARGET_RATIO else 'FAIL'} | "
        f"p_auroc diff {auroc_diff:.2e}, p_ap diff {ap_diff:.2e} {'agree' if agree else 'DISAGREE'} | "
        f"-> {out}"
    )
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
