/* SPDX-License-Identifier: MIT */
/*
 * nn.c — the network of the training bench: forward/backward pairs of plain
 * functions over flat float32 arrays (llm.c style), quantizers with delayed
 * scaling, the quantized linear layer, and the model that chains layers.
 *
 * Quantized linear layer (as AltGrad's QuantizedLinear):
 *     forward   xq = Qx(x), wq = Qw(W), y = xq wq^T + b
 *     backward  gq = Qg(dy); dW += STE(gq^T xq); db += sum gq;
 *               dx += STE(gq wq)
 * with a straight-through estimator (ag_scaler_backward, identity) through
 * every quantizer. Each quantizer is one ag_scaler: its own per-tensor scale
 * from an amax window (delayed scaling) and its own rounding stream. A quantizer whose spec is "fp32" is the
 * identity and costs nothing, so one model mixes float32 and narrow layers.
 * The bias stays float32 (it is added in float32 accumulation, as a GEMM
 * epilogue would).
 *
 * Matrix products go through CBLAS (OpenBLAS). Backward functions
 * ACCUMULATE into their gradient outputs; the caller zeroes them.
 */
#include "train.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- ops --- */

/* The tiling of an M x N product: about AGT_GEMM_TILES tiles, rows first,
 * at least 64 rows / columns each (rounded up to 16, OpenBLAS's register
 * block), from the shape alone. */
#define AGT_GEMM_TILES 4

static int round16(int x)
{
    return (x + 15) / 16 * 16;
}

static void gemm_tiling(int M, int N, int *mt, int *nt, int *mtiles,
                        int *ntiles)
{
    int mk = M / 64, nk;
    mk = mk < 1 ? 1 : mk > AGT_GEMM_TILES ? AGT_GEMM_TILES : mk;
    *mt = round16((M + mk - 1) / mk);
    *mtiles = (M + *mt - 1) / *mt;
    nk = (AGT_GEMM_TILES + *mtiles - 1) / *mtiles;
    if (nk > N / 64)
        nk = N / 64;
    if (nk < 1)
        nk = 1;
    *nt = round16((N + nk - 1) / nk);
    *ntiles = (N + *nt - 1) / *nt;
}

/* One product C = alpha op(A) op(B) + beta C (C's rows set to bias first
 * when bias, beta then ignored) and its tiling. */
typedef struct gemm_job {
    int ta, tb, M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B, *bias;
    float *C;
    int mt, nt, mtiles, ntiles;
} gemm_job;

static int job_init(gemm_job *j, int ta, int tb, int M, int N, int K,
                    float alpha, const float *A, int lda, const float *B,
                    int ldb, float beta, float *C, int ldc, const float *bias)
{
    *j = (gemm_job){ta, tb, M, N, K, lda, ldb, ldc, alpha, beta, A, B, bias,
                    C, 0, 0, 0, 0};
    if (M < 1 || N < 1)
        return 0;
    gemm_tiling(M, N, &j->mt, &j->nt, &j->mtiles, &j->ntiles);
    return j->mtiles * j->ntiles;
}

static void job_tile(const gemm_job *j, int t)
{
    const int i0 = t / j->ntiles * j->mt, j0 = t % j->ntiles * j->nt;
    const int m = j->M - i0 < j->mt ? j->M - i0 : j->mt,
              n = j->N - j0 < j->nt ? j->N - j0 : j->nt;
    float *c = j->C + (size_t)i0 * j->ldc + j0;
    float bt = j->beta;
    if (j->bias) {
        for (int i = 0; i < m; i++)
            memcpy(c + (size_t)i * j->ldc, j->bias + j0, (size_t)n * sizeof *c);
        bt = 1.0f;
    }
    if (j->K < 1) {
        if (!j->bias)
            for (int i = 0; i < m; i++)
                for (int k = 0; k < n; k++)
                    c[(size_t)i * j->ldc + k] =
                        bt == 0.0f ? 0.0f : c[(size_t)i * j->ldc + k] * bt;
        return;
    }
    cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans,
                j->tb ? CblasTrans : CblasNoTrans, m, n, j->K, j->alpha,
                j->ta ? j->A + i0 : j->A + (size_t)i0 * j->lda, j->lda,
                j->tb ? j->B + (size_t)j0 * j->ldb : j->B + j0, j->ldb, bt, c,
                j->ldc);
}

