# SPDX-License-Identifier: MIT
"""The one tensor I/O layer: how numpy arrays and CPU torch tensors reach
the C extension, how outputs are made, and the scalar and option arguments
every wrapper passes along. The raw (no-autograd) array functions live here
too.

Rules, for every array argument (``x``, ``codes``, ``dy``...):

- **numpy arrays and CPU torch tensors** are used in place when they are
  C-contiguous and of the right dtype (float32; ``uint8``/``uint16`` codes
  for :func:`decode`, ``torch.int16`` holding 16-bit codes). The C extension
  reads tensors directly (no ``.numpy()`` view, no copy).
- **A wrong dtype** (float64, float16, bfloat16, int...) raises TypeError:
  nothing is converted silently, since a float64 -> float32 cast would round
  twice. The message names the conversion (``x.float()``,
  ``codes.to(torch.uint8)``...).
- **A non-contiguous input** (a transpose, a slice with steps) is copied to a
  contiguous array first (documented copy); the result is contiguous with the
  input's shape. A non-contiguous ``out=`` is a ValueError (results cannot be
  written through a copy).
- **A tensor on another device** (CUDA...) is not read by the C extension
  (ValueError there); the raw functions below hand it to the device-generic
  torch path of :mod:`altgrad.backends`, which computes the same bits on
  that device (``backend="torch"`` forces it for CPU tensors).
- **A tensor that requires grad**, passed to these raw (no-autograd)
  functions while grad mode is on, raises ValueError: the result would
  silently cut the autograd graph. Use :func:`altgrad.quantization.quantize`
  (autograd) or pass ``x.detach()``. Under ``torch.no_grad()`` it is accepted.
- ``out=`` (optional) must be a writable, C-contiguous array of the input's
  shape and of the output dtype, of the same kind (numpy or torch) as the
  input; it may be the input itself (in place). Writes into a tensor do not
  bump its autograd version counter: do not pass a tensor that autograd
  saved for backward.

Results have the kind of the input: numpy in, numpy out; tensor in, tensor
out.
"""
import math
import sys

import numpy as np

from . import _C

__all__ = ["quantize_array", "dequantize_array", "encode", "decode"]


def is_tensor(x):
    # torch is not imported here: when nobody has imported it, no object can
    # be a tensor, and numpy-only users do not pay for loading it.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def read(x, name, allow_grad=False):
    """``x`` ready for the C extension: a C-contiguous tensor or numpy array
    (a contiguous copy when it is not). The extension checks dtype and
    device; here: the kind of object, contiguity, and ``requires_grad``
    (refused while grad mode is on, unless ``allow_grad``: read-only
    diagnostics)."""
    if is_tensor(x):
        if x.requires_grad and sys.modules["torch"].is_grad_enabled():
            if not allow_grad:
                raise ValueError(
                    f"{name} requires grad: this raw op does not record autograd and "
                    f"would cut the graph; use altgrad.quantization.quantize / "
                    f"dequantize, or pass {name}.detach()"
                )
            x = x.detach()
        return x if x.is_contiguous() else x.contiguous()
    if isinstance(x, np.ndarray):
        return x if x.flags.c_contiguous else np.ascontiguousarray(x)
    if isinstance(x, (int, float, str, list, tuple)) or x is None:
        raise TypeError(
            f"{name} must be a torch.Tensor or numpy array, not {type(x).__name__}"
        )
    return x  # another buffer exporter: the extension reads it or says why not


def numel(x):
    """Element count of a tensor or numpy array."""
    return x.numel() if is_tensor(x) else x.size


def new(like_tensor, shape, np_dtype):
    """(result, buffer to write): a new torch tensor when ``like_tensor``,
    else a numpy array, of ``shape`` and the dtype (float32, uint8, int32)."""
    shape = tuple(int(s) for s in shape)
    if like_tensor:
        torch = sys.modules["torch"]
        tdt = {np.dtype(np.float32): torch.float32, np.dtype(np.uint8): torch.uint8,
               np.dtype(np.int32): torch.int32}[np.dtype(np_dtype)]
        t = torch.empty(shape, dtype=tdt)
        return t, t
    a = np.empty(shape, dtype=np_dtype)
    return a, a


def out_arg(x, out):
    """A given ``out``: of the input's kind, not requiring grad (the
    extension checks dtype, shape, contiguity and writability)."""
    if out is None:
        return None
    if is_tensor(x) != is_tensor(out):
        raise TypeError("out must be of the same kind as the input (numpy or torch)")
    if is_tensor(out) and out.requires_grad:
        raise ValueError("out requires grad: autograd cannot track writes into it")
    return out


def matrix(shape):
    """(rows, cols) of a tensor cut along its last axis: rows = product of
    the leading dimensions, cols = the last one; a 0-d tensor is 1 x 1."""
    if len(shape) == 0:
        return 1, 1
    return math.prod(shape[:-1]), shape[-1]


def fmt(format):
    """The C format of an FP8Format, altgrad.Format or spec string."""
    if type(format) is _C.Format:
        return format
    c = getattr(format, "_c", None)  # an FP8Format's C format
    if type(c) is _C.Format:
        return c
    from . import format as _format

    return _format(format)


def scale_value(scale):
    """A scale given as a Python number, a one-element tensor or array."""
    if type(scale) is float:  # the common case
        return scale
    if is_tensor(scale) or isinstance(scale, np.ndarray):
        n = numel(scale)
        if n != 1:
            raise ValueError(
                f"scale must hold one number (per-tensor scaling), got shape "
                f"{tuple(scale.shape)}"
            )
        return float(scale.reshape(()).item())
    if isinstance(scale, (bool, str, bytes)) or scale is None:
        raise TypeError(f"scale must be a real number or a one-element tensor, not {type(scale).__name__}")
    return float(scale)


