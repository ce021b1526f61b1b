"""Watching a sweep: MLflow runs, TensorBoard event files and a persistent Optuna study.

Everything here is off by default and imports nothing optional at import time: a sweep without
``--mlflow`` / ``--tensorboard`` / ``--optuna-storage`` writes nothing new and needs none of these
packages. MLflow and TensorBoard come with the optional extra ``[tracking]``
(``pip install -e ".[tracking]"``); ``require_packages`` names it when a flag is given without it.
No Ray: the sweep driver (``suite.orchestration.driver``) and the trial code
(``suite.orchestration.trial``) call into this module.

MLflow: the MLflow client inside the trial, not Ray's MLflow integration
------------------------------------------------------------------------
Each (trial, category) is one MLflow run, written by ``TrialTracker`` in the process that runs
the trial, through an explicit ``MlflowClient(tracking_uri)`` (never the global "fluent" state).
Ray's ``MLflowLoggerCallback`` / ``setup_mlflow`` were not used because:

- the callback logs one run per Tune trial from the driver: a pooled trial runs several
  categories one after another, and the callback neither splits nor nests runs (ray #19978);
- it keeps the trial -> run id map in the driver's memory, so a restarted driver or a retried
  trial starts a second run or reuses one with other values ("Changing param values is not
  allowed", ray #20473, #30649);
- it has ignored ``tracking_uri`` (ray #36257).

Instead a run is found again from the category's record folder, whose ``mlflow_run.json`` names it
(else by its tags: the sweep's experiment, ``trial``, ``category``, ``config_hash``): a retried
trial, a ``--resume``, and a category that had already finished all continue the run that exists.
Per-epoch values are logged once per (key, step): on reopening a run the steps it already holds are
read back and skipped, since a restart from a mid-stage checkpoint replays some epochs. Under DDP
(``--num-workers > 1``) the Ray Train workers never log: the trial process logs rank 0's record
(per-epoch history included) when the category ends, so a run has one writer (rank 0's results) and
the periodic values arrive per category, not live. The driver creates the experiment (named after
the sweep) before any trial starts, and closes the runs a trial left open when Tune ends it (an
ASHA-stopped trial's process is ended without waiting for it) and again at the end of the sweep
(``finish_sweep_runs``).

A run holds: params = the flattened config; metrics = ``<stage>/loss`` per epoch and
``<stage>/val_<metric>`` at each periodic validation (step = epoch of the stage), then the final
``val_*``, ``test_*``, ``cost_*`` and ``time_*`` values; artifacts = ``record.json``,
``config.yaml`` and ``gallery/*.png`` (heatmap figures of the gallery images); tags = ``sweep``,
``trial``, ``category``, ``git_commit`` (also ``mlflow.source.git.commit``), ``selection`` (the
model-selection split), ``config_hash``, ``method``, ``dataset``, ``status``.

The ``file:`` store is in maintenance mode in MLflow 3 and refuses to open unless
``MLFLOW_ALLOW_FILE_STORE=true``; a ``file:`` URI sets it for the processes of the sweep (set it
too for ``mlflow ui`` on such a folder). It writes files in place, so a hard kill can leave a
metric line cut short, which makes the run unreadable: ``repair_file_store`` fixes that when the
sweep resumes, when a retried trial reopens its run, and at the end of the sweep. SQLite stores
need SQLAlchemy and alembic, which Optuna already brings; their artifacts go to
``mlartifacts/<sweep>`` beside the database file. ``mlflow-skinny`` (the client without the UI) is
what the extra installs; ``mlflow ui`` needs the full ``mlflow`` package wherever the UI runs.

TensorBoard
-----------
With ``--tensorboard`` each (trial, category) writes event files with the same per-epoch scalars
(``torch.utils.tensorboard.SummaryWriter``, flushed every epoch) to
``<sweep>/tensorboard/<trial_id>/<category>/``; steps already present are skipped on a restart.
``tensorboard --logdir runs/sweeps/<name>`` shows them (next to Tune's own per-report event files
in ``tune-*/``, written when tensorboardX is installed); ``--logdir runs/sweeps/<name>/tensorboard``
shows only these.

Optuna storage
--------------
``--optuna-storage URL`` gives Ray's ``OptunaSearch`` a persistent storage (the documented way:
``OptunaSearch(storage=..., study_name=...)``), so the study outlives the sweep and ``--resume``
continues it. ``parse_optuna_storage`` accepts:

- ``sqlite:///path/study.db`` (or another SQLAlchemy URL): one machine. Only the sweep driver
  writes it (the sampler runs there), so SQLite's one-writer limit (optuna #820) is not hit;
- ``journal:///abs/path/study.log``, ``journal:relative/study.log`` or a plain file path: Optuna's
  ``JournalStorage`` on a journal file, for a shared filesystem on a cluster.

A hard kill can leave the journal's lock file behind (optuna #5921). Optuna 4+ breaks a lock
that has not moved for 30 s (``grace_period``); on top of that ``make_optuna_storage`` removes a
lock file older than ``STALE_LOCK_S`` before the sweep starts, since a live writer holds the lock
only for one append. ``optuna-dashboard <URL>`` opens the SQLite URL as given and a journal by
its file path (``dashboard_target``). At the end of a sweep ``write_optuna_importances`` stores
``optuna.importance.get_param_importances`` (fANOVA, seeded) per study in
``<sweep>/optuna_importances.json``, which the report reads next to the Spearman importances.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from suite.config import Config, ConfigError, flatten

EXTRA = "tracking"
INSTALL_HINT = 'pip install -e ".[tracking]"'
IMPORTANCES_NAME = "optuna_importances.json"
TENSORBOARD_DIR = "tensorboard"
STALE_LOCK_S = 60.0  # a journal lock file older than this is left over from a killed process
RUN_STATUS = {"ok": "FINISHED", "stopped": "KILLED", "failed": "FAILED"}
RUN_REF_NAME = "mlflow_run.json"  # in a category's record folder: the MLflow run it continues
_MAX_PARAMS_PER_BATCH = 100  # MLflow's log_batch limit
_MAX_PARAM_VALUE = 6000


# ----------------------------------------------------------------------------------------------
# options


def require_packages(*, mlflow: bool = False, tensorboard: bool = False) -> None:
    """Raise ``ConfigError`` naming the ``[tracking]`` extra when a requested backend is missing."""
    wanted = [("--mlflow", "mlflow", mlflow), ("--tensorboard", "tensorboard", tensorboard)]
    missing = [(flag, module) for flag, module, on in wanted if on and importlib.util.find_spec(module) is None]
    if missing:
        flags = " and ".join(flag for flag, _ in missing)
        modules = ", ".join(module for _, module in missing)
        raise ConfigError(
            f"{flags} needs the optional extra [{EXTRA}] (package {modules} is not installed): "
            f"{INSTALL_HINT} in the repository, or pip install 'rcsuite[{EXTRA}]'"
        )


def _sqlite_url(url: str, what: str) -> str:
    """``sqlite:///relative.db`` -> ``sqlite:////abs/relative.db``."""
    rest, sep, query = url[len("sqlite:///"):].partition("?")
    if not rest or rest == ":memory:":
        raise ConfigError(f"{what} {url!r}: an in-memory SQLite database cannot be shared; give a file path")
    path = Path(rest).expanduser()
    path = path if path.is_absolute() else path.resolve()
    return f"sqlite:///{path}" + (sep + query if query else "")


