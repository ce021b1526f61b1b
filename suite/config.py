"""One typed configuration for every run of the suite.

A ``Config`` is a tree of dataclasses. It is built from defaults, then a preset, then a YAML file,
then ``key.sub=value`` overrides (in that order). Unknown keys are an error that names the key and
the valid ones; values are checked against the field's type. ``config_hash`` gives a stable short
hash used to name runs and stage caches.

Defaults are the ``cpu``-sized settings that run the full pipeline on one category in minutes on a
2-core machine; the ``paper`` preset is the RcAE paper's setup (1024 px, N=5, 1500/400/300 epochs,
Adam lr 1e-4, betas 0.9/0.999, eps 1e-8).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATASETS = ("mvtec", "visa", "folder", "synthetic")
METHODS = ("rcae", "convae", "fae", "hfr")


class ConfigError(ValueError):
    """A configuration key or value is invalid; the message names it."""


@dataclass
class DataConfig:
    dataset: str = "synthetic"  # one of DATASETS
    root: str | None = None  # dataset root; None for synthetic (generated into a cache folder)
    category: str = "synth_texture"  # category name inside the dataset
    image_size: int = 128  # images are resized to image_size x image_size
    val_fraction: float = 0.1  # fraction of train normals held out for validation (deterministic)
    data_fraction: float = 1.0  # fraction of the remaining train normals used (paper Table 5)
    # fraction of train normals held out to fit scoring statistics (per-pixel standardisation,
    # map fusion): never trained on, never validated on (deterministic, taken after val)
    calib_fraction: float = 0.1
    val_anomaly_ratio: float = 1.0  # synthetic anomalies per held-out normal in the validation set
    # validation anomalies: hard (small, faint, thin defects, local deformations, misplaced parts
    # from other normals; no method trains on them) | natural (stains, holes, bent scratches: easy,
    # they saturate) | augment (RcAE's own training corruption families)
    val_anomalies: str = "hard"
    val_difficulty: float = 0.5  # hard validation anomalies: 0 = clearly visible .. 1 = very subtle


@dataclass
class AugmentConfig:
    enabled: bool = True  # stage-1 structured corruption on/off
    coverage: float = 0.3  # fraction of grid blocks touched by a corruption, 0..1
    # fixed: every image at `coverage` | uniform: per image, coverage ~ U(0, `coverage`) (the
    # paper's "varying coverage (0-100%)" is uniform with coverage 1)
    coverage_sampling: str = "fixed"
    clean_fraction: float = 0.0  # stage 1: share of inputs left uncorrupted (target = input)
    # block sizes and line lengths below are in px at this image size, scaled to the actual one;
    # the paper states them at its own 1024 px (256 = this suite's first versions)
    reference_size: int = 1024
    block_sizes: list[int] = field(default_factory=lambda: [32, 64, 128])  # px at reference_size
    color_blocks: bool = True  # family: random solid colour blocks
    copy_paste: bool = True  # family: patches copied from elsewhere (same or another normal image)
    lines: bool = True  # family: 1-4 random crack-like lines
    line_length: list[int] = field(default_factory=lambda: [50, 150])  # px at reference_size
    num_lines: list[int] = field(default_factory=lambda: [1, 4])
    noise_std: float = 0.0  # Gaussian noise std on the training input (images in [0, 1])
    noise_on_target: bool = False  # also add noise to the target (an independent draw; FAE shares one draw)
    flip: bool = False  # random horizontal/vertical flips of the clean normals (category dependent)
    rotate: bool = False  # random 90-degree rotations of the clean normals


PSEUDO_FAMILIES = ("augment", "occluders")


@dataclass
class PseudoConfig:
    """Stage-3 pseudo-anomalies the CRD learns to segment (masks are exact)."""

    # augment: stage-1's families (blocks, pastes, lines; the RcAE was trained to erase them) |
    # occluders: elastic ellipses and thin strokes filled with texture (DTD folder or procedural)
    # or colour, families the RcAE never saw. One family is drawn per image.
    families: list[str] = field(default_factory=lambda: ["augment"])
    clean_fraction: float = 0.0  # share of stage-3 images left clean with an empty mask
    coverage_sampling: str = "fixed"  # augment family: fixed | uniform (as augment.coverage_sampling)
    opacity: list[float] = field(default_factory=lambda: [1.0, 1.0])  # blend alpha range (1 = opaque)
    texture_root: str | None = None  # occluders: folder of texture images (e.g. DTD); None = procedural


@dataclass
class ModelConfig:
    method: str = "rcae"  # one of METHODS
    depth: int = 5  # recursion depth N (RcAE) / number of stacked blocks (ConvAE)
    width: int = 16  # base channel width of the conv AE blocks
    # channels of every intermediate code I_C^i; 3 = the image's channels (the paper). Other
    # values add a 1x1 stem (3 -> k) before and a 1x1 head (k -> 3) after the recursion.
    code_channels: int = 3
    skip: bool = True  # skip connections inside the AE blocks
    shared_weights: bool = True  # RcAE: one shared E and D (False = a distinct E_i, D_i per level)
    use_dpn: bool = True  # stage 2: detail-preservation network
    use_crd: bool = True  # stage 3: cross-recursion detection
    dpn_width: int = 16
    # DPN training input: clean (the paper: clean normals, I_R^n of I) | corrupted (stage-1
    # corruption on the input, clean target, so it learns not to put pseudo-defects back)
    dpn_input: str = "clean"
    crd_width: int = 8
    crd_steps: list[int] | None = None  # recursion steps CRD sees; None = 1..N (Table 6: [5], [1, 3, 5])
    crd_pool: int = 2  # CRD runs on inputs average-pooled by this factor and upsamples its output
    # CRD input per step: paper (I_D^n ⊕ I) | discrepancy (|I_D^n - I| standardised per pixel by
    # clean-normal statistics, ⊕ |I_D^n - I_D^(n-1)|, ⊕ I)
    crd_input: str = "paper"


@dataclass
class FAEConfig:
    """FAE (noise & pattern filtering AE) knobs; see suite/models/fae.py for the paper's values."""

    width: int = 32  # U-Net base width
    levels: int = 3  # U-Net down/up-sampling steps; image_size must be divisible by 2**levels
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4, 8])  # bottleneck dilated convs
    texture_root: str | None = None  # DTD-like folder of texture images; None = procedural textures
    texture_max_count: int | None = None  # cap on textures loaded (evenly spaced, deterministic subset)
    ellipse_count: list[int] = field(default_factory=lambda: [0, 2])  # elastic ellipses per image (min, max)
    stroke_count: list[int] = field(default_factory=lambda: [0, 3])  # thin strokes per image (min, max)
    stroke_radius: list[float] = field(default_factory=lambda: [0.002, 0.02])  # half-thickness / image side
    use_shapes: bool = True  # elastic ellipses + thin strokes (False = rectangles)
    use_textures: bool = True  # texture fill (False = uniform random colour)
    vary_opacity: bool = True  # opacity in [opacity_min, 1] (False = always opaque)
    opacity_min: float = 0.2
    smooth_boundary: bool = True
    corruption_prob: float = 0.8  # probability a training image is corrupted
    noise_std: float = 0.05  # max std of Gaussian noise added to both input and target
    noise_std_min: float = 0.0  # the std is drawn uniformly in [noise_std_min, noise_std]
    discrepancy: str = "gms"  # mse | ssim | gms
    filter_size: int = 5  # mean filter size applied to the map
    filter_repeats: int = 3
    score: str = "max"  # sum | max


