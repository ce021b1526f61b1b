"""suite.planning: the scheduler simulation, ASHA's expected stops, in-flight rules, plan JSON."""

import math

import pytest

from suite import planning
from suite.planning import PlanPoint, PlanSpec, Segment, Timing, asha_rungs, asha_stops, simulate, trials_in_flight


def jobs(*seconds):
    """One trial per job, each job one segment."""
    return [[[Segment(s)]] for s in seconds]


def test_eight_equal_shards_on_four_slots_take_two_units_fully_used():
    sim = simulate(jobs(*[1.0] * 8), slots=4, in_flight=8)
    assert sim.makespan_s == pytest.approx(2.0)
    assert sim.utilisation == pytest.approx(1.0)


def test_five_shards_on_four_slots_leave_three_slots_idle_in_the_second_unit():
    sim = simulate(jobs(*[1.0] * 5), slots=4, in_flight=5)
    assert sim.makespan_s == pytest.approx(2.0)
    assert sim.utilisation == pytest.approx(5 / 8)


def test_in_flight_limit_waits_for_a_whole_trial():
    # two trials of two shards (3 s and 1 s) on 4 slots, one trial at a time: 3 + 3 s
    trials = [[[Segment(3.0)], [Segment(1.0)]], [[Segment(3.0)], [Segment(1.0)]]]
    assert simulate(trials, slots=4, in_flight=1).makespan_s == pytest.approx(6.0)
    assert simulate(trials, slots=4, in_flight=2).makespan_s == pytest.approx(3.0)


def test_shared_stage_key_is_built_once_and_waited_for():
    # both jobs need stage "k" (4 s); the second starts together, waits for it, then does 1 s more
    trials = [[[Segment(4.0, "k"), Segment(1.0)]], [[Segment(4.0, "k"), Segment(1.0)]]]
    sim = simulate(trials, slots=2, in_flight=2)
    assert sim.makespan_s == pytest.approx(5.0)
    assert sim.busy_s == pytest.approx(10.0)  # the waiting job holds its slot, as records count it
    # a key already in the cache costs nothing
    assert simulate(trials, slots=2, in_flight=2, built={"k": 0.0}).makespan_s == pytest.approx(1.0)


def test_asha_rungs_match_rays_milestones():
    assert asha_rungs(5, 1) == [1, 2, 4]  # Ray: 1, 2, 4 (all < max_t)
    assert asha_rungs(4, 1) == [1, 2]  # milestone 4 = max_t is the last report anyway
    assert asha_rungs(9, 3) == [3, 6]
    assert asha_rungs(1, 1) == []


def test_asha_expected_halves_at_every_rung():
    stops = asha_stops(8, [1, 2])
    assert stops.count(None) == 2  # 8 -> 4 -> 2
    assert stops.count(1) == 4 and stops.count(2) == 2
    assert stops[0] is None  # the first trial always continues (nothing to compare with)


def test_asha_montecarlo_is_seeded_and_first_trial_survives():
    a, b = asha_stops(16, [1, 2, 4], "montecarlo", seed=3), asha_stops(16, [1, 2, 4], "montecarlo", seed=3)
    assert a == b and a[0] is None
    assert 0 < sum(s is not None for s in a) < 16


def test_in_flight_rules_grid_vs_optuna():
    assert trials_in_flight("grid", 12, slots=4, n_categories=2) == 12  # every row queued
    assert trials_in_flight("list", 3, slots=64, n_categories=15) == 3
    assert trials_in_flight("optuna", 20, slots=4, n_categories=2) == 3  # ceil(4/2) + 1
    assert trials_in_flight("optuna", 2, slots=64, n_categories=15) == 2  # capped by the trials
    assert trials_in_flight("optuna", 20, slots=4, n_categories=2, shards=False) == 4
    assert trials_in_flight("optuna", 20, slots=4, n_categories=1, concurrent=2) == 2


def test_the_driver_schedules_with_the_same_rules_the_plan_simulates():
    driver = pytest.importorskip("suite.orchestration.driver")
    # one rule for trials in flight and one for slots, used by both: the plan cannot drift from the sweep
    from suite import sweep_rules
    from suite.orchestration import plan_cluster, sweep_options, trial_plan
    from suite.planning import plan

    assert driver.trials_in_flight is trials_in_flight is sweep_rules.trials_in_flight is plan.trials_in_flight
    assert driver.slots_from_resources is planning.slots_from_resources is plan_cluster.slots_from_resources
    assert sweep_options.sweep_eval_config is sweep_rules.sweep_eval_config
    assert plan.training_config is sweep_rules.training_config is trial_plan.training_config


def _points(cats, per_epoch=1.0, epochs=None, n_points=1):
    epochs = epochs or {"stage1": 8, "stage2": 0, "stage3": 0}
    t = Timing({"stage1": per_epoch}, source="test")
    return [PlanPoint(p, c, t, dict(epochs)) for p in range(n_points) for c in cats]


