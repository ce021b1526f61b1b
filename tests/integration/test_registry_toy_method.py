"""A method registered inside this test runs through config, run_training, the stage cache and the
report without any file of the suite naming it: the registry is the only place a method lives."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from suite.config import ConfigError, build_config
from suite.methods.base import TrainContext, TrainedMethod, fit_single_stage
from suite.methods.registry import MethodSpec, method_names, register_method, unregister_method
from suite.pipeline import run_training
from suite.reporting.report import build_report


@dataclass
class ToyConfig:
    quantile: float = 1.0  # image score: this quantile of the map (1.0 = max); scoring only


class MeanImage(nn.Module):
    """The per-pixel mean of the train normals; no trainable parameters (a statistics method)."""

    def __init__(self, size: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(3, size, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean).abs().mean(dim=1, keepdim=True)


FITS: list[int] = []


def toy_train(ctx: TrainContext) -> TrainedMethod:
    model = MeanImage(ctx.cfg.data.image_size).to(ctx.device)

    def fit(module: nn.Module, images: torch.Tensor, generator: torch.Generator) -> None:
        FITS.append(len(images))
        # The mean image needs every normal at once: images[:] loads the streamed set explicitly.
        module.mean.copy_(images[:].mean(dim=0).to(module.mean.device))

    def score(maps: torch.Tensor) -> torch.Tensor:
        return maps.flatten(1).quantile(ctx.cfg.toy_mean.quantile, dim=1)

    method = TrainedMethod(predict=lambda x: {"map": model(x)}, score=score, modules={"toy": model})
    return fit_single_stage(ctx, model, fit, method)


def _validate(cfg) -> None:
    if not 0.0 <= cfg.toy_mean.quantile <= 1.0:
        raise ConfigError(f"config key 'toy_mean.quantile': {cfg.toy_mean.quantile} is outside [0, 1]")


SPEC = MethodSpec(
    name="toy_mean",
    display_name="ToyMean",
    colour="tab:olive",
    trainer=toy_train,
    config_section="toy_mean",
    config_class=ToyConfig,
    scoring_fields=frozenset({"quantile"}),
    validate=_validate,
)


@pytest.fixture
def toy_method():
    register_method(SPEC)
    FITS.clear()
    yield SPEC
    unregister_method(SPEC.name)


def test_toy_method_runs_through_run_training_cache_and_report(toy_method, tmp_path):
    assert "toy_mean" in method_names()
    overrides = ["model.method=toy_mean", "data.category=synth_object", "eval.cost=false"]
    cfg = build_config(preset="tiny", overrides=overrides)
    assert cfg.toy_mean.quantile == 1.0
    with pytest.raises(ConfigError, match="toy_mean.quantile"):
        build_config(preset="tiny", overrides=[*overrides, "toy_mean.quantile=2"])

    cache = tmp_path / "cache"
    first = run_training(cfg, tmp_path / "runs" / "a", stage_cache=cache, log=lambda _: None)
    assert first.status == "ok" and first.method == "toy_mean"
    assert FITS == [first.cost["n_train"]]  # fitted once, on the train normals
    assert first.info["stage1_from_cache"] is False
    # the mean image is a real detector on synthetic objects: clearly above chance
    assert first.metrics["test"]["i_auroc"] > 0.6

    # a scoring-only field reuses the fitted stage
    cfg2 = build_config(preset="tiny", overrides=[*overrides, "toy_mean.quantile=0.99"])
    second = run_training(cfg2, tmp_path / "runs" / "b", stage_cache=cache, log=lambda _: None)
    assert second.info["stage1_from_cache"] is True and len(FITS) == 1
    assert second.metrics["test"] != first.metrics["test"]

    index = build_report(tmp_path / "runs", tmp_path / "report", gallery_per_category=0)
    comparison = (index.parent / "comparison.md").read_text()
    assert "ToyMean" in comparison and "synth_object" in comparison
    assert "ToyMean" in (index.parent / "summary.md").read_text()
