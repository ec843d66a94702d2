/* SPDX-License-Identifier: MIT */
/*
 * ag_kernels_body.h — the kernel body, included once per instruction set by
 * ag_kernels_portable.c / _avx2.c / _avx512.c, each of which defines
 * AG_KTABLE (the name of the ag__kernel_ops table to define) and sets its
 * target ISA with #pragma GCC target before including this file.
 *
 * Plain C written for GCC's vectorizer: every inner loop is straight-line
 * 32-bit integer and float work with selects instead of branches, so it
 * becomes one SIMD loop per (operation, rounding mode). The logic mirrors
 * ag__round (src/ag_format.c) case by case; read that first.
 */
#if !defined(AG_KTABLE) && !defined(AG_K_NO_TABLE)
#error "define AG_KTABLE (or AG_K_NO_TABLE) before including ag_kernels_body.h"
#endif

#include "ag_kernels.h"

#define AG_K_INLINE static inline __attribute__((always_inline))

/* "no loop-carried dependences": GCC's pragma (clang has no such pragma
 * and vectorizes these loops without it) */
#if defined(__GNUC__) && !defined(__clang__)
#define AG_K_IVDEP _Pragma("GCC ivdep")
#else
#define AG_K_IVDEP
#endif

/* Float bits through a union: GCC vectorizes it as a plain reinterpretation. */
typedef union {
    float f;
    uint32_t u;
} ag_k_fu;

AG_K_INLINE uint32_t k_f2u(float f)
{
    ag_k_fu c;
    c.f = f;
    return c.u;
}

AG_K_INLINE float k_u2f(uint32_t u)
{
    ag_k_fu c;
    c.u = u;
    return c.f;
}

/* Branch-free selects: c (0 or 1) ? a : b, as masks, so that GCC keeps
 * them as vector logic instead of turning chains of them into branches. */
AG_K_INLINE uint32_t k_sel(uint32_t c, uint32_t a, uint32_t b)
{
    const uint32_t m = 0u - c;
    return (a & m) | (b & ~m);
}

AG_K_INLINE int32_t k_seli(uint32_t c, int32_t a, int32_t b)
{
    return (int32_t)k_sel(c, (uint32_t)a, (uint32_t)b);
}

/* 2^q as float32 bits for -149 <= q <= 128 (128 gives inf); values outside
 * give some harmless pattern (the lanes that use them are overridden). */
AG_K_INLINE uint32_t k_pow2_bits(int32_t q)
{
    const int32_t sh0 = q + 149;
    const int32_t sh = sh0 < 0 ? 0 : (sh0 > 31 ? 31 : sh0);
    const uint32_t normal = (uint32_t)(q + 127) << 23;
    const uint32_t sub = 1u << sh;
    return k_sel(q >= -126, normal, sub);
}

/* Random words of stream elements [g, g + len): out[j] is the word of
 * element g - (g mod 4) + j, so element g + i reads out[(g & 3) + i].
 * One ARS-7 block serves four elements (ag__ars_fill: AES-NI where the
 * CPU has it). */
static void k_rng_fill(uint32_t *restrict out, uint64_t g, size_t len,
                       uint64_t seed, uint64_t stream)
{
    ag__ars_fill(out, g >> 2, (size_t)(((g & 3u) + len + 3u) >> 2), seed, stream);
}

/* Output kinds of the rounding loop. */
#define K_OUT_F32 0
#define K_OUT_U8 1
#define K_OUT_U16 2

/* Round one tile of len <= AG__TILE elements. mode, kind and use_inv are
 * compile-time constants after inlining; rnd is NULL unless stochastic.
 * Counts go to cnt[0..2] (overflow, underflow, nan). */
