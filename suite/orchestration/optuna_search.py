"""Optuna in a sweep: ``make_optuna_search`` builds a study's searcher; ``StoredOptunaSearch`` is Ray's
``OptunaSearch`` on a persistent Optuna storage that survives a kill.

A sweep with ``--optuna-storage`` passes ``storage=`` and ``study_name=`` to ``OptunaSearch`` (the
documented way); Tune pickles the searcher with its experiment and ``Tuner.restore`` brings it
back. A hard kill leaves the storage ahead of Tune's last snapshot in two ways, fixed here:

- a trial asked from the storage after the snapshot stays RUNNING forever (Tune will suggest a
  new one instead): on restore such orphans are marked FAIL (user attr ``orphaned``);
- a trial the storage had already finished is run again by Tune (its categories' records are
  reused, so it only reports): reporting to a finished Optuna trial raises, so the searcher logs
  and ignores it (``tell`` errors are already ignored by Ray).

A trial ASHA stopped (its last result is not ``final``) is told PRUNED, a failed one FAIL, where
Ray would tell both COMPLETE with their last value: the study's COMPLETE trials, which the
dashboard ranks and the importances use, are the ones that ran to the end.

Each Optuna trial also carries the Tune trial id (user attr ``tune_trial_id``), which names the
trial's folder under ``records/`` and its MLflow runs (tag ``trial``).
"""

from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from ray.tune.search.optuna import OptunaSearch

from suite.orchestration.optuna_storage import fail_orphan_trials, make_optuna_storage
from suite.orchestration.sweep_options import SweepOptions, study_objectives
from suite.spaces import SearchSpace, encoded_choices

logger = logging.getLogger(__name__)


class StoredOptunaSearch(OptunaSearch):
    def suggest(self, trial_id: str) -> dict | None:
        new = trial_id not in self._ot_trials
        params = super().suggest(trial_id)
        if new and trial_id in self._ot_trials:
            self._ot_trials[trial_id].set_user_attr("tune_trial_id", trial_id)
        return params

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        try:
            super().on_trial_result(trial_id, result)
        except Exception as err:  # noqa: BLE001 - e.g. the storage finished this trial before a kill
            logger.warning("Optuna: result of trial %s not stored: %s", trial_id, err)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        # Ray tells a trial COMPLETE with its last result even when the scheduler stopped it early or
        # it failed; here those are PRUNED (their intermediate values stay) and FAIL, so the study's
        # COMPLETE values (what the importances use) are all final ones.
        stopped = result is not None and result.get("final") is False
        super().on_trial_complete(trial_id, None if (error or stopped) else result, error)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        self.fail_orphans()

    def fail_orphans(self) -> list[int]:
        """Mark RUNNING trials of the study that this searcher does not know as FAIL."""
        if self._ot_study is None:
            return []
        known = {t._trial_id for t in self._ot_trials.values()}
        failed = fail_orphan_trials(
            self._ot_study, known, "asked by a sweep process that was killed before Tune saved the trial"
        )
        if failed:
            print(f"[optuna] study {self._study_name}: trial(s) {failed} left RUNNING by a killed sweep marked FAIL",
                  flush=True)
        return failed


def random_trial_counts(search_alg: Any) -> dict[str, dict[str, int]]:
    """Per study: how many of its trials TPE sampled at random, and how many it asked in all.

    TPE samples at random while fewer than ``n_startup_trials`` trials of the study are finished
    (COMPLETE or PRUNED) when a trial is asked. With several trials in flight, more trials are asked
    before that many finish, so a parallel sweep can have more random trials than
    ``n_startup_trials`` (ray #52535); this counts them from the study's timestamps: trial ``t`` was
    random iff #{finished trials with ``datetime_complete <= t.datetime_start``} < n_startup_trials.
    ``search_alg``: an ``OptunaSearch`` or a ``MultiStudySearch`` of them.
    """
    subs = getattr(search_alg, "searchers", None) or {"pooled": search_alg}
    out: dict[str, dict[str, int]] = {}
    for name, sub in subs.items():
        study = getattr(sub, "_ot_study", None)
        sampler = getattr(sub, "_sampler", None)
        startup = getattr(sampler, "_n_startup_trials", None)
        if study is None or startup is None:
            continue
        trials = [t for t in study.get_trials(deepcopy=False) if t.datetime_start is not None]
        done = [t.datetime_complete for t in trials
                if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
                and t.datetime_complete is not None]
        random = sum(1 for t in trials if sum(1 for c in done if c <= t.datetime_start) < startup)
        out[name] = {"random": random, "asked": len(trials), "n_startup_trials": int(startup)}
    return out


def make_optuna_search(space: SearchSpace, opts: SweepOptions, study_index: int,
                       study_name: str | None = None) -> OptunaSearch:
    """The searcher of one study: the space's distributions, a seeded TPE sampler, the sweep's
    objectives; ``StoredOptunaSearch`` on the persistent study with ``--optuna-storage``."""

    dists: dict[str, Any] = {}
    for key, spec in space.space.items():
        if spec["type"] == "int":
            dists[key] = IntDistribution(spec["low"], spec["high"], log=spec["log"], step=spec.get("step", 1))
        elif spec["type"] == "float":
            dists[key] = FloatDistribution(float(spec["low"]), float(spec["high"]), log=spec["log"],
                                           step=spec.get("step"))
        else:
            dists[key] = CategoricalDistribution(encoded_choices(spec))
    # TPE handles one or several objectives; seeded so a sweep's proposals are reproducible.
    sampler = optuna.samplers.TPESampler(seed=opts.seed + study_index)
    search_cls: type = OptunaSearch
    stored: dict[str, Any] = {}
    if opts.optuna_storage:
        search_cls = StoredOptunaSearch
        stored = {"storage": make_optuna_storage(opts.optuna_storage), "study_name": study_name}
    directions, metrics = study_objectives(opts)
    modes = ["max" if d == "maximize" else "min" for d in directions]
    if len(metrics) == 1:  # a single objective is passed as plain strings
        return search_cls(space=dists, metric=metrics[0], mode=modes[0], sampler=sampler, **stored)
    return search_cls(space=dists, metric=metrics, mode=modes, sampler=sampler, **stored)
