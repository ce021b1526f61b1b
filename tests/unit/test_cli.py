"""The CLI: every subcommand's --help, datasets listing, train on a tiny synthetic category."""

import subprocess
import sys
from pathlib import Path

import pytest

from suite.cli import build_parser, main, new_run_dir

REPO = Path(__file__).resolve().parents[2]
SUBCOMMANDS = ["datasets", "train", "sweep", "report", "demo", "bench"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "run_suite.py"), *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def test_top_level_help_lists_every_subcommand():
    result = run_cli("--help")
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([name, "--help"])
    assert exit_.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_datasets_lists_synthetic_categories(capsys):
    assert main(["datasets", "--dataset", "synthetic"]) == 0
    out = capsys.readouterr().out
    assert "synth_texture" in out and "synth_object" in out


def test_unknown_override_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--preset", "tiny", "--out", str(tmp_path), "model.detph=2"]) == 2
    assert "model.detph" in capsys.readouterr().err


def test_run_folders_are_never_overwritten(tmp_path):
    first = new_run_dir(tmp_path, "run")
    second = new_run_dir(tmp_path, "run")
    assert first != second and first.exists() and second.name == "run-2"


@pytest.mark.slow
def test_train_prints_metrics_and_where_the_record_went(tmp_path):
    result = run_cli("train", "--dataset", "synthetic", "--category", "synth_object", "--preset", "tiny",
                     "--out", str(tmp_path), "eval.cost=false")
    assert result.returncode == 0, result.stderr
    assert "i_auroc" in result.stdout and "record.json" in result.stdout
    assert len(list(tmp_path.rglob("record.json"))) == 1
