/* SPDX-License-Identifier: MIT */
/*
 * test_scaler.c — ag_scaler (delayed scaling) against a plain model kept
 * here: every amax ever recorded in an array (the window is its last L
 * entries), the scale rule written out in double, element i of a step
 * rounded by the independent reference (tests/ref) at stream element
 * offset + i. Checked per step: y bit for bit, the scale, window max and
 * count, steps, offset, stats (those of ag_quantize on the same scale and
 * offset). Then: each first-step policy; record; reset; backward;
 * save -> load -> continue equals an uninterrupted run bit for bit; the
 * record's layout (little-endian fields at fixed offsets); corrupt, short,
 * other-version, other-format, other-option and unreachable-state records
 * rejected with the scaler unchanged; every error path.
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

#define MAXN 700
#define MAXSTEPS 64

/* ------------------------------------------------------------------------ */
/* The model                                                                */
/* ------------------------------------------------------------------------ */

typedef struct model {
    const ag_format *fmt;
    ag_ref *ref;
    ag_scaler_opts o;
    float hist[MAXSTEPS];  /* every amax recorded, in order */
    size_t steps;
    uint64_t offset;
    float last;
} model;

static void model_init(model *m, const ag_format *f, const ag_scaler_opts *o)
{
    m->fmt = f;
    m->ref = ag_ref_from_format(f);
    if (!m->ref) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    m->o = *o;
    m->steps = 0;
    m->offset = o->quant.offset;
    m->last = 0.0f;
}

static size_t model_count(const model *m)
{
    return m->steps < m->o.history_len ? m->steps : m->o.history_len;
}

static float model_window_max(const model *m)
{
    float mx = 0.0f;
    for (size_t i = m->steps - model_count(m); i < m->steps; i++)
        if (m->hist[i] > mx)
            mx = m->hist[i];
    return mx;
}

/* max |x| over non-NaN elements, a plain loop */
static float plain_amax(const float *x, size_t n)
{
    float mx = 0.0f;
    for (size_t i = 0; i < n; i++)
        if (!isnan(x[i]) && fabsf(x[i]) > mx)
            mx = fabsf(x[i]);
    return mx;
}

/* The scale rule of altgrad.h, written out: amax (inf as FLT_MAX) * margin
 * / max_finite in double, floored at scale_min, then the smallest power of
 * two >= it (pow2) or one rounding to float32 (capped at FLT_MAX). */
static float plain_scale(float amax, const ag_format *f, const ag_scale_opts *so)
{
    const double a = isinf(amax) ? (double)FLT_MAX : (double)amax;
    double s = a * (double)so->margin / (double)f->max_finite;
    if (s < (double)so->scale_min)
        s = (double)so->scale_min;
    if (so->pow2) {
        double p = 0x1p-149;
        while (p < s && p < 0x1p127)
            p *= 2.0;
        return (float)p;
    }
    return s > (double)FLT_MAX ? FLT_MAX : (float)s;
}

/* Step 1 of the model for a buffer of amax `now` */
static float model_scale(const model *m, float now)
{
    if (model_count(m) > 0)
        return plain_scale(model_window_max(m), m->fmt, &m->o.scale);
    switch (m->o.first) {
    case AG_SCALER_FIRST_AMAX_ONE:
        return plain_scale(1.0f, m->fmt, &m->o.scale);
    case AG_SCALER_FIRST_SCALE_ONE:
        return 1.0f;
    default:
        return plain_scale(now, m->fmt, &m->o.scale);
    }
}

/* y = the reference's rounding of x / scale at stream element offset + i */
static void model_round(const model *m, float *y, const float *x, size_t n, float scale)
{
    const ag_qopts *q = &m->o.quant;
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i])) {
            y[i] = NAN;
            continue;
        }
        const uint32_t rnd = ag_ref_random_u32(q->seed, q->stream, m->offset + i);
        const uint32_t c = ag_ref_encode(m->ref, x[i] / scale, q->rounding, q->overflow, rnd, NULL);
        y[i] = ag_ref_decode(m->ref, c) * scale;
    }
}

static void model_record(model *m, float amax, size_t n, float scale)
{
    m->hist[m->steps++] = amax;
    m->offset += n;
    m->last = scale;
}

/* The scaler's observable state equals the model's. */
static void check_state(const ag_scaler *s, const model *m, const char *what, size_t step)
{
    AG_CHECK(ag_scaler_steps(s) == m->steps, "%s step %zu: steps %" PRIu64 " want %zu", what,
             step, ag_scaler_steps(s), m->steps);
    AG_CHECK(ag_scaler_offset(s) == m->offset, "%s step %zu: offset %" PRIu64 " want %" PRIu64,
             what, step, ag_scaler_offset(s), m->offset);
    AG_CHECK(ag_scaler_window_count(s) == model_count(m), "%s step %zu: count %zu want %zu",
             what, step, ag_scaler_window_count(s), model_count(m));
    AG_CHECK(ag_test_bits(ag_scaler_window_max(s)) == ag_test_bits(model_window_max(m)),
             "%s step %zu: window max %g want %g", what, step, (double)ag_scaler_window_max(s),
             (double)model_window_max(m));
    AG_CHECK(ag_test_bits(ag_scaler_last_scale(s)) == ag_test_bits(m->last),
             "%s step %zu: last scale %g want %g", what, step, (double)ag_scaler_last_scale(s),
             (double)m->last);
}

