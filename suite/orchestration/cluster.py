"""Describe the Ray cluster (nodes, CPUs, GPUs, custom resources) for printing before a sweep."""

from __future__ import annotations

from typing import Any

import ray


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
