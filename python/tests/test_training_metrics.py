# SPDX-License-Identifier: MIT
"""Metrics against plain loops over the gradients (AltGrad's key names)."""
import math

import pytest
import torch
import torch.nn as nn

from altgrad.quantization import BitStallDetector
from altgrad.training import metrics as M
from _training_models import TinyLM


def model_with_grads(seed=0):
    torch.manual_seed(seed)
    m = TinyLM()
    x = torch.randint(32, (2, 8))
    m(x, x)[1].backward()
    return m


def ref_snr(g):
    g = g.double().reshape(-1)
    n = g.numel()
    mean = g.sum() / n
    std = math.sqrt(float(((g - mean) ** 2).sum()) / (n - 1)) if n > 1 else 0.0
    return abs(float(mean)) / std if std > 1e-10 else 0.0


def test_gradient_stats_against_loops():
    m = model_with_grads()
    s = M.compute_gradient_stats(m, threshold=1e-3)
    l2s, snrs = [], []
    for name, p in m.named_parameters():
        g = p.grad.reshape(-1).tolist()
        l2 = math.sqrt(sum(v * v for v in g))
        assert s[f"grad_norm_l2/{name}"] == pytest.approx(l2, rel=1e-5)
        assert s[f"grad_norm_linf/{name}"] == pytest.approx(max(abs(v) for v in g), rel=1e-6)
        assert s[f"dead_neuron_frac/{name}"] == pytest.approx(
            sum(abs(v) < 1e-3 for v in g) / len(g))
        assert s[f"grad_snr/{name}"] == pytest.approx(ref_snr(p.grad), rel=1e-4, abs=1e-7)
        l2s.append(l2)
        snrs.append(ref_snr(p.grad))
    assert s["grad_norm_l2/mean"] == pytest.approx(sum(l2s) / len(l2s), rel=1e-5)
    assert s["grad_norm_l2/min"] == pytest.approx(min(l2s), rel=1e-5)
    assert s["grad_snr/min"] == pytest.approx(min(snrs), rel=1e-4, abs=1e-7)
    assert all(isinstance(v, float) for v in s.values())
    total = math.sqrt(sum(v * v for v in l2s))
    assert M.global_grad_norm(m) == pytest.approx(total, rel=1e-5)


def test_gradient_stats_empty_and_nan():
    s = M.compute_gradient_stats(nn.Linear(2, 2))  # no grads
    assert s == {k: 0.0 for k in ["grad_norm_l2/mean", "grad_norm_l2/min", "grad_norm_linf/max",
                                  "dead_neuron_frac/mean", "grad_snr/mean", "grad_snr/min"]}
    m = model_with_grads()
    names = [n for n, _ in m.named_parameters()]
    dict(m.named_parameters())[names[3]].grad[0] = float("nan")
    s = M.compute_gradient_stats(m)
    assert math.isnan(s["grad_snr/min"]) and math.isnan(s["grad_norm_l2/mean"])
    assert math.isnan(s[f"grad_snr/{names[3]}"])
    assert M.nan_min([1.0, math.nan]) is not None and math.isnan(M.nan_min([math.nan, 1.0]))


def test_stability_metrics():
    m = nn.Linear(3, 2)
    with torch.no_grad():
        m.weight[0, 0] = float("nan")
        m.weight[1, 1] = float("inf")
        m.bias[0] = float("-inf")
    s = M.compute_stability_metrics(m)
    assert s == {"param_nan_count": 1, "param_inf_count": 2}
    d = BitStallDetector()
    d.stall_count, d.total_count = 3, 4
    assert M.compute_stability_metrics(m, d)["bit_stall_rate"] == 0.75


def test_cosine_similarity():
    a, b = model_with_grads(), model_with_grads()
    s = M.gradient_cosine_similarity(a, b)
    assert s["grad_cos_sim/mean"] == pytest.approx(1.0) and s["grad_cos_sim/min"] > 0.9999
    for p in b.parameters():
        p.grad.neg_()
    assert M.gradient_cosine_similarity(a, b)["grad_cos_sim/mean"] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="different parameter names"):
        M.gradient_cosine_similarity(a, nn.Linear(2, 2))


def test_rank_stats():
    pytest.importorskip("altgrad.quantization.rank_health")
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(8, 6), nn.Linear(6, 4))
    s = M.compute_rank_stats(m)
    for name, p in m.named_parameters():
        if p.dim() < 2:
            assert f"stable_rank/{name}" not in s
            continue
        sv = torch.linalg.svdvals(p.detach().double())
        assert s[f"stable_rank/{name}"] == pytest.approx(float((sv ** 2).sum() / sv[0] ** 2),
                                                         rel=1e-4)
    assert M.compute_rank_stats(nn.Module())["stable_rank/mean"] == 0.0


def test_throughput():
    t = M.compute_throughput_metrics(12, 256, 0.5)
    assert t == {"throughput/samples_per_sec": 24.0, "throughput/tokens_per_sec": 6144.0,
                 "throughput/step_time_ms": 500.0}
    assert M.compute_throughput_metrics(1, 1, 0.0)["throughput/tokens_per_sec"] == 0.0
    with M.StepTimer("cpu") as timer:
        sum(range(1000))
    assert timer.seconds >= 0.0
