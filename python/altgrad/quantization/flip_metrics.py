# SPDX-License-Identifier: MIT
"""AltGrad's weight-flip metrics: how often an optimizer step moves a
weight's quantized value, and how often an update stalls.

- :func:`compute_stall_ratio`: ``1 - flips / updates`` (0.0 without
  updates), AltGrad's formula, unclamped.
- :func:`compute_flip_rate`: the fraction of positions whose quantized
  value changed between two snapshots. Two NaNs at a position are the same
  value (AltGrad's ``!=`` counted every NaN as a flip on every step).
- :class:`WeightFlipTracker`: per-layer snapshots before the step, flips
  after it, update counting from the gradient. Besides AltGrad's stall ratio
  (whose flips also count weights without a gradient) it keeps the
  per-element stall count: among the weights with ``|grad| > 1e-10`` at the
  snapshot, those whose quantized value did not change
  (:meth:`WeightFlipTracker.get_stall_ratios` with ``per_element=True``).
"""
import torch

from .ops import quantize

__all__ = ["compute_flip_rate", "compute_stall_ratio", "WeightFlipTracker"]

_GRAD_EPS = 1e-10


def compute_stall_ratio(flips, updates):
    """``1 - flips / updates``; 0.0 when ``updates == 0``."""
    if updates == 0:
        return 0.0
    return 1.0 - flips / updates


def _changed(prev, curr):
    """Positions whose value differs (two NaNs are the same value)."""
    return (prev != curr) & ~(torch.isnan(prev) & torch.isnan(curr))


def compute_flip_rate(prev_quantized, curr_quantized):
    """Fraction of positions where the two quantized snapshots differ.
    ValueError (``Shape mismatch: ...``) when the shapes differ; 0.0 when
    empty."""
    if prev_quantized.shape != curr_quantized.shape:
        raise ValueError(
            f"Shape mismatch: prev={tuple(prev_quantized.shape)}, "
            f"curr={tuple(curr_quantized.shape)}"
        )
    n = prev_quantized.numel()
    if n == 0:
        return 0.0
    return _changed(prev_quantized, curr_quantized).sum().item() / n


def _quantized(weight, format, scale):
    return quantize(weight.detach(), format, scale).clone()


class WeightFlipTracker:
    """Flip and update counts per named weight tensor.

    Call :meth:`snapshot_pre_step` before the optimizer step (with the
    gradient to count updates) and :meth:`compute_flips_post_step` after it,
    with the same format and scale. Public dicts: ``prev_quantized``,
    ``flip_counts``, ``update_counts``, ``total_weights``, and
    ``stall_counts`` (updated weights whose quantized value stayed).
    """

    def __init__(self):
        self.prev_quantized = {}
        self.flip_counts = {}
        self.update_counts = {}
        self.total_weights = {}
        self.stall_counts = {}
        self._update_mask = {}

    def snapshot_pre_step(self, name, weight, format, scale, grad=None):
        """Store the quantized weight; count ``|grad| > 1e-10`` as updates."""
        self.prev_quantized[name] = _quantized(weight, format, scale)
        if name not in self.flip_counts:
            self.flip_counts[name] = 0
            self.update_counts[name] = 0
            self.total_weights[name] = weight.numel()
            self.stall_counts[name] = 0
        if grad is not None:
            mask = grad.detach().abs() > _GRAD_EPS
            self.update_counts[name] += int(mask.sum().item())
            self._update_mask[name] = mask
        else:
            self._update_mask.pop(name, None)

    def compute_flips_post_step(self, name, weight, format, scale):
        """Flips of ``name`` since its snapshot (added to ``flip_counts``),
        as an int; the snapshot is consumed. KeyError without a snapshot."""
        if name not in self.prev_quantized:
            raise KeyError(
                f"No pre-step snapshot for '{name}'. Call snapshot_pre_step() "
                f"before the optimizer step."
            )
        prev = self.prev_quantized.pop(name)
        curr = _quantized(weight, format, scale)
        changed = _changed(prev, curr)
        flips = int(changed.sum().item())
        self.flip_counts[name] += flips
        mask = self._update_mask.pop(name, None)
        if mask is not None:
            self.stall_counts[name] += int((mask.reshape(changed.shape)
                                            & ~changed).sum().item())
        return flips

    def get_flip_counts(self):
        return dict(self.flip_counts)

    def get_update_counts(self):
        return dict(self.update_counts)

    def get_flip_rates(self):
        """Cumulative flips per weight (may exceed 1 over several steps)."""
        return {n: (c / self.total_weights[n] if self.total_weights[n] else 0.0)
                for n, c in self.flip_counts.items()}

    def get_stall_ratios(self, per_element=False):
        """AltGrad's ``1 - flips / updates`` per name; with
        ``per_element=True`` the share of updated weights (at the
        snapshots) whose quantized value did not move, in [0, 1]."""
        if per_element:
            return {n: (self.stall_counts[n] / self.update_counts[n]
                        if self.update_counts[n] else 0.0)
                    for n in self.flip_counts}
        return {n: compute_stall_ratio(self.flip_counts[n], self.update_counts[n])
                for n in self.flip_counts}

    def reset(self):
        for d in (self.prev_quantized, self.flip_counts, self.update_counts,
                  self.total_weights, self.stall_counts, self._update_mask):
            d.clear()
