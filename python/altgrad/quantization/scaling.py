# SPDX-License-Identifier: MIT
"""Scaling (issue 5): amax, the amax history of delayed scaling,
``compute_scale``, per-channel (one scale per row) and MX block
quantization, all in the C library (``altgrad.h``, section Scaling)::

    from altgrad.quantization import AmaxHistory, compute_scale, quantize, E4M3
    hist = AmaxHistory(16)
    hist.update(x)                                   # amax of x, NaNs left out
    y = quantize(x, E4M3, compute_scale(hist.get_amax(), E4M3))

Inputs are float32 CPU torch tensors or numpy arrays (results of the same
kind); the fake quantizers (:func:`quantize_rows`, :func:`mx_quantize`)
have the straight-through gradient for tensors, computed by the C backward
functions. Tensors on another device (CUDA...) take the device-generic
torch path on that device, with the same bits (:mod:`altgrad.backends`;
``backend="torch"`` forces it on CPU tensors); amax and the history read
back one number per call. A "matrix" is a tensor cut along its last axis: rows = the
product of the leading dimensions, cols = the last one (a 0-d tensor is
1 x 1); per-row results have shape ``x.shape[:-1]``.

``compute_scale(amax, f)`` of a Python number is exactly ``amax /
max_finite`` (a double), or ``scale_min`` when that is larger; of a tensor
or array, the float32 quotient per element (as ``amax / max_finite`` in
torch). A zero or tiny amax gives ``scale_min``, an infinite amax the scale
of the largest float32 (never an infinite scale), a NaN or negative amax a
ValueError. quantize rounds any scale to float32 first.
"""
import dataclasses
import math

import numpy as np
import torch

from .. import _C
from .. import _arrays as _a
from ..backends import dispatch as _dispatch
from ..backends import torch_path as _tp
from ..backends import use_torch as _torch_path
from .ops import clipped_backward, straight_through

__all__ = [
    "MX_BLOCK",
    "MX_ELEMENT_FORMATS",
    "ScalingConfig",
    "AmaxHistory",
    "DelayedScaler",
    "amax",
    "compute_scale",
    "amax_rows",
    "channel_scales",
    "quantize_rows",
    "QuantizeRowsFunc",
    "mx_scale_count",
    "mx_scale_code",
    "mx_scale_value",
    "mx_encode",
    "mx_decode",
    "mx_quantize",
    "MXQuantizeFunc",
]

_FLT_MAX = float(np.finfo(np.float32).max)

#: Elements per MX block (OCP Microscaling spec v1.0).
MX_BLOCK = 32
#: The element formats of the MX spec (any format of at most 8 bits works).
MX_ELEMENT_FORMATS = ("float8_e4m3fn", "float8_e5m2", "float6_e2m3fn",
                      "float6_e3m2fn", "float4_e2m1fn")


