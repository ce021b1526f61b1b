"""Data-shift check from images alone (no labels): are the test images photographed like the train normals?

Before training, per-image statistics of the train normals are compared with those of the
unlabelled test images (all of them, good and defective alike: no label is used). A shift in
illumination, contrast, focus or colour between the two makes every reconstruction-based score
partly a score of that shift, so the suite warns about it.

Statistics per image (``image_statistics``; luminance ``Y`` as in ``suite.data.photometric``):

* ``brightness``: mean of ``Y``;
* ``background``: median of ``Y`` (the robust level ``normalise_offset`` moves);
* ``contrast``: standard deviation of ``Y``;
* ``sharpness``: variance of the 4-neighbour Laplacian of ``Y`` (``[[0,1,0],[1,-4,1],[0,1,0]]``,
  interior pixels only); blur lowers it, noise raises it;
* ``colourfulness``: Hasler & Süsstrunk's ``sqrt(σ_rg² + σ_yb²) + 0.3 sqrt(μ_rg² + μ_yb²)`` with
  ``rg = R - G``, ``yb = (R + G) / 2 - B`` (0 for a grey image and for 1-channel images).

For each statistic (``compare_statistics``): the share of test images outside the train range,
and a two-sided two-sample Kolmogorov-Smirnov test (``suite.rank_statistics.ks_two_sample``, equal to
scipy's ``ks_2samp``), its p-value Bonferroni-corrected over the statistics (``min(1, p · n_stats)``).
The train range is the train images' [1 %, 99 %] quantile range ``[lo, hi]`` widened by ``margin``
(0.25) times its width on each side: ``[lo - 0.25 w, hi + 0.25 w]``, ``w = hi - lo``. The 1 % and
99 % quantiles of a hundred or two train images are their 2nd or 3rd most extreme values, and the
margin keeps that estimation noise from counting as a shift.

Rule: the check **fires** when some statistic has a corrected p-value below ``alpha`` (0.01) **and**
at least ``min_outside`` (20 %) of the test images outside the widened train range. Both are needed:
the test alone flags, with a hundred test images, the differences defective images make by
themselves (broken or contaminated parts change contrast and brightness), and the share alone is
noisy for small test sets. The share cannot be much higher: a shift often hits only part of the
test set (e.g. only its good images, a quarter of MVTec bottle's test set). Measured on MVTec
bottle (209 train normals or random 167 of them, 83 test images): unshifted, the largest share
among significant statistics is 0.08-0.16; with the test good images 8 % darker or gamma 1.2,
0.33-0.37; 8 % brighter 0.22-0.33 (highlights saturate); a random re-split of train and test
images stays below 0.1.

``score_brightness_correlation`` is the after-scoring counterpart: the Spearman rank correlation
between image scores and image brightness (near ±1: the scores rank brightness).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import Tensor

from suite.data.photometric import background_level, luminance
from suite.rank_statistics import ks_two_sample, spearman

STATISTICS = ("brightness", "background", "contrast", "sharpness", "colourfulness")
RANGE_QUANTILES = (0.01, 0.99)
RANGE_MARGIN = 0.25  # widening of the train range on each side, in units of its width
ALPHA = 0.01
MIN_OUTSIDE = 0.2


def _as_tensor(images) -> Tensor:
    tensor = torch.as_tensor(images)
    if tensor.dim() != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(tensor.shape)}")
    return tensor.float()


def image_statistics(images) -> dict[str, np.ndarray]:
    """``{statistic: float64 array (N,)}`` for images (N, C, H, W) in [0, 1] (torch or numpy).

    Statistics are computed batch-wise and per image only, so the statistics of streamed batches
    can simply be concatenated (``concat_statistics``)."""
    x = _as_tensor(images)
    gray = luminance(x)
    flat = gray.flatten(1)
    centre = gray[..., 1:-1, 1:-1]
    lap = gray[..., :-2, 1:-1] + gray[..., 2:, 1:-1] + gray[..., 1:-1, :-2] + gray[..., 1:-1, 2:] - 4 * centre
    if x.shape[1] == 3:
        r, g, b = x[:, 0].flatten(1), x[:, 1].flatten(1), x[:, 2].flatten(1)
        rg, yb = r - g, 0.5 * (r + g) - b
        colour = torch.sqrt(rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False)) + 0.3 * torch.sqrt(
            rg.mean(dim=1) ** 2 + yb.mean(dim=1) ** 2
        )
    else:
        colour = torch.zeros(x.shape[0])
    values = {
        "brightness": flat.mean(dim=1),
        "background": background_level(x),
        "contrast": flat.std(dim=1, unbiased=False),
        "sharpness": lap.flatten(1).var(dim=1, unbiased=False) if lap.numel() else torch.zeros(x.shape[0]),
        "colourfulness": colour,
    }
    return {name: values[name].detach().cpu().double().numpy() for name in STATISTICS}


def concat_statistics(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The statistics of several batches as one dict (in order)."""
    if not parts:
        raise ValueError("concat_statistics needs the statistics of at least one batch")
    return {name: np.concatenate([p[name] for p in parts]) for name in STATISTICS}


