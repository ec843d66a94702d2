/* SPDX-License-Identifier: MIT */
/*
 * net.c — the bench's models and data behind the run loop's interfaces
 * (agt_net, agt_feed in train.h): the MLP (train/nn.c) and the GPT
 * (train/gpt.c) as agt_net, the IDX images and the token streams as
 * agt_feed, the quantized linears' checkpoint section and the weight
 * matrices' stable and effective rank.
 */
#define _POSIX_C_SOURCE 200809L
#include "gpt.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ buffers --- */

void agt_buf_put(agt_buf *b, const void *src, size_t n)
{
    if (b->bad)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->bad = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

void agt_buf_get(agt_buf *b, void *dst, size_t n)
{
    if (b->bad || b->len - b->rd < n) {
        b->bad = 1;
        memset(dst, 0, n);
        return;
    }
    memcpy(dst, b->p + b->rd, n);
    b->rd += n;
}

void agt_qlinear_save(const agt_qlinear *L, agt_buf *b)
{
    for (int k = 0; k < AGT_NQ; k++) {
        /* the scaler's own state record (0 bytes for fp32), then the
         * period's counters */
        const agt_quant *q = &L->q[k];
        size_t sz = 0;
        if (q->sc && ag_scaler_state_size(q->sc, &sz) != AG_OK)
            b->bad = 1;
        uint64_t n = sz;
        AGT_PUT(b, n);
        if (sz) {
            unsigned char *rec = malloc(sz);
            if (!rec || ag_scaler_save(q->sc, rec, sz) != AG_OK)
                b->bad = 1;
            else
                agt_buf_put(b, rec, sz);
            free(rec);
        }
        AGT_PUT(b, q->stats);
    }
}

int agt_qlinear_load(agt_qlinear *L, agt_buf *b, const char *what,
                     agt_err *err)
{
    for (int k = 0; k < AGT_NQ; k++) {
        agt_quant *q = &L->q[k];
        size_t want = 0;
        if (q->sc)
            ag_scaler_state_size(q->sc, &want);
        uint64_t n;
        AGT_GET(b, n);
        if (b->bad || n != want || b->len - b->rd < want ||
            (want && ag_scaler_load(q->sc, b->p + b->rd, want) != AG_OK))
            return agt_fail(err, "corrupt quantizer state (%s)", what);
        b->rd += want;
        AGT_GET(b, q->stats);
    }
    return 0;
}

/* --------------------------------------------------------------- ranks --- */

/* LAPACK (OpenBLAS ships it): eigenvalues of a symmetric matrix. */
extern void dsyev_(const char *jobz, const char *uplo, const int *n,
                   double *a, const int *lda, double *w, double *work,
                   const int *lwork, int *info, size_t ljobz, size_t luplo);

int agt_matrix_ranks(const float *w, int rows, int cols, double *stable,
                     double *eff)
{
    *stable = *eff = (double)NAN;
    const int k = rows < cols ? rows : cols;
    if (k < 1)
        return 0;
    /* the k x k Gram matrix of the shorter side, in double */
    double *g = calloc((size_t)k * (size_t)k, sizeof *g);
    double *ev = malloc((size_t)k * sizeof *ev);
    int lwork = 3 * k + 64;
    double *work = malloc((size_t)lwork * sizeof *work);
    if (!g || !ev || !work) {
        free(g);
        free(ev);
        free(work);
        return -1;
    }
    int finite = 1;
    for (size_t i = 0; i < (size_t)rows * (size_t)cols; i++)
        finite &= isfinite(w[i]) != 0;
    if (finite) {
        if (rows <= cols) {      /* W W^T */
            for (int i = 0; i < rows; i++)
                for (int j = 0; j <= i; j++) {
                    double s = 0.0;
                    const float *a = w + (size_t)i * cols,
                                *b = w + (size_t)j * cols;
                    for (int c = 0; c < cols; c++)
                        s += (double)a[c] * (double)b[c];
                    g[(size_t)j * k + i] = g[(size_t)i * k + j] = s;
                }
        } else {                 /* W^T W */
            for (int r = 0; r < rows; r++) {
                const float *a = w + (size_t)r * cols;
                for (int i = 0; i < cols; i++)
                    for (int j = 0; j <= i; j++)
                        g[(size_t)i * k + j] += (double)a[i] * (double)a[j];
            }
            for (int i = 0; i < cols; i++)
                for (int j = 0; j < i; j++)
                    g[(size_t)j * k + i] = g[(size_t)i * k + j];
        }
        int info = 0;
        dsyev_("N", "U", &k, g, &k, ev, work, &lwork, &info, 1, 1);
        if (info == 0) {
            double sum2 = 0.0, max2 = 0.0, sum = 0.0;
            for (int i = 0; i < k; i++) {
                double e = ev[i] > 0.0 ? ev[i] : 0.0;
                sum2 += e;
                max2 = e > max2 ? e : max2;
                sum += sqrt(e);
            }
            if (max2 > 0.0 && sum > 0.0) {
                double h = 0.0;
                for (int i = 0; i < k; i++) {
                    double p = sqrt(ev[i] > 0.0 ? ev[i] : 0.0) / sum;
                    if (p > 0.0)
                        h -= p * log(p);
                }
                *stable = sum2 / max2;
                *eff = exp(h);
            }
        }
    }
    free(g);
    free(ev);
    free(work);
    return 0;
}

/* ----------------------------------------------------------------- MLP --- */

static int mlp_forward(agt_net *n, const agt_batch *b, int update,
                       double *loss, size_t *correct, agt_err *err)
{
    const agt_stepctx ctx = {update};
    float l = 0.0f;
    int rc = agt_model_forward(n->self, b->x, b->y, b->B, &ctx, &l, correct,
                               err);
    *loss = (double)l;
    return rc;
}

static int mlp_backward(agt_net *n, const agt_batch *b, agt_err *err)
{
    const agt_stepctx ctx = {1};
    return agt_model_backward(n->self, b->y, b->B, &ctx, err);
}

static void mlp_stats(const agt_net *n, int g, int k, ag_stats *out)
{
    const agt_model *m = n->self;
    memset(out, 0, sizeof *out);
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].kind == AGT_LINEAR && m->layers[i].index == g)
            *out = m->layers[i].lin.q[k].stats;
}

