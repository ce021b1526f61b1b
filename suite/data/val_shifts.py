"""Photometrically shifted held-out normals for the validation set (``data.val_shifts``).

A model whose scores follow image brightness ranks shifted *normals* as anomalous; with these
in the validation set (label 0, empty masks) such a configuration scores lower there, so
validation-based selection can see a sensitivity that a test-set illumination change would
expose. Only held-out train normals are transformed, never test images, and the shifts differ
from the stress tests that must stay out of every choice (gamma 1.2): a gain of 0.92 / 1.08
(an exposure or lamp change of 8 %) and a gamma of 0.9 / 1.1 (a tone-curve change).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from suite.data.photometric import PhotometricParams, apply_photometric

# name -> (gain, gamma); ``apply_photometric`` computes clamp(gain · x^gamma, 0, 1)
VAL_SHIFTS: dict[str, tuple[float, float]] = {
    "gain0.92": (0.92, 1.0),
    "gain1.08": (1.08, 1.0),
    "gamma0.9": (1.0, 0.9),
    "gamma1.1": (1.0, 1.1),
}
BATCH = 16


def apply_val_shift(name: str, images: Tensor) -> Tensor:
    """``VAL_SHIFTS[name]`` applied to every image of ``images`` (N, C, H, W) in [0, 1]."""
    if name not in VAL_SHIFTS:
        raise ValueError(f"unknown validation shift {name!r}; valid: {', '.join(VAL_SHIFTS)}")
    gain, gamma = VAL_SHIFTS[name]
    n = images.shape[0]
    params = PhotometricParams(gain=torch.full((n,), gain), offset=torch.zeros(n), gamma=torch.full((n,), gamma))
    return apply_photometric(images, params)


def iter_shifted(normals, names: Sequence[str]) -> Iterator[Tensor]:
    """Every shift of ``names`` (in that order) of every image of ``normals`` (a tensor or an
    ``ImageSource``, read ``BATCH`` at a time), one (C, H, W) image at a time."""
    for name in names:
        for i in range(0, len(normals), BATCH):
            yield from apply_val_shift(name, normals[i : i + BATCH].float())


def shifted_normals(normals, names: Sequence[str]) -> Tensor:
    """``iter_shifted`` stacked: (len(names) · N, C, H, W); empty (0, C, H, W) for no names."""
    if not names:
        return normals[:0].float()
    return torch.stack(list(iter_shifted(normals, names)))