AG_K_INLINE void k_round_tile(void *restrict outp, const float *inp,
                              size_t len, const uint32_t *rnd,
                              const ag__kparams *restrict p, const int mode,
                              const int kind, const int use_inv,
                              uint32_t cnt[3])
{
    float *yo = (float *)outp;
    uint8_t *c8 = (uint8_t *)outp;
    uint16_t *c16 = (uint16_t *)outp;
    const uint32_t M = p->mbits;
    const int32_t emin = p->emin, emax1 = p->emax + 1, bias = p->bias;
    const int32_t q_sub = p->q_sub;
    const uint32_t fixed = p->fixed, no_zero = p->no_zero;
    const uint32_t is_unsigned = p->is_unsigned, sign_mask = p->sign_mask;
    const uint32_t max_code = p->max_code;
    const float scale = p->scale, inv = p->inv_scale;
    const uint32_t nan_code = p->nan_code;
    const uint32_t uneg_code = p->uneg_code, uneg_val = p->uneg_val;
    const uint32_t uneg_is_nan = p->uneg_is_nan;
    const uint32_t zc0 = p->zero_code[0], zc1 = p->zero_code[1];
    const uint32_t zv0 = p->zero_val[0], zv1 = p->zero_val[1];
    const uint32_t ic0 = p->inf_code[0], ic1 = p->inf_code[1];
    const uint32_t iv0 = p->inf_val[0], iv1 = p->inf_val[1];
    const uint32_t oc0 = p->ovf_code[0], oc1 = p->ovf_code[1];
    const uint32_t ov0 = p->ovf_val[0], ov1 = p->ovf_val[1];
    const uint32_t mc0 = p->max_codes[0], mc1 = p->max_codes[1];
    const uint32_t mv0 = p->max_val[0], mv1 = p->max_val[1];
    const uint32_t cv0 = p->clamp_val[0], cv1 = p->clamp_val[1];
    const uint32_t nan_val = p->nan_val;
    /* "toward zero" for each sign, from the mode */
    const uint32_t tzp = mode == AG_ROUND_TOWARD_ZERO || mode == AG_ROUND_DOWN;
    const uint32_t tzn = mode == AG_ROUND_TOWARD_ZERO || mode == AG_ROUND_UP;
    uint32_t n_ovf = 0, n_unf = 0, n_nan = 0;

    AG_K_IVDEP
    for (size_t i = 0; i < len; i++) {
        const float xin = inp[i];
        const float v = use_inv ? xin * inv : xin / scale;
        const uint32_t b = k_f2u(v);
        const uint32_t sign = b >> 31;
        const uint32_t a = b & 0x7fffffffu;
        const uint32_t isnan_ = a > 0x7f800000u;
        const uint32_t isinf_ = a == 0x7f800000u;
        const uint32_t iszero = a == 0u;
        const uint32_t uneg = sign & is_unsigned & (iszero ^ 1u) & (isnan_ ^ 1u);
        const uint32_t sbit = sign_mask & (0u - sign);

        /* |v| = sig * 2^ex; ux = floor(log2 |v|) (float subnormals: from
         * the exact int -> float conversion of their bits) */
        const uint32_t fe = a >> 23;
        const uint32_t isnorm = fe != 0;
        const uint32_t sig = k_sel(isnorm, (a & 0x7fffffu) | 0x800000u, a);
        const int32_t ux_sub = (int32_t)(k_f2u((float)(int32_t)a) >> 23) - 276;
        const int32_t ux = k_seli(isnorm, (int32_t)fe - 127, ux_sub);
        const int32_t ex = k_seli(isnorm, (int32_t)fe, 1) - 150;
        const uint32_t big = ux > emax1;
        const uint32_t lowb = ux < emin;
        const uint32_t sub = fixed | lowb;
        const int32_t q = k_seli(sub, q_sub, ux - (int32_t)M);
        const uint32_t base = ((uint32_t)(ux + bias - 1) << M) & (sub - 1u);
        /* bits discarded; < 0 only far beyond the range of an E = 0
         * format (then "big" decides) */
        const int32_t s0 = q - ex;
        const int32_t s = s0 < 0 ? 0 : s0;
        const uint32_t sc = (uint32_t)(s > 31 ? 31 : s);
        const uint32_t t = sig >> sc;
        const uint32_t r = sig - (t << sc);
        const uint32_t half = (1u << sc) >> 1;
        uint32_t up;
        if (mode == AG_ROUND_NEAREST_EVEN) {
            /* r > half, or a tie (r == half, s >= 1) with an odd code:
             * 2r + odd > 2^s (s = 0 leaves r = 0: never up) */
            up = ((r << 1) + ((base + t) & 1u)) > (1u << sc);
        } else if (mode == AG_ROUND_NEAREST_AWAY) {
            up = (r != 0) & (r >= half);
        } else if (mode == AG_ROUND_TOWARD_ZERO) {
            up = 0;
        } else if (mode == AG_ROUND_DOWN) {
            up = sign & (r != 0);
        } else if (mode == AG_ROUND_UP) {
            up = (sign ^ 1u) & (r != 0);
        } else { /* stochastic: up iff rnd < floor(r * 2^(32-s)) */
            const int32_t sl0 = 32 - s, sr0 = s - 32;
            const int32_t sl = sl0 < 0 ? 0 : (sl0 > 31 ? 31 : sl0);
            const int32_t sr = sr0 < 0 ? 0 : (sr0 > 31 ? 31 : sr0);
            const uint32_t thr = k_sel(s <= 32, r << sl, r >> sr);
            up = rnd[i] < thr;
        }
        const uint32_t k = t + up;
        const uint32_t code_reg = base + k;
        const uint32_t ovf_reg = big | (code_reg > max_code);
        const uint32_t clamp = no_zero & lowb;
        const uint32_t tz = k_sel(sign, tzn, tzp);
        const uint32_t special = isnan_ | uneg | iszero;
        const uint32_t is_ovf =
            (special ^ 1u) & (isinf_ | ((clamp ^ 1u) & ovf_reg));
        const uint32_t zres = (special ^ 1u) & (isinf_ ^ 1u) & (clamp ^ 1u) &
                              (ovf_reg ^ 1u) & (code_reg == 0) & (no_zero ^ 1u);
        /* x != 0 whose quotient x / scale is already 0 underflows too */
        const uint32_t xnz = (k_f2u(xin) << 1) != 0;
        const uint32_t is_unf = (uneg & (uneg_is_nan ^ 1u)) | zres |
                                (iszero & xnz & (no_zero ^ 1u));
        const uint32_t is_nan =
            isnan_ | (uneg & uneg_is_nan) | (iszero & no_zero);
        n_ovf += is_ovf;
        n_unf += is_unf;
        n_nan += is_nan;

        if (kind == K_OUT_F32) {
            const float mag = (float)(int32_t)k * k_u2f(k_pow2_bits(q));
            uint32_t o = k_f2u(mag) | (b & 0x80000000u);
            o = k_sel(zres, k_sel(sign, zv1, zv0), o);
            o = k_sel(ovf_reg, k_sel(tz, k_sel(sign, mv1, mv0),
                                     k_sel(sign, ov1, ov0)), o);
            o = k_sel(clamp, k_sel(sign, cv1, cv0), o);
            o = k_sel(isinf_, k_sel(sign, iv1, iv0), o);
            o = k_sel(iszero, k_sel(sign, zv1, zv0), o);
            o = k_sel(uneg, uneg_val, o);
            o = k_sel(isnan_, nan_val, o);
            const float qv = k_u2f(o) * scale;
            yo[i] = k_u2f(k_sel(isnan_, k_f2u(xin), k_f2u(qv)));
        } else {
            uint32_t c = sbit | code_reg;
            c = k_sel(zres, k_sel(sign, zc1, zc0), c);
            c = k_sel(ovf_reg, k_sel(tz, k_sel(sign, mc1, mc0),
                                     k_sel(sign, oc1, oc0)), c);
            c = k_sel(clamp, sbit, c);
            c = k_sel(isinf_, k_sel(sign, ic1, ic0), c);
            c = k_sel(iszero, k_sel(sign, zc1, zc0), c);
            c = k_sel(uneg, uneg_code, c);
            c = k_sel(isnan_, nan_code, c);
            if (kind == K_OUT_U8)
                c8[i] = (uint8_t)c;
            else
                c16[i] = (uint16_t)c;
        }
    }
    cnt[0] += n_ovf;
    cnt[1] += n_unf;
    cnt[2] += n_nan;
}


