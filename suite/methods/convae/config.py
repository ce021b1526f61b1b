"""The ``convae`` config section: the deep ConvAE baseline's network.

The keys lived in the shared ``model`` section before (one value for RcAE and ConvAE); ``ALIASES``
maps the old keys to this section, so an old ``model.depth`` sets both methods' depth as it did.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ConvAEConfig:
    depth: int = 5  # number of stacked encoder / decoder levels N
    width: int = 16  # base channel width of the conv AE blocks
    code_channels: int = 3  # channels of the codes between levels (3 = the image's; others add a 1x1 stem / head)
    skip: bool = True  # skip connections inside the AE blocks


ALIASES = {f"model.{k}": k for k in ("depth", "width", "code_channels", "skip")}
