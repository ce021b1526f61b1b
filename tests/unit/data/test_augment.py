"""Tests for suite/data/augment.py: exact masks, coverage, families, noise, determinism, buffers, and where
the training loop builds its inputs (``suite.methods.rcae.train.augment_device``)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from suite.config import AugmentConfig, ConfigError
from suite.data.augment import (
    COLOR_BLOCK,
    COPY_PASTE,
    LINES,
    MIN_LINE_HALF_WIDTH,
    add_noise,
    block_size_px,
    corrupt,
    corrupt_with_families,
    pseudo_anomalies,
    rasterise_segments,
    Buffers,
    training_pair,
)
from suite.methods.rcae.pseudo import crd_training_batch
from suite.methods.rcae.train import augment_device

FAMILY_FLAGS = {COLOR_BLOCK: "color_blocks", COPY_PASTE: "copy_paste", LINES: "lines"}




def only(*families: int, **overrides) -> AugmentConfig:
    """A config with exactly ``families`` enabled; sizes at a 256-px reference unless overridden
    (the block/line arithmetic below is written for it)."""
    flags = {name: code in families for code, name in FAMILY_FLAGS.items()}
    overrides.setdefault("reference_size", 256)
    return AugmentConfig(**flags, **overrides)


def random_images(batch: int, height: int, width: int | None = None, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1000 + seed)
    return torch.rand(batch, 3, height, width or height, generator=gen)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def changed(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    return (before != after).any(dim=1, keepdim=True).float()


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("families", [(COLOR_BLOCK,), (COPY_PASTE,), (LINES,), (COLOR_BLOCK, COPY_PASTE, LINES)])
def test_mask_is_exactly_the_changed_pixels(size, families):
    images = random_images(3, size)
    donors = random_images(2, size, seed=7)
    for seed in range(3):
        cfg = only(*families, coverage=0.5)
        out, masks, family_map = corrupt_with_families(images, cfg, gen(seed), donors=donors if seed % 2 else None)
        assert out.shape == images.shape and out.dtype == images.dtype
        assert masks.shape == (3, 1, size, size) and masks.dtype == images.dtype
        assert set(masks.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(masks, changed(images, out))
        assert torch.equal(family_map > 0, masks > 0)
        assert masks.sum() > 0
        assert out.min() >= 0 and out.max() <= 1


def test_mask_on_non_square_size_not_divisible_by_the_block():
    images = random_images(2, 40, 56)
    cfg = AugmentConfig(coverage=1.0, block_sizes=[96])  # 15 px blocks: partial edge blocks
    out, masks = corrupt(images, cfg, gen(3), donors=random_images(1, 40, 56, seed=5))
    assert torch.equal(masks, changed(images, out))
    assert masks.mean() > 0.2


def test_pixels_that_keep_their_value_are_not_in_the_mask():
    # Copy-paste inside a constant image rewrites pixels with the value they already have.
    constant = torch.full((2, 3, 32, 32), 0.25)
    out, masks = corrupt(constant, only(COPY_PASTE, coverage=1.0), gen(0))
    assert torch.equal(out, constant)
    assert masks.sum() == 0
    # Half-constant image: pasted patches that land on the constant half from the constant half
    # leave pixels unchanged; the mask must still equal the changed set.
    half = random_images(2, 32)
    half[..., :, :16] = 0.5
    out, masks = corrupt(half, only(COPY_PASTE, coverage=1.0, block_sizes=[64]), gen(1))
    assert torch.equal(masks, changed(half, out))
    touched_constant = masks[..., :, :16].sum()
    assert touched_constant < 2 * 32 * 16  # some constant-half pixels were pasted over unchanged


@pytest.mark.parametrize(
    "cfg",
    [
        AugmentConfig(coverage=0.0),
        AugmentConfig(coverage=1.0, enabled=False),
        only(coverage=1.0),
    ],
    ids=["coverage0", "disabled", "no_family"],
)
def test_no_corruption_leaves_images_unchanged(cfg):
    images = random_images(2, 32)
    out, masks = corrupt(images, cfg, gen(0), donors=random_images(1, 32, seed=2))
    assert torch.equal(out, images)
    assert out is not images
    assert masks.shape == (2, 1, 32, 32) and masks.sum() == 0


@pytest.mark.parametrize("family", [COLOR_BLOCK, COPY_PASTE, LINES])
def test_coverage_one_touches_every_block(family):
    size = 64
    block = block_size_px(64, size, size, 256)  # 16 px: a 4 x 4 grid
    assert block == 16
    images = random_images(2, size)
    for seed in range(2):
        _, masks = corrupt(images, only(family, coverage=1.0, block_sizes=[64]), gen(seed))
        per_block = masks.reshape(2, size // block, block, size // block, block).amax(dim=(2, 4))
        assert per_block.min() == 1, f"family {family}: untouched block"


def test_coverage_one_with_whole_colour_blocks_covers_everything():
    images = random_images(2, 48)
    out, masks = corrupt(images, only(COLOR_BLOCK, coverage=1.0), gen(0), whole_block_prob=1.0)
    assert masks.min() == 1
    assert torch.equal(masks, changed(images, out))


def test_coverage_fraction_matches_on_average():
    images = random_images(1, 64)
    cfg = only(COLOR_BLOCK, coverage=0.3, block_sizes=[32])  # 8 px blocks: 64-block grid
    fractions = []
    for seed in range(20):
        _, masks = corrupt(images, cfg, gen(seed), whole_block_prob=1.0)
        fractions.append(masks.mean().item())
    assert abs(sum(fractions) / len(fractions) - 0.3) < 0.03
    assert all(abs(f - 0.3) <= 1 / 64 + 1e-6 for f in fractions)  # k = floor or ceil of 0.3 * 64


def test_disabled_families_are_never_used():
    images = random_images(4, 32)
    donors = random_images(2, 32, seed=3)
    codes = [COLOR_BLOCK, COPY_PASTE, LINES]
    for n in (1, 2, 3):
        for families in itertools.combinations(codes, n):
            seen = set()
            for seed in range(3):
                _, _, family_map = corrupt_with_families(
                    images, only(*families, coverage=1.0, block_sizes=[64]), gen(seed), donors=donors
                )
                seen |= set(family_map.unique().tolist()) - {0}
            assert seen == set(families), f"enabled {families}, used {seen}"


def test_colour_lines_and_copies_look_like_their_family():
    images = random_images(2, 64) * 0.4 + 0.3  # values in [0.3, 0.7]
    donors = torch.full((1, 3, 64, 64), 0.123)
    out, _, family_map = corrupt_with_families(images, AugmentConfig(coverage=1.0), gen(4), donors=donors)
    line_pixels = out.permute(0, 2, 3, 1)[family_map[:, 0] == LINES]
    dark = (line_pixels <= 0.2).all(dim=1)
    bright = (line_pixels >= 0.8).all(dim=1)
    assert line_pixels.numel() and (dark | bright).all()
    copied = out.permute(0, 2, 3, 1)[family_map[:, 0] == COPY_PASTE]
    assert copied.numel() and ((copied >= 0.3) & (copied <= 0.7) | (copied == 0.123)).all()
    assert (copied == 0.123).all(dim=1).any()  # donor patches are used


def test_line_length_scales_with_image_size():
    """One line per image (one block covering the image): the farthest pair of covered pixel
    centres lies in [length - sqrt 2, length + 2 * radius] for lines not clipped by the border."""
    low, high = 50, 150
    extents = {}
    for size in (64, 128):
        scale = size / 256
        max_radius = max(3.0 * scale / 2, MIN_LINE_HALF_WIDTH)
        cfg = only(LINES, coverage=1.0, block_sizes=[256], num_lines=[1, 1], line_length=[low, high])
        images = random_images(8, size)
        values = []
        for seed in range(4):
            _, masks = corrupt(images, cfg, gen(seed))
            for mask in masks[:, 0]:
                points = mask.nonzero().float()
                if points[:, 0].min() == 0 or points[:, 1].min() == 0 or points.max() == size - 1:
                    continue  # clipped by the image border
                extent = torch.cdist(points, points).max().item()
                assert low * scale - math.sqrt(2) <= extent <= high * scale + 2 * max_radius + 1e-4
                values.append(extent)
        assert len(values) >= 8
        extents[size] = sum(values) / len(values)
    assert 1.5 < extents[128] / extents[64] < 2.6


def test_rasterise_segments_matches_brute_force_distance_test():
    g = gen(11)
    n, height, width = 40, 48, 40
    start_y = torch.rand(n, generator=g, dtype=torch.float64) * 60 - 6
    start_x = torch.rand(n, generator=g, dtype=torch.float64) * 52 - 6
    angle = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi
    length = torch.rand(n, generator=g, dtype=torch.float64) * 30
    length[:2] = 0.0  # degenerate segments are discs
    radius = 0.71 + torch.rand(n, generator=g, dtype=torch.float64) * 3
    dy, dx = length * torch.sin(angle), length * torch.cos(angle)
    owner = rasterise_segments(start_y, start_x, dy, dx, radius, height, width)

    ys, xs = torch.meshgrid(torch.arange(height).float(), torch.arange(width).float(), indexing="ij")
    expected = torch.full((height, width), -1, dtype=torch.long)
    for i in range(n):
        sy, sx, ly, lx, r = (float(v[i]) for v in (start_y, start_x, dy, dx, radius))
        sy, sx, ly, lx, r = (torch.tensor(v, dtype=torch.float32) for v in (sy, sx, ly, lx, r))
        py, px = ys - sy, xs - sx
        t = ((py * ly + px * lx) / (ly * ly + lx * lx).clamp(min=1e-12)).clamp(0, 1)
        expected[(py - t * ly) ** 2 + (px - t * lx) ** 2 <= r * r] = i
    assert torch.equal(owner.reshape(height, width), expected)
    assert (expected >= 0).sum() > 100


def test_add_noise_clips_and_is_deterministic():
    images = random_images(2, 16)
    noisy = add_noise(images, 0.2, gen(0))
    assert noisy.min() >= 0 and noisy.max() <= 1
    assert not torch.equal(noisy, images)
    assert torch.equal(noisy, add_noise(images, 0.2, gen(0)))
    assert torch.equal(add_noise(images, 0.0, gen(0)), images)
    with pytest.raises(ValueError):
        add_noise(images, -0.1, gen(0))


def test_training_pair_noise_on_input_only():
    images = random_images(2, 32)
    cfg = AugmentConfig(coverage=0.5, noise_std=0.05, noise_on_target=False)
    inputs, target, mask = training_pair(images, cfg, gen(0))
    assert torch.equal(target, images)
    clean_region = mask == 0
    assert not torch.equal(inputs, images)
    residual = (inputs - images).abs().expand_as(images)[clean_region.expand_as(images)]
    assert 0 < residual.mean() < 0.1  # only noise outside the mask


def test_training_pair_noise_on_target_too():
    images = random_images(2, 32)
    cfg = AugmentConfig(coverage=0.0, noise_std=0.05, noise_on_target=True)
    inputs, target, mask = training_pair(images, cfg, gen(0))
    assert mask.sum() == 0
    assert not torch.equal(target, images)
    assert not torch.equal(inputs, target)  # independent draws
    assert (target - images).abs().max() < 0.5


def test_training_pair_without_noise_is_corrupt_of_clean_target():
    images = random_images(3, 32)
    inputs, target, mask = training_pair(images, AugmentConfig(coverage=0.4), gen(5))
    assert torch.equal(target, images)
    assert torch.equal(mask, changed(target, inputs))


def test_training_pair_flips_and_rotations_are_shared_by_input_and_target():
    images = random_images(6, 16)
    cfg = AugmentConfig(coverage=0.3, flip=True, rotate=True)
    inputs, target, mask = training_pair(images, cfg, gen(2))
    assert torch.equal(mask, changed(target, inputs))
    moved = 0
    for original, transformed in zip(images, target):
        variants = [torch.rot90(v, k, dims=(-2, -1)) for v in (original, original.flip(-1)) for k in range(4)]
        assert any(torch.equal(transformed, v) for v in variants)
        moved += not torch.equal(transformed, original)
    assert moved > 0
    with pytest.raises(ValueError, match="square"):
        training_pair(random_images(1, 16, 24), cfg, gen(0))


def test_outputs_are_deterministic_given_the_seed():
    images = random_images(3, 32)
    donors = random_images(2, 32, seed=4)
    cfg = AugmentConfig(coverage=0.6, noise_std=0.02, noise_on_target=True, flip=True, rotate=True)
    for fn in (corrupt, pseudo_anomalies, training_pair):
        first = fn(images, cfg, gen(9), donors)
        again = fn(images, cfg, gen(9), donors)
        other = fn(images, cfg, gen(10), donors)
        assert all(torch.equal(a, b) for a, b in zip(first, again)), fn.__name__
        assert not all(torch.equal(a, b) for a, b in zip(first, other)), fn.__name__


@pytest.mark.parametrize(
    "cfg",
    [
        AugmentConfig(coverage=0.0),
        AugmentConfig(coverage=0.0, enabled=False),
        only(COPY_PASTE, coverage=0.0),
        only(LINES, coverage=0.0, block_sizes=[8]),
        only(coverage=0.0),
    ],
    ids=["default", "stage1_disabled", "copy_only", "lines_small_blocks", "no_family_falls_back"],
)
def test_pseudo_anomalies_mark_every_image(cfg):
    images = random_images(6, 32)
    out, masks = pseudo_anomalies(images, cfg, gen(0))
    assert (masks.flatten(1).sum(dim=1) > 0).all()
    assert torch.equal(masks, changed(images, out))


def test_pseudo_anomalies_respect_enabled_families():
    images = random_images(4, 32)
    cfg = only(LINES, coverage=0.0)
    out, masks = pseudo_anomalies(images, cfg, gen(1))
    line_pixels = out.permute(0, 2, 3, 1)[masks[:, 0] > 0]
    assert ((line_pixels <= 0.2).all(dim=1) | (line_pixels >= 0.8).all(dim=1)).all()


def test_pseudo_anomalies_give_up_loudly_on_an_impossible_request():
    constant = torch.full((1, 3, 16, 16), 0.5)
    with pytest.raises(RuntimeError, match="unchanged"):
        pseudo_anomalies(constant, only(COPY_PASTE), gen(0))


def test_invalid_config_and_inputs_are_named():
    images = random_images(1, 16)
    with pytest.raises(ConfigError, match="augment.coverage"):
        corrupt(images, AugmentConfig(coverage=1.5), gen(0))
    with pytest.raises(ConfigError, match="augment.num_lines"):
        corrupt(images, AugmentConfig(num_lines=[3, 1]), gen(0))
    with pytest.raises(ConfigError, match="augment.block_sizes"):
        corrupt(images, AugmentConfig(block_sizes=[]), gen(0))
    with pytest.raises(ValueError, match="donors"):
        corrupt(images, AugmentConfig(), gen(0), donors=random_images(1, 8))
    with pytest.raises(ValueError, match="B, C, H, W"):
        corrupt(images[0], AugmentConfig(), gen(0))


def test_block_size_scales_and_is_clamped():
    assert block_size_px(64, 256, 256, 256) == 64
    assert block_size_px(64, 128, 128, 256) == 32
    assert block_size_px(32, 32, 32, 256) == 4
    assert block_size_px(8, 32, 32, 256) == 4  # minimum 4 px
    assert block_size_px(512, 64, 48, 256) == 48  # at most the image
    # The paper's sizes are at its own 1024 px: 128 px blocks there are 16 px at 128 px.
    assert block_size_px(128, 128, 128) == 16
    assert block_size_px(128, 1024, 1024) == 128


def test_reference_size_sets_the_block_grid():
    """A whole-block colour fill at coverage 1 paints every block; the block edges show where the
    colours change, so the grid (and with it reference_size) is visible in the output."""
    images = torch.zeros(1, 3, 64, 64)
    for reference, block in ((256, 32), (1024, 8)):
        cfg = only(COLOR_BLOCK, coverage=1.0, block_sizes=[128], reference_size=reference)
        out, _ = corrupt(images, cfg, gen(0), whole_block_prob=1.0)
        colours = out[0, 0].unique().numel()
        assert colours == (64 // block) ** 2


def test_clean_fraction_one_leaves_every_input_clean_and_zero_keeps_none():
    images = random_images(6, 32)
    out, target, mask = training_pair(images, only(COLOR_BLOCK, coverage=0.5, clean_fraction=1.0), gen(0))
    assert torch.equal(out, images) and torch.equal(target, images) and mask.sum() == 0
    out, _, mask = training_pair(images, only(COLOR_BLOCK, coverage=0.5, clean_fraction=0.0), gen(0))
    assert (mask.flatten(1).amax(dim=1) == 1).all()
    clean = []
    for seed in range(40):
        _, _, mask = training_pair(images, only(COLOR_BLOCK, coverage=0.5, clean_fraction=0.5), gen(seed))
        clean.append((mask.flatten(1).amax(dim=1) == 0).float().mean().item())
    assert 0.4 < sum(clean) / len(clean) < 0.6


def test_uniform_coverage_varies_per_image_around_half_of_the_maximum():
    images = random_images(8, 64)
    fixed = only(COLOR_BLOCK, coverage=0.6, block_sizes=[32])  # 8 px blocks at 64 px
    varied = only(COLOR_BLOCK, coverage=0.6, block_sizes=[32], coverage_sampling="uniform")
    _, fixed_masks = corrupt(images, fixed, gen(0), whole_block_prob=1.0)
    fractions = []
    for seed in range(10):
        _, masks = corrupt(images, varied, gen(seed), whole_block_prob=1.0)
        fractions.extend(masks.flatten(1).mean(dim=1).tolist())
    assert fixed_masks.flatten(1).mean(dim=1).std() < 0.02
    assert min(fractions) < 0.1 and max(fractions) > 0.5
    assert abs(sum(fractions) / len(fractions) - 0.3) < 0.05


def test_reused_buffers_give_the_same_outputs_and_are_reused():
    from suite.config import PseudoConfig

    x = torch.rand(4, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    donors = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    cfg = AugmentConfig(reference_size=256, coverage=0.4)
    buffers = Buffers()
    for seed in (0, 1):
        fresh = training_pair(x, cfg, torch.Generator().manual_seed(seed), donors)
        reused = training_pair(x, cfg, torch.Generator().manual_seed(seed), donors, buffers=buffers)
        assert all(torch.equal(a, b) for a, b in zip(fresh, reused))
        assert reused[0].data_ptr() == buffers.get("corrupted", x.shape, x.dtype, "cpu").data_ptr()
    for pseudo in (PseudoConfig(), PseudoConfig(opacity=[0.4, 0.9]), PseudoConfig(size_prior="small")):
        fresh = crd_training_batch(x, cfg, pseudo, torch.Generator().manual_seed(5), donors)
        reused = crd_training_batch(x, cfg, pseudo, torch.Generator().manual_seed(5), donors, buffers=buffers)
        assert all(torch.equal(a, b) for a, b in zip(fresh, reused))
    # Images that are the buffer itself (a caller feeding an output back in) never alias the output.
    again, _ = corrupt(reused[0], cfg, torch.Generator().manual_seed(2), buffers=buffers)
    assert again.data_ptr() != reused[0].data_ptr()


def test_augment_device_keeps_the_cpu_stream_and_seeds_a_device_generator_from_it():
    g = torch.Generator().manual_seed(7)
    state = g.get_state()
    where, used = augment_device(torch.device("cpu"), g)
    assert where == torch.device("cpu") and used is g
    assert torch.equal(g.get_state(), state)  # no draw on the CPU path

    class FakeCuda:  # stands for torch.device("cuda:0"); its generators are CPU ones here
        type = "cuda"

    made = []

    def make(device):
        made.append(device)
        return torch.Generator()

    device = FakeCuda()
    first = [augment_device(device, torch.Generator().manual_seed(s), make) for s in (7, 7, 8)]
    assert [w for w, _ in first] == [device] * 3 and made == [device] * 3
    draws = [torch.rand(4, generator=gen) for _, gen in first]
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    g = torch.Generator().manual_seed(7)
    _, a = augment_device(device, g, make)
    _, b = augment_device(device, g, make)
    assert not torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))  # a new seed per batch


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_inputs_build_on_cuda_reproducibly():
    from suite.config import PseudoConfig

    device = torch.device("cuda")
    x = torch.rand(4, 3, 64, 64, device=device)
    cfg = AugmentConfig(reference_size=256, coverage=0.5)

    def run(seed):
        _, gen = augment_device(device, torch.Generator().manual_seed(seed))
        pair = training_pair(x, cfg, gen)
        crd = crd_training_batch(x, cfg, PseudoConfig(families=["augment", "occluders"]), gen)
        return pair + crd

    first, again = run(3), run(3)
    assert all(t.device.type == "cuda" for t in first)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert first[2].sum() > 0 and (first[-1].flatten(1).amax(dim=1) > 0).all()
