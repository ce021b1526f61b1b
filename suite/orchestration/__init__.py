"""The Ray layer: the only part of the suite that imports Ray.

- ``env``: start a local Ray instance or join a cluster (``init_ray`` / ``shutdown_ray``).
- ``cluster``: describe the cluster's nodes, CPUs and GPUs.
- ``driver``: ``SweepOptions`` and ``run_sweep`` (Ray Tune + Optuna, ASHA, resume).
- ``trial``: ``run_sweep_trial``, the code that runs inside each Tune trial (``trial_plan.TrialPlan``;
  ``category_run``: one category's training, shared with the shard tasks).
- ``shards``: a trial's categories as concurrent Ray tasks; ``progress``: their matched reports.
- ``results``: records.csv, the per-trial table, Pareto sets, best trials (no Ray).
- ``optuna_search`` / ``optuna_storage``: Optuna on a persistent study (the storage part has no Ray).
- ``train_driver``: ``train_with_ray_train`` (Ray Train DDP for one trial and category).

Importing this package imports nothing heavy; each module that needs Ray imports it itself
(``results`` and ``optuna_storage`` never do). The search spaces are loaded by ``suite.spaces``.
"""
