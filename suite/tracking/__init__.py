"""Watching a sweep: MLflow runs and TensorBoard event files (no Ray, off by default).

A sweep without ``--mlflow`` / ``--tensorboard`` writes nothing new and imports neither package;
both come with the optional extra ``[tracking]`` (``pip install -e ".[tracking]"``), and
``require_packages`` names it when a flag is given without it. The sweep driver prepares the
MLflow experiment; each trial process opens one ``TrialTracker`` per category it trains.

- ``spec``: the options, ``TrackingSpec`` and the scalars logged per epoch and per record;
- ``mlflow``: the experiment, a category's run (found again on a retry or ``--resume``), file-store
  repairs after a hard kill; why the MLflow client and not Ray's MLflow integration;
- ``tensorboard``: per-epoch event files under ``<sweep>/tensorboard/<trial>/<category>/``;
- ``tracker``: ``TrialTracker`` (a failing backend is switched off, never fails a trial),
  ``open_trial_tracker`` and ``finish_sweep_runs``.

The persistent Optuna study (``--optuna-storage``) lives next to the Optuna search, in
``suite.orchestration.optuna_storage``.
"""

from suite.tracking.mlflow import RUN_REF_NAME, RUN_STATUS, mlflow_client, prepare_mlflow_experiment, repair_file_store
from suite.tracking.spec import (
    EXTRA,
    INSTALL_HINT,
    TENSORBOARD_DIR,
    TrackingSpec,
    absolute_sqlite_url,
    epoch_scalars,
    final_metrics,
    normalize_mlflow_uri,
    require_packages,
)
from suite.tracking.tracker import TrialTracker, finish_sweep_runs, open_trial_tracker

__all__ = [
    "EXTRA", "INSTALL_HINT", "RUN_REF_NAME", "RUN_STATUS", "TENSORBOARD_DIR", "TrackingSpec", "TrialTracker",
    "absolute_sqlite_url", "epoch_scalars", "final_metrics", "finish_sweep_runs", "mlflow_client",
    "normalize_mlflow_uri", "open_trial_tracker", "prepare_mlflow_experiment", "repair_file_store",
    "require_packages",
]
