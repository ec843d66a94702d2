/* SPDX-License-Identifier: MIT */
/*
 * ops.c — the bench's ops as forward/backward pairs of plain functions
 * over flat float32 arrays (llm.c style): the GPT's (shapes in gpt.h) and
 * the MLP's ReLU and cross-entropy (train.h); the matrix products and the
 * quantized linear both models share are train/nn.c's. Destination first;
 * backward functions ACCUMULATE into their gradient outputs.
 *
 * Threads: each op is a loop of tasks on the model's pool (agt_pool_run;
 * NULL runs them in order on the caller), and every output element is
 * written by one task in a fixed order: blocks of rows of a layernorm or
 * the loss, (batch, head) pairs of the attention, blocks of elements of
 * GELU, blocks of columns of the layernorm's parameter gradients (each
 * column summed over the rows in row order). Embedding gradients run
 * serially in row order. So the results are the same for any team size.
 */
/* GCC if-converts the selects of the GELU loops (so that they vectorize)
 * only when it may assume that floating-point operations do not trap;
 * no result changes. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include "gpt.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------- embedding --- */

void agt_embed_forward(float *out, const uint8_t *tok, const float *wte,
                       const float *wpe, int B, int T, int C)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            const float *e = wte + (size_t)tok[(size_t)b * T + t] * C;
            const float *p = wpe + (size_t)t * C;
            for (int i = 0; i < C; i++)
                o[i] = e[i] + p[i];
        }
}

void agt_embed_backward(float *dwte, float *dwpe, const float *dout,
                        const uint8_t *tok, int B, int T, int C)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            float *e = dwte + (size_t)tok[(size_t)b * T + t] * C;
            float *p = dwpe + (size_t)t * C;
            for (int i = 0; i < C; i++) {
                e[i] += d[i];
                p[i] += d[i];
            }
        }
}

/* ---------------------------------------------------------- layernorm --- */

#define AGT_ROWS 32   /* rows per task of the row-wise ops */

/* The end of task t's rows [t * AGT_ROWS, end) among N. */
static int rows_end(int t, int N)
{
    return (t + 1) * AGT_ROWS < N ? (t + 1) * AGT_ROWS : N;
}

typedef struct ln_ctx {
    float *out, *mean, *rstd, *dinp, *dw, *db;
    const float *inp, *w, *b, *dout;
    const float *cmean, *crstd;
    int N, C, nrow;
} ln_ctx;

static void ln_fwd_task(void *arg, int t)
{
    const ln_ctx *c = arg;
    const int C = c->C, r1 = rows_end(t, c->N);
    for (int r = t * AGT_ROWS; r < r1; r++) {
        const float *x = c->inp + (size_t)r * C;
        float *o = c->out + (size_t)r * C;
        double m = 0;
        for (int i = 0; i < C; i++)
            m += (double)x[i];
        m /= C;
        double v = 0;
        for (int i = 0; i < C; i++) {
            double d = (double)x[i] - m;
            v += d * d;
        }
        v /= C;
        float s = (float)(1.0 / sqrt(v + 1e-5));
        float mf = (float)m;
        for (int i = 0; i < C; i++)
            o[i] = (x[i] - mf) * s * c->w[i] + c->b[i];
        c->mean[r] = mf;
        c->rstd[r] = s;
    }
}

void agt_layernorm_forward(agt_pool *pool, float *out, float *mean,
                           float *rstd, const float *inp, const float *w,
                           const float *b, int N, int C)
{
    ln_ctx c = {out, mean, rstd, NULL, NULL, NULL, inp, w, b, NULL, NULL,
                NULL, N, C, 0};
    agt_pool_run(pool, (N + AGT_ROWS - 1) / AGT_ROWS, ln_fwd_task, &c);
}

/* tasks [0, nrow): rows of dinp; then blocks of 64 columns of dw and db,
 * each column summed over the rows in row order */
