/* SPDX-License-Identifier: MIT */
/*
 * test_scale.c — scaling: ag_amax, the amax history, ag_compute_scale,
 * per-channel (ag_amax_rows, ag_compute_scale_rows, ag_quantize_rows) and MX
 * blocks (ag_mx_*), each against a slow reference written here from the
 * header's contract (per element through the scalar ag_to_bits_opts /
 * ag_to_real, exponents by doubling loops in double), plus hand-worked
 * examples, edge cases and every error path.
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

/* A format struct that fails ag_format_check. */
static ag_format bad_format(void)
{
    ag_format f = *ag_format_get("E4M3");
    f.bias = 3;
    return f;
}

/* floor(log2 a) for a > 0 finite, by doubling/halving in double */
static int ref_floor_log2(double a)
{
    int e = 0;
    double p = 1.0;
    while (p > a) {
        p /= 2;
        e--;
    }
    while (p * 2 <= a) {
        p *= 2;
        e++;
    }
    return e;
}

/* ---- amax ------------------------------------------------------------------ */

static void test_amax(void)
{
    float amax = -1.0f;
    size_t nans = 99;
    AG_CHECK(ag_amax(&amax, NULL, 0, &nans) == AG_OK && amax == 0.0f && nans == 0,
             "empty");
    AG_CHECK(ag_amax(NULL, NULL, 0, NULL) == AG_ERR_NULL, "amax NULL");
    amax = -1.0f;
    AG_CHECK(ag_amax(&amax, NULL, 3, NULL) == AG_ERR_NULL && amax == -1.0f,
             "x NULL, untouched");
    const float one[1] = {-2.5f};
    AG_CHECK(ag_amax(&amax, one, 1, NULL) == AG_OK && amax == 2.5f, "one element");
    const float zeros[3] = {0.0f, -0.0f, 0.0f};
    AG_CHECK(ag_amax(&amax, zeros, 3, &nans) == AG_OK &&
                 ag_test_bits(amax) == 0u && nans == 0,
             "all zeros -> +0");
    const float allnan[2] = {NAN, -NAN};
    AG_CHECK(ag_amax(&amax, allnan, 2, &nans) == AG_OK && amax == 0.0f && nans == 2,
             "all NaN");
    const float withinf[4] = {1.0f, NAN, -INFINITY, 3.0f};
    AG_CHECK(ag_amax(&amax, withinf, 4, &nans) == AG_OK && isinf(amax) &&
                 amax > 0 && nans == 1,
             "inf and NaN");
    const float huge[2] = {FLT_MAX, -FLT_MAX};
    AG_CHECK(ag_amax(&amax, huge, 2, NULL) == AG_OK && amax == FLT_MAX, "huge");
    const float tiny[2] = {0x1p-149f, -0x1p-148f};
    AG_CHECK(ag_amax(&amax, tiny, 2, NULL) == AG_OK && amax == 0x1p-148f, "subnormal");

    /* random, against a plain loop */
    enum { N = 2000 };
    static float x[N];
    for (int rep = 0; rep < 20; rep++) {
        const size_t n = 1 + rng_next() % N;
        for (size_t i = 0; i < n; i++)
            x[i] = rnd_float(140, 120, rep & 1);
        float ref = 0.0f;
        size_t refn = 0;
        for (size_t i = 0; i < n; i++) {
            if (isnan(x[i]))
                refn++;
            else if (fabsf(x[i]) > ref)
                ref = fabsf(x[i]);
        }
        AG_CHECK(ag_amax(&amax, x, n, &nans) == AG_OK && amax == ref && nans == refn,
                 "random rep %d: %a vs %a, %zu vs %zu", rep, (double)amax,
                 (double)ref, nans, refn);
    }
}

/* ---- amax history ------------------------------------------------------------ */

static void test_history(void)
{
    ag_amax_history *h = (ag_amax_history *)&h; /* must be reset to NULL */
    AG_CHECK(ag_amax_history_create(&h, 0) == AG_ERR_ARG && h == NULL, "len 0");
    AG_CHECK(ag_amax_history_create(NULL, 4) == AG_ERR_NULL, "out NULL");
    AG_CHECK(ag_amax_history_create(&h, SIZE_MAX) == AG_ERR_NOMEM && h == NULL,
             "absurd length");
    ag_amax_history_free(NULL);
    ag_amax_history_reset(NULL);
    AG_CHECK(ag_amax_history_max(NULL) == 0.0f && ag_amax_history_count(NULL) == 0 &&
                 ag_amax_history_len(NULL) == 0,
             "NULL queries");
    AG_CHECK(ag_amax_history_push(NULL, 1.0f) == AG_ERR_NULL, "push NULL");

    static const size_t lens[] = {1, 2, 3, 16};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const size_t L = lens[li];
        AG_CHECK(ag_amax_history_create(&h, L) == AG_OK && h, "create %zu", L);
        if (!h)
            continue;
        AG_CHECK(ag_amax_history_len(h) == L && ag_amax_history_count(h) == 0 &&
                     ag_amax_history_max(h) == 0.0f,
                 "fresh");
        float pushed[200];
        size_t np = 0;
        for (int step = 0; step < 200; step++) {
            /* mostly decreasing values, so that wrap-around matters */
            float v = (float)(rng_next() % 1000) / (float)(1 + step);
            if (step == 50)
                v = INFINITY;
            if (step == 120)
                v = -0.0f;
            AG_CHECK(ag_amax_history_push(h, v) == AG_OK, "push");
            pushed[np++] = v;
            float ref = 0.0f;
            const size_t held = np < L ? np : L;
            for (size_t k = np - held; k < np; k++)
                ref = pushed[k] > ref ? pushed[k] : ref;
            const float got = ag_amax_history_max(h);
            AG_CHECK(ag_test_bits(got) == ag_test_bits(ref) &&
                         ag_amax_history_count(h) == held,
                     "L=%zu step %d: max %g vs %g, count %zu", L, step,
                     (double)got, (double)ref, ag_amax_history_count(h));
            if (step == 100) { /* errors do not record */
                AG_CHECK(ag_amax_history_push(h, NAN) == AG_ERR_ARG, "NaN");
                AG_CHECK(ag_amax_history_push(h, -1.0f) == AG_ERR_ARG, "negative");
                AG_CHECK(ag_amax_history_push(h, -INFINITY) == AG_ERR_ARG, "-inf");
                AG_CHECK(ag_amax_history_max(h) == ref &&
                             ag_amax_history_count(h) == held,
                         "unchanged after errors");
            }
        }
        if (L == 1) {
            AG_CHECK(ag_amax_history_push(h, 5.0f) == AG_OK &&
                         ag_amax_history_push(h, 2.0f) == AG_OK &&
                         ag_amax_history_max(h) == 2.0f,
                     "window 1 keeps only the last");
        }
        ag_amax_history_reset(h);
        AG_CHECK(ag_amax_history_count(h) == 0 && ag_amax_history_max(h) == 0.0f &&
                     ag_amax_history_len(h) == L,
                 "reset");
        AG_CHECK(ag_amax_history_push(h, 7.0f) == AG_OK && ag_amax_history_max(h) == 7.0f &&
                     ag_amax_history_count(h) == 1,
                 "push after reset");
        ag_amax_history_free(h);
        h = NULL;
    }
}

/* ---- compute_scale ------------------------------------------------------------ */

/* Reference: the contract in double, the power of two by doubling. */
static float ref_scale(float amax, const ag_format *f, float margin,
                       float smin, int pow2)
{
    double a = isinf(amax) ? (double)FLT_MAX : (double)amax;
    double s = a * (double)margin / (double)f->max_finite;
    if (s < (double)smin)
        s = (double)smin;
    if (pow2) {
        double p = 0x1p-149;
        while (p < s && p < 0x1p127)
            p *= 2;
        return (float)p;
    }
    return s > (double)FLT_MAX ? FLT_MAX : (float)s;
}

