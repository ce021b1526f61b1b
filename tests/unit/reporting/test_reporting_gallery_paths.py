"""A record's gallery artifact is read only from inside the record's own folder
(suite/reporting/gallery.py ``gallery_path`` and ``build_gallery``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from suite import aggregate as agg
from suite.reporting import gallery as G
from suite.reporting.fake_records import write_gallery


@pytest.fixture
def template(fake_runs) -> dict:
    """The JSON of a fake record that has a gallery (the session's fake runs are not modified)."""
    record_path = next(fake_runs.galleries[0].parent.glob("record*.json"))
    return json.loads(record_path.read_text())


def write_record(folder: Path, template: dict, trial: str, gallery: str) -> Path:
    data = dict(template, trial_id=trial, artifacts={"gallery": gallery})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "record_bottle.json"
    path.write_text(json.dumps(data))
    return path


class Spy:
    """Real locations given to ``numpy.load`` and ``os.stat`` (``Path.is_file``) after ``start``."""

    def __init__(self, monkeypatch) -> None:
        self.monkeypatch = monkeypatch
        self.loaded: set[str] = set()
        self.stat: set[str] = set()

    def start(self) -> None:
        real_load, real_stat = np.load, os.stat

        def load(file, *args, **kwargs):
            self.loaded.add(os.path.realpath(file))
            return real_load(file, *args, **kwargs)

        def stat(path, *args, **kwargs):
            if isinstance(path, (str, bytes, os.PathLike)):
                self.stat.add(os.path.realpath(os.fsdecode(path)))
            return real_stat(path, *args, **kwargs)

        self.monkeypatch.setattr(np, "load", load)
        self.monkeypatch.setattr(os, "stat", stat)

    def touched(self, path: Path) -> bool:
        real = os.path.realpath(path)
        return real in self.loaded or real in self.stat


def test_gallery_path_keeps_the_artifact_inside_the_record_folder(tmp_path):
    record = tmp_path / "run" / "t1" / "record.json"
    record.parent.mkdir(parents=True)
    assert G.gallery_path(record, "gallery.npz") == record.parent / "gallery.npz"
    assert G.gallery_path(record, "sub/../gallery.npz") == record.parent / "gallery.npz"
    assert G.gallery_path(record, str(record.parent / "gallery.npz")) == record.parent / "gallery.npz"
    with pytest.raises(G.GalleryError) as info:
        G.gallery_path(record, "../../x.npz")
    assert str(record) in str(info.value) and "../../x.npz" in str(info.value)
    with pytest.raises(G.GalleryError, match="outside"):
        G.gallery_path(record, str(tmp_path / "x.npz"))  # the absolute form aggregate stores
    (record.parent / "link.npz").symlink_to(tmp_path / "x.npz")
    with pytest.raises(G.GalleryError, match="symbolic link"):
        G.gallery_path(record, "link.npz")
    with pytest.raises(G.GalleryError):
        G.gallery_path(None, "gallery.npz")


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_build_gallery_never_opens_an_artifact_outside_the_record(tmp_path, template, monkeypatch, kind):
    rng = np.random.default_rng(0)
    run = tmp_path / "runs" / "run"
    outside = write_gallery(tmp_path / "runs" / "x.npz", rng, size=8)  # a valid gallery: drawable if read
    good_record = write_record(run / "t_good", template, "t_good", "gallery.npz")
    good = write_gallery(good_record.parent / "gallery.npz", rng, size=8)
    bad_dir = run / "t_bad"
    artifact = {"dotdot": "../../x.npz", "absolute": str(outside), "symlink": "gallery.npz"}[kind]
    bad_record = write_record(bad_dir, template, "t_bad", artifact)
    if kind == "symlink":
        (bad_dir / "gallery.npz").symlink_to(outside)
    frame = agg.records_frame(agg.load_records(run))
    assert len(frame) == 2 and frame["gallery"].notna().all()

    spy = Spy(monkeypatch)
    spy.start()
    written, warnings = G.build_gallery(frame, tmp_path / "out", max_records_per_category=5)

    assert not spy.touched(outside), "the gallery outside the record folder was stat'ed or loaded"
    assert os.path.realpath(good) in spy.loaded  # spy live: the good record's gallery was read
    assert all(img.path.name.startswith("t_good_") for img in written) and len(written) == 2
    assert len(warnings) == 1
    assert str(bad_record) in warnings[0] and "outside" in warnings[0]


def test_an_empty_gallery_file_is_a_gallery_error(tmp_path):
    import pytest

    from suite.reporting.gallery import GalleryError, load_gallery

    (tmp_path / "gallery.npz").write_bytes(b"")
    with pytest.raises(GalleryError, match="gallery.npz"):
        load_gallery(tmp_path / "gallery.npz")
