# SPDX-License-Identifier: MIT
"""altgrad._C directly: Format fields, buffers (numpy, array.array, 0-d),
outputs, encode / decode, the backward kernels and the stats counters,
checked against the scalar transfer functions."""
import array
import math

import numpy as np
import pytest

import altgrad
from altgrad import _C
from conftest import random_f32, same_f32


def test_module_basics():
    assert _C.version() == _C.__version__ == altgrad.__version__
    assert _C.version().count(".") == 2
    names = _C.format_names()
    assert len(names) == len(set(names)) >= 30
    assert "nearest_even" in _C.ROUNDING_MODES


def test_format_fields():
    f = _C.Format("E5M2")
    assert (f.ebits, f.mbits, f.bias, f.bits, f.specials) == (5, 2, 15, 8, "ieee")
    assert (f.exponent_bits, f.mantissa_bits) == (5, 2)
    assert f.is_signed and not f.no_zero and f.has_inf and f.has_nan and f.has_negzero
    assert f.ncodes == 256 and f.max_finite == 57344.0 == f.max_representable_value
    assert f.to_real(f.max_code) == f.max_finite
    assert f.to_real(f.inf_code) == math.inf
    assert math.isnan(f.to_real(f.nan_code))
    assert f.sign_mask == 0x80 and f.emax == 15 and f.emin == -14
    assert f.min_subnormal == 2.0**-16 == f.min_positive_value
    assert f.min_normal == 2.0**-14
    assert f.finite_codes == 256 - 2 - 6
    assert isinstance(f.source, (str, type(None)))
    e8 = _C.Format("float8_e8m0fnu")
    assert not e8.is_signed and e8.no_zero
    c = _C.format_init("mine", 3, 2, 2, True, "fn", False)
    assert c.name == "mine" and c.specials == "fn" and c == _C.Format("e3m2:bias=2:specials=fn")


@pytest.mark.parametrize("name", ["E5M2", "E4M3", "E3M4", "E7M0", "float8_e4m3fnuz",
                                  "float8_e8m0fnu", "float4_e2m1fn", "FP16", "BF16"])
def test_bulk_equals_scalar_and_encode_decode(name, rng):
    f = _C.Format(name)
    lo = max(math.log2(f.min_subnormal) - 2, -140)
    hi = min(math.log2(f.max_finite) + 2, 127)
    x = random_f32(rng, 4000, lo, hi)
    x[:3] = [np.nan, np.inf, -0.0]
    y = _C.quantize(x, f)
    want = np.array([f.to_real(f.to_bits(float(v), overflow="saturate")) for v in x],
                    dtype=np.float32)
    want[0] = np.nan  # the bulk call keeps NaN whatever the format
    assert same_f32(y, want)
    codes = _C.encode(x, f)
    assert codes.dtype == (np.uint8 if f.bits <= 8 else np.uint16)
    assert all(int(c) == f.to_bits(float(v), overflow="saturate")
               for c, v in zip(codes[1:], x[1:]))
    back = _C.decode(codes, f)
    assert same_f32(back[1:], y[1:])
    # a given out of the other width picks that storage
    if f.bits <= 8:
        wide = _C.encode(x, f, 1.0, np.empty(x.shape, np.uint16))
        assert np.array_equal(wide, codes.astype(np.uint16))
        assert same_f32(_C.decode(wide, f), back)


def test_buffers_of_every_kind():
    f = _C.Format("E4M3")
    a = array.array("f", [0.1, 1.7, -300.0, 1000.0])
    y = _C.quantize(a, f)
    assert isinstance(y, np.ndarray) and y.tolist() == [0.1015625, 1.75, -288.0, 448.0]
    out = array.array("f", [0.0] * 4)
    assert _C.quantize(a, f, 1.0, out) is out and list(out) == y.tolist()
    z = _C.quantize(np.float32(3.3) * np.ones((), np.float32), f)
    assert z.shape == () and float(z) == 3.25
    m = memoryview(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert _C.quantize(m, f).shape == (2, 3)
    big_endian = np.ones(3, dtype=">f4")
    with pytest.raises(TypeError):
        _C.quantize(big_endian, f)


def test_backward_kernels_accumulate():
    f = _C.Format("E3M4")
    x = np.array([1.0, 130.0, -500.0, 2.0], np.float32)
    dy = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    dx = np.full(4, 10.0, np.float32)
    assert _C.quantize_backward(dx, dy, None, f, 1.0) is None
    assert dx.tolist() == [11.0, 12.0, 13.0, 14.0]
    _C.quantize_backward(dx, dy, x, f, 1.0, ste="clipped")
    assert dx.tolist() == [12.0, 12.0, 13.0, 18.0]
    _C.quantize_backward(dx, dy, x, f, 2.0, ste="clipped")  # 130 / 2 = 65: inside
    assert dx.tolist() == [13.0, 14.0, 13.0, 22.0]
    _C.dequantize_backward(dx, dy, 0.5)
    assert dx.tolist() == [13.5, 15.0, 14.5, 24.0]
    assert _C.dequantize(dy, 3.0).tolist() == [3.0, 6.0, 9.0, 12.0]


def test_stats_counters_on_encode():
    st = {"total": 5}
    _C.encode(np.array([1.0, 1e9, np.nan], np.float32), _C.Format("E3M4"), stats=st)
    assert st == {"total": 8, "overflow": 1, "underflow": 0, "nan": 1}


def test_numpy_layer_encode_decode(rng):
    x = random_f32(rng, 100, -5, 5)
    codes = altgrad.encode(x, "E5M2", 0.5)
    assert codes.dtype == np.uint8
    assert same_f32(altgrad.decode(codes, "E5M2", 0.5), altgrad.quantize_array(x, "E5M2", 0.5))
    out = np.empty(100, np.float32)
    assert altgrad.dequantize_array(x, 4.0, out=out) is out
    assert same_f32(out, x * np.float32(4.0))
