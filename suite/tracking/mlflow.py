"""MLflow: the sweep's experiment, a trial category's run, and repairs of a ``file:`` store.

The MLflow client inside the trial, not Ray's MLflow integration. Each (trial, category) is one
MLflow run, written by the trial process through an explicit ``MlflowClient(tracking_uri)`` (never
the global "fluent" state). Ray's ``MLflowLoggerCallback`` / ``setup_mlflow`` log one run per Tune
trial from the driver, neither split nor nest a pooled trial's categories (ray #19978), keep the
trial -> run map in the driver's memory so a restart starts a second run (ray #20473, #30649) and
have ignored ``tracking_uri`` (ray #36257).

A run is found again from the category's record folder, whose ``mlflow_run.json`` names it (else by
its tags): a retried trial, a ``--resume`` and a finished category all continue the run that exists.
Per-epoch values are logged once per (key, step); steps a run already holds are skipped, since a
restart from a mid-stage checkpoint replays epochs. Under DDP only the trial process logs (rank 0's
record, when the category ends). The driver creates the experiment before any trial starts and
closes the runs a trial left open (``suite.tracking.tracker.finish_sweep_runs``).

A run holds params (the flattened config), metrics (``<stage>/loss``, ``<stage>/val_<metric>`` per
epoch, then the final ``val_*``, ``test_*``, ``cost_*``, ``time_*``), artifacts (``record.json``,
``config.yaml``, ``gallery/*.png``) and tags (sweep, trial, category, git commit, selection split,
config hash, method, dataset, status).

The ``file:`` store (maintenance mode in MLflow 3) needs ``MLFLOW_ALLOW_FILE_STORE=true``, set here
for the sweep's processes. It writes in place, so a hard kill can cut a metric line and make the run
unreadable: ``repair_file_store`` fixes that on resume, on reopening a run and at the end of a sweep.
SQLite stores keep artifacts in ``mlartifacts/<sweep>`` beside the database.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from suite.config import ConfigError, flatten
from suite.records import atomic_write_json, code_versions
from suite.tracking.spec import final_metrics

RUN_STATUS = {"ok": "FINISHED", "stopped": "KILLED", "failed": "FAILED"}
RUN_REF_NAME = "mlflow_run.json"  # in a category's record folder: the MLflow run it continues
_MAX_PARAMS_PER_BATCH = 100  # MLflow's log_batch limit
_MAX_PARAM_VALUE = 6000


def mlflow_client(uri: str):
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # see the module docstring
    from mlflow.tracking import MlflowClient  # optional extra [tracking]: only when a sweep uses MLflow

    return MlflowClient(tracking_uri=uri)


def prepare_mlflow_experiment(uri: str, sweep: str, resume: bool, create: bool = True) -> str | None:
    """The id of the sweep's experiment (named after it), created when absent; ``ConfigError``
    when a new sweep's name is taken (``create=False`` only checks, and returns None). Run once
    by the driver, before any trial (a fresh SQLite store creates its tables here, not in racing
    trial processes)."""
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):].partition("?")[0]).parent.mkdir(parents=True, exist_ok=True)
    client = mlflow_client(uri)
    experiment = client.get_experiment_by_name(sweep)
    if experiment is not None:
        if experiment.lifecycle_stage != "active":
            raise ConfigError(f"MLflow experiment '{sweep}' in {uri} is deleted; restore it or choose another --name")
        if not resume:
            raise ConfigError(
                f"MLflow experiment '{sweep}' already exists in {uri}; choose another --name (or --resume the sweep)"
            )
        if create:  # resuming a killed sweep: no trial runs yet, so what a kill cut off can be fixed
            fixed = repair_file_store(uri, experiment.experiment_id)
            if fixed:
                print(f"[tracking] repaired {len(fixed)} file(s) a killed process left half-written in {uri}",
                      flush=True)
        return experiment.experiment_id
    if not create:
        return None
    location = None
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):].partition("?")[0])
        location = (db.parent / "mlartifacts" / sweep).as_uri()
    return client.create_experiment(sweep, artifact_location=location, tags={"sweep": sweep})


def _metric_line_ok(line: str) -> bool:
    parts = line.split()
    if not line.endswith("\n") or len(parts) not in (2, 3, 5):
        return False
    try:
        int(parts[0]), float(parts[1]), [int(parts[2])] if len(parts) > 2 else None
    except ValueError:
        return False
    return True


def repair_file_store(uri: str, experiment_id: str, run_id: str | None = None) -> list[str]:
    """Fix what a hard kill left half-written in an MLflow ``file:`` store (which writes in place):
    metric files with a cut last line or no line, empty param files (both are logged again when
    the run is continued) and a run's cut ``meta.yaml`` (rebuilt as RUNNING). Only when no process
    writes those runs. Returns the paths fixed; a no-op for other stores."""
    if not uri.startswith("file:"):
        return []
    from mlflow.utils.file_utils import local_file_uri_to_path  # optional extra [tracking]

    root = Path(local_file_uri_to_path(uri)) / str(experiment_id)
    if not root.is_dir():
        return []
    runs = [root / run_id] if run_id else [p for p in root.iterdir() if p.is_dir() and (p / "metrics").is_dir()]
    fixed: list[str] = []
    for run_dir in runs:
        for path in sorted((run_dir / "metrics").rglob("*")) if (run_dir / "metrics").is_dir() else []:
            if not path.is_file():
                continue
            lines = path.read_text(errors="replace").splitlines(keepends=True)
            good = [line for line in lines if _metric_line_ok(line)]
            if len(good) != len(lines) or not good:
                if good:
                    tmp = path.with_name(f".{path.name}.repair")
                    tmp.write_text("".join(good))
                    tmp.replace(path)
                else:
                    path.unlink()
                fixed.append(str(path))
        for path in sorted((run_dir / "params").rglob("*")) if (run_dir / "params").is_dir() else []:
            if path.is_file() and path.stat().st_size == 0:
                path.unlink()
                fixed.append(str(path))
        meta = run_dir / "meta.yaml"
        try:
            ok = isinstance(yaml.safe_load(meta.read_text()), dict)
        except (OSError, yaml.YAMLError):
            ok = False
        if not ok and (run_dir / "metrics").is_dir():
            name_tag = run_dir / "tags" / "mlflow.runName"
            info = {
                "artifact_uri": (run_dir / "artifacts").as_uri(), "end_time": None, "entry_point_name": "",
                "experiment_id": str(experiment_id), "lifecycle_stage": "active", "run_id": run_dir.name,
                "run_name": name_tag.read_text() if name_tag.is_file() else "", "source_name": "",
                "source_type": 4, "source_version": "", "start_time": int(run_dir.stat().st_mtime * 1000),
                "status": 1, "tags": [], "user_id": "unknown", "deleted_time": None,
            }
            tmp = run_dir / ".meta.yaml.repair"
            tmp.write_text(yaml.safe_dump(info, default_flow_style=False))
            tmp.replace(meta)
            fixed.append(str(meta))
    return fixed


class MlflowRun:
    """The MLflow half of ``suite.tracking.tracker.TrialTracker``: opens, feeds and ends the run of
    one (trial, category). Expects ``spec``, ``trial_id``, ``category``, ``cfg``, ``out_dir``,
    ``client``, ``run_id``, ``_run_finished``, ``_mlflow_steps`` and ``_log`` on the instance."""

    def _tags(self) -> dict[str, str]:
        commit = code_versions().get("git_commit") or "unknown"
        return {
            "sweep": self.spec.sweep,
            "trial": self.trial_id,
            "category": self.category,
            "git_commit": commit,
            "mlflow.source.git.commit": commit,
            "selection": self.spec.select_on,
            "config_hash": self.cfg.hash(),
            "method": self.cfg.model.method,
            "dataset": self.cfg.data.dataset,
        }

    def _ref_path(self) -> Path | None:
        return self.out_dir / RUN_REF_NAME if self.out_dir is not None else None

    def _find_runs(self, client: Any, exp_id: str, run_id: str | None) -> list[Any]:
        """The run to continue: ``run_id``; else the one the category folder's ``mlflow_run.json``
        names; else a search by tags (a process killed right after creating its run). []: none."""
        uri = self.spec.mlflow_uri
        ref = self._ref_path()
        if run_id is None and ref is not None and ref.is_file():
            try:
                data = json.loads(ref.read_text())
            except ValueError:
                data = {}
            if data.get("tracking_uri") == uri and data.get("experiment_id") == exp_id:
                run_id = data.get("run_id")
        if run_id is not None:
            try:
                run = client.get_run(run_id)
            except Exception:  # noqa: BLE001 - half-written by a killed process (file store)?
                if not repair_file_store(uri, exp_id, run_id):
                    raise
                run = client.get_run(run_id)
            if run.info.lifecycle_stage == "active":
                return [run]
        for attempt in range(3):
            try:
                return client.search_runs(
                    [exp_id], filter_string=f"tags.trial = '{self.trial_id}' and tags.category = '{self.category}'",
                    max_results=50,
                )
            except Exception:  # noqa: BLE001 - file store: another run is being written or was cut by a kill
                time.sleep(1.0 + attempt)
        return []  # nothing found to continue (the folder names no run): start one

    def _open_mlflow(self, finished: bool, run_id: str | None) -> None:
        from mlflow.entities import Param  # optional extra [tracking]

        client = mlflow_client(self.spec.mlflow_uri)
        exp_id = self.spec.mlflow_experiment_id
        if exp_id is None:
            exp_id = client.get_experiment_by_name(self.spec.sweep).experiment_id
        run = None
        for candidate in self._find_runs(client, exp_id, run_id):
            if run is None and candidate.data.tags.get("config_hash") == self.cfg.hash():
                run = candidate
            else:  # a run of an earlier config under a reused trial id: not this trial's
                client.set_tag(candidate.info.run_id, "superseded", "true")
                client.delete_run(candidate.info.run_id)
                self._log(f"[tracking] deleted MLflow run {candidate.info.run_id}: another config for this trial id")
        if run is None:
            run = client.create_run(exp_id, run_name=f"{self.trial_id}/{self.category}", tags=self._tags())
            existing: dict[str, str] = {}
        else:
            existing = dict(run.data.params)
            for key in run.data.metrics:
                self._mlflow_steps[key] = {m.step for m in client.get_metric_history(run.info.run_id, key)}
            if run.info.status == "FINISHED" and finished:
                self._run_finished = True
            elif run.info.status != "RUNNING":
                client.update_run(run.info.run_id, status="RUNNING")
        self.client, self.run_id = client, run.info.run_id
        ref = self._ref_path()
        if ref is not None and run_id is None:
            ref.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(ref, {"tracking_uri": self.spec.mlflow_uri, "experiment_id": exp_id,
                                    "run_id": self.run_id})
        if not self._run_finished:
            params = {k: json.dumps(v) if isinstance(v, (list, dict)) else str(v)
                      for k, v in flatten(self.cfg.to_dict()).items()}
            todo = [Param(k, v[:_MAX_PARAM_VALUE]) for k, v in sorted(params.items()) if k not in existing]
            for i in range(0, len(todo), _MAX_PARAMS_PER_BATCH):
                client.log_batch(self.run_id, params=todo[i : i + _MAX_PARAMS_PER_BATCH])

    def _log_metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric  # optional extra [tracking]

        now = int(time.time() * 1000)
        todo = [Metric(k, v, now, step) for k, v in values.items() if step not in self._mlflow_steps.get(k, ())]
        if todo:
            self.client.log_batch(self.run_id, metrics=todo)
            for metric in todo:
                self._mlflow_steps.setdefault(metric.key, set()).add(step)

    def _log_artifacts(self, out: Path, record: Any) -> None:
        for name in ("record.json", "config.yaml"):
            if (out / name).is_file():
                self.client.log_artifact(self.run_id, str(out / name))
        gallery = (record.artifacts or {}).get("gallery")
        if record.status != "ok" or not gallery or not (out / gallery).is_file():
            return
        from suite.gallery import gallery_figure, load_gallery  # matplotlib only when a run logs a gallery

        data = load_gallery(out / gallery)
        with tempfile.TemporaryDirectory(prefix="rcs-gallery-") as tmp:
            for i, name in enumerate(data["names"]):
                label = "anomalous" if int(data["labels"][i]) else "normal"
                stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(Path(str(name)).with_suffix("")))
                title = f"{self.trial_id}/{self.category}: {name} ({label}, score {float(data['scores'][i]):.3g})"
                gallery_figure(data, i, Path(tmp) / f"{i:02d}_{stem}.png", title)
            self.client.log_artifacts(self.run_id, tmp, artifact_path="gallery")

    def _close_mlflow(self, out: Path, record: Any, status: str) -> None:
        if self._run_finished:
            return
        end = RUN_STATUS.get(status, "FAILED")
        if end != "FINISHED":
            # A stopped trial's process may be ended a moment later (Tune waits ~2 s for it before
            # reusing or killing the actor): the end status first, the details after.
            self.client.set_terminated(self.run_id, end)
        if record is not None:
            self.client.set_tag(self.run_id, "status", record.status)
            if record.error:
                self.client.set_tag(self.run_id, "error", str(record.error)[:5000])
            self._log_metrics(final_metrics(record), 0)
            self._log_artifacts(out, record)
        if end == "FINISHED":
            self.client.set_terminated(self.run_id, end)
