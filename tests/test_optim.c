/* SPDX-License-Identifier: MIT */
/*
 * test_optim.c — the fused optimizer steps (ag_adamw_step, ag_grid_step)
 * against slow plain loops written here: the float32 arithmetic of the
 * contract element by element (bit-exact), a double-precision AdamW
 * (close), the stiffness from frexp/ldexp (AltGrad) and from ag_stiffness
 * (format), counters from the scalar ag_to_bits, grid positions and random
 * bits from the independent reference (tests/ref). Also: every grid step
 * lands on the grid, first steps snap to the nearest value, stochastic
 * moves are reproducible, split calls and thread counts change nothing,
 * and every argument error.
 */
#include "ag_test.h"
#include "ag_test_rng.h"
#include "ref/ag_ref.h"

#include <altgrad.h>
#include <math.h>
#include <stdlib.h>

static float *falloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* AltGrad's stiffness 2^(floor(log2|w|) - M), clamped; 1 at 0 and NaN. */
static float ref_stiff_altgrad(float w, int M, float maxs)
{
    float s;
    if (w != w || w == 0.0f) {
        s = 1.0f;
    } else if (isinf(w)) {
        s = INFINITY;
    } else {
        int e;
        (void)frexp(fabs((double)w), &e); /* |w| = f 2^e, f in [0.5, 1) */
        s = (float)ldexp(1.0, e - 1 - M);
    }
    return s < maxs ? s : maxs;
}

/* Format stiffness: ag_stiffness, with the lowest step at 0. */
static float ref_stiff_fmt(float w, const ag_format *f, float scale, float maxs)
{
    float s;
    if (w != w) {
        s = 1.0f;
    } else if (w == 0.0f) {
        s = (float)ldexp(1.0, f->emin - f->mbits) * scale;
    } else {
        AG_CHECK(ag_stiffness(&s, &w, 1, f, scale) == AG_OK, "stiffness");
    }
    return s < maxs ? s : maxs;
}

/* The contract of ag_adamw_step, one element at a time (no counters). */
static void ref_adamw(float *w, float *m, float *v, const float *g, size_t n,
                      uint64_t t, const ag_adamw_opts *o)
{
    const float decay = (float)(1.0 - o->lr * o->weight_decay);
    const float b1 = (float)o->beta1, omb1 = (float)(1.0 - o->beta1);
    const float b2 = (float)o->beta2, omb2 = (float)(1.0 - o->beta2);
    const float sc2 = (float)sqrt(1.0 - pow(o->beta2, (double)t));
    const float step = (float)(o->lr / (1.0 - pow(o->beta1, (double)t)));
    const float eps = (float)o->eps;
    for (size_t i = 0; i < n; i++) {
        const float s = o->precondition == AG_PRECONDITION_NONE ? 1.0f
                        : o->format ? ref_stiff_fmt(w[i], o->format, o->scale,
                                                    o->max_stiffness)
                                    : ref_stiff_altgrad(w[i], o->mantissa_bits,
                                                        o->max_stiffness);
        volatile float gp = g[i];
        if (o->precondition == AG_PRECONDITION_GRAD)
            gp = gp * s;
        volatile float wn = w[i];
        if (o->weight_decay != 0.0)
            wn = wn * decay;
        volatile float a = b1 * m[i], b = omb1 * gp;
        const float mi = a + b;
        volatile float c = b2 * v[i], d = omb2 * gp;
        d = d * gp;
        const float vi = c + d;
        volatile float den = sqrtf(vi) / sc2;
        den = den + eps;
        volatile float q = mi / den;
        volatile float u = step * q;
        if (o->precondition == AG_PRECONDITION_UPDATE)
            u = u * s;
        w[i] = wn - u;
        m[i] = mi;
        v[i] = vi;
    }
}

static void fill_inputs(float *w, float *g, size_t n, int specials)
{
    for (size_t i = 0; i < n; i++) {
        w[i] = rnd_float(12, 3, specials);
        g[i] = rnd_float(20, 2, 0);
        if (i % 37 == 0)
            g[i] = 0.0f; /* not an update */
    }
}

static const char *pre_name[] = {"none", "grad", "update"};

