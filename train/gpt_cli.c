/* SPDX-License-Identifier: MIT */
/*
 * gpt_cli.c — `altgrad gpt`: train the bench's GPT on byte-level text in
 * one format setting, log train/val loss and the quantizers' counters per
 * layer type, and compare the val loss with the unigram (byte-frequency)
 * baseline.
 */
#define _POSIX_C_SOURCE 200809L
#include "gpt.h"

#include <errno.h>
#include <omp.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const usage_gpt =
    "usage: altgrad gpt [options]\n"
    "Train a small GPT (nanoGPT layout) on byte-level text.\n"
    "  --data FILE        UTF-8 text (default: the King James Bible of\n"
    "                     Debian's bible-kjv, `bible gen1:1-rev22:21`)\n"
    "  --steps N          training steps (default 200)\n"
    "  --batch B          sequences per step (default 16)\n"
    "  --layers N --heads N --embd N --ctx N   model size (2 4 128 64)\n"
    "  --lr X --wd X      AdamW (default 1e-3, 0.1; 2-D tensors decayed)\n"
    "  --precondition P   none (AdamW), grad or update (manifold AdamW:\n"
    "                     AltGrad's ManifoldAdamW modes; update: lr in grid\n"
    "                     steps)\n"
    "  --mantissa-bits M  the manifold's stiffness 2^(floor(log2|w|) - M)\n"
    "                     (default 2)\n"
    "  --format SPEC      weights and inputs of every linear (default fp32)\n"
    "  --attn SPEC --mlp SPEC --head SPEC   the same per layer type\n"
    "                     (attn: c_attn and attn.c_proj; mlp: c_fc and\n"
    "                     mlp.c_proj; head: lm_head), after --format\n"
    "  --grad-format SPEC output gradients of every linear (default fp32)\n"
    "  --recipe fp8       float8_e4m3fn weights/inputs, float8_e5m2 gradients\n"
    "  --stochastic-grads stochastic rounding of the gradient quantizers\n"
    "  --history N        amax window of the delayed scaling (default 16)\n"
    "  --eval-every N     validation every N steps (default 50)\n"
    "  --eval-batches N   validation batches (default 8)\n"
    "  --seed N           weights and data order (default 1)\n"
    "  --threads N        OpenMP threads (default: all)\n"
    "  --csv FILE         per-evaluation log\n"
    "  --quiet            no progress on stderr\n"
    "Exit status: 0 ok (a diverged run is a result), 1 usage, 2 runtime error.\n";

static int bad(const char *fmt, const char *arg)
{
    fprintf(stderr, "altgrad gpt: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(altgrad gpt --help for the options)\n");
    return 1;
}

