"""The suite's own error types: expected failures, reported by the CLI as one ``error:`` line.

Every error the suite raises on purpose derives from ``SuiteError`` (the classes keep their
historic bases too, e.g. ``ConfigError`` is still a ``ValueError``):

- ``InputError`` (exit code 2): what the user gave is wrong: arguments, config keys and values,
  config files, search spaces (``ConfigError``, ``SpaceError``), dataset roots, categories and
  files (``DatasetError``, ``DatasetNotFoundError``). Fix the input and run again.
- any other ``SuiteError`` (exit code 1): a run failed while working, e.g. ``TrainingDiverged``,
  ``CheckpointError``, ``GalleryError``.

Anything else that escapes a command is a bug and keeps its traceback. This module imports nothing
from the suite, so every module may import it.
"""

from __future__ import annotations


class SuiteError(Exception):
    """Base of the suite's expected errors; the message alone explains the problem."""

    exit_code = 1  # the CLI's exit status for this error


class InputError(SuiteError):
    """The user's input (arguments, config, search space, dataset, a path given) is invalid."""

    exit_code = 2


class ConfigError(ValueError, InputError):
    """A configuration key or value is invalid; the message names it (a ``ValueError`` too, as it
    always was, so callers catching that keep working)."""


class PluginError(InputError):
    """A method plugin (entry point or module listed in ``RCSUITE_METHOD_MODULES``) failed to load."""


class TrainingDiverged(RuntimeError, SuiteError):
    """The loss became NaN or infinite. Defined here, not beside the training loop, so a sweep's trial
    coordinator can recognise a diverged record without importing torch (2.4 CPU-s per trial process)."""
