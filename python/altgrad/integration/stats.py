# SPDX-License-Identifier: MIT
"""Counters of a converted model, per layer and role::

    from altgrad.integration import stats, reset_stats
    s = stats(model)   # {"transformer.h.0.mlp.c_fc": {"weight": {...}, ...}}

Each role's entry is a plain dict: ``format``, ``scaling``, ``calls`` (casts
since the last reset), ``total`` (elements cast), ``saturated`` (elements
that overflowed max_finite and were clamped), ``underflowed`` (nonzero
elements that became zero), ``nan`` (NaN elements), ``scale`` (the last
per-tensor scale; the largest row scale for ``rows``; 0.0 for ``mx`` and
before the first cast), ``history`` (amaxes held by the delayed-scaling
window) and, with ``LinearConfig(track_error=True)``, ``rel_error`` (the
last call's ``||q - x|| / ||x||``). The counters are added from the C
library's stats of every cast; reading them is this walk over the model.
"""
from .surgery import iter_quantized

__all__ = ["stats", "reset_stats"]


def stats(model, reset=False):
    """``{module name: {role: counters}}`` for every QuantizedLinear of
    ``model`` (see the module documentation); ``reset=True`` zeroes the
    counters after reading them."""
    out = {}
    for name, q in iter_quantized(model):
        roles = {}
        for role, c in q.casters().items():
            d = dict(c.counters)
            d["format"] = c.cfg.fmt.name
            d["scaling"] = c.cfg.scaling
            d["scale"] = float(c.scale)
            d["history"] = c.window_count()
            roles[role] = d
            if reset:
                c.reset_counters()
        out[name] = roles
    return out


def reset_stats(model):
    """Zero the counters of every QuantizedLinear of ``model``."""
    for _, q in iter_quantized(model):
        for c in q.casters().values():
            c.reset_counters()
