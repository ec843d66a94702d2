# SPDX-License-Identifier: MIT
"""The numerics of one tensor role of a quantized Linear (internal).

:class:`Caster` casts the weight, the input activation or the output
gradient of one layer under a :class:`~.config.CastConfig`, on the C core
(``altgrad.quantization``: ``amax``, ``compute_scale``, ``quantize``,
``quantize_rows``, ``mx_quantize``, and for delayed scaling the library's
``ag_scaler`` as :class:`~altgrad.quantization.DelayedScaler`), and keeps
what must survive a checkpoint as buffers: the scaler's state bytes
(``scaler_state``, uint8), the stochastic-rounding ``offset`` and the last
per-tensor ``scale``. Counters (elements, saturated, underflowed, NaN,
relative error) are plain Python numbers added from the C library's stats
of each call; nothing is computed for them unless ``track_error``.

Delayed scaling is behind four methods (:meth:`Caster.window_count`,
:meth:`Caster._window_amax`, :meth:`Caster._push`,
:meth:`Caster._delayed_scale`): the only code that talks to the scaler.
"""
import torch
import torch.nn as nn

from ..quantization import DelayedScaler, amax, channel_scales, compute_scale, mx_quantize, \
    quantize, quantize_rows

__all__ = ["Caster"]


def _new_counters(track_error):
    c = {"calls": 0, "total": 0, "saturated": 0, "underflowed": 0, "nan": 0}
    if track_error:
        c["rel_error"] = None
    return c


def _all_reduce_max(a):
    """``a`` reduced with MAX over the default torch.distributed group, when
    one is initialized with more than one process; else ``a``."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return a
    t = torch.tensor([a], dtype=torch.float32)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


class Caster(nn.Module):
    """One role of one layer: ``Caster(cfg, stream, seed, track_error,
    sync_amax)``; :meth:`cast` returns the quantized tensor (with the
    straight-through gradient when it requires grad)."""

    def __init__(self, cfg, stream=0, seed=0, track_error=False, sync_amax=False):
        super().__init__()
        self.cfg = cfg
        self.stream = int(stream)
        self.seed = int(seed)
        self.track_error = bool(track_error)
        self.sync_amax = bool(sync_amax)
        self._scaler = None
        state = torch.zeros(0, dtype=torch.uint8)
        if cfg.scaling == "delayed":
            self._scaler = self._new_scaler()
            state = self._scaler.state_dict()["state"].clone()
        self.register_buffer("scaler_state", state)
        self.register_buffer("offset", torch.zeros((), dtype=torch.int64))
        self.register_buffer("scale", torch.zeros((), dtype=torch.float32))
        self.counters = _new_counters(self.track_error)

    # --- delayed scaling: the library's DelayedScaler, its state in a buffer

    def _new_scaler(self):
        cfg = self.cfg
        return DelayedScaler(cfg.fmt, cfg.history_len, margin=cfg.margin,
                             scale_min=cfg.scale_min, first="current")

    def _save(self):
        self.scaler_state.copy_(self._scaler.state_dict()["state"])

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        if self._scaler is not None:  # the scaler follows its loaded bytes
            self._scaler.load_state_dict({"state": self.scaler_state})

    def __getstate__(self):  # deepcopy, pickle: the bytes carry the scaler
        d = dict(super().__getstate__() if hasattr(super(), "__getstate__")
                 else self.__dict__)
        d["_scaler"] = None
        return d

    def __setstate__(self, state):
        super().__setstate__(state)
        if self.cfg.scaling == "delayed":
            self._scaler = self._new_scaler()
            self._scaler.load_state_dict({"state": self.scaler_state})

    def window_count(self):
        """Amaxes held by the delayed-scaling window (0 for other recipes)."""
        return len(self._scaler) if self._scaler is not None else 0

    def _window_amax(self):
        """The window maximum, or None while it is empty."""
        return self._scaler.amax if self.window_count() else None

    def _push(self, a):
        self._scaler.record(a)
        self._save()

    def _reset_window(self):
        self._scaler.reset()
        self._save()

    def _delayed_scale(self, a_now, record):
        """The scale of this step from the window (and, with
        ``include_current``, this step's amax ``a_now``); pushes ``a_now``
        when ``record``."""
        cfg = self.cfg
        if cfg.include_current:
            if record:  # AltGrad's order: the amax joins, then the scale
                self._push(a_now)
                return self._scaler.scale()
            w = self._window_amax()
            a = a_now if w is None else max(w, a_now)
            return compute_scale(a, cfg.fmt, cfg.scale_min, margin=cfg.margin)
        s = self._scaler.scale(a_now)  # the window (the first step: a_now)
        if record:
            self._push(a_now)
        return s

    # --- the cast

    def cast(self, x, record):
        """``x`` on the role's format. ``record``: move the history and the
        stochastic offset (training); counters are added on every call."""
        cfg = self.cfg
        stats = {}
        opts = {"rounding": cfg.rounding, "ste": cfg.ste, "stats": stats}
        if cfg.rounding == "stochastic":
            opts.update(seed=self.seed, stream=self.stream, offset=int(self.offset))
        sc = cfg.scaling
        if sc == "mx":
            y = mx_quantize(x, cfg.fmt, cfg.mx_block, mx_scale=cfg.mx_scale, **opts)
        elif sc == "rows":
            scales = channel_scales(x.detach(), cfg.fmt, cfg.scale_min, margin=cfg.margin)
            y = quantize_rows(x, cfg.fmt, scales, **opts)
            self.scale.fill_(float(scales.max()) if scales.numel() else 0.0)
        else:
            if sc == "none":
                s = 1.0
            else:
                a_now = amax(x.detach())
                if self.sync_amax:
                    a_now = _all_reduce_max(a_now)
                if sc == "delayed":
                    s = self._delayed_scale(a_now, record)
                else:
                    s = compute_scale(a_now, cfg.fmt, cfg.scale_min, margin=cfg.margin)
            y = quantize(x, cfg.fmt, s, **opts)
            self.scale.fill_(s)
        if record and cfg.rounding == "stochastic":
            self.offset += x.numel()
        c = self.counters
        c["calls"] += 1
        c["total"] += stats.get("total", 0)
        c["saturated"] += stats.get("overflow", 0)
        c["underflowed"] += stats.get("underflow", 0)
        c["nan"] += stats.get("nan", 0)
        if self.track_error:
            with torch.no_grad():
                xd = x.detach()
                n = float(xd.norm())
                c["rel_error"] = float((y.detach() - xd).norm()) / n if n > 0 else 0.0
        return y

    def reset_counters(self):
        self.counters = _new_counters(self.track_error)

    def extra_repr(self):
        cfg = self.cfg
        s = f"format={cfg.fmt.name}, scaling={cfg.scaling}"
        if cfg.scaling == "delayed":
            s += f", history_len={cfg.history_len}"
        if cfg.scaling == "mx":
            s += f", block={cfg.mx_block}, mx_scale={cfg.mx_scale}"
        if cfg.rounding != "nearest_even":
            s += f", rounding={cfg.rounding}, stream={self.stream}"
        return s
