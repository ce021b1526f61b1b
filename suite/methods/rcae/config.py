"""The ``rcae`` config section: the recursive network, the DPN and the CRD (RcAE only).

These keys lived in the shared ``model`` and ``eval`` sections before; ``ALIASES`` maps the old
keys (``model.depth``, ``eval.crd_output``, ...) to this section, so old records, sweeps and
search spaces keep loading.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from suite.errors import ConfigError


@dataclass
class RcAEConfig:
    depth: int = 5  # recursion depth N
    width: int = 16  # base channel width of the conv AE blocks
    # channels of every intermediate code I_C^i; 3 = the image's channels (the paper). Other
    # values add a 1x1 stem (3 -> k) before and a 1x1 head (k -> 3) after the recursion.
    code_channels: int = 3
    skip: bool = True  # skip connections inside the AE blocks
    shared_weights: bool = True  # one shared E and D (False = a distinct E_i, D_i per level)
    use_dpn: bool = True  # stage 2: detail-preservation network
    use_crd: bool = True  # stage 3: cross-recursion detection
    dpn_width: int = 16
    # DPN training input: clean (the paper: clean normals, I_R^n of I) | corrupted (stage-1
    # corruption on the input, clean target, so it learns not to put pseudo-defects back)
    dpn_input: Literal["clean", "corrupted"] = "clean"
    crd_width: int = 8
    crd_steps: list[int] | None = None  # recursion steps CRD sees; None = 1..N (Table 6: [5], [1, 3, 5])
    crd_pool: int = 2  # CRD runs on inputs average-pooled by this factor and upsamples its output
    # CRD input per step: paper (I_D^n ⊕ I) | discrepancy (|I_D^n - I| standardised per pixel by
    # clean-normal statistics, ⊕ |I_D^n - I_D^(n-1)|, ⊕ I) | recon (I_R^n ⊕ I) | both (I_R^n ⊕ I_D^n ⊕ I)
    crd_input: Literal["paper", "discrepancy", "recon", "both"] = "paper"
    crd_output: Literal["logits", "sigmoid"] = "logits"  # CRD map scored as logits | sigmoid (saturates: top-k ties)
    # -- photometric robustness (issue 19; photometric_switches.py). The defaults were chosen on validation
    # (3 seeds, README "Photometric robustness"); ``rcae.photometric=paper`` sets the paper's behaviour back
    # (config_presets.SHORTHANDS), as the ``paper`` preset does.
    # per-image offset normalisation of every stage's and the scorer's input: none | shift | gain (each image's
    # median luminance moved to the train normals' reference level, computed once and kept with the model)
    normalise: Literal["none", "shift", "gain"] = "gain"
    # photometric jitter of the clean normals in stages 1-3 (gain, offset, gamma, each U(range)); input and
    # target change alike and no mask ever marks it
    jitter: bool = True
    jitter_gain: list[float] = field(default_factory=lambda: [0.9, 1.1])
    jitter_offset: list[float] = field(default_factory=lambda: [-0.05, 0.05])
    jitter_gamma: list[float] = field(default_factory=lambda: [0.9, 1.1])
    structure: Literal["gradient", "ssim"] = "gradient"  # the ``structure`` map kind (suite.residuals)
    # the map kinds ``fused`` averages (each standardised; a model without a CRD fuses the others)
    fuse: list[Literal["residual_final", "residual_mean", "crd", "residual_centred", "residual_gain", "structure"]] = \
        field(default_factory=lambda: ["residual_gain", "structure", "crd"])
    # stage-3 length in optimiser steps (0 = train.stage3.epochs) and a floor on it (0 = none): a small
    # dataset or preset still gives the CRD enough steps
    crd_iterations: int = 0
    crd_min_iterations: int = 0


def check_switches(r: RcAEConfig) -> None:
    """The issue-19 switches' ranges (raises ConfigError naming the key)."""
    for key, positive in (("jitter_gain", True), ("jitter_offset", False), ("jitter_gamma", True)):
        lo, hi = getattr(r, key) if len(getattr(r, key)) == 2 else (math.nan, math.nan)
        if not (lo <= hi and (lo > 0 or not positive)):
            raise ConfigError(f"config key 'rcae.{key}': {getattr(r, key)} must be [low, high] with low <= high"
                              + (" and low > 0" if positive else ""))
    for key in ("crd_iterations", "crd_min_iterations"):
        if getattr(r, key) < 0:
            raise ConfigError(f"config key 'rcae.{key}': {getattr(r, key)} must be >= 0")
    if not r.fuse or len(set(r.fuse)) != len(r.fuse):
        raise ConfigError(f"config key 'rcae.fuse': {r.fuse} must name at least one map kind, each once")


OLD_MODEL_KEYS = ("depth", "width", "code_channels", "skip", "shared_weights", "use_dpn", "use_crd", "dpn_width",
                  "dpn_input", "crd_width", "crd_steps", "crd_pool", "crd_input")
ALIASES = {**{f"model.{k}": k for k in OLD_MODEL_KEYS}, "eval.crd_output": "crd_output"}
