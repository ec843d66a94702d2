/* SPDX-License-Identifier: MIT */
/*
 * ag_diag.c — diagnostics: where a tensor sits on a format and how a
 * training step moves it on the grid. Bit stall (updates too small to move
 * a weight's code), flips between two snapshots, updates vs flips and the
 * stall ratio, ULP distance in codes, the stiffness field (local grid
 * spacing) and the exponent occupancy histogram.
 *
 * Every count is defined on codes from the one rounding core (ag__round, as
 * ag_to_bits / ag_quantize), never on float comparisons of products, so the
 * answers are exact whatever the scale. The loops are serial and plain:
 * each result is a sum of per-element integers, so it cannot depend on a
 * thread count.
 */
#include "ag_internal.h"

#include <math.h>

/* ------------------------------------------------------------------------ */
/* Shared helpers                                                           */
/* ------------------------------------------------------------------------ */

static ag_status check_fmt_scale_opts(const ag_format *fmt, float scale,
                                      const ag_qopts *opts)
{
    if (!fmt)
        return AG_ERR_NULL;
    ag_status st = ag_format_check(fmt);
    if (st != AG_OK)
        return st;
    if (!ag__scale_ok(scale))
        return AG_ERR_SCALE;
    if (opts && (st = ag__opts_check(opts)) != AG_OK)
        return st;
    return AG_OK;
}

static int is_nan_code(const ag_format *f, uint32_t code)
{
    const float v = f->bits <= 8 ? f->lut[code] : ag__decode(f, code);
    return isnan(v);
}

static int is_zero_code(const ag_format *f, uint32_t code)
{
    return !f->no_zero && (code & ~f->sign_mask) == 0u;
}

/* A rounded element: its code and whether it is NaN (NaN input, or a NaN
 * code such as an E8M0 zero or an IEEE-overflow NaN). The rounding core's
 * NaN flag is not used: it is also raised for a zero input of a format
 * without zero and without NaN, whose code is then the smallest value. */
typedef struct qel {
    uint32_t code;
    int nan;
    unsigned flags;
} qel;

static inline qel round_el(const ag_format *f, const ag_qopts *o, float x,
                           float scale, uint64_t i)
{
    qel q;
    q.flags = 0;
    const uint32_t rnd = o->rounding == AG_ROUND_STOCHASTIC
                             ? ag__random_u32(o->seed, o->stream, o->offset + i)
                             : 0u;
    q.code = ag__round(f, x / scale, o->rounding, o->overflow, rnd, &q.flags);
    q.nan = isnan(x) || is_nan_code(f, q.code);
    return q;
}

/* The "same grid point" relation of the header. */
static inline int same_point(const ag_format *f, uint32_t a, int a_nan,
                             uint32_t b, int b_nan)
{
    if (a_nan || b_nan)
        return 0;
    return a == b || (is_zero_code(f, a) && is_zero_code(f, b));
}

static inline int updated(float g)
{
    return fabsf(g) > AG_GRAD_EPS; /* false for NaN */
}

/* ------------------------------------------------------------------------ */
/* Bit stall, flips                                                         */
/* ------------------------------------------------------------------------ */

ag_status ag_bit_stall(uint64_t *stalled, uint64_t *considered, const float *w,
                       const float *g, size_t n, float lr,
                       const ag_format *fmt, float scale, const ag_qopts *opts)
{
    if (!stalled || !considered)
        return AG_ERR_NULL;
    ag_status st = check_fmt_scale_opts(fmt, scale, opts);
    if (st != AG_OK)
        return st;
    if (!isfinite(lr))
        return AG_ERR_ARG;
    if (n > 0 && (!w || !g))
        return AG_ERR_NULL;
    const ag_qopts o = opts ? *opts : ag_qopts_default();
    uint64_t ns = 0, nc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!updated(g[i]))
            continue;
        nc++;
        const float step = lr * g[i];
        const float wn = w[i] - step;
        const qel a = round_el(fmt, &o, w[i], scale, i);
        const qel b = round_el(fmt, &o, wn, scale, i);
        ns += (uint64_t)same_point(fmt, a.code, a.nan, b.code, b.nan);
    }
    *stalled = ns;
    *considered = nc;
    return AG_OK;
}

