# SPDX-License-Identifier: MIT
"""AltGrad's advanced diagnostics: the stiffness field, grid alignment, ULP
distances and the gradient-stiffness correlation.

AltGrad's defaults are kept (its results depend on them) and the correct
variants are keywords:

- :func:`compute_stiffness_field` gives AltGrad's
  ``2**(floor(log2|w|) - M)`` (exact exponent; constant ``1/128`` for
  ``M == 7``; NaN at zero weights). With ``format=`` (and ``scale=``) it is
  the format's real grid step (:func:`altgrad.quantization.stiffness`:
  exponent range, subnormals, fixed point, scale), the lowest step at 0.
- :func:`compute_ulp_distance` measures float32 ULPs of ``before``; with
  ``format=`` it is the distance in the format's codes.
- :func:`grid_alignment_statistics` counts ``on_grid_frac`` with AltGrad's
  absolute 1e-10 tolerance; ``exact=True`` compares ``w == quantize(w)``.
  A one-element tensor has ``grid_error_std`` 0.0 (not NaN).
- :func:`gradient_stiffness_correlation` leaves out non-finite weights,
  gradients and stiffness (AltGrad let them turn every statistic NaN).
"""
import torch

from .diagnostics import stiffness as _stiffness
from .diagnostics import ulp_distance as _ulp_distance
from .ops import quantize

__all__ = [
    "compute_stiffness_field",
    "grid_alignment_error",
    "grid_alignment_statistics",
    "compute_ulp_distance",
    "ulp_statistics",
    "gradient_stiffness_correlation",
]


def _cpu32(t):
    return t.detach().to("cpu", torch.float32).contiguous()


def compute_stiffness_field(weights, mantissa_bits, *, format=None, scale=1.0):
    """The grid spacing at each weight (same shape, dtype and device)."""
    if format is not None:
        from .. import format as _as_format

        f = _as_format(format)
        w = _cpu32(weights)
        s = _stiffness(w, f, scale)
        low = 2.0 ** (f.emin - f.mbits) * float(scale)
        s = torch.where(w == 0, torch.full_like(s, low), s)
        return s.to(weights.device, weights.dtype)
    w = weights.detach()
    nan = torch.full_like(w, float("nan"))
    if mantissa_bits == 7:
        return torch.where(w == 0, nan, torch.full_like(w, 1.0 / 128))
    a = w.abs().clamp_min(1e-45)
    _, e = torch.frexp(a)  # a = f 2^e, f in [0.5, 1): floor(log2 a) = e - 1
    s = torch.pow(2.0, (e - 1 - mantissa_bits).to(torch.float64)).to(w.dtype)
    s = torch.where(torch.isinf(a), a, s)
    s = torch.where(torch.isnan(w), w, s)
    return torch.where(w == 0, nan, s)


def grid_alignment_error(weights, format, scale):
    """``|w - quantize(w, format, scale)|`` elementwise."""
    w = weights.detach()
    return (w - quantize(w, format, scale)).abs()


def grid_alignment_statistics(weights, format, scale, *, exact=False):
    """``grid_error_mean``, ``grid_error_max``, ``grid_error_std``,
    ``on_grid_frac`` (error below 1e-10, or exactly on the grid with
    ``exact=True``)."""
    err = grid_alignment_error(weights, format, scale)
    on = err == 0 if exact else err < 1e-10
    return {
        "grid_error_mean": err.mean().item(),
        "grid_error_max": err.max().item(),
        "grid_error_std": err.std().item() if err.numel() > 1 else 0.0,
        "on_grid_frac": on.float().mean().item(),
    }


def compute_ulp_distance(before, after, *, format=None, scale=1.0):
    """``|after - before|`` in float32 ULPs of ``before`` (the gap toward
    +inf, at least 1e-45); with ``format=`` the number of the format's grid
    steps between the two (NaN where either is NaN)."""
    if format is not None:
        from .. import format as _as_format
        from .diagnostics import ULP_NAN

        d = _ulp_distance(_cpu32(before), _cpu32(after), _as_format(format), scale)
        out = d.abs().to(torch.float32)
        out[d == ULP_NAN] = float("nan")
        return out.reshape(before.shape).to(before.device)
    b = before.detach()
    ulp = (torch.nextafter(b, torch.full_like(b, float("inf"))) - b).abs().clamp_min(1e-45)
    return (after.detach() - b).abs() / ulp


def ulp_statistics(before, after, **kwargs):
    """``ulp_mean``, ``ulp_median`` (lower median), ``ulp_max``,
    ``ulp_zero_frac`` of :func:`compute_ulp_distance` (same keywords)."""
    d = compute_ulp_distance(before, after, **kwargs).flatten()
    return {
        "ulp_mean": d.mean().item(),
        "ulp_median": d.median().item(),
        "ulp_max": d.max().item(),
        "ulp_zero_frac": (d == 0).float().mean().item(),
    }


def gradient_stiffness_correlation(weights, gradients, mantissa_bits, *, format=None,
                                   scale=1.0):
    """Pearson correlation of S and |g| (``grad_stiff_correlation``), mean
    of ``|g| / max(S, 1e-10)`` (``grad_stiff_ratio_mean``), share with
    ``|g| < S`` (``grad_below_stiffness_frac``), over the positions where
    S, the weight and the gradient are finite (zero weights drop out:
    AltGrad's S is NaN there). All 0.0 when none remain."""
    s = compute_stiffness_field(weights, mantissa_bits, format=format, scale=scale)
    g = gradients.detach().abs()
    keep = torch.isfinite(s) & torch.isfinite(g) & torch.isfinite(weights.detach())
    if format is not None:
        keep &= weights.detach() != 0
    s, g = s[keep].flatten().double(), g[keep].flatten().double()
    if s.numel() == 0:
        return {"grad_stiff_correlation": 0.0, "grad_stiff_ratio_mean": 0.0,
                "grad_below_stiffness_frac": 0.0}
    ds, dg = s - s.mean(), g - g.mean()
    r = (ds * dg).sum() / (ds.norm() * dg.norm() + 1e-10)
    return {
        "grad_stiff_correlation": r.item(),
        "grad_stiff_ratio_mean": (g / s.clamp_min(1e-10)).mean().item(),
        "grad_below_stiffness_frac": (g < s).double().mean().item(),
    }