static void test_compute_scale(void)
{
    const ag_format *e4 = F("float8_e4m3fn");
    const ag_format *e0 = F("E0M7");
    if (!e4 || !e0)
        return;
    const ag_scale_opts d = ag_scale_opts_default();
    AG_CHECK(d.margin == 1.0f && d.scale_min == 1e-10f && d.pow2 == 0, "defaults");

    float s = -1.0f;
    /* hand-worked */
    AG_CHECK(ag_compute_scale(&s, 448.0f, e4, NULL) == AG_OK && s == 1.0f, "448 -> 1");
    AG_CHECK(ag_compute_scale(&s, 896.0f, e4, NULL) == AG_OK && s == 2.0f, "896 -> 2");
    AG_CHECK(ag_compute_scale(&s, 1.0f, e4, NULL) == AG_OK && s == 1.0f / 448.0f,
             "1 -> 1/448 (float32 quotient)");
    AG_CHECK(ag_compute_scale(&s, 0.0f, e4, NULL) == AG_OK && s == 1e-10f, "zero -> scale_min");
    AG_CHECK(ag_compute_scale(&s, -0.0f, e4, NULL) == AG_OK && s == 1e-10f, "-0 -> scale_min");
    AG_CHECK(ag_compute_scale(&s, 1e-30f, e4, NULL) == AG_OK && s == 1e-10f, "tiny -> scale_min");
    AG_CHECK(ag_compute_scale(&s, INFINITY, e4, NULL) == AG_OK && s == FLT_MAX / 448.0f,
             "inf -> as FLT_MAX: %a", (double)s);
    AG_CHECK(ag_compute_scale(&s, FLT_MAX, e0, NULL) == AG_OK && s == FLT_MAX,
             "quotient beyond FLT_MAX saturates");
    ag_scale_opts p2 = d;
    p2.pow2 = 1;
    AG_CHECK(ag_compute_scale(&s, 448.0f, e4, &p2) == AG_OK && s == 1.0f, "pow2 exact");
    AG_CHECK(ag_compute_scale(&s, 449.0f, e4, &p2) == AG_OK && s == 2.0f, "pow2 rounds up");
    AG_CHECK(ag_compute_scale(&s, 3.0f, e4, &p2) == AG_OK && s == 0x1p-7f,
             "pow2 3/448 -> 2^-7");
    AG_CHECK(ag_compute_scale(&s, 0.0f, e4, &p2) == AG_OK && s == 0x1p-33f,
             "pow2 zero -> scale_min rounded up (2^-33 >= 1e-10): %a", (double)s);
    AG_CHECK(ag_compute_scale(&s, INFINITY, e0, &p2) == AG_OK && s == 0x1p127f,
             "pow2 cap 2^127");
    ag_scale_opts m2 = d;
    m2.margin = 2.0f;
    AG_CHECK(ag_compute_scale(&s, 448.0f, e4, &m2) == AG_OK && s == 2.0f, "margin 2");
    m2.margin = 1e30f;
    AG_CHECK(ag_compute_scale(&s, FLT_MAX, e4, &m2) == AG_OK && s == FLT_MAX,
             "margin overflow saturates");
    ag_scale_opts tinymin = d;
    tinymin.scale_min = 0x1p-149f;
    tinymin.pow2 = 1;
    AG_CHECK(ag_compute_scale(&s, 0.0f, e4, &tinymin) == AG_OK && s == 0x1p-149f,
             "smallest subnormal scale_min");

    /* errors leave *scale untouched */
    s = 42.0f;
    AG_CHECK(ag_compute_scale(&s, NAN, e4, NULL) == AG_ERR_ARG, "NaN amax");
    AG_CHECK(ag_compute_scale(&s, -1.0f, e4, NULL) == AG_ERR_ARG, "negative amax");
    AG_CHECK(ag_compute_scale(&s, -INFINITY, e4, NULL) == AG_ERR_ARG, "-inf amax");
    AG_CHECK(ag_compute_scale(NULL, 1.0f, e4, NULL) == AG_ERR_NULL, "scale NULL");
    AG_CHECK(ag_compute_scale(&s, 1.0f, NULL, NULL) == AG_ERR_NULL, "fmt NULL");
    const ag_format bad = bad_format();
    AG_CHECK(ag_compute_scale(&s, 1.0f, &bad, NULL) == AG_ERR_FORMAT, "bad fmt");
    const float badvals[] = {0.0f, -1.0f, NAN, INFINITY, -0.0f};
    for (size_t i = 0; i < sizeof badvals / sizeof badvals[0]; i++) {
        ag_scale_opts o = d;
        o.margin = badvals[i];
        AG_CHECK(ag_compute_scale(&s, 1.0f, e4, &o) == AG_ERR_ARG, "margin %g",
                 (double)badvals[i]);
        o = d;
        o.scale_min = badvals[i];
        AG_CHECK(ag_compute_scale(&s, 1.0f, e4, &o) == AG_ERR_ARG, "scale_min %g",
                 (double)badvals[i]);
    }
    ag_scale_opts bp = d;
    bp.pow2 = 2;
    AG_CHECK(ag_compute_scale(&s, 1.0f, e4, &bp) == AG_ERR_ARG, "pow2 = 2");
    bp.pow2 = -1;
    AG_CHECK(ag_compute_scale(&s, 1.0f, e4, &bp) == AG_ERR_ARG, "pow2 = -1");
    AG_CHECK(s == 42.0f, "untouched on error");

    /* random against the reference, every registry format of <= 16 bits */
    for (size_t fi = 0; fi < ag_format_count(); fi++) {
        const ag_format *f = ag_format_at(fi);
        for (int rep = 0; rep < 200; rep++) {
            const float amax = fabsf(rnd_float(149, 128, 0));
            ag_scale_opts o = d;
            o.pow2 = rep & 1;
            if (rep % 3 == 1)
                o.margin = fabsf(rnd_float(4, 4, 0)) + 0.5f;
            if (rep % 5 == 2)
                o.scale_min = fabsf(rnd_float(140, 10, 0)) + 0x1p-149f;
            const float ref = ref_scale(amax, f, o.margin, o.scale_min, o.pow2);
            AG_CHECK(ag_compute_scale(&s, amax, f, &o) == AG_OK, "ok");
            AG_CHECK(s == ref && s > 0.0f && s <= FLT_MAX,
                     "%s amax %a margin %g min %g pow2 %d: %a vs %a", f->name,
                     (double)amax, (double)o.margin, (double)o.scale_min, o.pow2,
                     (double)s, (double)ref);
            if (o.margin == 1.0f && !o.pow2 && isfinite(amax) &&
                amax / f->max_finite >= o.scale_min)
                AG_CHECK(s == amax / f->max_finite, "float32 quotient %s %a", f->name,
                         (double)amax);
            if (o.pow2 && o.margin >= 1.0f && s < 0x1p127f && isfinite(amax)) {
                uint32_t b = ag_test_bits(s);
                AG_CHECK((b & 0x7fffffu) == 0 || b < 0x800000u, "power of two");
                AG_CHECK(amax / s <= f->max_finite, "pow2: amax never overflows %s", f->name);
            }
        }
    }
}

/* ---- per-channel ---------------------------------------------------------------- */

/* Reference quantize of one element through the scalar transfer functions. */
static float ref_q(const ag_format *f, float x, float s, const ag_qopts *o,
                   uint64_t idx)
{
    ag_qopts oo = *o;
    oo.offset = o->offset + idx;
    const float v = x / s;
    if (isnan(v))
        return isnan(x) ? x : v;
    return ag_to_real(f, ag_to_bits_opts(f, v, &oo)) * s;
}