def normalize_mlflow_uri(uri: str) -> str:
    """An MLflow tracking URI with local paths made absolute (trials run in other processes).

    A plain folder path or ``file:`` URI -> ``file:///abs``; ``sqlite:///rel.db`` -> absolute;
    anything else (``http(s)://`` servers, ``databricks``, other databases) is kept as given.
    """
    uri = str(uri).strip()
    if not uri:
        raise ConfigError("--mlflow needs a tracking URI: a folder (file:PATH), sqlite:///PATH.db or http://HOST:PORT")
    if uri.startswith("sqlite:"):
        if not uri.startswith("sqlite:///"):
            raise ConfigError(f"--mlflow {uri!r}: SQLite URIs look like sqlite:///relative.db or sqlite:////abs.db")
        return _sqlite_url(uri, "--mlflow")
    if uri.startswith("file:") or "://" not in uri and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", uri):
        path = uri[len("file:"):] if uri.startswith("file:") else uri
        if path.startswith("//"):
            if not path.startswith("///"):
                raise ConfigError(f"--mlflow {uri!r}: a file URI on another host is not supported; use a local path")
            path = path[2:]
        return Path(path).expanduser().resolve().as_uri()
    return uri


def parse_optuna_storage(url: str) -> tuple[str, str]:
    """(kind, target) of an ``--optuna-storage`` value: ("rdb", absolute SQLAlchemy URL) or
    ("journal", absolute journal file path). See the module docstring for the accepted forms."""
    url = str(url).strip()
    if not url:
        raise ConfigError("--optuna-storage needs a URL: sqlite:///PATH.db or journal:///PATH.log")
    if url.startswith("journal:"):
        path = url[len("journal:"):]
        if path.startswith("//"):
            if not path.startswith("///"):
                raise ConfigError(f"--optuna-storage {url!r}: use journal:///abs/path.log or journal:relative/path.log")
            path = path[2:]
        if not path:
            raise ConfigError(f"--optuna-storage {url!r}: the journal needs a file path")
        return "journal", str(Path(path).expanduser().resolve())
    if url.startswith("sqlite:"):
        if not url.startswith("sqlite:///"):
            raise ConfigError(
                f"--optuna-storage {url!r}: SQLite URLs look like sqlite:///relative.db or sqlite:////abs.db"
            )
        return "rdb", _sqlite_url(url, "--optuna-storage")
    if "://" in url:
        if url.split("://", 1)[0].startswith("redis"):
            raise ConfigError(f"--optuna-storage {url!r}: Redis journals are not supported; use a journal file")
        return "rdb", url
    return "journal", str(Path(url).expanduser().resolve())


