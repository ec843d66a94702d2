/* SPDX-License-Identifier: MIT */
/*
 * ag_ref.c — the slow exact reference (see ag_ref.h). Deliberately naive:
 * tables of long double values, a sort, a binary search and exact
 * comparisons. Every rule below is cited from altgrad.h / DESIGN.md.
 */
#include "ag_ref.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- layout --------------------------------------------------------------- */

/* The value of the magnitude fields (e, m) by the textbook formula, ignoring
 * specials. DESIGN.md: E >= 1: e > 0 -> 2^(e-bias) (1 + m/2^M), e = 0 ->
 * 2^(1-bias) m/2^M; E = 0: m 2^(-M-bias); no_zero: e = 0 is the binade
 * 2^(-bias) (altgrad.h, struct ag_format). */
static long double formula(const ag_ref *r, long e, long m)
{
    const int M = r->mbits;
    if (r->ebits == 0)
        return ldexpl((long double)m, -M - r->bias);
    if (e > 0 || r->no_zero)
        return ldexpl(1.0L + ldexpl((long double)m, -M), (int)(e - r->bias));
    return ldexpl((long double)m, 1 - r->bias - M);
}

static int classify(const ag_ref *r, uint32_t code)
{
    const uint32_t emask = (1u << r->ebits) - 1u, mmask = (1u << r->mbits) - 1u;
    const uint32_t e = (code >> r->mbits) & emask, m = code & mmask;
    switch (r->specials) {
    case AG_SPECIALS_NONE:
        return AG_REF_FINITE;
    case AG_SPECIALS_IEEE: /* exponent all ones: m == 0 inf, else NaN */
        if (e == emask)
            return m == 0 ? AG_REF_INF : AG_REF_NANCODE;
        return AG_REF_FINITE;
    case AG_SPECIALS_FN: /* only S.1..1.1..1 is NaN */
        return (e == emask && m == mmask) ? AG_REF_NANCODE : AG_REF_FINITE;
    case AG_SPECIALS_FNUZ: /* the code with only the sign bit set is NaN */
        return code == r->sign_mask ? AG_REF_NANCODE : AG_REF_FINITE;
    }
    return AG_REF_FINITE;
}

static const long double *cmp_vals; /* qsort has no context argument */
static int cmp_pos(const void *a, const void *b)
{
    const long double x = cmp_vals[*(const uint32_t *)a];
    const long double y = cmp_vals[*(const uint32_t *)b];
    return (x > y) - (x < y);
}

static int exactly_float(long double v)
{
    if (v > (long double)FLT_MAX)
        return 0;
    return (long double)(float)v == v;
}