/* db[o0, o1) += column sums of dout[B,OC], each column in row order. */
static void bias_cols(float *db, const float *dout, int B, int OC, int o0,
                      int o1)
{
    for (int i = 0; i < B; i++) {
        const float *d = dout + (size_t)i * OC;
        for (int o = o0; o < o1; o++)
            db[o] += d[o];
    }
}

#define AGT_BIAS_COLS 64

/* Up to two products and a bias gradient as one loop of tasks over the
 * pool (one hand-out and join; a thread that starts late takes fewer). */
typedef struct jobs_ctx {
    const gemm_job *j1, *j2;
    int n1, n2, B, OC;
    float *db;
    const float *dout;
} jobs_ctx;

static void jobs_task(void *arg, int t)
{
    const jobs_ctx *c = arg;
    if (t < c->n1)
        job_tile(c->j1, t);
    else if (t < c->n1 + c->n2)
        job_tile(c->j2, t - c->n1);
    else {
        const int o0 = (t - c->n1 - c->n2) * AGT_BIAS_COLS;
        bias_cols(c->db, c->dout, c->B, c->OC, o0,
                  o0 + AGT_BIAS_COLS < c->OC ? o0 + AGT_BIAS_COLS : c->OC);
    }
}

static void run_jobs(agt_pool *pool, const gemm_job *j1, int n1,
                     const gemm_job *j2, int n2, float *db, const float *dout,
                     int B, int OC)
{
    const int nb = db ? (OC + AGT_BIAS_COLS - 1) / AGT_BIAS_COLS : 0;
    jobs_ctx c = {j1, j2, n1, n2, B, OC, db, dout};
    agt_pool_run(pool, n1 + n2 + nb, jobs_task, &c);
}

void agt_gemm(agt_pool *pool, int ta, int tb, int M, int N, int K, float alpha,
              const float *A, int lda, const float *B, int ldb, float beta,
              float *C, int ldc)
{
    gemm_job j;
    const int n = job_init(&j, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta,
                           C, ldc, NULL);
    run_jobs(pool, &j, n, NULL, 0, NULL, NULL, 0, 0);
}

static void linear_forward(agt_pool *pool, float *out, const float *inp,
                           const float *w, const float *b, int B, int C,
                           int OC)
{
    /* out[B,OC] = b (broadcast), then out += inp[B,C] @ w[OC,C]^T */
    gemm_job j;
    const int n = job_init(&j, 0, 1, B, OC, C, 1.0f, inp, C, w, C, 0.0f, out,
                           OC, b);
    run_jobs(pool, &j, n, NULL, 0, NULL, NULL, 0, 0);
}

static void linear_backward(agt_pool *pool, float *dinp, float *dw, float *db,
                            const float *dout, const float *inp,
                            const float *w, int B, int C, int OC)
{
    gemm_job jx, jw;
    int nx = 0, nw = 0;
    if (dinp) /* dinp[B,C] += dout[B,OC] @ w[OC,C] */
        nx = job_init(&jx, 0, 0, B, C, OC, 1.0f, dout, OC, w, C, 1.0f, dinp,
                      C, NULL);
    if (dw) /* dw[OC,C] += dout^T[OC,B] @ inp[B,C] */
        nw = job_init(&jw, 1, 0, OC, C, B, 1.0f, dout, OC, inp, C, 1.0f, dw,
                      C, NULL);
    run_jobs(pool, &jx, nx, &jw, nw, db, dout, B, OC);
}

void agt_linear_forward(float *out, const float *inp, const float *w,
                        const float *b, int B, int C, int OC)
{
    linear_forward(NULL, out, inp, w, b, B, C, OC);
}

void agt_linear_backward(float *dinp, float *dw, float *db, const float *dout,
                         const float *inp, const float *w, int B, int C,
                         int OC)
{
    linear_backward(NULL, dinp, dw, db, dout, inp, w, B, C, OC);
}

