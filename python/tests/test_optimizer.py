# SPDX-License-Identifier: MIT
"""altgrad.training.optimizer (issue 16): ManifoldAdamW against
torch.optim.AdamW and a plain torch reference of both preconditioning
modes, GridOptim against the grid, its nearest snap, reproducibility,
checkpointing and AltGrad's attributes; every argument error; the C entry
points' errors."""
import math

import numpy as np
import pytest
import torch

import altgrad
from altgrad import _C
from altgrad.quantization import E5M2, stiffness
from altgrad.training import GridOptim, ManifoldAdamW
from altgrad.training.optimizer import GridOptim as GridOptim2


def _mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.ReLU(),
                               torch.nn.Linear(16, 3))


def _loss(model, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 20, generator=g)
    y = torch.randint(0, 3, (32,), generator=g)
    return torch.nn.functional.cross_entropy(model(x), y)


def test_lazy_training_package():
    assert GridOptim is GridOptim2
    import altgrad.training as t
    assert {"ManifoldAdamW", "GridOptim"} <= set(dir(t))
    with pytest.raises(AttributeError):
        t.NoSuchName  # noqa: B018


def test_plain_mode_matches_torch_adamw_over_many_steps():
    a, b = _mlp(), _mlp()
    b.load_state_dict(a.state_dict())
    oa = ManifoldAdamW(a.parameters(), lr=3e-3, weight_decay=0.05, manifold_aware=False)
    ob = torch.optim.AdamW(b.parameters(), lr=3e-3, weight_decay=0.05)
    for t in range(300):
        for m, o in ((a, oa), (b, ob)):
            o.zero_grad()
            _loss(m, t).backward()
            o.step()
    for p, q in zip(a.parameters(), b.parameters()):
        # float32 rounding of the same formulas: a few ulps of lr per step
        assert torch.allclose(p, q, rtol=0, atol=2e-6), (p - q).abs().max()
    st = oa.state[a[0].weight]
    assert st["step"] == 300
    assert set(st) == {"step", "exp_avg", "exp_avg_sq", "bit_position"}


def _torch_manifold_step(w, g, m, v, t, lr, b1, b2, eps, wd, s, mode):
    """The documented formulas in float64 torch."""
    gp = g * s if mode == "grad" else g
    w = w * (1 - lr * wd)
    m = b1 * m + (1 - b1) * gp
    v = b2 * v + (1 - b2) * gp * gp
    u = lr / (1 - b1**t) * m / (v.sqrt() / math.sqrt(1 - b2**t) + eps)
    if mode == "update":
        u = u * s
    return w - u, m, v


@pytest.mark.parametrize("mode", ["grad", "update"])
@pytest.mark.parametrize("fmt", [None, "E3M4", E5M2])
def test_manifold_modes_match_reference(mode, fmt):
    torch.manual_seed(1)
    w0 = torch.randn(500) * 0.1
    w0[::50] = 0.0
    p = torch.nn.Parameter(w0.clone())
    scale = 0.05 if fmt is not None else 1.0
    lr = 0.5 if mode == "update" else 1e-2
    opt = ManifoldAdamW([p], lr=lr, mantissa_bits=3, format=fmt, scale=scale,
                        precondition=mode)
    w, m, v = w0.double(), torch.zeros(500, dtype=torch.float64), torch.zeros(500, dtype=torch.float64)
    for t in range(1, 6):
        g = torch.randn(500) * 1e-3
        p.grad = g.clone()
        if fmt is None:  # AltGrad's 2^(floor(log2|w|) - M), 1 at zero
            wf = w.float()
            s = torch.where(wf == 0, torch.ones_like(wf),
                            2.0 ** (torch.floor(torch.log2(wf.abs().double())) - 3).float())
        else:
            s = stiffness(w.float(), fmt, scale)
            low = 2.0 ** (altgrad.format(fmt).emin - altgrad.format(fmt).mbits) * scale
            s = torch.where(w.float() == 0, torch.full_like(s, low), s)
        opt.step()
        w, m, v = _torch_manifold_step(w, g.double(), m, v, t, lr, 0.9, 0.999, 1e-8, 0.01,
                                       s.double(), mode)
        # start each step from the float32 weights (the stiffness is a step
        # function of w: compare one step at a time)
        assert torch.allclose(p.detach().double(), w, rtol=1e-5, atol=1e-7)
        w, m, v = p.detach().double(), opt.state[p]["exp_avg"].double(), \
            opt.state[p]["exp_avg_sq"].double()


