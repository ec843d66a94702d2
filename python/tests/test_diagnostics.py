# SPDX-License-Identifier: MIT
"""altgrad.quantization.diagnostics (issue 5): bit stall and its detector,
flips, update flips, stall ratio, ULP distance, stiffness and the exponent
histogram, against plain numpy references written here and hand-worked
examples; edge cases and errors."""
import math

import numpy as np
import pytest
import torch

import altgrad
from altgrad import _C
from altgrad.quantization import (
    E0M7, E3M4, E4M3, E5M2, ULP_NAN, BitStallDetector, FP8Format,
    count_code_flips, count_flips, detect_bit_stall, exponent_histogram,
    exponent_histogram_labels, stall_ratio, stiffness, ulp_distance,
    ulp_distance_stats, update_flips,
)
from altgrad.quantization.diagnostics import (
    HIST_FIELD, HIST_NAN, HIST_OVERFLOW, HIST_SUBNORMAL, HIST_UNDERFLOW, HIST_ZERO,
)
from conftest import random_f32, same_f32

F32 = np.float32
EPS = F32(1e-10)
E4M3FN = FP8Format("E4M3FN", 4, 3, 7, has_nan=True)
FORMATS = [E5M2, E4M3FN, E3M4, E0M7, "float8_e4m3fnuz", "bfloat16"]
IDS = ["e5m2", "e4m3fn", "e3m4", "e0m7", "e4m3fnuz", "bf16"]


# --- references: "same grid point" is == of the quantized values --------------

def q(x, fmt, scale=1.0):
    return altgrad.quantize_array(np.ascontiguousarray(x, dtype=F32), fmt, scale)


def ref_bit_stall(w, g, lr, fmt, scale):
    considered = np.abs(g) > EPS
    new = w - F32(lr) * g  # float32 product and difference
    same = q(new, fmt, scale) == q(w, fmt, scale)  # NaN is never ==
    return int(np.sum(considered & same)), int(np.sum(considered))


def ref_pos(x, fmt, scale=1.0):
    """Signed grid index of x / scale (signed formats with zero), NaN as None."""
    c = altgrad.format(fmt)
    codes = altgrad.encode(np.ascontiguousarray(x, dtype=F32), c, scale).astype(np.int64)
    vals = np.array([c.to_real(int(k)) for k in codes.ravel()]).reshape(codes.shape)
    mag = codes & (c.sign_mask - 1)
    pos = np.where(codes & c.sign_mask, -mag, mag)
    return pos, np.isnan(vals) | np.isnan(x)


def ref_stiffness(w, fmt, scale=1.0):
    c = altgrad.format(fmt)
    out = np.empty_like(w)
    for i, v in enumerate(w.ravel()):
        u = float(F32(v) / F32(scale))
        if math.isnan(u):
            out.flat[i] = np.nan
        elif math.isinf(u):
            out.flat[i] = np.inf
        elif u == 0:
            out.flat[i] = 0.0
        elif c.ebits == 0:
            out.flat[i] = F32(2.0 ** (-c.mbits - c.bias)) * F32(scale)
        else:
            e = math.frexp(abs(u))[1] - 1
            out.flat[i] = F32(2.0 ** (max(e, c.emin) - c.mbits)) * F32(scale)
    return out


def ref_hist(x, fmt, scale=1.0):
    c = altgrad.format(fmt)
    counts = np.zeros(HIST_FIELD + 2**c.ebits, dtype=np.int64)
    qs = q(x, fmt, scale)
    top_ulp = 2.0 ** (c.emax - c.mbits) if c.ebits else 2.0 ** (-c.mbits - c.bias)
    for v, y in zip(x.ravel(), qs.ravel()):
        u = float(F32(v) / F32(scale))
        if math.isnan(u):
            counts[HIST_NAN] += 1
        elif math.isinf(u) or abs(u) > c.max_finite + top_ulp / 2:
            counts[HIST_OVERFLOW] += 1
        elif v == 0:
            counts[HIST_ZERO] += 1
        elif y == 0:
            counts[HIST_UNDERFLOW] += 1
        elif c.ebits == 0 or abs(float(y) / scale) < c.min_normal:
            counts[HIST_SUBNORMAL] += 1
        else:
            counts[HIST_FIELD + math.frexp(abs(float(y) / scale))[1] - 1 + c.bias] += 1
    return counts


