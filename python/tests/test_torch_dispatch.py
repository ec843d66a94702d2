# SPDX-License-Identifier: MIT
"""Dispatch of the public quantizers between the C core and the
device-generic torch path: ``backend="torch"`` on CPU tensors (and, with
ALTGRAD_TEST_DEVICE=cuda in tests/device/run.sh, the default "auto" on CUDA
tensors) gives the same bits and the same gradients as the C core, for
quantize, dequantize, quantize_rows, mx_quantize / mx_encode / mx_decode,
amax, AmaxHistory, compute_scale and the raw array calls; bad backend
arguments are errors."""
import math
import os

import numpy as np
import pytest
import torch

import altgrad
from altgrad import backends
from altgrad.quantization import (AmaxHistory, amax, amax_rows, channel_scales,
                                  compute_scale, dequantize, mx_decode, mx_encode,
                                  mx_quantize, quantize, quantize_rows)

DEVICE = torch.device(os.environ.get("ALTGRAD_TEST_DEVICE", "cpu"))
# on CPU the torch path is forced; on another device "auto" must pick it
BACKEND = "torch" if DEVICE.type == "cpu" else "auto"


def bits(t):
    return t.detach().contiguous().view(torch.int32)


def assert_same(a, b, what=""):
    assert a.device == DEVICE, f"{what}: result on {a.device}"
    a = a.detach().cpu()
    assert a.shape == b.shape, what
    assert torch.equal(bits(a), bits(b)), what