/* The lean loop: the same results as k_round_tile for "simple" formats
 * (ag__kparams.lean: signed, with -0, every float32 subnormal below the
 * format's normal range, every step >= 2^-126), with far fewer operations:
 *  - float subnormals need no leading-zero count: with fe' = max(fe, 1) the
 *    exponent of the step decides alone (they all sit in the format's
 *    subnormal range, where the step is 2^q_sub);
 *  - the rounded magnitude is k * 2^q as a float product (2^q normal);
 *  - +-0 results and inputs keep their sign through the OR of the sign bit;
 *  - overflow (finite or not) is one compare of the code with max_code.
 * Only +-inf inputs, overflow and NaN need selects. */
AG_K_INLINE void k_round_tile_lean(void *restrict outp, const float *inp,
                                   size_t len, const uint32_t *rnd,
                                   const ag__kparams *restrict p,
                                   const int mode, const int kind,
                                   const int use_inv, uint32_t cnt[3])
{
    float *yo = (float *)outp;
    uint8_t *c8 = (uint8_t *)outp;
    uint16_t *c16 = (uint16_t *)outp;
    const uint32_t M = p->mbits;
    const int32_t q_sub = p->q_sub;
    const int32_t qadj = p->fixed ? -100000 : 0; /* E = 0: q = q_sub */
    const int32_t bias1 = p->bias - 1, emax1 = p->emax + 1;
    const uint32_t m0 = p->mbits == 0 ? 1u : 0u;  /* code parity needs base */
    const uint32_t fixmask = p->fixed ? 0u : ~0u;
    const uint32_t sign_mask = p->sign_mask, max_code = p->max_code;
    const float scale = p->scale, inv = p->inv_scale;
    const uint32_t nan_code = p->nan_code;
    const uint32_t ic0 = p->inf_code[0], ic1 = p->inf_code[1];
    const uint32_t iv0 = p->inf_val[0], iv1 = p->inf_val[1];
    const uint32_t oc0 = p->ovf_code[0], oc1 = p->ovf_code[1];
    const uint32_t ov0 = p->ovf_val[0], ov1 = p->ovf_val[1];
    const uint32_t mc0 = p->max_codes[0], mc1 = p->max_codes[1];
    const uint32_t mv0 = p->max_val[0], mv1 = p->max_val[1];
    /* overflow results by sign, after the mode's toward-zero choice */
    const int tzp = mode == AG_ROUND_TOWARD_ZERO || mode == AG_ROUND_DOWN;
    const int tzn = mode == AG_ROUND_TOWARD_ZERO || mode == AG_ROUND_UP;
    const uint32_t oval0 = tzp ? mv0 : ov0, oval1 = tzn ? mv1 : ov1;
    const uint32_t ocod0 = tzp ? mc0 : oc0, ocod1 = tzn ? mc1 : oc1;
    uint32_t n_ovf = 0, n_unf = 0, n_nan = 0;

    AG_K_IVDEP
    for (size_t i = 0; i < len; i++) {
        const float xin = inp[i];
        const float v = use_inv ? xin * inv : xin / scale;
        const uint32_t b = k_f2u(v);
        const uint32_t sign = b >> 31;
        const uint32_t a = b & 0x7fffffffu;
        const uint32_t isnan_ = a > 0x7f800000u;
        const uint32_t isinf_ = a == 0x7f800000u;
        const int32_t fe1 = (int32_t)(a >> 23) > 1 ? (int32_t)(a >> 23) : 1;
        const uint32_t sig = a - ((uint32_t)fe1 << 23) + 0x800000u;
        const int32_t ux = fe1 - 127;
        const int32_t qn = ux - (int32_t)M + qadj;
        const int32_t q = qn > q_sub ? qn : q_sub;
        const int32_t s0 = q - fe1 + 150; /* < 0 only far beyond (E = 0) */
        const int32_t s = s0 < 0 ? 0 : s0;
        const uint32_t sc = (uint32_t)(s > 31 ? 31 : s);
        const uint32_t t = sig >> sc;
        const uint32_t unit = 1u << sc;
        const uint32_t r = sig & (unit - 1u);
        const int32_t eb = ux + bias1;
        const uint32_t base = ((uint32_t)(eb > 0 ? eb : 0) << M) & fixmask;
        uint32_t up;
        if (mode == AG_ROUND_NEAREST_EVEN) {
            const uint32_t odd = (t + (base & (0u - m0))) & 1u;
            up = ((r << 1) + odd) > unit;
        } else if (mode == AG_ROUND_NEAREST_AWAY) {
            up = (r << 1) >= unit;
        } else if (mode == AG_ROUND_TOWARD_ZERO) {
            up = 0;
        } else if (mode == AG_ROUND_DOWN) {
            up = sign & (r != 0);
        } else if (mode == AG_ROUND_UP) {
            up = (sign ^ 1u) & (r != 0);
        } else {
            const int32_t sl0 = 32 - s, sr0 = s - 32;
            const int32_t sl = sl0 < 0 ? 0 : (sl0 > 31 ? 31 : sl0);
            const int32_t sr = sr0 < 0 ? 0 : (sr0 > 31 ? 31 : sr0);
            const uint32_t thr = k_sel(s <= 32, r << sl, r >> sr);
            up = rnd[i] < thr;
        }
        const uint32_t k = t + up;
        const uint32_t code = base + k;
        /* finite beyond (code past max, or at least twice max_finite),
         * inf, NaN */
        const uint32_t ovf = (code > max_code) | (ux > emax1);
        const uint32_t ok = isnan_ ^ 1u;
        n_ovf += ovf & ok;
        n_unf += (k == 0) & ((k_f2u(xin) << 1) != 0);
        n_nan += isnan_;
        if (kind == K_OUT_F32) {
            const float mag = (float)(int32_t)k * k_u2f((uint32_t)(q + 127) << 23);
            uint32_t o = k_f2u(mag) | (b & 0x80000000u);
            o = k_sel(ovf, k_sel(sign, oval1, oval0), o);
            o = k_sel(isinf_, k_sel(sign, iv1, iv0), o);
            const float qv = k_u2f(o) * scale;
            yo[i] = k_u2f(k_sel(isnan_, k_f2u(xin), k_f2u(qv)));
        } else {
            uint32_t c = code | (sign_mask & (0u - sign));
            c = k_sel(ovf, k_sel(sign, ocod1, ocod0), c);
            c = k_sel(isinf_, k_sel(sign, ic1, ic0), c);
            c = k_sel(isnan_, nan_code, c);
            if (kind == K_OUT_U8)
                c8[i] = (uint8_t)c;
            else
                c16[i] = (uint16_t)c;
        }
    }
    cnt[0] += n_ovf;
    cnt[1] += n_unf;
    cnt[2] += n_nan;
}

