/* SPDX-License-Identifier: MIT */
/*
 * ag_kernels.c — per-call kernel constants (ag__kparams_init), the scalar
 * kernel table (the specification: ag__round per element, the yardstick the
 * fast paths are tested and benchmarked against), and the run-time choice of
 * a kernel table from the CPU's features.
 */
#include "ag_kernels.h"

#include <math.h>
#include <stddef.h>

static uint32_t val_bits(const ag_format *f, uint32_t code)
{
    /* formats of at most 8 bits carry every value in f->lut */
    return ag__f2u(f->bits <= 8 ? f->lut[code] : ag__decode(f, code));
}

void ag__kparams_init(ag__kparams *p, const ag_format *f, float scale,
                      const ag_qopts *o)
{
    /* every field is set below (no memset: on every call, a 240-byte
     * rep stos cost more than the rest of this function) */
    p->fmt = f;
    p->stream_out = 0;
    p->dlut_ok = 0;
    p->ne_ovft = 0;
    p->ovf = o->overflow;
    p->mode = o->rounding;
    p->mbits = (uint32_t)f->mbits;
    p->emin = f->emin;
    p->emax = f->emax;
    p->bias = f->bias;
    p->fixed = f->ebits == 0;
    p->no_zero = (uint32_t)f->no_zero;
    p->is_unsigned = !f->is_signed;
    p->sign_mask = f->sign_mask;
    p->max_code = f->max_code;
    p->q_sub = f->emin - f->mbits;
    p->tz_pos = o->rounding == AG_ROUND_TOWARD_ZERO ||
                o->rounding == AG_ROUND_DOWN;
    p->tz_neg = o->rounding == AG_ROUND_TOWARD_ZERO ||
                o->rounding == AG_ROUND_UP;

    const uint32_t nan_or0 = f->has_nan ? f->nan_code : 0u;
    p->nan_code = nan_or0;
    p->nan_val = val_bits(f, nan_or0);
    p->uneg_code = nan_or0;
    p->uneg_val = val_bits(f, nan_or0);
    p->uneg_is_nan = (uint32_t)f->has_nan;
    for (uint32_t s = 0; s < 2; s++) {
        const uint32_t sbit = s ? f->sign_mask : 0u;
        /* zero input: no_zero formats give the NaN code (or 0) */
        const uint32_t zc = f->no_zero ? nan_or0
                                       : ((s && f->has_negzero) ? f->sign_mask : 0u);
        /* a zero RESULT (underflow) of a format with zero */
        p->zero_code[s] = zc;
        p->zero_val[s] = val_bits(f, zc);
        const uint32_t oc = ag__overflow_code(f, s, o->overflow);
        p->ovf_code[s] = oc;
        p->ovf_val[s] = val_bits(f, oc);
        p->max_codes[s] = sbit | f->max_code;
        p->max_val[s] = val_bits(f, sbit | f->max_code);
        const uint32_t ic = f->has_inf ? (sbit | f->inf_code) : oc;
        p->inf_code[s] = ic;
        p->inf_val[s] = val_bits(f, ic);
        p->clamp_val[s] = val_bits(f, sbit);
    }
    p->ieee = f->specials == AG_SPECIALS_IEEE;
    p->fn = f->specials == AG_SPECIALS_FN;
    p->fnuz = f->specials == AG_SPECIALS_FNUZ;
    p->all_mag = (1u << (f->ebits + f->mbits)) - 1u;
    p->e_all = (1u << f->ebits) - 1u;
    p->qnan_pos = ag__f2u(NAN);
    p->qnan_neg = ag__f2u(-NAN);

    p->scale = scale;
    p->max_finite = f->max_finite;
    /* x / scale == x * (1/scale) for every x exactly when 1/scale is a
     * finite float and scale * (1/scale) == 1 exactly (scale a power of
     * two): both are then the correctly rounded x * 2^-k. */
    const float inv = 1.0f / scale;
    p->inv_scale = inv;
    p->use_inv = isfinite(inv) && (double)inv * (double)scale == 1.0;
    p->lean = f->is_signed && f->has_negzero && f->emin > -126 &&
              f->emin - f->mbits >= -126;
    {
        const int M = f->mbits, qsub = f->emin - M;
        p->nefast = f->is_signed && f->has_negzero && !f->no_zero && M <= 22 &&
                    (M >= 1 || (f->bias & 1)) &&
                    (f->ebits == 0 || f->emin >= -126) &&
                    qsub + 23 >= -126 && qsub + 23 <= 127;
        p->ne_sh = (uint32_t)(23 - M);
        p->ne_minnorm = f->ebits == 0 ? 0xffffffffu
                                      : (f->emin >= -126 ? (uint32_t)(f->emin + 127) << 23 : 0u);
        p->ne_maxb = ag__f2u(f->max_finite);
        p->ne_magic = p->nefast ? ag__pow2f(qsub + 23) : 0.0f;
        /* max_finite plus half its gap as if the range went on (the gap:
         * 2^(e - M) for max_finite = 1.m * 2^e, the step when E = 0) is
         * exact (M + 2 bits); a tie goes to the even code, so it
         * overflows iff the code of max_finite is odd */
        if (p->nefast) {
            const int emx = (int)(p->ne_maxb >> 23) - 127;
            const int gexp = f->ebits == 0 ? qsub : emx - M;
            const float mid = f->max_finite + ag__pow2f(gexp - 1);
            p->ne_ovft = ag__f2u(mid) - (f->max_code & 1u);
        }
        p->sym = 1;
        for (int s = 0; s < 2; s++)
            if (p->ovf_code[s] != (p->ovf_code[0] | (s ? f->sign_mask : 0u)) ||
                p->inf_code[s] != (p->inf_code[0] | (s ? f->sign_mask : 0u)) ||
                p->ovf_val[s] != (p->ovf_val[0] | (s ? 0x80000000u : 0u)) ||
                p->inf_val[s] != (p->inf_val[0] | (s ? 0x80000000u : 0u)) ||
                (p->ovf_code[0] & f->sign_mask) != 0 ||
                (p->inf_code[0] & f->sign_mask) != 0 ||
                (p->ovf_val[0] >> 31) != 0 || (p->inf_val[0] >> 31) != 0)
                p->sym = 0;
        p->ne_cfin = p->nefast && (f->ebits == 0 || f->emax + 24 - M <= 127);
        /* as ne_cfin, with 2^55 / C and the step C * 2^-23 normal floats */
        p->sr_fast = p->ne_cfin && qsub >= -95;
    }
    p->count = 1;
    p->seed = o->seed;
    p->stream = o->stream;
}

