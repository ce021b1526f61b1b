"""Compute cost of a model: parameters, FLOPs, latency, throughput, peak memory; stage wall times.

All numbers are measured, not estimated, on the device the caller names:

* ``params``: parameter elements of an ``nn.Module`` (trainable and frozen; a shared one counts once).
* ``gflops``: GFLOPs of one forward pass on one image (``torch.utils.flop_counter.FlopCounterMode``;
  a multiply-add is 2 FLOPs; only operators with a FLOP formula count, element-wise ops do not).
* ``latency_ms``: median wall time of one forward pass at batch 1 after warm-up, under
  ``torch.inference_mode`` (CUDA synchronised around each pass); ``latency_ms_batch`` /
  ``throughput_ips``: median time per image / images per second at the largest batch size.
* ``peak_mem_mb``: extra memory one inference needs at the largest batch, in MiB; ``mem_method``
  says how: ``cuda_max_allocated`` (the CUDA peak over those passes minus the allocation before),
  ``cpu_alloc_peak`` (peak live tensor bytes of torch's CPU allocator, see ``allocator_peak_bytes``),
  else ``rss_peak`` / ``rss_delta`` (the process's resident set: misses memory the C allocator
  reuses, so near zero after training; ``None`` without ``/proc``). ``peak_mem_method`` says it in words.

Training memory (``TrainingMemory``, recorded by ``suite.pipeline`` when ``eval.cost`` is on):

* ``train_peak_rss_mb``: the whole process's peak resident set size while the stages trained, in
  MiB (data, interpreter and libraries included). ``VmHWM`` reset at the start of training where
  ``/proc/self/clear_refs`` allows, else ``ru_maxrss`` (the process's lifetime peak, which in a
  reused worker may come from an earlier training); ``train_peak_rss_method`` says which.
* ``train_peak_cuda_mb`` (CUDA only): ``torch.cuda.max_memory_allocated`` during training.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_params", "measure_cost", "Timer", "stage_timer", "TrainingMemory", "allocator_peak_bytes"]

_MIB = float(1 << 20)


def count_params(module: nn.Module) -> int:
    """Number of parameter elements, trainable and frozen: sum of ``p.numel()`` over the unique
    parameters of ``module`` (buffers such as BatchNorm running statistics are not parameters)."""
    return sum(p.numel() for p in module.parameters())


class Timer:
    """Wall-clock seconds (``time.perf_counter``) spent inside a ``with`` block.

    ``seconds`` is set on exit; ``elapsed`` reads the running time inside the block. With
    ``sync_cuda=True`` pending CUDA work is waited for at entry and exit so GPU time is included.
    """

    def __init__(self, sync_cuda: bool = False) -> None:
        self.sync_cuda = sync_cuda
        self.seconds = 0.0
        self._start: float | None = None

    def _sync(self) -> None:
        if self.sync_cuda and torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()

    def __enter__(self) -> "Timer":
        self._sync()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._sync()
        self.seconds = time.perf_counter() - self._start

    @property
    def elapsed(self) -> float:
        if self._start is None:
            return 0.0
        return time.perf_counter() - self._start


@contextlib.contextmanager
def stage_timer(times: dict[str, float], name: str, sync_cuda: bool = False) -> Iterator[Timer]:
    """Time a training stage: adds the block's wall seconds to ``times[name]``.

    The time is added even if the block raises, and accumulates over repeated blocks of the same
    name (a stage resumed from a checkpoint reports its total).
    """
    timer = Timer(sync_cuda=sync_cuda)
    try:
        with timer:
            yield timer
    finally:
        times[name] = times.get(name, 0.0) + timer.seconds


# ----------------------------------------------------------------------------------------------
# memory probes


def _resident_bytes() -> int | None:
    """Current resident set size from /proc/self/statm (second field, in pages)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _reset_peak_resident() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process; False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # "5" resets only the peak resident set size
        return True
    except OSError:
        return False