@dataclass
class HFRConfig:
    """HFR-AE (feature reconstruction over a frozen ResNet) knobs."""

    backbone: str = "resnet18"  # resnet18 | wide_resnet50_2
    pretrained: bool = True  # load torchvision weights (needs network) unless backbone_weights is set
    backbone_weights: str | None = None  # local state_dict file, loaded with weights_only=True
    sigma: float = 4.0  # Gaussian smoothing of the anomaly map
    normalise_by_area: bool = False  # weight each level's residual by 1/area (the printed Eq. 9)
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.4
    momentum: float = 0.9
    weight_decay: float = 1e-4


@dataclass
class StageConfig:
    epochs: int = 1
    lr: float = 1e-3
    batch_size: int = 16
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0


@dataclass
class TrainConfig:
    stage1: StageConfig = field(default_factory=lambda: StageConfig(epochs=60, lr=1e-3, batch_size=16))
    stage2: StageConfig = field(default_factory=lambda: StageConfig(epochs=20, lr=1e-3, batch_size=16))
    stage3: StageConfig = field(default_factory=lambda: StageConfig(epochs=30, lr=1e-3, batch_size=8))
    checkpoint_every: int = 0  # epochs between mid-stage checkpoints (0 = only at stage end)
    eval_every: int = 0  # epochs between validation reports during stage 1 (0 = only at the end)
    amp: bool = True  # mixed precision when on CUDA (ignored on CPU)
    max_time_s: float = 0.0  # wall-time budget per stage in seconds (0 = none); stops at an epoch boundary
    # stage 1: sampled (one depth per batch, the paper) | all (L_rec summed over every depth
    # 1..N each step, from one batched all-depth pass)
    depth_loss: str = "sampled"
    depth_sampling: str = "uniform"  # sampled depth: uniform on 1..N (paper) | linear (p(n) ∝ n)
    lr_schedule: str = "constant"  # constant (paper) | cosine (decay to 0 over each stage's epochs)


