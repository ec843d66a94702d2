/* SPDX-License-Identifier: MIT */
/*
 * ag_internal.h — helpers shared by the library's source files (never
 * installed): float bit access, the Philox counter-based generator, and the
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

/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
 * 3", SC'11): a counter-based generator, so that the random bits of element
 * g depend only on (seed, stream, g). */
#define AG__PHILOX_M0 0xD2511F53u
#define AG__PHILOX_M1 0xCD9E8D57u
#define AG__PHILOX_W0 0x9E3779B9u
#define AG__PHILOX_W1 0xBB67AE85u

static inline void ag__philox4x32(uint32_t out[4], const uint32_t ctr[4],
                                  uint32_t k0, uint32_t k1)
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)AG__PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)AG__PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += AG__PHILOX_W0;
        k1 += AG__PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* The round keys of ag__philox4x32 for a seed, laid out for SIMD loops that
 * broadcast them: kk[2 r] and kk[2 r + 1] are k0 and k1 of round r. */
static inline void ag__philox_keys(uint32_t kk[20], uint64_t seed)
{
    for (int round = 0; round < 10; round++) {
        kk[2 * round] = (uint32_t)seed + (uint32_t)round * AG__PHILOX_W0;
        kk[2 * round + 1] = (uint32_t)(seed >> 32) + (uint32_t)round * AG__PHILOX_W1;
    }
}

/* The 32 random bits of stream element g: word (g mod 4) of
 * Philox4x32-10 with key (seed lo, seed hi) and counter
 * (g/4 lo, g/4 hi, stream lo, stream hi). This mapping is the
 * reproducibility contract: every kernel must produce exactly these bits. */
static inline uint32_t ag__random_u32(uint64_t seed, uint64_t stream,
                                      uint64_t g)
{
    const uint64_t blk = g >> 2;
    const uint32_t ctr[4] = {(uint32_t)blk, (uint32_t)(blk >> 32),
                             (uint32_t)stream, (uint32_t)(stream >> 32)};
    uint32_t out[4];
    ag__philox4x32(out, ctr, (uint32_t)seed, (uint32_t)(seed >> 32));
    return out[g & 3];
}

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

/* Validation helpers for the public entry points. */
static inline int ag__scale_ok(float scale)
{
    /* positive and finite: 0 < scale < inf, NaN fails both tests */
    return scale > 0.0f && scale <= 3.4028234663852886e38f;
}

/* 1 when [a, a+na) and [b, b+nb) overlap but do not start at the same byte. */
static inline int ag__partial_overlap(const void *a, size_t na, const void *b,
                                      size_t nb)
{
    const uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    if (pa == pb)
        return 0;
    return pa < pb + nb && pb < pa + na;
}

static inline ag_status ag__opts_check(const ag_qopts *o)
{
    if ((unsigned)o->rounding > (unsigned)AG_ROUND_STOCHASTIC ||
        (unsigned)o->overflow > (unsigned)AG_OVERFLOW_IEEE ||
        (unsigned)o->ste > (unsigned)AG_STE_CLIPPED || o->threads < 0 ||
        (unsigned)o->kernel > (unsigned)AG_KERNEL_AVX512)
        return AG_ERR_ARG;
    return AG_OK;
}

#endif /* AG_INTERNAL_H */
