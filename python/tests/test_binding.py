# SPDX-License-Identifier: MIT
"""The binding mechanism of altgrad._C: one argument parser for every
function (positional, keyword, missing and unknown arguments), CPU tensors
read directly (dtype, device, contiguity, grad mode), outputs of the input's
kind, the option vocabulary of the library (both '-' and '_'), and the
error messages that name the right conversion."""
import numpy as np
import pytest
import torch

import altgrad
from altgrad import _C
from altgrad.quantization import E4M3, E5M2, quantize
from conftest import random_f32, same_f32

F = E5M2.c_format


def test_parser_errors():
    x = np.ones(3, np.float32)
    with pytest.raises(TypeError, match="missing required argument 'format'"):
        _C.quantize(x)
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        _C.quantize(x, F, colour=1)
    with pytest.raises(TypeError, match="multiple values for argument 'scale'"):
        _C.quantize(x, F, 1.0, scale=2.0)
    with pytest.raises(TypeError, match="at most"):
        _C.dequantize(x, 1.0, None, 4)
    with pytest.raises(TypeError, match="at most"):  # options are keyword only here
        _C.encode(x, F, 1.0, None, None, "nearest_even")
    # positional and keyword spellings give one result
    a = _C.quantize(x * 3.3, F, 0.5, None, rounding="up", threads=1)
    b = _C.quantize(x=x * 3.3, scale=0.5, format=F, rounding="up", threads=1)
    assert np.array_equal(a, b) and a.tolist() == [3.5] * 3


def test_tensors_are_read_in_place(rng):
    x = torch.from_numpy(random_f32(rng, 300, -10, 10))
    y = _C.quantize(x, F, 0.25)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32
    assert same_f32(y, _C.quantize(x.numpy(), F, 0.25))
    out = torch.empty(300)
    assert _C.quantize(x, F, 0.25, out) is out and torch.equal(out, y)
    _C.quantize(x, F, 0.25, x)  # in place
    assert torch.equal(x, y)
    codes = _C.encode(y.reshape(3, 100), F, 0.25)
    assert codes.dtype == torch.uint8 and codes.shape == (3, 100)
    wide = _C.encode(torch.ones(4), altgrad.format("FP16"))
    assert wide.dtype == torch.int16  # 16-bit codes: torch has no uint16
    assert _C.decode(wide, altgrad.format("FP16")).tolist() == [1.0] * 4
    assert _C.quantize(torch.ones(0), F).shape == (0,)
    assert _C.amax(torch.tensor([-3.0, float("nan")])) == (3.0, 1)


def test_tensor_refusals():
    with pytest.raises(ValueError, match="contiguous"):
        _C.quantize(torch.ones(4, 4).t(), F)
    with pytest.raises(ValueError, match="CPU"):
        _C.quantize(torch.ones(4, device="meta"), F)
    with pytest.raises(TypeError, match=r"float32 tensor.*\.float\(\)"):
        _C.quantize(torch.ones(4, dtype=torch.float64), F)
    with pytest.raises(TypeError, match="dense"):
        _C.quantize(torch.ones(4).to_sparse(), F)
    g = torch.ones(3, requires_grad=True)
    with pytest.raises(TypeError, match="requires grad"):
        _C.quantize(g, F)
    with torch.no_grad():  # no graph to cut
        assert _C.quantize(g, F).tolist() == [1.0] * 3
    with pytest.raises(ValueError, match="shape"):
        _C.quantize(torch.ones(4), F, 1.0, torch.empty(5))


def test_decode_names_the_right_dtype():
    for codes in (torch.tensor([1, 2], dtype=torch.int32),
                  np.array([1, 2], np.int32)):
        with pytest.raises(TypeError) as e:
            altgrad.decode(codes, "E5M2")
        msg = str(e.value)
        assert "uint8" in msg and "float()" not in msg and "float32" not in msg


def test_option_vocabulary_is_the_librarys():
    x = torch.linspace(-3, 3, 50)
    for a, b in [("nearest-even", "nearest_even"), ("toward-zero", "toward_zero"),
                 ("RNE", "nearest_even")]:
        assert torch.equal(quantize(x, E4M3, 0.1, rounding=a),
                           quantize(x, E4M3, 0.1, rounding=b))
    assert _C.option("rounding", "Nearest-Away") == "nearest_away"
    assert _C.option("scaler-first", "amax-one") == "amax_one"
    assert _C.option_names("ste") == ["identity", "clipped"]
    assert list(_C.ROUNDING_MODES) == _C.option_names("rounding")
    with pytest.raises(ValueError, match="expected one of: nearest-even"):
        quantize(x, E4M3, rounding="sideways")
    with pytest.raises(ValueError, match="unknown option kind"):
        _C.option("colour", "red")


def test_fast_path_equals_autograd_path(rng):
    x = torch.from_numpy(random_f32(rng, 500, -20, 20))
    xg = x.clone().requires_grad_()
    for kw in [{}, dict(rounding="stochastic", seed=5), dict(overflow="ieee"),
               dict(stats={}), dict(ste="clipped")]:
        a = quantize(x, E5M2, 2.0, **kw)
        b = quantize(xg, E5M2, 2.0, **kw)
        assert b.requires_grad and not a.requires_grad
        assert same_f32(a, b.detach())
    with pytest.raises(ValueError, match="ste"):
        quantize(x, E5M2, ste="smooth")


def test_functions_refuse_non_tensors():
    from altgrad.quantization import MXQuantizeFunc, QuantizeFunc, QuantizeRowsFunc

    a = np.ones(4, np.float32)
    for call in [lambda: QuantizeFunc.apply(a, E5M2, 1.0),
                 lambda: QuantizeRowsFunc.apply(a, E5M2, 1.0, {}),
                 lambda: MXQuantizeFunc.apply(a, "float8_e4m3fn", 32, {})]:
        with pytest.raises(TypeError, match="torch.Tensor"):
            call()


def test_create_graph_through_the_factory():
    from altgrad.quantization import quantize_rows

    x = torch.tensor([[1.0, 500.0], [2.0, -3.0]], requires_grad=True)
    for fn in (lambda t: quantize(t, E4M3, 1.0, ste="clipped"),
               lambda t: quantize_rows(t, E4M3, 1.0, ste="clipped")):
        (g,) = torch.autograd.grad(fn(x).sum(), x, create_graph=True)
        assert g.tolist() == [[1.0, 0.0], [1.0, 1.0]]