void ag__kparams_decode_lut(ag__kparams *p)
{
    const ag_format *f = p->fmt;
    if (f->bits > 8)
        return;
    for (uint32_t c = 0; c < 256; c++)
        p->dlut[c] = c < f->ncodes ? f->lut[c] * p->scale : 0.0f;
    p->dlut_ok = 1;
}

/* ---- the scalar table: ag__round per element ------------------------------ */

static void add_flags(ag__kstats *st, unsigned flags)
{
    st->overflow += (flags & AG__FLAG_OVERFLOW) != 0;
    st->underflow += (flags & AG__FLAG_UNDERFLOW) != 0;
    st->nan += (flags & AG__FLAG_NAN) != 0;
}

/* Round x / scale. A nonzero x whose quotient is already zero in float32
 * underflows too (ag__round only sees the quotient). */
static uint32_t s_round(const ag__kparams *p, float x, float v, uint64_t g,
                        unsigned *flags)
{
    const uint32_t rnd = p->mode == AG_ROUND_STOCHASTIC
                             ? ag__random_u32(p->seed, p->stream, g)
                             : 0u;
    if (v == 0.0f && x != 0.0f && !p->fmt->no_zero)
        *flags |= AG__FLAG_UNDERFLOW;
    return ag__round(p->fmt, v, p->mode, p->ovf, rnd, flags);
}

