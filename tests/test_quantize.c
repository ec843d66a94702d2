/* SPDX-License-Identifier: MIT */
/*
 * test_quantize.c — the bulk operations against their scalar definitions:
 *
 *  - ag_quantize: y[i] == to_real(to_bits_opts(x[i] / scale)) * scale, bit
 *    for bit (float32 division and product), NaN inputs NaN, for every
 *    registry format, several scales (powers of two and not), every
 *    rounding mode (stochastic: stream element offset + i), both overflow
 *    policies, every available kernel, sizes 0 .. a few thousand (odd ones
 *    included) and in place; one large array with the library's threads;
 *  - stats against counts computed here from the reference's flags;
 *  - ag_encode_u8 / _u16 codes == to_bits_opts, decode * scale == quantize;
 *  - ag_quantize_backward (identity, clipped; accumulation doubles dx),
 *    ag_dequantize, ag_dequantize_backward.
 *
 * Random data from a seeded generator (seed printed; AG_TEST_SEED).
 */
#include "ag_test.h"
#include "ag_test_rng.h"
#include "ref/ag_ref.h"

#include <altgrad.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>


static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* Data around the format's range at this scale: values near codes, random
 * magnitudes from far below the smallest to far above the largest, and a
 * sprinkle of +-0, +-inf, NaN and float32 extremes. */
static void fill(float *x, size_t n, const ag_format *f, float scale)
{
    for (size_t i = 0; i < n; i++) {
        const uint64_t r = rng_next();
        float v;
        switch (r % 16) {
        case 0:
            v = ag_test_float((uint32_t)(r >> 32));
            break;
        case 1: {
            static const float sp[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, FLT_MAX, -FLT_MAX,
                                       0x1p-149f, FLT_MIN, 1.0f};
            v = sp[(r >> 8) % (sizeof sp / sizeof sp[0])];
            break;
        }
        case 2:
        case 3:
        case 4: { /* a code's value, nudged by a few ulps */
            const uint32_t c = (uint32_t)((r >> 8) % f->ncodes);
            v = ag_to_real(f, c) * scale;
            if (isnan(v))
                v = 1.0f;
            for (int k = (int)((r >> 40) % 5); k > 0; k--)
                v = nextafterf(v, (r >> 50) & 1 ? INFINITY : -INFINITY);
            break;
        }
        default: { /* log-uniform from min_subnormal/8 to max*4 */
            const float lo = log2f(f->min_subnormal) - 3.0f, hi = log2f(f->max_finite) + 2.0f;
            const float u = (float)(r >> 40) * 0x1p-24f;
            v = exp2f(lo + (hi - lo) * u) * scale;
            if ((r >> 3) & 1)
                v = -v;
            break;
        }
        }
        x[i] = v;
    }
}

/* the scalar definition of element i */
static float expect_q(const ag_format *f, float x, float scale, ag_qopts o, size_t i)
{
    if (isnan(x))
        return NAN;
    o.offset += i;
    return ag_to_real(f, ag_to_bits_opts(f, x / scale, &o)) * scale;
}

/* stats counted here: the reference's flags on x / scale */
static void expect_stats(ag_stats *s, const ag_ref *r, const ag_format *f, const float *x,
                         size_t n, float scale, const ag_qopts *o)
{
    for (size_t i = 0; i < n; i++) {
        const float v = x[i] / scale;
        unsigned fl = 0;
        const uint32_t rnd = ag_ref_random_u32(o->seed, o->stream, o->offset + i);
        const uint32_t c = ag_ref_encode(r, v, o->rounding, o->overflow, rnd, &fl);
        s->total++;
        /* nan: NaN inputs and NaN codes (unsigned negative, E8M0 zero...);
         * an overflow to the NaN code (AG_OVERFLOW_IEEE, formats with NaN
         * but no inf) counts as overflow only, as in ag_exp_hist's bins —
         * the header's "NaN outputs" reads either way (reported) */
        if (isnan(x[i]) || (r->kind[c] == AG_REF_NANCODE && !(fl & AG_REF_OVERFLOW)))
            s->nan++;
        if (fl & AG_REF_OVERFLOW)
            s->overflow++;
        /* underflow: a nonzero finite x / scale that rounded to zero (the
         * reference's flag), or a nonzero x whose quotient x / scale is
         * already 0 in float32 (x tiny, scale huge), in a format with zero:
         * the header counts nonzero INPUTS that became zero */
        if ((fl & AG_REF_UNDERFLOW) ||
            (v == 0.0f && x[i] != 0.0f && !f->no_zero))
            s->underflow++;
    }
}

