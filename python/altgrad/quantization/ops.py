# SPDX-License-Identifier: MIT
"""quantize / dequantize with PyTorch autograd, on the C library.

- :func:`quantize` ``(x, format, scale)``: ``to_real(to_bits(x / scale)) *
  scale`` in float32, bit-exact with the C library's ``ag_quantize``; the
  gradient is the straight-through estimator (:class:`QuantizeFunc`): ``dx =
  dy``, or with ``ste="clipped"`` ``dx = dy`` where ``|x / scale| <=
  max_finite`` and 0 where the forward saturated. No gradient for the scale.
- :func:`dequantize` ``(x, scale)``: ``x * scale``, gradient ``dy * scale``
  (:class:`DequantizeFunc`); no gradient for the scale.

Inputs: ``x`` is a float32 torch tensor on the CPU (any shape, 0-d and empty
included) or a float32 numpy array (then no autograd, a numpy result). A
C-contiguous ``x`` is read in place (zero copy); a non-contiguous one is
copied to a contiguous tensor first (documented copy; gradients are
unaffected). Another dtype (float64, float16, bfloat16...) is a TypeError and
a tensor on another device (CUDA, meta) a ValueError: nothing is cast or
moved silently. ``scale`` is a positive finite Python number or one-element
tensor/array, rounded to float32 (a bad scale is a ValueError). The result is
a new contiguous float32 tensor of ``x``'s shape.

Rounding modes: ``rounding="nearest_even"`` (default), ``"nearest_away"``,
``"toward_zero"``, ``"down"``, ``"up"``, ``"stochastic"``. Stochastic
rounding is keyed by ``(seed, stream, offset + element index)``; with
``seed=None`` (the default) a fresh seed is drawn from torch's default
generator on every call, so ``torch.manual_seed`` makes a run reproducible
and successive steps get independent bits. ``overflow="saturate"`` (default)
or ``"ieee"``. ``stats``: a dict to which the C library adds the counters
``total``, ``overflow``, ``underflow``, ``nan``. ``threads``: 0 (the
library's choice), 1 (serial) or a maximum; ``kernel``: ``"auto"`` or a
forced C code path (``altgrad._C.kernels()``), bit-identical, for tests.
"""
import numpy as np
import torch

from .. import _C
from .. import _arrays
from .. import format as _as_format

__all__ = ["quantize", "dequantize", "QuantizeFunc", "DequantizeFunc"]

_STE = ("identity", "clipped")
_FORWARD_KEYS = ("rounding", "overflow", "seed", "stream", "offset", "threads", "stats",
                 "kernel")


