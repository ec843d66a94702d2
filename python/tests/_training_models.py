# SPDX-License-Identifier: MIT
"""Small models for the training-stack tests: a GPT-shaped language model
(nanoGPT's module names and (logits, loss) interface, a fraction of the
size) and a minimal quantized-linear wrapper (the shape of
altgrad.integration's QuantizedLinear: ``.linear``, ``.format``), so the
stack is tested without depending on the model and integration modules."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from altgrad.quantization import E5M2, AmaxHistory, compute_scale, quantize


class TinyBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.mlp = nn.ModuleDict({"c_fc": nn.Linear(d, 2 * d), "c_proj": nn.Linear(2 * d, d)})
        self.register_buffer("seen", torch.zeros(()))

    def forward(self, x):
        return x + self.mlp["c_proj"](F.gelu(self.mlp["c_fc"](self.ln(x))))


class TinyLM(nn.Module):
    def __init__(self, vocab=32, d=16, n_layer=2, block_size=8):
        super().__init__()
        self.block_size = block_size
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(block_size, d)
        self.h = nn.ModuleList(TinyBlock(d) for _ in range(n_layer))
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, idx, targets=None):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        for b in self.h:
            x = b(x)
        logits = self.lm_head(x)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        return logits, loss

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
        decay = [p for p in self.parameters() if p.dim() >= 2]
        other = [p for p in self.parameters() if p.dim() < 2]
        return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                  {"params": other, "weight_decay": 0.0}],
                                 lr=learning_rate, betas=betas)


class WrapLinear(nn.Module):
    """Quantizes its linear's weight on E5M2 (per-tensor scale, STE)."""

    def __init__(self, linear, format=E5M2, own_buffer=False):
        super().__init__()
        self.linear = linear
        self.format = format
        if own_buffer:  # quantizer state of the wrapper itself (no shadow counterpart)
            self.register_buffer("amax", torch.zeros(()))
        self.weight_history = AmaxHistory(4)

    def forward(self, x):
        w = self.linear.weight
        self.weight_history.update(w.detach())
        s = compute_scale(self.weight_history.get_amax(), self.format)
        return F.linear(x, quantize(w, self.format, torch.tensor(s)), self.linear.bias)


def wrap_all(model, format=E5M2, own_buffer=False):
    """Wrap every nn.Linear of `model` except lm_head in WrapLinear (in place)."""
    targets = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n != "lm_head"]
    for n in targets:
        parent, _, child = n.rpartition(".")
        p = model.get_submodule(parent) if parent else model
        setattr(p, child, WrapLinear(getattr(p, child), format, own_buffer))
    return model
