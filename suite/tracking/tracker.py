"""One tracker per (trial, category) in the process that trains it, and the end-of-sweep clean-up.

``open_trial_tracker`` gives a ``TrialTracker`` (its MLflow run and TensorBoard writer) when the
sweep watches, else None; ``finish_sweep_runs`` closes the runs a trial left open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from suite.config import Config, load_yaml
from suite.records import RECORD_NAME, read_record
from suite.tracking.mlflow import MlflowRun, mlflow_client, repair_file_store
from suite.tracking.spec import TrackingSpec, epoch_scalars
from suite.tracking.tensorboard import EventFiles


class TrialTracker(MlflowRun, EventFiles):
    """The MLflow run and TensorBoard writer of one (trial, category); see the module docstring.

    A failing backend (a tracking server that went away, a locked database) is reported once and
    switched off for this run: watching a sweep never fails it.
    """

    def __init__(
        self,
        spec: TrackingSpec,
        trial_id: str,
        category: str,
        cfg: Config,
        *,
        finished: bool = False,
        tensorboard: bool = True,
        run_id: str | None = None,
        out_dir: str | Path | None = None,
        log: Callable[[str], None] = print,
    ):
        self.spec, self.trial_id, self.category, self.cfg, self._log = spec, trial_id, category, cfg, log
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.client: Any = None
        self.run_id: str | None = None
        self._run_finished = False
        self._mlflow_steps: dict[str, set[int]] = {}
        self._writer: Any = None
        self._tb_steps: dict[str, set[int]] = {}
        if spec.mlflow_uri:
            self._guard("mlflow", self._open_mlflow, finished, run_id)
        if spec.tensorboard_dir and tensorboard:
            self._guard("tensorboard", self._open_tensorboard)

    # --- plumbing

    def _guard(self, backend: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as err:  # noqa: BLE001 - tracking must not fail a trial
            self._log(f"[tracking] {backend} switched off for {self.trial_id}/{self.category}: "
                      f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            if backend == "mlflow":
                self.client = None
            else:
                self._close_writer()

    # --- public

    def epoch(self, entry: dict[str, Any]) -> None:
        """One ``record.history`` entry (``run_training``'s ``on_epoch``): the per-epoch scalars."""
        parsed = epoch_scalars(entry)
        if parsed is None or not parsed[1]:
            return
        step, values = parsed
        if self.client is not None and not self._run_finished:
            self._guard("mlflow", self._log_metrics, values, step)
        if self._writer is not None:
            self._guard("tensorboard", self._write_scalars, values, step)

    def close(self, out_dir: str | Path, status: str | None = None) -> None:
        """End the run from the category's record in ``out_dir``: per-epoch history not yet logged
        (the DDP path logs it all here), final metrics, artifacts, and the run's end status
        (``RUN_STATUS`` of the record's status, or of ``status`` when given)."""
        out = Path(out_dir)
        record = None
        try:
            record = read_record(out / RECORD_NAME) if (out / RECORD_NAME).is_file() else None
        except ValueError:
            record = None
        if record is not None:
            for entry in record.history:
                self.epoch(entry)
        final_status = status or (record.status if record is not None else "failed")
        if self.client is not None:
            self._guard("mlflow", self._close_mlflow, out, record, final_status)
        self._close_writer()


def open_trial_tracker(
    spec: TrackingSpec | None, trial_id: str, category: str, cfg: Config, *, out_dir: str | Path | None = None,
    finished: bool = False, log: Callable[[str], None] = print,
) -> TrialTracker | None:
    """A ``TrialTracker`` when ``spec`` asks for tracking, else None (nothing imported). ``out_dir``
    (the category's record folder) keeps ``mlflow_run.json``, the id of the run to continue."""
    if spec is None or not spec.enabled:
        return None
    return TrialTracker(spec, trial_id, category, cfg, finished=finished, out_dir=out_dir, log=log)


def finish_sweep_runs(spec: TrackingSpec, records_dir: str | Path, trial_id: str | None = None) -> int:
    """Close the sweep's MLflow runs still RUNNING (of one trial, or all when the sweep ends): from
    the category's record when there is one (RecordGaps writes "stopped"/"failed" ones), else as
    KILLED. A trial ASHA stopped is ended by Tune without waiting for its process to close its runs.
    Returns how many were closed."""
    if not spec.mlflow_uri:
        return 0
    client = mlflow_client(spec.mlflow_uri)
    exp_id = spec.mlflow_experiment_id or client.get_experiment_by_name(spec.sweep).experiment_id
    if trial_id is None:
        repair_file_store(spec.mlflow_uri, exp_id)  # every trial has ended: nothing writes the runs now
    query = "attributes.status = 'RUNNING'" + (f" and tags.trial = '{trial_id}'" if trial_id else "")
    closed = 0
    for run in client.search_runs([exp_id], filter_string=query, max_results=10000):
        trial, category = run.data.tags.get("trial"), run.data.tags.get("category")
        out = Path(records_dir) / str(trial) / str(category)
        cfg = load_yaml(out / "config.yaml") if trial and category and (out / "config.yaml").is_file() else None
        if cfg is not None and cfg.hash() == run.data.tags.get("config_hash"):
            tracker = TrialTracker(spec, trial, category, cfg, tensorboard=False, run_id=run.info.run_id)
            if tracker.client is not None:
                tracker.close(out, None if (out / "record.json").is_file() else "stopped")
                closed += 1
                continue
        client.set_tag(run.info.run_id, "status", "stopped")
        client.set_terminated(run.info.run_id, "KILLED")
        closed += 1
    return closed