ag_status ag_flips(uint64_t *flips, const float *a, const float *b, size_t n,
                   const ag_format *fmt, float scale, const ag_qopts *opts)
{
    if (!flips)
        return AG_ERR_NULL;
    ag_status st = check_fmt_scale_opts(fmt, scale, opts);
    if (st != AG_OK)
        return st;
    if (n > 0 && (!a || !b))
        return AG_ERR_NULL;
    const ag_qopts o = opts ? *opts : ag_qopts_default();
    uint64_t nf = 0;
    for (size_t i = 0; i < n; i++) {
        const qel qa = round_el(fmt, &o, a[i], scale, i);
        const qel qb = round_el(fmt, &o, b[i], scale, i);
        nf += (uint64_t)!same_point(fmt, qa.code, qa.nan, qb.code, qb.nan);
    }
    *flips = nf;
    return AG_OK;
}

static ag_status flips_codes(uint64_t *flips, const void *a, const void *b,
                             int width, size_t n, const ag_format *fmt)
{
    if (!flips)
        return AG_ERR_NULL;
    if (!fmt)
        return AG_ERR_NULL;
    ag_status st = ag_format_check(fmt);
    if (st != AG_OK)
        return st;
    if (fmt->bits > 8 * width)
        return AG_ERR_STORAGE;
    if (n > 0 && (!a || !b))
        return AG_ERR_NULL;
#define AG__CODE(p, i)                                                        \
    (width == 1 ? (uint32_t)((const uint8_t *)(p))[i]                         \
                : (uint32_t)((const uint16_t *)(p))[i])
    for (size_t i = 0; i < n; i++)
        if (AG__CODE(a, i) >= fmt->ncodes || AG__CODE(b, i) >= fmt->ncodes)
            return AG_ERR_CODE;
    uint64_t nf = 0;
    for (size_t i = 0; i < n; i++) {
        const uint32_t ca = AG__CODE(a, i), cb = AG__CODE(b, i);
        nf += (uint64_t)!same_point(fmt, ca, is_nan_code(fmt, ca), cb,
                                    is_nan_code(fmt, cb));
    }
#undef AG__CODE
    *flips = nf;
    return AG_OK;
}

ag_status ag_flips_u8(uint64_t *flips, const uint8_t *a, const uint8_t *b,
                      size_t n, const ag_format *fmt)
{
    return flips_codes(flips, a, b, 1, n, fmt);
}

ag_status ag_flips_u16(uint64_t *flips, const uint16_t *a, const uint16_t *b,
                       size_t n, const ag_format *fmt)
{
    return flips_codes(flips, a, b, 2, n, fmt);
}

ag_status ag_update_flips(uint64_t *updates, uint64_t *flips,
                          const float *before, const float *after,
                          const float *g, size_t n, const ag_format *fmt,
                          float scale, const ag_qopts *opts)
{
    if (!updates || !flips)
        return AG_ERR_NULL;
    ag_status st = check_fmt_scale_opts(fmt, scale, opts);
    if (st != AG_OK)
        return st;
    if (n > 0 && (!before || !after || !g))
        return AG_ERR_NULL;
    const ag_qopts o = opts ? *opts : ag_qopts_default();
    uint64_t nu = 0, nf = 0;
    for (size_t i = 0; i < n; i++) {
        if (!updated(g[i]))
            continue;
        nu++;
        const qel qa = round_el(fmt, &o, before[i], scale, i);
        const qel qb = round_el(fmt, &o, after[i], scale, i);
        nf += (uint64_t)!same_point(fmt, qa.code, qa.nan, qb.code, qb.nan);
    }
    *updates = nu;
    *flips = nf;
    return AG_OK;
}

