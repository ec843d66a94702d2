# SPDX-License-Identifier: MIT
"""altgrad.quantization.quantize / dequantize: values, the scale law, the STE
through chains and a small MLP, shapes, options, and agreement with the
scalar C specification."""
import math

import numpy as np
import pytest
import torch

import altgrad
from altgrad.quantization import (
    E0M7, E1M6, E2M5, E3M4, E4M3, E5M2, E6M1, E7M0,
    DequantizeFunc, FP8Format, QuantizeFunc, dequantize, quantize,
)
from conftest import random_f32, same_f32

FORMATS = [E0M7, E1M6, E2M5, E3M4, E4M3, E5M2, E6M1, E7M0]
IDS = [f.name for f in FORMATS]


def scalar_quantize(fmt, x, scale, **opts):
    """The scalar specification: to_real(to_bits(x / s)) * s in float32,
    one element at a time (Format.to_bits with the bulk default policy)."""
    c = altgrad.format(fmt)
    s = np.float32(scale)
    out = np.empty_like(x)
    opts.setdefault("overflow", "saturate")
    for i, v in enumerate(x.ravel()):
        q = np.float32(v) / s
        if np.isnan(q):
            out.flat[i] = v if np.isnan(v) else q
            continue
        code = c.to_bits(float(q), offset=opts.get("offset", 0) + i,
                         **{k: w for k, w in opts.items() if k != "offset"})
        out.flat[i] = np.float32(c.to_real(code)) * s
    return out


def fmt_scale_range(fmt):
    """log2 range of inputs that covers underflow, the grid and overflow."""
    c = altgrad.format(fmt)
    lo = math.log2(c.min_subnormal) - 3
    hi = math.log2(c.max_finite) + 3
    return max(lo, -140), min(hi, 127)


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_outputs_are_representable(fmt, rng):
    lo, hi = fmt_scale_range(fmt)
    x = torch.from_numpy(random_f32(rng, 3000, lo, hi))
    y = quantize(x, fmt, torch.tensor(1.0))
    assert y.dtype == torch.float32 and y.shape == x.shape
    for v in y.tolist():
        assert fmt.to_real(fmt.to_bits(v)) == v, (fmt.name, v)
    assert torch.all(y.abs() <= fmt.max_representable_value)  # saturating default


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
@pytest.mark.parametrize("scale", [1.0, 0.37, 2.0**-7, 1000.0])
def test_bulk_matches_scalar_specification(fmt, scale, rng):
    lo, hi = fmt_scale_range(fmt)
    l2 = math.log2(scale)
    x = random_f32(rng, 1500, lo + l2, hi + l2)
    x[:4] = [np.nan, np.inf, -np.inf, -0.0]
    y = quantize(torch.from_numpy(x), fmt, scale).numpy()
    assert same_f32(y, scalar_quantize(fmt, x, scale))
    # NaN stays NaN; inf saturates where the format has no inf
    assert np.isnan(y[0])
    assert y[1] == (np.inf if fmt.has_inf else
                    np.float32(fmt.max_representable_value) * np.float32(scale))


@pytest.mark.parametrize("rounding", ["nearest_even", "nearest_away", "toward_zero",
                                      "down", "up", "stochastic"])
@pytest.mark.parametrize("overflow", ["saturate", "ieee"])
@pytest.mark.parametrize("fmt", [E5M2, E4M3, E3M4, "float8_e4m3fnuz", "bfloat16"],
                         ids=["E5M2", "E4M3", "E3M4", "e4m3fnuz", "bf16"])
