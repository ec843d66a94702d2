/* SPDX-License-Identifier: MIT */
/* test_smoke.c — the registry's headline values and a few hand-worked
 * roundings, as DESIGN.md states them. */
#include "ag_test.h"

#include <altgrad.h>
#include <math.h>

int main(void)
{
    static const struct { const char *name; float min_sub, max; } t[] = {
        {"E0M7", 1.0f / 128, 127.0f / 128}, {"E1M6", 1.0f / 32, 3.96875f},
        {"E3M4", 0.0625f, 124.0f},          {"E4M3", 0x1p-9f, 448.0f},
        {"E5M2", 0x1p-16f, 57344.0f},       {"E7M0", 0x1p-62f, 0x1p64f},
        {"float8_e4m3fn", 0x1p-9f, 448.0f}, {"float8_e5m2", 0x1p-16f, 57344.0f},
        {"float8_e4m3fnuz", 0x1p-10f, 240.0f}, {"float8_e5m2fnuz", 0x1p-17f, 57344.0f},
        {"float8_e4m3b11fnuz", 0x1p-13f, 30.0f}, {"float8_e3m4", 0x1p-6f, 15.5f},
        {"float8_e4m3", 0x1p-9f, 240.0f},   {"float8_e8m0fnu", 0x1p-127f, 0x1p127f},
        {"float6_e2m3fn", 0.125f, 7.5f},    {"float6_e3m2fn", 0.0625f, 28.0f},
        {"float4_e2m1fn", 0.5f, 6.0f},      {"FP16", 0x1p-24f, 65504.0f},
        {"BF16", 0x1p-133f, 0x1.fep127f},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const ag_format *f = ag_format_get(t[i].name);
        AG_CHECK(f != NULL, "%s missing", t[i].name);
        if (!f)
            continue;
        AG_CHECK(f->min_subnormal == t[i].min_sub, "%s min %a", t[i].name, (double)f->min_subnormal);
        AG_CHECK(f->max_finite == t[i].max, "%s max %a", t[i].name, (double)f->max_finite);
    }
    const ag_format *e4 = ag_format_get("e4m3");
    AG_CHECK(ag_to_bits(e4, 464.0f) == 0x7e, "tie at the overflow boundary -> max");
    AG_CHECK(ag_to_bits(e4, 465.0f) == 0x7f, "beyond -> NaN");
    const ag_format *e5 = ag_format_get("E5M2");
    AG_CHECK(ag_to_bits(e5, 61440.0f) == 0x7c, "E5M2 tie at boundary -> inf");
    AG_CHECK(ag_to_bits(e5, -0.0f) == 0x80, "-0 kept");
    const ag_format *e7 = ag_format_get("E7M0");
    AG_CHECK(ag_to_bits(e7, 3.0f) == ag_to_bits(e7, 2.0f), "E7M0: 3 ties to 2 (even exponent field 64)");
    AG_CHECK(ag_to_bits(e7, 6.0f) == ag_to_bits(e7, 8.0f), "E7M0: 6 ties to 8");
    const ag_format *e8 = ag_format_get("float8_e8m0fnu");
    AG_CHECK(ag_to_bits(e8, 0.0f) == 0xff && ag_to_bits(e8, -1.0f) == 0xff, "E8M0 zero/neg -> NaN");
    AG_CHECK(ag_to_bits(e8, 1.0f) == 127, "E8M0 1.0");
    float y[3];
    const float x[3] = {1000.0f, NAN, 1e-30f};
    ag_stats s = {0};
    AG_CHECK(ag_quantize(y, x, 3, e4, 1.0f, NULL, &s) == AG_OK, "quantize");
    AG_CHECK(y[0] == 448.0f && isnan(y[1]) && y[2] == 0.0f, "%g %g %g", (double)y[0], (double)y[1], (double)y[2]);
    AG_CHECK(s.overflow == 1 && s.nan == 1 && s.underflow == 1 && s.total == 3, "stats");
    /* a nonzero input whose quotient x / scale is already 0 in float32
     * underflows, on every kernel path and for encode too */
    for (int k = AG_KERNEL_AUTO; k <= AG_KERNEL_AVX512; k++) {
        if (!ag_kernel_available(k))
            continue;
        ag_qopts o = ag_qopts_default();
        o.kernel = k;
        const float tiny[4] = {1e-30f, -1e-30f, 0.0f, 1e30f};
        float yq[4];
        uint8_t cq[4];
        ag_stats s1 = {0}, s2 = {0};
        AG_CHECK(ag_quantize(yq, tiny, 4, e4, 1e30f, &o, &s1) == AG_OK, "quantize");
        AG_CHECK(ag_encode_u8(cq, tiny, 4, e4, 1e30f, &o, &s2) == AG_OK, "encode");
        AG_CHECK(s1.underflow == 2 && s2.underflow == 2,
                 "kernel %s: underflow %llu/%llu, want 2", ag_kernel_name(k),
                 (unsigned long long)s1.underflow, (unsigned long long)s2.underflow);
        AG_CHECK(yq[0] == 0.0f && !signbit(yq[0]) && yq[1] == 0.0f && signbit(yq[1]),
                 "kernel %s: signed zeros", ag_kernel_name(k));
    }
    return ag_test_summary("test_smoke");
}
