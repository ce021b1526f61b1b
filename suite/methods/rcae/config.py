"""The ``rcae`` config section: the recursive network, the DPN and the CRD (RcAE only).

These keys lived in the shared ``model`` and ``eval`` sections before; ``ALIASES`` maps the old
keys (``model.depth``, ``eval.crd_output``, ...) to this section, so old records, sweeps and
search spaces keep loading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


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
    # clean-normal statistics, ⊕ |I_D^n - I_D^(n-1)|, ⊕ I)
    crd_input: Literal["paper", "discrepancy"] = "paper"
    crd_output: Literal["logits", "sigmoid"] = "logits"  # CRD map scored as logits | sigmoid (saturates: top-k ties)


OLD_MODEL_KEYS = ("depth", "width", "code_channels", "skip", "shared_weights", "use_dpn", "use_crd", "dpn_width",
                  "dpn_input", "crd_width", "crd_steps", "crd_pool", "crd_input")
ALIASES = {**{f"model.{k}": k for k in OLD_MODEL_KEYS}, "eval.crd_output": "crd_output"}
