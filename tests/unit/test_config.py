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
    assert cfg.data.image_size == 1024 and cfg.rcae.depth == 5
    assert [cfg.train.stage1.epochs, cfg.train.stage2.epochs, cfg.train.stage3.epochs] == [1500, 400, 300]
    for stage in (cfg.train.stage1, cfg.train.stage2, cfg.train.stage3):
        assert stage.lr == 1e-4 and stage.betas == [0.9, 0.999] and stage.eps == 1e-8


def test_cpu_preset_smooths_more_and_its_runs_get_their_own_hash():
    cpu = build_config(preset="cpu")
    assert cpu.eval.smooth_sigma == 4.0 and build_config().eval.smooth_sigma == 2.0
    assert build_config(preset="demo").eval.smooth_sigma == build_config(preset="tiny").eval.smooth_sigma == 2.0
    # a cpu-preset run scored with the old sigma is a different configuration
    assert cpu.hash() != build_config(preset="cpu", overrides=["eval.smooth_sigma=2"]).hash()


def test_overrides_are_typed_and_applied():
    cfg = build_config(overrides=["model.depth=3", "augment.coverage=0.5", "model.crd_steps=[1,3]", "data.root=null"])
    assert cfg.rcae.depth == 3 and cfg.augment.coverage == 0.5 and cfg.rcae.crd_steps == [1, 3]
    assert isinstance(build_config(overrides=["augment.coverage=1"]).augment.coverage, float)


def test_unknown_key_names_the_key_and_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        build_config(overrides=["model.detph=3"])
    assert "model.detph" in str(err.value) and "depth" in str(err.value)
    with pytest.raises(ConfigError, match="unknown config key 'nope'"):
        build_config(overrides=["nope=1"])


def test_wrong_types_are_errors():
    with pytest.raises(ConfigError, match="rcae.depth"):
        build_config(overrides=["rcae.depth=three"])
    with pytest.raises(ConfigError, match="rcae.skip"):  # an old key's value is checked under its new key
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
        ("rcae.crd_input=raw", "rcae.crd_input"),
        ("model.crd_input=raw", "rcae.crd_input"),
    ],
)
def test_choice_keys_name_the_key_and_the_valid_values(override, key):
    with pytest.raises(ConfigError, match=key) as info:
        build_config(overrides=[override])
    assert "valid values" in str(info.value)


@pytest.mark.parametrize(
    "override, key",
    [("augment.clean_fraction=1.5", "augment.clean_fraction"), ("data.val_difficulty=-0.1", "data.val_difficulty")]
)
def test_range_errors_state_the_value_and_the_range(override, key):
    with pytest.raises(ConfigError, match=key) as info:
        build_config(overrides=[override])
    assert "outside the allowed range" in str(info.value)


def test_pseudo_opacity_must_be_an_increasing_range():
    assert build_config(overrides=["pseudo.opacity=[0.2, 0.9]"]).pseudo.opacity == [0.2, 0.9]
    with pytest.raises(ConfigError, match="pseudo.opacity"):
        build_config(overrides=["pseudo.opacity=[0.9, 0.2]"])


# ----------------------------------------------------------------------------------------------
# old keys (the RcAE / ConvAE settings that moved out of model.* and eval.*)


def test_every_old_model_and_eval_key_maps_to_the_method_sections():
    from suite.methods.registry import aliases

    table = aliases()
    assert table["model.depth"] == ("rcae.depth", "convae.depth")
    assert table["model.skip"] == ("rcae.skip", "convae.skip")
    assert table["model.crd_steps"] == ("rcae.crd_steps",)
    assert table["eval.crd_output"] == ("rcae.crd_output",)
    cfg = build_config(preset="tiny")
    for old, targets in table.items():
        section, _, name = old.partition(".")
        assert not hasattr(getattr(cfg, section), name), f"{old} is still a field of {section}"
        for target in targets:  # every alias names a real field
            new_section, _, new_name = target.partition(".")
            assert hasattr(getattr(cfg, new_section), new_name), target


def test_old_keys_set_the_new_ones_everywhere_a_config_is_read(tmp_path):
    from suite.config import from_dict, load_yaml

    cfg = build_config(overrides=["model.depth=3", "model.use_crd=false", "eval.crd_output=sigmoid"])
    assert (cfg.rcae.depth, cfg.convae.depth, cfg.rcae.use_crd, cfg.rcae.crd_output) == (3, 3, False, "sigmoid")
    assert with_overrides(Config(), {"model.width": 8}).convae.width == 8
    old_record = Config().to_dict()
    del old_record["rcae"], old_record["convae"]
    old_record["model"].update({"depth": 4, "skip": False, "crd_steps": [1, 4]})
    old_record["eval"]["crd_output"] = "sigmoid"
    back = from_dict(old_record)
    assert (back.rcae.depth, back.rcae.skip, back.rcae.crd_steps, back.rcae.crd_output) == (4, False, [1, 4], "sigmoid")
    assert (back.convae.depth, back.convae.skip) == (4, False)
    path = tmp_path / "old.yaml"
    path.write_text("model:\n  method: convae\n  depth: 2\n")
    assert load_yaml(path).convae.depth == 2


