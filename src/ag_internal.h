/* SPDX-License-Identifier: MIT */
/*
 * ag_internal.h — helpers shared by the library's source files (never
 * installed): float bit access, the ARS-7 counter-based generator, and the
 * one scalar rounding core that every conversion of the library is defined by.
 *
 * The rounding core works on the float32 bit pattern with integers only: it
 * splits |x| into a truncated code t on the format's grid and the discarded
 * remainder r of s bits, then decides the increment from the mode. Because
 * positive codes are consecutive grid points, "t + 1" is always the next
 * value up, across binade boundaries and past max_finite (which is how
 * overflow "as if the exponent range went on" falls out).
 */
#ifndef AG_INTERNAL_H
#define AG_INTERNAL_H

#include "altgrad.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define AG__FLAG_OVERFLOW 1u
#define AG__FLAG_UNDERFLOW 2u
#define AG__FLAG_NAN 4u

static inline uint32_t ag__f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float ag__u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ARS-7 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
 * SC'11: ars4x32 with Random123's default 7 rounds): a counter-based
 * generator, so that the random bits of element g depend only on (seed,
 * stream, g). Round key r is the key (seed, 0) plus r times the Weyl
 * constants below, in 64-bit halves; the state is the counter XOR key 0,
 * then six AESENC rounds and one AESENCLAST. Words are the 128-bit state
 * read as four little-endian uint32. Defined in ag_rng.c. */
#define AG__ARS_ROUNDS 7
#define AG__ARS_W0 0x9E3779B97F4A7C15ull /* golden ratio: low 64 bits */
#define AG__ARS_W1 0xBB67AE8584CAA73Bull /* sqrt(3) - 1: high 64 bits */

/* The round keys 0 .. AG__ARS_ROUNDS of a seed as four 32-bit words each,
 * for every implementation (the SIMD loops load or broadcast them). */
void ag__ars_keys(uint32_t rk[AG__ARS_ROUNDS + 1][4], uint64_t seed);
/* One block: out = ARS-7 of the counter words ctr with key (seed, 0).
 * AES-NI where the CPU has it, else ag__ars4x32_soft (the same bits). */
void ag__ars4x32(uint32_t out[4], const uint32_t ctr[4], uint64_t seed);
/* The portable C implementation of ag__ars4x32. */
void ag__ars4x32_soft(uint32_t out[4], const uint32_t ctr[4], uint64_t seed);
/* Blocks blk0 .. blk0 + nblk - 1 (block index modulo 2^64) of stream
 * `stream`: out[4 j + w] is word w of block blk0 + j, whose counter is
 * (block lo, block hi, stream lo, stream hi). VAES on 256-bit vectors
 * where the CPU has it, else AES-NI where it has that; _soft: portable C
 * always; _vaes: the VAES one, returning 0 (nothing written) where the CPU
 * lacks VAES or AVX2. */
void ag__ars_fill(uint32_t *out, uint64_t blk0, size_t nblk, uint64_t seed, uint64_t stream);
void ag__ars_fill_soft(uint32_t *out, uint64_t blk0, size_t nblk, uint64_t seed,
                       uint64_t stream);
int ag__ars_fill_vaes(uint32_t *out, uint64_t blk0, size_t nblk, uint64_t seed,
                      uint64_t stream);

/* Threads of the bulk calls: each operation's parallel threshold comes
 * from what one element costs it (ag_quant.c: a table of picoseconds per
 * element on a fast core), so that a call runs on several threads only
 * when its estimated one-thread time is well above what a fork/join can
 * cost, also on shared cores (where a worker may wait to be scheduled):
 * ag__par_threads(op, n, threads, avail) is 1 below ag__par_min(op)
 * elements or when threads == 1; else at most `threads` (0: avail) and at
 * most one thread per AG__PAR_THREAD_NS of estimated work. Deterministic:
 * a pure function of its arguments (avail is omp_get_max_threads() and
 * busy the load check in the library). The results never depend on it
 * (tests/test_kernels.c). */
