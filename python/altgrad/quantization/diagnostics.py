# SPDX-License-Identifier: MIT
"""Diagnostics (issue 5): where a format fails a tensor — bit stall, flips,
ULP distance, stiffness and exponent occupancy — all computed in the C
library (``altgrad.h``, section Diagnostics)::

    from altgrad.quantization import BitStallDetector, E5M2
    det = BitStallDetector()
    det.update(w, w.grad, lr=1e-3, format=E5M2, scale=1.0)
    det.get_stats()   # {'stall_rate': ..., 'stall_count': ..., 'total_count': ..., 'steps': 1}

Inputs: float32 CPU torch tensors or numpy arrays of one element count
(read only: tensors that require grad are fine). :func:`detect_bit_stall`,
:class:`BitStallDetector` and every function below also take tensors on
another device (CUDA...), computed there by the device-generic torch path
with the same result (``backend="torch"`` among the options forces it on
CPU tensors; :mod:`altgrad.backends`); counts come back as numbers,
distances and stiffness stay on the device. "Same grid point": two
values are the same point when ``to_bits(v / scale)`` (nearest-even,
saturating unless told otherwise) gives equal codes or both zeros; a NaN is
never the same point as anything, so a diverged element never counts as
stalled and always as flipped. An element counts as updated when
``|g| > 1e-10``. Rounding options (``rounding``, ``overflow``, ``seed``,
``stream``, ``offset``, ``threads``, ``kernel``) as
:func:`altgrad.quantization.quantize`; both snapshots use the same stream
elements.
"""
import numpy as np

from .. import _C
from .. import _arrays as _a
from ..backends import dispatch as _dispatch
from ..backends import torch_path as _tp
from ..backends import use_torch

