# SPDX-License-Identifier: MIT
"""Every error path: a clear exception, never a crash or a silent answer."""
import math

import numpy as np
import pytest
import torch

import altgrad
from altgrad import _C
from altgrad.quantization import E4M3, E5M2, QuantizeFunc, dequantize, quantize


@pytest.fixture
def x():
    return torch.linspace(-3, 3, 12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16,
                                   torch.int32, torch.uint8, torch.bool, torch.complex64])
def test_wrong_dtype_is_typeerror(dtype):
    t = torch.zeros(4, dtype=dtype)
    with pytest.raises(TypeError, match="float32"):
        quantize(t, E5M2, 1.0)
    with pytest.raises(TypeError, match="float32"):
        dequantize(t, 1.0)
    with pytest.raises(TypeError, match="float32"):
        altgrad.quantize_array(t, E5M2)


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.uint8])
def test_wrong_numpy_dtype_is_typeerror(dtype):
    a = np.zeros(4, dtype=dtype)
    with pytest.raises(TypeError, match="float32"):
        quantize(a, E5M2, 1.0)
    with pytest.raises(TypeError, match="float32"):
        dequantize(a, 1.0)
    with pytest.raises(TypeError, match="float32"):
        _C.quantize(a, E5M2.c_format, 1.0)


def test_non_cpu_tensor_is_valueerror():
    meta = torch.empty(4, device="meta")
    with pytest.raises(ValueError, match="CPU"):
        quantize(meta, E5M2, 1.0)
    with pytest.raises(ValueError, match="CPU"):
        dequantize(meta, 1.0)
    with pytest.raises(ValueError, match="CPU"):
        altgrad.quantize_array(meta, E5M2)
    if torch.cuda.is_available():  # pragma: no cover - CPU-only build here
        # issue 17: a CUDA tensor is quantized on CUDA by the torch path
        assert quantize(torch.zeros(4, device="cuda"), E5M2, 1.0).device.type == "cuda"


@pytest.mark.parametrize("scale", [0.0, -1.0, math.nan, math.inf, -math.inf,
                                   1e-50, 1e39, torch.tensor(0.0), torch.tensor(-2.0),
                                   torch.tensor(float("nan")), np.float32(0)])
def test_bad_scale_is_valueerror(x, scale):
    with pytest.raises(ValueError, match="scale"):
        quantize(x, E5M2, scale)
    with pytest.raises(ValueError, match="scale"):
        dequantize(x, scale)
    with pytest.raises(ValueError, match="scale"):
        quantize(x.numpy(), E5M2, scale)


def test_scale_shapes_and_types(x):
    with pytest.raises(ValueError, match="one number"):
        quantize(x, E5M2, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="one number"):
        quantize(x, E5M2, torch.ones(0))
    for bad in ["1.0", None, [1.0], True]:
        with pytest.raises(TypeError):
            quantize(x, E5M2, bad)
    # a one-element tensor of any shape, or requiring grad, is fine
    assert torch.equal(quantize(x, E5M2, torch.ones(1, 1)), quantize(x, E5M2, 1.0))
    s = torch.tensor(1.0, requires_grad=True)
    y = quantize(x.clone().requires_grad_(), E5M2, s)
    y.sum().backward()
    assert s.grad is None


def test_bad_format(x):
    with pytest.raises(ValueError, match="unknown format"):
        quantize(x, "E9M9X", 1.0)
    with pytest.raises(ValueError, match="bias"):
        quantize(x, "e4m3:bias=", 1.0)
    for bad in [None, 5, E5M2.c_format.ebits, object()]:
        with pytest.raises(TypeError, match="format"):
            quantize(x, bad, 1.0)
    with pytest.raises(TypeError, match="Format"):
        _C.quantize(x.numpy(), "E5M2", 1.0)


@pytest.mark.parametrize("kw, exc, msg", [
    (dict(rounding="sideways"), ValueError, "rounding"),
    (dict(rounding=3), TypeError, "rounding"),
    (dict(overflow="wrap"), ValueError, "overflow"),
    (dict(ste="smooth"), ValueError, "ste"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed=1 << 64), ValueError, "seed"),
    (dict(seed=1.5), TypeError, "seed"),
    (dict(stream=-3), ValueError, "stream"),
    (dict(offset="0"), TypeError, "offset"),
    (dict(threads=-1), ValueError, "threads"),
    (dict(threads=1.0), TypeError, "threads"),
    (dict(stats=[]), TypeError, "stats"),
])
def test_bad_options(x, kw, exc, msg):
    with pytest.raises(exc, match=msg):
        quantize(x, E5M2, 1.0, **kw)
    with pytest.raises(exc, match=msg):
        quantize(x.numpy(), E5M2, 1.0, **kw)
    with pytest.raises(TypeError):
        quantize(x, E5M2, 1.0, colour="red")
    with pytest.raises(TypeError, match="unknown quantize option"):
        QuantizeFunc.apply(x, E5M2, 1.0, {"colour": "red"})


def test_not_an_array():
    for bad in [[1.0, 2.0], 3.0, "abc", None]:
        with pytest.raises(TypeError):
            quantize(bad, E5M2, 1.0)
        with pytest.raises(TypeError):
            dequantize(bad, 1.0)
        with pytest.raises(TypeError):
            altgrad.quantize_array(bad, E5M2)
    with pytest.raises(TypeError, match="buffer"):
        _C.quantize(object(), E5M2.c_format)
    with pytest.raises(TypeError, match="buffer"):  # tensors go through .numpy()
        _C.quantize(torch.ones(3, requires_grad=True), E5M2.c_format)
    with pytest.raises(TypeError, match="float32"):
        _C.quantize(b"abcd", E5M2.c_format)


