/* SPDX-License-Identifier: MIT */
/*
 * test_train_ops.c — the bench's building blocks against naive references:
 * linear forward/backward (CBLAS) vs loops, ReLU, softmax cross-entropy and
 * its gradient vs finite differences, the quantized linear layer vs
 * ag_quantize by hand (forward) and the STE (backward), delayed scaling,
 * the data order, and the optimizers vs their formulas.
 */
#include "train_test_util.h"

#include "gpt.h"

#include <cblas.h>
#include <math.h>

static float frand(uint64_t *s)
{
    return (float)(agt_uniform(s) * 2.0 - 1.0);
}

static double maxrel(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - (double)b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return den > 0 ? num / den : num;
}

static void test_linear(void)
{
    enum { B = 5, C = 7, OC = 3 };
    uint64_t s = 1;
    float x[B * C], w[OC * C], b[OC], y[B * OC], yref[B * OC];
    for (int i = 0; i < B * C; i++) x[i] = frand(&s);
    for (int i = 0; i < OC * C; i++) w[i] = frand(&s);
    for (int i = 0; i < OC; i++) b[i] = frand(&s);
    agt_linear_forward(y, x, w, b, B, C, OC);
    for (int i = 0; i < B; i++)
        for (int o = 0; o < OC; o++) {
            double acc = (double)b[o];
            for (int c = 0; c < C; c++) acc += (double)x[i * C + c] * (double)w[o * C + c];
            yref[i * OC + o] = (float)acc;
        }
    AG_CHECK(maxrel(y, yref, B * OC) < 1e-6, "linear forward %g", maxrel(y, yref, B * OC));
    float dy[B * OC], dx[B * C], dw[OC * C], db[OC];
    float dxr[B * C], dwr[OC * C], dbr[OC];
    for (int i = 0; i < B * OC; i++) dy[i] = frand(&s);
    for (int i = 0; i < B * C; i++) dx[i] = 1.0f;
    for (int i = 0; i < OC * C; i++) dw[i] = 2.0f;
    for (int i = 0; i < OC; i++) db[i] = 3.0f;
    agt_linear_backward(dx, dw, db, dy, x, w, B, C, OC);
    for (int i = 0; i < B; i++)
        for (int c = 0; c < C; c++) {
            double acc = 1.0;
            for (int o = 0; o < OC; o++) acc += (double)dy[i * OC + o] * (double)w[o * C + c];
            dxr[i * C + c] = (float)acc;
        }
    for (int o = 0; o < OC; o++) {
        double accb = 3.0;
        for (int i = 0; i < B; i++) accb += (double)dy[i * OC + o];
        dbr[o] = (float)accb;
        for (int c = 0; c < C; c++) {
            double acc = 2.0;
            for (int i = 0; i < B; i++) acc += (double)dy[i * OC + o] * (double)x[i * C + c];
            dwr[o * C + c] = (float)acc;
        }
    }
    AG_CHECK(maxrel(dx, dxr, B * C) < 1e-6, "dx accumulates %g", maxrel(dx, dxr, B * C));
    AG_CHECK(maxrel(dw, dwr, OC * C) < 1e-6, "dw accumulates %g", maxrel(dw, dwr, OC * C));
    AG_CHECK(maxrel(db, dbr, OC) < 1e-6, "db accumulates %g", maxrel(db, dbr, OC));
}