@dataclass
class StatisticShift:
    """One statistic: train range, test share outside it, KS statistic and p-values."""

    name: str
    train_median: float
    test_median: float
    train_low: float  # lower end of the widened train range
    train_high: float  # upper end of the widened train range
    outside_below: float  # share of test images below train_low
    outside_above: float  # share of test images above train_high
    ks_statistic: float
    p_value: float
    p_corrected: float  # Bonferroni over the statistics compared
    shifted: bool  # this statistic meets the rule

    @property
    def outside_share(self) -> float:
        return self.outside_below + self.outside_above

    @property
    def direction(self) -> str:
        """Where most outside test images lie ("lower" / "higher" than the train range)."""
        return "higher" if self.outside_above > self.outside_below else "lower"


@dataclass
class DataShiftResult:
    """Outcome of ``compare_statistics``; ``to_dict()`` is what ``record.info.data_shift`` stores."""

    n_train: int
    n_test: int
    alpha: float
    min_outside: float
    margin: float
    statistics: list[StatisticShift] = field(default_factory=list)

    @property
    def shifted(self) -> bool:
        return any(s.shifted for s in self.statistics)

    @property
    def shifted_statistics(self) -> list[str]:
        return [s.name for s in self.statistics if s.shifted]

    def to_dict(self) -> dict:
        return {
            "shifted": self.shifted,
            "shifted_statistics": self.shifted_statistics,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "rule": (
                f"Bonferroni-corrected two-sample KS p < {self.alpha:g} and >= {self.min_outside:.0%} of test "
                f"images outside the train {RANGE_QUANTILES[0]:.0%}-{RANGE_QUANTILES[1]:.0%} quantile range "
                f"widened by {self.margin:g} of its width on each side"
            ),
            "statistics": {
                s.name: {**{k: v for k, v in asdict(s).items() if k != "name"}, "outside_share": s.outside_share}
                for s in self.statistics
            },
        }

    def warning_line(self) -> str | None:
        """None without a shift, otherwise one line naming each shifted statistic, e.g.
        ``data shift: test images differ from train normals in brightness (35% of test images outside
        the train range, most lower; median 0.536 vs 0.534, p = 0.004)``."""
        if not self.shifted:
            return None
        parts = [
            f"{s.name} ({s.outside_share:.0%} of test images outside the train range, most {s.direction}; "
            f"median {s.test_median:.3g} vs {s.train_median:.3g}, p = {s.p_corrected:.1g})"
            for s in self.statistics
            if s.shifted
        ]
        return "data shift: test images differ from train normals in " + "; ".join(parts)


def compare_statistics(
    train: dict[str, np.ndarray],
    test: dict[str, np.ndarray],
    alpha: float = ALPHA,
    min_outside: float = MIN_OUTSIDE,
    margin: float = RANGE_MARGIN,
) -> DataShiftResult:
    """Compare per-image statistics (``image_statistics``) of train normals and test images."""
    n_train, n_test = len(train[STATISTICS[0]]), len(test[STATISTICS[0]])
    if n_train < 2 or n_test < 1:
        raise ValueError(f"the shift check needs >= 2 train and >= 1 test images, got {n_train} and {n_test}")
    result = DataShiftResult(n_train=n_train, n_test=n_test, alpha=alpha, min_outside=min_outside, margin=margin)
    for name in STATISTICS:
        a, b = np.asarray(train[name], np.float64), np.asarray(test[name], np.float64)
        low, high = np.quantile(a, RANGE_QUANTILES)
        low, high = low - margin * (high - low), high + margin * (high - low)
        below, above = float(np.mean(b < low)), float(np.mean(b > high))
        if np.ptp(a) == 0 and np.ptp(b) == 0 and a[0] == b[0]:
            ks, p = 0.0, 1.0  # identical constants (e.g. colourfulness of grey images): nothing to test
        else:
            ks, p = ks_two_sample(a, b)
        p_corrected = min(1.0, p * len(STATISTICS))
        result.statistics.append(
            StatisticShift(
                name=name, train_median=float(np.median(a)), test_median=float(np.median(b)), train_low=float(low),
                train_high=float(high), outside_below=below, outside_above=above, ks_statistic=ks, p_value=p,
                p_corrected=p_corrected, shifted=p_corrected < alpha and below + above >= min_outside,
            )
        )
    return result


def check_shift(
    train_images, test_images, alpha: float = ALPHA, min_outside: float = MIN_OUTSIDE, margin: float = RANGE_MARGIN
) -> DataShiftResult:
    """``compare_statistics`` of two image batches (N, C, H, W) held in memory."""
    return compare_statistics(
        image_statistics(train_images), image_statistics(test_images), alpha, min_outside, margin
    )


def score_brightness_correlation(scores, images_or_brightness) -> float:
    """Spearman rank correlation between image scores (N,) and image brightness: the mean
    luminance of images (N, C, H, W), or a given brightness array (N,). NaN when either is
    constant (no ranking to compare)."""
    s = np.asarray(torch.as_tensor(scores).detach().cpu().double().numpy(), np.float64).reshape(-1)
    ref = torch.as_tensor(images_or_brightness)
    if ref.dim() == 4:
        brightness = image_statistics(ref)["brightness"]
    else:
        brightness = ref.detach().cpu().double().numpy().reshape(-1)
    if s.shape != brightness.shape:
        raise ValueError(f"{s.shape[0]} scores for {brightness.shape[0]} images")
    if np.ptp(s) == 0 or np.ptp(brightness) == 0:
        return float("nan")
    return spearman(s, brightness)
