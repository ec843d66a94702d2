/* SPDX-License-Identifier: MIT */
/*
 * test_gpt_run.c — the GPT through the bench's run loop: checkpoints and
 * resume bit for bit (every optimizer, quantized with stochastic
 * gradients, a resume inside a validation period), the same bytes at 1
 * and 2 threads, a checkpoint of other options or corrupt bytes refused
 * with the option or the fault named, the grid optimizer keeping quantized
 * weights on their grid, a diverged run recorded as a result, and the
 * matrix's report, CSV and plots written from the runs' numbers.
 */
#include "train_test_util.h"
#include "gpt.h"

#include <math.h>
#include <omp.h>

static char dir[128];

/* A text of 24 KiB: sentences drawn from a small vocabulary. */
static int write_text(const char *path)
{
    static const char *const words[] = {"the", "grid", "of", "a", "format",
                                        "rounds", "ties", "to", "even",
                                        "and", "weights", "move", "slowly"};
    char *buf = malloc(24576);
    if (!buf)
        return -1;
    uint64_t s = 7;
    size_t n = 0;
    while (n < 24000) {
        const char *w = words[agt_splitmix64(&s) % 13];
        size_t l = strlen(w);
        memcpy(buf + n, w, l);
        n += l;
        buf[n++] = agt_splitmix64(&s) % 7 == 0 ? '.' : ' ';
    }
    int rc = tt_write(path, buf, n, 0);
    free(buf);
    return rc;
}

static void tiny(agt_config *c, const char *text)
{
    agt_config_default_gpt(c);
    c->dims[0] = 1;
    c->dims[1] = 2;
    c->dims[2] = 16;
    c->dims[3] = 8;
    c->batch = 2;
    c->steps = 6;
    c->eval_every = 2;
    c->eval_batches = 2;
    c->quiet = 1;
    c->threads = 1;
    c->text_path = text;
    for (int t = 0; t < AGT_NLT; t++) {
        snprintf(c->fmt[t].spec[AGT_QW], 48, "E3M4");
        snprintf(c->fmt[t].spec[AGT_QX], 48, "E3M4");
        snprintf(c->fmt[t].spec[AGT_QG], 48, "E5M2");
    }
    c->stochastic_grads = 1;
    snprintf(c->name, sizeof c->name, "tiny");
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc(len > 0 ? (size_t)len : 1);
    *n = p && fread(p, 1, (size_t)len, f) == (size_t)len ? (size_t)len : 0;
    fclose(f);
    return p;
}

static int same_file(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *pa = slurp(a, &na), *pb = slurp(b, &nb);
    int same = pa && pb && na == nb && na > 0 && !memcmp(pa, pb, na);
    free(pa);
    free(pb);
    return same;
}

static int same_records(const agt_epoch *a, const agt_epoch *b)
{
    return a->step == b->step &&
           !memcmp(&a->train_loss, &b->train_loss, sizeof(double)) &&
           !memcmp(&a->test_loss, &b->test_loss, sizeof(double)) &&
           !memcmp(a->q, b->q, sizeof a->q) && a->stalled == b->stalled &&
           a->considered == b->considered;
}

static void resume_case(const agt_text *tx, const char *text, agt_optkind k,
                        ag_precondition pre)
{
    agt_config c;
    tiny(&c, text);
    c.optimizer = k;
    c.precondition = pre;
    char full[256], part[256], resumed[256];
    snprintf(full, sizeof full, "%s/full.ck", dir);
    snprintf(part, sizeof part, "%s/part.ck", dir);
    snprintf(resumed, sizeof resumed, "%s/resumed.ck", dir);
    agt_result a, b, r;
    agt_err err;
    c.save = full;
    int rc = agt_run_gpt(&a, &c, tx, 0.0, &err);
    AG_CHECK(rc == 0, "optimizer %d/%d: full run: %s", k, pre, err.msg);
    if (rc)
        return;
    /* stop inside the second period (step 3 of 6) and resume */
    c.save = part;
    c.max_steps = 3;
    rc = agt_run_gpt(&b, &c, tx, 0.0, &err);
    AG_CHECK(rc == 0 && b.nepochs == 2 && b.epochs[1].partial_steps == 1,
             "optimizer %d/%d: partial run (%s)", k, pre, rc ? err.msg : "");
    c.max_steps = 0;
    c.resume = part;
    c.save = resumed;
    rc = agt_run_gpt(&r, &c, tx, 0.0, &err);
    AG_CHECK(rc == 0, "optimizer %d/%d: resume: %s", k, pre, err.msg);
    if (rc == 0) {
        AG_CHECK(r.epochs_before == 1 && r.nepochs == 2 &&
                     same_records(&r.epochs[0], &a.epochs[1]) &&
                     same_records(&r.epochs[1], &a.epochs[2]),
                 "optimizer %d/%d: the resumed run's records are the "
                 "uninterrupted run's", k, pre);
        AG_CHECK(same_file(full, resumed),
                 "optimizer %d/%d: the final checkpoints are the same bytes",
                 k, pre);
        agt_result_free(&r);
    }
    agt_result_free(&a);
    agt_result_free(&b);
}