def test_raw_op_refuses_tensor_requiring_grad(x):
    xg = x.clone().requires_grad_()
    with pytest.raises(ValueError, match="requires grad"):
        altgrad.quantize_array(xg, E5M2)
    with pytest.raises(ValueError, match="requires grad"):
        altgrad.dequantize_array(xg, 2.0)
    with torch.no_grad():  # no graph to cut: accepted
        assert torch.equal(altgrad.quantize_array(xg, E5M2), quantize(x, E5M2))
    assert torch.equal(altgrad.quantize_array(xg.detach(), E5M2), quantize(x, E5M2))
    with pytest.raises(ValueError, match="requires grad"):
        altgrad.quantize_array(x, E5M2, out=torch.empty(12, requires_grad=True))


def test_bad_out(x):
    a = x.numpy()
    f = E5M2.c_format
    with pytest.raises(ValueError, match="shape"):
        altgrad.quantize_array(x, E5M2, out=torch.empty(13))
    with pytest.raises(ValueError, match="shape"):
        _C.quantize(a, f, 1.0, np.empty((3, 4), np.float32))
    with pytest.raises(TypeError, match="float32"):
        altgrad.quantize_array(x, E5M2, out=torch.empty(12, dtype=torch.float64))
    with pytest.raises(TypeError, match="float32"):
        _C.quantize(a, f, 1.0, np.empty(12, np.float64))
    with pytest.raises(ValueError, match="contiguous"):
        altgrad.quantize_array(x, E5M2, out=torch.empty(24)[::2])
    with pytest.raises(ValueError, match="contiguous"):
        altgrad.quantize_array(a, E5M2, out=np.empty(24, np.float32)[::2])
    with pytest.raises(ValueError, match="contiguous"):
        _C.quantize(a, f, 1.0, np.empty(24, np.float32)[::2])
    ro = np.empty(12, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _C.quantize(a, f, 1.0, ro)
    with pytest.raises(ValueError, match="read-only"):
        altgrad.quantize_array(a, E5M2, out=ro)
    with pytest.raises(TypeError, match="same kind"):
        altgrad.quantize_array(x, E5M2, out=np.empty(12, np.float32))
    with pytest.raises(ValueError, match="device"):
        altgrad.quantize_array(x, E5M2, out=torch.empty(12, device="meta"))
    # a read-only input is fine
    a2 = a.copy()
    a2.flags.writeable = False
    assert np.array_equal(_C.quantize(a2, f), _C.quantize(a, f))


def test_partial_overlap_is_valueerror():
    buf = np.linspace(-2, 2, 20).astype(np.float32)
    with pytest.raises(ValueError, match="overlap"):
        _C.quantize(buf[0:10], E4M3.c_format, 1.0, buf[1:11])
    with pytest.raises(ValueError, match="overlap"):
        _C.dequantize(buf[0:10], 1.0, buf[5:15])
    before = buf.copy()
    with pytest.raises(ValueError, match="overlap"):
        _C.quantize_backward(buf[0:10], buf[2:12], None, E4M3.c_format, 1.0)
    assert np.array_equal(buf, before)  # untouched on error
    # exact aliasing (in place) is allowed
    _C.quantize(buf, E4M3.c_format, 1.0, buf)
    assert np.array_equal(buf, _C.quantize(before, E4M3.c_format, 1.0))


def test_c_level_backward_errors():
    f = E4M3.c_format
    dx = np.zeros(4, np.float32)
    dy = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="forward input"):
        _C.quantize_backward(dx, dy, None, f, 1.0, ste="clipped")
    with pytest.raises(ValueError, match="shape"):
        _C.quantize_backward(dx, np.ones(5, np.float32), None, f, 1.0)
    with pytest.raises(ValueError, match="shape"):
        _C.dequantize_backward(dx, np.ones(5, np.float32), 1.0)
    with pytest.raises(ValueError, match="scale"):
        _C.dequantize_backward(dx, dy, 0.0)
    with pytest.raises(ValueError, match="read-only"):
        ro = np.zeros(4, np.float32)
        ro.flags.writeable = False
        _C.dequantize_backward(ro, dy, 1.0)


def test_encode_decode_errors():
    f16 = altgrad.format("FP16")
    x = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="storage"):
        _C.encode(x, f16, 1.0, np.empty(4, np.uint8))
    with pytest.raises(ValueError, match="code"):
        altgrad.decode(np.array([1, 2, 64], np.uint8), "float6_e2m3fn")
    with pytest.raises(TypeError):
        altgrad.decode(np.array([1, 2], np.int32), "E5M2")
    with pytest.raises(TypeError):
        _C.decode(np.array([1.0], np.float32), E5M2.c_format)


def test_format_object_errors():
    with pytest.raises(TypeError):
        _C.Format(3)
    with pytest.raises(TypeError):
        _C.Format()
    with pytest.raises(ValueError, match="specials"):
        _C.Format("e0m7:specials=ieee")
    with pytest.raises(ValueError, match="twice"):
        _C.Format("e4m3:bias=1:bias=2")
    with pytest.raises(ValueError):
        _C.format_init("x", 9, 0, 0)
    with pytest.raises(ValueError, match="specials"):
        _C.format_init("x", 4, 3, 7, True, "odd")
    with pytest.raises(ValueError):
        _C.format_init("x", 4, 3, 7, False, "fnuz")
