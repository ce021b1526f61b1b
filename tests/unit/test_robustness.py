"""suite.robustness: the data-shift check and the test set under eval.shifts, as run_training wires them."""

from __future__ import annotations

import math
import typing

import numpy as np
import pytest
import torch

from suite.config import SHIFT_NAMES, DataConfig, EvalConfig, build_config
from suite.data import load_category
from suite.data.photometric import SHIFTS, luminance, translate
from suite.data.streaming import FileImages, ImageCache, read_masks
from suite.pipeline import evaluate, predict_all, run_training
from suite.records import read_record
from suite.robustness import check_data_shift, data_shift_info, evaluate_under_shifts

SIZE = 32


@pytest.fixture(scope="module")
def texture():
    """synth_texture at 32 px: (train normals, test images, test masks, test labels)."""
    splits = load_category(DataConfig(category="synth_texture", image_size=SIZE, val_fraction=0.0,
                                      calib_fraction=0.0), seed=0)
    cache = ImageCache.from_mb(64)
    test = FileImages(splits.test, SIZE, cache, 0)
    return FileImages(splits.train, SIZE, cache, 0), test, read_masks(splits.test, SIZE), test.labels


class FakeMethod:
    """A model-free stand-in: the map is the distance of each pixel's grey value from 0.45 (so it
    reacts to brightness), the score its top-10 mean."""

    def predict(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"map": (x.mean(dim=1, keepdim=True) - 0.45).abs() + 0.1 * x.std(dim=1, keepdim=True)}

    def score(self, amap: torch.Tensor) -> torch.Tensor:
        return amap.flatten(1).topk(10, dim=1).values.mean(dim=1)


def _predict(x: torch.Tensor):
    return predict_all(FakeMethod(), x, torch.device("cpu"))[:2]


def test_config_shift_choices_are_the_photometric_shifts():
    choices = typing.get_args(typing.get_args(typing.get_type_hints(EvalConfig)["shifts"])[0])
    assert choices == SHIFT_NAMES == tuple(SHIFTS)
    assert build_config("tiny").eval.shifts == list(SHIFT_NAMES)
    assert build_config("cpu").eval.shifts == list(SHIFT_NAMES)
    assert build_config("paper").eval.shifts == []


def test_shift_check_fires_on_a_darkened_copy_and_not_on_a_reshuffled_split(texture):
    train = texture[0].materialize()
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    fit, held = train[perm[:40]], train[perm[40:]]
    silent, _ = check_data_shift([fit], held)
    fired, brightness = check_data_shift([fit[:20], None, fit[20:]], (held * 0.92).clamp(0, 1))
    assert not silent.shifted and fired.shifted
    assert "brightness" in fired.shifted_statistics
    assert brightness.shape == (len(held),)
    np.testing.assert_allclose(brightness, luminance((held * 0.92).clamp(0, 1)).mean(dim=(1, 2, 3)).numpy(), rtol=1e-4)
    lines: list[str] = []
    info, _ = data_shift_info([fit], (held * 0.92).clamp(0, 1), lines.append)
    assert info["shifted"] and len(lines) == 1 and lines[0].startswith("[warning] data shift:")
    data_shift_info([fit], held, lines.append)
    assert len(lines) == 1  # silent: no second line


def test_an_identity_shift_gives_exactly_the_unshifted_metrics(texture, monkeypatch):
    _, test, masks, labels = texture
    monkeypatch.setitem(SHIFTS, "identity", lambda images, masks, seed=0: (images, masks))
    maps, scores, _ = predict_all(FakeMethod(), test, torch.device("cpu"))
    plain = evaluate(maps, scores, masks, labels, with_aupro=True)
    shifted = evaluate_under_shifts(_predict, evaluate, test, masks, labels, ["identity", "dark8"], seed=3)
    assert shifted["identity"] == plain
    assert shifted["dark8"]["i_auroc"] != plain["i_auroc"]  # the shift reaches the model
    assert set(shifted["dark8"]) == set(plain)


def test_shifts_are_deterministic_and_independent_of_each_other(texture):
    _, test, masks, labels = texture
    alone = evaluate_under_shifts(_predict, evaluate, test, masks, labels, ["noise"], seed=5)
    together = evaluate_under_shifts(_predict, evaluate, test, masks, labels, ["dark8", "noise"], seed=5)
    assert alone["noise"] == together["noise"]
    assert evaluate_under_shifts(_predict, evaluate, test, masks, labels, ["noise"], seed=6) != alone
    assert evaluate_under_shifts(_predict, evaluate, test, masks, labels, []) == {}
    with pytest.raises(ValueError, match="unknown shifts"):
        evaluate_under_shifts(_predict, evaluate, test, masks, labels, ["sepia"])


def test_a_geometric_shift_moves_the_masks_it_is_scored_against(texture):
    _, test, masks, labels = texture
    seen = []

    def spy(maps, scores, masks_, labels_, with_aupro):
        seen.append(masks_)
        return {"i_auroc": 0.5}

    evaluate_under_shifts(_predict, spy, test, masks, labels, ["translate"])
    expected = translate(test.materialize(), torch.from_numpy(masks.astype(np.float32)))[1].numpy()
    assert masks.any() and not np.array_equal(seen[0], masks)
    np.testing.assert_array_equal(seen[0], expected.astype(np.uint8))


@pytest.mark.slow
def test_a_tiny_run_records_the_shift_check_and_every_requested_shift(tmp_path):
    requested = ["dark8", "blur", "translate"]
    cfg = build_config("tiny", overrides=[f"eval.shifts=[{','.join(requested)}]", "runtime.device=cpu",
                                          "eval.scoring_variants=false", "eval.diagnostics=false", "eval.cost=false"])
    run_training(cfg, tmp_path, log=lambda _: None)
    record = read_record(tmp_path / "record.json")  # through the schema
    assert sorted(record.shifts) == sorted(requested)
    for values in record.shifts.values():
        assert {"i_auroc", "p_auroc", "aupro"} <= set(values)
    assert record.shifts["dark8"] != record.metrics["test"]
    data_shift = record.info["data_shift"]
    assert data_shift["shifted"] is False  # synthetic train and test normals come from one distribution
    assert data_shift["n_train"] == record.cost["n_train"] + record.cost["n_val"] + record.cost["n_calib"]
    assert data_shift["n_test"] == record.cost["n_test"]
    rho = record.info["score_brightness_spearman"]
    assert rho is None or -1.0 <= rho <= 1.0


def test_too_few_train_normals_skip_the_check_without_failing(texture):
    train = texture[0].materialize()
    lines: list[str] = []
    info, brightness = data_shift_info([train[:1], None], train[1:5], lines.append)
    assert info is None and brightness.shape == (4,) and "skipped" in lines[0]


def test_non_finite_values_are_stored_as_null():
    from suite.robustness import _finite

    assert _finite({"a": [math.nan, 1.0], "b": {"c": math.inf, "d": True}}) == {"a": [None, 1.0],
                                                                                "b": {"c": None, "d": True}}
