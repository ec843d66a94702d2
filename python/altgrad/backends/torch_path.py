# SPDX-License-Identifier: MIT
"""The device-generic path: altgrad's rounding core in torch tensor
operations, so that quantizers run on any torch device (CUDA, ...) and give
the same bits as the C core.

Everything works on the float32 bit pattern: int32 views (torch 1.13 has no
uint32: the unsigned 32-bit quantities, the random words and the ARS state,
are int32 patterns, compared through their halves where order matters),
shifts, masks, compares and ``torch.where``;
no log2 / pow / frexp and no Python loop over elements. The only float
arithmetic is what the C core does in float32 too (``x / scale``,
``value * scale``, the MX pre-scaling ``x * 2^-k``) and the double-precision
quotient of ``compute_scale``; IEEE arithmetic gives the same results on
every device. The format's parameters come from the C registry
(:func:`altgrad.format`): the C core stays the one owner of formats.

Each function here mirrors one C function and is tested bit-exact against
it on CPU (``python/tests/test_torch_path.py``):

- :func:`round_codes` — ``ag__round`` (src/ag_format.c), per element, with
  the flags the bulk calls count;
- :func:`decode_values` — ``ag__decode``;
- :func:`quantize`, :func:`quantize_keep_mask`, :func:`encode`,
  :func:`decode`, :func:`dequantize` — ``ag_quantize`` (+ the clipped STE
  mask), ``ag_encode_u8``/``_u16``, ``ag_decode_u8``/``_u16``,
  ``ag_dequantize``;
- :func:`random_words` — the stochastic stream: ARS-7 (AES rounds through
  table lookups on int tensors, round keys as ``ag__ars_keys``), element g
  taking word g mod 4 of block g / 4;
- :func:`amax`, :func:`amax_rows`, :func:`compute_scale` — ``ag_amax``,
  ``ag_amax_rows``, ``ag_compute_scale_rows``;
- :func:`quantize_rows`, :func:`quantize_rows_keep_mask` —
  ``ag_quantize_rows`` (+ backward mask);
- :func:`mx_scale_codes`, :func:`mx_encode`, :func:`mx_decode`,
  :func:`mx_quantize`, :func:`mx_keep_mask` — the MX block calls;
- :func:`bit_stall`, :func:`flips`, :func:`update_flips`,
  :func:`code_flips`, :func:`ulp_distance`, :func:`ulp_distance_stats`,
  :func:`stiffness`, :func:`exp_hist` — the diagnostics of ag_diag.c, on
  codes as it computes them.

Inputs are float32 tensors on any device (any shape; non-contiguous ones
are read through ``reshape``, on their device). Results stay on the input's
device; nothing is copied to the host except the scalars a caller asks for
(``stats`` counters, and the one boolean of a validity check on codes or
scales, which must raise before anything is returned).
"""
import functools
import math
import operator

import torch

__all__ = [
    "params",
    "round_codes",
    "decode_values",
    "quantize",
    "quantize_keep_mask",
    "dequantize",
    "encode",
    "decode",
    "random_words",
    "ars_blocks",
    "amax",
    "amax_rows",
    "compute_scale",
    "quantize_rows",
    "quantize_rows_keep_mask",
    "mx_scale_codes",
    "mx_encode",
    "mx_decode",
    "mx_quantize",
    "mx_keep_mask",
    "bit_stall",
    "flips",
    "update_flips",
    "code_flips",
    "ulp_distance",
    "ulp_distance_stats",
    "stiffness",
    "exp_hist",
]

_FLT_MAX = 3.4028234663852886e38
_U32 = 0xFFFFFFFF
_U64 = (1 << 64) - 1

# Rounding modes and overflow policies by their canonical names (the C
# library's option vocabulary: _C.option parses and checks every name).
NEAREST_EVEN, NEAREST_AWAY, TOWARD_ZERO = "nearest_even", "nearest_away", "toward_zero"
DOWN, UP, STOCHASTIC = "down", "up", "stochastic"
SATURATE, IEEE = "saturate", "ieee"


def rounding_mode(name):
    """The canonical name of a rounding mode (ValueError if unknown, from
    the C library's option parser)."""
    from .. import _C

    return _C.option("rounding", name)


def overflow_policy(name):
    """The canonical name of an overflow policy (ValueError if unknown)."""
    from .. import _C

    return _C.option("overflow", name)


def _u64(v, name):
    """An unsigned 64-bit option (seed, stream, offset): TypeError for a
    non-integer, ValueError outside 0 .. 2^64 - 1."""
    if isinstance(v, bool):
        raise TypeError(f"{name} must be an int, not bool")
    try:
        v = operator.index(v)
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type(v).__name__}") from None
    if not 0 <= v <= _U64:
        raise ValueError(f"{name} must be in 0 .. 2**64-1, got {v}")
    return v


# ---------------------------------------------------------------------------
# format parameters (read from the C registry)
# ---------------------------------------------------------------------------


class _Params:
    """The fields of an ag_format the rounding core reads, as Python ints."""

    __slots__ = ("E", "M", "bias", "signed", "no_zero", "specials", "bits",
                 "ncodes", "has_inf", "has_nan", "has_negzero", "max_code",
                 "nan_code", "inf_code", "sign_mask", "emin", "emax",
                 "max_finite", "all_mag", "fmt")

    def __init__(self, f):
        self.fmt = f
        self.E = int(f.ebits)
        self.M = int(f.mbits)
        self.bias = int(f.bias)
        self.signed = bool(f.is_signed)
        self.no_zero = bool(f.no_zero)
        self.specials = str(f.specials)
        self.bits = int(f.bits)
        self.ncodes = int(f.ncodes)
        self.has_inf = bool(f.has_inf)
        self.has_nan = bool(f.has_nan)
        self.has_negzero = bool(f.has_negzero)
        self.max_code = int(f.max_code)
        self.nan_code = int(f.nan_code)
        self.inf_code = int(f.inf_code)
        self.sign_mask = int(f.sign_mask)
        self.emin = int(f.emin)
        self.emax = int(f.emax)
        self.max_finite = float(f.max_finite)
        self.all_mag = (1 << (self.E + self.M)) - 1


@functools.lru_cache(maxsize=128)
def _params_of(f):
    return _Params(f)


def params(format):
    """The rounding parameters of ``format`` (an altgrad.Format, FP8Format
    or spec string), read from the C registry; cached per format."""
    from .. import format as _as_format

    return _params_of(_as_format(format))


def _bits(v):
    """The float32 bit pattern of v as int32 (the sign bit is the int's)."""
    return v.contiguous().view(torch.int32)


def _from_bits(b):
    """float32 tensor with the bit pattern b (int32)."""
    return b.contiguous().view(torch.float32)


