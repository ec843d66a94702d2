/* SPDX-License-Identifier: MIT */
/*
 * ag_scale.c — scaling: amax (NaN-aware), the amax history of delayed
 * scaling, compute_scale, per-channel (one scale per row) quantization and
 * MX block scaling (OCP Microscaling Formats (MX) Specification v1.0, Sept
 * 2023: blocks of 32 elements sharing an E8M0 power-of-two scale).
 *
 * No rounding kernel lives here: per-row quantization calls the public
 * ag_quantize once per row, and the MX calls make one ag_quantize /
 * ag_encode_u8 / ag_decode_u8 call over the whole matrix (pre-scaled by
 * each block's power of two, see below), always with the stream offset of
 * the first element, so they inherit the bulk kernels' exactness and speed
 * and stochastic rounding stays keyed by the flat element index. Every
 * argument is checked before the first write, so outputs are untouched on
 * error.
 */
/* The plain loops here (amax, the MX pre/post scaling, the diagnostics'
 * chunk loops) vectorize at O3; contraction stays off, as in the kernels. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3", "fp-contract=off")
#endif

#include "ag_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

/* ------------------------------------------------------------------------ */
/* amax                                                                     */
/* ------------------------------------------------------------------------ */

/* max |x| over non-NaN elements, on the bit patterns: for non-NaN floats,
 * |x| orders as its bits with the sign cleared, and a NaN is exactly a
 * pattern above 0x7f800000. The unsigned max and the count vectorize where
 * the ISA has an unsigned max (SSE4.1 and up: the AVX2 and AVX-512
 * clones). */
AG__CLONES
static float amax_kernel(const float *x, size_t n, size_t *nans)
{
    uint32_t m = 0;
    size_t cnt = 0;
    /* 32-bit lanes throughout (the NaN count per piece fits), so that the
     * loop vectorizes */
    for (size_t i0 = 0; i0 < n; i0 += (size_t)1 << 30) {
        const size_t len = n - i0 < ((size_t)1 << 30) ? n - i0 : (size_t)1 << 30;
        const float *xp = x + i0;
        uint32_t c = 0, mb = 0;
        for (size_t i = 0; i < len; i++) {
            const uint32_t b = ag__f2u(xp[i]) & 0x7fffffffu;
            const uint32_t nan = b > 0x7f800000u;
            c += nan;
            const uint32_t v = b & (nan - 1u); /* a NaN counts as 0 */
            mb = v > mb ? v : mb;
        }
        cnt += c;
        m = mb > m ? mb : m;
    }
    *nans = cnt;
    return ag__u2f(m);
}

ag_status ag_amax(float *amax, const float *x, size_t n, size_t *nan_count)
{
    ag__chk c = AG__CHK_INIT;
    ag__chk_ptr(&c, amax);
    if (n)
        ag__chk_ptr(&c, x);
    const ag_status st = ag__chk_status(&c);
    if (st != AG_OK)
        return st;
    size_t nans = 0;
    const float m = n ? amax_kernel(x, n, &nans) : 0.0f;
    *amax = m;
    if (nan_count)
        *nan_count = nans;
    return AG_OK;
}

/* ------------------------------------------------------------------------ */
/* amax history                                                             */
/* ------------------------------------------------------------------------ */

struct ag_amax_history {
    size_t len;    /* window length, >= 1 */
    size_t count;  /* values held, <= len */
    size_t next;   /* slot of the next push */
    float vals[];  /* ring buffer of len values */
};

ag_status ag_amax_history_create(ag_amax_history **out, size_t len)
{
    if (!out) /* *out cannot be set */
        return AG_ERR_NULL;
    *out = NULL;
    ag__chk c = AG__CHK_INIT;
    ag__chk_arg(&c, len != 0);
    const ag_status st = ag__chk_status(&c);
    if (st != AG_OK)
        return st;
    if (len > (SIZE_MAX - sizeof(ag_amax_history)) / sizeof(float))
        return AG_ERR_NOMEM;
    ag_amax_history *h = malloc(sizeof *h + len * sizeof(float));
    if (!h)
        return AG_ERR_NOMEM;
    h->len = len;
    h->count = 0;
    h->next = 0;
    *out = h;
    return AG_OK;
}

