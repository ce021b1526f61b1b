"""The one place tensors are loaded from files: ``torch.load(..., weights_only=True)``.

A file that holds more than tensors and plain containers (a pickle that could run code when
loaded) is refused, and the refusal is the suite's own error naming the file. Torch's message is
not passed on: it advises turning ``weights_only`` off, which would run the file's code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from suite.errors import InputError, SuiteError

__all__ = ["CheckpointError", "WeightsFileError", "load_tensors"]


class CheckpointError(RuntimeError, SuiteError):
    """A checkpoint file is missing, empty, damaged or holds more than tensors; names the file."""


class WeightsFileError(InputError, CheckpointError):
    """A weights file the user gave (e.g. a backbone's weights) cannot be used (exit code 2)."""


def _refused(err: BaseException) -> bool:
    """True when torch's weights-only unpickler refused the file (it holds objects beyond tensors)."""
    return isinstance(err, pickle.UnpicklingError) and "weights only" in str(err).lower()


def load_tensors(path: str | Path, what: str = "checkpoint", user_given: bool = False) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``, failures as one error naming ``path``.

    ``what`` names the file in messages ("checkpoint", "backbone weights file"); ``user_given``
    raises ``WeightsFileError`` (an ``InputError``: exit code 2) instead of ``CheckpointError``.
    """
    error = WeightsFileError if user_given else CheckpointError
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {path} does not exist")
    if path.stat().st_size == 0:
        raise error(f"{what} {path} is empty (0 bytes)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises several types for unusable files
        if _refused(err):
            raise error(
                f"{what} {path} was refused: it is not a plain tensor file (it holds Python objects, which may "
                "contain code, or it is damaged) and is not loaded; use a file of tensors only (a state_dict "
                "saved with torch.save)"
            ) from None
        detail = str(err).splitlines()[0][:200] if str(err) else ""
        if "weights_only" in detail:  # never pass on advice to turn the check off
            detail = ""
        raise error(f"cannot read {what} {path}: {type(err).__name__}" + (f" ({detail})" if detail else "")) from None