static int stats_eq(const ag_stats *a, const ag_stats *b)
{
    return a->total == b->total && a->overflow == b->overflow && a->underflow == b->underflow &&
           a->nan == b->nan;
}

static const float scales[] = {1.0f, 0.5f, 0x1p-10f, 3.7f, 1e-3f, 65536.0f, 0.3f, 1e-30f, 1e30f};

static void test_quantize_format(const ag_format *f)
{
    ag_ref *r = ag_ref_from_format(f);
    if (!r) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    static const size_t sizes[] = {0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 100, 255, 1000, 1023, 3001};
    const size_t maxn = 3001;
    float *x = xmalloc(maxn * sizeof *x), *y = xmalloc(maxn * sizeof *y), *z = xmalloc(maxn * sizeof *z);
    uint8_t *c8 = xmalloc(maxn);
    uint16_t *c16 = xmalloc(maxn * sizeof *c16);
    unsigned bad = 0;
    int combo = 0;
    for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++) {
        const float scale = scales[si];
        for (int mode = 0; mode <= AG_ROUND_STOCHASTIC; mode++)
            for (int pol = 0; pol <= 1; pol++)
                for (int kern = AG_KERNEL_AUTO; kern <= AG_KERNEL_AVX512; kern++) {
                    if (!ag_kernel_available(kern))
                        continue;
                    combo++;
                    /* every kernel on every combination would be slow: AUTO
                     * always, each other kernel on a rotating third */
                    if (kern != AG_KERNEL_AUTO && (combo % 3) != 0)
                        continue;
                    ag_qopts o = ag_qopts_default();
                    o.rounding = (ag_rounding)mode;
                    o.overflow = (ag_overflow)pol;
                    o.kernel = kern;
                    o.seed = rng_next();
                    o.stream = rng_next() & 7;
                    o.offset = rng_next() & 0xffffff;
                    o.threads = 1;
                    const size_t n = sizes[(size_t)combo % (sizeof sizes / sizeof sizes[0])];
                    fill(x, n, f, scale);
                    ag_stats st = {0}, want = {0};
                    st.total = 5; /* the call adds to the counters */
                    want.total = 5;
                    ag_status rc = ag_quantize(y, x, n, f, scale, &o, &st);
                    AG_CHECK(rc == AG_OK, "%s quantize: %s", f->name, ag_status_string(rc));
                    for (size_t i = 0; i < n; i++) {
                        const float w = expect_q(f, x[i], scale, o, i);
                        if (!ag_test_same(y[i], w) && bad++ < 10)
                            AG_CHECK(0, "%s scale %g %s %s kernel %s: x[%zu] = %a -> %a, expected %a",
                                     f->name, (double)scale, mode == 5 ? "stochastic" : "mode",
                                     pol ? "ieee" : "saturate", ag_kernel_name(kern), i,
                                     (double)x[i], (double)y[i], (double)w);
                    }
                    expect_stats(&want, r, f, x, n, scale, &o);
                    AG_CHECK(stats_eq(&st, &want),
                             "%s scale %g mode %d pol %d: stats total %" PRIu64 "/%" PRIu64
                             " overflow %" PRIu64 "/%" PRIu64 " underflow %" PRIu64 "/%" PRIu64
                             " nan %" PRIu64 "/%" PRIu64,
                             f->name, (double)scale, mode, pol, st.total, want.total, st.overflow,
                             want.overflow, st.underflow, want.underflow, st.nan, want.nan);
                    /* in place: same bits */
                    memcpy(z, x, n * sizeof *z);
                    rc = ag_quantize(z, z, n, f, scale, &o, NULL);
                    AG_CHECK(rc == AG_OK && (n == 0 || memcmp(z, y, n * sizeof *z) == 0),
                             "%s: in-place quantize differs", f->name);
                    /* encode: codes == to_bits_opts; decode * scale == quantize */
                    ag_stats se = {0};
                    rc = ag_encode_u16(c16, x, n, f, scale, &o, &se);
                    AG_CHECK(rc == AG_OK, "%s encode_u16: %s", f->name, ag_status_string(rc));
                    AG_CHECK(stats_eq(&se, &(ag_stats){want.total - 5, want.overflow, want.underflow, want.nan}),
                             "%s: encode_u16 stats differ from quantize's", f->name);
                    for (size_t i = 0; i < n; i++) {
                        ag_qopts oi = o;
                        oi.offset += i;
                        const uint32_t wc = ag_to_bits_opts(f, x[i] / scale, &oi);
                        if (c16[i] != wc && bad++ < 10)
                            AG_CHECK(0, "%s: encode_u16 x[%zu] = %a -> %#x, expected %#x", f->name, i,
                                     (double)x[i], c16[i], wc);
                    }
                    rc = ag_decode_u16(z, c16, n, f, scale);
                    AG_CHECK(rc == AG_OK, "%s decode_u16: %s", f->name, ag_status_string(rc));
                    for (size_t i = 0; i < n; i++)
                        if (!isnan(x[i]) && !ag_test_same(z[i], y[i]) && bad++ < 10)
                            AG_CHECK(0, "%s: decode_u16(encode) [%zu] %a != quantize %a", f->name, i,
                                     (double)z[i], (double)y[i]);
                    if (f->bits <= 8) {
                        rc = ag_encode_u8(c8, x, n, f, scale, &o, NULL);
                        AG_CHECK(rc == AG_OK, "%s encode_u8: %s", f->name, ag_status_string(rc));
                        for (size_t i = 0; i < n; i++)
                            if (c8[i] != c16[i] && bad++ < 10)
                                AG_CHECK(0, "%s: encode_u8 [%zu] %#x != u16 %#x", f->name, i, c8[i], c16[i]);
                        rc = ag_decode_u8(z, c8, n, f, scale);
                        AG_CHECK(rc == AG_OK, "%s decode_u8: %s", f->name, ag_status_string(rc));
                        for (size_t i = 0; i < n; i++)
                            if (!isnan(x[i]) && !ag_test_same(z[i], y[i]) && bad++ < 10)
                                AG_CHECK(0, "%s: decode_u8(encode) [%zu] %a != quantize %a", f->name,
                                         i, (double)z[i], (double)y[i]);
                    }
                }
    }
    AG_CHECK(bad == 0, "%s: %u bulk mismatches", f->name, bad);
    free(x);
    free(y);
    free(z);
    free(c8);
    free(c16);
    ag_ref_free(r);
}