static void test_relu_xent(void)
{
    float in[6] = {-1.0f, 0.0f, 2.0f, NAN, -0.0f, 3.5f}, out[6], d[6] = {0};
    const float dout[6] = {1, 1, 1, 1, 1, 1};
    agt_relu_forward(out, in, 6);
    AG_CHECK(out[0] == 0.0f && out[1] == 0.0f && out[2] == 2.0f && out[3] != out[3] &&
             out[5] == 3.5f, "relu forward");
    agt_relu_backward(d, dout, in, 6);
    agt_relu_backward(d, dout, in, 6);
    AG_CHECK(d[0] == 0.0f && d[2] == 2.0f && d[5] == 2.0f && d[1] == 0.0f,
             "relu backward accumulates");

    enum { B = 4, V = 10 };
    uint64_t s = 9;
    float logits[B * V], probs[B * V], dl[B * V] = {0};
    uint8_t y[B] = {3, 0, 9, 5};
    for (int i = 0; i < B * V; i++) logits[i] = 3.0f * frand(&s);
    size_t correct = 0;
    float loss = agt_xent_forward(probs, logits, y, B, V, &correct);
    double ref = 0;
    size_t cref = 0;
    for (int i = 0; i < B; i++) {
        double mx = -1e30, sum = 0;
        int arg = 0;
        for (int j = 0; j < V; j++)
            if ((double)logits[i * V + j] > mx) { mx = (double)logits[i * V + j]; arg = j; }
        for (int j = 0; j < V; j++) sum += exp((double)logits[i * V + j] - mx);
        ref += log(sum) + mx - (double)logits[i * V + y[i]];
        cref += arg == y[i];
    }
    ref /= B;
    AG_CHECK(fabs((double)loss - ref) < 1e-6 * fabs(ref) + 1e-7, "xent %g vs %g", (double)loss, ref);
    AG_CHECK(correct == cref, "correct %zu vs %zu", correct, cref);
    agt_xent_backward(dl, probs, y, B, V);
    /* finite differences in double on the same formula */
    for (int k = 0; k < B * V; k += 3) {
        double h = 1e-3, lp = 0, lm = 0;
        for (int sgn = -1; sgn <= 1; sgn += 2) {
            double tot = 0;
            for (int i = 0; i < B; i++) {
                double mx = -1e30, sum = 0, l[V];
                for (int j = 0; j < V; j++) {
                    l[j] = (double)logits[i * V + j] + (i * V + j == k ? sgn * h : 0.0);
                    mx = fmax(mx, l[j]);
                }
                for (int j = 0; j < V; j++) sum += exp(l[j] - mx);
                tot += log(sum) + mx - l[y[i]];
            }
            if (sgn < 0) lm = tot / B; else lp = tot / B;
        }
        double fd = (lp - lm) / (2 * h);
        AG_CHECK(fabs(fd - (double)dl[k]) < 1e-4, "dlogits[%d] %g vs fd %g", k, (double)dl[k], fd);
    }
    float nanl[V];
    for (int j = 0; j < V; j++) nanl[j] = 0.0f;
    nanl[4] = NAN;
    float p1[V];
    uint8_t y1 = 2;
    float ln = agt_xent_forward(p1, nanl, &y1, 1, V, NULL);
    AG_CHECK(ln != ln, "NaN logit gives NaN loss (%g)", (double)ln);
}