def seed_for(rounding, seed):
    """The seed a call passes on: ``seed``, or with ``seed=None`` a fresh
    one from torch's generator for stochastic rounding (so that
    ``torch.manual_seed`` makes runs reproducible), else 0."""
    if seed is not None:
        return seed
    if rounding == "nearest_even" or _C.option("rounding", rounding) != "stochastic":
        return 0
    torch = sys.modules.get("torch")
    if torch is not None:
        return int(torch.randint(0, 2**62, ()).item())
    return int(np.random.default_rng().integers(0, 2**62))  # pragma: no cover


def options(rounding="nearest_even", overflow="saturate", seed=0, stream=0,
            offset=0, threads=0, kernel="auto", *, draw_seed=False):
    """The rounding options of a C call, as keywords. ``seed=None`` with
    ``draw_seed``: :func:`seed_for`; without: 0."""
    if seed is None:
        seed = seed_for(rounding, None) if draw_seed else 0
    return {"rounding": rounding, "overflow": overflow, "seed": seed,
            "stream": stream, "offset": offset, "threads": threads,
            "kernel": kernel}


# --- the raw array functions --------------------------------------------------


def _torch_path(backend, x):
    """True when the call on x runs on the torch path (altgrad.backends)."""
    if backend == "auto" and not (is_tensor(x) and x.device.type != "cpu"):
        return False  # the common case, before any import
    from .backends import use_torch

    return use_torch(backend, x)


def quantize_array(x, format, scale=1.0, out=None, *, rounding="nearest_even",
                   overflow="saturate", seed=0, stream=0, offset=0, threads=0,
                   stats=None, kernel="auto", backend="auto"):
    """``to_real(to_bits(x / scale)) * scale`` element by element, in float32,
    without autograd (the C library's ``ag_quantize``).

    ``format``: a :class:`altgrad.Format`, an ``FP8Format`` or a spec string.
    ``scale``: a positive finite number (rounded to float32) or a one-element
    tensor/array. ``rounding``: ``nearest_even`` (default), ``nearest_away``,
    ``toward_zero``, ``down``, ``up``, ``stochastic`` (keyed by ``seed``,
    ``stream`` and ``offset`` + element index). ``overflow``: ``saturate``
    (default) or ``ieee``. ``stats``: a dict to which the counters ``total``,
    ``overflow``, ``underflow`` and ``nan`` are added. Array rules: see the
    module documentation. ``kernel``: the C code path (``auto``, or one of
    ``altgrad._C.kernels()``), all bit-identical; for tests and benchmarks.
    ``backend``: ``auto`` (the C core; the torch path for a tensor on
    another device), ``c`` or ``torch`` (see :mod:`altgrad.backends`; the
    same bits). Returns ``out`` or a new array/tensor.
    """
    if _torch_path(backend, x):
        from .backends import dispatch

        return dispatch.raw("quantize", x, format, scale, out, rounding=rounding,
                            overflow=overflow, seed=seed, stream=stream, offset=offset,
                            threads=threads, stats=stats, kernel=kernel)
    f = fmt(format)
    s = scale_value(scale)
    return _C.quantize(read(x, "x"), f, s, out_arg(x, out), rounding=rounding,
                       overflow=overflow, seed=seed, stream=stream, offset=offset,
                       threads=threads, stats=stats, kernel=kernel)


def dequantize_array(x, scale=1.0, out=None, *, backend="auto"):
    """``x * scale`` in float32, without autograd (``ag_dequantize``).
    ``backend`` as :func:`quantize_array`."""
    if _torch_path(backend, x):
        from .backends import dispatch

        return dispatch.raw("dequantize", x, None, scale, out)
    s = scale_value(scale)
    return _C.dequantize(read(x, "x"), s, out_arg(x, out))


def encode(x, format, scale=1.0, out=None, *, rounding="nearest_even",
           overflow="saturate", seed=0, stream=0, offset=0, threads=0,
           stats=None, kernel="auto", backend="auto"):
    """Packed codes of ``x / scale``: uint8 for formats of at most 8 bits,
    uint16 above (torch: ``torch.uint8``, or ``torch.int16`` holding the 16
    bits, since torch has no uint16). Options as :func:`quantize_array`."""
    if _torch_path(backend, x):
        from .backends import dispatch

        return dispatch.raw("encode", x, format, scale, out, rounding=rounding,
                            overflow=overflow, seed=seed, stream=stream, offset=offset,
                            threads=threads, stats=stats, kernel=kernel)
    f = fmt(format)
    s = scale_value(scale)
    return _C.encode(read(x, "x"), f, s, out_arg(x, out), rounding=rounding,
                     overflow=overflow, seed=seed, stream=stream, offset=offset,
                     threads=threads, stats=stats, kernel=kernel)


def decode(codes, format, scale=1.0, out=None, *, backend="auto"):
    """``to_real(codes) * scale`` as float32 (``ag_decode_u8``/``_u16`` by
    the dtype of ``codes``: uint8, or uint16 / torch.int16). ValueError for
    a code outside the format. ``backend`` as :func:`quantize_array`."""
    if _torch_path(backend, codes):
        from .backends import dispatch

        return dispatch.raw("decode", codes, format, scale, out)
    f = fmt(format)
    s = scale_value(scale)
    return _C.decode(read(codes, "codes"), f, s, out_arg(codes, out))