def _signed_bits(neg, pos):
    """int32 patterns: pos (< 2^31) with the sign bit where neg."""
    return neg.to(torch.int32) * (-2**31) + pos


def _to_i32(w):
    """int64 words in [0, 2^32) as the int32 of the same 32 bits."""
    if w.dtype == torch.int32:
        return w
    return torch.where(w >= 2**31, w - 2**32, w).to(torch.int32)


def _sel(m, a, b):
    """``torch.where(m, a, b)`` for int32 tensors (or Python ints). On the
    CPU a bitwise blend, ``b ^ ((a ^ b) & -m)``: torch 1.13's CPU where is
    not vectorized and costs some twenty integer operations; elsewhere
    torch.where itself (one pass)."""
    if m.device.type == "cpu":
        return b ^ ((a ^ b) & -m.to(torch.int32))
    return torch.where(m, a, b)


def _self(m, a, b):
    """``torch.where(m, a, b)`` for float32 tensors, bit for bit (on the CPU
    through _sel on the patterns, NaN payloads and signed zeros kept)."""
    if m.device.type == "cpu":
        return _from_bits(_sel(m, _bits(a), _bits(b)))
    return torch.where(m, a, b)


def _pow2(k):
    """2^k as float32 for an int32 tensor k in [-149, 127] (built from bits)."""
    k = k.clamp(-149, 127)  # every shift below is of a nonnegative amount and value
    b = _sel(k >= -126, (k.clamp(min=-126) + 127) << 23,
                    torch.ones_like(k) << (k + 149).clamp(0, 22))
    return _from_bits(b)


def _floor_log2(a, sig, norm):
    """floor(log2 |v|) of nonzero finite float32 patterns a (sign cleared):
    the exponent field, or for subnormals the top bit of the significand
    (read from the exact int -> float32 conversion of sig < 2^23)."""
    top = (_bits(sig.to(torch.float32)) >> 23) - 127
    return _sel(norm, (a >> 23) - 127, top - 149)


# ---------------------------------------------------------------------------
# the rounding core
# ---------------------------------------------------------------------------


def round_codes(v, p, mode=NEAREST_EVEN, ovf=SATURATE, rnd=None, x=None,
                want_flags=False):
    """The codes of float32 tensor ``v`` (int32, same shape) under rounding
    ``mode`` and overflow policy ``ovf`` (canonical names), as ``ag__round``
    element by element. ``rnd``: the random words of v's shape (stochastic
    mode): int32 holding the 32 bits, or int64 in [0, 2^32).

    Everything is int32 arithmetic (int64 bitwise operations are many times
    slower in torch's CPU kernels, and twice the memory traffic on a GPU);
    the comments say why no value leaves its range. With ``want_flags`` also returns the boolean
    masks (overflow, underflow, nan) the bulk calls count; ``x`` (the input
    before the division by the scale) adds the bulk calls' underflow of a
    nonzero x whose quotient is already zero.
    """
    b = _bits(v)
    neg = b < 0
    sign = neg.to(torch.int32)
    a = b & 0x7FFFFFFF
    is_nan = a > 0x7F800000
    is_inf = a == 0x7F800000
    is_zero = a == 0
    fe = a >> 23
    norm = fe != 0
    sig = _sel(norm, (a & 0x7FFFFF) | 0x800000, a)
    ex = _sel(norm, fe - 150, -149)
    ux = _floor_log2(a, sig, norm)
    M = p.M

    if not p.signed:
        # -0 is +0; other negative values are the NaN code (or 0, underflow)
        uneg = neg & ~is_zero & ~is_nan
        sign = torch.zeros_like(sign)
        neg = torch.zeros_like(neg)
    else:
        uneg = None
    sm = sign * p.sign_mask
    zero_code = sign * (p.sign_mask if p.has_negzero else 0)
    max_code = sm | p.max_code
    if ovf == IEEE and p.has_inf:
        ovf_code = sm | p.inf_code
    elif ovf == IEEE and p.has_nan:
        ovf_code = torch.full_like(sm, p.nan_code)
    else:
        ovf_code = max_code
    if mode == TOWARD_ZERO:
        beyond = max_code
    elif mode == DOWN:
        beyond = _sel(neg, ovf_code, max_code)
    elif mode == UP:
        beyond = _sel(neg, max_code, ovf_code)
    else:
        beyond = ovf_code

    # grid step 2^q at |v|; base = code of the binade's first point minus
    # that point's multiple of 2^q
    low = ux < p.emin
    if p.E == 0:
        q = torch.full_like(ux, p.emin - M)
        base = torch.zeros_like(ux)
    else:
        q = _sel(low, p.emin - M, ux - M)
        # the lanes that keep this have emin <= ux <= emax + 1: the clamp
        # keeps the others' products inside int32 (|base| < 2^17)
        uxc = ux.clamp(p.emin, p.emax + 1)
        base = _sel(low, 0, (uxc + p.bias - 1) * (1 << M))
    # bits discarded; lanes decided elsewhere (0, inf, NaN, beyond) may have
    # any s. Since sig < 2^24, every s >= 25 gives t = 0, r = sig and half
    # > r, so s clamped to 30 keeps the shifts defined and the results
    # those of the C core's 64-bit arithmetic; s_full (to 63) is for the
    # stochastic threshold.
    s_full = (q - ex).clamp(0, 63)
    s = s_full.clamp(max=30)
    t = sig >> s
    one = torch.ones_like(s)
    r = sig & ((one << s) - 1)
    half = (one << s) >> 1
    if mode == NEAREST_EVEN:
        up = (r > half) | ((r == half) & (r != 0) & (((base + t) & 1) == 1))
    elif mode == NEAREST_AWAY:
        up = (r != 0) & (r >= half)
    elif mode == TOWARD_ZERO:
        up = torch.zeros_like(neg)
    elif mode == DOWN:
        up = neg & (r != 0)
    elif mode == UP:
        up = ~neg & (r != 0)
    elif mode == STOCHASTIC:
        if rnd is None:
            raise ValueError("stochastic rounding needs the random words")
        # up iff word < thr = r * 2^(32 - s) (s <= 32) or floor(r / 2^(s - 32)),
        # the word unsigned. For s < 32: word < r * 2^k iff floor(word / 2^k)
        # < r, and floor(word / 2^k) = u >> (k - 1) with u = word >> 1 (a
        # nonnegative int32). For s >= 32 the threshold is below 2^24, so
        # the word must be a nonnegative int32 below it.
        w = _to_i32(rnd)
        u = (w >> 1) & 0x7FFFFFFF
        small = (u >> (31 - s_full).clamp(0, 31)) < r
        large = (w >= 0) & (w < (r >> (s_full - 32).clamp(0, 30)))
        lt32 = s_full < 32
        up = (lt32 & small) | (~lt32 & large)
    else:
        raise ValueError(f"unknown rounding mode {mode}")
    code = base + t + up.to(torch.int32)
    over = code > p.max_code
    under = torch.zeros_like(over) if p.no_zero else code == 0
    res = _sel(under, zero_code, sm | code)
    res = _sel(over, beyond, res)

    big = ux > p.emax + 1  # at least twice max_finite
    res = _sel(big, beyond, res)
    if p.no_zero:  # below the smallest value: the smallest
        res = _sel(low & ~big, sm, res)
    res = _sel(is_inf, (sm | p.inf_code) if p.has_inf else ovf_code, res)
    nan_or0 = p.nan_code if p.has_nan else 0
    if p.no_zero:
        res = _sel(is_zero, nan_or0, res)
    else:
        res = _sel(is_zero, zero_code, res)
    if uneg is not None:
        res = _sel(uneg, nan_or0, res)
    res = _sel(is_nan, nan_or0, res)
    if not want_flags:
        return res

    special = is_nan | is_inf | is_zero
    if uneg is not None:
        special = special | uneg
    regular = ~special & ~big
    if p.no_zero:
        regular = regular & ~low
    f_ovf = is_inf | (big & ~is_nan & ~is_zero) | (regular & over)
    f_unf = regular & under & ~over
    f_nan = is_nan.clone()
    if p.no_zero:
        f_nan = f_nan | is_zero
    if uneg is not None:
        f_ovf = f_ovf & ~uneg
        if p.has_nan:
            f_nan = f_nan | uneg
        else:
            f_unf = f_unf | uneg
    if x is not None and not p.no_zero:
        f_unf = f_unf | ((v == 0) & (x != 0))
    return res, (f_ovf, f_unf, f_nan)


