"""Several studies in one experiment (suite/orchestration/studies.py): round-robin suggestions,
results routed to their own study's searcher and scheduler only."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("ray")

from ray.tune.schedulers import TrialScheduler  # noqa: E402
from ray.tune.search import Searcher  # noqa: E402

from suite.orchestration.studies import MultiStudySearch, PerStudyScheduler  # noqa: E402


class Recorder(Searcher):
    def __init__(self, name: str, wait_after: int | None = None):
        super().__init__(metric="m", mode="max")
        self.name, self.asked, self.results, self.completed, self.wait_after = name, [], [], [], wait_after

    def suggest(self, trial_id):
        if self.wait_after is not None and len(self.asked) >= self.wait_after:
            return None  # waits for results
        self.asked.append(trial_id)
        return {"x": len(self.asked)}

    def on_trial_result(self, trial_id, result):
        self.results.append((trial_id, result["m"]))

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.completed.append(trial_id)


def test_studies_take_turns_until_each_has_its_budget():
    a, b = Recorder("a"), Recorder("b")
    search = MultiStudySearch({"a": a, "b": b}, budget=2)
    configs = [search.suggest(f"t{i}") for i in range(5)]
    assert [c["study"] for c in configs[:4]] == ["a", "b", "a", "b"]
    assert configs[4] == Searcher.FINISHED
    assert a.asked == ["t0", "t2"] and b.asked == ["t1", "t3"]


def test_results_reach_only_their_own_studys_searcher():
    a, b = Recorder("a"), Recorder("b")
    search = MultiStudySearch({"a": a, "b": b}, budget=1)
    search.suggest("t0"), search.suggest("t1")
    search.on_trial_result("t1", {"m": 0.7})
    search.on_trial_complete("t0", {"m": 0.5})
    assert a.results == [] and b.results == [("t1", 0.7)]
    assert a.completed == ["t0"] and b.completed == []


def test_a_waiting_study_lets_the_next_one_propose():
    a, b = Recorder("a", wait_after=1), Recorder("b")
    search = MultiStudySearch({"a": a, "b": b}, budget=3)
    studies = [search.suggest(f"t{i}")["study"] for i in range(3)]
    assert studies == ["a", "b", "b"]  # a waits for a result; b's slots are not held up by it


def test_state_survives_save_and_restore(tmp_path):
    search = MultiStudySearch({"a": Recorder("a"), "b": Recorder("b")}, budget=2)
    search.suggest("t0")
    search.save(str(tmp_path / "s.pkl"))
    fresh = MultiStudySearch({"a": Recorder("a"), "b": Recorder("b")}, budget=2)
    fresh.restore(str(tmp_path / "s.pkl"))
    assert fresh.started == {"a": 1, "b": 0} and fresh.suggest("t1")["study"] == "b"


class Judge(TrialScheduler):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_trial_add(self, tune_controller, trial):
        self.seen.append(("add", trial.trial_id))

    def on_trial_result(self, tune_controller, trial, result):
        self.seen.append(("result", trial.trial_id))
        return TrialScheduler.STOP

    def on_trial_complete(self, tune_controller, trial, result):
        self.seen.append(("complete", trial.trial_id))

    def on_trial_remove(self, tune_controller, trial):
        self.seen.append(("remove", trial.trial_id))

    def on_trial_error(self, tune_controller, trial):
        self.seen.append(("error", trial.trial_id))

    def debug_string(self):
        return "judge"


def test_each_trial_is_judged_by_its_own_studys_scheduler():
    made = []

    def make():
        made.append(Judge())
        return made[-1]

    scheduler = PerStudyScheduler(["a", "b"], make)
    ta = SimpleNamespace(trial_id="ta", config={"study": "a"})
    tb = SimpleNamespace(trial_id="tb", config={"study": "b"})
    scheduler.on_trial_add(None, ta)
    scheduler.on_trial_add(None, tb)
    assert scheduler.on_trial_result(None, tb, {"m": 1}) == TrialScheduler.STOP
    scheduler.on_trial_complete(None, ta, {})
    assert made[0].seen == [("add", "ta"), ("complete", "ta")]
    assert made[1].seen == [("add", "tb"), ("result", "tb")]
