# SPDX-License-Identifier: MIT
"""altgrad.integration: AltGrad's API (QuantizedLinear, quantize_model,
dequantize_model, rules and configs) and the per-role casts beyond it.
References are written here with altgrad.quantization's functions (the C
core) and plain torch ops."""
import copy
import io
import pickle
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from altgrad.integration import (
    CastConfig,
    LayerPrecisionRule,
    LinearConfig,
    QuantizationConfig,
    QuantizedLinear,
    UnknownFormatError,
    create_mixed_precision_config,
    dequantize_model,
    quantize_model,
    recipe,
    reset_stats,
    stats,
)
from altgrad.quantization import (
    E3M4,
    E5M2,
    AmaxHistory,
    amax,
    channel_scales,
    compute_scale,
    mx_quantize,
    quantize,
    quantize_rows,
)
from altgrad.training.model import GPT, GPTConfig

SMALL = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=64)
E4, E5 = "float8_e4m3fn", "float8_e5m2"


def gen(seed):
    return torch.Generator().manual_seed(seed)


def lin(i=8, o=6, bias=True, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(i, o, bias=bias)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(8, 16)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


# --- AltGrad's QuantizedLinear ----------------------------------------------


def test_wrapper_keeps_the_linear_and_its_parameters():
    l = lin()
    q = QuantizedLinear(l, E3M4)
    assert q.linear is l and q.weight is l.weight and q.bias is l.bias
    assert q.format is E3M4 and q.quantize_input is False
    assert len(q.weight_history) == 0 and q.weight_history.history_len == 16
    assert q.input_history is not None and len(q.input_history) == 0
    assert [n for n, _ in q.named_parameters()] == ["linear.weight", "linear.bias"]
    assert "format=E3M4" in repr(q) and "quantize_input=False" in repr(q)
    assert QuantizedLinear(lin(bias=False), E5M2).bias is None
    with pytest.raises(ValueError):
        QuantizedLinear(lin(), E3M4, history_len=0)
    with pytest.raises(TypeError):
        QuantizedLinear(nn.Conv1d(2, 2, 1), E3M4)


def test_altgrad_forward_bit_exact_over_steps():
    """AltGrad's order: push amax(W) into the window, scale from the window,
    quantize; inputs the same with quantize_input. Reference: the
    library's AmaxHistory."""
    l = lin(8, 6)
    q = QuantizedLinear(l, E3M4, quantize_input=True, history_len=3)
    hw, hx = AmaxHistory(3), AmaxHistory(3)
    opt = torch.optim.SGD(l.parameters(), lr=0.5)
    for step in range(8):
        x = torch.randn(5, 8, generator=gen(step)) * (1 + step % 3)
        y = q(x)
        hw.update(l.weight.detach())
        hx.update(x)
        wq = quantize(l.weight.detach(), E3M4, compute_scale(hw.get_amax(), E3M4))
        xq = quantize(x, E3M4, compute_scale(hx.get_amax(), E3M4))
        assert torch.equal(y, F.linear(xq, wq, l.bias)), step
        assert q.weight_history.get_amax() == hw.get_amax()
        assert len(q.weight_history) == min(step + 1, 3)
        opt.zero_grad()
        y.pow(2).sum().backward()
        opt.step()


def test_altgrad_straight_through_gradients():
    l = lin(8, 6)
    q = QuantizedLinear(l, E5M2, quantize_input=True)
    x = torch.randn(4, 8, generator=gen(1), requires_grad=True)
    g = torch.randn(4, 6, generator=gen(2))
    (q(x) * g).sum().backward()
    wq = quantize(l.weight.detach(), E5M2, compute_scale(amax(l.weight), E5M2))
    xq = quantize(x.detach(), E5M2, compute_scale(amax(x), E5M2))
    torch.testing.assert_close(l.weight.grad, g.t() @ xq, rtol=0, atol=1e-6)
    torch.testing.assert_close(x.grad, g @ wq, rtol=0, atol=1e-6)
    torch.testing.assert_close(l.bias.grad, g.sum(0))


def test_any_input_rank():
    q = QuantizedLinear(lin(8, 6), E3M4, quantize_input=True,)
    l = q.linear
    for shape in [(8,), (5, 8), (2, 3, 8), (2, 1, 3, 8)]:
        x = torch.randn(*shape, generator=gen(len(shape)))
        y = QuantizedLinear(l, E3M4, quantize_input=True)(x)
        assert y.shape == shape[:-1] + (6,)
        wq = quantize(l.weight.detach(), E3M4, compute_scale(amax(l.weight), E3M4))
        xq = quantize(x, E3M4, compute_scale(amax(x), E3M4))
        assert torch.equal(y, F.linear(xq, wq, l.bias))
    with pytest.raises(ValueError, match=r"layer 'QuantizedLinear'.*\[\.\.\., 8\].*\(5, 7\)"):
        q(torch.randn(5, 7))
    with pytest.raises(ValueError, match="expects inputs"):
        q(torch.tensor(1.0))


# --- AltGrad's quantize_model / configs ------------------------------------


def test_quantize_model_format_mode_and_tying():
    m = GPT(SMALL, seed=0)
    out = quantize_model(m, E5M2, skip_patterns=["lm_head"])
    assert out is m
    assert isinstance(m.transformer.h[0].attn.c_attn, QuantizedLinear)
    assert isinstance(m.transformer.h[1].mlp.c_proj, QuantizedLinear)
    assert type(m.lm_head) is nn.Linear
    assert m.transformer.wte.weight is m.lm_head.weight
    names = [n for n, _ in m.named_parameters()]
    assert "transformer.h.0.mlp.c_fc.linear.weight" in names
    assert m.transformer.h[0].mlp.c_fc.format is E5M2
    # lm_head wrapped too: the tie survives (same Parameter)
    m2 = GPT(SMALL, seed=0)
    quantize_model(m2, "E5M2")  # a name works (AltGrad failed late)
    assert isinstance(m2.lm_head, QuantizedLinear)
    assert m2.transformer.wte.weight is m2.lm_head.weight
    idx = torch.randint(0, 64, (2, 8), generator=gen(0))
    _, loss = m2(idx, idx)
    loss.backward()
    assert m2.lm_head.weight.grad is not None


def test_exactly_one_of_format_or_config():
    m = MLP()
    with pytest.raises(ValueError, match="Provide exactly one"):
        quantize_model(m)
    with pytest.raises(ValueError, match="Provide exactly one"):
        quantize_model(m, E5M2, config=QuantizationConfig())
    with pytest.raises(TypeError, match="config must be"):
        quantize_model(m, config=42)


def test_rules_first_match_wins_and_none_keeps():
    rules = [LayerPrecisionRule(r"fc1", "E3M4"), LayerPrecisionRule(r"fc", None)]
    cfg = QuantizationConfig(default_format="E5M2", layer_rules=rules, history_len=4,
                             quantize_input=True)
    assert cfg.get_format_for_layer("fc1") is E3M4
    assert cfg.get_format_for_layer("fc2") is None
    assert cfg.get_format_for_layer("other") is E5M2
    assert rules[0].matches("a.fc1.b") is True and rules[0].matches("x") is False
    m = MLP()
    quantize_model(m, config=cfg)
    assert isinstance(m.fc1, QuantizedLinear) and type(m.fc2) is nn.Linear
    assert m.fc1.format is E3M4 and m.fc1.quantize_input
    assert m.fc1.weight_history.history_len == 4
    assert QuantizationConfig(default_format=None).get_format_for_layer("x") is None


def test_mixed_precision_config_on_gpt():
    m = GPT(SMALL, seed=0)
    cfg = create_mixed_precision_config(attention_format=None, mlp_format="E3M4",
                                        lm_head_format=None)
    assert [r.pattern for r in cfg.layer_rules] == [r"\.attn\.", r"\.mlp\.", "lm_head"]
    quantize_model(m, config=cfg)
    blk = m.transformer.h[0]
    assert type(blk.attn.c_attn) is nn.Linear and type(blk.attn.c_proj) is nn.Linear
    assert isinstance(blk.mlp.c_fc, QuantizedLinear) and blk.mlp.c_fc.format is E3M4
    assert type(m.lm_head) is nn.Linear


def test_unknown_formats_fail_early_and_clearly():
    with pytest.raises(UnknownFormatError, match="rule 'mlp'.*'E5M2x'") as e:
        LayerPrecisionRule("mlp", "E5M2x")
    assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)
    assert "E5M2" in str(e.value)  # the valid names are listed
    with pytest.raises(KeyError):
        QuantizationConfig(default_format="nope")
    with pytest.raises(ValueError, match="unknown format"):
        quantize_model(MLP(), "E9M9")
    with pytest.raises(ValueError, match="unknown format"):
        CastConfig("bogus")
    with pytest.raises(ValueError, match="bad regular expression"):
        LayerPrecisionRule("(", "E5M2")
    with pytest.raises(ValueError, match="unknown recipe"):
        recipe("fp9")
    # any library format works by name in a rule
    assert LayerPrecisionRule("x", E4).get_format().name == E4


