/* SPDX-License-Identifier: MIT */
/*
 * run.c — one training run of the bench, for any model (agt_net) and data
 * (agt_feed): the loop, the per-period metrics, divergence detection,
 * checkpoints; and the pool that trains the runs of a comparison.
 *
 * Order of one step (global step t, 0-based):
 *   batch = the feed's training batch (period, step in period, t): the MLP
 *   takes examples perm_e[s*B .. s*B+B) where perm_e depends only on
 *   (seed, epoch) — the last partial batch of an epoch is dropped; the GPT
 *   takes sequences at positions drawn from (seed, t);
 *   zero grads; forward (quantizers update their amax histories and
 *   counters); loss not finite -> the run diverged at step t+1 and stops
 *   (a result: its records so far are kept, and a matrix goes on);
 *   backward; the optimizer step (agt_optim_step) over the model's ranges
 *   (one per parameter tensor, with the storage format and scale of the
 *   quantized weights), which counts the bit stall of every quantized
 *   weight tensor in the same pass: weights with a nonzero gradient whose
 *   code (the scale of this step's forward) the step left unchanged.
 * After each period (the MLP: an epoch; the GPT: --eval-every steps) the
 * feed's evaluation batches are run (forward only, histories frozen) and
 * the weights' ranks measured, and so they are when --max-steps stops the
 * run inside a period: that period is recorded as partial (its steps so
 * far), and stays open in the checkpoint so that a resume continues it.
 *
 * Determinism: everything above is a function of the seed and the data.
 * The MLP keeps OpenBLAS single-threaded (with 2 threads its sgemm gave
 * different bits, OpenBLAS 0.3.21, tests/train/test_train_run.c); the
 * GPT's products are split over fixed blocks (train/gpt.c); --threads
 * reaches the library's quantizers, whose results (also stochastic
 * rounding: counter-based) do not depend on the thread count. The tests
 * check that 1 and 2 threads give bit-identical runs.
 *
 * Checkpoints (--save FILE): written to FILE.tmp.PID, fsync'd, renamed over
 * FILE (atomic on POSIX). Layout, native byte order (a marker word rejects
 * files from a machine of the other endianness):
 *     "AGTCKPT\0"  u32 version  u32 0x01020304  u64 payload bytes
 *     payload      u32 length + the configuration as "what=value" lines
 *                  (agt_config_sig; a resume must match them, and the
 *                  first line that differs names the option), the run
 *                  state (period, step in period, global step, period
 *                  accumulators, counters of the completed periods, stall
 *                  per counter group, loss-curve window), the model's
 *                  section (per quantizer its ag_scaler state record: u64
 *                  size, then ag_scaler_save's bytes, 0 for fp32; and its
 *                  counters), params, the optimizer's step and state
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
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define CKPT_MAGIC "AGTCKPT"
/* 2: quantizer state as ag_scaler records; 3: and the counters of the
 * completed epochs; 4: any model (the configuration as text lines, the
 * model's own section, per-group stall counters) */
#define CKPT_VERSION 4u

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
    c->eval_every = 50;
    c->eval_batches = 8;
    c->val_frac = 0.1;
    c->mantissa_bits = 2;
}

void agt_config_default_gpt(agt_config *c)
{
    agt_config_default(c);
    c->model = AGT_MODEL_GPT;
    c->nlin = AGT_GPT_GROUPS;
    c->dims[0] = 2;
    c->dims[1] = 4;
    c->dims[2] = 128;
    c->dims[3] = 64;
    c->dims[4] = 0;
    c->batch = 16;
    c->wd = 0.1f;
    c->steps = 200;
    c->epochs = 0;
    c->data_dir = NULL;
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
    uint64_t epoch;          /* current period, 0-based */
    uint64_t step_in_epoch;  /* steps done in the current period */
    uint64_t step;           /* global steps done */
    double loss_sum;         /* this period's losses */
    uint64_t loss_n;
    double win_sum;          /* loss-curve window */
    uint64_t win_n;
    double seconds;          /* wall time of this period so far */
    agt_counts done;         /* counters of the completed periods */
    uint64_t g_stalled[AGT_MAX_LAYERS], g_considered[AGT_MAX_LAYERS];
} run_state;

