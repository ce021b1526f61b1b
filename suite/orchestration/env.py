"""Start or join Ray the way the suite needs it.

``init_ray`` starts a quiet local instance by default (no dashboard, usage stats off, a short temp
folder because Ray's unix socket paths must stay under ~100 characters, worker logs forwarded to the
driver) or joins a running cluster with ``address="auto"`` / ``"HOST:PORT"``. Either way the job's
``runtime_env`` puts the repository on the workers' ``PYTHONPATH``, so ``import suite`` works in
every Tune trial and Ray Train worker even without ``pip install -e .``.

What a trial that only coordinates holds (``COORDINATOR``): a pooled trial whose categories run as
shards, or a trial driving a Ray Train run (``num_workers > 1``), only waits for its shards / Train
workers. If it held a CPU, a 2-core machine could not fit it plus two 1-CPU workers and the run would
hang, and on a cluster every node holding a coordinator would lose a training slot. Ray refuses a
trial that asks for nothing at all, so it asks for no CPU and no GPU but a token amount of Ray's
built-in ``memory`` resource, which every node declares by itself: a cluster started with a plain
``ray start`` (or KubeRay's defaults) runs every kind of sweep, and all CPUs and GPUs stay with the
trainings. (Earlier versions needed a custom ``TRAIN_DRIVER`` resource on every node; nothing asks
for it now, and a local instance no longer declares it.)

Token authentication (Ray 2.60): a local ``ray.init()`` turns it on and, when missing, writes a token
to ``~/.ray/auth_token``; from then on ``ray start --head`` on that machine finds the token and turns
it on too. Nodes joining with ``ray start --address`` and drivers joining with an explicit address
never turn it on by themselves (``address="auto"`` does when a token is found): they need
``RAY_AUTH_MODE=token`` and the head's token (``RAY_AUTH_TOKEN``, else the file named by
``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``). Without them Ray retries for about 20 s and
ends with a bare "Failed to connect to Ray cluster"; ``init_ray`` asks the cluster once first and
raises ``ClusterAuthError`` at once, saying where the token is and how to pass it.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import ray

from suite.errors import InputError, SuiteError
from suite.orchestration.temp_dirs import owned_temp_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAIN_DRIVER = "TRAIN_DRIVER"  # what older versions asked for (see the module docstring); nothing asks for it now
# A coordinating trial's request (see the module docstring): no CPU, no GPU, 64 MiB of Ray's memory resource.
COORDINATOR_MEMORY = 64 * 1024 * 1024
COORDINATOR: dict[str, float] = {"cpu": 0, "memory": COORDINATOR_MEMORY}

# Environment passed to every worker of the job: the package path, and no usage reporting.
_FORWARDED_PREFIXES = ("RCSUITE_",)
# Never put in the runtime_env: Ray stores it with the job, where anyone who can list jobs reads it.
# Workers do not need it anyway: the raylet that starts them already holds its node's token.
_NEVER_FORWARDED = ("RAY_AUTH_TOKEN",)

TOKEN_AUTH_DOCS = "https://docs.ray.io/en/latest/ray-security/token-auth.html"
DEFAULT_TOKEN_PATH = "~/.ray/auth_token"
# How long the pre-flight look at a cluster may take; a slower answer is left to ray.init's retries.
_PROBE_TIMEOUT_S = 3.0
# How long to wait for anything to listen at the address (a head may still be starting). Ray itself
# would retry for ~20 tries x ~40 s (seen: 13 min) before its bare "Failed to connect".
JOIN_WAIT_S = 20.0
_PROXY_VARS = ("grpc_proxy", "https_proxy", "http_proxy", "GRPC_PROXY", "HTTPS_PROXY", "HTTP_PROXY")


class ClusterAuthError(InputError):
    """Joining a Ray cluster failed its token authentication: no token sent, none found, or a wrong one.

    An input error (exit code 2): the fix is the caller's environment, not the run.
    """


class ClusterConnectError(SuiteError):
    """The Ray cluster at the given address could not be joined (not running, unreachable, ...)."""


def short_temp_dir() -> tuple[str, bool]:
    """A short temp folder for Ray: ``$RAY_TMPDIR`` when set, else a new /tmp/rcs-XXXX (created=True), with
    an owner file so that a killed driver's folder is removed later (``suite.orchestration.temp_dirs``)."""
    existing = os.environ.get("RAY_TMPDIR")
    if existing:
        Path(existing).mkdir(parents=True, exist_ok=True)
        return existing, False
    return owned_temp_dir("rcs-", "/tmp" if os.path.isdir("/tmp") else None), True