def test_modes_match_scalar_specification(fmt, rounding, overflow, rng):
    c = altgrad.format(fmt)
    lo = max(math.log2(c.min_subnormal) - 3, -140)
    hi = min(math.log2(c.max_finite) + 3, 127)
    x = random_f32(rng, 600, lo, hi)
    kw = dict(rounding=rounding, overflow=overflow, seed=77, stream=3, offset=1000)
    y = quantize(torch.from_numpy(x), fmt, 1.0, **kw).numpy()
    assert same_f32(y, scalar_quantize(fmt, x, 1.0, **kw))


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_scale_law(fmt, rng):
    """quantize(x, f, s) == s * quantize(x / s, f, 1) where both are exact:
    power-of-two scales, values well inside float32's normal range."""
    lo, hi = fmt_scale_range(fmt)
    for s in [2.0**-5, 0.5, 4.0, 2.0**9]:
        x = torch.from_numpy(random_f32(rng, 2000, lo + math.log2(s), hi + math.log2(s)))
        lhs = quantize(x, fmt, s)
        rhs = s * quantize(x / s, fmt, 1.0)
        assert same_f32(lhs.numpy(), rhs.numpy())
        assert same_f32(lhs.numpy(), quantize(x, fmt, torch.tensor(s)).numpy())


def test_acceptance_snippet_in_process():
    x = torch.randn(10, requires_grad=True)
    y = quantize(x, E5M2, torch.tensor(1.0))
    y.sum().backward()
    assert x.grad.shape == x.shape
    assert torch.equal(x.grad, torch.ones_like(x))


def test_ste_identity_passes_dy_through_exactly(rng):
    x = torch.from_numpy(random_f32(rng, 500, -20, 20)).requires_grad_()
    dy = torch.from_numpy(random_f32(rng, 500, -5, 5))
    quantize(x, E3M4, 0.5).backward(dy)
    assert torch.equal(x.grad, dy)


def test_backward_twice_accumulates():
    x = torch.linspace(-3, 3, 50).requires_grad_()
    y = quantize(x, E3M4, 1.0, ste="clipped")
    y.sum().backward(retain_graph=True)
    g1 = x.grad.clone()
    y.sum().backward()
    assert torch.equal(x.grad, 2 * g1)


def test_clipped_ste_masks_saturated_elements():
    scale = 0.5
    x = torch.tensor([0.0, 1.0, -1.0, 61.9, 62.0, 62.5, -63.0, 500.0, -1e30,
                      float("inf"), float("nan")], requires_grad=True)
    dy = torch.arange(1.0, 12.0)
    quantize(x, E3M4, scale, ste="clipped").backward(dy)
    inside = (x.detach() / scale).abs() <= E3M4.max_representable_value
    inside |= torch.isnan(x.detach())
    want = torch.where(inside, dy, torch.zeros(()))
    assert torch.equal(x.grad, want)
    assert x.grad[4] == dy[4] and x.grad[5] == 0  # 62 * 2 = 124 = max: inside


def test_clipped_ste_double_backward():
    x = torch.tensor([1.0, 100.0, -200.0], requires_grad=True)
    y = quantize(x, E3M4, 1.0, ste="clipped")
    (g,) = torch.autograd.grad((y * y).sum(), x, create_graph=True)
    # d/dx y^2 through the STE = 2 y, masked where |x| > 124
    assert torch.equal(g.detach(), torch.tensor([2.0, 2 * 100.0, 0.0]))
    g.sum().backward()  # differentiable again: no error


def test_chain_quantize_dequantize(rng):
    x = torch.from_numpy(random_f32(rng, 300, -10, 10)).requires_grad_()
    s = torch.tensor(0.25)
    y = dequantize(quantize(x, E4M3, s), 3.0)
    y.backward(torch.ones_like(y))
    assert torch.equal(x.grad, torch.full_like(x, 3.0))
    # values: dequantize is the float32 product
    assert torch.equal(y.detach(), quantize(x.detach(), E4M3, s) * torch.tensor(3.0))
    # DequantizeFunc: gradient dy * scale, none for the scale
    x.grad = None
    s2 = torch.tensor(0.125, requires_grad=True)
    z = DequantizeFunc.apply(x, s2)
    dy = torch.from_numpy(random_f32(rng, 300, -3, 3))
    z.backward(dy)
    assert torch.equal(x.grad, dy * 0.125)
    assert s2.grad is None


