# SPDX-License-Identifier: MIT
"""altgrad.quantization stability, advanced_diagnostics, flip_metrics and
rank_health (issue 16): AltGrad's documented values and defaults, the
fixed defects, the correct variants behind keywords, against plain torch /
numpy references written here."""
import math

import numpy as np
import pytest
import torch

import altgrad
from altgrad import quantization as q
from altgrad.quantization import (
    E0M7, E1M6, E3M4, E5M2, E7M0, EmergencyMantissaShift, PartitionRelativeClipper,
    RankHealthMonitor, RankTrendDetector, WeightFlipTracker, compute_effective_rank,
    compute_flip_rate, compute_stable_rank, compute_stall_ratio, compute_stiffness_field,
    compute_ulp_distance, gradient_stiffness_correlation, grid_alignment_error,
    grid_alignment_statistics, quantize, ulp_statistics,
)


def test_reexported_in_all():
    for name in ("PartitionRelativeClipper", "EmergencyMantissaShift",
                 "compute_stiffness_field", "grid_alignment_error",
                 "grid_alignment_statistics", "compute_ulp_distance", "ulp_statistics",
                 "gradient_stiffness_correlation", "WeightFlipTracker",
                 "compute_flip_rate", "compute_stall_ratio", "compute_stable_rank",
                 "compute_effective_rank", "RankTrendDetector", "RankHealthMonitor"):
        assert name in q.__all__ and hasattr(q, name)


# ---- stability -------------------------------------------------------------


def test_clipper_thresholds():
    assert PartitionRelativeClipper(E5M2).clip_threshold == 1.0
    assert PartitionRelativeClipper(E3M4, base_clip=2.0).clip_threshold == 2.0 * 124 / 57344
    assert 0.001 < PartitionRelativeClipper(E3M4).clip_threshold < 0.005
    assert PartitionRelativeClipper(E7M0).clip_threshold > 1e14
    # the range variant: binades of the format over E5M2's
    r = PartitionRelativeClipper(E1M6, relative_to="range").clip_threshold
    assert r == pytest.approx(math.log2(3.96875 / 2**-5) / math.log2(57344 / 2**-16))
    with pytest.raises(ValueError, match="relative_to"):
        PartitionRelativeClipper(E5M2, relative_to="x")


def test_clipper_clips_at_threshold_inclusive():
    m = torch.nn.Linear(4, 4)
    for p in m.parameters():
        p.grad = torch.full_like(p, 10.0)
    c = PartitionRelativeClipper(E3M4, overflow_threshold=0.01)
    assert c.clip_if_needed(m, 0.001) is False
    assert m.weight.grad[0, 0] == 10.0
    assert c.clip_if_needed(m, 0.01) is True
    norm = torch.cat([p.grad.flatten() for p in m.parameters()]).norm()
    assert norm == pytest.approx(c.clip_threshold, rel=1e-4)


def test_mantissa_shift():
    s = EmergencyMantissaShift()
    assert s.check_and_shift("E3M4", True, 0.0) is None
    assert s.check_and_shift("E3M4", True, 0.0) is None
    assert s.check_and_shift("E3M4", True, 0.0) == "E5M2" and s.consecutive_nans == 0
    assert s.check_and_shift("E7M0", False, 0.5) is None  # strict >
    assert s.check_and_shift("E0M7", False, 0.51) == "E3M4"
    s.consecutive_nans = 5
    assert s.check_and_shift("E5M2", True, 0.0) is None and s.consecutive_nans == 6
    s.reset()
    assert s.consecutive_nans == 0
    # names normalised (AltGrad's own FP8_ names never shifted)
    assert s.check_and_shift("FP8_E1M6", False, 0.9) == "E3M4"
    assert s.check_and_shift(E7M0, False, 0.9) == "E5M2"
    assert s.check_and_shift("E4M3", False, 0.9) is None
    p = EmergencyMantissaShift(stall_patience=2)
    assert p.check_and_shift("E1M6", False, 0.9) is None
    assert p.check_and_shift("E1M6", False, 0.9) == "E3M4"
    with pytest.raises(ValueError, match="stall_patience"):
        EmergencyMantissaShift(stall_patience=0)


# ---- advanced diagnostics --------------------------------------------------


def test_stiffness_field_altgrad():
    w = torch.tensor([1.0, 2.0, 4.0, -4.0, 0.0, float("nan"), float("inf"), 0.75])
    s = compute_stiffness_field(w, 2)
    assert s[:4].tolist() == [0.25, 0.5, 1.0, 1.0] and s[7] == 0.125
    assert math.isnan(s[4]) and math.isnan(s[5]) and s[6] == math.inf
    s7 = compute_stiffness_field(w, 7)
    assert s7[0] == 1 / 128 and math.isnan(s7[4])
    # exact exponent just below a power of two (float32 log2 rounds up there)
    below = torch.tensor([np.nextafter(np.float32(256), np.float32(0))])
    assert compute_stiffness_field(below, 2)[0] == 2.0 ** (7 - 2)


