"""A persistent Optuna study for a sweep (``--optuna-storage URL``), next to the Optuna search.

``OptunaSearch(storage=..., study_name=...)`` on this storage lets the study outlive the sweep, so
``--resume`` continues it. ``parse_optuna_storage`` accepts ``sqlite:///path/study.db`` (or another
SQLAlchemy URL; only the driver writes it, so SQLite's one-writer limit, optuna #820, is not hit),
and ``journal:///abs/path/study.log``, ``journal:relative/study.log`` or a plain file path (Optuna's
``JournalStorage``, for a shared filesystem on a cluster).

A hard kill can leave the journal's lock file behind (optuna #5921): besides Optuna's own 30 s
grace period, ``make_optuna_storage`` removes a lock older than ``STALE_LOCK_S`` first (a live writer
holds it only for one append). ``optuna-dashboard`` opens the SQLite URL as given and a journal by
its path (``dashboard_target``). ``write_optuna_importances`` stores fANOVA importances (seeded) per
study in ``<sweep>/optuna_importances.json``, which the report reads. No Ray here.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.importance import FanovaImportanceEvaluator
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import TrialState

from suite.config import ConfigError
from suite.records import atomic_write_json
from suite.tracking.spec import absolute_sqlite_url

IMPORTANCES_NAME = "optuna_importances.json"
STALE_LOCK_S = 60.0  # a journal lock file older than this is left over from a killed process


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
        return "rdb", absolute_sqlite_url(url, "--optuna-storage")
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
