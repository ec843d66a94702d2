/* SPDX-License-Identifier: MIT */
/*
 * run.c — one training run of the bench: the loop, the per-epoch metrics,
 * divergence detection, and checkpoints.
 *
 * Order of one step (global step t, 0-based):
 *   batch = examples perm_e[s*B .. s*B+B) where perm_e depends only on
 *   (seed, epoch) — the last partial batch of an epoch is dropped;
 *   zero grads; forward (quantizers update their amax histories and
 *   counters); loss not finite -> the run diverged at step t+1 and stops;
 *   backward; the optimizer step (agt_optim_step), which counts the bit
 *   stall of every quantized weight tensor in the same pass: weights with a
 *   nonzero gradient whose code (the scale of this step's forward) the
 *   step left unchanged.
 * After each epoch the test set is evaluated (forward only, histories
 * frozen), and so it is when --max-steps stops the run inside an epoch:
 * that epoch is recorded as partial (its steps so far), and stays open in
 * the checkpoint so that a resume continues it.
 *
 * Determinism: everything above is a function of the seed and the data.
 * OpenBLAS is kept single-threaded: with 2 threads its sgemm gave different
 * bits (OpenBLAS 0.3.21, measured by tests/train/test_train_run.c), so
 * --threads only reaches the library's quantizers, whose results (also
 * stochastic rounding: counter-based) do not depend on the thread count.
 * The test checks that --threads 1 and 2 give bit-identical runs.
 *
 * Checkpoints (--save FILE): written to FILE.tmp.PID, fsync'd, renamed over
 * FILE (atomic on POSIX). Layout, native byte order (a marker word rejects
 * files from a machine of the other endianness):
 *     "AGTCKPT\0"  u32 version  u32 0x01020304  u64 payload bytes
 *     payload      configuration (checked on resume), position (epoch,
 *                  step in epoch, global step), epoch accumulators, the
 *                  counters of the completed epochs (run-level totals),
 *                  per quantizer its ag_scaler state record (u64 size,
 *                  then ag_scaler_save's bytes; 0 for fp32) + counters,
 *                  per-layer stall
 *                  counters, loss-curve window, params, optimizer state
 *     u32          CRC-32 (zlib) of the payload
 * --resume FILE restores all of it and continues; the resumed run matches
 * an uninterrupted one bit for bit.
 */
#define _POSIX_C_SOURCE 200809L
#include "train.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define CKPT_MAGIC "AGTCKPT"
/* 2: quantizer state as ag_scaler records; 3: and the counters of the
 * completed epochs */
#define CKPT_VERSION 3u

void agt_config_default(agt_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "fp32");
    c->nlin = 3;
    c->dims[0] = AGT_IMG;
    c->dims[1] = 256;
    c->dims[2] = 256;
    c->dims[3] = AGT_CLASSES;
    for (int i = 0; i < AGT_MAX_LAYERS; i++)
        for (int k = 0; k < AGT_NQ; k++)
            snprintf(c->fmt[i].spec[k], sizeof c->fmt[i].spec[k], "fp32");
    c->epochs = 3;
    c->batch = 128;
    c->lr = 1e-3f;
    c->wd = 1e-4f;
    c->optimizer = AGT_ADAMW;
    c->seed = 1;
    c->hist_len = 16;
    c->threads = 1;
    c->data_dir = AGT_DEFAULT_DATA;
}

void agt_result_free(agt_result *res)
{
    if (!res)
        return;
    free(res->epochs);
    free(res->loss_x);
    free(res->loss_y);
    res->epochs = NULL;
    res->loss_x = res->loss_y = NULL;
}

void agt_counts_add(agt_counts *c, const agt_epoch *e, int nlin)
{
    for (int l = 0; l < nlin; l++)
        for (int k = 0; k < AGT_NQ; k++) {
            c->total += e->q[l][k].total;
            c->sat += e->q[l][k].overflow;
            c->unf += e->q[l][k].underflow;
            c->nan += e->q[l][k].nan;
        }
    c->stalled += e->stalled;
    c->considered += e->considered;
}

