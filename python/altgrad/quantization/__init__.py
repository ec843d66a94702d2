# SPDX-License-Identifier: MIT
"""The AltGrad API on the altgrad C library::

    import torch
    from altgrad.quantization import quantize, dequantize, E5M2

    x = torch.randn(10, requires_grad=True)
    y = quantize(x, E5M2, torch.tensor(1.0))   # float32, on E5M2's grid
    y.sum().backward()                         # x.grad == 1 (STE)

- :mod:`.formats`: :class:`FP8Format`, ``E0M7`` ... ``E7M0``,
  ``FORMAT_REGISTRY`` (the five headline formats). The library's whole
  registry and spec strings: :func:`altgrad.format`.
- :mod:`.ops`: :func:`quantize`, :func:`dequantize`, :class:`QuantizeFunc`,
  :class:`DequantizeFunc`.
- :mod:`.scaling`: :class:`DelayedScaler` (delayed scaling, owned by the C
  library), :class:`AmaxHistory`, :func:`compute_scale`,
  :class:`ScalingConfig`, per-channel (:func:`quantize_rows`) and MX block
  (:func:`mx_quantize`, :func:`mx_encode`, :func:`mx_decode`) quantization.
- :mod:`.diagnostics`: :func:`detect_bit_stall`, :class:`BitStallDetector`,
  flips, ULP distance, stiffness, exponent histogram.
"""
from .formats import (
    E0M7,
    E1M6,
    E2M5,
    E3M4,
    E4M3,
    E5M2,
    E6M1,
    E7M0,
    FORMAT_REGISTRY,
    FP8Format,
)
from .ops import DequantizeFunc, QuantizeFunc, dequantize, quantize
from .scaling import (  # issue 5: scaling
    MX_BLOCK,
    MX_ELEMENT_FORMATS,
    AmaxHistory,
    DelayedScaler,
    MXQuantizeFunc,
    QuantizeRowsFunc,
    ScalingConfig,
    amax,
    amax_rows,
    channel_scales,
    compute_scale,
    mx_decode,
    mx_encode,
    mx_quantize,
    mx_scale_code,
    mx_scale_count,
    mx_scale_value,
    quantize_rows,
)
from .diagnostics import (  # issue 5: diagnostics
    GRAD_EPS,
    ULP_NAN,
    BitStallDetector,
    count_code_flips,
    count_flips,
    detect_bit_stall,
    exponent_histogram,
    exponent_histogram_labels,
    stall_ratio,
    stiffness,
    ulp_distance,
    ulp_distance_stats,
    update_flips,
)

__all__ = [
    "FP8Format",
    "E0M7",
    "E1M6",
    "E2M5",
    "E3M4",
    "E4M3",
    "E5M2",
    "E6M1",
    "E7M0",
    "FORMAT_REGISTRY",
    "quantize",
    "dequantize",
    "QuantizeFunc",
    "DequantizeFunc",
    # scaling (issue 5)
    "ScalingConfig",
    "AmaxHistory",
    "DelayedScaler",
    "amax",
    "compute_scale",
    "amax_rows",
    "channel_scales",
    "quantize_rows",
    "QuantizeRowsFunc",
    "MX_BLOCK",
    "MX_ELEMENT_FORMATS",
    "mx_scale_count",
    "mx_scale_code",
    "mx_scale_value",
    "mx_encode",
    "mx_decode",
    "mx_quantize",
    "MXQuantizeFunc",
    # diagnostics (issue 5)
    "GRAD_EPS",
    "ULP_NAN",
    "detect_bit_stall",
    "BitStallDetector",
    "count_flips",
    "count_code_flips",
    "update_flips",
    "stall_ratio",
    "ulp_distance",
    "ulp_distance_stats",
    "stiffness",
    "exponent_histogram",
    "exponent_histogram_labels",
]

# issue 16: stability, advanced diagnostics, flip metrics, rank health
from .stability import EmergencyMantissaShift, PartitionRelativeClipper
from .advanced_diagnostics import (
    compute_stiffness_field,
    compute_ulp_distance,
    gradient_stiffness_correlation,
    grid_alignment_error,
    grid_alignment_statistics,
    ulp_statistics,
)
from .flip_metrics import WeightFlipTracker, compute_flip_rate, compute_stall_ratio
from .rank_health import (
    RankHealthMonitor,
    RankTrendDetector,
    compute_effective_rank,
    compute_stable_rank,
)

# each research module owns its export list; the package re-exports it whole
from . import advanced_diagnostics as _ad, flip_metrics as _fm, rank_health as _rh
from . import stability as _st

__all__ += [*_st.__all__, *_ad.__all__, *_fm.__all__, *_rh.__all__]
del _st, _ad, _fm, _rh