static void test_quant_layer(void)
{
    /* A 1-layer model (8 -> 4) in E3M4 with E5M2 gradients: forward equals
     * the hand-made quantized product, delayed scaling uses the history. */
    const int dims[2] = {8, 4};
    agt_layer_fmt f;
    snprintf(f.spec[AGT_QW], 48, "E3M4");
    snprintf(f.spec[AGT_QX], 48, "E3M4");
    snprintf(f.spec[AGT_QG], 48, "E5M2");
    agt_model m;
    agt_err err;
    const agt_quant_cfg qc = {4, 1, 0, 1};
    int rc = agt_model_mlp(&m, dims, 2, &f, &qc, 3, 77, &err);
    AG_CHECK(rc == 0, "model: %s", err.msg);
    if (rc) return;
    const ag_format *e3m4 = ag_format_get("E3M4");
    uint64_t s = 5;
    float x[3 * 8], W[32], xq[24], wq[32], yref[12];
    uint8_t y[3] = {1, 2, 3};
    for (int i = 0; i < 24; i++) x[i] = 2.0f * frand(&s);
    agt_stepctx ctx = {1};
    float loss;
    rc = agt_model_forward(&m, x, y, 3, &ctx, &loss, NULL, &err);
    AG_CHECK(rc == 0, "forward: %s", err.msg);
    memcpy(W, m.params, sizeof W);
    float ax = 0, aw = 0;
    ag_amax(&ax, x, 24, NULL);
    ag_amax(&aw, W, 32, NULL);
    float sx, sw;
    ag_compute_scale(&sx, ax, e3m4, NULL);
    ag_compute_scale(&sw, aw, e3m4, NULL);
    ag_quantize(xq, x, 24, e3m4, sx, NULL, NULL);
    ag_quantize(wq, W, 32, e3m4, sw, NULL, NULL);
    agt_linear_forward(yref, xq, wq, m.params + 32, 3, 8, 4);
    const float *yout = m.acts[1];
    int same = 1;
    for (int i = 0; i < 12; i++) same &= ag_test_same(yout[i], yref[i]);
    AG_CHECK(same, "quantized forward equals the hand-made product");
    AG_CHECK(m.layers[0].lin.q[AGT_QX].stats.total == 24, "x stats total %llu",
             (unsigned long long)m.layers[0].lin.q[AGT_QX].stats.total);
    AG_CHECK(ag_scaler_window_count(m.layers[0].lin.q[AGT_QX].sc) == 1, "history holds the first amax");
    /* backward: STE identity => dW = Qg(dy)^T xq exactly */
    memset(m.grads, 0, m.nparams * sizeof(float));
    rc = agt_model_backward(&m, y, 3, &ctx, &err);
    AG_CHECK(rc == 0, "backward: %s", err.msg);
    float dy[12] = {0}, gq[12], dwref[32] = {0}, dbref[4] = {0};
    agt_xent_backward(dy, m.probs, y, 3, 4);
    float ag, sg;
    ag_amax(&ag, dy, 12, NULL);
    ag_compute_scale(&sg, ag, ag_format_get("E5M2"), NULL);
    ag_quantize(gq, dy, 12, ag_format_get("E5M2"), sg, NULL, NULL);
    agt_linear_backward(NULL, dwref, dbref, gq, xq, wq, 3, 8, 4);
    same = 1;
    for (int i = 0; i < 32; i++) same &= ag_test_same(m.grads[i], dwref[i]);
    for (int i = 0; i < 4; i++) same &= ag_test_same(m.grads[32 + i], dbref[i]);
    AG_CHECK(same, "quantized backward: STE gradient equals Qg(dy)^T Qx(x)");
    /* second step: the scale comes from the history (delayed), so a larger
     * input saturates */
    float x2[24];
    for (int i = 0; i < 24; i++) x2[i] = 4.0f * x[i];
    rc = agt_model_forward(&m, x2, y, 3, &ctx, &loss, NULL, &err);
    AG_CHECK(rc == 0 && m.layers[0].lin.q[AGT_QX].stats.overflow > 0,
             "delayed scaling: step 2 saturates with step 1's scale (%llu)",
             (unsigned long long)m.layers[0].lin.q[AGT_QX].stats.overflow);
    AG_CHECK(ag_scaler_last_scale(m.layers[0].lin.q[AGT_QX].sc) == sx, "step 2 used step 1's scale");
    agt_model_free(&m);

    /* bad format spec */
    snprintf(f.spec[AGT_QW], 48, "E9M9");
    rc = agt_model_mlp(&m, dims, 2, &f, &qc, 3, 77, &err);
    AG_CHECK(rc == -1 && strstr(err.msg, "E9M9"), "bad spec: %s", err.msg);
}

