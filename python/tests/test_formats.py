# SPDX-License-Identifier: MIT
"""FP8Format, the AltGrad constants, FORMAT_REGISTRY and altgrad.format."""
import dataclasses
import math
import pickle

import numpy as np
import pytest

import altgrad
from altgrad.quantization import formats as F
from altgrad.quantization import FORMAT_REGISTRY, FP8Format
from conftest import ALTGRAD_NAMES, ref_decode


def test_registry_holds_exactly_the_five_headline_formats():
    assert sorted(FORMAT_REGISTRY) == sorted(["E0M7", "E1M6", "E3M4", "E5M2", "E7M0"])
    for name, fmt in FORMAT_REGISTRY.items():
        assert fmt.name == name
        assert fmt is getattr(F, name)


def test_constructor_keywords_and_defaults():
    f = FP8Format(name="X", exponent_bits=3, mantissa_bits=4, bias=1)
    assert (f.name, f.exponent_bits, f.mantissa_bits, f.bias) == ("X", 3, 4, 1)
    assert f.has_inf is False and f.has_nan is False
    assert f == F.E3M4.__class__("X", 3, 4, 1)


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        F.E5M2.bias = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        F.E5M2.name = "Y"


@pytest.mark.parametrize("name", ALTGRAD_NAMES)
def test_constants_round_trip_to_the_library_registry(name):
    """Each constant's fields map onto exactly the registry entry."""
    const = getattr(F, name)
    reg = altgrad.format(name)
    assert const.c_format == reg
    assert (const.exponent_bits, const.mantissa_bits, const.bias) == (reg.ebits, reg.mbits, reg.bias)
    assert (const.has_inf, const.has_nan) == (reg.has_inf, reg.has_nan)
    back = FP8Format.from_format(reg)
    assert back == const
    for code in range(1 << const.bits):
        a, b = const.to_real(code), reg.to_real(code)
        assert (math.isnan(a) and math.isnan(b)) or a == b


# (name, min positive, max) from DESIGN.md's table, written independently
RANGES = {
    "E0M7": (1 / 128, 127 / 128),
    "E1M6": (1 / 32, 3.96875),
    "E3M4": (0.0625, 124.0),
    "E4M3": (2.0**-9, 448.0),
    "E5M2": (2.0**-16, 57344.0),
    "E7M0": (2.0**-62, 2.0**64),
}


@pytest.mark.parametrize("name", sorted(RANGES))
def test_range_properties(name):
    lo, hi = RANGES[name]
    f = getattr(F, name)
    assert f.min_positive_value == lo
    assert f.max_representable_value == hi


@pytest.mark.parametrize("name", ALTGRAD_NAMES)
def test_to_real_matches_an_independent_decoder(name):
    f = getattr(F, name)
    sp = f.c_format.specials
    for code in range(1 << f.bits):
        got = f.to_real(code)
        want = ref_decode(f.exponent_bits, f.mantissa_bits, f.bias, sp, code)
        if math.isnan(want):
            assert math.isnan(got), (name, code)
        else:
            assert got == want and math.copysign(1, got) == math.copysign(1, want), (name, code)


@pytest.mark.parametrize("name", ALTGRAD_NAMES)
def test_to_bits_inverts_to_real(name):
    f = getattr(F, name)
    for code in range(1 << f.bits):
        v = f.to_real(code)
        if math.isnan(v):
            assert math.isnan(f.to_real(f.to_bits(v)))
        else:
            assert f.to_bits(v) == code, (name, code, v)


