/* SPDX-License-Identifier: MIT */
/*
 * ag_quant.c — bulk quantize / dequantize, their straight-through backward
 * passes, and packed encode / decode: argument checks (the one checker of
 * ag_internal.h), then the kernel table
 * of ag_qopts.kernel (AUTO: the best the CPU runs, see ag_kernels.h), with
 * large arrays split into contiguous chunks over OpenMP threads.
 *
 * Every path is bit-exact with the scalar specification (ag__round per
 * element), whatever the chunking: stochastic rounding keys each element's
 * random bits by its global index offset + i, and the stats are sums of
 * per-chunk counts.
 */
#include "ag_kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Arguments of the rounding calls (float -> float or float -> codes of
 * out_elt bytes; storage_bits 0 for float output) and of the backward pass
 * (out = dx, x = dy, and with clipped the forward input fwd), through the
 * one checker (ag_internal.h): format, storage, scale, options, the length,
 * and the output overlapping an input other than exactly (in place needs
 * the same element size). */
static ag_status round_args(const void *out, size_t out_elt, const float *x,
                            const float *fwd, int clipped, size_t n,
                            int storage_bits, const ag_format *fmt,
                            float scale, const ag_qopts *opts)
{
    ag__chk c = AG__CHK_INIT;
    if (storage_bits)
        ag__chk_fmt_storage(&c, fmt, storage_bits);
    else
        ag__chk_fmt(&c, fmt);
    ag__chk_scale(&c, scale);
    ag__chk_qopts(&c, opts);
    ag__chk_io(&c, out, out_elt, x, sizeof *x, n, 1);
    if (clipped)
        ag__chk_io(&c, out, out_elt, fwd, sizeof *fwd, n, 1);
    return ag__chk_status(&c);
}

/* Arrays shorter than this stay on one thread, and every thread gets at
 * least AG__PAR_GRAIN elements: below that the fork/join (a few
 * microseconds, far more when the cores are shared and a worker waits to
 * be scheduled) costs more than it saves. Measured on the 2-core build
 * machine: one thread takes ~0.3-0.6 ms for 2^18 elements, so a 2^18
 * threshold keeps the fork/join under a few percent of the work. */
#define AG__PAR_MIN ((size_t)1 << 18)
#define AG__PAR_GRAIN ((size_t)1 << 15)

/* Code outputs (encodes) of at least this many floats' bytes (16 MiB) are
 * streamed past the caches (see round_call). */
#define AG__STREAM_MIN ((size_t)1 << 22)

/* Threads to use for n elements under the option `threads`. */
int ag__thread_count(size_t n, int threads)
{
#ifdef _OPENMP
    if (threads == 1 || n < AG__PAR_MIN)
        return 1;
    int t = threads > 0 ? threads : omp_get_max_threads();
    const size_t cap = n / AG__PAR_GRAIN;
    if ((size_t)t > cap)
        t = (int)cap;
    return t < 1 ? 1 : t;
#else
    (void)n;
    (void)threads;
    return 1;
#endif
}

/* Chunk c of nc over [0, n): [*lo, *hi), boundaries on multiples of 64
 * elements (whole cache lines for every element size). */
static void chunk_range(size_t n, int c, int nc, size_t *lo, size_t *hi)
{
    const size_t per = ((n / (size_t)nc) + 63u) & ~(size_t)63u;
    size_t a = per * (size_t)c, b = a + per;
    if (a > n)
        a = n;
    if (b > n || c == nc - 1)
        b = n;
    *lo = a;
    *hi = b;
}

/* What a parallel call does per chunk. */
typedef enum { OP_QUANT, OP_ENC8, OP_ENC16, OP_DEC8, OP_DEC16, OP_BWD,
               OP_SCALE } op_kind;

typedef struct {
    op_kind op;
    const ag__kernel_ops *k;
    const ag__kparams *p;
    void *out;
    const void *in;
    const float *aux;     /* OP_BWD: x */
    uint64_t g0;          /* stream index of element 0 */
    int flag;             /* OP_BWD: clipped; OP_SCALE: accumulate */
    float scale;          /* OP_SCALE */
} op_job;