def test_quantizefunc_apply_direct():
    x = torch.tensor([0.3, -7.0], requires_grad=True)
    y = QuantizeFunc.apply(x, E5M2, torch.tensor(1.0))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(2))
    y2 = QuantizeFunc.apply(x.detach(), "E5M2", 1.0, {"rounding": "toward_zero"})
    assert y2.tolist() == [0.25, -7.0]  # E5M2 step 1/16 in [0.25, 0.5)


class _QMLP(torch.nn.Module):
    """Linear -> ReLU -> Linear with weights and activations quantized (the
    AltGrad QuantizedLinear pattern); `quant` is the quantizer."""

    def __init__(self, quant):
        super().__init__()
        torch.manual_seed(0)
        self.l1 = torch.nn.Linear(6, 16)
        self.l2 = torch.nn.Linear(16, 3)
        self.quant = quant

    def forward(self, x):
        q = self.quant
        h = torch.relu(torch.nn.functional.linear(q(x), q(self.l1.weight), self.l1.bias))
        return torch.nn.functional.linear(q(h), q(self.l2.weight), self.l2.bias)


def test_mlp_gradients_match_reference_ste_and_training_learns():
    torch.manual_seed(1)
    x = torch.randn(64, 6)
    labels = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()

    def ours(t):
        return quantize(t, E3M4, 0.125)

    def reference(t):  # the textbook STE written in torch, our forward values
        return t + (quantize(t.detach(), E3M4, 0.125) - t).detach()

    grads = []
    for quant in (ours, reference):
        model = _QMLP(quant)
        loss = torch.nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        assert torch.equal(a, b)
        assert torch.count_nonzero(a) > 0
    # and a few SGD steps on the quantized model reduce the loss
    model = _QMLP(ours)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("shape", [(), (1,), (7,), (3, 5), (2, 3, 4), (2, 1, 3, 5)])
def test_shapes(shape, rng):
    n = int(np.prod(shape)) if shape else 1
    x = torch.from_numpy(random_f32(rng, n, -8, 8).reshape(shape)).requires_grad_()
    y = quantize(x, E5M2, 2.0)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert same_f32(y.detach().numpy().ravel(), scalar_quantize(E5M2, x.detach().numpy().ravel(), 2.0))
    y.backward(torch.ones(shape))
    assert x.grad.shape == x.shape and torch.equal(x.grad, torch.ones(shape))
    z = dequantize(x, 0.5)
    assert z.shape == x.shape


@pytest.mark.parametrize("shape", [(0,), (3, 0), (2, 0, 4), (0, 1, 2, 3)])
def test_empty_tensors(shape):
    x = torch.empty(shape, requires_grad=True)
    y = quantize(x, E4M3, 1.0, ste="clipped")
    assert y.shape == shape
    y.sum().backward()
    assert x.grad.shape == shape
    assert dequantize(x, 2.0).shape == shape
    assert quantize(np.empty(shape, np.float32), E4M3).shape == shape


def test_non_contiguous_input_is_copied(rng):
    base = torch.from_numpy(random_f32(rng, 60, -6, 6).reshape(6, 10))
    xt = base.t().requires_grad_()           # non-contiguous
    assert not xt.is_contiguous()
    y = quantize(xt, E3M4, 1.0)
    assert y.is_contiguous() and y.shape == (10, 6)
    assert torch.equal(y, quantize(xt.detach().contiguous(), E3M4, 1.0))
    y.backward(torch.ones_like(y))
    assert torch.equal(xt.grad, torch.ones(10, 6))
    assert torch.equal(base, base.clone())   # input untouched
    strided = base[:, ::3]
    assert torch.equal(quantize(strided, E3M4, 1.0), quantize(strided.contiguous(), E3M4, 1.0))
    # gradient arriving expanded (stride 0) in the clipped STE
    x = torch.ones(5, requires_grad=True)
    quantize(x, E3M4, 1.0, ste="clipped").sum().backward()
    assert torch.equal(x.grad, torch.ones(5))