def test_to_bits_rounding_and_overflow():
    E5M2, E4M3, E3M4 = F.E5M2, F.E4M3, F.E3M4
    # 1.125 is halfway between 1.0 and 1.25 on E5M2: ties to even (1.0)
    assert E5M2.to_real(E5M2.to_bits(1.125)) == 1.0
    assert E5M2.to_real(E5M2.to_bits(1.375)) == 1.5
    assert E5M2.to_real(E5M2.to_bits(1.126)) == 1.25
    # overflow: inf where the format has inf, NaN where it has NaN only, else max
    assert E5M2.to_real(E5M2.to_bits(1e6)) == math.inf
    assert math.isnan(E4M3.to_real(E4M3.to_bits(1e6)))
    assert E3M4.to_real(E3M4.to_bits(1e6)) == 124.0
    assert E3M4.to_real(E3M4.to_bits(-1e6)) == -124.0
    # NaN: the NaN code, or 0 without one
    assert math.isnan(E5M2.to_real(E5M2.to_bits(math.nan)))
    assert E3M4.to_bits(math.nan) == 0
    # -0 keeps its sign
    assert math.copysign(1, E5M2.to_real(E5M2.to_bits(-0.0))) == -1
    # options pass through
    assert E5M2.to_real(E5M2.to_bits(1.1, rounding="up")) == 1.25
    assert E5M2.to_real(E5M2.to_bits(1e6, overflow="saturate")) == 57344.0


def test_to_real_errors():
    for bad in (-1, 256, 1 << 40, 1 << 80):
        with pytest.raises(ValueError, match="outside"):
            F.E5M2.to_real(bad)
    with pytest.raises(TypeError):
        F.E5M2.to_real(1.5)
    with pytest.raises(TypeError):
        F.E5M2.to_real("3")
    assert F.E5M2.to_real(np.int64(60)) == F.E5M2.to_real(60)


def test_to_bits_errors():
    with pytest.raises(TypeError):
        F.E5M2.to_bits("1.0")
    with pytest.raises(TypeError):
        F.E5M2.to_bits(None)
    with pytest.raises(ValueError, match="rounding"):
        F.E5M2.to_bits(1.0, rounding="sideways")
    with pytest.raises(TypeError):
        F.E5M2.to_bits(1.0, nonsense=1)
    # a double beyond float32 becomes inf first (documented), no crash
    assert F.E5M2.to_real(F.E5M2.to_bits(1e300)) == math.inf
    assert F.E5M2.to_real(F.E5M2.to_bits(-1e300)) == -math.inf


def test_specials_mapping():
    assert FP8Format("a", 4, 3, 7).c_format.specials == "none"
    assert FP8Format("b", 4, 3, 7, has_nan=True).c_format.specials == "fn"
    assert FP8Format("c", 4, 3, 7, has_inf=True, has_nan=True).c_format.specials == "ieee"
    # has_inf alone: the IEEE layout with no mantissa bits has inf and no NaN
    g = FP8Format("d", 5, 0, 15, has_inf=True)
    assert g.c_format.specials == "ieee" and g.c_format.has_inf and not g.c_format.has_nan
    assert g.to_real(g.to_bits(1e9)) == math.inf
    with pytest.raises(ValueError, match="has_inf"):
        FP8Format("e", 4, 3, 7, has_inf=True)
    with pytest.raises(ValueError, match="has_inf"):
        FP8Format("f", 5, 0, 15, has_inf=True, has_nan=True)


def test_sixteen_bit_fp8format():
    fp16 = FP8Format("FP16", 5, 10, 15, has_inf=True, has_nan=True)
    assert fp16.c_format == altgrad.format("FP16")
    assert fp16.max_representable_value == 65504.0


@pytest.mark.parametrize("kw, exc", [
    (dict(exponent_bits=9, mantissa_bits=0, bias=0), ValueError),
    (dict(exponent_bits=5, mantissa_bits=24, bias=0), ValueError),
    (dict(exponent_bits=8, mantissa_bits=8, bias=127), ValueError),   # 17 bits
    (dict(exponent_bits=-1, mantissa_bits=3, bias=0), ValueError),
    (dict(exponent_bits=4, mantissa_bits=3, bias=200), ValueError),   # beyond float32
    (dict(exponent_bits=4, mantissa_bits=3, bias=5000), ValueError),
    (dict(exponent_bits=0, mantissa_bits=0, bias=0), ValueError),
    (dict(exponent_bits=0, mantissa_bits=3, bias=0, has_inf=True, has_nan=True), ValueError),
    (dict(exponent_bits=4.0, mantissa_bits=3, bias=7), TypeError),
    (dict(exponent_bits=True, mantissa_bits=3, bias=7), TypeError),
    (dict(exponent_bits=4, mantissa_bits=3, bias="7"), TypeError),
    (dict(exponent_bits=4, mantissa_bits=3, bias=7, has_nan=1), TypeError),
])
def test_invalid_fp8format(kw, exc):
    with pytest.raises(exc):
        FP8Format(name="bad", **kw)
    with pytest.raises(TypeError):
        FP8Format(name=3, exponent_bits=4, mantissa_bits=3, bias=7)


