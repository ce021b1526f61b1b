"""Names shared by the aggregate modules: splits, metrics, statuses, display names, the benchmark
datasets' category orders and the config keys that do not define a configuration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from suite.data.registry import dataset_names, dataset_spec, dataset_specs
from suite.methods.registry import display_name, method_specs
from suite.metrics import METRICS  # the metric names records carry

SPLITS = ("val", "test")
DIAG_FAMILIES = ("recon", "detail", "crd")
DIAG_PREFIX = "diag."
SCORING_PREFIX = "scoring."
SATURATION_THRESHOLD = 0.98  # a validation metric at or above this cannot tell configurations apart
FIDELITY_MIN_CONFIGURATIONS = 3
FIDELITY_WARN_BELOW = 0.5
COSTS = ("params", "gflops", "latency_ms", "latency_ms_batch", "throughput_ips", "peak_mem_mb")
STAGES = ("stage1", "stage2", "stage3")
STATUSES = ("ok", "failed", "stopped")

METRIC_NAMES = {
    "i_auroc": "I-AUROC",
    "p_auroc": "P-AUROC",
    "aupro": "AUPRO",
    "i_ap": "I-AP",
    "p_ap": "P-AP",
    "i_f1max": "I-F1max",
    "p_f1max": "P-F1max",
}


# Dataset display names, the benchmark datasets' order and their category orders (the papers'
# orders, textures first for MVTec AD) come from the dataset registry (suite.data.registry).
class _DatasetDisplayNames(Mapping[str, str]):
    """Read-only, live view ``dataset name -> display name`` of the registered datasets, so
    ``DATASET_NAMES.get(d, d)`` names any registered dataset and leaves others as they are."""

    def __getitem__(self, dataset: str) -> str:
        if dataset not in dataset_names():
            raise KeyError(dataset)
        return dataset_spec(dataset).display_name

    def __iter__(self):
        return iter(dataset_names())

    def __len__(self) -> int:
        return len(dataset_names())


DATASET_NAMES: Mapping[str, str] = _DatasetDisplayNames()


def benchmark_datasets() -> tuple[str, ...]:
    """The datasets reports order first (mvtec, visa), in registration order."""
    return tuple(spec.name for spec in dataset_specs() if spec.in_benchmark_tables)


def category_order(dataset: str) -> tuple[str, ...]:
    """The standard category order of a benchmark dataset; () for any other (sorted by name)."""
    if dataset not in benchmark_datasets():
        return ()
    return dataset_spec(dataset).categories


# Config keys that do not define a configuration: where the data lives, which category, seeds,
# devices and bookkeeping. Records differing only in these are the same configuration.
NON_CONFIG_KEYS = frozenset(
    {
        "data.root",
        "data.category",
        "data.dataset",
        "runtime.seed",
        "runtime.preset",
        "runtime.device",
        "runtime.num_workers",
        "runtime.cache_mb",
        "runtime.threads",
        "runtime.prefetch",
        "runtime.channels_last",
        "runtime.activation_checkpointing",
        "runtime.infer_mpx",
        "eval.save_maps",
        "eval.cost",
        "eval.scoring_variants",  # extra scorings / diagnostics are recorded beside the metrics,
        "eval.diagnostics",  # they never change them
        "eval.aupro",
        "eval.shifts",  # shifted test copies are scored beside the metrics (record.shifts)
        "train.checkpoint_every",
        "train.eval_every",
        "train.amp",
        "train.max_time_s",
        "pseudo.texture_root",
    }
)


def non_config_keys() -> frozenset[str]:
    """``NON_CONFIG_KEYS`` plus every registered method's path keys (where its files live)."""
    return NON_CONFIG_KEYS | {key for spec in method_specs() for key in spec.path_keys}


def method_display_name(method: Any) -> str:
    """A method's name in tables and plots (the registry's display name; unknown names as they are)."""
    return display_name(str(method))

# Order of config sections in a label: the model first, then what it is trained on.
def label_section_order() -> tuple[str, ...]:
    methods = tuple(s.config_section for s in method_specs() if s.config_section)
    return ("model", "augment", "data", *methods, "train", "eval", "runtime")