/* ------------------------------------------------------------------------ */
/* Data                                                                     */
/* ------------------------------------------------------------------------ */

/* Step k's buffer: its length (0 sometimes) and values whose magnitude
 * drifts with k, so that the window max changes; a few NaN and inf. */
static size_t step_data(float *x, size_t k)
{
    const uint64_t r = rng_next();
    const size_t n = r % 11 == 0 ? 0 : 1 + (size_t)(r >> 8) % (MAXN - 1);
    const int hi = (int)(k % 7) - 2;
    for (size_t i = 0; i < n; i++)
        x[i] = rnd_float(12, hi, (k % 3) == 2);
    return n;
}

static ag_scaler *make(const ag_format *f, const ag_scaler_opts *o)
{
    ag_scaler *s = NULL;
    const ag_status st = ag_scaler_create(&s, f, o);
    AG_CHECK(st == AG_OK && s, "create: %s", ag_status_string(st));
    if (!s)
        exit(1);
    return s;
}

/* One quantize step of scaler and model on x[0..n), compared. */
static void step_both(ag_scaler *s, model *m, const float *x, size_t n, const char *what,
                      size_t k)
{
    static float y[MAXN], want[MAXN];
    const float now = plain_amax(x, n);
    const float scale = model_scale(m, now);
    float pred = -1.0f;
    AG_CHECK(ag_scaler_scale(s, now, &pred) == AG_OK &&
                 ag_test_bits(pred) == ag_test_bits(scale),
             "%s step %zu: predicted scale %g want %g", what, k, (double)pred, (double)scale);
    /* the stats of ag_quantize on the same scale and offset */
    ag_stats got = {0, 0, 0, 0}, ref = {0, 0, 0, 0};
    ag_qopts q = m->o.quant;
    q.offset = m->offset;
    AG_CHECK(ag_quantize(want, x, n, m->fmt, scale, &q, &ref) == AG_OK, "reference stats");
    model_round(m, want, x, n, scale);
    const ag_status st = ag_scaler_quantize(s, y, x, n, &got);
    AG_CHECK(st == AG_OK, "%s step %zu: %s", what, k, ag_status_string(st));
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (!ag_test_same(y[i], want[i]) && bad++ == 0)
            first = i;
    AG_CHECK(bad == 0, "%s step %zu: %zu of %zu differ, first %zu: x %a y %a want %a", what, k,
             bad, n, first, (double)x[first], (double)y[first], (double)want[first]);
    AG_CHECK(got.total == ref.total && got.overflow == ref.overflow &&
                 got.underflow == ref.underflow && got.nan == ref.nan,
             "%s step %zu: stats", what, k);
    model_record(m, now, n, scale);
    check_state(s, m, what, k);
}

/* ------------------------------------------------------------------------ */
/* Runs against the model                                                   */
/* ------------------------------------------------------------------------ */

static ag_scaler_opts opts_variant(int v)
{
    ag_scaler_opts o = ag_scaler_opts_default();
    o.history_len = (size_t)(1 + v % 5);
    o.first = (ag_scaler_first)(v % 3);
    o.scale.margin = v % 4 == 1 ? 2.0f : 1.0f;
    o.scale.pow2 = v % 2;
    o.scale.scale_min = v % 6 == 5 ? 1e-3f : 1e-10f;
    o.quant.rounding = (ag_rounding)(v % 6);
    o.quant.overflow = (ag_overflow)(v % 7 == 3);
    o.quant.seed = 0x1234u + (uint64_t)v;
    o.quant.stream = (uint64_t)v * 7u;
    o.quant.offset = v % 4 == 2 ? ((uint64_t)1 << 40) + 3u : 0u;
    return o;
}

static void test_against_model(void)
{
    static const char *const fmts[] = {"E4M3", "E5M2", "E3M4", "E0M7", "float8_e4m3fnuz",
                                       "E7M0", "float8_e8m0fnu", "BF16"};
    static float x[MAXN];
    for (size_t fi = 0; fi < sizeof fmts / sizeof fmts[0]; fi++) {
        const ag_format *f = ag_format_get(fmts[fi]);
        AG_CHECK(f != NULL, "format %s", fmts[fi]);
        if (!f)
            continue;
        for (int v = 0; v < 18; v++) {
            const ag_scaler_opts o = opts_variant(v + (int)fi);
            ag_scaler *s = make(f, &o);
            model m;
            model_init(&m, f, &o);
            check_state(s, &m, f->name, 0);
            for (size_t k = 0; k < 13; k++) {
                const size_t n = step_data(x, k);
                step_both(s, &m, x, n, f->name, k);
            }
            ag_scaler_free(s);
            ag_ref_free(m.ref);
        }
    }
}

/* Each first-step policy on a known buffer: the first scale, then the
 * window's. */