ag_status ag_stall_ratio(double *ratio, uint64_t flips, uint64_t updates)
{
    if (!ratio)
        return AG_ERR_NULL;
    if (flips > updates)
        return AG_ERR_ARG;
    *ratio = updates ? 1.0 - (double)flips / (double)updates : 0.0;
    return AG_OK;
}

/* ------------------------------------------------------------------------ */
/* ULP distance                                                             */
/* ------------------------------------------------------------------------ */

/* Index of a non-NaN code on the ordered grid. Magnitudes are consecutive
 * grid points (ag__round relies on the same fact), so the index of a
 * positive code is its magnitude and a negative one mirrors it; +-0 meet at
 * 0. Formats without zero have no point between +-smallest: the negative
 * side is shifted by one so that they stay neighbours. */
static inline int64_t grid_pos(const ag_format *f, uint32_t code)
{
    const int64_t mag = (int64_t)(code & ~f->sign_mask);
    if (!(code & f->sign_mask))
        return mag;
    return f->no_zero ? -mag - 1 : -mag;
}

/* Shared loop: d (may be NULL) gets the distances; the aggregates always. */
static ag_status ulp_run(int32_t *d, uint64_t *sum_abs, uint32_t *max_abs,
                         uint64_t *nan_pairs, const float *a, const float *b,
                         size_t n, const ag_format *fmt, float scale,
                         const ag_qopts *opts)
{
    ag_status st = check_fmt_scale_opts(fmt, scale, opts);
    if (st != AG_OK)
        return st;
    if (n > 0 && (!a || !b))
        return AG_ERR_NULL;
    if (n > SIZE_MAX / 4)
        return AG_ERR_SHAPE;
    if (d && n > 0 &&
        (ag__partial_overlap(d, n * sizeof *d, a, n * sizeof *a) ||
         ag__partial_overlap(d, n * sizeof *d, b, n * sizeof *b) ||
         (const void *)d == (const void *)a ||
         (const void *)d == (const void *)b))
        return AG_ERR_ALIAS;
    const ag_qopts o = opts ? *opts : ag_qopts_default();
    uint64_t sum = 0, nans = 0;
    uint32_t mx = 0;
    for (size_t i = 0; i < n; i++) {
        const qel qa = round_el(fmt, &o, a[i], scale, i);
        const qel qb = round_el(fmt, &o, b[i], scale, i);
        if (qa.nan || qb.nan) {
            nans++;
            if (d)
                d[i] = AG_ULP_NAN;
            continue;
        }
        /* |difference| < 2^17 for formats of <= 16 bits */
        const int64_t diff = grid_pos(fmt, qb.code) - grid_pos(fmt, qa.code);
        const uint32_t ad = (uint32_t)(diff < 0 ? -diff : diff);
        sum += ad;
        mx = ad > mx ? ad : mx;
        if (d)
            d[i] = (int32_t)diff;
    }
    if (sum_abs)
        *sum_abs = sum;
    if (max_abs)
        *max_abs = mx;
    if (nan_pairs)
        *nan_pairs = nans;
    return AG_OK;
}

ag_status ag_ulp_distance(int32_t *d, const float *a, const float *b, size_t n,
                          const ag_format *fmt, float scale,
                          const ag_qopts *opts)
{
    if (n > 0 && !d)
        return AG_ERR_NULL;
    return ulp_run(n > 0 ? d : NULL, NULL, NULL, NULL, a, b, n, fmt, scale,
                   opts);
}

ag_status ag_ulp_distance_stats(uint64_t *sum_abs, uint32_t *max_abs,
                                uint64_t *nan_pairs, const float *a,
                                const float *b, size_t n, const ag_format *fmt,
                                float scale, const ag_qopts *opts)
{
    return ulp_run(NULL, sum_abs, max_abs, nan_pairs, a, b, n, fmt, scale,
                   opts);
}

