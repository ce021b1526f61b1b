"""Describe the Ray cluster (nodes, CPUs, GPUs, custom resources) for printing before a sweep, and
``simulated_cluster``: a multi-node ``ray.cluster_utils.Cluster`` on this machine for tests and
benchmarks."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from typing import Any

import ray
from ray.cluster_utils import Cluster

from suite.orchestration.env import TRAIN_DRIVER, init_ray
from suite.orchestration.temp_dirs import owned_temp_dir


def describe_cluster() -> dict[str, Any]:
    """Alive nodes with their resources, and the totals. Needs an initialised Ray."""
    nodes = []
    for node in ray.nodes():
        if not node.get("Alive", node.get("alive", False)):
            continue
        res = node.get("Resources", {})
        nodes.append(
            {
                "node_id": node.get("NodeID"),
                "address": node.get("NodeManagerAddress"),
                "hostname": node.get("NodeManagerHostname"),
                "cpus": float(res.get("CPU", 0)),
                "gpus": float(res.get("GPU", 0)),
                "memory_gb": round(float(res.get("memory", 0)) / 2**30, 1),
                "custom": {k: v for k, v in res.items() if k.isupper() and k not in ("CPU", "GPU")
                           and not k.startswith("node:")},
                "is_head": "node:__internal_head__" in res,
            }
        )
    total = ray.cluster_resources()
    return {
        "nodes": nodes,
        "num_nodes": len(nodes),
        "cpus": float(total.get("CPU", 0)),
        "gpus": float(total.get("GPU", 0)),
        "custom": {k: v for k, v in total.items() if k.isupper() and k not in ("CPU", "GPU")},
    }


def format_cluster(desc: dict[str, Any]) -> str:
    lines = [f"ray cluster: {desc['num_nodes']} node(s), {desc['cpus']:g} CPU, {desc['gpus']:g} GPU"]
    for node in desc["nodes"]:
        head = " (head)" if node["is_head"] else ""
        extra = "".join(f", {k} {v:g}" for k, v in node["custom"].items())
        lines.append(
            f"  {node['hostname'] or node['address']}{head} {str(node['node_id'])[:12]}: "
            f"{node['cpus']:g} CPU, {node['gpus']:g} GPU, {node['memory_gb']} GB{extra}"
        )
    return "\n".join(lines)


@contextlib.contextmanager
def simulated_cluster(nodes: int, cpus_per_node: int = 1, prefix: str = "rcs-c", *, gpus_per_node: float = 0,
                      train_driver: bool = False) -> Iterator[Any]:
    """A ``ray.cluster_utils.Cluster`` of ``nodes`` nodes on this machine, joined by this process.

    Each node has ``cpus_per_node`` CPUs, ``gpus_per_node`` declared GPUs (Ray schedules on a declared
    ``num_gpus`` without a GPU being there) and, with ``train_driver``, as many ``TRAIN_DRIVER`` units
    as CPUs (what older versions needed; by default a node is as a plain ``ray start`` makes it). Its
    temp folder is a new short ``/tmp/<prefix>XXXX`` that also holds Ray's address file
    (``$RAY_TMPDIR`` points there meanwhile), so other Ray users on this machine cannot find this
    cluster with ``address="auto"``. Everything is shut down and removed on exit.
    """
    if ray.is_initialized():
        ray.shutdown()
    temp_dir = owned_temp_dir(prefix, "/tmp")  # removed on exit; after a kill, by the next sweep
    os.makedirs(os.path.join(temp_dir, "ray"))
    old_tmpdir = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = temp_dir
    node_args: dict[str, Any] = {"num_cpus": cpus_per_node, "num_gpus": gpus_per_node, "temp_dir": temp_dir}
    if train_driver:
        node_args["resources"] = {TRAIN_DRIVER: cpus_per_node}
    cluster = Cluster(initialize_head=True, head_node_args={**node_args, "include_dashboard": False})
    try:
        for _ in range(nodes - 1):
            cluster.add_node(**node_args)
        cluster.wait_for_nodes()
        init_ray(address=cluster.address)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        if old_tmpdir is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = old_tmpdir
        shutil.rmtree(temp_dir, ignore_errors=True)