int agt_check_save(const char *path, agt_err *err)
{
    struct stat st;
    if (!path[0])
        return agt_fail(err, "empty checkpoint path");
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return agt_fail(err, "%s: cannot save a checkpoint there: it is a "
                        "directory", path);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    const int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
    if (fd < 0)
        return agt_fail(err, "%s: cannot save a checkpoint there: %s", path,
                        strerror(errno));
    close(fd);
    unlink(tmp);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* State of a run that a checkpoint carries besides the model. */
typedef struct run_state {
    uint64_t epoch;          /* current epoch, 0-based */
    uint64_t step_in_epoch;  /* steps done in the current epoch */
    uint64_t step;           /* global steps done */
    double loss_sum;         /* this epoch's losses */
    uint64_t loss_n;
    double win_sum;          /* loss-curve window */
    uint64_t win_n;
    double seconds;          /* wall time of this epoch so far */
    agt_counts done;         /* counters of the completed epochs */
} run_state;

/* ------------------------------------------------------- checkpoints --- */

typedef struct buf {
    unsigned char *p;
    size_t len, cap, rd;
    int bad;
} buf;

static void put(buf *b, const void *src, size_t n)
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

static void get(buf *b, void *dst, size_t n)
{
    if (b->bad || b->len - b->rd < n) {
        b->bad = 1;
        memset(dst, 0, n);
        return;
    }
    memcpy(dst, b->p + b->rd, n);
    b->rd += n;
}

#define PUT(b, v) put((b), &(v), sizeof(v))
#define GET(b, v) get((b), &(v), sizeof(v))

/* The configuration fields a resumed run must share with the saved one. */
typedef struct ckpt_cfg {
    int32_t nlin, dims[AGT_MAX_LAYERS + 1];
    char fmt[AGT_MAX_LAYERS][AGT_NQ][48];
    int32_t stochastic_grads, batch, optimizer;
    float lr, wd;
    uint64_t seed, hist_len, ntrain;
} ckpt_cfg;

static void cfg_pack(ckpt_cfg *k, const agt_config *c, size_t ntrain)
{
    memset(k, 0, sizeof *k);
    k->nlin = c->nlin;
    for (int i = 0; i <= c->nlin; i++)
        k->dims[i] = c->dims[i];
    for (int i = 0; i < c->nlin; i++)
        for (int q = 0; q < AGT_NQ; q++)
            memcpy(k->fmt[i][q], c->fmt[i].spec[q], 48);
    k->stochastic_grads = c->stochastic_grads;
    k->batch = c->batch;
    k->optimizer = (int32_t)c->optimizer;
    k->lr = c->lr;
    k->wd = c->wd;
    k->seed = c->seed;
    k->hist_len = c->hist_len;
    k->ntrain = ntrain;
}

static void put_model(buf *b, const agt_model *m, const agt_optim *o,
                      const run_state *rs)
{
    PUT(b, *rs);
    for (int i = 0; i < m->nlayers; i++) {
        const agt_layer *L = &m->layers[i];
        if (L->kind != AGT_LINEAR)
            continue;
        PUT(b, L->stalled);
        PUT(b, L->considered);
        for (int k = 0; k < AGT_NQ; k++) {
            /* the scaler's own state record (0 bytes for fp32), then the
             * epoch counters */
            const agt_quant *q = &L->lin.q[k];
            size_t sz = 0;
            if (q->sc && ag_scaler_state_size(q->sc, &sz) != AG_OK)
                b->bad = 1;
            uint64_t n = sz;
            PUT(b, n);
            if (sz) {
                unsigned char *rec = malloc(sz);
                if (!rec || ag_scaler_save(q->sc, rec, sz) != AG_OK)
                    b->bad = 1;
                else
                    put(b, rec, sz);
                free(rec);
            }
            PUT(b, q->stats);
        }
    }
    uint64_t n = m->nparams;
    PUT(b, n);
    put(b, m->params, n * sizeof(float));
    PUT(b, o->t);
    put(b, o->m, n * sizeof(float));
    put(b, o->v, n * sizeof(float));
}

static int get_model(buf *b, agt_model *m, agt_optim *o, run_state *rs,
                     const char *path, agt_err *err)
{
    GET(b, *rs);
    for (int i = 0; i < m->nlayers; i++) {
        agt_layer *L = &m->layers[i];
        if (L->kind != AGT_LINEAR)
            continue;
        GET(b, L->stalled);
        GET(b, L->considered);
        for (int k = 0; k < AGT_NQ; k++) {
            agt_quant *q = &L->lin.q[k];
            size_t want = 0;
            if (q->sc)
                ag_scaler_state_size(q->sc, &want);
            uint64_t n;
            GET(b, n);
            if (b->bad || n != want || b->len - b->rd < want ||
                (want && ag_scaler_load(q->sc, b->p + b->rd, want) != AG_OK))
                return agt_fail(err, "%s: corrupt quantizer state (layer %d)",
                                path, L->index + 1);
            b->rd += want;
            GET(b, q->stats);
        }
    }
    uint64_t n;
    GET(b, n);
    if (b->bad || n != m->nparams)
        return agt_fail(err, "%s: parameter count differs (%llu, model %zu)",
                        path, (unsigned long long)n, m->nparams);
    get(b, m->params, n * sizeof(float));
    GET(b, o->t);
    get(b, o->m, n * sizeof(float));
    get(b, o->v, n * sizeof(float));
    if (b->bad)
        return agt_fail(err, "%s: truncated checkpoint payload", path);
    if (b->rd != b->len)
        return agt_fail(err, "%s: %zu unexpected bytes at the end of the "
                        "payload", path, b->len - b->rd);
    return 0;
}

static int ckpt_save(const char *path, const agt_config *cfg, size_t ntrain,
                     const agt_model *m, const agt_optim *o,
                     const run_state *rs, agt_err *err)
{
    buf b = {0};
    ckpt_cfg k;
    cfg_pack(&k, cfg, ntrain);
    PUT(&b, k);
    put_model(&b, m, o, rs);
    if (b.bad) {
        free(b.p);
        return agt_fail(err, "%s: out of memory writing checkpoint", path);
    }
    uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
    for (size_t off = 0; off < b.len;) {
        size_t chunk = b.len - off > (1u << 30) ? (1u << 30) : b.len - off;
        crc = (uint32_t)crc32(crc, b.p + off, (uInt)chunk);
        off += chunk;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(b.p);
        return agt_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
    }
    char magic[8] = CKPT_MAGIC;
    uint32_t ver = CKPT_VERSION, endian = 0x01020304u;
    uint64_t plen = b.len;
    int ok = fwrite(magic, 1, 8, f) == 8 && fwrite(&ver, 4, 1, f) == 1 &&
             fwrite(&endian, 4, 1, f) == 1 && fwrite(&plen, 8, 1, f) == 1 &&
             fwrite(b.p, 1, b.len, f) == b.len && fwrite(&crc, 4, 1, f) == 1;
    free(b.p);
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    if (fclose(f) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (!ok) {
        unlink(tmp);
        return agt_fail(err, "%s: write failed: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        return agt_fail(err, "%s: cannot rename into place: %s", path,
                        strerror(e));
    }
    return 0;
}

static int cfg_compare(const ckpt_cfg *a, const ckpt_cfg *b, const char *path,
                       agt_err *err)
{
    const char *what = NULL;
    if (a->nlin != b->nlin || memcmp(a->dims, b->dims, sizeof a->dims))
        what = "the layer sizes";
    else if (memcmp(a->fmt, b->fmt, sizeof a->fmt))
        what = "the layer formats";
    else if (a->stochastic_grads != b->stochastic_grads)
        what = "--stochastic-grads";
    else if (a->batch != b->batch)
        what = "--batch";
    else if (a->optimizer != b->optimizer)
        what = "--optimizer";
    else if (memcmp(&a->lr, &b->lr, sizeof a->lr))
        what = "--lr";
    else if (memcmp(&a->wd, &b->wd, sizeof a->wd))
        what = "--wd";
    else if (a->seed != b->seed)
        what = "--seed";
    else if (a->hist_len != b->hist_len)
        what = "--history";
    else if (a->ntrain != b->ntrain)
        what = "the training set (--data / --train-limit)";
    if (what)
        return agt_fail(err,
                        "%s: checkpoint was made with different %s; resume "
                        "with the same options",
                        path, what);
    return 0;
}

static int ckpt_load(const char *path, const agt_config *cfg, size_t ntrain,
                     agt_model *m, agt_optim *o, run_state *rs, agt_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return agt_fail(err, "%s: cannot open checkpoint: %s", path,
                        strerror(errno));
    char magic[8];
    uint32_t ver, endian, crc;
    uint64_t plen;
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, CKPT_MAGIC, 8) != 0) {
        fclose(f);
        return agt_fail(err, "%s: not an altgrad checkpoint (bad magic)",
                        path);
    }
    if (fread(&ver, 4, 1, f) != 1 || fread(&endian, 4, 1, f) != 1 ||
        fread(&plen, 8, 1, f) != 1) {
        fclose(f);
        return agt_fail(err, "%s: truncated checkpoint header", path);
    }
    if (ver != CKPT_VERSION) {
        fclose(f);
        return agt_fail(err, "%s: checkpoint version %u, this build reads %u",
                        path, (unsigned)ver, CKPT_VERSION);
    }
    if (endian != 0x01020304u) {
        fclose(f);
        return agt_fail(err, "%s: checkpoint from a machine of other byte "
                        "order", path);
    }
    if (plen > ((uint64_t)1 << 34)) {
        fclose(f);
        return agt_fail(err, "%s: implausible payload size", path);
    }
    buf b = {0};
    b.p = malloc(plen ? plen : 1);
    if (!b.p) {
        fclose(f);
        return agt_fail(err, "%s: out of memory", path);
    }
    b.len = b.cap = plen;
    unsigned char extra;
    int ok = fread(b.p, 1, plen, f) == plen && fread(&crc, 4, 1, f) == 1;
    int trailing = ok && fread(&extra, 1, 1, f) == 1;
    fclose(f);
    if (!ok || trailing) {
        free(b.p);
        return agt_fail(err, "%s: %s", path,
                        trailing ? "trailing bytes after the checkpoint"
                                 : "truncated checkpoint");
    }
    uint32_t c = (uint32_t)crc32(0L, Z_NULL, 0);
    for (size_t off = 0; off < b.len;) {
        size_t chunk = b.len - off > (1u << 30) ? (1u << 30) : b.len - off;
        c = (uint32_t)crc32(c, b.p + off, (uInt)chunk);
        off += chunk;
    }
    if (c != crc) {
        free(b.p);
        return agt_fail(err, "%s: checksum mismatch (corrupt checkpoint)",
                        path);
    }
    ckpt_cfg saved, mine;
    GET(&b, saved);
    cfg_pack(&mine, cfg, ntrain);
    int r = b.bad ? agt_fail(err, "%s: truncated checkpoint", path)
                  : cfg_compare(&saved, &mine, path, err);
    if (r == 0)
        r = get_model(&b, m, o, rs, path, err);
    free(b.p);
    return r;
}