static void test_order_optim(void)
{
    uint32_t p[1000], q[1000];
    agt_epoch_order(p, 1000, 3, 0);
    agt_epoch_order(q, 1000, 3, 0);
    AG_CHECK(memcmp(p, q, sizeof p) == 0, "order reproducible");
    uint8_t seen[1000] = {0};
    int perm = 1;
    for (int i = 0; i < 1000; i++) { if (p[i] >= 1000 || seen[p[i]]) perm = 0; else seen[p[i]] = 1; }
    AG_CHECK(perm, "order is a permutation");
    agt_epoch_order(q, 1000, 3, 1);
    AG_CHECK(memcmp(p, q, sizeof p) != 0, "epochs differ");
    agt_epoch_order(q, 1000, 4, 0);
    AG_CHECK(memcmp(p, q, sizeof p) != 0, "seeds differ");

    agt_optim o;
    agt_err err;
    float w[3] = {1.0f, -2.0f, 0.5f}, g[3] = {0.1f, -0.3f, 0.0f};
    AG_CHECK(agt_optim_init(&o, AGT_ADAMW, 3, 0.01f, 0.1f, &err) == 0, "init");
    double m[3] = {0}, v[3] = {0}, wd[3] = {1.0, -2.0, 0.5};
    for (int t = 1; t <= 3; t++) {
        AG_CHECK(agt_optim_step(&o, w, g, NULL, 0, &err) == 0, "step");
        for (int i = 0; i < 3; i++) {
            m[i] = 0.9 * m[i] + 0.1 * (double)g[i];
            v[i] = 0.999 * v[i] + 0.001 * (double)g[i] * (double)g[i];
            double mh = m[i] / (1 - pow(0.9, t)), vh = v[i] / (1 - pow(0.999, t));
            wd[i] -= 0.01 * (mh / (sqrt(vh) + 1e-8) + 0.1 * wd[i]);
        }
    }
    for (int i = 0; i < 3; i++)
        AG_CHECK(fabs((double)w[i] - wd[i]) < 1e-6, "adamw w[%d] %g vs %g", i, (double)w[i], wd[i]);
    agt_optim_free(&o);
    float w2[2] = {1.0f, 2.0f}, g2[2] = {0.5f, -1.0f};
    AG_CHECK(agt_optim_init(&o, AGT_SGD, 2, 0.1f, 0.0f, &err) == 0, "init sgd");
    AG_CHECK(agt_optim_step(&o, w2, g2, NULL, 0, &err) == 0, "step");
    AG_CHECK(agt_optim_step(&o, w2, g2, NULL, 0, &err) == 0, "step");
    /* v1 = g, v2 = 0.9 g + g = 1.9 g; w = w0 - 0.1*(g + 1.9g) = w0 - 0.29 g */
    AG_CHECK(fabs((double)w2[0] - (1.0 - 0.29 * 0.5)) < 1e-6 &&
             fabs((double)w2[1] - (2.0 + 0.29)) < 1e-6, "sgd momentum %g %g",
             (double)w2[0], (double)w2[1]);
    agt_optim_free(&o);
}

/* agt_gemm against double loops, on shapes cut into several tiles (ragged
 * edges, both transposes, padded row strides, beta 0 / 1 / 0.5, K = 0), and
 * the same bits on pools of 1, 2 and 3 threads. */