static int num(const char *s, double lo, double hi, double *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int check_spec(const char *spec)
{
    if (!strcmp(spec, "fp32") || !strcmp(spec, "f32") ||
        !strcmp(spec, "float32") || !strcmp(spec, "none"))
        return 0;
    ag_format f;
    char msg[200];
    if (ag_format_parse(&f, spec, msg, sizeof msg) != AG_OK) {
        fprintf(stderr, "altgrad gpt: format '%s': %s\n", spec, msg);
        return -1;
    }
    return 0;
}

static double evaluate(agt_gpt *m, const agt_text *tx, int B, int T,
                       int nb, uint8_t *tok, uint8_t *tgt, agt_err *err,
                       int *fail)
{
    double s = 0;
    for (int k = 0; k < nb; k++) {
        agt_text_batch(tok, tgt, tx, 0, 0, (uint64_t)k, B, T);
        double l;
        if (agt_gpt_forward(m, tok, tgt, B, T, 0, &l, err)) {
            *fail = 1;
            return NAN;
        }
        s += l;
    }
    return s / nb;
}

int ag_gpt_main(int argc, char **argv)
{
    agt_gpt_cfg c;
    agt_gpt_cfg_default(&c);
    const char *data = NULL, *csv = NULL;
    const char *fmt_all = NULL, *fmt_attn = NULL, *fmt_mlp = NULL,
               *fmt_head = NULL, *fmt_grad = NULL;
    double steps = 200, batch = 16, lr = 1e-3, wd = 0.1, seed = 1,
           eval_every = 50, eval_batches = 8, threads = 0, hist = 16;
    int quiet = 0, pre = AG_PRECONDITION_NONE;
    double mbits = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x;
#define NUM(name, lo, hi, dst)                                              \
    if (!strcmp(a, name)) {                                                 \
        if (num(v, lo, hi, &x))                                             \
            return bad("%s needs a number in range", name);                 \
        dst = x;                                                            \
        i++;                                                                \
        continue;                                                           \
    }
#define STR(name, dst)                                                      \
    if (!strcmp(a, name)) {                                                 \
        if (!v)                                                             \
            return bad("%s needs a value", name);                           \
        dst = v;                                                            \
        i++;                                                                \
        continue;                                                           \
    }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_gpt, stdout);
            return 0;
        }
        if (!strcmp(a, "--quiet")) { quiet = 1; continue; }
        if (!strcmp(a, "--stochastic-grads")) { c.qc.stochastic_grads = 1; continue; }
        NUM("--steps", 1, 1e7, steps)
        NUM("--batch", 1, 4096, batch)
        NUM("--layers", 1, 64, c.n_layer)
        NUM("--heads", 1, 1024, c.n_head)
        NUM("--embd", 1, 8192, c.n_embd)
        NUM("--ctx", 1, 4096, c.block_size)
        NUM("--lr", 0, 10, lr)
        NUM("--wd", 0, 10, wd)
        NUM("--seed", 0, 1e15, seed)
        NUM("--eval-every", 1, 1e7, eval_every)
        NUM("--eval-batches", 1, 1e4, eval_batches)
        NUM("--threads", 1, 1024, threads)
        NUM("--history", 1, AGT_HIST_MAX, hist)
        NUM("--mantissa-bits", 0, 23, mbits)
        if (!strcmp(a, "--precondition")) {
            char msg[200];
            if (!v || ag_option_parse(&pre, AG_OPTION_PRECONDITION, v, msg,
                                      sizeof msg) != AG_OK)
                return bad("--precondition: %s", v ? msg : "needs a value");
            i++;
            continue;
        }
        STR("--data", data)
        STR("--csv", csv)
        STR("--format", fmt_all)
        STR("--attn", fmt_attn)
        STR("--mlp", fmt_mlp)
        STR("--head", fmt_head)
        STR("--grad-format", fmt_grad)
        if (!strcmp(a, "--recipe")) {
            if (!v || strcmp(v, "fp8"))
                return bad("--recipe: the recipe is 'fp8' (got '%s')",
                           v ? v : "");
            fmt_all = "float8_e4m3fn";
            fmt_grad = "float8_e5m2";
            i++;
            continue;
        }