static void ln_bwd_task(void *arg, int t)
{
    const ln_ctx *c = arg;
    const int C = c->C, N = c->N;
    if (t < c->nrow) {
        const int r1 = rows_end(t, N);
        for (int r = t * AGT_ROWS; r < r1; r++) {
            const float *x = c->inp + (size_t)r * C, *d = c->dout + (size_t)r * C;
            float *dx = c->dinp + (size_t)r * C;
            const float m = c->cmean[r], s = c->crstd[r];
            double dn_mean = 0, dn_dot = 0;
            for (int i = 0; i < C; i++) {
                float n = (x[i] - m) * s;
                float dn = c->w[i] * d[i];
                dn_mean += (double)dn;
                dn_dot += (double)dn * (double)n;
            }
            float a = (float)(dn_mean / C), cc = (float)(dn_dot / C);
            for (int i = 0; i < C; i++) {
                float n = (x[i] - m) * s;
                float dn = c->w[i] * d[i];
                dx[i] += (dn - a - n * cc) * s;
            }
        }
        return;
    }
    const int i0 = (t - c->nrow) * 64, i1 = i0 + 64 < C ? i0 + 64 : C;
    for (int r = 0; r < N; r++) {
        const float *x = c->inp + (size_t)r * C, *d = c->dout + (size_t)r * C;
        const float m = c->cmean[r], s = c->crstd[r];
        for (int i = i0; i < i1; i++) {
            c->dw[i] += (x[i] - m) * s * d[i];
            c->db[i] += d[i];
        }
    }
}

void agt_layernorm_backward(agt_pool *pool, float *dinp, float *dw,
                            float *db, const float *dout, const float *inp,
                            const float *w, const float *mean,
                            const float *rstd, int N, int C)
{
    ln_ctx c = {NULL, NULL, NULL, dinp, dw, db, inp, w, NULL, dout, mean,
                rstd, N, C, (N + AGT_ROWS - 1) / AGT_ROWS};
    agt_pool_run(pool, c.nrow + (C + 63) / 64, ln_bwd_task, &c);
}

/* ---------------------------------------------------------- attention --- */

/* Per (batch, head), with matrix products through CBLAS on strided views
 * of qkv (row stride 3C): pre = q k^T * scale over all T x T (the masked
 * half is computed and then ignored: cheaper than a scalar triangle), the
 * causal softmax row by row, out = att v. */
typedef struct att_ctx {
    float *out, *att, *dqkv, *datt;
    const float *qkv, *catt, *dout;
    int T, C, NH;
} att_ctx;

/* task b * NH + h: batch b, head h */
static void att_fwd_task(void *arg, int task)
{
    const att_ctx *c = arg;
    const int T = c->T, C = c->C, NH = c->NH, b = task / NH, h = task % NH;
    const float *qkv = c->qkv;
    float *att = c->att, *out = c->out;
    const int hs = C / NH, C3 = 3 * C;
    const float scale = (float)(1.0 / sqrt((double)hs));
    const float *q = qkv + (size_t)b * T * C3 + h * hs;
    const float *k = q + C, *v = q + 2 * C;
    float *A = att + ((size_t)b * NH + h) * T * T;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs,
                scale, q, C3, k, C3, 0.0f, A, T);
    for (int t = 0; t < T; t++) {
        float *a = A + (size_t)t * T;
        float mx = -INFINITY;
        for (int u = 0; u <= t; u++)
            if (a[u] > mx)
                mx = a[u];
        float sum = 0;
        for (int u = 0; u <= t; u++) {
            a[u] = expf(a[u] - mx);
            sum += a[u];
        }
        float inv = sum > 0 ? 1.0f / sum : 0.0f;
        for (int u = 0; u < T; u++)
            a[u] = u <= t ? a[u] * inv : 0.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T,
                1.0f, A, T, v, C3, 0.0f,
                out + (size_t)b * T * C + h * hs, C);
}

void agt_attention_forward(agt_pool *pool, float *out, float *att,
                           const float *qkv, int B, int T, int C, int NH)
{
    att_ctx c = {out, att, NULL, NULL, qkv, NULL, NULL, T, C, NH};
    agt_pool_run(pool, B * NH, att_fwd_task, &c);
}

