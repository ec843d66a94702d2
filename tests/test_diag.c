/* SPDX-License-Identifier: MIT */
/*
 * test_diag.c — diagnostics: ag_bit_stall, ag_flips(_u8/_u16),
 * ag_update_flips, ag_stall_ratio, ag_ulp_distance(_stats), ag_stiffness and
 * ag_exp_hist, each against a slow reference written here from the header's
 * contract through other public calls only (ag_to_bits_opts, ag_to_real,
 * ag_quantize and its stats, and the grid of a format enumerated and sorted
 * by value), plus hand-worked examples, edge cases and every error path.
 *
 * Random inputs come from a seeded generator; the seed is printed and can
 * be set with AG_TEST_SEED.
 */
#include "ag_test.h"
#include "ag_test_rng.h"

#include <altgrad.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>

/* ---- helpers --------------------------------------------------------------- */

static const ag_format *F(const char *name)
{
    const ag_format *f = ag_format_get(name);
    AG_CHECK(f != NULL, "format %s missing", name);
    return f;
}

static ag_format bad_format(void)
{
    ag_format f = *ag_format_get("E4M3");
    f.mbits = 2;
    return f;
}

/* The reference rounding of element i: code, and NaN-ness from public calls:
 * a NaN input, or a code that decodes to NaN. */
typedef struct rq {
    uint32_t code;
    int nan;
    int zero;
} rq;

static rq ref_round(const ag_format *f, float x, float s, const ag_qopts *o,
                    uint64_t i)
{
    ag_qopts oo = *o;
    oo.offset = o->offset + i;
    rq q;
    const float v = x / s;
    q.code = ag_to_bits_opts(f, v, &oo);
    const float d = ag_to_real(f, q.code);
    q.nan = isnan(v) || isnan(d);
    q.zero = !q.nan && d == 0.0f;
    return q;
}

static int ref_same(rq a, rq b)
{
    if (a.nan || b.nan)
        return 0;
    return a.code == b.code || (a.zero && b.zero);
}

static ag_qopts opts_for(int k)
{
    ag_qopts o = ag_qopts_default();
    o.rounding = (ag_rounding)(k % 6);
    o.overflow = (ag_overflow)((k / 6) % 2);
    o.seed = 0xfeed + (uint64_t)k;
    o.stream = 3;
    o.offset = 11;
    return o;
}

/* The formats of the random tests: registry names, plus "custom:nz", a
 * signed format without zero (e3m2, bias 3), made by ag_format_init. */
static ag_format custom_nz;
static const ag_format *fmt_named(const char *name)
{
    if (strcmp(name, "custom:nz") == 0)
        return &custom_nz;
    const ag_format *f = ag_format_get(name);
    AG_CHECK(f != NULL, "format %s missing", name);
    return f;
}

static const char *const fnames[] = {"custom:nz", 
    "E0M7", "E1M6", "E3M4", "E4M3", "E5M2", "E7M0", "float8_e4m3fn",
    "float8_e4m3fnuz", "float8_e5m2", "float8_e8m0fnu", "float4_e2m1fn",
    "float6_e3m2fn", "FP16", "BF16"};
#define NFMT (sizeof fnames / sizeof fnames[0])

/* ---- bit stall, flips --------------------------------------------------------- */