/* Nearest-even quantize (float output) or encode (codes), for the formats
 * of p->nefast: the value is rounded on the float32 pattern itself. Normal
 * range of the format: add half an ulp of the format (minus one, plus the
 * kept LSB: ties to even) and clear the dropped bits; a carry into the
 * exponent is the next binade, and past max_finite it is the next value
 * "as if the exponent range went on" (then compared with max). Below
 * 2^emin (all of an E = 0 format): |v| + 2^(emin-M+23) makes the float
 * adder round to the subnormal step, ties to even (k even = code even), and
 * subtracting the constant back is exact. Codes are read off the rounded
 * pattern: on the normal range (r >> (23-M)) is (float exponent << M |
 * mantissa), so the code is that minus (127 - bias) << M; below 2^emin the
 * bits of |v| + magic minus those of magic count the subnormal steps.
 * Same results and counters as k_round_tile for these formats (tested
 * bit-exact); count = 0 skips the counters. */
AG_K_INLINE void k_round_ne_fast(void *restrict outp, const float *restrict inp,
                                 size_t len, const ag__kparams *restrict p,
                                 const int use_inv, const int kind,
                                 const int count, uint32_t cnt[3])
{
    float *yo = (float *)outp;
    uint8_t *c8 = (uint8_t *)outp;
    uint16_t *c16 = (uint16_t *)outp;
    const uint32_t sh = p->ne_sh;
    const uint32_t half1 = (1u << (sh - 1u)) - 1u;
    const uint32_t keep = ~((1u << sh) - 1u);
    const uint32_t minnorm = p->ne_minnorm, maxb = p->ne_maxb;
    const float magic = p->ne_magic;
    const uint32_t magicb = k_f2u(magic);
    const uint32_t off = (uint32_t)(127 - p->bias) << p->mbits;
    const float scale = p->scale, inv = p->inv_scale;
    const uint32_t ov0 = p->ovf_val[0], ov1 = p->ovf_val[1];
    const uint32_t iv0 = p->inf_val[0], iv1 = p->inf_val[1];
    const uint32_t sign_mask = p->sign_mask, nan_code = p->nan_code;
    const uint32_t oc0 = p->ovf_code[0], oc1 = p->ovf_code[1];
    const uint32_t ic0 = p->inf_code[0], ic1 = p->inf_code[1];
    uint32_t n_ovf = 0, n_unf = 0, n_nan = 0;
    AG_K_IVDEP
    for (size_t i = 0; i < len; i++) {
        const float xin = inp[i];
        const float v = use_inv ? xin * inv : xin / scale;
        const uint32_t b = k_f2u(v);
        const uint32_t sign = b >> 31;
        const uint32_t a = b & 0x7fffffffu;
        const uint32_t rn = (a + half1 + ((a >> sh) & 1u)) & keep;
        const uint32_t ss = k_f2u(k_u2f(a) + magic);
        const uint32_t rs = k_f2u(k_u2f(ss) - magic);
        const uint32_t sub = a < minnorm;
        const uint32_t r = sub ? rs : rn;
        const uint32_t isnan_ = a > 0x7f800000u;
        const uint32_t isinf_ = a == 0x7f800000u;
        const uint32_t ovf = r > maxb; /* also inf and NaN inputs */
        if (count) {
            n_ovf += ovf & (isnan_ ^ 1u);
            n_unf += (r == 0) & ((k_f2u(xin) << 1) != 0);
            n_nan += isnan_;
        }
        if (kind == K_OUT_F32) {
            uint32_t o = r | (b & 0x80000000u);
            o = k_sel(ovf, sign ? ov1 : ov0, o);
            o = k_sel(isinf_, sign ? iv1 : iv0, o);
            const float qv = k_u2f(o) * scale;
            yo[i] = k_u2f(k_sel(isnan_, k_f2u(xin), k_f2u(qv)));
        } else {
            const uint32_t mag = sub ? ss - magicb : (rn >> sh) - off;
            uint32_t c = mag | (sign_mask & (0u - sign));
            c = k_sel(ovf, sign ? oc1 : oc0, c);
            c = k_sel(isinf_, sign ? ic1 : ic0, c);
            c = k_sel(isnan_, nan_code, c);
            if (kind == K_OUT_U8)
                c8[i] = (uint8_t)c;
            else
                c16[i] = (uint16_t)c;
        }
    }
    cnt[0] += n_ovf;
    cnt[1] += n_unf;
    cnt[2] += n_nan;
}

