"""Names that say what they are: ``run_training`` trains one category (``run_trial`` stays only as an
alias for plugins); the registry lists method config sections as ``method_sections`` only."""

import re
from pathlib import Path

from suite import pipeline
from suite.methods import registry

SUITE = Path(pipeline.__file__).resolve().parent


def test_run_trial_is_the_same_object_as_run_training():
    assert pipeline.run_trial is pipeline.run_training
    assert pipeline.run_training.__name__ == "run_training"


def test_the_suite_uses_only_the_new_name():
    # The alias line in pipeline.py is the one place the old name may appear.
    old = re.compile(r"\brun_trial\b")
    users = []
    for path in sorted(SUITE.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if old.search(line) and line.strip() != "run_trial = run_training":
                users.append(f"{path.relative_to(SUITE)}:{number}: {line.strip()}")
    assert users == []


def test_the_registry_has_one_name_for_the_method_sections():
    # Nothing outside the suite used the older name, so no alias was kept.
    assert not hasattr(registry, "config_sections")
    assert "draem" in registry.method_sections()
