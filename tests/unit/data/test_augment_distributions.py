"""The batched generators draw from the same distributions as the pre-rewrite per-image generator
(tests/reference/legacy_*.py, the oracle): block sizes, coverage, family frequencies, clean
fraction, line lengths, mask areas and opacity, compared over many draws with two-sample tests at
fixed seeds (so the outcome is deterministic). Each comparison also has a power check: the same
statistic rejects a deliberately wrong generator (other coverage, other family probabilities, ...),
so a broken implementation cannot pass."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats

from suite.config import AugmentConfig, PseudoConfig
from suite.data import augment as new_augment
from suite.data.augment import COLOR_BLOCK, COPY_PASTE, LINES
from suite.methods.rcae.pseudo import crd_training_batch as crd_pseudo_anomalies
from tests.reference.loader import load_reference as _legacy

SAME = 1e-3  # p-value above which two samples count as one distribution
DIFFERENT = 1e-4  # p-value below which the power checks must reject

old_augment = _legacy("legacy_augment")
old_pseudo = _legacy("legacy_pseudo")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(batch: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=gen(10_000 + seed))


def only(*families: int, **overrides) -> AugmentConfig:
    flags = {"color_blocks": COLOR_BLOCK in families, "copy_paste": COPY_PASTE in families, "lines": LINES in families}
    overrides.setdefault("reference_size", 256)
    return AugmentConfig(**flags, **overrides)


def ks_same(a, b) -> float:
    return stats.ks_2samp(np.asarray(a), np.asarray(b)).pvalue


def chi2_same(a, b) -> float:
    """p-value of a chi-square test that two samples of category labels share one distribution."""
    labels = sorted(set(a) | set(b))
    table = np.array([[list(a).count(v) for v in labels], [list(b).count(v) for v in labels]])
    return stats.chi2_contingency(table).pvalue


def areas(module, x, cfg, seeds, **kw) -> list[float]:
    out = []
    for seed in seeds:
        _, masks = module.corrupt(x, cfg, gen(seed), **kw)
        out.extend(masks.flatten(1).sum(dim=1).tolist())
    return out


def test_block_sizes_match():
    """One whole colour block per image (pseudo-anomalies at coverage 0): its area is the block side squared."""
    x = images(200)
    cfg = only(COLOR_BLOCK, coverage=0.0, block_sizes=[32, 64, 128])  # 8, 16, 32 px at 64 px

    def sides(module, seeds, **kw):
        return [round(a ** 0.5) for s in seeds
                for a in module.pseudo_anomalies(x, cfg, gen(s), min_coverage=0.0, whole_block_prob=1.0, **kw)[1]
                .flatten(1).sum(dim=1).tolist()]

    old, new = sides(old_augment, range(3)), sides(new_augment, range(100, 103))
    assert set(new) == {8, 16, 32}
    assert chi2_same(old, new) > SAME
    skewed = [s for s in old if s != 32] + [8] * old.count(32)  # a generator that never picks the largest size
    assert chi2_same(old, skewed) < DIFFERENT


def test_coverage_and_colour_rectangles_match():
    x = images(128)
    for cfg in (only(COLOR_BLOCK, coverage=0.3, block_sizes=[32]),
                only(COLOR_BLOCK, coverage=0.7, block_sizes=[64, 128], coverage_sampling="uniform")):
        old, new = areas(old_augment, x, cfg, range(4)), areas(new_augment, x, cfg, range(100, 104))
        assert ks_same(old, new) > SAME
        assert stats.ttest_ind(old, new, equal_var=False).pvalue > SAME  # the means (coverage) too
    wrong = areas(old_augment, x, only(COLOR_BLOCK, coverage=0.27, block_sizes=[32]), range(4))
    right = areas(new_augment, x, only(COLOR_BLOCK, coverage=0.3, block_sizes=[32]), range(4))
    assert ks_same(right, wrong) < DIFFERENT


def test_family_frequencies_match():
    """Share of changed pixels per family (whole blocks, coverage 1, every family on)."""
    x = images(96)
    donors = images(4, seed=5)
    cfg = only(COLOR_BLOCK, COPY_PASTE, LINES, coverage=1.0, block_sizes=[64])

    def shares(module, seeds, cfg=cfg):
        rows = []
        for seed in seeds:
            _, _, fam = module.corrupt_with_families(x, cfg, gen(seed), donors=donors, whole_block_prob=1.0)
            counts = torch.stack([(fam == code).flatten(1).sum(dim=1) for code in (COLOR_BLOCK, COPY_PASTE, LINES)])
            rows.append((counts / counts.sum(dim=0).clamp(min=1)).T)
        return torch.cat(rows).numpy()

    old, new = shares(old_augment, range(3)), shares(new_augment, range(100, 103))
    for column in range(3):
        assert ks_same(old[:, column], new[:, column]) > SAME
    # A generator drawing colour blocks twice as often as copy-paste would be caught.
    biased = shares(old_augment, range(3), dataclasses.replace(cfg, copy_paste=False))
    assert ks_same(old[:, 0], biased[:, 0]) < DIFFERENT


def test_block_family_counts_match():
    """Family of each touched block (colour vs copy-paste, whole blocks): chi-square over block counts."""
    x = images(64)
    cfg = only(COLOR_BLOCK, COPY_PASTE, coverage=0.5, block_sizes=[64])  # 16 px blocks: 4 x 4 grid

    def labels(module, seeds):
        out = []
        for seed in seeds:
            _, _, fam = module.corrupt_with_families(x, cfg, gen(seed), whole_block_prob=1.0)
            blocks = fam.reshape(-1, 4, 16, 4, 16).permute(0, 1, 3, 2, 4).reshape(-1, 256)
            out.extend(int(b.max()) for b in blocks if b.max() > 0)
        return out

    old, new = labels(old_augment, range(2)), labels(new_augment, range(100, 102))
    assert chi2_same(old, new) > SAME
    assert chi2_same(old, [COLOR_BLOCK if i % 3 else COPY_PASTE for i in range(len(old))]) < DIFFERENT


def test_clean_fraction_matches():
    x = images(100)
    cfg = only(COLOR_BLOCK, coverage=0.5, clean_fraction=0.3)

    def clean(module, seeds, cfg=cfg):
        return [int(m == 0) for s in seeds for m in module.training_pair(x, cfg, gen(s))[2].flatten(1).amax(dim=1)]

    old, new = clean(old_augment, range(6)), clean(new_augment, range(100, 106))
    assert chi2_same(old, new) > SAME
    assert 0.25 < np.mean(new) < 0.35
    assert chi2_same(old, clean(new_augment, range(6), dataclasses.replace(cfg, clean_fraction=0.45))) < DIFFERENT


def _line_extents(module, seeds, cfg, size=96):
    """Farthest pair of covered pixel centres of one line per image (lines clipped by the border skipped)."""
    x = images(48, size)
    out = []
    for seed in seeds:
        _, masks = module.corrupt(x, cfg, gen(seed))
        for mask in masks[:, 0]:
            points = mask.nonzero().float()
            if points.numel() == 0 or points.min() == 0 or points.max() == size - 1:
                continue
            out.append(torch.cdist(points, points).max().item())
    return out


def test_line_lengths_and_areas_match():
    cfg = only(LINES, coverage=1.0, block_sizes=[256], num_lines=[1, 1], line_length=[50, 150])
    old, new = _line_extents(old_augment, range(5), cfg), _line_extents(new_augment, range(100, 105), cfg)
    assert min(len(old), len(new)) > 100
    assert ks_same(old, new) > SAME
    longer = _line_extents(old_augment, range(5), dataclasses.replace(cfg, line_length=[80, 180]))
    assert ks_same(new, longer) < DIFFERENT
    # Line masks over whole images (1-4 lines per block, small blocks): pixel areas.
    x = images(64)
    cfg = only(LINES, coverage=0.2, block_sizes=[64])
    assert ks_same(areas(old_augment, x, cfg, range(3)), areas(new_augment, x, cfg, range(100, 103))) > SAME


def test_default_mask_areas_match_for_stage1_and_pseudo_anomalies():
    x = images(64)
    donors = images(4, seed=3)
    cfg = AugmentConfig(reference_size=256)
    old = areas(old_augment, x, cfg, range(3), donors=donors)
    new = areas(new_augment, x, cfg, range(100, 103), donors=donors)
    assert ks_same(old, new) > SAME
    old = [m.sum().item() for s in range(3) for m in old_augment.pseudo_anomalies(x, cfg, gen(s), donors)[1]]
    new = [m.sum().item() for s in range(100, 103) for m in new_augment.pseudo_anomalies(x, cfg, gen(s), donors)[1]]
    assert ks_same(old, new) > SAME


def _stage3(fn, x, pseudo, seeds, augment):
    areas_, shifts = [], []
    for seed in seeds:
        out, masks = fn(x, augment, pseudo, gen(seed))
        areas_.extend(masks.flatten(1).sum(dim=1).tolist())
        # On black images the mean change inside the mask scales with the opacity.
        shifts.extend(((out.sum(dim=1, keepdim=True) * masks).flatten(1).sum(dim=1)
                       / masks.flatten(1).sum(dim=1).clamp(min=1)).tolist())
    return areas_, shifts


@pytest.mark.parametrize("families", [["augment"], ["augment", "occluders"]])
def test_stage3_areas_opacity_and_clean_fraction_match(families):
    x = torch.zeros(64, 3, 48, 48)
    # Many small whole colour blocks per image: the mean colour change is about 1.5 x the opacity.
    augment = only(COLOR_BLOCK, reference_size=256, coverage=0.5, block_sizes=[32])
    pseudo = PseudoConfig(families=families, clean_fraction=0.25, opacity=[0.3, 0.9], coverage_sampling="uniform")
    old_area, old_shift = _stage3(old_pseudo.crd_training_batch, x, pseudo, range(5), augment)
    new_area, new_shift = _stage3(crd_pseudo_anomalies, x, pseudo, range(100, 105), augment)
    assert ks_same(old_area, new_area) > SAME
    assert ks_same(old_shift, new_shift) > SAME
    assert chi2_same([a == 0 for a in old_area], [a == 0 for a in new_area]) > SAME
    opaque = dataclasses.replace(pseudo, opacity=[0.6, 1.0])
    _, wrong_shift = _stage3(old_pseudo.crd_training_batch, x, opaque, range(5), augment)
    assert ks_same(new_shift, wrong_shift) < DIFFERENT


def test_seeded_stream_is_reproducible_and_seed_dependent():
    x = images(6)
    donors = images(2, seed=1)
    cfg = AugmentConfig(reference_size=256, coverage=0.5, clean_fraction=0.2, coverage_sampling="uniform",
                        noise_std=0.05, flip=True, rotate=True)
    pseudo = PseudoConfig(families=["augment", "occluders"], clean_fraction=0.2, opacity=[0.5, 1.0])
    runs = {
        "training_pair": lambda s: new_augment.training_pair(x, cfg, gen(s), donors),
        "pseudo_anomalies": lambda s: new_augment.pseudo_anomalies(x, cfg, gen(s), donors),
        "crd": lambda s: crd_pseudo_anomalies(x, cfg, pseudo, gen(s), donors),
    }
    for name, run in runs.items():
        first, again, other = run(3), run(3), run(4)
        assert all(torch.equal(a, b) for a, b in zip(first, again)), name
        assert not all(torch.equal(a, b) for a, b in zip(first, other)), name


# ------------------------------------------------------------------------------------------------
# occluders (stage-3 "occluders" family, FAE's training corruption)

old_occluders = _legacy("legacy_occluders")


def _occluded(module, x, cfg, seeds, textures=None, params=None):
    areas_, fills = [], []
    for seed in seeds:
        out, masks = module.occlude(x, cfg, gen(seed), textures, params)
        areas_.extend(masks.flatten(1).sum(dim=1).tolist())
        fills.extend(((out * masks).flatten(1).sum(dim=1) / masks.flatten(1).sum(dim=1).clamp(min=1) / 3).tolist())
    return areas_, fills


@pytest.mark.parametrize("use_shapes", [True, False])
def test_occluder_areas_and_opacity_match(use_shapes):
    from suite.data import occluders as new_occluders

    x = torch.zeros(48, 3, 40, 40)
    cfg = new_occluders.OccluderConfig(use_shapes=use_shapes, use_textures=False, vary_opacity=True,
                                       opacity_min=0.2, smooth_boundary=use_shapes, corruption_prob=0.8)
    old_area, old_fill = _occluded(old_occluders, x, cfg, range(4))
    new_area, new_fill = _occluded(new_occluders, x, cfg, range(100, 104))
    assert ks_same(old_area, new_area) > SAME
    assert ks_same(old_fill, new_fill) > SAME  # uniform colours on black: the mean is alpha x colour
    assert chi2_same([a == 0 for a in old_area], [a == 0 for a in new_area]) > SAME
    # The draws do not depend on the pixels: black and white images with one seed share shapes, fill
    # and opacity, and 1 - (white - black) is the opacity map; its maximum is the image's alpha.
    def alphas(module, seeds):
        out = []
        for seed in seeds:
            black, _ = module.occlude(x, cfg, gen(seed))
            white, masks = module.occlude(x + 1, cfg, gen(seed))
            opacity = (1 - (white - black)).amax(dim=1).flatten(1).amax(dim=1)
            out.extend(opacity[masks.flatten(1).amax(dim=1) > 0].tolist())
        return out

    old_alpha, new_alpha = alphas(old_occluders, range(4)), alphas(new_occluders, range(100, 104))
    assert ks_same(old_alpha, new_alpha) > SAME
    assert use_shapes or min(new_alpha) >= 0.2 - 1e-6  # (a blurred thin stroke never reaches its alpha)
    assert ks_same(new_alpha, [0.2 + 0.6 * (a - 0.2) for a in old_alpha]) < DIFFERENT
    bigger = _occluded(old_occluders, x, cfg, range(4),
                       params=dataclasses.replace(old_occluders.DEFAULT_SHAPES, ellipse_axis=(0.08, 0.35),
                                                  rect_side=(0.15, 0.55)))[0]
    assert ks_same(new_area, bigger) < DIFFERENT


def test_textured_occluders_match():
    from suite.data import occluders as new_occluders

    x = torch.zeros(32, 3, 40, 40)
    bank = new_occluders.procedural_textures(6, 40, gen(1))
    cfg = new_occluders.OccluderConfig(vary_opacity=False, corruption_prob=1.0)
    old_area, old_fill = _occluded(old_occluders, x, cfg, range(4), bank)
    new_area, new_fill = _occluded(new_occluders, x, cfg, range(100, 104), bank)
    assert ks_same(old_area, new_area) > SAME
    assert ks_same(old_fill, new_fill) > SAME


def test_texture_crops_resize_like_interpolate():
    """A whole-texture crop resized by the batched sampler equals F.interpolate of a flipped texture."""
    from suite.data.occluders import DEFAULT_SHAPES
    from suite.data.occluders_batched import texture_patches

    bank = torch.rand(3, 3, 16, 16, generator=gen(0))
    params = dataclasses.replace(DEFAULT_SHAPES, texture_crop=(1.0, 1.0))
    patches = texture_patches(bank, 12, 40, 40, gen(2), params, "cpu")
    resized = torch.nn.functional.interpolate(bank, size=(40, 40), mode="bilinear", align_corners=False)
    variants = [resized.flip(dims) if dims else resized for dims in ((), (-1,), (-2,), (-1, -2))]
    for patch in patches:
        assert any(torch.allclose(patch, v[k], atol=1e-5) for v in variants for k in range(3))


def test_line_rasterisation_equals_the_legacy_distance_test():
    """The closed-form row intervals cover exactly the pixels the legacy per-candidate distance test
    covered (same owner map), also for axis-aligned, diagonal, zero-length and sub-pixel-wide segments."""
    import math

    for seed in range(6):
        g = gen(seed)
        n, height, width = 200, 72, 64
        start_y = torch.rand(n, generator=g, dtype=torch.float64) * 86 - 7
        start_x = torch.rand(n, generator=g, dtype=torch.float64) * 78 - 7
        angle = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi
        if seed % 2:
            angle = (angle / (math.pi / 4)).round() * (math.pi / 4)
        length = torch.rand(n, generator=g, dtype=torch.float64) * 40
        length[:8] = 0.0
        radius = 0.71 + torch.rand(n, generator=g, dtype=torch.float64) * 4
        if seed % 3 == 0:
            radius = radius.round() * 0.5 + 0.71
        args = (start_y, start_x, length * torch.sin(angle), length * torch.cos(angle), radius, height, width)
        expected = old_augment.rasterise_segments(*args)
        assert torch.equal(new_augment.rasterise_segments(*args), expected)
        assert (expected >= 0).sum() > 1000
