"""suite.metrics against scikit-learn, brute-force threshold loops and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

from suite import metrics


# ----------------------------------------------------------------------------------------------
# independent references


def brute_force_f1_max(labels: np.ndarray, scores: np.ndarray) -> float:
    """F1 of the prediction ``score >= t`` at every distinct score t, maximised."""
    labels = labels.astype(bool)
    best = 0.0
    for t in np.unique(scores):
        predicted = scores >= t
        tp = np.sum(predicted & labels)
        fp = np.sum(predicted & ~labels)
        fn = np.sum(~predicted & labels)
        best = max(best, 2 * tp / (2 * tp + fp + fn))
    return float(best)


def brute_force_aupro(masks: np.ndarray, maps: np.ndarray, fpr_limit: float) -> float:
    """Loop over every distinct threshold, region by region, then integrate segment by segment."""
    eight_connected = np.ones((3, 3), dtype=int)
    regions = []
    for image_index, mask in enumerate(masks):
        labelled, count = ndimage.label(mask, structure=eight_connected)
        regions += [(image_index, labelled == k) for k in range(1, count + 1)]
    normal = masks == 0
    fprs, pros = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        above = maps >= t
        fprs.append(np.sum(above & normal) / np.sum(normal))
        pros.append(np.mean([above[i][region].mean() for i, region in regions]))
    area = 0.0
    for k in range(1, len(fprs)):
        x0, x1, y0, y1 = fprs[k - 1], fprs[k], pros[k - 1], pros[k]
        if x0 >= fpr_limit:
            break
        if x1 <= fpr_limit:
            area += (x1 - x0) * (y0 + y1) / 2
        else:
            y_at_limit = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
            area += (fpr_limit - x0) * (y0 + y_at_limit) / 2
            break
    return area / fpr_limit


def random_case(rng: np.random.Generator, n_images: int = 4, size: int = 12, levels: int = 6):
    """Masks with a few rectangles in some images (others defect-free) and quantised scores (ties)."""
    masks = np.zeros((n_images, size, size), dtype=np.uint8)
    for i in range(n_images):
        if i % 2 == 1 and i != n_images - 1:
            continue  # leave some images without defects
        for _ in range(rng.integers(1, 4)):
            y, x = rng.integers(0, size - 2, size=2)
            h, w = rng.integers(1, 5, size=2)
            masks[i, y : y + h, x : x + w] = 1
    noise = rng.integers(0, levels, size=masks.shape)
    maps = (noise + 2 * masks * rng.integers(0, 2, size=masks.shape)).astype(np.float32) / levels
    return masks, maps


# ----------------------------------------------------------------------------------------------
# image-level metrics


@pytest.mark.parametrize("seed", range(12))
def test_auroc_and_ap_equal_sklearn_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    labels = rng.integers(0, 2, size=n)
    labels[:2] = [0, 1]
    dtype = [np.float32, np.float64, np.int64][seed % 3]
    scores = rng.integers(-3, int(rng.integers(1, 10)), size=n).astype(dtype)
    assert metrics.auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert metrics.average_precision(labels, scores) == pytest.approx(
        average_precision_score(labels, scores), abs=1e-9
    )


@pytest.mark.parametrize("seed", range(4))
def test_auroc_and_ap_equal_sklearn_on_continuous_scores(seed):
    rng = np.random.default_rng(100 + seed)
    labels = rng.integers(0, 2, size=500)
    scores = rng.normal(size=500) + labels * 0.7
    assert metrics.auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert metrics.average_precision(labels, scores) == pytest.approx(
        average_precision_score(labels, scores), abs=1e-9
    )


def test_float64_scores_that_tie_in_float32_are_kept_distinct():
    labels = np.array([0, 1, 0, 1])
    scores = np.array([1.0, 1.0 + 1e-12, 2.0, 2.0 + 1e-12])  # equal after a float32 cast
    assert metrics.auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert metrics.auroc(labels, scores) == pytest.approx(0.75)


def test_negative_zero_ties_with_zero():
    labels = np.array([0, 1])
    for dtype in (np.float32, np.float64):
        assert metrics.auroc(labels, np.array([0.0, -0.0], dtype=dtype)) == 0.5


@pytest.mark.parametrize("seed", range(6))
def test_f1_max_equals_brute_force_over_thresholds(seed):
    rng = np.random.default_rng(200 + seed)
    labels = rng.integers(0, 2, size=80)
    labels[:2] = [0, 1]
    scores = rng.integers(0, 7, size=80) + 0.5 * labels * rng.random(80)
    assert metrics.f1_max(labels, scores) == pytest.approx(brute_force_f1_max(labels, scores), abs=1e-12)


def test_image_metrics_keys_and_values():
    rng = np.random.default_rng(7)
    labels = np.r_[np.zeros(20), np.ones(10)].astype(int)
    scores = rng.random(30) + labels * 0.3
    result = metrics.image_metrics(labels, scores)
    assert set(result) == {"i_auroc", "i_ap", "i_f1max"}
    assert result["i_auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert result["i_ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-9)
    assert result["i_f1max"] == pytest.approx(brute_force_f1_max(labels, scores), abs=1e-12)
    assert all(isinstance(v, float) for v in result.values())


def test_perfect_and_inverted_image_scores():
    labels = np.array([0, 0, 1, 1])
    perfect = metrics.image_metrics(labels, np.array([0.1, 0.2, 0.8, 0.9]))
    assert perfect == {"i_auroc": 1.0, "i_ap": 1.0, "i_f1max": 1.0}
    assert metrics.auroc(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0


# ----------------------------------------------------------------------------------------------
# pixel-level metrics and AUPRO


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("fpr_limit", [0.3, 0.05, 1.0])
def test_aupro_equals_brute_force(seed, fpr_limit):
    masks, maps = random_case(np.random.default_rng(seed))
    expected = brute_force_aupro(masks, maps, fpr_limit)
    assert metrics.aupro(masks, maps, fpr_limit=fpr_limit) == pytest.approx(expected, abs=1e-6)
    assert metrics.aupro(masks, maps.astype(np.float64), fpr_limit) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_pixel_metrics_match_sklearn_and_brute_force(seed):
    masks, maps = random_case(np.random.default_rng(50 + seed), n_images=5, size=16, levels=9)
    result = metrics.pixel_metrics(masks[:, None], maps[:, None])  # (N, 1, H, W) layout
    y, s = masks.ravel(), maps.ravel()
    assert set(result) == {"p_auroc", "p_ap", "p_f1max", "aupro"}
    assert result["p_auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert result["p_ap"] == pytest.approx(average_precision_score(y, s), abs=1e-9)
    assert result["p_f1max"] == pytest.approx(brute_force_f1_max(y, s), abs=1e-12)
    assert result["aupro"] == pytest.approx(brute_force_aupro(masks, maps, 0.3), abs=1e-6)
    assert result["aupro"] == metrics.aupro(masks, maps)
    assert all(isinstance(v, float) for v in result.values())


def test_pixel_metrics_without_aupro_omits_the_key():
    masks, maps = random_case(np.random.default_rng(3))
    result = metrics.pixel_metrics(masks, maps, with_aupro=False)
    assert set(result) == {"p_auroc", "p_ap", "p_f1max"}
    assert result["p_auroc"] == metrics.pixel_metrics(masks, maps)["p_auroc"]


def test_aupro_is_at_most_one_and_perfect_map_scores_one():
    masks, _ = random_case(np.random.default_rng(11))
    perfect = masks.astype(np.float32) + 0.01 * np.random.default_rng(0).random(masks.shape)
    for limit in (0.01, 0.3, 1.0):
        assert metrics.aupro(masks, perfect, limit) == pytest.approx(1.0, abs=1e-12)
        assert metrics.aupro(masks, perfect, limit) <= 1.0
    result = metrics.pixel_metrics(masks, perfect)
    assert result == pytest.approx({"p_auroc": 1.0, "p_ap": 1.0, "p_f1max": 1.0, "aupro": 1.0}, abs=1e-12)
    for seed in range(5):
        masks, maps = random_case(np.random.default_rng(seed))
        assert 0.0 <= metrics.aupro(masks, maps) <= 1.0


def test_aupro_hand_computed_with_interpolation_at_the_limit():
    # 10 normal pixels scored 0.1..1.0 and one 2-pixel defect scored 0.85 and 0.8. The curve is
    # (0,0) (.1,0) (.2,0) (.2,.5) (.3,1) ...: the segment from (.2,.5) to (.3,1) crosses 0.25,
    # where PRO interpolates to 0.75.
    masks = np.zeros((1, 1, 12), dtype=bool)
    masks[0, 0, 10:] = True
    maps = np.array([[[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 0.85, 0.8]]])
    assert metrics.aupro(masks, maps, fpr_limit=0.25) == pytest.approx(0.05 * (0.5 + 0.75) / 2 / 0.25)
    assert metrics.aupro(masks, maps, fpr_limit=0.3) == pytest.approx(0.1 * (0.5 + 1.0) / 2 / 0.3)


def test_aupro_regions_are_eight_connected():
    # Pixels (0,0), (1,1), (1,2): one region under 8-connectivity (PRO at the top threshold = 1/3),
    # two regions of sizes 1 and 2 under 4-connectivity (PRO would be (1 + 0) / 2).
    masks = np.zeros((1, 4, 4), dtype=bool)
    masks[0, 0, 0] = masks[0, 1, 1] = masks[0, 1, 2] = True
    maps = np.full((1, 4, 4), 0.5)
    maps[0, 0, 0], maps[0, 1, 1], maps[0, 1, 2] = 1.0, 0.0, 0.0
    assert metrics.aupro(masks, maps) == pytest.approx(1 / 3)


def test_regions_do_not_connect_across_images():
    # Image 0 has a 1-pixel defect (fully detected), image 1 a 3-pixel defect overlapping it in
    # position (undetected): two regions, PRO at the top threshold = (1 + 0) / 2, not 1/4 as one
    # merged region would give. Curve (0,0) (0,.5) (1,1): PRO(0.3) = 0.65, area/0.3 = 0.575.
    masks = np.zeros((2, 3, 3), dtype=bool)
    masks[:, 1, 1] = True
    masks[1, 1, 2] = masks[1, 0, 1] = True
    maps = np.zeros((2, 3, 3))
    maps[0, 1, 1] = 1.0
    assert metrics.aupro(masks, maps) == pytest.approx(0.575)
    assert metrics.aupro(masks, maps) == pytest.approx(brute_force_aupro(masks, maps, 0.3))


# ----------------------------------------------------------------------------------------------
# degenerate input


@pytest.mark.parametrize("fn", [metrics.auroc, metrics.average_precision, metrics.f1_max, metrics.image_metrics])
def test_image_level_degenerate_input_raises(fn):
    with pytest.raises(ValueError, match="only one class"):
        fn([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="only one class"):
        fn([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN or infinite"):
        fn([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="NaN or infinite"):
        fn([0, 1], [np.inf, 0.2])
    with pytest.raises(ValueError, match="shape mismatch"):
        fn([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="empty"):
        fn([], [])
    with pytest.raises(ValueError, match="binary"):
        fn([0, 2], [0.1, 0.2])


def test_pixel_level_degenerate_input_raises():
    masks, maps = random_case(np.random.default_rng(0))
    with pytest.raises(ValueError, match="shape mismatch"):
        metrics.pixel_metrics(masks, maps[:, :-1])
    with pytest.raises(ValueError, match="shape"):
        metrics.pixel_metrics(masks[0, 0], maps[0, 0])  # 1-D
    bad = maps.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        metrics.pixel_metrics(masks, bad)
    with pytest.raises(ValueError, match="NaN"):
        metrics.aupro(masks, bad)
    with pytest.raises(ValueError, match="only one class"):
        metrics.pixel_metrics(np.zeros_like(masks), maps)
    with pytest.raises(ValueError, match="no anomalous regions"):
        metrics.aupro(np.zeros_like(masks), maps)
    with pytest.raises(ValueError, match="no normal pixels"):
        metrics.aupro(np.ones_like(masks), maps)
    with pytest.raises(ValueError, match="empty"):
        metrics.pixel_metrics(np.zeros((0, 4, 4)), np.zeros((0, 4, 4)))
    with pytest.raises(ValueError, match="binary"):
        metrics.pixel_metrics(masks * 255, maps)
    with pytest.raises(ValueError, match="fpr_limit"):
        metrics.aupro(masks, maps, fpr_limit=0.0)
    with pytest.raises(ValueError, match="fpr_limit"):
        metrics.pixel_metrics(masks, maps, fpr_limit=1.5)
