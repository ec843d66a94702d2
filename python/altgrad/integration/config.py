# SPDX-License-Identifier: MIT
"""What to quantize, and how: AltGrad's rules and configs, and the per-role
cast configs beyond them (no module surgery and no numerics here).

AltGrad's API (unchanged names, fields, defaults and order):

- :class:`LayerPrecisionRule` ``(pattern, format)``: ``matches(name)`` is
  ``re.search(pattern, name)``; ``get_format()`` the format or None ("keep
  this layer in high precision").
- :class:`QuantizationConfig` ``(default_format="E5M2", layer_rules=[],
  history_len=16, quantize_input=False)``: the first matching rule wins,
  else the default (None: not wrapped).
- :func:`create_mixed_precision_config`: rules ``\\.attn\\.``, ``\\.mlp\\.``,
  ``lm_head`` in that order.

Beyond AltGrad:

- :class:`CastConfig`: how ONE tensor role (weight, input activation,
  output gradient) is cast: its format, scaling recipe (``"delayed"`` amax
  history, ``"current"`` amax, ``"rows"`` one scale per row, ``"mx"`` blocks
  with E8M0 scales, ``"none"`` scale 1), rounding mode (``"stochastic"``
  draws from a stream of its own per layer and role), STE, MX block and
  shared-scale rule, margin and scale floor.
- :class:`LinearConfig`: the three roles of a Linear (None: that role stays
  float32) and the settings of the layer: ``seed`` of stochastic rounding,
  ``update_history`` (``"train"``: histories move only in training mode
  with grad enabled; ``"always"``: as AltGrad, on every call),
  ``track_error`` (the relative quantization error in the counters),
  ``sync_amax`` (amaxes of inputs and gradients reduced with MAX over the
  ``torch.distributed`` group when one is initialized, so that data
  parallelism sees the scales of the global batch).
- :func:`recipe` / :data:`RECIPES`: named presets; ``"fp8"`` is the standard
  FP8 recipe: float8_e4m3fn weights and inputs, float8_e5m2 output
  gradients, delayed scaling.
- A rule may carry a :class:`LinearConfig` (``config=``) instead of a bare
  format, and match by ``match="search"`` (AltGrad's regex search),
  ``"fullmatch"`` (a regex on the whole module name) or ``"substring"``.
  :class:`QuantizationConfig` takes a per-role ``default_config``.

Formats are checked when a rule or config is built: an unknown name raises
:class:`UnknownFormatError` (a KeyError, as AltGrad's registry lookup, and
a ValueError) naming it and listing the valid names.
"""
import dataclasses
import difflib
import re
from typing import Any, List, Optional

from .. import _C
from .. import format as _c_format
from ..quantization.formats import FORMAT_REGISTRY, FP8Format

__all__ = [
    "UnknownFormatError",
    "resolve_format",
    "format_name",
    "CastConfig",
    "LinearConfig",
    "RECIPES",
    "recipe",
    "LayerPrecisionRule",
    "QuantizationConfig",
    "create_mixed_precision_config",
]

SCALINGS = ("delayed", "current", "rows", "mx", "none")
ROUNDINGS = ("nearest_even", "nearest_away", "toward_zero", "down", "up", "stochastic")
MX_SCALES = ("floor", "rceil")
MATCHES = ("search", "fullmatch", "substring")


