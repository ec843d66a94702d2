# SPDX-License-Identifier: MIT
"""AltGrad's experiment configuration: :class:`TrainConfig`, read from and
written to flat YAML mappings (``experiments/configs/*.yaml``).

The fields, their order and their defaults are AltGrad's (ALTGRAD_API.md
section 9). Fields this project adds come after them, each with a default
that keeps AltGrad's behaviour where AltGrad had one (``weight_decay`` 0.1,
betas 0.9/0.95) and fixes it where AltGrad had a defect (W&B opt-in, a
learning-rate schedule that honours ``warmup_steps``).

Unlike AltGrad, every value is checked against its annotation when the
config is built (``TrainConfig(...)`` or :func:`load_config`): a wrong type,
an out-of-range value, an unknown key or an unknown format name is a
:class:`ConfigError` that names the key (a ValueError and a TypeError, so
AltGrad's ``pytest.raises(TypeError)`` for unknown keys still holds). Floats
written without a dot (``6e-4``, which YAML 1.1 reads as a string) are
accepted for float fields, as AltGrad did.
"""
import dataclasses
import math
import os
import typing
from dataclasses import dataclass, field
from typing import List, Optional

__all__ = ["TrainConfig", "ConfigError", "load_config", "save_config",
           "config_to_dict", "config_from_dict", "with_overrides", "LR_SCHEDULES",
           "FP8_FORMAT_NAMES"]

# The formats a config may name (the five of AltGrad's registry).
FP8_FORMAT_NAMES = ("E0M7", "E1M6", "E3M4", "E5M2", "E7M0")
LR_SCHEDULES = ("constant", "cosine", "linear")


class ConfigError(ValueError, TypeError):
    """A configuration that cannot be used; the message names the key (and
    the file, when it came from one)."""


@dataclass
class TrainConfig:
    """One training run. AltGrad's fields first (same names, order, defaults),
    then this project's additions (see the module docstring)."""

    # Model
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    block_size: int = 256
    vocab_size: int = 50304
    dropout: float = 0.0
    # Training
    batch_size: int = 64
    learning_rate: float = 3e-4
    max_steps: int = 5000
    warmup_steps: int = 100
    grad_clip: float = 1.0
    # Quantization
    use_fp8: bool = False
    fp8_format: str = "E5M2"
    use_shadow: bool = False
    # Checkpointing
    checkpoint_interval: int = 100
    checkpoint_dir: str = "checkpoints"
    max_checkpoints: int = 3
    # Stability
    nan_patience: int = 10
    bit_stall_threshold: float = 0.5
    overflow_threshold: float = 0.01
    dead_neuron_threshold: float = 1e-8
    dead_neuron_window: int = 100
    # Phase-4 interventions
    enable_partition_clipping: bool = False
    partition_clip_base: float = 1.0
    enable_emergency_shift: bool = False
    emergency_shift_nan_patience: int = 3
    emergency_shift_stall_threshold: float = 0.5
    # Diagnostics
    diagnostic_interval: int = 50
    log_stiffness: bool = False
    log_grid_alignment: bool = False
    log_ulp: bool = False
    # Manifold optimizer
    use_manifold_aware: bool = False
    manifold_mantissa_bits: int = 2
    manifold_max_stiffness: float = 1e6
    log_bit_position: bool = False
    # Logging
    log_interval: int = 1
    eval_interval: int = 100
    # W&B
    project: str = "altgrad"
    run_name: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    # Reproducibility
    seed: int = 42

    # --- this project's additions --------------------------------------
    # AdamW's hyperparameters (AltGrad hard-coded them in the Trainer).
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    # Learning rate: linear warm-up over warmup_steps, then this schedule
    # down to learning_rate * min_lr_ratio at max_steps.
    lr_schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    # Validation batches per evaluation (AltGrad: 10).
    eval_iters: int = 10
    # FP8 simulation roles: weights always; inputs (activations) of every
    # quantized linear; parameter gradients (delayed per-tensor scale).
    quantize_input: bool = True
    quantize_grads: bool = True
    # Amax window of the delayed scales.
    history_len: int = 16
    # Layers left in full precision (substrings of module names).
    skip_patterns: List[str] = field(default_factory=lambda: ["lm_head"])
    # W&B is used only when asked for (AltGrad: whenever `project` was set).
    use_wandb: bool = False
    # The token files (train.bin / val.bin / meta.json) and the run directory.
    data_dir: str = "data/kjv"
    run_dir: Optional[str] = None

    def __post_init__(self):
        _validate(self)