ag_ref *ag_ref_create(int ebits, int mbits, int bias, int is_signed,
                      ag_specials specials, int no_zero)
{
    ag_ref *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->ebits = ebits;
    r->mbits = mbits;
    r->bias = bias;
    r->is_signed = is_signed ? 1 : 0;
    r->no_zero = no_zero ? 1 : 0;
    r->specials = specials;
    /* ag_format_init: AG_ERR_RANGE for E > 8, M > 23, bits > 16 (and bits
     * must be >= 1); AG_ERR_SPEC for a convention the layout cannot have. */
    if (ebits < 0 || ebits > 8 || mbits < 0 || mbits > 23) {
        r->status = AG_ERR_RANGE;
        return r;
    }
    r->bits = r->is_signed + ebits + mbits;
    if (ebits + mbits < 1 || r->bits > 16) { /* at least one magnitude bit */
        r->status = AG_ERR_RANGE;
        return r;
    }
    if ((unsigned)specials > (unsigned)AG_SPECIALS_FNUZ ||
        (specials == AG_SPECIALS_FNUZ && (!r->is_signed || no_zero)) ||
        (specials == AG_SPECIALS_IEEE && ebits == 0) || (no_zero && ebits == 0)) {
        r->status = AG_ERR_SPEC;
        return r;
    }
    /* FNUZ's "no negative zero" needs a zero (no_zero is SPEC above). A bias
     * beyond +-1000 cannot fit float32 whatever the layout. */
    if (bias < -1000 || bias > 1000) {
        r->status = AG_ERR_RANGE;
        return r;
    }
    r->ncodes = 1u << r->bits;
    r->sign_mask = r->is_signed ? 1u << (ebits + mbits) : 0u;
    r->val = malloc(sizeof *r->val * r->ncodes);
    r->kind = malloc(r->ncodes);
    r->pos_val = malloc(sizeof *r->pos_val * r->ncodes);
    r->pos_code = malloc(sizeof *r->pos_code * r->ncodes);
    if (!r->val || !r->kind || !r->pos_val || !r->pos_code) {
        ag_ref_free(r);
        return NULL;
    }
    const uint32_t emask = (1u << ebits) - 1u, mmask = (1u << mbits) - 1u;
    r->finite_codes = 0;
    r->npos = 0;
    for (uint32_t c = 0; c < r->ncodes; c++) {
        const int neg = (c & r->sign_mask) != 0;
        const int k = classify(r, c);
        r->kind[c] = (unsigned char)k;
        if (k == AG_REF_NANCODE) {
            r->val[c] = neg ? -(long double)NAN : (long double)NAN;
            r->has_nan = 1;
            continue;
        }
        if (k == AG_REF_INF) {
            r->val[c] = neg ? -(long double)INFINITY : (long double)INFINITY;
            r->has_inf = 1;
            if (!neg)
                r->inf_code = c;
            continue;
        }
        const long double v = formula(r, (c >> mbits) & emask, c & mmask);
        r->val[c] = neg ? -v : v;
        r->finite_codes++;
        if (neg && v == 0)
            r->has_negzero = 1;
        if (!neg)
            r->pos_code[r->npos++] = c;
    }
    /* sort the non-negative finite codes by value (not assuming code order) */
    cmp_vals = r->val;
    qsort(r->pos_code, r->npos, sizeof *r->pos_code, cmp_pos);
    for (uint32_t i = 0; i < r->npos; i++)
        r->pos_val[i] = r->val[r->pos_code[i]];
    if (r->npos < 2) {
        /* fewer than two non-negative finite values: nothing to round
         * between (e.g. e1m0:specials=ieee is only +-0 and +-inf) */
        r->status = AG_ERR_SPEC;
        return r;
    }
    r->max_code = r->pos_code[r->npos - 1];
    r->max_finite = r->pos_val[r->npos - 1];
    r->min_subnormal = r->pos_val[0] > 0 ? r->pos_val[0] : r->pos_val[1];
    /* the step at the top: the distance from max to the value below it, or,
     * when max is the only positive value of its binade-step, the grid step
     * of max's binade */
    {
        const uint32_t e = (r->max_code >> mbits) & emask, m = r->max_code & mmask;
        long double step;
        (void)m;
        if (ebits == 0)
            step = ldexpl(1.0L, -mbits - bias);
        else if (e == 0 && !r->no_zero)
            step = ldexpl(1.0L, 1 - bias - mbits);
        else
            step = ldexpl(1.0L, (int)e - bias - mbits);
        r->beyond = r->max_finite + step;
    }
    /* min_normal: smallest positive normal; E = 0: the step.
     * emin: the exponent of the lowest binade, 2^emin = min_normal; for
     * fixed point (E = 0) altgrad defines emin = -bias, the exponent of the
     * unit whose step is 2^(emin - M) (the header does not say; noted). */
    if (ebits == 0) {
        r->min_normal = ldexpl(1.0L, -mbits - bias);
        r->emin = -bias;
    } else if (no_zero) {
        r->min_normal = ldexpl(1.0L, -bias);
        r->emin = -bias;
    } else {
        r->min_normal = ldexpl(1.0L, 1 - bias);
        r->emin = 1 - bias;
    }
    {
        int ex;
        (void)frexpl(r->max_finite, &ex);
        r->emax = ex - 1;
    }
    /* the canonical NaN: FNUZ the sign-only code; FN the positive
     * S.1..1.1..1; IEEE the positive quiet NaN (top mantissa bit) */
    if (r->has_nan) {
        if (specials == AG_SPECIALS_FNUZ)
            r->nan_code = r->sign_mask;
        else if (specials == AG_SPECIALS_FN)
            r->nan_code = (emask << mbits) | mmask;
        else
            r->nan_code = (emask << mbits) | (1u << (mbits - 1));
    }
    /* float32 range: every finite value exact in float32, max <= FLT_MAX */
    for (uint32_t i = 0; i < r->npos; i++) {
        if (!exactly_float(r->pos_val[i])) {
            r->status = AG_ERR_RANGE;
            return r;
        }
    }
    r->status = AG_OK;
    return r;
}