/* ------------------------------------------------------- checkpoints --- */

void agt_config_sig(char *out, size_t cap, const agt_config *c, size_t ntrain)
{
    size_t at = 0;
#define SIG(...)                                                          \
    do {                                                                  \
        if (at < cap)                                                     \
            at += (size_t)snprintf(out + at, cap - at, __VA_ARGS__);      \
    } while (0)
    SIG("the model=%s\n", c->model == AGT_MODEL_GPT ? "gpt" : "mlp");
    SIG("the layer sizes=");
    for (int i = 0; i <= c->nlin && i <= AGT_MAX_LAYERS; i++)
        SIG("%d,", c->dims[i]);
    SIG("\nthe layer formats=");
    for (int i = 0; i < c->nlin && i < AGT_MAX_LAYERS; i++)
        for (int q = 0; q < AGT_NQ; q++)
            SIG("%s,", c->fmt[i].spec[q]);
    SIG("\n--stochastic-grads=%d\n--batch=%d\n--optimizer=%s\n",
        c->stochastic_grads, c->batch,
        agt_optim_name(c->optimizer, c->precondition));
    SIG("--mantissa-bits=%d\n", c->mantissa_bits);
    if (c->optimizer == AGT_GRID)
        SIG("--grid-rate=%a\n", c->grid_rate);
    SIG("--lr=%a\n--wd=%a\n--seed=%llu\n--history=%zu\n", (double)c->lr,
        (double)c->wd, (unsigned long long)c->seed, c->hist_len);
    if (c->model == AGT_MODEL_GPT)
        SIG("--eval-every=%d\n--eval-batches=%d\n", c->eval_every,
            c->eval_batches);
    SIG("the training set (--data / --train-limit)=%zu\n", ntrain);
#undef SIG
}

static void put_state(agt_buf *b, const agt_net *net, const agt_optim *o,
                      const run_state *rs)
{
    AGT_PUT(b, *rs);
    net->ops->save(net, b);
    uint64_t n = net->nparams;
    AGT_PUT(b, n);
    agt_buf_put(b, net->params, n * sizeof(float));
    AGT_PUT(b, o->t);
    agt_buf_put(b, o->m, n * sizeof(float));
    agt_buf_put(b, o->v, n * sizeof(float));
}

static int get_state(agt_buf *b, agt_net *net, agt_optim *o, run_state *rs,
                     const char *path, agt_err *err)
{
    AGT_GET(b, *rs);
    if (b->bad)
        return agt_fail(err, "%s: truncated checkpoint payload", path);
    if (net->ops->load(net, b, path, err))
        return -1;
    uint64_t n;
    AGT_GET(b, n);
    if (b->bad || n != net->nparams)
        return agt_fail(err, "%s: parameter count differs (%llu, model %zu)",
                        path, (unsigned long long)n, net->nparams);
    agt_buf_get(b, net->params, n * sizeof(float));
    AGT_GET(b, o->t);
    agt_buf_get(b, o->m, n * sizeof(float));
    agt_buf_get(b, o->v, n * sizeof(float));
    if (b->bad)
        return agt_fail(err, "%s: truncated checkpoint payload", path);
    if (b->rd != b->len)
        return agt_fail(err, "%s: %zu unexpected bytes at the end of the "
                        "payload", path, b->len - b->rd);
    return 0;
}

static uint32_t crc_of(const unsigned char *p, size_t len)
{
    uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
    for (size_t off = 0; off < len;) {
        size_t chunk = len - off > (1u << 30) ? (1u << 30) : len - off;
        crc = (uint32_t)crc32(crc, p + off, (uInt)chunk);
        off += chunk;
    }
    return crc;
}

#define SIG_CAP 4096

