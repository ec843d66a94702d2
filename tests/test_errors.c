/* SPDX-License-Identifier: MIT */
/*
 * test_errors.c — every error path of the core's public functions: NULL
 * pointers (and NULL accepted with n == 0), bad scales, NULL / hand-filled
 * / tampered formats, bad option values, partial overlap, storage too
 * narrow, codes out of range, malformed format specs (with a message that
 * names the bad part), and the status strings. Every failing call must
 * leave its outputs untouched. Then the one precedence of the statuses:
 * each entry point family with every combination of its faults at once.
 */
#include "ag_test.h"

#include <altgrad.h>
#include <ctype.h>
#include <float.h>
#include <math.h>

#define N 64

/* case-insensitive substring */
static int has(const char *hay, const char *needle)
{
    const size_t n = strlen(needle);
    for (const char *p = hay; *p; p++) {
        size_t i = 0;
        while (i < n && p[i] && tolower((unsigned char)p[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return 1;
    }
    return n == 0;
}

static float buf_y[N], buf_x[N], buf_dy[N];

static void fill_pattern(float *p, size_t n, float v)
{
    for (size_t i = 0; i < n; i++)
        p[i] = v;
}

static int all_eq(const float *p, size_t n, float v)
{
    for (size_t i = 0; i < n; i++)
        if (ag_test_bits(p[i]) != ag_test_bits(v))
            return 0;
    return 1;
}

static int stats_untouched(const ag_stats *s)
{
    return s->total == 11 && s->overflow == 22 && s->underflow == 33 && s->nan == 44;
}

static void test_status_strings(void)
{
    for (int st = 0; st <= 11; st++) {
        const char *s = ag_status_string((ag_status)st);
        AG_CHECK(s != NULL && s[0] != '\0', "status %d has no text", st);
        for (int t = 0; t < st && s; t++) {
            const char *u = ag_status_string((ag_status)t);
            AG_CHECK(u && strcmp(s, u) != 0, "status %d and %d share a text", st, t);
        }
    }
    const int unknown[] = {12, 13, 100, -1, 1 << 30};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = ag_status_string((ag_status)unknown[i]);
        AG_CHECK(s != NULL && s[0] != '\0', "unknown status %d gives NULL/empty", unknown[i]);
    }
    AG_CHECK(ag_version() != NULL && strlen(ag_version()) >= 5, "version");
    AG_CHECK(strcmp(ag_specials_name((ag_specials)7), "?") == 0, "specials name of 7");
    AG_CHECK(strcmp(ag_specials_name(AG_SPECIALS_FNUZ), "fnuz") == 0, "specials name fnuz");
    AG_CHECK(strcmp(ag_kernel_name(99), "?") == 0 && ag_kernel_available(99) == 0 &&
                 ag_kernel_available(-1) == 0,
             "unknown kernel");
}

static void test_registry(void)
{
    AG_CHECK(ag_format_get(NULL) == NULL, "get(NULL)");
    AG_CHECK(ag_format_get("") == NULL, "get(\"\")");
    AG_CHECK(ag_format_get("E4M3x") == NULL && ag_format_get("e4m3:bias=2") == NULL,
             "get of a non-name");
    AG_CHECK(ag_format_get("e4m3") == ag_format_get("E4M3") && ag_format_get("E4M3") != NULL,
             "case-insensitive");
    AG_CHECK(ag_format_at(ag_format_count()) == NULL && ag_format_at((size_t)-1) == NULL, "at beyond");
    AG_CHECK(ag_format_check(NULL) == AG_ERR_NULL, "check NULL");
    for (size_t i = 0; i < ag_format_count(); i++)
        AG_CHECK(ag_format_check(ag_format_at(i)) == AG_OK, "registry entry %zu invalid", i);
}

/* a hand-filled format and a tampered copy are rejected everywhere */
static void test_bad_formats(void)
{
    ag_format hand;
    memset(&hand, 0, sizeof hand);
    hand.ebits = 4;
    hand.mbits = 3;
    hand.bias = 7;
    hand.is_signed = 1;
    hand.specials = AG_SPECIALS_FN;
    hand.bits = 8;
    hand.ncodes = 256;
    hand.max_code = 0x7e;
    hand.max_finite = 448.0f;
    ag_format tampered = *ag_format_get("E4M3");
    AG_CHECK(ag_format_check(&tampered) == AG_OK, "a plain copy stays valid");
    tampered.bias = 3;
    ag_format tampered2 = *ag_format_get("E4M3");
    tampered2.max_finite = 1e9f;
    const ag_format *bad[] = {&hand, &tampered, &tampered2};
    for (size_t k = 0; k < 3; k++) {
        const ag_format *f = bad[k];
        AG_CHECK(ag_format_check(f) == AG_ERR_FORMAT, "bad format %zu passes check", k);
        AG_CHECK(ag_to_bits(f, 1.0f) == 0 && ag_to_bits_opts(f, 1.0f, NULL) == 0, "to_bits of bad %zu", k);
        AG_CHECK(isnan(ag_to_real(f, 0)), "to_real of bad %zu", k);
        fill_pattern(buf_y, N, 7.0f);
        fill_pattern(buf_x, N, 1.0f);
        ag_stats s = {11, 22, 33, 44};
        AG_CHECK(ag_quantize(buf_y, buf_x, N, f, 1.0f, NULL, &s) == AG_ERR_FORMAT, "quantize bad %zu", k);
        AG_CHECK(all_eq(buf_y, N, 7.0f) && stats_untouched(&s), "quantize bad %zu touched output", k);
        AG_CHECK(ag_quantize_backward(buf_y, buf_x, buf_x, N, f, 1.0f, NULL) == AG_ERR_FORMAT,
                 "backward bad %zu", k);
        AG_CHECK(all_eq(buf_y, N, 7.0f), "backward touched");
        uint8_t c8[N];
        uint16_t c16[N];
        memset(c8, 0x5a, sizeof c8);
        memset(c16, 0x5a, sizeof c16);
        AG_CHECK(ag_encode_u8(c8, buf_x, N, f, 1.0f, NULL, &s) == AG_ERR_FORMAT, "encode_u8 bad");
        AG_CHECK(ag_encode_u16(c16, buf_x, N, f, 1.0f, NULL, &s) == AG_ERR_FORMAT, "encode_u16 bad");
        AG_CHECK(c8[0] == 0x5a && c8[N - 1] == 0x5a && c16[0] == 0x5a5a && stats_untouched(&s),
                 "encode touched");
        memset(c8, 0, sizeof c8);
        memset(c16, 0, sizeof c16);
        AG_CHECK(ag_decode_u8(buf_y, c8, N, f, 1.0f) == AG_ERR_FORMAT, "decode_u8 bad");
        AG_CHECK(ag_decode_u16(buf_y, c16, N, f, 1.0f) == AG_ERR_FORMAT, "decode_u16 bad");
        AG_CHECK(all_eq(buf_y, N, 7.0f), "decode touched");
    }
    /* NULL format */
    fill_pattern(buf_y, N, 7.0f);
    AG_CHECK(ag_quantize(buf_y, buf_x, N, NULL, 1.0f, NULL, NULL) == AG_ERR_NULL, "quantize fmt NULL");
    AG_CHECK(ag_quantize_backward(buf_y, buf_x, buf_x, N, NULL, 1.0f, NULL) == AG_ERR_NULL,
             "backward fmt NULL");
    uint8_t c8[N] = {0};
    uint16_t c16[N] = {0};
    AG_CHECK(ag_encode_u8(c8, buf_x, N, NULL, 1.0f, NULL, NULL) == AG_ERR_NULL, "encode fmt NULL");
    AG_CHECK(ag_decode_u16(buf_y, c16, N, NULL, 1.0f) == AG_ERR_NULL, "decode fmt NULL");
    AG_CHECK(all_eq(buf_y, N, 7.0f), "outputs touched with fmt NULL");
    AG_CHECK(ag_to_bits(NULL, 1.0f) == 0 && ag_to_bits_opts(NULL, 1.0f, NULL) == 0, "to_bits NULL");
    AG_CHECK(isnan(ag_to_real(NULL, 0)), "to_real NULL");
}

static void test_nulls_and_scales(void)
{
    const ag_format *f = ag_format_get("E5M2");
    ag_stats s = {11, 22, 33, 44};
    fill_pattern(buf_x, N, 3.0f);
    fill_pattern(buf_dy, N, 1.0f);
    /* NULL with n > 0 */
    AG_CHECK(ag_quantize(NULL, buf_x, N, f, 1.0f, NULL, &s) == AG_ERR_NULL, "quantize y NULL");
    fill_pattern(buf_y, N, 7.0f);
    AG_CHECK(ag_quantize(buf_y, NULL, N, f, 1.0f, NULL, &s) == AG_ERR_NULL, "quantize x NULL");
    AG_CHECK(all_eq(buf_y, N, 7.0f) && stats_untouched(&s), "quantize x NULL touched");
    AG_CHECK(ag_quantize_backward(NULL, buf_dy, buf_x, N, f, 1.0f, NULL) == AG_ERR_NULL, "bw dx NULL");
    AG_CHECK(ag_quantize_backward(buf_y, NULL, buf_x, N, f, 1.0f, NULL) == AG_ERR_NULL, "bw dy NULL");
    ag_qopts clip = ag_qopts_default();
    clip.ste = AG_STE_CLIPPED;
    AG_CHECK(ag_quantize_backward(buf_y, buf_dy, NULL, N, f, 1.0f, &clip) == AG_ERR_NULL,
             "clipped backward needs x");
    AG_CHECK(all_eq(buf_y, N, 7.0f), "backward touched on error");
    AG_CHECK(ag_dequantize(NULL, buf_x, N, 1.0f) == AG_ERR_NULL, "deq y NULL");
    AG_CHECK(ag_dequantize(buf_y, NULL, N, 1.0f) == AG_ERR_NULL, "deq x NULL");
    AG_CHECK(ag_dequantize_backward(NULL, buf_dy, N, 1.0f) == AG_ERR_NULL, "deq bw dx NULL");
    AG_CHECK(ag_dequantize_backward(buf_y, NULL, N, 1.0f) == AG_ERR_NULL, "deq bw dy NULL");
    AG_CHECK(ag_encode_u8(NULL, buf_x, N, f, 1.0f, NULL, &s) == AG_ERR_NULL, "encode codes NULL");
    AG_CHECK(ag_encode_u16(NULL, buf_x, N, f, 1.0f, NULL, &s) == AG_ERR_NULL, "encode16 codes NULL");
    uint8_t c8[N] = {0};
    uint16_t c16[N] = {0};
    AG_CHECK(ag_encode_u8(c8, NULL, N, f, 1.0f, NULL, &s) == AG_ERR_NULL, "encode x NULL");
    AG_CHECK(ag_decode_u8(NULL, c8, N, f, 1.0f) == AG_ERR_NULL, "decode y NULL");
    AG_CHECK(ag_decode_u8(buf_y, NULL, N, f, 1.0f) == AG_ERR_NULL, "decode codes NULL");
    AG_CHECK(ag_decode_u16(buf_y, NULL, N, f, 1.0f) == AG_ERR_NULL, "decode16 codes NULL");
    AG_CHECK(all_eq(buf_y, N, 7.0f) && stats_untouched(&s), "outputs touched on NULL errors");
    /* NULL is fine with n == 0, and nothing is counted */
    ag_stats z = {0};
    AG_CHECK(ag_quantize(NULL, NULL, 0, f, 1.0f, NULL, &z) == AG_OK && z.total == 0, "quantize n=0");
    AG_CHECK(ag_quantize_backward(NULL, NULL, NULL, 0, f, 1.0f, &clip) == AG_OK, "backward n=0");
    AG_CHECK(ag_dequantize(NULL, NULL, 0, 1.0f) == AG_OK, "dequantize n=0");
    AG_CHECK(ag_dequantize_backward(NULL, NULL, 0, 1.0f) == AG_OK, "dequantize_backward n=0");
    AG_CHECK(ag_encode_u8(NULL, NULL, 0, f, 1.0f, NULL, NULL) == AG_OK, "encode_u8 n=0");
    AG_CHECK(ag_encode_u16(NULL, NULL, 0, f, 1.0f, NULL, NULL) == AG_OK, "encode_u16 n=0");
    AG_CHECK(ag_decode_u8(NULL, NULL, 0, f, 1.0f) == AG_OK, "decode_u8 n=0");
    AG_CHECK(ag_decode_u16(NULL, NULL, 0, f, 1.0f) == AG_OK, "decode_u16 n=0");

    /* scales: zero, negative, NaN, +-inf, -0, negative tiny */
    const float bad[] = {0.0f, -0.0f, -1.0f, NAN, -NAN, INFINITY, -INFINITY, -0x1p-149f, -FLT_MAX};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        const float sc = bad[k];
        fill_pattern(buf_y, N, 7.0f);
        memset(c8, 0x5a, sizeof c8);
        memset(c16, 0x5a, sizeof c16);
        ag_stats t = {11, 22, 33, 44};
        AG_CHECK(ag_quantize(buf_y, buf_x, N, f, sc, NULL, &t) == AG_ERR_SCALE, "quantize scale %a", (double)sc);
        AG_CHECK(ag_quantize_backward(buf_y, buf_dy, buf_x, N, f, sc, NULL) == AG_ERR_SCALE,
                 "backward scale %a", (double)sc);
        AG_CHECK(ag_quantize_backward(buf_y, buf_dy, buf_x, N, f, sc, &clip) == AG_ERR_SCALE,
                 "clipped backward scale %a", (double)sc);
        AG_CHECK(ag_dequantize(buf_y, buf_x, N, sc) == AG_ERR_SCALE, "dequantize scale %a", (double)sc);
        AG_CHECK(ag_dequantize_backward(buf_y, buf_dy, N, sc) == AG_ERR_SCALE, "deq bw scale %a", (double)sc);
        AG_CHECK(ag_encode_u8(c8, buf_x, N, f, sc, NULL, &t) == AG_ERR_SCALE, "encode scale %a", (double)sc);
        AG_CHECK(ag_encode_u16(c16, buf_x, N, f, sc, NULL, &t) == AG_ERR_SCALE, "encode16 scale %a", (double)sc);
        memset(c8, 0, sizeof c8);
        memset(c16, 0, sizeof c16);
        AG_CHECK(ag_decode_u8(buf_y, c8, N, f, sc) == AG_ERR_SCALE, "decode scale %a", (double)sc);
        AG_CHECK(ag_decode_u16(buf_y, c16, N, f, sc) == AG_ERR_SCALE, "decode16 scale %a", (double)sc);
        AG_CHECK(all_eq(buf_y, N, 7.0f) && stats_untouched(&t), "outputs touched, scale %a", (double)sc);
    }
    /* the extremes of a valid scale are accepted */
    AG_CHECK(ag_quantize(buf_y, buf_x, N, f, 0x1p-149f, NULL, NULL) == AG_OK, "tiny scale");
    AG_CHECK(ag_quantize(buf_y, buf_x, N, f, FLT_MAX, NULL, NULL) == AG_OK, "huge scale");
}

static void test_options(void)
{
    const ag_format *f = ag_format_get("E4M3");
    fill_pattern(buf_x, N, 3.0f);
    struct {
        const char *what;
        ag_qopts o;
    } bad[8];
    size_t nb = 0;
    for (int k = 0; k < 8; k++)
        bad[k].o = ag_qopts_default();
    bad[nb].what = "rounding 6";
    bad[nb++].o.rounding = (ag_rounding)6;
    bad[nb].what = "rounding -1";
    bad[nb++].o.rounding = (ag_rounding)-1;
    bad[nb].what = "overflow 2";
    bad[nb++].o.overflow = (ag_overflow)2;
    bad[nb].what = "ste 2";
    bad[nb++].o.ste = (ag_ste)2;
    bad[nb].what = "threads -1";
    bad[nb++].o.threads = -1;
    bad[nb].what = "kernel 99";
    bad[nb++].o.kernel = 99;
    bad[nb].what = "kernel -1";
    bad[nb++].o.kernel = -1;
    for (size_t k = 0; k < nb; k++) {
        fill_pattern(buf_y, N, 7.0f);
        ag_stats s = {11, 22, 33, 44};
        uint8_t c8[N];
        uint16_t c16[N];
        memset(c8, 0x5a, sizeof c8);
        memset(c16, 0x5a, sizeof c16);
        AG_CHECK(ag_quantize(buf_y, buf_x, N, f, 1.0f, &bad[k].o, &s) == AG_ERR_ARG, "quantize %s", bad[k].what);
        AG_CHECK(ag_quantize_backward(buf_y, buf_x, buf_x, N, f, 1.0f, &bad[k].o) == AG_ERR_ARG,
                 "backward %s", bad[k].what);
        AG_CHECK(ag_encode_u8(c8, buf_x, N, f, 1.0f, &bad[k].o, &s) == AG_ERR_ARG, "encode_u8 %s", bad[k].what);
        AG_CHECK(ag_encode_u16(c16, buf_x, N, f, 1.0f, &bad[k].o, &s) == AG_ERR_ARG, "encode_u16 %s",
                 bad[k].what);
        AG_CHECK(all_eq(buf_y, N, 7.0f) && stats_untouched(&s) && c8[0] == 0x5a && c16[0] == 0x5a5a,
                 "outputs touched, %s", bad[k].what);
        /* the scalar call must not crash on them either */
        (void)ag_to_bits_opts(f, 3.0f, &bad[k].o);
    }
    /* a kernel this machine lacks is AG_ERR_ARG, one it has is fine */
    for (int kern = AG_KERNEL_AUTO; kern <= AG_KERNEL_AVX512; kern++) {
        ag_qopts o = ag_qopts_default();
        o.kernel = kern;
        const ag_status st = ag_quantize(buf_y, buf_x, N, f, 1.0f, &o, NULL);
        AG_CHECK(st == (ag_kernel_available(kern) ? AG_OK : AG_ERR_ARG), "kernel %s: %d",
                 ag_kernel_name(kern), (int)st);
    }
}

static void test_alias(void)
{
    const ag_format *f = ag_format_get("E5M2");
    static float a[3 * N];
    for (size_t i = 0; i < 3 * N; i++)
        a[i] = (float)i * 0.37f;
    static float snap[3 * N];
    memcpy(snap, a, sizeof a);
    ag_qopts clip = ag_qopts_default();
    clip.ste = AG_STE_CLIPPED;
    /* partial overlaps, both directions */
    const ptrdiff_t shifts[] = {1, -1, N / 2, -(ptrdiff_t)N / 2, N - 1};
    for (size_t k = 0; k < sizeof shifts / sizeof shifts[0]; k++) {
        float *x = a + N, *y = a + N + shifts[k];
        ag_stats s = {11, 22, 33, 44};
        AG_CHECK(ag_quantize(y, x, N, f, 1.0f, NULL, &s) == AG_ERR_ALIAS, "quantize shift %td", shifts[k]);
        AG_CHECK(ag_quantize_backward(y, x, a, N, f, 1.0f, NULL) == AG_ERR_ALIAS, "backward shift %td",
                 shifts[k]);
        AG_CHECK(ag_dequantize(y, x, N, 2.0f) == AG_ERR_ALIAS, "dequantize shift %td", shifts[k]);
        AG_CHECK(ag_dequantize_backward(y, x, N, 2.0f) == AG_ERR_ALIAS, "deq bw shift %td", shifts[k]);
        AG_CHECK(memcmp(a, snap, sizeof a) == 0 && stats_untouched(&s), "aliasing call wrote (shift %td)",
                 shifts[k]);
    }
    /* clipped backward: dx overlapping the forward input x */
    AG_CHECK(ag_quantize_backward(a + N + 1, a, a + N, N, f, 1.0f, &clip) == AG_ERR_ALIAS,
             "backward dx overlaps x");
    AG_CHECK(memcmp(a, snap, sizeof a) == 0, "backward wrote on alias");
    /* codes overlapping x or y partially */
    uint8_t *bytes = (uint8_t *)(void *)(a + N);
    AG_CHECK(ag_encode_u8(bytes + 1, a + N, N, f, 1.0f, NULL, NULL) == AG_ERR_ALIAS, "encode_u8 overlap");
    AG_CHECK(memcmp(a, snap, sizeof a) == 0, "encode wrote on alias");
    static uint8_t codes[4 * N];
    memset(codes, 0, sizeof codes);
    AG_CHECK(ag_decode_u8((float *)(void *)(codes + 4), codes + 8, N, f, 1.0f) == AG_ERR_ALIAS,
             "decode_u8 overlap");
    for (size_t i = 0; i < sizeof codes; i++)
        AG_CHECK(codes[i] == 0, "decode wrote on alias at %zu", i);
    /* exactly in place is fine */
    memcpy(a, snap, sizeof a);
    AG_CHECK(ag_quantize(a, a, 3 * N, f, 1.0f, NULL, NULL) == AG_OK, "in place quantize");
    AG_CHECK(ag_dequantize(a, a, 3 * N, 1.0f) == AG_OK, "in place dequantize");
    AG_CHECK(ag_quantize_backward(a, a, NULL, 3 * N, f, 1.0f, NULL) == AG_OK, "dx == dy");
    AG_CHECK(ag_dequantize_backward(a, a, 3 * N, 1.0f) == AG_OK, "dequantize backward dx == dy");
}

static void test_storage_and_codes(void)
{
    const ag_format *f16 = ag_format_get("BF16");
    float x[4] = {1, 2, 3, 4};
    uint8_t c8[4] = {9, 9, 9, 9};
    AG_CHECK(ag_encode_u8(c8, x, 4, f16, 1.0f, NULL, NULL) == AG_ERR_STORAGE, "encode_u8 of a 16-bit format");
    AG_CHECK(c8[0] == 9 && c8[3] == 9, "encode_u8 wrote");
    float y[4] = {7, 7, 7, 7};
    AG_CHECK(ag_decode_u8(y, c8, 4, f16, 1.0f) == AG_ERR_STORAGE, "decode_u8 of a 16-bit format");
    AG_CHECK(all_eq(y, 4, 7.0f), "decode_u8 wrote");
    /* codes out of range: 6-bit format and 0xFF; 8-bit format in u16 and 0x100 */
    const ag_format *f6 = ag_format_get("float6_e2m3fn");
    uint8_t c6[5] = {0, 1, 0x3f, 0xFF, 2};
    float y5[5] = {7, 7, 7, 7, 7};
    AG_CHECK(ag_decode_u8(y5, c6, 5, f6, 1.0f) == AG_ERR_CODE, "decode 6-bit code 0xFF");
    AG_CHECK(all_eq(y5, 5, 7.0f), "decode_u8 wrote before finding the bad code");
    c6[3] = 0x40;
    AG_CHECK(ag_decode_u8(y5, c6, 5, f6, 1.0f) == AG_ERR_CODE, "decode 6-bit code 0x40");
    c6[3] = 0x3f;
    AG_CHECK(ag_decode_u8(y5, c6, 5, f6, 1.0f) == AG_OK, "decode 6-bit all in range");
    const ag_format *f8 = ag_format_get("E4M3");
    uint16_t c16[3] = {0x7e, 0x100, 1};
    float y3[3] = {7, 7, 7};
    AG_CHECK(ag_decode_u16(y3, c16, 3, f8, 1.0f) == AG_ERR_CODE, "decode_u16 code 0x100 for 8 bits");
    AG_CHECK(all_eq(y3, 3, 7.0f), "decode_u16 wrote");
    c16[1] = 0xFFFF;
    AG_CHECK(ag_decode_u16(y3, c16, 3, f8, 1.0f) == AG_ERR_CODE, "decode_u16 code 0xFFFF for 8 bits");
    /* a 4-bit format: every code above 15 */
    const ag_format *f4 = ag_format_get("float4_e2m1fn");
    for (unsigned c = 16; c < 256; c += 17) {
        uint8_t cc = (uint8_t)c;
        float yy = 7.0f;
        AG_CHECK(ag_decode_u8(&yy, &cc, 1, f4, 1.0f) == AG_ERR_CODE && yy == 7.0f, "fp4 code %#x", c);
    }
    /* to_real of a code out of range is NaN */
    AG_CHECK(isnan(ag_to_real(f6, 0x40)) && isnan(ag_to_real(f8, 256)), "to_real out of range");
}

static void test_format_init_errors(void)
{
    ag_format f;
    AG_CHECK(ag_format_init(NULL, NULL, 4, 3, 7, 1, AG_SPECIALS_NONE, 0) == AG_ERR_NULL, "init out NULL");
    static const struct {
        int e, m, bias, sg, sp, nz;
        ag_status want;
    } t[] = {
        {9, 3, 7, 1, 0, 0, AG_ERR_RANGE},   {4, 24, 7, 1, 0, 0, AG_ERR_RANGE},
        {-1, 3, 7, 1, 0, 0, AG_ERR_RANGE},  {4, -1, 7, 1, 0, 0, AG_ERR_RANGE},
        {8, 8, 127, 1, 0, 0, AG_ERR_RANGE}, {0, 0, 0, 1, 0, 0, AG_ERR_RANGE},
        {4, 3, 7, 0, 3, 0, AG_ERR_SPEC},    {0, 7, 0, 1, 1, 0, AG_ERR_SPEC},
        {0, 7, 0, 1, 0, 1, AG_ERR_SPEC},    {4, 3, 7, 1, 4, 0, AG_ERR_SPEC},
        {4, 3, 7, 1, -1, 0, AG_ERR_SPEC},   {1, 0, 0, 1, 1, 0, AG_ERR_SPEC},
        {8, 7, 0, 1, 0, 0, AG_ERR_RANGE},   {5, 2, 200, 1, 0, 0, AG_ERR_RANGE},
        {4, 3, 1001, 1, 0, 0, AG_ERR_RANGE}, {4, 3, -1001, 1, 0, 0, AG_ERR_RANGE},
        {4, 3, 2147483647, 1, 0, 0, AG_ERR_RANGE}, {4, 3, -2147483647 - 1, 1, 0, 0, AG_ERR_RANGE},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        memset(&f, 0x77, sizeof f);
        const ag_status st = ag_format_init(&f, "x", t[i].e, t[i].m, t[i].bias, t[i].sg,
                                            (ag_specials)t[i].sp, t[i].nz);
        AG_CHECK(st == t[i].want, "init E%d M%d bias %d signed %d specials %d no_zero %d: %d, want %d",
                 t[i].e, t[i].m, t[i].bias, t[i].sg, t[i].sp, t[i].nz, (int)st, (int)t[i].want);
        unsigned char pat[sizeof f];
        memset(pat, 0x77, sizeof pat);
        AG_CHECK(memcmp(&f, pat, sizeof f) == 0, "init %zu touched *out on error", i);
    }
    /* a long name is truncated, NUL-terminated */
    char longname[200];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    AG_CHECK(ag_format_init(&f, longname, 4, 3, 7, 1, AG_SPECIALS_NONE, 0) == AG_OK &&
                 strlen(f.name) < sizeof f.name,
             "long name");
}

static void test_parse_errors(void)
{
    static const struct {
        const char *spec;
        ag_status want;
        const char *part; /* the message must name this */
    } t[] = {
        {"", AG_ERR_SPEC, "empty"},
        {"e9m6", AG_ERR_RANGE, "e9m6"},
        {"e0m24", AG_ERR_RANGE, "e0m24"},
        {"e5m20", AG_ERR_RANGE, "e5m20"},
        {"e8m7:bias=0:specials=none", AG_ERR_RANGE, "bias"},
        {"unknownfmt", AG_ERR_SPEC, "unknownfmt"},
        {"e4m3:bias=abc", AG_ERR_SPEC, "abc"},
        {"e4m3:bias=", AG_ERR_SPEC, "bias"},
        {"e4m3:bias=99999999999999999999", AG_ERR_SPEC, "99999999999999999999"},
        {"e4m3:bias=5x", AG_ERR_SPEC, "5x"},
        {"e4m3:specials=foo", AG_ERR_SPEC, "foo"},
        {"e4m3:signed=maybe", AG_ERR_SPEC, "maybe"},
        {"e4m3:zero=perhaps", AG_ERR_SPEC, "perhaps"},
        {"e4m3:bias=1:bias=2", AG_ERR_SPEC, "bias"},
        {"e4m3:specials=fn:specials=fn", AG_ERR_SPEC, "specials"},
        {"e4m3:", AG_ERR_SPEC, ":"},
        {"e4m3::bias=1", AG_ERR_SPEC, ":"},
        {":e4m3", AG_ERR_SPEC, ""},
        {"e4m3:bias", AG_ERR_SPEC, "bias"},
        {"e4m3:color=red", AG_ERR_SPEC, "color"},
        {"e4m3:specials=fnuz:signed=no", AG_ERR_SPEC, "fnuz"},
        {"e4m3:specials=fnuz:zero=no", AG_ERR_SPEC, "fnuz"},
        {"e0m7:specials=ieee", AG_ERR_SPEC, "ieee"},
        {"e0m7:zero=no", AG_ERR_SPEC, "zero=no"},
        {"e4m", AG_ERR_SPEC, "e4m"},
        {"em3", AG_ERR_SPEC, "em3"},
        {"e4m3x", AG_ERR_SPEC, "e4m3x"},
        {"e-1m3", AG_ERR_SPEC, "e-1m3"},
        {"e4m3 :bias=1", AG_ERR_SPEC, "e4m3 "},
        {"float8_e4m3fnx", AG_ERR_SPEC, "float8_e4m3fnx"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        ag_format f;
        memset(&f, 0x77, sizeof f);
        char err[256];
        memset(err, 'Z', sizeof err);
        const ag_status st = ag_format_parse(&f, t[i].spec, err, sizeof err);
        AG_CHECK(st == t[i].want, "parse '%s': %d (%s), want %d", t[i].spec, (int)st,
                 st ? err : "ok", (int)t[i].want);
        if (st == AG_OK)
            continue;
        AG_CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0', "parse '%s': no message",
                 t[i].spec);
        AG_CHECK(has(err, t[i].part), "parse '%s': message '%s' does not name '%s'", t[i].spec, err,
                 t[i].part);
        unsigned char pat[sizeof f];
        memset(pat, 0x77, sizeof pat);
        AG_CHECK(memcmp(&f, pat, sizeof f) == 0, "parse '%s' touched *out", t[i].spec);
        /* err NULL, errlen 0, errlen 1 and a short buffer */
        AG_CHECK(ag_format_parse(&f, t[i].spec, NULL, 100) == st, "parse '%s' err NULL", t[i].spec);
        char one = 'Z';
        AG_CHECK(ag_format_parse(&f, t[i].spec, &one, 0) == st && one == 'Z', "errlen 0 wrote");
        AG_CHECK(ag_format_parse(&f, t[i].spec, &one, 1) == st && one == '\0', "errlen 1");
        char small[8];
        memset(small, 'Z', sizeof small);
        AG_CHECK(ag_format_parse(&f, t[i].spec, small, 6) == st && memchr(small, '\0', 6) != NULL &&
                     small[6] == 'Z',
                 "errlen 6: not terminated within, or wrote beyond");
    }
    ag_format f;
    char err[64];
    AG_CHECK(ag_format_parse(&f, NULL, err, sizeof err) == AG_ERR_NULL, "parse NULL spec");
    AG_CHECK(ag_format_parse(NULL, "e4m3", err, sizeof err) == AG_ERR_NULL, "parse NULL out");
    /* valid ones: case-insensitive keys and values */
    AG_CHECK(ag_format_parse(&f, "E4M3:BIAS=9:SPECIALS=NONE", err, sizeof err) == AG_OK && f.bias == 9 &&
                 f.specials == AG_SPECIALS_NONE,
             "upper-case spec");
    AG_CHECK(ag_format_parse(&f, "float8_e4m3fn", err, sizeof err) == AG_OK &&
                 f.bias == ag_format_get("float8_e4m3fn")->bias,
             "registry name as a spec");
}


/* ------------------------------------------------------------------------ */
/* Precedence: several faults at once                                       */
/* ------------------------------------------------------------------------ */
/* One precedence for every entry point (altgrad.h, "Conventions"): NULL >
 * FORMAT > STORAGE > SCALE > ARG > SHAPE > ALIAS, then the contents of
 * arrays (codes, per-row scales). Each entry point below is called with
 * every subset of the faults it can have; the status must be the first
 * fault of the subset in that order. */
enum { P_NULL, P_FORMAT, P_STORAGE, P_SCALE, P_ARG, P_SHAPE, P_ALIAS, P_DATA, P_N };
#define PF(k) (1u << (k))
static const char *const fault_name[P_N] = {"NULL", "FORMAT", "STORAGE", "SCALE",
                                            "ARG",  "SHAPE",  "ALIAS",   "DATA"};
static const ag_status fault_status[P_DATA] = {AG_ERR_NULL,  AG_ERR_FORMAT, AG_ERR_STORAGE,
                                               AG_ERR_SCALE, AG_ERR_ARG,    AG_ERR_SHAPE,
                                               AG_ERR_ALIAS};

static float pa[4 * N + 8], pb[4 * N + 8], pscales[N];
static uint8_t pc[4 * N + 8];
static ag_format p_bad;
#define HUGE_N (SIZE_MAX / 2)

static const ag_format *p_fmt(unsigned m, const char *ok)
{
    if (m & PF(P_FORMAT))
        return &p_bad;
    return ag_format_get(m & PF(P_STORAGE) ? "BF16" : ok);
}

static size_t p_n(unsigned m)
{
    return m & PF(P_SHAPE) ? HUGE_N : N;
}

static ag_qopts p_opts(unsigned m, ag_ste ste)
{
    ag_qopts o = ag_qopts_default();
    o.ste = ste;
    if (m & PF(P_ARG))
        o.rounding = (ag_rounding)99;
    return o;
}

/* y: NULL (P_NULL), or overlapping x = pa partially (P_ALIAS), else pb */
static float *p_out(unsigned m)
{
    return m & PF(P_NULL) ? NULL : m & PF(P_ALIAS) ? pa + 1 : pb;
}

static ag_status pc_quantize(unsigned m)
{
    const ag_qopts o = p_opts(m, AG_STE_IDENTITY);
    return ag_quantize(p_out(m), pa, p_n(m), p_fmt(m, "E4M3"),
                       m & PF(P_SCALE) ? 0.0f : 1.0f, &o, NULL);
}

static ag_status pc_encode(unsigned m)
{
    const ag_qopts o = p_opts(m, AG_STE_IDENTITY);
    uint8_t *codes = m & PF(P_NULL) ? NULL : m & PF(P_ALIAS) ? (uint8_t *)(void *)pa + 3 : pc;
    return ag_encode_u8(codes, pa, p_n(m), p_fmt(m, "E4M3"), m & PF(P_SCALE) ? -1.0f : 1.0f, &o,
                        NULL);
}

static ag_status pc_decode(unsigned m)
{
    /* a 6-bit format: code 0xFF is out of range (DATA) */
    memset(pc, 0, sizeof pc); /* codes in range (ag_encode_u8 above wrote others) */
    pc[0] = m & PF(P_DATA) ? 0xFF : 0;
    float *y = m & PF(P_NULL) ? NULL : m & PF(P_ALIAS) ? (float *)(void *)pc : pb;
    return ag_decode_u8(y, pc, p_n(m), p_fmt(m, "float6_e2m3fn"),
                        m & PF(P_SCALE) ? NAN : 1.0f);
}

static ag_status pc_backward(unsigned m)
{
    const ag_qopts o = p_opts(m, AG_STE_CLIPPED);
    /* NULL: the forward input the clipped STE needs */
    return ag_quantize_backward(m & PF(P_ALIAS) ? pa + 1 : pb, pa, m & PF(P_NULL) ? NULL : pa,
                                p_n(m), p_fmt(m, "E5M2"), m & PF(P_SCALE) ? INFINITY : 1.0f, &o);
}

static ag_status pc_dequantize(unsigned m)
{
    return ag_dequantize(p_out(m), pa, p_n(m), m & PF(P_SCALE) ? 0.0f : 2.0f);
}

static ag_status pc_rows(unsigned m)
{
    const ag_qopts o = p_opts(m, AG_STE_IDENTITY);
    for (size_t r = 0; r < N; r++)
        pscales[r] = 1.0f;
    pscales[0] = m & PF(P_DATA) ? 0.0f : 1.0f; /* a bad per-row scale (DATA) */
    return ag_quantize_rows(p_out(m), pa, m & PF(P_SHAPE) ? HUGE_N : 2, N / 2, pscales,
                            p_fmt(m, "E3M4"), &o, NULL);
}

static ag_status pc_mx(unsigned m)
{
    const ag_qopts o = ag_qopts_default();
    return ag_mx_quantize(p_out(m), pa, m & PF(P_SHAPE) ? HUGE_N : 2, N / 2,
                          m & PF(P_ARG) ? 0 : 8, p_fmt(m, "float8_e4m3fn"), &o, NULL);
}

static ag_status pc_mx_decode(unsigned m)
{
    static uint8_t sc[N];
    memset(sc, 127, sizeof sc);
    memset(pc, 0, sizeof pc); /* codes in range (ag_encode_u8 above wrote others) */
    pc[0] = m & PF(P_DATA) ? 0xFF : 0;
    float *y = m & PF(P_NULL) ? NULL : m & PF(P_ALIAS) ? (float *)(void *)pc : pb;
    return ag_mx_decode(y, pc, sc, m & PF(P_SHAPE) ? HUGE_N : 2, N / 2, m & PF(P_ARG) ? 0 : 8,
                        p_fmt(m, "float6_e2m3fn"));
}

static ag_status pc_bit_stall(unsigned m)
{
    uint64_t st, co;
    const ag_qopts o = p_opts(m, AG_STE_IDENTITY);
    return ag_bit_stall(m & PF(P_NULL) ? NULL : &st, &co, pa, pb, N, 0.1f, p_fmt(m, "E5M2"),
                        m & PF(P_SCALE) ? -2.0f : 1.0f, &o);
}

static ag_status pc_ulp(unsigned m)
{
    static int32_t d[N];
    const ag_qopts o = p_opts(m, AG_STE_IDENTITY);
    /* ALIAS: d is a itself (not allowed even exactly) */
    int32_t *dd = m & PF(P_NULL) ? NULL : m & PF(P_ALIAS) ? (int32_t *)(void *)pa : d;
    return ag_ulp_distance(dd, pa, pb, p_n(m), p_fmt(m, "E4M3"), m & PF(P_SCALE) ? 0.0f : 1.0f,
                           &o);
}

static ag_status pc_hist(unsigned m)
{
    static uint64_t counts[64];
    const ag_qopts o = p_opts(m, AG_STE_IDENTITY);
    return ag_exp_hist(m & PF(P_NULL) ? NULL : counts, m & PF(P_SHAPE) ? 3 : 64, pa, N,
                       p_fmt(m, "E4M3"), m & PF(P_SCALE) ? 0.0f : 1.0f, &o);
}

static ag_status pc_flips_u8(unsigned m)
{
    static uint8_t a8[N], b8[N];
    uint64_t f;
    a8[0] = m & PF(P_DATA) ? 0xFF : 0;
    return ag_flips_u8(m & PF(P_NULL) ? NULL : &f, a8, b8, N, p_fmt(m, "float6_e2m3fn"));
}

static ag_status pc_stiffness(unsigned m)
{
    return ag_stiffness(p_out(m), pa, p_n(m), p_fmt(m, "E3M4"), m & PF(P_SCALE) ? 0.0f : 1.0f);
}

static ag_status pc_compute_scale(unsigned m)
{
    float sc;
    ag_scale_opts so = ag_scale_opts_default();
    if (m & PF(P_ARG))
        so.margin = -1.0f;
    return ag_compute_scale(m & PF(P_NULL) ? NULL : &sc, 1.0f, p_fmt(m, "E4M3"), &so);
}

static ag_status pc_scale_rows(unsigned m)
{
    ag_scale_opts so = ag_scale_opts_default();
    if (m & PF(P_ARG))
        so.pow2 = 7;
    for (size_t r = 0; r < N; r++)
        pscales[r] = 1.0f;
    return ag_compute_scale_rows(p_out(m), pa, m & PF(P_SHAPE) ? HUGE_N : N, p_fmt(m, "E4M3"),
                                 &so);
}

static ag_status pc_amax_rows(unsigned m)
{
    return ag_amax_rows(p_out(m), pa, m & PF(P_SHAPE) ? HUGE_N : 2, N / 2, NULL);
}

static ag_status pc_scaler_create(unsigned m)
{
    ag_scaler_opts so = ag_scaler_opts_default();
    if (m & PF(P_ARG))
        so.history_len = 0;
    ag_scaler *sc = NULL;
    const ag_format *f = m & PF(P_NULL) ? NULL : p_fmt(m, "E4M3");
    const ag_status st = ag_scaler_create(&sc, f, &so);
    ag_scaler_free(sc);
    return st;
}

static ag_status pc_scaler_backward(unsigned m)
{
    ag_scaler *sc = NULL;
    if (ag_scaler_create(&sc, ag_format_get("E4M3"), NULL) != AG_OK)
        return (ag_status)-1;
    if (!(m & PF(P_ARG))) /* ARG: backward before any step */
        ag_scaler_record(sc, 1.0f, N);
    const ag_status st = ag_scaler_backward(sc, m & PF(P_NULL) ? NULL : pb, pa, NULL, N);
    ag_scaler_free(sc);
    return st;
}

static void test_precedence(void)
{
    p_bad = *ag_format_get("E4M3");
    p_bad.bias = 3; /* check word wrong */
    for (size_t i = 0; i < 4 * N + 8; i++)
        pa[i] = (float)i * 0.25f;
    const unsigned NL = PF(P_NULL), FM = PF(P_FORMAT), SG = PF(P_STORAGE), SC = PF(P_SCALE),
                   AR = PF(P_ARG), SH = PF(P_SHAPE), AL = PF(P_ALIAS), DA = PF(P_DATA);
    static const struct {
        const char *name;
        ag_status (*call)(unsigned);
        unsigned faults;
        ag_status data;
    } ep[] = {
        {"ag_quantize", pc_quantize, NL | FM | SC | AR | SH | AL, AG_OK},
        {"ag_encode_u8", pc_encode, NL | FM | SG | SC | AR | SH | AL, AG_OK},
        {"ag_decode_u8", pc_decode, NL | FM | SG | SC | SH | AL | DA, AG_ERR_CODE},
        {"ag_quantize_backward", pc_backward, NL | FM | SC | AR | SH | AL, AG_OK},
        {"ag_dequantize", pc_dequantize, NL | SC | SH | AL, AG_OK},
        {"ag_quantize_rows", pc_rows, NL | FM | AR | SH | AL | DA, AG_ERR_SCALE},
        {"ag_mx_quantize", pc_mx, NL | FM | SG | AR | SH | AL, AG_OK},
        {"ag_mx_decode", pc_mx_decode, NL | FM | SG | AR | SH | AL | DA, AG_ERR_CODE},
        {"ag_bit_stall", pc_bit_stall, NL | FM | SC | AR, AG_OK},
        {"ag_ulp_distance", pc_ulp, NL | FM | SC | AR | SH | AL, AG_OK},
        {"ag_exp_hist", pc_hist, NL | FM | SC | AR | SH, AG_OK},
        {"ag_flips_u8", pc_flips_u8, NL | FM | SG | DA, AG_ERR_CODE},
        {"ag_stiffness", pc_stiffness, NL | FM | SC | SH | AL, AG_OK},
        {"ag_compute_scale", pc_compute_scale, NL | FM | AR, AG_OK},
        {"ag_compute_scale_rows", pc_scale_rows, NL | FM | AR | SH | AL, AG_OK},
        {"ag_amax_rows", pc_amax_rows, NL | SH | AL, AG_OK},
        {"ag_scaler_create", pc_scaler_create, NL | FM | AR, AG_OK},
        {"ag_scaler_backward", pc_scaler_backward, NL | AR, AG_OK},
    };
    for (size_t e = 0; e < sizeof ep / sizeof ep[0]; e++) {
        const unsigned all = ep[e].faults;
        unsigned bad = 0;
        /* every subset of the entry point's faults */
        for (unsigned m = all;; m = (m - 1) & all) {
            ag_status want = AG_OK;
            int first = -1;
            for (int k = 0; k < P_N; k++)
                if (m & PF(k)) {
                    first = k;
                    want = k == P_DATA ? ep[e].data : fault_status[k];
                    break;
                }
            const ag_status got = ep[e].call(m);
            if (got != want && bad++ < 3) {
                char what[96] = "";
                for (int k = 0; k < P_N; k++)
                    if (m & PF(k))
                        snprintf(what + strlen(what), sizeof what - strlen(what), " %s",
                                 fault_name[k]);
                AG_CHECK(got == want, "%s with faults%s: %s, want %s (%s first)", ep[e].name, what,
                         ag_status_string(got), ag_status_string(want),
                         first >= 0 ? fault_name[first] : "none");
            } else {
                AG_CHECK(got == want, "%s", ep[e].name);
            }
            if (m == 0)
                break;
        }
    }
}

int main(void)
{
    test_status_strings();
    test_registry();
    test_bad_formats();
    test_nulls_and_scales();
    test_options();
    test_alias();
    test_storage_and_codes();
    test_format_init_errors();
    test_parse_errors();
    test_precedence();
    return ag_test_summary("test_errors");
}