static void run_chunk(const op_job *j, size_t lo, size_t hi, ag__kstats *st)
{
    const size_t len = hi - lo;
    if (len == 0)
        return;
    const float *xf = (const float *)j->in + lo;
    switch (j->op) {
    case OP_QUANT:
        j->k->quantize((float *)j->out + lo, xf, len, j->g0 + lo, j->p, st);
        break;
    case OP_ENC8:
        j->k->encode_u8((uint8_t *)j->out + lo, xf, len, j->g0 + lo, j->p, st);
        break;
    case OP_ENC16:
        j->k->encode_u16((uint16_t *)j->out + lo, xf, len, j->g0 + lo, j->p, st);
        break;
    case OP_DEC8:
        j->k->decode_u8((float *)j->out + lo, (const uint8_t *)j->in + lo, len,
                        j->p);
        break;
    case OP_DEC16:
        j->k->decode_u16((float *)j->out + lo, (const uint16_t *)j->in + lo,
                         len, j->p);
        break;
    case OP_BWD:
        j->k->backward((float *)j->out + lo, xf, j->aux ? j->aux + lo : NULL,
                       len, j->p, j->flag);
        break;
    case OP_SCALE:
        j->k->scale_mul((float *)j->out + lo, xf, len, j->scale, j->flag);
        break;
    }
}

/* Run job j over [0, n) on up to nt threads; stats summed into *st. */
static void run_job(const op_job *j, size_t n, int nt, ag__kstats *st)
{
    if (nt <= 1) {
        run_chunk(j, 0, n, st);
        return;
    }
#ifdef _OPENMP
    uint64_t ov = 0, un = 0, nn = 0;
#pragma omp parallel num_threads(nt) reduction(+ : ov, un, nn)
    {
        const int c = omp_get_thread_num(), nc = omp_get_num_threads();
        size_t lo, hi;
        ag__kstats local = {0, 0, 0};
        chunk_range(n, c, nc, &lo, &hi);
        run_chunk(j, lo, hi, &local);
        ov += local.overflow;
        un += local.underflow;
        nn += local.nan;
    }
    st->overflow += ov;
    st->underflow += un;
    st->nan += nn;
#endif
}

static void add_stats(ag_stats *stats, const ag__kstats *st, size_t n)
{
    if (!stats)
        return;
    stats->total += n;
    stats->overflow += st->overflow;
    stats->underflow += st->underflow;
    stats->nan += st->nan;
}

/* Options, and the kernel table they ask for (NULL: not available). */
static const ag__kernel_ops *pick(const ag_qopts *opts, ag_qopts *o)
{
    *o = opts ? *opts : ag_qopts_default();
    return ag__kernel_table(o->kernel);
}

/* Float -> float or float -> code rounding calls. */
static ag_status round_call(op_kind op, void *out, size_t out_elt,
                            const float *x, size_t n, const ag_format *fmt,
                            float scale, const ag_qopts *opts, ag_stats *stats)
{
    ag_status st = round_args(out, out_elt, x, NULL, 0, n,
                              op == OP_QUANT ? 0 : (int)(8 * out_elt), fmt,
                              scale, opts);
    if (st != AG_OK || n == 0)
        return st;
    ag_qopts o;
    const ag__kernel_ops *k = pick(opts, &o); /* checked: available */
    ag__kparams p;
    ag__kparams_init(&p, fmt, scale, &o);
    /* code outputs of 16 MiB and more bypass the caches (non-temporal
     * stores): they would evict everything anyway, and skipping the read
     * for ownership saves memory traffic. Float outputs do not: measured
     * on the AVX-512 build machine at 2^24 elements, non-temporal stores
     * cost stochastic quantize 30 % (0.52 against 0.38 ns per element),
     * gained nearest-even nothing, and cost the AVX2 body 30 % */
    p.stream_out = op != OP_QUANT && n * out_elt >= AG__STREAM_MIN * sizeof(float);
    p.count = stats != NULL;
    const op_job j = {op, k, &p, out, x, NULL, o.offset, 0, 0.0f};
    ag__kstats ks = {0, 0, 0};
    run_job(&j, n, ag__thread_count(n, o.threads), &ks);
    add_stats(stats, &ks, n);
    return AG_OK;
}

ag_status ag_quantize(float *y, const float *x, size_t n, const ag_format *fmt,
                      float scale, const ag_qopts *opts, ag_stats *stats)
{
    return round_call(OP_QUANT, y, sizeof *y, x, n, fmt, scale, opts, stats);
}

