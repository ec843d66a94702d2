# SPDX-License-Identifier: MIT
"""AltGrad's optimizers on the altgrad C library: :class:`ManifoldAdamW`
(AdamW with stiffness preconditioning) and :class:`GridOptim` (moves
weights by whole rungs of a format's grid).

Both run one fused C pass per parameter (``ag_adamw_step``,
``ag_grid_step``) on CPU float32 contiguous tensors, in place, without
copies; any other parameter (another device, dtype or layout) is copied to
a CPU float32 buffer for the step and back. State lives on the parameters'
device.

Stiffness S is the spacing of a grid at the weight. AltGrad's formula,
``2**(floor(log2|w|) - mantissa_bits)``, ignores the format's exponent
range and the tensor's scale; with ``format=`` (and ``scale=``) S is the
format's real grid step there (subnormals, fixed point, scale). Two
preconditioning modes:

- ``precondition="grad"`` (AltGrad): the gradient is multiplied by S before
  Adam's moments. Adam's per-element normalisation ``m / sqrt(v)`` then
  cancels S almost entirely: the step differs from plain AdamW only through
  ``eps / S``, zero weights and binade crossings.
- ``precondition="update"``: the normalised update is multiplied by S, so
  each weight moves by about ``lr`` grid steps per step (``lr`` is then in
  grid steps); the weight decay stays in real units.
"""
import math

import torch

from .. import _C
from .. import format as _as_format

__all__ = ["ManifoldAdamW", "GridOptim"]


def _precondition_value(name):
    """The ag_precondition value of a name, through the library's option
    vocabulary ("none", "grad", "update"; '-'/'_' and case ignored)."""
    try:
        canon = _C.option("precondition", name)
    except (ValueError, TypeError) as e:
        raise ValueError(f"Invalid precondition: {e}") from None
    return _C.option_names("precondition").index(canon)


def _c_ready(t):
    return t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous()


def _cpu32(t):
    """t itself when the C step can use it in place, else a CPU float32
    contiguous copy."""
    return t if _c_ready(t) else t.detach().to("cpu", torch.float32).contiguous()


def _scale_value(scale, what="scale"):
    s = float(scale)
    if not (s > 0.0 and math.isfinite(s)):
        raise ValueError(f"Invalid {what}: {scale} (a positive finite number)")
    return s


def _resolve_format(fmt):
    return None if fmt is None else _as_format(fmt)


class ManifoldAdamW(torch.optim.Optimizer):
    """AdamW with decoupled weight decay and bias correction, optionally
    preconditioned by the stiffness of each weight (see the module
    documentation).

    AltGrad's signature and defaults, plus keyword arguments:

    - ``format`` (None, a name, :class:`altgrad.Format` or FP8Format): S
      and the counters use this format's grid (times ``scale``); None keeps
      AltGrad's ``2**(floor(log2|w|) - mantissa_bits)`` and float32 as the
      grid of the counters.
    - ``scale``: the format's per-tensor scale (default 1.0).
    - ``precondition``: ``"grad"`` (AltGrad's, default) or ``"update"``
      (``"none"``: plain AdamW, as ``manifold_aware=False``).

    ``manifold_aware=False`` is plain AdamW (``torch.optim.AdamW``'s
    formulas). Per-parameter state: ``step`` (int), ``exp_avg``,
    ``exp_avg_sq`` and ``bit_position`` (each weight's signed movement,
    accumulated: in float32 ULPs as AltGrad without a format, in the
    format's grid steps with one). After each :meth:`step`,
    ``last_counts`` holds that step's ``updates`` (``|g| > 1e-10``),
    ``flips`` (weights that moved to another grid point) and ``stalls``
    (updates that did not move).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=0.01, manifold_aware=True, mantissa_bits=2,
                 max_stiffness=1e6, *, format=None, scale=1.0,
                 precondition="grad"):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if eps < 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta1: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta2: {betas[1]}")
        if not math.isfinite(weight_decay):
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if isinstance(mantissa_bits, bool) or not isinstance(mantissa_bits, int) \
                or not 0 <= mantissa_bits <= 23:
            raise ValueError(f"Invalid mantissa_bits: {mantissa_bits} (an int in 0..23)")
        if not max_stiffness > 0.0:
            raise ValueError(f"Invalid max_stiffness: {max_stiffness} (must be > 0)")
        _precondition_value(precondition)  # ValueError naming the valid ones
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        manifold_aware=manifold_aware, mantissa_bits=mantissa_bits,
                        max_stiffness=max_stiffness, format=_resolve_format(format),
                        scale=_scale_value(scale), precondition=precondition)
        super().__init__(params, defaults)
        self.last_counts = {"updates": 0, "flips": 0, "stalls": 0}

    @torch.no_grad()
    def step(self, closure=None):
        """One step for every parameter with a gradient; returns the
        closure's loss (evaluated with grad enabled) or None."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        total = [0, 0, 0]
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            pre = _precondition_value(group["precondition"]) if group["manifold_aware"] else 0
            fmt = _resolve_format(group["format"])
            scale = float(group["scale"])
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("ManifoldAdamW does not support sparse gradients")
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    z = dict(dtype=torch.float32, device=p.device)
                    state["exp_avg"] = torch.zeros(p.shape, **z)
                    state["exp_avg_sq"] = torch.zeros(p.shape, **z)
                    state["bit_position"] = torch.zeros(p.shape, **z)
                state["step"] += 1
                keys = ("exp_avg", "exp_avg_sq", "bit_position")
                w = _cpu32(p)
                bufs = [_cpu32(state[k]) for k in keys]
                counts = _C.adamw_step(
                    w, bufs[0], bufs[1], _cpu32(p.grad), state["step"], group["lr"],
                    beta1, beta2, group["eps"], group["weight_decay"], pre, fmt, scale,
                    group["mantissa_bits"], group["max_stiffness"], bufs[2])
                if w is not p:
                    p.copy_(w)
                for k, b in zip(keys, bufs):
                    if b is not state[k]:
                        state[k].copy_(b)
                for i in range(3):
                    total[i] += counts[i]
        self.last_counts = dict(zip(("updates", "flips", "stalls"), total))
        return loss