static void test_adamw_exact(void)
{
    const size_t n = 5000;
    float *w = falloc(n), *m = falloc(n), *v = falloc(n), *g = falloc(n);
    float *rw = falloc(n), *rm = falloc(n), *rv = falloc(n);
    const char *fmts[] = {NULL, "E4M3", "E3M4", "E0M7", "E5M2", "float8_e4m3fnuz", "float8_e8m0fnu"};
    const float scales[] = {1.0f, 0.013f, 1.7f};
    for (int p = 0; p <= 2; p++)
        for (size_t fi = 0; fi < sizeof fmts / sizeof *fmts; fi++)
            for (int si = 0; si < 3; si++) {
                if (!fmts[fi] && si > 0)
                    continue;
                ag_adamw_opts o = ag_adamw_opts_default();
                o.precondition = (ag_precondition)p;
                o.format = fmts[fi] ? ag_format_get(fmts[fi]) : NULL;
                AG_CHECK(!fmts[fi] || o.format, "format %s", fmts[fi]);
                o.scale = scales[si];
                o.lr = p == 2 ? 0.5 : 3e-3;
                o.weight_decay = si == 1 ? 0.0 : 0.05;
                o.max_stiffness = si == 2 ? 0.01f : 1e6f;
                o.mantissa_bits = 3;
                rng_state = 1000u + (uint64_t)(p * 100 + (int)fi * 10 + si);
                fill_inputs(w, g, n, 1);
                memset(m, 0, n * sizeof *m);
                memset(v, 0, n * sizeof *v);
                memcpy(rw, w, n * sizeof *w);
                memset(rm, 0, n * sizeof *m);
                memset(rv, 0, n * sizeof *v);
                int bad = 0;
                for (uint64_t t = 1; t <= 4; t++) {
                    AG_CHECK(ag_adamw_step(w, m, v, g, n, t, &o, NULL, NULL) == AG_OK,
                             "step");
                    ref_adamw(rw, rm, rv, g, n, t, &o);
                    for (size_t i = 0; i < n; i++)
                        if (!ag_test_same(w[i], rw[i]) || !ag_test_same(m[i], rm[i]) ||
                            !ag_test_same(v[i], rv[i])) {
                            if (bad++ < 3)
                                AG_CHECK(0, "%s %s scale %g t %d i %zu: w %a vs %a (m %a/%a)",
                                         pre_name[p], fmts[fi] ? fmts[fi] : "float32",
                                         (double)scales[si], (int)t, i, (double)w[i],
                                         (double)rw[i], (double)m[i], (double)rm[i]);
                        }
                }
                AG_CHECK(bad == 0, "%s %s: %d mismatches", pre_name[p],
                         fmts[fi] ? fmts[fi] : "float32", bad);
            }
    free(w), free(m), free(v), free(g), free(rw), free(rm), free(rv);
}

/* Plain AdamW in double over many steps: the float32 step stays close. */
static void test_adamw_double(void)
{
    enum { N = 64, T = 200 };
    float w[N], m[N] = {0}, v[N] = {0}, g[N];
    double dw[N], dm[N] = {0}, dv[N] = {0};
    rng_state = 77;
    for (int i = 0; i < N; i++)
        dw[i] = w[i] = rnd_float(6, 1, 0);
    ag_adamw_opts o = ag_adamw_opts_default();
    o.lr = 1e-2;
    double worst = 0.0;
    for (int t = 1; t <= T; t++) {
        for (int i = 0; i < N; i++)
            g[i] = (float)(dw[i] - 0.1 * (i % 5)) + rnd_float(8, 0, 0) * 0.1f;
        AG_CHECK(ag_adamw_step(w, m, v, g, N, (uint64_t)t, &o, NULL, NULL) == AG_OK, "step");
        for (int i = 0; i < N; i++) {
            dw[i] *= 1.0 - o.lr * o.weight_decay;
            dm[i] = o.beta1 * dm[i] + (1 - o.beta1) * (double)g[i];
            dv[i] = o.beta2 * dv[i] + (1 - o.beta2) * (double)g[i] * (double)g[i];
            const double mh = dm[i] / (1 - pow(o.beta1, t)),
                         vh = dv[i] / (1 - pow(o.beta2, t));
            dw[i] -= o.lr * mh / (sqrt(vh) + o.eps);
            const double e = fabs((double)w[i] - dw[i]);
            worst = e > worst ? e : worst;
        }
    }
    AG_CHECK(worst < 1e-4, "float32 AdamW drifts %g from double over %d steps", worst, T);
}