def test_plan_grid_wall_and_json_keys():
    spec = PlanSpec(kind="grid", categories=["a", "b"], n_points=2, n_trials=2, slots=4,
                    sweep_start_s=10.0, trial_start_s=0.0)
    plan = planning.plan_sweep(spec, _points(["a", "b"], n_points=2))
    assert plan["trainings"] == 8  # 2 points x 2 seeds x 2 categories
    assert plan["makespan_s"] == pytest.approx(16.0)  # 8 trainings of 8 s on 4 slots
    assert plan["predicted_wall_s"] == pytest.approx(26.0)
    assert plan["utilisation"] == pytest.approx(1.0)
    assert plan["cpu_hours"] == pytest.approx(64 / 3600)
    for key in planning.PLAN_JSON_KEYS:
        assert key in plan
    import json

    json.dumps(plan)  # JSON-ready


def test_plan_asha_stops_shorten_optuna_trials():
    # 8 reports per category (eval_every 1, 8 epochs): max_t 9, grace 3, rungs [3, 6]
    base = dict(kind="optuna", categories=["a"], n_points=1, n_trials=4, slots=1, eval_every=1,
                sweep_start_s=0.0, trial_start_s=0.0)
    off = planning.plan_sweep(PlanSpec(**base), _points(["a"]))
    on = planning.plan_sweep(PlanSpec(**base, use_asha=True), _points(["a"]))
    assert off["makespan_s"] == pytest.approx(32.0)
    assert on["asha"]["rungs"] == [3, 6]
    # trials 0, 2 pass rung 3; trial 2 stops at 6; 1 and 3 stop at 3: 8 + 3 + 6 + 3
    assert on["asha"]["expected_stopped"] == 3
    assert on["makespan_s"] == pytest.approx(20.0)


def test_sequential_mode_runs_a_trials_categories_in_one_slot():
    base = dict(kind="grid", categories=["a", "b"], n_points=1, n_trials=1, slots=2, sweep_start_s=0.0,
                trial_start_s=0.0)
    sharded = planning.plan_sweep(PlanSpec(**base, shards=True), _points(["a", "b"]))
    sequential = planning.plan_sweep(PlanSpec(**base, shards=False), _points(["a", "b"]))
    assert sharded["makespan_s"] == pytest.approx(8.0) and sharded["utilisation"] == pytest.approx(1.0)
    assert sequential["makespan_s"] == pytest.approx(16.0) and sequential["utilisation"] == pytest.approx(0.5)


def test_slots_from_resources():
    assert planning.slots_from_resources(8, 0) == 8
    assert planning.slots_from_resources(8, 0, cpus_per_trial=2) == 4
    assert planning.slots_from_resources(64, 8, use_gpu=True) == 8
    assert planning.slots_from_resources(64, 8, use_gpu=True, num_workers=2) == 4


def test_timing_from_record_skips_cached_stages_and_splits_overheads():
    from suite.records import TrialRecord

    rec = TrialRecord(config={"train": {"stage1": {"epochs": 4}, "stage2": {"epochs": 2}}}, config_hash="x",
                      dataset="synthetic", category="a", method="rcae",
                      stage_times={"data": 1.0, "stage1": 8.0, "stage2": 1.0, "eval": 2.0, "total": 12.5},
                      started=100.0, finished=113.0)
    t = planning.timing_from_record(rec)
    assert t.per_epoch_s == {"stage1": 2.0, "stage2": 0.5}
    assert t.pre_s == 1.0 and t.post_s == pytest.approx(13.0 - 1.0 - 9.0)
    rec.info = {"stage1_from_cache": True}
    assert planning.timing_from_record(rec) is None


def test_timing_key_ignores_category_seed_and_sampled_keys():
    a = {"data": {"category": "a", "image_size": 32}, "runtime": {"seed": 0}, "model": {"depth": 2}}
    b = {"data": {"category": "b", "image_size": 32}, "runtime": {"seed": 3}, "model": {"depth": 5}}
    assert planning.timing_key(a) != planning.timing_key(b)
    assert planning.timing_key(a, ["model.depth"]) == planning.timing_key(b, ["model.depth"])
    assert math.isfinite(len(planning.timing_key(a)))


def test_planning_imports_without_ray():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys\nsys.modules['ray'] = None\nimport suite.planning\n"
            "assert not any(m == 'ray' or m.startswith('ray.') for m in sys.modules if sys.modules[m] is not None)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_start_up_holds_the_slot_but_is_not_busy_time():
    sim = simulate([[[Segment(2.0, busy=False), Segment(8.0)]]], slots=1, in_flight=1)
    assert sim.makespan_s == 10.0 and sim.busy_s == 8.0 and sim.utilisation == 0.8