/* --------------------------------------------------------- quantizers --- */

static int is_fp32_spec(const char *s)
{
    static const char *const names[] = {"fp32", "f32", "float32", "none",
                                        "e8m23"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *a = names[i], *b = s;
        while (*a && *b && (*a == *b || *a == *b + ('a' - 'A'))) {
            a++;
            b++;
        }
        if (!*a && !*b)
            return 1;
    }
    return 0;
}

int agt_quant_init(agt_quant *q, const char *spec, const ag_scaler_opts *so,
                   agt_err *err)
{
    memset(q, 0, sizeof *q);
    if (so->history_len < 1 || so->history_len > AGT_HIST_MAX)
        return agt_fail(err, "amax history length %zu out of range 1..%d",
                        so->history_len, AGT_HIST_MAX);
    if (!spec || is_fp32_spec(spec))
        return 0;
    char msg[200];
    ag_format f;
    ag_status st = ag_format_parse(&f, spec, msg, sizeof msg);
    if (st != AG_OK)
        return agt_fail(err, "format '%s': %s", spec, msg);
    st = ag_scaler_create(&q->sc, &f, so);
    if (st != AG_OK)
        return agt_fail(err, "scaler for %s: %s", spec, ag_status_string(st));
    q->fmt = ag_scaler_format(q->sc);
    return 0;
}

void agt_quant_free(agt_quant *q)
{
    if (!q)
        return;
    ag_scaler_free(q->sc);
    q->sc = NULL;
    q->fmt = NULL;
}

/* Elementwise library calls split into chunks over the quantizer's pool
 * (the library keeps calls this small on one thread): every chunk is the
 * same call on a sub-range, stochastic rounding continuing the stream at
 * the chunk's offset, so the result is the same for any split. Without a
 * pool, one chunk: the library's whole-array call with its own threads. */
#define AGT_CHUNK 16384

typedef struct quant_ctx {
    const agt_quant *q;
    float *y;
    const float *x, *dy;
    size_t n, len;           /* elements, per chunk */
    float scale;
    ag_qopts o;
    float amax[64];          /* per task (tasks < 64: see chunks()) */
    int st[64];
    ag_stats stats[64];
} quant_ctx;

/* Tasks of n elements: chunks of AGT_CHUNK or more, at most 64. */
static int chunks(quant_ctx *c, const agt_quant *q, size_t n)
{
    c->q = q;
    c->n = n;
    size_t len = q->pool && agt_pool_threads(q->pool) > 1 ? AGT_CHUNK : n;
    if (len < (n + 63) / 64)
        len = (n + 63) / 64;
    c->len = len ? len : 1;
    return (int)((n + c->len - 1) / c->len);
}

static size_t chunk_len(const quant_ctx *c, int t)
{
    const size_t lo = (size_t)t * c->len;
    return c->n - lo < c->len ? c->n - lo : c->len;
}

/* amax as ag_amax (max |x| over the non-NaN elements): the maximum is
 * exact, so chunk maxima combine to the same value. */
static void amax_task(void *arg, int t)
{
    quant_ctx *c = arg;
    c->amax[t] = 0.0f;
    c->st[t] = (int)ag_amax(&c->amax[t], c->x + (size_t)t * c->len,
                            chunk_len(c, t), NULL);
}

static void quant_task(void *arg, int t)
{
    quant_ctx *c = arg;
    const size_t lo = (size_t)t * c->len;
    ag_qopts o = c->o;
    o.offset += lo;
    memset(&c->stats[t], 0, sizeof c->stats[t]);
    c->st[t] = (int)ag_quantize(c->y + lo, c->x + lo, chunk_len(c, t),
                                c->q->fmt, c->scale, &o, &c->stats[t]);
}

/* Both passes over one chunk (the scale known up front), while it is in
 * the cache. */
static void amax_quant_task(void *arg, int t)
{
    quant_ctx *c = arg;
    amax_task(c, t);
    const int st = c->st[t];
    quant_task(c, t);
    c->st[t] = st > c->st[t] ? st : c->st[t];
}