/* each (b, h) writes only its own columns of dqkv and its datt block */
static void att_bwd_task(void *arg, int task)
{
    const att_ctx *c = arg;
    const int T = c->T, C = c->C, NH = c->NH, b = task / NH, h = task % NH;
    const float *qkv = c->qkv, *att = c->catt, *dout = c->dout;
    float *dqkv = c->dqkv, *datt = c->datt;
    const int hs = C / NH, C3 = 3 * C;
    const float scale = (float)(1.0 / sqrt((double)hs));
    const float *q = qkv + (size_t)b * T * C3 + h * hs;
    const float *k = q + C, *v = q + 2 * C;
    float *dq = dqkv + (size_t)b * T * C3 + h * hs;
    float *dk = dq + C, *dv = dq + 2 * C;
    const float *A = att + ((size_t)b * NH + h) * T * T;
    float *D = datt + ((size_t)b * NH + h) * T * T;
    const float *d = dout + (size_t)b * T * C + h * hs;
    /* out = A v: dA = d v^T, dv += A^T d */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs,
                1.0f, d, C, v, C3, 0.0f, D, T);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T,
                1.0f, A, T, d, C, 1.0f, dv, C3);
    /* softmax: dpre = A * (dA - sum A dA) * scale (0 where masked) */
    for (int t = 0; t < T; t++) {
        const float *a = A + (size_t)t * T;
        float *da = D + (size_t)t * T;
        float dot = 0;
        for (int u = 0; u <= t; u++)
            dot += a[u] * da[u];
        for (int u = 0; u < T; u++)
            da[u] = u <= t ? a[u] * (da[u] - dot) * scale : 0.0f;
    }
    /* pre = q k^T: dq += dpre k, dk += dpre^T q */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T,
                1.0f, D, T, k, C3, 1.0f, dq, C3);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T,
                1.0f, D, T, q, C3, 1.0f, dk, C3);
}

void agt_attention_backward(agt_pool *pool, float *dqkv, float *datt,
                            const float *dout, const float *qkv,
                            const float *att, int B, int T, int C, int NH)
{
    att_ctx c = {NULL, NULL, dqkv, datt, qkv, att, dout, T, C, NH};
    agt_pool_run(pool, B * NH, att_bwd_task, &c);
}

/* --------------------------------------------------------------- gelu --- */

/* GELU needs Phi(x) = (1 + erf(x / sqrt 2)) / 2 and, backward, the density
 * exp(-x^2/2) / sqrt(2 pi). glibc's erff and expf are calls that no loop
 * vectorizes, and were a fifth of the GPT's step; these are branch-free
 * float polynomials that do (least-squares fits made for this file, in
 * double, of erf(z)/z in z^2 on [0, 1/2], of erfc(z) exp(z^2) in
 * t = 1/(1 + z/2) on [1/2, 10], and of e^r on |r| <= ln2/2; fit errors
 * 1e-11, 1.3e-9 and 2e-9 relative, below float rounding). Phi(x) for
 * x < -1/sqrt 2 is erfc(|z|)/2 itself rather than 1 + erf (whose
 * cancellation loses the digits of a small Phi; torch's 1 + erf does), and
 * x^2/2 is carried as hi + lo, so the density keeps its relative accuracy
 * far out: test_train_ops checks both against double-precision erfc and
 * exp. */

/* inlined into the loops below, which vectorize only so */
#ifdef __GNUC__
#define AGT_INLINE static inline __attribute__((always_inline))
#else
#define AGT_INLINE static inline
#endif

/* e^a for a <= 0 (0 below -87, where e^a leaves float's normal range). */
AGT_INLINE float exp_neg(float a)
{
    const float t = a * 1.44269504f;
    /* round to nearest: 1.5 * 2^23 pushes the fraction out */
    const float kf = (t + 12582912.0f) - 12582912.0f;
    const float r = (a - kf * 0.693145751953125f) - kf * 1.42860677e-06f;
    float p = 1.383677682e-03f;
    p = p * r + 8.374815876e-03f;
    p = p * r + 4.166822683e-02f;
    p = p * r + 1.666642017e-01f;
    p = p * r + 4.999999207e-01f;
    p = p * r + 1.000000036e+00f;
    p = p * r + 1.0f;
    int32_t k = (int32_t)kf;
    k = k < -126 ? -126 : k;
    union { int32_t i; float f; } two = {(k + 127) * (1 << 23)};
    return a < -87.0f ? 0.0f : p * two.f;
}

