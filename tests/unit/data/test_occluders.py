from dataclasses import replace
from pathlib import Path

import pytest
import torch

from suite.data.occluders import (
    OccluderConfig,
    ShapeParams,
    occlude,
    load_textures,
    procedural_textures,
)
from suite.data.occluders_batched import shape_union

DTD = Path("/work/shared/data/dtd_small")
SIZE = 32


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(batch: int = 4, seed: int = 123) -> torch.Tensor:
    return torch.rand(batch, 3, SIZE, SIZE, generator=_gen(seed))


def _cfg(**kw) -> OccluderConfig:
    return OccluderConfig(**{"corruption_prob": 1.0, **kw})


def test_mask_is_exactly_the_changed_pixels():
    images = _images()
    for cfg in [_cfg(), _cfg(use_shapes=False, use_textures=False), _cfg(vary_opacity=False, smooth_boundary=False)]:
        corrupted, masks = occlude(images, cfg, _gen(1), None)
        assert corrupted.shape == images.shape and masks.shape == (4, 1, SIZE, SIZE)
        assert set(masks.unique().tolist()) <= {0.0, 1.0}
        changed = (corrupted != images).any(dim=1, keepdim=True)
        assert torch.equal(masks.bool(), changed)
        # outside the mask the image is bit-identical; every image got some corruption (prob 1)
        assert torch.equal(corrupted * (1 - masks), images * (1 - masks))
        assert (masks.flatten(1).sum(1) > 0).all()
        assert corrupted.min() >= 0 and corrupted.max() <= 1


def test_corruption_probability_zero_and_partial():
    images = _images(8)
    corrupted, masks = occlude(images, _cfg(corruption_prob=0.0), _gen(), None)
    assert torch.equal(corrupted, images) and masks.sum() == 0
    _, masks = occlude(_images(40), _cfg(corruption_prob=0.5), _gen(2), None)
    n_corrupted = int((masks.flatten(1).sum(1) > 0).sum())
    assert 8 <= n_corrupted <= 32  # Binomial(40, 0.5): outside this range has probability < 1e-4


def test_deterministic_given_the_generator():
    images = _images()
    a = occlude(images, _cfg(), _gen(5), None)
    b = occlude(images, _cfg(), _gen(5), None)
    c = occlude(images, _cfg(), _gen(6), None)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_rectangles_uniform_colour_opaque():
    # One opaque, uniformly coloured rectangle without edge blur: the mask is a full rectangle and
    # every masked pixel has the same colour.
    params = ShapeParams(rect_count=(1, 1))
    cfg = _cfg(use_shapes=False, use_textures=False, vary_opacity=False, smooth_boundary=False)
    images = torch.full((3, 3, SIZE, SIZE), 0.5)
    corrupted, masks = occlude(images, cfg, _gen(3), None, shape_params=params)
    for b in range(3):
        m = masks[b, 0].bool()
        rows, cols = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert int(m.sum()) == int(box)
        colours = corrupted[b].permute(1, 2, 0)[m]
        assert torch.equal(colours, colours[:1].expand_as(colours))


def test_opacity_range_recovered_from_black_and_white_images():
    # The random draws do not depend on the pixels, so the same seed corrupts a black and a white
    # image with the same shape, fill f and opacity a: black -> a f, white -> 1 - a + a f.
    params = ShapeParams(rect_count=(1, 1))
    black, white = torch.zeros(1, 3, SIZE, SIZE), torch.ones(1, 3, SIZE, SIZE)
    for vary, low in [(True, 0.2), (True, 0.6), (False, 0.2)]:
        for seed in range(6):
            cfg = _cfg(use_shapes=False, use_textures=False, vary_opacity=vary, opacity_min=low, smooth_boundary=False)
            cb, mb = occlude(black, cfg, _gen(seed), None, shape_params=params)
            cw, mw = occlude(white, cfg, _gen(seed), None, shape_params=params)
            region = (mb[0, 0] > 0) & (mw[0, 0] > 0)
            alpha = 1 - (cw - cb)[0, :, region]
            assert alpha.numel() > 0
            assert torch.allclose(alpha, alpha.flatten()[0].expand_as(alpha), atol=1e-6)  # constant
            a = float(alpha.flatten()[0])
            if vary:
                assert low - 1e-6 <= a <= 1 + 1e-6
            else:
                assert abs(a - 1.0) < 1e-6