void ag_amax_history_free(ag_amax_history *h)
{
    free(h);
}

ag_status ag_amax_history_push(ag_amax_history *h, float amax)
{
    ag__chk c = AG__CHK_INIT;
    ag__chk_ptr(&c, h);
    ag__chk_arg(&c, amax >= 0.0f); /* not NaN, not negative */
    const ag_status st = ag__chk_status(&c);
    if (st != AG_OK)
        return st;
    h->vals[h->next] = amax == 0.0f ? 0.0f : amax; /* -0 -> +0 */
    h->next = h->next + 1 == h->len ? 0 : h->next + 1;
    if (h->count < h->len)
        h->count++;
    return AG_OK;
}

float ag_amax_history_max(const ag_amax_history *h)
{
    if (!h)
        return 0.0f;
    /* the held values are the `count` slots before `next`; when the window
     * is not full they are slots 0 .. count-1, which is the same set */
    float m = 0.0f;
    for (size_t i = 0; i < h->count; i++)
        m = h->vals[i] > m ? h->vals[i] : m;
    return m;
}

float ag__amax_history_at(const ag_amax_history *h, size_t i)
{
    assert(i < h->count);
    /* the oldest held value is `count` slots before `next` */
    return h->vals[(h->next + h->len - h->count + i) % h->len];
}

size_t ag_amax_history_count(const ag_amax_history *h)
{
    return h ? h->count : 0;
}

size_t ag_amax_history_len(const ag_amax_history *h)
{
    return h ? h->len : 0;
}

void ag_amax_history_reset(ag_amax_history *h)
{
    if (!h)
        return;
    h->count = 0;
    h->next = 0;
}

/* ------------------------------------------------------------------------ */
/* compute_scale                                                            */
/* ------------------------------------------------------------------------ */

ag_scale_opts ag_scale_opts_default(void)
{
    ag_scale_opts o;
    memset(&o, 0, sizeof o);
    o.margin = 1.0f;
    o.scale_min = 1e-10f;
    o.pow2 = 0;
    return o;
}

/* The scale of one amax, for checked arguments (amax >= 0, not NaN). */
static float scale_of(float amax, const ag_format *fmt, const ag_scale_opts *o)
{
    /* +inf is treated as the largest finite amax */
    const double a = amax > FLT_MAX ? (double)FLT_MAX : (double)amax;
    /* a * margin is exact in double (24 + 24 bits); one rounding to double
     * for the quotient; FLT_MAX * margin / max stays far inside double */
    double s = a * (double)o->margin / (double)fmt->max_finite;
    if (s < (double)o->scale_min)
        s = (double)o->scale_min;
    if (o->pow2) {
        /* round up to 2^k: s = f * 2^e with f in [0.5, 1); s is a power of
         * two exactly when f == 0.5 */
        int e;
        const double f = frexp(s, &e);
        const int k = f == 0.5 ? e - 1 : e;
        return k > 127 ? 0x1p127f : (float)ldexp(1.0, k);
    }
    if (s > (double)FLT_MAX)
        return FLT_MAX;
    /* rounding is monotone and scale_min is a float32: the result stays
     * >= scale_min and <= FLT_MAX */
    return (float)s;
}

ag_status ag_compute_scale(float *scale, float amax, const ag_format *fmt,
                           const ag_scale_opts *opts)
{
    ag__chk c = AG__CHK_INIT;
    ag__chk_ptr(&c, scale);
    ag__chk_fmt(&c, fmt);
    ag__chk_sopts(&c, opts);
    ag__chk_arg(&c, amax >= 0.0f);
    const ag_status st = ag__chk_status(&c);
    if (st != AG_OK)
        return st;
    const ag_scale_opts o = opts ? *opts : ag_scale_opts_default();
    *scale = scale_of(amax, fmt, &o);
    return AG_OK;
}

/* ------------------------------------------------------------------------ */
/* Per-channel                                                              */
/* ------------------------------------------------------------------------ */

