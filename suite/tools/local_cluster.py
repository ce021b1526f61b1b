"""A real two-node Ray cluster on this machine, started the way the README tells users to, plus a tiny sweep on it.

Why: ``ray.cluster_utils.Cluster`` (used by the multi-node test) starts its nodes from inside the
test process, so it never meets what a user meets with ``ray start``: separate processes, token
authentication (Ray 2.60's ``ray start --head`` turns it on whenever the head has a token), a second
node and a driver that must be given that token, and nodes that outlive the driver. This module
starts exactly that and stops exactly what it started:

- the head: ``ray start --head --block`` on 127.0.0.2, the worker node: ``ray start --block
  --address 127.0.0.2:PORT`` on 127.0.0.3 (the whole 127/8 is loopback on Linux, so each node has its
  own IP), each with ``--num-cpus 1`` and ``TRAIN_DRIVER: 1`` (see ``suite.orchestration.env``);
- its own short temp folder (Ray's socket paths must stay under ~100 characters), free ports (so it
  never meets another Ray on this machine, e.g. one on 6379 or the client port 10001), and its own
  token file there: every node and driver gets ``RAY_AUTH_MODE=token`` and
  ``RAY_AUTH_TOKEN_PATH=<that file>``, exactly what the README asks of a real cluster;
- stopping: never ``ray stop`` (it ends every Ray process of the machine, other users' too). Each
  ``ray start --block`` runs in a session of its own; ``stop`` signals those process groups and the
  processes recorded in them (PID and start time, so a reused PID is never hit), SIGTERM first,
  SIGKILL after a grace period. ``stop`` also runs at interpreter exit, and on Ctrl-C.

Command line::

    python -m suite.tools.local_cluster            # start, tiny sweep, summary, stop
    python -m suite.tools.local_cluster --keep     # leave it running; prints how to use and stop it

As a library: ``start_local_cluster(...)`` returns a ``LocalCluster`` (a context manager);
``run_tiny_sweep(cluster, storage)`` runs ``run_suite.py sweep --address ...`` against it.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suite.orchestration.procs import Proc, all_procs, is_running
from suite.orchestration.temp_dirs import owned_temp_dir
from suite.records import find_records, read_record

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAD_IP = "127.0.0.2"
WORKER_IP = "127.0.0.3"
TRAIN_DRIVER = "TRAIN_DRIVER"  # the custom resource of suite.orchestration.env (not imported: no Ray needed here)
STARTED_LINE = "Ray runtime started."
# Variables of the caller that would point a node or driver at another cluster or token.
_DROPPED_ENV = ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE", "RAY_TMPDIR")


class LocalClusterError(RuntimeError):
    """The local cluster could not be started (a node failed or did not join in time)."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ray_cli() -> str | None:
    """The ``ray`` command of this interpreter's environment (else the one on PATH), or None."""
    beside = Path(sys.executable).parent / "ray"
    return str(beside) if beside.is_file() else shutil.which("ray")


# ---------------------------------------------------------------------------------------------------
# the cluster


