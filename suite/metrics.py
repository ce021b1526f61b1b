"""Image- and pixel-level anomaly detection metrics in plain numpy.

Every metric is computed from one ranking of the scores, highest first. Tied scores form one
threshold group: a threshold ``t`` predicts "anomalous" for every score ``>= t``, and the curves
are evaluated at every distinct score, exactly as scikit-learn does. Notation used below, at
threshold ``t``::

    P, N   = number of positive (anomalous) / negative (normal) samples
    TP(t)  = #positives with score >= t        FP(t) = #negatives with score >= t
    TPR(t) = TP(t) / P                         FPR(t) = FP(t) / N
    Prec(t) = TP(t) / (TP(t) + FP(t))

Pixel metrics sort all pixels once (a packed 64-bit key: order-preserving score bits in the high
half, the pixel's ground-truth region id in the low half) and derive the ROC, precision-recall and
per-region-overlap curves from that single ordering. Float64 scores that are not exactly
representable in float32 fall back to an ``argsort`` on float64, so results never depend on a
precision loss.

Degenerate input (empty, mismatched shapes, NaN/inf scores, a single class, non-binary labels, no
anomalous region for AUPRO) raises ``ValueError`` with a message naming the problem.
"""

from __future__ import annotations

import sys

import numpy as np

# every key image_metrics and pixel_metrics return, in the order tables show them
METRICS = ("i_auroc", "p_auroc", "aupro", "i_ap", "p_ap", "i_f1max", "p_f1max")

__all__ = [
    "auroc",
    "average_precision",
    "f1_max",
    "image_metrics",
    "pixel_metrics",
    "aupro",
]

_LOW32 = np.uint64(0xFFFFFFFF)


# ----------------------------------------------------------------------------------------------
# input validation


def _binary_labels(labels, name: str) -> np.ndarray:
    """``labels`` as a bool array; raises if any value is not 0/1 (or False/True)."""
    arr = np.asarray(labels)
    if arr.dtype == np.bool_:
        return arr
    if not (np.issubdtype(arr.dtype, np.number)):
        raise ValueError(f"{name} must be numeric or bool 0/1 values, got dtype {arr.dtype}")
    if not np.all((arr == 0) | (arr == 1)):
        bad = np.unique(arr[(arr != 0) & (arr != 1)])[:5]
        raise ValueError(f"{name} must be binary (0/1); found other values such as {bad.tolist()}")
    return arr != 0


def _finite_scores(scores, name: str) -> np.ndarray:
    """``scores`` as a float32 array when that is exact, otherwise float64; raises on NaN/inf."""
    arr = np.asarray(scores)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real-valued numbers, got dtype {arr.dtype}")
    if arr.dtype in (np.float16, np.float32):
        arr = arr.astype(np.float32, copy=False)
    else:
        arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        n_bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {n_bad} NaN or infinite value(s)")
    if arr.dtype == np.float64:
        # Ties (and hence every metric) are preserved by float32 only if the cast is exact.
        narrow = arr.astype(np.float32)
        if np.array_equal(narrow, arr):
            arr = narrow
    return arr