static void test_gemm(void)
{
    static const int shp[][5] = {{300, 200, 70, 0, 1}, {130, 257, 33, 1, 0},
                                 {65, 129, 17, 0, 0},  {200, 70, 40, 1, 1},
                                 {97, 300, 0, 0, 1}};
    static const float betas[] = {0.0f, 1.0f, 0.5f, 0.5f, 0.5f};
    uint64_t s = 21;
    for (size_t k = 0; k < sizeof shp / sizeof shp[0]; k++) {
        const int M = shp[k][0], N = shp[k][1], K = shp[k][2], ta = shp[k][3],
                  tb = shp[k][4];
        const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 5;
        const size_t na = (size_t)(ta ? K : M) * lda + 1,
                     nb = (size_t)(tb ? N : K) * ldb + 1, nc = (size_t)M * ldc;
        float *A = malloc(na * sizeof *A), *B = malloc(nb * sizeof *B);
        float *C0 = malloc(nc * sizeof *C0), *C[3], *R = malloc(nc * sizeof *R);
        for (size_t i = 0; i < na; i++) A[i] = frand(&s);
        for (size_t i = 0; i < nb; i++) B[i] = frand(&s);
        for (size_t i = 0; i < nc; i++) C0[i] = frand(&s);
        const float beta = betas[k];
        for (int t = 0; t < 3; t++) {
            C[t] = malloc(nc * sizeof *C[t]);
            memcpy(C[t], C0, nc * sizeof *C0);
            agt_pool *pool = NULL;
            agt_err err;
            AG_CHECK(agt_pool_create(&pool, t + 1, &err) == 0, "%s", err.msg);
            agt_gemm(pool, ta, tb, M, N, K, 0.75f, A, lda, B, ldb, beta, C[t], ldc);
            agt_pool_free(pool);
        }
        for (int i = 0; i < M; i++)
            for (int j = 0; j < ldc; j++) {
                double acc = 0;
                for (int l = 0; l < K && j < N; l++)
                    acc += (double)(ta ? A[(size_t)l * lda + i] : A[(size_t)i * lda + l]) *
                           (double)(tb ? B[(size_t)j * ldb + l] : B[(size_t)l * ldb + j]);
                const size_t o = (size_t)i * ldc + j;
                /* columns past N are padding the call must not touch */
                R[o] = j < N ? (float)(0.75 * acc + (double)beta * (double)C0[o]) : C0[o];
            }
        AG_CHECK(maxrel(C[0], R, nc) < 1e-5, "gemm %dx%dx%d (%d%d) vs loops: %g", M, N, K,
                 ta, tb, maxrel(C[0], R, nc));
        AG_CHECK(!memcmp(C[0], C[1], nc * sizeof *C0) && !memcmp(C[0], C[2], nc * sizeof *C0),
                 "gemm %dx%dx%d: 1, 2 and 3 threads differ", M, N, K);
        for (int t = 0; t < 3; t++) free(C[t]);
        free(A);
        free(B);
        free(C0);
        free(R);
    }
}

/* GELU forward and backward against double-precision erfc and exp over
 * [-12, 12] (both tails included: the small Phi of negative x is checked
 * relative to itself), NaN and infinities. */
