/* SPDX-License-Identifier: MIT */
/*
 * gpt.c — the bench's GPT (nanoGPT layout, the twin of
 * python/altgrad/training/model.py):
 *
 *     x   = wte[tok] + wpe[t]
 *     per block:  x = x + c_proj(attn(c_attn(ln_1(x))))
 *                 x = x + mlp.c_proj(gelu(c_fc(ln_2(x))))
 *     logits = lm_head(ln_f(x))      lm_head.weight IS wte (tied)
 *     loss   = mean cross-entropy of the next byte
 *
 * Every linear is an agt_qlinear: its weights, inputs and output gradient
 * each go through their own quantizer (delayed scaling, ag_scaler), whose
 * format is chosen per layer type (c_attn, attn.c_proj, c_fc, mlp.c_proj,
 * lm_head) and role. LayerNorms, attention scores, GELU, residuals and the
 * loss stay float32, as AltGrad's QuantizedLinear leaves them.
 *
 * The parameters are one flat array described by a table of named tensors
 * (the twin's state_dict names), the 2-D ones first (AdamW decays them).
 */
#include "gpt.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const agt_layer_type_names[AGT_NLT] = {
    "c_attn", "attn.c_proj", "c_fc", "mlp.c_proj", "lm_head"};

void agt_gpt_cfg_default(agt_gpt_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->n_layer = 2;
    c->n_head = 4;
    c->n_embd = 128;
    c->block_size = 64;
    c->vocab_size = 256;
    for (int t = 0; t < AGT_NLT; t++)
        for (int k = 0; k < AGT_NQ; k++)
            snprintf(c->spec[t][k], sizeof c->spec[t][k], "fp32");
    c->qc.hist_len = 16;
    c->qc.seed = 1;
    c->qc.stochastic_grads = 0;
    c->qc.threads = 1;
}

void agt_gpt_cfg_set(agt_gpt_cfg *c, unsigned mask, int role,
                     const char *spec)
{
    for (int t = 0; t < AGT_NLT; t++) {
        if (!(mask & (1u << t)))
            continue;
        for (int k = 0; k < AGT_NQ; k++)
            if (role == k || (role < 0 && k != AGT_QG))
                snprintf(c->spec[t][k], sizeof c->spec[t][k], "%s", spec);
    }
}

/* ------------------------------------------------------ activations --- */

enum {
    A_LN1, A_QKV, A_ATTY, A_PROJ, A_RES2, A_LN2, A_FCH, A_FCHG, A_MPROJ,
    A_RES3, A_NPER
};

struct agt_gpt_acts {
    float *buf, *gbuf;         /* activations and their gradients */
    float *enc, *genc;         /* [N,C] */
    float **a, **g;            /* [L * A_NPER] */
    float *att, *gatt;         /* [L][B,NH,T,T] */
    float *lnm, *lnr;          /* [2L+1][N] */
    float *lnf, *glnf;         /* [N,C] */
    float *logits;             /* [N,V]: probs after the forward */
    float *glogits;
    uint8_t *tok;              /* [N]: the last forward's tokens */
};

static size_t per_size(int k, size_t N, size_t C)
{
    switch (k) {
    case A_QKV: return N * 3 * C;
    case A_FCH: case A_FCHG: return N * 4 * C;
    default: return N * C;
    }
}

static void acts_free(agt_gpt_acts *a)
{
    if (!a)
        return;
    free(a->buf);
    free(a->gbuf);
    free(a->a);
    free(a->g);
    free(a->lnm);
    free(a->lnr);
    free(a->tok);
    free(a);
}