def decode_values(codes, p):
    """``ag__decode`` of integer codes (each < ncodes) as float32: NaN codes a
    quiet NaN with the code's sign, inf codes +-inf, else the exact value
    (the significand times a power of two built from bits)."""
    c = codes.to(torch.int32)
    neg = (c & p.sign_mask) != 0 if p.sign_mask else torch.zeros_like(c, dtype=torch.bool)
    mag = c & p.all_mag
    m = mag & ((1 << p.M) - 1)
    e = mag >> p.M
    if p.E == 0:
        sig = m
        k = torch.full_like(m, -p.M - p.bias)
    elif p.no_zero:
        sig = m | (1 << p.M)
        k = e - p.bias - p.M
    else:
        sub = e == 0
        sig = _sel(sub, m, m | (1 << p.M))
        k = _sel(sub, 1 - p.bias - p.M, e - p.bias - p.M)
    val = sig.to(torch.float32) * _pow2(k)  # exact: every value fits float32
    val = _self(neg, -val, val)
    if p.specials == "none":
        return val
    qnan = _from_bits(_signed_bits(neg, 0x7FC00000))
    if p.specials == "ieee":
        top = e == (p.all_mag >> p.M)
        if p.M:
            val = _self(top & (m != 0), qnan, val)
        val = _self(top & (m == 0), _from_bits(_signed_bits(neg, 0x7F800000)), val)
    elif p.specials == "fn":
        val = _self(mag == p.all_mag, qnan, val)
    elif p.specials == "fnuz":
        val = _self(c == p.sign_mask, qnan, val)
    return val


# ---------------------------------------------------------------------------
# ARS-7: the stochastic stream
# ---------------------------------------------------------------------------

_ARS_ROUNDS = 7
_ARS_W0 = 0x9E3779B97F4A7C15  # as AG__ARS_W0 / AG__ARS_W1 in ag_internal.h
_ARS_W1 = 0xBB67AE8584CAA73B


def _aes_sbox():
    """The AES S-box: the multiplicative inverse in GF(2^8) modulo x^8 +
    x^4 + x^3 + x + 1 followed by the affine map (FIPS-197, 5.1.1)."""
    def mul(a, b):
        r = 0
        while b:
            if b & 1:
                r ^= a
            a = ((a << 1) ^ (0x1B if a & 0x80 else 0)) & 0xFF
            b >>= 1
        return r

    inv = [0] * 256
    for a in range(1, 256):
        for b in range(1, 256):
            if mul(a, b) == 1:
                inv[a] = b
                break
    sbox = []
    for a in range(256):
        x = inv[a]
        y = x
        for i in range(1, 5):
            y ^= ((x << i) | (x >> (8 - i))) & 0xFF
        sbox.append(y ^ 0x63)
    return sbox


def _i32(u):
    """The int32 value of the 32-bit pattern u (a Python int)."""
    u &= _U32
    return u - (1 << 32) if u >= 1 << 31 else u


@functools.lru_cache(maxsize=1)
def _aes_tables_host():
    """Eight tables of 256 int32 patterns: T rotated by 0, 8, 16, 24 bits
    (T[a] the column (2s, s, s, 3s) of SubBytes + MixColumns for s =
    SubBytes(a), row 0 in the low byte) and s shifted by 0, 8, 16, 24 bits
    (the last round), so that no shift reaches the sign bit at run time."""
    sbox = _aes_sbox()

    def xt(a):
        return ((a << 1) ^ (0x1B if a & 0x80 else 0)) & 0xFF

    te = [xt(s) | (s << 8) | (s << 16) | ((xt(s) ^ s) << 24) for s in sbox]
    rot = [[_i32((t << (8 * j)) | (t >> (32 - 8 * j))) for t in te] for j in range(4)]
    shifted = [[_i32(s << (8 * j)) for s in sbox] for j in range(4)]
    return rot + shifted


_TABLE_CACHE = {}


def _aes_tables(device):
    """The tables of _aes_tables_host as an int32 tensor (8, 256) on device
    (built once per device: a constant, like the format parameters)."""
    key = str(device)
    tabs = _TABLE_CACHE.get(key)
    if tabs is None:
        tabs = torch.tensor(_aes_tables_host(), dtype=torch.int32, device=device)
        _TABLE_CACHE[key] = tabs
    return tabs


