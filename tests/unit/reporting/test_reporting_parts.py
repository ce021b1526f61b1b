"""Gallery, plots and index pieces on hand-made inputs."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from suite.reporting import gallery as G
from suite.reporting import plots as P
from suite.reporting.fake_records import write_gallery
from suite.reporting.index import Item, Section, markdown_to_html, write_index


def test_gallery_loads_and_draws_with_and_without_recursion_rows(tmp_path):
    rng = np.random.default_rng(0)
    with_steps = G.load_gallery(write_gallery(tmp_path / "a.npz", rng, size=16, steps=2))
    plain = G.load_gallery(write_gallery(tmp_path / "b.npz", rng, size=16, steps=0))
    assert with_steps["recons"].shape == (2, 2, 3, 16, 16) and "recons" not in plain
    for name, data in (("a", with_steps), ("b", plain)):
        out = G.gallery_figure(data, 0, tmp_path / f"{name}.png", "title")
        assert out.stat().st_size > 1000


def test_gallery_rejects_bad_shapes_naming_the_file(tmp_path):
    rng = np.random.default_rng(0)
    path = write_gallery(tmp_path / "g.npz", rng, size=16, steps=0)
    data = dict(np.load(path))
    data["maps"] = data["maps"][:, :8]
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(G.GalleryError, match=r"bad\.npz.*maps"):
        G.load_gallery(tmp_path / "bad.npz")
    del data["maps"]
    np.savez(tmp_path / "lacking.npz", **data)
    with pytest.raises(G.GalleryError, match=r"lacking\.npz lacks arrays \['maps'\]"):
        G.load_gallery(tmp_path / "lacking.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(G.GalleryError, match="junk.npz"):
        G.load_gallery(tmp_path / "junk.npz")


def _frame(rows):
    base = {"status": "ok", "dataset": "mvtec", "seed": 0, "config.augment.noise_std": 0.0}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_response_curves_only_for_keys_with_two_values(tmp_path):
    rows = []
    for depth in (1, 2, 4):
        for category in ("carpet", "grid"):
            for seed in (0, 1):
                rows.append({"method": "rcae", "label": f"rcae depth={depth}", "category": category, "seed": seed,
                             "config.model.depth": depth, "config.augment.coverage": 0.3,
                             "test.i_auroc": 0.7 + 0.05 * depth + 0.01 * seed, "val.i_auroc": 0.7 + 0.05 * depth})
    figures = P.response_curves(_frame(rows), tmp_path)
    assert [f.png.name for f in figures] == ["response_model.depth_rcae.png"]
    assert figures[0].png.stat().st_size > 1000


def test_accuracy_vs_cost_skips_records_without_cost_and_lists_front(tmp_path):
    rows = [
        {"method": "rcae", "label": "fast", "category": "carpet", "test.i_auroc": 0.80,
         "cost.latency_ms": 1.0, "cost.gflops": 0.1, "cost.params": 1e4},
        {"method": "rcae", "label": "slow good", "category": "carpet", "test.i_auroc": 0.95,
         "cost.latency_ms": 5.0, "cost.gflops": 0.5, "cost.params": 1e5},
        {"method": "fae", "label": "slow bad", "category": "carpet", "test.i_auroc": 0.70,
         "cost.latency_ms": 9.0, "cost.gflops": 0.9, "cost.params": 1e6},
        {"method": "hfr", "label": "no cost", "category": "carpet", "test.i_auroc": 0.99,
         "cost.latency_ms": np.nan, "cost.gflops": np.nan, "cost.params": np.nan},
    ]
    figures, tables = P.accuracy_vs_cost(_frame(rows), tmp_path)
    assert sorted(f.png.name for f in figures) == ["accuracy_vs_gflops.png", "accuracy_vs_latency_ms.png"]
    assert all(f.svg.stat().st_size > 0 for f in figures)
    for table in tables:
        assert [r[0] for r in table.rows] == ["fast", "slow good"]
    none, none_tables = P.accuracy_vs_cost(_frame(rows[3:]), tmp_path / "none")
    assert none == [] and none_tables == []


def test_markdown_to_html_tables_lists_and_inline_images(tmp_path):
    png = tmp_path / "p.png"
    G.gallery_figure(G.load_gallery(write_gallery(tmp_path / "g.npz", np.random.default_rng(1), size=8)), 0, png, "t")
    text = (
        "# Title\n\nSome **bold** and `code` [link](x.csv).\n\n"
        "| a | b \\| c |\n|---|---:|\n| 1 | **2** |\n\n- item\n\n![pic](p.png)\n"
    )
    html = markdown_to_html(text, tmp_path)
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert "<th>b | c</th>" in html and "<td><strong>2</strong></td>" in html
    assert "<li>item</li>" in html and 'src="data:image/png;base64,' in html and '<a href="x.csv">' in html


def test_write_index_md_and_html(tmp_path):
    (tmp_path / "t.md").write_text("## T\n\n| x | y |\n|---|---|\n| 1 | 2 |\n")
    (tmp_path / "d.csv").write_text("a\n1\n")
    sections = [Section("Tables", [Item("markdown", Path("t.md"), "t"), Item("file", Path("d.csv"), "d.csv")]),
                Section("Empty", [], "nothing here")]
    index = write_index(tmp_path, "R", "intro", sections)
    md = index.read_text()
    assert "- [t](t.md)" in md and "- [d.csv](d.csv)" in md and "nothing here" in md
    html = (tmp_path / "index.html").read_text()
    assert "<td>1</td>" in html and 'href="d.csv"' in html