typedef enum {
    AG__PAR_QUANT,     /* quantize, nearest / directed rounding */
    AG__PAR_QUANT_SR,  /* quantize, stochastic */
    AG__PAR_ENCODE,    /* encode_u8 / u16, nearest / directed */
    AG__PAR_ENCODE_SR, /* encode, stochastic */
    AG__PAR_DECODE,    /* decode_u8 / u16 */
    AG__PAR_BACKWARD,  /* straight-through backward (reads three arrays) */
    AG__PAR_SCALE,     /* dequantize and its backward */
    AG__PAR_ADAMW,     /* ag_adamw_step (reads w, g, m, v; writes w, m, v) */
    AG__PAR_GRID,      /* ag_grid_step (grid search and the generator) */
    AG__PAR_NOPS
} ag__par_op;
#define AG__PAR_MIN_NS 200000.0    /* one-thread work below which a call stays on one thread */
#define AG__PAR_THREAD_NS 100000.0 /* estimated work per thread at least */
/* busy (the machine's load average has reached its processor count:
 * other processes keep every core busy, and a woken worker can wait a
 * whole time slice, milliseconds, to run, while the caller waits for it
 * at the end of the parallel region): calls of less than this estimated
 * work stay on one thread, unless the caller set an explicit thread count
 * (threads > 1) */
#define AG__PAR_BUSY_NS 20000000.0
int ag__par_threads(ag__par_op op, size_t n, int threads, int avail, int busy);
size_t ag__par_min(ag__par_op op);

/* 1 when the CPU has VAES (AES rounds on 256- and 512-bit vectors). */
int ag__cpu_vaes(void);

/* The 32 random bits of stream element g: word (g mod 4) of ARS-7 with key
 * (seed, 0) and counter (g/4 lo, g/4 hi, stream lo, stream hi). This
 * mapping is the reproducibility contract: every kernel must produce
 * exactly these bits. */
static inline uint32_t ag__random_u32(uint64_t seed, uint64_t stream,
                                      uint64_t g)
{
    const uint64_t blk = g >> 2;
    const uint32_t ctr[4] = {(uint32_t)blk, (uint32_t)(blk >> 32),
                             (uint32_t)stream, (uint32_t)(stream >> 32)};
    uint32_t out[4];
    ag__ars4x32(out, ctr, seed);
    return out[g & 3];
}

/* Code comparisons of the diagnostics and the optimizers (the "same grid
 * point" relation of altgrad.h) in branch-free form for chunk loops, with the format's constants computed once: a code is NaN
 * iff its magnitude is above `thr` (IEEE: the inf code; FN: max_code; NONE:
 * never) or it is the FNUZ NaN `fnuz`. */
typedef struct ag__cmp_ctx {
    uint32_t sm;    /* sign mask */
    uint32_t thr;   /* NaN magnitude threshold */
    uint32_t fnuz;  /* the FNUZ NaN code, or a value no code has */
    uint32_t zok;   /* 1 when the format has zero(s) */
} ag__cmp_ctx;

static inline void ag__cmp_init(ag__cmp_ctx *c, const ag_format *f)
{
    const uint32_t all = (1u << (f->ebits + f->mbits)) - 1u;
    c->sm = f->sign_mask;
    c->thr = f->specials == AG_SPECIALS_IEEE ? f->inf_code
             : f->specials == AG_SPECIALS_FN ? f->max_code
                                              : all;
    c->fnuz = f->specials == AG_SPECIALS_FNUZ ? f->sign_mask : 0xffffffffu;
    c->zok = !f->no_zero;
}

/* NaN-ness of a code whose input was x */
static inline uint32_t ag__cmp_nan(const ag__cmp_ctx *c, uint32_t code, float x)
{
    return (uint32_t)(x != x) | (uint32_t)((code & ~c->sm) > c->thr) |
           (uint32_t)(code == c->fnuz);
}

static inline uint32_t ag__cmp_same(const ag__cmp_ctx *c, uint32_t a,
                                    uint32_t nan_a, uint32_t b,
                                    uint32_t nan_b)
{
    const uint32_t zeros = c->zok & (uint32_t)((a & ~c->sm) == 0u) &
                           (uint32_t)((b & ~c->sm) == 0u);
    return ((nan_a | nan_b) ^ 1u) & ((uint32_t)(a == b) | zeros);
}


/* Index of a non-NaN code on the ordered grid. Magnitudes are consecutive
 * grid points (ag__round relies on the same fact), so the index of a
 * positive code is its magnitude and a negative one mirrors it; +-0 meet at
 * 0. Formats without zero have no point between +-smallest: the negative
 * side is shifted by one so that they stay neighbours. (_p: the sign mask
 * and no_zero as values, for vectorized loops.) */