static void mlp_reset(agt_net *n)
{
    agt_model *m = n->self;
    for (int i = 0; i < m->nlayers; i++)
        for (int k = 0; k < AGT_NQ; k++)
            memset(&m->layers[i].lin.q[k].stats, 0, sizeof(ag_stats));
}

static int mlp_segs(const agt_net *n, agt_optseg *segs, int cap)
{
    const agt_model *m = n->self;
    int c = 0;
    for (int i = 0; i < m->nlayers && c + 2 <= cap; i++) {
        const agt_layer *L = &m->layers[i];
        if (L->kind != AGT_LINEAR)
            continue;
        const agt_quant *qw = &L->lin.q[AGT_QW];
        agt_optseg w = {L->w_off, (size_t)L->in_dim * L->out_dim, qw->fmt,
                        qw->fmt ? ag_scaler_last_scale(qw->sc) : 0.0f, 1,
                        L->index, 0, 0};
        agt_optseg bs = {L->b_off, (size_t)L->out_dim, NULL, 0.0f, 1,
                         L->index, 0, 0};
        segs[c++] = w;
        segs[c++] = bs;
    }
    return c;
}

static void mlp_save(const agt_net *n, agt_buf *b)
{
    const agt_model *m = n->self;
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i].kind == AGT_LINEAR)
            agt_qlinear_save(&m->layers[i].lin, b);
}

static int mlp_load(agt_net *n, agt_buf *b, const char *path, agt_err *err)
{
    agt_model *m = n->self;
    for (int i = 0; i < m->nlayers; i++) {
        agt_layer *L = &m->layers[i];
        if (L->kind != AGT_LINEAR)
            continue;
        char what[64];
        snprintf(what, sizeof what, "layer %d", L->index + 1);
        if (agt_qlinear_load(&L->lin, b, what, err)) {
            char tmp[sizeof err->msg];
            snprintf(tmp, sizeof tmp, "%s", err->msg);
            return agt_fail(err, "%s: %s", path, tmp);
        }
    }
    return 0;
}