def data(shape=(8, 50), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * torch.exp2(torch.randn(shape, generator=g) * 6)
    x.view(-1)[::37] = 0.0
    x.view(-1)[5] = math.nan
    x.view(-1)[7] = -math.inf
    return x


def dev(x, requires_grad=False):
    return x.detach().to(DEVICE).requires_grad_(requires_grad)


MODES = ["nearest_even", "stochastic", "toward_zero", "up"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ste", ["identity", "clipped"])
def test_quantize_forward_and_gradient(mode, ste):
    x = data()
    dy = data(seed=1)
    for spec, scale in [("E4M3", 0.3), ("E5M2", torch.tensor(2.0)), ("bfloat16", 1e-3)]:
        kw = dict(rounding=mode, ste=ste, seed=5, stream=2, offset=3)
        xc = x.clone().requires_grad_(True)
        yc = quantize(xc, spec, scale, backend="c", **kw)
        yc.backward(dy)
        xd = dev(x, True)
        yd = quantize(xd, spec, scale, backend=BACKEND, **kw)
        yd.backward(dev(dy))
        assert_same(yd, yc.detach(), f"{spec} {mode} {ste}")
        assert_same(xd.grad, xc.grad, f"{spec} {mode} {ste} grad")


def test_quantize_double_backward_and_stats():
    x = data()
    xc = x.clone().requires_grad_(True)
    xd = dev(x, True)
    gc, = torch.autograd.grad(quantize(xc, "E4M3", 0.01, ste="clipped").sum(), xc,
                              create_graph=True)
    gd, = torch.autograd.grad(quantize(xd, "E4M3", 0.01, ste="clipped", backend=BACKEND)
                              .sum(), xd, create_graph=True)
    assert_same(gd, gc)
    st_c, st_d = {}, {}
    quantize(x, "E4M3", 0.01, stats=st_c, backend="c")
    quantize(dev(x), "E4M3", 0.01, stats=st_d, backend=BACKEND)
    assert st_c == st_d and st_c["overflow"] > 0


def test_seed_none_draws_the_same_seed():
    x = data()
    torch.manual_seed(123)
    yc = quantize(x, "E3M4", 0.1, rounding="stochastic", backend="c")
    torch.manual_seed(123)
    yd = quantize(dev(x), "E3M4", 0.1, rounding="stochastic", backend=BACKEND)
    assert_same(yd, yc)


def test_dequantize_and_raw_calls():
    x = data()
    xd = dev(x, True)
    y = dequantize(xd, 0.3, backend=BACKEND)
    y.backward(dev(torch.ones_like(x)))
    assert_same(y, dequantize(x, 0.3, backend="c"))
    assert_same(xd.grad, torch.full_like(x, 0.3))
    with torch.no_grad():
        assert_same(altgrad.quantize_array(dev(x), "E5M2", 0.7, backend=BACKEND),
                    altgrad.quantize_array(x, "E5M2", 0.7))
        assert_same(altgrad.dequantize_array(dev(x), 0.7, backend=BACKEND),
                    altgrad.dequantize_array(x, 0.7))
        for spec in ["E5M2", "BF16"]:
            cd = altgrad.encode(dev(x), spec, 0.7, rounding="stochastic", seed=3,
                                backend=BACKEND)
            cc = altgrad.encode(x, spec, 0.7, rounding="stochastic", seed=3)
            assert cd.device == DEVICE and torch.equal(cd.cpu(), cc)
            assert_same(altgrad.decode(cd, spec, 0.7, backend=BACKEND),
                        altgrad.decode(cc, spec, 0.7))


def test_scaling():
    x = data((6, 40))
    a_c, n_c = amax(x, with_nan_count=True)
    a_d, n_d = amax(dev(x), with_nan_count=True, backend=BACKEND)
    assert (a_c, n_c) == (a_d, n_d)
    assert_same(amax_rows(dev(x), backend=BACKEND), amax_rows(x))
    rows = amax_rows(x)
    for kw in [{}, {"pow2": True}, {"margin": 2.0}]:
        assert_same(compute_scale(dev(rows), "E4M3", backend=BACKEND, **kw),
                    compute_scale(rows, "E4M3", **kw))
        assert_same(channel_scales(dev(x), "E5M2", backend=BACKEND, **kw),
                    channel_scales(x, "E5M2", **kw))
    h_c, h_d = AmaxHistory(4), AmaxHistory(4)
    for k in range(3):
        h_c.update(x * k)
        h_d.update(dev(x * k))
    assert h_c.get_amax() == h_d.get_amax() and h_c.nan_count == h_d.nan_count


@pytest.mark.parametrize("ste", ["identity", "clipped"])
def test_quantize_rows(ste):
    x = data((4, 6, 30))
    dy = data((4, 6, 30), seed=2)
    for scales in [None, 0.5]:
        kw = dict(ste=ste, rounding="stochastic", seed=7, offset=11, scales=scales)
        xc = x.clone().requires_grad_(True)
        yc = quantize_rows(xc, "E4M3", **kw)
        yc.backward(dy)
        xd = dev(x, True)
        yd = quantize_rows(xd, "E4M3", backend=BACKEND, **kw)
        yd.backward(dev(dy))
        assert_same(yd, yc.detach())
        assert_same(xd.grad, xc.grad)
    s = channel_scales(x, "E4M3")
    assert_same(quantize_rows(dev(x), "E4M3", dev(s), backend=BACKEND),
                quantize_rows(x, "E4M3", s).detach())


@pytest.mark.parametrize("ste", ["identity", "clipped"])
def test_mx(ste):
    x = data((5, 70))
    x[1] = torch.where(torch.isfinite(x[1]), x[1], torch.ones(()))
    dy = data((5, 70), seed=3)
    for spec, rule in [("float8_e4m3fn", "floor"), ("float4_e2m1fn", "rceil")]:
        kw = dict(ste=ste, rounding="stochastic", seed=1, stream=4, mx_scale=rule)
        xc = x.clone().requires_grad_(True)
        yc = mx_quantize(xc, spec, 32, **kw)
        yc.backward(dy)
        xd = dev(x, True)
        yd = mx_quantize(xd, spec, 32, backend=BACKEND, **kw)
        yd.backward(dev(dy))
        assert_same(yd, yc.detach(), spec)
        assert_same(xd.grad, xc.grad, spec)
        cd, sd = mx_encode(dev(x), spec, 16, backend=BACKEND, mx_scale=rule)
        cc, sc = mx_encode(x, spec, 16, mx_scale=rule)
        assert cd.device == DEVICE and torch.equal(cd.cpu(), cc) and torch.equal(sd.cpu(), sc)
        assert_same(mx_decode(cd, sd, spec, 16, backend=BACKEND), mx_decode(cc, sc, spec, 16))


def test_backend_errors():
    x = torch.ones(4)
    with pytest.raises(ValueError, match="backend"):
        quantize(x, "E4M3", backend="gpu")
    with pytest.raises(TypeError, match="float32"):
        quantize(x.double(), "E4M3", backend="torch")
    with pytest.raises(TypeError, match="numpy"):
        quantize(np.ones(4, np.float32), "E4M3", backend="torch")
    meta = torch.empty(4, device="meta")
    for backend in backends.BACKENDS:
        with pytest.raises(ValueError, match="meta"):
            backends.select(backend, meta)
        with pytest.raises(ValueError, match="meta"):
            quantize(meta, "E4M3", backend=backend)
    assert backends.select("auto", x) == "c"
    assert backends.select("auto", np.ones(3)) == "c"
    if torch.cuda.is_available():  # pragma: no cover - CPU-only machines
        with pytest.raises(ValueError, match="backend='c'"):
            quantize(torch.ones(4, device="cuda"), "E4M3", backend="c")


def test_diagnostics():
    from altgrad.quantization import BitStallDetector, count_flips, detect_bit_stall
    from altgrad.quantization import update_flips

    w = data((10, 30))
    g = data((10, 30), seed=4) * 1e-3
    g.view(-1)[::11] = 0.0
    for spec, scale, kw in [("E4M3", 0.05, {}), ("E5M2", 1.0, {"overflow": "ieee"}),
                            ("float8_e4m3fnuz", 0.3, {"rounding": "stochastic", "seed": 2}),
                            ("E7M0", 1.0, {}), ("bfloat16", 1.0, {"offset": 5})]:
        for lr in [1e-2, 10.0]:
            assert detect_bit_stall(dev(w), dev(g), lr, spec, scale, backend=BACKEND, **kw) \
                == detect_bit_stall(w, g, lr, spec, scale, **kw), (spec, lr)
        after = w - 0.5 * g
        assert count_flips(dev(w), dev(after), spec, scale, backend=BACKEND, **kw) \
            == count_flips(w, after, spec, scale, **kw)
        assert update_flips(dev(w), dev(after), dev(g), spec, scale, backend=BACKEND, **kw) \
            == update_flips(w, after, g, spec, scale, **kw)
    det_c, det_d = BitStallDetector(), BitStallDetector()
    det_c.update(w, g, 1e-2, "E4M3", 0.05)
    det_d.update(dev(w), dev(g), 1e-2, "E4M3", 0.05, backend=BACKEND)
    assert det_c.get_stats() == det_d.get_stats()
    with pytest.raises(ValueError, match="lr"):
        detect_bit_stall(dev(w), dev(g), math.nan, "E4M3", backend=BACKEND)
    with pytest.raises(ValueError, match="elements"):
        count_flips(dev(w), dev(w[:2]), "E4M3", backend=BACKEND)


@pytest.mark.parametrize("first", ["current", "amax_one", "scale_one"])
def test_delayed_scaler(first):
    from altgrad.quantization import DelayedScaler

    kw = dict(history_len=3, first=first, rounding="stochastic", seed=11, stream=2,
              ste="clipped", margin=2.0)
    sc_c, sc_d = DelayedScaler("E4M3", **kw), DelayedScaler("E4M3", **kw)
    for step in range(5):
        x = data((4, 25), seed=step) * (step + 1)
        xc = x.clone().requires_grad_(True)
        xd = dev(x, True)
        st_c, st_d = {}, {}
        yc = sc_c.quantize(xc, st_c)
        yd = sc_d.quantize(xd, st_d, backend=BACKEND)
        yc.backward(torch.ones_like(x))
        yd.backward(dev(torch.ones_like(x)))
        assert_same(yd, yc.detach(), f"step {step}")
        assert_same(xd.grad, xc.grad, f"step {step} grad")
        assert st_c == st_d
        assert (sc_c.last_scale, sc_c.amax, sc_c.steps, sc_c.offset, len(sc_c)) == \
            (sc_d.last_scale, sc_d.amax, sc_d.steps, sc_d.offset, len(sc_d))
    assert torch.equal(sc_c.state_dict()["state"], sc_d.state_dict()["state"])


DIAG_FORMATS = [("E4M3", 0.05), ("E5M2", 1.0), ("float8_e4m3fnuz", 0.3), ("E7M0", 1.0),
                ("float8_e8m0fnu", 1.0), ("E0M7", 0.01), ("e2m1:signed=no", 0.5),
                ("e3m2:zero=no:bias=2", 1.0), ("bfloat16", 1.0)]


@pytest.mark.parametrize("spec,scale", DIAG_FORMATS)
def test_distance_stiffness_histogram(spec, scale):
    from altgrad.quantization import (count_code_flips, exponent_histogram, stiffness,
                                      ulp_distance, ulp_distance_stats)

    a = data((6, 40))
    b = a * 1.3 - 0.01
    b.view(-1)[9] = math.nan
    big = torch.tensor([1e30, -1e30, 1e-40, -1e-40, 0.0, -0.0, math.inf, -math.inf])
    a = torch.cat([a.view(-1), big, big * 0.5])
    b = torch.cat([b.view(-1), big * 0.5, big])
    for kw in [{}, {"rounding": "stochastic", "seed": 4, "offset": 3}, {"overflow": "ieee"}]:
        dd = ulp_distance(dev(a), dev(b), spec, scale, backend=BACKEND, **kw)
        assert dd.device == DEVICE
        assert torch.equal(dd.cpu(), ulp_distance(a, b, spec, scale, **kw)), kw
        assert ulp_distance_stats(dev(a), dev(b), spec, scale, backend=BACKEND, **kw) == \
            ulp_distance_stats(a, b, spec, scale, **kw)
        assert np.array_equal(exponent_histogram(dev(a), spec, scale, backend=BACKEND, **kw),
                              exponent_histogram(a, spec, scale, **kw)), kw
    for s in [scale, 1e-30, 3e20]:
        assert_same(stiffness(dev(a), spec, s, backend=BACKEND), stiffness(a, spec, s))
    ca, cb = altgrad.encode(a, spec, scale), altgrad.encode(b, spec, scale)
    assert count_code_flips(dev(ca), dev(cb), spec, backend=BACKEND) == \
        count_code_flips(ca, cb, spec)