def test_fractional_gpus_give_several_slots_per_gpu():
    assert planning.slots_from_resources(64, 8, gpus_per_trial=0.25) == 32
    assert planning.slots_from_resources(16, 8, gpus_per_trial=0.25) == 16  # the CPUs bound it
    assert planning.slots_from_resources(64, 1, gpus_per_trial=1 / 3) == 3
    assert planning.slots_from_resources(64, 8, use_gpu=True, gpus_per_trial=0.5) == 16  # the fraction wins
    assert planning.gpus_per_training(0.0, use_gpu=True) == 1.0 and planning.gpus_per_training(0.0) == 0.0
    # plan --gpus N: a GPU cluster's slots (its CPUs taken as ample); without it the local CPUs
    assert planning.local_slots(2, 8, gpus_per_trial=0.25) == 32 and planning.local_slots(2, 8) == 8
    assert planning.local_slots(2, 3, gpus_per_trial=1 / 3) == 9 and planning.local_slots(6, None) == 6


def _peak_point(peak, category="a"):
    return PlanPoint(0, category, Timing({"stage1": 1.0}, source="records (1)", peak_gpu_mb=peak), {"stage1": 1})


def test_gpu_fit_counts_trainings_per_gpu_against_the_measured_peak():
    ok = planning.gpu_fit([_peak_point(5000.0), _peak_point(6000.0, "b")], 0.25, 24 * 1024)
    assert ok["checked"] and ok["trainings_per_gpu"] == 4 and ok["peak_gpu_mb"] == 6000.0
    with pytest.raises(planning.GpuMemoryError, match=r"3 x 7\.0 = 21\.0 GiB > 20\.0 GiB") as err:
        planning.gpu_fit([_peak_point(7 * 1024.0)], 1 / 3, 20 * 1024)
    assert "point 0 (a)" in str(err.value) and "smallest --gpus-per-trial that fits is 0.5" in str(err.value)
    with pytest.raises(planning.GpuMemoryError, match="one training alone does not fit"):
        planning.gpu_fit([_peak_point(30 * 1024.0)], 1.0, 24 * 1024)
    unknown = planning.gpu_fit([_peak_point(None)], 0.25, 24 * 1024)
    assert not unknown["checked"] and "not checked" in unknown["summary"]


def test_timings_file_refuses_what_is_not_one(tmp_path):
    from suite.errors import InputError

    path = tmp_path / "t.json"
    for text, needle in (("[1]", "not a timings file"), ("{", "not JSON"),
                         ('{"format": "rcsuite-timings", "version": 9, "entries": []}', "version 9"),
                         ('{"format": "rcsuite-timings", "version": 1, "entries": [{"key": "k", "category": "a", '
                          '"per_epoch_s": {"stage1": -1}}]}', "not a finite number")):
        path.write_text(text)
        with pytest.raises(InputError, match=needle):
            planning.TimingsFile(path)
    with pytest.raises(InputError, match="cannot read"):
        planning.TimingsFile(tmp_path / "missing.json")


def test_timings_file_round_trip_keeps_every_number(tmp_path):
    config = {"data": {"category": "a", "root": "/gpu/data", "image_size": 64}, "runtime": {"seed": 0}}
    timing = Timing({"stage1": 1.5, "stage3": 4.0}, 2.0, 3.0, 0.5, "calibration (a)", 1234.0)
    doc = planning.timings_document([planning.timing_entry(config, "a", timing)], device={"memory_mb": 1e5})
    planning.write_timings(tmp_path / "t.json", doc)
    read = planning.TimingsFile(tmp_path / "t.json")
    laptop = {**config, "data": {**config["data"], "root": "/home/me/data", "category": "b"}}
    assert read.lookup(config, "a") == timing
    other = read.lookup(laptop, "b")  # another root, another category: the same configuration's timing
    assert other.per_epoch_s == timing.per_epoch_s and other.peak_gpu_mb == 1234.0 and "of a" in other.source
    assert read.lookup({**config, "data": {**config["data"], "image_size": 128}}, "a") is None
    assert read.device == {"memory_mb": 1e5}


@pytest.mark.slow
def test_one_calibration_run_times_each_distinct_stage_once():
    """Two grid rows sharing stages 1 and 2 (CRD off / on): one subprocess, the second row loads the
    shared stages from the calibration's own stage cache and keeps the times measured when they were built."""
    from suite.config import build_config, with_overrides

    base = build_config(preset="tiny", base={"data": {"category": "synth_texture"}},
                        overrides=["eval.cost=false", "eval.diagnostics=false", "eval.scoring_variants=false",
                                   "eval.aupro=false", "eval.save_maps=0", "runtime.threads=1"])
    cfgs = [with_overrides(base, {"model.use_crd": False}), with_overrides(base, {"model.use_crd": True})]
    timings, info = planning.calibrate_many(cfgs, max_batches=1)
    assert info["distinct_stages"] == 3  # stage 1, stage 2, stage 3: not 5
    first, second = timings
    assert set(first.per_epoch_s) == {"stage1", "stage2"} and set(second.per_epoch_s) == {"stage1", "stage2", "stage3"}
    assert info["points"][0]["reused_stages"] == [] and info["points"][1]["reused_stages"] == ["stage1", "stage2"]
    assert second.per_epoch_s["stage1"] == first.per_epoch_s["stage1"] > 0
    assert second.per_epoch_s["stage2"] == first.per_epoch_s["stage2"] > 0
    assert info["device"]["type"] in ("cpu", "cuda")
