# SPDX-License-Identifier: MIT
"""AltGrad's stability interventions: gradient clipping relative to a
format's range, and the emergency switch to a wider format.

:class:`PartitionRelativeClipper` keeps AltGrad's threshold
``base_clip * max / 57344`` (the ratio of the format's largest value to
E5M2's) by default. That ratio means little under per-tensor scaling
(E1M6 clips to ~7e-5, E7M0 never); ``relative_to="range"`` uses the ratio
of dynamic ranges in binades instead, ``log2(max / min_subnormal)`` of the
format over E5M2's, with E5M2 read from the registry.

:class:`EmergencyMantissaShift` keeps AltGrad's fallback table and
triggers; format names are normalised (``FP8_E5M2``, ``e3m4``, an
FP8Format or :class:`altgrad.Format` all work), and ``stall_patience``
(default 1, AltGrad's) asks for that many consecutive stalled checks.
"""
import math

import torch

from .. import format as _as_format

__all__ = ["PartitionRelativeClipper", "EmergencyMantissaShift"]

#: AltGrad's baseline range: E5M2's largest value.
E5M2_MAX = 57344.0


def _binades(f):
    return math.log2(f.max_finite / f.min_subnormal)


class PartitionRelativeClipper:
    """Clip the global gradient norm to ``clip_threshold`` when the overflow
    rate reaches ``overflow_threshold``."""

    def __init__(self, format, base_clip=1.0, overflow_threshold=0.01, *,
                 relative_to="max"):
        self.format = format
        self.base_clip = base_clip
        self.overflow_threshold = overflow_threshold
        f = _as_format(format)
        if relative_to == "max":
            self.clip_threshold = base_clip * f.max_finite / E5M2_MAX
        elif relative_to == "range":
            self.clip_threshold = base_clip * _binades(f) / _binades(_as_format("E5M2"))
        else:
            raise ValueError(
                f"relative_to must be 'max' or 'range', not {relative_to!r}")
        self.relative_to = relative_to

    def clip_if_needed(self, model, overflow_rate):
        """``clip_grad_norm_(model.parameters(), clip_threshold)`` and True
        when ``overflow_rate >= overflow_threshold``; else False."""
        if overflow_rate >= self.overflow_threshold:
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.clip_threshold)
            return True
        return False


def _bare_name(fmt):
    name = fmt if isinstance(fmt, str) else getattr(fmt, "name", str(fmt))
    name = name.upper()
    return name[4:] if name.startswith("FP8_") else name


class EmergencyMantissaShift:
    """Switch to a wider format after ``nan_patience`` consecutive NaN
    checks, or when the stall rate exceeds ``stall_threshold``."""

    FORMAT_FALLBACK = {"E7M0": "E5M2", "E1M6": "E3M4", "E0M7": "E3M4",
                       "E3M4": "E5M2", "E5M2": None}

    def __init__(self, nan_patience=3, stall_threshold=0.5, *, stall_patience=1):
        if isinstance(stall_patience, bool) or not isinstance(stall_patience, int) \
                or stall_patience < 1:
            raise ValueError(f"stall_patience must be an int >= 1, not {stall_patience!r}")
        self.nan_patience = nan_patience
        self.stall_threshold = stall_threshold
        self.stall_patience = stall_patience
        self.consecutive_nans = 0
        self.consecutive_stalls = 0

    def check_and_shift(self, current_format, has_nan, stall_rate):
        """The format to switch to (a bare name), or None."""
        self.consecutive_nans = self.consecutive_nans + 1 if has_nan else 0
        self.consecutive_stalls = (self.consecutive_stalls + 1
                                   if stall_rate > self.stall_threshold else 0)
        if (self.consecutive_nans >= self.nan_patience
                or self.consecutive_stalls >= self.stall_patience):
            target = self.FORMAT_FALLBACK.get(_bare_name(current_format))
            if target is not None:
                self.consecutive_nans = 0
                self.consecutive_stalls = 0
            return target
        return None

    def reset(self):
        self.consecutive_nans = 0
        self.consecutive_stalls = 0