static void mlp_ranks(const agt_net *n, double *stable, double *eff)
{
    const agt_model *m = n->self;
    for (int g = 0; g < AGT_MAX_LAYERS; g++)
        stable[g] = eff[g] = (double)NAN;
    for (int i = 0; i < m->nlayers; i++) {
        const agt_layer *L = &m->layers[i];
        if (L->kind == AGT_LINEAR && L->index < AGT_MAX_LAYERS)
            agt_matrix_ranks(m->params + L->w_off, L->out_dim, L->in_dim,
                             &stable[L->index], &eff[L->index]);
    }
}

static void mlp_free(agt_net *n)
{
    agt_model_free(n->self);
    free(n->self);
    free((agt_tensor *)n->tensors);
}

static const agt_net_ops mlp_ops = {mlp_forward, mlp_backward, mlp_stats,
                                    mlp_reset,   mlp_segs,     mlp_save,
                                    mlp_load,    mlp_ranks,    mlp_free};

int agt_net_mlp(agt_net *n, const agt_config *cfg, agt_err *err)
{
    memset(n, 0, sizeof *n);
    agt_model *m = calloc(1, sizeof *m);
    if (!m)
        return agt_fail(err, "out of memory (model)");
    const agt_quant_cfg qc = {cfg->hist_len, cfg->seed, cfg->stochastic_grads,
                              cfg->threads};
    if (agt_model_mlp(m, cfg->dims, cfg->nlin + 1, cfg->fmt, &qc, cfg->batch,
                      cfg->seed, err)) {
        free(m);
        return -1;
    }
    n->ops = &mlp_ops;
    n->self = m;
    n->nparams = m->nparams;
    n->params = m->params;
    n->grads = m->grads;
    /* the table: fcN.weight, fcN.bias of the Nth linear layer */
    agt_tensor *t = calloc((size_t)(2 * cfg->nlin), sizeof *t);
    if (!t) {
        agt_model_free(m);
        free(m);
        return agt_fail(err, "out of memory (model)");
    }
    for (int i = 0, k = 0; i < m->nlayers; i++) {
        const agt_layer *L = &m->layers[i];
        if (L->kind != AGT_LINEAR)
            continue;
        snprintf(t[k].name, sizeof t[k].name, "fc%d.weight", L->index + 1);
        t[k].off = L->w_off;
        t[k].n = (size_t)L->in_dim * (size_t)L->out_dim;
        t[k++].dims = 2;
        snprintf(t[k].name, sizeof t[k].name, "fc%d.bias", L->index + 1);
        t[k].off = L->b_off;
        t[k].n = (size_t)L->out_dim;
        t[k++].dims = 1;
    }
    n->tensors = t;
    n->ntensors = 2 * cfg->nlin;
    n->ngroups = cfg->nlin;
    for (int g = 0; g < cfg->nlin && g < AGT_MAX_LAYERS; g++)
        snprintf(n->group[g], sizeof n->group[g], "L%d", g + 1);
    return 0;
}

/* ----------------------------------------------------------------- GPT --- */

static int gpt_forward(agt_net *n, const agt_batch *b, int update,
                       double *loss, size_t *correct, agt_err *err)
{
    (void)correct;
    return agt_gpt_forward(n->self, b->tok, b->tgt, b->B, b->T, update, loss,
                           err);
}

static int gpt_backward(agt_net *n, const agt_batch *b, agt_err *err)
{
    return agt_gpt_backward(n->self, b->tgt, 1, err);
}

static void gpt_stats(const agt_net *n, int g, int k, ag_stats *out)
{
    agt_gpt_stats(n->self, g, k, out);
}

static void gpt_reset(agt_net *n)
{
    agt_gpt_reset_stats(n->self);
}

