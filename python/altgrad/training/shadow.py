# SPDX-License-Identifier: MIT
"""An FP32 shadow of a (quantized) model, to measure how far the simulated
format's gradients are from full-precision ones (ALTGRAD_API.md section 8).

:class:`FP32ShadowModel` keeps a float32 copy of the model with every
quantized wrapper removed (AltGrad's copy kept the ``QuantizedLinear``
wrappers, so its "FP32" shadow was quantized too, D-SHADOW-2). Parameters
are paired by canonical name (the wrapped layer's own name: the
``.linear`` a wrapper adds is dropped), shapes are checked, and buffers
are synced too (AltGrad zipped parameters positionally, D-SHADOW-3). The
signal-to-noise ratio is the one of :func:`altgrad.training.metrics.grad_snr`
(``|mean g| / std g``; AltGrad's shadow used ``mean|g|``, D-SHADOW-1).

Metric keys are AltGrad's: ``grad_cos_sim/<name>``, ``grad_cos_sim/mean|min``,
``grad_snr/<name with '/'>_fp8|_fp32|_diff``, ``grad_snr/mean_fp8|mean_fp32|
mean_diff``, with ``<name>`` the canonical (unwrapped) parameter name.
"""
import copy
import math

import torch
import torch.nn as nn

from .metrics import grad_snr, gradient_cosine_similarity

__all__ = ["FP32ShadowModel", "canonical_names", "is_quantized_wrapper"]


def is_quantized_wrapper(module):
    """True for a module that wraps an ``nn.Linear`` as ``.linear`` to
    quantize it (altgrad.integration's QuantizedLinear and look-alikes)."""
    return (not isinstance(module, nn.Linear) and isinstance(getattr(module, "linear", None),
                                                             nn.Linear)
            and hasattr(module, "format"))


def _wrappers(model):
    return [name for name, m in model.named_modules() if is_quantized_wrapper(m)]


def _canon(name, wrappers):
    for w in wrappers:
        prefix = f"{w}.linear." if w else "linear."
        if name.startswith(prefix):
            return (f"{w}." if w else "") + name[len(prefix):]
    return name


def canonical_names(model, buffers=False):
    """``{parameter name: canonical name}`` (buffers with `buffers`):
    ``a.b.linear.weight`` -> ``a.b.weight`` where ``a.b`` is a quantized
    wrapper; other names unchanged."""
    wrappers = _wrappers(model)
    named = model.named_buffers() if buffers else model.named_parameters()
    return {name: _canon(name, wrappers) for name, _ in named}


def _unwrap(model):
    """Replace every quantized wrapper in `model` (in place) by its linear."""
    targets = [name for name, m in model.named_modules() if is_quantized_wrapper(m)]
    for name in targets:
        if not name:
            raise ValueError("the model itself is a quantized wrapper: shadow its .linear")
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, getattr(parent, child).linear)
    return model


class FP32ShadowModel:
    """A float32, unquantized copy of `model` (attribute ``model``), in
    training mode with gradients on.

    - ``sync_weights(source_model)``: copy the source's parameters and
      buffers (by canonical name, as float32). ValueError when a name is
      missing on either side or a shape differs.
    - ``forward_backward(x, y)``: zero the shadow's grads, ``(logits, loss) =
      model(x, y)``, backward; returns the loss tensor (None without loss).
    - ``compute_gradient_similarity(quantized_model)``: the metric dict of
      the module docstring.
    """

    def __init__(self, model):
        # copy with each wrapper replaced by a copy of its linear (one memo,
        # so tied parameters stay tied; quantizer state is never copied)
        memo = {}
        for _, w in [(n, m) for n, m in model.named_modules() if is_quantized_wrapper(m)]:
            memo[id(w)] = copy.deepcopy(w.linear, memo)
        self.model = _unwrap(copy.deepcopy(model, memo)).float().train()
        for p in self.model.parameters():
            p.requires_grad_(True)

    def _pairs(self, source_model, buffers):
        kind = "buffers" if buffers else "parameters"
        names = canonical_names(source_model, buffers)
        named = source_model.named_buffers() if buffers else source_model.named_parameters()
        src = {names[n]: t for n, t in named}
        dst = dict(self.model.named_buffers() if buffers else self.model.named_parameters())
        # a wrapper's own buffers (quantizer state) have no shadow: only the
        # shadow's names must all be found; parameters must match exactly
        missing = sorted(set(dst) - set(src))
        extra = [] if buffers else sorted(set(src) - set(dst))
        if missing or extra:
            raise ValueError(f"shadow and source {kind} differ: only in the source "
                             f"{extra[:5]}, only in the shadow {missing[:5]}")
        for n, d in dst.items():
            if d.shape != src[n].shape:
                raise ValueError(f"{kind[:-1]} {n}: shape {tuple(src[n].shape)} in the "
                                 f"source, {tuple(d.shape)} in the shadow")
            yield n, src[n], d

    @torch.no_grad()
    def sync_weights(self, source_model):
        for _, s, d in self._pairs(source_model, False):
            d.copy_(s.detach().float())
        for _, s, d in self._pairs(source_model, True):
            d.copy_(s.detach().to(d.dtype))

    def forward_backward(self, x, y):
        self.model.zero_grad(set_to_none=True)
        _, loss = self.model(x, y)
        if loss is not None:
            loss.backward()
        return loss

    def compute_gradient_similarity(self, quantized_model):
        names = canonical_names(quantized_model)
        out = gradient_cosine_similarity(quantized_model, self.model, names_a=names)
        shadow = dict(self.model.named_parameters())
        fp8, fp32, diff = [], [], []
        for n, p in quantized_model.named_parameters():
            c = names[n]
            q = shadow.get(c)
            if p.grad is None or q is None or q.grad is None:
                continue
            a, b = grad_snr(p.grad), grad_snr(q.grad)
            d = b - a if math.isfinite(a) and math.isfinite(b) else 0.0
            key = c.replace(".", "/")
            out[f"grad_snr/{key}_fp8"] = a
            out[f"grad_snr/{key}_fp32"] = b
            out[f"grad_snr/{key}_diff"] = d
            fp8.append(a)
            fp32.append(b)
            diff.append(d)

        def finite_mean(v):
            v = [x for x in v if math.isfinite(x)]
            return math.fsum(v) / len(v) if v else 0.0

        out["grad_snr/mean_fp8"] = finite_mean(fp8)
        out["grad_snr/mean_fp32"] = finite_mean(fp32)
        out["grad_snr/mean_diff"] = finite_mean(diff)
        return out