/* The per-call constants of the satq loops below: 2^(23 - M) as an
 * exponent increment, max_finite, magic and the policy's +inf result as
 * bits (sym: the negative one is this | sign), the scale and 1 / scale. */
typedef struct {
    uint32_t kexp, maxb, magicb, infb;
    float scale, inv;
} k_satq_k;

AG_K_INLINE k_satq_k k_satq_init(const ag__kparams *p)
{
    const k_satq_k k = {p->ne_sh << 23, p->ne_maxb, k_f2u(p->ne_magic), p->inf_val[0],
                        p->scale, p->inv_scale};
    return k;
}

/* The start of the satq loops: v = x / scale (x * inv where that is
 * exact) as bits *b, |v| as *a; returns |v| clamped to max_finite (inf
 * and NaN too). */
AG_K_INLINE uint32_t k_satq_in(float xin, const k_satq_k *k, const int use_inv, uint32_t *b,
                               uint32_t *a)
{
    *b = k_f2u(use_inv ? xin * k->inv : xin / k->scale);
    *a = *b & 0x7fffffffu;
    return *a < k->maxb ? *a : k->maxb;
}

/* Their end: r (|v| rounded) becomes the policy's inf result where v =
 * +-inf, takes the sign of v, times the scale; NaN keeps x. */