ag_status ag_amax_rows(float *amax, const float *x, size_t rows, size_t cols,
                       size_t *nan_count)
{
    ag__chk c = AG__CHK_INIT;
    if (rows)
        ag__chk_ptr(&c, amax);
    if (rows && cols)
        ag__chk_ptr(&c, x);
    size_t n;
    ag__chk_count(&c, &n, rows, cols);
    ag__chk_alias(&c, amax, rows * sizeof *amax, x, n * sizeof *x, 0);
    const ag_status st = ag__chk_status(&c);
    if (st != AG_OK)
        return st;
    size_t total = 0;
    for (size_t r = 0; r < rows; r++) {
        size_t nans = 0;
        amax[r] = cols ? amax_kernel(x + r * cols, cols, &nans) : 0.0f;
        total += nans;
    }
    if (nan_count)
        *nan_count = total;
    return AG_OK;
}

ag_status ag_compute_scale_rows(float *scales, const float *amax, size_t rows,
                                const ag_format *fmt, const ag_scale_opts *opts)
{
    ag__chk c = AG__CHK_INIT;
    ag__chk_fmt(&c, fmt);
    ag__chk_sopts(&c, opts);
    ag__chk_io(&c, scales, sizeof *scales, amax, sizeof *amax, rows, 1);
    const ag_status st = ag__chk_status(&c);
    if (st != AG_OK || rows == 0)
        return st;
    const ag_scale_opts o = opts ? *opts : ag_scale_opts_default();
    for (size_t r = 0; r < rows; r++) /* the data, before any write */
        if (!(amax[r] >= 0.0f))
            return AG_ERR_ARG;
    for (size_t r = 0; r < rows; r++)
        scales[r] = scale_of(amax[r], fmt, &o);
    return AG_OK;
}

/* The arguments the two per-row calls share, recorded in c: the format,
 * the options and the shape (*n = rows * cols); the output, its input and
 * the scales (when rows * cols > 0), which the output may not overlap. */
static void rows_args(ag__chk *c, size_t *n, const float *out, const float *in,
                      size_t rows, size_t cols, const float *scales,
                      const ag_format *fmt, const ag_qopts *opts)
{
    ag__chk_fmt(c, fmt);
    ag__chk_qopts(c, opts);
    ag__chk_count(c, n, rows, cols);
    if (rows && cols) {
        ag__chk_ptr(c, out);
        ag__chk_ptr(c, in);
        ag__chk_ptr(c, scales);
    }
    ag__chk_alias(c, out, *n * sizeof *out, in, *n * sizeof *in, 1);
    ag__chk_alias(c, out, *n * sizeof *out, scales, rows * sizeof *scales, 0);
}

/* Every scales[r] positive finite (the data, checked before any write). */
static ag_status row_scales_check(const float *scales, size_t rows)
{
    for (size_t r = 0; r < rows; r++)
        if (!ag__scale_ok(scales[r]))
            return AG_ERR_SCALE;
    return AG_OK;
}

ag_status ag_quantize_rows(float *y, const float *x, size_t rows, size_t cols,
                           const float *scales, const ag_format *fmt,
                           const ag_qopts *opts, ag_stats *stats)
{
    size_t n;
    ag__chk c = AG__CHK_INIT;
    rows_args(&c, &n, y, x, rows, cols, scales, fmt, opts);
    ag_status st = ag__chk_status(&c);
    if (st == AG_OK && n)
        st = row_scales_check(scales, rows);
    if (st != AG_OK || n == 0)
        return st;
    ag_qopts o = opts ? *opts : ag_qopts_default();
    const uint64_t offset0 = o.offset;
    for (size_t r = 0; r < rows; r++) {
        o.offset = offset0 + (uint64_t)r * cols;
        st = ag_quantize(y + r * cols, x + r * cols, cols, fmt, scales[r], &o,
                         stats);
        assert(st == AG_OK); /* every argument was checked above */
        if (st != AG_OK) /* not reached: defensive for NDEBUG builds */
            return st;
    }
    return AG_OK;
}

