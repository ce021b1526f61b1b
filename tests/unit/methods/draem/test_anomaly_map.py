"""DRAEM inference: the pixel map and the mean-filtered max image score."""

import numpy as np
import pytest
import torch

from suite.methods.draem.anomaly_map import anomaly_map, image_score


def brute_force_score(m: np.ndarray, k: int) -> float:
    """max over pixels of the k x k mean (zeros outside the map count in the mean)."""
    r = k // 2
    padded = np.pad(m, r)
    h, w = m.shape
    best = -np.inf
    for i in range(h):
        for j in range(w):
            best = max(best, padded[i : i + k, j : j + k].sum() / (k * k))
    return float(best)


@pytest.mark.parametrize("k", [1, 3, 5, 21])
def test_image_score_equals_brute_force_mean_filter_max(k):
    rng = np.random.default_rng(k)
    maps = rng.random((3, 1, 24, 20)).astype(np.float32)
    maps[1, 0, 0, 0] = 5.0  # a hot corner: the zero padding matters
    got = image_score(torch.from_numpy(maps), k).numpy()
    expected = [brute_force_score(m[0].astype(np.float64), k) for m in maps]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_image_score_prefers_blobs_to_isolated_pixels():
    blob = torch.zeros(1, 1, 32, 32)
    blob[..., 10:15, 10:15] = 0.6
    speck = torch.zeros(1, 1, 32, 32)
    speck[..., 5, 5] = 1.0
    assert image_score(blob, 5) > image_score(speck, 5)
    assert image_score(blob, 1) < image_score(speck, 1)


def test_image_score_rejects_even_filters():
    with pytest.raises(ValueError, match="draem.score_filter"):
        image_score(torch.zeros(1, 1, 8, 8), 4)


def test_anomaly_map_is_the_anomalous_softmax_channel():
    logits = torch.randn(2, 2, 8, 8)
    amap = anomaly_map(logits)
    assert amap.shape == (2, 1, 8, 8)
    expected = 1 / (1 + torch.exp(logits[:, :1] - logits[:, 1:]))
    torch.testing.assert_close(amap, expected)
    assert amap.min() >= 0 and amap.max() <= 1