static void threads_case(const agt_text *tx, const char *text)
{
    char p1[256], p2[256];
    snprintf(p1, sizeof p1, "%s/t1.ck", dir);
    snprintf(p2, sizeof p2, "%s/t2.ck", dir);
    for (int t = 1; t <= 2; t++) {
        agt_config c;
        tiny(&c, text);
        c.threads = t;
        c.save = t == 1 ? p1 : p2;
        agt_result r;
        agt_err err;
        AG_CHECK(agt_run_gpt(&r, &c, tx, 0.0, &err) == 0, "threads %d: %s", t,
                 err.msg);
        agt_result_free(&r);
    }
    omp_set_num_threads(1);
    AG_CHECK(same_file(p1, p2), "1 and 2 threads: the same checkpoint bytes");
}

static void refusal_case(const agt_text *tx, const char *text)
{
    char ck[256];
    snprintf(ck, sizeof ck, "%s/refuse.ck", dir);
    agt_config c;
    agt_result r;
    agt_err err;
    tiny(&c, text);
    c.save = ck;
    AG_CHECK(agt_run_gpt(&r, &c, tx, 0.0, &err) == 0, "refusals: %s", err.msg);
    agt_result_free(&r);
    tiny(&c, text);
    c.steps = 8;
    c.resume = ck;
    c.lr = 2e-3f;
    AG_CHECK(agt_run_gpt(&r, &c, tx, 0.0, &err) != 0 &&
                 strstr(err.msg, "different --lr"),
             "a checkpoint of another --lr is refused naming it (%s)", err.msg);
    tiny(&c, text);
    c.steps = 8;
    c.resume = ck;
    snprintf(c.fmt[AGT_LT_FC].spec[AGT_QW], 48, "E5M2");
    AG_CHECK(agt_run_gpt(&r, &c, tx, 0.0, &err) != 0 &&
                 strstr(err.msg, "different the layer formats"),
             "a checkpoint of other formats is refused (%s)", err.msg);
    tiny(&c, text);
    c.resume = ck;
    AG_CHECK(agt_run_gpt(&r, &c, tx, 0.0, &err) != 0 &&
                 strstr(err.msg, "ask for more with --steps"),
             "a finished checkpoint asks for more steps (%s)", err.msg);
    /* every 97th byte flipped in turn: refused, never a crash */
    size_t n;
    unsigned char *p = slurp(ck, &n);
    char bad[256];
    snprintf(bad, sizeof bad, "%s/bad.ck", dir);
    int refused = 0, tried = 0;
    for (size_t at = 0; p && at < n; at += 97) {
        p[at] ^= 0x5a;
        tt_write(bad, p, n, 0);
        p[at] ^= 0x5a;
        tiny(&c, text);
        c.steps = 8;
        c.resume = bad;
        tried++;
        if (agt_run_gpt(&r, &c, tx, 0.0, &err) != 0)
            refused++;
        else
            agt_result_free(&r);
    }
    AG_CHECK(tried > 10 && refused == tried,
             "corrupt checkpoints refused: %d of %d", refused, tried);
    free(p);
}

