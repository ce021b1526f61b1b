"""suite.weights: every tensor file is loaded with weights_only=True; a refusal is the suite's own
error naming the file, never torch's advice to turn the check off."""

import pathlib
import subprocess
import sys

import pytest
import torch

from suite.errors import InputError, SuiteError
from suite.weights import CheckpointError, WeightsFileError, load_tensors

REPO = pathlib.Path(__file__).resolve().parents[2]


class _Payload:
    """Unpickling this would create ``marker``: proof that a file's code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def _crafted(tmp_path: pathlib.Path, name: str = "evil.pth") -> tuple[pathlib.Path, pathlib.Path]:
    marker = tmp_path / "payload-ran"
    path = tmp_path / name
    torch.save({"conv1.weight": torch.zeros(1), "x": _Payload(str(marker))}, path)
    return path, marker


@pytest.mark.parametrize("user_given, cls", [(False, CheckpointError), (True, WeightsFileError)])
def test_a_refused_file_is_the_suites_error_naming_it(tmp_path, user_given, cls):
    path, marker = _crafted(tmp_path)
    with pytest.raises(cls) as info:
        load_tensors(path, "backbone weights file", user_given=user_given)
    message = str(info.value)
    assert str(path) in message and "may contain code" in message
    assert "weights_only" not in message and "False" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # torch's text is not chained
    assert not marker.exists()
    assert isinstance(info.value, SuiteError) and isinstance(info.value, RuntimeError)
    assert isinstance(info.value, InputError) == user_given and info.value.exit_code == (2 if user_given else 1)


def test_missing_empty_and_damaged_files_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere.pt.*does not exist"):
        load_tensors(tmp_path / "nowhere.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pt.*empty"):
        load_tensors(tmp_path / "empty.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pt was refused"):
        load_tensors(tmp_path / "garbage.pt")
    torch.save({"w": torch.ones(2)}, tmp_path / "ok.pt")
    assert torch.equal(load_tensors(tmp_path / "ok.pt")["w"], torch.ones(2))


def test_every_torch_load_in_the_suite_goes_through_the_helper():
    sites = [p for p in (REPO / "suite").rglob("*.py") if "torch.load(" in p.read_text() and p.name != "weights.py"]
    assert [p for p in sites if any("torch.load(" in line and not line.lstrip().startswith(("#", "weights", "``"))
                                    and "``" not in line for line in p.read_text().splitlines())] == []


@pytest.mark.slow
def test_cli_refuses_a_crafted_backbone_weights_file_in_one_line(tmp_path):
    path, marker = _crafted(tmp_path)
    result = subprocess.run(
        [sys.executable, str(REPO / "run_suite.py"), "train", "--dataset", "synthetic", "--category", "synth_object",
         "--preset", "tiny", "--out", str(tmp_path / "out"), "model.method=hfr", f"hfr.backbone_weights={path}",
         "hfr.pretrained=false"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(path) in errors[0] and "may contain code" in errors[0]
    assert "Traceback" not in result.stderr and "weights_only" not in result.stderr + result.stdout
    assert not marker.exists()