def test_smooth_boundary_blends_the_edge():
    params = ShapeParams(rect_count=(1, 1), rect_side=(0.3, 0.4))
    images = torch.full((1, 3, SIZE, SIZE), 0.5)
    base = dict(use_shapes=False, use_textures=False, vary_opacity=False)
    hard, hard_mask = occlude(images, _cfg(smooth_boundary=False, **base), _gen(4), None, shape_params=params)
    soft, soft_mask = occlude(images, _cfg(smooth_boundary=True, **base), _gen(4), None, shape_params=params)
    n_hard = hard[0].permute(1, 2, 0)[hard_mask[0, 0].bool()].unique(dim=0).shape[0]
    n_soft = soft[0].permute(1, 2, 0)[soft_mask[0, 0].bool()].unique(dim=0).shape[0]
    assert n_hard == 1 and n_soft > 3
    assert soft_mask.sum() > hard_mask.sum()  # the blur spreads the edge outwards


def test_texture_fill_uses_the_given_textures():
    colour = torch.tensor([0.1, 0.2, 0.9])
    bank = colour.view(1, 3, 1, 1).expand(2, 3, 16, 16).contiguous()
    cfg = _cfg(use_textures=True, vary_opacity=False, smooth_boundary=False)
    corrupted, masks = occlude(torch.full((2, 3, SIZE, SIZE), 0.5), cfg, _gen(8), bank)
    for b in range(2):
        pixels = corrupted[b].permute(1, 2, 0)[masks[b, 0].bool()]
        assert torch.allclose(pixels, colour.expand_as(pixels), atol=1e-6)


def _shapes(count: int, params: ShapeParams, seed: int, use_shapes: bool = True) -> torch.Tensor:
    return shape_union(count, 64, 64, use_shapes, _gen(seed), params, "cpu")


def test_shapes_are_varied_and_strokes_are_thin():
    one_ellipse = ShapeParams(ellipse_count=(1, 1), stroke_count=(0, 0))
    ellipse_areas = _shapes(8, one_ellipse, 0).flatten(1).sum(dim=1).tolist()
    assert min(ellipse_areas) > 0 and len(set(ellipse_areas)) > 4
    thin = ShapeParams(ellipse_count=(0, 0), stroke_count=(1, 1), stroke_radius=(0.0, 0.0), stroke_length=(0.3, 0.3))
    thick = replace(thin, stroke_radius=(0.05, 0.05))
    # The radius is drawn after the stroke's path, so one seed gives the same paths at both thicknesses.
    thin_areas = _shapes(4, thin, 1).flatten(1).sum(dim=1)
    thick_areas = _shapes(4, thick, 1).flatten(1).sum(dim=1)
    # a 1-px curve of chord 19 px covers at most its (bent) length; radius 3 px widens it a lot
    assert (thin_areas > 0).all() and (thin_areas <= 3 * 0.3 * 64).all()
    assert (thick_areas > 2 * thin_areas).all()


def test_shape_unions_are_never_empty_and_rectangles_lie_inside():
    params = ShapeParams(ellipse_count=(0, 1), stroke_count=(0, 1))  # both zero happens: counts are redrawn
    shapes = _shapes(64, params, 2)
    assert shapes.dtype == torch.bool and shapes.shape == (64, 64, 64)
    assert (shapes.flatten(1).sum(dim=1) > 0).all()
    one_rect = ShapeParams(rect_count=(1, 1), rect_side=(0.1, 0.3))
    for mask in _shapes(16, one_rect, 3, use_shapes=False):
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        height, width = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
        assert int(mask.sum()) == height * width  # a full axis-aligned rectangle
        assert round(0.1 * 64) <= min(height, width) and max(height, width) <= round(0.3 * 64)