def test_a_new_key_beside_its_old_alias_wins_and_unknown_keys_still_fail():
    cfg = build_config(base={"model": {"depth": 4}, "rcae": {"depth": 2}})
    assert (cfg.rcae.depth, cfg.convae.depth) == (2, 4)
    with pytest.raises(ConfigError, match="unknown config key 'model.dept'"):
        build_config(overrides=["model.dept=3"])
    with pytest.raises(ConfigError, match="unknown config key 'rcae.skip_connections'"):
        build_config(overrides=["rcae.skip_connections=true"])


def test_config_hashes_did_not_change_with_the_move():
    # Values from before the move (git dbc7d25): finished runs and sweeps are still recognised.
    expected = {
        ("tiny", ()): "e65a72b859",
        ("tiny", ("model.depth=3",)): "02d052c6d5",
        # issue 19: the paper preset sets eval.shifts=[] (every other config keeps the default shifts and its hash)
        ("paper", ("eval.shifts=[dark8,bright8,contrast90,blur,noise,translate]",)): "13829411c8",
        # issue 19: the demo preset gives the CRD 300 steps at least (the hash holds every section)
        ("demo", ("model.method=convae", "model.skip=false", "rcae.crd_min_iterations=0")): "cd12c87376",
        (None, ("model.use_crd=false", "eval.crd_output=sigmoid")): "47f293212f",
        ("tiny", ("model.crd_steps=[1,2]",)): "7422541eb3",
    }
    # issue 19 changed five defaults (config.HASH_BASELINE): the old behaviour keeps its hash, the new one gets another
    old_behaviour = ("rcae.photometric=paper", "data.val_shifts=[]")
    for (preset, overrides), value in expected.items():
        assert build_config(preset, overrides=[*overrides, *old_behaviour]).hash() == value, (preset, overrides)
        assert build_config(preset, overrides=list(overrides)).hash() != value, (preset, overrides)
    # written with the new keys: the same configuration, the same hash
    assert build_config("tiny", overrides=["rcae.depth=3", "convae.depth=3", *old_behaviour]).hash() == "02d052c6d5"
    # only RcAE's depth changed is another configuration
    assert build_config("tiny", overrides=["rcae.depth=3", *old_behaviour]).hash() != "02d052c6d5"
    # each changed default on its own makes another configuration
    hashes = {build_config("tiny", overrides=list(old_behaviour) + [f"{k}={v}"]).hash()
              for k, v in (("rcae.normalise", "gain"), ("rcae.jitter", "true"), ("eval.anomaly_map", "fused"),
                           ("rcae.fuse", "[residual_gain,structure,crd]"), ("data.val_shifts", "[gain0.92]"))}
    assert len(hashes) == 5 and "e65a72b859" not in hashes



def test_reports_see_old_and_new_records_under_the_same_keys():
    from suite.config import flatten
    from suite.config_aliases import report_view

    new = flatten(build_config(overrides=["rcae.depth=3", "model.method=rcae"]).to_dict())
    old = dict(new)
    for key in [k for k in old if k.startswith(("rcae.", "convae."))]:
        del old[key]
    old.update({"model.depth": 3, "model.skip": True, "eval.crd_output": "logits"})
    assert report_view(new, "rcae")["model.depth"] == report_view(old, "rcae")["model.depth"] == 3
    assert not any(k.startswith(("rcae.depth", "convae.")) for k in report_view(new, "rcae"))
    convae = flatten(build_config(overrides=["model.method=convae", "convae.depth=2"]).to_dict())
    assert report_view(convae, "convae")["model.depth"] == 2 and "model.use_dpn" not in report_view(convae, "convae")
    assert "model.depth" not in report_view(new, "fae")


def test_validation_calls_only_the_selected_methods_hook():
    calls = []

    def hook(cfg):
        calls.append(cfg.model.method)
        raise ConfigError("config key 'hooked.x': the hook ran")

    spec = MethodSpec(name="hooked", display_name="Hooked", colour="k", trainer="x:train", validate=hook)
    register_method(spec)
    try:
        build_config(preset="tiny", overrides=["model.method=rcae"])
        build_config(preset="tiny", overrides=["model.method=convae", "rcae.crd_steps=[9]"])  # not RcAE's turn
        assert calls == []
        with pytest.raises(ConfigError, match="the hook ran"):
            build_config(preset="tiny", overrides=["model.method=hooked"])
        assert calls == ["hooked"]
        with pytest.raises(ConfigError, match="rcae.crd_steps"):
            build_config(preset="tiny", overrides=["rcae.crd_steps=[9]"])
    finally:
        unregister_method("hooked")
