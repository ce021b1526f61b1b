"""Keeping the accelerator fed, and measuring where a training step's time goes. No Ray here.

* ``prefetched(batches, depth, pin)``: the next ``depth`` batches are read (decoded, stacked and,
  on CUDA, copied into pinned memory) by a background thread while the current step runs; the
  values and their order are exactly those of the plain iterator.
* ``StepBreakdown``: per stage, seconds waiting for data, building inputs (augmentation,
  pseudo-anomalies) and in the rest of the step (forward, backward, optimiser), images per second,
  and on CUDA the peak allocated / reserved memory and the GPU's busy share. On CUDA the two
  device phases are timed with CUDA events on the current stream (no synchronisation per step),
  the wait for data on the host. ``as_dict`` gives finite non-negative numbers only (the record's
  ``step_breakdown`` shape); what could not be measured is named in ``notes``. A training collects
  its stages' dicts in one ``BreakdownLog``.
* ``BusySampler``: NVML's ``utilization.gpu`` (through ``torch.cuda.utilization``, which needs
  pynvml) sampled every 0.2 s by a daemon thread while a stage runs. It is the whole device's
  share, so trainings sharing a GPU see each other's kernels.
* ``amp_dtype`` (bf16 where the GPU supports it, else float16 with loss scaling) and
  ``inference_batch`` (images per inference chunk for a megapixel budget).
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

MIB = float(1 << 20)
BUSY_PERIOD_S = 0.2
_DONE = object()


# ----------------------------------------------------------------------------------------------
# precision and chunking


def amp_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 where the CUDA device supports it (no loss scaling needed), else float16."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def inference_batch(image_size: int, megapixels: float, cap: int = 16) -> int:
    """Images per inference chunk: as many as fit ``megapixels`` (at least 1, at most ``cap``)."""
    per_image = image_size * image_size / 1e6
    return max(1, min(cap, int(math.floor(megapixels / per_image))))


# ----------------------------------------------------------------------------------------------
# prefetching


def _pinned(batch: Any) -> Any:
    return batch.pin_memory() if isinstance(batch, torch.Tensor) else batch


def prefetched(batches: Iterable[Any], depth: int, pin: bool = False) -> Iterator[Any]:
    """``batches`` read ``depth`` ahead by a daemon thread (``depth`` 0: in this thread); with
    ``pin`` every tensor batch is put in page-locked memory so a ``non_blocking`` copy to the GPU
    overlaps with compute. An exception in the reader is raised here, at the batch it hit."""
    if depth <= 0:
        for batch in batches:
            yield _pinned(batch) if pin else batch
        return
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: Any) -> bool:
        """Put ``item`` unless the consumer has gone (never blocks past its leaving)."""
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        try:
            for batch in batches:
                if not offer((_pinned(batch) if pin else batch, None)):
                    return
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, raised there
            offer((None, err))
            return
        offer((_DONE, None))

    thread = threading.Thread(target=reader, name="rcsuite-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, err = slots.get()
            if err is not None:
                raise err
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5.0)


# ----------------------------------------------------------------------------------------------
# GPU busy share


class BusySampler:
    """Mean of NVML's ``utilization.gpu`` (percent) over the samples taken between ``start`` and
    ``stop``; ``stop`` returns it as a share in [0, 1], or None with ``reason`` set."""

    def __init__(self, device: torch.device, period_s: float = BUSY_PERIOD_S):
        self.device, self.period_s = device, period_s
        self.samples: list[float] = []
        self.reason: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "BusySampler":
        if self.device.type != "cuda":
            self.reason = "not a CUDA device"
            return self
        try:
            torch.cuda.utilization(self.device)
        except Exception as err:  # noqa: BLE001 - ImportError without pynvml, NVMLError without a driver
            self.reason = f"NVML unavailable ({type(err).__name__}: {err}); install pynvml for the busy share"
            return self
        self._thread = threading.Thread(target=self._run, name="rcsuite-nvml", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self.samples.append(float(torch.cuda.utilization(self.device)))
            except Exception as err:  # noqa: BLE001 - a driver hiccup ends sampling, not the training
                self.reason = f"NVML sampling stopped ({type(err).__name__})"
                return

    def stop(self) -> float | None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=2.0)
            self._thread = None
        if not self.samples:
            self.reason = self.reason or "no NVML sample (stage shorter than the sampling period)"
            return None
        return sum(self.samples) / len(self.samples) / 100.0


# ----------------------------------------------------------------------------------------------
# per-step phases


class StepBreakdown:
    """Accumulates one stage's phases over its steps (see the module docstring).

    Per step: ``data_ready()`` once the batch is on the device, ``inputs_built()`` after the
    inputs are built, ``step_done(images)`` after the optimiser step. ``start`` / ``finish``
    bracket the stage (peak memory statistics are reset at ``start``).
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"
        self.data_s = self.inputs_s = self.compute_s = 0.0
        self.hooks_s = 0.0  # between epochs: validation probes, checkpoints (added by the caller)
        self.images = self.steps = 0
        self.seconds = 0.0
        self.notes: dict[str, str] = {}
        self._events: list[tuple[Any, Any, Any]] = []
        self._t0 = self._mark = 0.0
        self._pending: list[Any] = []
        self._busy = BusySampler(device)
        self._extra: dict[str, float] = {}

    def start(self) -> "StepBreakdown":
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self._busy.start()
        self._t0 = self._mark = time.perf_counter()
        return self

    def wait_begins(self) -> None:
        self._mark = time.perf_counter()

    def _event(self) -> Any:
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def data_ready(self) -> None:
        now = time.perf_counter()
        self.data_s += now - self._mark
        self._mark = now
        self._pending = [self._event()] if self.cuda else []

    def inputs_built(self) -> None:
        now = time.perf_counter()
        if self.cuda:
            self._pending.append(self._event())
        else:
            self.inputs_s += now - self._mark
        self._mark = now

    def step_done(self, images: int) -> None:
        now = time.perf_counter()
        if self.cuda:
            self._pending.append(self._event())
            if len(self._pending) == 3:
                self._events.append(tuple(self._pending))
        else:
            self.compute_s += now - self._mark
        self._pending = []
        self.images += int(images)
        self.steps += 1
        self._mark = now

    def finish(self) -> "StepBreakdown":
        if self.cuda:
            torch.cuda.synchronize(self.device)
            for begin, built, done in self._events:
                self.inputs_s += begin.elapsed_time(built) / 1e3
                self.compute_s += built.elapsed_time(done) / 1e3
            self._events = []
            self._extra["peak_allocated_mb"] = torch.cuda.max_memory_allocated(self.device) / MIB
            self._extra["peak_reserved_mb"] = torch.cuda.max_memory_reserved(self.device) / MIB
        busy = self._busy.stop()
        if busy is not None:
            self._extra["gpu_busy"] = busy
        elif self.cuda:
            self.notes["gpu_busy"] = self._busy.reason or "not measured"
        self.seconds += time.perf_counter() - self._t0
        return self

    def as_dict(self) -> dict[str, float]:
        """Finite non-negative numbers: ``seconds`` (the stage's epochs), ``data_s``, ``inputs_s``,
        ``compute_s`` (forward, backward, optimiser), ``hooks_s`` (between epochs), ``steps``,
        ``images``, ``images_per_s`` (over ``seconds - hooks_s``) and, on CUDA,
        ``peak_allocated_mb``, ``peak_reserved_mb`` and ``gpu_busy`` (0..1, when NVML answered).
        On the CPU the three phases add up to the step time; on CUDA they are GPU-timeline
        intervals (inputs, compute) and host waits (data), which may overlap."""
        stepping = self.seconds - self.hooks_s
        out = {"seconds": self.seconds, "data_s": self.data_s, "inputs_s": self.inputs_s,
               "compute_s": self.compute_s, "hooks_s": self.hooks_s, "steps": float(self.steps),
               "images": float(self.images), "images_per_s": self.images / stepping if stepping > 0 else 0.0,
               **self._extra}
        return {k: float(v) if math.isfinite(v) and v >= 0 else 0.0 for k, v in out.items()}


class BreakdownLog:
    """A training's step breakdowns: ``stages`` (stage -> ``StepBreakdown.as_dict()``, the record's
    ``step_breakdown``) and ``notes`` (stage -> what was not measured, for ``record.info``)."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = {}
        self.notes: dict[str, str] = {}

    def add(self, name: str, steps: StepBreakdown) -> None:
        self.stages[name] = steps.as_dict()
        if steps.notes:
            self.notes[name] = "; ".join(f"{k}: {v}" for k, v in steps.notes.items())


def in_chunks(fn: Callable[..., torch.Tensor], *tensors: torch.Tensor, size: int) -> torch.Tensor:
    """``fn(*tensors)`` computed ``size`` items of the batch at a time and concatenated: for
    per-image networks (GroupNorm, no batch statistics) the same values with a bounded peak of
    intermediate activations; one call when the batch fits."""
    n = tensors[0].shape[0]
    if n <= size:
        return fn(*tensors)
    return torch.cat([fn(*(t[i : i + size] for t in tensors)) for i in range(0, n, size)])
