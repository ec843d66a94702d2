/* SPDX-License-Identifier: MIT */
/*
 * ag_diag.c — diagnostics: where a tensor sits on a format and how a
 * training step moves it on the grid. Bit stall (updates too small to move
 * a weight's code), flips between two snapshots, updates vs flips and the
 * stall ratio, ULP distance in codes, the stiffness field (local grid
 * spacing) and the exponent occupancy histogram.
 *
 * Every count is defined on codes (as ag_to_bits_opts gives them), never
 * on float comparisons of products, so the answers are exact whatever the
 * scale. The codes come from the public bulk encoder ag_encode_u16, in
 * chunks of CHUNK elements on the stack, so the diagnostics run at the
 * speed of the vectorized kernels; the histogram, which needs the rounding
 * core's overflow and underflow flags per element, calls the core
 * (ag__round) directly. Each result is a sum of per-element integers, so it
 * cannot depend on the thread count or code path.
 */
/* The plain loops here (amax, the MX pre/post scaling, the diagnostics'
 * chunk loops) vectorize at O3; contraction stays off, as in the kernels. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3", "fp-contract=off")
#endif

#include "ag_internal.h"

#include <math.h>

/* ------------------------------------------------------------------------ */
/* Shared helpers                                                           */
/* ------------------------------------------------------------------------ */

/* Elements per encoder call (three stack buffers of this length). */
#define CHUNK 2048

/* The arguments every float diagnostic shares, recorded in c: the format,
 * the scale and the options. */
static void diag_args(ag__chk *c, const ag_format *fmt, float scale,
                      const ag_qopts *opts)
{
    ag__chk_fmt(c, fmt);
    ag__chk_scale(c, scale);
    ag__chk_qopts(c, opts);
}

/* 1 for a NaN code of f. */
static inline int is_nan_code(const ag_format *f, uint32_t code)
{
    return ag__code_class(f, code) == AG__CODE_NAN;
}

/* The encoder of the float diagnostics: codes of x[0 .. len), which are
 * the flat elements i0 .. i0+len of the tensor (stream offset). */
typedef struct enc_ctx {
    const ag_format *fmt;
    float scale;
    ag_qopts opts;
} enc_ctx;

static void enc_init(enc_ctx *e, const ag_format *fmt, float scale,
                     const ag_qopts *opts)
{
    e->fmt = fmt;
    e->scale = scale;
    e->opts = opts ? *opts : ag_qopts_default();
}

static ag_status enc_chunk(const enc_ctx *e, uint16_t *codes, const float *x,
                           size_t len, size_t i0)
{
    ag_qopts o = e->opts;
    o.offset += i0;
    const ag_status st = ag_encode_u16(codes, x, len, e->fmt, e->scale, &o,
                                       NULL);
    assert(st == AG_OK); /* every argument was checked before */
    return st;
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
    ag__chk c = AG__CHK_INIT;
    ag__chk_ptr(&c, stalled);
    ag__chk_ptr(&c, considered);
    if (n) {
        ag__chk_ptr(&c, w);
        ag__chk_ptr(&c, g);
    }
    diag_args(&c, fmt, scale, opts);
    ag__chk_arg(&c, isfinite(lr));
    ag_status st = ag__chk_status(&c);
    if (st != AG_OK)
        return st;
    enc_ctx e;
    enc_init(&e, fmt, scale, opts);
    ag__cmp_ctx cm;
    ag__cmp_init(&cm, fmt);
    uint16_t ca[CHUNK], cb[CHUNK];
    float wn[CHUNK];
    uint64_t ns = 0, nc = 0;
    for (size_t i0 = 0; i0 < n; i0 += CHUNK) {
        const size_t len = n - i0 < CHUNK ? n - i0 : CHUNK;
        const float *wc = w + i0, *gc = g + i0;
        for (size_t i = 0; i < len; i++) {
            const float step = lr * gc[i]; /* float32 product, then difference */
            wn[i] = wc[i] - step;
        }
        if ((st = enc_chunk(&e, ca, wc, len, i0)) != AG_OK ||
            (st = enc_chunk(&e, cb, wn, len, i0)) != AG_OK)
            return st;
        uint32_t cs = 0, cc = 0;
        for (size_t i = 0; i < len; i++) {
            const uint32_t u = (uint32_t)updated(gc[i]);
            const uint32_t same =
                ag__cmp_same(&cm, ca[i], ag__cmp_nan(&cm, ca[i], wc[i]), cb[i],
                         ag__cmp_nan(&cm, cb[i], wn[i]));
            cc += u;
            cs += u & same;
        }
        nc += cc;
        ns += cs;
    }
    *stalled = ns;
    *considered = nc;
    return AG_OK;
}