static void test_bit_stall(void)
{
    const ag_format *e4 = F("E4M3");
    if (!e4)
        return;
    uint64_t st = 9, co = 9;
    /* hand-worked: E4M3 around 1.0 the step below is 1/16, above 1/8 */
    const float w[4] = {1.0f, 1.0f, 1.0f, 0.0f};
    const float g[4] = {0.01f, 0.1f, 0.0f, -1e-4f};
    AG_CHECK(ag_bit_stall(&st, &co, w, g, 4, 1.0f, e4, 1.0f, NULL) == AG_OK && co == 3 &&
                 st == 2,
             "1-0.01 stalls, 1-0.1 -> 0.875 moves, g=0 not counted, 0+1e-4 stalls: %" PRIu64
             "/%" PRIu64,
             st, co);
    /* threshold: |g| > 1e-10f strictly; NaN gradient never counted */
    const float wt[4] = {1, 1, 1, 1};
    const float gt[4] = {1e-10f, -1e-10f, 2e-10f, NAN};
    AG_CHECK(ag_bit_stall(&st, &co, wt, gt, 4, 1.0f, e4, 1.0f, NULL) == AG_OK && co == 1 &&
                 st == 1,
             "threshold");
    /* NaN weight: considered, never stalled; lr = 0: everything stalls */
    const float wn[2] = {NAN, 2.0f};
    const float gn[2] = {1.0f, 1.0f};
    AG_CHECK(ag_bit_stall(&st, &co, wn, gn, 2, 0.0f, e4, 1.0f, NULL) == AG_OK && co == 2 &&
                 st == 1,
             "NaN weight");
    /* -0 after the update is the same point as +0 */
    const float wz[1] = {0.0f};
    const float gz[1] = {1e-6f};
    AG_CHECK(ag_bit_stall(&st, &co, wz, gz, 1, 1.0f, e4, 1.0f, NULL) == AG_OK && co == 1 &&
                 st == 1,
             "+0 -> -0 stalls");
    /* huge update overflows to saturation: same point as max */
    const float wh[1] = {448.0f};
    const float gh[1] = {-1e30f};
    AG_CHECK(ag_bit_stall(&st, &co, wh, gh, 1, 1.0f, e4, 1.0f, NULL) == AG_OK && st == 1,
             "saturated stays saturated");
    AG_CHECK(ag_bit_stall(&st, &co, NULL, NULL, 0, 1.0f, e4, 1.0f, NULL) == AG_OK && st == 0 &&
                 co == 0,
             "empty");

    /* errors, outputs untouched */
    st = co = 77;
    AG_CHECK(ag_bit_stall(NULL, &co, w, g, 4, 1.0f, e4, 1.0f, NULL) == AG_ERR_NULL, "out");
    AG_CHECK(ag_bit_stall(&st, NULL, w, g, 4, 1.0f, e4, 1.0f, NULL) == AG_ERR_NULL, "out2");
    AG_CHECK(ag_bit_stall(&st, &co, NULL, g, 4, 1.0f, e4, 1.0f, NULL) == AG_ERR_NULL, "w");
    AG_CHECK(ag_bit_stall(&st, &co, w, NULL, 4, 1.0f, e4, 1.0f, NULL) == AG_ERR_NULL, "g");
    AG_CHECK(ag_bit_stall(&st, &co, w, g, 4, NAN, e4, 1.0f, NULL) == AG_ERR_ARG, "lr NaN");
    AG_CHECK(ag_bit_stall(&st, &co, w, g, 4, INFINITY, e4, 1.0f, NULL) == AG_ERR_ARG, "lr inf");
    AG_CHECK(ag_bit_stall(&st, &co, w, g, 4, 1.0f, NULL, 1.0f, NULL) == AG_ERR_NULL, "fmt");
    const ag_format bad = bad_format();
    AG_CHECK(ag_bit_stall(&st, &co, w, g, 4, 1.0f, &bad, 1.0f, NULL) == AG_ERR_FORMAT, "bad");
    AG_CHECK(ag_bit_stall(&st, &co, w, g, 4, 1.0f, e4, 0.0f, NULL) == AG_ERR_SCALE, "scale 0");
    AG_CHECK(ag_bit_stall(&st, &co, w, g, 4, 1.0f, e4, NAN, NULL) == AG_ERR_SCALE, "scale NaN");
    ag_qopts bo = ag_qopts_default();
    bo.threads = -1;
    AG_CHECK(ag_bit_stall(&st, &co, w, g, 4, 1.0f, e4, 1.0f, &bo) == AG_ERR_ARG, "opts");
    AG_CHECK(st == 77 && co == 77, "untouched");

    /* random, against the reference and against AltGrad's float compare */
    enum { N = 5000 }; /* > 2 encoder chunks of 2048 */
    static float wr[N], gr[N], yq0[N], yq1[N], wn2[N];
    for (size_t fi = 0; fi < NFMT; fi++) {
        const ag_format *f = fmt_named(fnames[fi]);
        if (!f)
            continue;
        for (int k = 0; k < 12; k++) {
            const ag_qopts o = opts_for(k);
            const float scale = k % 3 == 0 ? 1.0f : (float)ldexp(1.0, (int)(k % 7) - 3) * 1.5f;
            const float lr = k % 4 == 0 ? 0.1f : 1e-3f;
            for (size_t i = 0; i < N; i++) {
                wr[i] = rnd_float(12, 6, k == 5);
                gr[i] = rnd_float(20, 8, k == 7) * (i % 9 == 0 ? 0.0f : 1.0f);
            }
            uint64_t rs = 0, rc = 0;
            for (size_t i = 0; i < N; i++) {
                if (!(fabsf(gr[i]) > 1e-10f))
                    continue;
                rc++;
                const float step = lr * gr[i];
                wn2[i] = wr[i] - step;
                rs += (uint64_t)ref_same(ref_round(f, wr[i], scale, &o, i),
                                         ref_round(f, wn2[i], scale, &o, i));
            }
            AG_CHECK(ag_bit_stall(&st, &co, wr, gr, N, lr, f, scale, &o) == AG_OK, "ok");
            AG_CHECK(st == rs && co == rc, "%s k %d: %" PRIu64 "/%" PRIu64 " vs %" PRIu64
                     "/%" PRIu64, f->name, k, st, co, rs, rc);
            if (o.rounding == AG_ROUND_NEAREST_EVEN && o.overflow == AG_OVERFLOW_SATURATE &&
                scale == 1.0f) {
                /* AltGrad: quantize(w) == quantize(w - lr g) where |g| > 1e-10 */
                for (size_t i = 0; i < N; i++)
                    wn2[i] = wr[i] - lr * gr[i];
                ag_quantize(yq0, wr, N, f, 1.0f, NULL, NULL);
                ag_quantize(yq1, wn2, N, f, 1.0f, NULL, NULL);
                uint64_t as = 0;
                for (size_t i = 0; i < N; i++)
                    as += fabsf(gr[i]) > 1e-10f && yq0[i] == yq1[i];
                AG_CHECK(as == st, "%s: AltGrad float compare %" PRIu64 " vs %" PRIu64,
                         f->name, as, st);
            }
            /* updates vs flips of the same SGD step */
            for (size_t i = 0; i < N; i++)
                wn2[i] = wr[i] - lr * gr[i];
            uint64_t up = 0, fl = 0;
            AG_CHECK(ag_update_flips(&up, &fl, wr, wn2, gr, N, f, scale, &o) == AG_OK &&
                         up == co && up - fl == st,
                     "%s k %d: update_flips %" PRIu64 " %" PRIu64, f->name, k, up, fl);
        }
    }
}