def storage_url(kind: str, target: str) -> str:
    """The canonical ``--optuna-storage`` spelling of a parsed storage (stored in sweep.json)."""
    return f"journal://{target}" if kind == "journal" else target


def dashboard_target(url: str) -> str:
    """What to pass to ``optuna-dashboard``: the SQLAlchemy URL, or the journal's file path."""
    kind, target = parse_optuna_storage(url)
    return target


def clear_stale_journal_lock(path: str | Path, older_than: float = STALE_LOCK_S) -> bool:
    """Remove ``<journal>.lock`` when it is older than ``older_than`` seconds (a killed writer's)."""
    lock = Path(f"{path}.lock")
    try:
        age = time.time() - os.lstat(lock).st_mtime
    except FileNotFoundError:
        return False
    if age <= older_than:
        return False
    moved = lock.with_name(f"{lock.name}.stale-{os.getpid()}")
    try:
        os.rename(lock, moved)
        os.unlink(moved)
    except FileNotFoundError:
        return False
    print(f"[optuna] removed a stale journal lock {lock} ({age:.0f}s old, left by a killed process)", flush=True)
    return True


def make_optuna_storage(url: str):
    """An Optuna storage object for an ``--optuna-storage`` value (a stale journal lock is cleared)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

    kind, target = parse_optuna_storage(url)
    if kind == "rdb":
        if target.startswith("sqlite:///"):
            Path(target[len("sqlite:///"):].partition("?")[0]).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.RDBStorage(target)
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    clear_stale_journal_lock(target)
    return optuna.storages.JournalStorage(JournalFileBackend(target, lock_obj=JournalFileSymlinkLock(target)))


def study_name_for(sweep: str, study: str) -> str:
    """The Optuna study of a sweep's Tune experiment: the sweep name (pooled) or ``<sweep>/<category>``."""
    return sweep if study == "pooled" else f"{sweep}/{study}"


