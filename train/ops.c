/* SPDX-License-Identifier: MIT */
/*
 * ops.c — the GPT's ops as forward/backward pairs of plain functions over
 * flat float32 arrays (llm.c style; shapes in gpt.h). Destination first;
 * backward functions ACCUMULATE into their gradient outputs.
 *
 * Threads (OpenMP) only where every output element is written by one
 * thread in a fixed order: rows of a layernorm, (batch, head) pairs of the
 * attention, elements of GELU. Sums over rows (parameter gradients of
 * layernorm, embeddings, biases) run serially in row order. So the
 * results are the same for any thread count.
 */
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

void agt_layernorm_forward(float *out, float *mean, float *rstd,
                           const float *inp, const float *w, const float *b,
                           int N, int C)
{
#pragma omp parallel for schedule(static) if (N >= 256)
    for (int r = 0; r < N; r++) {
        const float *x = inp + (size_t)r * C;
        float *o = out + (size_t)r * C;
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
            o[i] = (x[i] - mf) * s * w[i] + b[i];
        mean[r] = mf;
        rstd[r] = s;
    }
}

void agt_layernorm_backward(float *dinp, float *dw, float *db,
                            const float *dout, const float *inp,
                            const float *w, const float *mean,
                            const float *rstd, int N, int C)
{
#pragma omp parallel for schedule(static) if (N >= 256)
    for (int r = 0; r < N; r++) {
        const float *x = inp + (size_t)r * C, *d = dout + (size_t)r * C;
        float *dx = dinp + (size_t)r * C;
        const float m = mean[r], s = rstd[r];
        double dn_mean = 0, dn_dot = 0;
        for (int i = 0; i < C; i++) {
            float n = (x[i] - m) * s;
            float dn = w[i] * d[i];
            dn_mean += (double)dn;
            dn_dot += (double)dn * (double)n;
        }
        float a = (float)(dn_mean / C), c = (float)(dn_dot / C);
        for (int i = 0; i < C; i++) {
            float n = (x[i] - m) * s;
            float dn = w[i] * d[i];
            dx[i] += (dn - a - n * c) * s;
        }
    }
    for (int r = 0; r < N; r++) {
        const float *x = inp + (size_t)r * C, *d = dout + (size_t)r * C;
        const float m = mean[r], s = rstd[r];
        for (int i = 0; i < C; i++) {
            dw[i] += (x[i] - m) * s * d[i];
            db[i] += d[i];
        }
    }
}

/* ---------------------------------------------------------- attention --- */

/* Per (batch, head), with matrix products through CBLAS on strided views
 * of qkv (row stride 3C): pre = q k^T * scale over all T x T (the masked
 * half is computed and then ignored: cheaper than a scalar triangle), the
 * causal softmax row by row, out = att v. */
void agt_attention_forward(float *out, float *att, const float *qkv, int B,
                           int T, int C, int NH)
{
    const int hs = C / NH, C3 = 3 * C;
    const float scale = (float)(1.0 / sqrt((double)hs));
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
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
}

void agt_attention_backward(float *dqkv, float *datt, const float *dout,
                            const float *qkv, const float *att, int B, int T,
                            int C, int NH)
{
    const int hs = C / NH, C3 = 3 * C;
    const float scale = (float)(1.0 / sqrt((double)hs));
    /* each (b, h) writes only its own columns of dqkv and its datt block */
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
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
}

/* --------------------------------------------------------------- gelu --- */

void agt_gelu_forward(float *out, const float *inp, size_t n)
{
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    }
}

void agt_gelu_backward(float *dinp, const float *dout, const float *inp,
                       size_t n)
{
    const float k = (float)(1.0 / sqrt(2.0 * 3.14159265358979323846));
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
        float pdf = k * expf(-0.5f * x * x);
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}

void agt_residual_forward(float *out, const float *a, const float *b,
                          size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

/* ------------------------------------------------------ cross-entropy --- */

double agt_token_xent_forward(float *probs, const float *logits,
                              const uint8_t *tgt, int N, int V)
{
    double *nll = malloc((size_t)(N > 0 ? N : 1) * sizeof *nll);
    if (!nll)
        return NAN;
#pragma omp parallel for schedule(static) if (N >= 256)
    for (int r = 0; r < N; r++) {
        const float *l = logits + (size_t)r * V;
        float *p = probs + (size_t)r * V;
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
        nll[r] = nan ? (double)NAN : lse - (double)l[tgt[r]];
        for (int i = 0; i < V; i++)
            p[i] = nan ? NAN : (float)exp((double)l[i] - lse);
    }
    double s = 0;
    for (int r = 0; r < N; r++)
        s += nll[r];
    free(nll);
    return N > 0 ? s / N : 0.0;
}

void agt_token_xent_backward(float *dlogits, const float *probs,
                             const uint8_t *tgt, int N, int V)
{
    const float inv = 1.0f / (float)N;
#pragma omp parallel for schedule(static) if (N >= 256)
    for (int r = 0; r < N; r++) {
        const float *p = probs + (size_t)r * V;
        float *d = dlogits + (size_t)r * V;
        for (int i = 0; i < V; i++)
            d[i] += (p[i] - (i == tgt[r] ? 1.0f : 0.0f)) * inv;
    }
}