def test_no_double_wrap_and_exact_dequantize():
    m = GPT(SMALL, seed=0)
    linears = {n: mod for n, mod in m.named_modules() if isinstance(mod, nn.Linear)}
    params = {n: p for n, p in m.named_parameters()}
    quantize_model(m, E5M2)
    keys = set(m.state_dict())
    quantize_model(m, E3M4)  # a second conversion wraps nothing again
    assert set(m.state_dict()) == keys
    assert not any(".linear.linear" in k for k in keys)
    assert m.transformer.h[0].mlp.c_fc.format is E5M2
    dequantize_model(m)
    dequantize_model(m)
    for n, mod in m.named_modules():
        if n in linears:
            assert mod is linears[n] and type(mod) is nn.Linear
    assert {n: p for n, p in m.named_parameters()}.keys() == params.keys()
    assert all(p is params[n] for n, p in m.named_parameters())
    assert not any(isinstance(x, QuantizedLinear) for x in m.modules())


def test_root_linear_shared_and_containers():
    with pytest.raises(ValueError, match="QuantizedLinear\\(model"):
        quantize_model(nn.Linear(2, 2), E5M2)
    shared = nn.Linear(4, 4)
    m = nn.Sequential(shared, nn.ReLU(), shared,
                      nn.ModuleDict({"a": nn.Linear(4, 4)}),
                      nn.ModuleList([nn.Linear(4, 4)]))
    quantize_model(m, E5M2)
    assert isinstance(m[0], QuantizedLinear) and m[0] is m[2]
    assert isinstance(m[3]["a"], QuantizedLinear) and isinstance(m[4][0], QuantizedLinear)
    dequantize_model(m)
    assert m[0] is shared and m[2] is shared


