import ast
from pathlib import Path

import numpy as np
import pytest

from suite.data import defect_windows, val_anomalies
from suite.data.val_anomalies import HARD_DEFECTS, VISIBLE_CHANGE, defect_kinds, hard_defects
from tests.unit.data.scenes import scenes


def changed(defective, images):
    return (np.abs(defective.astype(np.float64) - images.astype(np.float64)) > VISIBLE_CHANGE).any(axis=1)


def check_masks(images, defective, masks):
    n, _, s, _ = images.shape
    assert defective.shape == images.shape and defective.dtype == images.dtype
    assert masks.shape == (n, 1, s, s) and masks.dtype == np.float32
    assert set(np.unique(masks)) <= {0.0, 1.0}
    assert np.array_equal(masks[:, 0] > 0, changed(defective, images))
    assert (masks.reshape(n, -1).sum(axis=1) >= 1).all()
    outside = np.broadcast_to(masks == 0, images.shape)
    assert np.array_equal(defective[outside], images[outside])
    assert defective.min() >= 0.0 and defective.max() <= 1.0


def stats(images, defective, masks):
    """Mean mask area fraction and mean max-channel |change| inside the masks (per-image means)."""
    diff = np.abs(defective.astype(np.float64) - images).max(axis=1)
    inside = masks[:, 0] > 0
    return masks.mean(), np.mean([diff[i][inside[i]].mean() for i in range(len(images))])


def test_kinds_constant_and_accessor():
    assert defect_kinds() == HARD_DEFECTS
    assert set(HARD_DEFECTS) >= {"faint_spot", "thin_scratch", "deformation", "misplaced_part"}


@pytest.mark.parametrize("difficulty", [0.0, 0.5, 1.0])
def test_masks_are_exactly_the_visibly_changed_pixels(difficulty):
    images = scenes(n=10)
    donors = scenes(n=3, seed=9)
    defective, masks = hard_defects(images, donors, seed=4, difficulty=difficulty)
    check_masks(images, defective, masks)


def test_float64_input_keeps_dtype():
    images = scenes(n=5, dtype=np.float64)
    defective, masks = hard_defects(images, None, seed=0)
    check_masks(images, defective, masks)


def test_deterministic_and_seed_dependent():
    images, donors = scenes(n=5), scenes(n=2, seed=5)
    a, ma = hard_defects(images, donors, seed=1)
    b, mb = hard_defects(images, donors, seed=1)
    c, mc = hard_defects(images, donors, seed=2)
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    assert not np.array_equal(a, c) and not np.array_equal(ma, mc)


def test_an_images_defect_does_not_depend_on_the_other_images():
    images, donors = scenes(n=6), scenes(n=2, seed=5)
    full, full_masks = hard_defects(images, donors, seed=3)
    part, part_masks = hard_defects(images[:3], donors, seed=3)
    assert np.array_equal(full[:3], part) and np.array_equal(full_masks[:3], part_masks)
    # a flat first image makes its warp redraw several times; the others must not notice
    flat_first = images.copy()
    flat_first[0] = 0.5
    warped, warped_masks = hard_defects(images, None, seed=3, kinds=["deformation"])
    other, other_masks = hard_defects(flat_first, None, seed=3, kinds=["deformation"])
    assert np.array_equal(warped[1:], other[1:]) and np.array_equal(warped_masks[1:], other_masks[1:])


def test_difficulty_shrinks_and_fades_the_defects():
    images, donors = scenes(n=25, size=64), scenes(n=4, size=64, seed=7)
    results = [stats(images, *hard_defects(images, donors, seed=11, difficulty=d)) for d in (0.0, 0.5, 1.0)]
    areas, contrasts = zip(*results)
    assert areas[0] > areas[1] > areas[2] > 0
    assert contrasts[0] > contrasts[1] > contrasts[2] > VISIBLE_CHANGE
    assert contrasts[2] >= 3 / 255 and areas[2] * 64 * 64 >= 4  # subtle, yet visible
    for kind in HARD_DEFECTS:  # each kind on its own, easy vs hard
        easy = stats(images[:6], *hard_defects(images[:6], donors, seed=2, difficulty=0.0, kinds=[kind]))
        hard = stats(images[:6], *hard_defects(images[:6], donors, seed=2, difficulty=1.0, kinds=[kind]))
        assert easy[0] > hard[0] and easy[1] > hard[1], kind


def test_misplaced_part_pastes_donor_content():
    images = scenes(n=6)
    colour = np.array([0.95, 0.05, 0.6])
    donors = np.broadcast_to(colour[None, :, None, None], (2, 3, 32, 32)).astype(np.float32)
    defective, masks = hard_defects(images, donors, seed=0, difficulty=0.0, kinds=["misplaced_part"])
    check_masks(images, defective, masks)
    for i in range(len(images)):
        inside = masks[i, 0] > 0
        before = images[i][:, inside].astype(np.float64)
        after = defective[i][:, inside].astype(np.float64)
        # every changed pixel moved towards the donor colour, and the core reached it (opacity >= 0.9)
        assert (((after - before) * (colour[:, None] - before)).sum(axis=0) > 0).all()
        assert np.abs(after - colour[:, None]).max(axis=0).min() < 0.1