/* The linear whose weight tensor t is (its index in m->lin), or -1. */
static int gpt_weight_lin(const agt_gpt *m, const agt_tensor *t, int *type)
{
    static const char *const suffix[4] = {
        ".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight",
        ".mlp.c_proj.weight"};
    if (!strcmp(t->name, "transformer.wte.weight")) {
        *type = AGT_LT_HEAD;
        return 4 * m->cfg.n_layer;
    }
    int l, used = 0;
    if (sscanf(t->name, "transformer.h.%d%n", &l, &used) != 1 || used == 0)
        return -1;
    for (int ty = 0; ty < 4; ty++)
        if (!strcmp(t->name + used, suffix[ty])) {
            *type = ty;
            return 4 * l + ty;
        }
    return -1;
}

/* The layer type a tensor reports to: its linear's, else -1. */
static int gpt_segs(const agt_net *n, agt_optseg *segs, int cap)
{
    const agt_gpt *m = n->self;
    int c = 0;
    for (int i = 0; i < m->ntensors && c < cap; i++) {
        const agt_tensor *t = &m->tensors[i];
        int type = -1;
        int li = gpt_weight_lin(m, t, &type);
        const agt_quant *qw = li >= 0 ? &m->lin[li].q[AGT_QW] : NULL;
        agt_optseg s = {t->off, t->n, qw ? qw->fmt : NULL,
                        qw && qw->fmt ? ag_scaler_last_scale(qw->sc) : 0.0f,
                        t->dims == 2, type, 0, 0};
        if (s.fmt && !(s.scale > 0.0f))
            s.fmt = NULL;        /* before the first forward: no grid yet */
        segs[c++] = s;
    }
    return c;
}

static void gpt_save(const agt_net *n, agt_buf *b)
{
    const agt_gpt *m = n->self;
    for (int i = 0; i < 4 * m->cfg.n_layer + 1; i++)
        agt_qlinear_save(&m->lin[i], b);
}

static int gpt_load(agt_net *n, agt_buf *b, const char *path, agt_err *err)
{
    agt_gpt *m = n->self;
    for (int i = 0; i < 4 * m->cfg.n_layer + 1; i++) {
        char what[64];
        int ty = i == 4 * m->cfg.n_layer ? AGT_LT_HEAD : i % 4;
        snprintf(what, sizeof what, "%s of block %d", agt_layer_type_names[ty],
                 ty == AGT_LT_HEAD ? m->cfg.n_layer : i / 4);
        if (agt_qlinear_load(&m->lin[i], b, what, err)) {
            char tmp[sizeof err->msg];
            snprintf(tmp, sizeof tmp, "%s", err->msg);
            return agt_fail(err, "%s: %s", path, tmp);
        }
    }
    return 0;
}

static void gpt_ranks(const agt_net *n, double *stable, double *eff)
{
    const agt_gpt *m = n->self;
    double ss[AGT_MAX_LAYERS] = {0}, se[AGT_MAX_LAYERS] = {0};
    int cnt[AGT_MAX_LAYERS] = {0}, bad[AGT_MAX_LAYERS] = {0};
    for (int i = 0; i < m->ntensors; i++) {
        const agt_tensor *t = &m->tensors[i];
        int type = -1;
        int li = gpt_weight_lin(m, t, &type);
        if (li < 0)
            continue;
        const agt_qlinear *L = &m->lin[li];
        double s, e;
        agt_matrix_ranks(m->params + t->off, L->out, L->in, &s, &e);
        if (isfinite(s) && isfinite(e)) {
            ss[type] += s;
            se[type] += e;
            cnt[type]++;
        } else {
            bad[type] = 1;
        }
    }
    for (int g = 0; g < AGT_MAX_LAYERS; g++) {
        int ok = g < AGT_NLT && cnt[g] && !bad[g];
        stable[g] = ok ? ss[g] / cnt[g] : (double)NAN;
        eff[g] = ok ? se[g] / cnt[g] : (double)NAN;
    }
}

static void gpt_free(agt_net *n)
{
    agt_gpt_free(n->self);
    free(n->self);
}

static const agt_net_ops gpt_ops = {gpt_forward, gpt_backward, gpt_stats,
                                    gpt_reset,   gpt_segs,     gpt_save,
                                    gpt_load,    gpt_ranks,    gpt_free};

