"""The sweep driver's checks (suite/orchestration/driver.py): ASHA cadence, option validation."""

from __future__ import annotations

import pytest

from suite.config import ConfigError, build_config
from suite.orchestration.driver import SweepOptions, _asha_plan, _check_options
from suite.orchestration.spaces import load_space


def test_asha_sets_a_validation_cadence_only_when_needed():
    cfg = build_config(preset="tiny", overrides=["train.stage1.epochs=8"])
    opts = SweepOptions(space="noise", categories=["a", "b"])
    new, on, max_t = _asha_plan(cfg, load_space("noise"), opts)
    assert on and new.train.eval_every == 2 and new.train.checkpoint_every == 2 and max_t == 2 * 4 + 1
    _, on, _ = _asha_plan(cfg, load_space("ablation_depth"), opts)
    assert not on  # grid ablations run every row to the end
    _, on, _ = _asha_plan(cfg, load_space("noise"), SweepOptions(space="noise", objective="multi"))
    assert not on


@pytest.mark.parametrize(
    "change, message",
    [
        ({"objective": "acc"}, "objective"),
        ({"cost_metric": "watts"}, "cost metric"),
        ({"p_weight": 2.0}, "p_weight"),
        ({"storage": "s3://bucket/x"}, "filesystem path"),
        ({"categories": []}, "category"),
    ],
)
def test_bad_options_are_rejected(change, message):
    with pytest.raises(ConfigError, match=message):
        _check_options(SweepOptions(space="noise", **change))