/* Phi(x) and the Gaussian density at x. */
AGT_INLINE void gauss(float x, float *cdf, float *pdf)
{
    const float ax = fabsf(x) < 14.0f ? fabsf(x) : 14.0f;
    /* x^2 / 2 = hi + lo exactly (Veltkamp's split of x) */
    const float c = ax * 4097.0f, xh = c - (c - ax), xl = ax - xh;
    const float sq = ax * ax;
    const float hi = 0.5f * sq,
                lo = 0.5f * (((xh * xh - sq) + 2.0f * xh * xl) + xl * xl);
    const float e = exp_neg(-hi) * (1.0f - lo);     /* exp(-x^2/2) */
    const float z = ax * 0.707106781f;
    /* z < 1/2: erf(z) = z P(z^2) */
    const float s = z * z;
    float q = -7.692848067e-04f;
    q = q * s + 5.200308034e-03f;
    q = q * s - 2.686311983e-02f;
    q = q * s + 1.128377380e-01f;
    q = q * s - 3.761263852e-01f;
    q = q * s + 1.128379167e+00f;
    const float half_erf = 0.5f * z * q;
    /* z >= 1/2: erfc(z) = exp(-z^2) R(1 / (1 + z/2)) */
    const float t = 1.0f / (1.0f + 0.5f * z);
    float r = -7.464114370e-02f;
    r = r * t + 3.522202347e-01f;
    r = r * t - 6.127955844e-01f;
    r = r * t + 4.083461766e-01f;
    r = r * t - 1.094686535e-01f;
    r = r * t + 2.360305126e-01f;
    r = r * t + 2.346444444e-01f;
    r = r * t + 2.836750175e-01f;
    r = r * t + 2.819769915e-01f;
    r = r * t + 3.839033389e-06f;
    const float half_erfc = 0.5f * e * r;
    const float up = z < 0.5f ? 0.5f + half_erf : 1.0f - half_erfc,
                down = z < 0.5f ? 0.5f - half_erf : half_erfc;
    *cdf = x != x ? x : x < 0.0f ? down : up;
    *pdf = 0.398942280f * e;
}

#define AGT_ELEMS 16384   /* elements per task of the elementwise ops */

/* The GELU loops in AVX-512, AVX2 and baseline clones, chosen when the
 * program loads: the same IEEE operations in each (no contraction under
 * -std=c11), so the same bits, 16, 8 or 4 lanes at a time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    defined(__linux__)
#define AGT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define AGT_CLONES
#endif

typedef struct gelu_ctx {
    float *out;
    const float *inp, *dout;
    size_t n;
} gelu_ctx;

AGT_CLONES static void gelu_fwd_task(void *arg, int t)
{
    const gelu_ctx *c = arg;
    const size_t lo = (size_t)t * AGT_ELEMS,
                 hi = c->n - lo < AGT_ELEMS ? c->n : lo + AGT_ELEMS;
    float *restrict out = c->out;
    const float *restrict inp = c->inp;
#pragma omp simd
    for (size_t i = lo; i < hi; i++) {
        float cdf, pdf;
        gauss(inp[i], &cdf, &pdf);
        out[i] = inp[i] * cdf;
    }
}

void agt_gelu_forward(agt_pool *pool, float *out, const float *inp, size_t n)
{
    gelu_ctx c = {out, inp, NULL, n};
    agt_pool_run(pool, (int)((n + AGT_ELEMS - 1) / AGT_ELEMS), gelu_fwd_task,
                 &c);
}

AGT_CLONES static void gelu_bwd_task(void *arg, int t)
{
    const gelu_ctx *c = arg;
    const size_t lo = (size_t)t * AGT_ELEMS,
                 hi = c->n - lo < AGT_ELEMS ? c->n : lo + AGT_ELEMS;
    float *restrict dinp = c->out;
    const float *restrict inp = c->inp, *restrict dout = c->dout;
#pragma omp simd
    for (size_t i = lo; i < hi; i++) {
        float cdf, pdf;
        const float x = inp[i];
        gauss(x, &cdf, &pdf);
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}

void agt_gelu_backward(agt_pool *pool, float *dinp, const float *dout,
                       const float *inp, size_t n)
{
    gelu_ctx c = {dinp, inp, dout, n};
    agt_pool_run(pool, (int)((n + AGT_ELEMS - 1) / AGT_ELEMS), gelu_bwd_task,
                 &c);
}

void agt_residual_forward(float *out, const float *a, const float *b,
                          size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

/* ------------------------------------------------------ cross-entropy --- */

typedef struct xent_ctx {
    float *probs, *dlogits;
    const float *logits, *cprobs;
    const uint8_t *tgt;
    double *nll;
    int N, V;
} xent_ctx;

static void xent_fwd_task(void *arg, int t)
{
    const xent_ctx *c = arg;
    const int V = c->V, r1 = rows_end(t, c->N);
    for (int r = t * AGT_ROWS; r < r1; r++) {
        const float *l = c->logits + (size_t)r * V;
        float *p = c->probs + (size_t)r * V;
        float mx = -INFINITY;
        int nan = 0;
        for (int i = 0; i < V; i++) {
            if (l[i] != l[i])
                nan = 1;
            else if (l[i] > mx)
                mx = l[i];
        }
        double sum = 0;
        for (int i = 0; i < V; i++)
            sum += exp((double)l[i] - (double)mx);
        double lse = log(sum) + (double)mx;
        c->nll[r] = nan ? (double)NAN : lse - (double)l[c->tgt[r]];
        for (int i = 0; i < V; i++)
            p[i] = nan ? NAN : (float)exp((double)l[i] - lse);
    }
}