static agt_gpt_acts *acts_alloc(const agt_gpt_cfg *c, int bmax)
{
    agt_gpt_acts *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    const size_t L = (size_t)c->n_layer, N = (size_t)bmax * c->block_size,
                 C = (size_t)c->n_embd, V = (size_t)c->vocab_size,
                 TT = (size_t)bmax * c->n_head * c->block_size * c->block_size;
    size_t per = 0;
    for (int k = 0; k < A_NPER; k++)
        per += per_size(k, N, C);
    const size_t total = N * C + L * per + L * TT + N * C + N * V;
    a->buf = malloc(total * sizeof(float));
    a->gbuf = malloc(total * sizeof(float));
    a->a = malloc(L * A_NPER * sizeof *a->a + 1);
    a->g = malloc(L * A_NPER * sizeof *a->g + 1);
    a->lnm = malloc((2 * L + 1) * N * sizeof(float));
    a->lnr = malloc((2 * L + 1) * N * sizeof(float));
    a->tok = malloc(N);
    if (!a->buf || !a->gbuf || !a->a || !a->g || !a->lnm || !a->lnr ||
        !a->tok) {
        acts_free(a);
        return NULL;
    }
    float *p = a->buf, *q = a->gbuf;
    a->enc = p; a->genc = q; p += N * C; q += N * C;
    for (size_t l = 0; l < L; l++)
        for (int k = 0; k < A_NPER; k++) {
            a->a[l * A_NPER + k] = p;
            a->g[l * A_NPER + k] = q;
            p += per_size(k, N, C);
            q += per_size(k, N, C);
        }
    a->att = p; a->gatt = q; p += L * TT; q += L * TT;
    a->lnf = p; a->glnf = q; p += N * C; q += N * C;
    a->logits = p; a->glogits = q;
    return a;
}

/* ------------------------------------------------------------ model --- */

void agt_gpt_free(agt_gpt *m)
{
    if (!m)
        return;
    if (m->lin)
        for (int i = 0; i < 4 * m->cfg.n_layer + 1; i++)
            agt_qlinear_free(&m->lin[i]);
    free(m->lin);
    acts_free(m->a);
    agt_pool_free(m->pool);
    free(m->params);
    free(m->grads);
    free(m->tensors);
    memset(m, 0, sizeof *m);
}

int agt_gpt_find(const agt_gpt *m, const char *name)
{
    for (int i = 0; i < m->ntensors; i++)
        if (!strcmp(m->tensors[i].name, name))
            return i;
    return -1;
}

static void add_tensor(agt_gpt *m, size_t *off, int dims, size_t n,
                       const char *fmt, int layer)
{
    agt_tensor *t = &m->tensors[m->ntensors++];
    snprintf(t->name, sizeof t->name, fmt, layer);
    t->off = *off;
    t->n = n;
    t->dims = dims;
    *off += n;
}

/* The linear of block l, type ty (ty < AGT_LT_HEAD), or the head. */
static agt_qlinear *lin_of(agt_gpt *m, int l, int ty)
{
    return ty == AGT_LT_HEAD ? &m->lin[4 * m->cfg.n_layer]
                             : &m->lin[4 * l + ty];
}

static float *P(agt_gpt *m, const char *fmt, int l)
{
    char name[48];
    snprintf(name, sizeof name, fmt, l);
    int i = agt_gpt_find(m, name);
    return i < 0 ? NULL : m->params + m->tensors[i].off;
}

static float *G(agt_gpt *m, const char *fmt, int l)
{
    char name[48];
    snprintf(name, sizeof name, fmt, l);
    int i = agt_gpt_find(m, name);
    return i < 0 ? NULL : m->grads + m->tensors[i].off;
}

