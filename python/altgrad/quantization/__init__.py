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
]