static void test_rows(void)
{
    const ag_format *e4 = F("E4M3");
    const ag_format *e5 = F("float8_e5m2");
    if (!e4 || !e5)
        return;
    enum { R = 9, C = 37 };
    static float x[R * C], y[R * C], y2[R * C], amax[R], sc[R], sc2[R];
    for (int i = 0; i < R * C; i++)
        x[i] = rnd_float(20, 12, 1) * (float)(1 + i / C);
    x[3] = NAN;
    x[5 * C + 2] = INFINITY;
    for (int i = 0; i < C; i++)
        x[7 * C + i] = 0.0f; /* an all-zero row */

    size_t nans = 0;
    AG_CHECK(ag_amax_rows(amax, x, R, C, &nans) == AG_OK, "amax_rows");
    size_t totn = 0;
    for (int r = 0; r < R; r++) {
        float a;
        size_t nn;
        ag_amax(&a, x + r * C, C, &nn);
        totn += nn;
        AG_CHECK(ag_test_bits(a) == ag_test_bits(amax[r]), "row %d amax", r);
    }
    AG_CHECK(nans == totn && nans >= 1, "row nan count %zu", nans);
    AG_CHECK(amax[7] == 0.0f && isinf(amax[5]), "zero row, inf row");

    const float amaxc[R] = {1, 2, 0, INFINITY, 1e-30f, 448, 1e30f, 3, 0.5f};
    ag_scale_opts so = ag_scale_opts_default();
    so.pow2 = 1;
    AG_CHECK(ag_compute_scale_rows(sc, amaxc, R, e4, &so) == AG_OK, "scale rows");
    for (int r = 0; r < R; r++) {
        float s1;
        ag_compute_scale(&s1, amaxc[r], e4, &so);
        AG_CHECK(s1 == sc[r], "row %d scale", r);
    }
    memcpy(sc2, amaxc, sizeof sc2);
    AG_CHECK(ag_compute_scale_rows(sc2, sc2, R, e4, &so) == AG_OK &&
                 memcmp(sc, sc2, sizeof sc) == 0,
             "in place");
    /* one bad amax: nothing written */
    float bad_amax[R];
    memcpy(bad_amax, amaxc, sizeof bad_amax);
    bad_amax[6] = NAN;
    memset(sc2, 0, sizeof sc2);
    AG_CHECK(ag_compute_scale_rows(sc2, bad_amax, R, e4, NULL) == AG_ERR_ARG &&
                 sc2[0] == 0.0f,
             "NaN amax row: untouched");
    AG_CHECK(ag_compute_scale_rows(NULL, amaxc, R, e4, NULL) == AG_ERR_NULL, "NULL");
    AG_CHECK(ag_compute_scale_rows(NULL, NULL, 0, e4, NULL) == AG_OK, "rows 0");
    AG_CHECK(ag_compute_scale_rows(sc2 + 1, sc2, R - 1, e4, NULL) == AG_ERR_ALIAS, "alias");
    AG_CHECK(ag_compute_scale_rows(sc2, amaxc, R, NULL, NULL) == AG_ERR_NULL, "fmt");
    ag_scale_opts bo = so;
    bo.margin = 0;
    AG_CHECK(ag_compute_scale_rows(sc2, amaxc, R, e4, &bo) == AG_ERR_ARG, "opts");

    /* quantize_rows against the per-element reference, every rounding mode */
    ag_compute_scale_rows(sc, amax, R, e4, NULL);
    for (int mode = 0; mode <= AG_ROUND_STOCHASTIC; mode++) {
        for (int ovf = 0; ovf <= 1; ovf++) {
            const ag_format *f = ovf ? e5 : e4;
            ag_qopts o = ag_qopts_default();
            o.rounding = (ag_rounding)mode;
            o.overflow = (ag_overflow)ovf;
            o.seed = 1234;
            o.stream = 7;
            o.offset = 1000;
            ag_stats st = {0}, st2 = {0};
            AG_CHECK(ag_quantize_rows(y, x, R, C, sc, f, &o, &st) == AG_OK, "rows");
            for (int r = 0; r < R; r++) {
                for (int c = 0; c < C; c++) {
                    const int i = r * C + c;
                    const float ref = ref_q(f, x[i], sc[r], &o, (uint64_t)i);
                    AG_CHECK(ag_test_same(y[i], ref), "mode %d %s (%d,%d) x %a: %a vs %a",
                             mode, f->name, r, c, (double)x[i], (double)y[i], (double)ref);
                }
                ag_qopts orow = o;
                orow.offset = o.offset + (uint64_t)r * C;
                ag_quantize(y2 + r * C, x + r * C, C, f, sc[r], &orow, &st2);
            }
            AG_CHECK(st.total == R * C && st.total == st2.total &&
                         st.overflow == st2.overflow && st.underflow == st2.underflow &&
                         st.nan == st2.nan && st.nan >= 1,
                     "stats");
            /* thread count does not matter; in place equals out of place */
            for (int th = 1; th <= 4; th += 3) {
                o.threads = th;
                AG_CHECK(ag_quantize_rows(y2, x, R, C, sc, f, &o, NULL) == AG_OK &&
                             memcmp(y, y2, sizeof y) == 0,
                         "threads %d", th);
            }
            memcpy(y2, x, sizeof y2);
            AG_CHECK(ag_quantize_rows(y2, y2, R, C, sc, f, &o, NULL) == AG_OK &&
                         memcmp(y, y2, sizeof y) == 0,
                     "in place");
            /* every code path gives the same bits; an unavailable one is an
             * error before anything is written */
            for (int k = AG_KERNEL_AUTO; k <= AG_KERNEL_AVX512; k++) {
                ag_qopts ok_ = o;
                ok_.kernel = k;
                y2[0] = 12345.0f;
                const ag_status s2 = ag_quantize_rows(y2, x, R, C, sc, f, &ok_, NULL);
                if (ag_kernel_available(k))
                    AG_CHECK(s2 == AG_OK && memcmp(y, y2, sizeof y) == 0, "kernel %d", k);
                else
                    AG_CHECK(s2 == AG_ERR_ARG && y2[0] == 12345.0f, "kernel %d unavailable", k);
            }
        }
    }
    /* one row */
    const float one = 3.3f, s1 = 1.0f;
    float yo;
    AG_CHECK(ag_quantize_rows(&yo, &one, 1, 1, &s1, e4, NULL, NULL) == AG_OK &&
                 yo == 3.25f,
             "one element");

    /* errors: outputs untouched */
    for (int i = 0; i < R * C; i++)
        y2[i] = 77.0f;
    float scb[R];
    memcpy(scb, sc, sizeof scb);
    const float badscales[] = {0.0f, -1.0f, NAN, INFINITY};
    for (size_t k = 0; k < 4; k++) {
        scb[R - 1] = badscales[k];
        AG_CHECK(ag_quantize_rows(y2, x, R, C, scb, e4, NULL, NULL) == AG_ERR_SCALE,
                 "bad scale %g", (double)badscales[k]);
    }
    AG_CHECK(ag_quantize_rows(y2, x, R, C, NULL, e4, NULL, NULL) == AG_ERR_NULL, "scales NULL");
    AG_CHECK(ag_quantize_rows(NULL, x, R, C, sc, e4, NULL, NULL) == AG_ERR_NULL, "y NULL");
    AG_CHECK(ag_quantize_rows(y2, NULL, R, C, sc, e4, NULL, NULL) == AG_ERR_NULL, "x NULL");
    AG_CHECK(ag_quantize_rows(y2, x, R, C, sc, NULL, NULL, NULL) == AG_ERR_NULL, "fmt NULL");
    const ag_format bad = bad_format();
    AG_CHECK(ag_quantize_rows(y2, x, R, C, sc, &bad, NULL, NULL) == AG_ERR_FORMAT, "bad fmt");
    ag_qopts bo2 = ag_qopts_default();
    bo2.rounding = (ag_rounding)99;
    AG_CHECK(ag_quantize_rows(y2, x, R, C, sc, e4, &bo2, NULL) == AG_ERR_ARG, "bad opts");
    AG_CHECK(ag_quantize_rows(y2 + 1, y2, R, C - 1, sc, e4, NULL, NULL) == AG_ERR_ALIAS,
             "partial overlap");
    AG_CHECK(ag_quantize_rows(y2, x, R, C, y2 + 5, e4, NULL, NULL) == AG_ERR_ALIAS,
             "scales inside y");
    AG_CHECK(ag_quantize_rows(y2, x, SIZE_MAX / 2, 3, sc, e4, NULL, NULL) == AG_ERR_SHAPE,
             "shape overflow");
    int untouched = 1;
    for (int i = 0; i < R * C; i++)
        untouched &= y2[i] == 77.0f;
    AG_CHECK(untouched, "y untouched on every error");
    AG_CHECK(ag_quantize_rows(NULL, NULL, 0, 5, NULL, e4, NULL, NULL) == AG_OK &&
                 ag_quantize_rows(NULL, NULL, 5, 0, NULL, e4, NULL, NULL) == AG_OK,
             "empty");

    float am[2] = {5, 5};
    AG_CHECK(ag_amax_rows(am, NULL, 2, 0, &nans) == AG_OK && am[0] == 0 && am[1] == 0 &&
                 nans == 0,
             "cols 0");
    AG_CHECK(ag_amax_rows(NULL, NULL, 0, 4, NULL) == AG_OK, "rows 0");
    AG_CHECK(ag_amax_rows(NULL, x, 2, 4, NULL) == AG_ERR_NULL, "amax NULL");
    AG_CHECK(ag_amax_rows(am, NULL, 2, 4, NULL) == AG_ERR_NULL, "x NULL");
    AG_CHECK(ag_amax_rows(y2 + 2, y2, 4, 4, NULL) == AG_ERR_ALIAS, "amax overlaps x");
    AG_CHECK(ag_amax_rows(am, x, SIZE_MAX / 2, 3, NULL) == AG_ERR_SHAPE, "overflow");
}

