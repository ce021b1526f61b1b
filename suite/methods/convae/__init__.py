"""ConvAE: the deep convolutional autoencoder baseline of the RcAE paper (Eq. 2), N distinct
encoder and decoder levels run once. ``model.py`` holds the network; it trains and scores through
RcAE's stage 1 and scorer (the same corruption, loss and maps), so the comparison isolates weight
sharing and recursion.
"""

from __future__ import annotations

from suite.methods.rcae import cache_material, validate_recursion
from suite.methods.registry import MethodSpec

SPEC = MethodSpec(
    name="convae",
    display_name="ConvAE",
    colour="tab:blue",
    trainer="suite.methods.rcae.train:train",
    description="deep conv AE (no recursion, no shared weights), stage 1 only",
    cache_sections=("augment",),
    cache_material=cache_material,
    validate=validate_recursion,
    uses_eval_map=True,
    fake_quality=0.75,
    fake_cost={"params": 150_000, "gflops": 0.12, "latency_ms": 1.6},
)
