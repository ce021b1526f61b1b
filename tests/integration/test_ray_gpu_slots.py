"""Several trainings per GPU, on a cluster without custom resources (issue 20, items 5 and 7).

One ``ray.cluster_utils`` node started as a plain ``ray start`` would be (4 CPUs, ``num_gpus=1``
declared — Ray schedules on a declared GPU without one being there — and no ``TRAIN_DRIVER``), one
sweep with the defaults (``--shards elastic``) and ``--gpus-per-trial 0.25`` over five configurations:
it runs to the end, exactly four trainings run at once (counted from the records' start / finish
times, a sweep line), so the trials' coordinators took no CPU and no GPU from the trainings, and every
training saw the one GPU (``CUDA_VISIBLE_DEVICES`` as Ray set it, in the record's node facts).
"""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")

from suite.config import build_config  # noqa: E402
from suite.orchestration.cluster import describe_cluster, simulated_cluster  # noqa: E402
from suite.orchestration.driver import SweepOptions, run_sweep  # noqa: E402
from suite.records import find_records, read_record  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def peak_concurrency(records) -> int:
    """Most records whose [started, finished) intervals overlap at one instant."""
    events = sorted([(r.started, 1) for r in records] + [(r.finished, -1) for r in records])
    peak = running = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_peak_concurrency_counts_overlaps():
    class R:
        def __init__(self, a, b):
            self.started, self.finished = a, b

    assert peak_concurrency([R(0, 2), R(1, 3), R(2, 4)]) == 2  # an end and a start at 2 do not overlap
    assert peak_concurrency([R(0, 5), R(1, 5), R(2, 5), R(3, 5)]) == 4


@pytest.fixture(scope="module")
def plain_gpu_node():
    with simulated_cluster(nodes=1, cpus_per_node=4, gpus_per_node=1, train_driver=False) as cluster:
        yield cluster


def test_quarter_gpus_run_four_trainings_at_once_on_a_plain_cluster(plain_gpu_node, tmp_path):
    desc = describe_cluster()
    assert desc["cpus"] == 4 and desc["gpus"] == 1
    assert "TRAIN_DRIVER" not in ray.cluster_resources()
    space = tmp_path / "five.py"
    space.write_text('"""five stage-1 settings"""\nCONFIGS = [' +
                     ", ".join(f'{{"augment.coverage": {c}}}' for c in (0.1, 0.2, 0.3, 0.4, 0.5)) + "]\n")
    cfg = build_config(preset="tiny", overrides=["train.stage1.epochs=6", "eval.aupro=false", "eval.save_maps=0",
                                                 "runtime.device=cpu", "eval.shifts=[]", "data.val_shifts=[]"])
    opts = SweepOptions(space=str(space), categories=["synth_texture"], storage=str(tmp_path / "shared"),
                        name="quarters", address=plain_gpu_node.address, gpus_per_trial=0.25, verbose=0,
                        use_stage_cache=False)
    assert opts.shards == "elastic"  # the default
    result = run_sweep(cfg, opts)

    records = [read_record(p) for p in find_records(tmp_path / "shared" / "quarters" / "records")]
    assert len(records) == 5 and all(r.status == "ok" for r in records), [r.error for r in records]
    assert result["utilisation"]["slots"] == 4
    assert peak_concurrency(records) == 4, [(r.started, r.finished) for r in records]
    assert {r.node.get("cuda_visible_devices") for r in records} == {"0"}
    assert {r.node.get("ray_gpu_ids") for r in records} == {"0"}
    usage = result["utilisation"]
    print(f"[gpu slots] {usage} peak {peak_concurrency(records)} of {usage['slots']} slots; trainings "
          f"{[round(r.finished - r.started, 1) for r in records]} s")