/* ------------------------------------------------------------------------ */
/* Stiffness                                                                */
/* ------------------------------------------------------------------------ */

/* 2^q as a float32, for -149 <= q <= 127 (subnormal below -126). */
static inline float pow2f(int q)
{
    assert(q >= -149 && q <= 127);
    return q >= -126 ? ag__u2f((uint32_t)(q + 127) << 23)
                     : ag__u2f(1u << (q + 149));
}

ag_status ag_stiffness(float *s, const float *w, size_t n, const ag_format *fmt,
                       float scale)
{
    ag_status st = check_fmt_scale_opts(fmt, scale, NULL);
    if (st != AG_OK)
        return st;
    if (n == 0)
        return AG_OK;
    if (!s || !w)
        return AG_ERR_NULL;
    if (n > SIZE_MAX / 4)
        return AG_ERR_SHAPE;
    if (ag__partial_overlap(s, n * sizeof *s, w, n * sizeof *w))
        return AG_ERR_ALIAS;
    const int M = fmt->mbits, emin = fmt->emin;
    /* the lowest step: format init guarantees emin - M >= -149 */
    const float low = pow2f(emin - M);
    for (size_t i = 0; i < n; i++) {
        const float x = w[i];
        float r;
        if (x == 0.0f) {
            r = 0.0f;
        } else if (isnan(x)) {
            r = x;
        } else {
            const float v = fabsf(x / scale);
            if (isinf(v)) {
                r = INFINITY;
            } else if (fmt->ebits == 0 || v == 0.0f) {
                r = low * scale; /* fixed point, or below float32's range */
            } else {
                const int e = ilogbf(v);
                r = (e > emin ? pow2f(e - M) : low) * scale;
            }
        }
        s[i] = r;
    }
    return AG_OK;
}

/* ------------------------------------------------------------------------ */
/* Exponent occupancy histogram                                             */
/* ------------------------------------------------------------------------ */

size_t ag_exp_hist_len(const ag_format *fmt)
{
    if (!fmt || ag_format_check(fmt) != AG_OK)
        return 0;
    return (size_t)AG_HIST_FIELD + ((size_t)1 << fmt->ebits);
}

ag_status ag_exp_hist(uint64_t *counts, size_t ncounts, const float *x,
                      size_t n, const ag_format *fmt, float scale,
                      const ag_qopts *opts)
{
    ag_status st = check_fmt_scale_opts(fmt, scale, opts);
    if (st != AG_OK)
        return st;
    if (!counts)
        return AG_ERR_NULL;
    if (ncounts < ag_exp_hist_len(fmt))
        return AG_ERR_SHAPE;
    if (n > 0 && !x)
        return AG_ERR_NULL;
    const ag_qopts o = opts ? *opts : ag_qopts_default();
    const int M = fmt->mbits;
    for (size_t i = 0; i < n; i++) {
        const qel q = round_el(fmt, &o, x[i], scale, i);
        size_t bin;
        if (q.nan && !(q.flags & AG__FLAG_OVERFLOW)) {
            bin = AG_HIST_NAN;
        } else if (q.flags & AG__FLAG_OVERFLOW) {
            bin = AG_HIST_OVERFLOW;
        } else if (is_zero_code(fmt, q.code)) {
            bin = x[i] == 0.0f ? AG_HIST_ZERO : AG_HIST_UNDERFLOW;
        } else {
            const uint32_t field = (q.code & ~fmt->sign_mask) >> M;
            if (fmt->ebits == 0 || (field == 0 && !fmt->no_zero))
                bin = AG_HIST_SUBNORMAL;
            else
                bin = (size_t)AG_HIST_FIELD + field;
        }
        counts[bin]++;
    }
    return AG_OK;
}