int agt_net_gpt(agt_net *n, const agt_config *cfg, agt_err *err)
{
    memset(n, 0, sizeof *n);
    agt_gpt_cfg gc;
    agt_gpt_cfg_default(&gc);
    gc.n_layer = cfg->dims[0];
    gc.n_head = cfg->dims[1];
    gc.n_embd = cfg->dims[2];
    gc.block_size = cfg->dims[3];
    for (int t = 0; t < AGT_NLT; t++)
        for (int k = 0; k < AGT_NQ; k++)
            memcpy(gc.spec[t][k], cfg->fmt[t].spec[k], 48);
    gc.qc.hist_len = cfg->hist_len;
    gc.qc.seed = cfg->seed;
    gc.qc.stochastic_grads = cfg->stochastic_grads;
    gc.qc.threads = cfg->threads;
    agt_gpt *m = calloc(1, sizeof *m);
    if (!m)
        return agt_fail(err, "out of memory (model)");
    if (agt_gpt_init(m, &gc, cfg->batch, cfg->seed, err)) {
        free(m);
        return -1;
    }
    n->ops = &gpt_ops;
    n->self = m;
    n->nparams = m->nparams;
    n->params = m->params;
    n->grads = m->grads;
    n->ntensors = m->ntensors;
    n->tensors = m->tensors;
    n->ngroups = AGT_NLT;
    for (int g = 0; g < AGT_NLT; g++)
        snprintf(n->group[g], sizeof n->group[g], "%s",
                 agt_layer_type_names[g]);
    return 0;
}

int agt_net_make(agt_net *n, const agt_config *cfg, agt_err *err)
{
    return cfg->model == AGT_MODEL_GPT ? agt_net_gpt(n, cfg, err)
                                       : agt_net_mlp(n, cfg, err);
}

void agt_net_free(agt_net *n)
{
    if (n && n->ops)
        n->ops->free(n);
    if (n)
        memset(n, 0, sizeof *n);
}

/* --------------------------------------------------------------- feeds --- */

void agt_feed_free(agt_feed *f)
{
    if (!f)
        return;
    free(f->x);
    free(f->y);
    free(f->tok);
    free(f->tgt);
    free(f->perm);
    free(f->idx);
    free(f->self);
    memset(f, 0, sizeof *f);
}

typedef struct idx_src {
    const agt_dataset *train, *test;
} idx_src;

static int idx_train(agt_feed *f, uint64_t period, uint64_t k, uint64_t step,
                     agt_batch *b)
{
    (void)step;
    idx_src *s = f->self;
    if (f->perm_period != period) {
        agt_epoch_order(f->perm, s->train->n, f->seed, period);
        f->perm_period = period;
    }
    agt_dataset_batch(f->x, f->y, s->train, f->perm + k * (uint64_t)f->B,
                      f->B);
    b->B = f->B;
    b->T = 1;
    b->x = f->x;
    b->y = f->y;
    b->tok = b->tgt = NULL;
    return 0;
}

static int idx_eval(agt_feed *f, int k, agt_batch *b)
{
    idx_src *s = f->self;
    const size_t at = (size_t)k * (size_t)f->B;
    memset(b, 0, sizeof *b);
    if (at >= s->test->n)
        return 0;
    int B = (int)(s->test->n - at < (size_t)f->B ? s->test->n - at
                                                 : (size_t)f->B);
    for (int i = 0; i < B; i++)
        f->idx[i] = (uint32_t)(at + (size_t)i);
    agt_dataset_batch(f->x, f->y, s->test, f->idx, B);
    b->B = B;
    b->T = 1;
    b->x = f->x;
    b->y = f->y;
    return 0;
}

int agt_feed_idx(agt_feed *f, const agt_dataset *train,
                 const agt_dataset *test, int B, uint64_t seed, agt_err *err)
{
    memset(f, 0, sizeof *f);
    if (B < 1)
        return agt_fail(err, "--batch must be >= 1");
    if (train->n / (size_t)B == 0)
        return agt_fail(err, "batch %d is larger than the training set (%zu)",
                        B, train->n);
    idx_src *s = malloc(sizeof *s);
    f->x = malloc((size_t)B * AGT_IMG * sizeof *f->x);
    f->y = malloc((size_t)B);
    f->perm = malloc((train->n ? train->n : 1) * sizeof *f->perm);
    f->idx = malloc((size_t)B * sizeof *f->idx);
    if (!s || !f->x || !f->y || !f->perm || !f->idx) {
        free(s);
        agt_feed_free(f);
        return agt_fail(err, "out of memory (run buffers)");
    }
    s->train = train;
    s->test = test;
    f->self = s;
    f->train = idx_train;
    f->eval = idx_eval;
    f->ntrain = train->n;
    f->steps_per_period = train->n / (size_t)B;
    f->perm_period = UINT64_MAX;
    f->B = B;
    f->T = 1;
    f->seed = seed;
    return 0;
}