@dataclass
class NodeProcess:
    """One ``ray start --block`` process; its process group holds the node's Ray processes."""

    role: str  # "head" | "worker"
    ip: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pgid(self) -> int:
        return self.popen.pid  # started with start_new_session: it leads its own group

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class LocalCluster:
    """A running local cluster: where it is, how to talk to it, and every process it started."""

    root: Path  # temp folder: Ray's temp dir, the token, node logs
    address: str
    token_path: Path
    nodes: list[NodeProcess] = field(default_factory=list)
    node_info: list[dict[str, Any]] = field(default_factory=list)  # filled by wait_for_nodes
    _pids: dict[int, int] = field(default_factory=dict)  # pid -> start time, all ever seen
    _stopped: bool = False

    @property
    def ray_temp_dir(self) -> Path:
        return self.root / "ray"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for a process that joins this cluster (a node, a driver): token auth on, its token."""
        env = {k: v for k, v in (os.environ if base is None else base).items() if k not in _DROPPED_ENV}
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(self.token_path), RAY_USAGE_STATS_ENABLED="0")
        return env

    def refresh_pids(self) -> set[int]:
        """Record every process now in a node's process group or below a node's ``ray start``."""
        procs = all_procs()
        ours = {p.pgid for p in procs if self._pids.get(p.pid) == p.start}
        # A group ID stays reserved while any member lives, so the group is still ours when its
        # leader runs (not reaped by us) or when a member we recorded runs.
        groups = {n.pgid for n in self.nodes if n.popen.poll() is None or n.pgid in ours}
        leaders = {n.popen.pid for n in self.nodes if n.popen.returncode is None}
        children: dict[int, list[Proc]] = {}
        for p in procs:
            children.setdefault(p.ppid, []).append(p)
        found = {p.pid: p for p in procs
                 if (p.pgid in groups or p.pid in leaders) and p.state not in ("Z", "X")}
        stack = [p for r in leaders for p in children.get(r, [])]
        while stack:  # descendants that left the group (a process may call setsid)
            p = stack.pop()
            if p.state not in ("Z", "X"):
                found.setdefault(p.pid, p)
            stack.extend(children.get(p.pid, []))
        for pid, p in found.items():
            self._pids.setdefault(pid, p.start)
        return set(self._pids)

    def started_pids(self) -> dict[int, int]:
        """Every process this cluster started so far (pid -> start time), for checks after ``stop``."""
        if not self._stopped:
            self.refresh_pids()
        return dict(self._pids)

    def alive_pids(self) -> set[int]:
        return {pid for pid, start in self._pids.items() if is_running(pid, start)}

    def _kill_all(self, sig: int) -> None:
        for node in reversed(self.nodes):
            if node.popen.poll() is None:  # not reaped: its PID, the group ID, cannot name another group
                try:
                    os.killpg(node.pgid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        for pid, start in self._pids.items():
            if is_running(pid, start):
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass

    def _wait_all(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            # Reap after the check: a node that exits between a poll and the check is a zombie,
            # which counts as stopped there, and its Popen would keep returncode None.
            if not self.alive_pids() and all(node.popen.poll() is not None for node in self.nodes):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)

    def stop(self, grace_s: float = 10.0, remove_files: bool = True) -> None:
        """Stop exactly the processes this cluster started (worker node first); idempotent.

        SIGTERM to each ``ray start --block`` lets it end its node's processes in order; whatever
        still runs after ``grace_s`` (a head's GCS was seen lingering over 20 s when every process
        got SIGTERM at once) is killed: the process groups and each recorded process.
        ``remove_files`` deletes the temp folder (logs, token) once nothing runs.
        """
        if self._stopped:
            return
        self.refresh_pids()
        for node in reversed(self.nodes):  # the worker node first: it would otherwise retry the lost head
            if node.popen.poll() is None:
                node.popen.terminate()
        if not self._wait_all(grace_s):
            self.refresh_pids()  # anything spawned while stopping
            self._kill_all(signal.SIGKILL)
            self._wait_all(10.0)
        self._stopped = True
        if remove_files and not self.alive_pids():
            shutil.rmtree(self.root, ignore_errors=True)

    def stop_hint(self) -> str:
        """Shell lines that stop this cluster by hand (what ``stop`` does, without Python)."""
        leaders = " ".join(str(n.pgid) for n in reversed(self.nodes))
        groups = " ".join(f"-{n.pgid}" for n in reversed(self.nodes))
        return f"kill -TERM {leaders}; sleep 10; kill -KILL -- {groups} 2>/dev/null; rm -rf {self.root}"

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _wait_started(node: NodeProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if node.popen.poll() is not None:
            raise LocalClusterError(f"the {node.role} node ({node.ip}) exited with code {node.popen.returncode}; "
                                    f"log {node.log_path}:\n{node.log_tail()}")
        try:
            if STARTED_LINE in node.log_path.read_text(errors="replace"):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    raise LocalClusterError(f"the {node.role} node ({node.ip}) did not start within {timeout_s:.0f}s; "
                            f"log {node.log_path}:\n{node.log_tail()}")


def _wait_listening(node: NodeProcess, target: tuple[str, int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if node.popen.poll() is not None:
            _wait_started(node, 0)  # raises with the log
        try:
            with socket.create_connection(target, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise LocalClusterError(f"the {node.role} node's GCS ({target[0]}:{target[1]}) did not listen within "
                            f"{timeout_s:.0f}s; log {node.log_path}:\n{node.log_tail()}")


# Runs in a child process: a process holds one token (Ray caches it), and the caller may run a Ray
# of its own with another one.
_NODES_SCRIPT = textwrap.dedent("""
    import json, sys, time
    import ray
    ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
    want, deadline = int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
    while True:
        alive = [n for n in ray.nodes() if n["Alive"]]
        if len(alive) >= want or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    print(json.dumps([{"node_id": n["NodeID"], "ip": n["NodeManagerAddress"], "resources": n["Resources"]}
                      for n in alive]))
