"""Where the time goes: the records' per-stage step breakdown (``step.<stage>.<field>`` columns of the
records frame, from ``record.step_breakdown``) averaged per configuration and stage.

Records of older versions have no breakdown; they add nothing, and without any breakdown there is no table.
"""

from __future__ import annotations

import math

import pandas as pd

from suite import aggregate as agg
from suite.reporting.table import Table, fmt, label_order, natural_key, pct

STAGE_ORDER = ("stage1", "stage2", "stage3", "eval")
PHASES = ("data_s", "inputs_s", "compute_s")
# Present only on CUDA: their cells stay blank where no record of the group measured them.
DEVICE_FIELDS = ("peak_allocated_mb", "peak_reserved_mb", "gpu_busy")
STATS_COLUMNS = ["label", "method", "stage", "records", "seconds", *(f"{p}_share" for p in PHASES), "images_per_s",
                 *DEVICE_FIELDS]


def _stage_key(stage: str) -> tuple[int, list]:
    return (STAGE_ORDER.index(stage), []) if stage in STAGE_ORDER else (len(STAGE_ORDER), natural_key(stage))


def step_breakdown_stats(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (configuration label, stage) that some ok record measured: ``records`` (how many),
    mean ``seconds``, the mean over records of each phase's share of the stage seconds
    (``data_s_share`` = mean of data_s / seconds; records with zero seconds skipped), mean
    ``images_per_s`` and the means of the CUDA-only fields (NaN where none measured them)."""
    ok = agg.ok_records(frame)
    columns = agg.breakdown_columns(ok)
    stages = sorted({stage for _, stage, _ in columns}, key=_stage_key)
    if ok.empty or not stages:
        return pd.DataFrame(columns=STATS_COLUMNS)
    order = {label: i for i, label in enumerate(label_order(ok))}
    out = []
    for stage in stages:
        def col(name: str, stage: str = stage) -> pd.Series:
            key = agg.breakdown_column(stage, name)
            return pd.to_numeric(ok[key], errors="coerce") if key in ok else pd.Series(math.nan, index=ok.index)

        seconds = col("seconds")
        measured = seconds.notna()
        if not measured.any():
            continue
        stepped = seconds.where(seconds > 0)
        part = pd.DataFrame({"label": ok["label"], "method": ok["method"], "seconds": seconds,
                             **{f"{p}_share": col(p) / stepped for p in PHASES},
                             "images_per_s": col("images_per_s"), **{f: col(f) for f in DEVICE_FIELDS}})[measured]
        for label, group in part.groupby("label", sort=False):
            out.append({"label": label, "method": group["method"].iloc[0], "stage": stage, "records": len(group),
                        **group.drop(columns=["label", "method"]).mean(skipna=True).to_dict()})
    out.sort(key=lambda r: (order.get(r["label"], len(order)), _stage_key(r["stage"])))
    return pd.DataFrame(out, columns=STATS_COLUMNS)


def _blank(value: float, digits: int) -> str:
    """A CUDA-only number, or an empty cell where it was not measured (a CPU run)."""
    return "" if value is None or math.isnan(value) else fmt(value, digits=digits)


def step_breakdown_table(frame: pd.DataFrame, footer: str = "") -> Table | None:
    """The "Where the time goes" table, or None when no ok record carries a step breakdown."""
    stats = step_breakdown_stats(frame)
    if stats.empty:
        return None
    rows = [
        [r["label"], r["stage"], str(int(r["records"])), fmt(r["seconds"]),
         *(fmt(pct(r[f"{p}_share"])) for p in PHASES), fmt(r["images_per_s"]),
         _blank(r["peak_allocated_mb"], 0), _blank(r["peak_reserved_mb"], 0), _blank(pct(r["gpu_busy"]), 0)]
        for _, r in stats.iterrows()
    ]
    return Table(
        name="step_breakdown",
        title="Where the time goes (step breakdown per stage)",
        header=["Configuration", "Stage", "Records", "Seconds", "Data (%)", "Inputs (%)", "Compute (%)", "Images/s",
                "Peak alloc. (MB)", "Peak reserved (MB)", "GPU busy (%)"],
        rows=rows,
        notes=["Mean over the ok records of a configuration (all categories and seeds) that carry a step breakdown; "
               "records of older versions have none and are left out. Data / Inputs / Compute: mean share of the "
               "stage's seconds spent waiting for batches / moving them to the device / in forward, backward and "
               "optimiser; the rest went to hooks between epochs and bookkeeping. On CUDA the phases are "
               "GPU-timeline intervals and host waits, which may overlap. Images/s: over the stage's stepping time. "
               "Peak memory and GPU busy: CUDA only, blank on the CPU."],
        footer=footer,
        numeric=stats,
    )