/* The largest status code of the tasks (0: all AG_OK). */
static ag_status worst(const quant_ctx *c, int nt)
{
    int w = AG_OK;
    for (int t = 0; t < nt; t++)
        w = c->st[t] > w ? c->st[t] : w;
    return (ag_status)w;
}

int agt_quant_apply(agt_quant *q, float *y, const float *x, size_t n,
                    int update, agt_err *err)
{
    if (!q->fmt) {
        if (y != x)
            memcpy(y, x, n * sizeof *y);
        return 0;
    }
    /* ag_scaler_quantize in its steps (amax, the delayed scale, quantize
     * at the scaler's stream offset, record), the passes over x split
     * into chunks; evaluation (update == 0) records nothing */
    quant_ctx c;
    const int nt = chunks(&c, q, n);
    c.x = x;
    c.y = y;
    c.o = ag_scaler_options(q->sc)->quant;
    c.o.offset = ag_scaler_offset(q->sc);
    if (nt > 1)
        c.o.threads = 1;
    ag_status st;
    float amax = 0.0f;
    if (ag_scaler_window_count(q->sc) > 0) {
        /* the delayed scale is the window's, whatever this amax: both
         * passes in one loop */
        st = ag_scaler_scale(q->sc, 0.0f, &c.scale);
        if (st == AG_OK) {
            agt_pool_run(q->pool, nt, amax_quant_task, &c);
            st = worst(&c, nt);
        }
        for (int t = 0; t < nt; t++)
            amax = c.amax[t] > amax ? c.amax[t] : amax;
    } else {
        /* an empty window scales by this tensor's amax: amax first */
        agt_pool_run(q->pool, nt, amax_task, &c);
        st = worst(&c, nt);
        for (int t = 0; t < nt; t++)
            amax = c.amax[t] > amax ? c.amax[t] : amax;
        if (st == AG_OK)
            st = ag_scaler_scale(q->sc, amax, &c.scale);
        if (st == AG_OK) {
            agt_pool_run(q->pool, nt, quant_task, &c);
            st = worst(&c, nt);
        }
    }
    if (st == AG_OK && update) {
        for (int t = 0; t < nt; t++) {
            q->stats.total += c.stats[t].total;
            q->stats.overflow += c.stats[t].overflow;
            q->stats.underflow += c.stats[t].underflow;
            q->stats.nan += c.stats[t].nan;
        }
        st = ag_scaler_record(q->sc, amax, n);
    }
    if (st != AG_OK)
        return agt_fail(err, "quantize to %s: %s", q->fmt->name,
                        ag_status_string(st));
    return 0;
}

/* --------------------------------------------------- quantized linear --- */

void agt_quant_opts(ag_scaler_opts *so, const agt_quant_cfg *qc,
                    uint64_t stream0)
{
    for (int k = 0; k < AGT_NQ; k++) {
        so[k] = ag_scaler_opts_default();
        so[k].history_len = qc->hist_len;
        so[k].first = AG_SCALER_FIRST_CURRENT;
        so[k].quant.threads = qc->threads;
        so[k].quant.seed = qc->seed;
        so[k].quant.stream = stream0 + (uint64_t)k;
        if (k == AGT_QG && qc->stochastic_grads)
            so[k].quant.rounding = AG_ROUND_STOCHASTIC;
    }
}

static float *falloc(size_t n)
{
    return calloc(n ? n : 1, sizeof(float));
}


void agt_qlinear_free(agt_qlinear *L)
{
    for (int k = 0; k < AGT_NQ; k++)
        agt_quant_free(&L->q[k]);
    free(L->wq);
    free(L->xq);
    free(L->gq);
    free(L->dwq);
    free(L->dxq);
    memset(L, 0, sizeof *L);
}

