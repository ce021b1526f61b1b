"""RcAE: recursive reconstruction (shared encoder/decoder applied N times), the DPN that restores
detail and the CRD that detects across recursion steps, trained in three stages (Wu et al., "RcAE:
Recursive Reconstruction Framework for Unsupervised Industrial Anomaly Detection", AAAI 2026).

``config.py`` holds the ``rcae`` section, ``model.py`` (RcAE), ``dpn.py``, ``crd.py`` the networks
and ``networks.py`` their factory, ``losses.py`` the stage losses, ``pseudo.py`` the stage-3
pseudo-anomaly batches, ``scorer.py`` the inference and the anomaly maps, ``train.py`` the
trainer (shared with ConvAE through ``train_reconstruction``). Besides its own section it reads
the shared ``augment`` (stage-1 corruption) and ``pseudo`` (stage 3) sections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from suite.errors import ConfigError
from suite.methods.rcae.config import ALIASES, RcAEConfig, check_switches
from suite.methods.registry import MethodSpec, load_references


def check_divisible(cfg, depth: int, key: str) -> None:
    """The image is halved ``depth`` times (RcAE and ConvAE alike)."""
    size = cfg.data.image_size
    if size % (2**depth) != 0:
        raise ConfigError(f"config key 'data.image_size': {size} is not divisible by 2**{key} = {2 ** depth}")


def _validate(cfg) -> None:
    r = cfg.rcae
    if r.depth < 1:
        raise ConfigError(f"config key 'rcae.depth': {r.depth} must be >= 1")
    check_divisible(cfg, r.depth, "rcae.depth")
    if r.crd_steps is not None:
        bad = [s for s in r.crd_steps if not 1 <= s <= r.depth]
        if bad or not r.crd_steps:
            raise ConfigError(f"config key 'rcae.crd_steps': steps {r.crd_steps} must be within 1..{r.depth}")
    if r.crd_pool < 1:
        raise ConfigError(f"config key 'rcae.crd_pool': {r.crd_pool} must be >= 1")
    check_switches(r)
    if r.code_channels < 1:
        raise ConfigError(f"config key 'rcae.code_channels': {r.code_channels} must be >= 1")


def _get(o: Mapping[str, Any], field: str, default: Any) -> Any:
    """A flat override under the new key or the old ``model.*`` one (fake records use either)."""
    return o.get(f"rcae.{field}", o.get(f"model.{field}", default))


def fake_quality(o: Mapping[str, Any]) -> float:
    q = 0.80 + 0.04 * _get(o, "depth", 2)
    q += 0.01 if o.get("augment.coverage", 0.3) > 0.4 else 0.0
    q -= 0.05 if not _get(o, "use_dpn", True) else 0.0
    q -= 0.03 if not _get(o, "use_crd", True) else 0.0
    q -= 0.02 if not _get(o, "skip", True) else 0.0
    q -= 0.08 if not _get(o, "shared_weights", True) else 0.0
    return q


def fake_cost(o: Mapping[str, Any]) -> dict[str, Any]:
    depth = _get(o, "depth", 2)
    params = 40_000 * (1 if _get(o, "shared_weights", True) else depth) + 30_000
    return {"params": params, "gflops": 0.05 * depth + 0.1, "latency_ms": 2.0 + 1.5 * depth}


SPEC = MethodSpec(
    name="rcae",
    display_name="RcAE",
    colour="tab:red",
    trainer="suite.methods.rcae.train:train",
    description="recursive conv AE + DPN + CRD, three stages",
    config_section="rcae",
    config_class=RcAEConfig,
    scoring_fields=frozenset({"crd_output", "structure", "fuse"}),
    stage_keys={
        "rcae.dpn_width": "stage2", "rcae.dpn_input": "stage2",
        "rcae.use_dpn": "stage3", "rcae.use_crd": "stage3", "rcae.crd_width": "stage3", "rcae.crd_steps": "stage3",
        "rcae.crd_pool": "stage3", "rcae.crd_input": "stage3", "pseudo": "stage3",
        "rcae.crd_iterations": "stage3", "rcae.crd_min_iterations": "stage3",
    },
    aliases=ALIASES,
    stages=("stage1", "stage2", "stage3"),
    presets={
        # the paper's photometric behaviour too (config_presets.SHORTHANDS["rcae.photometric"]["paper"])
        "paper": {"depth": 5, "crd_pool": 1, "crd_output": "sigmoid", "normalise": "none", "jitter": False,
                  "fuse": ["residual_final", "crd"]},
        # the CRD map left out of the fused map: validation preferred it on all 3 bottle seeds (I / P-AUROC
        # 0.61 / 0.72 without, 0.46 / 0.68 with; README "The defaults at the cpu preset")
        # and its structure map SSIM-based: validation P-AUROC 0.795 vs 0.734 with gradients, higher on all
        # 3 bottle seeds, I-AUROC 0.603 vs 0.598 (README "Structure map at the cpu preset")
        "cpu": {"depth": 5, "width": 16, "crd_pool": 2, "fuse": ["residual_gain", "structure"], "structure": "ssim"},
        # 300 stage-3 steps at least: the demo's 12 epochs (72 steps on 48 images) left the CRD at its mean
        # (validation P-AUROC 0.05 / 0.63 on synth_object / synth_texture; 0.64-0.70 from 200 steps on, README)
        "demo": {"depth": 4, "width": 8, "dpn_width": 8, "crd_width": 4, "crd_pool": 1, "crd_min_iterations": 300},
        "tiny": {"depth": 2, "width": 8, "dpn_width": 8, "crd_width": 4, "crd_pool": 1},
    },
    path_keys=("pseudo.texture_root",),
    validate=_validate,
    uses_eval_map=True,
    references=load_references(Path(__file__).with_name("references.json")),
    fake_quality=fake_quality,
    fake_cost=fake_cost,
)