ag_status ag_quantize_rows_backward(float *dx, const float *dy, const float *x,
                                    size_t rows, size_t cols,
                                    const float *scales, const ag_format *fmt,
                                    const ag_qopts *opts)
{
    size_t n;
    const int clipped = opts && opts->ste == AG_STE_CLIPPED;
    ag__chk c = AG__CHK_INIT;
    rows_args(&c, &n, dx, dy, rows, cols, scales, fmt, opts);
    if (clipped && n) { /* x: the forward input */
        ag__chk_ptr(&c, x);
        ag__chk_alias(&c, dx, n * sizeof *dx, x, n * sizeof *x, 1);
    }
    ag_status st = ag__chk_status(&c);
    if (st == AG_OK && n)
        st = row_scales_check(scales, rows);
    if (st != AG_OK || n == 0)
        return st;
    for (size_t r = 0; r < rows; r++) {
        st = ag_quantize_backward(dx + r * cols, dy + r * cols,
                                  clipped ? x + r * cols : NULL, cols, fmt,
                                  scales[r], opts);
        assert(st == AG_OK); /* every argument was checked above */
        if (st != AG_OK)
            return st;
    }
    return AG_OK;
}

/* ------------------------------------------------------------------------ */
/* MX blocks                                                                */
/* ------------------------------------------------------------------------ */

#define E8M0_NAN 255u

/* E8M0 scale code of a block, for amax >= 0 or NaN (OCP MX v1.0, 6.3):
 * shared_exp = floor(log2 amax) - emax_elem, clamped to [-127, 127];
 * code = shared_exp + 127. NaN and +inf -> 255; 0 -> 0 (the smallest
 * exponent, as microxcaling and torchao give for an all-zero block).
 * RCEIL: amax / 2^e lies in [2^emax, 2^(emax+1)) (exact: a change of
 * exponent only), and max_finite in the same binade, so one compare tells
 * whether e already keeps amax within max_finite or e + 1 is needed. */
static uint32_t mx_code(float amax, const ag_format *fmt, ag_mx_scale rule)
{
    if (!(amax <= FLT_MAX)) /* NaN or +inf */
        return E8M0_NAN;
    if (amax == 0.0f)
        return 0u;
    int e = ilogbf(amax) - fmt->emax; /* ilogb is exact, subnormals included */
    if (rule == AG_MX_SCALE_RCEIL && ldexpf(amax, -e) > fmt->max_finite)
        e++;
    e = e < -127 ? -127 : e > 127 ? 127 : e;
    return (uint32_t)(e + 127);
}

/* X = 2^(code - 127) as a float32 (2^-127 is a float32 subnormal). */
static float mx_scale_value(uint32_t code)
{
    assert(code < E8M0_NAN);
    return code == 0 ? 0x1p-127f : ag__u2f(code << 23);
}

ag_status ag_mx_scale_count(size_t *count, size_t rows, size_t cols,
                            size_t block)
{
    ag__chk c = AG__CHK_INIT;
    ag__chk_ptr(&c, count);
    ag__chk_arg(&c, block != 0);
    const size_t nb = block ? cols / block + (cols % block != 0) : 0;
    ag__chk_shape(&c, nb == 0 || rows <= SIZE_MAX / nb);
    const ag_status st = ag__chk_status(&c);
    if (st != AG_OK)
        return st;
    *count = rows * nb;
    return AG_OK;
}

ag_status ag_mx_scale_code(uint8_t *code, float amax, const ag_format *fmt)
{
    return ag_mx_scale_code_rule(code, amax, fmt, AG_MX_SCALE_FLOOR);
}

ag_status ag_mx_scale_code_rule(uint8_t *code, float amax, const ag_format *fmt,
                                ag_mx_scale rule)
{
    ag__chk c = AG__CHK_INIT;
    ag__chk_ptr(&c, code);
    ag__chk_fmt(&c, fmt);
    ag__chk_arg(&c, !(amax < 0.0f)); /* NaN is a block amax: code 255 */
    ag__chk_arg(&c, (unsigned)rule <= (unsigned)AG_MX_SCALE_RCEIL);
    const ag_status st = ag__chk_status(&c);
    if (st != AG_OK)
        return st;
    *code = (uint8_t)mx_code(amax, fmt, rule);
    return AG_OK;
}

