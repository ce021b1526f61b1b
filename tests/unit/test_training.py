"""suite/training.py: learning-rate schedules and per-stage generators."""

import math

import torch
from torch import nn

from suite.config import StageConfig
from suite.training import stage_generator, train_stage


class Scalar(nn.Module):
    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(1))


def steps_taken(schedule: str, epochs: int = 4) -> list[float]:
    """One batch per epoch and a constant gradient of 1: Adam moves p by about lr each step, so the
    step sizes trace the learning rate."""
    model, values = Scalar(), []

    def loss_fn(m, batch, g):
        return m.p.sum()

    train_stage("s", model, loss_fn, torch.zeros(4, 1), StageConfig(epochs=epochs, lr=0.1, batch_size=4),
                device=torch.device("cpu"), generator=torch.Generator().manual_seed(0), lr_schedule=schedule,
                on_epoch_end=lambda e, l: values.append(model.p.item()), log=lambda s: None)
    return [a - b for a, b in zip([0.0] + values[:-1], values)]


def test_cosine_schedule_decays_from_lr_to_zero_and_constant_does_not():
    cosine, constant = steps_taken("cosine"), steps_taken("constant")
    expected = [0.1 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert all(abs(c - 0.1) < 1e-4 for c in constant)
    assert all(abs(c - e) < 1e-4 for c, e in zip(cosine, expected)), (cosine, expected)


def test_stage_generators_depend_on_seed_and_stage_only():
    a = torch.rand(3, generator=stage_generator(0, "stage2"))
    assert torch.equal(a, torch.rand(3, generator=stage_generator(0, "stage2")))
    assert not torch.equal(a, torch.rand(3, generator=stage_generator(0, "stage3")))
    assert not torch.equal(a, torch.rand(3, generator=stage_generator(1, "stage2")))


class _Payload:
    """Unpickling this calls ``marker.touch()``: a stand-in for code a crafted checkpoint runs."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_checkpoints_load_as_data_only_and_a_pickle_payload_never_runs(tmp_path):
    import pytest

    from suite.training import CheckpointError, load_checkpoint

    marker = tmp_path / "payload-ran"
    torch.save({"model": {}, "evil": _Payload(str(marker))}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()
    # A genuine stage checkpoint (state dicts, generator state, config, versions) still loads.
    model = Scalar()
    train_stage("s", model, lambda m, b, g: m.p.sum(), torch.zeros(2, 1), StageConfig(epochs=1, batch_size=2),
                device=torch.device("cpu"), generator=torch.Generator().manual_seed(0),
                checkpoint_path=tmp_path / "ok.pt", config_dict={"a": [1, 2.0, None, "x"]}, log=lambda s: None)
    state = load_checkpoint(tmp_path / "ok.pt")
    assert state["completed"] and state["config"] == {"a": [1, 2.0, None, "x"]}


def test_damaged_checkpoints_get_a_named_error(tmp_path):
    import pytest

    from suite.training import CheckpointError, load_checkpoint

    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pt is empty"):
        load_checkpoint(tmp_path / "empty.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="no 'model' state"):
        load_checkpoint(tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
