# SPDX-License-Identifier: MIT
"""AltGrad's training stack on altgrad. Importing this package loads nothing
beyond torch: each name is imported from its module on first use, so
``from altgrad.training import TrainConfig`` needs only PyYAML, and no
optional extra (tiktoken, wandb) is ever imported at import time."""
import importlib

# name -> module (inside this package) that defines it
_LAZY = {
    "TrainConfig": "config", "load_config": "config", "save_config": "config",
    "ConfigError": "config",
    "get_batch": "data", "load_meta": "data", "DataError": "data",
    "compute_gradient_stats": "metrics", "compute_stability_metrics": "metrics",
    "gradient_cosine_similarity": "metrics", "compute_rank_stats": "metrics",
    "compute_throughput_metrics": "metrics",
    "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint",
    "CheckpointManager": "checkpoint", "CheckpointError": "checkpoint",
    "WandbTracker": "callbacks", "RunLogger": "callbacks", "AlertRules": "callbacks",
    "FP32ShadowModel": "shadow",
    "Trainer": "trainer", "TrainerError": "trainer", "lr_at_step": "trainer",
    "FormatExperimentRunner": "format_runner", "ExperimentResult": "format_runner",
    "DiagnosticSnapshot": "format_runner", "run_format_experiment": "format_runner",
    # modules of other parts of the stack (GPT, optimizers)
    "GPT": "model", "GPTConfig": "model",
    "ManifoldAdamW": "optimizer", "GridOptim": "optimizer",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'altgrad.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{mod}", __name__), name)


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