def test_input_not_modified_and_zero_copy(rng):
    x = torch.from_numpy(random_f32(rng, 100, -5, 5))
    keep = x.clone()
    quantize(x, E5M2, 1.0)
    assert torch.equal(x, keep)
    # the raw op writes into a given tensor in place (zero copy)
    out = torch.empty_like(x)
    r = altgrad.quantize_array(x, E5M2, 1.0, out=out)
    assert r is out and torch.equal(out, quantize(x, E5M2, 1.0))
    altgrad.quantize_array(x, E5M2, 1.0, out=x)
    assert torch.equal(x, out)


def test_numpy_arrays_work(rng):
    x = random_f32(rng, 200, -6, 6).reshape(10, 20)
    y = quantize(x, E4M3, 0.5)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == x.shape
    assert same_f32(y, quantize(torch.from_numpy(x), E4M3, 0.5).numpy())
    assert same_f32(dequantize(y, 2.0), y * np.float32(2.0))
    assert same_f32(quantize(x.T, E4M3, 0.5), quantize(np.ascontiguousarray(x.T), E4M3, 0.5))


def test_stochastic_rounding_seeded_reproducible_unbiased():
    n = 200_000
    x = torch.full((n,), 1.0625)  # E5M2 grid: 1.0, 1.25 -> P(up) = 0.25
    a = quantize(x, E5M2, 1.0, rounding="stochastic", seed=5)
    b = quantize(x, E5M2, 1.0, rounding="stochastic", seed=5)
    c = quantize(x, E5M2, 1.0, rounding="stochastic", seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) == {1.0, 1.25}
    ups = int((a == 1.25).sum())
    sigma = math.sqrt(n * 0.25 * 0.75)
    assert abs(ups - n * 0.25) < 6 * sigma
    # seed=None draws from torch's generator: manual_seed reproduces it
    torch.manual_seed(123)
    d1 = quantize(x[:1000], E5M2, 1.0, rounding="stochastic")
    d2 = quantize(x[:1000], E5M2, 1.0, rounding="stochastic")
    torch.manual_seed(123)
    e1 = quantize(x[:1000], E5M2, 1.0, rounding="stochastic")
    assert torch.equal(d1, e1) and not torch.equal(d1, d2)
    # stream/offset select other parts of the counter-based stream
    f1 = quantize(x[:1000], E5M2, 1.0, rounding="stochastic", seed=5, offset=1)
    assert torch.equal(f1[:-1], a[1:1000])


def test_stats_counters():
    x = torch.tensor([0.0, 1.0, 1e-9, -1e-9, 500.0, -1e9, float("inf"), float("nan")])
    st = {}
    quantize(x, E3M4, 1.0, stats=st)
    assert st == {"total": 8, "overflow": 3, "underflow": 2, "nan": 1}
    quantize(x, E3M4, 1.0, stats=st)  # accumulates
    assert st["total"] == 16 and st["overflow"] == 6


def test_threads_option_gives_identical_results(rng):
    x = torch.from_numpy(random_f32(rng, 300_000, -10, 10))
    ref = quantize(x, E4M3, 1.0, threads=1)
    for t in (0, 2, 4):
        assert torch.equal(quantize(x, E4M3, 1.0, threads=t), ref)
    s1 = quantize(x, E4M3, 1.0, rounding="stochastic", seed=9, threads=1)
    s2 = quantize(x, E4M3, 1.0, rounding="stochastic", seed=9, threads=2)
    assert torch.equal(s1, s2)


def test_gil_released_threads_agree(rng):
    import threading

    x = torch.from_numpy(random_f32(rng, 1 << 18, -10, 10))
    ref = quantize(x, E5M2, 1.0)
    results = [None] * 4

    def work(i):
        results[i] = quantize(x, E5M2, 1.0)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert all(torch.equal(r, ref) for r in results)