AG_K_INLINE float k_satq_out(uint32_t r, uint32_t a, uint32_t b, float xin, const k_satq_k *k)
{
    r = k_sel(a == 0x7f800000u, k->infb, r);
    const float qv = k_u2f(r | (b & 0x80000000u)) * k->scale;
    return xin != xin ? xin : qv;
}

/* The default quantize (nearest-even, saturating to max_finite, no
 * counts) for the formats whose float sum needs no integer fallback (C
 * finite up to max_finite; M = 0 only with normals: what the AVX-512 loop
 * takes too). |v| is clamped to max_finite first (max_finite rounds to
 * itself; everything above it saturates there), then rounded by the float
 * sum |v| + C - C with C = max(2^(e + 23 - M), magic), exact and ties to
 * even as in k_round_ne_fast's subnormal branch, so no overflow is left
 * to select. par (M = 0; nefast means an odd bias, so the code's parity
 * is bit 23 of |v|): the sum's tie goes to the even multiple of the step
 * 2^e, up, which is right where bit 23 is set; elsewhere C gets its last
 * bit, an odd multiple of the step, and the tie goes down (below 2^emin C
 * = magic, whose tie goes to 0, the even code). v = +-inf takes the inf
 * result of the policy; NaN keeps x. Fewer operations than
 * k_round_ne_fast, and all of them unconditional, so that the compiler
 * vectorizes it whole. */
AG_K_INLINE void k_round_ne_satq(float *restrict yo, const float *restrict inp,
                                 size_t len, const ag__kparams *restrict p,
                                 const int use_inv, const int par)
{
    const k_satq_k k = k_satq_init(p);
    AG_K_IVDEP
    for (size_t i = 0; i < len; i++) {
        const float xin = inp[i];
        uint32_t b, a;
        const uint32_t ac = k_satq_in(xin, &k, use_inv, &b, &a);
        uint32_t ce = (ac & 0x7f800000u) + k.kexp;
        if (par) /* M = 0: C odd where bit 23 of |v| is clear (see above) */
            ce |= (~ac >> 23) & 1u;
        const float c = k_u2f(ce > k.magicb ? ce : k.magicb);
        yo[i] = k_satq_out(k_f2u((k_u2f(ac) + c) - c), a, b, xin, &k);
    }
}

/* The default stochastic quantize (saturating to max_finite, no counts)
 * of the formats with p->sr_fast, as the AVX-512 float-sum loop does it
 * but in plain C, so that the compiler vectorizes it whole: |v| clamped to
 * max_finite (whose dropped bits are zero, so it stays), C = max(2^(e +
 * 23 - M), magic) (magic alone when E = 0: fixc), and the multiple t of
 * the step below |v| from the float sum |v| + C - C, moved down one step
 * where that rounded up. The rest |v| - t is exact, and rest * 2^32 /
 * step (2^55 / C: a power of two) truncated is floor(frac * 2^32), which
 * the spec compares the element's random word with. v = +-inf takes the
 * inf result of the policy; NaN keeps x. */
AG_K_INLINE void k_round_sr_satq(float *restrict yo, const float *restrict inp,
                                 const uint32_t *restrict rnd, size_t len,
                                 const ag__kparams *restrict p, const int use_inv,
                                 const int fixc)
{
    const k_satq_k k = k_satq_init(p);
    const uint32_t scl = (uint32_t)(2 * 127 + 55) << 23, stp = 23u << 23;
    AG_K_IVDEP
    for (size_t i = 0; i < len; i++) {
        const float xin = inp[i];
        uint32_t b, a;
        const uint32_t ac = k_satq_in(xin, &k, use_inv, &b, &a);
        const uint32_t ce = (ac & 0x7f800000u) + k.kexp;
        const uint32_t cc = fixc ? k.magicb : (ce > k.magicb ? ce : k.magicb);
        const float av = k_u2f(ac), c = k_u2f(cc), step = k_u2f(cc - stp);
        const float tn = (av + c) - c;
        const float t = tn > av ? tn - step : tn;
        const uint32_t thr = (uint32_t)((av - t) * k_u2f(scl - cc));
        yo[i] = k_satq_out(k_f2u(rnd[i] < thr ? t + step : t), a, b, xin, &k);
    }
}

