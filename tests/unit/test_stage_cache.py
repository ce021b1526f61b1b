"""Stage-cache keys carry each method's code fingerprint; concurrent builders give one stage."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
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
        before = stage_key(cfg, "stage1", spec)
        assert stage_key(cfg, "stage1", spec) == before  # deterministic
        torch.save({"model": {}}, cache.path(before))
        assert cache.has(before)
        model = package / "model.py"
        model.write_text(model.read_text() + "\n# a changed model\n")
        after = stage_key(cfg, "stage1", spec)
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


@pytest.mark.slow  # measured over 5 s on a loaded 2-core machine
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


# ----------------------------------------------------------------------------------------------
# what the key covers: everything but a deny-list


def _changed(value):
    """Another value of the same kind (validity does not matter: keys are computed unvalidated)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2 + 0.5
    if isinstance(value, str):
        return value + "_changed"
    if isinstance(value, list):
        return value + [value[-1]] if value else [1]
    return 1  # None


def _set(cfg, key, value):
    *path, name = key.split(".")
    node = cfg
    for part in path:
        node = getattr(node, part)
    setattr(node, name, value)


def _get(cfg, key):
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


# Keys no stage of any method may depend on (scoring, evaluation, runtime, the validation set), and
# what each method says it does not read or first reads in a later stage. Anything else a config
# holds, today or added later, must be in the key.
ALWAYS_DENIED = ("eval.", "runtime.device", "runtime.threads", "runtime.num_workers", "runtime.cache_mb",
                 "runtime.preset", "data.val_anomaly_ratio", "data.val_anomalies", "data.val_difficulty",
                 "data.val_shifts", "train.checkpoint_every", "train.eval_every", "model.method", "runtime.prefetch",
                 "runtime.channels_last", "runtime.activation_checkpointing", "runtime.infer_mpx")


def _expected_in_key(key, spec, stage, sections):
    from suite.stage_cache import _covered

    if key.startswith(ALWAYS_DENIED) or _covered(key, spec.unused_keys):
        return False
    section = key.split(".")[0]
    if section in sections and section != spec.config_section:
        return False  # another method's own section
    if spec.config_section and key.split(".", 1)[-1] in spec.scoring_fields and section == spec.config_section:
        return False
    later = spec.stages[spec.stages.index(stage) + 1:]
    if any(key.startswith(f"train.{s}.") for s in later):
        return False
    return not any(first in later and _covered(key, (k,)) for k, first in spec.stage_keys.items())


@pytest.mark.slow  # measured over 5 s on a loaded 2-core machine
def test_changing_any_weight_shaping_field_of_any_method_misses_the_cache():
    import copy

    from suite.config import flatten
    from suite.methods.registry import method_sections, method_specs

    sections = set(method_sections())
    checked = 0
    for spec in method_specs():
        base = build_config(preset="tiny", overrides=[f"model.method={spec.name}"])
        keys = list(flatten(base.to_dict()))
        for stage in spec.stages:
            before = stage_key(base, stage, spec)
            for key in keys:
                cfg = copy.deepcopy(base)
                _set(cfg, key, _changed(_get(cfg, key)))
                moved = stage_key(cfg, stage, spec) != before
                assert moved == _expected_in_key(key, spec, stage, sections), (spec.name, stage, key, moved)
                checked += moved
    assert checked > 100  # the loop really ran over the methods' fields


def test_a_field_added_to_a_methods_section_is_in_the_key_without_listing_it(tmp_path):
    import dataclasses

    @dataclass
    class ToySection:
        width: int = 4
        brand_new_knob: float = 0.5  # nobody told the stage cache about this one

    spec = MethodSpec(name="toy_keyed", display_name="Toy", colour="k", trainer="x:train",
                      config_section="toy_keyed", config_class=ToySection)
    register_method(spec)
    try:
        cfg = build_config(preset="tiny", overrides=["model.method=toy_keyed"])
        before = stage_key(cfg, "stage1", spec)
        cfg.toy_keyed.brand_new_knob = 0.75
        assert stage_key(cfg, "stage1", spec) != before
        other = build_config(preset="tiny", overrides=["model.method=rcae"])
        rcae = method_spec("rcae")
        key = stage_key(other, "stage1", rcae)
        other.toy_keyed.brand_new_knob = 0.75  # another method's section: RcAE's stages stay shared
        assert stage_key(other, "stage1", rcae) == key
        assert dataclasses.is_dataclass(cfg.toy_keyed)
    finally:
        unregister_method("toy_keyed")


def test_rcae_shares_earlier_stages_across_later_stage_settings():
    rcae = method_spec("rcae")
    base = build_config(preset="tiny")
    crd = build_config(preset="tiny", overrides=["rcae.crd_width=6", "pseudo.clean_fraction=0.5",
                                                 "train.stage3.epochs=5"])
    dpn = build_config(preset="tiny", overrides=["rcae.dpn_width=4"])
    assert stage_key(base, "stage1", rcae) == stage_key(crd, "stage1", rcae) == stage_key(dpn, "stage1", rcae)
    assert stage_key(base, "stage2", rcae) == stage_key(crd, "stage2", rcae) != stage_key(dpn, "stage2", rcae)
    assert stage_key(base, "stage3", rcae) != stage_key(crd, "stage3", rcae)
    # scoring only: every stage shared
    scored = build_config(preset="tiny", overrides=["rcae.crd_output=sigmoid", "eval.top_k=5"])
    assert all(stage_key(base, s, rcae) == stage_key(scored, s, rcae) for s in rcae.stages)