int agt_gpt_init(agt_gpt *m, const agt_gpt_cfg *cfg, int bmax, uint64_t seed,
                 agt_err *err)
{
    memset(m, 0, sizeof *m);
    const agt_gpt_cfg *c = cfg;
    if (c->n_layer < 1 || c->n_layer > 64 || c->n_head < 1 ||
        c->n_embd < 1 || c->n_embd > 8192 || c->n_embd % c->n_head != 0 ||
        c->block_size < 1 || c->block_size > 4096 || c->vocab_size < 2 ||
        c->vocab_size > 256 || bmax < 1 || bmax > 4096)
        return agt_fail(err,
                        "bad GPT shape: %d layers, %d heads, width %d (a "
                        "multiple of the heads), context %d, vocabulary %d "
                        "(<= 256), batch %d",
                        c->n_layer, c->n_head, c->n_embd, c->block_size,
                        c->vocab_size, bmax);
    if (c->qc.hist_len < 1 || c->qc.hist_len > AGT_HIST_MAX)
        return agt_fail(err, "amax history length %zu out of range 1..%d",
                        c->qc.hist_len, AGT_HIST_MAX);
    /* the products split themselves over the model's pool (agt_gemm); an
     * OpenBLAS pool of its own would fight that team for the cores */
    openblas_set_num_threads(1);
    m->cfg = *c;
    m->bmax = bmax;
    const int L = c->n_layer;
    const size_t C = (size_t)c->n_embd, V = (size_t)c->vocab_size,
                 T = (size_t)c->block_size;
    m->tensors = calloc((size_t)(12 * L + 4), sizeof *m->tensors);
    m->lin = calloc((size_t)(4 * L + 1), sizeof *m->lin);
    if (!m->tensors || !m->lin) {
        agt_gpt_free(m);
        return agt_fail(err, "out of memory (GPT)");
    }
    size_t off = 0;
    add_tensor(m, &off, 2, V * C, "transformer.wte.weight", 0);
    add_tensor(m, &off, 2, T * C, "transformer.wpe.weight", 0);
    for (int l = 0; l < L; l++) {
        add_tensor(m, &off, 2, 3 * C * C, "transformer.h.%d.attn.c_attn.weight", l);
        add_tensor(m, &off, 2, C * C, "transformer.h.%d.attn.c_proj.weight", l);
        add_tensor(m, &off, 2, 4 * C * C, "transformer.h.%d.mlp.c_fc.weight", l);
        add_tensor(m, &off, 2, 4 * C * C, "transformer.h.%d.mlp.c_proj.weight", l);
    }
    m->ndecay = off;
    for (int l = 0; l < L; l++) {
        add_tensor(m, &off, 1, C, "transformer.h.%d.ln_1.weight", l);
        add_tensor(m, &off, 1, C, "transformer.h.%d.ln_1.bias", l);
        add_tensor(m, &off, 1, 3 * C, "transformer.h.%d.attn.c_attn.bias", l);
        add_tensor(m, &off, 1, C, "transformer.h.%d.attn.c_proj.bias", l);
        add_tensor(m, &off, 1, C, "transformer.h.%d.ln_2.weight", l);
        add_tensor(m, &off, 1, C, "transformer.h.%d.ln_2.bias", l);
        add_tensor(m, &off, 1, 4 * C, "transformer.h.%d.mlp.c_fc.bias", l);
        add_tensor(m, &off, 1, C, "transformer.h.%d.mlp.c_proj.bias", l);
    }
    add_tensor(m, &off, 1, C, "transformer.ln_f.weight", 0);
    add_tensor(m, &off, 1, C, "transformer.ln_f.bias", 0);
    m->nparams = off;
    m->params = calloc(off, sizeof(float));
    m->grads = calloc(off, sizeof(float));
    m->a = acts_alloc(c, bmax);
    if (!m->params || !m->grads || !m->a) {
        agt_gpt_free(m);
        return agt_fail(err, "out of memory (GPT, %zu parameters)", off);
    }
    if (agt_pool_create(&m->pool, c->qc.threads, err)) {
        agt_gpt_free(m);
        return -1;
    }
    /* nanoGPT's initialisation */
    uint64_t s = seed;
    const double pstd = 0.02 / sqrt(2.0 * L);
    for (int i = 0; i < m->ntensors; i++) {
        const agt_tensor *t = &m->tensors[i];
        float *p = m->params + t->off;
        const char *nm = t->name;
        size_t len = strlen(nm);
        int is_w = len > 7 && !strcmp(nm + len - 7, ".weight");
        int is_ln = strstr(nm, "ln_") != NULL;
        double std = strstr(nm, "c_proj.weight") ? pstd : 0.02;
        for (size_t j = 0; j < t->n; j++)
            p[j] = is_ln ? (is_w ? 1.0f : 0.0f)
                   : t->dims == 2 ? (float)(std * agt_normal(&s))
                                  : 0.0f;
    }
    /* the linears and their quantizers */
    const int rows = bmax * c->block_size;
    for (int i = 0; i < 4 * L + 1; i++) {
        int ty = i == 4 * L ? AGT_LT_HEAD : i % 4;
        int in = ty == AGT_LT_MPROJ ? 4 * c->n_embd : c->n_embd;
        int out = ty == AGT_LT_QKV ? 3 * c->n_embd
                  : ty == AGT_LT_FC ? 4 * c->n_embd
                  : ty == AGT_LT_HEAD ? c->vocab_size
                                      : c->n_embd;
        ag_scaler_opts so[AGT_NQ];
        agt_quant_opts(so, &c->qc, (uint64_t)i * AGT_NQ);
        if (agt_qlinear_init(&m->lin[i], in, out, rows,
                             (const char(*)[48])c->spec[ty], so, err)) {
            char tmp[sizeof err->msg];
            snprintf(tmp, sizeof tmp, "%s", err->msg);
            agt_gpt_free(m);
            return agt_fail(err, "%s: %s", agt_layer_type_names[ty], tmp);
        }
        agt_qlinear_set_pool(&m->lin[i], m->pool);
    }
    return 0;
}

