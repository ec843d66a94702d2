/* SPDX-License-Identifier: MIT */
/*
 * fuzz_roundtrip.c — fuzz target: bytes -> encode -> decode round trip.
 *
 * Input layout: byte 0 picks the format (registry entries, then a few
 * custom specs), byte 1 the rounding mode (low 3 bits, mod 6) and overflow
 * policy (bit 3), byte 2 the kernel (if available here), bytes 3..6 the
 * scale (float32 bits), 7..14 the stochastic seed, then float32 values.
 * Invariants: a bad scale is AG_ERR_SCALE with nothing written; otherwise
 * codes[i] == ag_to_bits_opts(x[i] / scale) (stream element i), every code
 * is < ncodes, decode(codes) * scale == ag_quantize's y bit for bit (NaN
 * inputs: y NaN), ag_encode_u8 agrees with ag_encode_u16 for <= 8-bit
 * formats, and quantize / encode count the same stats.
 *
 * libFuzzer:  make fuzz   (clang -fsanitize=fuzzer; build/fuzz/fuzz_roundtrip)
 * replay:     build/fuzz/fuzz_roundtrip_replay FILE|DIR...
 * (tests/test_fuzz.c also replays tests/fuzz/corpus/roundtrip in check-c.)
 */
#define _POSIX_C_SOURCE 200809L /* the replay driver's dirent / stat */
#include <altgrad.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef AG_FUZZ_RT_ENTRY
#define AG_FUZZ_RT_ENTRY LLVMFuzzerTestOneInput
#endif

#define FUZZ_RT_MAXN 4096

static void fuzz_rt__fail(const char *what, const ag_format *f, size_t i)
{
    fprintf(stderr, "fuzz_roundtrip: %s (format %s, element %zu)\n", what, f->name, i);
    abort();
}

static int fuzz_rt__same(float a, float b)
{
    uint32_t ua, ub;
    memcpy(&ua, &a, 4);
    memcpy(&ub, &b, 4);
    return ua == ub || (a != a && b != b);
}

int AG_FUZZ_RT_ENTRY(const uint8_t *data, size_t size);
int AG_FUZZ_RT_ENTRY(const uint8_t *data, size_t size)
{
    static const char *customs[] = {"e4m4:signed=no", "e6m2:zero=no:specials=fn", "e0m7:bias=3",
                                    "e3m0:specials=ieee", "e5m10:specials=fnuz", "e2m13:specials=ieee"};
    static float x[FUZZ_RT_MAXN], y[FUZZ_RT_MAXN], z[FUZZ_RT_MAXN];
    static uint16_t c16[FUZZ_RT_MAXN];
    static uint8_t c8[FUZZ_RT_MAXN];
    if (size < 15)
        return 0;
    const size_t nreg = ag_format_count(), ncus = sizeof customs / sizeof customs[0];
    const size_t pick = data[0] % (nreg + ncus);
    ag_format custom;
    const ag_format *f;
    if (pick < nreg) {
        f = ag_format_at(pick);
    } else {
        if (ag_format_parse(&custom, customs[pick - nreg], NULL, 0) != AG_OK)
            abort();
        f = &custom;
    }
    ag_qopts o = ag_qopts_default();
    o.rounding = (ag_rounding)((data[1] & 7) % 6);
    o.overflow = (ag_overflow)((data[1] >> 3) & 1);
    o.kernel = ag_kernel_available(data[2] % 5) ? data[2] % 5 : AG_KERNEL_AUTO;
    o.threads = 1;
    float scale;
    memcpy(&scale, data + 3, 4);
    memcpy(&o.seed, data + 7, 8);
    const size_t n = (size - 15) / 4 < FUZZ_RT_MAXN ? (size - 15) / 4 : FUZZ_RT_MAXN;
    memcpy(x, data + 15, n * 4);

    ag_stats sq = {0}, se = {0};
    const int scale_ok = scale > 0 && scale <= 3.4028234663852886e38f;
    for (size_t i = 0; i < n; i++)
        y[i] = 12345.0f;
    const ag_status st = ag_quantize(y, x, n, f, scale, &o, &sq);
    if (!scale_ok) {
        if (n > 0 && st != AG_ERR_SCALE)
            fuzz_rt__fail("bad scale accepted", f, 0);
        for (size_t i = 0; i < n; i++)
            if (y[i] != 12345.0f)
                fuzz_rt__fail("output written on error", f, i);
        return 0;
    }
    if (st != AG_OK)
        fuzz_rt__fail("quantize failed", f, 0);
    if (ag_encode_u16(c16, x, n, f, scale, &o, &se) != AG_OK)
        fuzz_rt__fail("encode_u16 failed", f, 0);
    if (ag_decode_u16(z, c16, n, f, scale) != AG_OK)
        fuzz_rt__fail("decode_u16 failed", f, 0);
    if (sq.total != se.total || sq.overflow != se.overflow || sq.underflow != se.underflow ||
        sq.nan != se.nan || sq.total != n)
        fuzz_rt__fail("quantize and encode count differently", f, 0);
    for (size_t i = 0; i < n; i++) {
        ag_qopts oi = o;
        oi.offset = i;
        const uint32_t want = ag_to_bits_opts(f, x[i] / scale, &oi);
        if (c16[i] != want || c16[i] >= f->ncodes)
            fuzz_rt__fail("code differs from ag_to_bits_opts", f, i);
        const float wy = x[i] != x[i] ? NAN : ag_to_real(f, want) * scale;
        if (!fuzz_rt__same(y[i], wy))
            fuzz_rt__fail("quantize differs from the scalar expression", f, i);
        if (x[i] == x[i] && !fuzz_rt__same(z[i], y[i]))
            fuzz_rt__fail("decode(encode) differs from quantize", f, i);
    }
    if (f->bits <= 8) {
        if (ag_encode_u8(c8, x, n, f, scale, &o, NULL) != AG_OK)
            fuzz_rt__fail("encode_u8 failed", f, 0);
        for (size_t i = 0; i < n; i++)
            if (c8[i] != c16[i])
                fuzz_rt__fail("encode_u8 differs from encode_u16", f, i);
    }
    return 0;
}

#ifndef AG_LIBFUZZER
#include "fuzz_replay.h"
int main(int argc, char **argv)
{
    return ag_fuzz_replay(argc, argv, AG_FUZZ_RT_ENTRY);
}
#endif
