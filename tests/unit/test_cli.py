"""The CLI: every subcommand's --help, datasets listing, train on a tiny synthetic category."""

import subprocess
import sys
from pathlib import Path

import pytest

from suite.cli import build_parser, main, new_run_dir

REPO = Path(__file__).resolve().parents[2]
SUBCOMMANDS = ["datasets", "train", "sweep", "plan", "report", "demo", "bench"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "run_suite.py"), *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


@pytest.mark.slow  # CLI subprocesses (a fresh interpreter each)
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
                     "--out", str(tmp_path), "eval.cost=false", "runtime.threads=1")  # see conftest: 1 thread
    assert result.returncode == 0, result.stderr
    assert "i_auroc" in result.stdout and "record.json" in result.stdout
    assert len(list(tmp_path.rglob("record.json"))) == 1
    assert "[train] done in" in result.stderr and "error:" not in result.stderr


# ----------------------------------------------------------------------------------------------
# errors: one "error:" line, a non-zero exit code, no traceback, nothing written, no "done"


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_refused(result: subprocess.CompletedProcess, *needles: str, code: int = 2) -> str:
    """The command ended as a clean user error; returns its one error line."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert "done in" not in result.stderr + result.stdout
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.mark.parametrize(
    "case",
    ["unknown_category", "missing_root", "nonexistent_root", "category_not_under_root"],
)
@pytest.mark.slow  # CLI subprocesses (a fresh interpreter each)
def test_train_refuses_bad_data_before_writing_anything(tmp_path, case):
    empty_root = tmp_path / "mvtec"
    empty_root.mkdir()
    out = tmp_path / "out"
    args, needles = {
        "unknown_category": (["--root", str(empty_root), "--category", "botle"], ["'botle'", "bottle, cable"]),
        "missing_root": (["--category", "bottle"], ["data.root", "mvtec"]),
        "nonexistent_root": (["--root", str(tmp_path / "nope"), "--category", "bottle"],
                             [str(tmp_path / "nope"), "does not exist"]),
        "category_not_under_root": (["--root", str(empty_root), "--category", "bottle"],
                                    [str(empty_root / "bottle"), "does not exist"]),
    }[case]
    result = run_cli("train", "--dataset", "mvtec", *args, "--out", str(out))
    assert_refused(result, *needles)
    assert not out.exists()


@pytest.mark.slow  # CLI subprocesses (a fresh interpreter each)
def test_train_refuses_unknown_synthetic_category(tmp_path):
    out = tmp_path / "out"
    assert_refused(run_cli("train", "--category", "synth_nothing", "--out", str(out)), "synth_nothing", "synth_texture")
    assert not out.exists()


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--space", "no_such_space"], ["no_such_space", "demo"]),
        (["--space", "demo", "--categories", "synth_texture,botle"], ["'botle'", "synth_object"]),
    ],
)
@pytest.mark.slow  # CLI subprocesses (a fresh interpreter each)
def test_sweep_refuses_bad_space_or_category_before_writing_anything(tmp_path, args, needles):
    storage = tmp_path / "sweeps"
    result = run_cli("sweep", *args, "--storage", str(storage), "--preset", "tiny")
    assert_refused(result, *needles)
    assert not storage.exists()


@pytest.mark.slow  # CLI subprocesses (a fresh interpreter each)
def test_config_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  detph: 2\n")
    assert_refused(run_cli("train", "--config", str(bad), "--out", str(tmp_path / "out")), str(bad), "model.detph")
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing set yet\n")
    assert_refused(run_cli("train", "--config", str(empty), "--out", str(tmp_path / "out")),
                   f"config file {empty} is empty")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # CLI subprocesses (a fresh interpreter each)
def test_report_refuses_a_missing_run_dir(tmp_path):
    out = tmp_path / "report"
    assert_refused(run_cli("report", str(tmp_path / "no_runs"), "--out", str(out)), str(tmp_path / "no_runs"))
    assert not out.exists()


@pytest.mark.slow  # CLI subprocesses (a fresh interpreter each)
def test_out_that_is_a_file_is_refused(tmp_path):
    afile = tmp_path / "taken"
    afile.write_text("x")
    assert_refused(run_cli("train", "--preset", "tiny", "--out", str(afile)), str(afile), "not a folder")


@pytest.mark.slow  # CLI subprocesses (a fresh interpreter each)
@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback_with_the_same_exit_code(tmp_path, where):
    args = ["train", "--category", "synth_nothing", "--out", str(tmp_path / "out")]
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    result = run_cli(*args)
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "DatasetError" in result.stderr
    assert len(error_lines(result.stderr)) == 1 and "done in" not in result.stderr


def test_suite_errors_share_a_base_and_keep_their_old_bases():
    from suite.config import ConfigError
    from suite.data import DatasetError, DatasetNotFoundError
    from suite.errors import InputError, SuiteError
    from suite.spaces import SpaceError
    from suite.reporting.gallery import GalleryError
    from suite.training import CheckpointError, TrainingDiverged

    for cls, old_base in [(ConfigError, ValueError), (SpaceError, ConfigError), (DatasetError, ValueError),
                          (DatasetNotFoundError, FileNotFoundError), (GalleryError, ValueError),
                          (CheckpointError, RuntimeError), (TrainingDiverged, RuntimeError)]:
        assert issubclass(cls, SuiteError) and issubclass(cls, old_base), cls
    for cls in (ConfigError, SpaceError, DatasetError, DatasetNotFoundError):
        assert issubclass(cls, InputError) and cls("x").exit_code == 2
    for cls in (GalleryError, CheckpointError, TrainingDiverged):
        assert not issubclass(cls, InputError) and cls("x").exit_code == 1


def _train_raising(monkeypatch, err: BaseException) -> None:
    def cmd_train(args):
        print("[train] working")
        raise err

    monkeypatch.setattr("suite.cli.cmd_train", cmd_train)


def test_a_runtime_failure_exits_1_with_one_line_and_no_done(tmp_path, monkeypatch, capsys):
    from suite.training import TrainingDiverged

    _train_raising(monkeypatch, TrainingDiverged("stage 1: loss is nan at epoch 3"))
    assert main(["train", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert error_lines(err) == ["error: stage 1: loss is nan at epoch 3"]
    assert "[train] failed after" in err and "done in" not in err and "Traceback" not in err


def test_an_os_error_on_a_user_path_is_one_line_but_elsewhere_a_bug(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    _train_raising(monkeypatch, PermissionError(13, "Permission denied", str(out / "run" / "record.json")))
    assert main(["train", "--out", str(out)]) == 1
    assert error_lines(capsys.readouterr().err) == [f"error: Permission denied: {out / 'run' / 'record.json'}"]

    _train_raising(monkeypatch, PermissionError(13, "Permission denied", str(tmp_path / "elsewhere")))
    with pytest.raises(PermissionError):
        main(["train", "--out", str(out)])
    assert "done in" not in capsys.readouterr().err


def test_a_bug_keeps_its_traceback_and_success_says_done(tmp_path, monkeypatch, capsys):
    _train_raising(monkeypatch, KeyError("oops"))
    with pytest.raises(KeyError):
        main(["train", "--out", str(tmp_path)])
    assert "done in" not in capsys.readouterr().err

    monkeypatch.setattr("suite.cli.cmd_train", lambda args: 0)
    assert main(["train", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "[train] done in" in err and "error:" not in err


def _fake_plan_records(storage, space_file, categories, peak_mb=None):
    """Records of every (config, category) the plan will look up, as an earlier sweep left them."""
    from suite.config import build_config
    from suite.spaces import check_space, load_space
    from suite.planning import training_config
    from suite.records import TrialRecord, write_record

    space = load_space(str(space_file))
    base = check_space(space, build_config(preset="tiny", base={"data": {"category": categories[0]}}))
    for i, point in enumerate(space.points):
        for cat in categories:
            cfg = training_config(base, point, cat)
            rec = TrialRecord(config=cfg.to_dict(), config_hash=cfg.hash(), dataset="synthetic", category=cat,
                              method="rcae", stage_times={"data": 1.0, "stage1": 4.0, "stage2": 1.0,
                                                          "stage3": 1.0, "eval": 2.0, "total": 9.0},
                              started=0.0, finished=10.0,
                              cost={"train_peak_cuda_mb": peak_mb} if peak_mb else {})
            write_record(rec, storage / "old" / "records" / f"t{i}" / cat / "record.json")


def test_plan_json_from_records_trains_nothing(tmp_path, capsys, monkeypatch):
    import json

    from suite.planning import calibration

    monkeypatch.setattr(calibration, "calibrate_many", lambda *a, **k: pytest.fail("plan calibrated despite records"))
    space = tmp_path / "two.py"
    space.write_text('CONFIGS = [{"model.depth": 1}, {"model.depth": 2}]\n')
    storage = tmp_path / "sweeps"
    cats = ["synth_texture", "synth_object"]
    _fake_plan_records(storage, space, cats)
    before = sorted(p for p in tmp_path.rglob("*"))
    assert main(["plan", "--space", str(space), "--preset", "tiny", "--categories", ",".join(cats),
                 "--storage", str(storage), "--slots", "2", "--json", "--sweep-start-s", "5"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["trainings"] == 4 and plan["slots"] == 2
    assert plan["timing_source"].startswith("records")
    # tiny: stage1 2 epochs -> 2 s/epoch; each training 10 s busy = 1 + 8... (+1 s trial start)
    assert plan["per_epoch_s"]["stage1"] == pytest.approx(2.0)
    for key in ("predicted_wall_s", "utilisation", "trainings", "cpu_hours", "gpu_hours", "per_epoch_s"):
        assert key in plan
    assert plan["predicted_wall_s"] > 5.0 and 0 < plan["utilisation"] <= 1.0
    assert sorted(p for p in tmp_path.rglob("*")) == before  # a plan writes nothing


def test_plan_table_is_readable(tmp_path, capsys, monkeypatch):
    from suite.planning import calibration

    monkeypatch.setattr(calibration, "calibrate_many", lambda *a, **k: pytest.fail("plan calibrated despite records"))
    space = tmp_path / "two.py"
    space.write_text('CONFIGS = [{"model.depth": 1}, {"model.depth": 2}]\n')
    storage = tmp_path / "sweeps"
    _fake_plan_records(storage, space, ["synth_texture"])
    assert main(["plan", "--space", str(space), "--preset", "tiny", "--category", "synth_texture",
                 "--storage", str(storage), "--slots", "1"]) == 0
    out = capsys.readouterr().out
    for needle in ("trainings", "per-epoch seconds", "CPU-hours", "predicted wall", "utilisation", "ASHA"):
        assert needle in out


PLAN_NUMBERS = ("predicted_wall_s", "makespan_s", "utilisation", "trainings", "cpu_hours", "gpu_hours", "per_epoch_s",
                "training_s", "slots", "gpus_per_slot", "busy_slot_s")


def test_plan_from_a_timings_file_reproduces_the_plan_elsewhere(tmp_path, capsys, monkeypatch):
    """--save-timings on the machine with the records, --timings FILE on one with nothing: same numbers."""
    import json

    from suite.planning import calibration

    monkeypatch.setattr(calibration, "calibrate_many", lambda *a, **k: pytest.fail("plan calibrated"))
    space = tmp_path / "two.py"
    space.write_text('CONFIGS = [{"model.depth": 1}, {"model.depth": 2}]\n')
    cats = ["synth_texture", "synth_object"]
    here, elsewhere, saved = tmp_path / "gpu_machine", tmp_path / "laptop", tmp_path / "timings.json"
    _fake_plan_records(here, space, cats, peak_mb=3000.0)
    args = ["plan", "--space", str(space), "--preset", "tiny", "--categories", ",".join(cats), "--slots", "3",
            "--gpus-per-trial", "0.5", "--gpu-memory-gb", "24", "--json", "--trials", "2"]
    assert main([*args, "--storage", str(here), "--save-timings", str(saved)]) == 0
    first = json.loads(capsys.readouterr().out)
    doc = json.loads(saved.read_text())
    assert doc["format"] == "rcsuite-timings" and len(doc["entries"]) == 4
    assert main([*args, "--storage", str(elsewhere), "--timings", str(saved)]) == 0
    second = json.loads(capsys.readouterr().out)
    assert {k: second[k] for k in PLAN_NUMBERS} == {k: first[k] for k in PLAN_NUMBERS}
    assert first["gpus_per_slot"] == 0.5 and first["gpu_hours"] == pytest.approx(first["cpu_hours"] / 2)
    assert second["gpu_memory"]["peak_gpu_mb"] == 3000.0 and second["gpu_memory"]["trainings_per_gpu"] == 2
    # a changed timing changes the plan (the file is what the numbers come from)
    doc["entries"][0]["per_epoch_s"]["stage1"] *= 10
    saved.write_text(json.dumps(doc))
    assert main([*args, "--storage", str(elsewhere), "--timings", str(saved)]) == 0
    assert json.loads(capsys.readouterr().out)["predicted_wall_s"] > first["predicted_wall_s"]


def test_plan_refuses_a_gpu_fraction_whose_memory_does_not_fit(tmp_path, capsys, monkeypatch):
    from suite.planning import calibration

    monkeypatch.setattr(calibration, "calibrate_many", lambda *a, **k: pytest.fail("plan calibrated"))
    space = tmp_path / "one.py"
    space.write_text('CONFIGS = [{"model.depth": 2}]\n')
    storage = tmp_path / "sweeps"
    _fake_plan_records(storage, space, ["synth_texture"], peak_mb=9 * 1024.0)
    args = ["plan", "--space", str(space), "--preset", "tiny", "--category", "synth_texture", "--storage",
            str(storage), "--slots", "8", "--gpu-memory-gb", "24"]
    assert main([*args, "--gpus-per-trial", "0.25"]) == 2
    err = capsys.readouterr().err
    assert "4 training(s) on one GPU of 24.0 GiB" in err and "9.0 GiB" in err and "36.0 GiB > 24.0 GiB" in err
    assert "smallest --gpus-per-trial that fits is 0.5" in err
    assert main([*args, "--gpus-per-trial", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "slots               8 (shards, 0.5 GPU each" in out
    args[args.index("--slots"):args.index("--slots") + 2] = ["--gpus", "8"]
    assert main([*args, "--gpus-per-trial", "0.5"]) == 0
    assert "slots               16 (shards, 0.5 GPU each" in capsys.readouterr().out
    assert "GPU memory" in out and "2 training(s) per GPU x 9.0 GiB peak = 18.0 of 24.0 GiB" in out
