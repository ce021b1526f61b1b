"""A rerun of ``run_training`` in the same folder resumes from its stage checkpoints. Not marked slow
(the scoring extras are off, so it takes a few seconds): the quick suite's guard for resuming, which
the Ray sweeps' kill-and-resume tests check again end to end."""

from __future__ import annotations

from suite.config import build_config
from suite.pipeline import run_training


def test_rerun_resumes_from_stage_checkpoints(tmp_path):
    cfg = build_config(preset="tiny", overrides=["eval.cost=false", "eval.aupro=false", "eval.shifts=[]",
                                                 "eval.diagnostics=false", "eval.scoring_variants=false"])
    first = run_training(cfg, tmp_path / "t")
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "t" / "checkpoints").glob("*.pt")}
    assert len(stamps) >= 3
    lines = []
    second = run_training(cfg, tmp_path / "t", log=lines.append)
    # completed stage checkpoints are loaded, not retrained (and not rewritten)
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "t" / "checkpoints").glob("*.pt")}
    assert sum("loaded completed checkpoint" in line for line in lines) == 3
    assert second.metrics["test"] == first.metrics["test"]
