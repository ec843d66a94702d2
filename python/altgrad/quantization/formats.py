# SPDX-License-Identifier: MIT
"""The AltGrad format API: :class:`FP8Format`, the constants ``E0M7`` ...
``E7M0`` and ``FORMAT_REGISTRY``.

An :class:`FP8Format` is a signed ExMy format described by six fields; it
maps onto a custom format of the C library (``altgrad.Format``) as follows:

=============================  ======================  ==========================
``has_inf``, ``has_nan``       C specials convention   meaning
=============================  ======================  ==========================
``False``, ``False``           ``none``                every code is finite
``False``, ``True``            ``fn``                  no inf; only S.1..1.1..1 is
                                                       NaN (OCP E4M3)
``True``, ``True``             ``ieee``                exponent all ones: mantissa
                                                       0 = +-inf, else NaN
``True``, ``False`` (M = 0)    ``ieee``                with no mantissa bits the
                                                       IEEE top binade holds only
                                                       +-inf: inf and no NaN
=============================  ======================  ==========================

Any other combination is a ValueError: ``has_inf`` without ``has_nan`` needs
M = 0, ``has_inf`` with ``has_nan`` needs M >= 1, and the C library must
accept the layout (``ieee`` needs E >= 1, for instance).
Formats outside this family (``fnuz``, unsigned, E8M0 without zero) come from
:func:`altgrad.format` as :class:`altgrad.Format`; both kinds are accepted by
:func:`altgrad.quantization.quantize`.

The name ``FP8Format`` is AltGrad's: any width up to 16 bits works
(``FP8Format("FP16", 5, 10, 15, has_inf=True, has_nan=True)``).
"""
import dataclasses
import operator

from .. import _C

__all__ = [
    "FP8Format",
    "E0M7",
    "E1M6",
    "E2M5",
    "E3M4",
    "E4M3",
    "E5M2",
    "E6M1",
    "E7M0",
    "FORMAT_REGISTRY",
]


def _specials_for(has_inf, has_nan):
    if has_inf:
        return "ieee"
    return "fn" if has_nan else "none"


@dataclasses.dataclass(frozen=True)
class FP8Format:
    """A signed floating-point format with ``exponent_bits`` E,
    ``mantissa_bits`` M and ``bias`` (values as in IEEE 754: normal
    2^(e-bias) (1 + m/2^M), subnormal 2^(1-bias) m/2^M; E = 0 is fixed point
    m 2^(-M-bias)), with infinities / NaN as ``has_inf`` / ``has_nan`` say
    (see the module documentation for the mapping onto the C library).

    Frozen: assigning an attribute raises ``dataclasses.FrozenInstanceError``.
    Equality and hashing compare the six fields. ValueError when the fields
    do not make a format the library can simulate (E > 8, M > 23, more than
    16 bits, values beyond float32, inconsistent specials); TypeError for
    fields of the wrong type.
    """

    name: str
    exponent_bits: int
    mantissa_bits: int
    bias: int
    has_inf: bool = False
    has_nan: bool = False
    _c: _C.Format = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, not {type(self.name).__name__}")
        for field in ("exponent_bits", "mantissa_bits", "bias"):
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{field} must be an int, not {type(v).__name__}")
        for field in ("has_inf", "has_nan"):
            v = getattr(self, field)
            if not isinstance(v, bool):
                raise TypeError(f"{field} must be a bool, not {type(v).__name__}")
        for field, lo, hi in (("exponent_bits", 0, 8), ("mantissa_bits", 0, 23),
                              ("bias", -1000, 1000)):
            v = getattr(self, field)
            if not lo <= v <= hi:
                raise ValueError(f"{self.name}: {field}={v} is outside {lo}..{hi}")
        specials = _specials_for(self.has_inf, self.has_nan)
        c = _C.format_init(self.name, self.exponent_bits, self.mantissa_bits,
                           self.bias, True, specials, False)
        if (c.has_inf, c.has_nan) != (self.has_inf, self.has_nan):
            raise ValueError(
                f"{self.name}: has_inf={self.has_inf}, has_nan={self.has_nan} "
                f"is not a layout of E{self.exponent_bits}M{self.mantissa_bits}: "
                f"specials '{specials}' gives has_inf={c.has_inf}, "
                f"has_nan={c.has_nan} (has_inf without has_nan needs M = 0, "
                f"has_inf with has_nan needs M >= 1)"
            )
        object.__setattr__(self, "_c", c)

    @classmethod
    def from_format(cls, fmt, name=None):
        """The FP8Format of a library format (a spec string or
        :class:`altgrad.Format`), when its six fields describe it: signed,
        with zero, specials none / fn / ieee. ValueError otherwise (use the
        :class:`altgrad.Format` itself then)."""
        from .. import format as _format

        c = _format(fmt)
        if not c.is_signed or c.no_zero or c.specials == "fnuz":
            raise ValueError(
                f"{c.name} (specials {c.specials}, signed={c.is_signed}, "
                f"no_zero={c.no_zero}) is not expressible as an FP8Format; "
                f"use altgrad.format({c.name!r}) directly"
            )
        return cls(name or c.name, c.ebits, c.mbits, c.bias, has_inf=c.has_inf,
                   has_nan=c.has_nan)

    @property
    def c_format(self):
        """The :class:`altgrad.Format` (C library format) behind this one."""
        return self._c

    @property
    def bits(self):
        """Total bits: 1 + E + M."""
        return self._c.bits

    @property
    def max_representable_value(self):
        """The largest finite value."""
        return self._c.max_finite

    @property
    def min_positive_value(self):
        """The smallest positive value (the smallest subnormal)."""
        return self._c.min_subnormal

    def to_bits(self, value, **options):
        """The code of ``value`` (a real number, first rounded to float32),
        round to nearest, ties to the even code. Overflow as the format
        allows: +-inf where it has inf, NaN where it has NaN but no inf, else
        +-max (saturation). NaN gives the NaN code, or 0 where the format has
        none. Keyword options (``rounding``, ``overflow``, ``seed``,
        ``stream``, ``offset``) as :meth:`altgrad.Format.to_bits`."""
        return self._c.to_bits(value, **options)

    def to_real(self, bit_index):
        """The value of code ``bit_index`` (0 .. 2**bits - 1) as a float.
        ValueError for an index outside the format's codes, TypeError for a
        non-integer."""
        return self._c.to_real(operator.index(bit_index))

    def __reduce__(self):
        return (FP8Format, (self.name, self.exponent_bits, self.mantissa_bits,
                            self.bias, self.has_inf, self.has_nan))


# The AltGrad family (DESIGN.md, "Formats"); each equals the library's
# registry entry of the same name (tested).
E0M7 = FP8Format("E0M7", 0, 7, 0)
E1M6 = FP8Format("E1M6", 1, 6, 0)
E2M5 = FP8Format("E2M5", 2, 5, 1)
E3M4 = FP8Format("E3M4", 3, 4, 1)
E4M3 = FP8Format("E4M3", 4, 3, 7, has_nan=True)
E5M2 = FP8Format("E5M2", 5, 2, 15, has_inf=True, has_nan=True)
E6M1 = FP8Format("E6M1", 6, 1, 31)
E7M0 = FP8Format("E7M0", 7, 0, 63)

#: The five headline formats of the AltGrad study, by name.
FORMAT_REGISTRY = {f.name: f for f in (E0M7, E1M6, E3M4, E5M2, E7M0)}
