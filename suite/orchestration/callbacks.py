"""Tune callbacks of the sweep driver: records for trials that ended without one (``RecordGaps``)
and the MLflow runs of trials Tune ended while they were open (``CloseRuns``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ray import tune

from suite import tracking
from suite.config import ConfigError, load_yaml
from suite.records import RECORD_NAME, TrialRecord, code_versions, write_record


def _trial_error_summary(trial: Any) -> str:
    """First and last line of the trial's latest failure, from Tune's local error file."""
    try:
        text = Path(trial.error_file).read_text() if trial.error_file else ""
    except OSError:
        text = ""
    block = text.rsplit("Failure # ", 1)[-1]
    lines = [line.strip() for line in block.splitlines()[1:] if line.strip()]
    if not lines:
        return "trial process failed without writing a record"
    summary = lines[0] if len(lines) == 1 or lines[0] == lines[-1] else f"{lines[0]} ... {lines[-1]}"
    return summary[:500]


class RecordGaps(tune.Callback):
    """Tune callback (driver side): write records for trials that ended without one.

    A trial stopped early by ASHA is interrupted inside ``run_training``; a trial whose process died
    on its last attempt never wrote its record. Both get a record (status "stopped" / "failed") in
    every category folder that was started, so the sweep's records account for every trial.
    """

    def __init__(self, records_dir: str, sweep: str, select_on: str):
        self.records_dir, self.sweep, self.select_on = Path(records_dir), sweep, select_on

    def _fill(self, trial: Any, status: str, error: str) -> None:
        trial_dir = self.records_dir / str(trial.trial_id)
        if not trial_dir.is_dir():
            return
        last = {k: v for k, v in (trial.last_result or {}).items()
                if isinstance(v, (int, float, str, bool)) or v is None}
        for cat_dir in sorted(p for p in trial_dir.iterdir() if p.is_dir()):
            if (cat_dir / RECORD_NAME).exists() or not (cat_dir / "config.yaml").exists():
                continue
            try:
                cfg = load_yaml(cat_dir / "config.yaml")
            except (ConfigError, OSError):
                continue
            record = TrialRecord(
                config=cfg.to_dict(), config_hash=cfg.hash(), dataset=cfg.data.dataset,
                category=cfg.data.category, method=cfg.model.method, status=status, error=error,
                history=[last] if last else [], trial_id=str(trial.trial_id), sweep=self.sweep,
                seed=cfg.runtime.seed, selection=self.select_on, versions=code_versions(),
                # run_training writes config.yaml first: its mtime is when the category started; it
                # ended no later than now (the scheduler's stop or the error reached the driver).
                started=(cat_dir / "config.yaml").stat().st_mtime, finished=time.time(),
                info={"times": "started = config.yaml mtime, finished = when the driver filled this record"},
            )
            write_record(record, cat_dir / RECORD_NAME)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        if last.get("final") is not True:
            self._fill(trial, "stopped", f"stopped early by the scheduler at report {last.get('training_iteration')}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._fill(trial, "failed", _trial_error_summary(trial))


class CloseRuns(tune.Callback):
    """Tune callback (driver side, after RecordGaps): end the MLflow runs of a trial that Tune ended
    while they were open. Tune stops an ASHA-stopped trial's process without waiting for it, so the
    trial cannot be relied on to end its own runs; this closes them from their records."""

    def __init__(self, spec: tracking.TrackingSpec, records_dir: str):
        self.spec, self.records_dir = spec, records_dir

    def _close(self, trial: Any) -> None:
        try:
            tracking.finish_sweep_runs(self.spec, self.records_dir, str(trial.trial_id))
        except Exception as err:  # noqa: BLE001 - watching never fails a sweep; the sweep's end retries
            print(f"[tracking] could not close the MLflow runs of {trial.trial_id}: {err}", flush=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._close(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._close(trial)
