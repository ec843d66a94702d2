# SPDX-License-Identifier: MIT
"""TrainConfig, load_config, save_config: AltGrad's fields and defaults, the
nine shipped configs, and every kind of bad input."""
import dataclasses
import os

import pytest
import yaml

from altgrad.training.config import (ConfigError, TrainConfig, config_from_dict, load_config,
                                     save_config)

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG_DIR = os.path.join(HERE, "..", "..", "experiments", "configs")
NINE = ["bf16_baseline", "e0m7_uniform", "e1m6_uniform", "e3m4_uniform", "e5m2_fp8",
        "e5m2_manifold", "e5m2_short", "e5m2_standard", "e7m0_uniform"]

# AltGrad's fields, in declaration order, with their defaults (ALTGRAD_API 9.1)
ALTGRAD_FIELDS = [
    ("n_layer", 6), ("n_head", 6), ("n_embd", 384), ("block_size", 256), ("vocab_size", 50304),
    ("dropout", 0.0), ("batch_size", 64), ("learning_rate", 3e-4), ("max_steps", 5000),
    ("warmup_steps", 100), ("grad_clip", 1.0), ("use_fp8", False), ("fp8_format", "E5M2"),
    ("use_shadow", False), ("checkpoint_interval", 100), ("checkpoint_dir", "checkpoints"),
    ("max_checkpoints", 3), ("nan_patience", 10), ("bit_stall_threshold", 0.5),
    ("overflow_threshold", 0.01), ("dead_neuron_threshold", 1e-8), ("dead_neuron_window", 100),
    ("enable_partition_clipping", False), ("partition_clip_base", 1.0),
    ("enable_emergency_shift", False), ("emergency_shift_nan_patience", 3),
    ("emergency_shift_stall_threshold", 0.5), ("diagnostic_interval", 50),
    ("log_stiffness", False), ("log_grid_alignment", False), ("log_ulp", False),
    ("use_manifold_aware", False), ("manifold_mantissa_bits", 2),
    ("manifold_max_stiffness", 1e6), ("log_bit_position", False), ("log_interval", 1),
    ("eval_interval", 100), ("project", "altgrad"), ("run_name", None), ("tags", []),
    ("seed", 42),
]


def test_altgrad_fields_order_and_defaults():
    c = TrainConfig()
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    assert names[:len(ALTGRAD_FIELDS)] == [n for n, _ in ALTGRAD_FIELDS]
    for n, v in ALTGRAD_FIELDS:
        assert getattr(c, n) == v, n
    assert c.tags is not TrainConfig().tags  # a fresh list each time


@pytest.mark.parametrize("name", NINE)
def test_nine_configs_load_with_their_values(name):
    path = os.path.join(CONFIG_DIR, f"{name}.yaml")
    with open(path) as f:
        raw = yaml.safe_load(f)
    c = load_config(path)
    for k, v in raw.items():
        got = getattr(c, k)
        assert got == (float(v) if isinstance(got, float) else v), k
    assert c.learning_rate == 6e-4 and isinstance(c.learning_rate, float)  # "6e-4" string
    assert c.vocab_size == 50257 and c.batch_size == 12


def test_project_copy_matches_shared_configs():
    shared = "/work/shared/altgrad-configs"
    if not os.path.isdir(shared):
        pytest.skip("the shared AltGrad configs are not on this machine")
    for name in NINE:
        with open(os.path.join(shared, f"{name}.yaml")) as a, \
                open(os.path.join(CONFIG_DIR, f"{name}.yaml")) as b:
            assert yaml.safe_load(a) == yaml.safe_load(b), name


def test_round_trip(tmp_path):
    c = TrainConfig(n_layer=2, fp8_format="E3M4", tags=["a", "b"], run_name="r",
                    learning_rate=1e-3)
    p = tmp_path / "sub" / "c.yaml"
    save_config(c, p)
    assert load_config(p) == c
    text = p.read_text()
    assert text.index("n_layer") < text.index("seed") < text.index("weight_decay")


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_unknown_keys_named(tmp_path):
    with pytest.raises(ConfigError, match="'n_layers'.*'colour'"):
        load_config(write(tmp_path, "n_layers: 2\ncolour: red\n"))
    with pytest.raises(TypeError):  # AltGrad's tests expect a TypeError
        config_from_dict({"bogus": 1})


def test_malformed_and_empty_yaml(tmp_path):
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(write(tmp_path, "n_layer: [2\n"))
    with pytest.raises(ConfigError, match="empty"):
        load_config(write(tmp_path, "# nothing\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("text,match", [
    ("n_layer: two\n", "n_layer: expected int"),
    ("n_layer: 2.5\n", "n_layer: expected int"),
    ("use_fp8: 1\n", "use_fp8: expected bool"),
    ("learning_rate: fast\n", "learning_rate: expected float"),
    ("tags: fp8\n", "tags: expected a list"),
    ("tags: [1]\n", r"tags\[0\]: expected str"),
    ("fp8_format: E9M9\n", "unknown format 'E9M9'"),
    ("eval_interval: 0\n", "eval_interval must be > 0"),
    ("dropout: 1.5\n", r"dropout must be in \[0, 1\]"),
    ("n_embd: 10\nn_head: 3\n", "multiple of n_head"),
    ("learning_rate: .nan\n", "finite"),
    ("lr_schedule: step\n", "unknown schedule"),
])
def test_bad_values(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, text))


def test_direct_construction_is_checked():
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig(batch_size=-1)
    assert TrainConfig(dropout=0).dropout == 0.0  # an int where a float goes
