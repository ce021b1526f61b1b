"""One typed configuration for every run of the suite.

A ``Config`` is a tree of dataclasses. It is built from defaults, then a preset, then a YAML file,
then ``key.sub=value`` overrides (in that order). Unknown keys are an error that names the key and
the valid ones; values are checked against the field's type (``Literal`` fields against their
choices, in one place: ``suite.config_types.coerce``). ``config_hash`` gives a stable short hash used
to name runs and recognise finished ones. Besides the shared sections, every registered method may own a section
(``suite.methods.registry``), named by that method's spec; keys that moved into one are read under
their old names too (``suite.config_aliases``). Presets: ``suite.config_presets``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from suite.config_aliases import expand_shorthands, legacy_keys, upgrade_keys
from suite.config_presets import PRESETS, SHIFT_NAMES
from suite.config_types import check_range, coerce
from suite.errors import ConfigError
from suite.methods.registry import aliases, method_names, method_sections, method_spec, method_specs

# Bumped when what ``config_hash`` covers changes meaning (2: only values that differ from the
# defaults are hashed, so a field added with a default leaves existing hashes unchanged).
HASH_SCHEMA = 2
# Defaults that changed after HASH_SCHEMA 2 (key -> the value the hash still measures against): a record
# made under the old default keeps its hash, and a config under the new default gets a new one instead of
# being mistaken for a finished run of the old behaviour (issue 19's photometric defaults, 2026-12-05).
HASH_BASELINE: dict[str, Any] = {
    "rcae.normalise": "none", "rcae.jitter": False, "rcae.fuse": ["residual_final", "crd"],
    "eval.anomaly_map": "auto", "data.val_shifts": [],
}


@dataclass
class DataConfig:
    dataset: str = "synthetic"  # a registered dataset (suite.data.registry): mvtec, visa, folder, synthetic
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
    val_anomalies: Literal["hard", "natural", "augment"] = "hard"
    val_difficulty: float = 0.5  # hard validation anomalies: 0 = clearly visible .. 1 = very subtle
    # photometrically shifted copies of the held-out normals, labelled normal (suite.data.val_shifts): a
    # brightness-sensitive configuration scores lower on validation (issue 19; [] = none)
    val_shifts: list[Literal["gain0.92", "gain1.08", "gamma0.9", "gamma1.1"]] = field(
        default_factory=lambda: ["gain0.92", "gain1.08", "gamma0.9", "gamma1.1"])


@dataclass
class AugmentConfig:
    enabled: bool = True  # stage-1 structured corruption on/off
    coverage: float = 0.3  # fraction of grid blocks touched by a corruption, 0..1
    # fixed: every image at `coverage` | uniform: per image, coverage ~ U(0, `coverage`) (the
    # paper's "varying coverage (0-100%)" is uniform with coverage 1)
    coverage_sampling: Literal["fixed", "uniform"] = "fixed"
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
    noise_on_target: bool = False  # also add noise to the target (an independent draw)
    flip: bool = False  # random horizontal/vertical flips of the clean normals (turn on where the category allows it)
    rotate: bool = False  # random 90-degree rotations of the clean normals


@dataclass
class PseudoConfig:
    """Stage-3 pseudo-anomalies the CRD learns to segment (masks are exact)."""

    # augment: stage-1's families (blocks, pastes, lines; the RcAE was trained to erase them) |
    # occluders: elastic ellipses and thin strokes filled with texture (DTD folder or procedural)
    # or colour, families the RcAE never saw. One family is drawn per image.
    families: list[Literal["augment", "occluders"]] = field(default_factory=lambda: ["augment"])
    clean_fraction: float = 0.0  # share of stage-3 images left clean with an empty mask
    # augment family: fixed | uniform (as augment.coverage_sampling)
    coverage_sampling: Literal["fixed", "uniform"] = "fixed"
    opacity: list[float] = field(default_factory=lambda: [1.0, 1.0])  # blend alpha range (1 = opaque)
    texture_root: str | None = None  # occluders: folder of texture images (e.g. DTD); None = procedural
    colour: Literal["any", "match"] = "any"  # match: grey fills on a category with R=G=B (rcae/pseudo.py)
    size_prior: Literal["none", "small"] = "none"  # small: a fixed prior favouring small defects (rcae/pseudo.py)


@dataclass
class ModelConfig:
    # a registered method (suite.methods.registry); its own settings are its section (cfg.<section>,
    # e.g. rcae.depth), the old model.* keys are aliases of them
    method: str = "rcae"


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
    amp: bool = True  # mixed precision on CUDA: bf16 where supported, else fp16 + loss scaling (CPU: float32)
    max_time_s: float = 0.0  # wall-time budget per stage in seconds (0 = none); stops at an epoch boundary
    # stage 1: sampled (one depth per batch, the paper) | all (L_rec summed over every depth
    # 1..N each step, from one batched all-depth pass)
    depth_loss: Literal["sampled", "all"] = "sampled"
    # sampled depth: uniform on 1..N (paper) | linear (p(n) ∝ n)
    depth_sampling: Literal["uniform", "linear"] = "uniform"
    # constant (paper) | cosine (decay to 0 over each stage's epochs)
    lr_schedule: Literal["constant", "cosine"] = "constant"


@dataclass
class EvalConfig:
    top_k: float = 0.01  # image score = mean of the top-k pixels; <1 = fraction of pixels, >=1 = count
    smooth_sigma: float = 2.0  # Gaussian smoothing of pixel maps in pixels (0 = off); 4 at the cpu preset
    # RcAE/ConvAE maps: smooth the raw maps before the standardisation statistics are fitted and applied,
    # instead of smoothing the standardised map (README "Map smoothing")
    smooth_first: bool = False
    # pixel map of the methods with ``uses_eval_map`` (RcAE/ConvAE): auto (the CRD map with CRD, else |I - I_D^N| of
    # the last depth, as the paper's rungs) | residual_final (|I - I_D^N|) | residual_mean (over all depths) | crd |
    # fused (mean of the standardised rcae.fuse kinds the model has; the default since issue 19, chosen on
    # validation: README "Photometric robustness") | offset-blind: residual_centred, residual_gain, structure
    anomaly_map: Literal["auto", "residual_final", "residual_mean", "crd", "fused", "residual_centred", "residual_gain",
                         "structure"] = "fused"
    # applied to whichever map the rung uses, CRD included: none | pixel (per-pixel z-score by
    # statistics of held-out normals)
    standardize: Literal["none", "pixel"] = "pixel"
    # normals the scoring statistics are fitted on: calib (held out) | train
    fit_on: Literal["calib", "train"] = "calib"
    scoring_variants: bool = True  # also score every variant (record.scorings; inference only)
    diagnostics: bool = True  # per-depth signal of |I - I_R^n|, |I - I_D^n| and CRD (record.diagnostics)
    aupro: bool = True  # compute AUPRO (exact; the costliest pixel metric)
    save_maps: int = 2  # best and worst scored test images per category kept for the heatmap gallery
    cost: bool = True  # measure params / FLOPs / latency
    shifts: list[Literal[SHIFT_NAMES]] = field(default_factory=lambda: list(SHIFT_NAMES))  # README "Robustness"


@dataclass
class RuntimeConfig:
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # None of the settings below changes results (tests compare weights and metrics): the stage-cache
    # key ignores them and config_hash sees them only when changed from the default.
    # Images stream from disk (suite.data.streaming) through one LRU cache of decoded images (at
    # data.image_size) per training process of at most cache_mb MB (0 = decode on every use; the
    # default holds a whole category at the cpu/demo/tiny sizes); num_workers DataLoader
    # processes decode the batches (0 = in the training's process).
    num_workers: int = 0  # DataLoader worker processes decoding training / evaluation batches
    cache_mb: float = 2048.0  # budget of the decoded-image cache in MB (8-bit images take 3*S*S bytes)
    threads: int = 0  # torch intra-op threads (0 = leave torch's default)
    preset: str | None = None  # the preset the config was built from (set by build_config; reports show it)
    # GPU feeding and memory (suite.throughput's docstring): batches read ahead by a thread
    # (0 = off), channels-last convs (CUDA only), each RcAE level / CRD block recomputed in the
    # backward pass (None = from 512 px on), inference in chunks of <= infer_mpx megapixels
    prefetch: int = 2
    channels_last: bool = True
    activation_checkpointing: bool | None = None
    infer_mpx: float = 2.0


CORE_SECTIONS = ("data", "augment", "pseudo", "model", "train", "eval", "runtime")


def _method_sections() -> dict[str, Any]:
    return {name: cls() for name, cls in method_sections().items()}


@dataclass
class Config:
    """The whole configuration: the shared sections below plus one section per registered method
    that owns one (``cfg.<section>``; see ``suite.methods.registry``)."""

    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    pseudo: PseudoConfig = field(default_factory=PseudoConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    # method-owned sections by name, read as attributes (cfg.<section>)
    methods: dict[str, Any] = field(default_factory=_method_sections, repr=False)

    def __getattr__(self, name: str) -> Any:
        sections = self.__dict__.get("methods")
        if sections is not None and name in sections:
            return sections[name]
        raise AttributeError(f"config has no section {name!r}")

    def sections(self) -> dict[str, Any]:
        """Section name -> dataclass, shared sections first, then the methods' in registry order."""
        return {**{name: getattr(self, name) for name in CORE_SECTIONS}, **self.methods}

    def to_dict(self) -> dict[str, Any]:
        return {name: dataclasses.asdict(section) for name, section in self.sections().items()}

    def hash(self) -> str:
        return config_hash(self)


