# SPDX-License-Identifier: MIT
"""Training metrics with AltGrad's key names (ALTGRAD_API.md sections 11
and 19). Every value is a Python float or int.

Fixes over AltGrad (section 21.8): aggregates are NaN-aware and do not
depend on parameter order (a NaN per-parameter value makes the aggregate
NaN: divergence stays visible; AltGrad's Python ``min`` over NaNs depended
on position), the per-parameter statistics are computed on the tensors'
device and transferred once (AltGrad: several ``.item()`` per parameter),
and one signal-to-noise definition, :func:`grad_snr` = ``|mean g| / std g``
(unbiased std; 0.0 when std <= 1e-10 or fewer than two elements), is shared
with the FP32 shadow (AltGrad's shadow used ``mean|g|``, D-SHADOW-1).
``grad_norm_l2/mean`` is the mean of the per-parameter L2 norms (AltGrad's
definition), not a global norm: see :func:`global_grad_norm`.
"""
import math
import time

import torch
import torch.nn.functional as F

__all__ = ["compute_gradient_stats", "compute_stability_metrics", "gradient_cosine_similarity",
           "compute_rank_stats", "compute_throughput_metrics", "global_grad_norm", "grad_snr",
           "nan_mean", "nan_min", "nan_max", "StepTimer"]

SNR_STD_EPS = 1e-10


def _nan_or(values, fn):
    if not values:
        return 0.0
    if any(math.isnan(v) for v in values):
        return math.nan
    return float(fn(values))


def nan_mean(values):
    """Mean of a list of floats: 0.0 when empty, NaN when any is NaN."""
    return _nan_or(values, lambda v: math.fsum(v) / len(v))


def nan_min(values):
    """Minimum: 0.0 when empty, NaN when any is NaN (order-independent)."""
    return _nan_or(values, min)


def nan_max(values):
    """Maximum: 0.0 when empty, NaN when any is NaN (order-independent)."""
    return _nan_or(values, max)


def _snr_tensor(g):
    if g.numel() < 2:
        return torch.zeros((), dtype=torch.float32, device=g.device)
    std = g.std()
    snr = g.mean().abs() / std
    return torch.where(std > SNR_STD_EPS, snr, torch.zeros_like(snr))


def grad_snr(grad):
    """``|mean g| / std g`` of a gradient tensor (float32, unbiased std), 0.0
    when std <= 1e-10 or the tensor has fewer than two elements; NaN when the
    gradient holds NaN."""
    g = grad.detach().float().reshape(-1)
    if torch.isnan(g).any():
        return math.nan
    return float(_snr_tensor(g))


def _grads(model):
    return [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]


def compute_gradient_stats(model, threshold=1e-8):
    """Per parameter with a gradient: ``grad_norm_l2/<name>``,
    ``grad_norm_linf/<name>``, ``dead_neuron_frac/<name>`` (share of
    ``|g| < threshold``), ``grad_snr/<name>`` (:func:`grad_snr`); aggregates
    ``grad_norm_l2/mean|min``, ``grad_norm_linf/max``,
    ``dead_neuron_frac/mean``, ``grad_snr/mean|min`` (0.0 without grads)."""
    named = _grads(model)
    out = {}
    rows = []
    for _, g in named:
        g = g.detach().float().reshape(-1)
        a = g.abs()
        snr = _snr_tensor(g)
        snr = torch.where(torch.isnan(g).any(), torch.full_like(snr, math.nan), snr)
        rows.append(torch.stack([g.norm(), a.max() if a.numel() else a.sum(),
                                 (a < threshold).float().mean(), snr]).cpu())
    values = torch.stack(rows).tolist() if rows else []
    for (name, _), (l2, linf, dead, snr) in zip(named, values):
        out[f"grad_norm_l2/{name}"] = l2
        out[f"grad_norm_linf/{name}"] = linf
        out[f"dead_neuron_frac/{name}"] = dead
        out[f"grad_snr/{name}"] = snr
    cols = list(zip(*values)) if values else [[], [], [], []]
    out["grad_norm_l2/mean"] = nan_mean(list(cols[0]))
    out["grad_norm_l2/min"] = nan_min(list(cols[0]))
    out["grad_norm_linf/max"] = nan_max(list(cols[1]))
    out["dead_neuron_frac/mean"] = nan_mean(list(cols[2]))
    out["grad_snr/mean"] = nan_mean(list(cols[3]))
    out["grad_snr/min"] = nan_min(list(cols[3]))
    return out