static void test_gelu(void)
{
    enum { N = 96001 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *d = malloc(N * sizeof *d),
          *one = malloc(N * sizeof *one);
    for (int i = 0; i < N; i++) {
        x[i] = -12.0f + 24.0f * (float)i / (float)(N - 1);
        d[i] = 0.5f;
        one[i] = 1.0f;
    }
    agt_pool *pool = NULL;
    agt_err err;
    AG_CHECK(agt_pool_create(&pool, 2, &err) == 0, "%s", err.msg);
    agt_gelu_forward(pool, y, x, N);
    agt_gelu_backward(pool, d, one, x, N);
    agt_pool_free(pool);
    double wf = 0, wb = 0;
    for (int i = 0; i < N; i++) {
        const double X = x[i], phi = 0.5 * erfc(-X / sqrt(2.0)),
                     pdf = exp(-0.5 * X * X) / sqrt(2.0 * 3.14159265358979323846);
        wf = fmax(wf, fabs((double)y[i] - X * phi) / fabs(X * phi + 1e-300));
        wb = fmax(wb, fabs((double)d[i] - (0.5 + phi + X * pdf)) / (0.5 + phi + fabs(X * pdf)));
    }
    /* measured 4.8e-7 and 1.2e-7 (a few float roundings of the polynomial
     * evaluations); glibc's 1 + erff(x/sqrt 2) is off by 100 % at x = -6 */
    AG_CHECK(wf < 1e-6, "gelu forward: relative error %.3g", wf);
    AG_CHECK(wb < 1e-6, "gelu backward: relative error %.3g", wb);
    float sp[4] = {NAN, INFINITY, -INFINITY, 0.0f}, so[4], sd[4] = {0, 0, 0, 0};
    agt_gelu_forward(NULL, so, sp, 4);
    agt_gelu_backward(NULL, sd, one, sp, 4);
    /* (the derivative at +-inf is Phi + inf * 0 = NaN, as erff's was) */
    AG_CHECK(so[0] != so[0] && so[1] == INFINITY && so[3] == 0.0f && sd[0] != sd[0] &&
             sd[3] == 0.5f, "gelu NaN / inf / 0: %g %g %g, %g %g", (double)so[0],
             (double)so[1], (double)so[3], (double)sd[0], (double)sd[3]);
    free(x);
    free(y);
    free(d);
    free(one);
}

/* agt_quant_apply splits ag_scaler_quantize's work into chunks over its
 * pool: the same outputs, counters, scales and stochastic stream as the
 * library's call on a twin scaler, for pools of 1 and 2 threads; evaluation
 * (update 0) quantizes at the next step's scale and records nothing. The
 * chunked straight-through backward (clipped) against one library call. */
static void test_quant_chunks(void)
{
    enum { N = 100003 };
    float *x = malloc(N * sizeof *x), *y1 = malloc(N * sizeof *y1), *y2 = malloc(N * sizeof *y2);
    uint64_t s = 8;
    for (int i = 0; i < N; i++) x[i] = 3.0f * frand(&s);
    x[17] = NAN;
    agt_quant_cfg qc = {4, 5, 1, 0};
    ag_scaler_opts so[AGT_NQ];
    agt_quant_opts(so, &qc, 6);
    for (int threads = 1; threads <= 2; threads++) {
        agt_quant q;
        agt_err err;
        ag_scaler *tw = NULL;
        agt_pool *pool = NULL;
        AG_CHECK(agt_pool_create(&pool, threads, &err) == 0, "%s", err.msg);
        AG_CHECK(agt_quant_init(&q, "E4M3", &so[AGT_QG], &err) == 0, "%s", err.msg);
        q.pool = pool;
        AG_CHECK(ag_scaler_create(&tw, q.fmt, &so[AGT_QG]) == AG_OK, "twin scaler");
        ag_stats st2 = {0, 0, 0, 0};
        int same = 1;
        for (int step = 0; step < 3; step++) {
            for (int i = 0; i < N; i++) x[i] *= 1.5f;
            AG_CHECK(agt_quant_apply(&q, y1, x, N, 1, &err) == 0, "%s", err.msg);
            ag_scaler_quantize(tw, y2, x, N, &st2);
            same &= !memcmp(y1, y2, N * sizeof *y1);
        }
        AG_CHECK(same && q.stats.total == st2.total && q.stats.overflow == st2.overflow &&
                 q.stats.underflow == st2.underflow && q.stats.nan == st2.nan &&
                 ag_scaler_offset(q.sc) == ag_scaler_offset(tw) &&
                 ag_scaler_last_scale(q.sc) == ag_scaler_last_scale(tw),
                 "%d threads: chunked quantize differs from ag_scaler_quantize", threads);
        /* evaluation: the scale and stream position of the next step */
        float amax, sc;
        ag_amax(&amax, x, N, NULL);
        ag_scaler_scale(tw, amax, &sc);
        ag_qopts o = so[AGT_QG].quant;
        o.offset = ag_scaler_offset(tw);
        ag_quantize(y2, x, N, q.fmt, sc, &o, NULL);
        const uint64_t off = ag_scaler_offset(q.sc);
        AG_CHECK(agt_quant_apply(&q, y1, x, N, 0, &err) == 0 &&
                 !memcmp(y1, y2, N * sizeof *y1) && ag_scaler_offset(q.sc) == off &&
                 q.stats.total == st2.total, "%d threads: evaluation quantize", threads);
        /* clipped STE in chunks, through a linear layer: dx = mask * (g wq) */
        enum { R = 300, IN = 128, OUT = 8 };
        ag_scaler_opts sc3[AGT_NQ];
        memcpy(sc3, so, sizeof sc3);
        for (int k = 0; k < AGT_NQ; k++) sc3[k].quant.ste = AG_STE_CLIPPED;
        const char specs[AGT_NQ][48] = {"fp32", "E2M1", "fp32"};
        agt_qlinear L;
        AG_CHECK(agt_qlinear_init(&L, IN, OUT, R, specs, sc3, &err) == 0, "%s", err.msg);
        agt_qlinear_set_pool(&L, pool);
        float *w = malloc(sizeof(float) * IN * OUT), *yy = malloc(sizeof(float) * R * OUT),
              *dx = calloc((size_t)R * IN, sizeof(float)), *ref = calloc((size_t)R * IN, sizeof(float)),
              *dxq = calloc((size_t)R * IN, sizeof(float)), *dW = calloc((size_t)IN * OUT, sizeof(float));
        for (int i = 0; i < IN * OUT; i++) w[i] = frand(&s);
        for (int i = 0; i < R * OUT; i++) yy[i] = frand(&s);
        /* a window of a smaller amax first, so that the step clips */
        AG_CHECK(agt_qlinear_forward(&L, yy, x, w, NULL, R / 4, 1, &err) == 0, "%s", err.msg);
        for (int i = 0; i < R * IN; i++) x[i] *= 3.0f;
        AG_CHECK(agt_qlinear_forward(&L, yy, x, w, NULL, R, 1, &err) == 0, "%s", err.msg);
        AG_CHECK(agt_qlinear_backward(&L, dx, dW, NULL, yy, x, w, R, 1, &err) == 0, "%s", err.msg);
        agt_linear_backward(dxq, NULL, NULL, yy, L.xq, w, R, IN, OUT);
        ag_scaler_backward(L.q[AGT_QX].sc, ref, dxq, x, (size_t)R * IN);
        size_t zeros = 0;
        for (int i = 0; i < R * IN; i++) zeros += ref[i] == 0.0f;
        AG_CHECK(!memcmp(dx, ref, sizeof(float) * R * IN) && zeros > 0 && zeros < (size_t)R * IN,
                 "%d threads: clipped STE in chunks (%zu masked)", threads, zeros);
        agt_qlinear_free(&L);
        free(w); free(yy); free(dx); free(ref); free(dxq); free(dW);
        ag_scaler_free(tw);
        agt_quant_free(&q);
        agt_pool_free(pool);
        for (int i = 0; i < N; i++) x[i] = 3.0f * frand(&s);
        x[17] = NAN;
    }
    free(x);
    free(y1);
    free(y2);
}

/* Why the bench keeps OpenBLAS on one thread: does sgemm (the shape of the
 * weight gradient of layer 1) give the same bits with 1 and 2 threads?
 * Reported, not asserted: it depends on the OpenBLAS build and the CPU. */
static void note_blas_threads(void)
{
    enum { OC = 256, C = 784, B = 128 };
    float *dy = malloc(sizeof(float) * B * OC), *x = malloc(sizeof(float) * B * C);
    float *d1 = calloc((size_t)OC * C, sizeof(float)), *d2 = calloc((size_t)OC * C, sizeof(float));
    if (!dy || !x || !d1 || !d2)
        goto out;
    uint64_t s = 3;
    for (int i = 0; i < B * OC; i++) dy[i] = frand(&s);
    for (int i = 0; i < B * C; i++) x[i] = frand(&s);
    openblas_set_num_threads(1);
    agt_linear_backward(NULL, d1, NULL, dy, x, NULL, B, C, OC);
    openblas_set_num_threads(2);
    agt_linear_backward(NULL, d2, NULL, dy, x, NULL, B, C, OC);
    openblas_set_num_threads(1);
    printf("note: OpenBLAS sgemm with 2 threads vs 1: %s\n",
           memcmp(d1, d2, sizeof(float) * OC * C) ? "different bits (the bench keeps BLAS single-threaded)"
                                                 : "identical bits here");
out:
    free(dy);
    free(x);
    free(d1);
    free(d2);
}

int main(void)
{
    note_blas_threads();
    test_linear();
    test_relu_xent();
    test_quant_layer();
    test_order_optim();
    test_gemm();
    test_gelu();
    test_quant_chunks();
    return ag_test_summary("test_train_ops");
}
