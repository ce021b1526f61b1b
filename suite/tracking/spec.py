"""What a sweep watches with and the values it logs: the ``--mlflow`` / ``--tensorboard`` options,
``TrackingSpec`` (picklable, it travels to the trial processes) and the scalars of an epoch entry
or a finished record. No optional package is imported here.
"""

from __future__ import annotations

import importlib.util
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suite.config import ConfigError

EXTRA = "tracking"
INSTALL_HINT = 'pip install -e ".[tracking]"'
TENSORBOARD_DIR = "tensorboard"


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


def absolute_sqlite_url(url: str, what: str) -> str:
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
        return absolute_sqlite_url(uri, "--mlflow")
    if uri.startswith("file:") or "://" not in uri and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", uri):
        path = uri[len("file:"):] if uri.startswith("file:") else uri
        if path.startswith("//"):
            if not path.startswith("///"):
                raise ConfigError(f"--mlflow {uri!r}: a file URI on another host is not supported; use a local path")
            path = path[2:]
        return Path(path).expanduser().resolve().as_uri()
    return uri


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


def finite_number(value: Any) -> float | None:
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
        number = finite_number(value)
        if number is not None:
            values[f"{stage}/{key}"] = number
    return epoch, values


def final_metrics(record: Any) -> dict[str, float]:
    """The final values of a record: ``<split>_<metric>``, ``cost_<key>``, ``time_<stage>``."""
    out: dict[str, float] = {}
    for split, values in (record.metrics or {}).items():
        for key, value in values.items():
            if (number := finite_number(value)) is not None:
                out[f"{split}_{key}"] = number
    for prefix, values in (("cost", record.cost or {}), ("time", record.stage_times or {})):
        for key, value in values.items():
            if (number := finite_number(value)) is not None:
                out[f"{prefix}_{key}"] = number
    return out
