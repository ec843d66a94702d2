/* SPDX-License-Identifier: MIT */
/*
 * ag_kernels.h — the fast bulk kernels (internal, never installed).
 *
 * One kernel body (ag_kernels_body.h) is compiled several times: plain
 * portable C that GCC auto-vectorizes for the baseline ISA
 * (ag_kernels_portable.c), and the same source under AVX2
 * (ag_kernels_avx2.c) and AVX-512 (ag_kernels_avx512.c) target pragmas.
 * ag_quant.c picks one table of function pointers per call (ag_qopts.kernel,
 * or the best the CPU supports) and splits large arrays over OpenMP threads.
 *
 * Every kernel is branch-free integer work on the float32 bit pattern and is
 * bit-exact with the scalar specification ag__round (tests/test_kernels.c
 * proves it per path). Per-format constants are derived once per call into
 * ag__kparams (ag__kparams_init), never per element.
 */
#ifndef AG_KERNELS_H
#define AG_KERNELS_H

#include "ag_internal.h"

/* Elements per tile: the stochastic kernels draw the random words of one
 * tile into a stack buffer, and stats are summed per tile in 32 bits. */
#define AG__TILE 1024

/* Per-call constants of a format, rounding mode and scale. Codes and values
 * come in pairs indexed by the sign of the input ([0] positive, [1]
 * negative); values are float32 bit patterns of ag__decode(code). */
typedef struct ag__kparams {
    const ag_format *fmt; /* the format (the scalar table uses it) */
    ag_overflow ovf;
    ag_rounding mode;
    uint32_t mbits;       /* M */
    int32_t emin, emax, bias;
    uint32_t fixed;       /* 1: E = 0 (uniform grid) */
    uint32_t no_zero;     /* 1: E8M0-like, no zero */
    uint32_t is_unsigned; /* 1: no sign bit */
    uint32_t sign_mask;
    uint32_t max_code;
    int32_t q_sub;        /* exponent of the step below 2^emin: emin - M */
    uint32_t tz_pos, tz_neg; /* the mode rounds this sign toward zero */
    /* special results: codes, value bits */
    uint32_t nan_code, nan_val;     /* NaN input (nan_code or 0) */
    uint32_t uneg_code, uneg_val;   /* negative input, unsigned format */
    uint32_t uneg_is_nan;           /* 1: that counts as NaN, else underflow */
    uint32_t zero_code[2], zero_val[2]; /* +-0 input (formats with zero) */
    uint32_t inf_code[2], inf_val[2];   /* +-inf input */
    uint32_t ovf_code[2], ovf_val[2];   /* finite beyond range, away from 0 */
    uint32_t max_codes[2], max_val[2];  /* finite beyond range, toward 0 */
    uint32_t clamp_val[2];              /* no_zero: below the smallest */
    /* decode */
    uint32_t ieee, fn, fnuz;  /* which specials convention (one is 1) */
    uint32_t all_mag;         /* 2^(E+M) - 1 */
    uint32_t e_all;           /* 2^E - 1 */
    uint32_t qnan_pos, qnan_neg; /* bits of NAN and -NAN (as ag__decode) */
    /* scale: y = q(x / scale) * scale; when 1/scale is exact (a power of
     * two whose reciprocal is a finite float) x * inv == x / scale bit for
     * bit and the kernels multiply */
    float scale, inv_scale;
    int use_inv;
    /* 1: the format takes the lean loop (signed, has -0, emin > -126 and
     * emin - M >= -126; see k_round_tile_lean) */
    int lean;
    /* 1: nearest-even quantize (float output) takes the float-pattern loop
     * k_round_ne_fast: signed with -0, M <= 22, code parity = float
     * parity (M >= 1, or M = 0 with an odd bias), every value and the
     * subnormal step's magic constant normal floats */
    int nefast;
    uint32_t ne_sh;       /* 23 - M: float mantissa bits dropped (normal) */
    uint32_t ne_minnorm;  /* bits of 2^emin (E = 0: all ones: no normals) */
    uint32_t ne_maxb;     /* bits of max_finite */
    float ne_magic;       /* 2^(emin - M + 23): |v| + magic rounds to the step */
    uint32_t ne_ovft;     /* the largest |v| bits that nearest-even rounds to at
                             most max_finite (|v| above it overflows) */
    int ne_cfin;          /* nefast, and C = 2^(e + 23 - M) is a finite float for
                             every |v| up to max_finite (or E = 0): the float sum
                             |v| + C - C covers the whole range */
    /* the hand-written AVX-512 loops (ag_kernels_avx512.c):
     *  sym: overflow and inf results differ by the sign bit only, for
     *       codes (sign_mask) and values (bit 31);
     *  sr_fast: stochastic quantize / encode on the float pattern (as
     *       nefast, with 2^(e + 23 - M), 2^55 / that and the step normal
     *       floats for every |v| up to max_finite) */
    int sym, sr_fast;
    /* 0: the caller wants no stats (the nearest-even loops then skip the
     * counters); ag__kparams_init sets 1 */
    int count;
    /* 1: write the codes with non-temporal stores (set by the caller for
     * encodes whose output is far larger than the caches; the
     * nearest-even encodes of the hand-written AVX-512 loops use it) */
    int stream_out;
    float max_finite;
    uint64_t seed, stream; /* stochastic rounding key */
    /* decode of formats with bits <= 8: dlut[c] = value(c) * scale, filled
     * by ag__kparams_decode_lut (dlut_ok = 1), else the arithmetic decode */
    int dlut_ok;
    float dlut[256];
} ag__kparams;