/* ---- MX --------------------------------------------------------------------------- */

/* Reference shared-exponent code of one block under a rule (contract in
 * the header): FLOOR from floor(log2 amax), RCEIL by searching, in double
 * (exact for these powers of two), the smallest k with amax <= max * 2^k. */
static unsigned ref_mx_code(const float *x, size_t len, const ag_format *f,
                            ag_mx_scale rule)
{
    double a = 0;
    for (size_t i = 0; i < len; i++) {
        if (isnan(x[i]) || isinf(x[i]))
            return 255;
        if (fabs((double)x[i]) > a)
            a = fabs((double)x[i]);
    }
    if (a == 0)
        return 0;
    int e = ref_floor_log2(a) - f->emax;
    if (rule == AG_MX_SCALE_RCEIL) {
        e -= 2;
        while (a > ldexp((double)f->max_finite, e))
            e++;
    }
    if (e < -127)
        e = -127;
    if (e > 127)
        e = 127;
    return (unsigned)(e + 127);
}

/* Reference MX: codes, scales and the fake-quantized floats. */
static void ref_mx(uint8_t *codes, uint8_t *scales, float *y, const float *x,
                   size_t rows, size_t cols, size_t block, const ag_format *f,
                   const ag_qopts *o)
{
    size_t j = 0;
    for (size_t r = 0; r < rows; r++) {
        for (size_t c0 = 0; c0 < cols; c0 += block) {
            const size_t len = cols - c0 < block ? cols - c0 : block;
            const size_t s = r * cols + c0;
            const unsigned code = ref_mx_code(x + s, len, f, o->mx_scale);
            scales[j++] = (uint8_t)code;
            const float X = (float)ldexp(1.0, (int)code - 127);
            for (size_t i = s; i < s + len; i++) {
                if (code == 255) {
                    codes[i] = (uint8_t)(f->has_nan ? f->nan_code : 0u);
                    y[i] = NAN;
                    continue;
                }
                ag_qopts oo = *o;
                oo.offset = o->offset + i;
                const uint32_t q = ag_to_bits_opts(f, x[i] / X, &oo);
                codes[i] = (uint8_t)q;
                y[i] = ag_to_real(f, q) * X;
            }
        }
    }
}

static void test_mx_hand(void)
{
    const ag_format *e4 = F("float8_e4m3fn"), *e5 = F("float8_e5m2"),
                    *e23 = F("float6_e2m3fn"), *e32 = F("float6_e3m2fn"),
                    *e21 = F("float4_e2m1fn"), *e0 = F("E0M7");
    if (!e4 || !e5 || !e23 || !e32 || !e21 || !e0)
        return;
    AG_CHECK(e4->emax == 8 && e5->emax == 15 && e23->emax == 2 && e32->emax == 4 &&
                 e21->emax == 2,
             "emax_elem of the MX element formats");
    uint8_t c = 0;
    /* the brief's example: amax 3.0 in e4m3 -> floor(log2 3) - 8 = -7 */
    AG_CHECK(ag_mx_scale_code(&c, 3.0f, e4) == AG_OK && c == 127 - 7, "3.0 e4m3: %u", c);
    AG_CHECK(ag_mx_scale_code(&c, 1.0f, e5) == AG_OK && c == 127 - 15, "1.0 e5m2");
    AG_CHECK(ag_mx_scale_code(&c, 6.0f, e21) == AG_OK && c == 127, "6.0 e2m1");
    AG_CHECK(ag_mx_scale_code(&c, 7.5f, e23) == AG_OK && c == 127, "7.5 e2m3");
    AG_CHECK(ag_mx_scale_code(&c, 28.0f, e32) == AG_OK && c == 127, "28 e3m2");
    AG_CHECK(ag_mx_scale_code(&c, 0.0f, e4) == AG_OK && c == 0, "zero");
    AG_CHECK(ag_mx_scale_code(&c, NAN, e4) == AG_OK && c == 255, "NaN");
    AG_CHECK(ag_mx_scale_code(&c, INFINITY, e4) == AG_OK && c == 255, "inf");
    AG_CHECK(ag_mx_scale_code(&c, 0x1p-149f, e4) == AG_OK && c == 0, "tiny clamps to -127");
    AG_CHECK(ag_mx_scale_code(&c, FLT_MAX, e4) == AG_OK && c == 127 + 127 - 8, "huge");
    AG_CHECK(ag_mx_scale_code(&c, FLT_MAX, e0) == AG_OK && c == 254,
             "E0M7 (emax -1): 128 clamps to 127");
    c = 9;
    AG_CHECK(ag_mx_scale_code(&c, -1.0f, e4) == AG_ERR_ARG && c == 9, "negative");
    AG_CHECK(ag_mx_scale_code(NULL, 1.0f, e4) == AG_ERR_NULL, "NULL");
    AG_CHECK(ag_mx_scale_code(&c, 1.0f, NULL) == AG_ERR_NULL, "fmt NULL");

    /* a block of 32 with amax 3.0 in e4m3: X = 2^-7 */
    float x[32], y[32];
    uint8_t codes[32], sc[1];
    for (int i = 0; i < 32; i++)
        x[i] = (float)(i - 16) / 16.0f * 3.0f / 1.0f; /* -3 .. 2.8125 */
    AG_CHECK(ag_mx_encode(codes, sc, x, 1, 32, AG_MX_BLOCK, e4, NULL, NULL) == AG_OK, "enc");
    AG_CHECK(sc[0] == 120, "scale code 120 (2^-7): %u", sc[0]);
    /* -3 / 2^-7 = -384 = -1.5 * 2^8: sign, field 15, mantissa 4 */
    AG_CHECK(codes[0] == 0xFC, "-3.0 -> 0xFC: %#x", codes[0]);
    AG_CHECK(codes[16] == 0x00, "0 -> 0");
    AG_CHECK(ag_mx_decode(y, codes, sc, 1, 32, 32, e4) == AG_OK && y[0] == -3.0f &&
                 y[16] == 0.0f,
             "decode");
    /* saturation: e2m1 block of amax 7.9 -> X = 1, 7.9 clamps to 6 */
    const float xs[2] = {7.9f, -0.2f};
    ag_stats st = {0};
    AG_CHECK(ag_mx_quantize(y, xs, 1, 2, 32, e21, NULL, &st) == AG_OK && y[0] == 6.0f &&
                 y[1] == -0.0f && st.overflow == 1 && st.underflow == 1 && st.total == 2,
             "e2m1 saturates: %g %g", (double)y[0], (double)y[1]);
    /* all-zero block keeps signed zeros; code 0 */
    const float xz[3] = {0.0f, -0.0f, 0.0f};
    uint8_t cz[3];
    AG_CHECK(ag_mx_encode(cz, sc, xz, 1, 3, 32, e4, NULL, NULL) == AG_OK && sc[0] == 0 &&
                 cz[0] == 0 && cz[1] == 0x80,
             "zero block");
    AG_CHECK(ag_mx_quantize(y, xz, 1, 3, 32, e4, NULL, NULL) == AG_OK &&
                 ag_test_bits(y[1]) == 0x80000000u && y[0] == 0.0f,
             "zero block fake-quant");
    /* NaN / inf blocks: scale 255, every element NaN, counted */
    const float xn[4] = {1.0f, NAN, 2.0f, 3.0f};
    uint8_t cn[4], sn[2];
    ag_stats sn_st = {0};
    AG_CHECK(ag_mx_encode(cn, sn, xn, 1, 4, 2, e4, NULL, &sn_st) == AG_OK && sn[0] == 255 &&
                 sn[1] == 127 + 1 - 8 && cn[0] == 0x7f && cn[1] == 0x7f,
             "NaN block: %u %u %#x", sn[0], sn[1], cn[0]);
    AG_CHECK(sn_st.nan == 2 && sn_st.total == 4, "NaN block stats");
    AG_CHECK(ag_mx_decode(y, cn, sn, 1, 4, 2, e4) == AG_OK && isnan(y[0]) && isnan(y[1]) &&
                 y[2] == 2.0f && y[3] == 3.0f,
             "NaN block decodes to NaN");
    const float xi[2] = {1.0f, -INFINITY};
    uint8_t ci[2];
    AG_CHECK(ag_mx_encode(ci, sn, xi, 1, 2, 32, e21, NULL, NULL) == AG_OK && sn[0] == 255 &&
                 ci[0] == 0 && ci[1] == 0,
             "inf block, format without NaN: codes 0");
    AG_CHECK(ag_mx_quantize(y, xi, 1, 2, 32, e5, NULL, NULL) == AG_OK && isnan(y[0]) &&
                 isnan(y[1]),
             "inf block fake-quant NaN");
    /* tiny amax: X = 2^-127, elements still representable when large enough */
    const float xt[2] = {0x1p-120f, 0x1p-140f};
    AG_CHECK(ag_mx_quantize(y, xt, 1, 2, 32, e4, NULL, NULL) == AG_OK && y[0] == 0x1p-120f &&
                 y[1] == 0.0f,
             "tiny block: %a %a", (double)y[0], (double)y[1]);
    /* huge block */
    const float xh[2] = {FLT_MAX, -1e37f};
    AG_CHECK(ag_mx_quantize(y, xh, 1, 2, 32, e4, NULL, NULL) == AG_OK && isfinite(y[0]) &&
                 y[0] == 0x1.cp127f,
             "huge block: %a", (double)y[0]);
}