int agt_gpt_forward(agt_gpt *m, const uint8_t *tok, const uint8_t *tgt,
                    int B, int T, int update, double *loss, agt_err *err)
{
    const agt_gpt_cfg *c = &m->cfg;
    if (B < 1 || B > m->bmax || T < 1 || T > c->block_size)
        return agt_fail(err, "batch %d x %d outside the model's %d x %d", B,
                        T, m->bmax, c->block_size);
    const int C = c->n_embd, NH = c->n_head, V = c->vocab_size, N = B * T;
    for (int i = 0; i < N; i++)
        if (tok[i] >= V || tgt[i] >= V)
            return agt_fail(err, "token %d outside the vocabulary of %d",
                            tok[i] >= V ? tok[i] : tgt[i], V);
    m->B = B;
    m->T = T;
    agt_gpt_acts *a = m->a;
    memcpy(a->tok, tok, (size_t)N);
    const size_t TT = (size_t)m->bmax * NH * c->block_size * c->block_size;
    agt_embed_forward(a->enc, tok, P(m, "transformer.wte.weight", 0),
                      P(m, "transformer.wpe.weight", 0), B, T, C);
    const float *x = a->enc;
    for (int l = 0; l < c->n_layer; l++) {
        float **A = a->a + (size_t)l * A_NPER;
        float *att = a->att + (size_t)l * TT;
        float *m1 = a->lnm + (size_t)(2 * l) * N, *r1 = a->lnr + (size_t)(2 * l) * N;
        float *m2 = m1 + N, *r2 = r1 + N;
        agt_layernorm_forward(m->pool, A[A_LN1], m1, r1, x,
                              P(m, "transformer.h.%d.ln_1.weight", l),
                              P(m, "transformer.h.%d.ln_1.bias", l), N, C);
        if (agt_qlinear_forward(lin_of(m, l, AGT_LT_QKV), A[A_QKV], A[A_LN1],
                                P(m, "transformer.h.%d.attn.c_attn.weight", l),
                                P(m, "transformer.h.%d.attn.c_attn.bias", l),
                                N, update, err))
            return -1;
        agt_attention_forward(m->pool, A[A_ATTY], att, A[A_QKV], B, T, C, NH);
        if (agt_qlinear_forward(lin_of(m, l, AGT_LT_PROJ), A[A_PROJ], A[A_ATTY],
                                P(m, "transformer.h.%d.attn.c_proj.weight", l),
                                P(m, "transformer.h.%d.attn.c_proj.bias", l),
                                N, update, err))
            return -1;
        agt_residual_forward(A[A_RES2], x, A[A_PROJ], (size_t)N * C);
        agt_layernorm_forward(m->pool, A[A_LN2], m2, r2, A[A_RES2],
                              P(m, "transformer.h.%d.ln_2.weight", l),
                              P(m, "transformer.h.%d.ln_2.bias", l), N, C);
        if (agt_qlinear_forward(lin_of(m, l, AGT_LT_FC), A[A_FCH], A[A_LN2],
                                P(m, "transformer.h.%d.mlp.c_fc.weight", l),
                                P(m, "transformer.h.%d.mlp.c_fc.bias", l),
                                N, update, err))
            return -1;
        agt_gelu_forward(m->pool, A[A_FCHG], A[A_FCH], (size_t)N * 4 * C);
        if (agt_qlinear_forward(lin_of(m, l, AGT_LT_MPROJ), A[A_MPROJ],
                                A[A_FCHG],
                                P(m, "transformer.h.%d.mlp.c_proj.weight", l),
                                P(m, "transformer.h.%d.mlp.c_proj.bias", l),
                                N, update, err))
            return -1;
        agt_residual_forward(A[A_RES3], A[A_RES2], A[A_MPROJ], (size_t)N * C);
        x = A[A_RES3];
    }
    const size_t lf = (size_t)(2 * c->n_layer) * N;
    agt_layernorm_forward(m->pool, a->lnf, a->lnm + lf, a->lnr + lf, x,
                          P(m, "transformer.ln_f.weight", 0),
                          P(m, "transformer.ln_f.bias", 0), N, C);
    if (agt_qlinear_forward(lin_of(m, 0, AGT_LT_HEAD), a->logits, a->lnf,
                            P(m, "transformer.wte.weight", 0), NULL, N,
                            update, err))
        return -1;
    *loss = agt_token_xent_forward(m->pool, a->logits, a->logits, tgt, N, V);
    return 0;
}