def test_bad_values_are_refused():
    with pytest.raises(ValueError, match="opacity_min"):
        occlude(_images(1), _cfg(opacity_min=1.5), _gen(), None)
    with pytest.raises(ValueError, match="shape"):
        occlude(torch.rand(3, SIZE, SIZE), _cfg(), _gen(), None)


def test_grayscale_images_are_supported():
    images = torch.rand(2, 1, SIZE, SIZE, generator=_gen(11))
    corrupted, masks = occlude(images, _cfg(), _gen(12), None)
    assert corrupted.shape == images.shape
    assert torch.equal(masks.bool(), corrupted != images)


def test_procedural_textures_shape_range_variety_determinism():
    tex = procedural_textures(6, 24, _gen(13))
    assert tex.shape == (6, 3, 24, 24)
    assert tex.min() >= 0 and tex.max() <= 1
    assert (tex.flatten(1).std(dim=1) > 0.01).all()  # patterned, not flat
    assert not torch.allclose(tex[0], tex[1])
    assert torch.equal(tex, procedural_textures(6, 24, _gen(13)))


def test_load_textures_from_a_nested_folder(tmp_path):
    from PIL import Image

    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.new("RGB", (40, 20), (255, 0, 0)).save(tmp_path / "a" / "red.png")
    Image.new("RGB", (20, 30), (0, 255, 0)).save(tmp_path / "a" / "b" / "green.jpg")
    Image.new("L", (16, 16), 128).save(tmp_path / "grey.PNG")
    (tmp_path / "notes.txt").write_text("not an image")
    tex = load_textures(tmp_path, 8)
    assert tex.shape == (3, 3, 8, 8) and tex.dtype == torch.float32
    assert tex.min() >= 0 and tex.max() <= 1
    # sorted by path: a/b/green.jpg, a/red.png, grey.PNG
    assert tex[0, 1].mean() > 0.9 and tex[1, 0].mean() > 0.99 and abs(float(tex[2].mean()) - 128 / 255) < 0.01
    assert load_textures(tmp_path, 8, max_count=2).shape[0] == 2


def test_load_textures_errors_name_the_folder(tmp_path):
    empty = tmp_path / "empty_textures"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="empty_textures"):
        load_textures(empty, 8)
    with pytest.raises(FileNotFoundError, match="missing_folder"):
        load_textures(tmp_path / "missing_folder", 8)


@pytest.mark.skipif(not DTD.is_dir(), reason="shared DTD subset not available")
def test_load_textures_from_the_dtd_subset():
    tex = load_textures(DTD, 16, max_count=5)
    assert tex.shape == (5, 3, 16, 16)
    corrupted, masks = occlude(_images(2), _cfg(), _gen(14), tex)
    assert torch.equal(masks.bool(), (corrupted != _images(2)).any(1, keepdim=True))


def test_shape_params_are_a_knob():
    params = replace(ShapeParams(), ellipse_count=(1, 1), stroke_count=(0, 0), ellipse_axis=(0.3, 0.3),
                     elastic_strength=0.0)
    cfg = _cfg(use_textures=False, vary_opacity=False, smooth_boundary=False)
    _, masks = occlude(torch.full((1, 3, 64, 64), 0.5), cfg, _gen(15), None, shape_params=params)
    # an undeformed circle of radius 0.3 * 64 = 19.2 px, possibly cut by the border
    area = float(masks.sum())
    assert area <= 3.1416 * 19.2**2 * 1.05 and area > 0.25 * 3.1416 * 19.2**2 * 0.9