static void test_mx_random(ag_mx_scale rule)
{
    static const char *names[] = {"float8_e4m3fn", "float8_e5m2", "float6_e2m3fn",
                                  "float6_e3m2fn", "float4_e2m1fn", "E3M4",
                                  "E0M7", "float8_e4m3fnuz", "float8_e8m0fnu"};
    static const size_t blocks[] = {1, 7, 32, 33};
    enum { NMAX = 4 * 70 };
    static float x[NMAX], y[NMAX], yr[NMAX], yd[NMAX];
    static uint8_t codes[NMAX], codesr[NMAX], sc[NMAX], scr[NMAX];
    for (size_t fi = 0; fi < sizeof names / sizeof names[0]; fi++) {
        const ag_format *f = F(names[fi]);
        if (!f)
            continue;
        for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++) {
            for (int rep = 0; rep < 6; rep++) {
                const size_t rows = 1 + rep % 4, cols = rep == 5 ? 1 : 70;
                const size_t n = rows * cols, block = blocks[bi];
                for (size_t i = 0; i < n; i++)
                    x[i] = rnd_float(30, 30, rep == 3) * (float)(1 + i % 5);
                if (rep == 4)
                    for (size_t i = 0; i < n && i < 40; i++)
                        x[i] = 0.0f;
                ag_qopts o = ag_qopts_default();
                o.rounding = (ag_rounding)(rep % 6);
                o.overflow = (ag_overflow)(rep == 2);
                o.seed = 99;
                o.offset = 5;
                o.mx_scale = rule;
                size_t ns = 0;
                AG_CHECK(ag_mx_scale_count(&ns, rows, cols, block) == AG_OK &&
                             ns == rows * ((cols + block - 1) / block),
                         "scale count");
                ref_mx(codesr, scr, yr, x, rows, cols, block, f, &o);
                ag_stats st = {0};
                AG_CHECK(ag_mx_encode(codes, sc, x, rows, cols, block, f, &o, &st) == AG_OK,
                         "encode");
                AG_CHECK(memcmp(sc, scr, ns) == 0, "%s block %zu rep %d: scales", f->name,
                         block, rep);
                int ok = 1;
                for (size_t i = 0; i < n; i++)
                    if (codes[i] != codesr[i]) {
                        ok = 0;
                        AG_CHECK(0, "%s block %zu rep %d: code %zu x %a: %#x vs %#x",
                                 f->name, block, rep, i, (double)x[i], codes[i],
                                 codesr[i]);
                        break;
                    }
                AG_CHECK(ok, "codes");
                AG_CHECK(st.total == n, "stats total");
                /* the round-up rule never clips a block (no clamp at 127
                 * with these amaxes) */
                AG_CHECK(rule != AG_MX_SCALE_RCEIL || st.overflow == 0,
                         "%s block %zu rep %d: RCEIL saturated %llu", f->name, block, rep,
                         (unsigned long long)st.overflow);
                AG_CHECK(ag_mx_decode(yd, codes, sc, rows, cols, block, f) == AG_OK, "decode");
                ag_stats st2 = {0};
                AG_CHECK(ag_mx_quantize(y, x, rows, cols, block, f, &o, &st2) == AG_OK, "q");
                ok = 1;
                for (size_t i = 0; i < n && ok; i++) {
                    ok = ag_test_same(yd[i], yr[i]) && ag_test_same(y[i], yr[i]);
                    AG_CHECK(ok, "%s block %zu rep %d: y[%zu] x %a: q %a dec %a ref %a",
                             f->name, block, rep, i, (double)x[i], (double)y[i],
                             (double)yd[i], (double)yr[i]);
                }
                AG_CHECK(st2.total == st.total && st2.nan == st.nan &&
                             st2.overflow == st.overflow && st2.underflow == st.underflow,
                         "fused stats = encode stats");
                /* threads and in place */
                o.threads = 3;
                memcpy(yd, x, n * sizeof *x);
                AG_CHECK(ag_mx_quantize(yd, yd, rows, cols, block, f, &o, NULL) == AG_OK &&
                             memcmp(yd, y, n * sizeof *y) == 0,
                         "in place, threads 3");
            }
        }
    }
}

/* Long inputs: the encode staging buffer (64 Ki floats) is flushed many
 * times, around NaN blocks and inside blocks longer than itself; every code
 * path (kernel) gives the same bits, an unavailable one is AG_ERR_ARG. */