int agt_qlinear_init(agt_qlinear *L, int in, int out, int rows,
                     const char (*specs)[48], const ag_scaler_opts *so,
                     agt_err *err)
{
    static const char *const role[AGT_NQ] = {"weights", "inputs",
                                             "gradients"};
    memset(L, 0, sizeof *L);
    L->in = in;
    L->out = out;
    L->rows = rows;
    for (int k = 0; k < AGT_NQ; k++)
        if (agt_quant_init(&L->q[k], specs[k], &so[k], err)) {
            char tmp[sizeof err->msg];
            snprintf(tmp, sizeof tmp, "%s", err->msg);
            agt_qlinear_free(L);
            return agt_fail(err, "%s: %s", role[k], tmp);
        }
    const size_t wn = (size_t)in * out, xn = (size_t)rows * in,
                 gn = (size_t)rows * out;
    if ((L->q[AGT_QW].fmt && (!(L->wq = falloc(wn)) || !(L->dwq = falloc(wn)))) ||
        (L->q[AGT_QX].fmt && (!(L->xq = falloc(xn)) || !(L->dxq = falloc(xn)))) ||
        (L->q[AGT_QG].fmt && !(L->gq = falloc(gn)))) {
        agt_qlinear_free(L);
        return agt_fail(err, "out of memory (linear %d x %d)", out, in);
    }
    return 0;
}

void agt_qlinear_set_pool(agt_qlinear *L, agt_pool *pool)
{
    L->pool = pool;
    for (int k = 0; k < AGT_NQ; k++)
        L->q[k].pool = pool;
}

int agt_qlinear_forward(agt_qlinear *L, float *y, const float *x,
                        const float *W, const float *b, int N, int update,
                        agt_err *err)
{
    const float *wq = W, *xq = x;
    if (L->q[AGT_QW].fmt) {
        if (agt_quant_apply(&L->q[AGT_QW], L->wq, W, (size_t)L->out * L->in,
                            update, err))
            return -1;
        wq = L->wq;
    }
    if (L->q[AGT_QX].fmt) {
        if (agt_quant_apply(&L->q[AGT_QX], L->xq, x, (size_t)N * L->in,
                            update, err))
            return -1;
        xq = L->xq;
    }
    linear_forward(L->pool, y, xq, wq, b, N, L->in, L->out);
    return 0;
}

/* dx += STE(dy) of quantizer q: the scaler's straight-through backward,
 * in chunks as agt_quant_apply. */
static void ste_task(void *arg, int t)
{
    quant_ctx *c = arg;
    const size_t lo = (size_t)t * c->len;
    c->st[t] = (int)ag_scaler_backward(c->q->sc, c->y + lo, c->dy + lo,
                                       c->x ? c->x + lo : NULL,
                                       chunk_len(c, t));
}

static int ste(float *dx, const float *dy, const float *x, size_t n,
               const agt_quant *q, agt_err *err)
{
    quant_ctx c;
    const int nt = chunks(&c, q, n);
    c.y = dx;
    c.dy = dy;
    c.x = x;
    agt_pool_run(q->pool, nt, ste_task, &c);
    const ag_status st = worst(&c, nt);
    if (st != AG_OK)
        return agt_fail(err, "quantize_backward (%s): %s", q->fmt->name,
                        ag_status_string(st));
    return 0;
}

/* 1 when q's backward is more than the identity (a clipped STE): the
 * product then goes to a scratch buffer that the STE masks and adds in.
 * Under the identity STE the product accumulates straight into the
 * gradient (no scratch pass; the library's check that the quantizer ran
 * first is kept). */
static int ste_masks(const agt_quant *q)
{
    return q->fmt && ag_scaler_options(q->sc)->quant.ste != AG_STE_IDENTITY;
}