/* Flips of two float snapshots; with g, only where |g| > AG_GRAD_EPS
 * (*updates counts those). */
static ag_status flips_run(uint64_t *updates, uint64_t *flips, const float *a,
                           const float *b, const float *g, size_t n,
                           const ag_format *fmt, float scale,
                           const ag_qopts *opts)
{
    enc_ctx e;
    enc_init(&e, fmt, scale, opts);
    ag__cmp_ctx cm;
    ag__cmp_init(&cm, fmt);
    uint16_t ca[CHUNK], cb[CHUNK];
    uint64_t nu = 0, nf = 0;
    for (size_t i0 = 0; i0 < n; i0 += CHUNK) {
        const size_t len = n - i0 < CHUNK ? n - i0 : CHUNK;
        const float *ac = a + i0, *bc = b + i0;
        ag_status st;
        if ((st = enc_chunk(&e, ca, ac, len, i0)) != AG_OK ||
            (st = enc_chunk(&e, cb, bc, len, i0)) != AG_OK)
            return st;
        uint32_t cu = 0, cf = 0;
        for (size_t i = 0; i < len; i++) {
            const uint32_t u = g ? (uint32_t)updated(g[i0 + i]) : 1u;
            const uint32_t same =
                ag__cmp_same(&cm, ca[i], ag__cmp_nan(&cm, ca[i], ac[i]), cb[i],
                         ag__cmp_nan(&cm, cb[i], bc[i]));
            cu += u;
            cf += u & (same ^ 1u);
        }
        nu += cu;
        nf += cf;
    }
    if (updates)
        *updates = nu;
    *flips = nf;
    return AG_OK;
}

ag_status ag_flips(uint64_t *flips, const float *a, const float *b, size_t n,
                   const ag_format *fmt, float scale, const ag_qopts *opts)
{
    ag__chk c = AG__CHK_INIT;
    ag__chk_ptr(&c, flips);
    if (n) {
        ag__chk_ptr(&c, a);
        ag__chk_ptr(&c, b);
    }
    diag_args(&c, fmt, scale, opts);
    const ag_status st = ag__chk_status(&c);
    if (st != AG_OK)
        return st;
    return flips_run(NULL, flips, a, b, NULL, n, fmt, scale, opts);
}

static ag_status flips_codes(uint64_t *flips, const void *a, const void *b,
                             int width, size_t n, const ag_format *fmt)
{
    ag__chk c = AG__CHK_INIT;
    ag__chk_ptr(&c, flips);
    if (n) {
        ag__chk_ptr(&c, a);
        ag__chk_ptr(&c, b);
    }
    ag__chk_fmt_storage(&c, fmt, 8 * width);
    const ag_status st = ag__chk_status(&c);
    if (st != AG_OK)
        return st;
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
    ag__chk c = AG__CHK_INIT;
    ag__chk_ptr(&c, updates);
    ag__chk_ptr(&c, flips);
    if (n) {
        ag__chk_ptr(&c, before);
        ag__chk_ptr(&c, after);
        ag__chk_ptr(&c, g);
    }
    diag_args(&c, fmt, scale, opts);
    ag_status st = ag__chk_status(&c);
    if (st != AG_OK)
        return st;
    uint64_t nu = 0, nf = 0;
    st = flips_run(&nu, &nf, before, after, g, n, fmt, scale, opts);
    if (st == AG_OK) {
        *updates = nu;
        *flips = nf;
    }
    return st;
}

ag_status ag_stall_ratio(double *ratio, uint64_t flips, uint64_t updates)
{
    ag__chk c = AG__CHK_INIT;
    ag__chk_ptr(&c, ratio);
    ag__chk_arg(&c, flips <= updates);
    const ag_status st = ag__chk_status(&c);
    if (st != AG_OK)
        return st;
    *ratio = updates ? 1.0 - (double)flips / (double)updates : 0.0;
    return AG_OK;
}