int agt_gpt_backward(agt_gpt *m, const uint8_t *tgt, int update,
                     agt_err *err)
{
    const agt_gpt_cfg *c = &m->cfg;
    const int B = m->B, T = m->T, C = c->n_embd, NH = c->n_head,
              V = c->vocab_size, N = B * T;
    if (B < 1)
        return agt_fail(err, "backward before a forward");
    agt_gpt_acts *a = m->a;
    const size_t TT = (size_t)m->bmax * NH * c->block_size * c->block_size;
    const size_t NC = (size_t)N * C;
    /* zero the activation gradients that are accumulated into */
    memset(a->glogits, 0, (size_t)N * V * sizeof(float));
    memset(a->glnf, 0, NC * sizeof(float));
    memset(a->genc, 0, NC * sizeof(float));
    for (int l = 0; l < c->n_layer; l++)
        for (int k = 0; k < A_NPER; k++)
            memset(a->g[(size_t)l * A_NPER + k], 0,
                   per_size(k, (size_t)N, (size_t)C) * sizeof(float));
    agt_token_xent_backward(m->pool, a->glogits, a->logits, tgt, N, V);
    const float *xlast = c->n_layer ? a->a[(size_t)(c->n_layer - 1) * A_NPER + A_RES3]
                                    : a->enc;
    float *gxlast = a->g[(size_t)(c->n_layer - 1) * A_NPER + A_RES3];
    if (agt_qlinear_backward(lin_of(m, 0, AGT_LT_HEAD), a->glnf,
                             G(m, "transformer.wte.weight", 0), NULL,
                             a->glogits, a->lnf,
                             P(m, "transformer.wte.weight", 0), N, update,
                             err))
        return -1;
    const size_t lf = (size_t)(2 * c->n_layer) * N;
    agt_layernorm_backward(m->pool, gxlast, G(m, "transformer.ln_f.weight", 0),
                           G(m, "transformer.ln_f.bias", 0), a->glnf, xlast,
                           P(m, "transformer.ln_f.weight", 0), a->lnm + lf,
                           a->lnr + lf, N, C);
    for (int l = c->n_layer - 1; l >= 0; l--) {
        float **A = a->a + (size_t)l * A_NPER, **D = a->g + (size_t)l * A_NPER;
        const float *x = l ? a->a[(size_t)(l - 1) * A_NPER + A_RES3] : a->enc;
        float *gx = l ? a->g[(size_t)(l - 1) * A_NPER + A_RES3] : a->genc;
        float *att = a->att + (size_t)l * TT, *gatt = a->gatt + (size_t)l * TT;
        float *m1 = a->lnm + (size_t)(2 * l) * N, *r1 = a->lnr + (size_t)(2 * l) * N;
        float *m2 = m1 + N, *r2 = r1 + N;
        /* res3 = res2 + mproj: both get D[A_RES3] */
        for (size_t i = 0; i < NC; i++)
            D[A_RES2][i] += D[A_RES3][i];
        if (agt_qlinear_backward(lin_of(m, l, AGT_LT_MPROJ), D[A_FCHG],
                                 G(m, "transformer.h.%d.mlp.c_proj.weight", l),
                                 G(m, "transformer.h.%d.mlp.c_proj.bias", l),
                                 D[A_RES3], A[A_FCHG],
                                 P(m, "transformer.h.%d.mlp.c_proj.weight", l),
                                 N, update, err))
            return -1;
        agt_gelu_backward(m->pool, D[A_FCH], D[A_FCHG], A[A_FCH], NC * 4);
        if (agt_qlinear_backward(lin_of(m, l, AGT_LT_FC), D[A_LN2],
                                 G(m, "transformer.h.%d.mlp.c_fc.weight", l),
                                 G(m, "transformer.h.%d.mlp.c_fc.bias", l),
                                 D[A_FCH], A[A_LN2],
                                 P(m, "transformer.h.%d.mlp.c_fc.weight", l),
                                 N, update, err))
            return -1;
        agt_layernorm_backward(m->pool, D[A_RES2], G(m, "transformer.h.%d.ln_2.weight", l),
                               G(m, "transformer.h.%d.ln_2.bias", l), D[A_LN2],
                               A[A_RES2], P(m, "transformer.h.%d.ln_2.weight", l),
                               m2, r2, N, C);
        /* res2 = x + proj */
        for (size_t i = 0; i < NC; i++)
            gx[i] += D[A_RES2][i];
        if (agt_qlinear_backward(lin_of(m, l, AGT_LT_PROJ), D[A_ATTY],
                                 G(m, "transformer.h.%d.attn.c_proj.weight", l),
                                 G(m, "transformer.h.%d.attn.c_proj.bias", l),
                                 D[A_RES2], A[A_ATTY],
                                 P(m, "transformer.h.%d.attn.c_proj.weight", l),
                                 N, update, err))
            return -1;
        agt_attention_backward(m->pool, D[A_QKV], gatt, D[A_ATTY], A[A_QKV], att, B, T,
                               C, NH);
        if (agt_qlinear_backward(lin_of(m, l, AGT_LT_QKV), D[A_LN1],
                                 G(m, "transformer.h.%d.attn.c_attn.weight", l),
                                 G(m, "transformer.h.%d.attn.c_attn.bias", l),
                                 D[A_QKV], A[A_LN1],
                                 P(m, "transformer.h.%d.attn.c_attn.weight", l),
                                 N, update, err))
            return -1;
        agt_layernorm_backward(m->pool, gx, G(m, "transformer.h.%d.ln_1.weight", l),
                               G(m, "transformer.h.%d.ln_1.bias", l), D[A_LN1],
                               x, P(m, "transformer.h.%d.ln_1.weight", l), m1,
                               r1, N, C);
    }
    agt_embed_backward(G(m, "transformer.wte.weight", 0),
                       G(m, "transformer.wpe.weight", 0), a->genc, a->tok, B,
                       T, C);
    return 0;
}