static void test_mx_large(void)
{
    const ag_format *f = F("float8_e5m2");
    if (!f)
        return;
    enum { N = 200000 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y),
          *yr = malloc(N * sizeof *yr), *yd = malloc(N * sizeof *yd);
    uint8_t *c = malloc(N), *cr = malloc(N), *sc = malloc(N), *scr = malloc(N);
    if (!x || !y || !yr || !yd || !c || !cr || !sc || !scr) {
        AG_CHECK(0, "malloc");
        goto done;
    }
    for (size_t i = 0; i < N; i++)
        x[i] = rnd_float(20, 20, 0);
    for (size_t i = 1000; i < N; i += 70001)
        x[i] = NAN;
    static const struct { size_t rows, cols, block; } shapes[] = {
        {1, N, 32}, {4, N / 4, 33}, {1, N, 70000}, {2, N / 2, 100000}, {1, N, 1}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const size_t rows = shapes[si].rows, cols = shapes[si].cols, block = shapes[si].block;
        ag_qopts o = ag_qopts_default();
        o.rounding = si == 1 ? AG_ROUND_STOCHASTIC : AG_ROUND_NEAREST_EVEN;
        o.seed = 5;
        ref_mx(cr, scr, yr, x, rows, cols, block, f, &o);
        size_t ns = 0;
        ag_mx_scale_count(&ns, rows, cols, block);
        ag_stats st = {0}, st2 = {0};
        AG_CHECK(ag_mx_encode(c, sc, x, rows, cols, block, f, &o, &st) == AG_OK, "enc");
        AG_CHECK(memcmp(c, cr, N) == 0 && memcmp(sc, scr, ns) == 0, "shape %zu codes", si);
        AG_CHECK(ag_mx_decode(yd, c, sc, rows, cols, block, f) == AG_OK, "dec");
        AG_CHECK(ag_mx_quantize(y, x, rows, cols, block, f, &o, &st2) == AG_OK, "q");
        int ok = 1;
        for (size_t i = 0; i < N && ok; i++)
            ok = ag_test_same(y[i], yr[i]) && ag_test_same(yd[i], yr[i]);
        AG_CHECK(ok, "shape %zu values", si);
        AG_CHECK(st.total == N && st2.total == N && st.nan == st2.nan && st.nan >= block &&
                     st.overflow == st2.overflow && st.underflow == st2.underflow,
                 "shape %zu stats", si);
        for (int k = AG_KERNEL_AUTO; k <= AG_KERNEL_AVX512; k++) {
            ag_qopts ok_ = o;
            ok_.kernel = k;
            ok_.threads = k + 1;
            yd[0] = 12345.0f;
            const ag_status s2 = ag_mx_quantize(yd, x, rows, cols, block, f, &ok_, NULL);
            if (ag_kernel_available(k))
                AG_CHECK(s2 == AG_OK && memcmp(yd, y, N * sizeof *y) == 0, "kernel %d", k);
            else
                AG_CHECK(s2 == AG_ERR_ARG && yd[0] == 12345.0f, "kernel %d unavailable", k);
        }
    }
done:
    free(x);
    free(y);
    free(yr);
    free(yd);
    free(c);
    free(cr);
    free(sc);
    free(scr);
}

/* The round-up rule (AG_MX_SCALE_RCEIL), exhaustively where it can differ
 * from the floor: within one binade of amax the choice depends only on the
 * mantissa against max_finite's, so every one of the 2^23 mantissas is
 * checked in one binade for each MX element format, and in every binade (all 256 exponent
 * fields, subnormals included) the mantissas around max_finite's and the
 * ends; each against the double reference, and with the property the rule
 * exists for: amax / X <= max_finite (unless the clamp at 127 was hit),
 * and X is the smallest such power of two (X / 2 would clip). */
static void test_mx_rceil(void)
{
    static const char *names[] = {"float8_e4m3fn", "float8_e5m2", "float6_e2m3fn",
                                  "float6_e3m2fn", "float4_e2m1fn", "E3M4", "E0M7",
                                  "E7M0", "float8_e4m3fnuz"};
    for (size_t fi = 0; fi < sizeof names / sizeof names[0]; fi++) {
        const ag_format *f = F(names[fi]);
        if (!f)
            continue;
        uint32_t mmax;
        const float mxf = f->max_finite;
        memcpy(&mmax, &mxf, sizeof mmax);
        mmax &= 0x7fffffu;
        long bad = 0;
        for (uint32_t ef = 0; ef < 255; ef++) {
            /* every mantissa of [1, 2) for the five MX element formats */
            const int full = ef == 127 && fi < 5;
            uint32_t ms[8] = {0, 1, mmax ? mmax - 1 : 0, mmax, mmax + 1 <= 0x7fffffu ? mmax + 1 : 0,
                              0x400000u, 0x7ffffeu, 0x7fffffu};
            const uint32_t count = full ? 0x800000u : 8u;
            for (uint32_t k = 0; k < count; k++) {
                const uint32_t m = full ? k : ms[k];
                const uint32_t bits = ef << 23 | m;
                float a;
                memcpy(&a, &bits, sizeof a);
                if (a == 0.0f)
                    continue;
                uint8_t c = 0, cf = 0;
                const unsigned ref = ref_mx_code(&a, 1, f, AG_MX_SCALE_RCEIL);
                if (ag_mx_scale_code_rule(&c, a, f, AG_MX_SCALE_RCEIL) != AG_OK || c != ref ||
                    ag_mx_scale_code_rule(&cf, a, f, AG_MX_SCALE_FLOOR) != AG_OK ||
                    (c != cf && c != cf + 1)) {
                    if (bad++ < 5)
                        AG_CHECK(0, "%s amax %a: rceil %u ref %u floor %u", f->name,
                                 (double)a, c, ref, cf);
                    continue;
                }
                const double X = ldexp(1.0, (int)c - 127);
                const int fits = (double)a / X <= (double)mxf;
                const int minimal = c == 1 || (double)a / (X / 2) > (double)mxf;
                if (!(c == 254 || fits) || !(c <= 1 || minimal)) {
                    if (bad++ < 5)
                        AG_CHECK(0, "%s amax %a: code %u clips or is not minimal", f->name,
                                 (double)a, c);
                }
            }
        }
        AG_CHECK(bad == 0, "%s: %ld RCEIL codes wrong", f->name, bad);
    }
    /* hand cases: e4m3 (max 448): 448 fits X = 1, 449 needs 2; the floor
     * keeps X = 1 for both (449 then saturates); e2m1 (max 6): 7 -> X = 2 */
    const ag_format *e4 = F("float8_e4m3fn"), *e21 = F("float4_e2m1fn");
    if (!e4 || !e21)
        return;
    uint8_t c = 0;
    AG_CHECK(ag_mx_scale_code_rule(&c, 448.0f, e4, AG_MX_SCALE_RCEIL) == AG_OK && c == 127,
             "448 e4m3 rceil: %u", c);
    AG_CHECK(ag_mx_scale_code_rule(&c, 449.0f, e4, AG_MX_SCALE_RCEIL) == AG_OK && c == 128,
             "449 e4m3 rceil: %u", c);
    AG_CHECK(ag_mx_scale_code_rule(&c, 449.0f, e4, AG_MX_SCALE_FLOOR) == AG_OK && c == 127,
             "449 e4m3 floor: %u", c);
    AG_CHECK(ag_mx_scale_code(&c, 449.0f, e4) == AG_OK && c == 127, "default is the floor");
    AG_CHECK(ag_mx_scale_code_rule(&c, 7.0f, e21, AG_MX_SCALE_RCEIL) == AG_OK && c == 128,
             "7 e2m1 rceil: %u", c);
    AG_CHECK(ag_mx_scale_code_rule(&c, 0.0f, e4, AG_MX_SCALE_RCEIL) == AG_OK && c == 0, "zero");
    AG_CHECK(ag_mx_scale_code_rule(&c, NAN, e4, AG_MX_SCALE_RCEIL) == AG_OK && c == 255, "NaN");
    AG_CHECK(ag_mx_scale_code_rule(&c, INFINITY, e4, AG_MX_SCALE_RCEIL) == AG_OK && c == 255,
             "inf");
    c = 9;
    AG_CHECK(ag_mx_scale_code_rule(&c, 1.0f, e4, (ag_mx_scale)2) == AG_ERR_ARG && c == 9,
             "unknown rule");
    AG_CHECK(ag_mx_scale_code_rule(&c, -1.0f, e4, AG_MX_SCALE_RCEIL) == AG_ERR_ARG && c == 9,
             "negative");
    AG_CHECK(ag_mx_scale_code_rule(NULL, 1.0f, e4, AG_MX_SCALE_RCEIL) == AG_ERR_NULL, "NULL");
    AG_CHECK(ag_mx_scale_code_rule(&c, 1.0f, NULL, AG_MX_SCALE_RCEIL) == AG_ERR_NULL,
             "fmt NULL");
    /* a whole block: the floor (X = 1) saturates 470 to 448, the round-up
     * rule (X = 2) keeps it: 235 -> 240 on e4m3's grid, y = 480 */
    const float xb[2] = {470.0f, 1.0f};
    float y[2];
    ag_qopts o = ag_qopts_default();
    ag_stats st = {0};
    AG_CHECK(ag_mx_quantize(y, xb, 1, 2, 32, e4, &o, &st) == AG_OK && y[0] == 448.0f &&
                 st.overflow == 1,
             "floor clips 470");
    o.mx_scale = AG_MX_SCALE_RCEIL;
    st = (ag_stats){0};
    AG_CHECK(ag_mx_quantize(y, xb, 1, 2, 32, e4, &o, &st) == AG_OK && y[0] == 480.0f &&
                 y[1] == 1.0f && st.overflow == 0,
             "rceil: 470 -> 480 on the X = 2 grid, no overflow (%g %g)", (double)y[0],
             (double)y[1]);
    o.mx_scale = (ag_mx_scale)7;
    AG_CHECK(ag_mx_quantize(y, xb, 1, 2, 32, e4, &o, NULL) == AG_ERR_ARG, "bad mx_scale");
    AG_CHECK(ag_quantize(y, xb, 2, e4, 1.0f, &o, NULL) == AG_ERR_ARG,
             "bad mx_scale is a bad ag_qopts everywhere");
}