def _ars32(ctr, key_lo, key_hi, rounds):
    """ARS-rounds of the int32 counter words ctr (4, n): int32 output words."""
    tabs = _aes_tables(ctr.device)
    n = ctr.shape[1]

    def rkey(r):
        lo = (key_lo + r * _ARS_W0) & _U64
        hi = (key_hi + r * _ARS_W1) & _U64
        return torch.tensor([_i32(lo), _i32(lo >> 32), _i32(hi), _i32(hi >> 32)],
                            dtype=torch.int32, device=ctr.device).view(4, 1)

    def look(j, idx):
        return torch.index_select(tabs[j], 0, idx.reshape(-1)).view(4, n)

    s = ctr ^ rkey(0)
    for r in range(1, rounds + 1):
        # ShiftRows: row j of column c comes from column c + j (the
        # arithmetic shifts are masked to the byte)
        a0 = s & 0xFF
        a1 = (s.roll(-1, 0) >> 8) & 0xFF
        a2 = (s.roll(-2, 0) >> 16) & 0xFF
        a3 = (s.roll(-3, 0) >> 24) & 0xFF
        if r < rounds:  # AESENC: SubBytes, ShiftRows, MixColumns
            t = look(0, a0) ^ look(1, a1) ^ look(2, a2) ^ look(3, a3)
        else:  # AESENCLAST: no MixColumns
            t = look(4, a0) | look(5, a1) | look(6, a2) | look(7, a3)
        s = t ^ rkey(r)
    return s


def ars_blocks(ctr, key_lo, key_hi, rounds=_ARS_ROUNDS):
    """ARS-``rounds`` of counter blocks ``ctr`` (an int64 tensor (4, n) of
    32-bit words, word 0 first) with the 128-bit key (key_lo, key_hi) (two
    64-bit ints): round key r is (key_lo + r W0, key_hi + r W1) modulo
    2^64, as Random123's ars4x32 and ``ag__ars_keys``. Returns the (4, n)
    output words as int64 in [0, 2^32). Rounds 1 .. rounds-1 are AESENC
    (SubBytes, ShiftRows, MixColumns, key), the last AESENCLAST."""
    out = _ars32(_to_i32(ctr), key_lo & _U64, key_hi & _U64, rounds)
    return out.to(torch.int64) & _U32


def _random_words32(n, seed, stream, offset, device):
    """random_words as int32 patterns."""
    seed = _u64(seed, "seed")
    stream = _u64(stream, "stream")
    offset = _u64(offset, "offset")
    if n == 0:
        return torch.zeros(0, dtype=torch.int32, device=device)
    lead = offset & 3
    nblk = (lead + n + 3) // 4
    blk0 = offset >> 2
    # block indices modulo 2^62 (g = offset + i modulo 2^64), split in words
    blk = (torch.arange(nblk, dtype=torch.int64, device=device) + blk0) & ((1 << 62) - 1)
    lo = blk & _U32
    ctr = torch.stack([_to_i32(lo), (blk >> 32).to(torch.int32),
                       torch.full((nblk,), _i32(stream), dtype=torch.int32, device=device),
                       torch.full((nblk,), _i32(stream >> 32), dtype=torch.int32,
                                  device=device)])
    words = _ars32(ctr, seed, 0, _ARS_ROUNDS).t().reshape(-1)
    return words[lead:lead + n]


def random_words(n, seed, stream, offset, device):
    """The 32 random bits of stream elements offset .. offset + n - 1 (as
    int64 in [0, 2^32)): element g is word g mod 4 of ARS-7 with key (seed,
    0) at counter (g / 4 lo, g / 4 hi, stream lo, stream hi), indices modulo
    2^64 as in the C core."""
    return _random_words32(n, seed, stream, offset, device).to(torch.int64) & _U32


# ---------------------------------------------------------------------------
# quantize, encode, decode
# ---------------------------------------------------------------------------


def _check_float(x, name="x"):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, not {type(x).__name__}")
    if x.dtype != torch.float32:
        raise TypeError(f"{name} must be a float32 tensor, got {x.dtype} (convert "
                        f"explicitly, e.g. {name}.float())")


def _scale(scale, device):
    """A per-tensor scale as a 0-d float32 tensor on device (a tensor, not a
    Python number: torch may turn a division by a host scalar into a product
    with its reciprocal, which is not the float32 quotient)."""
    from .._arrays import scale_value

    s = scale_value(scale)
    s32 = torch.tensor(s, dtype=torch.float32)
    if not (s32.item() > 0 and s32.item() <= _FLT_MAX):
        raise ValueError(f"scale must be positive and finite, got {s}")
    return s32.to(device)


def _add_stats(stats, n, flags):
    if stats is None:
        return
    if not isinstance(stats, dict):
        raise TypeError(f"stats must be a dict (counters are added to it), not "
                        f"{type(stats).__name__}")
    f_ovf, f_unf, f_nan = flags
    counts = torch.stack([f_ovf.sum(), f_unf.sum(), f_nan.sum()]).tolist()
    for k, c in zip(("total", "overflow", "underflow", "nan"), [n] + counts):
        stats[k] = stats.get(k, 0) + int(c)


def _stream(n, rounding, seed, stream, offset, device):
    if rounding != STOCHASTIC:
        return None
    return _random_words32(n, seed, stream, offset, device)


def _round_flat(xf, v, p, rounding, overflow, seed, stream, offset, stats):
    """Codes of the flat float32 v (= xf / scale), stats added."""
    rnd = _stream(v.numel(), rounding, seed, stream, offset, v.device)
    if rnd is not None:
        rnd = rnd.view(v.shape)
    if stats is None:
        return round_codes(v, p, rounding, overflow, rnd)
    code, flags = round_codes(v, p, rounding, overflow, rnd, x=xf, want_flags=True)
    _add_stats(stats, v.numel(), flags)
    return code


def _quantize_flat(xf, s, p, rounding, overflow, seed, stream, offset, stats):
    """``ag_quantize`` of flat xf with scale s (float32, broadcastable)."""
    v = xf / s
    code = _round_flat(xf, v, p, rounding, overflow, seed, stream, offset, stats)
    val = decode_values(code, p)
    y = _self(torch.isnan(val), val, val * s)
    return _self(torch.isnan(xf), xf, y)


def quantize(x, format, scale=1.0, *, rounding="nearest_even", overflow="saturate",
             seed=0, stream=0, offset=0, stats=None):
    """``ag_quantize`` on x's device: ``to_real(to_bits(x / scale)) *
    scale`` in float32 (NaN inputs kept as they are), a new contiguous
    tensor of x's shape. Options and stats as the C call."""
    _check_float(x)
    p = params(format)
    mode, ovf = rounding_mode(rounding), overflow_policy(overflow)
    s = _scale(scale, x.device)
    xf = x.reshape(-1)
    return _quantize_flat(xf, s, p, mode, ovf, seed, stream, offset, stats).view(x.shape)


def quantize_keep_mask(x, format, scale=1.0):
    """The clipped straight-through mask of ``ag_quantize_backward``: True
    where ``|x / scale| <= max_finite`` or x / scale is NaN."""
    _check_float(x)
    p = params(format)
    s = _scale(scale, x.device)
    return ~((x / s).abs() > p.max_finite)