static inline int32_t ag__grid_pos_p(uint32_t sign_mask, int no_zero,
                                     uint32_t code)
{
    const int32_t mag = (int32_t)(code & ~sign_mask);
    const int32_t neg = (int32_t)((code & sign_mask) != 0u);
    return mag - neg * (2 * mag + (no_zero != 0)); /* -mag (-1: no zero) */
}

static inline int64_t ag__grid_pos(const ag_format *f, uint32_t code)
{
    return (int64_t)ag__grid_pos_p(f->sign_mask, f->no_zero, code);
}



/* Threads for n elements of op under the option `threads` (0: the
 * library's choice, 1: serial, > 1: at most): ag__par_threads with this
 * machine's thread count and load (defined in ag_quant.c). */
int ag__thread_count(ag__par_op op, size_t n, int threads);

/* Check word of a format (covers the defining and key derived fields). */
uint32_t ag__format_checkword(const ag_format *f);
/* 1 when f is an entry of the const registry (valid by construction). */
int ag__format_in_registry(const ag_format *f);

/* The rounding core: code of x under mode and overflow policy; rnd is the
 * element's 32 random bits (used by AG_ROUND_STOCHASTIC only). ORs
 * AG__FLAG_* into *flags. Defined in ag_format.c. */
uint32_t ag__round(const ag_format *f, float x, ag_rounding mode,
                   ag_overflow ovf, uint32_t rnd, unsigned *flags);

/* Decode a code < f->ncodes of a valid format (no checks). */
float ag__decode(const ag_format *f, uint32_t code);

/* Code to return when |x| rounds beyond max_finite (or x is +-inf under a
 * rounding mode away from zero). */
static inline uint32_t ag__overflow_code(const ag_format *f, uint32_t sign,
                                         ag_overflow ovf)
{
    const uint32_t s = sign ? f->sign_mask : 0u;
    if (ovf == AG_OVERFLOW_IEEE) {
        if (f->has_inf)
            return s | f->inf_code;
        if (f->has_nan)
            return f->nan_code;
    }
    return s | f->max_code;
}

/* Value i (0: the oldest) of the count values an amax history holds, for
 * i < ag_amax_history_count(h) (ag_scaler's state bytes). In ag_scale.c. */
float ag__amax_history_at(const ag_amax_history *h, size_t i);

/* Classification of a code of a valid format (the specials conventions of
 * altgrad.h): finite, +-inf or NaN. */
enum { AG__CODE_FINITE = 0, AG__CODE_INF = 1, AG__CODE_NAN = 2 };
static inline int ag__code_class(const ag_format *f, uint32_t code)
{
    const uint32_t mag = code & ~f->sign_mask;
    const uint32_t all = (1u << (f->ebits + f->mbits)) - 1u;
    switch (f->specials) {
    case AG_SPECIALS_NONE:
        return AG__CODE_FINITE;
    case AG_SPECIALS_IEEE:
        if ((mag >> f->mbits) == (all >> f->mbits))
            return (mag & ((1u << f->mbits) - 1u)) ? AG__CODE_NAN : AG__CODE_INF;
        return AG__CODE_FINITE;
    case AG_SPECIALS_FN:
        return mag == all ? AG__CODE_NAN : AG__CODE_FINITE;
    case AG_SPECIALS_FNUZ:
        return code == f->sign_mask ? AG__CODE_NAN : AG__CODE_FINITE;
    }
    return AG__CODE_NAN;
}

/* 2^e as a float32: the bit pattern in the normal and subnormal range (no
 * libm call), +0 below 2^-149 and +inf above 2^127. Selects only, so that
 * loops using it vectorize (the optimizer steps). */
static inline float ag__pow2f(int e)
{
    const int en = e < -126 ? -126 : e > 128 ? 128 : e; /* 128: inf's bits */
    const int sh = e + 149 < 0 ? 0 : e + 149 > 22 ? 22 : e + 149;
    const float nrm = ag__u2f((uint32_t)(en + 127) << 23);
    const float sub = e < -149 ? 0.0f : ag__u2f(1u << sh);
    return e >= -126 ? nrm : sub;
}

/* floor(log2 v) of a finite v > 0 from its bit pattern (float32
 * subnormals renormalised by an exact 2^24); -151 for v = 0, 128 for
 * inf/NaN. */
static inline int ag__ilogb_bits(float v)
{
    const uint32_t b = ag__f2u(v) & 0x7fffffffu;
    const uint32_t bs = ag__f2u(v * 0x1p24f) & 0x7fffffffu;
    return b >= 0x00800000u ? (int)(b >> 23) - 127 : (int)(bs >> 23) - 151;
}