/* ---------------------------------------------------------- the loop --- */

static void reset_counters(agt_model *m)
{
    for (int i = 0; i < m->nlayers; i++) {
        agt_layer *L = &m->layers[i];
        L->stalled = L->considered = 0;
        for (int k = 0; k < AGT_NQ; k++)
            memset(&L->lin.q[k].stats, 0, sizeof L->lin.q[k].stats);
    }
}

static int evaluate(agt_model *m, const agt_dataset *test, float *x,
                    uint8_t *y, uint32_t *idx, double *loss, double *acc,
                    agt_err *err)
{
    const agt_stepctx ctx = {0};
    double sum = 0.0;
    size_t correct = 0;
    for (size_t at = 0; at < test->n; at += (size_t)m->bmax) {
        int B = (int)(test->n - at < (size_t)m->bmax ? test->n - at
                                                     : (size_t)m->bmax);
        for (int b = 0; b < B; b++)
            idx[b] = (uint32_t)(at + (size_t)b);
        agt_dataset_batch(x, y, test, idx, B);
        float l;
        if (agt_model_forward(m, x, y, B, &ctx, &l, &correct, err))
            return -1;
        sum += (double)l * B;
    }
    *loss = test->n ? sum / (double)test->n : (double)NAN;
    *acc = test->n ? (double)correct / (double)test->n : (double)NAN;
    return 0;
}