def sgd_case(rng, n, fmt):
    w = random_f32(rng, n, -6, 6)
    g = random_f32(rng, n, -12, 2)
    g[rng.random(n) < 0.1] = 0.0
    g[:3] = [1e-11, -1e-10, np.nan]
    w[3:5] = [np.nan, np.inf]
    g[3:5] = 1.0
    return w, g


# --- bit stall ----------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
@pytest.mark.parametrize("lr, scale", [(1e-3, 1.0), (0.1, 0.25), (1.0, 3.0)])
def test_bit_stall_against_reference(fmt, lr, scale, rng):
    w, g = sgd_case(rng, 2000, fmt)
    want = ref_bit_stall(w, g, lr, fmt, scale)
    got = detect_bit_stall(w, g, lr, fmt, scale)
    assert got == want and all(type(v) is int for v in got)
    assert detect_bit_stall(torch.from_numpy(w), torch.from_numpy(g), lr, fmt,
                            torch.tensor(scale)) == want


def test_bit_stall_hand_worked():
    one = np.ones(1, F32)
    assert detect_bit_stall(one, one, 1e-3, E5M2, 1.0) == (1, 1)   # 0.999 -> 1
    assert detect_bit_stall(one, one, 0.5, E5M2, 1.0) == (0, 1)     # 0.5 moves
    assert detect_bit_stall(one, one * 0, 0.5, E5M2, 1.0) == (0, 0)  # no gradient
    assert detect_bit_stall(one, one * F32(1e-10), 1e9, E5M2) == (0, 0)  # |g| = eps
    assert detect_bit_stall(one * np.nan, one, 1e-3, E5M2) == (0, 1)  # NaN never stalls
    # huge weights saturate: both sides are max_finite, a stall
    big = np.full(3, 1e30, F32)
    assert detect_bit_stall(big, np.ones(3, F32), 1.0, E5M2) == (3, 3)
    # scale moves the grid: at scale 2^-10, 1 - 1e-3 is a different point
    assert detect_bit_stall(one, one, 1e-3, E5M2, 2.0**-10) == (1, 1)
    assert detect_bit_stall(one * F32(2.0**-10), one, 2.0**-12, E5M2, 2.0**-10) == (0, 1)


def test_bit_stall_edges():
    e = np.zeros(0, F32)
    assert detect_bit_stall(e, e, 0.1, E5M2, 1.0) == (0, 0)
    z = np.zeros(10, F32)
    assert detect_bit_stall(z, z, 0.1, E5M2, 1.0) == (0, 0)
    assert detect_bit_stall(torch.tensor(1.0), torch.tensor(1.0), 1e-3, E5M2) == (1, 1)
    w = torch.ones(4, requires_grad=True)  # read only: accepted
    assert detect_bit_stall(w, torch.ones(4), 1e-3, E5M2) == (4, 4)
    x = np.ones((4, 6), F32)
    assert detect_bit_stall(x.T, x.T, 1e-3, "E5M2") == (24, 24)  # non-contiguous: copied


def test_bit_stall_errors():
    w = np.ones(4, F32)
    with pytest.raises(ValueError, match="lr"):
        detect_bit_stall(w, w, math.nan, E5M2)
    with pytest.raises(ValueError, match="lr"):
        detect_bit_stall(w, w, math.inf, E5M2)
    for s in [0.0, -1.0, math.nan, math.inf]:
        with pytest.raises(ValueError, match="scale"):
            detect_bit_stall(w, w, 0.1, E5M2, s)
    with pytest.raises(ValueError, match="as many"):
        detect_bit_stall(w, w[:3], 0.1, E5M2)
    with pytest.raises(TypeError, match="float32"):
        detect_bit_stall(w.astype(np.float64), w, 0.1, E5M2)
    with pytest.raises(TypeError, match="float32"):
        detect_bit_stall(torch.ones(4, dtype=torch.float16), torch.ones(4), 0.1, E5M2)
    with pytest.raises(TypeError):
        detect_bit_stall([1.0], [1.0], 0.1, E5M2)
    with pytest.raises(ValueError, match="unknown format"):
        detect_bit_stall(w, w, 0.1, "E9M9X")
    with pytest.raises(ValueError, match="rounding"):
        detect_bit_stall(w, w, 0.1, E5M2, rounding="sideways")
    with pytest.raises(TypeError):
        detect_bit_stall(w, w, 0.1, E5M2, colour="red")
    with pytest.raises(ValueError, match="contiguous"):
        _C.bit_stall(np.ones((2, 2), F32).T, np.ones(4, F32), 0.1, E5M2.c_format)


