"""The Ray layer: the only part of the suite that imports Ray.

- ``env``: start a local Ray instance or join a cluster (``init_ray`` / ``shutdown_ray``);
  ``cluster``: describe its nodes, CPUs and GPUs; ``plan_cluster``: its slots for ``plan --address``.
- ``driver``: ``run_sweep`` (Ray Tune + Optuna, ASHA, resume); ``sweep_options``: ``SweepOptions``,
  their checks, ``sweep.json`` and the watching set-up; ``callbacks``: Tune callbacks;
  ``studies``: per-category studies in one experiment.
- ``trial``: ``run_sweep_trial``, the code inside each Tune trial, given a ``trial_plan.TrialPlan``;
  ``category_run``: one category's training (tracker, record ending), shared with ``shards``
  (a trial's categories as concurrent Ray tasks, matched by ``progress``); ``train_driver``:
  ``train_with_ray_train`` (Ray Train DDP for one trial and category).
- ``pooled``: what a trial reports (no pandas); ``results``: records.csv, the trial table, Pareto
  sets, best trials.
- ``optuna_search`` / ``optuna_storage``: the Optuna searcher on a persistent study.
- ``temp_dirs`` / ``procs`` / ``tune_fixes``: what a killed sweep leaves behind.

Importing this package imports nothing heavy; each module that needs Ray imports it itself
(``results``, ``pooled``, ``sweep_options``, ``optuna_storage``, ``temp_dirs`` and ``procs`` never
do). The search spaces are loaded by ``suite.spaces``.
"""