def _check_tensor(x, name="x"):
    """A C-contiguous CPU float32 tensor for x (a copy when not contiguous)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, not {type(x).__name__}")
    if x.device.type != "cpu":
        raise ValueError(
            f"{name} is on device '{x.device}': altgrad runs on the CPU "
            f"(move it with .cpu())"
        )
    if x.dtype != torch.float32:
        raise TypeError(
            f"{name} must be a float32 tensor, got {x.dtype} (convert "
            f"explicitly, e.g. {name}.float())"
        )
    return x if x.is_contiguous() else x.contiguous()


def _view(t):
    """The zero-copy numpy view of a contiguous CPU tensor."""
    return t.detach().numpy()


def _options(options):
    opts = dict(options or {})
    unknown = set(opts) - set(_FORWARD_KEYS) - {"ste"}
    if unknown:
        raise TypeError(f"unknown quantize option(s): {', '.join(sorted(unknown))}")
    ste = opts.pop("ste", "identity")
    if ste not in _STE:
        raise ValueError(f"unknown ste {ste!r}: expected 'identity' or 'clipped'")
    if opts.get("rounding") == "stochastic" and opts.get("seed") is None:
        opts["seed"] = int(torch.randint(0, 2**62, ()).item())
    return ste, opts


class QuantizeFunc(torch.autograd.Function):
    """``QuantizeFunc.apply(x, format, scale, options=None)``: the quantizer
    with the straight-through estimator. ``options`` is a dict of the keyword
    options of :func:`quantize` (``rounding``, ``overflow``, ``ste``,
    ``seed``...). Backward: ``dx = dy`` (identity STE), or ``dy`` masked to 0
    where ``|x / scale| > max_finite`` (clipped STE, mask from the C
    library); ``None`` for format, scale and options. Both are
    differentiable again (``create_graph=True``) as functions of ``dy``.
    """

    @staticmethod
    def forward(ctx, x, format, scale, options=None):
        fmt = _as_format(format)
        s = _arrays.scale_value(scale)
        ste, opts = _options(options)
        xc = _check_tensor(x)
        y = torch.empty(xc.shape, dtype=torch.float32)
        _C.quantize(_view(xc), fmt, s, _view(y), **opts)
        ctx.ste = ste
        if ste == "clipped":
            ctx.fmt = fmt
            ctx.scale = s
            ctx.save_for_backward(xc)
        return y

    @staticmethod
    def backward(ctx, dy):
        if ctx.ste == "identity":
            return dy, None, None, None
        (x,) = ctx.saved_tensors
        if torch.is_grad_enabled():
            # create_graph: a differentiable function of dy, mask from C
            ones = torch.ones(x.shape, dtype=torch.float32)
            keep = torch.zeros(x.shape, dtype=torch.float32)
            _C.quantize_backward(_view(keep), _view(ones), _view(x), ctx.fmt,
                                 ctx.scale, ste="clipped")
            dx = torch.where(keep != 0, dy, torch.zeros((), dtype=dy.dtype))
            return dx, None, None, None
        dyc = _check_tensor(dy, "dy")
        dx = torch.zeros(x.shape, dtype=torch.float32)
        _C.quantize_backward(_view(dx), _view(dyc), _view(x), ctx.fmt, ctx.scale,
                             ste="clipped")
        return dx, None, None, None


class DequantizeFunc(torch.autograd.Function):
    """``DequantizeFunc.apply(x, scale)``: ``x * scale`` (float32, in the C
    library); backward ``dx = dy * scale``, ``None`` for the scale."""

    @staticmethod
    def forward(ctx, x, scale):
        s = _arrays.scale_value(scale)
        xc = _check_tensor(x)
        y = torch.empty(xc.shape, dtype=torch.float32)
        _C.dequantize(_view(xc), s, _view(y))
        ctx.scale = s
        return y

    @staticmethod
    def backward(ctx, dy):
        if torch.is_grad_enabled():
            # create_graph: stay differentiable in dy
            return dy * torch.tensor(ctx.scale, dtype=torch.float32), None
        dyc = _check_tensor(dy, "dy")
        dx = torch.empty(dyc.shape, dtype=torch.float32)
        _C.dequantize(_view(dyc), ctx.scale, _view(dx))
        return dx, None


def quantize(x, format, scale=1.0, *, rounding="nearest_even", overflow="saturate",
             ste="identity", seed=None, stream=0, offset=0, threads=0, stats=None,
             kernel="auto"):
    """Round ``x / scale`` onto ``format``'s grid and scale back:
    ``to_real(to_bits(x / scale)) * scale`` in float32, with the
    straight-through gradient (see the module documentation for inputs,
    options and the documented copy of non-contiguous inputs).

    ``format``: an :class:`FP8Format`, an :class:`altgrad.Format` or a spec
    string (``"E5M2"``, ``"float8_e4m3fn"``, ``"e3m4:bias=2"``).
    ``x``: a float32 CPU tensor (autograd) or float32 numpy array (no
    autograd; returns a numpy array).
    """
    options = {"rounding": rounding, "overflow": overflow, "ste": ste, "seed": seed,
               "stream": stream, "offset": offset, "threads": threads, "stats": stats,
               "kernel": kernel}
    if isinstance(x, np.ndarray):
        ste_mode, opts = _options(options)
        return _arrays.quantize_array(x, format, scale, **opts)
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"x must be a float32 torch.Tensor or numpy array, not {type(x).__name__}"
        )
    return QuantizeFunc.apply(x, format, scale, options)


def dequantize(x, scale=1.0):
    """``x * scale`` in float32 with gradient ``dy * scale`` (none for the
    scale). ``x``: a float32 CPU tensor, or a float32 numpy array (no
    autograd)."""
    if isinstance(x, np.ndarray):
        return _arrays.dequantize_array(x, scale)
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"x must be a float32 torch.Tensor or numpy array, not {type(x).__name__}"
        )
    return DequantizeFunc.apply(x, scale)
