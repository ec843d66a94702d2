# SPDX-License-Identifier: MIT
"""altgrad — simulate narrow floating-point formats (FP8 and any ExMy up to 16
bits) on float32 data, for neural-network training.

The PyTorch API lives in :mod:`altgrad.quantization`::

    from altgrad.quantization import quantize, dequantize, E5M2
    y = quantize(x, E5M2, torch.tensor(1.0))   # STE gradient: dx = dy

This top-level module gives the whole registry of the C library and the raw
(no-autograd) array operations:

- :func:`format` — a :class:`Format` from a registry name (``"E5M2"``,
  ``"float8_e4m3fn"``, ``"bfloat16"``, ...) or a spec string
  (``"e3m4:bias=2:specials=none"``); :func:`formats` lists the registry names.
- :func:`quantize_array`, :func:`dequantize_array`, :func:`encode`,
  :func:`decode` — on float32 numpy arrays or CPU torch tensors, zero-copy
  for C-contiguous inputs (see :mod:`altgrad._arrays` for the rules on
  dtype, device, contiguity and ``requires_grad``).

Everything runs in the C library (``altgrad._C``) with the GIL released.
"""
from . import _C
from ._C import Format
from ._arrays import decode, dequantize_array, encode, quantize_array

__version__ = _C.__version__

__all__ = [
    "Format",
    "format",
    "formats",
    "quantize_array",
    "dequantize_array",
    "encode",
    "decode",
    "quantization",
    "__version__",
]


def format(spec):  # noqa: A001 - the package's name for "a format"
    """Return the :class:`Format` for ``spec``.

    ``spec`` is a registry name (case-insensitive: the AltGrad family
    ``E0M7`` ... ``E7M0``, the 16-bit splits ``E0M15`` ... ``E8M7`` with
    ``FP16``/``BF16``, and the ml_dtypes names ``float8_e4m3fn`` ...
    ``bfloat16``), a spec ``BASE[:KEY=VALUE]...`` (``BASE`` a registry name or
    ``eXmY``; keys ``bias``, ``specials``, ``signed``, ``zero``), an existing
    :class:`Format` (returned as is) or an
    :class:`altgrad.quantization.FP8Format` (its C format).

    Raises ValueError for an unknown name or a malformed spec (the message
    names the bad part), TypeError for anything else.
    """
    if isinstance(spec, Format):
        return spec
    if isinstance(spec, str):
        return Format(spec)
    c_format = getattr(spec, "c_format", None)
    if isinstance(c_format, Format):
        return c_format
    raise TypeError(
        "a format must be a str spec, an altgrad.Format or an FP8Format, "
        f"not {type(spec).__name__}"
    )


def formats():
    """The names of every registry entry (standard and AltGrad), in order."""
    return _C.format_names()


def __getattr__(name):
    # altgrad.quantization imports torch: load it on first use, so that the
    # numpy-only parts work without torch.
    if name == "quantization":
        import importlib

        return importlib.import_module(".quantization", __name__)
    raise AttributeError(f"module 'altgrad' has no attribute {name!r}")
