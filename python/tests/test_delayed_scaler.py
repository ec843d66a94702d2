# SPDX-License-Identifier: MIT
"""DelayedScaler (the library's ag_scaler) against a plain-Python reference
of delayed scaling: a deque window, the scale of each step taken BEFORE its
amax joins the window, the first-step policies, the straight-through
backward with the scale of its own forward, and state_dict round trips that
resume bit for bit. AmaxHistory's AltGrad message."""
import collections
import math

import numpy as np
import pytest
import torch

from altgrad.quantization import (E4M3, E5M2, AmaxHistory, DelayedScaler, ScalingConfig,
                                  compute_scale, quantize)
from conftest import random_f32, same_f32


def ref_amax(x):
    a = np.abs(np.asarray(x, dtype=np.float32))
    a = a[~np.isnan(a)]
    return float(a.max()) if a.size else 0.0


class RefScaler:
    """Delayed scaling in plain Python (DESIGN.md's order): scale from the
    window max (empty: by `first`), quantize, then push the amax."""

    def __init__(self, fmt, n, first, margin=1.0):
        self.fmt, self.first, self.margin = fmt, first, margin
        self.win = collections.deque(maxlen=n)

    def scale(self, amax_now):
        if self.win:
            a = max(self.win)
        elif self.first == "current":
            a = amax_now
        elif self.first == "amax_one":
            a = 1.0
        else:
            return 1.0
        # the library's float32 scale for this amax (tested on its own in
        # test_scaling.py against amax * margin / max_finite)
        return compute_scale(torch.tensor([a], dtype=torch.float32), self.fmt,
                             margin=self.margin)[0].item()

    def step(self, x):
        s = self.scale(ref_amax(x))
        self.win.append(ref_amax(x))
        return s


@pytest.mark.parametrize("first", ["current", "amax_one", "scale_one"])
@pytest.mark.parametrize("fmt", [E4M3, E5M2, "float8_e4m3fnuz"])
def test_steps_against_reference(rng, first, fmt):
    sc = DelayedScaler(fmt, 3, first=first, margin=2.0)
    ref = RefScaler(fmt, 3, first, margin=2.0)
    for step in range(12):
        x = random_f32(rng, int(rng.integers(1, 60)), -12, 8 + step)
        if step == 4:
            x[:2] = np.nan  # NaN elements are left out of the amax
        s = ref.step(x)
        y = sc.quantize(torch.from_numpy(x))
        assert sc.last_scale == s
        assert same_f32(y, quantize(torch.from_numpy(x), fmt, s))
        assert len(sc) == len(ref.win) and sc.amax == max(ref.win)
        assert sc.steps == step + 1
        assert sc.scale(1.0) == ref.scale(1.0)


def test_numpy_in_numpy_out_and_stats(rng):
    sc = DelayedScaler(E4M3, 4, first="scale_one")
    x = np.array([1.0, 1000.0, np.nan], np.float32)
    st = {}
    y = sc.quantize(x, stats=st)
    assert isinstance(y, np.ndarray) and y[1] == 448.0
    assert st == {"total": 3, "overflow": 1, "underflow": 0, "nan": 1}


def test_ste_uses_the_scale_of_its_forward():
    sc = DelayedScaler(E4M3, 1, first="scale_one", ste="clipped")
    x1 = torch.tensor([100.0, 1000.0], requires_grad=True)
    y1 = sc.quantize(x1)                 # scale 1: 1000 saturates
    x2 = torch.tensor([5000.0], requires_grad=True)
    sc.quantize(x2)                      # scale 1000/448: nothing saturates
    y1.sum().backward()
    assert x1.grad.tolist() == [1.0, 0.0]
    ident = DelayedScaler(E4M3, 1, first="scale_one")
    x3 = torch.tensor([1000.0], requires_grad=True)
    ident.quantize(x3).sum().backward()
    assert x3.grad.tolist() == [1.0]


def test_state_dict_resumes_bit_for_bit(rng):
    kw = dict(first="current", rounding="stochastic", seed=11, stream=3)
    a = DelayedScaler(E5M2, 4, **kw)
    xs = [torch.from_numpy(random_f32(rng, 100, -8, 8)) for _ in range(6)]
    for x in xs[:3]:
        a.quantize(x)
    sd = a.state_dict()
    assert sd["state"].dtype == torch.uint8
    b = DelayedScaler(E5M2, 4, **kw)
    b.load_state_dict(sd)
    c = DelayedScaler(E5M2, 4, **kw)
    c.load_state_dict(bytes(sd["state"].numpy()))
    for x in xs[3:]:
        ya, yb, yc = a.quantize(x), b.quantize(x), c.quantize(x)
        assert torch.equal(ya, yb) and torch.equal(ya, yc)
    assert a.offset == b.offset == 600 and a.steps == b.steps == 6
    # another setting, or a corrupt record, is refused and changes nothing
    other = DelayedScaler(E5M2, 5, **kw)
    with pytest.raises(ValueError, match="scaler_load"):
        other.load_state_dict(sd)
    bad = bytearray(sd["state"].numpy().tobytes())
    bad[20] ^= 1
    with pytest.raises(ValueError):
        b.load_state_dict(bytes(bad))
    assert b.steps == 6


def test_record_scale_reset():
    sc = DelayedScaler(E4M3, 2, first="current")
    with pytest.raises(ValueError, match="amax_now"):
        sc.scale()
    assert sc.scale(448.0) == 1.0
    sc.record(896.0, 10)
    assert sc.scale() == 2.0 and sc.offset == 10 and len(sc) == 1
    with pytest.raises(ValueError, match="NaN or negative"):
        sc.record(math.nan)
    sc.reset()
    assert len(sc) == 0 and sc.steps == 0 and sc.last_scale == 0.0
    assert "E4M3" in repr(sc)


def test_bad_settings():
    for bad in [0, -3]:
        with pytest.raises(ValueError, match="^history_len must be positive$"):
            DelayedScaler(E4M3, bad)
    with pytest.raises(TypeError):
        DelayedScaler(E4M3, 2.5)
    with pytest.raises(ValueError, match="expected one of"):
        DelayedScaler(E4M3, 4, first="previous")
    with pytest.raises(ValueError, match="rounding"):
        DelayedScaler(E4M3, 4, rounding="sideways")
    with pytest.raises(ValueError, match="ste"):
        DelayedScaler(E4M3, 4, ste="smooth")
    with pytest.raises(ValueError, match="margin"):
        DelayedScaler(E4M3, 4, margin=0.0)
    with pytest.raises(TypeError, match="float32"):
        DelayedScaler(E4M3, 4).quantize(torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("bad", [0, -1])
def test_amax_history_message_is_altgrads(bad):
    with pytest.raises(ValueError, match="^history_len must be positive$"):
        AmaxHistory(bad)
    with pytest.raises(ValueError, match="^history_len must be positive$"):
        ScalingConfig(history_len=bad)


def test_amax_history_sits_on_the_scaler():
    h = AmaxHistory(2)
    assert isinstance(h.scaler, DelayedScaler) and h.get_amax() == 1.0
    h.update(torch.tensor([3.0, -4.0]))
    assert h.get_amax() == 4.0 == h.scaler.amax and h.scaler.steps == 1