static void test_flips(void)
{
    const ag_format *e4 = F("float8_e4m3fn"), *bf = F("BF16"), *e21 = F("float4_e2m1fn");
    if (!e4 || !bf || !e21)
        return;
    uint64_t fl = 5;
    const float a[6] = {1.0f, 0.0f, NAN, 1.0f, 448.0f, 1.0f};
    const float b[6] = {1.01f, -0.0f, NAN, 1.2f, 1e9f, -1.0f};
    AG_CHECK(ag_flips(&fl, a, b, 6, e4, 1.0f, NULL) == AG_OK && fl == 3,
             "1->1.01 same, +0->-0 same, NaN->NaN flips, 1->1.2 flips, saturated same,"
             " sign flips: %" PRIu64,
             fl);
    AG_CHECK(ag_flips(&fl, NULL, NULL, 0, e4, 1.0f, NULL) == AG_OK && fl == 0, "empty");
    uint8_t ca[6], cb[6];
    ag_encode_u8(ca, a, 6, e4, 1.0f, NULL, NULL);
    ag_encode_u8(cb, b, 6, e4, 1.0f, NULL, NULL);
    AG_CHECK(ag_flips_u8(&fl, ca, cb, 6, e4) == AG_OK && fl == 3, "codes: %" PRIu64, fl);

    /* random: float flips = code flips = reference */
    enum { N = 4500 };
    static float x0[N], x1[N];
    static uint8_t c0[N], c1[N];
    static uint16_t d0[N], d1[N];
    for (size_t fi = 0; fi < NFMT; fi++) {
        const ag_format *f = fmt_named(fnames[fi]);
        if (!f)
            continue;
        for (int k = 0; k < 12; k++) {
            const ag_qopts o = opts_for(k);
            for (size_t i = 0; i < N; i++) {
                x0[i] = rnd_float(10, 8, 1);
                x1[i] = i % 3 ? x0[i] * (1.0f + rnd_float(12, -2, 0)) : x0[i];
            }
            uint64_t rf = 0;
            for (size_t i = 0; i < N; i++)
                rf += !ref_same(ref_round(f, x0[i], 2.0f, &o, i),
                                ref_round(f, x1[i], 2.0f, &o, i));
            AG_CHECK(ag_flips(&fl, x0, x1, N, f, 2.0f, &o) == AG_OK && fl == rf,
                     "%s k %d: %" PRIu64 " vs %" PRIu64, f->name, k, fl, rf);
            if (f->bits <= 8) {
                AG_CHECK(ag_encode_u8(c0, x0, N, f, 2.0f, &o, NULL) == AG_OK &&
                             ag_encode_u8(c1, x1, N, f, 2.0f, &o, NULL) == AG_OK,
                         "enc");
                /* codes lose the NaN-ness of a NaN input in formats without
                 * NaN (code 0): count only where both inputs are non-NaN */
                if (f->has_nan) {
                    AG_CHECK(ag_flips_u8(&fl, c0, c1, N, f) == AG_OK && fl == rf,
                             "%s k %d: codes %" PRIu64 " vs %" PRIu64, f->name, k, fl, rf);
                }
            }
            AG_CHECK(ag_encode_u16(d0, x0, N, f, 2.0f, &o, NULL) == AG_OK &&
                         ag_encode_u16(d1, x1, N, f, 2.0f, &o, NULL) == AG_OK,
                     "enc16");
            if (f->has_nan)
                AG_CHECK(ag_flips_u16(&fl, d0, d1, N, f) == AG_OK && fl == rf,
                         "%s k %d: codes16 %" PRIu64 " vs %" PRIu64, f->name, k, fl, rf);
        }
    }

    /* every code path counts the same; an unavailable one is an error */
    for (int k = AG_KERNEL_AUTO; k <= AG_KERNEL_AVX512; k++) {
        ag_qopts ko = ag_qopts_default();
        ko.kernel = k;
        uint64_t f0 = 0, f1 = 77, s1 = 77, c1_ = 77;
        ag_flips(&f0, x0, x1, N, e4, 1.0f, NULL);
        const ag_status s2 = ag_flips(&f1, x0, x1, N, e4, 1.0f, &ko);
        const ag_status s3 = ag_bit_stall(&s1, &c1_, x0, x1, N, 0.5f, e4, 1.0f, &ko);
        if (ag_kernel_available(k))
            AG_CHECK(s2 == AG_OK && f1 == f0 && s3 == AG_OK, "kernel %d", k);
        else
            AG_CHECK(s2 == AG_ERR_ARG && f1 == 77 && s3 == AG_ERR_ARG && s1 == 77,
                     "kernel %d unavailable", k);
    }

    /* errors */
    fl = 77;
    AG_CHECK(ag_flips(NULL, a, b, 6, e4, 1.0f, NULL) == AG_ERR_NULL, "out");
    AG_CHECK(ag_flips(&fl, NULL, b, 6, e4, 1.0f, NULL) == AG_ERR_NULL, "a");
    AG_CHECK(ag_flips(&fl, a, NULL, 6, e4, 1.0f, NULL) == AG_ERR_NULL, "b");
    AG_CHECK(ag_flips(&fl, a, b, 6, NULL, 1.0f, NULL) == AG_ERR_NULL, "fmt");
    const ag_format bad = bad_format();
    AG_CHECK(ag_flips(&fl, a, b, 6, &bad, 1.0f, NULL) == AG_ERR_FORMAT, "bad");
    AG_CHECK(ag_flips(&fl, a, b, 6, e4, -1.0f, NULL) == AG_ERR_SCALE, "scale");
    ag_qopts bo = ag_qopts_default();
    bo.rounding = (ag_rounding)6;
    AG_CHECK(ag_flips(&fl, a, b, 6, e4, 1.0f, &bo) == AG_ERR_ARG, "opts");
    AG_CHECK(ag_flips_u8(NULL, ca, cb, 6, e4) == AG_ERR_NULL, "u8 out");
    AG_CHECK(ag_flips_u8(&fl, NULL, cb, 6, e4) == AG_ERR_NULL, "u8 a");
    AG_CHECK(ag_flips_u8(&fl, ca, cb, 6, NULL) == AG_ERR_NULL, "u8 fmt");
    AG_CHECK(ag_flips_u8(&fl, ca, cb, 6, &bad) == AG_ERR_FORMAT, "u8 bad");
    AG_CHECK(ag_flips_u8(&fl, ca, cb, 6, bf) == AG_ERR_STORAGE, "u8 16-bit");
    const uint8_t big[2] = {3, 16};
    AG_CHECK(ag_flips_u8(&fl, big, big, 2, e21) == AG_ERR_CODE, "u8 code >= ncodes");
    const uint16_t big16[1] = {256};
    AG_CHECK(ag_flips_u16(&fl, big16, big16, 1, e4) == AG_ERR_CODE, "u16 code >= ncodes");
    AG_CHECK(ag_flips_u16(&fl, NULL, NULL, 0, e4) == AG_OK && fl == 0, "u16 empty");
    fl = 77;
    uint64_t up = 77;
    const float g[6] = {1, 1, 1, 1, 1, 1};
    AG_CHECK(ag_update_flips(NULL, &fl, a, b, g, 6, e4, 1.0f, NULL) == AG_ERR_NULL, "uf out");
    AG_CHECK(ag_update_flips(&up, NULL, a, b, g, 6, e4, 1.0f, NULL) == AG_ERR_NULL, "uf out2");
    AG_CHECK(ag_update_flips(&up, &fl, a, b, NULL, 6, e4, 1.0f, NULL) == AG_ERR_NULL, "uf g");
    AG_CHECK(ag_update_flips(&up, &fl, a, b, g, 6, e4, 0.0f, NULL) == AG_ERR_SCALE, "uf scale");
    AG_CHECK(ag_update_flips(&up, &fl, a, b, g, 6, &bad, 1.0f, NULL) == AG_ERR_FORMAT, "uf fmt");
    AG_CHECK(ag_update_flips(&up, &fl, a, b, g, 6, e4, 1.0f, &bo) == AG_ERR_ARG, "uf opts");
    AG_CHECK(fl == 77 && up == 77, "untouched");
    AG_CHECK(ag_update_flips(&up, &fl, a, b, g, 6, e4, 1.0f, NULL) == AG_OK && up == 6 &&
                 fl == 3,
             "update_flips hand");

    /* stall ratio */
    double r = -1;
    AG_CHECK(ag_stall_ratio(&r, 0, 0) == AG_OK && r == 0.0, "no updates -> 0");
    AG_CHECK(ag_stall_ratio(&r, 1, 4) == AG_OK && r == 0.75, "1 of 4 flipped");
    AG_CHECK(ag_stall_ratio(&r, 4, 4) == AG_OK && r == 0.0, "all flipped");
    AG_CHECK(ag_stall_ratio(&r, 0, 4) == AG_OK && r == 1.0, "all stalled");
    r = -1;
    AG_CHECK(ag_stall_ratio(&r, 5, 4) == AG_ERR_ARG && r == -1, "flips > updates");
    AG_CHECK(ag_stall_ratio(NULL, 1, 4) == AG_ERR_NULL, "NULL");
}