void agt_gpt_stats(const agt_gpt *m, int type, int role, ag_stats *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < 4 * m->cfg.n_layer + 1; i++) {
        int ty = i == 4 * m->cfg.n_layer ? AGT_LT_HEAD : i % 4;
        if (ty != type)
            continue;
        const ag_stats *s = &m->lin[i].q[role].stats;
        out->total += s->total;
        out->overflow += s->overflow;
        out->underflow += s->underflow;
        out->nan += s->nan;
    }
}

void agt_gpt_reset_stats(agt_gpt *m)
{
    for (int i = 0; i < 4 * m->cfg.n_layer + 1; i++)
        for (int k = 0; k < AGT_NQ; k++)
            memset(&m->lin[i].q[k].stats, 0, sizeof(ag_stats));
}

/* ------------------------------------------------------------ optim --- */

int agt_gpt_optim_init(agt_gpt_optim *o, const agt_gpt *m, double lr,
                       double wd, ag_precondition pre, int mantissa_bits,
                       agt_err *err)
{
    memset(o, 0, sizeof *o);
    if (agt_optim_init(&o->opt, AGT_ADAMW, m->nparams, (float)lr, (float)wd,
                       err))
        return -1;
    o->opt.pre = pre;
    o->opt.mantissa_bits = mantissa_bits;
    o->opt.threads = m->cfg.qc.threads;
    const agt_optseg decayed = {0, m->ndecay, NULL, 0.0f, 1, -1, 0, 0};
    const agt_optseg plain = {m->ndecay, m->nparams - m->ndecay, NULL, 0.0f,
                              0, -1, 0, 0};
    o->seg[0] = decayed;
    o->seg[1] = plain;
    return 0;
}

void agt_gpt_optim_free(agt_gpt_optim *o)
{
    agt_optim_free(&o->opt);
    memset(o, 0, sizeof *o);
}

int agt_gpt_optim_step(agt_gpt_optim *o, agt_gpt *m, agt_err *err)
{
    return agt_optim_step(&o->opt, m->params, m->grads, o->seg, 2, err);
}
