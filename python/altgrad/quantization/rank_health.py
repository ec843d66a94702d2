# SPDX-License-Identifier: MIT
"""AltGrad's rank health: stable and effective rank of weight matrices, an
EMA trend detector that warns on a rank drop, and a per-layer monitor with
stricter thresholds for critical (classifier) layers.

AltGrad's conventions are kept where its results depend on them: a 1-D
tensor has stable rank ``numel`` and effective rank 1, a zero matrix stable
rank ``min(m, n)`` and effective rank 1, and each layer's detector warms up
over ``log_interval`` CHECKS. Fixed: matrices are reshaped, not viewed (no
error on non-contiguous weights); :meth:`RankHealthMonitor.compute_layer_ranks`
takes one SVD per matrix; ``warmup_steps=`` (keyword) gives the warm-up in
training steps (``ceil(warmup_steps / log_interval)`` checks) instead of
AltGrad's ``log_interval`` checks, i.e. ``log_interval**2`` steps.
"""
import math

import torch

__all__ = ["compute_stable_rank", "compute_effective_rank", "RankTrendDetector",
           "RankHealthMonitor"]


def _matrix(weight):
    return weight.detach().reshape(weight.shape[0], -1).float()


def _svdvals(weight):
    try:
        return torch.linalg.svdvals(_matrix(weight))
    except RuntimeError:
        return None


def _stable_from(sv, weight):
    if sv is None:
        return float(weight.numel())
    top = sv[0].item() ** 2 if sv.numel() else 0.0
    if top < 1e-10:
        m = weight.shape[0]
        return float(min(m, weight.numel() // m if m else 0))
    return (sv.square().sum() / sv[0].square()).item()


def _effective_from(sv, eps):
    if sv is None:
        return 1.0
    total = sv.sum()
    if total.item() < eps:
        return 1.0
    p = sv / total
    p = p[p > eps]
    return math.exp(-(p * p.log()).sum().item())


def compute_stable_rank(weight):
    """``sum(sigma**2) / sigma_1**2`` of the (out, -1) reshape."""
    if weight.dim() < 2:
        return float(weight.numel())
    return _stable_from(_svdvals(weight), weight)


def compute_effective_rank(weight, eps=1e-10):
    """``exp(entropy)`` of the normalised singular values."""
    if weight.dim() < 2:
        return 1.0
    return _effective_from(_svdvals(weight), eps)


class RankTrendDetector:
    """EMA of a rank; after ``window`` updates the EMA at that point is the
    baseline, and every later update whose EMA is more than
    ``threshold_pct`` below it returns a warning string."""

    def __init__(self, alpha=0.1, threshold_pct=0.2, window=100):
        self.alpha = alpha
        self.threshold_pct = threshold_pct
        self.window = window
        self.ema = None
        self.initial_ema = None
        self.step_count = 0

    def update(self, value):
        self.step_count += 1
        self.ema = value if self.ema is None else \
            self.alpha * value + (1 - self.alpha) * self.ema
        if self.step_count < self.window:
            return None
        if self.step_count == self.window:
            self.initial_ema = self.ema
            return None
        if self.initial_ema is not None and self.initial_ema > 0:
            drop = (self.initial_ema - self.ema) / self.initial_ema
            if drop > self.threshold_pct:
                return (f"WARN: Rank drop detected - EMA {self.ema:.2f} is "
                        f"{drop:.1%} below initial {self.initial_ema:.2f}")
        return None

    def reset(self):
        self.ema = None
        self.initial_ema = None
        self.step_count = 0


class RankHealthMonitor:
    """Rank metrics of every matrix of a model and drop warnings per layer
    (``warn_threshold``, times ``critical_threshold_multiplier`` for names
    containing a ``critical_layers`` pattern)."""

    def __init__(self, log_interval=100, warn_threshold=0.3, critical_layers=None,
                 critical_threshold_multiplier=0.5, *, warmup_steps=None):
        self.log_interval = log_interval
        self.warn_threshold = warn_threshold
        self.critical_layers = critical_layers or ["lm_head", "c_proj"]
        self.critical_threshold_multiplier = critical_threshold_multiplier
        if warmup_steps is not None and (isinstance(warmup_steps, bool)
                                         or not isinstance(warmup_steps, int)
                                         or warmup_steps < 1):
            raise ValueError(f"warmup_steps must be an int >= 1, not {warmup_steps!r}")
        self.warmup_steps = warmup_steps
        self._detectors = {}

    def _window(self):
        if self.warmup_steps is None:
            return self.log_interval  # AltGrad: checks, not steps
        return max(1, math.ceil(self.warmup_steps / self.log_interval))

    def compute_layer_ranks(self, model):
        """``{name: {stable_rank, effective_rank, spectral_norm}}`` for every
        parameter with at least 2 dimensions (one SVD each)."""
        out = {}
        for name, p in model.named_parameters():
            if p.dim() < 2:
                continue
            sv = _svdvals(p)
            out[name] = {
                "stable_rank": _stable_from(sv, p),
                "effective_rank": _effective_from(sv, 1e-10),
                "spectral_norm": sv[0].item() if sv is not None and sv.numel() else 0.0,
            }
        return out

    def get_threshold_for_layer(self, name):
        if any(pat in name for pat in self.critical_layers):
            return self.warn_threshold * self.critical_threshold_multiplier
        return self.warn_threshold

    def check_warnings(self, ranks):
        """Feed each layer's stable rank to its detector; the warnings,
        each prefixed with ``[name] ``."""
        warnings = []
        for name, metrics in ranks.items():
            det = self._detectors.get(name)
            if det is None:
                det = RankTrendDetector(threshold_pct=self.get_threshold_for_layer(name),
                                        window=self._window())
                self._detectors[name] = det
            w = det.update(metrics["stable_rank"])
            if w is not None:
                warnings.append(f"[{name}] {w}")
        return warnings