static void grid_case(const agt_text *tx)
{
    agt_config c;
    tiny(&c, NULL);
    c.optimizer = AGT_GRID;
    agt_feed feed;
    agt_net net;
    agt_err err;
    agt_result r;
    int rc = agt_feed_text(&feed, tx, c.batch, c.dims[3], c.eval_every,
                           c.eval_batches, c.seed, &err);
    rc = rc || agt_net_gpt(&net, &c, &err);
    AG_CHECK(rc == 0, "grid: setup: %s", err.msg);
    if (rc)
        return;
    rc = agt_run_net(&r, &c, &net, &feed, &err);
    AG_CHECK(rc == 0 && r.nepochs == 3, "grid: run: %s", err.msg);
    const agt_gpt *m = net.self;
    int i = agt_gpt_find(m, "transformer.h.0.mlp.c_fc.weight");
    const agt_quant *qw = &m->lin[AGT_LT_FC].q[AGT_QW];
    const float scale = ag_scaler_last_scale(qw->sc);
    float *y = malloc(m->tensors[i].n * sizeof *y);
    const float *w = m->params + m->tensors[i].off;
    /* the grid of the last forward's scale: the step moved on it */
    int on = y && ag_quantize(y, w, m->tensors[i].n, qw->fmt, scale, NULL,
                              NULL) == AG_OK &&
             !memcmp(y, w, m->tensors[i].n * sizeof *y);
    AG_CHECK(on, "grid: quantized weights stay on their grid");
    AG_CHECK(rc == 0 && r.epochs[2].considered > 0 &&
                 r.epochs[2].stalled < r.epochs[2].considered,
             "grid: updates counted, some moved");
    free(y);
    if (rc == 0)
        agt_result_free(&r);
    agt_net_free(&net);
    agt_feed_free(&feed);
}

/* A run whose first forward is NaN: a result (step 1), not an error. */
static int diverged_run(const agt_text *tx, agt_result *r)
{
    agt_config c;
    tiny(&c, NULL);
    snprintf(c.name, sizeof c.name, "nan-adamw");
    agt_feed feed;
    agt_net net;
    agt_err err;
    int rc = agt_feed_text(&feed, tx, c.batch, c.dims[3], c.eval_every,
                           c.eval_batches, c.seed, &err) ||
             agt_net_gpt(&net, &c, &err);
    if (rc == 0) {
        net.params[0] = NAN;
        rc = agt_run_net(r, &c, &net, &feed, &err);
        agt_net_free(&net);
    }
    agt_feed_free(&feed);
    AG_CHECK(rc == 0 && r->diverged_step == 1 && r->nepochs == 1,
             "a NaN weight: diverged at step 1, recorded (%s)",
             rc ? err.msg : "");
    return rc;
}

static int contains(const char *path, const char *s)
{
    size_t n;
    unsigned char *p = slurp(path, &n);
    int yes = 0;
    if (p) {
        char *t = malloc(n + 1);
        if (t) {
            memcpy(t, p, n);
            t[n] = 0;
            yes = strstr(t, s) != NULL;
            free(t);
        }
    }
    free(p);
    return yes;
}

