"""Batched vs naive multi-depth RcAE reconstruction: time, FLOPs and agreement.

``RcAE.reconstruct_all`` runs the shared encoder chain once and decodes all depths of a level in
one joined batch; the naive way is one ``reconstruct(x, n)`` call per depth n = 1..N. This script
times both under ``torch.inference_mode`` on CPU (median of ``--repeats`` after one warm-up each),
counts their FLOPs with ``torch.utils.flop_counter.FlopCounterMode`` (convolutions; GroupNorm and
activations are not counted), checks the max absolute difference and the speed-up against the
1.5x target, and writes a JSON file.

    python benchmarks/batched_recursion.py --size 256 --batch 8 --depth 5 --width 16 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from suite.methods.rcae.model import RcAE  # noqa: E402

TARGET_SPEEDUP = 1.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="image height and width (px)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--depth", type=int, default=5, help="recursion depth N; all depths 1..N are computed")
    parser.add_argument("--width", type=int, default=16, help="RcAE block width")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per method (median reported)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    parser.add_argument("--unshared", action="store_true", help="benchmark RcAE(shared_weights=False)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/batched_recursion.json")
    return parser.parse_args(argv)


def time_alternating(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Wall times of each function, run in turns (so machine-load drift hits all alike), after
    one warm-up call each (allocator and oneDNN primitive caches)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = RcAE(width=args.width, depth=args.depth, shared_weights=not args.unshared).eval()
    x = torch.rand(args.batch, 3, args.size, args.size)
    depths = list(range(1, args.depth + 1))

    def batched() -> torch.Tensor:
        return model.reconstruct_all(x)

    def naive() -> torch.Tensor:
        return torch.stack([model.reconstruct(x, n) for n in depths], dim=1)

    with torch.inference_mode():
        max_abs_diff = float((batched() - naive()).abs().max())
        flops_batched, flops_naive = count_flops(batched), count_flops(naive)
        times = time_alternating({"naive": naive, "batched": batched}, args.repeats)
        times_batched, times_naive = times["batched"], times["naive"]

    median_batched, median_naive = statistics.median(times_batched), statistics.median(times_naive)
    speedup = median_naive / median_batched
    result = {
        "benchmark": "batched_recursion",
        "config": {
            "size": args.size,
            "batch": args.batch,
            "depth": args.depth,
            "width": args.width,
            "shared_weights": not args.unshared,
            "repeats": args.repeats,
            "device": "cpu",
            "mode": "torch.inference_mode",
        },
        "params": sum(p.numel() for p in model.parameters()),
        "time_s": {
            "batched_median": median_batched,
            "naive_median": median_naive,
            "batched_all": times_batched,
            "naive_all": times_naive,
        },
        "gflops": {"batched": flops_batched / 1e9, "naive": flops_naive / 1e9},
        "flop_ratio": flops_naive / flops_batched,
        "speedup": speedup,
        # Ratio of the fastest runs: less sensitive to other jobs on a shared machine.
        "speedup_of_min": min(times_naive) / min(times_batched),
        "target_speedup": TARGET_SPEEDUP,
        "passed": bool(speedup >= TARGET_SPEEDUP and max_abs_diff <= 1e-5),
        "max_abs_diff": max_abs_diff,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "note": "wall-clock timings on a shared machine are noisy; FLOPs count convolutions only",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"batched {median_batched:.3f}s vs naive {median_naive:.3f}s -> speed-up {speedup:.2f}x "
        f"(target {TARGET_SPEEDUP}x: {'PASS' if result['passed'] else 'FAIL'}); "
        f"GFLOPs {flops_batched / 1e9:.2f} vs {flops_naive / 1e9:.2f} ({result['flop_ratio']:.2f}x); "
        f"max |diff| {max_abs_diff:.2e}; wrote {out}"
    )
    return result


if __name__ == "__main__":
    main()
