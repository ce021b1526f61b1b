"""A Ray cluster's resources for ``run_suite.py plan --address`` (read only: nothing is scheduled).

``cluster_slots`` joins the cluster (``ray.init(address=...)``), reads ``ray.cluster_resources()``
and turns CPUs/GPUs into shard slots with ``suite.sweep_rules.slots_from_resources``; it disconnects
again (a joined cluster is never stopped).
"""

from __future__ import annotations

import os
from typing import Any

import ray

from suite.config import ConfigError
from suite.sweep_rules import gpus_per_training, slots_from_resources


def cluster_resources(address: str) -> dict[str, float]:
    """``{"CPU": ..., "GPU": ...}`` of the cluster at ``address`` (``auto`` or ``HOST:PORT``)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    joined = not ray.is_initialized()
    if joined:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    try:
        total = ray.cluster_resources()
        return {"CPU": float(total.get("CPU", 0.0)), "GPU": float(total.get("GPU", 0.0))}
    finally:
        if joined:
            ray.shutdown()  # disconnects this driver only; the cluster keeps running


def cluster_slots(address: str, *, cpus_per_trial: float = 1.0, num_workers: int = 1,
                  use_gpu: bool = False, gpus_per_trial: float = 0.0) -> tuple[int, dict[str, Any]]:
    """(shard slots, the resources they came from) of the cluster at ``address``."""
    res = cluster_resources(address)
    gpus = gpus_per_training(gpus_per_trial, use_gpu)
    slots = slots_from_resources(res["CPU"], res["GPU"], cpus_per_trial=cpus_per_trial,
                                 num_workers=num_workers, gpus_per_trial=gpus)
    if slots < 1:
        raise ConfigError(f"cluster {address} has {res['CPU']:g} CPU / {res['GPU']:g} GPU: not one slot of "
                          f"{num_workers} worker(s) x {cpus_per_trial:g} CPU{f' + {gpus:g} GPU' if gpus else ''}")
    return slots, res
