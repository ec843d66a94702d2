/* SPDX-License-Identifier: MIT */
/*
 * test_train_torch.c — the bench's network against PyTorch (llm.c's habit):
 * this test writes the weights of a freshly initialised 784-256-256-10 MLP
 * and one batch to a file, tests/train/torch_ref.py computes the same
 * network in torch, and the C side compares:
 *   - the loss and every gradient of one forward/backward: within 1e-5
 *     relative (max |c - torch| / max |torch| per tensor);
 *   - the loss of each of 10 optimizer steps (AdamW, then SGD with
 *     momentum) on that batch: within 1e-5 relative;
 *   - the same with quantizers (weights/inputs in E3M4 and float8_e4m3fn,
 *     output gradients in E5M2, a float32 first layer), torch using
 *     altgrad.quantization.quantize, within QTOL (below).
 * Python is /usr/bin/python3 (AG_PYTHON overrides). When torch cannot be
 * imported the comparison is reported as SKIPPED (not passed); the
 * quantized variant also needs the altgrad Python package (make python).
 * Run from the repository root (as make check-c does). With
 * AG_REQUIRE_TORCH=1 (make test-train-torch) a skip is a failure.
 */
#include "train_test_util.h"

#include <math.h>

#define B 32
#define NSTEPS 10
#define TOL 1e-5
/* The quantized path: a difference of 1 float32 ulp in a pre-activation
 * (BLAS summation order differs between OpenBLAS and torch) can move a
 * value across a rounding boundary of an 8-bit grid, which changes that
 * element by a whole step of the narrow format; the tolerance allows for
 * a few such flips and is still far below any real mismatch (a wrong
 * scale or a missing quantizer moves the numbers by percents). Measured
 * here: 1.7e-7 (no flip), the same as the float32 path. */
#define QTOL 1e-4

static const int dims[4] = {784, 256, 256, 10};
/* window 16, nearest rounding, one thread */
static const agt_quant_cfg qc = {16, 1, 0, 1};
static char dir[64];