def test_stiffness_field_format_aware():
    w = torch.tensor([1.0, 0.0, 1e-4, 3.0])
    s = compute_stiffness_field(w, 2, format=E3M4, scale=0.5)
    # E3M4 (bias 1): v = w / 0.5; normal step 2^(e - 4), subnormal 2^-4, times 0.5
    assert s.tolist() == [2**-3 * 0.5, 2**-4 * 0.5, 2**-4 * 0.5, 2**(2 - 4) * 0.5]
    fp = compute_stiffness_field(torch.tensor([0.3, 0.0]), 7, format=E0M7)
    assert fp.tolist() == [2**-7, 2**-7]
    # BF16 (M = 7) is not fixed point when given as a format (D-DIAG-1)
    assert compute_stiffness_field(torch.tensor([1.0]), 7, format="bfloat16")[0] == 2**-7
    assert compute_stiffness_field(torch.tensor([4.0]), 7, format="bfloat16")[0] == 2**-5


def test_grid_alignment():
    w = torch.tensor([0.3, 1.0, 96.0])
    e = grid_alignment_error(w, E5M2, torch.tensor(1.0))
    assert torch.equal(e, (w - quantize(w, E5M2, torch.tensor(1.0))).abs())
    st = grid_alignment_statistics(w, E5M2, torch.tensor(1.0))
    assert set(st) == {"grid_error_mean", "grid_error_max", "grid_error_std", "on_grid_frac"}
    assert st["on_grid_frac"] == pytest.approx(2 / 3)
    one = grid_alignment_statistics(torch.tensor([0.3]), E5M2, torch.tensor(1.0))
    assert one["grid_error_std"] == 0.0
    tiny = torch.tensor([1e-12])
    assert grid_alignment_statistics(tiny, E5M2, torch.tensor(1.0))["on_grid_frac"] == 1.0
    assert grid_alignment_statistics(tiny, E5M2, torch.tensor(1.0),
                                     exact=True)["on_grid_frac"] == 0.0


def test_ulp_distance_float32_and_format():
    b = torch.tensor([1.0, 2.0, -1.0, 0.5])
    up = torch.nextafter(b, torch.full_like(b, math.inf))
    assert compute_ulp_distance(b, b).tolist() == [0, 0, 0, 0]
    assert compute_ulp_distance(b, up).tolist() == [1, 1, 1, 1]
    d = compute_ulp_distance(b, torch.tensor([1.25, 2.0, -1.5, float("nan")]), format=E5M2)
    assert d[:3].tolist() == [1.0, 0.0, 2.0] and math.isnan(d[3])
    st = ulp_statistics(b, torch.tensor([1.0, 2.0, -1.0, 0.5]))
    assert st == {"ulp_mean": 0.0, "ulp_median": 0.0, "ulp_max": 0.0, "ulp_zero_frac": 1.0}
    st = ulp_statistics(b, torch.tensor([1.25, 2.0, -1.5, 0.5]), format=E5M2)
    assert st["ulp_max"] == 2.0 and st["ulp_zero_frac"] == 0.5 and st["ulp_median"] == 0.0


def test_gradient_stiffness_correlation():
    torch.manual_seed(0)
    w = torch.randn(200)
    w[:10] = 0.0
    g = torch.randn(200)
    r = gradient_stiffness_correlation(w, g, 2)
    s = compute_stiffness_field(w, 2)
    keep = ~torch.isnan(s)
    sd, gd = s[keep].double(), g[keep].abs().double()
    ref = np.corrcoef(sd.numpy(), gd.numpy())[0, 1]
    assert r["grad_stiff_correlation"] == pytest.approx(ref, rel=1e-6)
    assert r["grad_below_stiffness_frac"] == pytest.approx((gd < sd).double().mean().item())
    assert r["grad_stiff_ratio_mean"] == pytest.approx((gd / sd).mean().item())
    assert gradient_stiffness_correlation(w, g, 7)["grad_stiff_correlation"] == pytest.approx(0, abs=1e-9)
    z = gradient_stiffness_correlation(torch.zeros(5), g[:5], 2)
    assert z == {"grad_stiff_correlation": 0.0, "grad_stiff_ratio_mean": 0.0,
                 "grad_below_stiffness_frac": 0.0}
    g2 = g.clone()
    g2[50] = float("nan")
    assert math.isfinite(gradient_stiffness_correlation(w, g2, 2)["grad_stiff_correlation"])


# ---- flip metrics ----------------------------------------------------------


def test_stall_ratio_and_flip_rate():
    assert [compute_stall_ratio(*a) for a in ((10, 100), (100, 100), (0, 100), (0, 0))] \
        == [0.9, 0.0, 1.0, 0.0]
    a = torch.tensor([1.0, 2.0, float("nan"), 4.0])
    assert compute_flip_rate(a, torch.tensor([1.0, 3.0, float("nan"), 4.0])) == 0.25
    assert compute_flip_rate(torch.tensor([]), torch.tensor([])) == 0.0
    with pytest.raises(ValueError, match="Shape mismatch"):
        compute_flip_rate(torch.zeros(2), torch.zeros(3))


