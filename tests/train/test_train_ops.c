/* SPDX-License-Identifier: MIT */
/*
 * test_train_ops.c — the bench's building blocks against naive references:
 * linear forward/backward (CBLAS) vs loops, ReLU, softmax cross-entropy and
 * its gradient vs finite differences, the quantized linear layer vs
 * ag_quantize by hand (forward) and the STE (backward), delayed scaling,
 * the data order, and the optimizers vs their formulas.
 */
#include "train_test_util.h"

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
    return ag_test_summary("test_train_ops");
}