/* Same grid point of two values under (f, scale), by the scalar spec. */
static int ref_same(const ag_format *f, float scale, float a, float b)
{
    if (!f)
        return a == b;
    if (a != a || b != b)
        return 0;
    const uint32_t ca = ag_to_bits_opts(f, a / scale, NULL),
                   cb = ag_to_bits_opts(f, b / scale, NULL);
    if (ag_to_real(f, ca) != ag_to_real(f, ca) || ag_to_real(f, cb) != ag_to_real(f, cb))
        return 0;
    return ca == cb || (!f->no_zero && (ca & ~f->sign_mask) == 0 && (cb & ~f->sign_mask) == 0);
}

static void test_adamw_counts(void)
{
    const size_t n = 6000;
    float *w = falloc(n), *m = falloc(n), *v = falloc(n), *g = falloc(n);
    float *before = falloc(n), *mv = falloc(n), *ref_mv = falloc(n);
    int32_t *d = calloc(n, sizeof *d);
    const char *fmts[] = {NULL, "E4M3", "E5M2", "E1M6", "E3M4"};
    for (size_t fi = 0; fi < sizeof fmts / sizeof *fmts; fi++) {
        ag_adamw_opts o = ag_adamw_opts_default();
        o.format = fmts[fi] ? ag_format_get(fmts[fi]) : NULL;
        o.scale = fmts[fi] ? 0.01f : 1.0f;
        o.lr = 0.02;
        rng_state = 4242u + fi;
        fill_inputs(w, g, n, fi == 1);
        memset(m, 0, n * sizeof *m);
        memset(v, 0, n * sizeof *v);
        memset(mv, 0, n * sizeof *mv);
        memset(ref_mv, 0, n * sizeof *mv);
        ag_optim_counts c = {0, 0, 0}, rc = {0, 0, 0};
        for (uint64_t t = 1; t <= 3; t++) {
            memcpy(before, w, n * sizeof *w);
            AG_CHECK(ag_adamw_step(w, m, v, g, n, t, &o, &c, mv) == AG_OK, "step");
            if (o.format)
                AG_CHECK(ag_ulp_distance(d, before, w, n, o.format, o.scale, NULL) == AG_OK,
                         "ulp");
            for (size_t i = 0; i < n; i++) {
                const int u = fabsf(g[i]) > AG_GRAD_EPS;
                const int same = ref_same(o.format, o.scale, before[i], w[i]);
                rc.updates += (uint64_t)u;
                rc.flips += (uint64_t)!same;
                rc.stalls += (uint64_t)(u && same);
                if (o.format) {
                    if (d[i] != AG_ULP_NAN)
                        ref_mv[i] += (float)d[i];
                } else {
                    float ulp = fabsf(nextafterf(before[i], INFINITY) - before[i]);
                    if (ulp < 1e-45f)
                        ulp = 1e-45f;
                    ref_mv[i] += (w[i] - before[i]) / ulp;
                }
            }
        }
        const char *fn = fmts[fi] ? fmts[fi] : "float32";
        AG_CHECK(c.updates == rc.updates && c.flips == rc.flips && c.stalls == rc.stalls,
                 "%s counts %llu/%llu/%llu vs %llu/%llu/%llu", fn,
                 (unsigned long long)c.updates, (unsigned long long)c.flips,
                 (unsigned long long)c.stalls, (unsigned long long)rc.updates,
                 (unsigned long long)rc.flips, (unsigned long long)rc.stalls);
        AG_CHECK(c.flips > 0 && (c.stalls > 0 || !o.format), "%s: stalls and flips occur", fn);
        int bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += !ag_test_same(mv[i], ref_mv[i]);
        AG_CHECK(bad == 0, "%s movement: %d mismatches", fn, bad);
    }
    free(w), free(m), free(v), free(g), free(before), free(mv), free(ref_mv), free(d);
}