def _positive_int(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int, not {type(v).__name__}")
    if v <= 0:
        raise ValueError(f"{name} must be >= 1, got {v}")
    return int(v)


@dataclasses.dataclass(frozen=True)
class ScalingConfig:
    """Delayed-scaling settings: ``history_len`` (amax window, >= 1) and
    ``scale_min`` (floor of the scale, positive and finite). ValueError for
    values out of range, TypeError for the wrong types."""

    history_len: int = 16
    scale_min: float = 1e-10

    def __post_init__(self):
        _history_len(self.history_len)
        if isinstance(self.scale_min, bool) or not isinstance(self.scale_min, (int, float)):
            raise TypeError(f"scale_min must be a float, not {type(self.scale_min).__name__}")
        if not (math.isfinite(self.scale_min) and self.scale_min > 0):
            raise ValueError(f"scale_min must be positive and finite, got {self.scale_min}")


def _amax(x, name, backend="auto"):
    """(amax, NaN count) as Python numbers, on x's device."""
    if _torch_path(backend, x):
        m, nans = _tp.amax(_a.read(x, name, allow_grad=True))
        return m.item(), int(nans.item())
    return _C.amax(_a.read(x, name, allow_grad=True))


def amax(x, *, with_nan_count=False, backend="auto"):
    """``max |x|`` over the non-NaN elements (0.0 for an empty or all-NaN
    input; inf when x holds +-inf), as a float. ``with_nan_count=True``:
    ``(amax, number of NaN elements)``. ``backend``: ``auto`` (the C core;
    the torch path on the device of a non-CPU tensor), ``c`` or ``torch``
    (:mod:`altgrad.backends`), here and in every function below."""
    m, nans = _amax(x, "x", backend)
    return (m, nans) if with_nan_count else m


def _history_len(v):
    """AltGrad's check and message for an amax window length."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"history_len must be an int, not {type(v).__name__}")
    if v <= 0:
        raise ValueError("history_len must be positive")
    return int(v)


def _scaler_forward(x, scaler, stats):
    y = _C.scaler_quantize(scaler._s, x, None, stats)
    # the backward keeps the scale of this forward, whatever steps follow
    return y, scaler.ste, clipped_backward(scaler._f, scaler.last_scale,
                                           scaler._threads, scaler._kernel)


_ScalerQuantize = straight_through("_ScalerQuantize", _scaler_forward)


class DelayedScaler:
    """Delayed scaling of one tensor, owned by the C library (``ag_scaler``):
    an amax window of ``history_len`` values gives the scale of each step,
    ``max(window max * margin / max_finite, scale_min)`` (``pow2``: rounded
    up to a power of two), and each step's amax then joins the window::

        sc = DelayedScaler(E4M3, history_len=16)
        y = sc.quantize(x)        # x quantized with the window's scale
        sc.scale()                # the scale the next step will use

    - ``format``: FP8Format, altgrad.Format or spec string.
    - ``first``: the empty-window policy: ``"current"`` (default; the
      tensor's own amax), ``"amax_one"`` (amax 1, as AltGrad's AmaxHistory)
      or ``"scale_one"`` (scale 1).
    - ``rounding``, ``overflow``, ``seed``, ``stream``, ``threads``,
      ``kernel``: as :func:`altgrad.quantization.quantize`; stochastic
      rounding draws from ``(seed, stream)`` at an offset that advances by
      the elements of every step, so successive steps get new bits and a
      restored scaler the bits an uninterrupted one would. ``seed=None``
      draws one from torch's generator for stochastic rounding.
    - ``ste``: the straight-through gradient of :meth:`quantize`
      (``"identity"`` or ``"clipped"``), with the scale of that forward.

    :meth:`quantize` ``(x, stats=None)`` (a tensor gets the autograd STE;
    numpy in, numpy out); :meth:`scale` ``(amax_now=None)``;
    :meth:`record` ``(amax, n=0)`` (an amax measured elsewhere);
    :meth:`reset`; :meth:`state_dict` / :meth:`load_state_dict` (the
    library's state bytes as a uint8 tensor; bytes accepted too), which
    resume bit for bit. Read-only: :attr:`last_scale`, :attr:`amax` (window
    max, 0 when empty), :attr:`steps`, :attr:`offset`, ``len()`` (values
    in the window). ValueError for ``history_len <= 0`` (``history_len
    must be positive``) and bad options.
    """

    def __init__(self, format, history_len=16, *, margin=1.0, scale_min=1e-10,
                 pow2=False, first="current", rounding="nearest_even",
                 overflow="saturate", ste="identity", seed=0, stream=0, offset=0,
                 threads=0, kernel="auto"):
        self.format = format
        self.history_len = _history_len(history_len)
        self._f = _a.fmt(format)
        self.ste = _C.option("ste", ste)
        self.first = _C.option("scaler_first", first)
        self._threads, self._kernel = threads, kernel
        seed = _a.seed_for(rounding, seed)
        self._s = _C.scaler_create(
            self._f, self.history_len, margin, scale_min, bool(pow2), first,
            rounding=rounding, overflow=overflow, ste=ste,
            seed=seed, stream=stream, offset=offset,
            threads=threads, kernel=kernel)
        # the rounding options again, for steps on the torch path
        self._qopts = dict(rounding=rounding, overflow=overflow, seed=seed, stream=stream)

    def quantize(self, x, stats=None, *, backend="auto"):
        """One step: ``x`` quantized with the scale from the window (or the
        first-step policy), then its amax (NaN left out) joins the window.
        ``stats``: a dict the counters are added to. A tensor on another
        device (or ``backend="torch"``) is quantized on its device by the
        torch path: its amax is read back (one number), the scale and the
        window stay in the library, the bits are those of the C step."""
        if _torch_path(backend, x):
            m, _ = _amax(x, "x", "torch")
            s = _C.scaler_scale(self._s, m)
            y = _dispatch.quantize(x, self._f, s, ste=self.ste, offset=self.offset,
                                     stats=stats, threads=self._threads,
                                     kernel=self._kernel, **self._qopts)
            self.record(m, _a.numel(x))
            return y
        if _a.is_tensor(x) and x.requires_grad and torch.is_grad_enabled():
            return _ScalerQuantize.apply(x, self, stats)
        return _C.scaler_quantize(self._s, _a.read(x, "x"), None, stats)

    def scale(self, amax_now=None):
        """The scale the next :meth:`quantize` will use; ``amax_now`` (the
        next tensor's amax) matters only while the window is empty under
        ``first="current"``, where it is required."""
        if amax_now is None:
            if self.first == "current" and not len(self):
                raise ValueError("the window is empty and first='current': the "
                                 "scale needs the next tensor's amax (amax_now=)")
            amax_now = 0.0  # not read
        return _C.scaler_scale(self._s, amax_now)

    def record(self, amax, n=0):
        """Push an amax measured elsewhere, as a step without quantizing
        (the stochastic offset advances by ``n``)."""
        _C.scaler_record(self._s, amax, n)

    def reset(self):
        """Empty the window, zero the steps and the last scale."""
        _C.scaler_reset(self._s)

    def state_dict(self):
        """``{"state": uint8 tensor}``: the library's versioned state bytes."""
        return {"state": torch.frombuffer(bytearray(_C.scaler_save(self._s)),
                                          dtype=torch.uint8)}

    def load_state_dict(self, state):
        """Restore :meth:`state_dict` (or its bytes / uint8 tensor) into a
        scaler of the same format and options. ValueError otherwise; the
        scaler is then unchanged."""
        if isinstance(state, dict):
            state = state["state"]
        if _a.is_tensor(state):
            state = _a.read(state, "state")
        _C.scaler_load(self._s, state)

    def _info(self, key):
        return _C.scaler_info(self._s)[key]

    last_scale = property(lambda self: self._info("last_scale"),
                          doc="The scale of the last step (0.0 before one).")
    amax = property(lambda self: self._info("window_max"),
                    doc="The window maximum (0.0 while empty).")
    steps = property(lambda self: self._info("steps"), doc="Steps taken.")
    offset = property(lambda self: self._info("offset"),
                      doc="The stochastic offset of the next step.")

    def __len__(self):
        return self._info("window_count")

    def __repr__(self):
        i = _C.scaler_info(self._s)
        return (f"DelayedScaler({i['format'].name}, history_len={self.history_len}, "
                f"len={i['window_count']}, amax={i['window_max']}, "
                f"last_scale={i['last_scale']})")


class AmaxHistory:
    """The last ``history_len`` amax values of a tensor (AltGrad's delayed
    scaling API), kept by the library's delayed scaler
    (:class:`DelayedScaler` with ``first="amax_one"``: the window alone
    matters here, so its format is irrelevant).

    - ``update(tensor)``: push the tensor's amax (NaN elements are left out
      and counted in :attr:`nan_count`); returns the amax pushed.
    - ``get_amax()``: the window maximum; 1.0 while empty.
    - ``reset()``: forget every value (and the NaN count).
    - ``len()`` / ``len(history)``: the number of values held (at most
      ``history_len``).

    ValueError ``history_len must be positive`` for ``history_len <= 0``,
    TypeError for a non-integer.
    """

    def __init__(self, history_len=16):
        self.history_len = _history_len(history_len)
        self.scaler = DelayedScaler("E5M2", self.history_len, first="amax_one")
        self.nan_count = 0

    def update(self, tensor, *, backend="auto"):
        m, nans = _amax(tensor, "tensor", backend)
        self.scaler.record(m, _a.numel(tensor))
        self.nan_count += nans
        return m

    def get_amax(self):
        return self.scaler.amax if len(self.scaler) else 1.0

    def reset(self):
        self.scaler.reset()
        self.nan_count = 0

    def len(self):
        return len(self.scaler)

    def __len__(self):
        return self.len()

    def __repr__(self):
        return (f"AmaxHistory(history_len={self.history_len}, len={self.len()}, "
                f"amax={self.get_amax()})")


def compute_scale(amax, format, scale_min=1e-10, *, margin=1.0, pow2=False,
                  backend="auto"):
    """``max(amax * margin / max_finite, scale_min)``
    (``ag_compute_scale``); ``pow2=True`` rounds it up to a power of two so
    that ``amax / scale <= max_finite``.

    ``amax``: a Python or numpy number (result: a float, exactly ``amax *
    margin / max_finite`` in double precision, or ``scale_min``; with
    ``pow2`` the library's power of two), or a tensor/array of any shape,
    0-d included (result: float32 scales of the same shape and kind, the
    library's float32 quotient; every amax is checked first). An infinite
    amax gives the scale of the largest float32. ``format``: FP8Format,
    altgrad.Format or spec string. ValueError for a NaN or negative amax
    and for a margin / scale_min that is not positive and finite.
    """
    f = _a.fmt(format)
    if _a.is_tensor(amax) and _torch_path(backend, amax):
        return _tp.compute_scale(_a.read(amax, "amax", allow_grad=True), f, scale_min,
                                   margin=margin, pow2=pow2)
    if _a.is_tensor(amax) or isinstance(amax, np.ndarray):
        a = _a.read(amax, "amax", allow_grad=True)
        ret, out = _a.new(_a.is_tensor(amax), a.shape, np.float32)
        _C.compute_scale_rows(out, a, f, margin, scale_min, pow2)
        return ret
    if isinstance(amax, (bool, str, bytes)) or amax is None:
        raise TypeError(f"amax must be a real number or a tensor, not {type(amax).__name__}")
    s32 = _C.compute_scale(amax, f, margin, scale_min, bool(pow2))  # checks everything
    q = float(amax) * float(margin) / f.max_finite
    if pow2 or not q <= _FLT_MAX:  # power of two, or beyond float32: the library's
        return s32
    return max(q, float(scale_min))


def amax_rows(x, *, backend="auto"):
    """Per-row amax of x (NaN-aware, ``ag_amax_rows``): shape
    ``x.shape[:-1]``, float32, of x's kind."""
    v = _a.read(x, "x", allow_grad=True)
    if _torch_path(backend, x):
        return _tp.amax_rows(v)
    rows, cols = _a.matrix(v.shape)
    ret, out = _a.new(_a.is_tensor(x), v.shape[:-1], np.float32)
    _C.amax_rows(out, v, rows, cols)
    return ret


def channel_scales(x, format, scale_min=1e-10, *, margin=1.0, pow2=False,
                   backend="auto"):
    """One scale per row: ``compute_scale(amax_rows(x), format, ...)``."""
    return compute_scale(amax_rows(x, backend=backend), format, scale_min, margin=margin,
                         pow2=pow2, backend=backend)


def _row_scales(scales, rows):
    """One float32 scale per row, as a numpy array (kept for backward)."""
    if not (_a.is_tensor(scales) or isinstance(scales, np.ndarray)):
        # one number for every row
        return np.full(rows, _a.scale_value(scales), dtype=np.float32)
    s = _a.read(scales, "scales", allow_grad=True)
    if _a.numel(s) != rows:
        raise ValueError(f"scales must hold one value per row ({rows}), got shape "
                         f"{tuple(s.shape)}")
    return s


def _ste(ste):
    return _C.option("ste", ste)


def _matrix_forward(x, format, param, options, ste, c_forward, c_backward):
    """The forward of a matrix quantizer for the STE factory: ``c_forward(y,
    x, rows, cols, param, format, **options)``, and as its backward
    ``c_backward(dx, dy, x, rows, cols, param, format, ste="clipped")``."""
    ste = _ste(ste)
    f = _a.fmt(format)
    rows, cols = _a.matrix(x.shape)
    y = torch.empty(x.shape, dtype=torch.float32)
    c_forward(y, x, rows, cols, param, f, **options)
    path = {"threads": options.get("threads", 0), "kernel": options.get("kernel", "auto")}
    return y, ste, lambda dx, dy, xs: c_backward(dx, dy, xs, rows, cols, param, f,
                                                 ste="clipped", **path)


def _rows_forward(x, format, scales, options, ste="identity"):
    s = _row_scales(scales, _a.matrix(x.shape)[0])
    s = s.clone() if _a.is_tensor(s) else np.array(s)  # kept for backward
    return _matrix_forward(x, format, s, options, ste, _C.quantize_rows,
                           _C.quantize_rows_backward)


QuantizeRowsFunc = straight_through("QuantizeRowsFunc", _rows_forward, """\
``QuantizeRowsFunc.apply(x, format, scales, options, ste)``: per-row
fake quantization (``ag_quantize_rows``) with the straight-through
gradient from ``ag_quantize_rows_backward`` (identity, or ``clipped``:
0 where the forward saturated). No gradient for format and scales.
""")


def quantize_rows(x, format, scales=None, *, scale_min=1e-10, margin=1.0, pow2=False,
                  ste="identity", rounding="nearest_even", overflow="saturate",
                  seed=None, stream=0, offset=0, threads=0, stats=None, kernel="auto",
                  backend="auto"):
    """Per-channel fake quantization: row r of x (last axis) quantized with
    ``scales[r]`` (``ag_quantize_rows``); ``scales=None`` computes them with
    :func:`channel_scales` (``scale_min``, ``margin``, ``pow2``). ``scales``:
    one positive finite value per row (shape ``x.shape[:-1]`` or flat), or
    one number for every row.
    Tensors get the straight-through gradient (``ste``); numpy arrays a
    numpy result. Rounding options as :func:`altgrad.quantization.quantize`
    (stochastic rounding keys element i of the flattened x by ``offset + i``).
    """
    _ste(ste)
    if scales is None:
        scales = channel_scales(x, format, scale_min, margin=margin, pow2=pow2,
                                backend=backend)
    if _torch_path(backend, x):
        return _dispatch.quantize_rows(
            x, format, scales, ste=ste, rounding=rounding, overflow=overflow, seed=seed,
            stream=stream, offset=offset, threads=threads, stats=stats, kernel=kernel)
    opts = _a.options(rounding, overflow, seed, stream, offset, threads, kernel,
                      draw_seed=True)
    if stats is not None:
        opts["stats"] = stats
    if _a.is_tensor(x):
        return QuantizeRowsFunc.apply(x, format, scales, opts, ste)
    f = _a.fmt(format)
    xv = _a.read(x, "x")
    rows, cols = _a.matrix(xv.shape)
    s = _row_scales(scales, rows)
    ret, out = _a.new(False, xv.shape, np.float32)
    _C.quantize_rows(out, xv, rows, cols, s, f, **opts)
    return ret


# --- MX blocks ---------------------------------------------------------------


def _block(block):
    return _positive_int(block, "block")


def _mx_scale_shape(shape, block):
    """Shape of the scale codes: x.shape[:-1] + (ceil(cols / block),)."""
    rows, cols = _a.matrix(shape)
    nb = -(-cols // block)
    return (tuple(shape[:-1]) if len(shape) else ()) + (nb,)


def mx_scale_count(rows, cols, block=MX_BLOCK):
    """``rows * ceil(cols / block)``: the number of block scales."""
    return _C.mx_scale_count(rows, cols, _block(block))


def mx_scale_code(amax, format, mx_scale="floor"):
    """The E8M0 code of a block with this amax: ``127 + clamp(floor(log2
    amax) - emax, -127, 127)`` with emax the element format's largest
    exponent (8 for float8_e4m3fn) under OCP's rule ``mx_scale="floor"``;
    under ``"rceil"`` the smallest code whose scale X keeps ``amax / X <=
    max_finite`` (never clips the block maximum); 0 for amax 0, 255 (NaN)
    for NaN/inf."""
    return _C.mx_scale_code(amax, _a.fmt(format), mx_scale)


def mx_scale_value(code):
    """The value of an E8M0 scale code: ``2**(code - 127)``, NaN for 255."""
    code = int(code)
    if not 0 <= code <= 255:
        raise ValueError(f"an E8M0 code is in 0 .. 255, got {code}")
    return math.nan if code == 255 else math.ldexp(1.0, code - 127)


def mx_encode(x, format, block=MX_BLOCK, *, rounding="nearest_even",
              overflow="saturate", seed=0, stream=0, offset=0, threads=0,
              stats=None, kernel="auto", mx_scale="floor", backend="auto"):
    """MX block encode (``ag_mx_encode``): returns ``(codes, scales)``,
    ``codes`` uint8 of x's shape (element codes), ``scales`` uint8 E8M0
    codes of shape ``x.shape[:-1] + (ceil(cols / block),)``. Blocks of
    ``block`` elements run along the last axis and never span rows.
    ``format``: an element format of at most 8 bits (the spec's five are
    :data:`MX_ELEMENT_FORMATS`); ValueError otherwise. ``mx_scale``: the
    shared-scale rule, ``"floor"`` (OCP MX v1.0, can clip the block
    maximum) or ``"rceil"`` (rounds the scale up: never clips)."""
    f = _a.fmt(format)
    b = _block(block)
    xv = _a.read(x, "x", allow_grad=True)
    if _torch_path(backend, x):
        _dispatch.check_c_only(threads, kernel)
        return _tp.mx_encode(xv, f, b, rounding=rounding, overflow=overflow, seed=seed,
                             stream=stream, offset=offset, stats=stats, mx_scale=mx_scale)
    rows, cols = _a.matrix(xv.shape)
    t = _a.is_tensor(x)
    codes, cbuf = _a.new(t, xv.shape, np.uint8)
    scales, sbuf = _a.new(t, _mx_scale_shape(xv.shape, b), np.uint8)
    opts = _a.options(rounding, overflow, seed, stream, offset, threads, kernel)
    _C.mx_encode(cbuf, sbuf, xv, rows, cols, b, f, None, stats, mx_scale=mx_scale, **opts)
    return codes, scales


def mx_decode(codes, scales, format, block=MX_BLOCK, *, backend="auto"):
    """MX block decode (``ag_mx_decode``): float32 of the codes' shape,
    ``to_real(code) * 2**(scale - 127)``, NaN in a block whose scale code is
    255. ValueError for a code outside the format or a wrong scales count."""
    f = _a.fmt(format)
    b = _block(block)
    cv = _a.read(codes, "codes")
    sv = _a.read(scales, "scales")
    if _torch_path(backend, codes):
        return _tp.mx_decode(cv, sv, f, b)
    rows, cols = _a.matrix(cv.shape)
    ret, out = _a.new(_a.is_tensor(codes), cv.shape, np.float32)
    _C.mx_decode(out, cv, sv, rows, cols, b, f)
    return ret


def _mx_forward(x, format, block, options, ste="identity"):
    rule = options.get("mx_scale", "floor")  # the backward's clip mask needs it

    def backward(*args, **kw):
        return _C.mx_quantize_backward(*args, mx_scale=rule, **kw)

    return _matrix_forward(x, format, _block(block), options, ste, _C.mx_quantize,
                           backward)


MXQuantizeFunc = straight_through("MXQuantizeFunc", _mx_forward, """\
``MXQuantizeFunc.apply(x, format, block, options, ste)``: MX fake
quantization (``ag_mx_quantize``) with the straight-through gradient
from ``ag_mx_quantize_backward``.
""")


def mx_quantize(x, format, block=MX_BLOCK, *, ste="identity", rounding="nearest_even",
                overflow="saturate", seed=None, stream=0, offset=0, threads=0,
                stats=None, kernel="auto", mx_scale="floor", backend="auto"):
    """MX fake quantization: ``mx_decode(*mx_encode(x))`` bit for bit in one
    call (``ag_mx_quantize``). Tensors get the straight-through gradient
    (``ste='identity'``, or ``'clipped'``: 0 where an element saturated);
    numpy arrays a numpy result. ``mx_scale``: the shared-scale rule
    (``"floor"`` or ``"rceil"``, as :func:`mx_encode`)."""
    _ste(ste)
    b = _block(block)
    if _torch_path(backend, x):
        return _dispatch.mx_quantize(
            x, format, b, ste=ste, rounding=rounding, overflow=overflow, seed=seed,
            stream=stream, offset=offset, threads=threads, stats=stats, kernel=kernel,
            mx_scale=mx_scale)
    opts = _a.options(rounding, overflow, seed, stream, offset, threads, kernel,
                      draw_seed=True)
    opts["mx_scale"] = mx_scale
    if stats is not None:
        opts["stats"] = stats
    if _a.is_tensor(x):
        return MXQuantizeFunc.apply(x, format, b, opts, ste)
    f = _a.fmt(format)
    xv = _a.read(x, "x")
    rows, cols = _a.matrix(xv.shape)
    ret, out = _a.new(False, xv.shape, np.float32)
    _C.mx_quantize(out, xv, rows, cols, b, f, **opts)
    return ret
