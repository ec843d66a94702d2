# SPDX-License-Identifier: MIT
"""Module surgery: swap ``nn.Linear`` layers for :class:`QuantizedLinear`
in place, and back (AltGrad's ``quantize_model`` / ``dequantize_model``).

``quantize_model(model, format=None, skip_patterns=None,
quantize_input=False, history_len=16, config=None)`` -- exactly one of
``format`` and ``config``:

- ``format`` (an FP8Format, altgrad.Format or a name such as ``"E5M2"``):
  every Linear whose name contains none of ``skip_patterns`` (plain
  substrings, AltGrad) is wrapped with that format, ``quantize_input``
  and ``history_len``;
- ``config``: a :class:`~.config.QuantizationConfig` (rules, first match
  wins, then the default; ``skip_patterns``, ``quantize_input`` and
  ``history_len`` are ignored, as in AltGrad), a
  :class:`~.config.LinearConfig` (per-role casts for every Linear whose name
  contains none of ``skip_patterns``) or a recipe name (``"fp8"``).

Beyond AltGrad: ``module_filter_fn(module, fqn) -> bool`` (torchao's:
False leaves the layer alone); ``warn_unmatched`` (default True): a skip
pattern or rule that matches no Linear is reported with a
``UserWarning`` naming it. The walk visits each module once (shared
modules keep one wrapper under every name), never descends into a
QuantizedLinear (so converting twice does not wrap twice), and skips with a
warning the Linear layers that their owner never calls
(``nn.MultiheadAttention.out_proj``, whose weight is read directly).
Parameters must be float32 on the CPU: anything else is an error naming
the layer and saying what to do. Returns ``model`` (AltGrad returned None).

``dequantize_model(model)`` puts every wrapped ``nn.Linear`` back (the very
objects, Parameters unchanged; histories dropped); idempotent.
"""
import warnings

import torch.nn as nn

from .config import LinearConfig, QuantizationConfig, recipe, resolve_format
from .wrapper import QuantizedLinear, _check_params

__all__ = ["quantize_model", "dequantize_model", "iter_quantized"]


def _walk(module, prefix, seen, out):
    """(name, module, parent, attr) in pre-order, each module once, not
    below a QuantizedLinear; shared modules are listed at every place."""
    for attr, child in module._modules.items():  # named_children() hides repeats
        if child is None:
            continue
        name = f"{prefix}.{attr}" if prefix else attr
        out.append((name, child, module, attr))
        if id(child) in seen or isinstance(child, QuantizedLinear):
            continue
        seen.add(id(child))
        _walk(child, name, seen, out)
    return out


def _places(model):
    return _walk(model, "", set(), [])


def iter_quantized(model):
    """``(name, QuantizedLinear)`` of every wrapper in ``model`` (each once,
    under its first name)."""
    seen = set()
    if isinstance(model, QuantizedLinear):
        yield "", model
        return
    for name, m, _, _ in _places(model):
        if isinstance(m, QuantizedLinear) and id(m) not in seen:
            seen.add(id(m))
            yield name, m


def quantize_model(model, format=None, skip_patterns=None, quantize_input=False,
                   history_len=16, config=None, *, module_filter_fn=None,
                   warn_unmatched=True):
    """Wrap the model's Linear layers in place (see the module
    documentation); returns ``model``."""
    if (format is None) == (config is None):
        raise ValueError("Provide exactly one of 'format' or 'config'. Use format= to "
                         "quantize every Linear the same way, or config= (a "
                         "QuantizationConfig, LinearConfig or recipe name) for "
                         "per-layer or per-role precision.")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, not {type(model).__name__}")
    if isinstance(model, nn.Linear) and not isinstance(model, QuantizedLinear):
        raise ValueError("the model itself is an nn.Linear: there is no parent to put "
                         "the wrapper in; wrap it directly: QuantizedLinear(model, format)")
    if isinstance(config, str):
        config = recipe(config)
    if format is not None:
        fmt = resolve_format(format, "quantize_model: ")
        skips = list(skip_patterns or [])
        for p in skips:
            if not isinstance(p, str):
                raise TypeError(f"skip_patterns must hold str, not {type(p).__name__}")
        layer_cfg = LinearConfig.altgrad(fmt, quantize_input, history_len)
        rules = []
    elif isinstance(config, LinearConfig):  # skip_patterns apply here too
        fmt, skips, layer_cfg, rules = None, list(skip_patterns or []), config, []
    elif isinstance(config, QuantizationConfig):
        fmt, skips, layer_cfg, rules = None, [], None, config.layer_rules
    else:
        raise TypeError(f"config must be a QuantizationConfig, LinearConfig or recipe "
                        f"name, not {type(config).__name__}")
    used_skips, used_rules = set(), set()
    existing = sum(1 for _ in iter_quantized(model))
    plan = {}  # id(linear) -> (wrapper config, name)
    places = []
    for name, m, parent, attr in _places(model):
        if isinstance(m, QuantizedLinear) or not isinstance(m, nn.Linear):
            continue
        if isinstance(parent, nn.MultiheadAttention):
            warnings.warn(f"quantize_model: skipping '{name}': nn.MultiheadAttention reads "
                          f"its out_proj weight directly, a wrapper would never run",
                          stacklevel=2)
            continue
        places.append((name, m, parent, attr))
        if id(m) in plan:
            continue
        hit = [p for p in skips if p in name]
        used_skips.update(hit)
        if hit:
            plan[id(m)] = None
            continue
        if isinstance(config, QuantizationConfig):
            rule = config.find_rule(name)
            if rule is not None:
                used_rules.add(id(rule))
            cfg = config.get_config_for_layer(name)
        else:
            cfg = layer_cfg
        if cfg is not None and module_filter_fn is not None and not module_filter_fn(m, name):
            cfg = None
        if cfg is not None:
            _check_params(m, name)
        plan[id(m)] = (cfg, name) if cfg is not None else None
    if warn_unmatched:
        for p in skips:
            if p not in used_skips:
                warnings.warn(f"quantize_model: skip pattern {p!r} matches no Linear layer",
                              stacklevel=2)
        for r in rules:
            if id(r) not in used_rules:
                warnings.warn(f"quantize_model: rule {r.pattern!r} ({r.match}) matches no "
                              f"Linear layer", stacklevel=2)
    wrappers = {}
    for name, m, parent, attr in places:
        entry = plan.get(id(m))
        if entry is None:
            continue
        if id(m) not in wrappers:
            cfg, first = entry
            wrappers[id(m)] = QuantizedLinear(
                m, fmt, config=None if fmt is not None else cfg,
                quantize_input=quantize_input, history_len=history_len,
                layer_index=existing + len(wrappers), name=first)
        setattr(parent, attr, wrappers[id(m)])
    return model


def dequantize_model(model):
    """Replace every QuantizedLinear by its ``.linear`` (in place; the
    same nn.Linear objects). Returns ``model``."""
    for name, m, parent, attr in _places(model):
        if isinstance(m, QuantizedLinear):
            setattr(parent, attr, m.linear)
    return model
