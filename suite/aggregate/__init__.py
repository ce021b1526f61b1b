"""From stored ``TrialRecord`` JSON files to one flat table, and the statistics reports need.

Nothing here trains or imports torch / ray: every number comes from the record files, so a report
can be rebuilt on any machine from the run folders alone.

Vocabulary
- *record*: one ``TrialRecord`` (one trial on one category).
- *configuration*: the records' config minus the keys that do not change the model or its data
  (category, dataset root, seed, devices, bookkeeping); seeds of one configuration are averaged.
- *label*: a short name of a configuration, ``method`` plus the config keys that vary among the
  loaded records of that method, e.g. ``"rcae depth=3 coverage=0.5"``.
- *diagnostics* (record version 2): per-depth signal, flattened to columns
  ``diag.<split>.<family>.<step>.<metric>`` (family recon | detail | crd, step "1".."N" or "all").
- *scorings* (record version 2): the same model under several scoring variants, flattened to
  ``scoring.<variant>.<split>.<metric>`` (variant e.g. ``"auto|pixel"``). Older records lack both.
- *step breakdown*: where each stage's time went (``record.step_breakdown``), flattened to
  ``step.<stage>.<field>`` (stage stage1..3 | eval; field data_s, compute_s, images_per_s, ...).
- *shifts* (record version 6): test metrics under ``eval.shifts``, ``shift.<name>.<metric>``, and the
  data-shift check, ``data_shift.*`` (module ``shifts``).

Modules: ``names`` (splits, metrics, display names, non-configuration keys), ``loading`` (record
files through the schema), ``frame`` (one flat row per record), ``labels`` (configurations and the
standard orders), ``statistics`` (seed means, Pareto fronts, importance, missing results),
``fidelity`` (val vs test ranking) and ``uncertainty`` (bootstrap intervals, paired tests, seeds
needed). Every public name is importable from ``suite.aggregate`` itself.
"""

from __future__ import annotations

from suite.aggregate.names import (  # noqa: F401
    SPLITS,
    DIAG_FAMILIES,
    DIAG_PREFIX,
    SCORING_PREFIX,
    SATURATION_THRESHOLD,
    FIDELITY_MIN_CONFIGURATIONS,
    FIDELITY_WARN_BELOW,
    METRICS,
    COSTS,
    STAGES,
    STATUSES,
    METRIC_NAMES,
    DATASET_NAMES,
    benchmark_datasets,
    category_order,
    NON_CONFIG_KEYS,
    non_config_keys,
    method_display_name,
)
from suite.aggregate.shifts import (  # noqa: F401
    SHIFT_PREFIX,
    DATA_SHIFT_PREFIX,
    BRIGHTNESS_SPEARMAN,
    shift_column,
    shift_names,
    shift_row,
    headline_statistic,
    robustness_stats,
    data_shift_by_category,
)
from suite.aggregate.loading import (  # noqa: F401
    RecordSet,
    load_records,
)
from suite.aggregate.frame import (  # noqa: F401
    STEP_PREFIX,
    record_row,
    breakdown_column,
    breakdown_columns,
    diagnostic_column,
    scoring_column,
    diagnostic_columns,
    scoring_columns,
    step_sort_key,
    records_frame,
    frame_for_csv,
)
from suite.aggregate.labels import (  # noqa: F401
    config_columns,
    varying_keys,
    short_key_names,
    format_value,
    configuration_labels,
    dataset_sort_key,
    category_sort_key,
    ordered_categories,
)
from suite.aggregate.statistics import (  # noqa: F401
    ok_records,
    seed_stats,
    pareto_mask,
    pareto_front,
    spearman,
    numeric_config_value,
    parameter_importance,
    status_counts,
    missing_pairs,
    selection_column,
)
from suite.aggregate.fidelity import (  # noqa: F401
    configuration_means,
    selection_fidelity,
    fidelity_lines,
    fidelity_summary,
)
from suite.aggregate.cells import (  # noqa: F401
    EMPTY_CELL,
    CellStats,
    SeedValues,
    cell_stats,
    paired_test,
    seed_matrix,
    seed_values,
    separable,
)
from suite.aggregate.uncertainty import (  # noqa: F401
    ALPHA,
    EXACT_PAIRS,
    N_RESAMPLES,
    BOOTSTRAP_METHOD,
    TEST_METHOD,
    cell_mean,
    bootstrap_means,
    bootstrap_interval,
    sign_flip_test,
    paired_differences,
    pairs_needed,
    min_pairs,
    seeds_needed,
)

__all__ = [
    "SPLITS",
    "DIAG_FAMILIES",
    "DIAG_PREFIX",
    "SCORING_PREFIX",
    "SATURATION_THRESHOLD",
    "FIDELITY_MIN_CONFIGURATIONS",
    "FIDELITY_WARN_BELOW",
    "METRICS",
    "COSTS",
    "STAGES",
    "STATUSES",
    "METRIC_NAMES",
    "DATASET_NAMES",
    "benchmark_datasets",
    "category_order",
    "NON_CONFIG_KEYS",
    "non_config_keys",
    "method_display_name",
    "RecordSet",
    "load_records",
    "STEP_PREFIX",
    "record_row",
    "breakdown_column",
    "breakdown_columns",
    "diagnostic_column",
    "scoring_column",
    "diagnostic_columns",
    "scoring_columns",
    "step_sort_key",
    "records_frame",
    "frame_for_csv",
    "config_columns",
    "varying_keys",
    "short_key_names",
    "format_value",
    "configuration_labels",
    "dataset_sort_key",
    "category_sort_key",
    "ordered_categories",
    "ok_records",
    "seed_stats",
    "pareto_mask",
    "pareto_front",
    "spearman",
    "numeric_config_value",
    "parameter_importance",
    "status_counts",
    "missing_pairs",
    "selection_column",
    "configuration_means",
    "selection_fidelity",
    "fidelity_lines",
    "fidelity_summary",
    "EMPTY_CELL",
    "CellStats",
    "SeedValues",
    "cell_stats",
    "paired_test",
    "seed_matrix",
    "seed_values",
    "separable",
    "ALPHA",
    "EXACT_PAIRS",
    "N_RESAMPLES",
    "BOOTSTRAP_METHOD",
    "TEST_METHOD",
    "cell_mean",
    "bootstrap_means",
    "bootstrap_interval",
    "sign_flip_test",
    "paired_differences",
    "pairs_needed",
    "min_pairs",
    "seeds_needed",
]