double agt_token_xent_forward(agt_pool *pool, float *probs,
                              const float *logits, const uint8_t *tgt, int N,
                              int V)
{
    double *nll = malloc((size_t)(N > 0 ? N : 1) * sizeof *nll);
    if (!nll)
        return NAN;
    xent_ctx c = {probs, NULL, logits, NULL, tgt, nll, N, V};
    agt_pool_run(pool, (N + AGT_ROWS - 1) / AGT_ROWS, xent_fwd_task, &c);
    double s = 0;
    for (int r = 0; r < N; r++)
        s += nll[r];
    free(nll);
    return N > 0 ? s / N : 0.0;
}

static void xent_bwd_task(void *arg, int t)
{
    const xent_ctx *c = arg;
    const int V = c->V, r1 = rows_end(t, c->N);
    const float inv = 1.0f / (float)c->N;
    for (int r = t * AGT_ROWS; r < r1; r++) {
        const float *p = c->cprobs + (size_t)r * V;
        float *d = c->dlogits + (size_t)r * V;
        for (int i = 0; i < V; i++)
            d[i] += (p[i] - (i == c->tgt[r] ? 1.0f : 0.0f)) * inv;
    }
}

void agt_token_xent_backward(agt_pool *pool, float *dlogits,
                             const float *probs, const uint8_t *tgt, int N,
                             int V)
{
    xent_ctx c = {NULL, dlogits, NULL, probs, tgt, NULL, N, V};
    agt_pool_run(pool, (N + AGT_ROWS - 1) / AGT_ROWS, xent_bwd_task, &c);
}

/* ------------------------------------------------ the MLP's ops --- */

/* A select without branches, so that it vectorizes (the branchy form was
 * 8 % of an MLP epoch). */
void agt_relu_forward(float *out, const float *inp, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        const float x = inp[i];
        out[i] = x > 0.0f || x != x ? x : 0.0f;
    }
}

/* Branch-free as the forward: adding 0 where inp <= 0 (or NaN) leaves
 * dinp as the branch did, except that -0 + 0 is +0 (a zero either way). */
void agt_relu_backward(float *dinp, const float *dout, const float *inp,
                       size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        const float d = dout[i];   /* loaded unconditionally: a select */
        dinp[i] += inp[i] > 0.0f ? d : 0.0f;
    }
}

float agt_xent_forward(float *probs, const float *logits,
                       const uint8_t *labels, int B, int V, size_t *correct)
{
    double total = 0.0;
    size_t ok = 0;
    for (int i = 0; i < B; i++) {
        const float *l = logits + (size_t)i * V;
        float *p = probs + (size_t)i * V;
        float mx = l[0];
        int arg = 0, nan = l[0] != l[0];
        for (int j = 1; j < V; j++) {
            if (l[j] != l[j])
                nan = 1;
            if (l[j] > mx) {
                mx = l[j];
                arg = j;
            }
        }
        if (nan) {
            for (int j = 0; j < V; j++)
                p[j] = NAN;
            total = (double)NAN;
            continue;
        }
        float sum = 0.0f;
        for (int j = 0; j < V; j++) {
            p[j] = expf(l[j] - mx);
            sum += p[j];
        }
        const float inv = 1.0f / sum;
        for (int j = 0; j < V; j++)
            p[j] *= inv;
        /* -log softmax[y] = log(sum) - (l[y] - mx) */
        total += (double)(logf(sum) - (l[labels[i]] - mx));
        if (arg == labels[i])
            ok++;
    }
    if (correct)
        *correct += ok;
    return (float)(total / B);
}

void agt_xent_backward(float *dlogits, const float *probs,
                       const uint8_t *labels, int B, int V)
{
    const float invb = 1.0f / (float)B;
    for (int i = 0; i < B; i++) {
        const float *p = probs + (size_t)i * V;
        float *d = dlogits + (size_t)i * V;
        for (int j = 0; j < V; j++)
            d[j] += (p[j] - (j == labels[i] ? 1.0f : 0.0f)) * invb;
    }
}
