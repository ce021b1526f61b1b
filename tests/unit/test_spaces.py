"""Search space loading and checking (suite/spaces.py): no Ray needed."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from suite.config import build_config
from suite.spaces import (
    SpaceError,
    available_spaces,
    check_space,
    decode_params,
    encoded_choices,
    load_ablations,
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
    "ablation_depth": "list",
    "ablation_skip_shared": "list",
    "ablation_data_fraction": "list",
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


def test_base_is_applied_and_grid_is_a_full_cross_product(tmp_path):
    cfg = build_config(preset="cpu")
    assert check_space(load_space("fae_noise"), cfg).model.method == "fae"
    hfr = check_space(load_space("hfr"), cfg)
    assert hfr.model.method == "hfr" and hfr.hfr.pretrained is False
    path = write_space(tmp_path, 'GRID = {"data.data_fraction": [0.1, 0.5, 1.0], "model.depth": [1, 2]}\n')
    grid = load_space(path)
    assert grid.kind == "grid" and grid.ablation is None and len(grid.points) == 6
    assert {(p["data.data_fraction"], p["model.depth"]) for p in grid.points} == {
        (f, d) for f in (0.1, 0.5, 1.0) for d in (1, 2)
    }
    assert check_space(load_space("ablation_crd_steps"), cfg).rcae.depth == 5


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
        ("X = 1\n", "exactly one of SPACE, GRID or CONFIGS, or TABLE and ROWS"),
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


# ----------------------------------------------------------------------------------------------
# ablation spaces: TABLE and ROWS

ABLATION = '''
TABLE = {"id": "toy", "title": "Toy", "source": "Someone et al., Table 1", "metrics": ["i_auroc", "p_auroc"]}
ROWS = [
    {"id": "one", "label": "depth=1", "overrides": {"model.depth": 1}, "paper": {"mvtec": {"i_auroc": 90.5}}},
    {"id": "two", "label": "depth=2", "overrides": {"model.depth": 2}},
]
'''


def test_ablation_space_declares_table_rows_and_paper_numbers(tmp_path):
    space = load_space(write_space(tmp_path, ABLATION))
    assert space.kind == "list" and space.points == [{"model.depth": 1}, {"model.depth": 2}]
    ablation = space.ablation
    assert (ablation.id, ablation.title, ablation.source, ablation.metrics) == ("toy", "Toy", "Someone et al., Table 1",
                                                                              ("i_auroc", "p_auroc"))
    assert [(r.id, r.label) for r in ablation.rows] == [("one", "depth=1"), ("two", "depth=2")]
    assert ablation.row("one").paper == {"mvtec": {"i_auroc": 90.5}} and ablation.row("two").paper == {}
    # what a trial of each row stores in its record
    assert space.ablation_ids({"model.depth": 2}) == {"table": "toy", "row": "two"}
    assert space.ablation_ids({"model.depth": 1}) == {"table": "toy", "row": "one"}
    with pytest.raises(SpaceError, match="no row of ROWS"):
        space.ablation_ids({"model.depth": 3})
    assert load_space("depth").ablation_ids({"model.depth": 2}) == {}  # not an ablation space
    check_space(space, build_config(preset="tiny"))


def test_ablation_row_values_are_checked_with_the_row_named(tmp_path):
    path = write_space(tmp_path, ABLATION.replace('"overrides": {"model.depth": 2}', '"overrides": {"model.depht": 2}'))
    with pytest.raises(SpaceError, match=r"ROWS\[1\].*model.depht") as err:
        check_space(load_space(path), build_config(preset="tiny"))
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "text, message",
    [
        (ABLATION.split("ROWS")[0], "an ablation space defines TABLE and ROWS"),
        (ABLATION + 'CONFIGS = [{"model.depth": 1}]\n', "an ablation space defines TABLE and ROWS and none of"),
        (ABLATION.replace('"id": "toy", ', ""), "TABLE: missing keys ['id']"),
        (ABLATION.replace('"id": "toy"', '"id": "a b"'), "TABLE['id'] 'a b' may hold only"),
        (ABLATION.replace('"title": "Toy"', '"titel": "Toy"'), "TABLE: unknown keys ['titel']"),
        (ABLATION.replace('"metrics": ["i_auroc", "p_auroc"]', '"metrics": ["i_aurc"]'), "unknown metrics ['i_aurc']"),
        (ABLATION.replace('"label": "depth=2", ', ""), "ROWS[1]: missing keys ['label']"),
        (ABLATION.replace('"id": "two"', '"id": "one"'), "ROWS[1] (id 'one'): the id is also ROWS[0]'s"),
        (ABLATION.replace('{"model.depth": 2}', '{"model.depth": 1}'),
         "ROWS[1] (id 'two'): the same overrides as ROWS[0]"),
        (ABLATION.replace('{"i_auroc": 90.5}', '{"aupro": 90.5}'),
         "ROWS[0] (id 'one')['paper']['mvtec']: metric 'aupro'"),
        (ABLATION.replace("90.5", "905"), "['paper']['mvtec']['i_auroc'] must be a percentage"),
        (ABLATION.replace('"overrides": {"model.depth": 2}', '"overrides": {"model.depth": 2}, "note": 1'),
         "ROWS[1]: unknown keys ['note']"),
        ('TABLE = {"id": "t", "title": "T"}\nROWS = []\n', "ROWS must be a non-empty list"),
    ],
)
def test_malformed_ablation_spaces_fail_with_the_path_and_key(tmp_path, text, message):
    path = write_space(tmp_path, text)
    with pytest.raises(SpaceError) as err:
        load_space(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_two_files_declaring_one_table_id_is_an_error(tmp_path):
    a = write_space(tmp_path, ABLATION, "a.py")
    b = write_space(tmp_path, ABLATION, "b.py")
    assert [t.id for t in load_ablations([a])] == ["toy"]
    with pytest.raises(SpaceError, match="also declared by") as err:
        load_ablations([a, b])
    assert str(a) in str(err.value) and str(b) in str(err.value)


def test_shipped_ablations_carry_the_papers_numbers():
    tables = {t.id: t for t in load_ablations()}
    assert set(tables) == {"components", "depth", "skip_shared", "data_fraction", "crd_steps", "photometric"}
    assert not tables.pop("photometric").source  # the suite's own switches (issue 19), not a paper table
    for table in tables.values():
        assert table.source.startswith("Wu et al., 'RcAE") and "Table" in table.source, table.id
        for row in table.rows:
            for dataset, values in row.paper.items():
                assert set(values) == {"i_auroc", "p_auroc"}, (table.id, row.id)
                assert all(50.0 <= v <= 100.0 for v in values.values()), (table.id, row.id)
    assert tables["depth"].row("5").paper == {"mvtec": {"i_auroc": 98.9, "p_auroc": 98.7},
                                              "visa": {"i_auroc": 99.2, "p_auroc": 98.6}}
    assert tables["components"].row("convae").paper == {"mvtec": {"i_auroc": 82.4, "p_auroc": 90.8}}
    assert tables["crd_steps"].row("1,3,5").paper == {"mvtec": {"i_auroc": 98.0, "p_auroc": 97.1}}
    assert tables["skip_shared"].row("rcae_noskip_unshared").paper == {}  # not in the paper
    # every paper row runs: the rows' overrides are the space's points
    space = load_space("ablation_data_fraction")
    assert len(space.points) == 10 and {(p["data.data_fraction"], p["model.method"]) for p in space.points} == {
        (f, m) for f in (0.1, 0.25, 0.5, 0.75, 1.0) for m in ("rcae", "convae")
    }