/* The two preconditioning modes differ as documented. */
static void test_precondition_modes(void)
{
    enum { N = 4 };
    const ag_format *f = ag_format_get("E5M2");
    /* one weight per binade; constant gradients */
    const float w0[N] = {0.75f, 3.0f, 0.02f, 0.0f};
    float g[N] = {0.1f, 0.1f, 0.1f, 0.1f};
    float wn[N], wg[N], wu[N], mn[N] = {0}, vn[N] = {0}, mg[N] = {0}, vg[N] = {0},
                                mu[N] = {0}, vu[N] = {0};
    memcpy(wn, w0, sizeof wn), memcpy(wg, w0, sizeof wg), memcpy(wu, w0, sizeof wu);
    ag_adamw_opts o = ag_adamw_opts_default();
    o.weight_decay = 0.0;
    o.eps = 0.0; /* without eps, GRAD is exactly plain AdamW within a binade */
    o.format = f;
    AG_CHECK(ag_adamw_step(wn, mn, vn, g, N, 1, &o, NULL, NULL) == AG_OK, "none");
    o.precondition = AG_PRECONDITION_GRAD;
    AG_CHECK(ag_adamw_step(wg, mg, vg, g, N, 1, &o, NULL, NULL) == AG_OK, "grad");
    o.precondition = AG_PRECONDITION_UPDATE;
    o.lr = 1.0; /* one grid step per step */
    AG_CHECK(ag_adamw_step(wu, mu, vu, g, N, 1, &o, NULL, NULL) == AG_OK, "update");
    for (int i = 0; i < N; i++) {
        AG_CHECK(wn[i] == wg[i], "grad mode cancels S: %g vs %g", (double)wg[i], (double)wn[i]);
        float s;
        if (w0[i] != 0.0f) {
            ag_stiffness(&s, &w0[i], 1, f, 1.0f);
            AG_CHECK(wu[i] == w0[i] - s, "update mode moves one grid step: %g -> %g (S %g)",
                     (double)w0[i], (double)wu[i], (double)s);
        } else {
            AG_CHECK(wu[i] == -f->min_subnormal, "update mode at 0: the lowest step, %g",
                     (double)wu[i]);
        }
    }
    /* with eps the GRAD mode differs from plain AdamW through eps / S */
    float a[1] = {0.02f}, b[1] = {0.02f}, ma[1] = {0}, va[1] = {0}, mb[1] = {0}, vb[1] = {0},
          gg[1] = {1e-7f};
    o = ag_adamw_opts_default();
    AG_CHECK(ag_adamw_step(a, ma, va, gg, 1, 1, &o, NULL, NULL) == AG_OK, "none eps");
    o.precondition = AG_PRECONDITION_GRAD;
    AG_CHECK(ag_adamw_step(b, mb, vb, gg, 1, 1, &o, NULL, NULL) == AG_OK, "grad eps");
    AG_CHECK(a[0] != b[0], "eps / S makes the modes differ");
}

/* Threads and splitting change nothing. */
static void test_adamw_threads(void)
{
    const size_t n = ((size_t)1 << 19) + 77;
    float *w1 = falloc(n), *w2 = falloc(n), *g = falloc(n), *m1 = falloc(n), *m2 = falloc(n),
          *v1 = falloc(n), *v2 = falloc(n), *mv1 = falloc(n), *mv2 = falloc(n);
    rng_state = 9;
    fill_inputs(w1, g, n, 0);
    memcpy(w2, w1, n * sizeof *w1);
    ag_adamw_opts o = ag_adamw_opts_default();
    o.format = ag_format_get("E4M3");
    o.precondition = AG_PRECONDITION_UPDATE;
    ag_optim_counts c1 = {0, 0, 0}, c2 = {0, 0, 0};
    for (uint64_t t = 1; t <= 2; t++) {
        o.threads = 1;
        AG_CHECK(ag_adamw_step(w1, m1, v1, g, n, t, &o, &c1, mv1) == AG_OK, "1 thread");
        o.threads = 2;
        const size_t h = n / 3;
        AG_CHECK(ag_adamw_step(w2, m2, v2, g, h, t, &o, &c2, mv2) == AG_OK &&
                     ag_adamw_step(w2 + h, m2 + h, v2 + h, g + h, n - h, t, &o, &c2,
                                   mv2 + h) == AG_OK,
                 "2 threads, split");
    }
    AG_CHECK(memcmp(w1, w2, n * sizeof *w1) == 0 && memcmp(m1, m2, n * sizeof *m1) == 0 &&
                 memcmp(v1, v2, n * sizeof *v1) == 0 && memcmp(mv1, mv2, n * sizeof *mv1) == 0,
             "bit-identical for any thread count and split");
    AG_CHECK(c1.updates == c2.updates && c1.flips == c2.flips && c1.stalls == c2.stalls,
             "counts identical");
    free(w1), free(w2), free(g), free(m1), free(m2), free(v1), free(v2), free(mv1), free(mv2);
}

