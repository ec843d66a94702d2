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
#if !defined(_DEFAULT_SOURCE) && defined(__linux__)
#define _DEFAULT_SOURCE 1 /* getloadavg */
#endif
#include "ag_kernels.h"

#include <stdlib.h>

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

/* Picoseconds per element of each operation on one fast core (the
 * AVX-512 and AVX2 paths of this project at 2^24 elements, 1 thread,
 * rounded down: a low estimate of the work, so the thresholds err toward
 * one thread). Memory-bound calls cost their bytes: quantize moves 8 per
 * element, an encode 5 or 6, backward 12 to 16; stochastic rounding adds
 * the generator. */
static const double par_ps[AG__PAR_NOPS] = {
    [AG__PAR_QUANT] = 250.0,    [AG__PAR_QUANT_SR] = 400.0, [AG__PAR_ENCODE] = 170.0,
    [AG__PAR_ENCODE_SR] = 350.0, [AG__PAR_DECODE] = 170.0,  [AG__PAR_BACKWARD] = 400.0,
    [AG__PAR_SCALE] = 250.0,    [AG__PAR_ADAMW] = 600.0,    [AG__PAR_GRID] = 1000.0,
};

size_t ag__par_min(ag__par_op op)
{
    if ((int)op < 0 || op >= AG__PAR_NOPS)
        return SIZE_MAX;
    /* the smallest n with n * cost >= AG__PAR_MIN_NS, rounded up to whole
     * chunks of 64 elements */
    const size_t n = (size_t)(AG__PAR_MIN_NS * 1000.0 / par_ps[op]) + 1u;
    return (n + 63u) & ~(size_t)63u;
}

int ag__par_threads(ag__par_op op, size_t n, int threads, int avail, int busy)
{
    if (threads == 1 || n < ag__par_min(op))
        return 1;
    int t = threads > 0 ? threads : avail;
    const double work_ns = (double)n * par_ps[op] * 1e-3;
    if (busy && threads == 0 && work_ns < AG__PAR_BUSY_NS)
        return 1; /* (an explicit thread count is the caller's call) */
    const double cap = work_ns / AG__PAR_THREAD_NS;
    if ((double)t > cap)
        t = (int)cap;
    return t < 1 ? 1 : t;
}

/* Code outputs (encodes) of at least this many floats' bytes (16 MiB) are
 * streamed past the caches (see round_call). */
#define AG__STREAM_MIN ((size_t)1 << 22)

/* Threads to use for n elements of op under the option `threads`. */
int ag__thread_count(ag__par_op op, size_t n, int threads)
{
#ifdef _OPENMP
    const int avail = omp_get_max_threads();
    if (threads == 1 || ag__par_threads(op, n, threads, avail, 0) == 1)
        return 1;
    /* several threads: is every core busy with other work? (the 1-minute
     * load average, read only for calls that would use threads: a few
     * microseconds against at least AG__PAR_MIN_NS of work) */
    int busy = 0;
#if defined(__linux__) || defined(__APPLE__) || defined(__FreeBSD__)
    double la = 0.0;
    if (threads == 0)
        busy = getloadavg(&la, 1) == 1 && la + 0.5 >= (double)omp_get_num_procs();
#endif
    return ag__par_threads(op, n, threads, avail, busy);
#else
    (void)op;
    (void)n;
    (void)threads;
    return 1;
#endif
}

/* Chunks of a parallel call: about eight per thread, multiples of 64
 * elements (whole cache lines for every element size), handed out one at
 * a time (dynamic schedule), so that a thread which starts late or shares
 * its core with another process takes fewer of them instead of holding
 * the call up for a fixed share of the array. */
static size_t chunk_size(size_t n, int nt)
{
    const size_t per = n / (8u * (size_t)nt);
    const size_t c = per < 4096u ? 4096u : per;
    return (c + 63u) & ~(size_t)63u;
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

/* Run job j over [0, n) on up to nt threads; stats summed into *st (sums
 * of integers: the same whatever the chunks and their order). */
static void run_job(const op_job *j, size_t n, int nt, ag__kstats *st)
{
    if (nt <= 1) {
        run_chunk(j, 0, n, st);
        return;
    }
#ifdef _OPENMP
    uint64_t ov = 0, un = 0, nn = 0;
    const size_t cs = chunk_size(n, nt);
    const long long nch = (long long)((n + cs - 1u) / cs);
#pragma omp parallel num_threads(nt) reduction(+ : ov, un, nn)
    {
        ag__kstats local = {0, 0, 0};
#pragma omp for schedule(dynamic, 1) nowait
        for (long long c = 0; c < nch; c++) {
            const size_t lo = (size_t)c * cs, hi = n - lo < cs ? n : lo + cs;
            run_chunk(j, lo, hi, &local);
        }
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
    const int sr = o.rounding == AG_ROUND_STOCHASTIC;
    const ag__par_op po = op == OP_QUANT ? (sr ? AG__PAR_QUANT_SR : AG__PAR_QUANT)
                                         : (sr ? AG__PAR_ENCODE_SR : AG__PAR_ENCODE);
    run_job(&j, n, ag__thread_count(po, n, o.threads), &ks);
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
    run_job(&j, n, ag__thread_count(AG__PAR_BACKWARD, n, o.threads), &ks);
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
    run_job(&j, n, ag__thread_count(AG__PAR_SCALE, n, 0), &ks);
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
    run_job(&j, n, ag__thread_count(AG__PAR_DECODE, n, 0), &ks);
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