static void matrix_case(const agt_text *tx)
{
    /* formats fp32, E3M4, NaN-start under adamw; the same under manifold */
    static const char entries[6][100] = {"fp32", "E3M4", "nan",
                                         "fp32", "E3M4", "nan"};
    agt_result runs[6];
    memset(runs, 0, sizeof runs);
    int ok = 1;
    for (int i = 0; i < 6 && ok; i++) {
        agt_config c;
        tiny(&c, NULL);
        c.precondition = i < 3 ? AG_PRECONDITION_NONE : AG_PRECONDITION_GRAD;
        agt_err err;
        if (i % 3 == 2) {
            ok = diverged_run(tx, &runs[i]) == 0;
            runs[i].cfg.precondition = c.precondition;
            continue;
        }
        if (i % 3 == 0)
            for (int t = 0; t < AGT_NLT; t++)
                for (int k = 0; k < AGT_NQ; k++)
                    snprintf(c.fmt[t].spec[k], 48, "fp32");
        snprintf(c.name, sizeof c.name, "%.8s-%s", entries[i],
                 i < 3 ? "adamw" : "manifold");
        ok = agt_run_gpt(&runs[i], &c, tx, 0.0, &err) == 0;
        AG_CHECK(ok, "matrix run %d: %s", i, err.msg);
    }
    if (!ok)
        return;
    agt_matrix mx = {runs, 6, 3, 2, 0, entries, agt_text_unigram_loss(tx),
                     tx->ntrain, tx->n - tx->ntrain, NULL};
    char path[256];
    agt_err err;
    snprintf(path, sizeof path, "%s/report.md", dir);
    AG_CHECK(agt_matrix_write_report(&mx, path, &err) == 0, "report: %s",
             err.msg);
    /* the lowest final validation loss, found here from the records */
    int best = -1;
    for (int i = 0; i < 6; i++) {
        double v = runs[i].epochs[runs[i].nepochs - 1].test_loss;
        if (!runs[i].diverged_step &&
            (best < 0 ||
             v < runs[best].epochs[runs[best].nepochs - 1].test_loss))
            best = i;
    }
    char want[160];
    snprintf(want, sizeof want, "Lowest validation loss: **%s**",
             runs[best].cfg.name);
    AG_CHECK(contains(path, want), "report names the best run (%s)", want);
    snprintf(want, sizeof want, "%.4f nats/byte after 6 steps",
             runs[best].epochs[2].test_loss);
    AG_CHECK(contains(path, want), "report gives its loss (%s)", want);
    AG_CHECK(contains(path, "### nan-adamw: diverged") &&
                 contains(path, "not finite at step 1 of 6") &&
                 contains(path, "nan diverged at step 1"),
             "report: the diverged run, its step");
    AG_CHECK(contains(path, "| E3M4 |") && contains(path, "| adamw | manifold |"),
             "report: the table of formats x optimizers");
    snprintf(path, sizeof path, "%s/matrix.csv", dir);
    AG_CHECK(agt_matrix_write_csv(&mx, path, &err) == 0 &&
                 contains(path, "nan-adamw,nan,adamw,1,nan,") &&
                 contains(path, ",diverged,"),
             "matrix.csv: the diverged row");
    snprintf(path, sizeof path, "%s/val_loss.svg", dir);
    AG_CHECK(agt_matrix_write_loss_svg(&mx, path, &err) == 0 &&
                 contains(path, "validation loss, adamw") &&
                 contains(path, "validation loss, manifold") &&
                 contains(path, "</svg>"),
             "val_loss.svg: a panel per optimizer");
    snprintf(path, sizeof path, "%s/rates.svg", dir);
    AG_CHECK(agt_matrix_write_rates_svg(&mx, path, &err) == 0 &&
                 contains(path, "lm_head") && contains(path, "</svg>"),
             "rates.svg: the layer types");
    snprintf(path, sizeof path, "%s/E3M4-adamw.csv", dir);
    AG_CHECK(agt_gpt_write_csv(&runs[1], path, &err) == 0 &&
                 contains(path, "c_fc_w_format") &&
                 contains(path, "lm_head_eff_rank"),
             "run CSV: per layer type and role, ranks");
    snprintf(path, sizeof path, "%s/no-such-dir/report.md", dir);
    AG_CHECK(agt_matrix_write_report(&mx, path, &err) != 0 &&
                 strstr(err.msg, "cannot create"),
             "report into a missing directory: an error (%s)", err.msg);
    for (int i = 0; i < 6; i++)
        agt_result_free(&runs[i]);
}

/* The verdicts on stdout are the report's: with a seed spread of 5 %, a
 * run 2.5 % above float32 is a tie everywhere, not "degraded" on stdout
 * alone (the table once judged against 2 % whatever the spread). */
