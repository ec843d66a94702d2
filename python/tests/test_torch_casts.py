# SPDX-License-Identifier: MIT
"""Bit-exact agreement with torch's own float16 / bfloat16 casts:
quantize(x, FP16, 1.0, overflow="ieee") == x.to(torch.float16).float(), over
many random float32 bit patterns (normals, subnormals, huge values), exact
ties, ties +- 1 ulp, and the specials. torch keeps NaN as NaN (payloads are
not compared); both keep the sign of zero."""
import numpy as np
import pytest
import torch

import altgrad
from altgrad.quantization import quantize
from conftest import same_f32

# (library name, torch dtype, float32 mantissa bits dropped by the cast)
CASES = [("FP16", torch.float16, 13), ("float16", torch.float16, 13),
         ("BF16", torch.bfloat16, 16), ("bfloat16", torch.bfloat16, 16)]


def patterns(rng, drop):
    """float32 test inputs as uint32 patterns."""
    n = 1 << 19
    rand = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    # exact ties and their neighbours: low `drop` bits = 100..0, +-1
    half = np.uint32(1 << (drop - 1))
    base = rng.integers(0, 1 << 32, n // 4, dtype=np.uint64).astype(np.uint32)
    base &= ~np.uint32((1 << drop) - 1)
    ties = np.concatenate([base | half, (base | half) + 1, (base | half) - 1])
    # small magnitudes (float32 subnormals and the target's subnormal range)
    small = rng.integers(0, 0x3A000000, n // 4, dtype=np.uint64).astype(np.uint32)
    small |= (rng.integers(0, 2, small.size, dtype=np.uint64).astype(np.uint32) << 31)
    specials = np.array([0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F7FFFFF,
                         0xFF7FFFFF, 0x00000001, 0x80000001, 0x477FE000, 0x477FF000,
                         0x477FEFFF, 0x47800000, 0x33800000, 0x33000000, 0x33000001,
                         0x7F7F8000, 0x7F7F7FFF], dtype=np.uint32)
    return np.concatenate([rand, ties, small, specials]).view(np.float32)


@pytest.mark.parametrize("name, dtype, drop", CASES, ids=[c[0] for c in CASES])
def test_quantize_equals_torch_cast_ieee(name, dtype, drop, rng):
    x = torch.from_numpy(patterns(rng, drop))
    want = x.to(dtype).float()
    got = quantize(x, name, 1.0, overflow="ieee")
    assert same_f32(got.numpy(), want.numpy())
    # the raw op and encode -> decode agree too
    assert same_f32(altgrad.quantize_array(x, name, overflow="ieee").numpy(), want.numpy())
    codes = altgrad.encode(x, name, overflow="ieee")
    assert codes.dtype == torch.int16
    torch_bits = x.to(dtype).view(torch.int16)
    finite = torch.isfinite(want)
    assert torch.equal(codes[finite], torch_bits[finite])


@pytest.mark.parametrize("name, dtype, drop", CASES[::2], ids=["FP16", "BF16"])
def test_saturate_differs_only_on_overflow(name, dtype, drop, rng):
    x = torch.from_numpy(patterns(rng, drop))
    want = x.to(dtype).float()
    got = quantize(x, name, 1.0)  # default: saturate
    over = torch.isinf(want) & torch.isfinite(x)
    assert same_f32(got[~over].numpy(), want[~over].numpy())
    mx = altgrad.format(name).max_finite
    assert torch.equal(got[over].abs(), torch.full((int(over.sum()),), mx))