ag_ref *ag_ref_from_format(const ag_format *f)
{
    return ag_ref_create(f->ebits, f->mbits, f->bias, f->is_signed,
                         f->specials, f->no_zero);
}

void ag_ref_free(ag_ref *r)
{
    if (!r)
        return;
    free(r->val);
    free(r->kind);
    free(r->pos_val);
    free(r->pos_code);
    free(r);
}

float ag_ref_decode(const ag_ref *r, uint32_t code)
{
    const long double v = r->val[code];
    if (r->kind[code] == AG_REF_NANCODE)
        return (code & r->sign_mask) ? -NAN : NAN;
    if (r->kind[code] == AG_REF_INF)
        return (code & r->sign_mask) ? -INFINITY : INFINITY;
    return (float)v;
}

/* ---- encode --------------------------------------------------------------- */

static uint32_t overflow_code(const ag_ref *r, int neg, ag_overflow ovf,
                              unsigned *fl)
{
    /* altgrad.h: IEEE policy -> +-inf where the format has inf, NaN where it
     * has NaN but no inf, else +-max; SATURATE -> +-max. */
    const uint32_t s = neg ? r->sign_mask : 0u;
    if (ovf == AG_OVERFLOW_IEEE) {
        if (r->has_inf)
            return s | r->inf_code;
        if (r->has_nan) {
            *fl |= AG_REF_NAN;
            return r->nan_code;
        }
    }
    return s | r->max_code;
}

/* 1 when the mode rounds the magnitude toward zero for this sign. */
static int toward_zero_mag(ag_rounding mode, int neg)
{
    return mode == AG_ROUND_TOWARD_ZERO || (mode == AG_ROUND_DOWN && !neg) ||
           (mode == AG_ROUND_UP && neg);
}

static uint32_t signed_code(const ag_ref *r, int neg, uint32_t pos_code,
                            unsigned *fl, int nonzero_input)
{
    if (r->val[pos_code] == 0) {
        if (nonzero_input)
            *fl |= AG_REF_UNDERFLOW;
        /* -0 kept where the format has -0 (FNUZ: +0) */
        return (neg && r->has_negzero) ? r->sign_mask : pos_code;
    }
    return neg ? (r->sign_mask | pos_code) : pos_code;
}

