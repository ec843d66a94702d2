# SPDX-License-Identifier: MIT
"""The device-generic torch path (altgrad.backends.torch_path) against the C
core, bit for bit, on CPU tensors: every code of every 8-bit format and
+-1 float32 ulp around each, every midpoint +-1 ulp, float32 subnormals,
+-0, +-inf, NaN and the saturation boundaries, in every rounding mode and
overflow policy, at power-of-two, other, tiny and huge scales; random
tensors; stochastic rounding at several seeds, streams and offsets; encode /
decode; per-row and MX blocks; amax and compute_scale; the clipped STE
masks; and bad inputs. The same checks run on CUDA in tests/device/."""
import math
import os

import numpy as np
import pytest
import torch

import altgrad
from altgrad.backends import torch_path as tp

# ALTGRAD_TEST_DEVICE=cuda (tests/device/run.sh) runs every check below with
# the torch path's inputs on that device; the C core stays the reference.
DEVICE = torch.device(os.environ.get("ALTGRAD_TEST_DEVICE", "cpu"))


def _to(v, device):
    if isinstance(v, torch.Tensor):
        return v.to(device)
    if isinstance(v, tuple):
        return tuple(_to(e, device) for e in v)
    return v


class _OnDevice:
    """tp's functions with tensor arguments moved to DEVICE; each result is
    checked to be on DEVICE (nothing went through the host) and comes back
    to the CPU for the comparison with the C core."""

    def __getattr__(self, name):
        fn = getattr(tp, name)

        def call(*args, **kw):
            res = fn(*_to(args, DEVICE), **{k: _to(v, DEVICE) for k, v in kw.items()})
            for r in res if isinstance(res, tuple) else (res,):
                assert r.device == DEVICE, f"{name}: result on {r.device}"
            return _to(res, torch.device("cpu"))

        return call


tpd = _OnDevice()

MODES = ["nearest_even", "nearest_away", "toward_zero", "down", "up", "stochastic"]
POLICIES = ["saturate", "ieee"]
SCALES = [1.0, 4.0, 0.3, 2.0**-100, 3.0e30, 7.0]
FMT8 = [n for n in altgrad.formats() if altgrad.format(n).bits <= 8]
CUSTOM8 = ["e3m4:bias=2", "E5M2:specials=fnuz", "e2m1:signed=no",
           "e4m3:signed=no:specials=fn", "e0m3:specials=fn", "e3m2:specials=ieee:bias=-3",
           "e8m0:signed=no:zero=no:specials=fn:bias=127", "e2m2:zero=no:bias=0"]
FMT16 = ["BF16", "FP16", "E3M12", "E0M15", "e6m9:specials=fnuz"]


def bits(t):
    return t.contiguous().view(torch.int32)


def assert_same(a, b, what=""):
    """Bit-identical float32 tensors (NaN payloads and signs included)."""
    assert a.shape == b.shape, what
    ba, bb = bits(a), bits(b)
    bad = (ba != bb).nonzero()
    if bad.numel():
        i = tuple(bad[0].tolist())
        raise AssertionError(f"{what}: {bad.shape[0]} differ, first at {i}: torch "
                             f"{a[i].item()!r} ({ba[i].item() & 0xffffffff:#010x}) C "
                             f"{b[i].item()!r} ({bb[i].item() & 0xffffffff:#010x})")


def from_bits(u):
    return torch.from_numpy(np.asarray(u, dtype=np.uint32).view(np.float32).copy())


def grid_inputs(spec):
    """The exhaustive inputs of the core tests for one format: every finite
    value, the midpoints between neighbours and beyond max, each +-1 ulp,
    with both signs; float32 subnormals, +-0, +-inf, NaN, FLT_MAX, 2 max."""
    f = altgrad.format(spec)
    dtype = np.uint8 if f.bits <= 8 else np.uint16
    vals = altgrad.decode(np.arange(f.ncodes, dtype=dtype), f).astype(np.float64)
    fin = np.unique(np.abs(vals[np.isfinite(vals)]))
    mids = (fin[:-1] + fin[1:]) / 2
    top = fin[-1]
    gap = top - fin[-2] if fin.size > 1 else top
    extra = [top + gap / 2, 2 * top, top * 1.5, fin[0] / 2, fin[0] / 4]
    with np.errstate(over="ignore"):  # 2 max beyond float32 is inf: kept
        pts = np.concatenate([fin, mids, extra]).astype(np.float32)
    b = pts.view(np.uint32).astype(np.int64)
    near = np.concatenate([b, b + 1, np.maximum(b - 1, 0)])
    near = near[(near >= 0) & (near < 0x7F800000)].astype(np.uint32)
    specials = np.array([0, 1, 2, 0x7FFFFF, 0x400000, 0x800000, 0x7F7FFFFF, 0x7F800000,
                         0x7FC00000, 0x7F800001, 0x7FFFFFFF], dtype=np.uint32)
    u = np.unique(np.concatenate([near, specials]))
    return from_bits(np.concatenate([u, u | np.uint32(0x80000000)]))