static void test_first_policy(void)
{
    const ag_format *f = ag_format_get("E4M3"); /* max 448 */
    const float x[3] = {-112.0f, 3.0f, NAN};    /* amax 112 */
    float y[3];
    const float want_first[3] = {112.0f / 448.0f, 1.0f / 448.0f, 1.0f};
    for (int p = 0; p < 3; p++) {
        ag_scaler_opts o = ag_scaler_opts_default();
        o.first = (ag_scaler_first)p;
        ag_scaler *s = make(f, &o);
        float sc = 0.0f;
        AG_CHECK(ag_scaler_scale(s, 112.0f, &sc) == AG_OK && sc == want_first[p],
                 "policy %d: first scale %g", p, (double)sc);
        AG_CHECK(ag_scaler_quantize(s, y, x, 3, NULL) == AG_OK &&
                     ag_scaler_last_scale(s) == want_first[p],
                 "policy %d: scale used %g", p, (double)ag_scaler_last_scale(s));
        /* the window now holds 112 whatever the policy */
        AG_CHECK(ag_scaler_scale(s, 1e6f, &sc) == AG_OK && sc == 0.25f,
                 "policy %d: second scale %g", p, (double)sc);
        AG_CHECK(ag_scaler_window_max(s) == 112.0f && ag_scaler_window_count(s) == 1,
                 "policy %d: window", p);
        AG_CHECK(strcmp(ag_option_name(AG_OPTION_SCALER_FIRST, p),
                        p == 0 ? "current" : p == 1 ? "amax-one" : "scale-one") == 0,
                 "policy %d name", p);
        ag_scaler_free(s);
    }
}

/* record, reset, the starting offset, a format that goes away */
static void test_record_reset(void)
{
    ag_format custom;
    char err[64];
    AG_CHECK(ag_format_parse(&custom, "e3m4:bias=2", err, sizeof err) == AG_OK, "parse");
    const ag_format copy = custom;
    ag_scaler_opts o = ag_scaler_opts_default();
    o.history_len = 3;
    o.quant.rounding = AG_ROUND_STOCHASTIC;
    o.quant.seed = 99;
    o.quant.offset = 1000;
    ag_scaler *s = make(&custom, &o);
    memset(&custom, 0xA5, sizeof custom); /* the scaler holds its own copy */
    AG_CHECK(ag_scaler_format(s)->ebits == 3 && ag_scaler_format(s)->bias == 2 &&
                 ag_format_check(ag_scaler_format(s)) == AG_OK,
             "own format copy");
    AG_CHECK(ag_scaler_options(s)->history_len == 3 && ag_scaler_options(s)->quant.seed == 99,
             "own options copy");
    model m;
    model_init(&m, &copy, &o);
    AG_CHECK(ag_scaler_offset(s) == 1000, "starting offset");
    static float x[MAXN];
    /* record (a device measured the amax) and quantize interleaved */
    for (size_t k = 0; k < 9; k++) {
        if (k % 3 == 1) {
            const float a = rnd_float(4, 4, 0);
            const float amax = fabsf(a);
            const float scale = model_scale(&m, amax);
            AG_CHECK(ag_scaler_record(s, amax, 50 + k) == AG_OK, "record");
            model_record(&m, amax, 50 + k, scale);
            check_state(s, &m, "record", k);
        } else {
            const size_t n = step_data(x, k);
            step_both(s, &m, x, n, "record/quantize", k);
        }
    }
    /* +inf is recorded as +inf (its scale: the largest finite amax's) */
    AG_CHECK(ag_scaler_record(s, INFINITY, 1) == AG_OK && isinf(ag_scaler_window_max(s)),
             "inf recorded");
    float sc = 0.0f;
    AG_CHECK(ag_scaler_scale(s, 0.0f, &sc) == AG_OK &&
                 sc == plain_scale(INFINITY, &copy, &o.scale),
             "scale of an inf window %g", (double)sc);
    /* -0 is recorded as +0 */
    AG_CHECK(ag_scaler_record(s, -0.0f, 0) == AG_OK, "record -0");
    AG_CHECK(ag_scaler_record(s, 0.0f, 0) == AG_OK && ag_scaler_record(s, 0.0f, 0) == AG_OK &&
                 ag_test_bits(ag_scaler_window_max(s)) == 0u,
             "zeros recorded");
    ag_scaler_reset(s);
    ag_ref_free(m.ref);
    model_init(&m, &copy, &o);
    check_state(s, &m, "reset", 0);
    for (size_t k = 0; k < 5; k++) {
        const size_t n = step_data(x, k);
        step_both(s, &m, x, n, "after reset", k);
    }
    ag_scaler_reset(NULL);
    ag_scaler_free(s);
    ag_ref_free(m.ref);
}

/* Two scalers on one stream: a step of n elements uses stream elements
 * offset .. offset + n - 1, so two steps equal one ag_quantize over the
 * concatenation when the scale is the same (SCALE_ONE, pow2 window of
 * equal amax). */