/* a large array with the library's own threading (threads = 0) and a
 * stochastic stream: same bits as element-by-element, whatever the split */
static void test_large(void)
{
    const ag_format *f = ag_format_get("E4M3");
    const size_t n = 300001;
    float *x = xmalloc(n * sizeof *x), *y = xmalloc(n * sizeof *y), *z = xmalloc(n * sizeof *z);
    fill(x, n, f, 0.75f);
    for (int mode = 0; mode <= AG_ROUND_STOCHASTIC; mode += AG_ROUND_STOCHASTIC) {
        ag_qopts o = ag_qopts_default();
        o.rounding = (ag_rounding)mode;
        o.seed = 42;
        o.offset = 1000;
        ag_stats s1 = {0}, s2 = {0};
        AG_CHECK(ag_quantize(y, x, n, f, 0.75f, &o, &s1) == AG_OK, "large quantize");
        unsigned bad = 0;
        for (size_t i = 0; i < n; i++)
            if (!ag_test_same(y[i], expect_q(f, x[i], 0.75f, o, i)))
                bad++;
        AG_CHECK(bad == 0, "large array, mode %d: %u mismatches", mode, bad);
        /* chunked in two calls with offsets: the same stream */
        const size_t h = 123457;
        ag_qopts o2 = o;
        AG_CHECK(ag_quantize(z, x, h, f, 0.75f, &o2, &s2) == AG_OK, "first chunk");
        o2.offset += h;
        AG_CHECK(ag_quantize(z + h, x + h, n - h, f, 0.75f, &o2, &s2) == AG_OK, "second chunk");
        AG_CHECK(memcmp(y, z, n * sizeof *y) == 0, "chunked quantize differs (mode %d)", mode);
        AG_CHECK(stats_eq(&s1, &s2), "chunked stats differ");
        for (int th = 1; th <= 3; th++) {
            ag_stats s3 = {0};
            o.threads = th;
            memset(z, 0, n * sizeof *z);
            AG_CHECK(ag_quantize(z, x, n, f, 0.75f, &o, &s3) == AG_OK, "threads %d", th);
            AG_CHECK(memcmp(y, z, n * sizeof *y) == 0 && stats_eq(&s1, &s3),
                     "threads %d vs library's choice differ (mode %d)", th, mode);
        }
    }
    free(x);
    free(y);
    free(z);
}

