"""Search space loading and checking (suite/orchestration/spaces.py): no Ray needed."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from suite.config import build_config
from suite.orchestration.spaces import (
    SpaceError,
    available_spaces,
    check_space,
    decode_params,
    encoded_choices,
    load_space,
    spec_values,
)

SHIPPED = {
    "depth": "optuna",
    "augmentation": "optuna",
    "noise": "optuna",
    "fae_noise": "optuna",
    "joint": "optuna",
    "hfr": "optuna",
    "ablation_components": "list",
    "ablation_depth": "grid",
    "ablation_skip_shared": "list",
    "ablation_data_fraction": "grid",
    "ablation_crd_steps": "list",
}


def write_space(tmp_path: Path, text: str, name: str = "space.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_every_shipped_space_loads_and_checks_against_the_cpu_preset():
    assert set(SHIPPED) <= set(available_spaces())
    cfg = build_config(preset="cpu")  # 128 px: every depth up to 6 is valid
    for name, kind in SHIPPED.items():
        space = load_space(name)
        assert space.kind == kind, name
        assert space.doc, f"{name} has no docstring"
        check_space(space, cfg)


def test_base_is_applied_and_grid_is_a_full_cross_product():
    cfg = build_config(preset="cpu")
    assert check_space(load_space("fae_noise"), cfg).model.method == "fae"
    hfr = check_space(load_space("hfr"), cfg)
    assert hfr.model.method == "hfr" and hfr.hfr.pretrained is False
    grid = load_space("ablation_data_fraction")
    assert len(grid.points) == 10
    assert {(p["data.data_fraction"], p["model.method"]) for p in grid.points} == {
        (f, m) for f in (0.1, 0.25, 0.5, 0.75, 1.0) for m in ("rcae", "convae")
    }
    assert check_space(load_space("ablation_crd_steps"), cfg).model.depth == 5


def test_unknown_key_names_the_file_and_the_key(tmp_path):
    path = write_space(tmp_path, 'SPACE = {"model.depht": {"type": "int", "low": 1, "high": 3}}\n')
    with pytest.raises(SpaceError) as err:
        check_space(load_space(path), build_config(preset="tiny"))
    assert str(path) in str(err.value) and "model.depht" in str(err.value)


def test_invalid_value_for_the_base_config_is_reported_before_running(tmp_path):
    # tiny preset: 32 px, so depth 6 (2**6 = 64) is not a valid value
    with pytest.raises(SpaceError, match="model.depth.*6"):
        check_space(load_space("depth"), build_config(preset="tiny"))
    path = write_space(tmp_path, 'CONFIGS = [{"model.crd_steps": [1]}, {"model.crd_steps": [7]}]\n')
    with pytest.raises(SpaceError, match=r"CONFIGS\[1\]"):
        check_space(load_space(path), build_config(preset="tiny"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("X = 1\n", "exactly one of SPACE, GRID or CONFIGS"),
        ('SPACE = {}\nGRID = {"model.depth": [1]}\n', "exactly one"),
        ('SPACE = {"model.depth": {"type": "int", "low": 4, "high": 2}}\n', "low 4 > high 2"),
        ('SPACE = {"model.depth": {"type": "integer", "low": 1, "high": 2}}\n', "'type' in"),
        ('SPACE = {"train.stage1.lr": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}\n', "log-scale"),
        ('SPACE = {"a.b": {"type": "categorical", "choices": []}}\n', "non-empty list"),
        ('GRID = {"model.depth": []}\n', "non-empty list"),
        ('CONFIGS = [1, 2]\n', "CONFIGS[0] must be a dict"),
        ("import nonexistent_module_xyz\n", "import failed"),
    ],
)
def test_malformed_spaces_fail_with_the_path(tmp_path, text, message):
    path = write_space(tmp_path, text)
    with pytest.raises(SpaceError) as err:
        load_space(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_unknown_space_name_lists_the_available_ones():
    with pytest.raises(SpaceError, match="available.*depth"):
        load_space("no_such_space")


def test_list_choices_travel_as_json_and_come_back():
    space = load_space("augmentation")
    spec = space.space["augment.block_sizes"]
    encoded = encoded_choices(spec)
    assert all(isinstance(c, str) for c in encoded)
    params = {"augment.block_sizes": encoded[1], "augment.lines": False, "augment.coverage": 0.25}
    decoded = decode_params(space, params)
    assert decoded == {"augment.block_sizes": json.loads(encoded[1]), "augment.lines": False, "augment.coverage": 0.25}
    assert encoded_choices(space.space["augment.lines"]) == [True, False]  # scalars stay as they are


def test_spec_values_cover_the_bounds():
    assert spec_values({"type": "int", "low": 1, "high": 6}) == [1, 3, 6]
    assert spec_values({"type": "float", "low": 1e-4, "high": 1e-2, "log": True})[1] == pytest.approx(1e-3)
    assert spec_values({"type": "categorical", "choices": ["a", "b"]}) == ["a", "b"]