# ----------------------------------------------------------------------------------------------
# building and validating


def _field_types(obj: Any) -> dict[str, Any]:
    """Field name -> annotation of a section (or of the Config: its sections, methods' included)."""
    if isinstance(obj, Config):
        return {name: type(section) for name, section in obj.sections().items()}
    return _section_field_types(type(obj))


@functools.lru_cache(maxsize=None)
def _section_field_types(cls: type) -> dict[str, Any]:
    # Cached: a report reads thousands of records, and each record's config is rebuilt through here
    # (typing.get_type_hints took about 4 % of the reporting tests' time).
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _merge_into(obj: Any, updates: dict[str, Any], prefix: str = "") -> None:
    """Apply a nested dict of updates to a dataclass instance, validating every key."""
    if not isinstance(updates, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.') or '<root>'}' must be a mapping, got {updates!r}")
    if isinstance(obj, Config):
        updates = upgrade_keys(expand_shorthands(updates))
    types_ = _field_types(obj)
    for key, value in updates.items():
        full = f"{prefix}{key}"
        if key not in types_:
            valid = ", ".join(sorted(types_))
            moved = sorted(k.partition(".")[2] for k in aliases() if k.partition(".")[0] == prefix.rstrip("."))
            hint = f" (old keys, now in a method's section: {', '.join(moved)})" if moved else ""
            raise ConfigError(f"unknown config key '{full}'; valid keys here: {valid}{hint}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _merge_into(current, value, f"{full}.")
        else:
            setattr(obj, key, coerce(value, types_[key], full))


def _check_fields(section: Any, prefix: str) -> None:
    """Every field of a section against its annotation (Literal choices included): values set in
    code, not through ``_merge_into``, get the same check."""
    for name, tp in _field_types(section).items():
        value = getattr(section, name)
        if dataclasses.is_dataclass(value):
            _check_fields(value, f"{prefix}{name}.")
        else:
            coerce(value, tp, f"{prefix}{name}")


# Keys that must lie in a range: (key, low, high, low included, high included).
RANGES: tuple[tuple[str, float, float, bool, bool], ...] = (
    ("data.val_fraction", 0.0, 1.0, True, False), ("data.data_fraction", 0.0, 1.0, False, True),
    ("data.calib_fraction", 0.0, 0.5, True, True), ("data.val_difficulty", 0.0, 1.0, True, True),
    ("augment.coverage", 0.0, 1.0, True, True), ("augment.clean_fraction", 0.0, 1.0, True, True),
    ("augment.noise_std", 0.0, math.inf, True, True), ("augment.reference_size", 1, math.inf, True, True),
    ("pseudo.clean_fraction", 0.0, 0.95, True, True),
    ("runtime.num_workers", 0, 64, True, True), ("runtime.cache_mb", 0.0, math.inf, True, False),
    ("runtime.prefetch", 0, 16, True, True), ("runtime.infer_mpx", 0.0, math.inf, False, False),
)


def _dataset_names() -> tuple[str, ...]:
    # Here, not at the top: the dataset readers would pull numpy and PIL into every ``import suite.config``.
    from suite.data.registry import dataset_names

    return tuple(dataset_names())


def validate(cfg: Config) -> Config:
    """Check every field's type and choices, the ranges, cross-field constraints and the selected
    method's own checks; raises ConfigError naming the key."""
    for name, section in cfg.sections().items():
        _check_fields(section, f"{name}.")
    d = cfg.data
    datasets = _dataset_names()
    if d.dataset not in datasets:
        raise ConfigError(f"config key 'data.dataset': {d.dataset!r} is not one of {', '.join(datasets)}")
    if cfg.model.method not in method_names():
        raise ConfigError(f"config key 'model.method': {cfg.model.method!r} is not one of {', '.join(method_names())}")
    from suite.data.registry import dataset_spec  # numpy and PIL only once a config is validated

    if dataset_spec(d.dataset).needs_root and not d.root:
        raise ConfigError(f"config key 'data.root' is required for dataset '{d.dataset}'")
    for key, low, high, low_in, high_in in RANGES:
        section, name = key.split(".")
        check_range(key, getattr(getattr(cfg, section), name), low, high, low_in, high_in)
    if not cfg.pseudo.families:
        allowed = typing.get_args(typing.get_args(_field_types(cfg.pseudo)["families"])[0])
        raise ConfigError(f"config key 'pseudo.families': [] is not allowed; valid values: {', '.join(allowed)}")
    lo, hi = cfg.pseudo.opacity if len(cfg.pseudo.opacity) == 2 else (-1.0, -1.0)
    if not 0.0 < lo <= hi <= 1.0:
        raise ConfigError(
            f"config key 'pseudo.opacity': {cfg.pseudo.opacity} must be [low, high] with 0 < low <= high <= 1")
    spec = method_spec(cfg.model.method)
    if spec.validate is not None:
        spec.validate(cfg)
    return cfg


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key.sub=value``; the value is read as YAML (so 3, 0.5, true, [1,3,5], null work)."""
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


def preset_overrides(preset: str) -> dict[str, Any]:
    """The nested overrides of a preset: its shared sections plus each method's own preset values."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; valid presets: {', '.join(sorted(PRESETS))}")
    out = copy.deepcopy(PRESETS[preset])
    for spec in method_specs():
        if spec.config_section and preset in spec.presets:
            out[spec.config_section] = copy.deepcopy(dict(spec.presets[preset]))
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
        _merge_into(cfg, preset_overrides(preset))
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
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path}: invalid YAML: {err}") from err
    if data is None:  # empty or only comments: most likely a mistake, not "all defaults" (use {} for that)
        raise ConfigError(f"config file {path} is empty")
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
    """Stable short hash: sha1 of canonical JSON.

    For a ``Config`` only the values that differ from the defaults are hashed (with
    ``HASH_SCHEMA``), so a field added in a later version with its default, or a method registered
    with its defaults, leaves the hashes of existing configurations and records unchanged; a default
    that changed is measured against its old value (``HASH_BASELINE``). A dict is hashed as it is.
    """
    if isinstance(cfg, Config):
        defaults = {**legacy_keys(flatten(json.loads(canonical_json(Config().to_dict())))), **HASH_BASELINE}
        values = legacy_keys(flatten(json.loads(canonical_json(cfg.to_dict()))))
        changed = {k: v for k, v in values.items() if k not in defaults or defaults[k] != v}
        data: Any = {"schema": HASH_SCHEMA, "values": changed}
    else:
        data = cfg
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