/* stochastic rounding is unbiased: the mean of many roundings of one value
 * is within a binomial bound (6 sigma) of the value */
static void test_stochastic_unbiased(void)
{
    const ag_format *f = ag_format_get("E5M2");
    const size_t n = 20000;
    float *x = xmalloc(n * sizeof *x), *y = xmalloc(n * sizeof *y);
    const float v = 1.3f; /* between 1.25 and 1.5: p(up) = 0.2 */
    for (size_t i = 0; i < n; i++)
        x[i] = v;
    ag_qopts o = ag_qopts_default();
    o.rounding = AG_ROUND_STOCHASTIC;
    o.seed = 7;
    AG_CHECK(ag_quantize(y, x, n, f, 1.0f, &o, NULL) == AG_OK, "stochastic");
    size_t up = 0;
    for (size_t i = 0; i < n; i++) {
        AG_CHECK(y[i] == 1.25f || y[i] == 1.5f, "stochastic gave %a", (double)y[i]);
        up += y[i] == 1.5f;
    }
    const double p = (1.3 - 1.25) / 0.25, mean = p * (double)n, sd = sqrt((double)n * p * (1 - p));
    AG_CHECK(fabs((double)up - mean) <= 6 * sd, "stochastic: %zu up of %zu, expected %.0f +- %.0f", up,
             n, mean, 6 * sd);
    /* reproducible from the seed; another seed differs */
    float *z = xmalloc(n * sizeof *z);
    AG_CHECK(ag_quantize(z, x, n, f, 1.0f, &o, NULL) == AG_OK && memcmp(y, z, n * sizeof *y) == 0,
             "stochastic not reproducible");
    o.seed = 8;
    AG_CHECK(ag_quantize(z, x, n, f, 1.0f, &o, NULL) == AG_OK && memcmp(y, z, n * sizeof *y) != 0,
             "another seed gives the same stream");
    free(x);
    free(y);
    free(z);
}