/* ---- ULP ----------------------------------------------------------------------- */

/* The ordered grid of a format: every finite value and the infinities,
 * sorted, +-0 merged. */
typedef struct grid {
    double v[65536 + 4];
    size_t n;
    size_t zero; /* index of 0, or of the smallest positive when no zero */
} grid;

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void build_grid(grid *gr, const ag_format *f)
{
    size_t n = 0;
    for (uint32_t c = 0; c < f->ncodes; c++) {
        const float v = ag_to_real(f, c);
        if (!isnan(v))
            gr->v[n++] = (double)v;
    }
    qsort(gr->v, n, sizeof gr->v[0], cmp_double);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || gr->v[i] != gr->v[m - 1])
            gr->v[m++] = gr->v[i];
    gr->n = m;
    gr->zero = 0;
    while (gr->zero < m && gr->v[gr->zero] < 0)
        gr->zero++;
}

static long grid_index(const grid *gr, double v)
{
    size_t lo = 0, hi = gr->n;
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        if (gr->v[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < gr->n && gr->v[lo] == v ? (long)lo - (long)gr->zero : -999999;
}

static void test_ulp(void)
{
    static grid gr;
    const ag_format *e4 = F("float8_e4m3fn"), *e5 = F("float8_e5m2"), *e8 = F("float8_e8m0fnu");
    if (!e4 || !e5 || !e8)
        return;
    int32_t d[8];
    const float a[8] = {1.0f, -0x1p-9f, 0.0f, 448.0f, 1.0f, NAN, 1.0f, 2.0f};
    const float b[8] = {1.125f, 0x1p-9f, -0.0f, 1e9f, -1.0f, 1.0f, INFINITY, 1.0f};
    AG_CHECK(ag_ulp_distance(d, a, b, 8, e4, 1.0f, NULL) == AG_OK, "ulp");
    AG_CHECK(d[0] == 1 && d[1] == 2 && d[2] == 0 && d[3] == 0 && d[5] == AG_ULP_NAN &&
                 d[7] == -8,
             "hand e4m3: %d %d %d %d %d %d", d[0], d[1], d[2], d[3], d[5], d[7]);
    /* 1.0 has code 0x38 = 56 on the positive side: -1 -> 1 is 112 steps */
    AG_CHECK(d[4] == -112 && d[6] == 126 - 56, "across zero %d, inf saturates %d", d[4], d[6]);
    ag_qopts ieee = ag_qopts_default();
    ieee.overflow = AG_OVERFLOW_IEEE;
    const float a5[2] = {57344.0f, 57344.0f}, b5[2] = {1e9f, INFINITY};
    AG_CHECK(ag_ulp_distance(d, a5, b5, 2, e5, 1.0f, &ieee) == AG_OK && d[0] == 1 && d[1] == 1,
             "e5m2: max -> inf is one step");
    AG_CHECK(ag_ulp_distance(d, a5, b5, 2, e4, 1.0f, &ieee) == AG_OK && d[0] == AG_ULP_NAN,
             "e4m3fn IEEE overflow is NaN");
    const float a8[2] = {1.0f, 0.5f}, b8[2] = {4.0f, 0.0f};
    AG_CHECK(ag_ulp_distance(d, a8, b8, 2, e8, 1.0f, NULL) == AG_OK && d[0] == 2 &&
                 d[1] == AG_ULP_NAN,
             "e8m0: codes; zero is NaN");
    uint64_t sum = 9, nans = 9;
    uint32_t mx = 9;
    AG_CHECK(ag_ulp_distance_stats(&sum, &mx, &nans, a, b, 8, e4, 1.0f, NULL) == AG_OK &&
                 sum == 1 + 2 + 0 + 0 + 112 + 70 + 8 && mx == 112 && nans == 1,
             "stats hand: %" PRIu64 " %u %" PRIu64, sum, mx, nans);
    AG_CHECK(ag_ulp_distance_stats(NULL, NULL, NULL, a, b, 8, e4, 1.0f, NULL) == AG_OK,
             "outputs optional");
    AG_CHECK(ag_ulp_distance_stats(&sum, &mx, &nans, NULL, NULL, 0, e4, 1.0f, NULL) == AG_OK &&
                 sum == 0 && mx == 0 && nans == 0,
             "empty stats");
    AG_CHECK(ag_ulp_distance(NULL, NULL, NULL, 0, e4, 1.0f, NULL) == AG_OK, "empty");

    /* random against the sorted grid (scale 1 keeps products exact) */
    enum { N = 4200 };
    static float x0[N], x1[N], q0[N], q1[N];
    static int32_t dd[N];
    for (size_t fi = 0; fi < NFMT; fi++) {
        const ag_format *f = fmt_named(fnames[fi]);
        if (!f)
            continue;
        build_grid(&gr, f);
        for (int k = 0; k < 12; k++) {
            ag_qopts o = opts_for(k);
            for (size_t i = 0; i < N; i++) {
                x0[i] = rnd_float(10, 8, 1);
                x1[i] = i % 4 ? x0[i] * (1.0f + rnd_float(10, 0, 0)) : rnd_float(10, 8, 0);
            }
            AG_CHECK(ag_ulp_distance(dd, x0, x1, N, f, 1.0f, &o) == AG_OK, "ok");
            uint64_t rsum = 0, rnan = 0;
            uint32_t rmax = 0;
            int bad = 0;
            for (size_t i = 0; i < N; i++) {
                ag_qopts oo = o;
                oo.offset = o.offset + i;
                ag_quantize(&q0[i], &x0[i], 1, f, 1.0f, &oo, NULL);
                ag_quantize(&q1[i], &x1[i], 1, f, 1.0f, &oo, NULL);
                /* quantize keeps NaN; a NaN code (IEEE overflow) gives NaN too */
                int32_t ref;
                if (isnan(q0[i]) || isnan(q1[i])) {
                    ref = AG_ULP_NAN;
                    rnan++;
                } else {
                    long i0 = grid_index(&gr, (double)q0[i]), i1 = grid_index(&gr, (double)q1[i]);
                    if (f->no_zero) {
                        /* codes, as the grid has no zero to centre on */
                        i0 += (long)gr.zero;
                        i1 += (long)gr.zero;
                    }
                    ref = (int32_t)(i1 - i0);
                    const uint32_t ad = (uint32_t)(ref < 0 ? -ref : ref);
                    rsum += ad;
                    rmax = ad > rmax ? ad : rmax;
                }
                if (dd[i] != ref && bad++ < 3)
                    AG_CHECK(0, "%s k %d i %zu: %a %a -> %a %a: %d vs %d", f->name, k, i,
                             (double)x0[i], (double)x1[i], (double)q0[i], (double)q1[i],
                             dd[i], ref);
            }
            AG_CHECK(bad == 0, "%s k %d: %d mismatches", f->name, k, bad);
            AG_CHECK(ag_ulp_distance_stats(&sum, &mx, &nans, x0, x1, N, f, 1.0f, &o) == AG_OK &&
                         sum == rsum && mx == rmax && nans == rnan,
                     "%s stats", f->name);
            /* antisymmetric */
            static int32_t dr[N];
            AG_CHECK(ag_ulp_distance(dr, x1, x0, N, f, 1.0f, &o) == AG_OK, "ok");
            int anti = 1;
            for (size_t i = 0; i < N; i++)
                anti &= dd[i] == AG_ULP_NAN ? dr[i] == AG_ULP_NAN : dr[i] == -dd[i];
            AG_CHECK(anti, "%s k %d: d(b, a) = -d(a, b)", f->name, k);
        }
    }

    /* errors */
    for (int i = 0; i < 8; i++)
        d[i] = 1234;
    AG_CHECK(ag_ulp_distance(NULL, a, b, 8, e4, 1.0f, NULL) == AG_ERR_NULL, "d NULL");
    AG_CHECK(ag_ulp_distance(d, NULL, b, 8, e4, 1.0f, NULL) == AG_ERR_NULL, "a NULL");
    AG_CHECK(ag_ulp_distance(d, a, NULL, 8, e4, 1.0f, NULL) == AG_ERR_NULL, "b NULL");
    AG_CHECK(ag_ulp_distance(d, a, b, 8, NULL, 1.0f, NULL) == AG_ERR_NULL, "fmt NULL");
    const ag_format bad = bad_format();
    AG_CHECK(ag_ulp_distance(d, a, b, 8, &bad, 1.0f, NULL) == AG_ERR_FORMAT, "bad fmt");
    AG_CHECK(ag_ulp_distance(d, a, b, 8, e4, INFINITY, NULL) == AG_ERR_SCALE, "scale");
    ag_qopts bo = ag_qopts_default();
    bo.ste = (ag_ste)7;
    AG_CHECK(ag_ulp_distance(d, a, b, 8, e4, 1.0f, &bo) == AG_ERR_ARG, "opts");
    float buf[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    AG_CHECK(ag_ulp_distance((int32_t *)(void *)buf, buf, b, 8, e4, 1.0f, NULL) == AG_ERR_ALIAS,
             "d == a");
    AG_CHECK(ag_ulp_distance((int32_t *)(void *)(buf + 1), a, buf, 7, e4, 1.0f, NULL) ==
                 AG_ERR_ALIAS,
             "d overlaps b");
    int untouched = buf[0] == 1 && buf[7] == 8;
    for (int i = 0; i < 8; i++)
        untouched &= d[i] == 1234;
    AG_CHECK(untouched, "untouched");
    AG_CHECK(ag_ulp_distance_stats(&sum, &mx, &nans, a, b, 8, e4, 0.0f, NULL) == AG_ERR_SCALE,
             "stats scale");
    AG_CHECK(ag_ulp_distance_stats(&sum, &mx, &nans, NULL, b, 8, e4, 1.0f, NULL) == AG_ERR_NULL,
             "stats NULL");
}

/* ---- stiffness ------------------------------------------------------------------- */

static void test_stiffness(void)
{
    const ag_format *e4 = F("E4M3"), *e5 = F("E5M2"), *e0 = F("E0M7"), *e7 = F("E7M0");
    if (!e4 || !e5 || !e0 || !e7)
        return;
    const float w[10] = {1.0f, 3.0f, 0x1p-9f, 1000.0f, 0.0f, -0.0f, NAN, -INFINITY, -1.5f,
                         0x1p-7f};
    float s[10];
    AG_CHECK(ag_stiffness(s, w, 10, e4, 1.0f) == AG_OK, "ok");
    AG_CHECK(s[0] == 0.125f && s[1] == 0.25f && s[2] == 0x1p-9f && s[3] == 64.0f &&
                 s[4] == 0.0f && s[5] == 0.0f && isnan(s[6]) && s[7] == INFINITY &&
                 s[8] == 0.125f && s[9] == 0x1p-9f,
             "hand e4m3: %g %g %a %g %g %g %g %g %g %a", (double)s[0], (double)s[1],
             (double)s[2], (double)s[3], (double)s[4], (double)s[5], (double)s[6],
             (double)s[7], (double)s[8], (double)s[9]);
    AG_CHECK(ag_stiffness(s, w, 2, e4, 2.0f) == AG_OK && s[0] == 0.125f && s[1] == 0.25f,
             "scale 2: w=1 -> v=0.5 step 2^-4 * 2; w=3 -> v=1.5: %g %g", (double)s[0],
             (double)s[1]);
    AG_CHECK(ag_stiffness(s, w, 2, e5, 1.0f) == AG_OK && s[0] == 0.25f && s[1] == 0.5f, "e5m2");
    AG_CHECK(ag_stiffness(s, w, 4, e0, 1.0f) == AG_OK && s[0] == 0x1p-7f && s[1] == 0x1p-7f &&
                 s[2] == 0x1p-7f && s[3] == 0x1p-7f,
             "E0M7 fixed step everywhere");
    AG_CHECK(ag_stiffness(s, w, 2, e7, 1.0f) == AG_OK && s[0] == 1.0f && s[1] == 2.0f, "E7M0");
    const float wt[1] = {0x1p-149f};
    AG_CHECK(ag_stiffness(s, wt, 1, e4, 1e30f) == AG_OK && s[0] == 0x1p-9f * 1e30f,
             "v underflows to 0 in float32: the lowest step");

    /* every positive code below max: the stiffness is the gap to the next value */
    for (size_t fi = 0; fi < NFMT; fi++) {
        const ag_format *f = fmt_named(fnames[fi]);
        if (!f)
            continue;
        int bad = 0;
        for (uint32_t c = f->no_zero ? 0 : 1; c < f->max_code; c++) {
            const float v = ag_to_real(f, c), next = ag_to_real(f, c + 1);
            float sv;
            ag_stiffness(&sv, &v, 1, f, 1.0f);
            if (sv != next - v && bad++ < 3)
                AG_CHECK(0, "%s code %#x: %a vs gap %a", f->name, c, (double)sv,
                         (double)(next - v));
            /* and at any point inside the gap, for E >= 1 (same binade) */
            const float mid = v + (next - v) * 0.25f;
            float sm;
            ag_stiffness(&sm, &mid, 1, f, 1.0f);
            if (sm != sv && bad++ < 3)
                AG_CHECK(0, "%s inside gap above code %#x: %a vs %a", f->name, c, (double)sm,
                         (double)sv);
        }
        AG_CHECK(bad == 0, "%s: %d gap mismatches", f->name, bad);
    }

    /* random, against frexp in double, with a scale */
    enum { N = 3000 };
    static float wr[N], sr[N];
    for (size_t fi = 0; fi < NFMT; fi++) {
        const ag_format *f = fmt_named(fnames[fi]);
        if (!f)
            continue;
        const float scale = 0.375f;
        for (size_t i = 0; i < N; i++)
            wr[i] = rnd_float(40, 40, 1);
        AG_CHECK(ag_stiffness(sr, wr, N, f, scale) == AG_OK, "ok");
        int bad = 0;
        for (size_t i = 0; i < N; i++) {
            const float v = wr[i] / scale;
            float ref;
            if (wr[i] == 0.0f)
                ref = 0.0f;
            else if (isnan(v))
                ref = NAN;
            else if (isinf(v))
                ref = INFINITY;
            else {
                int e2;
                frexp(fabs((double)v), &e2); /* |v| = m 2^e2, m in [0.5, 1) */
                int e = v == 0.0f ? -100000 : e2 - 1;
                const int emin = f->ebits == 0 ? -f->bias : f->emin;
                if (f->ebits == 0 || e < emin)
                    e = emin;
                ref = (float)ldexp(1.0, e - f->mbits) * scale;
            }
            if (!ag_test_same(sr[i], ref) && bad++ < 3)
                AG_CHECK(0, "%s w %a: %a vs %a", f->name, (double)wr[i], (double)sr[i],
                         (double)ref);
        }
        AG_CHECK(bad == 0, "%s random stiffness", f->name);
        memcpy(sr, wr, sizeof sr);
        float so[N];
        ag_stiffness(so, wr, N, f, scale);
        AG_CHECK(ag_stiffness(sr, sr, N, f, scale) == AG_OK && memcmp(sr, so, sizeof so) == 0,
                 "in place");
    }

    /* errors */
    for (int i = 0; i < 10; i++)
        s[i] = 5.0f;
    AG_CHECK(ag_stiffness(NULL, w, 3, e4, 1.0f) == AG_ERR_NULL, "s NULL");
    AG_CHECK(ag_stiffness(s, NULL, 3, e4, 1.0f) == AG_ERR_NULL, "w NULL");
    AG_CHECK(ag_stiffness(s, w, 3, NULL, 1.0f) == AG_ERR_NULL, "fmt NULL");
    const ag_format bad = bad_format();
    AG_CHECK(ag_stiffness(s, w, 3, &bad, 1.0f) == AG_ERR_FORMAT, "bad fmt");
    AG_CHECK(ag_stiffness(s, w, 3, e4, 0.0f) == AG_ERR_SCALE, "scale 0");
    AG_CHECK(ag_stiffness(s, w, 3, e4, -INFINITY) == AG_ERR_SCALE, "scale -inf");
    AG_CHECK(ag_stiffness(s + 1, s, 3, e4, 1.0f) == AG_ERR_ALIAS, "overlap");
    int untouched = 1;
    for (int i = 0; i < 10; i++)
        untouched &= s[i] == 5.0f;
    AG_CHECK(untouched, "untouched");
    AG_CHECK(ag_stiffness(NULL, NULL, 0, e4, 1.0f) == AG_OK, "empty");
}

/* ---- exponent histogram ------------------------------------------------------------ */

static size_t ref_bin(const ag_format *f, float x, float scale, const ag_qopts *o,
                      uint64_t i)
{
    ag_qopts oo = *o;
    oo.offset = o->offset + i;
    ag_stats st = {0};
    float y;
    ag_quantize(&y, &x, 1, f, scale, &oo, &st);
    const uint32_t code = ag_to_bits_opts(f, x / scale, &oo);
    const float v = ag_to_real(f, code);
    if (st.overflow)
        return AG_HIST_OVERFLOW;
    if (isnan(x) || isnan(v))
        return AG_HIST_NAN;
    if (v == 0.0f)
        return x == 0.0f ? AG_HIST_ZERO : AG_HIST_UNDERFLOW;
    if (f->ebits == 0 || (fabsf(v) < f->min_normal && !f->no_zero))
        return AG_HIST_SUBNORMAL;
    return (size_t)(AG_HIST_FIELD + ilogbf(v) + f->bias);
}

static void test_hist(void)
{
    const ag_format *e4 = F("E4M3"), *e0 = F("E0M7"), *e8 = F("float8_e8m0fnu");
    if (!e4 || !e0 || !e8)
        return;
    AG_CHECK(ag_exp_hist_len(e4) == 5 + 16 && ag_exp_hist_len(e0) == 6 &&
                 ag_exp_hist_len(e8) == 5 + 256 && ag_exp_hist_len(NULL) == 0,
             "lengths");
    const ag_format bad = bad_format();
    AG_CHECK(ag_exp_hist_len(&bad) == 0, "invalid length");
    uint64_t h[5 + 256];
    memset(h, 0, sizeof h);
    const float x[9] = {0.0f, -0.0f, 1.0f, 0x1p-9f, 1000.0f, NAN, 1e-6f, INFINITY, -1.5f};
    AG_CHECK(ag_exp_hist(h, 21, x, 9, e4, 1.0f, NULL) == AG_OK, "ok");
    AG_CHECK(h[AG_HIST_ZERO] == 2 && h[AG_HIST_FIELD + 7] == 2 && h[AG_HIST_SUBNORMAL] == 1 &&
                 h[AG_HIST_OVERFLOW] == 2 && h[AG_HIST_NAN] == 1 && h[AG_HIST_UNDERFLOW] == 1,
             "hand e4m3");
    uint64_t tot = 0;
    for (int i = 0; i < 21; i++)
        tot += h[i];
    AG_CHECK(tot == 9, "every element once");
    AG_CHECK(ag_exp_hist(h, 21, x, 9, e4, 1.0f, NULL) == AG_OK && h[AG_HIST_ZERO] == 4,
             "accumulates");
    memset(h, 0, sizeof h);
    const float x8[4] = {0.0f, -1.0f, 1.0f, 0x1p-127f};
    AG_CHECK(ag_exp_hist(h, 5 + 256, x8, 4, e8, 1.0f, NULL) == AG_OK && h[AG_HIST_NAN] == 2 &&
                 h[AG_HIST_FIELD + 127] == 1 && h[AG_HIST_FIELD + 0] == 1,
             "E8M0: zero/negative NaN, field 0 is a binade");
    memset(h, 0, sizeof h);
    const float x0[3] = {0.5f, 2.0f, 0.001f};
    AG_CHECK(ag_exp_hist(h, 6, x0, 3, e0, 1.0f, NULL) == AG_OK && h[AG_HIST_SUBNORMAL] == 1 &&
                 h[AG_HIST_OVERFLOW] == 1 && h[AG_HIST_UNDERFLOW] == 1,
             "E0M7");

    /* random against the reference */
    enum { N = 2000 };
    static float xr[N];
    static uint64_t hr[5 + 256], hg[5 + 256];
    for (size_t fi = 0; fi < NFMT; fi++) {
        const ag_format *f = fmt_named(fnames[fi]);
        if (!f)
            continue;
        const size_t len = ag_exp_hist_len(f);
        for (int k = 0; k < 12; k++) {
            const ag_qopts o = opts_for(k);
            const float scale = k & 1 ? 1.0f : 0.01f;
            for (size_t i = 0; i < N; i++)
                xr[i] = rnd_float(30, 24, 1);
            memset(hr, 0, sizeof hr);
            memset(hg, 0, sizeof hg);
            for (size_t i = 0; i < N; i++) {
                const size_t b = ref_bin(f, xr[i], scale, &o, i);
                AG_CHECK(b < len, "bin in range");
                if (b < len)
                    hr[b]++;
            }
            AG_CHECK(ag_exp_hist(hg, len, xr, N, f, scale, &o) == AG_OK, "ok");
            AG_CHECK(memcmp(hr, hg, sizeof hr) == 0, "%s k %d histogram", f->name, k);
        }
    }

    /* errors: counts untouched */
    memset(h, 0, sizeof h);
    AG_CHECK(ag_exp_hist(h, 20, x, 9, e4, 1.0f, NULL) == AG_ERR_SHAPE, "too short");
    AG_CHECK(ag_exp_hist(NULL, 21, x, 9, e4, 1.0f, NULL) == AG_ERR_NULL, "counts NULL");
    AG_CHECK(ag_exp_hist(h, 21, NULL, 9, e4, 1.0f, NULL) == AG_ERR_NULL, "x NULL");
    AG_CHECK(ag_exp_hist(h, 21, x, 9, NULL, 1.0f, NULL) == AG_ERR_NULL, "fmt NULL");
    AG_CHECK(ag_exp_hist(h, 21, x, 9, &bad, 1.0f, NULL) == AG_ERR_FORMAT, "bad fmt");
    AG_CHECK(ag_exp_hist(h, 21, x, 9, e4, NAN, NULL) == AG_ERR_SCALE, "scale");
    ag_qopts bo = ag_qopts_default();
    bo.overflow = (ag_overflow)2;
    AG_CHECK(ag_exp_hist(h, 21, x, 9, e4, 1.0f, &bo) == AG_ERR_ARG, "opts");
    int zero = 1;
    for (int i = 0; i < 21; i++)
        zero &= h[i] == 0;
    AG_CHECK(zero, "untouched");
    AG_CHECK(ag_exp_hist(h, 21, NULL, 0, e4, 1.0f, NULL) == AG_OK, "empty");
}

int main(void)
{
    const char *env = getenv("AG_TEST_SEED");
    const uint64_t seed = env ? strtoull(env, NULL, 0) : 20261125u;
    rng_state = seed;
    printf("test_diag: seed %" PRIu64 "\n", seed);
    AG_CHECK(ag_format_init(&custom_nz, "nz", 3, 2, 3, 1, AG_SPECIALS_NONE, 1) == AG_OK,
             "custom signed format without zero");
    test_bit_stall();
    test_flips();
    test_ulp();
    test_stiffness();
    test_hist();
    return ag_test_summary("test_diag");
}