def test_modes_differ_as_documented():
    """grad: S cancels (close to plain AdamW); update: moves ~lr grid steps."""
    torch.manual_seed(2)
    w0 = (torch.rand(1000) + 0.5) * 0.1
    runs = {}
    for name, kw in (("plain", dict(manifold_aware=False)),
                     ("grad", dict(precondition="grad")),
                     ("update", dict(precondition="update", lr=1.0))):
        p = torch.nn.Parameter(w0.clone())
        opt = ManifoldAdamW([p], weight_decay=0.0, format="E5M2", **kw)
        p.grad = torch.full_like(w0, 1e-2)
        opt.step()
        runs[name] = p.detach().clone()
    d_plain = (runs["plain"] - w0).abs()
    assert torch.allclose(runs["grad"], runs["plain"], rtol=0, atol=1e-6)
    assert not torch.equal(runs["grad"], runs["plain"])  # eps / S differs
    s = stiffness(w0, "E5M2")
    assert torch.allclose((w0 - runs["update"]), s, rtol=1e-5)  # one grid step each
    assert torch.allclose(d_plain, torch.full_like(d_plain, 1e-3), rtol=1e-3)


def test_counts_and_bit_position():
    p = torch.nn.Parameter(torch.tensor([1.0, 0.3, -2.0, 0.0]))
    opt = ManifoldAdamW([p], lr=0.1, format="E5M2", precondition="grad")
    before = p.detach().clone()
    p.grad = torch.tensor([1.0, 0.0, -1.0, 1.0])
    opt.step()
    d = altgrad.quantization.ulp_distance(before, p.detach(), "E5M2")
    assert torch.equal(opt.state[p]["bit_position"], d.float())
    c = opt.last_counts
    assert c["updates"] == 3
    assert c["flips"] == int((d != 0).sum())
    # AltGrad's bit_position without a format: float32 ulps
    q = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    o2 = ManifoldAdamW([q], lr=1e-3, weight_decay=0.0)
    b2 = q.detach().clone()
    q.grad = torch.tensor([1.0, 1.0])
    o2.step()
    ulp = (torch.nextafter(b2, torch.full_like(b2, math.inf)) - b2).abs()
    assert torch.allclose(o2.state[q]["bit_position"], (q.detach() - b2) / ulp)


def test_altgrad_edge_cases_and_closure():
    p = torch.nn.Parameter(torch.tensor([0.0, 1e10, -1e-30, 1.0]))
    opt = ManifoldAdamW([p], lr=0.1)
    p.grad = torch.ones(4)
    assert opt.step(lambda: torch.tensor(3.0)) == 3.0
    assert torch.isfinite(p).all()
    q = torch.nn.Parameter(torch.ones(3))
    o = ManifoldAdamW([q])
    o.step()  # no grad: untouched
    assert torch.equal(q.detach(), torch.ones(3)) and len(o.state) == 0
    assert set(ManifoldAdamW([q]).defaults) >= {"lr", "betas", "eps", "weight_decay",
                                                  "manifold_aware", "mantissa_bits",
                                                  "max_stiffness"}


def test_non_contiguous_and_other_dtype_params():
    base = torch.randn(8, 6)
    p = torch.nn.Parameter(base.t())  # non-contiguous
    r = torch.nn.Parameter(base.t().contiguous())
    oa, ob = ManifoldAdamW([p], manifold_aware=False), ManifoldAdamW([r], manifold_aware=False)
    g = torch.randn(6, 8)
    p.grad, r.grad = g.clone(), g.clone()
    oa.step(), ob.step()
    assert torch.equal(p.detach(), r.detach())
    h = torch.nn.Parameter(torch.ones(4, dtype=torch.float64))
    o = ManifoldAdamW([h], lr=0.1)
    h.grad = torch.ones(4, dtype=torch.float64)
    o.step()
    assert h.dtype == torch.float64 and (h < 1).all()
    assert o.state[h]["exp_avg"].device == h.device