/* STE backward of the per-row and MX fake quantizers, against loops. */
static void test_backward(void)
{
    const ag_format *f = F("float8_e4m3fn"), *f2 = F("float4_e2m1fn");
    if (!f || !f2)
        return;
    enum { R = 5, C = 75, N = R * C };
    static float x[N], dy[N], dx[N], dx0[N], ref[N], sc[R];
    for (int i = 0; i < N; i++) {
        x[i] = rnd_float(10, 12, 1);
        dy[i] = rnd_float(4, 4, 0);
        dx0[i] = rnd_float(4, 4, 0);
    }
    for (int i = 150; i < 160; i++)
        x[i] = 0.0f; /* an all-zero block when block <= 10 */
    for (int r = 0; r < R; r++)
        sc[r] = r == 0 ? 1.0f : 0.1f * (float)r;
    for (int k = 0; k <= 3; k++) { /* ste x MX rule */
        const int ste = k & 1;
        ag_qopts o = ag_qopts_default();
        o.mx_scale = k > 1 ? AG_MX_SCALE_RCEIL : AG_MX_SCALE_FLOOR;
        o.ste = (ag_ste)ste;
        /* rows */
        for (int r = 0; r < R; r++)
            for (int c = 0; c < C; c++) {
                const int i = r * C + c;
                const int pass = !ste || !(fabsf(x[i] / sc[r]) > f->max_finite);
                ref[i] = pass ? dx0[i] + dy[i] : dx0[i];
            }
        memcpy(dx, dx0, sizeof dx);
        AG_CHECK(ag_quantize_rows_backward(dx, dy, ste ? x : NULL, R, C, sc, f, &o) == AG_OK &&
                     memcmp(dx, ref, sizeof dx) == 0,
                 "rows backward ste %d", ste);
        /* MX, a few block sizes and two element formats */
        static const size_t blocks[] = {1, 10, 32, 75};
        for (size_t bi = 0; bi < 4; bi++) {
            for (int fi = 0; fi < 2; fi++) {
                const ag_format *g = fi ? f2 : f;
                const size_t block = blocks[bi];
                for (size_t r = 0; r < R; r++)
                    for (size_t c0 = 0; c0 < C; c0 += block) {
                        const size_t len = C - c0 < block ? C - c0 : block;
                        const size_t s0 = r * C + c0;
                        const unsigned code = ref_mx_code(x + s0, len, g, o.mx_scale);
                        const float X = (float)ldexp(1.0, (int)code - 127);
                        for (size_t i = s0; i < s0 + len; i++) {
                            int pass = 1;
                            if (ste)
                                pass = code == 255 ? !isinf(x[i])
                                                   : !(fabsf(x[i] / X) > g->max_finite);
                            ref[i] = pass ? dx0[i] + dy[i] : dx0[i];
                        }
                    }
                memcpy(dx, dx0, sizeof dx);
                AG_CHECK(ag_mx_quantize_backward(dx, dy, ste ? x : NULL, R, C, block, g, &o) ==
                                 AG_OK &&
                             memcmp(dx, ref, sizeof dx) == 0,
                         "mx backward ste %d block %zu %s", ste, block, g->name);
            }
        }
        /* accumulates; dx == dy doubles */
        memcpy(dx, dy, sizeof dx);
        AG_CHECK(ag_mx_quantize_backward(dx, dx, x, R, C, 32, f, &o) == AG_OK, "dx == dy");
        int ok = 1;
        for (int i = 0; i < N; i++)
            ok &= dx[i] == dy[i] + dy[i] || (ste && dx[i] == dy[i]);
        AG_CHECK(ok, "dx == dy accumulates");
    }
    /* a saturated element is cut by the clipped STE: e2m1 block {7.9, 1} */
    const float xs[2] = {7.9f, 1.0f}, gs[2] = {1.0f, 1.0f};
    float ds[2] = {0.0f, 0.0f};
    ag_qopts cl = ag_qopts_default();
    cl.ste = AG_STE_CLIPPED;
    AG_CHECK(ag_mx_quantize_backward(ds, gs, xs, 1, 2, 32, f2, &cl) == AG_OK && ds[0] == 0.0f &&
                 ds[1] == 1.0f,
             "clipped e2m1: %g %g", (double)ds[0], (double)ds[1]);
    const float xb[3] = {448.0f, 449.0f, 1.0f}, gb[3] = {1.0f, 1.0f, 1.0f};
    float db[3] = {0.0f, 0.0f, 0.0f};
    AG_CHECK(ag_mx_quantize_backward(db, gb, xb, 1, 3, 32, f, &cl) == AG_OK && db[0] == 1.0f &&
                 db[1] == 0.0f && db[2] == 1.0f,
             "clipped e4m3 at the boundary: |x/X| <= max passes (X = 1)");

    /* errors: dx untouched */
    for (int i = 0; i < N; i++)
        dx[i] = 3.0f;
    AG_CHECK(ag_quantize_rows_backward(dx, dy, NULL, R, C, sc, f, &cl) == AG_ERR_NULL,
             "rows clipped needs x");
    AG_CHECK(ag_quantize_rows_backward(NULL, dy, x, R, C, sc, f, NULL) == AG_ERR_NULL, "dx");
    AG_CHECK(ag_quantize_rows_backward(dx, NULL, x, R, C, sc, f, NULL) == AG_ERR_NULL, "dy");
    AG_CHECK(ag_quantize_rows_backward(dx, dy, x, R, C, NULL, f, NULL) == AG_ERR_NULL, "sc");
    AG_CHECK(ag_quantize_rows_backward(dx, dy, x, R, C, sc, NULL, NULL) == AG_ERR_NULL, "fmt");
    float scb[R] = {1, 1, 1, 0, 1};
    AG_CHECK(ag_quantize_rows_backward(dx, dy, x, R, C, scb, f, NULL) == AG_ERR_SCALE, "scale");
    AG_CHECK(ag_quantize_rows_backward(dx + 1, dx, x, R, C - 1, sc, f, NULL) == AG_ERR_ALIAS,
             "dx/dy overlap");
    AG_CHECK(ag_quantize_rows_backward(dx, dy, dx + 1, R, C - 1, sc, f, &cl) == AG_ERR_ALIAS,
             "dx/x overlap");
    AG_CHECK(ag_quantize_rows_backward(dx, dy, x, SIZE_MAX / 2, 3, sc, f, NULL) == AG_ERR_SHAPE,
             "shape");
    AG_CHECK(ag_mx_quantize_backward(dx, dy, NULL, R, C, 32, f, &cl) == AG_ERR_NULL,
             "mx clipped needs x");
    AG_CHECK(ag_mx_quantize_backward(dx, dy, x, R, C, 0, f, NULL) == AG_ERR_ARG, "block 0");
    AG_CHECK(ag_mx_quantize_backward(dx, dy, x, R, C, 32, F("BF16"), NULL) == AG_ERR_STORAGE,
             "16-bit");
    AG_CHECK(ag_mx_quantize_backward(dx + 1, dx, x, R, C - 1, 32, f, NULL) == AG_ERR_ALIAS,
             "mx dx/dy overlap");
    AG_CHECK(ag_mx_quantize_backward(dx, dy, dx + 2, R, C - 1, 32, f, &cl) == AG_ERR_ALIAS,
             "mx dx/x overlap");
    ag_qopts bo = ag_qopts_default();
    bo.ste = (ag_ste)9;
    AG_CHECK(ag_mx_quantize_backward(dx, dy, x, R, C, 32, f, &bo) == AG_ERR_ARG, "mx opts");
    AG_CHECK(ag_quantize_rows_backward(dx, dy, x, R, C, sc, f, &bo) == AG_ERR_ARG, "rows opts");
    int untouched = 1;
    for (int i = 0; i < N; i++)
        untouched &= dx[i] == 3.0f;
    AG_CHECK(untouched, "dx untouched on error");
    AG_CHECK(ag_mx_quantize_backward(NULL, NULL, NULL, 0, 5, 32, f, NULL) == AG_OK &&
                 ag_quantize_rows_backward(NULL, NULL, NULL, 3, 0, NULL, f, NULL) == AG_OK,
             "empty");
}

