"""The Ray layer: the only part of the suite that imports Ray.

- ``env``: start a local Ray instance or join a cluster (``init_ray`` / ``shutdown_ray``).
- ``cluster``: describe the cluster's nodes, CPUs and GPUs.
- ``spaces``: load and check the declarative search spaces in ``search_spaces/`` (no Ray).
- ``driver``: ``SweepOptions`` and ``run_sweep`` (Ray Tune + Optuna, ASHA, resume).
- ``trial``: ``TrialPlan`` and ``run_sweep_trial``, the code that runs inside each Tune trial.
- ``results``: records.csv, the per-trial table, Pareto sets, best trials (no Ray).
- ``train_driver``: ``train_with_ray_train`` (Ray Train DDP for one trial and category).

Importing this package imports nothing heavy; each module that needs Ray imports it itself
(``spaces`` and ``results`` never do).
"""