static void test_backward(void)
{
    const size_t n = 1001;
    float *x = xmalloc(n * sizeof *x), *dy = xmalloc(n * sizeof *dy), *dx = xmalloc(n * sizeof *dx);
    for (size_t k = 0; k < ag_format_count(); k++) {
        const ag_format *f = ag_format_at(k);
        for (size_t si = 0; si < 4; si++) {
            const float scale = scales[si * 2];
            fill(x, n, f, scale);
            for (size_t i = 0; i < n; i++)
                dy[i] = (float)((int64_t)(rng_next() % 2001) - 1000) / 64.0f;
            for (int ste = 0; ste <= 1; ste++) {
                ag_qopts o = ag_qopts_default();
                o.ste = (ag_ste)ste;
                for (size_t i = 0; i < n; i++)
                    dx[i] = 0.25f;
                /* twice: accumulates */
                AG_CHECK(ag_quantize_backward(dx, dy, x, n, f, scale, &o) == AG_OK, "backward");
                AG_CHECK(ag_quantize_backward(dx, dy, x, n, f, scale, &o) == AG_OK, "backward 2");
                unsigned bad = 0;
                for (size_t i = 0; i < n; i++) {
                    const float v = x[i] / scale;
                    const int pass = ste == 0 || isnan(v) || fabsf(v) <= f->max_finite;
                    const float want = pass ? (0.25f + dy[i]) + dy[i] : 0.25f;
                    if (!ag_test_same(dx[i], want) && bad++ < 5)
                        AG_CHECK(0, "%s ste %d: x %a dy %a -> dx %a, expected %a", f->name, ste,
                                 (double)x[i], (double)dy[i], (double)dx[i], (double)want);
                }
                AG_CHECK(bad == 0, "%s ste %d scale %g: %u backward mismatches", f->name, ste,
                         (double)scale, bad);
            }
        }
    }
    /* identity with x NULL; in place (dx == dy doubles) */
    const ag_format *f = ag_format_get("E5M2");
    for (size_t i = 0; i < n; i++)
        dx[i] = dy[i] = (float)i;
    AG_CHECK(ag_quantize_backward(dx, dy, NULL, n, f, 1.0f, NULL) == AG_OK, "identity x NULL");
    AG_CHECK(ag_quantize_backward(dy, dy, NULL, n, f, 1.0f, NULL) == AG_OK, "dx == dy");
    int ok = 1;
    for (size_t i = 0; i < n; i++)
        ok &= dx[i] == 2.0f * (float)i && dy[i] == 2.0f * (float)i;
    AG_CHECK(ok, "identity backward");
    free(x);
    free(dy);
    free(dx);
}

static void test_dequantize(void)
{
    const size_t n = 777;
    float *x = xmalloc(n * sizeof *x), *y = xmalloc(n * sizeof *y), *dx = xmalloc(n * sizeof *dx);
    const float sc[] = {1.0f, 0.37f, 1024.0f, 1e-20f, 3e30f};
    for (size_t k = 0; k < sizeof sc / sizeof sc[0]; k++) {
        for (size_t i = 0; i < n; i++)
            x[i] = ag_test_float((uint32_t)rng_next());
        AG_CHECK(ag_dequantize(y, x, n, sc[k]) == AG_OK, "dequantize");
        unsigned bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += !ag_test_same(y[i], x[i] * sc[k]);
        AG_CHECK(bad == 0, "dequantize scale %g: %u mismatches", (double)sc[k], bad);
        memcpy(y, x, n * sizeof *y);
        AG_CHECK(ag_dequantize(y, y, n, sc[k]) == AG_OK, "dequantize in place");
        bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += !ag_test_same(y[i], x[i] * sc[k]);
        AG_CHECK(bad == 0, "dequantize in place: %u mismatches", bad);
        for (size_t i = 0; i < n; i++)
            dx[i] = (float)i;
        AG_CHECK(ag_dequantize_backward(dx, x, n, sc[k]) == AG_OK, "dequantize_backward");
        bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += !ag_test_same(dx[i], (float)i + x[i] * sc[k]);
        AG_CHECK(bad == 0, "dequantize_backward scale %g: %u mismatches", (double)sc[k], bad);
    }
    free(x);
    free(y);
    free(dx);
}

int main(void)
{
    const char *s = getenv("AG_TEST_SEED");
    const uint64_t seed = s && *s ? strtoull(s, NULL, 0) : 0x5eed0003ull;
    rng_state = seed;
    printf("test_quantize: seed %#" PRIx64 " (set AG_TEST_SEED to change)\n", seed);
    for (size_t i = 0; i < ag_format_count(); i++)
        test_quantize_format(ag_format_at(i));
    static const char *customs[] = {"e4m4:signed=no", "e6m2:zero=no:specials=fn", "e5m3:signed=no:specials=ieee",
                                    "e0m7:bias=3", "e3m0:specials=ieee"};
    for (size_t i = 0; i < sizeof customs / sizeof customs[0]; i++) {
        ag_format f;
        AG_CHECK(ag_format_parse(&f, customs[i], NULL, 0) == AG_OK, "parse %s", customs[i]);
        test_quantize_format(&f);
    }
    test_large();
    test_stochastic_unbiased();
    test_backward();
    test_dequantize();
    return ag_test_summary("test_quantize");
}