@dataclass
class EvalConfig:
    top_k: float = 0.01  # image score = mean of the top-k pixels; <1 = fraction of pixels, >=1 = count
    smooth_sigma: float = 2.0  # Gaussian smoothing of pixel maps (0 = off)
    # RcAE/ConvAE pixel map: auto (the CRD map with CRD, else |I - I_D^N| of the last depth, as
    # the paper's rungs) | residual_final (|I - I_D^N|) | residual_mean (mean |I - I_D^n| over
    # all depths) | crd | fused (mean of residual_final and crd, each standardised)
    anomaly_map: str = "auto"
    # applied to whichever map the rung uses, CRD included: none | pixel (per-pixel z-score by
    # statistics of held-out normals)
    standardize: str = "pixel"
    fit_on: str = "calib"  # normals the scoring statistics are fitted on: calib (held out) | train
    crd_output: str = "logits"  # CRD map scored as logits | sigmoid (saturates: top-k ties)
    scoring_variants: bool = True  # also score every variant (record.scorings; inference only)
    diagnostics: bool = True  # per-depth signal of |I - I_R^n|, |I - I_D^n| and CRD (record.diagnostics)
    aupro: bool = True  # compute AUPRO (exact; the costliest pixel metric)
    save_maps: int = 2  # best and worst scored test images per category kept for the heatmap gallery
    cost: bool = True  # measure params / FLOPs / latency


