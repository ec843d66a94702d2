# SPDX-License-Identifier: MIT
"""The raw array layer: numpy arrays and CPU torch tensors handed to the C
extension without copies, and the rules for everything else.

Rules, for every array argument (``x``, ``codes``, ``dy``...):

- **numpy arrays and CPU torch tensors** are used in place when they are
  C-contiguous and of the right dtype (float32; ``uint8``/``uint16`` codes
  for :func:`decode`). Torch tensors go through their zero-copy
  ``tensor.numpy()`` view.
- **A wrong dtype** (float64, float16, bfloat16, int...) raises TypeError:
  nothing is converted silently, since a float64 -> float32 cast would round
  twice. Convert explicitly (``x.float()``, ``x.astype(np.float32)``).
- **A non-contiguous input** (a transpose, a slice with steps) is copied to a
  contiguous array first (documented copy); the result is contiguous with the
  input's shape. A non-contiguous ``out=`` is a ValueError (results cannot be
  written through a copy).
- **A tensor on another device** (CUDA, meta...) raises ValueError: altgrad
  runs on the CPU; move it with ``x.cpu()``.
- **A tensor that requires grad**, passed to these raw (no-autograd)
  functions while grad mode is on, raises ValueError: the result would
  silently cut the autograd graph. Use :func:`altgrad.quantization.quantize`
  (autograd) or pass ``x.detach()``. Under ``torch.no_grad()`` it is accepted.
- ``out=`` (optional) must be a writable, C-contiguous array of the input's
  shape and of the output dtype, of the same kind (numpy or torch) as the
  input; it may be the input itself (in place). Writes through the numpy view
  do not bump a tensor's autograd version counter: do not pass a tensor that
  autograd saved for backward.

Results have the kind of the input: numpy in, numpy out; tensor in, tensor
out.
"""
import sys

import numpy as np

from . import _C

__all__ = ["quantize_array", "dequantize_array", "encode", "decode"]


def _is_tensor(x):
    # torch is not imported here: when nobody has imported it, no object can
    # be a tensor, and numpy-only users do not pay for loading it.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def tensor_view(x, name, dtypes=("float32",), allow_grad=False, copy_ok=True):
    """A C-contiguous numpy view of tensor ``x`` (or a contiguous copy when
    ``copy_ok`` and it is not contiguous). Checks device, dtype and grad."""
    if x.device.type != "cpu":
        raise ValueError(
            f"{name} is on device '{x.device}': altgrad runs on the CPU "
            f"(move it with .cpu())"
        )
    dt = str(x.dtype).replace("torch.", "")
    if dt not in dtypes:
        raise TypeError(
            f"{name} must be a {' or '.join(dtypes)} tensor, got {x.dtype} "
            f"(convert explicitly, e.g. {name}.float())"
        )
    torch = sys.modules["torch"]
    if x.requires_grad and not allow_grad and torch.is_grad_enabled():
        raise ValueError(
            f"{name} requires grad: this raw op does not record autograd and "
            f"would cut the graph; use altgrad.quantization.quantize / "
            f"dequantize, or pass {name}.detach()"
        )
    if not x.is_contiguous():
        if not copy_ok:
            raise ValueError(f"{name} must be C-contiguous (it is written in place)")
        x = x.contiguous()
    v = x.detach().numpy()
    if dt == "int16" and "int16" in dtypes:
        v = v.view(np.uint16)  # 16-bit codes: torch has no uint16
    return v


def array_view(x, name, dtypes=("float32",), copy_ok=True):
    """``x`` (a numpy array) checked for dtype, copied when not contiguous."""
    if x.dtype.name not in dtypes:
        raise TypeError(
            f"{name} must be a {' or '.join(dtypes)} array, got {x.dtype} "
            f"(convert explicitly, e.g. {name}.astype(np.float32))"
        )
    if not x.flags.c_contiguous:
        if not copy_ok:
            raise ValueError(f"{name} must be C-contiguous (it is written in place)")
        x = np.ascontiguousarray(x)
    return x


def as_buffer(x, name, dtypes=("float32",), copy_ok=True):
    """The buffer the C extension reads for ``x``: numpy arrays and tensors
    are checked (see the module doc); anything else goes to the extension,
    which accepts float32 buffer exporters and raises TypeError otherwise."""
    if _is_tensor(x):
        return tensor_view(x, name, dtypes, copy_ok=copy_ok)
    if isinstance(x, np.ndarray):
        return array_view(x, name, dtypes, copy_ok=copy_ok)
    if isinstance(x, (int, float, list, tuple)):
        raise TypeError(
            f"{name} must be a float32 numpy array or torch tensor, not "
            f"{type(x).__name__}"
        )
    return x


