# SPDX-License-Identifier: MIT
"""altgrad.training.model: the GPT in AltGrad's nanoGPT layout."""
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from altgrad.training.model import GPT, Block, CausalSelfAttention, GPTConfig, GPTInputError, MLP

SMALL = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=50)


def test_config_defaults():
    c = GPTConfig()
    assert (c.n_layer, c.n_head, c.n_embd, c.block_size, c.vocab_size, c.dropout, c.bias) == \
        (6, 6, 384, 256, 50304, 0.0, True)


def test_layout_and_names():
    m = GPT(SMALL, seed=0)
    names = {n for n, _ in m.named_modules()}
    for n in ["transformer.wte", "transformer.wpe", "transformer.drop", "transformer.ln_f",
              "lm_head", "transformer.h.0.ln_1", "transformer.h.0.attn.c_attn",
              "transformer.h.0.attn.c_proj", "transformer.h.0.ln_2", "transformer.h.1.mlp.c_fc",
              "transformer.h.1.mlp.c_proj", "transformer.h.1.mlp.gelu"]:
        assert n in names, n
    assert isinstance(m.transformer.h[0], Block)
    assert isinstance(m.transformer.h[0].attn, CausalSelfAttention)
    assert isinstance(m.transformer.h[0].mlp, MLP)
    assert m.transformer.h[0].attn.c_attn.out_features == 96
    assert m.transformer.h[0].mlp.c_fc.out_features == 128
    assert m.lm_head.bias is None


def test_weight_tying():
    m = GPT(SMALL, seed=0)
    assert m.transformer.wte.weight is m.lm_head.weight
    pnames = [n for n, _ in m.named_parameters()]
    assert "transformer.wte.weight" in pnames and "lm_head.weight" not in pnames
    sd = m.state_dict()
    assert "transformer.wte.weight" in sd and "lm_head.weight" in sd


def test_init_statistics_and_seed():
    cfg = GPTConfig(n_layer=4, n_head=4, n_embd=128, block_size=64, vocab_size=500)
    m = GPT(cfg, seed=1)
    fc = m.transformer.h[0].mlp.c_fc.weight
    assert abs(fc.std().item() - 0.02) < 0.001 and abs(fc.mean().item()) < 0.001
    proj = m.transformer.h[1].attn.c_proj.weight
    assert abs(proj.std().item() - 0.02 / math.sqrt(8)) < 0.0005
    assert torch.all(m.transformer.h[0].attn.c_attn.bias == 0)
    assert torch.all(m.transformer.ln_f.weight == 1)
    # a seed gives the same model, whatever the global generator; other seeds differ
    torch.manual_seed(5)
    a = GPT(SMALL, seed=3)
    torch.manual_seed(99)
    b = GPT(SMALL, seed=3)
    c = GPT(SMALL, seed=4)
    for (n, p), (_, q), (_, r) in zip(a.named_parameters(), b.named_parameters(),
                                      c.named_parameters()):
        assert torch.equal(p, q), n
        if p.std() > 0:
            assert not torch.equal(p, r), n
    # seed= leaves the global generator alone
    torch.manual_seed(7)
    s0 = torch.get_rng_state()
    GPT(SMALL, seed=3)
    assert torch.equal(torch.get_rng_state(), s0)
    # AltGrad's way: torch.manual_seed makes the global draws reproducible
    torch.manual_seed(11)
    d = GPT(SMALL)
    torch.manual_seed(11)
    e = GPT(SMALL)
    assert all(torch.equal(p, q) for p, q in zip(d.parameters(), e.parameters()))


def reference_forward(m, idx):
    """The GPT written out with plain torch ops (an independent reference)."""
    c = m.config
    b, t = idx.shape
    x = m.transformer.wte.weight[idx] + m.transformer.wpe.weight[:t]
    hd = c.n_embd // c.n_head
    for blk in m.transformer.h:
        h = F.layer_norm(x, (c.n_embd,), blk.ln_1.weight, blk.ln_1.bias)
        qkv = h @ blk.attn.c_attn.weight.t() + blk.attn.c_attn.bias
        q, k, v = qkv.split(c.n_embd, dim=2)
        out = torch.zeros_like(q)
        for head in range(c.n_head):
            sl = slice(head * hd, (head + 1) * hd)
            s = q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(hd)
            mask = torch.ones(t, t).tril() == 0
            s = s.masked_fill(mask, float("-inf"))
            out[..., sl] = torch.softmax(s, -1) @ v[..., sl]
        x = x + out @ blk.attn.c_proj.weight.t() + blk.attn.c_proj.bias
        h = F.layer_norm(x, (c.n_embd,), blk.ln_2.weight, blk.ln_2.bias)
        h = h @ blk.mlp.c_fc.weight.t() + blk.mlp.c_fc.bias
        h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))
        x = x + h @ blk.mlp.c_proj.weight.t() + blk.mlp.c_proj.bias
    x = F.layer_norm(x, (c.n_embd,), m.transformer.ln_f.weight, m.transformer.ln_f.bias)
    return x @ m.lm_head.weight.t()


def test_forward_against_reference_and_loss():
    m = GPT(SMALL, seed=2)
    idx = torch.randint(0, 50, (3, 10), generator=torch.Generator().manual_seed(0))
    logits, loss = m(idx)
    assert logits.shape == (3, 10, 50) and loss is None
    ref = reference_forward(m, idx)
    torch.testing.assert_close(logits, ref, rtol=1e-5, atol=1e-5)
    tgt = idx.clone()
    tgt[0, 0] = -1
    _, loss = m(idx, tgt)
    ce = F.cross_entropy(ref.view(-1, 50), tgt.view(-1), ignore_index=-1)
    assert abs(loss.item() - ce.item()) < 1e-5
    loss.backward()
    assert m.lm_head.weight.grad is not None


def test_causal():
    m = GPT(SMALL, seed=2)
    idx = torch.randint(0, 50, (1, 12))
    a, _ = m(idx)
    idx2 = idx.clone()
    idx2[0, 8:] = (idx2[0, 8:] + 1) % 50
    b, _ = m(idx2)
    assert torch.equal(a[:, :8], b[:, :8])
    assert not torch.equal(a[:, 8:], b[:, 8:])


def test_bad_input_errors():
    with pytest.raises(GPTInputError, match="divisible"):
        GPT(GPTConfig(n_embd=30, n_head=4))
    m = GPT(SMALL, seed=0)
    with pytest.raises(ValueError, match="Sequence length 17 exceeds block_size 16"):
        m(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(AssertionError):  # AltGrad raised AssertionError: still caught
        m(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="2-D integer"):
        m(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="2-D integer"):
        m(torch.zeros(1, 4))


def test_configure_optimizers():
    m = GPT(SMALL, seed=0)
    opt = m.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu")
    assert isinstance(opt, torch.optim.AdamW)
    g0, g1 = opt.param_groups
    assert g0["weight_decay"] == 0.1 and g1["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in g0["params"]) and all(p.dim() < 2 for p in g1["params"])
    n = sum(1 for _ in m.parameters())
    assert len(g0["params"]) + len(g1["params"]) == n
    assert g0["lr"] == 1e-3 and g0["betas"] == (0.9, 0.95)


def test_imports_only_torch():
    code = ("import sys, altgrad.training.model as m; "
            "bad = [k for k in ('tiktoken', 'datasets', 'transformers', 'wandb') "
            "if k in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": ":".join(sys.path)})
    assert out.stdout.strip() == "[]"