static int ckpt_save(const char *path, const char *sig, const agt_net *net,
                     const agt_optim *o, const run_state *rs, agt_err *err)
{
    agt_buf b = {0};
    uint32_t siglen = (uint32_t)strlen(sig);
    AGT_PUT(&b, siglen);
    agt_buf_put(&b, sig, siglen);
    put_state(&b, net, o, rs);
    if (b.bad) {
        free(b.p);
        return agt_fail(err, "%s: out of memory writing checkpoint", path);
    }
    const uint32_t crc = crc_of(b.p, b.len);
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

/* The first line of the saved configuration that differs from ours names
 * the option in the error. */
static int sig_compare(const char *saved, const char *mine, const char *path,
                       agt_err *err)
{
    const char *a = saved, *b = mine;
    while (*a || *b) {
        const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
        size_t la = ea ? (size_t)(ea - a) : strlen(a),
               lb = eb ? (size_t)(eb - b) : strlen(b);
        if (la != lb || memcmp(a, b, la)) {
            const char *eq = memchr(b, '=', lb);
            int wl = eq ? (int)(eq - b) : (int)lb;
            if (!lb) {
                eq = memchr(a, '=', la);
                wl = eq ? (int)(eq - a) : (int)la;
                b = a;
            }
            return agt_fail(err,
                            "%s: checkpoint was made with different %.*s; "
                            "resume with the same options",
                            path, wl, b);
        }
        a += la + (ea != NULL);
        b += lb + (eb != NULL);
    }
    return 0;
}

static int ckpt_load(const char *path, const char *sig, agt_net *net,
                     agt_optim *o, run_state *rs, agt_err *err)
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
    agt_buf b = {0};
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
    if (crc_of(b.p, b.len) != crc) {
        free(b.p);
        return agt_fail(err, "%s: checksum mismatch (corrupt checkpoint)",
                        path);
    }
    uint32_t siglen = 0;
    AGT_GET(&b, siglen);
    int r;
    if (b.bad || siglen >= SIG_CAP || b.len - b.rd < siglen) {
        r = agt_fail(err, "%s: truncated checkpoint", path);
    } else {
        char saved[SIG_CAP];
        memcpy(saved, b.p + b.rd, siglen);
        saved[siglen] = 0;
        b.rd += siglen;
        r = sig_compare(saved, sig, path, err);
    }
    if (r == 0)
        r = get_state(&b, net, o, rs, path, err);
    free(b.p);
    return r;
}

/* ---------------------------------------------------------- the loop --- */