@dataclass
class RuntimeConfig:
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    num_workers: int = 0  # DataLoader workers
    threads: int = 0  # torch intra-op threads (0 = leave torch's default)
    preset: str | None = None  # the preset the config was built from (set by build_config; reports show it)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    pseudo: PseudoConfig = field(default_factory=PseudoConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    fae: FAEConfig = field(default_factory=FAEConfig)
    hfr: HFRConfig = field(default_factory=HFRConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        return config_hash(self)


# ----------------------------------------------------------------------------------------------
# presets

PRESETS: dict[str, dict[str, Any]] = {
    # The RcAE paper's setup (Training Setup section): 1024 px, N=5, Adam(1e-4, 0.9/0.999, 1e-8),
    # 1500/400/300 epochs for stages 1/2/3.
    "paper": {
        "data": {"image_size": 1024},
        # "Applied to random blocks of size 32, 64, or 128 with varying coverage (0-100%)".
        "augment": {"coverage": 1.0, "coverage_sampling": "uniform", "reference_size": 1024},
        "model": {"depth": 5, "crd_pool": 1},
        # The CRD's map M_A as it is, no standardisation (the paper describes none).
        "eval": {"anomaly_map": "auto", "standardize": "none", "crd_output": "sigmoid"},
        "train": {
            "stage1": {"epochs": 1500, "lr": 1e-4, "betas": [0.9, 0.999], "eps": 1e-8, "batch_size": 8},
            "stage2": {"epochs": 400, "lr": 1e-4, "betas": [0.9, 0.999], "eps": 1e-8, "batch_size": 8},
            "stage3": {"epochs": 300, "lr": 1e-4, "betas": [0.9, 0.999], "eps": 1e-8, "batch_size": 4},
        },
    },
    # Full pipeline on one category on 2 CPU cores (bottle: ~50 single-thread minutes, README):
    # 128 px, width 16, CRD on 2x pooled input.
    "cpu": {
        "data": {"image_size": 128},
        "augment": {"coverage": 0.5, "coverage_sampling": "uniform", "clean_fraction": 0.1},
        "pseudo": {"families": ["augment", "occluders"], "clean_fraction": 0.25, "opacity": [0.3, 1.0]},
        "model": {"depth": 5, "width": 16, "crd_pool": 2},
        "fae": {"width": 16},
        "train": {
            "stage1": {"epochs": 150, "lr": 1e-3, "batch_size": 16},
            "stage2": {"epochs": 40, "lr": 1e-3, "batch_size": 16},
            "stage3": {"epochs": 30, "lr": 1e-3, "batch_size": 8},
            "depth_sampling": "linear",
            "lr_schedule": "cosine",
        },
    },
    # The demo's trials (`make demo`): the full pipeline in well under a minute on 2 cores, 64 px.
    "demo": {
        "data": {"image_size": 64},
        "model": {"depth": 4, "width": 8, "dpn_width": 8, "crd_width": 4, "crd_pool": 1},
        "fae": {"width": 8, "dilations": [1, 2], "levels": 2},
        "hfr": {"pretrained": False},
        "train": {
            "stage1": {"epochs": 36, "lr": 2e-3, "batch_size": 16},
            "stage2": {"epochs": 8, "lr": 2e-3, "batch_size": 16},
            "stage3": {"epochs": 12, "lr": 2e-3, "batch_size": 8},
            "eval_every": 9,
        },
        "eval": {"save_maps": 3},
    },
    # Seconds per trial: for tests and smoke runs.
    "tiny": {
        "data": {"image_size": 32},
        "model": {"depth": 2, "width": 8, "dpn_width": 8, "crd_width": 4, "crd_pool": 1},
        "fae": {"width": 8, "dilations": [1, 2], "levels": 2},
        "hfr": {"pretrained": False},
        "train": {
            "stage1": {"epochs": 2, "lr": 2e-3, "batch_size": 8},
            "stage2": {"epochs": 1, "lr": 2e-3, "batch_size": 8},
            "stage3": {"epochs": 1, "lr": 2e-3, "batch_size": 8},
        },
        "eval": {"aupro": True, "cost": True},
    },
}


# ----------------------------------------------------------------------------------------------
# building and validating


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it (ints accepted for floats)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"config key '{key}': {value!r} is not a valid {_type_name(tp)}")
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"config key '{key}': expected a list, got {value!r}")
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key '{key}': expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"config key '{key}': expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"config key '{key}': expected a string, got {value!r}")
    if tp is Any:
        return value
    raise ConfigError(f"config key '{key}': unsupported type {tp}")