static void test_stream_continues(void)
{
    const ag_format *f = ag_format_get("E5M2");
    ag_scaler_opts o = ag_scaler_opts_default();
    o.first = AG_SCALER_FIRST_SCALE_ONE;
    o.scale.scale_min = 1.0f; /* every scale is 1 */
    o.quant.rounding = AG_ROUND_STOCHASTIC;
    o.quant.seed = 5;
    o.quant.stream = 3;
    ag_scaler *s = make(f, &o);
    static float x[600], y[600], whole[600];
    for (size_t i = 0; i < 600; i++)
        x[i] = rnd_float(10, 8, 0);
    AG_CHECK(ag_scaler_quantize(s, y, x, 250, NULL) == AG_OK &&
                 ag_scaler_quantize(s, y + 250, x + 250, 350, NULL) == AG_OK,
             "two steps");
    AG_CHECK(ag_scaler_last_scale(s) == 1.0f, "scale 1");
    AG_CHECK(ag_quantize(whole, x, 600, f, 1.0f, &o.quant, NULL) == AG_OK, "one call");
    AG_CHECK(memcmp(y, whole, sizeof y) == 0, "two steps == one call over both");
    AG_CHECK(ag_scaler_offset(s) == 600, "offset 600");
    ag_scaler_free(s);
}

/* in place (y == x), and backward with the last scale */
static void test_in_place_backward(void)
{
    const ag_format *f = ag_format_get("E4M3");
    ag_scaler_opts o = ag_scaler_opts_default();
    o.quant.ste = AG_STE_CLIPPED;
    ag_scaler *s = make(f, &o), *t = make(f, &o);
    static float x[300], a[300], dy[300], dx[300], dxw[300];
    for (size_t i = 0; i < 300; i++) {
        x[i] = rnd_float(6, 6, 1);
        dy[i] = rnd_float(3, 3, 0);
    }
    float dxs[4];
    AG_CHECK(ag_scaler_backward(s, dxs, dy, x, 4) == AG_ERR_ARG, "backward before a step");
    /* two steps so that the second uses the window */
    AG_CHECK(ag_scaler_quantize(s, a, x, 300, NULL) == AG_OK, "first");
    memcpy(a, x, sizeof a);
    for (size_t i = 0; i < 300; i++)
        a[i] *= 8.0f;
    float b[300];
    AG_CHECK(ag_scaler_quantize(t, b, x, 300, NULL) == AG_OK, "first (t)");
    memcpy(b, a, sizeof b);
    AG_CHECK(ag_scaler_quantize(s, a, a, 300, NULL) == AG_OK, "in place");
    float c[300];
    AG_CHECK(ag_scaler_quantize(t, c, b, 300, NULL) == AG_OK, "out of place");
    AG_CHECK(memcmp(a, c, sizeof a) == 0 &&
                 ag_scaler_last_scale(s) == ag_scaler_last_scale(t),
             "in place == out of place");
    memset(dx, 0, sizeof dx);
    memset(dxw, 0, sizeof dxw);
    AG_CHECK(ag_scaler_backward(t, dx, dy, b, 300) == AG_OK, "backward");
    AG_CHECK(ag_quantize_backward(dxw, dy, b, 300, f, ag_scaler_last_scale(t), &o.quant) ==
                 AG_OK,
             "reference backward");
    AG_CHECK(memcmp(dx, dxw, sizeof dx) == 0, "backward == ag_quantize_backward(last scale)");
    AG_CHECK(ag_scaler_backward(t, dx, dy, NULL, 300) == AG_ERR_NULL, "clipped needs x");
    AG_CHECK(ag_scaler_backward(NULL, dx, dy, b, 300) == AG_ERR_NULL, "backward NULL");
    AG_CHECK(ag_scaler_backward(t, dx + 1, dx, b, 200) == AG_ERR_ALIAS, "backward alias");
    ag_scaler_free(s);
    ag_scaler_free(t);
}

/* ------------------------------------------------------------------------ */
/* State bytes                                                              */
/* ------------------------------------------------------------------------ */

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)le64((const unsigned char[8]){p[0], p[1], p[2], p[3], 0, 0, 0, 0});
}

static void set_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* the record's checksum: FNV-1a 64 of every byte before the last eight */
static void reseal(unsigned char *p, size_t size)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i + 8 < size; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    set_le(p + size - 8, h, 8);
}

static unsigned char *save(const ag_scaler *s, size_t *size)
{
    AG_CHECK(ag_scaler_state_size(s, size) == AG_OK, "state size");
    unsigned char *p = malloc(*size);
    if (!p)
        exit(2);
    AG_CHECK(ag_scaler_save(s, p, *size) == AG_OK, "save");
    return p;
}