def global_grad_norm(model):
    """``sqrt(sum ||g_p||^2)`` over every parameter with a gradient, as a
    float (0.0 without grads), in one transfer."""
    grads = [p.grad.detach().float() for p in model.parameters() if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.stack([g.norm() for g in grads]).norm())


def compute_stability_metrics(model, detector=None):
    """``param_nan_count`` and ``param_inf_count`` (ints, over every
    parameter) and, with a BitStallDetector (or anything with
    ``get_stall_rate()``), ``bit_stall_rate``."""
    nan = torch.zeros((), dtype=torch.int64)
    inf = torch.zeros((), dtype=torch.int64)
    for p in model.parameters():
        d = p.detach()
        nan = nan + torch.isnan(d).sum().cpu()
        inf = inf + torch.isinf(d).sum().cpu()
    out = {"param_nan_count": int(nan), "param_inf_count": int(inf)}
    if detector is not None:
        out["bit_stall_rate"] = float(detector.get_stall_rate())
    return out


def gradient_cosine_similarity(model_a, model_b, names_a=None, names_b=None):
    """``grad_cos_sim/<name>`` (cosine of the flattened float32 gradients,
    eps 1e-8) for every name where both models have a gradient, and
    ``grad_cos_sim/mean|min``. Parameters are paired by name (`names_a` /
    `names_b`: optional dicts parameter-name -> canonical name, used by the
    shadow model for wrapped layers); ValueError("Models have different
    parameter names") when the name sets differ, and when paired shapes
    differ."""
    def table(model, names):
        t = {}
        for n, p in model.named_parameters():
            t[names.get(n, n) if names else n] = p
        return t

    ta, tb = table(model_a, names_a), table(model_b, names_b)
    if set(ta) != set(tb):
        raise ValueError("Models have different parameter names")
    out = {}
    sims = []
    for name, pa in ta.items():
        pb = tb[name]
        if pa.grad is None or pb.grad is None:
            continue
        if pa.shape != pb.shape:
            raise ValueError(f"parameter {name}: shapes {tuple(pa.shape)} and {tuple(pb.shape)}")
        sims.append((name, F.cosine_similarity(pa.grad.detach().float().reshape(1, -1),
                                               pb.grad.detach().float().reshape(1, -1).to(
                                                   pa.grad.device), eps=1e-8)[0]))
    values = torch.stack([s for _, s in sims]).cpu().tolist() if sims else []
    for (name, _), v in zip(sims, values):
        out[f"grad_cos_sim/{name}"] = v
    out["grad_cos_sim/mean"] = nan_mean(values)
    out["grad_cos_sim/min"] = nan_min(values)
    return out


def compute_rank_stats(model):
    """``stable_rank/<name>`` and ``effective_rank/<name>`` for every
    parameter with dim >= 2 (altgrad.quantization.rank_health's
    definitions), and ``stable_rank/mean|min``, ``effective_rank/mean|min``
    (0.0 without such parameters)."""
    from ..quantization.rank_health import compute_effective_rank, compute_stable_rank

    out = {}
    stable, effective = [], []
    for name, p in model.named_parameters():
        if p.dim() < 2:
            continue
        w = p.detach()
        s, e = float(compute_stable_rank(w)), float(compute_effective_rank(w))
        out[f"stable_rank/{name}"] = s
        out[f"effective_rank/{name}"] = e
        stable.append(s)
        effective.append(e)
    out["stable_rank/mean"] = nan_mean(stable)
    out["stable_rank/min"] = nan_min(stable)
    out["effective_rank/mean"] = nan_mean(effective)
    out["effective_rank/min"] = nan_min(effective)
    return out


def compute_throughput_metrics(batch_size, seq_length, step_time_seconds):
    """``throughput/samples_per_sec``, ``throughput/tokens_per_sec``,
    ``throughput/step_time_ms`` of one step (AltGrad's keys; rates are 0.0
    for a non-positive time)."""
    t = float(step_time_seconds)
    samples = batch_size / t if t > 0 else 0.0
    return {"throughput/samples_per_sec": samples,
            "throughput/tokens_per_sec": samples * seq_length,
            "throughput/step_time_ms": t * 1000.0}


class StepTimer:
    """Wall time of a block with ``time.perf_counter``, synchronizing CUDA
    first when `device` is a CUDA device (AltGrad timed without it, D-TR-9)::

        with StepTimer(device) as t:
            ...
        t.seconds
    """

    def __init__(self, device="cpu"):
        self.cuda = "cuda" in str(device) and torch.cuda.is_available()
        self.seconds = 0.0

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self._t0
        return False