/* The one definition of stiffness (altgrad.h, ag_stiffness): the grid
 * spacing of f, times scale, at a nonzero non-NaN x; `low` is the lowest
 * step ag__pow2f(f->emin - f->mbits). With v = |x / scale| (float32):
 * +inf for infinite v, low * scale for fixed point or a quotient that
 * underflowed to 0, else 2^(max(floor(log2 v), emin) - M) * scale.
 * Branch-free (selects), so that the optimizer loops vectorize; _p takes
 * the format's E, emin and M as values (loop constants). */
static inline float ag__grid_step_p(int ebits, int emin, int mbits, float x,
                                    float scale, float low)
{
    const float v = fabsf(x / scale);
    const int e = ag__ilogb_bits(v); /* -151 for v == 0: below every emin */
    const int normal = ebits != 0 && e > emin;
    const float r = (normal ? ag__pow2f(e - mbits) : low) * scale;
    return v > 3.4028234663852886e38f ? v : r;
}

static inline float ag__grid_step(const ag_format *f, float x, float scale,
                                  float low)
{
    return ag__grid_step_p(f->ebits, f->emin, f->mbits, x, scale, low);
}

/* A scale (or margin, floor) is positive and finite: 0 < s < inf (NaN
 * fails both tests). */
static inline int ag__scale_ok(float scale)
{
    return scale > 0.0f && scale <= 3.4028234663852886e38f;
}

/* Every field of *o in range (the kernel id included, not whether that path
 * runs here: see ag__chk_qopts). */
static inline int ag__qopts_in_range(const ag_qopts *o)
{
    return (unsigned)o->rounding <= (unsigned)AG_ROUND_STOCHASTIC &&
           (unsigned)o->overflow <= (unsigned)AG_OVERFLOW_IEEE &&
           (unsigned)o->ste <= (unsigned)AG_STE_CLIPPED && o->threads >= 0 &&
           (unsigned)o->kernel <= (unsigned)AG_KERNEL_AVX512 &&
           (unsigned)o->mx_scale <= (unsigned)AG_MX_SCALE_RCEIL;
}

/* ------------------------------------------------------------------------ */
/* The one argument checker                                                 */
/* ------------------------------------------------------------------------ */
/* Every public entry point records the faults of its arguments in an
 * ag__chk, in any order, and returns ag__chk_status(), which reports the
 * first of them in this one precedence:
 *   1. AG_ERR_NULL     a pointer the call needs is NULL (the format too;
 *                      array pointers only when their count is > 0)
 *   2. AG_ERR_FORMAT   the format is not a valid ag_format
 *   3. AG_ERR_STORAGE  the format is wider than the code storage
 *   4. AG_ERR_SCALE    the scale is not positive and finite
 *   5. AG_ERR_ARG      an option or scalar argument is out of range
 *                      (ag_qopts fields, a kernel not available here,
 *                      ag_scale_opts, lr, block, amax, ...)
 *   6. AG_ERR_SHAPE    a size product overflows, or sizes disagree
 *   7. AG_ERR_ALIAS    an output overlaps an input other than exactly
 * The contents of arrays (codes in range, per-row scales, amax values) are
 * checked after all of these pass, before anything is written: they need
 * the pointers and sizes to be good. */
typedef struct ag__chk {
    unsigned faults;  /* bit k: fault of precedence k + 1 */
} ag__chk;

#define AG__CHK_INIT {0u}

enum {
    AG__FAULT_NULL = 1u << 0,
    AG__FAULT_FORMAT = 1u << 1,
    AG__FAULT_STORAGE = 1u << 2,
    AG__FAULT_SCALE = 1u << 3,
    AG__FAULT_ARG = 1u << 4,
    AG__FAULT_SHAPE = 1u << 5,
    AG__FAULT_ALIAS = 1u << 6
};

static inline ag_status ag__chk_status(const ag__chk *c)
{
    static const ag_status order[] = {AG_ERR_NULL,  AG_ERR_FORMAT, AG_ERR_STORAGE,
                                      AG_ERR_SCALE, AG_ERR_ARG,    AG_ERR_SHAPE,
                                      AG_ERR_ALIAS};
    for (unsigned k = 0; k < sizeof order / sizeof order[0]; k++)
        if (c->faults & (1u << k))
            return order[k];
    return AG_OK;
}

/* p must not be NULL. */
static inline void ag__chk_ptr(ag__chk *c, const void *p)
{
    if (!p)
        c->faults |= AG__FAULT_NULL;
}

