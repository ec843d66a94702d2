/* SPDX-License-Identifier: MIT */
/*
 * ag_format.c — custom formats (ag_format_init), the scalar transfer
 * functions ag_to_bits / ag_to_real, and the rounding core they share with
 * every bulk kernel. This file is the specification in code: short and
 * branchy on purpose; the bulk kernels are tested bit-exact against it and it
 * is tested against an independent exact reference (tests/ref).
 */
#include "ag_internal.h"

#include <math.h>
#include <stdio.h>

uint32_t ag__format_checkword(const ag_format *f)
{
    /* A hash of the fields every kernel relies on (every call checks it:
     * keep it short). Each word is mixed on its own, with its position,
     * and the words are summed, so that the sixteen multiplies are
     * independent (a chain of them cost ~30 ns a call); one final
     * multiply-xorshift spreads the sum. */
    const uint32_t v[] = {(uint32_t)f->ebits, (uint32_t)f->mbits,
                          (uint32_t)f->bias, (uint32_t)f->is_signed,
                          (uint32_t)f->no_zero, (uint32_t)f->specials,
                          (uint32_t)f->bits, f->max_code, f->nan_code,
                          f->inf_code, f->sign_mask, (uint32_t)f->emin,
                          (uint32_t)f->has_inf, (uint32_t)f->has_nan,
                          (uint32_t)f->has_negzero, ag__f2u(f->max_finite)};
    uint64_t h = 0;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        const uint64_t w = ((uint64_t)v[i] << 32 | (uint32_t)(2166136261u + 0x9E3779B9u * i)) *
                           0xD6E8FEB86659FD93ull;
        h += w ^ (w >> 29);
    }
    h *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32) ^ (uint32_t)h ^ 0xA17C7AD5u;
}

ag_status ag_format_check(const ag_format *fmt)
{
    if (!fmt)
        return AG_ERR_NULL;
    /* registry entries are const: no need to hash them on every call */
    if (ag__format_in_registry(fmt))
        return AG_OK;
    if (fmt->check != ag__format_checkword(fmt))
        return AG_ERR_FORMAT;
    return AG_OK;
}

/* Value of a non-negative magnitude field (no sign bit) as a double, from
 * the layout alone (the specials are not consulted). */
static double mag_value(int E, int M, int bias, int no_zero, uint32_t mag)
{
    const uint32_t m = mag & ((1u << M) - 1u);
    const int e = (int)(mag >> M);
    if (E == 0)
        return ldexp((double)m, -M - bias);
    if (no_zero)
        return ldexp((double)((1u << M) + m), e - bias - M);
    if (e == 0)
        return ldexp((double)m, 1 - bias - M);
    return ldexp((double)((1u << M) + m), e - bias - M);
}

