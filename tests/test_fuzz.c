/* SPDX-License-Identifier: MIT */
/*
 * test_fuzz.c — runs the fuzz targets (tests/fuzz/) without libFuzzer, as
 * part of make check-c: every file of the seed corpus tests/fuzz/corpus/
 * and a few thousand inputs from a seeded generator (mutations of the
 * corpus and random bytes). A target aborts on a broken invariant, which
 * fails this binary. Run from the repository root (as make does).
 */
#define _POSIX_C_SOURCE 200809L
#define AG_LIBFUZZER /* the targets' own replay mains stay out */
#define AG_FUZZ_SPEC_ENTRY ag_fuzz_spec_one
#define AG_FUZZ_RT_ENTRY ag_fuzz_roundtrip_one
#include "fuzz/fuzz_spec.c"
#include "fuzz/fuzz_roundtrip.c"
#include "fuzz/fuzz_replay.h"

#include "ag_test.h"
#include "ag_test_rng.h"

#include <inttypes.h>


static void random_inputs(ag_fuzz_fn fn, int count, size_t maxlen, const char *alphabet)
{
    uint8_t buf[2048];
    for (int k = 0; k < count; k++) {
        const size_t len = (size_t)(rng_next() % (maxlen + 1));
        for (size_t i = 0; i < len; i++) {
            const uint64_t r = rng_next();
            buf[i] = alphabet ? (uint8_t)alphabet[r % strlen(alphabet)] : (uint8_t)r;
        }
        fn(buf, len);
    }
}

int main(void)
{
    const char *s = getenv("AG_TEST_SEED");
    const uint64_t seed = s && *s ? strtoull(s, NULL, 0) : 0x5eed0005ull;
    rng_state = seed;
    printf("test_fuzz: seed %#" PRIx64 " (set AG_TEST_SEED to change)\n", seed);
    const long a = ag_fuzz_replay_path("tests/fuzz/corpus/spec", ag_fuzz_spec_one);
    AG_CHECK(a > 0, "spec corpus: %ld inputs (run from the repository root)", a);
    const long b = ag_fuzz_replay_path("tests/fuzz/corpus/roundtrip", ag_fuzz_roundtrip_one);
    AG_CHECK(b > 0, "roundtrip corpus: %ld inputs", b);
    /* spec-like strings from the spec alphabet, then raw bytes */
    random_inputs(ag_fuzz_spec_one, 3000, 24, "e0123456789m:=biasecilnoyzrfuEMx_-+ ");
    static const char *words[] = {"e4m3", "E5M2", "float8_e4m3fn", "e3m4", ":bias=", ":specials=",
                                  "ieee", "fnuz", "fn", "none", ":signed=", ":zero=", "no", "yes",
                                  "-3", "7", "130", "e8m0", "e0m7", "e2m1", ":", "="};
    for (int k = 0; k < 3000; k++) {
        char spec[128] = "";
        const int parts = 1 + (int)(rng_next() % 6);
        for (int p = 0; p < parts; p++)
            strncat(spec, words[rng_next() % (sizeof words / sizeof words[0])], sizeof spec - strlen(spec) - 1);
        ag_fuzz_spec_one((const uint8_t *)spec, strlen(spec));
    }
    random_inputs(ag_fuzz_spec_one, 500, 64, NULL);
    random_inputs(ag_fuzz_roundtrip_one, 600, 15 + 4 * 64, NULL);
    /* roundtrip with sane scales: byte 3..6 = a random power of two or 1.5 */
    for (int k = 0; k < 400; k++) {
        uint8_t buf[15 + 4 * 96];
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = (uint8_t)rng_next();
        const float sc = ldexpf((rng_next() & 1) ? 1.0f : 1.5f, (int)(rng_next() % 40) - 20);
        memcpy(buf + 3, &sc, 4);
        /* values near the format range: small exponents */
        for (size_t i = 15; i + 3 < sizeof buf; i += 4)
            buf[i + 3] = (uint8_t)((buf[i + 3] & 0x80) | (0x38 + rng_next() % 16));
        ag_fuzz_roundtrip_one(buf, sizeof buf);
    }
    AG_CHECK(1, "no target aborted");
    return ag_test_summary("test_fuzz");
}