""")


def wait_for_nodes(cluster: LocalCluster, count: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """Wait until ``count`` nodes are alive (asked by a driver with the cluster's token); returns them."""
    out = subprocess.run([sys.executable, "-c", _NODES_SCRIPT, cluster.address, str(count), str(timeout_s)],
                         env=cluster.env(), capture_output=True, text=True, timeout=timeout_s + 60)
    if out.returncode != 0:
        raise LocalClusterError(f"could not list the nodes of {cluster.address}:\n{out.stderr[-3000:]}")
    nodes = json.loads(out.stdout.strip().splitlines()[-1])
    if len(nodes) < count:
        raise LocalClusterError(f"only {len(nodes)} of {count} node(s) joined {cluster.address} within "
                                f"{timeout_s:.0f}s: {nodes}")
    cluster.node_info = nodes
    return nodes


def start_local_cluster(
    *,
    head_ip: str = HEAD_IP,
    worker_ips: tuple[str, ...] = (WORKER_IP,),
    cpus_per_node: int = 1,
    train_driver_per_node: int = 1,
    object_store_mb: int = 256,
    port: int | None = None,
    root: str | Path | None = None,
    start_timeout_s: float = 60.0,
    stop_at_exit: bool = True,
) -> LocalCluster:
    """Start a head and one node per ``worker_ips`` entry as separate ``ray start`` processes.

    Returns when every node has joined (checked by a driver that authenticates with the cluster's
    token). On any failure the processes started so far are stopped before the error propagates.
    ``stop_at_exit`` registers ``stop`` with ``atexit`` (a no-op once stopped).
    """
    ray = ray_cli()
    if ray is None:
        raise LocalClusterError("the `ray` command is not installed (pip install 'ray[default]')")
    root = Path(root) if root is not None else Path(owned_temp_dir("rcs-lc-", "/tmp"))
    root.mkdir(parents=True, exist_ok=True)
    token_path = root / "auth_token"
    # A fresh token rather than ~/.ray/auth_token: the script never writes into the user's home,
    # and a stale token there cannot leak in (_DROPPED_ENV keeps the caller's token variables out).
    fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    port = port or free_port(head_ip)
    cluster = LocalCluster(root=root, address=f"{head_ip}:{port}", token_path=token_path)
    if stop_at_exit:
        atexit.register(cluster.stop)
    resources = json.dumps({TRAIN_DRIVER: train_driver_per_node})
    common = ["--block", "--num-cpus", str(cpus_per_node), "--resources", resources,
              "--temp-dir", str(cluster.ray_temp_dir), "--object-store-memory", str(object_store_mb * 1024 * 1024),
              "--disable-usage-stats"]
    try:
        for role, ip in [("head", head_ip), *(("worker", w) for w in worker_ips)]:
            if role == "head":
                # Every fixed default port (client server 10001, dashboard 8265, agent 52365) is
                # replaced by a free one, so another Ray on this machine cannot collide with this one.
                args = ["--head", "--port", str(port), "--include-dashboard", "false",
                        "--ray-client-server-port", str(free_port(ip)), "--dashboard-port", str(free_port(ip))]
            else:
                args = ["--address", cluster.address]
            args += ["--node-ip-address", ip, "--dashboard-agent-listen-port", str(free_port(ip))]
            log_path = root / f"{role}-{ip}.log"
            with open(log_path, "wb") as log:
                popen = subprocess.Popen([ray, "start", *args, *common], env=cluster.env(), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            node = NodeProcess(role, ip, popen, log_path)
            cluster.nodes.append(node)
            if role == "head":
                # Joining needs only the GCS; the workers' `ray start` (seconds of imports) then
                # overlaps the rest of the head's start instead of waiting for it.
                _wait_listening(node, (head_ip, port), start_timeout_s)
        for node in cluster.nodes:
            _wait_started(node, start_timeout_s)
        cluster.refresh_pids()
        wait_for_nodes(cluster, 1 + len(worker_ips), timeout_s=start_timeout_s)
        cluster.refresh_pids()
    except BaseException:
        cluster.stop(remove_files=False)
        raise
    return cluster


# ---------------------------------------------------------------------------------------------------
# the tiny sweep

TINY_SPACE = ('"""two stage-1 settings: one 1-CPU trial per node"""\n'
              'CONFIGS = [{"augment.coverage": 0.2}, {"augment.coverage": 0.4}]\n')
TINY_OVERRIDES = ("train.stage1.epochs=2", "eval.aupro=false", "eval.save_maps=0", "runtime.threads=1",
                  "eval.shifts=[]", "data.val_shifts=[]")  # a smoke sweep: no shifted copies


def run_tiny_sweep(
    cluster: LocalCluster,
    storage: str | Path,
    name: str = "local-cluster",
    *,
    timeout_s: float = 600.0,
    env: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """``run_suite.py sweep --address <cluster>`` with two 1-CPU configs run at once; returns a summary.

    The summary: ``returncode``, ``output`` (stdout+stderr), ``sweep_dir``, ``seconds``, ``records``
    (trial_id, status, node ip and id per record) and ``nodes`` (distinct node IDs the trials ran on).
    ``env`` replaces the driver's environment (default: ``cluster.env()``, i.e. with the token).
    """
    storage = Path(storage).resolve()
    storage.mkdir(parents=True, exist_ok=True)
    space = cluster.root / "tiny_space.py"
    space.write_text(TINY_SPACE)
    cmd = [sys.executable, str(REPO_ROOT / "run_suite.py"), "sweep", "--address", cluster.address,
           "--preset", "tiny", "--space", str(space), "--category", "synth_texture",
           "--storage", str(storage), "--name", name, "--concurrent", "2", "--cpus-per-trial", "1",
           "--shards", "off", *extra_args, *TINY_OVERRIDES]
    t0 = time.monotonic()
    out = subprocess.run(cmd, env=cluster.env() if env is None else env, cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    summary: dict[str, Any] = {"returncode": out.returncode, "output": out.stdout + out.stderr,
                               "sweep_dir": str(storage / name), "seconds": time.monotonic() - t0,
                               "records": [], "nodes": []}
    records_dir = storage / name / "records"
    if records_dir.is_dir():
        for path in find_records(records_dir):
            r = read_record(path)
            summary["records"].append({"trial_id": r.trial_id, "status": r.status,
                                       "node_ip": (r.node or {}).get("ray_node_ip"),
                                       "node_id": (r.node or {}).get("ray_node_id")})
        summary["nodes"] = sorted({r["node_id"] for r in summary["records"] if r["node_id"]})
    return summary


# ---------------------------------------------------------------------------------------------------
# command line


def _print_summary(cluster: LocalCluster, result: dict[str, Any]) -> None:
    print(f"[local-cluster] sweep exit code {result['returncode']} after {result['seconds']:.0f}s; "
          f"sweep dir {result['sweep_dir']}")
    ips = {n["node_id"]: n["ip"] for n in cluster.node_info}
    for r in result["records"]:
        print(f"[local-cluster]   trial {r['trial_id']}: {r['status']} on node {r['node_ip'] or ips.get(r['node_id'])} "
              f"({(r['node_id'] or '?')[:12]})")
    print(f"[local-cluster] trials ran on {len(result['nodes'])} of {len(cluster.node_info)} node(s)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m suite.tools.local_cluster",
                                description="Start a two-node Ray cluster on this machine (ray start, token auth), "
                                            "run a tiny sweep with --address, stop exactly what was started.")
    p.add_argument("--storage", default="runs/local_cluster", help="sweep storage (default: runs/local_cluster)")
    p.add_argument("--name", default=None, help="sweep name (default: local-cluster-<time>)")
    p.add_argument("--port", type=int, default=None, help="head GCS port (default: a free one)")
    p.add_argument("--head-ip", default=HEAD_IP)
    p.add_argument("--worker-ip", default=WORKER_IP)
    p.add_argument("--no-sweep", action="store_true", help="only start (and, without --keep, stop) the cluster")
    p.add_argument("--keep", action="store_true", help="leave the cluster running and print how to use and stop it")
    args = p.parse_args(argv)

    # A plain SIGTERM would end Python without running `finally` or atexit; make it unwind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        cluster = start_local_cluster(head_ip=args.head_ip, worker_ips=(args.worker_ip,), port=args.port,
                                      stop_at_exit=not args.keep)
    except LocalClusterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    code, leave_running = 1, False
    try:
        print(f"[local-cluster] {cluster.address}: {len(cluster.node_info)} node(s) "
              f"({', '.join(n['ip'] for n in cluster.node_info)}); temp dir {cluster.root}", flush=True)
        code = 0
        if not args.no_sweep:
            name = args.name or f"local-cluster-{time.strftime('%Y%m%d-%H%M%S')}"
            result = run_tiny_sweep(cluster, args.storage, name)
            _print_summary(cluster, result)
            if result["returncode"] != 0:
                print(result["output"][-4000:], file=sys.stderr)
                code = 1
            elif len(result["nodes"]) < 2:
                print("[local-cluster] warning: the trials did not use both nodes", file=sys.stderr)
                code = 1
        if args.keep:
            env = cluster.env({})
            print("[local-cluster] left running. Join it from a shell with:\n"
                  + "".join(f"  export {k}={env[k]}\n" for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH"))
                  + f"  python run_suite.py sweep --address {cluster.address} ...\n"
                  f"[local-cluster] stop it with (never a bare `ray stop`, it ends every Ray on the machine):\n"
                  f"  {cluster.stop_hint()}", flush=True)
            leave_running = True
    except KeyboardInterrupt:
        code = 130
    except SystemExit:  # SIGTERM (see above)
        code = 143
        raise
    finally:
        if not leave_running:
            cluster.stop(remove_files=code == 0)
            print("[local-cluster] stopped" + ("" if code == 0 else f"; logs kept in {cluster.root}"),
                  file=sys.stderr if code else sys.stdout, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
