"""A sweep on a real two-node Ray cluster (``ray.cluster_utils.Cluster``: head + one worker node,
1 CPU each, both on this machine): two concurrent 1-CPU trials land on different nodes."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

ray = pytest.importorskip("ray")

from ray.cluster_utils import Cluster  # noqa: E402

from suite.config import build_config  # noqa: E402
from suite.orchestration.cluster import describe_cluster  # noqa: E402
from suite.orchestration.env import TRAIN_DRIVER, init_ray  # noqa: E402
from suite.orchestration.driver import SweepOptions, run_sweep  # noqa: E402
from suite.records import find_records, read_record  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def two_node_cluster():
    if ray.is_initialized():
        ray.shutdown()
    temp_dir = tempfile.mkdtemp(prefix="rcs-c", dir="/tmp")
    # Cluster writes its address file under $RAY_TMPDIR/ray; keep it away from /tmp/ray (other Ray
    # users on this machine would otherwise find this cluster with address="auto").
    os.makedirs(os.path.join(temp_dir, "ray"))
    old_tmpdir = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = temp_dir
    node_args = {"num_cpus": 1, "resources": {TRAIN_DRIVER: 1}, "temp_dir": temp_dir}
    cluster = Cluster(initialize_head=True, head_node_args={**node_args, "include_dashboard": False})
    try:
        cluster.add_node(**node_args)
        cluster.wait_for_nodes()
        info = init_ray(address=cluster.address)
        assert not info["started"]
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        if old_tmpdir is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = old_tmpdir
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_concurrent_trials_run_on_both_nodes(two_node_cluster, tmp_path):
    desc = describe_cluster()
    assert desc["num_nodes"] == 2 and desc["cpus"] == 2
    space = tmp_path / "space.py"
    space.write_text('"""two stage-1 settings"""\nCONFIGS = [{"augment.coverage": 0.2}, {"augment.coverage": 0.4}]\n')
    cfg = build_config(preset="tiny", overrides=["train.stage1.epochs=3", "eval.aupro=false", "eval.save_maps=0"])
    opts = SweepOptions(space=str(space), storage=str(tmp_path / "shared"), name="nodes", concurrent=2,
                        cpus_per_trial=1, address=two_node_cluster.address, verbose=0)
    run_sweep(cfg, opts)

    records = [read_record(p) for p in find_records(tmp_path / "shared" / "nodes" / "records")]
    assert len(records) == 2 and all(r.status == "ok" for r in records)
    nodes = {r.node["ray_node_id"] for r in records}
    assert len(nodes) == 2, f"both trials ran on one node: {nodes}"
    assert nodes <= {n["node_id"] for n in desc["nodes"]}