def _check_pair(labels, scores, label_name: str, score_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated 1-D (bool labels, scores) with both classes present."""
    y = _binary_labels(labels, label_name)
    s = _finite_scores(scores, score_name)
    if y.shape != s.shape:
        raise ValueError(f"shape mismatch: {label_name} {y.shape} vs {score_name} {s.shape}")
    if y.size == 0:
        raise ValueError(f"empty input: {label_name} and {score_name} have no elements")
    y, s = y.ravel(), s.ravel()
    _require_both_classes(int(np.count_nonzero(y)), y.size, label_name)
    return y, s


def _require_both_classes(n_pos: int, n_total: int, name: str) -> None:
    if n_pos == 0 or n_pos == n_total:
        only = "anomalous (1)" if n_pos else "normal (0)"
        raise ValueError(
            f"only one class present in {name}: all {n_total} labels are {only}; "
            "ranking metrics need both normal and anomalous samples"
        )


def _image_stack(arr, name: str) -> np.ndarray:
    """Accept (N, H, W), (N, 1, H, W) or a single (H, W) map; return (N, H, W)."""
    arr = np.asarray(arr)
    if arr.ndim == 4 and arr.shape[1] == 1:
        return arr[:, 0]
    if arr.ndim == 3:
        return arr
    if arr.ndim == 2:
        return arr[None]
    raise ValueError(f"{name} must have shape (N, H, W) or (N, 1, H, W), got {arr.shape}")


def _check_maps(masks, maps) -> tuple[np.ndarray, np.ndarray]:
    """Validated (bool masks, scores) stacks of equal (N, H, W) shape."""
    raw_mask_shape, raw_map_shape = np.shape(masks), np.shape(maps)
    m = _image_stack(masks, "masks")
    a = _image_stack(maps, "maps")
    if m.shape != a.shape:
        raise ValueError(f"shape mismatch: masks {raw_mask_shape} vs maps {raw_map_shape}")
    if m.size == 0:
        raise ValueError(f"empty input: masks/maps of shape {raw_mask_shape} have no pixels")
    return _binary_labels(m, "masks"), _finite_scores(a, "maps")


def _check_fpr_limit(fpr_limit: float) -> float:
    limit = float(fpr_limit)
    if not (0.0 < limit <= 1.0):
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    return limit


# ----------------------------------------------------------------------------------------------
# the shared ranking


def _rank_descending(scores: np.ndarray, tags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order samples by score, highest first.

    ``tags`` are small non-negative integers carried along (0 = normal, >0 = anomalous; for AUPRO
    the region id). Returns ``(tags_sorted, group_ends)`` where ``group_ends[k]`` is the index (in
    sorted order) of the last sample whose score equals the k-th largest distinct score; the order
    inside a tie group is arbitrary, which no metric depends on.
    """
    scores = scores.ravel()
    tags = tags.ravel()
    if scores.dtype == np.float32:
        # -0.0 and +0.0 are equal scores but have different bit patterns; adding +0.0 unifies them.
        bits = (scores + np.float32(0.0)).view(np.uint32)
        # IEEE-754 bits of non-negative floats sort like unsigned ints; negative ones sort in
        # reverse. XOR with 0x7FFFFFFF (non-negative) or nothing (negative) gives a key whose
        # ascending order is the descending order of the scores.
        negative = bits >> np.uint32(31)
        desc = bits ^ ((negative - np.uint32(1)) & np.uint32(0x7FFFFFFF))
        key = desc.astype(np.uint64) << np.uint64(32)
        key |= tags.astype(np.uint64, copy=False)
        key.sort()  # quicksort: ties are identical keys up to the tag, so stability is moot
        if sys.byteorder == "little":
            # Reading the two 32-bit halves in place avoids two full-size shift/mask passes.
            halves = key.view(np.uint32).reshape(-1, 2)
            tags_sorted, high = halves[:, 0], halves[:, 1]
        else:
            tags_sorted, high = key & _LOW32, key >> np.uint64(32)
        boundaries = high[1:] != high[:-1]
    else:
        order = np.argsort(scores)[::-1]
        tags_sorted = tags[order]
        sorted_scores = scores[order]
        boundaries = sorted_scores[1:] != sorted_scores[:-1]
    group_ends = np.append(np.flatnonzero(boundaries), scores.size - 1)
    return tags_sorted, group_ends


def _tp_fp(tags_sorted: np.ndarray, group_ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TP(t), FP(t) (int64) at every distinct threshold, thresholds descending."""
    tp = np.cumsum(tags_sorted != 0, dtype=np.int64)[group_ends]
    fp = (group_ends + 1) - tp
    return tp, fp


def _auroc_from_counts(tp: np.ndarray, fp: np.ndarray) -> float:
    """Trapezoid area under (FPR, TPR) starting at (0, 0), in exact integer arithmetic:
    AUROC = sum_k (FP_k - FP_{k-1}) * (TP_k + TP_{k-1}) / (2 P N)."""
    n_pos, n_neg = int(tp[-1]), int(fp[-1])
    tp_prev = np.concatenate(([0], tp[:-1]))
    fp_prev = np.concatenate(([0], fp[:-1]))
    twice_area = int(np.sum((fp - fp_prev) * (tp + tp_prev)))
    return twice_area / (2.0 * n_pos * n_neg)


def _ap_from_counts(tp: np.ndarray, fp: np.ndarray) -> float:
    """AP = sum_k (TP_k - TP_{k-1}) / P * Prec_k (step-wise, no interpolation; as scikit-learn)."""
    n_pos = tp[-1]
    tp_prev = np.concatenate(([0], tp[:-1]))
    precision = tp / (tp + fp)
    return float(np.sum((tp - tp_prev) * precision) / n_pos)


def _f1max_from_counts(tp: np.ndarray, fp: np.ndarray) -> float:
    """F1max = max_t 2 TP / (2 TP + FP + FN) = max_t 2 TP / (TP + FP + P)."""
    n_pos = tp[-1]
    return float(np.max(2.0 * tp / (tp + fp + n_pos)))


def _aupro_from_ranking(
    tags_sorted: np.ndarray,
    group_ends: np.ndarray,
    fp: np.ndarray,
    region_weights: np.ndarray,
    fpr_limit: float,
) -> float:
    """Normalised area under the PRO-vs-FPR curve up to ``fpr_limit``.

    ``region_weights[r] = 1 / (|region r| * R)`` (0 for r = 0), so the running sum of pixel
    weights in score order is PRO(t) = (1/R) sum_r |{p in r : s_p >= t}| / |r|.
    """
    n_neg = fp[-1]
    pro = np.cumsum(region_weights[tags_sorted.astype(np.intp, copy=False)])[group_ends]
    np.clip(pro, 0.0, 1.0, out=pro)  # summation round-off can exceed 1 by ~1e-15
    fpr = fp / n_neg
    return _clipped_trapezoid(np.concatenate(([0.0], fpr)), np.concatenate(([0.0], pro)), fpr_limit)


def _clipped_trapezoid(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """(1/x_max) * integral_0^x_max of the piecewise-linear curve through (x, y), x non-decreasing.

    Segments entirely left of ``x_max`` contribute their trapezoid; the segment crossing ``x_max``
    contributes the part up to ``x_max`` with y linearly interpolated there.
    """
    n_inside = int(np.searchsorted(x, x_max, side="right"))  # x[:n_inside] <= x_max
    xs, ys = x[:n_inside], y[:n_inside]
    area = float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1])) / 2.0)
    if n_inside < x.size and xs[-1] < x_max:
        x0, x1, y0, y1 = xs[-1], x[n_inside], ys[-1], y[n_inside]
        y_at_max = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        area += (x_max - x0) * (y0 + y_at_max) / 2.0
    return float(min(area / x_max, 1.0))


def _region_labels(masks: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of each (H, W) mask; ids are unique over the stack (0 = normal)."""
    # A 3x3x3 structure whose only non-zero plane is the middle one connects the 8 neighbours in
    # the same image and nothing across images, so the whole stack is labelled in one call.
    from scipy import ndimage  # here: AUPRO alone needs it, and each training process saves ~0.3 CPU-s

    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True
    regions, n_regions = ndimage.label(masks, structure=structure)
    return regions, int(n_regions)


def _region_weight_table(regions: np.ndarray, n_regions: int) -> np.ndarray:
    sizes = np.bincount(regions.ravel(), minlength=n_regions + 1).astype(np.float64)
    weights = np.zeros(n_regions + 1, dtype=np.float64)
    weights[1:] = 1.0 / (sizes[1:] * n_regions)
    return weights


# ----------------------------------------------------------------------------------------------
# public API: image level (one score per image)


def auroc(labels, scores) -> float:
    """Area under the ROC curve.

    AUROC = sum_k (FPR_k - FPR_{k-1}) (TPR_k + TPR_{k-1}) / 2 over the distinct thresholds
    (descending, with FPR_0 = TPR_0 = 0): the trapezoid rule, so a tie between a positive and a
    negative counts 1/2. Equals ``sklearn.metrics.roc_auc_score``.
    """
    y, s = _check_pair(labels, scores, "labels", "scores")
    return _auroc_from_counts(*_tp_fp(*_rank_descending(s, y)))


def average_precision(labels, scores) -> float:
    """Average precision: AP = sum_k (Recall_k - Recall_{k-1}) * Prec_k over distinct thresholds
    (descending, Recall_0 = 0), with Recall = TPR. Equals
    ``sklearn.metrics.average_precision_score``."""
    y, s = _check_pair(labels, scores, "labels", "scores")
    return _ap_from_counts(*_tp_fp(*_rank_descending(s, y)))


def f1_max(labels, scores) -> float:
    """Best F1 over all thresholds: max_t 2 Prec(t) Recall(t) / (Prec(t) + Recall(t))
    = max_t 2 TP / (TP + FP + P), thresholds at every distinct score."""
    y, s = _check_pair(labels, scores, "labels", "scores")
    return _f1max_from_counts(*_tp_fp(*_rank_descending(s, y)))


def image_metrics(labels, scores) -> dict[str, float]:
    """``{"i_auroc", "i_ap", "i_f1max"}`` for one score per image (1 = anomalous), from one sort.

    Formulas as in :func:`auroc`, :func:`average_precision` and :func:`f1_max`.
    """
    y, s = _check_pair(labels, scores, "labels", "scores")
    tp, fp = _tp_fp(*_rank_descending(s, y))
    return {
        "i_auroc": _auroc_from_counts(tp, fp),
        "i_ap": _ap_from_counts(tp, fp),
        "i_f1max": _f1max_from_counts(tp, fp),
    }


# ----------------------------------------------------------------------------------------------
# public API: pixel level


def pixel_metrics(masks, maps, with_aupro: bool = True, fpr_limit: float = 0.3) -> dict[str, float]:
    """Pixel-level ``p_auroc``, ``p_ap``, ``p_f1max`` and (if ``with_aupro``) ``aupro``.

    ``masks``: binary ground truth, (N, H, W) or (N, 1, H, W); ``maps``: anomaly scores of the same
    shape. Every pixel of every image is one sample; the first three are :func:`auroc`,
    :func:`average_precision` and :func:`f1_max` over all pixels, and ``aupro`` is :func:`aupro`.
    All four come from a single sort of all pixel scores. Without ``with_aupro`` the ``aupro`` key
    is absent.
    """
    mask_stack, score_stack = _check_maps(masks, maps)
    limit = _check_fpr_limit(fpr_limit)
    n_pos = int(np.count_nonzero(mask_stack))
    _require_both_classes(n_pos, mask_stack.size, "masks")
    if with_aupro:
        regions, n_regions = _region_labels(mask_stack)
        tags = regions
    else:
        tags = mask_stack
    tags_sorted, group_ends = _rank_descending(score_stack, tags)
    tp, fp = _tp_fp(tags_sorted, group_ends)
    result = {
        "p_auroc": _auroc_from_counts(tp, fp),
        "p_ap": _ap_from_counts(tp, fp),
        "p_f1max": _f1max_from_counts(tp, fp),
    }
    if with_aupro:
        weights = _region_weight_table(regions, n_regions)
        result["aupro"] = _aupro_from_ranking(tags_sorted, group_ends, fp, weights, limit)
    return result


def aupro(masks, maps, fpr_limit: float = 0.3) -> float:
    """Normalised area under the per-region-overlap curve, as in the MVTec AD evaluation.

    Regions are the 8-connected components of each image's ground-truth mask (R in total over all
    images). At every distinct score t::

        PRO(t) = (1/R) sum_r |{p in r : s_p >= t}| / |r|
        FPR(t) = |{p : mask_p = 0, s_p >= t}| / |{p : mask_p = 0}|     (over all images)

    AUPRO = (1/fpr_limit) * integral_0^fpr_limit PRO dFPR, by the trapezoid rule over the curve
    (0, 0), (FPR(t), PRO(t)) for t descending, with PRO linearly interpolated at exactly
    ``fpr_limit``. The result is in [0, 1].
    """
    mask_stack, score_stack = _check_maps(masks, maps)
    limit = _check_fpr_limit(fpr_limit)
    regions, n_regions = _region_labels(mask_stack)
    if n_regions == 0:
        raise ValueError("no anomalous regions in masks: AUPRO needs at least one defect pixel")
    if np.count_nonzero(regions) == regions.size:
        raise ValueError("no normal pixels in masks: AUPRO needs mask == 0 pixels for the FPR")
    tags_sorted, group_ends = _rank_descending(score_stack, regions)
    _, fp = _tp_fp(tags_sorted, group_ends)
    weights = _region_weight_table(regions, n_regions)
    return _aupro_from_ranking(tags_sorted, group_ends, fp, weights, limit)
