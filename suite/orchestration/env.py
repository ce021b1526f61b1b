"""Start or join Ray the way the suite needs it.

``init_ray`` starts a quiet local instance by default (no dashboard, usage stats off, a short temp
folder because Ray's unix socket paths must stay under ~100 characters, worker logs forwarded to the
driver) or joins a running cluster with ``address="auto"`` / ``"HOST:PORT"``. Either way the job's
``runtime_env`` puts the repository on the workers' ``PYTHONPATH``, so ``import suite`` works in
every Tune trial and Ray Train worker even without ``pip install -e .``.

The TRAIN_DRIVER resource: when a Tune trial launches a Ray Train run (``num_workers > 1``), the
trial's own process only waits for the Train workers. If it held a CPU, a 2-core machine could not
fit it plus two 1-CPU workers and the run would hang. So a local instance declares a custom
resource ``TRAIN_DRIVER`` (one unit per CPU) and such trials request one unit of it instead of a CPU;
the Train workers then get the CPUs. Cluster nodes must declare it themselves
(``ray start ... --resources '{"TRAIN_DRIVER": 8}'``) to run DDP trials inside a sweep.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import ray

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAIN_DRIVER = "TRAIN_DRIVER"

# Environment passed to every worker of the job: the package path, and no usage reporting.
_FORWARDED_PREFIXES = ("RCSUITE_",)


def short_temp_dir() -> tuple[str, bool]:
    """A short temp folder for Ray: ``$RAY_TMPDIR`` when set, else a new /tmp/rcs-XXXX (created=True)."""
    existing = os.environ.get("RAY_TMPDIR")
    if existing:
        Path(existing).mkdir(parents=True, exist_ok=True)
        return existing, False
    return tempfile.mkdtemp(prefix="rcs-", dir="/tmp" if os.path.isdir("/tmp") else None), True


def worker_runtime_env(extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """``runtime_env`` for the job: PYTHONPATH with the repo root, usage stats off, RCSUITE_* vars."""
    paths = [str(REPO_ROOT)]
    if os.environ.get("PYTHONPATH"):
        paths += [p for p in os.environ["PYTHONPATH"].split(os.pathsep) if p and p != str(REPO_ROOT)]
    env = {"PYTHONPATH": os.pathsep.join(paths), "RAY_USAGE_STATS_ENABLED": "0"}
    env.update({k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_PREFIXES)})
    env.update(extra_env or {})
    return {"env_vars": env, "worker_process_setup_hook": "suite.orchestration.env.quiet_worker_logs"}


# Without a dashboard there is no state API; Ray Train's placement-group cleaner then warns every
# few seconds that it cannot query its controller (harmless: the controller is alive). A sweep
# checkpoints at every report, and Tune logs each one at INFO level.
_NOISY_LOGGERS = (
    "ray.train.v2._internal.execution.controller.placement_group_cleaner",
    "ray.train._internal.storage",
)


def quiet_worker_logs() -> None:
    """Runs in every Ray worker process at start-up (runtime_env worker_process_setup_hook)."""
    import logging

    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def init_ray(
    address: str | None = None,
    num_cpus: int | None = None,
    resources: dict[str, float] | None = None,
    *,
    num_gpus: int | None = None,
    log_to_driver: bool = True,
) -> dict[str, Any]:
    """Start a local Ray instance (``address=None``) or join a cluster; returns what was done.

    Returns ``{"started": bool, "address": str, "temp_dir": str | None, "temp_dir_created": bool}``;
    ``started`` is True only when this call started a local instance: the caller then owns it and
    ends it with ``shutdown_ray``. When Ray is already initialised in this process it is reused.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return {"started": False, "address": ray.get_runtime_context().gcs_address, "temp_dir": None,
                "temp_dir_created": False}
    common = dict(
        runtime_env=worker_runtime_env(),
        log_to_driver=log_to_driver,
        logging_level="WARNING",
        configure_logging=True,
    )
    if address:
        ray.init(address=address, **common)
        return {"started": False, "address": ray.get_runtime_context().gcs_address, "temp_dir": None,
                "temp_dir_created": False}
    cpus = int(num_cpus) if num_cpus else (os.cpu_count() or 1)
    custom = {TRAIN_DRIVER: float(cpus)}
    custom.update(resources or {})
    temp_dir, created = short_temp_dir()
    ray.init(
        num_cpus=cpus,
        num_gpus=num_gpus,
        resources=custom,
        include_dashboard=False,
        _temp_dir=temp_dir,
        **common,
    )
    return {"started": True, "address": ray.get_runtime_context().gcs_address, "temp_dir": temp_dir,
            "temp_dir_created": created}


def shutdown_ray(info: dict[str, Any]) -> None:
    """End what ``init_ray`` started (nothing when it joined a cluster or reused an instance)."""
    if not info.get("started"):
        return
    ray.shutdown()
    if info.get("temp_dir_created") and info.get("temp_dir"):
        shutil.rmtree(info["temp_dir"], ignore_errors=True)


def has_train_driver_resource() -> bool:
    return ray.cluster_resources().get(TRAIN_DRIVER, 0) > 0