static void s_quantize(float *y, const float *x, size_t n, uint64_t g0,
                       const ag__kparams *p, ag__kstats *st)
{
    const ag_format *f = p->fmt;
    for (size_t i = 0; i < n; i++) {
        const float v = x[i] / p->scale;
        unsigned flags = 0;
        const uint32_t code = s_round(p, x[i], v, g0 + i, &flags);
        float q;
        if (isnan(v))
            q = x[i] != x[i] ? x[i] : v; /* keep the input's NaN */
        else
            q = (f->bits <= 8 ? f->lut[code] : ag__decode(f, code)) * p->scale;
        add_flags(st, flags);
        y[i] = q;
    }
}

static void s_encode_u8(uint8_t *c, const float *x, size_t n, uint64_t g0,
                        const ag__kparams *p, ag__kstats *st)
{
    for (size_t i = 0; i < n; i++) {
        unsigned flags = 0;
        c[i] = (uint8_t)s_round(p, x[i], x[i] / p->scale, g0 + i, &flags);
        add_flags(st, flags);
    }
}

static void s_encode_u16(uint16_t *c, const float *x, size_t n, uint64_t g0,
                         const ag__kparams *p, ag__kstats *st)
{
    for (size_t i = 0; i < n; i++) {
        unsigned flags = 0;
        c[i] = (uint16_t)s_round(p, x[i], x[i] / p->scale, g0 + i, &flags);
        add_flags(st, flags);
    }
}

static void s_decode_u8(float *y, const uint8_t *c, size_t n,
                        const ag__kparams *p)
{
    const ag_format *f = p->fmt;
    for (size_t i = 0; i < n; i++)
        y[i] = f->lut[c[i]] * p->scale;
}

static void s_decode_u16(float *y, const uint16_t *c, size_t n,
                         const ag__kparams *p)
{
    const ag_format *f = p->fmt;
    for (size_t i = 0; i < n; i++)
        y[i] = (f->bits <= 8 ? f->lut[c[i]] : ag__decode(f, c[i])) * p->scale;
}

static void s_backward(float *dx, const float *dy, const float *x, size_t n,
                       const ag__kparams *p, int clipped)
{
    for (size_t i = 0; i < n; i++) {
        if (clipped && fabsf(x[i] / p->scale) > p->max_finite)
            continue;
        dx[i] += dy[i];
    }
}

static void s_scale_mul(float *y, const float *x, size_t n, float scale,
                        int accum)
{
    for (size_t i = 0; i < n; i++)
        y[i] = accum ? y[i] + x[i] * scale : x[i] * scale;
}

static uint32_t s_max_u16(const uint16_t *c, size_t n)
{
    uint32_t mx = 0;
    for (size_t i = 0; i < n; i++)
        if (c[i] > mx)
            mx = c[i];
    return mx;
}

const ag__kernel_ops ag__kernels_scalar = {
    s_quantize, s_encode_u8, s_encode_u16, s_decode_u8,
    s_decode_u16, s_backward, s_scale_mul, s_max_u16,
};

/* ---- choosing a table ------------------------------------------------------ */

static int cpu_has(int k)
{
#if AG__HAVE_X86_KERNELS
    if (k == AG_KERNEL_AVX2)
        return __builtin_cpu_supports("avx2");
    if (k == AG_KERNEL_AVX512)
        return __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512cd");
#endif
    return k == AG_KERNEL_SCALAR || k == AG_KERNEL_PORTABLE;
}

const ag__kernel_ops *ag__kernel_table(int k)
{
    switch (k) {
    case AG_KERNEL_AUTO:
        if (cpu_has(AG_KERNEL_AVX512))
            return ag__kernel_table(AG_KERNEL_AVX512);
        if (cpu_has(AG_KERNEL_AVX2))
            return ag__kernel_table(AG_KERNEL_AVX2);
        return &ag__kernels_portable;
    case AG_KERNEL_SCALAR:
        return &ag__kernels_scalar;
    case AG_KERNEL_PORTABLE:
        return &ag__kernels_portable;
#if AG__HAVE_X86_KERNELS
    case AG_KERNEL_AVX2:
        return cpu_has(k) ? &ag__kernels_avx2 : NULL;
    case AG_KERNEL_AVX512:
        return cpu_has(k) ? &ag__kernels_avx512 : NULL;
#endif
    default:
        return NULL;
    }
}

int ag_kernel_available(int kernel)
{
    return ag__kernel_table(kernel) != NULL;
}
