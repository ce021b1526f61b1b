"""Declarative search spaces for ``run_suite.py sweep --space NAME``.

Each module defines ``SPACE`` (Optuna-sampled specs), ``GRID`` (full cross product) or ``CONFIGS``
(a list of override dicts), plus an optional ``BASE`` applied to every trial. They import neither
Ray, Optuna nor training code; ``suite.spaces.load_space`` reads and checks them.
"""
