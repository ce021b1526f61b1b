"""Joining a Ray cluster (suite/orchestration/env.py): token-auth failures and unreachable addresses
become one-line suite errors that say what to do; the token never travels in the runtime_env.

No cluster: ``ray.init`` and the GCS client are replaced by fakes raising what Ray 2.60 raised by
hand against ``ray start --head`` with token auth on (see the strings below).
"""

from __future__ import annotations

import os

import socket
import time

import pytest

ray = pytest.importorskip("ray")

from suite.errors import InputError, SuiteError  # noqa: E402
from suite.orchestration import env  # noqa: E402
from suite.orchestration.env import ClusterAuthError, ClusterConnectError  # noqa: E402

ADDRESS = "127.0.0.2:46553"
# What ray.init(address=...) chained to its ConnectionError after ~20 s of retries (Ray 2.60).
GCS_REJECTION = (
    "Failed to connect to GCS. Last connection error: Traceback (most recent call last):\n"
    '  File ".../ray/_private/node.py", line 996, in _init_gcs_client\n'
    "ray.exceptions.AuthenticationError: RPC error: InvalidAuthToken: Authentication token is missing or "
    "incorrect. Note: RAY_AUTH_MODE is currently 'disabled' (not 'token'). Ensure that the token for the "
    "cluster is available in a local file (e.g., ~/.ray/auth_token or via RAY_AUTH_TOKEN_PATH) ...\n"
)
RPC_REJECTION = "RPC error: InvalidAuthToken: Authentication token is missing or incorrect"


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No token variables, an empty home (no ~/.ray/auth_token), Ray not initialised here."""
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", *env._PROXY_VARS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    return tmp_path


def set_mode(monkeypatch, token_mode: bool, has_token: bool) -> None:
    # Ray reads RAY_AUTH_MODE once per process (a cached config), so the tests set its answers.
    monkeypatch.setattr(env, "token_auth_enabled", lambda: token_mode)
    monkeypatch.setattr(env, "_has_local_token", lambda: has_token)


def rejected_connection_error() -> ConnectionError:
    try:
        try:
            raise RuntimeError(GCS_REJECTION)
        except RuntimeError as inner:
            raise ConnectionError(f"Failed to connect to Ray cluster at {ADDRESS}") from inner
    except ConnectionError as err:
        return err


def fake_init_raising(err: BaseException):
    def fake_init(*args, **kwargs):
        raise err

    return fake_init


def assert_says_what_to_do(message: str) -> None:
    assert ADDRESS in message
    for needle in ("RAY_AUTH_MODE=token", "RAY_AUTH_TOKEN=<token>", "RAY_AUTH_TOKEN_PATH=", "~/.ray/auth_token",
                   "ray start --head", "ray get-auth-token", "ray start --address", env.TOKEN_AUTH_DOCS):
        assert needle in message, needle
    assert "\n" not in message  # the CLI prints it as one `error:` line


def test_rejected_join_raises_an_input_error_that_says_where_the_token_is(clean_env, monkeypatch):
    set_mode(monkeypatch, token_mode=False, has_token=False)
    monkeypatch.setattr(env, "check_cluster_auth", lambda address: None)  # only ray.init's own failure
    monkeypatch.setattr(ray, "init", fake_init_raising(rejected_connection_error()))
    with pytest.raises(ClusterAuthError) as info:
        env.init_ray(address=ADDRESS)
    err = info.value
    assert isinstance(err, InputError) and err.exit_code == 2
    assert_says_what_to_do(str(err))
    assert "sent no token" in str(err) and "RAY_AUTH_MODE is unset here" in str(err)


def test_message_names_a_local_token_that_was_not_sent(clean_env, monkeypatch):
    token = clean_env / ".ray" / "auth_token"
    token.parent.mkdir()
    token.write_text("secret-token-value")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    set_mode(monkeypatch, token_mode=False, has_token=True)
    message = env.auth_error_message(ADDRESS, env._auth_failure_kind())
    assert f"the token found in {token} is only sent with RAY_AUTH_MODE=token" in message
    assert "RAY_AUTH_MODE is disabled here" in message
    assert "secret-token-value" not in message


def test_message_for_a_wrong_token(clean_env, monkeypatch):
    path = clean_env / "tok"
    path.write_text("not-the-cluster-token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(path))
    set_mode(monkeypatch, token_mode=True, has_token=True)
    message = env.auth_error_message(ADDRESS, env._auth_failure_kind())
    assert f"rejected this process's authentication token (read from $RAY_AUTH_TOKEN_PATH={path})" in message
    assert "not-the-cluster-token" not in message
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-the-variable")  # first in Ray's lookup order
    assert "(read from $RAY_AUTH_TOKEN)" in env.auth_error_message(ADDRESS, "rejected")


def test_token_mode_without_a_token_fails_before_any_request(clean_env, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(clean_env / "missing"))
    set_mode(monkeypatch, token_mode=True, has_token=False)

    def no_network(*args, **kwargs):
        raise AssertionError("must not connect: Ray's client aborts the process without a token")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(ray, "init", no_network)
    with pytest.raises(ClusterAuthError) as info:
        env.init_ray(address=ADDRESS)
    assert f"$RAY_AUTH_TOKEN_PATH names {clean_env / 'missing'}, which is missing or empty" in str(info.value)
    assert_says_what_to_do(str(info.value))


@pytest.fixture
def listener():
    """Something listening on a free local port, standing in for a head's GCS port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        yield f"127.0.0.1:{s.getsockname()[1]}"