typedef struct text_src {
    const agt_text *text;
    int eval_batches;
} text_src;

static int text_train(agt_feed *f, uint64_t period, uint64_t k, uint64_t step,
                      agt_batch *b)
{
    (void)period;
    (void)k;
    text_src *s = f->self;
    agt_text_batch(f->tok, f->tgt, s->text, 1, f->seed, step, f->B, f->T);
    memset(b, 0, sizeof *b);
    b->B = f->B;
    b->T = f->T;
    b->tok = f->tok;
    b->tgt = f->tgt;
    return 0;
}

static int text_eval(agt_feed *f, int k, agt_batch *b)
{
    text_src *s = f->self;
    memset(b, 0, sizeof *b);
    if (k >= s->eval_batches)
        return 0;
    agt_text_batch(f->tok, f->tgt, s->text, 0, f->seed, (uint64_t)k, f->B,
                   f->T);
    b->B = f->B;
    b->T = f->T;
    b->tok = f->tok;
    b->tgt = f->tgt;
    return 0;
}

int agt_feed_text(agt_feed *f, const agt_text *text, int B, int T,
                  int eval_every, int eval_batches, uint64_t seed,
                  agt_err *err)
{
    memset(f, 0, sizeof *f);
    if (B < 1 || T < 1 || eval_every < 1 || eval_batches < 1)
        return agt_fail(err, "bad text batches (batch %d, context %d, "
                        "--eval-every %d, --eval-batches %d)", B, T,
                        eval_every, eval_batches);
    if (text->ntrain < (size_t)T + 1 || text->n - text->ntrain < (size_t)T + 1)
        return agt_fail(err, "the text is too short for context %d: %zu "
                        "train and %zu validation bytes", T, text->ntrain,
                        text->n - text->ntrain);
    text_src *s = malloc(sizeof *s);
    f->tok = malloc((size_t)B * (size_t)T);
    f->tgt = malloc((size_t)B * (size_t)T);
    if (!s || !f->tok || !f->tgt) {
        free(s);
        agt_feed_free(f);
        return agt_fail(err, "out of memory (run buffers)");
    }
    s->text = text;
    s->eval_batches = eval_batches;
    f->self = s;
    f->train = text_train;
    f->eval = text_eval;
    f->ntrain = text->ntrain;
    f->steps_per_period = (uint64_t)eval_every;
    f->perm_period = UINT64_MAX;
    f->B = B;
    f->T = T;
    f->seed = seed;
    return 0;
}

/* ----------------------------------------------------------------- runs --- */

int agt_run_gpt(agt_result *res, const agt_config *cfg, const agt_text *text,
                double grid_rate, agt_err *err)
{
    memset(res, 0, sizeof *res);
    if (cfg->save && agt_check_save(cfg->save, err))
        return -1;
    /* the ops of this run: cfg->threads threads of this thread's teams */
    if (cfg->threads > 0)
        omp_set_num_threads(cfg->threads);
    agt_feed feed;
    if (agt_feed_text(&feed, text, cfg->batch, cfg->dims[3], cfg->eval_every,
                      cfg->eval_batches, cfg->seed, err))
        return -1;
    agt_net net;
    if (agt_net_gpt(&net, cfg, err)) {
        agt_feed_free(&feed);
        return -1;
    }
    agt_config c = *cfg;
    c.grid_rate = grid_rate;
    int rc = agt_run_net(res, &c, &net, &feed, err);
    agt_net_free(&net);
    agt_feed_free(&feed);
    return rc;
}