/* Counters of one call or chunk (flags as ag__round reports them). */
typedef struct ag__kstats {
    uint64_t overflow, underflow, nan;
} ag__kstats;

/* Fill *p for fmt (valid), scale (valid) and options o (checked). */
void ag__kparams_init(ag__kparams *p, const ag_format *fmt, float scale,
                      const ag_qopts *o);

/* Fill p->dlut for a format of at most 8 bits (no-op otherwise): the
 * same float products value * scale the scalar decode computes. */
void ag__kparams_decode_lut(ag__kparams *p);

/* One kernel implementation. g0 is the stream index of element 0 (offset +
 * the chunk's start). Every function handles any n >= 1 and any alignment;
 * y == x (same element type) is allowed. */
typedef struct ag__kernel_ops {
    void (*quantize)(float *y, const float *x, size_t n, uint64_t g0,
                     const ag__kparams *p, ag__kstats *st);
    void (*encode_u8)(uint8_t *c, const float *x, size_t n, uint64_t g0,
                      const ag__kparams *p, ag__kstats *st);
    void (*encode_u16)(uint16_t *c, const float *x, size_t n, uint64_t g0,
                       const ag__kparams *p, ag__kstats *st);
    void (*decode_u8)(float *y, const uint8_t *c, size_t n,
                      const ag__kparams *p);
    void (*decode_u16)(float *y, const uint16_t *c, size_t n,
                       const ag__kparams *p);
    /* dx += dy, or where |x/scale| <= max_finite (or NaN) when clipped */
    void (*backward)(float *dx, const float *dy, const float *x, size_t n,
                     const ag__kparams *p, int clipped);
    /* y = x * scale; dx += dy * scale (accum = 1) */
    void (*scale_mul)(float *y, const float *x, size_t n, float scale,
                      int accum);
    /* max code of c[0..n) (validity check of decode_u16) */
    uint32_t (*max_u16)(const uint16_t *c, size_t n);
} ag__kernel_ops;

/* The implementations; NULL-free tables. The AVX ones exist only on x86
 * with GCC or Clang; ag__kernel_table returns NULL for one the CPU (or
 * build) lacks. */
extern const ag__kernel_ops ag__kernels_scalar;
extern const ag__kernel_ops ag__kernels_portable;
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define AG__HAVE_X86_KERNELS 1
extern const ag__kernel_ops ag__kernels_avx2;
extern const ag__kernel_ops ag__kernels_avx512;
#else
#define AG__HAVE_X86_KERNELS 0
#endif

/* The table for kernel id k (AG_KERNEL_*; AUTO picks the best available),
 * or NULL when k is unknown or unavailable here. */
const ag__kernel_ops *ag__kernel_table(int k);

#endif /* AG_KERNELS_H */