/* The arguments every MX call shares, recorded in c: the element format
 * (at most 8 bits), block, the options (NULL for decode) and the shape;
 * sets *n = rows*cols and *ns = the scale count (0 on a fault). */
static void mx_args(ag__chk *c, size_t *n, size_t *ns, size_t rows,
                    size_t cols, size_t block, const ag_format *fmt,
                    const ag_qopts *opts)
{
    ag__chk_fmt_storage(c, fmt, 8);
    ag__chk_arg(c, block != 0);
    ag__chk_qopts(c, opts);
    ag__chk_count(c, n, rows, cols);
    const size_t nb = block ? cols / block + (cols % block != 0) : 0;
    const int ok = nb == 0 || rows <= SIZE_MAX / nb;
    ag__chk_shape(c, ok);
    *ns = ok ? rows * nb : 0;
}

/* The blocks of a rows x cols matrix, in scale order: block j covers the
 * flat elements [start, start + len). */
typedef struct mx_iter {
    size_t rows, cols, block;
    size_t r, c;        /* position of the next block */
} mx_iter;

static void mx_iter_init(mx_iter *it, size_t rows, size_t cols, size_t block)
{
    it->rows = rows;
    it->cols = cols;
    it->block = block;
    it->r = 0;
    it->c = 0;
}

static int mx_next(mx_iter *it, size_t *start, size_t *len)
{
    if (it->cols == 0 || it->r >= it->rows)
        return 0;
    *start = it->r * it->cols + it->c;
    *len = it->cols - it->c < it->block ? it->cols - it->c : it->block;
    it->c += *len;
    if (it->c == it->cols) {
        it->c = 0;
        it->r++;
    }
    return 1;
}

/* Scale code of the block x[0 .. len) under the rule of opts (NULL: the
 * default, FLOOR). */
static uint32_t block_code(const float *x, size_t len, const ag_format *fmt,
                           const ag_qopts *opts)
{
    size_t nans = 0;
    const float a = amax_kernel(x, len, &nans);
    return nans ? E8M0_NAN
                : mx_code(a, fmt, opts ? opts->mx_scale : AG_MX_SCALE_FLOOR);
}

static void nan_block_stats(ag_stats *stats, size_t len)
{
    if (stats) {
        stats->total += len;
        stats->nan += len;
    }
}

/* y[i] = x[i] * m (in place allowed). */
static void mul_block(float *y, const float *x, size_t len, float m)
{
    for (size_t i = 0; i < len; i++)
        y[i] = x[i] * m;
}

/* The MX calls round through ONE bulk call over the whole matrix (the fast,
 * threaded kernels then see long arrays, not 32-element blocks): each block
 * is first divided by its scale X, rounded with scale 1, and the result is
 * multiplied by X again. This is bit-exact with ag_quantize(block, X):
 * X = 2^k, so x * 2^-k is the very float32 that x / X is (same real value,
 * one rounding), v / 1 = v, and to_real(code) * 1 * X = to_real(code) * X.
 * Stochastic rounding is keyed by the flat index (offset + i) as before. */

/* Encode staging buffer, in floats (the rounding calls see runs this long). */
#define MX_STAGE ((size_t)1 << 16)

/* A run of staged elements x / X, flat [r0, r0 + rn), rounded by one
 * ag_encode_u8 call with scale 1. */
typedef struct mx_stage {
    float *buf;
    size_t cap, r0, rn;
    uint8_t *codes;
    const ag_format *fmt;
    ag_qopts opts;
    ag_stats *stats;
} mx_stage;

static ag_status stage_flush(mx_stage *sg)
{
    if (sg->rn == 0)
        return AG_OK;
    ag_qopts o = sg->opts;
    o.offset += sg->r0;
    const ag_status st = ag_encode_u8(sg->codes + sg->r0, sg->buf, sg->rn,
                                      sg->fmt, 1.0f, &o, sg->stats);
    assert(st == AG_OK); /* every argument was checked before */
    sg->rn = 0;
    return st;
}