#undef NUM
#undef STR
        return bad("unknown option '%s'", a);
    }
    if ((int)c.n_embd % (int)c.n_head != 0)
        return bad("--embd must be a multiple of --heads%s", "");
    const char *specs[] = {fmt_all, fmt_attn, fmt_mlp, fmt_head, fmt_grad};
    for (size_t k = 0; k < sizeof specs / sizeof *specs; k++)
        if (specs[k] && check_spec(specs[k]))
            return 1;
    if (fmt_all) agt_gpt_cfg_set(&c, 0x1fu, -1, fmt_all);
    if (fmt_attn) agt_gpt_cfg_set(&c, 1u << AGT_LT_QKV | 1u << AGT_LT_PROJ, -1, fmt_attn);
    if (fmt_mlp) agt_gpt_cfg_set(&c, 1u << AGT_LT_FC | 1u << AGT_LT_MPROJ, -1, fmt_mlp);
    if (fmt_head) agt_gpt_cfg_set(&c, 1u << AGT_LT_HEAD, -1, fmt_head);
    if (fmt_grad) agt_gpt_cfg_set(&c, 0x1fu, AGT_QG, fmt_grad);
    c.qc.hist_len = (size_t)hist;
    c.qc.seed = (uint64_t)seed;
    c.qc.threads = threads > 0 ? (int)threads : 0;
    if (threads > 0) {
        /* the ops' OpenMP threads (OpenBLAS reads OPENBLAS_NUM_THREADS) */
        omp_set_num_threads((int)threads);
    }

    agt_err err;
    agt_text tx;
    if (agt_text_load(&tx, data, 0.1, &err)) {
        fprintf(stderr, "altgrad gpt: %s\n", err.msg);
        return 2;
    }
    const int B = (int)batch, T = c.block_size;
    agt_gpt m;
    agt_gpt_optim o;
    if (agt_gpt_init(&m, &c, B, (uint64_t)seed, &err)) {
        fprintf(stderr, "altgrad gpt: %s\n", err.msg);
        agt_text_free(&tx);
        return 2;
    }
    if (agt_gpt_optim_init(&o, &m, lr, wd, (ag_precondition)pre,
                           (int)mbits, &err)) {
        fprintf(stderr, "altgrad gpt: %s\n", err.msg);
        agt_gpt_free(&m);
        agt_text_free(&tx);
        return 2;
    }
    FILE *log = NULL;
    if (csv && !(log = fopen(csv, "w"))) {
        fprintf(stderr, "altgrad gpt: cannot write %s\n", csv);
        agt_gpt_optim_free(&o);
        agt_gpt_free(&m);
        agt_text_free(&tx);
        return 2;
    }
    if (log) {
        fprintf(log, "step,train_loss,val_loss,seconds");
        for (int t = 0; t < AGT_NLT; t++)
            fprintf(log, ",%s_overflow,%s_underflow", agt_layer_type_names[t],
                    agt_layer_type_names[t]);
        fprintf(log, "\n");
    }
    uint8_t *tok = malloc((size_t)B * T), *tgt = malloc((size_t)B * T);
    const double unigram = agt_text_unigram_loss(&tx);
    int rc = tok && tgt ? 0 : 2;
    long diverged = 0;
    double train_sum = 0, val = NAN, t0 = now(), tstep = 0;
    long nsum = 0;
    const long nsteps = (long)steps;
    for (long s = 1; s <= nsteps && rc == 0; s++) {
        double ts = now(), loss;
        agt_text_batch(tok, tgt, &tx, 1, (uint64_t)seed, (uint64_t)s, B, T);
        memset(m.grads, 0, m.nparams * sizeof(float));
        if (agt_gpt_forward(&m, tok, tgt, B, T, 1, &loss, &err) ||
            agt_gpt_backward(&m, tgt, 1, &err)) {
            rc = 2;
            break;
        }
        if (!isfinite(loss)) {
            diverged = s;
            break;
        }
        if (agt_gpt_optim_step(&o, &m, &err)) {
            rc = 2;
            break;
        }
        tstep += now() - ts;
        train_sum += loss;
        nsum++;
        if (s % (long)eval_every == 0 || s == nsteps) {
            int fail = 0;
            val = evaluate(&m, &tx, B, T, (int)eval_batches, tok, tgt, &err,
                           &fail);
            if (fail) {
                rc = 2;
                break;
            }
            if (log) {
                fprintf(log, "%ld,%.6f,%.6f,%.3f", s, train_sum / nsum, val,
                        now() - t0);
                for (int t = 0; t < AGT_NLT; t++) {
                    ag_stats st;
                    uint64_t ov = 0, un = 0, tot = 0;
                    for (int k = 0; k < AGT_NQ; k++) {
                        agt_gpt_stats(&m, t, k, &st);
                        ov += st.overflow;
                        un += st.underflow;
                        tot += st.total;
                    }
                    fprintf(log, ",%.6g,%.6g", tot ? (double)ov / (double)tot : 0.0,
                            tot ? (double)un / (double)tot : 0.0);
                }
                fprintf(log, "\n");
            }
            agt_gpt_reset_stats(&m);
            if (!quiet) {
                double el = now() - t0;
                fprintf(stderr, "step %ld/%ld train %.4f val %.4f  %.1fs, ETA %.0fs\n",
                        s, nsteps, train_sum / nsum, val, el,
                        el / (double)s * (double)(nsteps - s));
            }
            train_sum = 0;
            nsum = 0;
        }
    }
    if (rc)
        fprintf(stderr, "altgrad gpt: %s\n", err.msg);
    else {
        long done = diverged ? diverged - 1 : nsteps;
        printf("gpt %d layers x %d wide, %d heads, context %d, %zu parameters; "
               "%ld steps of %d x %d bytes\n",
               c.n_layer, c.n_embd, c.n_head, T, m.nparams, done, B, T);
        if (diverged)
            printf("diverged at step %ld (non-finite loss)\n", diverged);
        printf("optimizer %s: %llu updates, %.4f of them stalled\n",
               ag_option_name(AG_OPTION_PRECONDITION, pre),
               (unsigned long long)o.counts.updates,
               o.counts.updates ? (double)o.counts.stalls / (double)o.counts.updates : 0.0);
        printf("val loss %.4f nats/byte (unigram baseline %.4f); %.0f tokens/s "
               "(training steps)\n",
               val, unigram, done > 0 && tstep > 0 ? (double)done * B * T / tstep : 0.0);
    }
    if (log)
        fclose(log);
    free(tok);
    free(tgt);
    agt_gpt_optim_free(&o);
    agt_gpt_free(&m);
    agt_text_free(&tx);
    return rc;
}