ag_status ag_format_init(ag_format *out, const char *name, int ebits,
                         int mbits, int bias, int is_signed,
                         ag_specials specials, int no_zero)
{
    if (!out)
        return AG_ERR_NULL;
    if (ebits < 0 || ebits > 8 || mbits < 0 || mbits > 23 || ebits + mbits < 1)
        return AG_ERR_RANGE;
    is_signed = is_signed ? 1 : 0;
    no_zero = no_zero ? 1 : 0;
    if (is_signed + ebits + mbits > 16)
        return AG_ERR_RANGE;
    if ((unsigned)specials > (unsigned)AG_SPECIALS_FNUZ)
        return AG_ERR_SPEC;
    if (specials == AG_SPECIALS_IEEE && ebits == 0)
        return AG_ERR_SPEC;
    if (specials == AG_SPECIALS_FNUZ && (!is_signed || no_zero))
        return AG_ERR_SPEC;
    if (no_zero && ebits == 0)
        return AG_ERR_SPEC;
    if (bias < -1000 || bias > 1000)
        return AG_ERR_RANGE;

    ag_format f;
    memset(&f, 0, sizeof f);
    if (name)
        snprintf(f.name, sizeof f.name, "%s", name);
    else
        snprintf(f.name, sizeof f.name, "e%dm%d", ebits, mbits);
    f.source = "custom";
    f.ebits = ebits;
    f.mbits = mbits;
    f.bias = bias;
    f.is_signed = is_signed;
    f.no_zero = no_zero;
    f.specials = specials;
    f.bits = is_signed + ebits + mbits;
    f.ncodes = 1u << f.bits;
    f.sign_mask = is_signed ? 1u << (ebits + mbits) : 0u;
    f.emin = (ebits == 0 || no_zero) ? -bias : 1 - bias;

    const uint32_t all = (1u << (ebits + mbits)) - 1u;
    uint32_t max_mag = all;
    if (specials == AG_SPECIALS_IEEE) {
        /* top binade reserved: largest finite is e = 2^E - 2, m all ones */
        if (((all >> mbits) << mbits) == 0)
            return AG_ERR_SPEC;
        max_mag = ((all >> mbits) << mbits) - 1u;
    } else if (specials == AG_SPECIALS_FN) {
        if (all < 2u)
            return AG_ERR_SPEC;
        max_mag = all - 1u;
    }
    /* a single finite magnitude code leaves nothing to round between (FN
     * with E + M = 1 failed above; IEEE E1M0 without zero is the same) */
    if (max_mag == 0)
        return AG_ERR_SPEC;
    /* the layout must leave a positive finite value */
    if (mag_value(ebits, mbits, bias, no_zero, max_mag) <= 0.0)
        return AG_ERR_SPEC;

    /* float32 must hold every value exactly: smallest step >= 2^-149 and
     * max_finite < 2^128 (M <= 23 keeps every significand in 24 bits). */
    if (f.emin - mbits < -149)
        return AG_ERR_RANGE;
    const double maxd = mag_value(ebits, mbits, bias, no_zero, max_mag);
    if (!(maxd <= (double)3.4028234663852886e38f))
        return AG_ERR_RANGE;

    f.has_inf = specials == AG_SPECIALS_IEEE;
    f.has_nan = (specials == AG_SPECIALS_IEEE && mbits >= 1) ||
                specials == AG_SPECIALS_FN || specials == AG_SPECIALS_FNUZ;
    f.has_negzero = is_signed && specials != AG_SPECIALS_FNUZ && !no_zero;
    f.max_code = max_mag;
    if (f.has_inf)
        f.inf_code = (all >> mbits) << mbits;
    if (specials == AG_SPECIALS_IEEE && f.has_nan)
        f.nan_code = f.inf_code | (1u << (mbits - 1));
    else if (specials == AG_SPECIALS_FN)
        f.nan_code = all;
    else if (specials == AG_SPECIALS_FNUZ)
        f.nan_code = f.sign_mask;
    f.max_finite = (float)maxd;
    f.min_subnormal =
        (float)mag_value(ebits, mbits, bias, no_zero, no_zero ? 0u : 1u);
    if (ebits == 0)
        f.min_normal = f.min_subnormal;
    else
        f.min_normal = (float)ldexp(1.0, f.emin);
    f.emax = ilogbf(f.max_finite);

    uint32_t finite = 0;
    for (uint32_t c = 0; c < f.ncodes; c++)
        finite += ag__code_class(&f, c) == AG__CODE_FINITE;
    f.finite_codes = finite;
    f.check = ag__format_checkword(&f);
    for (uint32_t c = 0; c < 256; c++)
        f.lut[c] = c < f.ncodes && f.bits <= 8 ? ag__decode(&f, c) : NAN;
    *out = f;
    return AG_OK;
}

float ag__decode(const ag_format *f, uint32_t code)
{
    assert(code < f->ncodes);
    const int cls = ag__code_class(f, code);
    const int neg = (code & f->sign_mask) != 0;
    if (cls == AG__CODE_NAN)
        return neg ? -NAN : NAN;
    if (cls == AG__CODE_INF)
        return neg ? -INFINITY : INFINITY;
    const double v = mag_value(f->ebits, f->mbits, f->bias, f->no_zero,
                               code & ~f->sign_mask);
    return neg ? -(float)v : (float)v;
}

float ag_to_real(const ag_format *f, uint32_t code)
{
    if (ag_format_check(f) != AG_OK || code >= f->ncodes)
        return NAN;
    return ag__decode(f, code);
}