def test_bit_stall_detector(rng):
    d = BitStallDetector()
    assert d.get_stall_rate() == 0.0
    assert d.get_stats() == {"stall_rate": 0.0, "stall_count": 0, "total_count": 0,
                             "steps": 0}
    stall = total = 0
    w = torch.from_numpy(random_f32(rng, 500, -4, 4))
    for step in range(5):
        g = torch.from_numpy(random_f32(rng, 500, -10, 0))
        s, t = ref_bit_stall(w.numpy(), g.numpy(), 0.01, E4M3, 1.0)
        assert d.update(w, g, 0.01, E4M3, 1.0) == (s, t)
        stall += s
        total += t
        w = w - 0.01 * g
    assert (d.stall_count, d.total_count, d.step_count) == (stall, total, 5)
    assert d.get_stall_rate() == stall / total
    assert d.get_stats() == {"stall_rate": stall / total, "stall_count": stall,
                             "total_count": total, "steps": 5}
    d.update(np.ones(3, F32), np.zeros(3, F32), 0.1, E5M2)      # nothing considered
    assert d.step_count == 6 and d.total_count == total
    d.reset()
    assert (d.stall_count, d.total_count, d.step_count, d.get_stall_rate()) == (0, 0, 0, 0.0)
    with pytest.raises(ValueError):
        d.update(np.ones(3, F32), np.ones(3, F32), math.nan, E5M2)
    assert d.step_count == 0  # a failed update counts nothing


# --- flips ----------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_flips_against_reference(fmt, rng):
    a = random_f32(rng, 3000, -8, 8)
    b = a.copy()
    pick = rng.random(a.size) < 0.5
    b[pick] *= F32(1.0) + F32(2.0**-3) * rng.standard_normal(pick.sum()).astype(F32)
    a[:4] = [np.nan, 0.0, -0.0, np.inf]
    b[:4] = [np.nan, -0.0, 1e-30, np.inf]
    for scale in [1.0, 0.5]:
        want = int(np.sum(~(q(a, fmt, scale) == q(b, fmt, scale))))
        assert count_flips(a, b, fmt, scale) == want
        assert count_flips(torch.from_numpy(a), torch.from_numpy(b), fmt, scale) == want
    c = altgrad.format(fmt)
    ca, cb = altgrad.encode(a, c), altgrad.encode(b, c)
    want = int(np.sum(~(altgrad.decode(ca, c) == altgrad.decode(cb, c))))
    # (a format without NaN encodes a NaN input as some finite code, so the
    # code snapshots may count one flip fewer than count_flips(a, b))
    assert count_code_flips(ca, cb, fmt) == want
    ta, tb = altgrad.encode(torch.from_numpy(a), c), altgrad.encode(torch.from_numpy(b), c)
    assert count_code_flips(ta, tb, fmt) == want    # uint8, or int16 for 16 bits


def test_flips_hand_worked():
    a = np.array([1.0, 1.0, 0.0, np.nan, 1e6, 5.0], F32)
    b = np.array([1.1, 1.3, -0.0, np.nan, 1e7, 5.0], F32)
    # E5M2: 1.1 -> 1.0 same; 1.3 -> 1.25 flip; +-0 same; NaN flip; 1e6 and 1e7
    # both saturate to 57344: same; 5 == 5
    assert count_flips(a, b, E5M2) == 2
    e = np.zeros(0, F32)
    assert count_flips(e, e, E5M2) == 0
    assert count_flips(torch.tensor(1.0), torch.tensor(2.0), E5M2) == 1
    z = np.zeros(7, F32)
    assert count_flips(z, -z, E5M2) == 0
    assert count_code_flips(np.array([0, 0x80, 0x7E], np.uint8),
                            np.array([0x80, 0, 0x7E], np.uint8), E5M2) == 1  # NaN code


