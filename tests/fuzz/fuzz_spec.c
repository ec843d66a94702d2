/* SPDX-License-Identifier: MIT */
/*
 * fuzz_spec.c — fuzz target: format-spec parsing (ag_format_parse).
 *
 * Any byte string is a spec (cut at the first NUL). Invariants: the call
 * never crashes; on error the status is NULL/SPEC/RANGE, *out is untouched
 * and the message is a non-empty NUL-terminated string; on success the
 * format passes ag_format_check, its fields are in range and every code
 * decodes and re-encodes to itself (NaN codes excepted). (min_normal may
 * exceed max_finite: e1mX:specials=ieee has no finite normal binade.)
 *
 * libFuzzer:  make fuzz   (clang -fsanitize=fuzzer; build/fuzz/fuzz_spec)
 * replay:     build/fuzz/fuzz_spec_replay FILE|DIR...
 * (tests/test_fuzz.c also replays tests/fuzz/corpus/spec in make check-c.)
 */
#define _POSIX_C_SOURCE 200809L /* the replay driver's dirent / stat */
#include <altgrad.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef AG_FUZZ_SPEC_ENTRY
#define AG_FUZZ_SPEC_ENTRY LLVMFuzzerTestOneInput
#endif

static void fuzz_spec__fail(const char *what, const char *spec)
{
    fprintf(stderr, "fuzz_spec: %s (spec '%s')\n", what, spec);
    abort();
}

int AG_FUZZ_SPEC_ENTRY(const uint8_t *data, size_t size);
int AG_FUZZ_SPEC_ENTRY(const uint8_t *data, size_t size)
{
    char spec[512];
    const size_t n = size < sizeof spec - 1 ? size : sizeof spec - 1;
    memcpy(spec, data, n);
    spec[n] = '\0';
    ag_format f, before;
    memset(&f, 0x6b, sizeof f);
    memcpy(&before, &f, sizeof f);
    char err[128];
    memset(err, 'Q', sizeof err);
    const ag_status st = ag_format_parse(&f, spec, err, sizeof err);
    if (st != AG_OK) {
        if (st != AG_ERR_SPEC && st != AG_ERR_RANGE)
            fuzz_spec__fail("unexpected status", spec);
        if (memcmp(&f, &before, sizeof f) != 0)
            fuzz_spec__fail("*out touched on error", spec);
        if (!memchr(err, '\0', sizeof err) || err[0] == '\0')
            fuzz_spec__fail("no NUL-terminated message", spec);
        return 0;
    }
    if (ag_format_check(&f) != AG_OK)
        fuzz_spec__fail("parsed format fails ag_format_check", spec);
    if (f.ebits < 0 || f.ebits > 8 || f.mbits < 0 || f.mbits > 23 || f.bits < 1 || f.bits > 16 ||
        f.ncodes != (1u << f.bits) || !(f.max_finite > 0) || !(f.min_subnormal > 0) ||
        !(f.min_subnormal <= f.min_normal) || !(f.min_subnormal <= f.max_finite) ||
        memchr(f.name, '\0', sizeof f.name) == NULL)
        fuzz_spec__fail("fields out of range", spec);
    /* every code round-trips (16-bit formats: a stride, to stay fast) */
    const uint32_t step = f.ncodes > 4096 ? 61 : 1;
    for (uint32_t c = 0; c < f.ncodes; c += step) {
        const float v = ag_to_real(&f, c);
        if (isnan(v))
            continue;
        if (ag_to_bits(&f, v) != c)
            fuzz_spec__fail("encode(decode(c)) != c", spec);
    }
    if (ag_to_real(&f, f.max_code) != f.max_finite)
        fuzz_spec__fail("max_code does not decode to max_finite", spec);
    return 0;
}

#ifndef AG_LIBFUZZER
#include "fuzz_replay.h"
int main(int argc, char **argv)
{
    return ag_fuzz_replay(argc, argv, AG_FUZZ_SPEC_ENTRY);
}
#endif