def random_inputs(n, seed, lo=-40, hi=40):
    g = torch.Generator().manual_seed(seed)
    mag = torch.exp2(torch.rand(n, generator=g, dtype=torch.float64) * (hi - lo) + lo)
    sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0).to(torch.float64)
    x = (mag * sign).to(torch.float32)
    x[torch.rand(n, generator=g) < 0.02] = 0.0
    x[torch.rand(n, generator=g) < 0.01] = math.nan
    x[torch.rand(n, generator=g) < 0.01] = math.inf
    return x


def c_quantize(x, f, scale, **kw):
    return altgrad.quantize_array(x, f, scale, **kw)


OPTS = dict(seed=0x0123456789ABCDEF, stream=11, offset=5)


# --- the rounding core --------------------------------------------------------


@pytest.mark.parametrize("spec", FMT8 + CUSTOM8)
def test_quantize_exhaustive_8bit(spec):
    f = altgrad.format(spec)
    x0 = grid_inputs(spec)
    for scale in SCALES:
        x = x0 if scale == 1.0 else torch.cat([x0, x0 * scale])
        for mode in MODES:
            for ovf in POLICIES:
                st_t, st_c = {}, {}
                kw = dict(rounding=mode, overflow=ovf, **OPTS)
                yt = tpd.quantize(x, f, scale, stats=st_t, **kw)
                yc = c_quantize(x, f, scale, stats=st_c, **kw)
                what = f"{spec} scale {scale} {mode} {ovf}"
                assert_same(yt, yc, what)
                assert st_t == st_c, what
                ct = tpd.encode(x, f, scale, **kw)
                cc = altgrad.encode(x, f, scale, **kw)
                assert ct.dtype == cc.dtype == torch.uint8
                assert torch.equal(ct, cc), what