/* The tile loop of one (mode, kind). */
AG_K_INLINE void k_round_run(void *out, const float *x, size_t n, uint64_t g0,
                             const ag__kparams *p, ag__kstats *st,
                             const int mode, const int kind)
{
    const size_t esz = kind == K_OUT_F32 ? 4 : (kind == K_OUT_U8 ? 1 : 2);
    uint32_t rbuf[AG__TILE + 8];
    /* the default quantize of k_round_ne_satq: saturating to max_finite,
     * uncounted, overflow and inf results by sign bit (sym), C = 2^(e +
     * 23 - M) finite up to max_finite, M = 0 only with normals (as the
     * AVX-512 loop) */
    const int satq = kind == K_OUT_F32 && !p->count && p->sym &&
                     p->ovf_val[0] == p->ne_maxb && (p->mbits >= 1 || !p->fixed) && p->ne_cfin;
    for (size_t i0 = 0; i0 < n; i0 += AG__TILE) {
        const size_t len = n - i0 < AG__TILE ? n - i0 : AG__TILE;
        const uint32_t *rnd = NULL;
        if (mode == AG_ROUND_STOCHASTIC) {
            const uint64_t g = g0 + i0;
            k_rng_fill(rbuf, g, len, p->seed, p->stream);
            rnd = rbuf + (g & 3u);
        }
        uint32_t cnt[3] = {0, 0, 0};
        /* two loops, so that neither holds a (trapping) FP op under a
         * condition, which would keep GCC from vectorizing it */
        void *o = (char *)out + i0 * esz;
        /* (count and use_inv as constants: four specialised loops) */
        if (mode == AG_ROUND_NEAREST_EVEN && p->nefast && satq) {
            if (p->mbits == 0 && p->use_inv)
                k_round_ne_satq((float *)o, x + i0, len, p, 1, 1);
            else if (p->mbits == 0)
                k_round_ne_satq((float *)o, x + i0, len, p, 0, 1);
            else if (p->use_inv)
                k_round_ne_satq((float *)o, x + i0, len, p, 1, 0);
            else
                k_round_ne_satq((float *)o, x + i0, len, p, 0, 0);
        } else if (mode == AG_ROUND_STOCHASTIC && satq && p->sr_fast) {
            const int fixc = (int)p->fixed; /* E = 0 */
            if (p->use_inv && fixc)
                k_round_sr_satq((float *)o, x + i0, rnd, len, p, 1, 1);
            else if (p->use_inv)
                k_round_sr_satq((float *)o, x + i0, rnd, len, p, 1, 0);
            else if (fixc)
                k_round_sr_satq((float *)o, x + i0, rnd, len, p, 0, 1);
            else
                k_round_sr_satq((float *)o, x + i0, rnd, len, p, 0, 0);
        } else if (mode == AG_ROUND_NEAREST_EVEN && p->nefast) {
            if (p->use_inv && p->count)
                k_round_ne_fast(o, x + i0, len, p, 1, kind, 1, cnt);
            else if (p->use_inv)
                k_round_ne_fast(o, x + i0, len, p, 1, kind, 0, cnt);
            else if (p->count)
                k_round_ne_fast(o, x + i0, len, p, 0, kind, 1, cnt);
            else
                k_round_ne_fast(o, x + i0, len, p, 0, kind, 0, cnt);
        } else if (p->lean && p->use_inv)
            k_round_tile_lean(o, x + i0, len, rnd, p, mode, kind, 1, cnt);
        else if (p->lean)
            k_round_tile_lean(o, x + i0, len, rnd, p, mode, kind, 0, cnt);
        else if (p->use_inv)
            k_round_tile(o, x + i0, len, rnd, p, mode, kind, 1, cnt);
        else
            k_round_tile(o, x + i0, len, rnd, p, mode, kind, 0, cnt);
        st->overflow += cnt[0];
        st->underflow += cnt[1];
        st->nan += cnt[2];
    }
}

#define K_ROUND_FN(fname, otype, kind)                                        \
    static void fname(otype *out, const float *x, size_t n, uint64_t g0,     \
                      const ag__kparams *p, ag__kstats *st)                   \
    {                                                                         \
        switch (p->mode) {                                                    \
        case AG_ROUND_NEAREST_EVEN:                                           \
            k_round_run(out, x, n, g0, p, st, AG_ROUND_NEAREST_EVEN, kind);   \
            break;                                                            \
        case AG_ROUND_NEAREST_AWAY:                                           \
            k_round_run(out, x, n, g0, p, st, AG_ROUND_NEAREST_AWAY, kind);   \
            break;                                                            \
        case AG_ROUND_TOWARD_ZERO:                                            \
            k_round_run(out, x, n, g0, p, st, AG_ROUND_TOWARD_ZERO, kind);    \
            break;                                                            \
        case AG_ROUND_DOWN:                                                   \
            k_round_run(out, x, n, g0, p, st, AG_ROUND_DOWN, kind);           \
            break;                                                            \
        case AG_ROUND_UP:                                                     \
            k_round_run(out, x, n, g0, p, st, AG_ROUND_UP, kind);             \
            break;                                                            \
        case AG_ROUND_STOCHASTIC:                                             \
            k_round_run(out, x, n, g0, p, st, AG_ROUND_STOCHASTIC, kind);     \
            break;                                                            \
        }                                                                     \
    }

K_ROUND_FN(k_quantize, float, K_OUT_F32)
K_ROUND_FN(k_encode_u8, uint8_t, K_OUT_U8)
K_ROUND_FN(k_encode_u16, uint16_t, K_OUT_U16)