def worker_runtime_env(extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """``runtime_env`` for the job: PYTHONPATH with the repo root, usage stats off, RCSUITE_* vars."""
    paths = [str(REPO_ROOT)]
    if os.environ.get("PYTHONPATH"):
        paths += [p for p in os.environ["PYTHONPATH"].split(os.pathsep) if p and p != str(REPO_ROOT)]
    env = {"PYTHONPATH": os.pathsep.join(paths), "RAY_USAGE_STATS_ENABLED": "0"}
    env.update({k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_PREFIXES)})
    env.update(extra_env or {})
    for key in _NEVER_FORWARDED:
        env.pop(key, None)
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
        _join_cluster(address, common)
        return {"started": False, "address": ray.get_runtime_context().gcs_address, "temp_dir": None,
                "temp_dir_created": False}
    cpus = int(num_cpus) if num_cpus else (os.cpu_count() or 1)
    custom = dict(resources or {})
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


def _join_cluster(address: str, init_kwargs: dict[str, Any]) -> None:
    """``ray.init(address=...)`` with Ray's connection errors turned into the suite's one-line errors."""
    check_cluster_auth(address)
    try:
        ray.init(address=address, **init_kwargs)
    except ConnectionError as err:
        if _is_auth_failure(err):
            raise ClusterAuthError(auth_error_message(address, _auth_failure_kind())) from err
        raise ClusterConnectError(
            f"could not join the Ray cluster at {address}: {err}. Is its head running "
            f"(`ray status --address {address}` on a node of the cluster) and reachable from this machine?"
        ) from err
    except _AUTH_ERRORS as err:  # RAY_AUTH_MODE=token but no token: raised before connecting
        raise ClusterAuthError(auth_error_message(address, "missing")) from err


_AUTH_ERRORS: tuple[type[BaseException], ...] = tuple(
    t for t in (getattr(ray.exceptions, "AuthenticationError", None),) if t is not None
)
# What Ray's GCS answers to a missing or wrong token (seen in Ray 2.60 as the text of the
# AuthenticationError, and inside the RuntimeError that ray.init chains to its ConnectionError).
_AUTH_MARKERS = ("InvalidAuthToken", "Authentication token is missing or incorrect")