def prepare_optuna_study(
    url: str, name: str, directions: list[str], metric_names: list[str], attrs: dict[str, Any], resume: bool,
    create: bool = True,
) -> None:
    """Create the study unless it exists; ``ConfigError`` when a new sweep's study name is taken.
    ``create=False`` only checks."""
    import optuna

    storage = make_optuna_storage(url)
    exists = name in optuna.study.get_all_study_names(storage)
    if exists and not resume:
        raise ConfigError(
            f"Optuna study '{name}' already exists in {url}; choose another --name (or --resume the sweep)"
        )
    if exists or not create:
        return
    study = optuna.create_study(storage=storage, study_name=name, directions=directions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(metric_names)
    for key, value in attrs.items():
        study.set_user_attr(key, value)


def fail_orphan_trials(study: Any, known_trial_ids: set[int], reason: str) -> list[int]:
    """Mark RUNNING trials of ``study`` that no live searcher knows as FAIL; returns their numbers.

    After a hard kill a trial asked from the storage after Tune's last snapshot exists only in the
    storage: nothing will ever finish it, and leaving it RUNNING would show a phantom trial.
    """
    from optuna.trial import TrialState

    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial._trial_id in known_trial_ids:
            continue
        study._storage.set_trial_user_attr(trial._trial_id, "orphaned", reason)
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        failed.append(trial.number)
    return failed


def write_optuna_importances(url: str, studies: list[tuple[str, list[str]]], path: str | Path) -> Path:
    """Parameter importances (fANOVA, seeded) of every study, one entry per objective, to ``path``.

    ``studies``: (study name, objective names). Only COMPLETE trials count (Optuna's default; a
    trial ASHA stopped is PRUNED); a study with fewer than two of them, or two values, gets an
    ``error`` instead of importances.
    """
    import optuna
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.trial import TrialState

    from suite.records import atomic_write_json

    storage = make_optuna_storage(url)
    entries = []
    for name, objectives in studies:
        study = optuna.load_study(study_name=name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        for index, objective in enumerate(objectives):
            entry: dict[str, Any] = {
                "study": name,
                "objective": objective,
                "direction": study.directions[index].name.lower(),
                "n_trials": len(trials),
                "n_complete": len(complete),
                "evaluator": "FanovaImportanceEvaluator(seed=0)",
                "importances": {},
            }
            target = (lambda t, i=index: t.values[i]) if len(objectives) > 1 else None
            distinct = {t.values[index] for t in complete if t.values}
            if len(complete) < 2 or len(distinct) < 2:
                # fANOVA would still answer (equal shares), which reads like a finding
                entry["error"] = (f"{len(complete)} complete trial(s) with {len(distinct)} distinct value(s): "
                                  "at least 2 of each are needed")
                entries.append(entry)
                continue
            try:
                importances = optuna.importance.get_param_importances(
                    study, evaluator=FanovaImportanceEvaluator(seed=0), target=target
                )
                entry["importances"] = {k: float(v) for k, v in importances.items()}
            except Exception as err:  # noqa: BLE001 - too few trials, a single value, ...: say why
                entry["error"] = f"{type(err).__name__}: {err}"
            entries.append(entry)
    path = Path(path)
    atomic_write_json(path, {"storage": url, "written": time.time(), "studies": entries})
    return path


# ----------------------------------------------------------------------------------------------
# MLflow and TensorBoard


@dataclass(frozen=True)
class TrackingSpec:
    """What a trial logs to (picklable: it travels to the trial processes in the ``TrialPlan``)."""

    sweep: str
    select_on: str = "val"
    mlflow_uri: str | None = None
    mlflow_experiment_id: str | None = None
    tensorboard_dir: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.mlflow_uri or self.tensorboard_dir)


def mlflow_client(uri: str):
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # see the module docstring
    from mlflow.tracking import MlflowClient

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
    import yaml
    from mlflow.utils.file_utils import local_file_uri_to_path

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


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def epoch_scalars(entry: dict[str, Any]) -> tuple[int, dict[str, float]] | None:
    """(step, {tag: value}) of a ``record.history`` epoch entry: ``<stage>/loss``, ``<stage>/val_*``.

    The stage comes first: MLflow's file store keeps a metric per file, so ``val_i_auroc/stage1``
    would collide with the final ``val_i_auroc``."""
    stage, epoch = entry.get("stage"), entry.get("epoch")
    if not isinstance(stage, str) or isinstance(epoch, bool) or not isinstance(epoch, int):
        return None
    values = {}
    for key, value in entry.items():
        if key != "loss" and not key.startswith("val_"):
            continue  # stage, epoch, iteration; a Tune result kept by RecordGaps has many more
        number = _number(value)
        if number is not None:
            values[f"{stage}/{key}"] = number
    return epoch, values


def final_metrics(record: Any) -> dict[str, float]:
    """The final values of a record: ``<split>_<metric>``, ``cost_<key>``, ``time_<stage>``."""
    out: dict[str, float] = {}
    for split, values in (record.metrics or {}).items():
        for key, value in values.items():
            if (number := _number(value)) is not None:
                out[f"{split}_{key}"] = number
    for prefix, values in (("cost", record.cost or {}), ("time", record.stage_times or {})):
        for key, value in values.items():
            if (number := _number(value)) is not None:
                out[f"{prefix}_{key}"] = number
    return out


def _tensorboard_steps(folder: Path) -> dict[str, set[int]]:
    """Steps per scalar tag already in the event files of ``folder``."""
    if not any(folder.glob("events.out.tfevents.*")):
        return {}
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={SCALARS: 0})
    acc.Reload()
    return {tag: {e.step for e in acc.Scalars(tag)} for tag in acc.Tags().get("scalars", [])}


class TrialTracker:
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

    # --- MLflow

    def _tags(self) -> dict[str, str]:
        from suite.records import code_versions

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
        from mlflow.entities import Param

        from suite.records import atomic_write_json

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
        from mlflow.entities import Metric

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

    # --- TensorBoard

    def _open_tensorboard(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        folder = Path(self.spec.tensorboard_dir) / self.trial_id / self.category
        folder.mkdir(parents=True, exist_ok=True)
        self._tb_steps = _tensorboard_steps(folder)
        self._writer = SummaryWriter(log_dir=str(folder), flush_secs=30)

    def _write_scalars(self, values: dict[str, float], step: int) -> None:
        wrote = False
        for tag, value in values.items():
            if step in self._tb_steps.get(tag, ()):
                continue
            self._writer.add_scalar(tag, value, step)
            self._tb_steps.setdefault(tag, set()).add(step)
            wrote = True
        if wrote:
            self._writer.flush()  # a killed trial keeps what it wrote; a retry does not replay it

    def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass

    # --- public

    def epoch(self, entry: dict[str, Any]) -> None:
        """One ``record.history`` entry (``run_trial``'s ``on_epoch``): the per-epoch scalars."""
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
        from suite.records import RECORD_NAME, read_record

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
    from suite.config import load_yaml

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
