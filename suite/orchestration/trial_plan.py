"""``TrialPlan``: what every trial of a sweep needs to know (picklable; Tune passes it to each trial).

It turns a trial's Tune config into config overrides, categories and per-category configs
(``suite.sweep_rules.training_config``, so ``plan`` times the same trainings) and the reported
metrics into the sweep's objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from suite.config import Config
from suite.orchestration.pooled import as_float
from suite.spaces import SearchSpace, decode_params
from suite.sweep_rules import training_config
from suite.tracking import TrackingSpec


@dataclass
class TrialPlan:
    base_cfg: Config  # the sweep's config with the space's BASE applied
    space: SearchSpace
    categories: list[str]
    sweep_name: str
    records_dir: str
    stage_cache: str | None
    train_storage: str
    objective: str
    p_weight: float
    cost_metric: str
    select_on: str
    num_workers: int
    use_gpu: bool
    cpus_per_trial: float
    kill_marker: str | None = None
    tracking: TrackingSpec | None = None  # MLflow / TensorBoard (suite.tracking); None = off
    gpus_per_trial: float = 0.0  # GPUs per shard / Train worker (a fraction shares a GPU); 0: use_gpu decides
    shards: str = "off"  # elastic | reserve | off: categories as concurrent Ray tasks (suite.orchestration.shards)

    @property
    def gpus(self) -> float:
        """GPUs one training holds: ``gpus_per_trial``, else 1 with ``use_gpu``, else 0."""
        return self.gpus_per_trial if self.gpus_per_trial else (1.0 if self.use_gpu else 0.0)

    def categories_for(self, config: dict[str, Any]) -> list[str]:
        """The trial's categories: its study's one (per-category sweeps) or all of the sweep's."""
        study = config.get("study")
        return [str(study)] if study is not None else list(self.categories)

    def overrides_for(self, config: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """The config overrides and the seed offset of a trial from its Tune config."""
        if self.space.kind == "optuna":
            return decode_params(self.space, {k: v for k, v in config.items() if k != "study"}), 0
        return dict(config["point"]), int(config.get("repeat", 0))

    def config_for(self, overrides: dict[str, Any], category: str, repeat: int = 0) -> Config:
        """The config of one training: ``suite.sweep_rules.training_config`` (so ``plan`` times the same)."""
        return training_config(self.base_cfg, overrides, category, repeat, self.cpus_per_trial)

    def objective_value(self, metrics: dict[str, Any]) -> float:
        i = as_float(metrics.get("val_i_auroc"))
        if self.objective == "val_mix":
            return (1.0 - self.p_weight) * i + self.p_weight * as_float(metrics.get("val_p_auroc"))
        return i

    def payload(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Add the objective (and, for multi, the cost placeholder) Tune checks every result for."""
        out = dict(metrics)
        out.setdefault("val_i_auroc", math.nan)
        if self.objective == "val_mix":
            out["val_mix"] = self.objective_value(out)
        if self.objective == "multi":
            out.setdefault(self.cost_metric, math.nan)
        return out
