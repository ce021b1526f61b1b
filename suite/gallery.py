"""A record's heatmap gallery artifact (``gallery.npz``): its format, where it may be read from,
and the figure of one of its images. Used by the report and by MLflow tracking alike.

The npz holds ``images`` (K,3,H,W) in [0,1], ``maps`` (K,H,W), ``masks`` (K,H,W), ``scores`` (K,),
``labels`` (K,), ``names`` (K,) and optionally ``recons`` / ``details`` (K,S,3,H,W) — the recursive
reconstructions I_R^s and the DPN outputs I_D^s — with ``steps`` (S,) naming the recursion steps.
``save_gallery`` writes it atomically, ``load_gallery`` reads and checks it (no pickles).
A figure shows the input, the anomaly map (alone and over the input), the ground truth, then a
row of I_R^s and a row of I_D^s when present.

A record's gallery artifact is read only from inside the record's own folder: ``gallery_path``
resolves it (``..`` and symbolic links followed) and refuses, with a ``GalleryError`` naming the
record and the path, one that leads outside, before anything is opened.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from suite.data.common import resolve_inside
from suite.errors import SuiteError

REQUIRED = ("images", "maps", "masks", "scores", "labels", "names")
DPI = 90


class GalleryError(ValueError, SuiteError):
    """A gallery file is unreadable or its arrays have inconsistent shapes; the message names the file."""


def gallery_path(record_path: str | Path | None, gallery: str | Path) -> Path:
    """Where a record's gallery artifact may be read: ``gallery`` (relative to the record's folder,
    or the absolute path ``suite.aggregate`` resolved it to) when its real location is inside the
    real location of the record's folder; ``GalleryError`` naming the record and the path otherwise
    (also without a record path to check against). Nothing is opened."""
    if record_path is None or (isinstance(record_path, float) and np.isnan(record_path)):
        raise GalleryError(f"gallery artifact {gallery} has no record folder to be read from")
    record_dir = Path(os.path.realpath(Path(record_path).parent))
    relative = Path(gallery)
    if relative.is_absolute():  # aggregate.record_row stores the resolved absolute path
        relative = Path(os.path.relpath(relative, record_dir))
    return resolve_inside(
        record_dir, relative, f"record {record_path}", "gallery artifact", error=GalleryError,
        root_name="record folder",
    )


def load_gallery(path: str | Path) -> dict[str, np.ndarray]:
    """Read and check a gallery npz (no pickles)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError) as err:
        raise GalleryError(f"cannot read gallery {path}: {err}") from err
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise GalleryError(f"gallery {path} lacks arrays {missing}")
    images = data["images"]
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise GalleryError(f"gallery {path}: images must be (K,3,H,W), got {images.shape}")
    k, _, h, w = images.shape
    for key in ("maps", "masks"):
        if data[key].shape != (k, h, w):
            raise GalleryError(f"gallery {path}: {key} must be {(k, h, w)}, got {data[key].shape}")
    for key in ("scores", "labels", "names"):
        if data[key].shape[:1] != (k,):
            raise GalleryError(f"gallery {path}: {key} must have {k} entries, got shape {data[key].shape}")
    for key in ("recons", "details"):
        if key in data:
            arr = data[key]
            if arr.ndim != 5 or arr.shape[0] != k or arr.shape[2:] != images.shape[1:]:
                raise GalleryError(f"gallery {path}: {key} must be (K,S,{images.shape[1]},H,W), got {arr.shape}")
    return data


def save_gallery(path: str | Path, arrays: Mapping[str, Any]) -> Path:
    """Write a gallery npz atomically (a temporary file renamed into place); ``arrays`` as above."""
    path = Path(path)
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise GalleryError(f"gallery {path}: arrays {missing} are required")
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return path


def _rgb(chw: np.ndarray) -> np.ndarray:
    img = np.clip(np.asarray(chw, dtype=float), 0.0, 1.0)
    img = np.moveaxis(img, 0, -1)
    return img[..., 0] if img.shape[-1] == 1 else img


def gallery_figure(
    data: Mapping[str, np.ndarray], index: int, out_path: str | Path, title: str,
    map_range: tuple[float, float] | None = None,
) -> Path:
    """Write the figure of image ``index`` of a loaded gallery to ``out_path`` (PNG)."""
    # Here, not at the top: every training process writes gallery.npz through this module, and importing
    # pyplot there cost each of them about 0.3 CPU-seconds for a figure only reports draw.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recons = data.get("recons")
    details = data.get("details")
    n_steps = recons.shape[1] if recons is not None else (details.shape[1] if details is not None else 0)
    steps = list(np.asarray(data["steps"]).tolist()) if "steps" in data else list(range(1, n_steps + 1))
    rows = 1 + (recons is not None) + (details is not None)
    ncols = max(4, n_steps)
    fig, axes = plt.subplots(rows, ncols, figsize=(1.7 * ncols, 1.9 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    image = _rgb(data["images"][index])
    amap = np.asarray(data["maps"][index], dtype=float)
    lo, hi = map_range if map_range is not None else (float(np.nanmin(amap)), float(np.nanmax(amap)))
    if not hi > lo:
        hi = lo + 1e-6
    cmap_img = "gray" if image.ndim == 2 else None
    axes[0, 0].imshow(image, cmap=cmap_img)
    axes[0, 0].set_title("input", fontsize=7)
    axes[0, 1].imshow(amap, cmap="jet", vmin=lo, vmax=hi)
    axes[0, 1].set_title("anomaly map", fontsize=7)
    axes[0, 2].imshow(image, cmap=cmap_img)
    axes[0, 2].imshow(amap, cmap="jet", vmin=lo, vmax=hi, alpha=0.45)
    axes[0, 2].set_title("overlay", fontsize=7)
    axes[0, 3].imshow(np.asarray(data["masks"][index], dtype=float), cmap="gray", vmin=0, vmax=1)
    axes[0, 3].set_title("ground truth", fontsize=7)
    row = 1
    for key, symbol in (("recons", "R"), ("details", "D")):
        arr = data.get(key)
        if arr is None:
            continue
        for s in range(arr.shape[1]):
            ax = axes[row, s]
            ax.imshow(_rgb(arr[index, s]), cmap=cmap_img)
            step = steps[s] if s < len(steps) else s + 1
            ax.set_title(f"$I_{symbol}^{{{step}}}$ ({'recon' if symbol == 'R' else 'detail'})", fontsize=8)
        row += 1
    fig.suptitle(title, fontsize=8)
    # Fixed margins instead of tight_layout: same look for image grids, a fraction of the time.
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1.0 - 0.5 / (1.9 * rows) - 0.04, wspace=0.08,
                        hspace=0.25)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=DPI)
    plt.close(fig)
    return out_path