static int push_loss_point(agt_result *res, size_t *cap, double x, double y)
{
    if (res->nloss == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        double *nx = realloc(res->loss_x, c * sizeof *nx);
        if (!nx)
            return -1;
        res->loss_x = nx;
        double *ny = realloc(res->loss_y, c * sizeof *ny);
        if (!ny)
            return -1;
        res->loss_y = ny;
        *cap = c;
    }
    res->loss_x[res->nloss] = x;
    res->loss_y[res->nloss] = y;
    res->nloss++;
    return 0;
}

static void record_epoch(agt_epoch *e, const agt_model *m,
                         const run_state *rs)
{
    memset(e, 0, sizeof *e);
    e->epoch = (int)rs->epoch + 1;
    e->step = rs->step;
    e->train_loss = rs->loss_n ? rs->loss_sum / (double)rs->loss_n
                               : (double)NAN;
    if (isnan(e->train_loss))
        e->train_loss = (double)NAN; /* one spelling: "nan", not "-nan" */
    for (int i = 0; i < m->nlayers; i++) {
        const agt_layer *L = &m->layers[i];
        if (L->kind != AGT_LINEAR)
            continue;
        for (int k = 0; k < AGT_NQ; k++)
            e->q[L->index][k] = L->lin.q[k].stats;
        e->stalled += L->stalled;
        e->considered += L->considered;
    }
}

