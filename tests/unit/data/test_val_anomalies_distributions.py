"""``suite.data.val_anomalies.hard_defects`` draws from the same distributions as the pre-rewrite
per-image generator (tests/reference/legacy_val_anomalies.py, the oracle): per defect kind, the mask
area, the contrast inside the mask and where the defect sits, compared over many draws with two-sample
tests at fixed seeds (so the outcome is deterministic). Each comparison also has a power check: the
same statistic rejects a deliberately wrong generator (the oracle at another difficulty, or a defect
drawn anywhere), so a broken implementation cannot pass."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from suite.data.val_anomalies import HARD_DEFECTS, hard_defects
from tests.reference.loader import load_reference
from tests.unit.data.scenes import scenes

SAME = 1e-3  # p-value above which two samples count as one distribution
DIFFERENT = 1e-4  # p-value below which the power checks must reject
SIZE = 48

legacy = load_reference("legacy_val_anomalies")


IMAGES, DONORS = scenes(60, size=SIZE, seed=0), scenes(4, size=SIZE, seed=1)


def measures(fn, kind: str, seeds, difficulty: float = 0.5) -> dict[str, list[float]]:
    """Per defect: mask area (pixels), mean max-channel |change| inside it, mask centroid (x, y)."""
    out: dict[str, list[float]] = {"area": [], "contrast": [], "x": [], "y": []}
    for seed in seeds:
        defective, masks = fn(IMAGES, DONORS, seed=seed, difficulty=difficulty, kinds=[kind])
        change = np.abs(defective.astype(np.float64) - IMAGES).max(axis=1)
        for i, mask in enumerate(masks[:, 0] > 0):
            ys, xs = np.nonzero(mask)
            out["area"].append(float(mask.sum()))
            out["contrast"].append(float(change[i][mask].mean()))
            out["x"].append(float(xs.mean()))
            out["y"].append(float(ys.mean()))
    return out


def ks(a, b) -> float:
    return stats.ks_2samp(np.asarray(a), np.asarray(b)).pvalue


@pytest.mark.parametrize("kind", HARD_DEFECTS)
def test_areas_contrast_and_placement_match_the_oracle(kind):
    old = measures(legacy.hard_defects, kind, range(2))
    new = measures(hard_defects, kind, range(100, 102))
    for key in ("area", "contrast", "x", "y"):
        assert ks(old[key], new[key]) > SAME, key
    # Power: the oracle at difficulty 0 (larger, stronger; at 48 px the pixel floors hide smaller steps) is
    # told apart by the same statistics.
    easier = measures(legacy.hard_defects, kind, range(2), difficulty=0.0)
    assert min(ks(new["area"], easier["area"]), ks(new["contrast"], easier["contrast"])) < DIFFERENT


def test_placement_is_told_apart_from_a_defect_drawn_anywhere(monkeypatch):
    """Defects sit in the central 76 % of the image: the oracle patched to centre them anywhere is caught
    by the distance of the mask centroid from the image centre (max norm)."""

    def spread(fn, seeds):
        m = measures(fn, "faint_spot", seeds)
        return np.maximum(np.abs(np.array(m["x"]) - SIZE / 2), np.abs(np.array(m["y"]) - SIZE / 2))

    old, new = spread(legacy.hard_defects, range(2)), spread(hard_defects, range(100, 102))
    assert ks(old, new) > SAME
    monkeypatch.setattr(legacy, "_centre", lambda rng, size, structure=None: tuple(rng.uniform(0, size, size=2)))
    assert ks(new, spread(legacy.hard_defects, range(2))) < DIFFERENT


def test_all_kinds_together_match_the_oracle():
    def areas(fn, seeds):
        return [m.sum() for s in seeds for m in fn(IMAGES, DONORS, seed=s, difficulty=0.3)[1]]

    assert ks(areas(legacy.hard_defects, range(3)), areas(hard_defects, range(100, 103))) > SAME