_POSITIVE_INTS = {"n_layer", "n_head", "n_embd", "block_size", "vocab_size", "batch_size",
                  "checkpoint_interval", "max_checkpoints", "nan_patience",
                  "dead_neuron_window", "emergency_shift_nan_patience",
                  "diagnostic_interval", "log_interval", "eval_interval", "eval_iters",
                  "history_len"}
_NONNEGATIVE_INTS = {"max_steps", "warmup_steps", "manifold_mantissa_bits", "seed"}
_UNIT_FLOATS = {"dropout", "bit_stall_threshold", "overflow_threshold",
                "emergency_shift_stall_threshold", "min_lr_ratio"}
_BETAS = {"beta1", "beta2"}


def _type_name(tp):
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(name, tp, value):
    """`value` as the annotation `tp` wants, or a ConfigError."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _coerce(name, inner, value)
    if origin in (list, List):
        (inner,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list of {_type_name(inner)}, "
                              f"got {type(value).__name__} {value!r}")
        return [_coerce(f"{name}[{i}]", inner, v) for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 6e-4 as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{name}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


def _validate(cfg):
    for f in dataclasses.fields(cfg):
        setattr(cfg, f.name, _coerce(f.name, f.type, getattr(cfg, f.name)))
    bad = []
    for name in _POSITIVE_INTS:
        if getattr(cfg, name) <= 0:
            bad.append(f"{name} must be > 0, got {getattr(cfg, name)}")
    for name in _NONNEGATIVE_INTS:
        if getattr(cfg, name) < 0:
            bad.append(f"{name} must be >= 0, got {getattr(cfg, name)}")
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if isinstance(v, float) and not math.isfinite(v):
            bad.append(f"{f.name} must be finite, got {v}")
    for name in _UNIT_FLOATS:
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            bad.append(f"{name} must be in [0, 1], got {getattr(cfg, name)}")
    for name in _BETAS:
        if not 0.0 <= getattr(cfg, name) < 1.0:
            bad.append(f"{name} must be in [0, 1), got {getattr(cfg, name)}")
    for name in ("learning_rate",):
        if not getattr(cfg, name) > 0.0:
            bad.append(f"{name} must be > 0, got {getattr(cfg, name)}")
    for name in ("weight_decay", "partition_clip_base", "manifold_max_stiffness",
                 "dead_neuron_threshold"):
        if getattr(cfg, name) < 0.0:
            bad.append(f"{name} must be >= 0, got {getattr(cfg, name)}")
    if cfg.n_embd % cfg.n_head:
        bad.append(f"n_embd ({cfg.n_embd}) must be a multiple of n_head ({cfg.n_head})")
    if cfg.fp8_format not in FP8_FORMAT_NAMES:
        bad.append(f"fp8_format: unknown format {cfg.fp8_format!r} "
                   f"(known: {', '.join(FP8_FORMAT_NAMES)})")
    if cfg.lr_schedule not in LR_SCHEDULES:
        bad.append(f"lr_schedule: unknown schedule {cfg.lr_schedule!r} "
                   f"(known: {', '.join(LR_SCHEDULES)})")
    if bad:
        raise ConfigError("; ".join(bad))


def config_to_dict(config):
    """The config as a plain dict in field order (what YAML gets)."""
    return dataclasses.asdict(config)


def config_from_dict(mapping, source="config"):
    """A :class:`TrainConfig` from a mapping: unknown keys are a ConfigError
    naming all of them (and `source`); missing keys take their defaults."""
    if not isinstance(mapping, dict):
        raise ConfigError(f"{source}: expected a mapping of field: value, "
                          f"got {type(mapping).__name__}")
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    unknown = [k for k in mapping if k not in names]
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))} "
                          f"(TrainConfig has: {', '.join(names)})")
    try:
        return TrainConfig(**mapping)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def with_overrides(config, overrides, source="overrides"):
    """A checked copy of `config` with the keys of `overrides` replaced
    (unknown keys and bad values are ConfigErrors naming `source`)."""
    return config_from_dict({**config_to_dict(config), **dict(overrides)}, source=source)


def save_config(config, path):
    """Write `config` as a flat YAML mapping in field order (parent
    directories created; written to a temporary file and renamed, so a
    reader never sees half a file)."""
    import yaml

    from ..utils.files import atomic_write

    with atomic_write(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config_to_dict(config), f, sort_keys=False, default_flow_style=False)


def load_config(path):
    """Read a :class:`TrainConfig` from a YAML file. FileNotFoundError for a
    missing file; ConfigError for malformed YAML (with the line), an empty
    file, a top level that is not a mapping, an unknown key, or a value of
    the wrong type or range."""
    import yaml

    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        mapping = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: malformed YAML: {e}") from None
    if mapping is None:
        raise ConfigError(f"{path}: the file is empty (expected a mapping of field: value)")
    return config_from_dict(mapping, source=path)
