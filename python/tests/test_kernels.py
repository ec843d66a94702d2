# SPDX-License-Identifier: MIT
"""Every C code path available here (scalar, portable, AVX2, AVX-512) gives
the same bits and counters through the extension, for every rounding mode
and overflow policy, on awkward lengths (SIMD tails) and thread counts."""
import numpy as np
import pytest
import torch

import altgrad
from altgrad import _C
from conftest import random_f32, same_f32

KERNELS = [k for k in _C.kernels() if k != "scalar"]
FORMATS = ["E0M7", "E3M4", "E4M3", "E5M2", "E7M0", "float8_e4m3fnuz", "float8_e8m0fnu",
           "float4_e2m1fn", "FP16", "BF16", "e3m4:bias=5:specials=fn"]
MODES = ["nearest_even", "nearest_away", "toward_zero", "down", "up", "stochastic"]


def test_kernel_list():
    ks = _C.kernels()
    assert ks[0] == "auto" and "scalar" in ks and "portable" in ks
    with pytest.raises(ValueError, match="kernel"):
        _C.quantize(np.ones(3, np.float32), _C.Format("E5M2"), kernel="mmx")


@pytest.mark.parametrize("name", FORMATS)
def test_kernels_match_scalar(name, rng):
    f = altgrad.format(name)
    n = 4099  # not a multiple of any vector width
    x = np.concatenate([random_f32(rng, n - 6, -150, 128),
                        np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45], np.float32)])
    for scale in (1.0, 0.3):
        for mode in MODES:
            for ov in ("saturate", "ieee"):
                kw = dict(rounding=mode, overflow=ov, seed=11, stream=2, offset=5)
                st_ref = {}
                ref = _C.quantize(x, f, scale, kernel="scalar", stats=st_ref, **kw)
                cref = _C.encode(x, f, scale, kernel="scalar", **kw)
                for k in KERNELS:
                    st = {}
                    y = _C.quantize(x, f, scale, kernel=k, stats=st, **kw)
                    assert same_f32(y, ref), (name, scale, mode, ov, k)
                    assert st == st_ref, (name, scale, mode, ov, k)
                    assert np.array_equal(_C.encode(x, f, scale, kernel=k, **kw), cref)
        dy = random_f32(rng, n, -3, 3)
        dref = np.zeros(n, np.float32)
        _C.quantize_backward(dref, dy, x, f, scale, ste="clipped", kernel="scalar")
        for k in KERNELS:
            d = np.zeros(n, np.float32)
            _C.quantize_backward(d, dy, x, f, scale, ste="clipped", kernel=k)
            assert same_f32(d, dref), (name, k)


def test_threads_and_kernels_through_torch(rng):
    x = torch.from_numpy(random_f32(rng, 1 << 17, -20, 20))
    ref = altgrad.quantize_array(x, "E4M3", kernel="scalar", threads=1)
    for k in KERNELS:
        for t in (1, 2, 3):
            got = altgrad.quantization.quantize(x, "E4M3", 1.0, kernel=k, threads=t)
            assert torch.equal(got, ref), (k, t)
