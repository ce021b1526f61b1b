from dataclasses import dataclass

import pytest

from suite.methods.registry import MethodSpec, register_method, unregister_method
from suite.config import (
    PRESETS,
    Config,
    ConfigError,
    build_config,
    config_hash,
    from_dict,
    load_yaml,
    parse_override,
    save_yaml,
    with_overrides,
)


def test_defaults_validate_and_round_trip_through_yaml(tmp_path):
    cfg = build_config()
    path = tmp_path / "c.yaml"
    save_yaml(cfg, path)
    again = load_yaml(path)
    assert again == cfg
    assert again.hash() == cfg.hash()
    assert from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_builds(preset):
    cfg = build_config(preset=preset)
    assert isinstance(cfg, Config)


def test_paper_preset_matches_the_paper_setup():
    cfg = build_config(preset="paper")
    assert cfg.data.image_size == 1024 and cfg.model.depth == 5
    assert [cfg.train.stage1.epochs, cfg.train.stage2.epochs, cfg.train.stage3.epochs] == [1500, 400, 300]
    for stage in (cfg.train.stage1, cfg.train.stage2, cfg.train.stage3):
        assert stage.lr == 1e-4 and stage.betas == [0.9, 0.999] and stage.eps == 1e-8


def test_overrides_are_typed_and_applied():
    cfg = build_config(overrides=["model.depth=3", "augment.coverage=0.5", "model.crd_steps=[1,3]", "data.root=null"])
    assert cfg.model.depth == 3 and cfg.augment.coverage == 0.5 and cfg.model.crd_steps == [1, 3]
    assert isinstance(build_config(overrides=["augment.coverage=1"]).augment.coverage, float)


def test_unknown_key_names_the_key_and_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        build_config(overrides=["model.detph=3"])
    assert "model.detph" in str(err.value) and "depth" in str(err.value)
    with pytest.raises(ConfigError, match="unknown config key 'nope'"):
        build_config(overrides=["nope=1"])


def test_wrong_types_are_errors():
    with pytest.raises(ConfigError, match="model.depth"):
        build_config(overrides=["model.depth=three"])
    with pytest.raises(ConfigError, match="model.skip"):
        build_config(overrides=["model.skip=3"])
    with pytest.raises(ConfigError, match="model"):
        build_config(overrides=["model=3"])


def test_yaml_unknown_key_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  width: 8\n  colour: red\n")
    with pytest.raises(ConfigError) as err:
        build_config(file=bad)
    assert str(bad) in str(err.value) and "model.colour" in str(err.value)


def test_cross_field_validation():
    with pytest.raises(ConfigError, match="divisible"):
        build_config(overrides=["data.image_size=100", "model.depth=3"])
    with pytest.raises(ConfigError, match="crd_steps"):
        build_config(overrides=["model.depth=3", "model.crd_steps=[5]"])
    with pytest.raises(ConfigError, match="data.root"):
        build_config(overrides=["data.dataset=mvtec"])
    with pytest.raises(ConfigError, match="preset"):
        build_config(preset="gpu-monster")


def test_hash_is_stable_and_sensitive():
    a = build_config(preset="tiny")
    assert a.hash() == build_config(preset="tiny").hash() == from_dict(a.to_dict()).hash()
    assert len(a.hash()) == 10
    assert with_overrides(a, {"model.depth": 1}).hash() != a.hash()
    # a value set to its default is the same configuration as one left alone
    assert with_overrides(a, {"model.skip": True}).hash() == a.hash()


@dataclass
class _AddedSection:
    knob: int = 3
    path: str | None = None


def test_hash_is_stable_when_a_section_with_defaults_is_added():
    """A new version that adds fields with defaults (here: a method section) keeps every existing
    hash, so finished records of a sweep are still recognised after an upgrade."""
    before = build_config(preset="tiny", overrides=["model.depth=1"])
    spec = MethodSpec(name="added_in_test", display_name="Added", colour="k", trainer="x:y",
                      config_section="added_in_test", config_class=_AddedSection)
    register_method(spec)
    try:
        after = build_config(preset="tiny", overrides=["model.depth=1"])
        assert "added_in_test" in after.to_dict() and "added_in_test" not in before.to_dict()
        assert after.hash() == before.hash()
        assert with_overrides(after, {"added_in_test.knob": 4}).hash() != before.hash()
    finally:
        unregister_method("added_in_test")


def test_parse_override_requires_equals():
    with pytest.raises(ConfigError):
        parse_override("model.depth")
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert parse_override("train.stage1.lr=1e-4") == ("train.stage1.lr", 1e-4)
    assert parse_override("data.category=bottle") == ("data.category", "bottle")


def test_val_anomalies_choice_is_checked():
    assert build_config().data.val_anomalies == "hard"
    assert build_config(overrides=["data.val_anomalies=augment"]).data.val_anomalies == "augment"
    with pytest.raises(ConfigError, match="data.val_anomalies"):
        build_config(overrides=["data.val_anomalies=test"])


@pytest.mark.parametrize(
    "override, key",
    [
        ("eval.standardize=true", "eval.standardize"),
        ("eval.anomaly_map=residual", "eval.anomaly_map"),
        ("pseudo.families=[augment, blobs]", "pseudo.families"),
        ("pseudo.families=[]", "pseudo.families"),
        ("train.depth_loss=some", "train.depth_loss"),
        ("model.crd_input=raw", "model.crd_input"),
    ],
)
def test_choice_keys_name_the_key_and_the_valid_values(override, key):
    with pytest.raises(ConfigError, match=key) as info:
        build_config(overrides=[override])
    assert "valid values" in str(info.value)


@pytest.mark.parametrize(
    "override, key", [("augment.clean_fraction=1.5", "augment.clean_fraction"), ("data.val_difficulty=-0.1", "data.val_difficulty")]
)
def test_range_errors_state_the_value_and_the_range(override, key):
    with pytest.raises(ConfigError, match=key) as info:
        build_config(overrides=[override])
    assert "outside the allowed range" in str(info.value)


def test_pseudo_opacity_must_be_an_increasing_range():
    assert build_config(overrides=["pseudo.opacity=[0.2, 0.9]"]).pseudo.opacity == [0.2, 0.9]
    with pytest.raises(ConfigError, match="pseudo.opacity"):
        build_config(overrides=["pseudo.opacity=[0.9, 0.2]"])
