"""The sweep driver's checks (suite/orchestration/sweep_options.py, driver.py): ASHA cadence, option validation."""

from __future__ import annotations

import pytest

from suite.config import ConfigError, build_config
from suite.orchestration.sweep_options import SweepOptions, asha_plan, check_options
from suite.sweep_rules import trials_in_flight
from suite.spaces import load_space


def test_asha_sets_a_validation_cadence_only_when_needed():
    cfg = build_config(preset="tiny", overrides=["train.stage1.epochs=8"])
    opts = SweepOptions(space="noise", categories=["a", "b"])
    new, on, max_t = asha_plan(cfg, load_space("noise"), opts)
    # sharded: one matched report per validation epoch for both categories, plus the final one
    assert on and new.train.eval_every == 2 and new.train.checkpoint_every == 2 and max_t == 4 + 1
    _, _, max_t = asha_plan(cfg, load_space("noise"), SweepOptions(space="noise", categories=["a", "b"], shards="off"))
    assert max_t == 2 * 4 + 1  # one after another: each category's validations in turn
    opts = SweepOptions(space="noise", categories=["a", "b"], num_workers=2)
    _, _, max_t = asha_plan(cfg, load_space("noise"), opts)
    assert max_t == 2 * 4 + 1  # DDP trials never shard
    _, on, _ = asha_plan(cfg, load_space("ablation_depth"), opts)
    assert not on  # grid ablations run every row to the end
    _, on, _ = asha_plan(cfg, load_space("noise"), SweepOptions(space="noise", objective="multi"))
    assert not on


@pytest.mark.parametrize(
    "change, message",
    [
        ({"objective": "acc"}, "objective"),
        ({"cost_metric": "watts"}, "cost metric"),
        ({"p_weight": 2.0}, "p_weight"),
        ({"storage": "s3://bucket/x"}, "filesystem path"),
        ({"categories": []}, "category"),
        ({"shards": "sometimes"}, "shards"),
        ({"gpus_per_trial": 1.5}, "whole number"),
        ({"gpus_per_trial": -0.25}, "fraction"),
        ({"gpus_per_trial": 0.5, "num_workers": 2}, "one whole GPU per worker"),
    ],
)
def test_bad_options_are_rejected(change, message):
    with pytest.raises(ConfigError, match=message):
        check_options(SweepOptions(space="noise", **change))


def test_trials_in_flight_fill_the_slots_with_shards_and_no_more():
    # grid/list: every trial at once (all their (row, seed, category) shards queue for slots)
    assert trials_in_flight("grid", 180, 8, 15, shards=True) == 180
    # optuna + shards: ceil(slots / categories) + 1 trials keep the shard queue full
    assert trials_in_flight("optuna", 50, 64, 15, shards=True) == 6
    assert trials_in_flight("optuna", 50, 4, 4, shards=True) == 2
    assert trials_in_flight("optuna", 1, 4, 4, shards=True) == 1
    # one after another: one trial per slot
    assert trials_in_flight("optuna", 50, 8, 15, shards=False) == 8


def test_a_coordinating_trial_asks_for_no_cpu_gpu_or_custom_resource():
    """A vanilla cluster has CPU, GPU and memory only: a coordinator asks for memory alone, so it takes no
    slot from the trainings; a one-after-another trial holds its training's CPUs and GPU fraction."""
    pytest.importorskip("ray")
    from suite.orchestration import driver
    from suite.orchestration.env import COORDINATOR

    assert COORDINATOR["cpu"] == 0 and set(COORDINATOR) == {"cpu", "memory"} and COORDINATOR["memory"] > 0

    def resources(**kw):
        trainable = driver._trainable(None, SweepOptions(space="noise", **kw), 2)
        return trainable._resources.required_resources

    assert resources() == {"memory": COORDINATOR["memory"]}  # --shards elastic, the default
    assert resources(num_workers=2, shards="off") == {"memory": COORDINATOR["memory"]}
    assert resources(shards="off", gpus_per_trial=0.25) == {"CPU": 1.0, "GPU": 0.25}
    assert resources(shards="off", use_gpu=True) == {"CPU": 1.0, "GPU": 1.0}