/* Returns 0 compared, 1 skipped, -1 error. */
static int compare(const char *label, agt_optkind opt, float lr,
                   const agt_layer_fmt *fmts, int quantized, double tol)
{
    agt_model m;
    agt_err err;
    if (agt_model_mlp(&m, dims, 4, fmts, &qc, B, 42, &err)) {
        AG_CHECK(0, "%s: model: %s", label, err.msg);
        return -1;
    }
    float x[B * 784];
    uint8_t y[B];
    int32_t y32[B];
    uint64_t s = 99;
    for (int i = 0; i < B * 784; i++) x[i] = (float)agt_uniform(&s);
    for (int i = 0; i < B; i++) { y[i] = (uint8_t)(agt_splitmix64(&s) % 10); y32[i] = y[i]; }
    const float wd = 1e-2f;
    char in[128], out[128];
    snprintf(in, sizeof in, "%s/in.bin", dir);
    snprintf(out, sizeof out, "%s/out.bin", dir);
    FILE *f = fopen(in, "wb");
    if (!f) { AG_CHECK(0, "cannot write %s", in); agt_model_free(&m); return -1; }
    fwrite("AGTT", 1, 4, f);
    tt_put32(f, 1); tt_put32(f, B); tt_put32(f, 4);
    for (int i = 0; i < 4; i++) tt_put32(f, dims[i]);
    tt_put32(f, NSTEPS); tt_put32(f, opt == AGT_ADAMW ? 0 : 1); tt_put32(f, quantized); tt_put32(f, 16);
    fwrite(&lr, 4, 1, f);
    fwrite(&wd, 4, 1, f);
    for (int l = 0; l < 3; l++)
        for (int k = 0; k < AGT_NQ; k++) fwrite(fmts[l].spec[k], 1, 48, f);
    fwrite(m.params, sizeof(float), m.nparams, f);
    fwrite(x, sizeof x, 1, f);
    fwrite(y32, sizeof y32, 1, f);
    fclose(f);

    char cmd[1024];
    int rc, code = tt_run_python(cmd, sizeof cmd, "torch_ref.py", in, out);
    if (code == 77) {
        printf("SKIPPED: %s: the PyTorch comparison did not run (%s)\n", label,
               quantized ? "torch or the altgrad Python package (make python) is missing"
                         : "torch is not importable by " "/usr/bin/python3");
        agt_model_free(&m);
        return 1;
    }
    AG_CHECK(code == 0, "%s: %s failed (exit %d)", label, cmd, code);
    if (code != 0) { agt_model_free(&m); return -1; }
    float *ref = malloc((1 + m.nparams + NSTEPS) * sizeof(float));
    f = fopen(out, "rb");
    size_t got = f && ref ? fread(ref, sizeof(float), 1 + m.nparams + NSTEPS, f) : 0;
    if (f) fclose(f);
    AG_CHECK(got == 1 + m.nparams + NSTEPS, "%s: short torch output (%zu)", label, got);
    if (got != 1 + m.nparams + NSTEPS) { free(ref); agt_model_free(&m); return -1; }

    /* one forward/backward */
    agt_stepctx ctx = {1};
    float loss;
    float *init = malloc(m.nparams * sizeof(float));
    memcpy(init, m.params, m.nparams * sizeof(float));
    rc = agt_model_forward(&m, x, y, B, &ctx, &loss, NULL, &err);
    memset(m.grads, 0, m.nparams * sizeof(float));
    rc |= agt_model_backward(&m, y, B, &ctx, &err);
    AG_CHECK(rc == 0, "%s: %s", label, err.msg);
    double lr0 = fabs((double)loss - (double)ref[0]) / fabs((double)ref[0]);
    AG_CHECK(lr0 <= tol, "%s: loss %.9g vs torch %.9g (rel %.3g)", label, (double)loss,
             (double)ref[0], lr0);
    double worst = 0;
    for (int i = 0; i < m.nlayers; i++) {
        const agt_layer *L = &m.layers[i];
        if (L->kind != AGT_LINEAR) continue;
        size_t wn = (size_t)L->in_dim * L->out_dim;
        double rw = tt_tensor_rel(m.grads + L->w_off, ref + 1 + L->w_off, wn);
        double rb = tt_tensor_rel(m.grads + L->b_off, ref + 1 + L->b_off, (size_t)L->out_dim);
        AG_CHECK(rw <= tol, "%s: dW%d rel %.3g", label, L->index + 1, rw);
        AG_CHECK(rb <= tol, "%s: db%d rel %.3g", label, L->index + 1, rb);
        worst = fmax(worst, fmax(rw, rb));
    }
    /* 10 steps from the same weights (fresh histories) */
    agt_model_free(&m);
    agt_model_mlp(&m, dims, 4, fmts, &qc, B, 42, &err);
    memcpy(m.params, init, m.nparams * sizeof(float));
    agt_optim o;
    agt_optim_init(&o, opt, m.nparams, lr, wd, &err);
    double worst_traj = 0;
    for (int t = 0; t < NSTEPS; t++) {
        memset(m.grads, 0, m.nparams * sizeof(float));
        rc = agt_model_forward(&m, x, y, B, &ctx, &loss, NULL, &err);
        rc |= agt_model_backward(&m, y, B, &ctx, &err);
        AG_CHECK(agt_optim_step(&o, m.params, m.grads, NULL, 0, &err) == 0, "step");
        double r = fabs((double)loss - (double)ref[1 + m.nparams + t]) /
                   fabs((double)ref[1 + m.nparams + t]);
        worst_traj = fmax(worst_traj, r);
        AG_CHECK(rc == 0 && r <= tol, "%s: step %d loss %.9g vs torch %.9g (rel %.3g)", label,
                 t + 1, (double)loss, (double)ref[1 + m.nparams + t], r);
    }
    printf("%s: vs torch: loss rel %.2g, worst gradient rel %.2g, 10-step loss rel %.2g "
           "(first %.6f, last %.6f)\n",
           label, lr0, worst, worst_traj, (double)ref[1 + m.nparams], (double)ref[m.nparams + NSTEPS]);
    agt_optim_free(&o);
    agt_model_free(&m);
    free(init);
    free(ref);
    return 0;
}

static void set(agt_layer_fmt *f, const char *w, const char *g)
{
    snprintf(f->spec[AGT_QW], 48, "%s", w);
    snprintf(f->spec[AGT_QX], 48, "%s", w);
    snprintf(f->spec[AGT_QG], 48, "%s", g);
}

int main(void)
{
    if (tt_tmpdir(dir, sizeof dir))
        return 1;
    agt_layer_fmt f32[3], q[3];
    for (int l = 0; l < 3; l++) set(&f32[l], "fp32", "fp32");
    set(&q[0], "fp32", "fp32");
    set(&q[1], "E3M4", "E5M2");
    set(&q[2], "float8_e4m3fn", "float8_e5m2");
    int skipped = 0;
    skipped += compare("fp32 adamw", AGT_ADAMW, 1e-3f, f32, 0, TOL) == 1;
    skipped += compare("fp32 sgd", AGT_SGD, 0.05f, f32, 0, TOL) == 1;
    skipped += compare("quantized adamw", AGT_ADAMW, 1e-3f, q, 1, QTOL) == 1;
    if (skipped)
        printf("SKIPPED: %d of 3 PyTorch comparisons\n", skipped);
    /* make test-train-torch runs after make python: nothing may skip */
    AG_CHECK(!skipped || !getenv("AG_REQUIRE_TORCH"),
             "AG_REQUIRE_TORCH is set but %d comparison(s) skipped", skipped);
    tt_rmdir(dir);
    return ag_test_summary("test_train_torch");
}
