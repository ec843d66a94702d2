# SPDX-License-Identifier: MIT
"""Point altgrad at a PyTorch model: its ``nn.Linear`` layers cast their
weights, inputs and output gradients onto narrow formats (AltGrad's
``altgrad.integration``, with per-role casts)::

    from altgrad.integration import quantize_model, dequantize_model, stats
    quantize_model(model, "E5M2", skip_patterns=["lm_head"])   # AltGrad style
    quantize_model(model, config="fp8")          # the standard FP8 recipe
    stats(model)                                 # counters per layer and role

- :mod:`.config`: :class:`LayerPrecisionRule`, :class:`QuantizationConfig`,
  :func:`create_mixed_precision_config` (AltGrad), :class:`CastConfig`,
  :class:`LinearConfig`, :func:`recipe` (per role).
- :mod:`.wrapper`: :class:`QuantizedLinear`.
- :mod:`.surgery`: :func:`quantize_model`, :func:`dequantize_model`.
- :mod:`.stats`: :func:`stats`, :func:`reset_stats`.

Needs only torch and altgrad's C core (CPU, float32).
"""
from .config import (
    RECIPES,
    CastConfig,
    LayerPrecisionRule,
    LinearConfig,
    QuantizationConfig,
    UnknownFormatError,
    create_mixed_precision_config,
    recipe,
)
from .stats import reset_stats, stats
from .surgery import dequantize_model, iter_quantized, quantize_model
from .wrapper import QuantizedLinear

__all__ = [
    "QuantizedLinear",
    "quantize_model",
    "dequantize_model",
    "LayerPrecisionRule",
    "QuantizationConfig",
    "create_mixed_precision_config",
    "CastConfig",
    "LinearConfig",
    "RECIPES",
    "recipe",
    "UnknownFormatError",
    "stats",
    "reset_stats",
    "iter_quantized",
]