def test_weight_flip_tracker():
    t = WeightFlipTracker()
    w = torch.tensor([1.0, 2.0])
    s = torch.tensor(1.0)
    for step in range(2):
        t.snapshot_pre_step("w", w, E5M2, s, grad=torch.tensor([1.0, 0.0]))
        w = w * 2
        assert t.compute_flips_post_step("w", w, E5M2, s) == 2
        assert "w" not in t.prev_quantized
    assert t.get_flip_counts() == {"w": 4} and t.get_update_counts() == {"w": 2}
    assert t.get_flip_rates() == {"w": 2.0}
    assert t.get_stall_ratios() == {"w": 1 - 4 / 2}  # AltGrad's, unclamped
    assert t.get_stall_ratios(per_element=True) == {"w": 0.0}
    t.snapshot_pre_step("v", torch.tensor([1.0, 1.0]), E5M2, s, grad=torch.ones(2))
    t.compute_flips_post_step("v", torch.tensor([1.0, 1.01]), E5M2, s)  # stays on grid
    assert t.get_stall_ratios(per_element=True)["v"] == 1.0
    nan = torch.tensor([float("nan"), 1.0])
    t.snapshot_pre_step("n", nan, E5M2, s)
    assert t.compute_flips_post_step("n", nan, E5M2, s) == 0  # NaN is not a flip
    with pytest.raises(KeyError, match="No pre-step snapshot"):
        t.compute_flips_post_step("zz", w, E5M2, s)
    t.reset()
    assert t.flip_counts == {} and t.total_weights == {}


# ---- rank health -----------------------------------------------------------


def test_ranks():
    assert compute_stable_rank(torch.eye(10)) == pytest.approx(10)
    assert compute_stable_rank(torch.outer(torch.arange(1.0, 6), torch.ones(4))) \
        == pytest.approx(1)
    assert compute_stable_rank(torch.zeros(10, 5)) == 5.0
    assert compute_stable_rank(torch.ones(10)) == 10.0
    assert 1 <= compute_stable_rank(torch.randn(32, 16, 3, 3)) <= 32
    assert compute_effective_rank(torch.eye(10)) == pytest.approx(10)
    assert compute_effective_rank(torch.zeros(4, 4)) == 1.0
    assert compute_effective_rank(torch.ones(4)) == 1.0
    w = torch.randn(6, 9)
    sv = torch.linalg.svdvals(w)
    assert compute_stable_rank(w) == pytest.approx((sv**2).sum().item() / sv[0].item()**2)
    # non-contiguous weights (AltGrad's .view raised)
    assert compute_stable_rank(w.t()) == pytest.approx(compute_stable_rank(w.t().contiguous()))


def test_rank_trend_detector():
    d = RankTrendDetector(window=3)
    assert d.update(10.0) is None and d.update(10.0) is None
    assert d.update(10.0) is None and d.initial_ema == 10.0
    assert d.update(10.0) is None
    msg = None
    for _ in range(30):
        msg = d.update(1.0) or msg
    assert msg is not None and "WARN" in msg and "drop" in msg.lower()
    assert d.update(1.0) is not None  # no latch
    d.reset()
    assert d.ema is None and d.initial_ema is None and d.step_count == 0


def test_rank_health_monitor():
    m = RankHealthMonitor(critical_layers=None)
    assert m.critical_layers == ["lm_head", "c_proj"]
    assert m.get_threshold_for_layer("lm_head.weight") == 0.15
    assert m.get_threshold_for_layer("h.0.mlp.c_proj.weight") == 0.3 * 0.5
    assert m.get_threshold_for_layer("h.0.attn.c_attn.weight") == 0.3
    assert RankHealthMonitor(warn_threshold=0.15).get_threshold_for_layer("lm_head") == 0.075
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.LayerNorm(4))
    ranks = m.compute_layer_ranks(model)
    assert list(ranks) == ["0.weight"]
    w = model[0].weight.detach()
    assert ranks["0.weight"]["stable_rank"] == pytest.approx(compute_stable_rank(w))
    assert ranks["0.weight"]["effective_rank"] == pytest.approx(compute_effective_rank(w))
    assert ranks["0.weight"]["spectral_norm"] == pytest.approx(
        torch.linalg.svdvals(w)[0].item())
    assert m.check_warnings(ranks) == [] and len(m._detectors) == 1
    assert m._detectors["0.weight"].window == 100  # AltGrad: log_interval checks
    s = RankHealthMonitor(log_interval=10, warmup_steps=30)
    s.check_warnings({"a": {"stable_rank": 5.0}})
    assert s._detectors["a"].window == 3
    out = []
    for _ in range(30):
        out += s.check_warnings({"a": {"stable_rank": 1.0}})
    assert out and out[0].startswith("[a] WARN")
    with pytest.raises(ValueError, match="warmup_steps"):
        RankHealthMonitor(warmup_steps=0)