def test_flips_errors():
    a = np.ones(4, F32)
    with pytest.raises(ValueError, match="as many"):
        count_flips(a, a[:2], E5M2)
    with pytest.raises(ValueError, match="scale"):
        count_flips(a, a, E5M2, 0.0)
    with pytest.raises(TypeError, match="float32"):
        count_flips(a, a.astype(np.float64), E5M2)
    with pytest.raises(ValueError, match="unknown format"):
        count_flips(a, a, "E9M9X")
    u = np.zeros(4, np.uint8)
    with pytest.raises(TypeError, match="one dtype"):
        count_code_flips(u, u.astype(np.uint16), "bfloat16")
    with pytest.raises(TypeError, match="uint8"):
        count_code_flips(a, a, E5M2)
    with pytest.raises(ValueError, match="as many"):
        count_code_flips(u, u[:1], E5M2)
    with pytest.raises(ValueError):  # 200 is not a code of a 4-bit format
        count_code_flips(np.array([200], np.uint8), np.array([0], np.uint8), "float4_e2m1fn")
    with pytest.raises(ValueError):  # 8-bit storage for a 16-bit format
        count_code_flips(u, u, "bfloat16")
    # 16-bit storage of 8-bit codes is fine
    assert count_code_flips(u.astype(np.uint16), u.astype(np.uint16) + 1, E5M2) == 4


def test_update_flips_and_stall_ratio(rng):
    for fmt in [E5M2, E4M3FN, "bfloat16"]:
        w, g = sgd_case(rng, 1500, fmt)
        after = w - F32(0.05) * g
        upd = np.abs(g) > EPS
        moved = ~(q(w, fmt) == q(after, fmt))
        want = (int(upd.sum()), int((upd & moved).sum()))
        assert update_flips(w, after, g, fmt) == want
        assert update_flips(torch.from_numpy(w), torch.from_numpy(after),
                            torch.from_numpy(g), fmt) == want
        stall, total = detect_bit_stall(w, g, 0.05, fmt)
        assert total == want[0] and stall == want[0] - want[1]
        assert stall_ratio(want[1], want[0]) == 1 - want[1] / want[0]
    assert stall_ratio(1, 4) == 0.75
    assert stall_ratio(0, 0) == 0.0
    assert stall_ratio(4, 4) == 0.0
    assert stall_ratio(np.int64(0), np.int64(5)) == 1.0
    with pytest.raises(ValueError, match="flips"):
        stall_ratio(5, 4)
    with pytest.raises(ValueError):
        stall_ratio(-1, 4)
    with pytest.raises(TypeError):
        stall_ratio(1.5, 4)
    e = np.zeros(0, F32)
    assert update_flips(e, e, e, E5M2) == (0, 0)
    with pytest.raises(ValueError, match="grad"):
        update_flips(np.ones(3, F32), np.ones(3, F32), np.ones(2, F32), E5M2)


# --- ULP distance -----------------------------------------------------------------

@pytest.mark.parametrize("fmt", [E5M2, E4M3FN, E3M4, E4M3, "float8_e4m3fnuz"],
                         ids=["e5m2", "e4m3fn", "e3m4", "e4m3", "e4m3fnuz"])
def test_ulp_distance_against_reference(fmt, rng):
    a = random_f32(rng, 2000, -12, 12)
    b = random_f32(rng, 2000, -12, 12)
    a[:5] = [np.nan, 0.0, 1.0, np.inf, -0.0]
    b[:5] = [1.0, -0.0, np.nan, -np.inf, 1e-30]
    pa, na = ref_pos(a, fmt)
    pb, nb = ref_pos(b, fmt)
    want = np.where(na | nb, ULP_NAN, pb - pa).astype(np.int32)
    d = ulp_distance(a, b, fmt)
    assert d.dtype == np.int32 and np.array_equal(d, want)
    t = ulp_distance(torch.from_numpy(a), torch.from_numpy(b), fmt)
    assert t.dtype == torch.int32 and np.array_equal(t.numpy(), want)
    ok = want != ULP_NAN
    st = ulp_distance_stats(a, b, fmt)
    absd = np.abs(want[ok].astype(np.int64))
    assert st == {"sum_abs": int(absd.sum()), "max_abs": int(absd.max()),
                  "nan_pairs": int((~ok).sum()), "count": 2000,
                  "mean_abs": absd.sum() / ok.sum()}