class FakeGcsClient:
    """Stands in for ray._raylet.InnerGcsClient: answers the probe like a head with token auth on."""

    calls: list = []
    error: BaseException | None = None

    @classmethod
    def standalone(cls, address, cluster_id, timeout_ms):
        cls.calls.append((address, timeout_ms))
        if cls.error is not None:
            raise cls.error
        return cls()


def test_probe_detects_a_rejection_without_ray_init(clean_env, monkeypatch, listener):
    set_mode(monkeypatch, token_mode=False, has_token=False)
    FakeGcsClient.calls, FakeGcsClient.error = [], ray.exceptions.AuthenticationError(RPC_REJECTION)
    monkeypatch.setattr(ray._raylet, "InnerGcsClient", FakeGcsClient)
    monkeypatch.setattr(ray, "init", fake_init_raising(AssertionError("ray.init must not run: ~20 s of retries")))
    with pytest.raises(ClusterAuthError) as info:
        env.init_ray(address=listener)
    assert FakeGcsClient.calls == [(listener, int(env._PROBE_TIMEOUT_S * 1000))]
    assert listener in str(info.value) and "RAY_AUTH_MODE=token" in str(info.value)


def test_probe_leaves_other_answers_to_ray_init(clean_env, monkeypatch, listener):
    set_mode(monkeypatch, token_mode=True, has_token=True)
    FakeGcsClient.calls, FakeGcsClient.error = [], ray.exceptions.RpcError("Timed out while waiting for GCS")
    monkeypatch.setattr(ray._raylet, "InnerGcsClient", FakeGcsClient)
    env.check_cluster_auth(listener)  # no verdict: a slow GCS may still come up
    FakeGcsClient.error = None
    env.check_cluster_auth(listener)
    assert len(FakeGcsClient.calls) == 2