/* ------------------------------------------------------------------------ */
/* ULP distance                                                             */
/* ------------------------------------------------------------------------ */

/* Shared loop: d (may be NULL) gets the distances; the aggregates always. */
static ag_status ulp_run(int need_d, int32_t *d, uint64_t *sum_abs,
                         uint32_t *max_abs, uint64_t *nan_pairs,
                         const float *a, const float *b, size_t n,
                         const ag_format *fmt, float scale,
                         const ag_qopts *opts)
{
    ag__chk c = AG__CHK_INIT;
    diag_args(&c, fmt, scale, opts);
    if (need_d) { /* d may not be a or b, not even exactly */
        ag__chk_io(&c, d, sizeof *d, a, sizeof *a, n, 0);
        ag__chk_io(&c, d, sizeof *d, b, sizeof *b, n, 0);
    } else {
        size_t m;
        ag__chk_count(&c, &m, 1, n);
        if (n) {
            ag__chk_ptr(&c, a);
            ag__chk_ptr(&c, b);
        }
    }
    ag_status st = ag__chk_status(&c);
    if (st != AG_OK)
        return st;
    enc_ctx e;
    enc_init(&e, fmt, scale, opts);
    uint16_t ca[CHUNK], cb[CHUNK];
    uint64_t sum = 0, nans = 0;
    uint32_t mx = 0;
    for (size_t i0 = 0; i0 < n; i0 += CHUNK) {
        const size_t len = n - i0 < CHUNK ? n - i0 : CHUNK;
        const float *ac = a + i0, *bc = b + i0;
        if ((st = enc_chunk(&e, ca, ac, len, i0)) != AG_OK ||
            (st = enc_chunk(&e, cb, bc, len, i0)) != AG_OK)
            return st;
        for (size_t i = 0; i < len; i++) {
            if (isnan(ac[i]) || isnan(bc[i]) || is_nan_code(fmt, ca[i]) ||
                is_nan_code(fmt, cb[i])) {
                nans++;
                if (d)
                    d[i0 + i] = AG_ULP_NAN;
                continue;
            }
            /* |difference| < 2^17 for formats of <= 16 bits */
            const int64_t diff = ag__grid_pos(fmt, cb[i]) - ag__grid_pos(fmt, ca[i]);
            const uint32_t ad = (uint32_t)(diff < 0 ? -diff : diff);
            sum += ad;
            mx = ad > mx ? ad : mx;
            if (d)
                d[i0 + i] = (int32_t)diff;
        }
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
    return ulp_run(1, d, NULL, NULL, NULL, a, b, n, fmt, scale, opts);
}

ag_status ag_ulp_distance_stats(uint64_t *sum_abs, uint32_t *max_abs,
                                uint64_t *nan_pairs, const float *a,
                                const float *b, size_t n, const ag_format *fmt,
                                float scale, const ag_qopts *opts)
{
    return ulp_run(0, NULL, sum_abs, max_abs, nan_pairs, a, b, n, fmt, scale,
                   opts);
}

/* ------------------------------------------------------------------------ */
/* Stiffness                                                                */
/* ------------------------------------------------------------------------ */

ag_status ag_stiffness(float *s, const float *w, size_t n, const ag_format *fmt,
                       float scale)
{
    ag__chk c = AG__CHK_INIT;
    diag_args(&c, fmt, scale, NULL);
    ag__chk_io(&c, s, sizeof *s, w, sizeof *w, n, 1);
    const ag_status st = ag__chk_status(&c);
    if (st != AG_OK || n == 0)
        return st;
    /* the lowest step: format init guarantees emin - M >= -149 */
    const float low = ag__pow2f(fmt->emin - fmt->mbits);
    for (size_t i = 0; i < n; i++) {
        const float x = w[i];
        const float r = x == 0.0f ? 0.0f
                        : isnan(x) ? x
                                   : ag__grid_step(fmt, x, scale, low);
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
    ag__chk c = AG__CHK_INIT;
    ag__chk_ptr(&c, counts);
    if (n)
        ag__chk_ptr(&c, x);
    diag_args(&c, fmt, scale, opts);
    ag__chk_shape(&c, ncounts >= ag_exp_hist_len(fmt));
    const ag_status st = ag__chk_status(&c);
    if (st != AG_OK)
        return st;
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