ag_status ag_mx_encode(uint8_t *codes, uint8_t *scales, const float *x,
                       size_t rows, size_t cols, size_t block,
                       const ag_format *fmt, const ag_qopts *opts,
                       ag_stats *stats)
{
    size_t n, ns;
    ag__chk c = AG__CHK_INIT;
    mx_args(&c, &n, &ns, rows, cols, block, fmt, opts);
    if (rows && cols) {
        ag__chk_ptr(&c, codes);
        ag__chk_ptr(&c, scales);
        ag__chk_ptr(&c, x);
    }
    ag__chk_alias(&c, codes, n, x, n * sizeof *x, 0);
    ag__chk_alias(&c, scales, ns, x, n * sizeof *x, 0);
    ag__chk_alias(&c, codes, n, scales, ns, 0);
    ag_status st = ag__chk_status(&c);
    if (st != AG_OK || n == 0)
        return st;
    mx_stage sg;
    sg.cap = n < MX_STAGE ? n : MX_STAGE;
    sg.buf = malloc(sg.cap * sizeof *sg.buf);
    if (!sg.buf)
        return AG_ERR_NOMEM;
    sg.r0 = sg.rn = 0;
    sg.codes = codes;
    sg.fmt = fmt;
    sg.opts = opts ? *opts : ag_qopts_default();
    sg.stats = stats;
    size_t start, len, j = 0;
    mx_iter it;
    mx_iter_init(&it, rows, cols, block);
    while (st == AG_OK && mx_next(&it, &start, &len)) {
        const uint32_t code = block_code(x + start, len, fmt, opts);
        scales[j++] = (uint8_t)code;
        if (code == E8M0_NAN) {
            st = stage_flush(&sg); /* keeps the staged run contiguous */
            memset(codes + start, (int)(fmt->has_nan ? fmt->nan_code : 0u),
                   len);
            nan_block_stats(stats, len);
            continue;
        }
        const float inv = mx_scale_value(254u - code); /* 1 / X */
        for (size_t done = 0; st == AG_OK && done < len;) {
            if (sg.rn == sg.cap)
                st = stage_flush(&sg);
            if (sg.rn == 0)
                sg.r0 = start + done;
            const size_t room = sg.cap - sg.rn;
            const size_t piece = len - done < room ? len - done : room;
            mul_block(sg.buf + sg.rn, x + start + done, piece, inv);
            sg.rn += piece;
            done += piece;
        }
    }
    if (st == AG_OK)
        st = stage_flush(&sg);
    free(sg.buf);
    return st;
}

ag_status ag_mx_decode(float *y, const uint8_t *codes, const uint8_t *scales,
                       size_t rows, size_t cols, size_t block,
                       const ag_format *fmt)
{
    size_t n, ns;
    ag__chk c = AG__CHK_INIT;
    mx_args(&c, &n, &ns, rows, cols, block, fmt, NULL);
    if (rows && cols) {
        ag__chk_ptr(&c, y);
        ag__chk_ptr(&c, codes);
        ag__chk_ptr(&c, scales);
    }
    ag__chk_alias(&c, y, n * sizeof *y, codes, n, 0);
    ag__chk_alias(&c, y, n * sizeof *y, scales, ns, 0);
    ag_status st = ag__chk_status(&c);
    if (st != AG_OK || n == 0)
        return st;
    if (fmt->bits < 8) /* every code must exist before any write */
        for (size_t i = 0; i < n; i++)
            if (codes[i] >= fmt->ncodes)
                return AG_ERR_CODE;
    st = ag_decode_u8(y, codes, n, fmt, 1.0f);
    assert(st == AG_OK);
    if (st != AG_OK)
        return st;
    size_t start, len, j = 0;
    mx_iter it;
    mx_iter_init(&it, rows, cols, block);
    while (mx_next(&it, &start, &len)) {
        const uint32_t code = scales[j++];
        if (code == E8M0_NAN) {
            for (size_t i = start; i < start + len; i++)
                y[i] = NAN;
        } else {
            mul_block(y + start, y + start, len, mx_scale_value(code));
        }
    }
    return AG_OK;
}