static void test_adamw_errors(void)
{
    float w[4] = {1, 2, 3, 4}, m[4] = {0}, v[4] = {0}, g[4] = {1, 1, 1, 1}, mv[4] = {0};
    float keep[4];
    memcpy(keep, w, sizeof w);
    const ag_adamw_opts d = ag_adamw_opts_default();
    ag_adamw_opts o = d;
    AG_CHECK(ag_adamw_step(w, m, v, g, 4, 1, NULL, NULL, NULL) == AG_ERR_NULL, "opts NULL");
    AG_CHECK(ag_adamw_step(NULL, m, v, g, 4, 1, &o, NULL, NULL) == AG_ERR_NULL, "w NULL");
    AG_CHECK(ag_adamw_step(w, m, NULL, g, 4, 1, &o, NULL, NULL) == AG_ERR_NULL, "v NULL");
    AG_CHECK(ag_adamw_step(w, m, v, NULL, 4, 1, &o, NULL, NULL) == AG_ERR_NULL, "g NULL");
    AG_CHECK(ag_adamw_step(NULL, NULL, NULL, NULL, 0, 1, &o, NULL, NULL) == AG_OK, "n 0");
    AG_CHECK(ag_adamw_step(w, m, v, g, 4, 0, &o, NULL, NULL) == AG_ERR_ARG, "t 0");
#define BAD(field, val, code)                                                        \
    do {                                                                             \
        o = d;                                                                       \
        o.field = val;                                                               \
        AG_CHECK(ag_adamw_step(w, m, v, g, 4, 1, &o, NULL, mv) == code, #field " " #val); \
    } while (0)
    BAD(lr, -1e-3, AG_ERR_ARG);
    BAD(lr, NAN, AG_ERR_ARG);
    BAD(lr, INFINITY, AG_ERR_ARG);
    BAD(beta1, 1.0, AG_ERR_ARG);
    BAD(beta1, -0.1, AG_ERR_ARG);
    BAD(beta2, 1.0, AG_ERR_ARG);
    BAD(beta2, NAN, AG_ERR_ARG);
    BAD(eps, -1.0, AG_ERR_ARG);
    BAD(eps, NAN, AG_ERR_ARG);
    BAD(weight_decay, NAN, AG_ERR_ARG);
    BAD(precondition, (ag_precondition)3, AG_ERR_ARG);
    BAD(mantissa_bits, -1, AG_ERR_ARG);
    BAD(mantissa_bits, 24, AG_ERR_ARG);
    BAD(max_stiffness, 0.0f, AG_ERR_ARG);
    BAD(max_stiffness, NAN, AG_ERR_ARG);
    BAD(threads, -1, AG_ERR_ARG);
    ag_format bad_fmt;
    memset(&bad_fmt, 0, sizeof bad_fmt);
    BAD(format, &bad_fmt, AG_ERR_FORMAT);
    o = d;
    o.format = ag_format_get("E4M3");
    o.scale = 0.0f;
    AG_CHECK(ag_adamw_step(w, m, v, g, 4, 1, &o, NULL, NULL) == AG_ERR_SCALE, "scale 0");
    o.scale = NAN;
    AG_CHECK(ag_adamw_step(w, m, v, g, 4, 1, &o, NULL, NULL) == AG_ERR_SCALE, "scale NaN");
#undef BAD
    o = d;
    AG_CHECK(ag_adamw_step(w, w, v, g, 4, 1, &o, NULL, NULL) == AG_ERR_ALIAS, "w == m");
    AG_CHECK(ag_adamw_step(w, m, v, w + 1, 3, 1, &o, NULL, NULL) == AG_ERR_ALIAS, "g overlaps w");
    AG_CHECK(ag_adamw_step(w, m, v, g, 4, 1, &o, NULL, v) == AG_ERR_ALIAS, "movement == v");
    AG_CHECK(memcmp(w, keep, sizeof w) == 0 && m[0] == 0.0f && v[0] == 0.0f && mv[0] == 0.0f,
             "outputs untouched on error");
}

/* ------------------------------------------------------------------------ */

/* Grid step reference: the contract element by element, with the
 * reference generator's bits and positions from the scalar ag_to_bits. */
static int64_t ref_pos(const ag_format *f, uint32_t code)
{
    const int64_t mag = (int64_t)(code & ~f->sign_mask);
    if (!(code & f->sign_mask))
        return mag;
    return f->no_zero ? -mag - 1 : -mag;
}

static float ref_pos_value(const ag_format *f, int64_t p, float scale)
{
    /* search the code (slow and independent of the inverse mapping) */
    for (uint32_t c = 0; c < f->ncodes; c++) {
        const float x = ag_to_real(f, c);
        if (x == x && !isinf(x) && ref_pos(f, c) == p)
            return x * scale;
    }
    return NAN;
}

static void ref_grid(float *w, float *vel, const float *g, size_t n, const ag_format *f,
                     float scale, const ag_grid_opts *o, uint64_t *upd, uint64_t *flips)
{
    const int64_t pmax = ref_pos(f, f->max_code),
                  pmin = f->is_signed ? ref_pos(f, f->sign_mask | f->max_code) : 0;
    for (size_t i = 0; i < n; i++) {
        *upd += fabsf(g[i]) > AG_GRAD_EPS;
        volatile float gd = g[i];
        if (o->weight_decay != 0.0) {
            volatile float t = (float)o->weight_decay * w[i];
            gd = gd + t;
        }
        volatile float vm = (float)o->momentum * vel[i];
        vel[i] = vm + gd;
        float r = (float)o->rate * vel[i];
        const float clip = (float)o->rung_clip;
        if (r > clip)
            r = clip;
        if (r < -clip)
            r = -clip;
        float wn;
        if (w[i] != w[i] || r != r) {
            wn = NAN;
        } else {
            const double fl = floor((double)r);
            const uint32_t bits = ag_ref_random_u32(o->seed, o->stream, o->offset + i);
            const int64_t k = (int64_t)fl + ((double)bits < floor(((double)r - fl) * 4294967296.0));
            int64_t p = ref_pos(f, ag_to_bits_opts(f, w[i] / scale, NULL)) - k;
            p = p < pmin ? pmin : p > pmax ? pmax : p;
            wn = ref_pos_value(f, p, scale);
        }
        *flips += wn != w[i] && wn == wn && w[i] == w[i];
        w[i] = wn;
    }
}

static void test_grid_ref(void)
{
    const size_t n = 3000;
    float *w = falloc(n), *vel = falloc(n), *g = falloc(n), *rw = falloc(n), *rvel = falloc(n),
          *q = falloc(n);
    const char *fmts[] = {"float8_e4m3fn", "E5M2", "E0M7", "E3M4", "float8_e4m3fnuz", "float8_e8m0fnu",
                          "E2M5"};
    for (size_t fi = 0; fi < sizeof fmts / sizeof *fmts; fi++) {
        const ag_format *f = ag_format_get(fmts[fi]);
        AG_CHECK(f != NULL, "format %s", fmts[fi]);
        if (!f)
            continue;
        const float scale = fi % 2 ? 0.01f : 1.0f;
        rng_state = 31u + fi;
        fill_inputs(w, g, n, 0);
        memcpy(rw, w, n * sizeof *w);
        memset(vel, 0, n * sizeof *vel);
        memset(rvel, 0, n * sizeof *vel);
        ag_grid_opts o = ag_grid_opts_default();
        o.seed = 5 + fi;
        o.stream = fi;
        o.offset = 3;
        o.rate = fi == 6 ? 0.0 : 60.0;
        uint64_t u = 0, fl = 0, ru = 0, rfl = 0;
        int bad = 0, off = 0;
        for (int t = 0; t < 3; t++) {
            AG_CHECK(ag_grid_step(w, vel, g, n, f, scale, &o, &u, &fl) == AG_OK, "grid step");
            ref_grid(rw, rvel, g, n, f, scale, &o, &ru, &rfl);
            AG_CHECK(ag_quantize(q, w, n, f, scale, NULL, NULL) == AG_OK, "quantize");
            for (size_t i = 0; i < n; i++) {
                bad += !ag_test_same(w[i], rw[i]) || !ag_test_same(vel[i], rvel[i]);
                off += !ag_test_same(q[i], w[i]);
            }
            o.offset += n;
        }
        AG_CHECK(bad == 0, "%s: %d mismatches against the plain loop", fmts[fi], bad);
        AG_CHECK(off == 0, "%s: %d weights off the grid", fmts[fi], off);
        AG_CHECK(u == ru && fl == rfl && fl > 0, "%s updates %llu/%llu flips %llu/%llu",
                 fmts[fi], (unsigned long long)u, (unsigned long long)ru,
                 (unsigned long long)fl, (unsigned long long)rfl);
    }
    free(w), free(vel), free(g), free(rw), free(rvel), free(q);
}

/* First step, no gradient: every weight snaps to its NEAREST grid value. */
static void test_grid_snap_nearest(void)
{
    const ag_format *f = ag_format_get("float8_e4m3fn");
    enum { N = 6 };
    float w[N] = {0.3f, -0.3f, 1.06f, 1.07f, 1000.0f, 1e-5f}, vel[N] = {0}, g[N] = {0};
    float q[N];
    ag_quantize(q, w, N, f, 1.0f, NULL, NULL);
    ag_grid_opts o = ag_grid_opts_default();
    o.weight_decay = 0.0;
    uint64_t u = 0, fl = 0;
    AG_CHECK(ag_grid_step(w, vel, g, N, f, 1.0f, &o, &u, &fl) == AG_OK, "step");
    for (int i = 0; i < N; i++)
        AG_CHECK(w[i] == q[i], "snap %d: %g vs nearest %g", i, (double)w[i], (double)q[i]);
    AG_CHECK(w[2] == 1.0f && w[3] == 1.125f, "1.06 -> 1 (down), 1.07 -> 1.125");
    AG_CHECK(u == 0 && fl == N, "no updates, %llu flips", (unsigned long long)fl);
    /* a constant gradient: descent moves down, momentum grows the move */
    float w2[1] = {1.0f}, v2[1] = {0}, g2[1] = {0.05f};
    o.rate = 10.0; /* r = 0.5, then 0.95 rungs */
    uint64_t moved = 0;
    for (uint64_t s = 0; s < 2000; s++) {
        w2[0] = 1.0f, v2[0] = 0.0f;
        o.offset = s;
        ag_grid_step(w2, v2, g2, 1, f, 1.0f, &o, NULL, NULL);
        AG_CHECK(w2[0] == 1.0f || w2[0] == 0.9375f, "one rung down at most: %g", (double)w2[0]);
        moved += w2[0] != 1.0f;
    }
    AG_CHECK(moved > 900 && moved < 1100, "stochastic rounding unbiased: %llu of 2000",
             (unsigned long long)moved);
}

static void test_grid_repro_threads(void)
{
    const size_t n = ((size_t)1 << 19) + 5;
    const ag_format *f = ag_format_get("E5M2");
    float *w1 = falloc(n), *w2 = falloc(n), *v1 = falloc(n), *v2 = falloc(n), *g = falloc(n);
    rng_state = 12;
    fill_inputs(w1, g, n, 0);
    memcpy(w2, w1, n * sizeof *w1);
    ag_grid_opts o = ag_grid_opts_default();
    o.seed = 99;
    o.rate = 20.0;
    uint64_t u1 = 0, f1 = 0, u2 = 0, f2 = 0;
    o.threads = 1;
    ag_grid_step(w1, v1, g, n, f, 0.5f, &o, &u1, &f1);
    o.threads = 2;
    const size_t h = n / 2 + 3;
    ag_grid_step(w2, v2, g, h, f, 0.5f, &o, &u2, &f2);
    o.offset = h;
    ag_grid_step(w2 + h, v2 + h, g + h, n - h, f, 0.5f, &o, &u2, &f2);
    AG_CHECK(memcmp(w1, w2, n * sizeof *w1) == 0 && memcmp(v1, v2, n * sizeof *v1) == 0,
             "same result for any thread count and split (offset continues the stream)");
    AG_CHECK(u1 == u2 && f1 == f2, "counts identical");
    /* another seed moves differently */
    memcpy(w2, w1, n * sizeof *w1);
    memset(v2, 0, n * sizeof *v2);
    memcpy(v1, v2, n * sizeof *v1);
    float *w3 = falloc(n);
    memcpy(w3, w1, n * sizeof *w1);
    o.offset = 0;
    ag_grid_step(w2, v2, g, n, f, 0.5f, &o, NULL, NULL);
    o.seed = 100;
    ag_grid_step(w3, v1, g, n, f, 0.5f, &o, NULL, NULL);
    AG_CHECK(memcmp(w2, w3, n * sizeof *w2) != 0, "seeds differ");
    free(w1), free(w2), free(w3), free(v1), free(v2), free(g);
}

static void test_grid_errors(void)
{
    const ag_format *f = ag_format_get("E4M3");
    float w[3] = {1, 2, 3}, v[3] = {0}, g[3] = {1, 1, 1};
    const ag_grid_opts d = ag_grid_opts_default();
    ag_grid_opts o = d;
    AG_CHECK(ag_grid_step(w, v, g, 3, NULL, 1.0f, &o, NULL, NULL) == AG_ERR_NULL, "fmt NULL");
    AG_CHECK(ag_grid_step(w, v, g, 3, f, 1.0f, NULL, NULL, NULL) == AG_ERR_NULL, "opts NULL");
    AG_CHECK(ag_grid_step(NULL, v, g, 3, f, 1.0f, &o, NULL, NULL) == AG_ERR_NULL, "w NULL");
    AG_CHECK(ag_grid_step(w, NULL, g, 3, f, 1.0f, &o, NULL, NULL) == AG_ERR_NULL, "vel NULL");
    AG_CHECK(ag_grid_step(w, v, NULL, 3, f, 1.0f, &o, NULL, NULL) == AG_ERR_NULL, "g NULL");
    AG_CHECK(ag_grid_step(NULL, NULL, NULL, 0, f, 1.0f, &o, NULL, NULL) == AG_OK, "n 0");
    AG_CHECK(ag_grid_step(w, v, g, 3, f, -1.0f, &o, NULL, NULL) == AG_ERR_SCALE, "scale");
    ag_format bad_fmt;
    memset(&bad_fmt, 0, sizeof bad_fmt);
    AG_CHECK(ag_grid_step(w, v, g, 3, &bad_fmt, 1.0f, &o, NULL, NULL) == AG_ERR_FORMAT, "fmt");
#define BAD(field, val)                                                               \
    do {                                                                              \
        o = d;                                                                        \
        o.field = val;                                                                \
        AG_CHECK(ag_grid_step(w, v, g, 3, f, 1.0f, &o, NULL, NULL) == AG_ERR_ARG, #field); \
    } while (0)
    BAD(rate, -1.0);
    BAD(rate, NAN);
    BAD(momentum, -0.5);
    BAD(momentum, INFINITY);
    BAD(weight_decay, -1e-4);
    BAD(rung_clip, -1);
    BAD(threads, -2);
#undef BAD
    o = d;
    AG_CHECK(ag_grid_step(w, w, g, 3, f, 1.0f, &o, NULL, NULL) == AG_ERR_ALIAS, "w == vel");
    AG_CHECK(ag_grid_step(w, v, w + 1, 2, f, 1.0f, &o, NULL, NULL) == AG_ERR_ALIAS, "g in w");
    AG_CHECK(w[0] == 1.0f && w[1] == 2.0f && v[0] == 0.0f, "untouched on error");
    /* a NaN weight stays NaN and is not a flip */
    float wn[2] = {NAN, 1.0f}, vn[2] = {0}, gn[2] = {0, 0};
    uint64_t fl = 0;
    AG_CHECK(ag_grid_step(wn, vn, gn, 2, f, 1.0f, &o, NULL, &fl) == AG_OK, "NaN weight");
    AG_CHECK(wn[0] != wn[0] && wn[1] == 1.0f && fl == 0, "NaN stays NaN, no flips");
}

int main(void)
{
    test_adamw_exact();
    test_adamw_double();
    test_adamw_counts();
    test_precondition_modes();
    test_adamw_threads();
    test_adamw_errors();
    test_grid_ref();
    test_grid_snap_nearest();
    test_grid_repro_threads();
    test_grid_errors();
    return ag_test_summary("test_optim");
}
