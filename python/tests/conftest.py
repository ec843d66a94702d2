# SPDX-License-Identifier: MIT
"""Shared helpers for the altgrad Python tests: an independent slow decoder
(written from DESIGN.md's value formulas, not from the C code), float bit
views, and the formats under test."""
import math
import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
try:  # an installed altgrad, or python/ on PYTHONPATH (run_python_tests.sh)
    import altgrad
except ImportError:  # plain `pytest python/tests`: the in-place build
    sys.path.insert(0, os.path.dirname(HERE))
    import altgrad
# the directory that holds the altgrad under test (for subprocesses)
PYDIR = os.path.dirname(os.path.dirname(os.path.abspath(altgrad.__file__)))

ALTGRAD_NAMES = ["E0M7", "E1M6", "E2M5", "E3M4", "E4M3", "E5M2", "E6M1", "E7M0"]


def ref_decode(E, M, bias, specials, code, signed=True, no_zero=False):
    """The value of `code` from the format's definition (DESIGN.md), as a
    Python float (exact: every value here fits a double)."""
    sign = -1.0 if signed and (code >> (E + M)) & 1 else 1.0
    mag = code & ((1 << (E + M)) - 1)
    e = mag >> M
    m = mag & ((1 << M) - 1)
    top = (1 << E) - 1
    if specials == "ieee" and E >= 1 and e == top:
        return sign * math.inf if m == 0 else math.nan
    if specials == "fn" and mag == (1 << (E + M)) - 1:
        return math.nan
    if specials == "fnuz" and signed and code == 1 << (E + M):
        return math.nan
    if E == 0:
        return sign * m * 2.0 ** (-M - bias)
    if e == 0 and not no_zero:
        return sign * 2.0 ** (1 - bias) * m / 2**M
    return sign * 2.0 ** (e - bias) * (1 + m / 2**M)


def f32_bits(a):
    """uint32 bit patterns of a float32 array/tensor."""
    a = np.asarray(a, dtype=np.float32)
    return a.view(np.uint32)


def same_f32(a, b):
    """Bitwise equality of float32 arrays, any NaN equal to any NaN."""
    a = np.ascontiguousarray(np.asarray(a, dtype=np.float32))
    b = np.ascontiguousarray(np.asarray(b, dtype=np.float32))
    if a.shape != b.shape:
        return False
    na, nb = np.isnan(a), np.isnan(b)
    if not np.array_equal(na, nb):
        return False
    return np.array_equal(f32_bits(a)[~na], f32_bits(b)[~nb])


def random_f32(rng, n, lo_exp=-30, hi_exp=30):
    """n float32 values with random signs, log-uniform magnitudes and some
    exact zeros."""
    mag = np.exp2(rng.uniform(lo_exp, hi_exp, n)).astype(np.float32)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)
    x = mag * sign
    x[rng.random(n) < 0.01] = 0.0
    return x


@pytest.fixture
def rng():
    seed = int(os.environ.get("AG_TEST_SEED", "20260101"))
    print(f"test seed: {seed}")
    return np.random.default_rng(seed)