class GridOptim(torch.optim.Optimizer):
    """AltGrad's grid optimizer: momentum in rung units on a format's grid.

    Per step and parameter (``ag_grid_step``): ``velocity = momentum *
    velocity + grad + weight_decay * master`` (coupled decay, ``p.grad`` is
    never modified), then each weight moves ``k`` rungs down the grid from
    its nearest grid value, ``k = clamp(scale * velocity, +-rung_clip)``
    rounded stochastically (unbiased) with altgrad's counter-based stream:
    seed ``seed``, one stream per parameter, the stream offset advancing by
    the parameter's size each step. The same seed gives the same run at any
    thread count, without touching torch's global generator.

    The grid comes from altgrad's registry: ``format`` (keyword; a name,
    :class:`altgrad.Format` or FP8Format), else ``fp8_dtype``'s name (e.g.
    ``torch.float8_e4m3fn`` on a torch that has it), else float8_e4m3fn —
    no torch float8 dtype is needed. ``grid_scale`` scales the grid (a
    per-tensor scale; default 1.0). The first step snaps each weight to its
    NEAREST grid value (AltGrad snapped upward).

    A ``torch.optim.Optimizer``: ``param_groups`` (keys ``scale``,
    ``momentum``, ``weight_decay``, ``rung_clip``, ``grid_scale``),
    ``state`` (``master_p``, ``velocity``, ``step``, ``stream``),
    ``state_dict`` / ``load_state_dict``. The master copies and velocities
    are float32 on ``device`` (default: each parameter's own device).
    """

    def __init__(self, params, scale=6.0, momentum=0.9, weight_decay=1e-4,
                 rung_clip=10, fp8_dtype=None, device=None, *, format=None,
                 grid_scale=1.0, seed=0):
        for name, v in (("scale", scale), ("momentum", momentum),
                        ("weight_decay", weight_decay)):
            if not (math.isfinite(v) and v >= 0.0):
                raise ValueError(f"Invalid {name}: {v} (a finite number >= 0)")
        if isinstance(rung_clip, bool) or not isinstance(rung_clip, int) or rung_clip < 0:
            raise ValueError(f"Invalid rung_clip: {rung_clip} (an int >= 0)")
        if format is None:
            format = str(fp8_dtype).replace("torch.", "") if fp8_dtype is not None \
                else "float8_e4m3fn"
        self.format = _as_format(format)
        defaults = dict(scale=scale, momentum=momentum, weight_decay=weight_decay,
                        rung_clip=rung_clip, grid_scale=_scale_value(grid_scale, "grid_scale"))
        super().__init__(params, defaults)
        self.params = [p for g in self.param_groups for p in g["params"]]
        self.scale = scale
        self.momentum = momentum
        self.wd = weight_decay
        self.rung_clip = rung_clip
        self.seed = int(seed)
        self._device = torch.device(device) if device is not None else None
        self.device = self._device if self._device is not None else (
            self.params[0].device if self.params else torch.device("cpu"))
        for i, p in enumerate(self.params):
            dev = self._device or p.device
            master = p.detach().clone().to(dev, torch.float32).contiguous()
            self.state[p] = {"master_p": master, "velocity": torch.zeros_like(master),
                             "step": 0, "stream": i}
        f = self.format
        values = sorted({v for v in map(f.to_real, range(2**f.bits))
                         if math.isfinite(v)})  # +-0 merge in the set
        self.grid = torch.tensor(values, dtype=torch.float32, device=self.device)

    @property
    def master_p(self):
        """The float32 master copies (grid values after the first step)."""
        return [self.state[p]["master_p"] for p in self.params]

    @property
    def velocity(self):
        return [self.state[p]["velocity"] for p in self.params]

    @torch.no_grad()
    def step(self, current_scale=None):
        """One grid step; ``current_scale`` overrides the rung rate
        ``scale`` for this step. Returns ``(flips, updates)``: weights whose
        value changed, and gradient elements with ``|g| > 1e-10``."""
        flips = updates = 0
        for group in self.param_groups:
            rate = group["scale"] if current_scale is None else float(current_scale)
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                master, vel = _cpu32(st["master_p"]), _cpu32(st["velocity"])
                u, f = _C.grid_step(
                    master, vel, _cpu32(p.grad), self.format, group["grid_scale"], rate,
                    group["momentum"], group["weight_decay"], group["rung_clip"],
                    seed=self.seed, stream=st["stream"], offset=st["step"] * p.numel())
                if master is not st["master_p"]:
                    st["master_p"].copy_(master)
                if vel is not st["velocity"]:
                    st["velocity"].copy_(vel)
                st["step"] += 1
                p.copy_(st["master_p"].reshape(p.shape))
                updates += u
                flips += f
        return flips, updates

    def zero_grad(self, set_to_none=False):
        """Zero every existing gradient in place (AltGrad's behaviour), or
        drop them with ``set_to_none=True``."""
        for p in self.params:
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_()
                    p.grad.zero_()
