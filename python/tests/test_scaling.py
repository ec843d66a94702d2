# SPDX-License-Identifier: MIT
"""altgrad.quantization.scaling (issue 5): amax, AmaxHistory, compute_scale,
ScalingConfig, per-row and MX block quantization, against plain numpy
references written here and hand-worked examples; edge cases and errors."""
import collections
import math

import numpy as np
import pytest
import torch

import altgrad
from altgrad import _C
from altgrad.quantization import (
    E4M3, E5M2, AmaxHistory, FP8Format, ScalingConfig, amax, amax_rows,
    channel_scales, compute_scale, mx_decode, mx_encode, mx_quantize,
    mx_scale_code, mx_scale_count, mx_scale_value, quantize, quantize_rows,
)
from conftest import random_f32, same_f32

E4M3FN = FP8Format("E4M3FN", 4, 3, 7, has_nan=True)  # the OCP 448-max format
MX_FORMATS = ["float8_e4m3fn", "float8_e5m2", "float6_e2m3fn", "float6_e3m2fn",
              "float4_e2m1fn"]
F32 = np.float32


# --- references --------------------------------------------------------------

def ref_amax(x):
    a = np.abs(np.asarray(x, dtype=np.float64)).ravel()
    a = a[~np.isnan(a)]
    return float(a.max()) if a.size else 0.0


def ref_scale(amax_v, fmt, scale_min=1e-10):
    m = F32(altgrad.format(fmt).max_finite)
    a = F32(amax_v)
    if np.isinf(a):
        a = F32(np.finfo(np.float32).max)
    with np.errstate(over="ignore"):
        q = a / m
    if np.isinf(q):  # max_finite < 1: the quotient overflows; FLT_MAX then
        q = np.finfo(np.float32).max
    return float(max(F32(q), F32(scale_min)))


def ref_scale_exact(amax_v, fmt, scale_min=1e-10):
    """The Python-number path: amax / max_finite in double, or scale_min."""
    return max(float(amax_v) / altgrad.format(fmt).max_finite, scale_min)


def floor_log2(v):
    return math.frexp(v)[1] - 1  # exact for every positive float