/* save at step k, load into a fresh scaler, continue: == uninterrupted */
static void test_resume(void)
{
    static const char *const fmts[] = {"E4M3", "E5M2", "float8_e8m0fnu"};
    static float xs[20][MAXN], ya[MAXN], yb[MAXN];
    size_t ns[20];
    for (size_t fi = 0; fi < 3; fi++) {
        const ag_format *f = ag_format_get(fmts[fi]);
        for (int v = 0; v < 12; v++) {
            ag_scaler_opts o = opts_variant(v * 5 + (int)fi);
            o.history_len = (size_t)(1 + v % 7); /* windows longer than a cut too */
            for (size_t k = 0; k < 20; k++)
                ns[k] = step_data(xs[k], k);
            for (size_t cut = 0; cut <= 12; cut += 4) {
                ag_scaler *a = make(f, &o), *b = make(f, &o);
                ag_stats sa = {0, 0, 0, 0}, sb = {0, 0, 0, 0};
                for (size_t k = 0; k < cut; k++)
                    AG_CHECK(ag_scaler_quantize(a, ya, xs[k], ns[k], &sa) == AG_OK &&
                                 ag_scaler_quantize(b, yb, xs[k], ns[k], &sb) == AG_OK,
                             "steps");
                size_t size;
                unsigned char *rec = save(b, &size);
                ag_scaler_free(b);
                /* the new scaler may run another thread count and kernel */
                ag_scaler_opts o2 = o;
                o2.quant.threads = 1;
                o2.quant.kernel = AG_KERNEL_SCALAR;
                b = make(f, &o2);
                AG_CHECK(ag_scaler_load(b, rec, size) == AG_OK, "%s v%d cut %zu: load", f->name,
                         v, cut);
                size_t size2;
                unsigned char *rec2 = save(b, &size2);
                /* threads and kernel are not recorded: the same bytes */
                AG_CHECK(size2 == size && memcmp(rec, rec2, size) == 0,
                         "%s v%d cut %zu: a loaded scaler saves its record", f->name, v, cut);
                free(rec2);
                int same = 1;
                for (size_t k = cut; k < 20; k++) {
                    AG_CHECK(ag_scaler_quantize(a, ya, xs[k], ns[k], &sa) == AG_OK &&
                                 ag_scaler_quantize(b, yb, xs[k], ns[k], &sb) == AG_OK,
                             "steps after");
                    same &= memcmp(ya, yb, ns[k] * sizeof(float)) == 0 &&
                            ag_scaler_last_scale(a) == ag_scaler_last_scale(b);
                }
                AG_CHECK(same, "%s v%d cut %zu: resumed run == uninterrupted", f->name, v, cut);
                AG_CHECK(sa.total == sb.total && sa.overflow == sb.overflow &&
                             sa.underflow == sb.underflow && sa.nan == sb.nan,
                         "%s v%d cut %zu: stats", f->name, v, cut);
                AG_CHECK(ag_scaler_steps(a) == ag_scaler_steps(b) &&
                             ag_scaler_offset(a) == ag_scaler_offset(b) &&
                             ag_scaler_window_max(a) == ag_scaler_window_max(b),
                         "%s v%d cut %zu: state", f->name, v, cut);
                free(rec);
                ag_scaler_free(a);
                ag_scaler_free(b);
            }
        }
    }
}

/* The layout: little-endian fields at the documented offsets. */
static void test_layout(void)
{
    const ag_format *f = ag_format_get("E5M2");
    ag_scaler_opts o = ag_scaler_opts_default();
    o.history_len = 3;
    o.quant.seed = 0x0102030405060708ull;
    o.quant.stream = 0x1112131415161718ull;
    o.scale.margin = 2.0f;
    o.first = AG_SCALER_FIRST_AMAX_ONE;
    ag_scaler *s = make(f, &o);
    const float x[2] = {3.0f, -7.0f};
    float y[2];
    for (int k = 0; k < 4; k++) /* 4 steps through a window of 3 */
        AG_CHECK(ag_scaler_record(s, (float)(k + 1), 10) == AG_OK, "record");
    AG_CHECK(ag_scaler_quantize(s, y, x, 2, NULL) == AG_OK, "quantize");
    size_t size;
    unsigned char *p = save(s, &size);
    AG_CHECK(size == 136 + 4 * 3, "size %zu", size);
    AG_CHECK(memcmp(p, "AGSC", 4) == 0 && le32(p + 4) == 1u && le64(p + 8) == size,
             "magic, version, size");
    AG_CHECK(le32(p + 16) == 5 && le32(p + 20) == 2 && le32(p + 24) == 15 &&
                 le32(p + 28) == 1 && le32(p + 32) == 0 && le32(p + 36) == AG_SPECIALS_IEEE,
             "format fields");
    AG_CHECK(le64(p + 40) == 3 && le32(p + 48) == ag_test_bits(2.0f) &&
                 le32(p + 52) == ag_test_bits(1e-10f) && le32(p + 56) == 0,
             "history_len, scale options");
    AG_CHECK(p[72] == 0x08 && p[79] == 0x01 && le64(p + 72) == o.quant.seed &&
                 le64(p + 80) == o.quant.stream && le64(p + 88) == 0 &&
                 le32(p + 96) == AG_SCALER_FIRST_AMAX_ONE,
             "quantize options");
    /* window 4 (from the 4th record), then amax 7 of the quantize: oldest
     * first is 3, 4, 7 */
    AG_CHECK(le64(p + 104) == 5 && le64(p + 112) == 42 && le64(p + 120) == 3, "steps, offset, count");
    AG_CHECK(le32(p + 128) == ag_test_bits(3.0f) && le32(p + 132) == ag_test_bits(4.0f) &&
                 le32(p + 136) == ag_test_bits(7.0f),
             "window oldest first");
    AG_CHECK(le32(p + 100) == ag_test_bits(ag_scaler_last_scale(s)) &&
                 ag_scaler_last_scale(s) == (float)(4.0 * 2.0 / 57344.0),
             "last scale");
    unsigned char *q = malloc(size);
    memcpy(q, p, size);
    reseal(q, size);
    AG_CHECK(memcmp(p, q, size) == 0, "checksum: FNV-1a 64 of the bytes before it");
    free(q);
    free(p);
    ag_scaler_free(s);
}

