# SPDX-License-Identifier: MIT
"""The MX shared-scale rule keyword (``mx_scale="floor"`` / ``"rceil"``) of
altgrad.quantization, against a reference written here (the C side is
tested exhaustively in tests/test_scale.c)."""
import math

import numpy as np
import pytest
import torch

from altgrad.quantization import mx_encode, mx_quantize, mx_scale_code

E4 = "float8_e4m3fn"


def ref_code(amax, max_finite, emax, rule):
    if amax == 0:
        return 0
    e = math.floor(math.log2(amax)) - emax
    if rule == "rceil":
        while amax > math.ldexp(max_finite, e):
            e += 1
    return min(max(e, -127), 127) + 127


@pytest.mark.parametrize("rule", ["floor", "rceil"])
def test_scale_code_matches_reference(rule):
    rng = np.random.default_rng(3)
    amaxes = np.concatenate([rng.uniform(0.5, 1000, 200), [448.0, 449.0, 464.0, 896.0, 897.0]])
    for a in amaxes.astype(np.float32):
        assert mx_scale_code(float(a), E4, rule) == ref_code(float(a), 448.0, 8, rule), a


def test_rceil_never_clips_and_floor_can():
    x = torch.tensor([[470.0, 1.0, -3.0]])
    stats = {}
    yf = mx_quantize(x, E4, stats=stats)
    assert yf[0, 0].item() == 448.0 and stats["overflow"] == 1
    stats = {}
    yr = mx_quantize(x, E4, mx_scale="rceil", stats=stats)
    assert yr[0, 0].item() == 480.0 and stats["overflow"] == 0
    codes, scales = mx_encode(x, E4, mx_scale="rceil")
    assert scales[0, 0].item() == 128
    x = torch.randn(8, 64) * 100
    stats = {}
    mx_quantize(x, E4, block=16, mx_scale="rceil", stats=stats)
    assert stats["overflow"] == 0


def test_rceil_gradient_and_default():
    x = torch.tensor([470.0, 1.0], requires_grad=True)
    mx_quantize(x, E4, ste="clipped", mx_scale="rceil").sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]  # nothing saturated: everything passes
    x.grad = None
    mx_quantize(x, E4, ste="clipped").sum().backward()
    assert x.grad.tolist() == [0.0, 1.0]  # the floor saturated 470
    assert mx_scale_code(449.0, E4) == mx_scale_code(449.0, E4, "floor")


def test_bad_rule_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown mx-scale 'ceil' \(expected one of: floor, rceil\)"):
        mx_quantize(torch.ones(4), E4, mx_scale="ceil")
    with pytest.raises(ValueError, match="mx-scale 'up'"):
        mx_scale_code(1.0, E4, "up")
    with pytest.raises(TypeError):
        mx_encode(torch.ones(4), E4, mx_scale=1)