def test_sparse_gradient_refused():
    p = torch.nn.Parameter(torch.ones(4))
    opt = ManifoldAdamW([p])
    p.grad = torch.ones(4).to_sparse()
    with pytest.raises(RuntimeError, match="does not support sparse gradients"):
        opt.step()


@pytest.mark.parametrize("kw,msg", [
    (dict(lr=-1.0), "Invalid learning rate"),
    (dict(eps=-1.0), "Invalid epsilon value"),
    (dict(betas=(1.0, 0.999)), "Invalid beta1"),
    (dict(betas=(0.9, -0.1)), "Invalid beta2"),
    (dict(weight_decay=float("nan")), "Invalid weight_decay"),
    (dict(mantissa_bits=24), "Invalid mantissa_bits"),
    (dict(max_stiffness=0.0), "Invalid max_stiffness"),
    (dict(precondition="both"), "Invalid precondition"),
    (dict(scale=0.0), "Invalid scale"),
    (dict(format="E9M9"), "E9M9"),
])
def test_manifold_argument_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        ManifoldAdamW([torch.nn.Parameter(torch.ones(2))], **kw)


# --------------------------------------------------------------------------


def test_grid_optim_attributes_and_grid():
    m = _mlp()
    opt = GridOptim(m.parameters())
    assert opt.grid is not None and opt.grid.numel() == 253
    assert opt.grid[0] == -448 and opt.grid[-1] == 448 and (opt.grid == 0).sum() == 1
    assert opt.scale == 6.0 and opt.momentum == 0.9 and opt.wd == 1e-4 and opt.rung_clip == 10
    assert len(opt.master_p) == len(opt.params) == len(opt.velocity) == 4
    for p, mp in zip(opt.params, opt.master_p):
        assert torch.allclose(p.detach(), mp) and mp.device == p.device
    assert str(opt.device) == "cpu"
    assert GridOptim(m.parameters(), format="E5M2").grid.numel() == 247  # 248 finite, +-0 merged


def test_grid_optim_steps_land_on_grid_and_count():
    m = _mlp()
    opt = GridOptim(m.parameters(), format="E3M4", grid_scale=0.01)
    grid = opt.grid * 0.01
    total_u = 0
    for t in range(5):
        opt.zero_grad()
        _loss(m, t).backward()
        grads = [p.grad.clone() for p in m.parameters()]
        flips, updates = opt.step()
        assert isinstance(flips, int) and isinstance(updates, int) and updates > 0
        total_u += updates
        for p, g in zip(m.parameters(), grads):
            assert torch.equal(p.grad, g)  # p.grad never modified
        for mp, p in zip(opt.master_p, m.parameters()):
            assert torch.isin(mp, grid).all()
            assert torch.equal(mp, p.detach())
    assert total_u > 0


def test_grid_optim_first_step_snaps_to_nearest():
    p = torch.nn.Parameter(torch.tensor([0.3, 1.06, 1.07, -0.3, 1e-5]))
    opt = GridOptim([p], weight_decay=0.0)
    p.grad = torch.zeros(5)
    flips, updates = opt.step()
    near = altgrad.quantize_array(torch.tensor([0.3, 1.06, 1.07, -0.3, 1e-5]),
                                  "float8_e4m3fn")
    assert torch.equal(p.detach(), near)
    assert p[1] == 1.0 and p[2] == 1.125  # AltGrad's upward snap gave 1.125 for both
    assert updates == 0 and flips == 5


