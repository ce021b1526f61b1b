# The two commands of the README:  `make demo`  and  `make test`.
# Both create .venv (once; again when pyproject.toml changes) and install the suite into it.
PYTHON ?= python3
VENV ?= .venv
# TORCH_SPEC goes into the same pip command as the suite: the resolver then keeps to it, so a CPU wheel that
# lies on disk is used instead of a multi-GB CUDA download (one command instead of two: 23 s against 27 s,
# 2026-12-07).
# --no-compile: pip would byte-compile every installed module (all of torch, Ray, MLflow, pandas), most of
# which no test imports; the modules that are imported are compiled once, on first import (2026-12-06:
# the install took 53 instead of 122 CPU-seconds).
# A current pip goes into the venv first: the pip bundled with Python 3.11 (23.2) spends about 20 CPU-s
# resolving this project's dependencies (it matches every file of every index page against the platform
# tags), a current pip about 8 (2026-12-07: the whole set-up 49-50 s before, 35-37 s after). The venv is
# made without pip, and the interpreter's own pip installs (or upgrades) the current one in it (`pip --python`,
# pip 22.3 or later): 2.7 s against 5.4 s for ensurepip plus an upgrade. Without a usable pip outside: the
# venv's own pip (ensurepip where it has none), upgraded.
# Override for a CUDA machine, e.g. `make test TORCH_SPEC='torch==2.14.1'`.
TORCH_SPEC ?= torch>=2.2,<2.14
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rcsuite-installed
PYTEST_ARGS ?=
# Test processes (pytest-xdist; 0 = one process). Two by default: the Ray test files run in two lanes,
# one per worker, and the other tests fill the gaps (the scheduler is in tests/conftest.py). On 2 cores
# pytest took 377-393 s this way against 620-634 s in one process (2026-12-06; 479-595 s on a slower VM): CPU-bound.
TEST_WORKERS ?= 2

export RAY_USAGE_STATS_ENABLED ?= 0
# Bytecode is written (into the git-ignored __pycache__ folders) even where the shell says not to: every
# Ray worker and CLI subprocess of the tests imports the suite, and compiling it again costs each 0.4-0.7 s
# of CPU on a run that is CPU-bound (2026-12-06).
export PYTHONDONTWRITEBYTECODE :=

.PHONY: setup demo test test-quick bench clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv --without-pip $(VENV)
	$(PYTHON) -m pip --python $(PY) install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1 \
	  || { $(PY) -m pip --version >/dev/null 2>&1 || $(PY) -m ensurepip --default-pip >/dev/null; \
	       $(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip \
	         || echo "setup: could not upgrade pip; going on with $$($(PY) -m pip --version)" >&2; }
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile "$(TORCH_SPEC)" -e ".[dev,tracking]"
	@touch $(STAMP)

# Main job: built-in synthetic categories, local Ray, cpu-sized settings; prints where the report is.
demo: setup
	$(PY) run_suite.py demo

# Full test suite (CI runs exactly this through .ci/run); the 20 slowest tests are listed at the end,
# so a test that eats the time budget shows up in the CI log.
test: setup
	$(PY) -m pytest -n $(TEST_WORKERS) --durations=20 $(PYTEST_ARGS)

# Quick subset while working: everything not marked slow (no Ray sweeps, no subprocess interpreters).
test-quick: setup
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/metrics_speed.py
	$(PY) benchmarks/batched_recursion.py

clean-venv:
	rm -rf $(VENV)
