"""A method from a package installed in a temp folder (not in the suite, not registered by the test)
is swept on a two-node Ray cluster: the driver (a fresh process) and the trial workers on both
nodes find it the same way, through its ``rcsuite.methods`` entry point or through
``RCSUITE_METHOD_MODULES``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from suite.records import find_records, read_record  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
NAME = "toy_plugin_sweep"

SPEC_MODULE = textwrap.dedent(
    f'''
    from dataclasses import dataclass

    from suite.methods.registry import MethodSpec


    @dataclass
    class ToyPluginConfig:
        shift: float = 0.0  # added to the mean image (so two points train two different stages)


    SPEC = MethodSpec(name="{NAME}", display_name="Toy plugin", colour="k", trainer="{NAME}.train:train",
                      config_section="{NAME}", config_class=ToyPluginConfig)
    '''
)

TRAIN_MODULE = textwrap.dedent(
    '''
    import torch
    from torch import nn

    from suite.methods.base import TrainedMethod, fit_single_stage


    class MeanImage(nn.Module):
        def __init__(self, size):
            super().__init__()
            self.register_buffer("mean", torch.zeros(3, size, size))

        def forward(self, x):
            return (x - self.mean).abs().mean(dim=1, keepdim=True)


    def train(ctx):
        model = MeanImage(ctx.cfg.data.image_size).to(ctx.device)

        def fit(module, images, generator):
            module.mean.copy_(images[:].mean(dim=0).to(module.mean.device) + ctx.cfg.toy_plugin_sweep.shift)

        method = TrainedMethod(predict=lambda x: {"map": model(x)}, score=lambda m: m.flatten(1).amax(dim=1),
                               modules={"toy": model})
        return fit_single_stage(ctx, model, fit, method)
    '''
)

DRIVER = textwrap.dedent(
    f'''
    import sys
    from suite.config import build_config
    from suite.orchestration.driver import SweepOptions, run_sweep

    space, storage, address = sys.argv[1:4]
    cfg = build_config(preset="tiny", overrides=["model.method={NAME}", "eval.aupro=false", "eval.save_maps=0",
                                                 "eval.cost=false", "eval.shifts=[]", "data.val_shifts=[]"])
    run_sweep(cfg, SweepOptions(space=space, storage=storage, name="plugin", concurrent=2, cpus_per_trial=1,
                                address=address, verbose=0))
    '''
)


# two_node_cluster: one cluster shared with the other two-node tests (tests/integration/conftest.py)


@pytest.mark.parametrize("found_by", ["entry_point", "env"])
def test_a_plugin_method_sweeps_on_two_nodes(two_node_cluster, tmp_path, found_by):
    site = tmp_path / "site"
    (site / NAME).mkdir(parents=True)
    (site / NAME / "__init__.py").write_text(SPEC_MODULE)
    (site / NAME / "train.py").write_text(TRAIN_MODULE)
    env = {k: v for k, v in os.environ.items() if k != "RCSUITE_METHOD_MODULES"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)])
    if found_by == "entry_point":
        info = site / f"{NAME}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {NAME}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[rcsuite.methods]\n{NAME} = {NAME}\n")
    else:
        env["RCSUITE_METHOD_MODULES"] = NAME
    space = tmp_path / "space.py"
    space.write_text(f'"""two points"""\nCONFIGS = [{{"{NAME}.shift": 0.0}}, {{"{NAME}.shift": 0.1}}]\n')
    storage = tmp_path / "shared"
    result = subprocess.run([sys.executable, "-c", DRIVER, str(space), str(storage), two_node_cluster.address],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]

    records = [read_record(p) for p in find_records(storage / "plugin" / "records")]
    assert len(records) == 2 and all(r.status == "ok" for r in records), [(r.status, r.error) for r in records]
    assert {r.method for r in records} == {NAME}
    assert {r.config[NAME]["shift"] for r in records} == {0.0, 0.1}
    assert len({r.node["ray_node_id"] for r in records}) == 2, "both trials ran on one node"
