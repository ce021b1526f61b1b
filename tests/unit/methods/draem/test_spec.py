"""DRAEM's registry entry: config section, presets, validation, light import."""

import subprocess
import sys
from pathlib import Path

import pytest

from suite.config import ConfigError, build_config
from suite.methods.draem import SPEC
from suite.methods.draem.config import DRAEMConfig

REPO = Path(__file__).resolve().parents[4]


def test_spec_fields():
    assert SPEC.name == "draem" and SPEC.config_section == "draem" and SPEC.config_class is DRAEMConfig
    assert SPEC.scoring_fields == frozenset({"score_filter"})
    assert SPEC.path_keys == ("draem.texture_root",)
    ref = SPEC.references["draem"]
    assert ref.values["mvtec"]["mean"] == {"i_auroc": 98.0, "p_auroc": 97.3}
    assert set(SPEC.presets) == {"tiny", "demo", "cpu"}
    for overrides in SPEC.presets.values():
        assert set(overrides) <= set(DRAEMConfig.__dataclass_fields__)


def test_paper_defaults():
    d = DRAEMConfig()
    assert (d.recon_width, d.disc_width, d.recon_levels, d.disc_levels) == (128, 64, 4, 5)
    assert d.anomaly_prob == 0.5 and d.perlin_threshold == 0.5 and d.opacity == [0.1, 1.0]
    assert d.ssim_window == 11 and d.focal_gamma == 2.0 and d.score_filter == 21


@pytest.mark.parametrize("preset, size", [("tiny", 32), ("demo", 64), ("cpu", 128)])
def test_presets_build_valid_configs(preset, size):
    cfg = build_config(preset=preset, overrides=["model.method=draem"])
    assert cfg.data.image_size == size
    assert cfg.draem.recon_width == SPEC.presets[preset]["recon_width"]
    assert cfg.data.image_size % 2 ** max(cfg.draem.recon_levels, cfg.draem.disc_levels) == 0


@pytest.mark.parametrize(
    "override, key",
    [
        ("draem.score_filter=4", "draem.score_filter"),
        ("draem.anomaly_prob=1.5", "draem.anomaly_prob"),
        ("draem.opacity=[0.9, 0.2]", "draem.opacity"),
        ("draem.perlin_scale_max=-1", "draem.perlin_scale_max"),
        ("draem.recon_width=0", "draem.recon_width"),
        ("data.image_size=48", "data.image_size"),  # 2**5 must divide it
    ],
)
def test_validation_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_config(preset="tiny", overrides=["model.method=draem", override])


def test_image_size_is_only_checked_when_draem_runs():
    build_config(overrides=["model.method=fae", "data.image_size=40", "fae.levels=2"])


def test_spec_module_does_not_import_torch():
    code = "import sys\nimport suite.methods.draem\nassert 'torch' not in sys.modules, 'torch imported'\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