/* A load that must fail, leaving s as it was. */
static void expect_reject(ag_scaler *s, const unsigned char *rec, size_t size, const char *why)
{
    size_t n0;
    unsigned char *before = save(s, &n0);
    const ag_status st = ag_scaler_load(s, rec, size);
    AG_CHECK(st == AG_ERR_ARG, "%s: load gave %s", why, ag_status_string(st));
    size_t n1;
    unsigned char *after = save(s, &n1);
    AG_CHECK(n0 == n1 && memcmp(before, after, n0) == 0, "%s: scaler changed", why);
    free(before);
    free(after);
}

static void test_bad_records(void)
{
    const ag_format *f = ag_format_get("E4M3");
    ag_scaler_opts o = ag_scaler_opts_default();
    o.history_len = 4;
    ag_scaler *src = make(f, &o), *dst = make(f, &o);
    static float x[64], y[64];
    for (size_t i = 0; i < 64; i++)
        x[i] = rnd_float(4, 4, 0);
    for (int k = 0; k < 2; k++) /* src: 2 steps (2 held, 2 unused slots) */
        AG_CHECK(ag_scaler_quantize(src, y, x, 64, NULL) == AG_OK, "src step");
    AG_CHECK(ag_scaler_quantize(dst, y, x, 30, NULL) == AG_OK, "dst step");
    size_t size;
    unsigned char *rec = save(src, &size);
    unsigned char *bad = malloc(size + 8);
    /* every single-byte change is caught */
    size_t missed = 0;
    for (size_t i = 0; i < size; i++) {
        memcpy(bad, rec, size);
        bad[i] ^= (unsigned char)(1u << (i % 8));
        if (ag_scaler_load(dst, bad, size) != AG_ERR_ARG)
            missed++;
    }
    AG_CHECK(missed == 0, "%zu single-byte corruptions accepted", missed);
    memcpy(bad, rec, size);
    bad[size - 1] ^= 0x40;
    expect_reject(dst, bad, size, "bad checksum");
    /* short, empty and long records */
    expect_reject(dst, rec, size - 1, "short record");
    expect_reject(dst, rec, 0, "empty record");
    expect_reject(dst, rec, 7, "7 bytes");
    memcpy(bad, rec, size);
    bad[size] = 0;
    expect_reject(dst, bad, size + 1, "long record");
    /* well-sealed records of another version, magic or size field */
    memcpy(bad, rec, size);
    set_le(bad + 4, 2, 4);
    reseal(bad, size);
    expect_reject(dst, bad, size, "version 2");
    memcpy(bad, rec, size);
    bad[0] = 'X';
    reseal(bad, size);
    expect_reject(dst, bad, size, "magic");
    memcpy(bad, rec, size);
    set_le(bad + 8, size + 4, 8);
    reseal(bad, size);
    expect_reject(dst, bad, size, "size field");
    /* unreachable states, well sealed */
    static const struct {
        size_t off;
        int bytes;
        uint64_t val;
        const char *why;
    } edits[] = {
        {120, 8, 3, "count != min(steps, len)"},
        {104, 8, 0, "steps 0 with values held"},
        {100, 4, 0, "last scale 0 after steps"},
        {100, 4, 0x7fc00000u, "last scale NaN"},
        {100, 4, 0xbf800000u, "last scale negative"},
        {128, 4, 0xbf800000u, "negative window value"},
        {128, 4, 0x7fc00000u, "NaN window value"},
        {128, 4, 0x80000000u, "-0 window value"},
        {136, 4, 0x3f800000u, "unused slot not zero"},
    };
    for (size_t e = 0; e < sizeof edits / sizeof edits[0]; e++) {
        memcpy(bad, rec, size);
        set_le(bad + edits[e].off, edits[e].val, edits[e].bytes);
        reseal(bad, size);
        expect_reject(dst, bad, size, edits[e].why);
    }
    /* a fresh scaler's record with a last scale */
    {
        ag_scaler *z = make(f, &o);
        size_t zs;
        unsigned char *zr = save(z, &zs);
        set_le(zr + 100, 0x3f800000u, 4);
        reseal(zr, zs);
        expect_reject(dst, zr, zs, "steps 0 with a last scale");
        free(zr);
        ag_scaler_free(z);
    }
    /* another format, other options */
    const char *const other_fmt[] = {"E5M2", "float8_e4m3fnuz", "e4m3:bias=8", "e4m3:specials=none"};
    for (size_t i = 0; i < 4; i++) {
        ag_format g;
        char err[80];
        AG_CHECK(ag_format_parse(&g, other_fmt[i], err, sizeof err) == AG_OK, "parse %s",
                 other_fmt[i]);
        ag_scaler *t = make(&g, &o);
        AG_CHECK(ag_scaler_quantize(t, y, x, 8, NULL) == AG_OK, "step");
        expect_reject(t, rec, size, other_fmt[i]);
        ag_scaler_free(t);
    }
    for (int v = 0; v < 9; v++) {
        ag_scaler_opts p = o;
        switch (v) {
        case 0: p.history_len = 5; break;
        case 1: p.scale.margin = 2.0f; break;
        case 2: p.scale.scale_min = 1e-9f; break;
        case 3: p.scale.pow2 = 1; break;
        case 4: p.quant.rounding = AG_ROUND_STOCHASTIC; break;
        case 5: p.quant.seed = 1; break;
        case 6: p.quant.stream = 1; break;
        case 7: p.quant.offset = 1; break;
        default: p.first = AG_SCALER_FIRST_SCALE_ONE; break;
        }
        ag_scaler *t = make(f, &p);
        char why[40];
        snprintf(why, sizeof why, "option variant %d", v);
        expect_reject(t, rec, size, why);
        ag_scaler_free(t);
    }
    {
        ag_scaler_opts p = o;
        p.quant.ste = AG_STE_CLIPPED;
        ag_scaler *t = make(f, &p);
        expect_reject(t, rec, size, "ste");
        p = o;
        p.quant.overflow = AG_OVERFLOW_IEEE;
        ag_scaler_free(t);
        t = make(f, &p);
        expect_reject(t, rec, size, "overflow");
        ag_scaler_free(t);
    }
    /* the good record still loads */
    AG_CHECK(ag_scaler_load(dst, rec, size) == AG_OK && ag_scaler_steps(dst) == 2,
             "good record");
    free(bad);
    free(rec);
    ag_scaler_free(src);
    ag_scaler_free(dst);
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

static void test_errors(void)
{
    const ag_format *f = ag_format_get("E4M3");
    ag_scaler *s = (ag_scaler *)(uintptr_t)1;
    const ag_scaler_opts d = ag_scaler_opts_default();
    AG_CHECK(d.history_len == 16 && d.first == AG_SCALER_FIRST_CURRENT &&
                 d.scale.margin == 1.0f && d.scale.scale_min == 1e-10f && d.scale.pow2 == 0 &&
                 d.quant.rounding == AG_ROUND_NEAREST_EVEN && d.quant.offset == 0 &&
                 d.quant.kernel == AG_KERNEL_AUTO,
             "defaults");
    AG_CHECK(ag_scaler_create(NULL, f, NULL) == AG_ERR_NULL, "create NULL out");
    AG_CHECK(ag_scaler_create(&s, NULL, NULL) == AG_ERR_NULL && s == NULL, "create NULL fmt");
    ag_format hand = *f;
    hand.bias = 3; /* check word now wrong */
    s = (ag_scaler *)(uintptr_t)1;
    AG_CHECK(ag_scaler_create(&s, &hand, NULL) == AG_ERR_FORMAT && s == NULL, "hand format");
    for (int v = 0; v < 14; v++) {
        ag_scaler_opts o = d;
        switch (v) {
        case 0: o.history_len = 0; break;
        case 1: o.scale.margin = 0.0f; break;
        case 2: o.scale.margin = NAN; break;
        case 3: o.scale.scale_min = -1.0f; break;
        case 4: o.scale.scale_min = INFINITY; break;
        case 5: o.scale.pow2 = 2; break;
        case 6: o.quant.rounding = (ag_rounding)6; break;
        case 7: o.quant.overflow = (ag_overflow)2; break;
        case 8: o.quant.ste = (ag_ste)2; break;
        case 9: o.quant.threads = -1; break;
        case 10: o.quant.kernel = 5; break;
        case 11: o.quant.kernel = -1; break;
        case 12: o.first = (ag_scaler_first)3; break;
        default: o.history_len = SIZE_MAX; break;
        }
        s = (ag_scaler *)(uintptr_t)1;
        const ag_status st = ag_scaler_create(&s, f, &o);
        AG_CHECK((st == AG_ERR_ARG || (v == 13 && st == AG_ERR_NOMEM)) && s == NULL,
                 "bad option %d: %s", v, ag_status_string(st));
    }
    for (int k = AG_KERNEL_AUTO; k <= AG_KERNEL_AVX512; k++) {
        ag_scaler_opts o = d;
        o.quant.kernel = k;
        s = NULL;
        const ag_status st = ag_scaler_create(&s, f, &o);
        AG_CHECK(st == (ag_kernel_available(k) ? AG_OK : AG_ERR_ARG), "kernel %d", k);
        ag_scaler_free(s);
    }
    s = make(f, NULL);
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, y[8], sc = 0.0f;
    ag_stats st0 = {1, 2, 3, 4};
    /* failed steps record nothing and leave stats alone */
    AG_CHECK(ag_scaler_quantize(NULL, y, x, 8, NULL) == AG_ERR_NULL, "quantize NULL s");
    AG_CHECK(ag_scaler_quantize(s, NULL, x, 8, &st0) == AG_ERR_NULL, "quantize NULL y");
    AG_CHECK(ag_scaler_quantize(s, y, NULL, 8, &st0) == AG_ERR_NULL, "quantize NULL x");
    AG_CHECK(ag_scaler_quantize(s, x + 1, x, 7, &st0) == AG_ERR_ALIAS, "quantize alias");
    AG_CHECK(ag_scaler_steps(s) == 0 && ag_scaler_window_count(s) == 0 &&
                 ag_scaler_offset(s) == 0 && ag_scaler_last_scale(s) == 0.0f &&
                 st0.total == 1 && st0.overflow == 2 && st0.underflow == 3 && st0.nan == 4,
             "failed steps change nothing");
    /* n == 0: a step with amax 0 */
    AG_CHECK(ag_scaler_quantize(s, NULL, NULL, 0, &st0) == AG_OK && ag_scaler_steps(s) == 1 &&
                 ag_scaler_window_count(s) == 1 && ag_scaler_window_max(s) == 0.0f &&
                 ag_scaler_last_scale(s) == 1e-10f && st0.total == 1,
             "n == 0 step");
    ag_scaler_reset(s);
    AG_CHECK(ag_scaler_scale(NULL, 1.0f, &sc) == AG_ERR_NULL, "scale NULL s");
    AG_CHECK(ag_scaler_scale(s, 1.0f, NULL) == AG_ERR_NULL, "scale NULL out");
    sc = 5.0f;
    AG_CHECK(ag_scaler_scale(s, NAN, &sc) == AG_ERR_ARG && sc == 5.0f, "scale NaN amax read");
    AG_CHECK(ag_scaler_scale(s, -1.0f, &sc) == AG_ERR_ARG && sc == 5.0f, "scale -1 amax read");
    AG_CHECK(ag_scaler_record(NULL, 1.0f, 1) == AG_ERR_NULL, "record NULL");
    AG_CHECK(ag_scaler_record(s, NAN, 1) == AG_ERR_ARG, "record NaN");
    AG_CHECK(ag_scaler_record(s, -2.0f, 1) == AG_ERR_ARG, "record negative");
    AG_CHECK(ag_scaler_steps(s) == 0 && ag_scaler_offset(s) == 0, "failed records change nothing");
    AG_CHECK(ag_scaler_record(s, 448.0f, 1) == AG_OK, "record");
    AG_CHECK(ag_scaler_scale(s, NAN, &sc) == AG_OK && sc == 1.0f,
             "amax_now unread once the window holds a value");
    {
        ag_scaler_opts o = d;
        o.first = AG_SCALER_FIRST_SCALE_ONE;
        ag_scaler *t = make(f, &o);
        AG_CHECK(ag_scaler_scale(t, NAN, &sc) == AG_OK && sc == 1.0f, "amax_now unread (SCALE_ONE)");
        ag_scaler_free(t);
    }
    size_t size = 0;
    AG_CHECK(ag_scaler_state_size(NULL, &size) == AG_ERR_NULL, "state size NULL s");
    AG_CHECK(ag_scaler_state_size(s, NULL) == AG_ERR_NULL, "state size NULL out");
    AG_CHECK(ag_scaler_state_size(s, &size) == AG_OK && size == 136 + 4 * 16, "state size");
    unsigned char buf[256];
    memset(buf, 0xEE, sizeof buf);
    AG_CHECK(ag_scaler_save(NULL, buf, sizeof buf) == AG_ERR_NULL, "save NULL s");
    AG_CHECK(ag_scaler_save(s, NULL, sizeof buf) == AG_ERR_NULL, "save NULL buf");
    AG_CHECK(ag_scaler_save(s, buf, size - 1) == AG_ERR_ARG && buf[0] == 0xEE, "save short cap");
    AG_CHECK(ag_scaler_save(s, buf, sizeof buf) == AG_OK && buf[size] == 0xEE,
             "save writes exactly the state size");
    AG_CHECK(ag_scaler_load(NULL, buf, size) == AG_ERR_NULL, "load NULL s");
    AG_CHECK(ag_scaler_load(s, NULL, size) == AG_ERR_NULL, "load NULL buf");
    AG_CHECK(ag_scaler_last_scale(NULL) == 0.0f && ag_scaler_window_max(NULL) == 0.0f &&
                 ag_scaler_window_count(NULL) == 0 && ag_scaler_steps(NULL) == 0 &&
                 ag_scaler_offset(NULL) == 0 && ag_scaler_format(NULL) == NULL &&
                 ag_scaler_options(NULL) == NULL,
             "getters of NULL");
    ag_scaler_free(NULL);
    ag_scaler_free(s);
}

int main(void)
{
    const char *env = getenv("AG_TEST_SEED");
    const uint64_t seed = env ? strtoull(env, NULL, 0) : 20261207u;
    printf("test_scaler: seed %" PRIu64 "\n", seed);
    rng_state = seed;
    test_against_model();
    test_first_policy();
    test_record_reset();
    test_stream_continues();
    test_in_place_backward();
    test_resume();
    test_layout();
    test_bad_records();
    test_errors();
    return ag_test_summary("test_scaler");
}