def ref_mx(x2d, fmt, block):
    """(values, scale codes) of MX block quantization, one block at a time,
    from the spec's rule: X = 2^(floor(log2 amax) - emax), clamped."""
    c = altgrad.format(fmt)
    rows, cols = x2d.shape
    nb = -(-cols // block)
    y = np.empty_like(x2d)
    codes = np.zeros((rows, nb), dtype=np.uint8)
    for r in range(rows):
        for b in range(nb):
            blk = x2d[r, b * block:(b + 1) * block]
            if np.isnan(blk).any() or np.isinf(blk).any():
                codes[r, b] = 255
                y[r, b * block:(b + 1) * block] = np.nan
                continue
            am = float(np.abs(blk).max())
            e = -127 if am == 0 else max(-127, min(127, floor_log2(am) - c.emax))
            codes[r, b] = e + 127
            X = F32(2.0**e)
            q = altgrad.quantize_array(np.ascontiguousarray(blk / X), c)
            y[r, b * block:(b + 1) * block] = q * X
    return y, codes


# --- amax --------------------------------------------------------------------

def test_amax_against_reference(rng):
    for n in [0, 1, 7, 1000]:
        x = random_f32(rng, n)
        assert amax(x) == ref_amax(x)
        assert amax(torch.from_numpy(x)) == ref_amax(x)


@pytest.mark.parametrize("x, want, nans", [
    ([], 0.0, 0), ([0.0, -0.0], 0.0, 0), ([np.nan, np.nan], 0.0, 2),
    ([1.0, np.nan, -3.0], 3.0, 1), ([-np.inf, 1.0], math.inf, 0),
    ([3e38, -3.4e38], float(F32(3.4e38)), 0), ([-2.5], 2.5, 0),
])
def test_amax_edge_cases(x, want, nans):
    a = np.array(x, dtype=np.float32)
    assert amax(a, with_nan_count=True) == (want, nans)
    assert amax(torch.tensor(x, dtype=torch.float32)) == want


def test_amax_0d_and_grad_tensors():
    assert amax(torch.tensor(-4.0)) == 4.0
    w = torch.tensor([1.0, -6.0], requires_grad=True)  # read only: accepted
    assert amax(w) == 6.0
    assert amax(np.arange(12, dtype=np.float32).reshape(3, 4).T) == 11.0


# --- compute_scale -----------------------------------------------------------

def test_compute_scale_hand_worked():
    assert compute_scale(448.0, E4M3FN) == 1.0
    assert compute_scale(448.0, "float8_e4m3fn") == 1.0
    assert compute_scale(448.0, altgrad.format("float8_e4m3fn")) == 1.0
    assert compute_scale(57344.0, E5M2) == 1.0
    assert compute_scale(896.0, E4M3FN) == 2.0
    assert compute_scale(1.0, E4M3) == 1.0 / E4M3.max_representable_value  # exact
    assert compute_scale(100.0, E4M3FN) == 100.0 / 448.0
    assert compute_scale(0.0, E4M3FN) == 1e-10                        # floor
    assert compute_scale(1e-12, E4M3FN, scale_min=1e-3) == 1e-3
    assert compute_scale(math.inf, E4M3FN) == float(F32(np.finfo(np.float32).max / F32(448)))
    # max_finite < 1 (E0M7): the quotient of a huge amax is capped at FLT_MAX
    assert compute_scale(math.inf, "E0M7") == float(np.finfo(np.float32).max)
    assert compute_scale(3.4e38, "E0M7") == float(np.finfo(np.float32).max)
    s0 = compute_scale(torch.tensor(100.0), E4M3FN)                   # 0-d tensor
    assert isinstance(s0, torch.Tensor) and s0.shape == ()
    assert s0.item() == float(F32(100.0) / F32(448.0)) == (torch.tensor(100.0) / 448.0).item()
    assert compute_scale(np.float32(224.0), E4M3FN) == 0.5
    assert compute_scale(np.array(224.0, F32), E4M3FN).shape == ()


def test_compute_scale_against_reference(rng):
    for fmt in [E4M3FN, E5M2, E4M3, "E3M4", "E0M7", "bfloat16", "float4_e2m1fn"]:
        for a in np.concatenate([np.abs(random_f32(rng, 200, -40, 40)), [0.0, 1e-30]]):
            s = compute_scale(float(a), fmt)
            if ref_scale_exact(a, fmt) <= np.finfo(np.float32).max:
                assert s == ref_scale_exact(a, fmt), (fmt, a)
            else:
                assert s == ref_scale(a, fmt), (fmt, a)
            assert math.isfinite(s) and s > 0
            assert compute_scale(torch.tensor(float(a), dtype=torch.float32), fmt).item() == ref_scale(a, fmt)


def test_compute_scale_options():
    # margin multiplies amax; pow2 rounds up to a power of two, so no overflow
    assert compute_scale(224.0, E4M3FN, margin=2.0) == 1.0
    for a in [1.0, 3.0, 448.0, 449.0, 1e-3, 0.0, 1e30]:
        s = compute_scale(a, E4M3FN, pow2=True)
        assert math.frexp(s)[0] == 0.5                    # a power of two
        assert a / s <= 448.0
        if a / 448.0 > 1e-10:
            assert a / (s / 2) > 448.0                     # the smallest one


def test_compute_scale_tensor_input():
    a = torch.tensor([448.0, 0.0, 896.0, math.inf])
    s = compute_scale(a, E4M3FN)
    assert isinstance(s, torch.Tensor) and s.dtype == torch.float32
    assert s.tolist() == [ref_scale(v, E4M3FN) for v in a.tolist()]
    sn = compute_scale(a.numpy(), E4M3FN)
    assert isinstance(sn, np.ndarray) and np.array_equal(sn, s.numpy())
    assert compute_scale(np.zeros(0, np.float32), E4M3FN).shape == (0,)


@pytest.mark.parametrize("bad", [math.nan, -1.0, -math.inf])
def test_compute_scale_bad_amax(bad):
    with pytest.raises(ValueError, match="amax"):
        compute_scale(bad, E4M3FN)
    with pytest.raises(ValueError, match="amax"):
        compute_scale(torch.tensor([1.0, bad]), E4M3FN)


@pytest.mark.parametrize("kw", [dict(scale_min=0.0), dict(scale_min=-1.0),
                                dict(scale_min=math.inf), dict(margin=0.0),
                                dict(margin=math.nan)])
def test_compute_scale_bad_options(kw):
    with pytest.raises(ValueError, match="scale_min|margin"):
        compute_scale(1.0, E4M3FN, **kw)


def test_compute_scale_bad_types():
    with pytest.raises(ValueError, match="unknown format"):
        compute_scale(1.0, "E9M9X")
    with pytest.raises(TypeError):
        compute_scale(1.0, 42)
    with pytest.raises(TypeError, match="amax"):
        compute_scale("1.0", E4M3FN)
    with pytest.raises(TypeError, match="float32"):
        compute_scale(torch.ones(3, dtype=torch.float64), E4M3FN)


# --- AmaxHistory / ScalingConfig ----------------------------------------------

def test_amax_history_window_against_deque(rng):
    for length in [1, 3, 16]:
        h = AmaxHistory(length)
        ref = collections.deque(maxlen=length)
        assert h.get_amax() == 1.0 and len(h) == 0 and h.len() == 0
        for step in range(40):
            x = random_f32(rng, int(rng.integers(1, 50)), -10, 10)
            got = h.update(torch.from_numpy(x) if step % 2 else x)
            ref.append(ref_amax(x))
            assert got == ref[-1]
            assert h.get_amax() == max(ref)
            assert len(h) == len(ref) == h.len()
        h.reset()
        assert h.get_amax() == 1.0 and len(h) == 0 and h.history_len == length


def test_amax_history_edge_cases():
    h = AmaxHistory(2)
    h.update(np.array([np.nan, 2.0, np.nan], dtype=np.float32))
    assert h.get_amax() == 2.0 and h.nan_count == 2
    h.update(torch.zeros(0))             # empty: amax 0 is recorded
    assert len(h) == 2 and h.get_amax() == 2.0
    h.update(torch.zeros(5))
    assert h.get_amax() == 0.0           # the 2.0 dropped out
    h.update(torch.tensor([-math.inf]))
    assert h.get_amax() == math.inf
    h.update(torch.tensor(5.0))          # 0-d
    assert h.get_amax() == math.inf
    h.update(torch.tensor(7.0))
    assert h.get_amax() == 7.0
    h.reset()
    assert h.nan_count == 0 and h.get_amax() == 1.0
    assert AmaxHistory().history_len == 16


@pytest.mark.parametrize("bad", [0, -1, -100])
def test_amax_history_bad_length(bad):
    with pytest.raises(ValueError, match="history_len"):
        AmaxHistory(bad)
    with pytest.raises(ValueError, match="history_len"):
        ScalingConfig(history_len=bad)
    with pytest.raises(ValueError, match=">= 1"):
        _C.amax_history_create(bad)


def test_amax_history_bad_types():
    for bad in [1.5, "4", None, True]:
        with pytest.raises(TypeError):
            AmaxHistory(bad)
    h = AmaxHistory(4)
    with pytest.raises(TypeError, match="float32"):
        h.update(torch.ones(3, dtype=torch.float64))
    with pytest.raises(TypeError):
        h.update([1.0, 2.0])
    with pytest.raises(TypeError, match="amax history"):
        _C.amax_history_push(object(), 1.0)
    cap = _C.amax_history_create(2)
    for bad in [math.nan, -1.0]:
        with pytest.raises(ValueError, match="NaN or negative"):
            _C.amax_history_push(cap, bad)
    assert _C.amax_history_info(cap) == (0.0, 0, 2)


def test_scaling_config():
    c = ScalingConfig()
    assert (c.history_len, c.scale_min) == (16, 1e-10)
    c = ScalingConfig(history_len=4, scale_min=1e-6)
    h = AmaxHistory(c.history_len)
    h.update(torch.tensor([0.0]))
    assert compute_scale(h.get_amax(), E4M3FN, c.scale_min) == 1e-6
    for bad in [0.0, -1e-3, math.inf, math.nan]:
        with pytest.raises(ValueError, match="scale_min"):
            ScalingConfig(scale_min=bad)
    with pytest.raises(TypeError):
        ScalingConfig(scale_min="1e-3")


def test_delayed_scaling_round_trip(rng):
    # amax history -> scale -> quantize: nothing saturates, values on grid
    h = AmaxHistory(4)
    x = torch.from_numpy(random_f32(rng, 500, -5, 12))
    h.update(x)
    s = compute_scale(h.get_amax(), E4M3FN)
    y = quantize(x, E4M3FN, s)
    assert torch.all(y.abs() <= x.abs().max() * (1 + 2**-3))
    assert same_f32(y, altgrad.quantize_array(x.numpy(), E4M3FN, s))


# --- per-row ------------------------------------------------------------------

def test_amax_rows_against_reference(rng):
    for shape in [(5, 7), (3, 4, 6), (1, 1), (4, 0), (0, 3), (9,)]:
        x = random_f32(rng, math.prod(shape), -20, 20).reshape(shape)
        if x.size > 3:
            x.flat[2] = np.nan
        a = amax_rows(x)
        assert a.shape == shape[:-1] and a.dtype == np.float32
        rows = math.prod(shape[:-1])
        flat = x.reshape(rows * shape[-1])
        want = np.array([ref_amax(flat[r * shape[-1]:(r + 1) * shape[-1]])
                         for r in range(rows)], dtype=np.float32).reshape(shape[:-1])
        assert same_f32(a, want)
        t = amax_rows(torch.from_numpy(x))
        assert isinstance(t, torch.Tensor) and same_f32(t.numpy(), want)
    assert amax_rows(torch.tensor(-3.0)).item() == 3.0  # 0-d: one 1x1 row


def test_channel_scales(rng):
    x = random_f32(rng, 60, -8, 8).reshape(6, 10)
    s = channel_scales(x, E4M3FN)
    assert np.array_equal(s, np.array([ref_scale(ref_amax(r), E4M3FN) for r in x],
                                      dtype=np.float32))


@pytest.mark.parametrize("fmt", [E4M3FN, E5M2, "E3M4", "E0M7", "bfloat16"],
                         ids=["e4m3fn", "e5m2", "e3m4", "e0m7", "bf16"])
def test_quantize_rows_against_per_row_quantize(fmt, rng):
    x = random_f32(rng, 8 * 33, -12, 12).reshape(8, 33)
    x[0, 0], x[1, 1], x[2, 2] = np.nan, np.inf, -0.0
    scales = np.array([ref_scale(ref_amax(r), fmt) for r in x], dtype=np.float32)
    scales[3] = 0.37
    want = np.stack([altgrad.quantize_array(np.ascontiguousarray(r), fmt, s)
                     for r, s in zip(x, scales)])
    assert same_f32(quantize_rows(x, fmt, scales), want)
    assert same_f32(quantize_rows(torch.from_numpy(x), fmt, torch.from_numpy(scales))
                    .detach().numpy(), want)
    # default scales: channel_scales
    auto = quantize_rows(x, fmt)
    assert same_f32(auto, quantize_rows(x, fmt, channel_scales(x, fmt)))
    # one number for every row == per-tensor quantize
    assert same_f32(quantize_rows(x, fmt, 0.5), altgrad.quantize_array(x, fmt, 0.5))


def test_quantize_rows_shapes_and_stats():
    assert quantize_rows(np.zeros((0, 4), np.float32), E5M2).shape == (0, 4)
    assert quantize_rows(np.zeros((3, 0), np.float32), E5M2).shape == (3, 0)
    y = quantize_rows(torch.tensor(3.3), E5M2, torch.tensor(1.0))
    assert y.shape == () and y.item() == 3.5
    x = torch.tensor([[1.0, 1000.0, 1e-9], [0.0, 2.0, -1e9]])
    stats = {}
    quantize_rows(x, E4M3FN, torch.tensor([1.0, 1.0]), stats=stats)
    assert stats == {"total": 6, "overflow": 2, "underflow": 1, "nan": 0}
    y = quantize_rows(torch.zeros(2, 3), E4M3FN)        # all zeros: scale_min
    assert torch.equal(y, torch.zeros(2, 3))


def test_quantize_rows_ste():
    x = torch.tensor([[1.0, 600.0, -3.0], [0.5, -2.0, 1000.0]], requires_grad=True)
    s = torch.tensor([1.0, 4.0])
    y = quantize_rows(x, E4M3FN, s)
    y.backward(torch.full_like(y, 2.0))
    assert torch.equal(x.grad, torch.full_like(x, 2.0))           # identity
    x.grad = None
    y = quantize_rows(x, E4M3FN, s, ste="clipped")
    y.sum().backward()
    keep = (x.detach().abs() / s[:, None] <= 448).float()          # 600 and 1000/4 > 448? no
    assert torch.equal(x.grad, keep)
    assert x.grad.tolist() == [[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]]
    # create_graph: the gradient is differentiable in dy
    x.grad = None
    y = quantize_rows(x, E4M3FN, s, ste="clipped")
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    assert torch.equal(g.detach(), keep)


@pytest.mark.parametrize("args, exc, msg", [
    ((np.ones((2, 3), np.float32), E5M2, np.ones(3, np.float32)), ValueError, "one value per row"),
    ((np.ones((2, 3), np.float32), E5M2, np.array([1.0, 0.0], np.float32)), ValueError, "scale"),
    ((np.ones((2, 3), np.float32), E5M2, np.array([1.0, np.nan], np.float32)), ValueError, "scale"),
    ((np.ones((2, 3), np.float32), E5M2, -1.0), ValueError, "scale"),
    ((np.ones((2, 3), np.float64), E5M2, 1.0), TypeError, "float32"),
    ((np.ones((2, 3), np.float32), E5M2, np.ones(2, np.float64)), TypeError, "float32"),
    ((np.ones((2, 3), np.float32), "E9M9X", 1.0), ValueError, "unknown format"),
    ((torch.ones(2, 3), E5M2, torch.tensor([1.0, -1.0])), ValueError, "scale"),
])
def test_quantize_rows_errors(args, exc, msg):
    with pytest.raises(exc, match=msg):
        quantize_rows(*args)


def test_quantize_rows_options_errors():
    x = torch.ones(2, 3)
    with pytest.raises(ValueError, match="ste"):
        quantize_rows(x, E5M2, ste="smooth")
    with pytest.raises(ValueError, match="rounding"):
        quantize_rows(x, E5M2, rounding="sideways")
    with pytest.raises(TypeError):
        quantize_rows(x, E5M2, colour="red")


def test_quantize_rows_stochastic_seeded(rng):
    x = torch.from_numpy(random_f32(rng, 4 * 50, -3, 3).reshape(4, 50))
    a = quantize_rows(x, E5M2, 1.0, rounding="stochastic", seed=7)
    b = quantize_rows(x, E5M2, 1.0, rounding="stochastic", seed=7)
    assert torch.equal(a, b)
    # keyed by the flat index: the same as per-tensor stochastic quantize
    c = quantize(x, E5M2, 1.0, rounding="stochastic", seed=7)
    assert torch.equal(a, c)


def test_non_contiguous_inputs_are_copied(rng):
    x = random_f32(rng, 60, -5, 5).reshape(6, 10)
    assert same_f32(quantize_rows(x.T, E5M2), quantize_rows(np.ascontiguousarray(x.T), E5M2))
    assert same_f32(mx_quantize(x.T, "float8_e4m3fn"),
                    mx_quantize(np.ascontiguousarray(x.T), "float8_e4m3fn"))
    # the raw layer never copies: non-contiguous is a ValueError there
    with pytest.raises(ValueError, match="contiguous"):
        _C.amax(x.T)
    with pytest.raises(ValueError, match="contiguous"):
        _C.amax_rows(np.zeros(10, np.float32), x.T, 10, 6)


# --- MX blocks ----------------------------------------------------------------

def test_mx_hand_worked():
    # 32 values with amax 3.0 in float8_e4m3fn: shared exponent
    # floor(log2 3) - 8 = -7, so X = 2^-7 and 3.0 / X = 384 (on the grid)
    x = np.linspace(-3.0, 3.0, 32, dtype=np.float32)
    codes, scales = mx_encode(x, "float8_e4m3fn")
    assert scales.tolist() == [127 - 7]
    assert mx_scale_value(scales[0]) == 2.0**-7
    y = mx_decode(codes, scales, "float8_e4m3fn")
    assert y[0] == -3.0 and y[-1] == 3.0
    e4 = altgrad.format("float8_e4m3fn")
    assert same_f32(y, altgrad.quantize_array(x, e4, 2.0**-7))
    assert mx_scale_code(3.0, "float8_e4m3fn") == 120
    assert mx_scale_code(1.0, "float8_e5m2") == 127 - 15
    assert mx_scale_code(6.0, "float4_e2m1fn") == 127 + 2 - 2
    assert mx_scale_code(0.0, "float8_e4m3fn") == 0
    assert mx_scale_code(math.nan, "float8_e4m3fn") == 255
    assert mx_scale_code(math.inf, "float8_e4m3fn") == 255
    assert mx_scale_code(1e-45, "float8_e4m3fn") == 0          # clamped at -127
    assert mx_scale_count(3, 70) == 9 and mx_scale_count(3, 70, 7) == 30
    assert mx_scale_count(0, 5) == 0 and mx_scale_count(4, 0) == 0


@pytest.mark.parametrize("fmt", MX_FORMATS)
@pytest.mark.parametrize("block", [32, 7, 1])
def test_mx_against_reference(fmt, block, rng):
    x = random_f32(rng, 5 * 70, -20, 20).reshape(5, 70)
    x[1, :] = 0.0                        # all-zero row: scale code 0
    x[2, 3] = np.nan                     # NaN block
    x[3, 40] = -np.inf                   # inf block
    x[4, :32] *= F32(1e30)               # huge values
    want_y, want_s = ref_mx(x, fmt, block)
    codes, scales = mx_encode(x, fmt, block)
    assert codes.shape == x.shape and codes.dtype == np.uint8
    assert np.array_equal(scales, want_s)
    assert same_f32(mx_decode(codes, scales, fmt, block), want_y)
    assert same_f32(mx_quantize(x, fmt, block), want_y)
    t = mx_quantize(torch.from_numpy(x), fmt, block)
    assert isinstance(t, torch.Tensor) and same_f32(t.numpy(), want_y)
    tc, ts = mx_encode(torch.from_numpy(x), fmt, block)
    assert torch.equal(tc, torch.from_numpy(codes)) and torch.equal(ts, torch.from_numpy(scales))
    assert same_f32(mx_decode(tc, ts, fmt, block).numpy(), want_y)


def test_mx_shapes_and_edges():
    f = "float8_e4m3fn"
    for shape in [(0,), (4, 0), (0, 5), (3,), (2, 3, 40)]:
        x = np.full(shape, 1.5, np.float32)
        c, s = mx_encode(x, f)
        assert c.shape == shape
        assert s.shape == shape[:-1] + (-(-shape[-1] // 32),)
        assert same_f32(mx_decode(c, s, f), mx_quantize(x, f))
    c, s = mx_encode(torch.tensor(-5.0), f)           # 0-d: one 1x1 block
    assert c.shape == () and s.shape == (1,)
    assert mx_decode(c, s, f).item() == -5.0
    z = np.zeros(40, np.float32)
    c, s = mx_encode(z, f)
    assert s.tolist() == [0, 0] and np.all(mx_decode(c, s, f) == 0)
    stats = {}
    mx_quantize(np.array([1.0, np.nan, 2.0, 3.0], np.float32), f, 2, stats=stats)
    assert stats["nan"] == 2 and stats["total"] == 4


def test_mx_ste():
    x = torch.tensor([[1.0, 1.9, 1.5, 0.1]], requires_grad=True)
    # block amax 1.9: X = 2^(0 - 2) for e2m1 (emax 2), 1.9/X = 7.6 > 6: saturates
    y = mx_quantize(x, "float4_e2m1fn", 4)
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    x.grad = None
    y = mx_quantize(x, "float4_e2m1fn", 4, ste="clipped")
    y.sum().backward()
    assert x.grad.tolist() == [[1.0, 0.0, 1.0, 1.0]]
    assert y.detach().tolist() == [[1.0, 1.5, 1.5, 0.125]]


def test_mx_errors():
    x = np.ones((2, 64), np.float32)
    with pytest.raises(ValueError, match="block"):
        mx_encode(x, "float8_e4m3fn", 0)
    with pytest.raises(TypeError):
        mx_encode(x, "float8_e4m3fn", 2.5)
    with pytest.raises(ValueError):                      # 16-bit element format
        mx_encode(x, "bfloat16")
    with pytest.raises(ValueError):
        mx_quantize(x, "bfloat16")
    with pytest.raises(TypeError, match="float32"):
        mx_quantize(x.astype(np.float64), "float8_e4m3fn")
    with pytest.raises(ValueError, match="unknown format"):
        mx_quantize(x, "E9M9X")
    c, s = mx_encode(x, "float4_e2m1fn")
    with pytest.raises(ValueError, match="scales"):
        mx_decode(c, s[:, :1], "float4_e2m1fn")
    c[0, 0] = 200                                        # not a 4-bit code
    with pytest.raises(ValueError):
        mx_decode(c, s, "float4_e2m1fn")
    with pytest.raises(TypeError, match="uint8"):
        mx_decode(c.astype(np.int32), s, "float4_e2m1fn")
    with pytest.raises(ValueError, match="amax"):
        mx_scale_code(-1.0, "float8_e4m3fn")
    with pytest.raises(ValueError, match="0 .. 255"):
        mx_scale_value(256)
    assert math.isnan(mx_scale_value(255)) and mx_scale_value(0) == 2.0**-127
    with pytest.raises(ValueError, match="ste"):
        mx_quantize(torch.ones(4), "float8_e4m3fn", ste="smooth")
    with pytest.raises(ValueError, match="rows \\* cols"):
        _C.mx_quantize(np.zeros(4, np.float32), np.zeros(4, np.float32), 2, 3, 32,
                       altgrad.format("float8_e4m3fn"))
    with pytest.raises(TypeError, match="unknown option"):
        _C.mx_quantize(np.zeros(4, np.float32), np.zeros(4, np.float32), 1, 4, 32,
                       altgrad.format("float8_e4m3fn"), {"colour": 1})


def test_readme_scaling_example(capsys):
    """The Python block of README.md's "Scaling and diagnostics" runs."""
    import os
    import re
    readme = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
    if not os.path.exists(readme):
        pytest.skip("README.md not found next to the tests")
    text = open(readme, encoding="utf-8").read()
    m = re.search(r"^## Scaling and diagnostics\n.*?^```python\n(.*?)^```$", text,
                  re.S | re.M)
    assert m, "no python block in README's 'Scaling and diagnostics'"
    torch.manual_seed(0)
    exec(compile(m.group(1), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "'stall_rate'" in out and "'steps': 1" in out


def test_other_device_is_valueerror():
    meta = torch.empty(2, 4, device="meta")
    for call in [lambda: amax(meta), lambda: AmaxHistory(2).update(meta),
                 lambda: compute_scale(meta, E5M2), lambda: amax_rows(meta),
                 lambda: quantize_rows(meta, E5M2, 1.0), lambda: mx_quantize(meta, "float8_e4m3fn"),
                 lambda: mx_encode(meta, "float8_e4m3fn")]:
        with pytest.raises(ValueError, match="CPU"):
            call()