/* fmt must be a valid format; returns 1 when it is (its fields may then be
 * read). */
static inline int ag__chk_fmt(ag__chk *c, const ag_format *fmt)
{
    if (!fmt) {
        c->faults |= AG__FAULT_NULL;
        return 0;
    }
    if (ag_format_check(fmt) != AG_OK) {
        c->faults |= AG__FAULT_FORMAT;
        return 0;
    }
    return 1;
}

/* A valid fmt whose codes fit `bits` of storage (8 or 16). */
static inline int ag__chk_fmt_storage(ag__chk *c, const ag_format *fmt, int bits)
{
    if (!ag__chk_fmt(c, fmt))
        return 0;
    if (fmt->bits > bits) {
        c->faults |= AG__FAULT_STORAGE;
        return 0;
    }
    return 1;
}

static inline void ag__chk_scale(ag__chk *c, float scale)
{
    if (!ag__scale_ok(scale))
        c->faults |= AG__FAULT_SCALE;
}

/* A scalar argument that must hold (ok != 0). */
static inline void ag__chk_arg(ag__chk *c, int ok)
{
    if (!ok)
        c->faults |= AG__FAULT_ARG;
}

/* Quantize options (NULL: the defaults, fine): every field in range, and a
 * code path that runs here, so that no bulk call can fail half way. */
static inline void ag__chk_qopts(ag__chk *c, const ag_qopts *o)
{
    if (o && (!ag__qopts_in_range(o) || !ag_kernel_available(o->kernel)))
        c->faults |= AG__FAULT_ARG;
}

/* Scale options (NULL: the defaults): margin and scale_min positive
 * finite, pow2 0 or 1. */
static inline void ag__chk_sopts(ag__chk *c, const ag_scale_opts *o)
{
    if (o && (!ag__scale_ok(o->margin) || !ag__scale_ok(o->scale_min) ||
              (o->pow2 != 0 && o->pow2 != 1)))
        c->faults |= AG__FAULT_ARG;
}

/* *n = rows * cols elements, whose bytes as floats must fit size_t (else
 * AG_ERR_SHAPE and *n = 0). A 1-D count is rows = 1. */
static inline void ag__chk_count(ag__chk *c, size_t *n, size_t rows, size_t cols)
{
    if (cols != 0 && rows > (SIZE_MAX / 4) / cols) {
        c->faults |= AG__FAULT_SHAPE;
        *n = 0;
        return;
    }
    *n = rows * cols;
}

/* A condition on sizes that must hold. */
static inline void ag__chk_shape(ag__chk *c, int ok)
{
    if (!ok)
        c->faults |= AG__FAULT_SHAPE;
}

/* An output of n elements of out_elt bytes read from an input of n elements
 * of in_elt bytes: both non-NULL when n > 0, n floats' bytes fit size_t,
 * and no overlap except exactly in place (exact_ok, same element size). */
static inline void ag__chk_io(ag__chk *c, const void *out, size_t out_elt,
                              const void *in, size_t in_elt, size_t n,
                              int exact_ok);

/* Output [out, out + nout) and input [in, in + nin) (bytes) may not share a
 * byte, except that with exact_ok they may be the very same region (same
 * start and length: in place). Empty regions overlap nothing. */
static inline void ag__chk_alias(ag__chk *c, const void *out, size_t nout,
                                 const void *in, size_t nin, int exact_ok)
{
    const uintptr_t po = (uintptr_t)out, pi = (uintptr_t)in;
    if (!nout || !nin || (exact_ok && po == pi && nout == nin))
        return;
    if (po < pi + nin && pi < po + nout)
        c->faults |= AG__FAULT_ALIAS;
}

static inline void ag__chk_io(ag__chk *c, const void *out, size_t out_elt,
                              const void *in, size_t in_elt, size_t n,
                              int exact_ok)
{
    if (n) {
        ag__chk_ptr(c, out);
        ag__chk_ptr(c, in);
    }
    size_t m;
    ag__chk_count(c, &m, 1, n);
    ag__chk_alias(c, out, m * out_elt, in, m * in_elt, exact_ok);
}

/* Plain loops compiled for AVX-512, AVX2 and the baseline, the clone
 * picked at load time (GCC's target_clones on x86-64 Linux; elsewhere one
 * build): the same operations in every clone, so the same bits. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__linux__)
#define AG__CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define AG__CLONES
#endif

#endif /* AG_INTERNAL_H */
