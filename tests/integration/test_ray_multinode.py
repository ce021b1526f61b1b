"""A sweep on a real two-node Ray cluster (``ray.cluster_utils.Cluster``: head + one worker node,
1 CPU each, both on this machine): one trial's two categories train side by side, one per node.
That two concurrent 1-CPU trials land on different nodes is checked on the same cluster by
test_method_plugins_ray.py (its sweep runs two 1-CPU trials at once); a sweep of its own for it cost
about 19 CPU-seconds."""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")

from suite.config import build_config  # noqa: E402
from suite.orchestration.cluster import describe_cluster  # noqa: E402
from suite.orchestration.driver import SweepOptions, run_sweep  # noqa: E402
from suite.records import find_records, read_record  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]


# two_node_cluster: one cluster shared with the other two-node tests (tests/integration/conftest.py)


@pytest.mark.parametrize("shards", ["elastic", "reserve"])
def test_a_pooled_trials_categories_train_at_once_on_both_nodes(two_node_cluster, tmp_path, shards):
    """One trial, two categories: its two shards run side by side, one per 1-CPU node, and the trial
    reports the mean of both at each validation epoch (elastic: CPUs outside the trial's placement
    group; reserve: the trial's own bundles — ray #25239: both must not hang)."""
    import json

    desc = describe_cluster()
    assert desc["num_nodes"] == 2 and desc["cpus"] == 2
    space = tmp_path / "space.py"
    space.write_text('"""one point"""\nCONFIGS = [{"augment.coverage": 0.3}]\n')
    cfg = build_config(preset="tiny", overrides=["train.stage1.epochs=3", "train.eval_every=1", "eval.aupro=false",
                                                 "eval.save_maps=0",
                                                 "eval.shifts=[]", "data.val_shifts=[]"])
    opts = SweepOptions(space=str(space), categories=["synth_texture", "synth_object"], shards=shards,
                        storage=str(tmp_path / "shared"), name="shards", address=two_node_cluster.address, verbose=0)
    result = run_sweep(cfg, opts)

    records = [read_record(p) for p in find_records(tmp_path / "shared" / "shards" / "records")]
    assert len(records) == 2 and all(r.status == "ok" for r in records)
    assert len({r.trial_id for r in records}) == 1
    nodes = {r.node["ray_node_id"] for r in records}
    assert len(nodes) == 2, f"both shards ran on one node: {nodes}"
    assert nodes <= {n["node_id"] for n in desc["nodes"]}
    a, b = records
    assert a.started < b.finished and b.started < a.finished, "the shards ran one after another"
    # Tune got one matched report per stage-1 validation epoch (both categories), then the final one.
    (result_json,) = (tmp_path / "shared" / "shards" / "tune-pooled").glob("*/result.json")
    reports = [json.loads(line) for line in result_json.read_text().splitlines()]
    assert [(r["stage"], r["epoch"]) for r in reports if not r["final"]] == [("stage1", e) for e in (1, 2, 3)]
    assert all(r["n_categories"] == 2 for r in reports)
    assert reports[-1]["final"] and result["utilisation"]["slots"] == 2
