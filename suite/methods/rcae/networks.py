"""RcAE's networks built from the ``rcae`` section: the recursive AE, the DPN and the CRD."""

from __future__ import annotations

from torch import nn

from suite.config import Config
from suite.methods.rcae.crd import CRD
from suite.methods.rcae.dpn import DPN
from suite.methods.rcae.model import RcAE


def crd_channels(cfg: Config) -> int:
    """CRD input channels per step: I_D^n ⊕ I or I_R^n ⊕ I (6); z(|I_D^n - I|) ⊕ |I_D^n - I_D^(n-1)| ⊕ I
    or I_R^n ⊕ I_D^n ⊕ I (9)."""
    return 6 if cfg.rcae.crd_input in ("paper", "recon") else 9


def build_networks(cfg: Config) -> dict[str, nn.Module]:
    """``ae`` always, ``dpn`` with ``rcae.use_dpn`` and ``crd`` with ``rcae.use_crd``."""
    r = cfg.rcae
    nets: dict[str, nn.Module] = {
        "ae": RcAE(in_ch=3, width=r.width, depth=r.depth, skip=r.skip, shared_weights=r.shared_weights,
                   code_channels=r.code_channels)
    }
    if r.use_dpn:
        nets["dpn"] = DPN(in_ch=3, width=r.dpn_width)
    if r.use_crd:
        nets["crd"] = CRD(in_ch=crd_channels(cfg), width=r.crd_width)
    return nets
