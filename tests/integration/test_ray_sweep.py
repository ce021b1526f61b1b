"""Sweeps on one local Ray instance (2 CPUs, shared by the module): Optuna + ASHA, multi-objective
Pareto set, Ray Train DDP inside a trial, retry after a SIGKILL, and the shared stage cache.
Where two checks look at different things of the same kind of run, one sweep serves both (a sweep
costs far more than its assertions).

Every sweep uses the ``tiny`` preset (32 px synthetic data, a few epochs): a trial takes seconds.
"""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import torch

ray = pytest.importorskip("ray")

from suite.config import build_config  # noqa: E402
from suite.orchestration import env as env_module  # noqa: E402
from suite.orchestration.env import init_ray, shutdown_ray  # noqa: E402
from suite.orchestration.driver import SweepOptions, run_sweep  # noqa: E402
from suite.pipeline import run_training  # noqa: E402
from suite.records import find_records, read_record  # noqa: E402
from suite.stage_cache import StageCache  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# Sweep mechanics only: no AUPRO, no shifted test or validation copies (they triple every evaluation), no
# cost measurement, scoring variants or per-depth diagnostics (together about 0.3 CPU-s per training; the
# sweeps that need cost values, the Pareto one and the DDP one, turn it back on).
FAST = ["eval.aupro=false", "eval.save_maps=0", "runtime.threads=1", "eval.shifts=[]", "data.val_shifts=[]",
        "eval.cost=false", "eval.scoring_variants=false", "eval.diagnostics=false"]


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """The module's Ray instance; ``["ddp_trace"]`` is the folder whose existence turns on the DDP
    ranks' epoch traces (``epoch_tracer``, installed in every worker of the instance)."""
    if ray.is_initialized():
        ray.shutdown()
    trace = tmp_path_factory.mktemp("ddp") / "trace"
    runtime_env = env_module.worker_runtime_env
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(env_module, "worker_runtime_env",
                      lambda: {**runtime_env(), "worker_process_setup_hook": epoch_tracer(str(trace))})
        info = init_ray(num_cpus=2)  # its own short /tmp/rcs-XXXX temp folder, removed by shutdown_ray
    try:
        assert info["started"]
        yield {**info, "ddp_trace": trace}
    finally:
        shutdown_ray(info)


def space_file(folder: Path, text: str, name: str = "space.py") -> str:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def records_of(sweep_dir: Path):
    return [read_record(p) for p in find_records(sweep_dir / "records")]


def stage_builds(storage: Path) -> Counter:
    """How many times each stage key was trained (not loaded) per the cache's event log."""
    return Counter(e["key"] for e in StageCache(storage / "stage_cache").events() if e["event"] == "build")


def test_optuna_sweep_with_asha_writes_records_and_csv(local_ray, tmp_path):
    cfg = build_config(preset="tiny", overrides=["train.stage1.epochs=3", *FAST])
    opts = SweepOptions(space="noise", trials=4, storage=str(tmp_path), name="asha", asha=True, verbose=0)
    result = run_sweep(cfg, opts)

    sweep_dir = tmp_path / "asha"
    records = records_of(sweep_dir)
    assert len({r.trial_id for r in records}) == 4 and len(records) == 4
    assert {r.status for r in records} <= {"ok", "stopped"}
    assert any(r.status == "ok" for r in records)
    ok = [r for r in records if r.status == "ok"]
    for r in ok:
        assert r.sweep == "asha" and r.selection == "val"
        assert r.node["ray_node_id"] and r.node["hostname"]
        assert "i_auroc" in r.metrics["val"] and "i_auroc" in r.metrics["test"]
        # ASHA needs periodic validation: eval_every was set since the config had 0
        assert r.config["train"]["eval_every"] == 1
        assert [h["epoch"] for h in r.history if "val_i_auroc" in h] == [1, 2, 3]
    frame = pd.read_csv(result["records_csv"])
    assert len(frame) == 4 and set(frame["trial_id"]) == {r.trial_id for r in records}
    assert Path(result["records_dir"]) == sweep_dir / "records"
    params = [json.loads((sweep_dir / "records" / r.trial_id / "params.json").read_text()) for r in records]
    assert all(set(p["overrides"]) == {"augment.noise_std", "augment.noise_on_target"} for p in params)
    assert len({p["overrides"]["augment.noise_std"] for p in params}) == 4  # four distinct samples
    # Every record (stopped ones too) has its start and end; the summary states the slots' utilisation.
    assert all(r.started is not None and r.started <= r.finished for r in records)
    usage = result["utilisation"]
    assert usage["timed"] == 4 and usage["slots"] >= 1 and 0 < usage["utilisation"] <= 1