ag_status ag_mx_quantize(float *y, const float *x, size_t rows, size_t cols,
                         size_t block, const ag_format *fmt,
                         const ag_qopts *opts, ag_stats *stats)
{
    size_t n, ns;
    ag__chk c = AG__CHK_INIT;
    mx_args(&c, &n, &ns, rows, cols, block, fmt, opts);
    if (rows && cols) {
        ag__chk_ptr(&c, y);
        ag__chk_ptr(&c, x);
    }
    ag__chk_alias(&c, y, n * sizeof *y, x, n * sizeof *x, 1);
    ag_status st = ag__chk_status(&c);
    if (st != AG_OK || n == 0)
        return st;
    /* the scale codes, kept for the way back (x may be y) */
    uint8_t *sc = malloc(ns);
    if (!sc)
        return AG_ERR_NOMEM;
    size_t start, len, j = 0;
    mx_iter it;
    mx_iter_init(&it, rows, cols, block);
    while (mx_next(&it, &start, &len)) {
        const uint32_t code = block_code(x + start, len, fmt, opts);
        sc[j++] = (uint8_t)code;
        if (code == E8M0_NAN) /* NaN stays NaN in the rounding call */
            for (size_t i = start; i < start + len; i++)
                y[i] = isnan(x[i]) ? x[i] : NAN;
        else
            mul_block(y + start, x + start, len, mx_scale_value(254u - code));
    }
    st = ag_quantize(y, y, n, fmt, 1.0f, opts, stats);
    assert(st == AG_OK);
    if (st == AG_OK) {
        j = 0;
        mx_iter_init(&it, rows, cols, block);
        while (mx_next(&it, &start, &len)) {
            const uint32_t code = sc[j++];
            if (code != E8M0_NAN)
                mul_block(y + start, y + start, len, mx_scale_value(code));
        }
    }
    free(sc);
    return st;
}

ag_status ag_mx_quantize_backward(float *dx, const float *dy, const float *x,
                                  size_t rows, size_t cols, size_t block,
                                  const ag_format *fmt, const ag_qopts *opts)
{
    size_t n, ns;
    const int clipped = opts && opts->ste == AG_STE_CLIPPED;
    ag__chk c = AG__CHK_INIT;
    mx_args(&c, &n, &ns, rows, cols, block, fmt, opts);
    if (rows && cols) {
        ag__chk_ptr(&c, dx);
        ag__chk_ptr(&c, dy);
        if (clipped)
            ag__chk_ptr(&c, x);
    }
    ag__chk_alias(&c, dx, n * sizeof *dx, dy, n * sizeof *dy, 1);
    if (clipped)
        ag__chk_alias(&c, dx, n * sizeof *dx, x, n * sizeof *x, 1);
    ag_status st = ag__chk_status(&c);
    if (st != AG_OK || n == 0)
        return st;
    if (!clipped) { /* dx += dy: the scales do not matter */
        st = ag_quantize_backward(dx, dy, NULL, n, fmt, 1.0f, opts);
        assert(st == AG_OK);
        return st;
    }
    /* the forward's saturation test, |x / X| > max_finite, with x * (1/X)
     * (the same float32, X being a power of two); x is read before dx[i] is
     * written, so dx == x works too */
    const float mx = fmt->max_finite;
    size_t start, len;
    mx_iter it;
    mx_iter_init(&it, rows, cols, block);
    while (mx_next(&it, &start, &len)) {
        const uint32_t code = block_code(x + start, len, fmt, opts);
        if (code == E8M0_NAN) {
            for (size_t i = start; i < start + len; i++)
                if (!isinf(x[i]))
                    dx[i] += dy[i];
            continue;
        }
        const float inv = mx_scale_value(254u - code);
        for (size_t i = start; i < start + len; i++)
            if (!(fabsf(x[i] * inv) > mx))
                dx[i] += dy[i];
    }
    return AG_OK;
}