def dequantize(x, scale=1.0):
    """``ag_dequantize``: x * scale in float32, on x's device."""
    _check_float(x)
    return x * _scale(scale, x.device)


def _to_storage(code, p):
    if p.bits <= 8:
        return code.to(torch.uint8)
    # 16-bit codes in int16 storage (torch has no uint16), as the CPU API
    return _sel(code >= 32768, code - 65536, code).to(torch.int16)


def encode(x, format, scale=1.0, *, rounding="nearest_even", overflow="saturate",
           seed=0, stream=0, offset=0, stats=None):
    """``ag_encode_u8`` / ``_u16`` on x's device: the codes of x / scale,
    ``torch.uint8`` for formats of at most 8 bits, else ``torch.int16``
    holding the 16 bits."""
    _check_float(x)
    p = params(format)
    mode, ovf = rounding_mode(rounding), overflow_policy(overflow)
    s = _scale(scale, x.device)
    xf = x.reshape(-1)
    code = _round_flat(xf, xf / s, p, mode, ovf, seed, stream, offset, stats)
    return _to_storage(code, p).view(x.shape)


def _codes32(codes, p, name="codes"):
    """int32 codes of uint8 / int16 (16-bit) storage, checked < ncodes."""
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, not {type(codes).__name__}")
    if codes.dtype == torch.uint8:
        c = codes.to(torch.int32)
    elif codes.dtype == torch.int16:
        c = codes.to(torch.int32) & 0xFFFF
    else:
        raise TypeError(f"{name} must be a uint8 or int16 (16-bit codes) tensor, got "
                        f"{codes.dtype}")
    if p.bits > 8 * codes.element_size():
        raise ValueError(f"{p.fmt.name} has {p.bits} bits: its codes do not fit "
                         f"{codes.dtype} storage")
    if p.ncodes < (1 << (8 * codes.element_size())) and c.numel() and \
            bool((c >= p.ncodes).any()):
        raise ValueError(f"{name} holds a code outside {p.fmt.name}'s codes "
                         f"0 .. {p.ncodes - 1}")
    return c


def decode(codes, format, scale=1.0):
    """``ag_decode_u8`` / ``_u16`` on the codes' device: ``to_real(code) *
    scale`` as float32. ValueError for a code outside the format."""
    p = params(format)
    c = _codes32(codes, p)
    s = _scale(scale, codes.device)
    val = decode_values(c.reshape(-1), p)
    return _self(torch.isnan(val), val, val * s).view(codes.shape)


# ---------------------------------------------------------------------------
# scaling: amax, compute_scale, per-row
# ---------------------------------------------------------------------------


def _abs_no_nan(x):
    a = x.abs()
    return _self(torch.isnan(a), torch.zeros_like(a), a)


def amax(x):
    """``ag_amax``: (max |x| over the non-NaN elements as a 0-d float32
    tensor on x's device (0 when empty or all NaN, +inf for +-inf), the
    number of NaN elements as a 0-d int64 tensor)."""
    _check_float(x)
    xf = x.reshape(-1)
    if xf.numel() == 0:
        z = torch.zeros((), dtype=torch.float32, device=x.device)
        return z, torch.zeros((), dtype=torch.int64, device=x.device)
    return _abs_no_nan(xf).max(), torch.isnan(xf).sum()


def _matrix(shape):
    if len(shape) == 0:
        return 1, 1
    return math.prod(shape[:-1]), shape[-1]


def amax_rows(x):
    """``ag_amax_rows`` of x cut along its last axis: float32 of shape
    ``x.shape[:-1]`` on x's device (0 for rows of no element)."""
    _check_float(x)
    rows, cols = _matrix(x.shape)
    out_shape = tuple(x.shape[:-1])
    if cols == 0 or rows == 0:
        return torch.zeros(out_shape, dtype=torch.float32, device=x.device)
    return _abs_no_nan(x.reshape(rows, cols)).amax(dim=1).view(out_shape)