int agt_run(agt_result *res, const agt_config *cfg, const agt_dataset *train,
            const agt_dataset *test, agt_err *err)
{
    memset(res, 0, sizeof *res);
    res->cfg = *cfg;
    /* before anything runs: a run must not be lost to an unwritable path */
    if (cfg->save && agt_check_save(cfg->save, err))
        return -1;
    if (cfg->batch < 1)
        return agt_fail(err, "--batch must be >= 1");
    if (cfg->epochs < 1)
        return agt_fail(err, "--epochs must be >= 1");
    const size_t spe = train->n / (size_t)cfg->batch;
    if (spe == 0)
        return agt_fail(err, "batch %d is larger than the training set (%zu)",
                        cfg->batch, train->n);
    res->steps_per_epoch = spe;
    /* OpenBLAS stays on one thread: its sgemm results change with the
     * thread count (measured with 0.3.21: --threads 2 gave different
     * losses), and --threads must not change the numbers. --threads goes
     * to the library's quantizers, whose results are thread-independent. */
    openblas_set_num_threads(1);

    agt_model m;
    agt_optim o;
    const agt_quant_cfg qc = {cfg->hist_len, cfg->seed, cfg->stochastic_grads,
                              cfg->threads};
    if (agt_model_mlp(&m, cfg->dims, cfg->nlin + 1, cfg->fmt, &qc,
                      cfg->batch, cfg->seed, err))
        return -1;
    if (agt_optim_init(&o, cfg->optimizer, m.nparams, cfg->lr, cfg->wd, err)) {
        agt_model_free(&m);
        return -1;
    }
    o.threads = cfg->threads;
    float *x = malloc((size_t)cfg->batch * AGT_IMG * sizeof *x);
    uint8_t *y = malloc((size_t)cfg->batch);
    uint32_t *perm = malloc(train->n * sizeof *perm);
    uint32_t *idx = malloc((size_t)cfg->batch * sizeof *idx);
    res->epochs = calloc((size_t)cfg->epochs, sizeof *res->epochs);
    int rc = -1;
    size_t loss_cap = 0;
    if (!x || !y || !perm || !idx || !res->epochs) {
        agt_fail(err, "out of memory (run buffers)");
        goto done;
    }
    run_state rs;
    memset(&rs, 0, sizeof rs);
    if (cfg->resume &&
        ckpt_load(cfg->resume, cfg, train->n, &m, &o, &rs, err))
        goto done;
    if (rs.epoch >= (uint64_t)cfg->epochs) {
        agt_fail(err, "%s: the checkpoint already has %llu epoch%s done; ask "
                 "for more with --epochs", cfg->resume,
                 (unsigned long long)rs.epoch, rs.epoch == 1 ? "" : "s");
        goto done;
    }
    res->epochs_before = (int)rs.epoch;
    res->counts_before = rs.done;

    const size_t log_every = spe >= 20 ? spe / 10 : 1;
    const uint64_t total_steps = (uint64_t)cfg->epochs * spe;
    const uint64_t start_step = rs.step;
    const double t_run = now_s();
    double t_last_print = 0.0;
    int stop = 0;
    for (; rs.epoch < (uint64_t)cfg->epochs && !stop; rs.epoch++) {
        double t_epoch = now_s() - rs.seconds;
        agt_epoch_order(perm, train->n, cfg->seed, rs.epoch);
        for (; rs.step_in_epoch < spe; rs.step_in_epoch++) {
            if (cfg->max_steps > 0 && rs.step >= (uint64_t)cfg->max_steps) {
                stop = 1;
                break;
            }
            agt_dataset_batch(x, y, train,
                              perm + rs.step_in_epoch * (size_t)cfg->batch,
                              cfg->batch);
            const agt_stepctx ctx = {1};
            memset(m.grads, 0, m.nparams * sizeof *m.grads);
            float loss;
            if (agt_model_forward(&m, x, y, cfg->batch, &ctx, &loss, NULL, err))
                goto done;
            if (!isfinite(loss)) {
                res->diverged_step = (long)rs.step + 1;
                rs.loss_sum += (double)loss;
                rs.loss_n++;
                stop = 2;
                break;
            }
            if (agt_model_backward(&m, y, cfg->batch, &ctx, err))
                goto done;
            agt_optseg segs[AGT_MAX_LAYERS];
            int nsegs = 0;
            for (int i = 0; i < m.nlayers; i++) {
                const agt_layer *L = &m.layers[i];
                if (L->kind != AGT_LINEAR || !L->lin.q[AGT_QW].fmt)
                    continue;
                agt_optseg sg = {L->w_off, (size_t)L->in_dim * L->out_dim,
                                 L->lin.q[AGT_QW].fmt,
                                 ag_scaler_last_scale(L->lin.q[AGT_QW].sc), 0, 0};
                segs[nsegs++] = sg;
            }
            if (agt_optim_step(&o, m.params, m.grads, segs, nsegs, err))
                goto done;
            for (int i = 0, k = 0; i < m.nlayers; i++) {
                agt_layer *L = &m.layers[i];
                if (L->kind != AGT_LINEAR || !L->lin.q[AGT_QW].fmt)
                    continue;
                L->stalled += segs[k].stalled;
                L->considered += segs[k].considered;
                k++;
            }
            rs.step++;
            rs.loss_sum += (double)loss;
            rs.loss_n++;
            rs.win_sum += (double)loss;
            rs.win_n++;
            if (rs.win_n == log_every) {
                if (push_loss_point(res, &loss_cap, (double)rs.step / (double)spe,
                                    rs.win_sum / (double)rs.win_n)) {
                    agt_fail(err, "out of memory (loss curve)");
                    goto done;
                }
                rs.win_sum = 0.0;
                rs.win_n = 0;
            }
            double t = now_s();
            if (!cfg->quiet && (t - t_last_print > 1.0 || rs.step_in_epoch + 1 == spe)) {
                t_last_print = t;
                double el = t - t_run;
                double per = el / (double)(rs.step - start_step);
                double eta = per * (double)(total_steps - rs.step);
                fprintf(stderr,
                        "[%s] epoch %llu/%d step %llu/%zu loss %.4f  ETA %.0fs\n",
                        cfg->name, (unsigned long long)rs.epoch + 1, cfg->epochs,
                        (unsigned long long)rs.step_in_epoch + 1, spe,
                        (double)loss, eta);
            }
        }
        if (stop == 1 && rs.step_in_epoch == 0)
            break; /* max_steps at an epoch boundary: nothing to record */
        agt_epoch *e = &res->epochs[res->nepochs];
        record_epoch(e, &m, &rs);
        if (stop == 1)
            e->partial_steps = rs.step_in_epoch;
        if (stop == 2) {
            e->test_loss = e->test_acc = (double)NAN;
        } else if (evaluate(&m, test, x, y, idx, &e->test_loss,
                            &e->test_acc, err)) {
            goto done;
        }
        e->seconds = now_s() - t_epoch;
        res->nepochs++;
        if (stop != 1)
            agt_counts_add(&rs.done, e, cfg->nlin);
        if (!cfg->quiet) {
            if (stop == 2)
                fprintf(stderr, "[%s] DIVERGED: loss not finite at step %ld\n",
                        cfg->name, res->diverged_step);
            else if (stop == 1)
                fprintf(stderr,
                        "[%s] stopped by --max-steps after step %llu (%llu of "
                        "%zu steps of epoch %d): train loss %.4f, test acc "
                        "%.2f%%\n",
                        cfg->name, (unsigned long long)rs.step,
                        (unsigned long long)e->partial_steps, spe, e->epoch,
                        e->train_loss, 100.0 * e->test_acc);
            else
                fprintf(stderr,
                        "[%s] epoch %d: train loss %.4f, test acc %.2f%%, "
                        "%.1fs\n",
                        cfg->name, e->epoch, e->train_loss,
                        100.0 * e->test_acc, e->seconds);
        }
        if (stop)
            break; /* diverged; or max_steps: the epoch stays open for a resume */
        rs.step_in_epoch = 0;
        rs.loss_sum = 0.0;
        rs.loss_n = 0;
        rs.seconds = 0.0;
        reset_counters(&m);
    }
    if (stop == 1)
        rs.seconds = 0.0;
    res->seconds = now_s() - t_run;
    res->step_seconds =
        rs.step > start_step ? res->seconds / (double)(rs.step - start_step) : 0.0;
    if (cfg->save && res->diverged_step == 0 &&
        ckpt_save(cfg->save, cfg, train->n, &m, &o, &rs, err))
        goto done;
    rc = 0;
done:
    free(x);
    free(y);
    free(perm);
    free(idx);
    agt_optim_free(&o);
    agt_model_free(&m);
    if (rc)
        agt_result_free(res);
    return rc;
}