ag_status ag_encode_u8(uint8_t *codes, const float *x, size_t n,
                       const ag_format *fmt, float scale, const ag_qopts *opts,
                       ag_stats *stats)
{
    return round_call(OP_ENC8, codes, 1, x, n, fmt, scale, opts, stats);
}

ag_status ag_encode_u16(uint16_t *codes, const float *x, size_t n,
                        const ag_format *fmt, float scale, const ag_qopts *opts,
                        ag_stats *stats)
{
    return round_call(OP_ENC16, codes, 2, x, n, fmt, scale, opts, stats);
}

ag_status ag_quantize_backward(float *dx, const float *dy, const float *x,
                               size_t n, const ag_format *fmt, float scale,
                               const ag_qopts *opts)
{
    const int clipped = opts && opts->ste == AG_STE_CLIPPED;
    ag_status st = round_args(dx, sizeof *dx, dy, x, clipped, n, 0, fmt,
                              scale, opts);
    if (st != AG_OK || n == 0)
        return st;
    ag_qopts o;
    const ag__kernel_ops *k = pick(opts, &o); /* checked: available */
    ag__kparams p;
    ag__kparams_init(&p, fmt, scale, &o);
    const op_job j = {OP_BWD, k, &p, dx, dy, clipped ? x : NULL, 0, clipped,
                      0.0f};
    ag__kstats ks = {0, 0, 0};
    run_job(&j, n, ag__thread_count(n, o.threads), &ks);
    return AG_OK;
}

static ag_status scale_call(float *y, const float *x, size_t n, float scale,
                            int accum)
{
    ag__chk c = AG__CHK_INIT;
    ag__chk_scale(&c, scale);
    ag__chk_io(&c, y, sizeof *y, x, sizeof *x, n, 1);
    const ag_status st = ag__chk_status(&c);
    if (st != AG_OK || n == 0)
        return st;
    const op_job j = {OP_SCALE, ag__kernel_table(AG_KERNEL_AUTO), NULL, y, x,
                      NULL, 0, accum, scale};
    ag__kstats ks = {0, 0, 0};
    run_job(&j, n, ag__thread_count(n, 0), &ks);
    return AG_OK;
}

ag_status ag_dequantize(float *y, const float *x, size_t n, float scale)
{
    return scale_call(y, x, n, scale, 0);
}

ag_status ag_dequantize_backward(float *dx, const float *dy, size_t n, float scale)
{
    return scale_call(dx, dy, n, scale, 1);
}

static ag_status decode(float *y, const void *codes, int width, size_t n,
                        const ag_format *fmt, float scale)
{
    ag__chk ck = AG__CHK_INIT;
    ag__chk_fmt_storage(&ck, fmt, 8 * width);
    ag__chk_scale(&ck, scale);
    ag__chk_io(&ck, y, sizeof *y, codes, (size_t)width, n, 1);
    const ag_status st = ag__chk_status(&ck);
    if (st != AG_OK || n == 0)
        return st;
    const ag__kernel_ops *k = ag__kernel_table(AG_KERNEL_AUTO);
    if (fmt->bits < 8 * width) { /* every code must exist before any write */
        uint32_t mx = 0;
        if (width == 2) {
            mx = k->max_u16((const uint16_t *)codes, n);
        } else {
            const uint8_t *c = (const uint8_t *)codes;
            for (size_t i = 0; i < n; i++)
                mx = c[i] > mx ? c[i] : mx;
        }
        if (mx >= fmt->ncodes)
            return AG_ERR_CODE;
    }
    const ag_qopts o = ag_qopts_default();
    ag__kparams p;
    ag__kparams_init(&p, fmt, scale, &o);
    ag__kparams_decode_lut(&p);
    const op_job j = {width == 1 ? OP_DEC8 : OP_DEC16, k, &p, y, codes, NULL,
                      0, 0, 0.0f};
    ag__kstats ks = {0, 0, 0};
    run_job(&j, n, ag__thread_count(n, 0), &ks);
    return AG_OK;
}

ag_status ag_decode_u8(float *y, const uint8_t *codes, size_t n,
                       const ag_format *fmt, float scale)
{
    return decode(y, codes, 1, n, fmt, scale);
}

ag_status ag_decode_u16(float *y, const uint16_t *codes, size_t n,
                        const ag_format *fmt, float scale)
{
    return decode(y, codes, 2, n, fmt, scale);
}