def _peak_resident_bytes() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class _MemoryProbe:
    """Extra memory (MiB) used between ``start`` and ``stop`` (``mem_method``: see the module docstring)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.method: str | None = None
        self._before: int | None = None

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self._before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.method = "cuda_max_allocated"
            return
        self._before = _resident_bytes()
        if self._before is None:
            self.method = None
        elif _reset_peak_resident() and _peak_resident_bytes() is not None:
            self.method = "rss_peak"
        else:
            self.method = "rss_delta"

    def stop(self) -> float | None:
        if self.method == "cuda_max_allocated":
            torch.cuda.synchronize(self.device)
            after = torch.cuda.max_memory_allocated(self.device)
        elif self.method == "rss_peak":
            after = _peak_resident_bytes()
        elif self.method == "rss_delta":
            after = _resident_bytes()
        else:
            return None
        if after is None or self._before is None:
            return None
        return max(after - self._before, 0) / _MIB


def allocator_peak_bytes(fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> int | None:
    """Peak of live CPU tensor bytes allocated by torch during ``fn(x)``, above the level at the
    start (``torch.profiler`` memory events: +bytes per allocation, -bytes per free, summed in time
    order). None when the profiler records no memory events (e.g. a build without Kineto).

    The CPU analogue of ``torch.cuda.max_memory_allocated``: unlike the resident set it does not
    depend on what the C allocator kept from training, nor on other threads. Tensor memory only
    (not interpreter objects or a library's private scratch buffers); the profiler's first use in a
    process costs about 2 s."""
    from torch.profiler import ProfilerActivity, profile

    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn(x)
        events = [
            e for e in prof.profiler.kineto_results.events()
            if e.name() == "[memory]" and str(e.device_type()).endswith("CPU")
        ]
    except (RuntimeError, AttributeError):
        return None
    if not events:
        return None
    level = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        level += int(event.nbytes())
        peak = max(peak, level)
    return peak


_PEAK_MEM_METHODS = {
    "cuda_max_allocated": "cuda: torch.cuda.max_memory_allocated over the batch-{b} passes minus the allocation before",
    "cpu_alloc_peak": "cpu: peak live tensor bytes of torch's CPU allocator over one forward at batch {b} "
                      "(torch.profiler memory events)",
    "rss_peak": "cpu: process peak RSS (VmHWM) growth over the batch-{b} passes; misses memory the C allocator reuses",
    "rss_delta": "cpu: process RSS after minus before the batch-{b} passes; misses freed and reused memory",
}


class TrainingMemory:
    """Peak memory of training: ``start()`` before the stages, ``stop()`` after (see module docstring)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._reset = False

    def start(self) -> "TrainingMemory":
        self._reset = _reset_peak_resident() and _peak_resident_bytes() is not None
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def stop(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        peak = _peak_resident_bytes() if self._reset else None
        if peak is not None:
            out["train_peak_rss_mb"] = peak / _MIB
            out["train_peak_rss_method"] = ("whole process peak RSS (VmHWM, reset at the start of training), "
                                            "data and libraries included")
        else:
            try:
                import resource

                kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
                out["train_peak_rss_mb"] = kib / 1024.0
                out["train_peak_rss_method"] = ("whole process lifetime peak RSS (ru_maxrss), data and libraries "
                                                "included; may come from earlier work in the same process")
            except (ImportError, OSError):
                out["train_peak_rss_mb"] = None
                out["train_peak_rss_method"] = None
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            out["train_peak_cuda_mb"] = torch.cuda.max_memory_allocated(self.device) / _MIB
        return out


# ----------------------------------------------------------------------------------------------
# measurement


def _resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} requested but CUDA is not available")
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda[:i]' or 'auto', got {device!r}")
    return resolved


def _median_seconds(fn: Callable[[torch.Tensor], Any], x: torch.Tensor, repeats: int, warmup: int,
                    device: torch.device) -> float:
    """Median wall time of ``fn(x)`` over ``repeats`` timed calls after ``warmup`` untimed ones."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn(x)
    sync()
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        sync()
        durations.append(time.perf_counter() - start)
    return statistics.median(durations)


def _flops_per_image(fn: Callable[[torch.Tensor], Any], x1: torch.Tensor) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        fn(x1)
    return float(counter.get_total_flops())


def measure_cost(
    model_or_fn: nn.Module | Callable[[torch.Tensor], Any],
    example_input: torch.Tensor,
    batch_sizes: Sequence[int] = (1, 8),
    repeats: int = 10,
    warmup: int = 3,
    device: str | torch.device = "cpu",
    params: int | None = None,
) -> dict[str, Any]:
    """Measure params, GFLOPs, latency, throughput and peak memory of one forward pass.

    ``example_input`` is a tensor with a leading batch dimension; only its first item is used, and
    batches of size b are that item repeated b times. An ``nn.Module`` is put in eval mode and moved
    to ``device`` for the measurement and restored (mode and device) afterwards; a plain callable
    must already run on ``device`` and its parameter count can be given as ``params`` (else None).
    Batch 1 is always measured; every size in ``batch_sizes`` is timed and the largest one gives
    ``latency_ms_batch``, ``throughput_ips`` and ``peak_mem_mb``. See the module docstring for what
    each number means and how it is measured. Returns a JSON-ready dict::

        params, gflops, latency_ms, latency_ms_batch, throughput_ips, peak_mem_mb, device,
        batch_size (the largest), latency_ms_by_batch ({str(b): per-image ms}), threads,
        mem_method ("cuda_max_allocated" | "cpu_alloc_peak" | "rss_peak" | "rss_delta" | None),
        peak_mem_method (how peak_mem_mb was measured, in words)
    """
    if not isinstance(example_input, torch.Tensor) or example_input.ndim < 1 or example_input.shape[0] < 1:
        raise ValueError("example_input must be a tensor with a leading batch dimension of size >= 1")
    sizes = sorted({1, *(int(b) for b in batch_sizes)})
    if sizes[0] < 1:
        raise ValueError(f"batch_sizes must be positive integers, got {tuple(batch_sizes)}")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    target = _resolve_device(device)

    module = model_or_fn if isinstance(model_or_fn, nn.Module) else None
    if module is not None and params is None:
        params = count_params(module)
    if module is not None:
        was_training = module.training
        first = next(iter(module.parameters()), None)
        original_device = first.device if first is not None else None
        module.eval()
        module.to(target)

    x1 = example_input[:1].to(target)
    by_batch: dict[str, float] = {}
    try:
        with torch.inference_mode():
            flops = _flops_per_image(model_or_fn, x1)
            single_s = _median_seconds(model_or_fn, x1, repeats, warmup, target)
            for b in sizes[1:-1]:
                xb = x1.expand(b, *x1.shape[1:]).contiguous()
                by_batch[str(b)] = 1e3 * _median_seconds(model_or_fn, xb, repeats, warmup, target) / b
            largest = sizes[-1]
            xb = x1.expand(largest, *x1.shape[1:]).contiguous()
            mem_method: str | None = None
            peak_bytes = allocator_peak_bytes(model_or_fn, xb) if target.type == "cpu" else None
            probe = _MemoryProbe(target)
            if peak_bytes is None:
                probe.start()
            batch_s = _median_seconds(model_or_fn, xb, repeats, warmup, target)
            if peak_bytes is None:
                peak_mem_mb, mem_method = probe.stop(), probe.method
            else:
                peak_mem_mb, mem_method = peak_bytes / _MIB, "cpu_alloc_peak"
    finally:
        if module is not None:
            module.train(was_training)
            if original_device is not None:
                module.to(original_device)
    by_batch["1"] = 1e3 * single_s
    by_batch[str(largest)] = 1e3 * batch_s / largest
    return {
        "params": None if params is None else int(params),
        "gflops": flops / 1e9,
        "latency_ms": 1e3 * single_s,
        "latency_ms_batch": 1e3 * batch_s / largest,
        "throughput_ips": largest / batch_s,
        "peak_mem_mb": peak_mem_mb,
        "device": str(target),
        "batch_size": largest,
        "latency_ms_by_batch": dict(sorted(by_batch.items(), key=lambda kv: int(kv[0]))),
        "threads": torch.get_num_threads(),
        "mem_method": mem_method,
        "peak_mem_method": _PEAK_MEM_METHODS[mem_method].format(b=largest) if mem_method else None,
    }