def _out_for(x, out, np_dtype):
    """(object to return, buffer to write) for a given ``out``."""
    if _is_tensor(x) != _is_tensor(out):
        raise TypeError("out must be of the same kind as the input (numpy or torch)")
    if _is_tensor(out) and out.requires_grad:
        raise ValueError("out requires grad: autograd cannot track writes into it")
    name = np.dtype(np_dtype).name
    dtypes = (name, "int16") if name == "uint16" and _is_tensor(out) else (name,)
    return out, as_buffer(out, "out", dtypes, copy_ok=False)


def scale_value(scale):
    """A scale given as a Python number, a one-element tensor or array."""
    if _is_tensor(scale) or isinstance(scale, np.ndarray):
        n = scale.numel() if _is_tensor(scale) else scale.size
        if n != 1:
            raise ValueError(
                f"scale must hold one number (per-tensor scaling), got shape "
                f"{tuple(scale.shape)}"
            )
        return float(scale.reshape(()).item())
    if isinstance(scale, (bool, str, bytes)) or scale is None:
        raise TypeError(f"scale must be a real number or a one-element tensor, not {type(scale).__name__}")
    return float(scale)


def _new_like(x, np_dtype):
    """A new output tensor and its numpy view when x is a tensor; else
    (None, None): the extension allocates a numpy array."""
    if not _is_tensor(x):
        return None, None
    torch = sys.modules["torch"]
    if np.dtype(np_dtype) == np.float32:
        t = torch.empty(tuple(x.shape), dtype=torch.float32)
        return t, t.numpy()
    # codes: uint8, or int16 holding the 16 bits (torch has no uint16)
    code_dtype = torch.uint8 if np.dtype(np_dtype) == np.uint8 else torch.int16
    t = torch.empty(tuple(x.shape), dtype=code_dtype)
    return t, t.numpy().view(np_dtype)


def _c_format(fmt):
    from . import format as _format

    return _format(fmt)


def _run(x, out, np_dtype, call):
    """Check or allocate the output, run ``call(buffer)``, return the result
    of the input's kind."""
    if out is None:
        ret, buf = _new_like(x, np_dtype)
    else:
        ret, buf = _out_for(x, out, np_dtype)
    res = call(buf)
    return res if ret is None else ret


def quantize_array(x, format, scale=1.0, out=None, *, rounding="nearest_even",
                   overflow="saturate", seed=0, stream=0, offset=0, threads=0,
                   stats=None, kernel="auto"):
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
    Returns ``out`` or a new array/tensor.
    """
    f = _c_format(format)
    s = scale_value(scale)
    xb = as_buffer(x, "x")
    return _run(x, out, np.float32, lambda ob: _C.quantize(
        xb, f, s, ob, rounding=rounding, overflow=overflow, seed=seed,
        stream=stream, offset=offset, threads=threads, stats=stats, kernel=kernel))


def dequantize_array(x, scale=1.0, out=None):
    """``x * scale`` in float32, without autograd (``ag_dequantize``)."""
    s = scale_value(scale)
    xb = as_buffer(x, "x")
    return _run(x, out, np.float32, lambda ob: _C.dequantize(xb, s, ob))


def encode(x, format, scale=1.0, out=None, *, rounding="nearest_even",
           overflow="saturate", seed=0, stream=0, offset=0, threads=0,
           stats=None, kernel="auto"):
    """Packed codes of ``x / scale``: uint8 for formats of at most 8 bits,
    uint16 above (torch: ``torch.uint8``, or ``torch.int16`` holding the 16
    bits, since torch has no uint16). Options as :func:`quantize_array`."""
    f = _c_format(format)
    s = scale_value(scale)
    xb = as_buffer(x, "x")
    code_dtype = np.uint8 if f.bits <= 8 else np.uint16
    return _run(x, out, code_dtype, lambda ob: _C.encode(
        xb, f, s, ob, rounding=rounding, overflow=overflow, seed=seed,
        stream=stream, offset=offset, threads=threads, stats=stats, kernel=kernel))


def decode(codes, format, scale=1.0, out=None):
    """``to_real(codes) * scale`` as float32 (``ag_decode_u8``/``_u16`` by
    the dtype of ``codes``: uint8, or uint16 / torch.int16). ValueError for
    a code outside the format."""
    f = _c_format(format)
    s = scale_value(scale)
    cb = as_buffer(codes, "codes", ("uint8", "uint16", "int16"))
    if isinstance(cb, np.ndarray) and cb.dtype == np.int16:
        cb = cb.view(np.uint16)
    return _run(codes, out, np.float32, lambda ob: _C.decode(cb, f, s, ob))