def _is_auth_failure(err: BaseException) -> bool:
    """Whether ``err`` or an exception it was raised from is a token rejection."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _AUTH_ERRORS) or any(m in str(current) for m in _AUTH_MARKERS):
            return True
        current = current.__cause__ or current.__context__
    return False


def token_auth_enabled() -> bool:
    """Whether this process sends a token when it talks to a cluster (``RAY_AUTH_MODE=token``)."""
    try:
        from ray._private.authentication.authentication_utils import is_token_auth_enabled

        return bool(is_token_auth_enabled())
    except Exception:  # a Ray without token auth, or a moved private module: read the variable
        return os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "token"


def local_token_source() -> str | None:
    """Where Ray in this process would read its token from (never the token itself), or None.

    Ray's lookup order: ``$RAY_AUTH_TOKEN``, then the file ``$RAY_AUTH_TOKEN_PATH``, then
    ``~/.ray/auth_token``.
    """
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return "$RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH", "").strip()
    if path:  # Ray does not fall back to ~/.ray/auth_token when this file is missing
        return f"$RAY_AUTH_TOKEN_PATH={path}" if _non_empty_file(Path(path).expanduser()) else None
    default = Path(DEFAULT_TOKEN_PATH).expanduser()
    return str(default) if _non_empty_file(default) else None


def _non_empty_file(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


def _has_local_token() -> bool:
    """Ray's own answer to "is there a token to send?", else ``local_token_source``'s."""
    try:
        from ray._raylet import AuthenticationTokenLoader

        return bool(AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True))
    except _AUTH_ERRORS:  # e.g. RAY_AUTH_TOKEN_PATH names a missing or empty file
        return False
    except Exception:  # a Ray without token auth, or a moved private API
        return local_token_source() is not None


def auth_error_message(address: str, kind: str) -> str:
    """The one-line ``ClusterAuthError`` text: what went wrong here, where the token is, how to pass it.

    ``kind``: ``"not_sent"`` (this process is not in token mode), ``"rejected"`` (it sent a token
    the cluster does not accept) or ``"missing"`` (token mode but no token found here).
    """
    source = local_token_source()
    mode = os.environ.get("RAY_AUTH_MODE") or "unset"
    if kind == "missing":
        path = os.environ.get("RAY_AUTH_TOKEN_PATH", "").strip()
        where = (f"$RAY_AUTH_TOKEN_PATH names {path}, which is missing or empty" if path else
                 f"$RAY_AUTH_TOKEN is unset and {DEFAULT_TOKEN_PATH} is missing or empty")
        what = (f"RAY_AUTH_MODE=token is set but this process has no Ray authentication token ({where}), "
                f"so it cannot join the Ray cluster at {address}.")
    elif kind == "rejected":
        what = (f"the Ray cluster at {address} rejected this process's authentication token "
                f"(read from {source or 'nowhere'}): it is not the cluster's token.")
    else:
        what = (f"the Ray cluster at {address} requires token authentication and this process sent no token "
                f"(RAY_AUTH_MODE is {mode} here, not token")
        what += (f"; the token found in {source} is only sent with RAY_AUTH_MODE=token)." if source else ").")
    return (
        f"{what} The cluster's token is on its head node: $RAY_AUTH_TOKEN, the file $RAY_AUTH_TOKEN_PATH or "
        f"{DEFAULT_TOKEN_PATH} of the user who ran `ray start --head` (`ray get-auth-token` there prints it). "
        "Give the same token to this process and to every node that joins with `ray start --address`: "
        "set RAY_AUTH_MODE=token and either RAY_AUTH_TOKEN=<token>, or RAY_AUTH_TOKEN_PATH=<file holding it>, "
        f"or copy the head's file to {DEFAULT_TOKEN_PATH}. See {TOKEN_AUTH_DOCS}"
    )


def _auth_failure_kind() -> str:
    if not token_auth_enabled():
        return "not_sent"
    return "rejected" if _has_local_token() else "missing"


def _host_port(address: str) -> tuple[str, int] | None:
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or "://" in address:
        return None
    return host.strip("[]"), int(port)


def _listening(target: tuple[str, int], wait_s: float) -> bool:
    """Whether a TCP connection to ``target`` succeeds within ``wait_s`` (retried every second)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with socket.create_connection(target, timeout=min(_PROBE_TIMEOUT_S, max(wait_s, 0.1))):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(1.0)


def check_cluster_auth(address: str, timeout_s: float = _PROBE_TIMEOUT_S, wait_s: float | None = None) -> None:
    """Fail at once when the cluster at ``address`` will refuse this process, or is not there.

    Raises ``ClusterAuthError`` after one direct request to the cluster's GCS (instead of
    ``ray.init``'s ~20 s of retries ending in a bare "Failed to connect"), and
    ``ClusterConnectError`` when nothing listens at ``HOST:PORT`` for ``wait_s`` (default
    ``JOIN_WAIT_S``; skipped behind a proxy, which a plain TCP connection would not use). Best
    effort otherwise: ``address="auto"``, a slow answer or a Ray without the private client used
    here return quietly and leave the verdict to ``ray.init``.
    """
    if token_auth_enabled() and not _has_local_token():
        # Ray's C++ client aborts the whole process when asked to send a token it does not have,
        # so this must be caught before any request (ray.init checks it too, with a bare message).
        raise ClusterAuthError(auth_error_message(address, "missing"))
    target = _host_port(address)
    if target is None:
        return
    # The GCS client would wait ~40 s for an answer from an address where nothing listens.
    if not _listening(target, JOIN_WAIT_S if wait_s is None else wait_s):
        if any(os.environ.get(v) for v in _PROXY_VARS):
            return
        raise ClusterConnectError(
            f"nothing answers at {address} (waited {JOIN_WAIT_S if wait_s is None else wait_s:.0f}s): is the "
            "Ray head running, is that its GCS port (`ray start --head --port`, default 6379), and is it "
            "reachable from this machine?")
    try:
        from ray._raylet import InnerGcsClient

        InnerGcsClient.standalone(address.strip(), None, int(timeout_s * 1000))
    except Exception as err:  # ImportError/AttributeError/TypeError: a Ray without this client
        if _is_auth_failure(err):
            raise ClusterAuthError(auth_error_message(address, _auth_failure_kind())) from err


def shutdown_ray(info: dict[str, Any]) -> None:
    """End what ``init_ray`` started (nothing when it joined a cluster or reused an instance)."""
    if not info.get("started"):
        return
    ray.shutdown()
    if info.get("temp_dir_created") and info.get("temp_dir"):
        shutil.rmtree(info["temp_dir"], ignore_errors=True)