def test_multi_objective_sweep_writes_a_pareto_set(local_ray, tmp_path):
    space = space_file(tmp_path, '"""depth vs cost"""\nSPACE = {"model.depth": {"type": "int", "low": 1, "high": 3}}\n')
    cfg = build_config(preset="tiny", overrides=["train.stage1.epochs=1", *FAST, "eval.cost=true"])
    # one trial at a time: a repeated depth is then always answered from the first one's record
    opts = SweepOptions(space=space, trials=4, storage=str(tmp_path / "st"), name="pareto", objective="multi",
                        concurrent=1, cost_metric="gflops", verbose=0)
    result = run_sweep(cfg, opts)

    assert Path(result["pareto_csv"]).exists() and Path(result["pareto_json"]).exists()
    front = pd.read_csv(result["pareto_csv"])
    assert len(front) >= 1
    trials = pd.DataFrame([r for r in result["trials"] if r["complete"]])
    # TPE re-proposes depths on this 3-point space: a repeat is answered from the first record
    # (answered_from.json), so the table holds each distinct configuration once.
    folders = [d for d in (tmp_path / "st" / "pareto" / "records").iterdir() if d.is_dir()]
    proposed = {json.loads((d / "params.json").read_text())["overrides"]["model.depth"] for d in folders}
    answered = [d for d in folders if (d / "synth_texture" / "answered_from.json").exists()]
    assert len(folders) == 4 and len(trials) == len(proposed) == 4 - len(answered)
    assert all(not (d / "synth_texture" / "record.json").exists() for d in answered)
    for _, p in front.iterrows():
        dominated = (
            (trials["val_i_auroc"] >= p["val_i_auroc"]) & (trials["gflops"] <= p["gflops"])
            & ((trials["val_i_auroc"] > p["val_i_auroc"]) | (trials["gflops"] < p["gflops"]))
        )
        assert not dominated.any(), f"pareto row {p['trial_id']} is dominated"
    # and every non-dominated trial is on the front
    for _, t in trials.iterrows():
        dominated = (
            (trials["val_i_auroc"] >= t["val_i_auroc"]) & (trials["gflops"] <= t["gflops"])
            & ((trials["val_i_auroc"] > t["val_i_auroc"]) | (trials["gflops"] < t["gflops"]))
        )
        assert dominated.any() or t["trial_id"] in set(front["trial_id"])


def ddp_config(record):
    from suite.config import from_dict

    return from_dict(record.config)


