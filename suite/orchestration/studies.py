"""Several studies in one Tune experiment: per-category sweeps whose studies run at the same time.

A per-category sweep has one study per category (its own seeded Optuna sampler, its own best
trial). Run one after another, at most one study's trials run at once: 15 categories × 8 trials
on 64 GPUs kept 8 busy. Here all studies share one experiment, so the cluster's slots are filled
by (study, trial) pairs:

- ``MultiStudySearch`` holds one searcher per study and hands out trials round-robin (the study
  with the fewest trials started goes next) until each has its budget; a trial's config carries
  its study under ``"study"``; results and completions go back to that study's searcher only, so
  every sampler sees only its own category.
- ``PerStudyScheduler`` gives each study its own ASHA, so a trial is only ever compared with
  trials of its own category (ASHA across categories would stop a trial for being on a harder
  category).

Grid and list spaces need no searcher: the study is one more grid axis (``"study"``).
"""

from __future__ import annotations

import pickle
from typing import Any, Callable

from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

STUDY_KEY = "study"


class MultiStudySearch(Searcher):
    """Round-robin over per-study searchers; ``budget`` trials per study."""

    def __init__(self, searchers: dict[str, Searcher], budget: int, metric: Any = None, mode: Any = None):
        super().__init__(metric=metric, mode=mode)
        self.searchers = dict(searchers)
        self.budget = int(budget)
        self.started = {name: 0 for name in self.searchers}
        self.owner: dict[str, str] = {}

    def set_search_properties(self, metric: Any, mode: Any, config: dict, **spec: Any) -> bool:
        # Each study's searcher was built with its own space, metric and mode.
        return True

    def suggest(self, trial_id: str) -> dict | None:
        order = list(self.searchers)
        for study in sorted((s for s in order if self.started[s] < self.budget),
                            key=lambda s: (self.started[s], order.index(s))):
            params = self.searchers[study].suggest(trial_id)
            if params is None:
                continue  # that study waits for results (its own concurrency limit); try the next
            if params == Searcher.FINISHED:
                self.started[study] = self.budget
                continue
            self.started[study] += 1
            self.owner[trial_id] = study
            return {**params, STUDY_KEY: study}
        if all(n >= self.budget for n in self.started.values()):
            return Searcher.FINISHED
        return None

    def _sub(self, trial_id: str) -> Searcher | None:
        study = self.owner.get(trial_id)
        return self.searchers.get(study) if study else None

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        sub = self._sub(trial_id)
        if sub is not None:
            sub.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        sub = self._sub(trial_id)
        if sub is not None:
            sub.on_trial_complete(trial_id, result, error)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as fh:
            pickle.dump(self.__dict__.copy(), fh)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as fh:
            self.__dict__.update(pickle.load(fh))  # noqa: S301 - Tune's own experiment state, as OptunaSearch does
        for sub in self.searchers.values():
            fail = getattr(sub, "fail_orphans", None)
            if fail is not None:
                fail()

    def fail_orphans(self) -> list[int]:
        out: list[int] = []
        for sub in self.searchers.values():
            fail = getattr(sub, "fail_orphans", None)
            if fail is not None:
                out += fail()
        return out


class PerStudyScheduler(FIFOScheduler):
    """One scheduler per study (built by ``make``), chosen by the trial's ``config["study"]``.

    Trials run first-in first-out like ``FIFOScheduler``; each result is judged by the trial's
    own study's scheduler only.
    """

    def __init__(self, studies: list[str], make: Callable[[], TrialScheduler], metric: str | None = None,
                 mode: str | None = None):
        super().__init__()
        self.schedulers = {study: make() for study in studies}
        if metric or mode:
            self.set_search_properties(metric, mode)

    def _for(self, trial: Any) -> TrialScheduler:
        return self.schedulers[str(trial.config.get(STUDY_KEY))]

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return all(s.set_search_properties(metric, mode, **spec) for s in self.schedulers.values())

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._for(trial).on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self._for(trial).on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        return self._for(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self._for(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._for(trial).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return "; ".join(f"{name}: {s.debug_string()}" for name, s in self.schedulers.items())

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as fh:
            pickle.dump(self.__dict__.copy(), fh)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as fh:
            self.__dict__.update(pickle.load(fh))  # noqa: S301 - Tune's own experiment state