def _merge_into(obj: Any, updates: dict[str, Any], prefix: str = "") -> None:
    """Apply a nested dict of updates to a dataclass instance, validating every key."""
    if not isinstance(updates, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.') or '<root>'}' must be a mapping, got {updates!r}")
    types_ = _field_types(type(obj))
    for key, value in updates.items():
        full = f"{prefix}{key}"
        if key not in types_:
            valid = ", ".join(sorted(types_))
            raise ConfigError(f"unknown config key '{full}'; valid keys here: {valid}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _merge_into(current, value, f"{full}.")
        else:
            try:
                setattr(obj, key, _coerce(value, types_[key], full))
            except ConfigError as err:
                allowed = CHOICES.get(full)
                raise ConfigError(f"{err}; valid values: {', '.join(allowed)}" if allowed else str(err)) from None


# Keys whose values come from a fixed set (lists: every item must be in it).
CHOICES: dict[str, tuple[str, ...]] = {
    "data.val_anomalies": ("hard", "natural", "augment"),
    "augment.coverage_sampling": ("fixed", "uniform"),
    "pseudo.families": PSEUDO_FAMILIES,
    "pseudo.coverage_sampling": ("fixed", "uniform"),
    "model.dpn_input": ("clean", "corrupted"),
    "model.crd_input": ("paper", "discrepancy"),
    "train.depth_loss": ("sampled", "all"),
    "train.depth_sampling": ("uniform", "linear"),
    "train.lr_schedule": ("constant", "cosine"),
    "eval.anomaly_map": ("auto", "residual_final", "residual_mean", "crd", "fused"),
    "eval.standardize": ("none", "pixel"),
    "eval.fit_on": ("calib", "train"),
    "eval.crd_output": ("logits", "sigmoid"),
}
# Keys that must lie in a closed range [low, high].
FRACTIONS: tuple[tuple[str, float, float], ...] = (
    ("data.calib_fraction", 0.0, 0.5),
    ("data.val_difficulty", 0.0, 1.0),
    ("augment.clean_fraction", 0.0, 1.0),
    ("pseudo.clean_fraction", 0.0, 0.95),
)


def validate(cfg: Config) -> Config:
    """Check cross-field constraints; raises ConfigError naming the key."""
    d, m, a = cfg.data, cfg.model, cfg.augment
    if d.dataset not in DATASETS:
        raise ConfigError(f"config key 'data.dataset': {d.dataset!r} is not one of {', '.join(DATASETS)}")
    if m.method not in METHODS:
        raise ConfigError(f"config key 'model.method': {m.method!r} is not one of {', '.join(METHODS)}")
    if d.dataset != "synthetic" and not d.root:
        raise ConfigError(f"config key 'data.root' is required for dataset '{d.dataset}'")
    if not 0.0 <= d.val_fraction < 1.0:
        raise ConfigError("config key 'data.val_fraction' must be in [0, 1)")
    if not 0.0 < d.data_fraction <= 1.0:
        raise ConfigError("config key 'data.data_fraction' must be in (0, 1]")
    if not 0.0 <= a.coverage <= 1.0:
        raise ConfigError("config key 'augment.coverage' must be in [0, 1]")
    if a.noise_std < 0:
        raise ConfigError("config key 'augment.noise_std' must be >= 0")
    if m.depth < 1:
        raise ConfigError("config key 'model.depth' must be >= 1")
    if d.image_size % (2 ** m.depth) != 0 and m.method in ("rcae", "convae"):
        raise ConfigError(
            f"config key 'data.image_size': {d.image_size} is not divisible by 2**model.depth = {2 ** m.depth}"
        )
    if m.crd_steps is not None:
        bad = [s for s in m.crd_steps if not 1 <= s <= m.depth]
        if bad or not m.crd_steps:
            raise ConfigError(f"config key 'model.crd_steps': steps {m.crd_steps} must be within 1..{m.depth}")
    if m.crd_pool < 1:
        raise ConfigError("config key 'model.crd_pool' must be >= 1")
    if cfg.runtime.device not in ("auto", "cpu", "cuda"):
        raise ConfigError("config key 'runtime.device' must be auto, cpu or cuda")
    for key, allowed in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        values = value if isinstance(value, list) else [value]
        bad = [v for v in values if v not in allowed]
        if bad or (isinstance(value, list) and not value):
            raise ConfigError(f"config key '{key}': {value!r} is not allowed; valid values: {', '.join(allowed)}")
    for key, low, high in FRACTIONS:
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if not low <= value <= high:
            raise ConfigError(f"config key '{key}': {value} is outside the allowed range [{low}, {high}]")
    lo, hi = cfg.pseudo.opacity if len(cfg.pseudo.opacity) == 2 else (-1.0, -1.0)
    if not 0.0 < lo <= hi <= 1.0:
        raise ConfigError(f"config key 'pseudo.opacity': {cfg.pseudo.opacity} must be [low, high] with 0 < low <= high <= 1")
    if a.reference_size < 1:
        raise ConfigError(f"config key 'augment.reference_size': {a.reference_size} must be >= 1")
    if m.code_channels < 1:
        raise ConfigError(f"config key 'model.code_channels': {m.code_channels} must be >= 1")
    if cfg.fae.discrepancy not in ("mse", "ssim", "gms"):
        raise ConfigError("config key 'fae.discrepancy' must be mse, ssim or gms")
    if cfg.fae.score not in ("sum", "max"):
        raise ConfigError("config key 'fae.score' must be sum or max")
    if m.method == "fae" and d.image_size % (2 ** cfg.fae.levels) != 0:
        raise ConfigError(
            f"config key 'data.image_size': {d.image_size} is not divisible by 2**fae.levels = {2 ** cfg.fae.levels}"
        )
    if cfg.hfr.optimizer not in ("sgd", "adam"):
        raise ConfigError("config key 'hfr.optimizer' must be sgd or adam")
    if cfg.hfr.backbone not in ("resnet18", "wide_resnet50_2"):
        raise ConfigError("config key 'hfr.backbone' must be resnet18 or wide_resnet50_2")
    return cfg


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key.sub=value``; the value is read as YAML (so 3, 0.5, true, [1,3,5], null work)."""
    import yaml

    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: cannot parse value: {err}") from err
    if isinstance(value, str):
        # YAML 1.1 reads "1e-4" (no dot) as a string; on the command line it means a number.
        try:
            value = float(value)
        except ValueError:
            pass
    return key, value


def nest(key: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def build_config(
    preset: str | None = None,
    file: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
) -> Config:
    """Defaults, then ``preset``, then ``base`` (a nested dict), then YAML ``file``, then overrides."""
    cfg = Config()
    if preset:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; valid presets: {', '.join(sorted(PRESETS))}")
        _merge_into(cfg, copy.deepcopy(PRESETS[preset]))
        cfg.runtime.preset = preset
    if base:
        _merge_into(cfg, copy.deepcopy(base))
    if file:
        cfg = _apply_yaml(cfg, Path(file))
    if overrides:
        items = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides)
        for key, value in items:
            _merge_into(cfg, nest(key, value))
    return validate(cfg)


def _apply_yaml(cfg: Config, path: Path) -> Config:
    import yaml

    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path}: invalid YAML: {err}") from err
    try:
        _merge_into(cfg, data)
    except ConfigError as err:
        raise ConfigError(f"config file {path}: {err}") from err
    return cfg


def from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a Config from ``to_dict`` output (e.g. a record or checkpoint); strict about keys."""
    cfg = Config()
    _merge_into(cfg, copy.deepcopy(data))
    return validate(cfg)


def load_yaml(path: str | Path) -> Config:
    return validate(_apply_yaml(Config(), Path(path)))


def save_yaml(cfg: Config, path: str | Path) -> None:
    import yaml

    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def with_overrides(cfg: Config, updates: dict[str, Any]) -> Config:
    """A copy of ``cfg`` with flat ``{"a.b": value}`` updates applied and validated."""
    new = copy.deepcopy(cfg)
    for key, value in updates.items():
        _merge_into(new, nest(key, value))
    return validate(new)


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(cfg: Config | dict[str, Any], length: int = 10) -> str:
    """Stable short hash of a config (or any JSON-able dict): sha1 of its canonical JSON."""
    data = cfg.to_dict() if isinstance(cfg, Config) else cfg
    return hashlib.sha1(canonical_json(data).encode()).hexdigest()[:length]


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists kept as values)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{full}."))
        else:
            out[full] = value
    return out
