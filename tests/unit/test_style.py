"""House style the code review would otherwise have to catch: short modules, short lines."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 500
MAX_LINE_CHARS = 120
LINE_CHECKED = ("suite", "tests", "benchmarks", "search_spaces", "run_suite.py")


def _python_files(*roots: str) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        path = REPO / root
        files.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return files


def long_modules(files: list[Path], limit: int = MAX_MODULE_LINES) -> list[str]:
    return [f"{p.relative_to(REPO)} ({n} lines)" for p in files if (n := len(p.read_text().splitlines())) > limit]


def long_lines(files: list[Path], limit: int = MAX_LINE_CHARS) -> list[str]:
    return [f"{p.relative_to(REPO)}:{i} ({len(line)} chars)" for p in files
            for i, line in enumerate(p.read_text().splitlines(), 1) if len(line) > limit]


def test_no_module_in_suite_over_500_lines():
    offenders = long_modules(_python_files("suite"))
    assert not offenders, f"modules over {MAX_MODULE_LINES} lines (split them along their concerns): {offenders}"


def test_no_line_over_120_characters():
    offenders = long_lines(_python_files(*LINE_CHECKED))
    assert not offenders, f"lines over {MAX_LINE_CHARS} characters: {offenders}"


def test_the_checks_catch_what_they_claim(tmp_path):
    global REPO
    repo, REPO = REPO, tmp_path  # report paths relative to the temp folder
    try:
        short, long = tmp_path / "short.py", tmp_path / "long.py"
        short.write_text("x = 1\n" * 499 + "y" * 120 + "\n")
        long.write_text("x = 1\n" * 501 + "z" * 121 + "\n")
        assert long_modules([short, long]) == ["long.py (502 lines)"]
        assert long_lines([short, long]) == ["long.py:502 (121 chars)"]
    finally:
        REPO = repo


def _root_conftest(config):
    (conftest,) = [p for p in config.pluginmanager.get_plugins() if getattr(p, "__file__", "") ==
                   str(REPO / "tests" / "conftest.py")]
    return conftest


def test_the_ray_worker_gets_exactly_the_tests_marked_ray(request):
    """Under ``pytest -n N`` the scheduler in tests/conftest.py sends whole files to the one Ray worker:
    every test of those files must be marked ``ray`` and no test elsewhere may be (else two Ray
    instances run at once, or a Ray-free test waits behind the sweeps)."""
    ray_files = _root_conftest(request.config).ray_test_files()
    assert "tests/integration/test_ray_sweep.py" in ray_files and "tests/unit/test_style.py" not in ray_files
    for item in request.session.items:  # all of them in a full run
        in_ray_file = item.nodeid.split("::", 1)[0] in ray_files
        assert in_ray_file == (item.get_closest_marker("ray") is not None), item.nodeid
    # and statically, for a run that collected only some files: the mark is set per file, never per test
    decorated = [f"{p.relative_to(REPO)}:{i}" for p in (REPO / "tests").rglob("test_*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1) if line.strip().startswith("@pytest.mark.ray")]
    assert not decorated, f"mark whole files ray (pytestmark), not single tests: {decorated}"


def test_the_ray_scheduler_groups_by_file(request, tmp_path):
    conftest = _root_conftest(request.config)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("import pytest\npytestmark = [pytest.mark.ray]\n")
    (tmp_path / "tests" / "test_b.py").write_text("def test_b():\n    pass\n")
    assert {p.name for p in map(Path, conftest.ray_test_files(tmp_path / "tests", root=tmp_path))} == {"test_a.py"}