def test_ulp_distance_hand_worked():
    one = np.ones(1, F32)
    assert ulp_distance(one, one * 2, E5M2).tolist() == [4]        # 1, 1.25 ... 2
    assert ulp_distance(one * 2, one, E5M2).tolist() == [-4]
    m = F32(E5M2.min_positive_value)
    assert ulp_distance(-m * one, m * one, E5M2).tolist() == [2]   # across zero
    assert ulp_distance(np.array([0.0], F32), np.array([-0.0], F32), E5M2).tolist() == [0]
    mx = F32(E5M2.max_representable_value)
    # saturating default: inf rounds to max; under ieee overflow it is one beyond
    assert ulp_distance(mx * one, one * np.inf, E5M2).tolist() == [1]
    assert ulp_distance(mx * one, one * F32(1e9), E5M2, overflow="ieee").tolist() == [1]
    assert ulp_distance(one, one * np.nan, E5M2).tolist() == [ULP_NAN]
    assert ulp_distance(torch.tensor(1.0), torch.tensor(2.0), E5M2, 2.0).item() == 4
    assert ulp_distance(np.zeros((2, 0), F32), np.zeros((2, 0), F32), E5M2).shape == (2, 0)
    st = ulp_distance_stats(one * np.nan, one, E5M2)
    assert st == {"sum_abs": 0, "max_abs": 0, "nan_pairs": 1, "count": 1, "mean_abs": 0.0}
    e = np.zeros(0, F32)
    assert ulp_distance_stats(e, e, E5M2)["count"] == 0


def test_ulp_distance_errors():
    a = np.ones(3, F32)
    with pytest.raises(ValueError, match="as many"):
        ulp_distance(a, a[:2], E5M2)
    with pytest.raises(ValueError, match="scale"):
        ulp_distance(a, a, E5M2, -1.0)
    with pytest.raises(TypeError, match="float32"):
        ulp_distance_stats(a.astype(np.float16), a, E5M2)
    with pytest.raises(ValueError, match="unknown format"):
        ulp_distance(a, a, "E9M9X")
    with pytest.raises(TypeError):  # d must be int32
        _C.ulp_distance(np.zeros(3, np.int64), a, a, E5M2.c_format)


# --- stiffness --------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS + ["E7M0", "float8_e8m0fnu"],
                         ids=IDS + ["e7m0", "e8m0"])
@pytest.mark.parametrize("scale", [1.0, 0.375])
def test_stiffness_against_reference(fmt, scale, rng):
    w = random_f32(rng, 1500, -40, 40)
    w[:5] = [0.0, -0.0, np.nan, np.inf, -np.inf]
    s = stiffness(w, fmt, scale)
    assert same_f32(s, ref_stiffness(w, fmt, scale))
    t = stiffness(torch.from_numpy(w), fmt, scale)
    assert isinstance(t, torch.Tensor) and same_f32(t.numpy(), s)


def test_stiffness_hand_worked():
    assert stiffness(np.array([1.0, 3.0, -7.9, 1e6], F32), E5M2).tolist() == [
        0.25, 0.5, 1.0, 2.0**(19 - 2)]     # continued beyond max_finite
    assert stiffness(np.array([3.0], F32), E4M3).tolist() == [0.25]
    assert stiffness(np.array([1e-3, 0.5, 100.0], F32), E0M7).tolist() == [2.0**-7] * 3
    assert stiffness(np.array([1e-9], F32), E5M2).tolist() == [2.0**(-14 - 2)]  # subnormal step
    assert stiffness(np.array([1.0], F32), E5M2, 4.0).tolist() == [2.0**(-2 - 2) * 4]
    assert stiffness(torch.tensor(0.0), E5M2).item() == 0.0
    assert stiffness(np.zeros(0, F32), E5M2).shape == (0,)
    with pytest.raises(ValueError, match="scale"):
        stiffness(np.ones(2, F32), E5M2, math.nan)
    with pytest.raises(TypeError, match="float32"):
        stiffness(np.ones(2, np.int32), E5M2)
    with pytest.raises(ValueError, match="unknown format"):
        stiffness(np.ones(2, F32), "E9M9X")