uint32_t ag_ref_encode(const ag_ref *r, float x, ag_rounding mode,
                       ag_overflow ovf, uint32_t rnd, unsigned *flags)
{
    unsigned fl = 0;
    uint32_t out;
    const long double lx = (long double)x;
    int neg = signbit(x) != 0;
    if (isnan(x)) {
        /* NaN -> the canonical NaN code, or 0 where the format has none */
        fl |= AG_REF_NAN;
        out = r->has_nan ? r->nan_code : 0u;
        goto done;
    }
    if (neg && !r->is_signed && lx != 0) {
        /* unsigned: negative inputs -> NaN code if any, else 0 (a nonzero
         * input that became zero: counted as underflow, -inf included) */
        if (r->has_nan)
            fl |= AG_REF_NAN;
        else
            fl |= AG_REF_UNDERFLOW;
        out = r->has_nan ? r->nan_code : 0u;
        goto done;
    }
    if (!r->is_signed)
        neg = 0; /* -0 in an unsigned format is +0 */
    const long double a = fabsl(lx);
    if (a == 0) {
        if (r->no_zero) {
            /* no zero (E8M0): zero inputs -> NaN code (0 without NaN) */
            if (r->has_nan)
                fl |= AG_REF_NAN;
            out = r->has_nan ? r->nan_code : 0u;
            goto done;
        }
        out = (neg && r->has_negzero) ? r->sign_mask : 0u;
        goto done;
    }
    if (isinf(x)) {
        fl |= AG_REF_OVERFLOW;
        if (r->has_inf) {
            out = (neg ? r->sign_mask : 0u) | r->inf_code;
            goto done;
        }
        /* +-inf is not rounded (it is no finite value beyond max): without
         * inf in the format it takes the overflow policy's code in every
         * rounding mode (IEEE: NaN where the format has NaN, else +-max). */
        out = overflow_code(r, neg, ovf, &fl);
        goto done;
    }
    /* finite nonzero: i = largest index with pos_val[i] <= a */
    if (a < r->pos_val[0]) {
        /* only without zero: positive values below the smallest -> smallest */
        out = signed_code(r, neg, r->pos_code[0], &fl, 1);
        goto done;
    }
    uint32_t lo = 0, hi = r->npos; /* pos_val[lo] <= a < pos_val[hi] */
    while (hi - lo > 1) {
        const uint32_t mid = lo + (hi - lo) / 2;
        if (r->pos_val[mid] <= a)
            lo = mid;
        else
            hi = mid;
    }
    if (r->pos_val[lo] == a) {
        out = signed_code(r, neg, r->pos_code[lo], &fl, 1);
        goto done;
    }
    const long double lower = r->pos_val[lo];
    const int at_top = lo == r->npos - 1;
    const long double upper = at_top ? r->beyond : r->pos_val[lo + 1];
    /* the code above: at the top, the hypothetical max_code + 1 */
    const uint32_t ucode = at_top ? r->max_code + 1u : r->pos_code[lo + 1];
    const long double midp = (lower + upper) / 2;
    int up;
    switch (mode) {
    case AG_ROUND_NEAREST_EVEN:
        up = a > midp || (a == midp && (ucode & 1u) == 0);
        break;
    case AG_ROUND_NEAREST_AWAY:
        up = a >= midp;
        break;
    case AG_ROUND_TOWARD_ZERO:
        up = 0;
        break;
    case AG_ROUND_DOWN:
        up = neg;
        break;
    case AG_ROUND_UP:
        up = !neg;
        break;
    case AG_ROUND_STOCHASTIC: {
        /* up iff rnd < floor(frac * 2^32), frac = (a - lower)/(upper - lower):
         * the gap is a power of two, so this is exact in long double */
        const long double t = floorl(ldexpl((a - lower) / (upper - lower), 32));
        up = (long double)rnd < t;
        break;
    }
    default:
        up = 0;
        break;
    }
    if (at_top && a >= upper) {
        /* at or beyond the hypothetical next value: rounded beyond max in
         * every mode (as if the exponent range went on); the modes toward
         * zero then clamp to +-max ("never overflow toward zero") but it
         * still counts as overflow */
        if (toward_zero_mag(mode, neg)) {
            fl |= AG_REF_OVERFLOW;
            out = (neg ? r->sign_mask : 0u) | r->max_code;
            goto done;
        }
        up = 1;
    }
    if (up && at_top) {
        fl |= AG_REF_OVERFLOW;
        out = overflow_code(r, neg, ovf, &fl);
        goto done;
    }
    out = signed_code(r, neg, up ? ucode : r->pos_code[lo], &fl, 1);
done:
    if (flags)
        *flags |= fl;
    return out;
}

/* ---- ARS (Salmon, Moraes, Dror, Shaw, SC'11; Random123's ars4x32) ---------- */

/* GF(2^8) product modulo x^8 + x^4 + x^3 + x + 1 (FIPS-197, 4.2). */
static uint8_t gf_mul(uint8_t a, uint8_t b)
{
    uint8_t p = 0;
    for (int i = 0; i < 8; i++) {
        if (b & 1u)
            p ^= a;
        const uint8_t hi = a & 0x80u;
        a = (uint8_t)(a << 1);
        if (hi)
            a ^= 0x1bu;
        b >>= 1;
    }
    return p;
}

/* SubBytes (FIPS-197, 5.1.1): the multiplicative inverse (0 for 0), then
 * the affine map b ^ rotl(b,1) ^ rotl(b,2) ^ rotl(b,3) ^ rotl(b,4) ^ 0x63.
 * Tabulated on first use from that definition, not copied from a table
 * (the tests call the reference from one thread). */