class UnknownFormatError(KeyError, ValueError):
    """An unknown format name (a KeyError, as AltGrad's ``FORMAT_REGISTRY``
    lookup raised, and a ValueError)."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


def resolve_format(spec, where=""):
    """The format object for ``spec``: None stays None; an
    :class:`FP8Format` or :class:`altgrad.Format` is returned as is; a name of
    AltGrad's ``FORMAT_REGISTRY`` gives that very FP8Format (``is`` holds);
    any other registry name or spec string (``"float8_e4m3fn"``,
    ``"e3m4:bias=2"``) the library's :class:`altgrad.Format`.
    :class:`UnknownFormatError` for an unknown name, TypeError for another
    type. ``where`` prefixes the message (e.g. the rule)."""
    if spec is None or isinstance(spec, (FP8Format, _C.Format)):
        return spec
    if isinstance(spec, str):
        if spec in FORMAT_REGISTRY:
            return FORMAT_REGISTRY[spec]
        try:
            return _c_format(spec)
        except ValueError as e:
            names = list(FORMAT_REGISTRY) + [n for n in _C.format_names()
                                             if n not in FORMAT_REGISTRY]
            near = difflib.get_close_matches(spec, names, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise UnknownFormatError(
                f"{where}unknown format {spec!r}{hint}: {e}; valid names: "
                f"{', '.join(names)} (or a spec such as 'e3m4:bias=2')") from None
    raise TypeError(f"{where}a format must be a name, an FP8Format or an altgrad.Format, "
                    f"not {type(spec).__name__}")


def format_name(fmt):
    """The name of a format object (None for None)."""
    return None if fmt is None else fmt.name


def _check_choice(value, choices, what):
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}: expected one of {', '.join(choices)}")


def _check_int(value, what, lo=1):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < lo:
        raise ValueError(f"{what} must be >= {lo}, got {value}")


@dataclasses.dataclass(frozen=True)
class CastConfig:
    """How one tensor role is cast (see the module documentation).
    ``include_current`` (delayed scaling): True, AltGrad's order, takes the
    scale from the window after this step's amax joined it (the tensor
    itself never saturates); False, the classic delayed scaling of
    Transformer Engine and torchao, from the earlier steps only (the first
    step uses the tensor's own amax). ValueError / UnknownFormatError for
    bad values, at construction."""

    format: Any
    scaling: str = "delayed"
    history_len: int = 16
    include_current: bool = True
    rounding: str = "nearest_even"
    ste: str = "identity"
    mx_block: int = 32
    mx_scale: str = "floor"
    margin: float = 1.0
    scale_min: float = 1e-10

    def __post_init__(self):
        fmt = resolve_format(self.format, "CastConfig: ")
        if fmt is None:
            raise ValueError("CastConfig needs a format (use None for the role instead "
                             "to leave it in float32)")
        object.__setattr__(self, "_fmt", fmt)
        _check_choice(self.scaling, SCALINGS, "scaling recipe")
        _check_choice(self.rounding, ROUNDINGS, "rounding mode")
        _check_choice(self.ste, ("identity", "clipped"), "ste")
        _check_choice(self.mx_scale, MX_SCALES, "mx_scale rule")
        _check_int(self.history_len, "history_len")
        _check_int(self.mx_block, "mx_block")
        for name in ("margin", "scale_min"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        if self.scaling == "mx" and fmt.bits > 8:
            raise ValueError(f"MX scaling needs an element format of at most 8 bits, "
                             f"{fmt.name} has {fmt.bits}")

    @property
    def fmt(self):
        """The resolved format object."""
        return self._fmt

    def __getstate__(self):
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __setstate__(self, state):
        for k, v in state.items():
            object.__setattr__(self, k, v)
        self.__post_init__()


ROLES = ("weight", "input", "grad_output")


@dataclasses.dataclass(frozen=True)
class LinearConfig:
    """The cast of each role of a Linear (None: float32) and the layer's
    settings (see the module documentation)."""

    weight: Optional[CastConfig] = None
    input: Optional[CastConfig] = None
    grad_output: Optional[CastConfig] = None
    seed: int = 0
    update_history: str = "train"
    track_error: bool = False
    sync_amax: bool = True

    def __post_init__(self):
        for role in ROLES:
            c = getattr(self, role)
            if c is not None and not isinstance(c, CastConfig):
                raise TypeError(f"LinearConfig.{role} must be a CastConfig or None, "
                                f"not {type(c).__name__}")
        if all(getattr(self, r) is None for r in ROLES):
            raise ValueError("LinearConfig quantizes nothing: give at least one of "
                             "weight, input, grad_output")
        _check_int(self.seed, "seed", lo=0)
        _check_choice(self.update_history, ("train", "always"), "update_history")

    @classmethod
    def altgrad(cls, format, quantize_input=False, history_len=16):
        """AltGrad's QuantizedLinear: ``format`` on the weights (and on the
        inputs with ``quantize_input``), delayed scaling over
        ``history_len`` steps with the current amax in the window,
        round to nearest even, no gradient quantization."""
        c = CastConfig(format, "delayed", history_len)
        return cls(weight=c, input=c if quantize_input else None)


def _fp8_recipe():
    return LinearConfig(weight=CastConfig("float8_e4m3fn"),
                        input=CastConfig("float8_e4m3fn"),
                        grad_output=CastConfig("float8_e5m2"))


#: Named presets of :class:`LinearConfig`. ``"fp8"``: the standard FP8
#: recipe (float8_e4m3fn weights and inputs, float8_e5m2 output gradients,
#: delayed scaling over 16 steps); ``"fp8_sr"``: the same with stochastic
#: rounding of the gradients; ``"mx_fp8"``: MX blocks of 32 (float8_e4m3fn
#: forward, float8_e5m2 gradients, the round-up shared-scale rule).
RECIPES = {
    "fp8": _fp8_recipe(),
    "fp8_sr": LinearConfig(weight=CastConfig("float8_e4m3fn"),
                           input=CastConfig("float8_e4m3fn"),
                           grad_output=CastConfig("float8_e5m2", rounding="stochastic")),
    "mx_fp8": LinearConfig(weight=CastConfig("float8_e4m3fn", "mx", mx_scale="rceil"),
                           input=CastConfig("float8_e4m3fn", "mx", mx_scale="rceil"),
                           grad_output=CastConfig("float8_e5m2", "mx", mx_scale="rceil")),
}


def recipe(name):
    """The :class:`LinearConfig` preset called ``name`` (see
    :data:`RECIPES`); ValueError listing the names otherwise."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}: expected one of {', '.join(RECIPES)}")
    return RECIPES[name]


