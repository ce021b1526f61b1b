"""benchmarks/gpu_check.py: the one GPU check script; here its toy-size dry run on whatever device there is."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("rcsuite_gpu_check", REPO / "benchmarks" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check)


def _run(record):
    return {"exit_code": 0, "wall_s": 1.0, "record": record}


def test_summary_names_the_issues_numbers():
    result = {"gpu": {"name": "X"}, "steps": {
        "amp_vs_fp32": {"wall_s": 9.0, "gpu": {"busy_mean": 0.5},
                        "runs": {"amp": _run({"test": {"i_auroc": 0.955}, "epoch_s": {"stage1": 0.7}}),
                                 "fp32": _run({"test": {"i_auroc": 0.960}})}},
        "alone": {"wall_s": 10.0, "gpu": {"busy_mean": 0.3}, "runs": {}},
        "together": {"wall_s": 13.0, "gpu": {"busy_mean": 0.9}, "runs": {}},
        "paper": {"wall_s": 50.0, "gpu": {}, "runs": {"paper": _run({"epoch_s": {"stage1": 2.5},
                                                                    "peak_memory_mb": {"train_peak_cuda_mb": 9e3}})}},
        "calibrate": {"wall_s": 80.0, "per_epoch_s": {"stage1": 2.4}}}}
    s = gpu_check.summarise(result)
    assert s["together_over_alone"] == pytest.approx(1.3)
    assert s["amp_minus_fp32_i_auroc"] == pytest.approx(-0.005)
    assert s["epoch_s_128px"] == {"stage1": 0.7} and s["epoch_s_1024px"] == {"stage1": 2.5}
    assert s["busy_share"]["together"] == 0.9 and s["calibrate_s"] == 80.0
    assert gpu_check.summarise({"steps": {}})["together_over_alone"] is None  # nothing ran: no crash


def test_sampler_without_a_gpu_samples_nothing():
    sampler = gpu_check.GpuSampler(period_s=0.05)
    if sampler.start().how != "none":
        sampler.stop()
        pytest.skip("a GPU answers here")
    sampler.stop()
    assert sampler.between(0, 1e12) == {"busy_mean": None, "memory_used_max_mb": None, "samples": 0, "how": "none"}


@pytest.mark.slow
def test_dry_run_runs_every_step(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(out)],
                          capture_output=True, text=True, timeout=1500, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    result = json.loads(out.read_text())
    steps = result["steps"]
    assert set(steps) == {"amp_vs_fp32", "alone", "together", "paper", "calibrate"}
    assert len(steps["together"]["runs"]) == 2
    for step in ("amp_vs_fp32", "alone", "together", "paper"):
        for run in steps[step]["runs"].values():
            assert run["exit_code"] == 0 and run["record"]["status"] == "ok"
    assert steps["calibrate"]["exit_code"] == 0 and steps["calibrate"]["per_epoch_s"]["stage1"] > 0
    assert json.loads(Path(steps["calibrate"]["timings_file"]).read_text())["format"] == "rcsuite-timings"
    s = result["summary"]
    assert s["together_over_alone"] > 0 and s["epoch_s_128px"]["stage1"] > 0 and s["amp_minus_fp32_i_auroc"] is not None