int agt_qlinear_backward(agt_qlinear *L, float *dx, float *dW, float *db,
                         const float *dy, const float *x, const float *W,
                         int N, int update, agt_err *err)
{
    const int C = L->in, OC = L->out;
    const agt_quant *qw = &L->q[AGT_QW], *qx = &L->q[AGT_QX];
    const float *wq = qw->fmt ? L->wq : W;
    const float *xq = qx->fmt ? L->xq : x;
    const float *g = dy;
    if (L->q[AGT_QG].fmt) {
        if (agt_quant_apply(&L->q[AGT_QG], L->gq, dy, (size_t)N * OC, update,
                            err))
            return -1;
        g = L->gq;
    }
    if ((qw->fmt && ag_scaler_steps(qw->sc) == 0) ||
        (dx && qx->fmt && ag_scaler_steps(qx->sc) == 0)) {
        const agt_quant *q = qw->fmt && ag_scaler_steps(qw->sc) == 0 ? qw : qx;
        return agt_fail(err, "quantize_backward (%s): %s", q->fmt->name,
                        ag_status_string(AG_ERR_ARG));
    }
    const int mw = ste_masks(qw), mx = dx && ste_masks(qx);
    /* the products that accumulate straight into their gradients run as
     * one parallel loop; a masked one goes through its scratch buffer */
    linear_backward(L->pool, dx && !mx ? dx : NULL, mw ? NULL : dW,
                    mw ? NULL : db, g, xq, wq, N, C, OC);
    if (mw) {
        memset(L->dwq, 0, (size_t)OC * C * sizeof *L->dwq);
        linear_backward(L->pool, NULL, L->dwq, db, g, xq, wq, N, C, OC);
        if (ste(dW, L->dwq, W, (size_t)OC * C, qw, err))
            return -1;
    }
    if (mx) {
        memset(L->dxq, 0, (size_t)N * C * sizeof *L->dxq);
        linear_backward(L->pool, L->dxq, NULL, NULL, g, xq, wq, N, C, OC);
        if (ste(dx, L->dxq, x, (size_t)N * C, qx, err))
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- layers --- */

static int layer_forward(agt_model *m, agt_layer *L, float *out,
                         const float *in, int B, const agt_stepctx *ctx,
                         agt_err *err)
{
    if (L->kind == AGT_RELU) {
        agt_relu_forward(out, in, (size_t)B * L->in_dim);
        return 0;
    }
    return agt_qlinear_forward(&L->lin, out, in, m->params + L->w_off,
                               m->params + L->b_off, B, ctx->update, err);
}

static int layer_backward(agt_model *m, agt_layer *L, float *din,
                          const float *dout, const float *in, int B,
                          const agt_stepctx *ctx, agt_err *err)
{
    if (L->kind == AGT_RELU) {
        if (din)
            agt_relu_backward(din, dout, in, (size_t)B * L->in_dim);
        return 0;
    }
    return agt_qlinear_backward(&L->lin, din, m->grads + L->w_off,
                                m->grads + L->b_off, dout, in,
                                m->params + L->w_off, B, ctx->update, err);
}

/* -------------------------------------------------------------- model --- */

void agt_model_free(agt_model *m)
{
    if (!m)
        return;
    if (m->layers)
        for (int i = 0; i < m->nlayers; i++) {
            agt_qlinear_free(&m->layers[i].lin);
        }
    if (m->acts)
        for (int i = 0; i <= m->nlayers; i++)
            free(m->acts[i]);
    if (m->dacts)
        for (int i = 0; i <= m->nlayers; i++)
            free(m->dacts[i]);
    free(m->acts);
    free(m->dacts);
    free(m->layers);
    free(m->params);
    free(m->grads);
    free(m->probs);
    memset(m, 0, sizeof *m);
}

int agt_model_mlp(agt_model *m, const int *dims, int ndims,
                  const agt_layer_fmt *fmts, const agt_quant_cfg *qc, int bmax,
                  uint64_t seed, agt_err *err)
{
    memset(m, 0, sizeof *m);
    if (ndims < 2 || ndims > AGT_MAX_LAYERS + 1 || bmax < 1)
        return agt_fail(err, "bad model shape (%d sizes, batch %d)", ndims,
                        bmax);
    for (int i = 0; i < ndims; i++)
        if (dims[i] < 1 || dims[i] > 65536)
            return agt_fail(err, "bad layer size %d", dims[i]);
    const int nlin = ndims - 1;
    m->nlayers = 2 * nlin - 1;
    m->bmax = bmax;
    m->in_dim = dims[0];
    m->out_dim = dims[ndims - 1];
    m->layers = calloc((size_t)m->nlayers, sizeof *m->layers);
    m->acts = calloc((size_t)m->nlayers + 1, sizeof *m->acts);
    m->dacts = calloc((size_t)m->nlayers + 1, sizeof *m->dacts);
    if (!m->layers || !m->acts || !m->dacts) {
        agt_model_free(m);
        return agt_fail(err, "out of memory (model)");
    }
    size_t off = 0;
    for (int i = 0, li = 0; i < m->nlayers; i++) {
        agt_layer *L = &m->layers[i];
        if (i % 2 == 1) {
            L->kind = AGT_RELU;
            L->in_dim = L->out_dim = dims[li];
            L->index = -1;
            continue;
        }
        L->kind = AGT_LINEAR;
        L->in_dim = dims[li];
        L->out_dim = dims[li + 1];
        L->index = li;
        L->w_off = off;
        off += (size_t)L->in_dim * L->out_dim;
        L->b_off = off;
        off += (size_t)L->out_dim;
        ag_scaler_opts so[AGT_NQ];
        agt_quant_opts(so, qc, (uint64_t)li * AGT_NQ);
        if (agt_qlinear_init(&L->lin, L->in_dim, L->out_dim, bmax,
                             (const char(*)[48])fmts[li].spec, so, err)) {
            char tmp[sizeof err->msg];
            snprintf(tmp, sizeof tmp, "%s", err->msg);
            agt_model_free(m);
            return agt_fail(err, "layer %d %s", li + 1, tmp);
        }
        li++;
    }
    m->nparams = off;
    m->params = falloc(off);
    m->grads = falloc(off);
    m->probs = falloc((size_t)bmax * m->out_dim);
    if (!m->params || !m->grads || !m->probs)
        goto oom;
    for (int i = 0; i <= m->nlayers; i++) {
        const int d = i == 0 ? m->in_dim : m->layers[i - 1].out_dim;
        m->acts[i] = falloc((size_t)bmax * d);
        m->dacts[i] = falloc((size_t)bmax * d);
        if (!m->acts[i] || !m->dacts[i])
            goto oom;
    }
    /* He/Kaiming normal init (fan_in, gain sqrt 2), zero biases. */
    uint64_t s = seed ^ 0x243F6A8885A308D3ull;
    for (int i = 0; i < m->nlayers; i++) {
        const agt_layer *L = &m->layers[i];
        if (L->kind != AGT_LINEAR)
            continue;
        const double std = sqrt(2.0 / L->in_dim);
        const size_t wn = (size_t)L->in_dim * L->out_dim;
        for (size_t j = 0; j < wn; j++)
            m->params[L->w_off + j] = (float)(agt_normal(&s) * std);
    }
    return 0;
oom:
    agt_model_free(m);
    return agt_fail(err, "out of memory (model buffers)");
}

int agt_model_forward(agt_model *m, const float *x, const uint8_t *y, int B,
                      const agt_stepctx *ctx, float *loss, size_t *correct,
                      agt_err *err)
{
    if (B < 1 || B > m->bmax)
        return agt_fail(err, "batch %d outside 1..%d", B, m->bmax);
    memcpy(m->acts[0], x, (size_t)B * m->in_dim * sizeof(float));
    for (int i = 0; i < m->nlayers; i++)
        if (layer_forward(m, &m->layers[i], m->acts[i + 1], m->acts[i], B,
                          ctx, err))
            return -1;
    *loss = agt_xent_forward(m->probs, m->acts[m->nlayers], y, B, m->out_dim,
                             correct);
    return 0;
}

int agt_model_backward(agt_model *m, const uint8_t *y, int B,
                       const agt_stepctx *ctx, agt_err *err)
{
    for (int i = 1; i <= m->nlayers; i++) {
        const int d = m->layers[i - 1].out_dim;
        memset(m->dacts[i], 0, (size_t)B * d * sizeof(float));
    }
    agt_xent_backward(m->dacts[m->nlayers], m->probs, y, B, m->out_dim);
    for (int i = m->nlayers - 1; i >= 0; i--)
        if (layer_backward(m, &m->layers[i], i > 0 ? m->dacts[i] : NULL,
                           m->dacts[i + 1], m->acts[i], B, ctx, err))
            return -1;
    return 0;
}