__all__ = [
    "GRAD_EPS",
    "ULP_NAN",
    "HIST_NAN",
    "HIST_OVERFLOW",
    "HIST_UNDERFLOW",
    "HIST_ZERO",
    "HIST_SUBNORMAL",
    "HIST_FIELD",
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

#: Gradient threshold: an element counts as updated when |g| > GRAD_EPS.
GRAD_EPS = 1e-10
#: ulp_distance of a pair with a NaN (INT32_MIN).
ULP_NAN = -(2**31)
#: Bins of :func:`exponent_histogram` (then HIST_FIELD + e per exponent field e).
HIST_NAN, HIST_OVERFLOW, HIST_UNDERFLOW, HIST_ZERO, HIST_SUBNORMAL, HIST_FIELD = range(6)


def _read(x, name):
    return _a.read(x, name, allow_grad=True)  # read only: no graph to cut


def _torch_path(options, *xs):
    """True when the call runs on the device-generic torch path (a tensor
    on another device, or ``backend="torch"`` in ``options``, which is
    popped); then ``threads``/``kernel`` are checked and popped too."""
    if not use_torch(options.pop("backend", "auto"), *xs):
        return False
    _dispatch.check_c_only(options.pop("threads", 0), options.pop("kernel", "auto"))
    return True


def _pair(a, b, na, nb):
    av = _read(a, na)
    bv = _read(b, nb)
    if _a.numel(av) != _a.numel(bv):
        raise ValueError(f"{na} and {nb} must hold as many elements: "
                         f"{_a.numel(av)} vs {_a.numel(bv)}")
    return av, bv


def detect_bit_stall(weight, grad, lr, format, scale=1.0, **options):
    """``(stall, total)`` as ints: ``total`` = elements with ``|grad| >
    1e-10``; ``stall`` = those whose quantized value does not move with the
    SGD update ``weight - lr * grad`` (float32), i.e. ``to_bits((w - lr*g) /
    scale)`` and ``to_bits(w / scale)`` are the same grid point
    (``ag_bit_stall``). ValueError for a NaN / infinite lr or a bad scale."""
    if _torch_path(options, weight, grad):
        return _tp.bit_stall(_read(weight, "weight"), _read(grad, "grad"), lr, format,
                               scale, **options)
    w, g = _pair(weight, grad, "weight", "grad")
    return _C.bit_stall(w, g, lr, _a.fmt(format), _a.scale_value(scale),
                        **_a.options(**options))


class BitStallDetector:
    """Running bit-stall counter over training steps.

    ``update(weight, grad, lr, format, scale=1.0, **options)`` adds one
    step's :func:`detect_bit_stall` to :attr:`stall_count` and
    :attr:`total_count`, increments :attr:`step_count` and returns the
    step's ``(stall, total)``. ``get_stall_rate()`` = stall_count /
    total_count (0.0 when nothing was counted); ``get_stats()`` a dict with
    keys ``stall_rate``, ``stall_count``, ``total_count``, ``steps``;
    ``reset()`` zeroes everything."""

    def __init__(self):
        self.reset()

    def update(self, weight, grad, lr, format, scale=1.0, **options):
        stall, total = detect_bit_stall(weight, grad, lr, format, scale, **options)
        self.stall_count += stall
        self.total_count += total
        self.step_count += 1
        return stall, total

    def get_stall_rate(self):
        return self.stall_count / self.total_count if self.total_count else 0.0

    def reset(self):
        self.stall_count = 0
        self.total_count = 0
        self.step_count = 0

    def get_stats(self):
        return {"stall_rate": self.get_stall_rate(), "stall_count": self.stall_count,
                "total_count": self.total_count, "steps": self.step_count}

    def __repr__(self):
        return (f"BitStallDetector(stall_count={self.stall_count}, "
                f"total_count={self.total_count}, steps={self.step_count})")


def count_flips(a, b, format, scale=1.0, **options):
    """Elements where two snapshots ``a`` and ``b`` of a tensor quantize to
    different grid points (``ag_flips``), as an int."""
    if _torch_path(options, a, b):
        return _tp.flips(_read(a, "a"), _read(b, "b"), format, scale, **options)
    av, bv = _pair(a, b, "a", "b")
    return _C.flips(av, bv, _a.fmt(format), _a.scale_value(scale), **_a.options(**options))


def count_code_flips(a, b, format, *, backend="auto"):
    """Flips between two code snapshots (from :func:`altgrad.encode`: uint8,
    or uint16 / torch.int16 for wider formats; one dtype for both)
    (``ag_flips_u8`` / ``_u16``). ValueError for a code outside the format."""
    if _torch_path({"backend": backend}, a, b):
        return _tp.code_flips(_read(a, "a"), _read(b, "b"), format)
    av, bv = _pair(a, b, "a", "b")
    if av.dtype != bv.dtype:
        raise TypeError(f"a and b must have one dtype, got {av.dtype} and {bv.dtype}")
    return _C.flips_codes(av, bv, _a.fmt(format))


def update_flips(before, after, grad, format, scale=1.0, **options):
    """``(updates, flips)`` of one optimizer step: ``updates`` = elements
    with ``|grad| > 1e-10``, ``flips`` = how many of those moved to another
    grid point between ``before`` and ``after`` (``ag_update_flips``)."""
    if _torch_path(options, before, after, grad):
        return _tp.update_flips(_read(before, "before"), _read(after, "after"),
                                  _read(grad, "grad"), format, scale, **options)
    bv, av = _pair(before, after, "before", "after")
    gv = _read(grad, "grad")
    if _a.numel(gv) != _a.numel(bv):
        raise ValueError(f"grad must hold {_a.numel(bv)} elements, not {_a.numel(gv)}")
    return _C.update_flips(bv, av, gv, _a.fmt(format), _a.scale_value(scale),
                           **_a.options(**options))


def stall_ratio(flips, updates):
    """``1 - flips / updates``, 0.0 when ``updates == 0``. ValueError when
    ``flips > updates`` or a count is negative."""
    return _C.stall_ratio(int(flips) if isinstance(flips, np.integer) else flips,
                          int(updates) if isinstance(updates, np.integer) else updates)


def ulp_distance(a, b, format, scale=1.0, **options):
    """Signed distance from ``a`` to ``b`` in codes of the format's ordered
    grid (``ag_ulp_distance``): int32 of ``a``'s shape and kind,
    :data:`ULP_NAN` where either side is NaN or rounds to NaN. +0 and -0
    are one point; a distance across zero counts the steps on both sides."""
    if _torch_path(options, a, b):
        return _tp.ulp_distance(_read(a, "a"), _read(b, "b"), format, scale, **options)
    av, bv = _pair(a, b, "a", "b")
    ret, out = _a.new(_a.is_tensor(a), av.shape, np.int32)
    _C.ulp_distance(out, av, bv, _a.fmt(format), _a.scale_value(scale),
                    **_a.options(**options))
    return ret


def ulp_distance_stats(a, b, format, scale=1.0, **options):
    """The ULP distances summed (``ag_ulp_distance_stats``): a dict with
    ``sum_abs``, ``max_abs`` (over the pairs without NaN; 0 when none),
    ``nan_pairs``, ``count`` (all pairs) and ``mean_abs`` (sum_abs / pairs
    without NaN; 0.0 when none)."""
    if _torch_path(options, a, b):
        av, bv = _read(a, "a"), _read(b, "b")
        s, m, nans = _tp.ulp_distance_stats(av, bv, format, scale, **options)
    else:
        av, bv = _pair(a, b, "a", "b")
        s, m, nans = _C.ulp_distance_stats(av, bv, _a.fmt(format), _a.scale_value(scale),
                                           **_a.options(**options))
    count = int(_a.numel(av))
    finite = count - nans
    return {"sum_abs": s, "max_abs": m, "nan_pairs": nans, "count": count,
            "mean_abs": s / finite if finite else 0.0}


def stiffness(w, format, scale=1.0, *, backend="auto"):
    """The grid spacing of the (scaled) format at each weight
    (``ag_stiffness``): ``2**(floor(log2|w/scale|) - M) * scale`` in the
    normal range (continued beyond max_finite), the subnormal step below
    min_normal, the fixed step ``2**(-M - bias) * scale`` for E = 0 formats;
    0 for +-0, NaN for NaN, inf for +-inf. float32 of w's shape and kind."""
    wv = _read(w, "w")
    if _torch_path({"backend": backend}, w):
        return _tp.stiffness(wv, format, scale)
    ret, out = _a.new(_a.is_tensor(w), wv.shape, np.float32)
    _C.stiffness(out, wv, _a.fmt(format), _a.scale_value(scale))
    return ret


def exponent_histogram(x, format, scale=1.0, **options):
    """Where x sits on the format (``ag_exp_hist``): an int64 numpy array of
    ``HIST_FIELD + 2**E`` counts, one bin per element: ``HIST_NAN``,
    ``HIST_OVERFLOW`` (inf, or beyond max_finite), ``HIST_UNDERFLOW``
    (nonzero that became zero), ``HIST_ZERO``, ``HIST_SUBNORMAL``, then
    ``HIST_FIELD + e`` for a normal code with exponent field e (binade
    ``2**(e - bias)``). Labels: :func:`exponent_histogram_labels`."""
    xv = _read(x, "x")
    if _torch_path(options, x):
        return np.array(_tp.exp_hist(xv, format, scale, **options), dtype=np.int64)
    counts = _C.exp_hist(xv, _a.fmt(format), _a.scale_value(scale), **_a.options(**options))
    return np.array(counts, dtype=np.int64)


def exponent_histogram_labels(format):
    """Names of the bins of :func:`exponent_histogram`: ``nan``,
    ``overflow``, ``underflow``, ``zero``, ``subnormal``, then ``2^k`` (the
    binade of each exponent field)."""
    f = _a.fmt(format)
    return (["nan", "overflow", "underflow", "zero", "subnormal"]
            + [f"2^{e - f.bias}" for e in range(2**f.ebits)])
