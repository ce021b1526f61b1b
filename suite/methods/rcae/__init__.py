"""RcAE: recursive reconstruction (shared encoder/decoder applied N times), the DPN that restores
detail and the CRD that detects across recursion steps, trained in three stages (Wu et al., "RcAE:
Recursive Reconstruction Framework for Unsupervised Industrial Anomaly Detection", AAAI 2026).

``model.py`` (RcAE), ``dpn.py``, ``crd.py`` hold the networks, ``scorer.py`` the inference and the
anomaly maps, ``train.py`` the stage losses and the trainer. Its settings are the shared ``model``,
``augment`` and ``pseudo`` sections (the suite is built around this method; ConvAE, the paper's
baseline, shares them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from suite.methods.registry import MethodSpec, load_references

RECONSTRUCTION_FIELDS = ("depth", "width", "skip", "shared_weights", "code_channels")


def validate_recursion(cfg) -> None:
    """Checks shared by RcAE and ConvAE (both halve the image ``model.depth`` times)."""
    from suite.config import ConfigError

    m, size = cfg.model, cfg.data.image_size
    if m.method in ("rcae", "convae") and size % (2**m.depth) != 0:
        raise ConfigError(f"config key 'data.image_size': {size} is not divisible by 2**model.depth = {2 ** m.depth}")
    if m.crd_steps is not None:
        bad = [s for s in m.crd_steps if not 1 <= s <= m.depth]
        if bad or not m.crd_steps:
            raise ConfigError(f"config key 'model.crd_steps': steps {m.crd_steps} must be within 1..{m.depth}")
    if m.crd_pool < 1:
        raise ConfigError(f"config key 'model.crd_pool': {m.crd_pool} must be >= 1")
    if m.code_channels < 1:
        raise ConfigError(f"config key 'model.code_channels': {m.code_channels} must be >= 1")


def cache_material(cfg, stage: str) -> dict[str, Any]:
    """What shapes each stage's weights beyond the generic key: the reconstruction network and its
    depth schedule (stage 1), the DPN (stage 2 on), the CRD and its pseudo-anomalies (stage 3)."""
    m, t = cfg.model, cfg.train
    material: dict[str, Any] = {
        "model": {k: getattr(m, k) for k in RECONSTRUCTION_FIELDS},
        "schedule": {"depth_loss": t.depth_loss, "depth_sampling": t.depth_sampling},
    }
    if stage in ("stage2", "stage3"):
        material["dpn"] = {"width": m.dpn_width, "input": m.dpn_input}
    if stage == "stage3":
        material["crd"] = {"use_dpn": m.use_dpn, "width": m.crd_width, "steps": m.crd_steps, "pool": m.crd_pool,
                           "input": m.crd_input}
        material["pseudo"] = dict(cfg.pseudo.__dict__)
    return material


def fake_quality(o: Mapping[str, Any]) -> float:
    q = 0.80 + 0.04 * o.get("model.depth", 2)
    q += 0.01 if o.get("augment.coverage", 0.3) > 0.4 else 0.0
    q -= 0.05 if not o.get("model.use_dpn", True) else 0.0
    q -= 0.03 if not o.get("model.use_crd", True) else 0.0
    q -= 0.02 if not o.get("model.skip", True) else 0.0
    q -= 0.08 if not o.get("model.shared_weights", True) else 0.0
    return q


def fake_cost(o: Mapping[str, Any]) -> dict[str, Any]:
    depth = o.get("model.depth", 2)
    params = 40_000 * (1 if o.get("model.shared_weights", True) else depth) + 30_000
    return {"params": params, "gflops": 0.05 * depth + 0.1, "latency_ms": 2.0 + 1.5 * depth}


SPEC = MethodSpec(
    name="rcae",
    display_name="RcAE",
    colour="tab:red",
    trainer="suite.methods.rcae.train:train",
    description="recursive conv AE + DPN + CRD, three stages",
    cache_sections=("augment",),
    cache_material=cache_material,
    stages=("stage1", "stage2", "stage3"),
    validate=validate_recursion,
    uses_eval_map=True,
    references=load_references(Path(__file__).with_name("references.json")),
    fake_quality=fake_quality,
    fake_cost=fake_cost,
)
