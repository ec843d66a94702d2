# SPDX-License-Identifier: MIT
"""The torch-path side of the public functions of :mod:`altgrad` and
:mod:`altgrad.quantization`: what ``quantize``, ``quantize_rows``,
``mx_quantize`` (with their straight-through gradients), the scaling calls
and the raw array calls do when :func:`altgrad.backends.select` picks the
torch path (a tensor on a non-CPU device, or ``backend="torch"``).

The options mean what they mean for the C core. ``seed=None`` draws the
seed from torch's generator as the C side does (``_arrays.seed_for``), so
``torch.manual_seed`` gives the same bits on either path. ``threads`` has
no effect here (it sizes the C core's thread pool); ``kernel`` names a C
code path, so anything but ``"auto"`` is a ValueError. The gradients come
from the package's one straight-through Function factory
(``quantization.ops.straight_through``), with the clipped mask computed on
the tensor's device.
"""
import torch

from .. import _C
from .. import _arrays as _a
from ..quantization.ops import straight_through
from . import torch_path as tp

__all__ = ["quantize", "quantize_rows", "mx_quantize", "check_c_only"]


def check_c_only(threads=0, kernel="auto"):
    """The C-only options under the torch path: ``threads`` is ignored,
    ``kernel`` must be ``"auto"``."""
    if kernel != "auto":
        raise ValueError(f"kernel={kernel!r} picks a C code path; the torch path has "
                         f"none (use kernel='auto' with backend='torch')")


def _opts(rounding, overflow, seed, stream, offset, stats):
    return dict(rounding=rounding, overflow=overflow, seed=_a.seed_for(rounding, seed),
                stream=stream, offset=offset, stats=stats)


def _ste_forward(x, run, ste, keep):
    def backward(dx, dy, x):  # accumulates, as the factory's C backwards
        dx.add_(torch.where(keep(x), dy, torch.zeros((), dtype=dy.dtype, device=dy.device)))

    return run(x), ste, backward


TorchPathSTE = straight_through("TorchPathSTE", _ste_forward, """\
``TorchPathSTE.apply(x, run, ste, keep)``: ``run(x)`` (a torch-path
quantizer) with the straight-through gradient; ``keep(x)`` is the clipped
STE's mask, computed on x's device.""")


def _with_ste(x, run, ste, keep):
    ste = _C.option("ste", ste)
    tp._check_float(x)
    if x.requires_grad and torch.is_grad_enabled():
        return TorchPathSTE.apply(x, run, ste, keep)
    return run(x.detach())


def quantize(x, format, scale, *, rounding, overflow, ste, seed, stream, offset, threads,
             stats, kernel):
    """:func:`altgrad.quantization.quantize` on the torch path."""
    check_c_only(threads, kernel)
    f = _a.fmt(format)
    s = _a.scale_value(scale)
    o = _opts(rounding, overflow, seed, stream, offset, stats)
    return _with_ste(x, lambda v: tp.quantize(v, f, s, **o), ste,
                     lambda v: tp.quantize_keep_mask(v, f, s))


def quantize_rows(x, format, scales, *, ste, rounding, overflow, seed, stream, offset,
                  threads, stats, kernel):
    """:func:`altgrad.quantization.quantize_rows` on the torch path (scales
    already given or computed)."""
    check_c_only(threads, kernel)
    f = _a.fmt(format)
    o = _opts(rounding, overflow, seed, stream, offset, stats)
    if not isinstance(scales, torch.Tensor):
        scales = _a.scale_value(scales)
    else:
        scales = scales.detach()
    return _with_ste(x, lambda v: tp.quantize_rows(v, f, scales, **o), ste,
                     lambda v: tp.quantize_rows_keep_mask(v, f, scales))


def mx_quantize(x, format, block, *, ste, rounding, overflow, seed, stream, offset,
                threads, stats, kernel, mx_scale="floor"):
    """:func:`altgrad.quantization.mx_quantize` on the torch path."""
    check_c_only(threads, kernel)
    f = _a.fmt(format)
    o = _opts(rounding, overflow, seed, stream, offset, stats)
    return _with_ste(x, lambda v: tp.mx_quantize(v, f, block, mx_scale=mx_scale, **o), ste,
                     lambda v: tp.mx_keep_mask(v, f, block, mx_scale=mx_scale))


# --- the raw array calls (altgrad.quantize_array, ...) ---------------------------


def _into(out, res, x):
    """``res``, or written into ``out`` (a tensor of res's device, dtype and
    shape, C-contiguous, not requiring grad) and ``out`` returned."""
    if out is None:
        return res
    if not isinstance(out, torch.Tensor):
        raise TypeError("out must be of the same kind as the input (numpy or torch)")
    if out.requires_grad:
        raise ValueError("out requires grad: autograd cannot track writes into it")
    if out.device != res.device or out.dtype != res.dtype or out.shape != res.shape:
        raise ValueError(f"out must be a {res.dtype} tensor of shape {tuple(res.shape)} on "
                         f"{res.device}, got {out.dtype} {tuple(out.shape)} on {out.device}")
    if not out.is_contiguous():
        raise ValueError("out must be C-contiguous (it is written in place)")
    return out.copy_(res)


def raw(op, x, format, scale, out, *, threads=0, kernel="auto", **opts):
    """The raw (no-autograd) call ``op`` (``quantize``, ``encode``,
    ``decode``, ``dequantize``) on the torch path, with the raw layer's
    rules (a tensor requiring grad under grad mode is a ValueError)."""
    check_c_only(threads, kernel)
    v = _a.read(x, "codes" if op == "decode" else "x")
    if op == "dequantize":
        res = tp.dequantize(v, scale)
    elif op == "decode":
        res = tp.decode(v, _a.fmt(format), scale)
    else:
        res = getattr(tp, op)(v, _a.fmt(format), scale, **opts)
    return _into(out, res, x)
