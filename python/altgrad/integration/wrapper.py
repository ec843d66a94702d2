# SPDX-License-Identifier: MIT
"""QuantizedLinear: an ``nn.Linear`` whose weight, input and output gradient
are cast onto narrow formats (AltGrad's wrapper, with per-role casts).

``QuantizedLinear(linear, format, quantize_input=False, history_len=16)``
keeps the very ``linear`` it is given (``.linear``; its Parameters are
the same objects, so weight tying and optimizers see them) and, as
AltGrad, quantizes the weight (and with ``quantize_input`` the input) on
``format`` with a delayed scale from an amax history of ``history_len``
steps that includes the current step; the bias and the output stay float32;
gradients pass straight through. ``config=`` (a
:class:`~.config.LinearConfig`) instead gives each role (weight, input,
grad_output) its own cast: format, scaling recipe, rounding, STE.

Differences from AltGrad (its defects, fixed): the histories are buffers of
the module (``state_dict``, ``.to()``, deepcopy and pickle carry them; a
restored model gives the same next output bit for bit) and move only in
training mode with grad enabled (``update_history="always"`` in the config
restores AltGrad's every-call update); bad input is a ValueError naming the
layer (not float32, on another device, wrong feature count).

Stochastic rounding keys every role of every layer by ``(seed, stream,
offset)``: ``stream = 3 * layer_index + role`` (role 0 weight, 1 input, 2
grad_output; ``layer_index`` from :func:`~.surgery.quantize_model`, in
module order), ``offset`` a buffer that advances by the elements of each
recorded call, so no two tensors share random bits and a restored model
draws what an uninterrupted one would.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ._cast import Caster
from .config import ROLES, LinearConfig, resolve_format

__all__ = ["QuantizedLinear"]


class _LinearGradCast(torch.autograd.Function):
    """``F.linear(x, w, b)`` whose backward first casts the output gradient
    (the ``grad_output`` role), then forms ``dx = g w``, ``dw = g^T x``,
    ``db = sum g`` from the cast ``g``. The output is a fresh tensor, so
    in-place ops after the layer (``ReLU(inplace=True)``) work."""

    @staticmethod
    def forward(ctx, x, w, b, caster, record):
        ctx.save_for_backward(x, w)
        ctx.caster = caster
        ctx.record = record
        return F.linear(x, w, b)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        g = ctx.caster.cast(dy.contiguous(), ctx.record)
        out, inp = w.shape
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = g @ w
        if ctx.needs_input_grad[1]:
            dw = g.reshape(-1, out).t() @ x.reshape(-1, inp)
        if ctx.needs_input_grad[2]:
            db = g.reshape(-1, out).sum(0)
        return dx, dw, db, None, None


class _HistoryView:
    """AltGrad's ``weight_history`` / ``input_history`` (an AmaxHistory) on
    the buffers of a role: ``update(t)``, ``get_amax()`` (1.0 while empty),
    ``reset()``, ``len()``, ``history_len``."""

    def __init__(self, caster):
        self._c = caster

    @property
    def history_len(self):
        return self._c.cfg.history_len

    def update(self, tensor):
        from ..quantization import amax

        a = amax(tensor.detach() if isinstance(tensor, torch.Tensor) else tensor)
        with torch.no_grad():
            self._c._push(a)
        return a

    def get_amax(self):
        w = self._c._window_amax()
        return 1.0 if w is None else w

    def reset(self):
        with torch.no_grad():
            self._c._reset_window()

    def len(self):
        return self._c.window_count()

    def __len__(self):
        return self.len()

    def __repr__(self):
        return (f"AmaxHistory(history_len={self.history_len}, len={self.len()}, "
                f"amax={self.get_amax()})")


class QuantizedLinear(nn.Module):
    """See the module documentation. Attributes: ``linear``, ``format``
    (the weight's format object), ``quantize_input``, ``weight_history``,
    ``input_history`` (AltGrad's), ``config`` (the LinearConfig), ``name``
    (the module name given by quantize_model, for messages), ``layer_index``
    and one :class:`~._cast.Caster` submodule per quantized role
    (``weight_cast``, ``input_cast``, ``grad_output_cast``)."""

    def __init__(self, linear, format=None, quantize_input=False, history_len=16, *,
                 config=None, layer_index=0, name=None):
        super().__init__()
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"QuantizedLinear wraps an nn.Linear, not {type(linear).__name__}")
        if isinstance(linear, QuantizedLinear):  # pragma: no cover - not a Linear
            raise TypeError("already a QuantizedLinear")
        self.name = name or "QuantizedLinear"
        if config is None:
            if format is None:
                raise ValueError(f"layer '{self.name}': give a format or a LinearConfig")
            fmt = resolve_format(format, f"layer '{self.name}': ")
            config = LinearConfig.altgrad(fmt, quantize_input, history_len)
            altgrad_mode = True
        else:
            if not isinstance(config, LinearConfig):
                raise TypeError(f"layer '{self.name}': config must be a LinearConfig, not "
                                f"{type(config).__name__}")
            altgrad_mode = False
        _check_params(linear, self.name)
        self.linear = linear
        self.config = config
        self.layer_index = int(layer_index)
        for k, role in enumerate(ROLES):
            cfg = getattr(config, role)
            if cfg is None and altgrad_mode and role == "input":
                # AltGrad always creates input_history, used or not
                cfg = config.weight
            if cfg is not None:
                setattr(self, f"{role}_cast", Caster(
                    cfg, stream=3 * self.layer_index + k, seed=config.seed,
                    track_error=config.track_error,
                    sync_amax=config.sync_amax and role != "weight"))
            else:
                setattr(self, f"{role}_cast", None)
        w = config.weight or config.input or config.grad_output
        self.format = resolve_format(format) if format is not None else w.fmt

    # AltGrad's attributes
    @property
    def quantize_input(self):
        return self.config.input is not None

    @property
    def weight_history(self):
        return _HistoryView(self.weight_cast) if self.weight_cast is not None else None

    @property
    def input_history(self):
        return _HistoryView(self.input_cast) if self.input_cast is not None else None

    @property
    def weight(self):
        return self.linear.weight

    @property
    def bias(self):
        return self.linear.bias

    @property
    def in_features(self):
        return self.linear.in_features

    @property
    def out_features(self):
        return self.linear.out_features

    def casters(self):
        """``{role: Caster}`` of the quantized roles."""
        out = {}
        for role in ROLES:
            c = getattr(self, f"{role}_cast")
            if c is not None and not (role == "input" and not self.quantize_input):
                out[role] = c
        return out

    def _records(self):
        if self.config.update_history == "always":
            return True
        return self.training and torch.is_grad_enabled()

    def forward(self, x):
        lin = self.linear
        _check_params(lin, self.name)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"layer '{self.name}': input must be a tensor, not "
                            f"{type(x).__name__}")
        if x.dim() == 0 or x.shape[-1] != lin.in_features:
            raise ValueError(
                f"layer '{self.name}': expects inputs [..., {lin.in_features}] "
                f"(in_features={lin.in_features}), got shape {tuple(x.shape)}")
        if x.device.type != "cpu":
            raise ValueError(
                f"layer '{self.name}': input is on {x.device}; altgrad's quantizers run on "
                f"the CPU (the device-generic path has not landed): move the model and "
                f"data with .cpu()")
        if x.dtype != torch.float32:
            raise TypeError(f"layer '{self.name}': input is {x.dtype}; altgrad simulates "
                            f"formats on float32 tensors: pass x.float()")
        record = self._records()
        w = lin.weight
        if self.weight_cast is not None:
            w = self.weight_cast.cast(w, record)
        if self.quantize_input:
            x = self.input_cast.cast(x, record)
        if self.grad_output_cast is not None and torch.is_grad_enabled() and (
                x.requires_grad or w.requires_grad
                or (lin.bias is not None and lin.bias.requires_grad)):
            return _LinearGradCast.apply(x, w, lin.bias, self.grad_output_cast, record)
        return F.linear(x, w, lin.bias)

    def extra_repr(self):
        return (f"in_features={self.linear.in_features}, "
                f"out_features={self.linear.out_features}, format={self.format.name}, "
                f"quantize_input={self.quantize_input}")


def _check_params(linear, name):
    """float32 CPU parameters, or a ValueError / TypeError saying what to do."""
    for pname, p in linear.named_parameters(recurse=False):
        if p.device.type != "cpu":
            raise ValueError(
                f"layer '{name}': {pname} is on {p.device}; altgrad's quantizers run on the "
                f"CPU (the device-generic path has not landed): call model.cpu() first")
        if p.dtype != torch.float32:
            raise TypeError(
                f"layer '{name}': {pname} is {p.dtype}; altgrad simulates formats on "
                f"float32 master weights: convert the model with model.float() first "
                f"(or skip this layer)")