@dataclasses.dataclass
class LayerPrecisionRule:
    """``(pattern, format)``: layers whose name matches get ``format``
    (None: kept in high precision). Beyond AltGrad: ``config`` (a
    :class:`LinearConfig`, used instead of the format: per-role casts) and
    ``match``: ``"search"`` (AltGrad: ``re.search``), ``"fullmatch"`` (the
    regex must match the whole module name) or ``"substring"`` (plain
    ``in``). Formats and patterns are checked here."""

    pattern: str
    format: Optional[str]
    config: Optional[LinearConfig] = None
    match: str = "search"

    def __post_init__(self):
        if not isinstance(self.pattern, str):
            raise TypeError(f"pattern must be a str, not {type(self.pattern).__name__}")
        _check_choice(self.match, MATCHES, "match mode")
        if self.match != "substring":
            try:
                self._re = re.compile(self.pattern)
            except re.error as e:
                raise ValueError(f"rule {self.pattern!r}: bad regular expression: {e}") from None
        resolve_format(self.format, f"rule {self.pattern!r}: ")
        if self.config is not None and not isinstance(self.config, LinearConfig):
            raise TypeError(f"rule {self.pattern!r}: config must be a LinearConfig")

    def matches(self, layer_name):
        """Whether the rule applies to the module called ``layer_name``."""
        if self.match == "substring":
            return self.pattern in layer_name
        if self.match == "fullmatch":
            return self._re.fullmatch(layer_name) is not None
        return self._re.search(layer_name) is not None

    def get_format(self):
        """The rule's format object (None: high precision)."""
        return resolve_format(self.format, f"rule {self.pattern!r}: ")

    def get_config(self, history_len=16, quantize_input=False):
        """The :class:`LinearConfig` this rule gives (None: not wrapped):
        ``config`` when set, else AltGrad's from the format."""
        if self.config is not None:
            return self.config
        f = self.format
        return None if f is None else LinearConfig.altgrad(f, quantize_input, history_len)

    def __getstate__(self):
        d = dict(self.__dict__)
        d.pop("_re", None)
        return d

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__post_init__()


@dataclasses.dataclass
class QuantizationConfig:
    """Per-layer precision: ``layer_rules`` in order (first match wins),
    else ``default_format`` (None: not wrapped), every wrapper with
    ``history_len`` and ``quantize_input`` (AltGrad). Beyond AltGrad:
    ``default_config``, a :class:`LinearConfig` for layers no rule matches
    (instead of ``default_format``)."""

    default_format: Optional[str] = "E5M2"
    layer_rules: List[LayerPrecisionRule] = dataclasses.field(default_factory=list)
    history_len: int = 16
    quantize_input: bool = False
    default_config: Optional[LinearConfig] = None

    def __post_init__(self):
        resolve_format(self.default_format, "default_format: ")
        _check_int(self.history_len, "history_len")
        for r in self.layer_rules:
            if not isinstance(r, LayerPrecisionRule):
                raise TypeError(f"layer_rules must hold LayerPrecisionRule, not "
                                f"{type(r).__name__}")

    def find_rule(self, layer_name):
        """The first rule matching ``layer_name``, or None."""
        for rule in self.layer_rules:
            if rule.matches(layer_name):
                return rule
        return None

    def get_format_for_layer(self, layer_name):
        """AltGrad: the format object for ``layer_name`` (None: keep it)."""
        rule = self.find_rule(layer_name)
        if rule is not None:
            return rule.get_format()
        return resolve_format(self.default_format, "default_format: ")

    def get_config_for_layer(self, layer_name):
        """The :class:`LinearConfig` for ``layer_name`` (None: not wrapped)."""
        rule = self.find_rule(layer_name)
        if rule is not None:
            return rule.get_config(self.history_len, self.quantize_input)
        if self.default_config is not None:
            return self.default_config
        if self.default_format is None:
            return None
        return LinearConfig.altgrad(self.default_format, self.quantize_input, self.history_len)


def create_mixed_precision_config(attention_format=None, mlp_format="E5M2",
                                  lm_head_format=None, default_format="E5M2",
                                  history_len=16, quantize_input=False):
    """AltGrad's mixed-precision config: rules ``\\.attn\\.`` ->
    attention_format, ``\\.mlp\\.`` -> mlp_format, ``lm_head`` ->
    lm_head_format (None: high precision), else ``default_format``."""
    rules = [
        LayerPrecisionRule(r"\.attn\.", attention_format),
        LayerPrecisionRule(r"\.mlp\.", mlp_format),
        LayerPrecisionRule(r"lm_head", lm_head_format),
    ]
    return QuantizationConfig(default_format=default_format, layer_rules=rules,
                              history_len=history_len, quantize_input=quantize_input)