def test_misplaced_part_without_donors_reuses_the_images_own_content():
    images = scenes(n=5)
    defective, masks = hard_defects(images, None, seed=0, kinds=["misplaced_part"])
    check_masks(images, defective, masks)
    lo, hi = images.min(axis=(2, 3), keepdims=True), images.max(axis=(2, 3), keepdims=True)
    assert ((defective >= lo) & (defective <= hi)).all()


def test_deformation_moves_content_without_new_colours():
    images = scenes(n=6)
    for difficulty in (0.0, 1.0):
        defective, masks = hard_defects(images, None, seed=1, difficulty=difficulty, kinds=["deformation"])
        check_masks(images, defective, masks)
        lo, hi = images.min(axis=(2, 3), keepdims=True), images.max(axis=(2, 3), keepdims=True)
        assert ((defective >= lo - 1e-6) & (defective <= hi + 1e-6)).all()


def test_kinds_restrict_and_cycle():
    images = scenes(n=6)
    colour = np.array([0.02, 0.98, 0.02])
    donors = np.broadcast_to(colour[None, :, None, None], (1, 3, 32, 32)).astype(np.float32)
    defective, masks = hard_defects(images, donors, seed=0, difficulty=0.0, kinds=("misplaced_part", "deformation"))
    check_masks(images, defective, masks)
    near_donor = (np.abs(defective.astype(np.float64) - colour[None, :, None, None]).max(axis=1) < 0.1).any(axis=(1, 2))
    assert near_donor.tolist() == [True, False] * 3


def test_bad_arguments_are_rejected():
    images = scenes(n=2)
    with pytest.raises(ValueError, match="'bogus'.*faint_spot.*thin_scratch"):
        hard_defects(images, None, seed=0, kinds=["faint_spot", "bogus"])
    with pytest.raises(ValueError, match="difficulty"):
        hard_defects(images, None, seed=0, difficulty=1.5)
    with pytest.raises(ValueError, match="S, S"):
        hard_defects(np.zeros((1, 3, 16, 32), np.float32), None, seed=0)
    with pytest.raises(ValueError, match="donors"):
        hard_defects(images, np.zeros((1, 3, 16, 16), np.float32), seed=0)


def test_flat_images_still_get_a_visible_defect():
    # a warp or a missing part cannot show on a flat image: the fallback spot must
    flat = np.stack([np.zeros((3, 32, 32)), np.ones((3, 32, 32)), np.full((3, 32, 32), 0.5)]).astype(np.float32)
    for kind in HARD_DEFECTS:
        defective, masks = hard_defects(flat, None, seed=0, difficulty=1.0, kinds=[kind])
        check_masks(flat, defective, masks)


def test_works_at_256_px():
    images = scenes(n=len(HARD_DEFECTS), size=256)
    defective, masks = hard_defects(images, scenes(n=2, size=256, seed=3), seed=0)
    check_masks(images, defective, masks)
    assert (masks.mean(axis=(1, 2, 3)) < 0.1).all()  # local defects


@pytest.mark.parametrize("module", [val_anomalies, defect_windows])
def test_modules_import_only_numpy_torch_and_each_other(module):
    tree = ast.parse(Path(module.__file__).read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    roots = {name.split(".")[0] for name in names if name != "suite.data.defect_windows"}
    assert roots <= {"__future__", "math", "collections", "numpy", "torch"}, roots


def test_chunks_paint_what_one_call_paints(monkeypatch):
    """Chunking (``CHUNK_PIXELS``) and the per-kind batches change nothing: one image per chunk gives
    the same images and masks as the whole batch at once."""
    images, donors = scenes(n=7), scenes(n=3, seed=2)
    whole, whole_masks = hard_defects(images, donors, seed=5, difficulty=0.3)
    monkeypatch.setattr(val_anomalies, "CHUNK_PIXELS", 1)
    single, single_masks = hard_defects(images, donors, seed=5, difficulty=0.3)
    assert np.array_equal(whole, single) and np.array_equal(whole_masks, single_masks)


def test_memory_mapped_donors_give_the_same_defects(tmp_path):
    images = scenes(n=5)
    donors = scenes(n=4, seed=6)
    np.save(tmp_path / "donors.npy", donors)
    mapped = np.load(tmp_path / "donors.npy", mmap_mode="r")
    a, ma = hard_defects(images, donors, seed=8, kinds=["misplaced_part"])
    b, mb = hard_defects(images, mapped, seed=8, kinds=["misplaced_part"])
    assert np.array_equal(a, b) and np.array_equal(ma, mb)


def test_each_kind_is_painted_for_its_whole_batch_at_once(monkeypatch):
    """Batched, not a per-image loop: twelve images of one kind reach its painter as one batch of
    twelve (a redraw would add a smaller batch, never twelve single calls)."""
    batches = []
    original = val_anomalies._PAINTERS["faint_spot"]

    def counting(clean, *args):
        batches.append(len(clean))
        return original(clean, *args)

    monkeypatch.setitem(val_anomalies._PAINTERS, "faint_spot", counting)
    hard_defects(scenes(n=12), None, seed=0, difficulty=0.0, kinds=["faint_spot"])
    assert batches[0] == 12 and len(batches) <= val_anomalies.MAX_ATTEMPTS