def epoch_tracer(trace_dir: str):
    """A Ray ``worker_process_setup_hook``: in every worker process of the module's Ray instance,
    ``suite.training._train_epoch`` is wrapped on import so that, while ``trace_dir`` exists, each
    DDP rank saves per stage and epoch the sha1 of every image its loss was fed, of every row of the
    stage's training tensor, and its parameters before and after the epoch's optimiser steps. A
    closure, so Ray ships it by value (the test module is not importable there); wrapped on import
    rather than at start-up, so a worker that never trains never imports torch."""

    def install() -> None:
        import importlib.abc
        import importlib.util
        import sys

        from suite.orchestration.env import quiet_worker_logs

        quiet_worker_logs()  # the hook this one replaces

        def wrap(training) -> None:
            import hashlib
            import inspect
            from pathlib import Path

            import torch

            original = training._train_epoch

            def digest(image):
                return hashlib.sha1(image.detach().cpu().contiguous().numpy().tobytes()).hexdigest()

            def parameters(model):
                module = getattr(model, "module", model)  # the DDP wrapper's inner module
                return {n: p.detach().cpu().clone() for n, p in module.named_parameters()}

            signature = inspect.signature(original)

            def traced(name, epoch, train_model, loss_fn, data, *args, **kwargs):
                # rank and world by name, so a reordered signature cannot make the tracer read the wrong ones
                given = signature.bind(name, epoch, train_model, loss_fn, data, *args, **kwargs).arguments
                rank, world = given["rank"], given["world"]
                if world < 2 or not Path(trace_dir).is_dir():
                    return original(name, epoch, train_model, loss_fn, data, *args, **kwargs)
                fed = []

                def recording_loss(model, batch, generator):
                    fed.extend(digest(image) for image in batch)
                    return loss_fn(model, batch, generator)

                before = parameters(train_model)
                loss = original(name, epoch, train_model, recording_loss, data, *args, **kwargs)
                torch.save({"fed": fed, "data": [digest(image) for image in data], "before": before,
                            "after": parameters(train_model), "ddp": type(train_model).__name__},
                           Path(trace_dir) / f"{name}-{epoch}-rank{rank}.pt")
                return loss

            training._train_epoch = traced

        class WrapOnImport(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name != "suite.training":
                    return None
                sys.meta_path.remove(self)
                spec = importlib.util.find_spec(name)
                load = spec.loader.exec_module

                def exec_module(module):
                    load(module)
                    wrap(module)

                spec.loader.exec_module = exec_module
                return spec

        if "suite.training" in sys.modules:
            wrap(sys.modules["suite.training"])
        else:
            sys.meta_path.insert(0, WrapOnImport())

    return install


def assert_ranks_split_each_epoch(trace: Path, epochs: dict[str, int]) -> None:
    """Per stage and epoch: both ranks trained the DDP wrapper on the same distinct images, each on its
    own half, and ended the epoch with bit-identical weights that the epoch changed."""
    for stage, n_epochs in epochs.items():
        for epoch in range(1, n_epochs + 1):
            rank0, rank1 = (torch.load(trace / f"{stage}-{epoch}-rank{r}.pt", weights_only=True) for r in (0, 1))
            where = f"{stage} epoch {epoch}"
            assert rank0["ddp"] == rank1["ddp"] == "DistributedDataParallel", where
            data = rank0["data"]
            assert data == rank1["data"] and len(set(data)) == len(data), where  # same set, distinct images
            fed0, fed1 = rank0["fed"], rank1["fed"]
            # each rank saw its own half: no image twice, nothing seen by both, together all of it
            # (but for the one image an odd-sized set leaves out so both ranks take as many steps)
            assert len(set(fed0)) == len(fed0) == len(fed1) == len(set(fed1)) == len(data) // 2, where
            assert not set(fed0) & set(fed1), where
            assert set(fed0) | set(fed1) <= set(data) and len(set(fed0) | set(fed1)) == len(data) - len(data) % 2
            # the ranks start the epoch with equal weights, take optimiser steps that change them,
            # and end it with bit-identical weights (gradients averaged across ranks by DDP)
            assert rank0["before"].keys() == rank1["before"].keys() == rank0["after"].keys(), where
            for key in rank0["before"]:
                assert torch.equal(rank0["before"][key], rank1["before"][key]), f"{where}: {key} before"
                assert torch.equal(rank0["after"][key], rank1["after"][key]), f"{where}: {key} after"
            assert any(not torch.equal(rank0["before"][k], rank0["after"][k]) for k in rank0["before"]), where


@pytest.mark.parametrize("shards", ["elastic", "off"])
def test_sigkilled_trial_is_retried_from_its_checkpoint(local_ray, tmp_path, shards):
    space = space_file(tmp_path, '"""one point"""\nCONFIGS = [{"augment.coverage": 0.3}]\n')
    cfg = build_config(preset="tiny", overrides=["train.stage1.epochs=3", "train.eval_every=1",
                                                 "train.checkpoint_every=1", *FAST])
    marker = tmp_path / "killed.marker"
    opts = SweepOptions(space=space, storage=str(tmp_path / "st"), name="kill", max_failures=2, verbose=0,
                        kill_once_after_checkpoint=str(marker), shards=shards)
    run_sweep(cfg, opts)

    assert marker.exists(), "the trial never killed itself"
    (record,) = records_of(tmp_path / "st" / "kill")
    assert record.status == "ok"
    epochs = [h["epoch"] for h in record.history if h.get("stage") == "stage1"]
    if shards == "off":  # trained in the killed process itself: the retry resumes after epoch 1
        assert epochs == [2, 3]
        return
    killed_at = marker.stat().st_mtime
    # The trial process was killed right after its epoch-1 report + checkpoint. Its shard runs on
    # until Ray ends it (or the retry's shard takes the folder over), so either that first shard
    # finished the category before the retry began (the retry then trained nothing), or the retry's
    # shard resumed from the latest checkpoint: epoch 2 or later, never epoch 1 again.
    if record.started < killed_at:
        assert epochs == [1, 2, 3]
    else:
        assert epochs in ([2, 3], [3], []), epochs
    assert "stage1" in record.stage_times and record.metrics["test"]


def test_stage_cache_trains_stage1_once_and_a_diverged_trial_fails_while_the_sweep_goes_on(local_ray, tmp_path):
    """One sweep, two checks: trials that differ only in stage-3 settings share stage 1 and 2 through
    the cache, and a trial whose loss diverges fails with its reason while the others finish."""
    space = space_file(tmp_path, '''\
        """only stage-3 settings vary, and one trial diverges"""
        CONFIGS = [{"model.crd_steps": [1]}, {"model.crd_steps": [2]}, {"model.crd_steps": None},
                   {"train.stage1.lr": 1.0e9}]
        ''')
    cfg = build_config(preset="tiny", overrides=["train.stage1.epochs=2", *FAST])
    storage = tmp_path / "st"
    opts = SweepOptions(space=space, storage=str(storage), name="cache", concurrent=2, max_failures=1, verbose=0)
    result = run_sweep(cfg, opts)

    records = records_of(storage / "cache")
    assert len(records) == 4
    (diverged,) = [r for r in records if r.config["train"]["stage1"]["lr"] == 1.0e9]
    assert diverged.status == "failed" and diverged.error.startswith("TrainingDiverged")
    shared = [r for r in records if r is not diverged]
    assert all(r.status == "ok" for r in shared)
    assert result["status"] == {"ok": 3, "failed": 1}
    builds = stage_builds(storage)
    per_stage = Counter(key.split("-")[3] for key in builds.elements())
    assert per_stage == {"stage1": 1, "stage2": 1, "stage3": 3}  # the diverged stage 1 was never stored
    assert sum(bool(r.info.get("stage1_from_cache")) for r in shared) == 2


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _tune_trial_spans(experiment: Path) -> dict[str, list[tuple[float, float]]]:
    """(start, end) of every Tune trial per study, from its result.json (timestamps are whole seconds)."""
    spans: dict[str, list[tuple[float, float]]] = {}
    for result_json in experiment.glob("*/result.json"):
        last = json.loads(result_json.read_text().splitlines()[-1])
        end = float(last["timestamp"])
        spans.setdefault(last["config"]["study"], []).append((end - float(last["time_total_s"]), end))
    return spans


def test_per_category_studies_run_at_the_same_time_each_with_its_own_trials(local_ray, tmp_path):
    cfg = build_config(preset="tiny", overrides=["train.stage1.epochs=1", *FAST])
    opts = SweepOptions(space="noise", categories=["synth_texture", "synth_object"], per_category=True, trials=2,
                        asha=False, storage=str(tmp_path), name="percat", verbose=0)
    result = run_sweep(cfg, opts)

    sweep_dir = tmp_path / "percat"
    assert [p.name for p in sweep_dir.glob("tune-*")] == ["tune-categories"]  # one experiment for both studies
    records = records_of(sweep_dir)
    by_cat = Counter(r.category for r in records)
    assert by_cat == {"synth_texture": 2, "synth_object": 2}
    assert all(len(list((sweep_dir / "records" / r.trial_id).glob("*/record.json"))) == 1 for r in records)
    # Studies take turns, so Tune trials of the two studies are in flight together. Judged from each
    # Tune trial's lifetime (its last report's timestamp minus its total time), not from the trainings:
    # trainings of 0.3 s on 2 slots may or may not overlap, whichever coordinator asks first.
    spans = _tune_trial_spans(sweep_dir / "tune-categories")
    assert set(spans) == {"synth_texture", "synth_object"}
    assert any(_overlap(a, b) for a in spans["synth_texture"] for b in spans["synth_object"])
    assert set(result["best"]) == {"synth_texture", "synth_object"}
    assert set(result["random_trials"]) == {"synth_texture", "synth_object"}


def test_ddp_sweep_splits_each_epoch_between_ranks_feeds_asha_and_writes_a_run_training_record(local_ray,
                                                                                              tmp_path):
    """One DDP trial (2 Ray Train workers) in an ASHA sweep checked three ways: in every epoch of every
    stage the ranks train disjoint halves of the data and keep equal weights (traced in the Train
    workers by ``epoch_tracer``), rank 0's periodic reports reach Tune, and its record has exactly
    the fields of a plain ``run_training``.
    One trial, one Ray Train run: a second trial cost about 30 CPU-seconds (two Train workers and a
    trial process) and checked ASHA stopping a DDP trial only when the noise levels happened to rank
    that way (test_optuna_sweep_with_asha_writes_records_and_csv checks ASHA stops on one-worker
    trials); a separate Ray Train run for the rank checks cost 28 (2026-12-07)."""
    epochs = {"stage1": 4, "stage2": 1, "stage3": 1}
    everything = ["eval.cost=true", "eval.scoring_variants=true", "eval.diagnostics=true"]  # as run_training's
    cfg = build_config(preset="tiny", overrides=[*(f"train.{s}.epochs={e}" for s, e in epochs.items()), *FAST,
                                                 *everything])
    opts = SweepOptions(space="noise", trials=1, storage=str(tmp_path), name="ddpasha", num_workers=2, asha=True,
                        verbose=0)
    trace = local_ray["ddp_trace"]
    trace.mkdir()
    try:
        run_sweep(cfg, opts)
    finally:
        trace.rename(tmp_path / "trace")  # tracing off again for the module's other sweeps
    assert_ranks_split_each_epoch(tmp_path / "trace", epochs)

    (ddp,) = records_of(tmp_path / "ddpasha")
    assert ddp.status == "ok"  # ASHA never stops the only trial at a rung
    # What ASHA decides on: rank 0 reported every periodic stage-1 validation to Tune, epoch by
    # epoch, then its final report.
    (result_json,) = (tmp_path / "ddpasha").glob(f"tune-*/{ddp.trial_id}/result.json")
    reports = [json.loads(line) for line in result_json.read_text().splitlines()]
    assert [(r["stage"], r["epoch"]) for r in reports if not r["final"]] == [("stage1", e) for e in (1, 2, 3, 4)]
    assert reports[-1]["final"] and all("val_i_auroc" in r for r in reports)

    # a full DDP record (world size 2, written by rank 0) with the same fields as run_training's
    assert ddp.node["train_world_size"] == 2 and ddp.node["train_rank"] == 0
    assert ddp.info["train_workers"] == 2
    # each rank trained on its half of every epoch; the trial still went through every stage-1 epoch
    assert [h["epoch"] for h in ddp.history if h.get("stage") == "stage1"] == [1, 2, 3, 4]
    alone = run_training(ddp_config(ddp), tmp_path / "alone", log=lambda _: None)
    assert set(ddp.to_dict()) == set(alone.to_dict())
    for split in ("val", "test"):
        assert set(ddp.metrics[split]) == set(alone.metrics[split])
    assert set(ddp.cost) == set(alone.cost)
    assert set(ddp.stage_times) == set(alone.stage_times)
