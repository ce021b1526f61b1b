"""Methods from packages installed in a temp folder (not in the suite, not registered by the test)
are swept on a two-node Ray cluster: the driver (a fresh process) and the trial workers on both
nodes find them the same way, one through its ``rcsuite.methods`` entry point and the other through
``RCSUITE_METHOD_MODULES``. One sweep with one point per method checks both ways (a sweep on two nodes
costs more than the rest of the test)."""

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
NAMES = {"entry_point": "toy_plugin_by_entry_point", "env": "toy_plugin_by_env"}


def spec_module(name: str) -> str:
    return textwrap.dedent(f'''
    from dataclasses import dataclass

    from suite.methods.registry import MethodSpec


    @dataclass
    class ToyPluginConfig:
        shift: float = 0.0  # added to the mean image (a method setting the space sets)


    SPEC = MethodSpec(name="{name}", display_name="Toy plugin {name}", colour="k", trainer="{name}.train:train",
                      config_section="{name}", config_class=ToyPluginConfig)
    ''')


def train_module(name: str) -> str:
    return textwrap.dedent(f'''
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
            module.mean.copy_(images[:].mean(dim=0).to(module.mean.device) + ctx.cfg.{name}.shift)

        method = TrainedMethod(predict=lambda x: {{"map": model(x)}}, score=lambda m: m.flatten(1).amax(dim=1),
                               modules={{"toy": model}})
        return fit_single_stage(ctx, model, fit, method)
    ''')


DRIVER = textwrap.dedent(
    f'''
    import sys
    from suite.config import build_config
    from suite.orchestration.driver import SweepOptions, run_sweep

    space, storage, address = sys.argv[1:4]
    cfg = build_config(preset="tiny", overrides=["model.method={NAMES['entry_point']}", "eval.aupro=false",
                                                 "eval.save_maps=0", "eval.cost=false", "eval.shifts=[]",
                                                 "data.val_shifts=[]"])
    run_sweep(cfg, SweepOptions(space=space, storage=storage, name="plugin", concurrent=2, cpus_per_trial=1,
                                address=address, verbose=0))
    '''
)


# two_node_cluster: one cluster shared with the other two-node tests (tests/integration/conftest.py)


def test_plugin_methods_sweep_on_two_nodes_found_by_entry_point_and_by_env(two_node_cluster, tmp_path):
    site = tmp_path / "site"
    for name in NAMES.values():
        (site / name).mkdir(parents=True)
        (site / name / "__init__.py").write_text(spec_module(name))
        (site / name / "train.py").write_text(train_module(name))
    by_entry_point = NAMES["entry_point"]
    info = site / f"{by_entry_point}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {by_entry_point}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[rcsuite.methods]\n{by_entry_point} = {by_entry_point}\n")
    env = {k: v for k, v in os.environ.items() if k != "RCSUITE_METHOD_MODULES"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)])
    env["RCSUITE_METHOD_MODULES"] = NAMES["env"]  # the other one is listed nowhere but in its entry point
    space = tmp_path / "space.py"
    space.write_text('"""one point per plugin method"""\nCONFIGS = [' +
                     ", ".join(f'{{"model.method": "{name}", "{name}.shift": 0.1}}' for name in NAMES.values()) + "]\n")
    storage = tmp_path / "shared"
    result = subprocess.run([sys.executable, "-c", DRIVER, str(space), str(storage), two_node_cluster.address],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]

    records = [read_record(p) for p in find_records(storage / "plugin" / "records")]
    assert len(records) == 2 and all(r.status == "ok" for r in records), [(r.status, r.error) for r in records]
    assert {r.method for r in records} == set(NAMES.values())
    assert all(r.config[r.method]["shift"] == 0.1 for r in records)
    assert len({r.node["ray_node_id"] for r in records}) == 2, "both trials ran on one node"
