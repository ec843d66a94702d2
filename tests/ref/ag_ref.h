/* SPDX-License-Identifier: MIT */
/*
 * ag_ref.h — the slow, exact, independent reference of altgrad's transfer
 * functions, written from DESIGN.md and the contracts in altgrad.h (not from
 * src/ag_format.c's algorithm). Linked into every test binary.
 *
 *     ag_ref *r = ag_ref_create(ebits, mbits, bias, is_signed, specials, no_zero);
 *     if (r && ag_ref_valid(r)) {
 *         uint32_t c = ag_ref_encode(r, x, AG_ROUND_NEAREST_EVEN,
 *                                    AG_OVERFLOW_IEEE, 0, &flags);
 *         float v = ag_ref_decode(r, c);
 *     }
 *     ag_ref_free(r);
 *
 * How it works: every code's value is computed by the textbook formula in
 * long double (ldexpl), NaN / inf codes are classified from the specials
 * convention; encoding sorts the non-negative finite values, finds the two
 * neighbours of |x| by binary search and compares |x| against their exact
 * midpoint (long double holds every float32 and every midpoint of two
 * format values exactly). Overflow is decided as if the exponent range went
 * on: the value after max_finite is max_finite + (its step).
 *
 * Not thread-safe to create; ag_ref_encode / ag_ref_decode on a created
 * reference are pure and may be called from several threads.
 */
#ifndef AG_REF_H
#define AG_REF_H

#include <altgrad.h>
#include <stdint.h>

#define AG_REF_OVERFLOW 1u   /* +-inf input, or |x| rounded beyond max_finite */
#define AG_REF_UNDERFLOW 2u  /* a nonzero finite input became (+-)zero */
#define AG_REF_NAN 4u        /* the result is a NaN code, or x was NaN */

enum { AG_REF_FINITE = 0, AG_REF_INF = 1, AG_REF_NANCODE = 2 };

typedef struct ag_ref {
    /* definition */
    int ebits, mbits, bias, is_signed, no_zero;
    ag_specials specials;
    /* validity: 0 valid; else the ag_status the library must return */
    ag_status status;
    /* derived (meaningful when status == AG_OK) */
    int bits;
    uint32_t ncodes, sign_mask;
    int has_inf, has_nan, has_negzero;
    uint32_t finite_codes, max_code, nan_code, inf_code;
    long double max_finite, min_normal, min_subnormal, beyond;
    int emin, emax;
    /* per code */
    long double *val;       /* value of each code (NaN / +-inf for specials) */
    unsigned char *kind;    /* AG_REF_FINITE / _INF / _NANCODE */
    /* the non-negative finite values, ascending, with their codes */
    uint32_t npos;
    long double *pos_val;
    uint32_t *pos_code;
} ag_ref;

/* Build the reference of a layout; NULL only when out of memory. A layout
 * the library must reject has ->status != AG_OK (and no tables). */
ag_ref *ag_ref_create(int ebits, int mbits, int bias, int is_signed,
                      ag_specials specials, int no_zero);

/* The reference of a library format, from its defining fields only. */
ag_ref *ag_ref_from_format(const ag_format *f);

void ag_ref_free(ag_ref *r);

/* Decode a code < ncodes to float32 (NaN codes: quiet NaN with the code's
 * sign bit). */
float ag_ref_decode(const ag_ref *r, uint32_t code);

/* Encode x under a rounding mode and overflow policy; rnd is the element's
 * 32 random bits (stochastic only). ORs AG_REF_* into *flags (may be NULL). */
uint32_t ag_ref_encode(const ag_ref *r, float x, ag_rounding mode,
                       ag_overflow ovf, uint32_t rnd, unsigned *flags);

/* The ARS block (ars4x32 with `rounds` rounds: the counter XOR the key,
 * rounds - 1 AES rounds and a last one without MixColumns, the key
 * stepped by the Weyl constants before each) and the documented element
 * mapping of altgrad's stochastic rounding: word (g mod 4) of ARS-7 with
 * key (seed lo, seed hi, 0, 0) and counter (g/4 lo, g/4 hi, stream lo,
 * stream hi). Written independently of src/ from FIPS-197 (byte by byte,
 * SubBytes from the field inverse), and checked against the published
 * known-answer vectors by the tests. */
void ag_ref_ars4x32(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[4],
                    unsigned rounds);
uint32_t ag_ref_random_u32(uint64_t seed, uint64_t stream, uint64_t g);

#endif /* AG_REF_H */