static int evaluate(agt_net *net, agt_feed *feed, double *loss, double *acc,
                    agt_err *err)
{
    double sum = 0.0;
    size_t correct = 0, rows = 0;
    int classes = 0;         /* batches of labelled images: an accuracy */
    agt_batch b;
    for (int k = 0;; k++) {
        if (feed->eval(feed, k, &b))
            return agt_fail(err, "evaluation batch %d", k);
        if (b.B == 0)
            break;
        double l;
        if (net->ops->forward(net, &b, 0, &l, &correct, err))
            return -1;
        sum += l * b.B;
        rows += (size_t)b.B;
        classes = b.x != NULL;
    }
    *loss = rows ? sum / (double)rows : (double)NAN;
    *acc = rows && classes ? (double)correct / (double)rows : (double)NAN;
    if (isnan(*loss))
        *loss = (double)NAN;
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

static void record_epoch(agt_epoch *e, const agt_net *net,
                         const run_state *rs)
{
    memset(e, 0, sizeof *e);
    e->epoch = (int)rs->epoch + 1;
    e->step = rs->step;
    e->train_loss = rs->loss_n ? rs->loss_sum / (double)rs->loss_n
                               : (double)NAN;
    if (isnan(e->train_loss))
        e->train_loss = (double)NAN; /* one spelling: "nan", not "-nan" */
    for (int g = 0; g < net->ngroups; g++) {
        for (int k = 0; k < AGT_NQ; k++)
            net->ops->stats(net, g, k, &e->q[g][k]);
        e->g_stalled[g] = rs->g_stalled[g];
        e->g_considered[g] = rs->g_considered[g];
        e->stalled += rs->g_stalled[g];
        e->considered += rs->g_considered[g];
    }
    for (int g = 0; g < AGT_MAX_LAYERS; g++)
        e->stable_rank[g] = e->eff_rank[g] = (double)NAN;
}

/* The segments of the optimizer step now (their scales move every step). */
#define MAX_SEGS 1024

int agt_run_net(agt_result *res, const agt_config *cfg, agt_net *net,
                agt_feed *feed, agt_err *err)
{
    memset(res, 0, sizeof *res);
    res->cfg = *cfg;
    /* before anything runs: a run must not be lost to an unwritable path */
    if (cfg->save && agt_check_save(cfg->save, err))
        return -1;
    const int gpt = cfg->model == AGT_MODEL_GPT;
    const size_t spe = feed->steps_per_period;
    uint64_t periods;
    if (gpt) {
        if (cfg->steps < 1 || cfg->eval_every < 1 ||
            cfg->steps % cfg->eval_every != 0)
            return agt_fail(err, "--steps %ld must be a positive multiple of "
                            "--eval-every %d", cfg->steps, cfg->eval_every);
        periods = (uint64_t)cfg->steps / (uint64_t)cfg->eval_every;
    } else {
        if (cfg->epochs < 1)
            return agt_fail(err, "--epochs must be >= 1");
        periods = (uint64_t)cfg->epochs;
    }
    if (spe == 0)
        return agt_fail(err, "no training steps per period");
    res->steps_per_epoch = spe;
    /* OpenBLAS stays on one thread: its sgemm results change with the
     * thread count (measured with 0.3.21: --threads 2 gave different
     * losses), and --threads must not change the numbers. --threads goes
     * to the library's quantizers, whose results are thread-independent. */
    if (!gpt)
        openblas_set_num_threads(1);

    agt_optim o;
    if (agt_optim_init(&o, cfg->optimizer, net->nparams, cfg->lr, cfg->wd, err))
        return -1;
    o.threads = cfg->threads;
    o.pre = cfg->precondition;
    o.mantissa_bits = cfg->mantissa_bits;
    o.grid.seed = cfg->seed;
    if (cfg->grid_rate > 0.0)
        o.grid.rate = cfg->grid_rate;
    o.grid_fmt = ag_format_get("float8_e4m3fn");
    char sig[SIG_CAP];
    agt_config_sig(sig, sizeof sig, cfg, feed->ntrain);
    agt_optseg *segs = malloc(MAX_SEGS * sizeof *segs);
    res->epochs = calloc((size_t)periods, sizeof *res->epochs);
    int rc = -1;
    size_t loss_cap = 0;
    if (!segs || !res->epochs) {
        agt_fail(err, "out of memory (run buffers)");
        goto done;
    }
    run_state rs;
    memset(&rs, 0, sizeof rs);
    if (cfg->resume && ckpt_load(cfg->resume, sig, net, &o, &rs, err))
        goto done;
    if (rs.epoch >= periods) {
        if (gpt)
            agt_fail(err, "%s: the checkpoint already has %llu steps done; "
                     "ask for more with --steps", cfg->resume,
                     (unsigned long long)rs.step);
        else
            agt_fail(err, "%s: the checkpoint already has %llu epoch%s done; "
                     "ask for more with --epochs", cfg->resume,
                     (unsigned long long)rs.epoch, rs.epoch == 1 ? "" : "s");
        goto done;
    }
    res->epochs_before = (int)rs.epoch;
    res->counts_before = rs.done;

    const size_t log_every = spe >= 20 ? spe / 10 : 1;
    const uint64_t total_steps = periods * spe;
    const uint64_t start_step = rs.step;
    const double t_run = now_s();
    double t_last_print = 0.0, t_train = 0.0;
    int stop = 0;
    for (; rs.epoch < periods && !stop; rs.epoch++) {
        double t_epoch = now_s() - rs.seconds;
        for (; rs.step_in_epoch < spe; rs.step_in_epoch++) {
            if (cfg->max_steps > 0 && rs.step >= (uint64_t)cfg->max_steps) {
                stop = 1;
                break;
            }
            agt_batch b;
            const double t_step = now_s();
            if (feed->train(feed, rs.epoch, rs.step_in_epoch, rs.step, &b)) {
                agt_fail(err, "training batch of step %llu",
                         (unsigned long long)rs.step + 1);
                goto done;
            }
            memset(net->grads, 0, net->nparams * sizeof *net->grads);
            double loss;
            if (net->ops->forward(net, &b, 1, &loss, NULL, err))
                goto done;
            if (!isfinite(loss)) {
                res->diverged_step = (long)rs.step + 1;
                rs.loss_sum += loss;
                rs.loss_n++;
                stop = 2;
                break;
            }
            if (net->ops->backward(net, &b, err))
                goto done;
            int nsegs = net->ops->segs(net, segs, MAX_SEGS);
            if (agt_optim_step(&o, net->params, net->grads, segs, nsegs, err))
                goto done;
            for (int i = 0; i < nsegs; i++)
                if (segs[i].group >= 0 && segs[i].group < AGT_MAX_LAYERS) {
                    rs.g_stalled[segs[i].group] += segs[i].stalled;
                    rs.g_considered[segs[i].group] += segs[i].considered;
                }
            t_train += now_s() - t_step;
            rs.step++;
            rs.loss_sum += loss;
            rs.loss_n++;
            rs.win_sum += loss;
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
            const double every = cfg->progress_seconds > 0.0 ? cfg->progress_seconds : 1.0;
            if (!cfg->quiet && (t - t_last_print > every ||
                                (!gpt && rs.step_in_epoch + 1 == spe))) {
                t_last_print = t;
                double el = t - t_run;
                double per = el / (double)(rs.step - start_step);
                double eta = per * (double)(total_steps - rs.step);
                if (gpt)
                    fprintf(stderr, "[%s] step %llu/%llu loss %.4f  ETA %.0fs\n",
                            cfg->name, (unsigned long long)rs.step,
                            (unsigned long long)total_steps, loss, eta);
                else
                    fprintf(stderr,
                            "[%s] epoch %llu/%d step %llu/%zu loss %.4f  ETA %.0fs\n",
                            cfg->name, (unsigned long long)rs.epoch + 1,
                            cfg->epochs, (unsigned long long)rs.step_in_epoch + 1,
                            spe, loss, eta);
            }
        }
        if (stop == 1 && rs.step_in_epoch == 0)
            break; /* max_steps at a period boundary: nothing to record */
        agt_epoch *e = &res->epochs[res->nepochs];
        record_epoch(e, net, &rs);
        if (stop == 1)
            e->partial_steps = rs.step_in_epoch;
        if (stop == 2) {
            e->test_loss = e->test_acc = (double)NAN;
        } else if (evaluate(net, feed, &e->test_loss, &e->test_acc, err)) {
            goto done;
        }
        net->ops->ranks(net, e->stable_rank, e->eff_rank);
        e->seconds = now_s() - t_epoch;
        res->nepochs++;
        if (stop != 1)
            agt_counts_add(&rs.done, e, net->ngroups);
        if (!cfg->quiet) {
            if (stop == 2)
                fprintf(stderr, "[%s] DIVERGED: loss not finite at step %ld\n",
                        cfg->name, res->diverged_step);
            else if (stop == 1)
                fprintf(stderr,
                        "[%s] stopped by --max-steps after step %llu (%llu of "
                        "%zu steps of %s %d): train loss %.4f, %s %.4f\n",
                        cfg->name, (unsigned long long)rs.step,
                        (unsigned long long)e->partial_steps, spe,
                        gpt ? "period" : "epoch", e->epoch, e->train_loss,
                        gpt ? "val loss" : "test acc %",
                        gpt ? e->test_loss : 100.0 * e->test_acc);
            else if (gpt)
                fprintf(stderr, "[%s] step %llu: train loss %.4f, val loss "
                        "%.4f, %.1fs\n", cfg->name,
                        (unsigned long long)rs.step, e->train_loss,
                        e->test_loss, e->seconds);
            else
                fprintf(stderr,
                        "[%s] epoch %d: train loss %.4f, test acc %.2f%%, "
                        "%.1fs\n",
                        cfg->name, e->epoch, e->train_loss,
                        100.0 * e->test_acc, e->seconds);
        }
        if (stop)
            break; /* diverged; or max_steps: the period stays open for a resume */
        rs.step_in_epoch = 0;
        rs.loss_sum = 0.0;
        rs.loss_n = 0;
        rs.seconds = 0.0;
        memset(rs.g_stalled, 0, sizeof rs.g_stalled);
        memset(rs.g_considered, 0, sizeof rs.g_considered);
        net->ops->reset_stats(net);
    }
    if (stop == 1)
        rs.seconds = 0.0;
    res->seconds = now_s() - t_run;
    res->step_seconds =
        rs.step > start_step ? t_train / (double)(rs.step - start_step) : 0.0;
    res->tokens_per_step = (double)feed->B * (double)feed->T;
    res->ngroups = net->ngroups;
    memcpy(res->group, net->group, sizeof res->group);
    if (cfg->save && res->diverged_step == 0 &&
        ckpt_save(cfg->save, sig, net, &o, &rs, err))
        goto done;
    rc = 0;
done:
    free(segs);
    agt_optim_free(&o);
    if (rc)
        agt_result_free(res);
    return rc;
}

int agt_run(agt_result *res, const agt_config *cfg, const agt_dataset *train,
            const agt_dataset *test, agt_err *err)
{
    memset(res, 0, sizeof *res);
    if (cfg->save && agt_check_save(cfg->save, err))
        return -1;
    agt_feed feed;
    if (agt_feed_idx(&feed, train, test, cfg->batch, cfg->seed, err))
        return -1;
    agt_net net;
    if (agt_net_mlp(&net, cfg, err)) {
        agt_feed_free(&feed);
        return -1;
    }
    int rc = agt_run_net(res, cfg, &net, &feed, err);
    agt_net_free(&net);
    agt_feed_free(&feed);
    return rc;
}

/* ------------------------------------------------------------ the pool --- */

typedef struct pool {
    int (*fn)(void *ctx, int i);
    void *ctx;
    int n, next, done;
    int *failed;
    const char *label;
    int quiet;
    double t0;
    int jobs;
    pthread_mutex_t lock;
} pool;

static void *pool_worker(void *arg)
{
    pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        int i = p->next < p->n ? p->next++ : -1;
        pthread_mutex_unlock(&p->lock);
        if (i < 0)
            return NULL;
        int bad = p->fn(p->ctx, i) != 0;
        pthread_mutex_lock(&p->lock);
        p->failed[i] = bad;
        p->done++;
        if (!p->quiet && p->label) {
            /* the runs left at the mean rate of the finished ones */
            const double el = now_s() - p->t0;
            fprintf(stderr, "[%s] %d/%d runs done, %.0fs so far, ETA %.0fs\n",
                    p->label, p->done, p->n, el,
                    el / p->done * (double)(p->n - p->done));
        }
        pthread_mutex_unlock(&p->lock);
    }
}

int agt_run_pool(int n, int jobs, int (*fn)(void *ctx, int i), void *ctx,
                 int *failed, const char *label, int quiet)
{
    if (jobs > n)
        jobs = n;
    if (jobs > 64)
        jobs = 64;
    if (jobs < 1)
        jobs = 1;
    pool p = {fn, ctx, n, 0, 0, failed, label, quiet, now_s(), jobs,
              PTHREAD_MUTEX_INITIALIZER};
    pthread_t th[64];
    int started = 0;
    for (int j = 1; j < jobs; j++) {
        if (pthread_create(&th[started], NULL, pool_worker, &p) != 0)
            break;
        started++;
    }
    p.jobs = started + 1;
    pool_worker(&p);
    for (int j = 0; j < started; j++)
        pthread_join(th[j], NULL);
    return started + 1;
}