def test_nothing_listening_is_a_connect_error_not_13_minutes_of_retries(clean_env, monkeypatch):
    set_mode(monkeypatch, token_mode=False, has_token=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr(ray, "init", fake_init_raising(AssertionError("ray.init must not run")))
    monkeypatch.setattr(env, "JOIN_WAIT_S", 0.0)
    with pytest.raises(ClusterConnectError) as info:
        env.init_ray(address=closed)
    assert not isinstance(info.value, InputError) and info.value.exit_code == 1
    assert f"nothing answers at {closed}" in str(info.value)
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")  # a raw TCP check proves nothing then
    env.check_cluster_auth(closed, wait_s=0)


def test_other_connection_errors_become_a_suite_error(clean_env, monkeypatch):
    set_mode(monkeypatch, token_mode=False, has_token=False)
    monkeypatch.setattr(env, "check_cluster_auth", lambda address: None)
    monkeypatch.setattr(ray, "init", fake_init_raising(ConnectionError("Could not find any running Ray instance.")))
    with pytest.raises(ClusterConnectError) as info:
        env.init_ray(address="auto")
    assert isinstance(info.value, SuiteError)
    assert "could not join the Ray cluster at auto: Could not find any running Ray instance." in str(info.value)


def test_auth_failure_is_found_in_the_exception_chain():
    assert env._is_auth_failure(rejected_connection_error())
    assert env._is_auth_failure(ray.exceptions.AuthenticationError("anything"))
    assert not env._is_auth_failure(ConnectionError("Failed to connect to Ray cluster at x:1"))


def test_runtime_env_never_carries_the_token(monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "secret")
    monkeypatch.setenv("RCSUITE_PROBE", "1")
    env_vars = env.worker_runtime_env({"RAY_AUTH_TOKEN": "secret", "EXTRA": "x"})["env_vars"]
    assert "RAY_AUTH_TOKEN" not in env_vars
    assert env_vars["RCSUITE_PROBE"] == "1" and env_vars["EXTRA"] == "x"


def test_runtime_env_names_the_plugin_modules_to_every_worker(monkeypatch):
    """The quick-suite guard for the ``RCSUITE_METHOD_MODULES`` half of integration/test_method_plugins_ray.py:
    a method listed only there must be found in the trial workers too."""
    from suite.methods.registry import MODULES_ENV

    monkeypatch.setenv(MODULES_ENV, "toy_plugin_a,toy_plugin_b")
    assert env.worker_runtime_env()["env_vars"][MODULES_ENV] == "toy_plugin_a,toy_plugin_b"


def test_runtime_env_keeps_the_callers_pythonpath_after_the_repo(monkeypatch, tmp_path):
    """A plugin method importable only through the caller's PYTHONPATH must import on every node
    (the quick-suite guard for integration/test_method_plugins_ray.py)."""
    plugins, more = tmp_path / "plugins", tmp_path / "more"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(plugins), "", str(env.REPO_ROOT), str(more)]))
    paths = env.worker_runtime_env()["env_vars"]["PYTHONPATH"].split(os.pathsep)
    assert paths == [str(env.REPO_ROOT), str(plugins), str(more)]
    monkeypatch.delenv("PYTHONPATH")
    assert env.worker_runtime_env()["env_vars"]["PYTHONPATH"] == str(env.REPO_ROOT)

# --- the local cluster's stop (suite/tools/local_cluster.py), without Ray: it lives here
# because it is the other half of "joining a cluster started with `ray start`".


def test_local_cluster_stop_ends_its_process_groups_and_nothing_else(tmp_path):
    import subprocess

    from suite.orchestration.procs import is_running as _is_running
    from suite.orchestration.procs import read_proc as _read_proc
    from suite.tools.local_cluster import LocalCluster, NodeProcess

    def node(role: str) -> NodeProcess:
        # SIGTERM ends the sh (the "ray start") but not its background sleep: stop must kill that too
        popen = subprocess.Popen(["sh", "-c", "sleep 60 & wait"], start_new_session=True)
        return NodeProcess(role, "127.0.0.9", popen, tmp_path / f"{role}.log")

    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    cluster = LocalCluster(root=tmp_path / "root", address="127.0.0.9:1", token_path=tmp_path / "t",
                           nodes=[node("head"), node("worker")])
    (tmp_path / "root").mkdir()
    try:
        deadline = time.monotonic() + 10
        while len(cluster.refresh_pids()) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)  # until each sh has forked its sleep
        pids = cluster.started_pids()
        assert len(pids) == 4 and bystander.pid not in pids
        cluster.stop(grace_s=1.0)
        assert not [pid for pid, start in pids.items() if _is_running(pid, start)]
        assert not (tmp_path / "root").exists()
        assert bystander.poll() is None and _read_proc(bystander.pid) is not None
        cluster.stop()  # idempotent
    finally:
        bystander.kill()
        bystander.wait()
        for n in cluster.nodes:
            if n.popen.poll() is None:
                n.popen.kill()