def _check_scale_opt(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a float, not {type(v).__name__}")
    v32 = float(torch.tensor(float(v), dtype=torch.float32))
    if not (v32 > 0 and v32 <= _FLT_MAX):
        raise ValueError(f"{name} must be positive and finite, got {v}")
    return v32


def compute_scale(amax, format, scale_min=1e-10, *, margin=1.0, pow2=False):
    """``ag_compute_scale`` per element of a float32 tensor of amax values,
    on its device: ``max(amax * margin / max_finite, scale_min)`` in double
    rounded once to float32 (+inf as FLT_MAX, a quotient beyond FLT_MAX
    FLT_MAX); ``pow2`` rounds up to a power of two (2^127 at most).
    ValueError for a NaN or negative amax (one boolean read back)."""
    _check_float(amax, "amax")
    p = params(format)
    smin = _check_scale_opt(scale_min, "scale_min")
    marg = _check_scale_opt(margin, "margin")
    if pow2 not in (True, False, 0, 1):
        raise ValueError(f"pow2 must be a bool, got {pow2!r}")
    if amax.numel() and bool((~(amax >= 0)).any()):
        raise ValueError("amax must be >= 0 and not NaN")
    a = amax.to(torch.float64).clamp(max=_FLT_MAX)
    s = a * marg / p.max_finite
    s = torch.where(s < smin, torch.full_like(s, smin), s)
    if pow2:
        b = s.view(torch.int64)  # s is a positive normal double
        e = (b >> 52) - 1023
        k = torch.where((b & ((1 << 52) - 1)) == 0, e, e + 1).clamp(max=127)
        return ((k + 1023) << 52).view(torch.float64).to(torch.float32)
    return s.clamp(max=_FLT_MAX).to(torch.float32)


def _row_scales(scales, rows, device):
    """Per-row scales as a float32 (rows,) tensor on device, every one
    checked positive and finite (ValueError)."""
    if isinstance(scales, torch.Tensor):
        if scales.dtype != torch.float32:
            raise TypeError(f"scales must be a float32 tensor, got {scales.dtype}")
        if scales.numel() != rows:
            raise ValueError(f"scales must hold one value per row ({rows}), got shape "
                             f"{tuple(scales.shape)}")
        s = scales.reshape(rows).to(device)
    else:
        s = _scale(scales, device).expand(rows)
    if rows and not bool(((s > 0) & (s <= _FLT_MAX)).all()):
        raise ValueError("every scale must be positive and finite")
    return s


def quantize_rows(x, format, scales, *, rounding="nearest_even", overflow="saturate",
                  seed=0, stream=0, offset=0, stats=None):
    """``ag_quantize_rows``: row r of x (last axis) quantized with
    ``scales[r]``; stochastic rounding keys element i of the flat x by
    ``offset + i``."""
    _check_float(x)
    p = params(format)
    mode, ovf = rounding_mode(rounding), overflow_policy(overflow)
    rows, cols = _matrix(x.shape)
    s = _row_scales(scales, rows, x.device)
    xm = x.reshape(rows, cols)
    y = _quantize_flat(xm, s.view(rows, 1), p, mode, ovf, seed, stream, offset, stats)
    return y.view(x.shape)


def quantize_rows_keep_mask(x, format, scales):
    """The clipped STE mask of ``ag_quantize_rows_backward``."""
    _check_float(x)
    p = params(format)
    rows, cols = _matrix(x.shape)
    s = _row_scales(scales, rows, x.device)
    return ~((x.reshape(rows, cols) / s.view(rows, 1)).abs() > p.max_finite).view(x.shape)


# ---------------------------------------------------------------------------
# MX blocks
# ---------------------------------------------------------------------------

_E8M0_NAN = 255


def _pad_blocks(m, nb, block):
    """The (rows, cols) matrix m as (rows, nb, block), the last block of a
    row padded with zeros."""
    rows, cols = m.shape
    if nb * block > cols:
        m = torch.cat([m, torch.zeros(rows, nb * block - cols, dtype=m.dtype,
                                      device=m.device)], 1)
    return m.view(rows, nb, block)


def _blocks(x, block):
    """x as (rows, nb, block) padded blocks, rows, cols, nb."""
    rows, cols = _matrix(x.shape)
    nb = -(-cols // block)
    return _pad_blocks(x.reshape(rows, cols), nb, block), rows, cols, nb


def _mx_check(p, block):
    if isinstance(block, bool) or not isinstance(block, int):
        raise TypeError(f"block must be an int, not {type(block).__name__}")
    if block <= 0:
        raise ValueError(f"block must be >= 1, got {block}")
    if p.bits > 8:
        raise ValueError(f"{p.fmt.name} has {p.bits} bits: MX element formats have at "
                         f"most 8")


def _mantissa(ab, norm, top):
    """The 23 fraction bits of the normalized significand of the
    nonnegative float32 patterns ab (subnormals shifted up to their top
    bit, whose exponent is top)."""
    sub = (ab << (-126 - top).clamp(0, 23)) & 0x7FFFFF
    return _sel(norm, ab & 0x7FFFFF, sub)


def _mx_rule(mx_scale):
    from .. import _C

    return _C.option("mx_scale", mx_scale)


def _mx_codes_of(xb, p, rule="floor"):
    """E8M0 codes (int32, (rows, nb)) of the padded blocks xb under the
    shared-scale rule (``floor``: OCP's floor(log2 amax) - emax; ``rceil``:
    one more where amax / 2^e would exceed max_finite, i.e. where amax's
    normalized significand is above max_finite's: both lie in one binade)."""
    has_nan = torch.isnan(xb).any(dim=2)
    a = _abs_no_nan(xb).amax(dim=2)
    ab = _bits(a)  # a >= 0
    fe = ab >> 23
    norm = fe != 0
    top = _floor_log2(ab, ab & 0x7FFFFF, norm)
    e = top - p.emax
    if rule == "rceil":
        mb = _bits(torch.tensor(p.max_finite, dtype=torch.float32)).item()
        mtop = (mb >> 23) - 127 if mb >> 23 else mb.bit_length() - 1 - 149
        mmant = mb & 0x7FFFFF if mb >> 23 else (mb << (-126 - mtop)) & 0x7FFFFF
        e = e + (_mantissa(ab, norm, top) > mmant).to(torch.int32)
    code = e.clamp(-127, 127) + 127
    code = _sel(ab == 0, 0, code)
    return _sel(has_nan | (ab >= 0x7F800000), _E8M0_NAN, code)


def mx_scale_codes(x, format, block=32, *, mx_scale="floor"):
    """The E8M0 scale codes (uint8, shape ``x.shape[:-1] + (nb,)``) of
    ``ag_mx_encode``: 127 + clamp(floor(log2 amax) - emax, -127, 127) per
    block (``mx_scale="rceil"``: rounded up where the floor would clip the
    block's amax), 0 for an all-zero block, 255 for a block with NaN or
    inf."""
    _check_float(x)
    p = params(format)
    _mx_check(p, block)
    xb, rows, cols, nb = _blocks(x, block)
    code = _mx_codes_of(xb, p, _mx_rule(mx_scale))
    return code.to(torch.uint8).view(_scale_shape(x.shape, nb))


def _scale_shape(shape, nb):
    return (tuple(shape[:-1]) if len(shape) else ()) + (nb,)


def _unpad(t, rows, cols, shape):
    return t.reshape(rows, -1)[:, :cols].reshape(shape)


def _mx_staged(x, p, block, mx_scale):
    """(staged x / X, E8M0 codes, X, nan-block mask) per padded block."""
    xb, rows, cols, nb = _blocks(x, block)
    code = _mx_codes_of(xb, p, _mx_rule(mx_scale))
    nanb = code == _E8M0_NAN
    safe = _sel(nanb, 127, code)
    inv = _pow2(127 - safe).view(rows, nb, 1)   # 1 / X, 2^-127 .. 2^127
    xs = torch.mul(xb, inv)                     # the float32 x / X
    return xb, xs, code, _pow2(safe - 127).view(rows, nb, 1), nanb, rows, cols, nb


def mx_encode(x, format, block=32, *, rounding="nearest_even", overflow="saturate",
              seed=0, stream=0, offset=0, stats=None, mx_scale="floor"):
    """``ag_mx_encode``: (element codes uint8 of x's shape, E8M0 scale codes
    uint8 of shape ``x.shape[:-1] + (ceil(cols / block),)``); ``mx_scale``
    the shared-scale rule (``floor`` or ``rceil``)."""
    _check_float(x)
    p = params(format)
    _mx_check(p, block)
    mode, ovf = rounding_mode(rounding), overflow_policy(overflow)
    xb, xs, code, X, nanb, rows, cols, nb = _mx_staged(x, p, block, mx_scale)
    xsf = _unpad(xs, rows, cols, (-1,))
    nanf = _unpad(nanb.view(rows, nb, 1).expand(rows, nb, block), rows, cols, (-1,))
    rnd = _stream(xsf.numel(), mode, seed, stream, offset, x.device)
    if stats is None:
        c = round_codes(xsf, p, mode, ovf, rnd)
    else:
        c, (fo, fu, fn) = round_codes(xsf, p, mode, ovf, rnd, x=xsf, want_flags=True)
        keep = ~nanf
        _add_stats(stats, xsf.numel(), (fo & keep, fu & keep, fn | nanf))
    c = _sel(nanf, p.nan_code if p.has_nan else 0, c)
    return (c.to(torch.uint8).view(x.shape),
            code.to(torch.uint8).view(_scale_shape(x.shape, nb)))


def mx_decode(codes, scales, format, block=32):
    """``ag_mx_decode``: float32 of the codes' shape, ``to_real(code) *
    2^(scale - 127)``, NaN in every element of a block whose scale code is
    255. ValueError for a code outside the format or a wrong scales count."""
    p = params(format)
    _mx_check(p, block)
    if not isinstance(codes, torch.Tensor) or codes.dtype != torch.uint8:
        raise TypeError("codes must be a uint8 tensor")
    if not isinstance(scales, torch.Tensor) or scales.dtype != torch.uint8:
        raise TypeError("scales must be a uint8 tensor")
    c = _codes32(codes, p)
    rows, cols = _matrix(codes.shape)
    nb = -(-cols // block)
    if scales.numel() != rows * nb:
        raise ValueError(f"scales must hold {rows * nb} block scales, got "
                         f"{scales.numel()}")
    sc = scales.to(torch.int32).reshape(rows, nb, 1).to(codes.device)
    vb = _pad_blocks(decode_values(c.reshape(-1), p).view(rows, cols), nb, block)
    nanb = sc == _E8M0_NAN
    X = _pow2(_sel(nanb, 0, sc - 127))
    y = _self(torch.isnan(vb), vb, vb * X)
    y = _self(nanb.expand_as(y), _from_bits(torch.full_like(sc, 0x7FC00000)), y)
    return _unpad(y, rows, cols, codes.shape)


def mx_quantize(x, format, block=32, *, rounding="nearest_even", overflow="saturate",
                seed=0, stream=0, offset=0, stats=None, mx_scale="floor"):
    """``ag_mx_quantize``: ``mx_decode(*mx_encode(x))`` bit for bit (NaN
    blocks: NaN inputs kept, the other elements the quiet NaN)."""
    _check_float(x)
    p = params(format)
    _mx_check(p, block)
    mode, ovf = rounding_mode(rounding), overflow_policy(overflow)
    xb, xs, code, X, nanb, rows, cols, nb = _mx_staged(x, p, block, mx_scale)
    nan3 = nanb.view(rows, nb, 1)
    qnan = _from_bits(torch.full((), 0x7FC00000, dtype=torch.int32, device=x.device))
    staged = _self(nan3.expand_as(xb), _self(torch.isnan(xb), xb, qnan), xs)
    sf = _unpad(staged, rows, cols, (-1,))
    one = torch.ones((), dtype=torch.float32, device=x.device)
    q = _quantize_flat(sf, one, p, mode, ovf, seed, stream, offset, stats)
    qb = _pad_blocks(q.view(rows, cols), nb, block)
    y = _self(nan3 | torch.isnan(qb), qb, qb * X)
    return _unpad(y, rows, cols, x.shape)


def mx_keep_mask(x, format, block=32, *, mx_scale="floor"):
    """The clipped STE mask of ``ag_mx_quantize_backward``: True where
    ``|x / X| <= max_finite`` (NaN x included); in a NaN-scale block True
    except for +-inf."""
    _check_float(x)
    p = params(format)
    _mx_check(p, block)
    xb, xs, code, X, nanb, rows, cols, nb = _mx_staged(x, p, block, mx_scale)
    n3 = nanb.view(rows, nb, 1)
    keep = (n3 & ~torch.isinf(xb)) | (~n3 & ~(xs.abs() > p.max_finite))
    return _unpad(keep, rows, cols, x.shape)


# ---------------------------------------------------------------------------
# diagnostics on codes: bit stall, flips
# ---------------------------------------------------------------------------

def _nan_code(c, p):
    """True where c is a NaN code of p (ag_diag.c's is_nan_code)."""
    mag = c & p.all_mag
    if p.specials == "ieee":
        return mag > p.inf_code
    if p.specials == "fn":
        return mag > p.max_code
    if p.specials == "fnuz":
        return c == p.sign_mask
    return torch.zeros_like(c, dtype=torch.bool)


def _codes_and_nan(x, p, s, mode, ovf, seed, stream, offset):
    """(codes, NaN-ness) of x / s as ag_encode_u16 gives them and
    ag_diag.c's cmp_nan reads them: a NaN input or a NaN code."""
    xf = x.reshape(-1)
    c = _round_flat(xf, xf / s, p, mode, ovf, seed, stream, offset, None)
    return c, _nan_code(c, p) | torch.isnan(xf)


def _same_point(ca, na, cb, nb, p):
    """ag_diag.c's "same grid point": equal codes or two zeros, never a NaN."""
    same = ca == cb
    if not p.no_zero:
        same = same | (((ca & p.all_mag) == 0) & ((cb & p.all_mag) == 0))
    return same & ~(na | nb)


def _updated(g):
    """|g| > AG_GRAD_EPS, compared in float32."""
    from ..quantization.diagnostics import GRAD_EPS

    eps = torch.tensor(GRAD_EPS, dtype=torch.float32, device=g.device)
    return g.reshape(-1).abs() > eps


def _diag_args(x, format, scale, rounding, overflow):
    _check_float(x)
    return params(format), _scale(scale, x.device), rounding_mode(rounding), \
        overflow_policy(overflow)


def _pair(a, b, na="a", nb="b"):
    _check_float(a, na)
    _check_float(b, nb)
    if a.numel() != b.numel():
        raise ValueError(f"{na} and {nb} must hold as many elements: {a.numel()} vs "
                         f"{b.numel()}")
    if a.device != b.device:
        raise ValueError(f"{na} and {nb} must be on one device: {a.device} vs {b.device}")


def bit_stall(w, g, lr, format, scale=1.0, *, rounding="nearest_even",
              overflow="saturate", seed=0, stream=0, offset=0):
    """``ag_bit_stall``: (stalled, considered) as ints. considered = the
    elements with ``|g| > 1e-10``, stalled = those whose code does not move
    under the update ``w - lr * g`` (float32 product, then difference)."""
    _pair(w, g, "weight", "grad")
    p, s, mode, ovf = _diag_args(w, format, scale, rounding, overflow)
    lr32 = torch.tensor(float(lr), dtype=torch.float32)
    if not torch.isfinite(lr32):
        raise ValueError(f"lr must be finite, got {lr}")
    wn = w - g * lr32.to(w.device)  # two roundings, as the C loop
    ca, na = _codes_and_nan(w, p, s, mode, ovf, seed, stream, offset)
    cb, nb = _codes_and_nan(wn, p, s, mode, ovf, seed, stream, offset)
    u = _updated(g)
    counts = torch.stack([(u & _same_point(ca, na, cb, nb, p)).sum(), u.sum()]).tolist()
    return int(counts[0]), int(counts[1])


def flips(a, b, format, scale=1.0, *, rounding="nearest_even", overflow="saturate",
          seed=0, stream=0, offset=0):
    """``ag_flips``: the elements where snapshots a and b are not the same
    grid point, as an int."""
    _pair(a, b)
    p, s, mode, ovf = _diag_args(a, format, scale, rounding, overflow)
    ca, na = _codes_and_nan(a, p, s, mode, ovf, seed, stream, offset)
    cb, nb = _codes_and_nan(b, p, s, mode, ovf, seed, stream, offset)
    return int((~_same_point(ca, na, cb, nb, p)).sum().item())


def update_flips(before, after, g, format, scale=1.0, *, rounding="nearest_even",
                 overflow="saturate", seed=0, stream=0, offset=0):
    """``ag_update_flips``: (updates, flips) of one step: updates = the
    elements with ``|g| > 1e-10``, flips = those of them that moved."""
    _pair(before, after, "before", "after")
    _pair(before, g, "before", "grad")
    p, s, mode, ovf = _diag_args(before, format, scale, rounding, overflow)
    ca, na = _codes_and_nan(before, p, s, mode, ovf, seed, stream, offset)
    cb, nb = _codes_and_nan(after, p, s, mode, ovf, seed, stream, offset)
    u = _updated(g)
    counts = torch.stack([u.sum(), (u & ~_same_point(ca, na, cb, nb, p)).sum()]).tolist()
    return int(counts[0]), int(counts[1])


def code_flips(a, b, format):
    """``ag_flips_u8`` / ``_u16``: code snapshots (uint8, or int16 holding
    16-bit codes) that are not the same grid point, as an int. ValueError
    for a code outside the format."""
    p = params(format)
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        raise TypeError("a and b must be torch tensors")
    if a.dtype != b.dtype:
        raise TypeError(f"a and b must have one dtype, got {a.dtype} and {b.dtype}")
    if a.numel() != b.numel():
        raise ValueError(f"a and b must hold as many elements: {a.numel()} vs {b.numel()}")
    ca, cb = _codes32(a, p, "a").reshape(-1), _codes32(b, p, "b").reshape(-1)
    return int((~_same_point(ca, _nan_code(ca, p), cb, _nan_code(cb, p), p)).sum().item())


ULP_NAN = -(2**31)  # AG_ULP_NAN


def ulp_distance(a, b, format, scale=1.0, *, rounding="nearest_even", overflow="saturate",
                 seed=0, stream=0, offset=0):
    """``ag_ulp_distance``: int32 of a's shape, pos(code of b) - pos(code of
    a) on the ordered grid (+-0 at 0, negative codes mirrored, shifted by
    one in formats without zero), ULP_NAN where a side is NaN."""
    _pair(a, b)
    p, s, mode, ovf = _diag_args(a, format, scale, rounding, overflow)
    ca, na = _codes_and_nan(a, p, s, mode, ovf, seed, stream, offset)
    cb, nb = _codes_and_nan(b, p, s, mode, ovf, seed, stream, offset)

    def pos(c):
        mag = c & p.all_mag
        if not p.sign_mask:
            return mag
        return _sel((c & p.sign_mask) != 0, -mag - 1 if p.no_zero else -mag, mag)

    d = _sel(na | nb, ULP_NAN, pos(cb) - pos(ca))
    return d.view(a.shape)


def ulp_distance_stats(a, b, format, scale=1.0, **options):
    """``ag_ulp_distance_stats``: (sum of |d|, max |d| over the pairs
    without NaN (0 when none), pairs with a NaN) as ints."""
    d = ulp_distance(a, b, format, scale, **options).reshape(-1)
    nan = d == ULP_NAN
    ad = _sel(nan, 0, d.abs())
    if ad.numel() == 0:
        return 0, 0, 0
    out = torch.stack([ad.to(torch.int64).sum(), ad.max().to(torch.int64),
                       nan.sum()]).tolist()
    return int(out[0]), int(out[1]), int(out[2])


def stiffness(w, format, scale=1.0):
    """``ag_stiffness``: the grid spacing at each w, float32 of w's shape:
    2^(max(floor(log2 |w/scale|), emin) - M) * scale (E = 0: the fixed
    step), 0 for +-0, w itself for NaN, +inf for +-inf."""
    _check_float(w, "w")
    p = params(format)
    s = _scale(scale, w.device)
    wf = w.reshape(-1)
    v = (wf / s).abs()
    a = _bits(v)
    norm = (a >> 23) != 0
    e = _floor_log2(a, a & 0x7FFFFF, norm)
    if p.E == 0:
        k = torch.full_like(a, p.emin - p.M)
    else:  # v == 0 (below float32) gives e = -276: the lowest step
        k = _sel(e > p.emin, e - p.M, p.emin - p.M)
    r = _pow2(k) * s
    r = _self(torch.isinf(v), torch.full_like(r, math.inf), r)
    r = _self(wf == 0, torch.zeros_like(r), r)
    r = _self(torch.isnan(wf), wf, r)
    return r.view(w.shape)


def exp_hist(x, format, scale=1.0, *, rounding="nearest_even", overflow="saturate",
             seed=0, stream=0, offset=0):
    """``ag_exp_hist``: the bin counts (a list of HIST_FIELD + 2^E ints): NaN,
    overflow, underflow, zero, subnormal, then one bin per exponent field."""
    _check_float(x)
    p, s, mode, ovf = _diag_args(x, format, scale, rounding, overflow)
    xf = x.reshape(-1)
    rnd = _stream(xf.numel(), mode, seed, stream, offset, x.device)
    c, (f_ovf, _, _) = round_codes(xf / s, p, mode, ovf, rnd, want_flags=True)
    nan = torch.isnan(xf) | _nan_code(c, p)
    mag = c & p.all_mag
    zero = (mag == 0) if not p.no_zero else torch.zeros_like(nan)
    field = mag >> p.M
    if p.E == 0:
        fbin = torch.full_like(c, 4)
    elif p.no_zero:
        fbin = field + 5
    else:
        fbin = _sel(field == 0, 4, field + 5)
    b = _sel(zero, _sel(xf == 0, 3, 2), fbin)
    b = _sel(f_ovf, 1, b)
    b = _sel(nan & ~f_ovf, 0, b)
    return torch.bincount(b.to(torch.int64), minlength=5 + (1 << p.E)).tolist()
