"""Stage-cache keys carry each method's code fingerprint; concurrent builders give one stage."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from suite.config import build_config
from suite.methods.registry import MethodSpec, method_spec, register_method, unregister_method
from suite.stage_cache import StageCache, stage_key
from suite.training import load_checkpoint

REPO = Path(__file__).resolve().parents[2]


def test_editing_a_copied_methods_source_misses_the_cache(tmp_path, monkeypatch):
    package = tmp_path / "copied_method"
    shutil.copytree(REPO / "suite" / "methods" / "fae", package)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = MethodSpec(name="copied_method", display_name="Copied", colour="k", trainer="copied_method.train:train")
    register_method(spec)
    try:
        cfg = build_config(preset="tiny", overrides=["model.method=copied_method"])
        cache = StageCache(tmp_path / "cache")
        before = stage_key(cfg, "stage1")
        assert stage_key(cfg, "stage1") == before  # deterministic
        torch.save({"model": {}}, cache.path(before))
        assert cache.has(before)
        model = package / "model.py"
        model.write_text(model.read_text() + "\n# a changed model\n")
        after = stage_key(cfg, "stage1")
        assert after != before and not cache.has(after)
    finally:
        unregister_method("copied_method")


def test_fingerprint_covers_the_methods_own_folder():
    spec = method_spec("convae")  # trains through rcae's train.py, owns convae/model.py
    folders = {p.name for p in spec.code_paths()}
    assert folders == {"rcae", "convae"}
    assert len(spec.code_fingerprint()) == 12


WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import torch
    from suite.config import build_config
    from suite.methods.base import TrainContext, cached_stage
    from suite.stage_cache import StageCache

    cache_dir, own_dir, value = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    own_dir.mkdir(parents=True, exist_ok=True)
    cfg = build_config(preset="tiny", overrides=["model.method=convae"])
    module = torch.nn.Linear(2, 2)
    ctx = TrainContext(cfg=cfg, device=torch.device("cpu"), train_images=torch.zeros(1, 3, 8, 8),
                       checkpoint_dir=own_dir, stage_cache=StageCache(cache_dir), log=lambda _: None)

    def run(path):
        time.sleep(1.0)  # both processes are inside cached_stage at once
        with torch.no_grad():
            module.weight.fill_(value)
        torch.save({"model": module.state_dict(), "completed": True}, path)

    seconds, from_cache = cached_stage(ctx, "stage1", module, run)
    print(f"{from_cache} {float(module.weight[0, 0])}")
    """
)


def test_two_processes_building_the_same_stage_give_one_file(tmp_path):
    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(cache), str(tmp_path / f"own{i}"), str(i + 1.0)],
                         cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(out.split())
    from_cache = sorted(o[0] for o in outputs)
    assert from_cache == ["False", "True"]  # one built it, the other waited and loaded it
    assert outputs[0][1] == outputs[1][1]  # both ended with the builder's weights
    events = StageCache(cache).events()
    assert [e["event"] for e in events].count("build") == 1
    stages = list(cache.glob("*.pt"))
    assert len(stages) == 1 and not list(cache.glob(".*tmp*"))
    weight = load_checkpoint(stages[0])["model"]["weight"]
    assert float(weight[0, 0]) == float(outputs[0][1])