def test_multihead_attention_out_proj_is_skipped_with_a_warning():
    m = nn.Sequential(nn.MultiheadAttention(8, 2), nn.Linear(8, 8))
    with pytest.warns(UserWarning, match="out_proj"):
        quantize_model(m, E5M2)
    assert not isinstance(m[0].out_proj, QuantizedLinear)
    assert isinstance(m[1], QuantizedLinear)


# --- selection beyond AltGrad -------------------------------------------------


def test_selection_regex_fullmatch_substring_filter_and_warnings():
    m = GPT(SMALL, seed=0)
    cfg = QuantizationConfig(default_format=None, layer_rules=[
        LayerPrecisionRule(r"transformer\.h\.0\.mlp\.c_fc", "E3M4", match="fullmatch"),
        LayerPrecisionRule("c_proj", "E5M2", match="substring"),
        LayerPrecisionRule(r"h\.0", "E5M2", match="fullmatch"),  # matches nothing whole
    ])
    with pytest.warns(UserWarning, match=r"rule 'h\\\\.0' \(fullmatch\) matches no"):
        quantize_model(m, config=cfg, module_filter_fn=lambda mod, fqn: "h.1.attn" not in fqn)
    h0, h1 = m.transformer.h
    assert h0.mlp.c_fc.format is E3M4 and h0.attn.c_proj.format is E5M2
    assert type(h1.mlp.c_fc) is nn.Linear  # no rule, default None
    assert isinstance(h1.mlp.c_proj, QuantizedLinear)
    assert type(h1.attn.c_proj) is nn.Linear  # filtered out
    with pytest.warns(UserWarning, match="skip pattern 'nothing' matches no"):
        quantize_model(MLP(), E5M2, skip_patterns=["nothing", "fc2"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quantize_model(MLP(), E5M2, skip_patterns=["fc2"])


# --- per-role casts -------------------------------------------------------------


def test_fp8_recipe_per_role_exact():
    """weight/input float8_e4m3fn, output gradient float8_e5m2, delayed."""
    r = recipe("fp8")
    assert (r.weight.fmt.name, r.input.fmt.name, r.grad_output.fmt.name) == (E4, E4, E5)
    l = lin(8, 6)
    m = nn.Sequential(l)
    quantize_model(m, config="fp8")
    q = m[0]
    x = torch.randn(5, 8, generator=gen(3), requires_grad=True)
    g = torch.randn(5, 6, generator=gen(4)) * 1e-3
    y = q(x)
    wq = quantize(l.weight.detach(), E4, compute_scale(amax(l.weight), E4))
    xq = quantize(x.detach(), E4, compute_scale(amax(x), E4))
    assert torch.equal(y, F.linear(xq, wq, l.bias))
    (y * g).sum().backward()
    gq = quantize(g, E5, compute_scale(amax(g), E5))
    assert not torch.equal(gq, g)
    torch.testing.assert_close(l.weight.grad, gq.t() @ xq, rtol=0, atol=1e-9)
    torch.testing.assert_close(x.grad, gq @ wq, rtol=0, atol=1e-9)
    torch.testing.assert_close(l.bias.grad, gq.sum(0), rtol=0, atol=1e-9)
    s = stats(m)["0"]
    assert set(s) == {"weight", "input", "grad_output"}
    assert s["grad_output"]["format"] == E5 and s["grad_output"]["total"] == 30
    assert s["grad_output"]["scale"] == pytest.approx(compute_scale(amax(g), E5), rel=1e-7)


@pytest.mark.parametrize("scaling", ["current", "rows", "mx", "none", "delayed_prev"])
def test_scaling_recipes_against_the_library(scaling):
    l = lin(64, 4)
    kw = {"scaling": scaling}
    if scaling == "delayed_prev":
        kw = {"scaling": "delayed", "include_current": False, "history_len": 2}
    if scaling == "mx":
        kw["mx_block"] = 16
        kw["mx_scale"] = "rceil"
    q = QuantizedLinear(l, config=LinearConfig(weight=CastConfig(E4, **kw)))
    W = l.weight.detach()
    prev = []
    for step in range(4):
        with torch.no_grad():
            l.weight.mul_(1.5)
        W = l.weight.detach()
        x = torch.randn(3, 64, generator=gen(step))
        if scaling == "current":
            ref = quantize(W, E4, compute_scale(amax(W), E4))
        elif scaling == "rows":
            ref = quantize_rows(W, E4, channel_scales(W, E4))
        elif scaling == "mx":
            ref = mx_quantize(W, E4, 16, mx_scale="rceil")
        elif scaling == "none":
            ref = quantize(W, E4, 1.0)
        else:
            a = max(prev[-2:]) if prev else amax(W)
            ref = quantize(W, E4, compute_scale(a, E4))
            prev.append(amax(W))
        assert torch.equal(q(x), F.linear(x, ref, l.bias)), (scaling, step)


def test_stochastic_gradients_distinct_streams_and_reproducible():
    cfg = LinearConfig(grad_output=CastConfig(E5, rounding="stochastic"), seed=5)

    def run():
        torch.manual_seed(0)
        a, b = nn.Linear(8, 8), nn.Linear(8, 8)
        b.load_state_dict(a.state_dict())
        m = nn.Sequential(a, b)
        quantize_model(m, config=cfg)
        x = torch.randn(16, 8, generator=gen(1))
        out = []
        for _ in range(2):
            for p in m.parameters():
                p.grad = None
            g = torch.randn(16, 8, generator=gen(2))
            # the same gradient reaches both layers (same weights, same input)
            (m[0](x) * g).sum().backward()
            (m[1](x) * g).sum().backward()
            out.append((m[0].linear.weight.grad.clone(), m[1].linear.weight.grad.clone()))
        return m, out

    m, o1 = run()
    _, o2 = run()
    for (a1, b1), (a2, b2) in zip(o1, o2):
        assert torch.equal(a1, a2) and torch.equal(b1, b2)  # reproducible from the seed
        assert not torch.equal(a1, b1)  # two layers: two streams
    assert not torch.equal(o1[0][0], o1[1][0])  # the offset moves: new bits each step
    streams = [c.stream for _, q in [("0", m[0]), ("1", m[1])] for c in q.casters().values()]
    assert len(set(streams)) == len(streams)
    g = GPT(SMALL, seed=0)
    quantize_model(g, config="fp8_sr")
    all_streams = [c.stream for q in g.modules() if isinstance(q, QuantizedLinear)
                   for c in q.casters().values()]
    assert len(set(all_streams)) == len(all_streams) == 3 * (4 * 2 + 1)


def train_steps(m, steps, seed=0):
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    for s in range(steps):
        idx = torch.randint(0, 64, (2, 16), generator=gen(seed + s))
        _, loss = m(idx, idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return opt


def test_state_dict_round_trip_bit_for_bit():
    cfg = LinearConfig(weight=CastConfig(E4, history_len=4), input=CastConfig(E4),
                       grad_output=CastConfig(E5, rounding="stochastic"), seed=3)
    a = GPT(SMALL, seed=1)
    quantize_model(a, config=cfg)
    opt = train_steps(a, 3)
    sd = copy.deepcopy(a.state_dict())
    osd = copy.deepcopy(opt.state_dict())
    assert any(k.endswith("weight_cast.scaler_state") for k in sd)
    b = GPT(SMALL, seed=9)
    quantize_model(b, config=cfg)
    b.load_state_dict(sd)
    opt_b = torch.optim.AdamW(b.parameters(), lr=1e-2)
    opt_b.load_state_dict(osd)
    idx = torch.randint(0, 64, (2, 16), generator=gen(50))
    la, lossa = a(idx, idx)
    lb, lossb = b(idx, idx)
    assert torch.equal(la, lb)
    opt.zero_grad(set_to_none=True)
    lossa.backward()
    lossb.backward()
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p.grad, q.grad), n
    # and a fresh conversion that did not load differs (the histories matter)
    c = GPT(SMALL, seed=1)
    c.load_state_dict({k: v for k, v in sd.items() if "_cast." not in k}, strict=False)
    quantize_model(c, config=cfg)
    lc, _ = c(idx, idx)
    assert not torch.equal(la, lc)


def test_histories_frozen_in_eval_and_no_grad():
    m = MLP()
    quantize_model(m, E5M2, quantize_input=True)
    x = torch.randn(4, 8, generator=gen(0))
    m(x)
    steps = m.fc1.weight_cast.window_count()
    hist = m.fc1.weight_cast.scaler_state.clone()
    m.eval()
    m(x * 100)
    m.train()
    with torch.no_grad():
        m(x * 100)
    assert m.fc1.weight_cast.window_count() == steps == 1
    assert torch.equal(m.fc1.weight_cast.scaler_state, hist)
    assert len(m.fc1.input_history) == 1
    # in eval the scale still covers the tensor (window + current amax)
    m.eval()
    xq = m.fc1.input_cast.cast(x * 100, False)
    assert torch.equal(xq, quantize(x * 100, E5M2, compute_scale(amax(x * 100), E5M2)))
    # asked for: AltGrad's every-call update
    m2 = MLP()
    quantize_model(m2, config=LinearConfig(weight=CastConfig("E5M2"), update_history="always"))
    m2.eval()
    with torch.no_grad():
        m2(x)
        m2(x)
    assert m2.fc1.weight_cast.window_count() == 2


def test_counters():
    big = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        big.weight.copy_(torch.tensor([[1000.0, 1.0, 1e-9, 0.0], [-1e6, 2.0, 3.0, 4.0]]))
    cfg = LinearConfig(weight=CastConfig(E4, scaling="none"),
                       input=CastConfig(E4, scaling="current"), track_error=True)
    m = nn.Sequential(big)
    quantize_model(m, config=cfg)
    x = torch.tensor([[1.0, float("nan"), 2.0, 3.0]])
    m(x)
    m(x)
    s = stats(m)["0"]
    w = s["weight"]
    assert (w["calls"], w["total"], w["saturated"], w["underflowed"], w["nan"]) == (2, 16, 4, 2, 0)
    assert w["scale"] == 1.0 and w["format"] == E4 and w["scaling"] == "none"
    wq = quantize(big.weight.detach(), E4, 1.0)
    ref = ((wq - big.weight.detach()).norm() / big.weight.detach().norm()).item()
    assert w["rel_error"] == pytest.approx(ref, rel=1e-6)
    i = s["input"]
    assert i["nan"] == 2 and i["scale"] == pytest.approx(3.0 / 448.0)
    assert stats(m, reset=True)["0"]["weight"]["calls"] == 2
    assert stats(m)["0"]["weight"]["calls"] == 0
    m(x)
    reset_stats(m)
    assert stats(m)["0"]["input"]["total"] == 0
    assert "rel_error" not in stats(quantize_model(MLP(), E5M2))["fc1"]["weight"]


def test_deepcopy_pickle_torch_save():
    m = GPT(SMALL, seed=0)
    quantize_model(m, config="fp8")
    train_steps(m, 2)
    idx = torch.randint(0, 64, (2, 16), generator=gen(7))
    copies = [copy.deepcopy(m), pickle.loads(pickle.dumps(m))]
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    copies.append(torch.load(buf))
    ref, _ = m(idx)
    for c in copies:
        assert c.transformer.wte.weight is c.lm_head.weight
        out, _ = c(idx)
        assert torch.equal(out, ref)


def test_bad_parameters_name_the_layer():
    m = MLP().double()
    with pytest.raises(TypeError, match=r"layer 'fc1': weight is torch.float64.*model.float\(\)"):
        quantize_model(m, E5M2)
    m = MLP()
    q = quantize_model(m, E5M2).fc1
    with pytest.raises(TypeError, match="layer 'fc1': input is torch.float64"):
        q(torch.randn(2, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"layer 'fc2'.*\[\.\.\., 16\]"):
        m.fc2(torch.randn(2, 8))
    # a model on another device: refused with the layer's name (CUDA likewise)
    meta = nn.Sequential(nn.Linear(4, 4, device="meta"))
    with pytest.raises(ValueError, match=r"layer '0': weight is on meta.*\.cpu\(\)"):
        quantize_model(meta, E5M2)


def test_cast_config_validation():
    with pytest.raises(ValueError, match="scaling recipe"):
        CastConfig(E4, scaling="lazy")
    with pytest.raises(ValueError, match="rounding mode"):
        CastConfig(E4, rounding="nearest")
    with pytest.raises(ValueError, match="mx_scale rule"):
        CastConfig(E4, scaling="mx", mx_scale="ceil")
    with pytest.raises(ValueError, match="at most 8 bits"):
        CastConfig("bfloat16", scaling="mx")
    with pytest.raises(ValueError, match="history_len"):
        CastConfig(E4, history_len=0)
    with pytest.raises(ValueError, match="quantizes nothing"):
        LinearConfig()
    with pytest.raises(TypeError, match="LinearConfig.weight"):
        LinearConfig(weight=E4)
    with pytest.raises(ValueError, match="update_history"):
        LinearConfig(weight=CastConfig(E4), update_history="never")


def test_readme_convert_examples(capsys):
    """Both Python blocks of README.md's "Convert a model" run (in order, one
    namespace, as a reader would paste them)."""
    import os
    import re
    readme = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
    if not os.path.exists(readme):
        pytest.skip("README.md not found next to the tests")
    text = open(readme, encoding="utf-8").read()
    sec = re.search(r"^## Convert a model\n(.*?)^## ", text, re.S | re.M)
    assert sec, "no 'Convert a model' section in README.md"
    blocks = re.findall(r"^```python\n(.*?)^```$", sec.group(1), re.S | re.M)
    assert len(blocks) == 2
    ns = {}
    torch.manual_seed(0)
    for b in blocks:
        exec(compile(b, "README.md", "exec"), ns)
    out = capsys.readouterr().out.split()
    assert out[0] == "float8_e5m2" and int(out[1]) == 2 * 4 * 32 * 256
    m = ns["model"]
    assert m.transformer.h[0].mlp.c_fc.weight_cast.cfg.scaling == "rows"
    assert m.transformer.h[1].attn.c_attn.grad_output_cast.cfg.fmt.name == "float8_e5m2"
    assert type(m.lm_head) is nn.Linear  # no rule matches lm_head, the default is None


def test_inplace_after_a_layer_with_gradient_casts():
    """The output is a fresh tensor: ReLU(inplace=True) after the layer works,
    and the gradients are those of the cast output gradient."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 6), nn.ReLU(inplace=True), nn.Linear(6, 2))
    quantize_model(m, config=LinearConfig(grad_output=CastConfig(E5, scaling="current")))
    x = torch.randn(3, 4, generator=gen(0))
    h = F.relu(F.linear(x, m[0].linear.weight, m[0].linear.bias))
    g2 = torch.ones(3, 2)
    g2q = quantize(g2, E5, compute_scale(1.0, E5))
    m(x).sum().backward()
    torch.testing.assert_close(m[2].linear.weight.grad, g2q.t() @ h, rtol=0, atol=1e-7)
    g1 = (g2q @ m[2].linear.weight.detach()) * (h > 0)
    g1q = quantize(g1, E5, compute_scale(amax(g1), E5))
    torch.testing.assert_close(m[0].linear.weight.grad, g1q.t() @ x, rtol=0, atol=1e-7)
    torch.testing.assert_close(m[0].linear.bias.grad, g1q.sum(0), rtol=0, atol=1e-7)


def test_recipe_name_with_skip_patterns():
    m = GPT(SMALL, seed=0)
    quantize_model(m, config="fp8", skip_patterns=["lm_head", "attn"])
    assert type(m.lm_head) is nn.Linear and type(m.transformer.h[0].attn.c_attn) is nn.Linear
    q = m.transformer.h[0].mlp.c_fc
    assert q.config is recipe("fp8") and q.format.name == E4 and q.quantize_input