def test_full_registry_reachable():
    names = altgrad.formats()
    for n in ["float8_e4m3fn", "float8_e4m3fnuz", "float8_e4m3b11fnuz", "float8_e5m2",
              "float8_e5m2fnuz", "float8_e3m4", "float8_e4m3", "float8_e8m0fnu",
              "float6_e2m3fn", "float6_e3m2fn", "float4_e2m1fn", "float16", "bfloat16",
              "FP16", "BF16"] + ALTGRAD_NAMES:
        assert n in names
    for n in names:
        f = altgrad.format(n)
        assert f.name == n
        assert altgrad.format(n.lower()) == f  # case-insensitive
        # every code decodes as the independent reference says
        for code in range(0, f.ncodes, max(1, f.ncodes // 512)):
            got = f.to_real(code)
            want = ref_decode(f.ebits, f.mbits, f.bias, f.specials, code, f.is_signed, f.no_zero)
            assert (math.isnan(got) and math.isnan(want)) or got == want, (n, code)
    e4 = altgrad.format("float8_e4m3fn")
    assert (e4.ebits, e4.mbits, e4.bias, e4.specials, e4.max_finite) == (4, 3, 7, "fn", 448.0)
    assert altgrad.format("float8_e4m3fnuz").specials == "fnuz"
    with pytest.raises(ValueError, match="not expressible"):
        FP8Format.from_format("float8_e4m3fnuz")


def test_spec_strings_and_errors():
    f = altgrad.format("e3m4:bias=2:specials=none")
    assert (f.ebits, f.mbits, f.bias, f.specials) == (3, 4, 2, "none")
    assert altgrad.format(f) is f
    assert altgrad.format(F.E5M2) is F.E5M2.c_format
    with pytest.raises(ValueError, match="unknown format 'nope'"):
        altgrad.format("nope")
    with pytest.raises(ValueError, match="bias"):
        altgrad.format("e3m4:bias=x")
    with pytest.raises(ValueError, match="unknown option"):
        altgrad.format("e3m4:colour=red")
    with pytest.raises(ValueError, match="exponent bits > 8"):
        altgrad.format("e9m3")
    with pytest.raises(ValueError):
        altgrad.format("")
    with pytest.raises(ValueError):
        altgrad.format("e4m3\0:bias=1")
    with pytest.raises(TypeError):
        altgrad.format(43)
    with pytest.raises(TypeError):
        altgrad.format(None)


def test_pickle_and_hash():
    for f in [F.E5M2, F.E0M7, FP8Format("x", 2, 2, 1)]:
        assert pickle.loads(pickle.dumps(f)) == f
    for spec in ["E5M2", "float8_e4m3fnuz", "e3m4:bias=2", "float8_e8m0fnu"]:
        c = altgrad.format(spec)
        d = pickle.loads(pickle.dumps(c))
        assert d == c and hash(d) == hash(c) and d.name == c.name
    assert hash(F.E5M2) == hash(FP8Format("E5M2", 5, 2, 15, True, True))
    assert altgrad.format("FP16") == altgrad.format("float16")
    assert altgrad.format("FP16") != altgrad.format("BF16")
    assert len({altgrad.format("FP16"), altgrad.format("float16")}) == 1
    assert "E5M2" in repr(altgrad.format("E5M2"))


def test_format_fields_readonly():
    f = altgrad.format("E5M2")
    with pytest.raises(AttributeError):
        f.bias = 3