static void table_case(void)
{
    static const char entries[3][100] = {"fp32", "E3M4", "fp32 (seed 2)"};
    static const double val[3] = {2.0, 2.05, 2.1};
    agt_result runs[3];
    agt_epoch ep[3];
    memset(runs, 0, sizeof runs);
    memset(ep, 0, sizeof ep);
    for (int i = 0; i < 3; i++) {
        agt_config_default_gpt(&runs[i].cfg);
        runs[i].cfg.seed = i == 2 ? 2 : 1;
        snprintf(runs[i].cfg.name, sizeof runs[i].cfg.name, "%s",
                 i == 0 ? "fp32-adamw" : i == 1 ? "E3M4-adamw" : "fp32-seed2-adamw");
        if (i == 1)
            for (int t = 0; t < AGT_NLT; t++) {
                snprintf(runs[i].cfg.fmt[t].spec[AGT_QW], 48, "E3M4");
                snprintf(runs[i].cfg.fmt[t].spec[AGT_QX], 48, "E3M4");
            }
        runs[i].ngroups = AGT_NLT;
        ep[i].epoch = 1;
        ep[i].step = 200;
        ep[i].train_loss = val[i];
        ep[i].test_loss = val[i];
        runs[i].epochs = &ep[i];
        runs[i].nepochs = 1;
    }
    agt_matrix mx = {runs, 3, 2, 1, 1, entries, 3.0, 1000, 100, NULL};
    char path[256];
    agt_err err;
    snprintf(path, sizeof path, "%s/table.txt", dir);
    FILE *f = fopen(path, "w");
    if (f) {
        agt_gpt_print_table(f, &mx);
        fclose(f);
    }
    AG_CHECK(contains(path, "E3M4-adamw") && contains(path, "+2.50%") &&
                 !contains(path, "degraded"),
             "table: a run within the seed spread is not degraded");
    snprintf(path, sizeof path, "%s/tie.csv", dir);
    AG_CHECK(agt_matrix_write_csv(&mx, path, &err) == 0 &&
                 contains(path, "E3M4-adamw,E3M4,adamw,200,2.05,") &&
                 contains(path, ",ok,3\n"),
             "matrix.csv: the same verdict");
}

static void ranks_case(void)
{
    /* diag(3, 2, 1, 0) in a 4 x 6 matrix: sigma = 3 2 1 0 */
    float w[24] = {0};
    w[0] = 3;
    w[7] = 2;
    w[14] = 1;
    double st, ef;
    agt_matrix_ranks(w, 4, 6, &st, &ef);
    const double p[3] = {0.5, 1.0 / 3, 1.0 / 6};
    double h = 0;
    for (int i = 0; i < 3; i++)
        h -= p[i] * log(p[i]);
    AG_CHECK(fabs(st - 14.0 / 9.0) < 1e-9 && fabs(ef - exp(h)) < 1e-9,
             "ranks of diag(3,2,1,0): stable %.12g effective %.12g", st, ef);
    double st2, ef2;
    float wt[24];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 6; j++)
            wt[j * 4 + i] = w[i * 6 + j];
    agt_matrix_ranks(wt, 6, 4, &st2, &ef2);
    AG_CHECK(fabs(st2 - st) < 1e-9 && fabs(ef2 - ef) < 1e-9,
             "ranks of the transpose agree");
    w[5] = NAN;
    agt_matrix_ranks(w, 4, 6, &st, &ef);
    AG_CHECK(isnan(st) && isnan(ef), "a NaN weight: ranks NaN");
}

int main(void)
{
    if (tt_tmpdir(dir, sizeof dir)) {
        AG_CHECK(0, "mkdtemp");
        return ag_test_summary("test_gpt_run");
    }
    char text[256];
    snprintf(text, sizeof text, "%s/text.txt", dir);
    agt_text tx;
    agt_err err;
    int rc = write_text(text) || agt_text_load(&tx, text, 0.1, &err);
    AG_CHECK(rc == 0, "the test text: %s", err.msg);
    if (rc)
        return ag_test_summary("test_gpt_run");
    omp_set_num_threads(1);
    ranks_case();
    resume_case(&tx, text, AGT_ADAMW, AG_PRECONDITION_NONE);
    resume_case(&tx, text, AGT_ADAMW, AG_PRECONDITION_GRAD);
    resume_case(&tx, text, AGT_ADAMW, AG_PRECONDITION_UPDATE);
    resume_case(&tx, text, AGT_GRID, AG_PRECONDITION_NONE);
    threads_case(&tx, text);
    refusal_case(&tx, text);
    grid_case(&tx);
    matrix_case(&tx);
    table_case();
    agt_text_free(&tx);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        AG_CHECK(0, "cleanup %s", dir);
    return ag_test_summary("test_gpt_run");
}