def test_grid_optim_momentum_and_reproducible():
    def run(seed):
        p = torch.nn.Parameter(torch.linspace(-1, 1, 101))
        opt = GridOptim([p], seed=seed)
        vs = []
        for _ in range(3):
            p.grad = torch.full_like(p, 0.05)
            opt.step()
            vs.append(opt.velocity[0].abs().sum().item())
        return p.detach().clone(), vs

    a, va = run(7)
    b, _ = run(7)
    c, _ = run(8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert va[1] > va[0]  # velocity grows under a constant gradient
    state = torch.random.get_rng_state()
    run(7)
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched


def test_grid_optim_checkpoint_roundtrip():
    m1 = _mlp()
    o1 = GridOptim(m1.parameters(), seed=3)
    for t in range(2):
        o1.zero_grad()
        _loss(m1, t).backward()
        o1.step()
    sd = o1.state_dict()
    m2 = _mlp()
    m2.load_state_dict(m1.state_dict())
    o2 = GridOptim(m2.parameters(), seed=3)
    o2.load_state_dict(sd)
    for m, o in ((m1, o1), (m2, o2)):
        o.zero_grad()
        _loss(m, 9).backward()
        o.step()
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p, q)
    assert o2.param_groups[0]["rung_clip"] == 10


def test_grid_optim_zero_grad_in_place_and_fp8_dtype_name():
    p = torch.nn.Parameter(torch.ones(3))
    opt = GridOptim([p])
    p.grad = torch.ones(3)
    g = p.grad
    opt.zero_grad()
    assert p.grad is g and torch.equal(g, torch.zeros(3))

    class FakeDtype:  # a torch without float8 dtypes: names still work
        def __str__(self):
            return "torch.float8_e5m2"

    assert GridOptim([p], fp8_dtype=FakeDtype()).format.name == "float8_e5m2"


@pytest.mark.parametrize("kw,msg", [
    (dict(scale=-1.0), "Invalid scale"),
    (dict(momentum=float("nan")), "Invalid momentum"),
    (dict(weight_decay=-1e-4), "Invalid weight_decay"),
    (dict(rung_clip=-1), "Invalid rung_clip"),
    (dict(rung_clip=2.5), "Invalid rung_clip"),
    (dict(grid_scale=0.0), "Invalid grid_scale"),
    (dict(format="nope"), "nope"),
])
def test_grid_optim_argument_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        GridOptim([torch.nn.Parameter(torch.ones(2))], **kw)


def test_c_entry_point_errors():
    w, m, v, g = (np.ones(4, np.float32) for _ in range(4))
    with pytest.raises(ValueError, match="argument"):
        _C.adamw_step(w, m, v, g, 0, 1e-3, 0.9, 0.999, 1e-8, 0.0)  # step 0
    with pytest.raises(ValueError, match="precondition"):
        _C.adamw_step(w, m, v, g, 1, 1e-3, 0.9, 0.999, 1e-8, 0.0, 3)
    with pytest.raises(ValueError, match="elements"):
        _C.adamw_step(w, m, v, np.ones(3, np.float32), 1, 1e-3, 0.9, 0.999, 1e-8, 0.0)
    with pytest.raises(TypeError):
        _C.adamw_step(w, m, v, g, 1, "x", 0.9, 0.999, 1e-8, 0.0)
    with pytest.raises(ValueError, match="overlap|alias"):
        _C.adamw_step(w, w, v, g, 1, 1e-3, 0.9, 0.999, 1e-8, 0.0)
    f = altgrad.format("E4M3")
    with pytest.raises(ValueError, match="rung_clip"):
        _C.grid_step(w, v, g, f, 1.0, 6.0, 0.9, 0.0, -1)
    with pytest.raises(ValueError, match="argument"):
        _C.grid_step(w, v, g, f, 1.0, -6.0)
    with pytest.raises(ValueError, match="scale"):
        _C.grid_step(w, v, g, f, 0.0)


def test_readme_optimizers_example(capsys):
    """The Python block of README.md's "Optimizers and research diagnostics" runs."""
    import os
    import re
    readme = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
    if not os.path.exists(readme):
        pytest.skip("README.md not found next to the tests")
    text = open(readme, encoding="utf-8").read()
    m = re.search(r"^## Optimizers and research diagnostics\n.*?^```python\n(.*?)^```$",
                  text, re.S | re.M)
    assert m, "no python block in README's 'Optimizers and research diagnostics'"
    torch.manual_seed(0)
    exec(compile(m.group(1), "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    counts = eval(out[0])  # noqa: S307 - our own printed dict
    assert counts["updates"] > 0 and counts["flips"] > 0
    assert 0 < counts["stalls"] <= counts["updates"]
    assert out[-1] == "True"