# --- exponent histogram -------------------------------------------------------------

@pytest.mark.parametrize("fmt", [E5M2, E4M3FN, E3M4, E0M7, "bfloat16"],
                         ids=["e5m2", "e4m3fn", "e3m4", "e0m7", "bf16"])
@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_exponent_histogram_against_reference(fmt, scale, rng):
    x = random_f32(rng, 2000, -40, 40)
    x[:4] = [np.nan, np.inf, -0.0, -np.inf]
    h = exponent_histogram(x, fmt, scale)
    assert h.dtype == np.int64 and h.sum() == x.size
    assert np.array_equal(h, ref_hist(x, fmt, scale))
    assert np.array_equal(exponent_histogram(torch.from_numpy(x), fmt, scale), h)
    assert len(exponent_histogram_labels(fmt)) == h.size


def test_exponent_histogram_hand_worked():
    x = np.array([1.0, 1.5, 0.0, -0.0, 1e-10, np.nan, np.inf, 1e6, 2.0**-15, 4.0], F32)
    h = exponent_histogram(x, E5M2)
    want = np.zeros(HIST_FIELD + 32, np.int64)
    want[HIST_FIELD + 15] = 2            # 1.0 and 1.5: binade 2^0 (field = bias)
    want[HIST_FIELD + 17] = 1            # 4.0
    want[HIST_ZERO] = 2
    want[HIST_UNDERFLOW] = 1             # 1e-10
    want[HIST_NAN] = 1
    want[HIST_OVERFLOW] = 2              # inf and 1e6 > 57344
    want[HIST_SUBNORMAL] = 1             # 2^-15 < 2^-14
    assert np.array_equal(h, want)
    labels = exponent_histogram_labels(E5M2)
    assert labels[:5] == ["nan", "overflow", "underflow", "zero", "subnormal"]
    assert labels[HIST_FIELD + 15] == "2^0"
    assert exponent_histogram(np.zeros(0, F32), E5M2).sum() == 0
    assert exponent_histogram(np.zeros(5, F32), E5M2)[HIST_ZERO] == 5
    assert exponent_histogram(torch.tensor(1.0), E5M2)[HIST_FIELD + 15] == 1
    assert exponent_histogram(np.full(3, 0.5, F32), "E0M7")[HIST_SUBNORMAL] == 3
    assert exponent_histogram(np.ones(3, F32), "E0M7")[HIST_OVERFLOW] == 3  # > 127/128
    with pytest.raises(ValueError, match="scale"):
        exponent_histogram(np.ones(2, F32), E5M2, 0.0)
    with pytest.raises(TypeError, match="float32"):
        exponent_histogram(np.ones(2, np.float64), E5M2)
    with pytest.raises(ValueError, match="overflow"):
        exponent_histogram(np.ones(2, F32), E5M2, overflow="wrap")
    with pytest.raises(ValueError, match="unknown format"):
        exponent_histogram(np.ones(2, F32), "E9M9X")


def test_other_device_and_non_arrays_are_errors():
    meta = torch.empty(4, device="meta")
    cpu = torch.ones(4)
    for call in [lambda: detect_bit_stall(meta, cpu, 0.1, E5M2),
                 lambda: count_flips(cpu, meta, E5M2),
                 lambda: ulp_distance(meta, cpu, E5M2),
                 lambda: stiffness(meta, E5M2),
                 lambda: exponent_histogram(meta, E5M2)]:
        with pytest.raises(ValueError, match="CPU"):
            call()
    for call in [lambda: stiffness([1.0], E5M2), lambda: count_flips(1.0, 2.0, E5M2),
                 lambda: exponent_histogram("x", E5M2)]:
        with pytest.raises(TypeError):
            call()