@pytest.mark.parametrize("spec", FMT16)
def test_quantize_16bit(spec):
    f = altgrad.format(spec)
    x = grid_inputs(spec)
    if spec not in ("BF16", "FP16"):  # a random third of the grid, the rest in 2 formats
        x = x[torch.randperm(x.numel(), generator=torch.Generator().manual_seed(3))
              [: x.numel() // 3]]
    for mode, ovf, scale in [("nearest_even", "saturate", 1.0), ("stochastic", "ieee", 0.3),
                             ("toward_zero", "ieee", 2.0**-60), ("up", "saturate", 5.0e20)]:
        kw = dict(rounding=mode, overflow=ovf, **OPTS)
        st_t, st_c = {}, {}
        assert_same(tpd.quantize(x, f, scale, stats=st_t, **kw),
                    c_quantize(x, f, scale, stats=st_c, **kw), f"{spec} {mode}")
        assert st_t == st_c
        ct = tpd.encode(x, f, scale, **kw)
        cc = altgrad.encode(x, f, scale, **kw)
        assert ct.dtype == cc.dtype == torch.int16
        assert torch.equal(ct, cc), f"{spec} {mode} encode"


@pytest.mark.parametrize("spec", ["E4M3", "E5M2", "E7M0", "E0M7", "float4_e2m1fn",
                                  "float8_e8m0fnu", "BF16", "e2m1:signed=no"])
def test_quantize_random(spec):
    f = altgrad.format(spec)
    x = random_inputs(20000, 7)
    for scale in [1.0, 0.7, 2.0**-40, 1.0e25]:
        for mode in MODES:
            kw = dict(rounding=mode, **OPTS)
            st_t, st_c = {}, {}
            assert_same(tpd.quantize(x, f, scale, stats=st_t, **kw),
                        c_quantize(x, f, scale, stats=st_c, **kw), f"{spec} {scale} {mode}")
            assert st_t == st_c


def test_quantize_shapes_and_views():
    f = altgrad.format("E5M2")
    x = random_inputs(6 * 7 * 5, 2).view(6, 7, 5)
    for t in [x, x.transpose(0, 2), x[:, ::2], x[0, 0, 0], x[:0]]:
        yt = tpd.quantize(t, f, 0.5, rounding="stochastic", seed=9)
        yc = c_quantize(t, f, 0.5, rounding="stochastic", seed=9)
        assert yt.shape == t.shape
        assert_same(yt, yc)


# --- the stochastic stream ---------------------------------------------------


ARS_KAT = [  # Random123's ars4x32 with 10 rounds: counter words, key words, output
    ((0, 0, 0x01000000, 0), (0, 0, 0, 0x00800000), (0xE80A74BA, 0x362DA2EF, 0xEF2D5659,
                                                     0xE533BA90)),
    ((1, 0, 0, 0), (0, 0, 0, 0xFF000000), (0x27B00D10, 0x76EEB5FE, 0x30FEA418, 0x02742412)),
    ((0x223809A4, 0xD0319F29, 0x98FA2E08, 0x896C4EEC), (0, 0, 0xFF000000, 0),
     (0x057DC2D7, 0x5AE3FA5A, 0xF95A7DE3, 0xF9808716)),
]


def test_ars_known_answers():
    for ctr, key, want in ARS_KAT:
        c = torch.tensor(ctr, dtype=torch.int64).view(4, 1)
        out = tpd.ars_blocks(c, key[0] | key[1] << 32, key[2] | key[3] << 32, rounds=10)
        assert out.view(-1).tolist() == list(want)


@pytest.mark.parametrize("seed,stream,offset", [
    (0, 0, 0), (1, 0, 3), (2**64 - 1, 2**63 + 1, 2**40 + 2), (12345, 7, 2**64 - 37),
    (0xDEADBEEF, 2**32, 1)])
def test_stochastic_stream(seed, stream, offset):
    # the 32-bit threshold of E0M7 at 2^-39 .. 2^-8: the draws decide every
    # element, so equal bits mean equal random words (and the offset wraps
    # modulo 2^64 in the last case)
    f = altgrad.format("E0M7")
    g = torch.Generator().manual_seed(seed % 1000)
    x = torch.rand(3001, generator=g) * 2.0**-7
    kw = dict(rounding="stochastic", seed=seed, stream=stream, offset=offset)
    if offset + x.numel() > 2**64:
        # across the wrap of the element index only the scalar C path follows
        # the stream's definition (g = offset + i modulo 2^64, counter g / 4):
        # the C bulk kernels carry the block counter on past 2^62 instead
        kw["kernel"] = "scalar"
    tkw = {k: v for k, v in kw.items() if k != "kernel"}
    assert_same(tpd.quantize(x, f, 1.0, **tkw), c_quantize(x, f, 1.0, **kw))
    for spec in ["E4M3", "BF16", "E7M0"]:
        y = random_inputs(999, 5, -20, 20)
        assert_same(tpd.quantize(y, spec, 0.37, **tkw), c_quantize(y, spec, 0.37, **kw), spec)


def test_stochastic_threshold_exact():
    # rounds up iff the word < floor(frac * 2^32), frac = the distance from
    # the lower neighbour over the gap: an exact reference in fractions, at
    # the words just below and at the threshold, far below the grid too
    from fractions import Fraction

    for spec in ["E4M3", "E5M2", "E0M7", "E7M0", "BF16"]:
        f = altgrad.format(spec)
        p = tp.params(f)
        xs = [2.0**k * (1 + j / 7) for k in range(-80, 3, 3) for j in range(7)]
        xs = [v for v in xs if f.min_subnormal / 2**40 < v < f.max_finite]
        for v in xs:
            v32 = float(np.float32(v))
            lo_code = f.to_bits(v32, rounding="toward_zero")
            lo, hi = f.to_real(lo_code), f.to_real(lo_code + 1)
            frac = (Fraction(v32) - Fraction(lo)) / (Fraction(hi) - Fraction(lo))
            thr = math.floor(frac * 2**32)
            x = torch.tensor([v32, v32], dtype=torch.float32)
            rnd = torch.tensor([max(thr - 1, 0), thr], dtype=torch.int64)
            got = tpd.round_codes(x, p, tp.STOCHASTIC, tp.SATURATE, rnd).tolist()
            want = [lo_code + 1 if thr > 0 else lo_code, lo_code]
            assert got == want, (spec, v32, thr)


def test_stochastic_split_continues_the_stream():
    x = torch.rand(1000) * 0.01
    whole = tpd.quantize(x, "E3M4", 1.0, rounding="stochastic", seed=3, stream=1)
    parts = torch.cat([tpd.quantize(x[:333], "E3M4", 1.0, rounding="stochastic", seed=3,
                                   stream=1),
                       tpd.quantize(x[333:], "E3M4", 1.0, rounding="stochastic", seed=3,
                                   stream=1, offset=333)])
    assert_same(whole, parts)


# --- decode, dequantize, backward masks ----------------------------------------


@pytest.mark.parametrize("spec", FMT8 + CUSTOM8 + FMT16)
def test_decode_every_code(spec):
    f = altgrad.format(spec)
    if f.bits <= 8:
        codes = torch.arange(f.ncodes, dtype=torch.int64).to(torch.uint8)
    else:
        codes = torch.arange(f.ncodes, dtype=torch.int64)
        codes = torch.where(codes >= 32768, codes - 65536, codes).to(torch.int16)
    for scale in [1.0, 0.3, 2.0**-20]:
        assert_same(tpd.decode(codes, f, scale), altgrad.decode(codes, f, scale), spec)


def test_dequantize_and_masks():
    x = random_inputs(5000, 11)
    assert_same(tpd.dequantize(x, 0.3), altgrad.dequantize_array(x, 0.3))
    for spec, scale in [("E4M3", 1.0), ("E5M2", 0.01), ("float4_e2m1fn", 3.0)]:
        keep = torch.zeros_like(x)
        altgrad._C.quantize_backward(keep.numpy(), np.ones(x.shape, np.float32),
                                     x.numpy(), altgrad.format(spec), scale, ste="clipped")
        assert torch.equal(tpd.quantize_keep_mask(x, spec, scale), keep != 0)


# --- scaling ------------------------------------------------------------------


def test_amax_and_compute_scale():
    from altgrad.quantization import scaling

    x = random_inputs(4000, 13).view(40, 100)
    x[3] = math.nan
    x[4] = 0.0
    x[5, 7] = -math.inf
    m, nans = tpd.amax(x[6:])
    cm, cn = scaling.amax(x[6:], with_nan_count=True)
    assert bits(m).item() == bits(torch.tensor(cm, dtype=torch.float32)).item()
    assert nans.item() == cn
    assert tpd.amax(torch.zeros(0))[0].item() == 0.0
    rows_t, rows_c = tpd.amax_rows(x), scaling.amax_rows(x)
    assert_same(rows_t, rows_c)
    amaxes = torch.cat([rows_t, torch.tensor([0.0, 1e-45, 3e38, math.inf, 448.0, 1e-30])])
    for spec in ["E4M3", "E5M2", "float4_e2m1fn", "E0M7", "float8_e8m0fnu"]:
        for kw in [{}, {"pow2": True}, {"margin": 2.0, "scale_min": 1e-3},
                   {"margin": 1e30, "pow2": True}, {"margin": 3e38}]:
            assert_same(tpd.compute_scale(amaxes, spec, **kw),
                        scaling.compute_scale(amaxes, spec, **kw), f"{spec} {kw}")
    with pytest.raises(ValueError):
        tpd.compute_scale(torch.tensor([1.0, math.nan]), "E4M3")
    with pytest.raises(ValueError):
        tpd.compute_scale(torch.tensor([-1.0]), "E4M3")
    with pytest.raises(ValueError):
        tpd.compute_scale(torch.tensor([1.0]), "E4M3", scale_min=0.0)


def test_quantize_rows():
    from altgrad.quantization import scaling

    x = random_inputs(30 * 37, 17, -10, 10).view(3, 10, 37)
    scales = scaling.channel_scales(x, "E4M3")
    for mode in ["nearest_even", "stochastic", "down"]:
        kw = dict(rounding=mode, seed=4, stream=2, offset=9)
        st_t, st_c = {}, {}
        yt = tpd.quantize_rows(x, "E4M3", scales, stats=st_t, **kw)
        yc = scaling.quantize_rows(x.numpy(), "E4M3", scales.numpy(), stats=st_c, **kw)
        assert_same(yt, torch.from_numpy(yc), mode)
        assert st_t == st_c
    keep = torch.zeros_like(x)
    altgrad._C.quantize_rows_backward(keep.numpy(), np.ones(x.shape, np.float32), x.numpy(),
                                      30, 37, (scales * 0.25).numpy().reshape(30),
                                      altgrad.format("E4M3"), {"ste": "clipped"})
    assert torch.equal(tpd.quantize_rows_keep_mask(x, "E4M3", scales * 0.25), keep != 0)
    with pytest.raises(ValueError):
        tpd.quantize_rows(x, "E4M3", torch.zeros(30))
    with pytest.raises(ValueError):
        tpd.quantize_rows(x, "E4M3", torch.ones(29))


MX_FORMATS = ["float8_e4m3fn", "float8_e5m2", "float6_e2m3fn", "float6_e3m2fn",
              "float4_e2m1fn", "E0M7", "E7M0"]


def mx_input():
    x = random_inputs(7 * 70, 19, -30, 30).view(7, 70)
    x[0] = 0.0                      # all-zero blocks
    x[1, 40] = math.nan             # a NaN block
    x[2, 3] = math.inf              # an inf block
    x[3] = x[3] * 2.0**-120         # tiny blocks (shared exponent clamps)
    x[4] = torch.where(torch.isfinite(x[4]), x[4], torch.ones(()))
    return x


@pytest.mark.parametrize("spec", MX_FORMATS)
def test_mx(spec):
    from altgrad.quantization import scaling

    x = mx_input()
    for block, rule in [(32, "floor"), (7, "rceil"), (1, "floor"), (100, "rceil"),
                        (32, "rceil")]:
        for mode in ["nearest_even", "stochastic", "up"]:
            for ovf in POLICIES:
                kw = dict(rounding=mode, overflow=ovf, seed=8, stream=3, offset=2,
                          mx_scale=rule)
                st_t, st_c = {}, {}
                ct, st = tpd.mx_encode(x, spec, block, stats=st_t, **kw)
                cc, sc = scaling.mx_encode(x, spec, block, stats=st_c, **kw)
                what = f"{spec} block {block} {mode} {ovf}"
                assert torch.equal(ct, cc) and torch.equal(st, sc), what
                assert st_t == st_c, what
                assert torch.equal(tpd.mx_scale_codes(x, spec, block, mx_scale=rule), sc)
                assert_same(tpd.mx_decode(ct, st, spec, block),
                            scaling.mx_decode(cc, sc, spec, block), what)
                st_t, st_c = {}, {}
                yt = tpd.mx_quantize(x, spec, block, stats=st_t, **kw)
                yc = scaling.mx_quantize(x.numpy(), spec, block, stats=st_c, **kw)
                assert_same(yt, torch.from_numpy(yc), what)
                assert st_t == st_c, what
        keep = torch.zeros_like(x)
        altgrad._C.mx_quantize_backward(keep.numpy(), np.ones(x.shape, np.float32),
                                        x.numpy(), 7, 70, block, altgrad.format(spec),
                                        {"ste": "clipped"}, mx_scale=rule)
        assert torch.equal(tpd.mx_keep_mask(x, spec, block, mx_scale=rule), keep != 0)


# --- bad inputs --------------------------------------------------------------


def test_bad_inputs():
    x = torch.ones(4)
    with pytest.raises(TypeError, match="float32"):
        tpd.quantize(x.double(), "E4M3")
    with pytest.raises(TypeError, match="float32"):
        tpd.quantize(torch.ones(4, dtype=torch.bfloat16), "E4M3")
    with pytest.raises(TypeError):
        tpd.quantize([1.0], "E4M3")
    with pytest.raises(ValueError, match="scale"):
        tpd.quantize(x, "E4M3", 0.0)
    with pytest.raises(ValueError, match="scale"):
        tpd.quantize(x, "E4M3", math.inf)
    with pytest.raises(ValueError, match="scale"):
        tpd.quantize(x, "E4M3", 1e-50)  # 0 in float32
    with pytest.raises(ValueError, match="rounding"):
        tpd.quantize(x, "E4M3", rounding="nearest_odd")
    with pytest.raises(ValueError, match="overflow"):
        tpd.quantize(x, "E4M3", overflow="wrap")
    with pytest.raises(ValueError, match="seed"):
        tpd.quantize(x, "E4M3", rounding="stochastic", seed=-1)
    with pytest.raises(ValueError, match="offset"):
        tpd.quantize(x, "E4M3", rounding="stochastic", offset=2**64)
    with pytest.raises(ValueError):
        tpd.quantize(x, "e9m3")
    with pytest.raises(TypeError, match="stats"):
        tpd.quantize(x, "E4M3", stats=[])
    with pytest.raises(ValueError, match="code"):
        tpd.decode(torch.tensor([16], dtype=torch.uint8), "float4_e2m1fn")
    with pytest.raises(TypeError, match="uint8"):
        tpd.decode(torch.tensor([1], dtype=torch.int32), "E4M3")
    with pytest.raises(ValueError, match="bits"):
        tpd.decode(torch.tensor([1], dtype=torch.uint8), "BF16")
    with pytest.raises(ValueError, match="8"):
        tpd.mx_quantize(x, "BF16")
    with pytest.raises(ValueError, match="block"):
        tpd.mx_quantize(x, "float8_e4m3fn", 0)
    with pytest.raises(ValueError, match="scales"):
        tpd.mx_decode(torch.zeros(64, dtype=torch.uint8), torch.zeros(3, dtype=torch.uint8),
                     "float8_e4m3fn")