uint32_t ag__round(const ag_format *f, float x, ag_rounding mode,
                   ag_overflow ovf, uint32_t rnd, unsigned *flags)
{
    const uint32_t b = ag__f2u(x);
    uint32_t sign = b >> 31;
    const uint32_t a = b & 0x7fffffffu;

    if (a > 0x7f800000u) { /* NaN */
        *flags |= AG__FLAG_NAN;
        return f->has_nan ? f->nan_code : 0u;
    }
    if (!f->is_signed && sign) {
        if (a == 0) {
            sign = 0; /* -0 is +0 in an unsigned format */
        } else if (f->has_nan) {
            *flags |= AG__FLAG_NAN;
            return f->nan_code;
        } else {
            *flags |= AG__FLAG_UNDERFLOW;
            return 0u; /* the nearest representable value is 0 */
        }
    }
    if (a == 0) {
        if (f->no_zero) {
            *flags |= AG__FLAG_NAN;
            return f->has_nan ? f->nan_code : 0u;
        }
        return (sign && f->has_negzero) ? f->sign_mask : 0u;
    }
    /* directed modes that move this value toward zero never overflow */
    const int toward_zero = mode == AG_ROUND_TOWARD_ZERO ||
                            (mode == AG_ROUND_DOWN && !sign) ||
                            (mode == AG_ROUND_UP && sign);
    if (a == 0x7f800000u) { /* +-inf: exact, kept where the format has inf */
        *flags |= AG__FLAG_OVERFLOW;
        if (f->has_inf)
            return (sign ? f->sign_mask : 0u) | f->inf_code;
        return ag__overflow_code(f, sign, ovf);
    }

    /* |x| = sig * 2^ex, sig < 2^24; ux = floor(log2 |x|) */
    const int fe = (int)(a >> 23);
    const uint32_t sig = fe ? (a & 0x7fffffu) | 0x800000u : a;
    const int ex = fe ? fe - 150 : -149;
    int ux;
    if (fe)
        ux = fe - 127;
    else {
        int top = 31;
        while (!(sig >> top))
            top--;
        ux = top - 149;
    }
    const int M = f->mbits;
    if (ux > f->emax + 1) { /* at least twice max_finite: beyond the boundary */
        *flags |= AG__FLAG_OVERFLOW;
        if (toward_zero)
            return (sign ? f->sign_mask : 0u) | f->max_code;
        return ag__overflow_code(f, sign, ovf);
    }
    if (f->no_zero && ux < f->emin) /* below the smallest value: clamp */
        return (sign ? f->sign_mask : 0u);

    /* grid step 2^q at |x|; base = code of the binade's first grid point
     * minus that point's integer multiple of 2^q */
    int q;
    int64_t base = 0;
    if (f->ebits == 0 || ux < f->emin) {
        q = f->emin - M;
    } else {
        q = ux - M;
        base = (int64_t)(ux + f->bias - 1) * ((int64_t)1 << M);
    }
    const int s = q - ex; /* bits discarded */
    assert(s >= 0);
    /* ties look at the parity of the whole code: with M = 0, base is odd
     * for every other binade */
    uint64_t t, r = 0, half = 0;
    if (s == 0) {
        t = sig;
    } else if (s < 64) {
        t = (uint64_t)sig >> s;
        r = (uint64_t)sig & (((uint64_t)1 << s) - 1u);
        half = (uint64_t)1 << (s - 1);
    } else { /* far below the grid: remainder nonzero, below half */
        t = 0;
        r = 1;
        half = 2;
    }
    int up = 0;
    switch (mode) {
    case AG_ROUND_NEAREST_EVEN:
        up = r > half || (r == half && r != 0 && ((base + (int64_t)t) & 1));
        break;
    case AG_ROUND_NEAREST_AWAY:
        up = r != 0 && r >= half;
        break;
    case AG_ROUND_TOWARD_ZERO:
        up = 0;
        break;
    case AG_ROUND_DOWN:
        up = sign && r != 0;
        break;
    case AG_ROUND_UP:
        up = !sign && r != 0;
        break;
    case AG_ROUND_STOCHASTIC: {
        /* up with probability r / 2^s, resolved to 32 bits: exact for
         * s <= 32, truncated to a multiple of 2^-32 below that. */
        uint64_t thr;
        if (s <= 32)
            thr = r << (32 - s);
        else if (s < 64)
            thr = r >> (s - 32);
        else
            thr = 0;
        up = (uint64_t)rnd < thr;
        break;
    }
    }
    const int64_t code = base + (int64_t)t + up;
    if (code > (int64_t)f->max_code) {
        *flags |= AG__FLAG_OVERFLOW;
        if (toward_zero)
            return (sign ? f->sign_mask : 0u) | f->max_code;
        return ag__overflow_code(f, sign, ovf);
    }
    if (code == 0 && !f->no_zero) {
        *flags |= AG__FLAG_UNDERFLOW;
        return (sign && f->has_negzero) ? f->sign_mask : 0u;
    }
    return (sign ? f->sign_mask : 0u) | (uint32_t)code;
}

uint32_t ag_to_bits(const ag_format *fmt, float x)
{
    unsigned flags = 0;
    if (ag_format_check(fmt) != AG_OK)
        return 0u;
    return ag__round(fmt, x, AG_ROUND_NEAREST_EVEN, AG_OVERFLOW_IEEE, 0u,
                     &flags);
}

ag_qopts ag_qopts_default(void)
{
    ag_qopts o;
    memset(&o, 0, sizeof o);
    o.rounding = AG_ROUND_NEAREST_EVEN;
    o.overflow = AG_OVERFLOW_SATURATE;
    o.ste = AG_STE_IDENTITY;
    o.kernel = AG_KERNEL_AUTO;
    o.mx_scale = AG_MX_SCALE_FLOOR;
    return o;
}

uint32_t ag_to_bits_opts(const ag_format *fmt, float x, const ag_qopts *opts)
{
    const ag_qopts o = opts ? *opts : ag_qopts_default();
    unsigned flags = 0;
    if (ag_format_check(fmt) != AG_OK || !ag__qopts_in_range(&o))
        return 0u;
    const uint32_t rnd = o.rounding == AG_ROUND_STOCHASTIC
                             ? ag__random_u32(o.seed, o.stream, o.offset)
                             : 0u;
    return ag__round(fmt, x, o.rounding, o.overflow, rnd, &flags);
}