/* Decode codes (< ncodes, checked by the caller) to values times scale:
 * the value of a code from its fields, as ag__decode computes it. */
AG_K_INLINE void k_decode_run(float *y, const void *codes, size_t n,
                              const ag__kparams *restrict p, const int wide)
{
    const uint8_t *c8 = (const uint8_t *)codes;
    const uint16_t *c16 = (const uint16_t *)codes;
    const uint32_t M = p->mbits, sign_mask = p->sign_mask;
    const uint32_t mmask = (1u << M) - 1u;
    const uint32_t no_zero = p->no_zero;
    const int32_t pbase = p->emin - (int32_t)M;
    const uint32_t ieee = p->ieee, fn = p->fn, fnuz = p->fnuz;
    const uint32_t all_mag = p->all_mag, e_all = p->e_all;
    const uint32_t qn_pos = p->qnan_pos, qn_neg = p->qnan_neg;
    const float scale = p->scale;
    AG_K_IVDEP
    for (size_t i = 0; i < n; i++) {
        const uint32_t c = (uint32_t)(wide ? c16[i] : c8[i]);
        const uint32_t neg = (c & sign_mask) != 0;
        const uint32_t mag = c & ~sign_mask;
        const uint32_t e = mag >> M;
        const uint32_t m = mag & mmask;
        const uint32_t implicit = no_zero | (e != 0);
        const uint32_t k = m | (implicit << M);
        const int32_t pe = pbase + (int32_t)e - (int32_t)((e != 0) & (no_zero ^ 1u));
        const float mag_v = (float)(int32_t)k * k_u2f(k_pow2_bits(pe));
        uint32_t o = k_f2u(mag_v) | (neg << 31);
        const uint32_t top = ieee & (e == e_all);
        const uint32_t isnan_ = (top & (m != 0)) | (fn & (mag == all_mag)) |
                                (fnuz & (c == sign_mask));
        const uint32_t isinf_ = top & (m == 0);
        o = k_sel(isinf_, k_sel(neg, 0xff800000u, 0x7f800000u), o);
        o = k_sel(isnan_, k_sel(neg, qn_neg, qn_pos), o);
        y[i] = k_u2f(o) * scale;
    }
}

/* Formats of at most 8 bits: a gather from the per-call table of
 * value * scale (vpgatherdd on AVX2 / AVX-512). */
AG_K_INLINE void k_decode_lut(float *y, const void *codes, size_t n,
                              const float *restrict lut, const int wide)
{
    const uint8_t *c8 = (const uint8_t *)codes;
    const uint16_t *c16 = (const uint16_t *)codes;
    AG_K_IVDEP
    for (size_t i = 0; i < n; i++)
        y[i] = lut[wide ? (c16[i] & 0xffu) : c8[i]];
}

static void k_decode_u8(float *y, const uint8_t *c, size_t n,
                        const ag__kparams *p)
{
    if (p->dlut_ok)
        k_decode_lut(y, c, n, p->dlut, 0);
    else
        k_decode_run(y, c, n, p, 0);
}

static void k_decode_u16(float *y, const uint16_t *c, size_t n,
                         const ag__kparams *p)
{
    if (p->dlut_ok) /* codes < ncodes <= 256: checked by the caller */
        k_decode_lut(y, c, n, p->dlut, 1);
    else
        k_decode_run(y, c, n, p, 1);
}

static uint32_t k_max_u16(const uint16_t *c, size_t n)
{
    uint32_t mx = 0;
    for (size_t i = 0; i < n; i++)
        mx = c[i] > mx ? c[i] : mx;
    return mx;
}

static void k_backward(float *dx, const float *dy, const float *x, size_t n,
                       const ag__kparams *p, int clipped)
{
    if (!clipped) {
    AG_K_IVDEP
        for (size_t i = 0; i < n; i++)
            dx[i] += dy[i];
        return;
    }
    const float scale = p->scale, mx = p->max_finite;
    AG_K_IVDEP
    for (size_t i = 0; i < n; i++) {
        const float v = x[i] / scale;
        const float mag = k_u2f(k_f2u(v) & 0x7fffffffu);
        const float d = dx[i];
        dx[i] = mag > mx ? d : d + dy[i];
    }
}

static void k_scale_mul(float *y, const float *x, size_t n, float scale,
                        int accum)
{
    if (accum) {
    AG_K_IVDEP
        for (size_t i = 0; i < n; i++) {
            const float prod = x[i] * scale;
            y[i] = y[i] + prod;
        }
    } else {
    AG_K_IVDEP
        for (size_t i = 0; i < n; i++)
            y[i] = x[i] * scale;
    }
}

#ifndef AG_K_NO_TABLE
const ag__kernel_ops AG_KTABLE = {
    k_quantize, k_encode_u8, k_encode_u16, k_decode_u8,
    k_decode_u16, k_backward, k_scale_mul, k_max_u16,
};
#endif