static const uint8_t *sub_bytes_table(void)
{
    static uint8_t box[256];
    static int built;
    if (!built) {
        for (int a = 0; a < 256; a++) {
            uint8_t inv = 0;
            for (int b = 1; b < 256 && a; b++)
                if (gf_mul((uint8_t)a, (uint8_t)b) == 1u) {
                    inv = (uint8_t)b;
                    break;
                }
            uint8_t s = inv;
            for (int r = 1; r <= 4; r++)
                s ^= (uint8_t)((inv << r) | (inv >> (8 - r)));
            box[a] = (uint8_t)(s ^ 0x63u);
        }
        built = 1;
    }
    return box;
}

/* xtime (FIPS-197, 4.2.1) of the four bytes of w at once. */
static uint32_t xtime4(uint32_t w)
{
    return ((w & 0x7f7f7f7fu) << 1) ^ (((w >> 7) & 0x01010101u) * 0x1bu);
}

static uint32_t rotr(uint32_t w, unsigned r)
{
    return (w >> r) | (w << (32u - r));
}

/* One AES encryption round on the state as four columns (byte r of column
 * c is row r): SubBytes and ShiftRows (row r of column c comes from column
 * c + r), MixColumns unless last (row r becomes 2 a_r ^ 3 a_r+1 ^ a_r+2 ^
 * a_r+3 = xtime(a_r ^ a_r+1) ^ a_r+1 ^ a_r+2 ^ a_r+3, rows mod 4), then
 * XOR the round key: what AESENC / AESENCLAST compute. */
static void aes_round(uint32_t st[4], const uint32_t key[4], int last, const uint8_t *sbox)
{
    uint32_t t[4];
    for (int c = 0; c < 4; c++) {
        uint32_t a = 0;
        for (int r = 0; r < 4; r++)
            a |= (uint32_t)sbox[(st[(c + r) % 4] >> (8 * r)) & 0xffu] << (8 * r);
        if (!last) {
            const uint32_t a1 = rotr(a, 8); /* byte r holds a_r+1 */
            a = xtime4(a ^ a1) ^ a1 ^ rotr(a, 16) ^ rotr(a, 24);
        }
        t[c] = a ^ key[c];
    }
    memcpy(st, t, sizeof t);
}

void ag_ref_ars4x32(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[4],
                    unsigned rounds)
{
    /* the key as two 64-bit halves, stepped by the Weyl constants (golden
     * ratio, sqrt(3) - 1) before each round */
    const uint8_t *sbox = sub_bytes_table();
    uint64_t k0 = (uint64_t)key[0] | ((uint64_t)key[1] << 32);
    uint64_t k1 = (uint64_t)key[2] | ((uint64_t)key[3] << 32);
    uint32_t st[4];
    for (int c = 0; c < 4; c++)
        st[c] = ctr[c] ^ key[c];
    for (unsigned r = 1; r <= rounds; r++) {
        k0 += 0x9E3779B97F4A7C15ull;
        k1 += 0xBB67AE8584CAA73Bull;
        const uint32_t kw[4] = {(uint32_t)k0, (uint32_t)(k0 >> 32), (uint32_t)k1,
                                (uint32_t)(k1 >> 32)};
        aes_round(st, kw, r == rounds, sbox);
    }
    memcpy(out, st, sizeof st);
}

uint32_t ag_ref_random_u32(uint64_t seed, uint64_t stream, uint64_t g)
{
    /* the last block, kept: searches walk the stream element by element
     * (one thread, as above) */
    static uint64_t m_seed, m_stream, m_q;
    static uint32_t m_out[4];
    static int m_valid;
    const uint64_t q = g / 4;
    if (!m_valid || m_seed != seed || m_stream != stream || m_q != q) {
        const uint32_t ctr[4] = {(uint32_t)(q & 0xffffffffu), (uint32_t)(q >> 32),
                                 (uint32_t)(stream & 0xffffffffu), (uint32_t)(stream >> 32)};
        const uint32_t key[4] = {(uint32_t)(seed & 0xffffffffu), (uint32_t)(seed >> 32), 0, 0};
        ag_ref_ars4x32(m_out, ctr, key, 7);
        m_seed = seed;
        m_stream = stream;
        m_q = q;
        m_valid = 1;
    }
    return m_out[g % 4];
}
