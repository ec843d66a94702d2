# SPDX-License-Identifier: MIT
"""The GPT that altgrad's conversion is tested on, in the nanoGPT layout
AltGrad uses (the module names matter: precision rules match on them)::

    from altgrad.training.model import GPT, GPTConfig
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=64, block_size=32,
                          vocab_size=128), seed=0)
    logits, loss = model(idx, targets)          # idx: (b, t) int64

Layout (``named_modules``): ``transformer.wte`` (token embedding),
``transformer.wpe`` (positions), ``transformer.drop``, ``transformer.h.<i>``
(:class:`Block`: ``ln_1``, ``attn.c_attn``, ``attn.c_proj``, ``ln_2``,
``mlp.c_fc``, ``mlp.c_proj``), ``transformer.ln_f`` and ``lm_head``, whose
weight IS ``transformer.wte.weight`` (one Parameter: weight tying survives
any wrapper that keeps the Linear).

Initialisation (AltGrad's, nanoGPT's): every Linear weight and Embedding
N(0, 0.02), biases 0, LayerNorms 1 / 0, then every ``*c_proj.weight``
redrawn N(0, 0.02 / sqrt(2 n_layer)); modules in ``named_modules`` order,
so the tied weight keeps ``lm_head``'s draw. With ``seed=None`` the draws
come from torch's global generator (``torch.manual_seed`` makes them
reproducible, as in AltGrad); with ``seed=<int>`` from a private
generator seeded with it, in the same order, without touching the global
one: the same seed gives the same model in any process.

Bad input raises :class:`GPTInputError`, a ValueError that is also an
AssertionError (AltGrad used ``assert``, which ``python -O`` removes):
``n_embd`` not divisible by ``n_head``, a sequence longer than
``block_size``, an ``idx`` that is not a 2-D integer tensor.

Only torch is needed (no tiktoken, datasets or transformers). Attention
uses ``torch.nn.functional.scaled_dot_product_attention`` where torch has
it (``flash``), else the explicit masked softmax with the causal mask in
the buffer ``bias``, as nanoGPT does.
"""
import dataclasses
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["GPTConfig", "GPT", "CausalSelfAttention", "MLP", "Block", "LayerNorm",
           "GPTInputError"]


class GPTInputError(ValueError, AssertionError):
    """A bad configuration or input of :class:`GPT` (a ValueError; also an
    AssertionError, which AltGrad raised)."""


@dataclasses.dataclass
class GPTConfig:
    """The GPT's sizes (AltGrad's defaults)."""

    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    block_size: int = 256
    vocab_size: int = 50304
    dropout: float = 0.0
    bias: bool = True


class LayerNorm(nn.Module):
    """LayerNorm over the last axis with an optional bias (``nn.LayerNorm``
    gained ``bias=`` only in torch 2.1); parameters ``weight`` (ones) and
    ``bias`` (zeros, or None)."""

    def __init__(self, ndim, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: ``c_attn`` (n_embd -> 3 n_embd:
    q, k, v), heads of n_embd / n_head, ``c_proj`` (n_embd -> n_embd)."""

    def __init__(self, config):
        super().__init__()
        if config.n_embd % config.n_head != 0:
            raise GPTInputError(
                f"n_embd ({config.n_embd}) must be divisible by n_head ({config.n_head})")
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.flash = hasattr(F, "scaled_dot_product_attention")
        if not self.flash:
            mask = torch.tril(torch.ones(config.block_size, config.block_size))
            self.register_buffer("bias", mask.view(1, 1, config.block_size,
                                                   config.block_size))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        hd = C // self.n_head
        q = q.view(B, T, self.n_head, hd).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, self.n_head, hd).transpose(1, 2)
        v = v.view(B, T, self.n_head, hd).transpose(1, 2)
        if self.flash:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=None, dropout_p=self.dropout if self.training else 0.0,
                is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            att = F.softmax(att, dim=-1)
            att = self.attn_dropout(att)
            y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """``c_fc`` (n_embd -> 4 n_embd), exact (erf) GELU, ``c_proj`` back."""

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln_1(x))``, then
    ``x + mlp(ln_2(x))``."""

    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """The GPT language model (see the module documentation).

    ``GPT(config, seed=None)``; ``forward(idx, targets=None)`` returns
    ``(logits, loss)``: logits (b, t, vocab) at every position, loss the mean
    cross-entropy over all positions (``ignore_index=-1``) or None.
    """

    def __init__(self, config, seed=None):
        super().__init__()
        if seed is None:
            self._build(config, None)
        else:  # the layers' own default init draws from the global generator
            with torch.random.fork_rng(devices=[]):
                self._build(config, seed)

    def _build(self, config, seed):
        if config.n_embd % config.n_head != 0:
            raise GPTInputError(
                f"n_embd ({config.n_embd}) must be divisible by n_head ({config.n_head})")
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # tying: one Parameter
        self._init_weights(seed)

    @torch.no_grad()
    def _init_weights(self, seed):
        g = None
        if seed is not None:
            g = torch.Generator()
            g.manual_seed(int(seed))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, 0.02, generator=g)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.Embedding):
                m.weight.normal_(0.0, 0.02, generator=g)
        std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                p.normal_(0.0, std, generator=g)

    def forward(self, idx, targets=None):
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.is_floating_point():
            raise GPTInputError(
                "idx must be a 2-D integer tensor (batch, time), got "
                + (f"{idx.dtype} of shape {tuple(idx.shape)}"
                   if isinstance(idx, torch.Tensor) else type(idx).__name__))
        b, t = idx.shape
        if t > self.config.block_size:
            raise GPTInputError(
                f"Sequence length {t} exceeds block_size {self.config.block_size}")
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1),
                                   ignore_index=-1)
        return logits, loss

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
        """AdamW with two groups: parameters of 2 or more dimensions (decayed
        by ``weight_decay``) and the rest (no decay), each sorted by name;
        ``fused=True`` only for ``device_type == "cuda"`` where AdamW has it."""
        params = {n: p for n, p in self.named_parameters() if p.requires_grad}
        decay = sorted(n for n, p in params.items() if p.dim() >= 2)
        no_decay = sorted(n for n, p in params.items() if p.dim() < 2)
        both = set(decay) & set(no_decay)
        missing = set(params) - set(decay) - set(no_decay)
        if both:
            raise GPTInputError(f"Params in both sets: {sorted(both)}")
        if missing:
            raise GPTInputError(f"Missing params: {sorted(missing)}")
        groups = [
            {"params": [params[n] for n in decay], "weight_decay": weight_decay},
            {"params": [params[n] for n in no_decay], "weight_decay": 0.0},
        ]
        extra = {}
        import inspect

        if device_type == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters:
            extra["fused"] = True
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, **extra)