static void test_mx_errors(void)
{
    const ag_format *e4 = F("float8_e4m3fn"), *e21 = F("float4_e2m1fn"),
                    *bf = F("BF16");
    if (!e4 || !e21 || !bf)
        return;
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, y[8];
    uint8_t codes[8], sc[8];
    size_t ns = 0;
    AG_CHECK(ag_mx_scale_count(NULL, 1, 1, 1) == AG_ERR_NULL, "count NULL");
    AG_CHECK(ag_mx_scale_count(&ns, 1, 1, 0) == AG_ERR_ARG, "block 0");
    AG_CHECK(ag_mx_scale_count(&ns, SIZE_MAX, 64, 32) == AG_ERR_SHAPE, "overflow");
    AG_CHECK(ag_mx_scale_count(&ns, 0, 64, 32) == AG_OK && ns == 0, "rows 0");
    AG_CHECK(ag_mx_scale_count(&ns, 3, 0, 32) == AG_OK && ns == 0, "cols 0");
    AG_CHECK(ag_mx_scale_count(&ns, 3, 65, 32) == AG_OK && ns == 9, "partial");

    memset(codes, 0xAA, sizeof codes);
    memset(sc, 0xAA, sizeof sc);
    AG_CHECK(ag_mx_encode(codes, sc, x, 1, 8, 0, e4, NULL, NULL) == AG_ERR_ARG, "block 0");
    AG_CHECK(ag_mx_encode(codes, sc, x, 1, 8, 4, bf, NULL, NULL) == AG_ERR_STORAGE, "16-bit");
    AG_CHECK(ag_mx_encode(codes, sc, x, 1, 8, 4, NULL, NULL, NULL) == AG_ERR_NULL, "fmt");
    const ag_format bad = bad_format();
    AG_CHECK(ag_mx_encode(codes, sc, x, 1, 8, 4, &bad, NULL, NULL) == AG_ERR_FORMAT, "bad");
    AG_CHECK(ag_mx_encode(NULL, sc, x, 1, 8, 4, e4, NULL, NULL) == AG_ERR_NULL, "codes NULL");
    AG_CHECK(ag_mx_encode(codes, NULL, x, 1, 8, 4, e4, NULL, NULL) == AG_ERR_NULL, "sc NULL");
    AG_CHECK(ag_mx_encode(codes, sc, NULL, 1, 8, 4, e4, NULL, NULL) == AG_ERR_NULL, "x NULL");
    ag_qopts bo = ag_qopts_default();
    bo.overflow = (ag_overflow)5;
    AG_CHECK(ag_mx_encode(codes, sc, x, 1, 8, 4, e4, &bo, NULL) == AG_ERR_ARG, "opts");
    AG_CHECK(ag_mx_encode(codes, codes + 4, x, 1, 8, 4, e4, NULL, NULL) == AG_ERR_ALIAS,
             "codes/scales overlap");
    AG_CHECK(ag_mx_encode((uint8_t *)x, sc, x, 1, 8, 4, e4, NULL, NULL) == AG_ERR_ALIAS,
             "codes inside x");
    AG_CHECK(ag_mx_encode(codes, sc, x, SIZE_MAX / 2, 3, 4, e4, NULL, NULL) == AG_ERR_SHAPE,
             "shape");
    int untouched = 1;
    for (int i = 0; i < 8; i++)
        untouched &= codes[i] == 0xAA && sc[i] == 0xAA;
    AG_CHECK(untouched, "encode outputs untouched on error");
    AG_CHECK(ag_mx_encode(NULL, NULL, NULL, 0, 8, 4, e4, NULL, NULL) == AG_OK, "empty");

    /* decode: a code outside the 4-bit format, nothing written */
    AG_CHECK(ag_mx_encode(codes, sc, x, 1, 8, 4, e21, NULL, NULL) == AG_OK, "e2m1 encode");
    for (int i = 0; i < 8; i++)
        y[i] = 55.0f;
    codes[7] = 16;
    AG_CHECK(ag_mx_decode(y, codes, sc, 1, 8, 4, e21) == AG_ERR_CODE, "bad code");
    codes[7] = 0;
    AG_CHECK(ag_mx_decode(NULL, codes, sc, 1, 8, 4, e21) == AG_ERR_NULL, "y NULL");
    AG_CHECK(ag_mx_decode(y, NULL, sc, 1, 8, 4, e21) == AG_ERR_NULL, "codes NULL");
    AG_CHECK(ag_mx_decode(y, codes, NULL, 1, 8, 4, e21) == AG_ERR_NULL, "scales NULL");
    AG_CHECK(ag_mx_decode(y, codes, sc, 1, 8, 0, e21) == AG_ERR_ARG, "block 0");
    AG_CHECK(ag_mx_decode(y, codes, sc, 1, 8, 4, bf) == AG_ERR_STORAGE, "16-bit");
    AG_CHECK(ag_mx_decode(y, (const uint8_t *)y, sc, 1, 8, 4, e21) == AG_ERR_ALIAS,
             "codes inside y");
    AG_CHECK(ag_mx_decode(y, codes, (const uint8_t *)(y + 7), 1, 8, 4, e21) == AG_ERR_ALIAS,
             "scales inside y");
    untouched = 1;
    for (int i = 0; i < 8; i++)
        untouched &= y[i] == 55.0f;
    AG_CHECK(untouched, "decode output untouched on error");
    AG_CHECK(ag_mx_decode(NULL, NULL, NULL, 4, 0, 4, e21) == AG_OK, "empty");

    AG_CHECK(ag_mx_quantize(y, x, 1, 8, 0, e4, NULL, NULL) == AG_ERR_ARG, "block 0");
    AG_CHECK(ag_mx_quantize(y, NULL, 1, 8, 4, e4, NULL, NULL) == AG_ERR_NULL, "x NULL");
    AG_CHECK(ag_mx_quantize(NULL, x, 1, 8, 4, e4, NULL, NULL) == AG_ERR_NULL, "y NULL");
    AG_CHECK(ag_mx_quantize(x + 1, x, 1, 7, 4, e4, NULL, NULL) == AG_ERR_ALIAS, "overlap");
    AG_CHECK(ag_mx_quantize(y, x, 1, 8, 4, bf, NULL, NULL) == AG_ERR_STORAGE, "16-bit");
    AG_CHECK(ag_mx_quantize(y, x, 1, 8, 4, e4, &bo, NULL) == AG_ERR_ARG, "opts");
    AG_CHECK(x[1] == 2.0f, "x untouched");
    AG_CHECK(ag_mx_quantize(NULL, NULL, 0, 0, 4, e4, NULL, NULL) == AG_OK, "empty");
}

int main(void)
{
    const char *env = getenv("AG_TEST_SEED");
    const uint64_t seed = env ? strtoull(env, NULL, 0) : 20261125u;
    rng_state = seed;
    printf("test_scale: seed %" PRIu64 "\n", seed);
    test_amax();
    test_history();
    test_compute_scale();
    test_rows();
    test_mx_hand();
    test_mx_random(AG_MX_SCALE_FLOOR);
    test_mx_random(AG_MX_SCALE_RCEIL);
    test_mx_rceil();
    test_mx_large();
    test_backward();
    test_mx_errors();
    return ag_test_summary("test_scale");
}
