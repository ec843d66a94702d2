# SPDX-License-Identifier: MIT
"""quantize / dequantize with PyTorch autograd, on the C library.

- :func:`quantize` ``(x, format, scale)``: ``to_real(to_bits(x / scale)) *
  scale`` in float32, bit-exact with the C library's ``ag_quantize``; the
  gradient is the straight-through estimator (:class:`QuantizeFunc`): ``dx =
  dy``, or with ``ste="clipped"`` ``dx = dy`` where ``|x / scale| <=
  max_finite`` and 0 where the forward saturated. No gradient for the scale.
- :func:`dequantize` ``(x, scale)``: ``x * scale``, gradient ``dy * scale``
  (:class:`DequantizeFunc`); no gradient for the scale.

Inputs: ``x`` is a float32 torch tensor (any shape, 0-d and empty included)
or a float32 numpy array (then no autograd, a numpy result). On the CPU a
C-contiguous ``x`` is read in place by the C library (zero copy); a
non-contiguous one is copied to a contiguous tensor first (documented copy;
gradients are unaffected). A tensor on another device (CUDA...) is quantized
there by the device-generic torch path (:mod:`altgrad.backends`), with the
same bits; ``backend="torch"`` forces that path on CPU tensors. Another
dtype (float64, float16, bfloat16...) is a TypeError: nothing is cast or
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
from .. import backends

__all__ = ["quantize", "dequantize", "QuantizeFunc", "DequantizeFunc", "straight_through",
           "clipped_backward"]

_FORWARD_KEYS = ("rounding", "overflow", "seed", "stream", "offset", "threads", "stats",
                 "kernel")


def straight_through(name, forward, doc=None):
    """An ``autograd.Function`` class with the straight-through gradient: the
    one factory behind :class:`QuantizeFunc`, ``QuantizeRowsFunc``,
    ``MXQuantizeFunc`` and ``DelayedScaler.quantize``.

    ``forward(x, *args) -> (y, ste, backward)``: ``x`` a C-contiguous
    float32 tensor, ``y`` a new float32 tensor of its shape, ``ste``
    ``"identity"`` or ``"clipped"``, and ``backward(dx, dy, x)`` the C
    backward of the clipped STE with this forward's settings, ACCUMULATING
    into ``dx`` (zeros; may be None for the identity STE). The class's ``apply(x, *args)`` gives ``dx = dy``
    (identity) or ``dy`` where the forward did not saturate, 0 elsewhere
    (clipped; the mask from the C library), and no gradient for ``args``.
    Backward is differentiable again (``create_graph=True``) as a function
    of ``dy``.
    """

    def fwd(ctx, x, *args):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}.apply: x must be a torch.Tensor, not "
                            f"{type(x).__name__}")
        # grad mode is off in here: the extension reads x as it is
        x = x if x.is_contiguous() else x.contiguous()
        y, ste, backward = forward(x, *args)
        ctx.meta = (ste, backward, len(args))
        if ste == "clipped":
            ctx.save_for_backward(x)
        return y

    def bwd(ctx, dy):
        ste, backward, nargs = ctx.meta
        none = (None,) * nargs
        if ste == "identity":
            return (dy,) + none
        (x,) = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: a function of dy, mask from C
            x = x.detach()
            keep = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
            backward(keep, torch.ones(x.shape, dtype=torch.float32, device=x.device), x)
            return (torch.where(keep != 0, dy, torch.zeros((), dtype=dy.dtype)),) + none
        dx = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        backward(dx, _arrays.read(dy, "dy"), x)
        return (dx,) + none

    return type(name, (torch.autograd.Function,), {
        "forward": staticmethod(fwd), "backward": staticmethod(bwd),
        "__doc__": doc, "__module__": forward.__module__})


def clipped_backward(f, scale, threads=0, kernel="auto"):
    """The backward of a per-tensor quantize with scale ``scale``: the
    clipped-STE mask from ``_C.quantize_backward``."""
    return lambda dx, dy, x: _C.quantize_backward(dx, dy, x, f, scale, ste="clipped",
                                                  threads=threads, kernel=kernel)


def _c_options(rounding="nearest_even", overflow="saturate", ste="identity", seed=None,
               stream=0, offset=0, threads=0, stats=None, kernel="auto"):
    """(ste, the keyword options of ``_C.quantize``): none at all for the
    defaults, the cheap call; else :func:`altgrad._arrays.options`."""
    if (rounding == "nearest_even" and ste == "identity" and stats is None and seed is None
            and overflow == "saturate" and not (stream or offset or threads)
            and kernel == "auto"):
        return "identity", _NO_OPTIONS
    opts = _arrays.options(rounding, overflow, seed, stream, offset, threads, kernel,
                           draw_seed=True)
    opts["stats"] = stats
    return _C.option("ste", ste), opts


_NO_OPTIONS = {}  # never written


def _split_options(options):
    """_c_options of an options dict of :func:`quantize`."""
    opts = dict(options or {})
    unknown = set(opts) - set(_FORWARD_KEYS) - {"ste"}
    if unknown:
        raise TypeError(f"unknown quantize option(s): {', '.join(sorted(unknown))}")
    return _c_options(**opts)


def _ste_forward(x, f, s, ste, opts):
    back = None
    if ste == "clipped":
        back = clipped_backward(f, s, opts.get("threads", 0), opts.get("kernel", "auto"))
    return _C.quantize(x, f, s, None, **opts), ste, back


def _quantize_forward(x, format, scale, options=None):
    ste, opts = _split_options(options)
    return _ste_forward(x, _arrays.fmt(format), _arrays.scale_value(scale), ste, opts)


QuantizeFunc = straight_through("QuantizeFunc", _quantize_forward, """\
``QuantizeFunc.apply(x, format, scale, options=None)``: the quantizer with
the straight-through estimator. ``options`` is a dict of the keyword options
of :func:`quantize` (``rounding``, ``overflow``, ``ste``, ``seed``...).
Backward: ``dx = dy`` (identity STE), or ``dy`` masked to 0 where ``|x /
scale| > max_finite`` (clipped STE, mask from the C library); ``None`` for
format, scale and options. Both are differentiable again
(``create_graph=True``) as functions of ``dy``.
""")

# quantize()'s own, with the arguments already resolved (the cheap call)
_Quantize = straight_through("_Quantize", _ste_forward)


class DequantizeFunc(torch.autograd.Function):
    """``DequantizeFunc.apply(x, scale)``: ``x * scale`` (float32, in the C
    library); backward ``dx = dy * scale``, ``None`` for the scale."""

    @staticmethod
    def forward(ctx, x, scale):
        s = _arrays.scale_value(scale)
        ctx.scale = s
        return _C.dequantize(_arrays.read(x, "x", allow_grad=True), s)

    @staticmethod
    def backward(ctx, dy):
        if torch.is_grad_enabled():
            # create_graph: stay differentiable in dy
            return dy * torch.tensor(ctx.scale, dtype=torch.float32), None
        return _C.dequantize(_arrays.read(dy, "dy"), ctx.scale), None


def _check_input(x):
    if not isinstance(x, (torch.Tensor, np.ndarray)):
        raise TypeError(
            f"x must be a float32 torch.Tensor or numpy array, not {type(x).__name__}"
        )


def quantize(x, format, scale=1.0, *, rounding="nearest_even", overflow="saturate",
             ste="identity", seed=None, stream=0, offset=0, threads=0, stats=None,
             kernel="auto", backend="auto"):
    """Round ``x / scale`` onto ``format``'s grid and scale back:
    ``to_real(to_bits(x / scale)) * scale`` in float32, with the
    straight-through gradient (see the module documentation for inputs,
    options and the documented copy of non-contiguous inputs).

    ``format``: an :class:`FP8Format`, an :class:`altgrad.Format` or a spec
    string (``"E5M2"``, ``"float8_e4m3fn"``, ``"e3m4:bias=2"``).
    ``x``: a float32 tensor (autograd) or float32 numpy array (no
    autograd; returns a numpy array). ``backend``: ``"auto"`` (the C core
    for CPU tensors and arrays, the torch path on the tensor's own device
    for others), ``"c"`` or ``"torch"`` (see :mod:`altgrad.backends`).
    """
    if backend != "auto" or (isinstance(x, torch.Tensor) and x.device.type != "cpu"):
        if backends.select(backend, x) == "torch":
            from ..backends import dispatch

            return dispatch.quantize(x, format, scale, rounding=rounding,
                                     overflow=overflow, ste=ste, seed=seed, stream=stream,
                                     offset=offset, threads=threads, stats=stats,
                                     kernel=kernel)
    if not isinstance(x, torch.Tensor):
        _check_input(x)
        ste, opts = _c_options(rounding, overflow, ste, seed, stream, offset, threads,
                               stats, kernel)
        return _C.quantize(_arrays.read(x, "x"), _arrays.fmt(format),
                           _arrays.scale_value(scale), None, **opts)
    f = _arrays.fmt(format)
    s = scale if type(scale) is float else _arrays.scale_value(scale)
    ste, opts = _c_options(rounding, overflow, ste, seed, stream, offset, threads, stats,
                           kernel)
    if x.requires_grad and torch.is_grad_enabled():
        return _Quantize.apply(x, f, s, ste, opts)
    # no graph to record: straight to the C library, which reads the tensor
    return _C.quantize(x if x.is_contiguous() else x.contiguous(), f, s, None, **opts)


def dequantize(x, scale=1.0, *, backend="auto"):
    """``x * scale`` in float32 with gradient ``dy * scale`` (none for the
    scale). ``x``: a float32 tensor, or a float32 numpy array (no
    autograd). ``backend`` as :func:`quantize` (the torch path is torch's
    own float32 product, with torch's gradient)."""
    _check_input(x)
    if backends.select(backend, x) == "torch":
        from ..backends import torch_path

        return torch_path.dequantize(x, scale)
    if isinstance(x, np.ndarray):
        return _arrays.dequantize_array(x, scale)
    return DequantizeFunc.apply(x, scale)
