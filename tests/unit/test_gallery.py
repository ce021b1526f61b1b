"""The gallery artifact's format (suite/gallery.py): what ``save_gallery`` writes ``load_gallery``
reads back unchanged, and malformed files are refused naming the file."""

from __future__ import annotations

import numpy as np
import pytest

from suite.gallery import GalleryError, gallery_figure, load_gallery, save_gallery


def _arrays(k: int = 2, size: int = 8, steps: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {
        "images": rng.random((k, 3, size, size)).astype(np.float16),
        "maps": rng.random((k, size, size)).astype(np.float16),
        "masks": (rng.random((k, size, size)) > 0.5).astype(np.uint8),
        "scores": rng.random(k),
        "labels": np.array([1, 0][:k]),
        "names": np.array([f"img{i}.png" for i in range(k)]),
        "steps": np.arange(1, steps + 1),
    }
    if steps:
        out["recons"] = rng.random((k, steps, 3, size, size)).astype(np.float16)
    return out


def test_save_then_load_round_trips(tmp_path):
    arrays = _arrays(steps=2)
    path = save_gallery(tmp_path / "gallery.npz", arrays)
    loaded = load_gallery(path)
    assert set(loaded) == set(arrays)
    for key, value in arrays.items():
        np.testing.assert_array_equal(loaded[key], value)
    assert not list(tmp_path.glob(".*tmp*"))  # written through a temporary file, renamed into place
    out = gallery_figure(loaded, 0, tmp_path / "fig" / "0.png", "title")
    assert out.is_file() and out.stat().st_size > 0


def test_malformed_galleries_are_refused(tmp_path):
    with pytest.raises(GalleryError, match="required"):
        save_gallery(tmp_path / "g.npz", {k: v for k, v in _arrays().items() if k != "maps"})
    bad = _arrays()
    bad["maps"] = bad["maps"][:, :4]
    np.savez(tmp_path / "shape.npz", **bad)
    with pytest.raises(GalleryError, match=r"shape\.npz: maps must be"):
        load_gallery(tmp_path / "shape.npz")
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    with pytest.raises(GalleryError, match="cannot read gallery"):
        load_gallery(tmp_path / "junk.npz")
