"""StoredOptunaSearch (suite/orchestration/optuna_search.py): Ray's OptunaSearch on a persistent
storage, restored from a snapshot older than the storage (a hard kill), as Tuner.restore does."""

from __future__ import annotations

import pytest

pytest.importorskip("ray")
optuna = pytest.importorskip("optuna")

from optuna.distributions import FloatDistribution  # noqa: E402

from suite.orchestration import optuna_storage  # noqa: E402
from suite.orchestration.optuna_search import StoredOptunaSearch  # noqa: E402


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_restore_after_a_kill_fails_orphans_and_tolerates_finished_trials(tmp_path, kind):
    url = f"sqlite:///{tmp_path / 'o.db'}" if kind == "sqlite" else f"journal://{tmp_path / 'o.log'}"
    optuna_storage.prepare_optuna_study(url, "sw", ["maximize"], ["val_i_auroc"], {}, resume=False)

    def searcher() -> StoredOptunaSearch:
        return StoredOptunaSearch(space={"x": FloatDistribution(0, 1)}, metric="val_i_auroc", mode="max",
                                  sampler=optuna.samplers.TPESampler(seed=0),
                                  storage=optuna_storage.make_optuna_storage(url), study_name="sw")

    first = searcher()
    first.suggest("a")
    first.suggest("b")
    snapshot = tmp_path / "searcher.pkl"
    first.save(str(snapshot))  # Tune's last experiment snapshot
    first.on_trial_complete("a", {"val_i_auroc": 0.7, "training_iteration": 3})  # stored, then...
    first.suggest("c")  # ...asked after the snapshot; then the driver is killed

    second = searcher()
    second.restore(str(snapshot))
    study = optuna.load_study(study_name="sw", storage=optuna_storage.make_optuna_storage(url))
    by_id = {t.user_attrs["tune_trial_id"]: t for t in study.get_trials()}
    assert {k: t.state.name for k, t in by_id.items()} == {"a": "COMPLETE", "b": "RUNNING", "c": "FAIL"}
    assert "orphaned" in by_id["c"].user_attrs
    # Tune reruns "a" (finished in the storage after the snapshot): its results are ignored, not fatal
    second.on_trial_result("a", {"val_i_auroc": 0.7, "training_iteration": 4})
    second.on_trial_complete("a", {"val_i_auroc": 0.7})
    second.on_trial_result("b", {"val_i_auroc": 0.5, "training_iteration": 1})
    second.on_trial_complete("b", {"val_i_auroc": 0.6})
    second.suggest("d")
    second.on_trial_complete("d", {"val_i_auroc": 0.8})
    trials = optuna.load_study(study_name="sw", storage=optuna_storage.make_optuna_storage(url)).get_trials()
    states = {t.user_attrs["tune_trial_id"]: (t.state.name, t.values) for t in trials}
    assert states == {"a": ("COMPLETE", [0.7]), "b": ("COMPLETE", [0.6]), "c": ("FAIL", None),
                      "d": ("COMPLETE", [0.8])}
    assert dict(trials[1].intermediate_values) == {1: 0.5}


def test_stopped_and_failed_trials_are_not_complete(tmp_path):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    search = StoredOptunaSearch(space={"x": FloatDistribution(0, 1)}, metric="val_i_auroc", mode="max",
                                storage=optuna_storage.make_optuna_storage(url), study_name="sw")
    for trial_id in ("done", "asha", "boom"):
        search.suggest(trial_id)
        search.on_trial_result(trial_id, {"val_i_auroc": 0.5, "training_iteration": 1, "final": False})
    search.on_trial_complete("done", {"val_i_auroc": 0.6, "final": True})
    search.on_trial_complete("asha", {"val_i_auroc": 0.5, "final": False})  # stopped by the scheduler
    search.on_trial_complete("boom", {"val_i_auroc": 0.5, "final": False}, error=True)
    trials = optuna.load_study(study_name="sw", storage=url).get_trials()
    states = {t.user_attrs["tune_trial_id"]: (t.state.name, t.values) for t in trials}
    assert states == {"done": ("COMPLETE", [0.6]), "asha": ("PRUNED", [0.5]), "boom": ("FAIL", None)}
    assert all(t.intermediate_values == {1: 0.5} for t in trials)
