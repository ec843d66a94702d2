/* SPDX-License-Identifier: MIT */
/*
 * ag_test_rng.h — the seeded random inputs of the C tests: a splitmix64
 * stream, and a float of random sign and magnitude across many binades
 * (test_scale.c, test_diag.c). The caller sets rng_state (its seed) before
 * drawing.
 */
#ifndef AG_TEST_RNG_H
#define AG_TEST_RNG_H

#include <math.h>
#include <stdint.h>

static uint64_t rng_state;
static inline uint64_t rng_next(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A float of random sign and magnitude 2^[-lo, hi); with specials,
 * sometimes NaN or +-inf; sometimes +-0. */
static inline float rnd_float(int lo, int hi, int specials)
{
    const uint64_t r = rng_next();
    if (specials && r % 97 == 0)
        return NAN;
    if (specials && r % 89 == 0)
        return (r >> 8) & 1 ? INFINITY : -INFINITY;
    if (r % 53 == 0)
        return (r >> 8) & 1 ? 0.0f : -0.0f;
    const double u = (double)(rng_next() >> 11) / 9007199254740992.0; /* [0,1) */
    const float v = (float)exp2(-lo + (double)(lo + hi) * u);
    return (r >> 9) & 1 ? -v : v;
}

#endif /* AG_TEST_RNG_H */
