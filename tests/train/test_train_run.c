/* SPDX-License-Identifier: MIT */
/*
 * test_train_run.c — whole runs on a small synthetic IDX data set the test
 * writes itself: the same command gives the same numbers; --threads does not
 * change them; a run resumed from a checkpoint (at an epoch boundary and in
 * the middle of an epoch) matches an uninterrupted one bit for bit;
 * corrupt or mismatched checkpoints are clear errors; a diverging run is
 * reported with its step; the CLI entry points work end to end and reject
 * bad options.
 */
#include "train_test_util.h"

#include <math.h>
#include <sys/stat.h>

static char dir[64];
static agt_dataset tr, te;

static int same_d(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

/* Every number of two results, except wall times. */
static int same_results(const agt_result *a, const agt_result *b, int a_from,
                        int b_from, int count)
{
    if (a->nepochs < a_from + count || b->nepochs < b_from + count)
        return 0;
    for (int i = 0; i < count; i++) {
        const agt_epoch *x = &a->epochs[a_from + i], *y = &b->epochs[b_from + i];
        if (x->epoch != y->epoch || x->step != y->step ||
            !same_d(x->train_loss, y->train_loss) ||
            !same_d(x->test_loss, y->test_loss) || !same_d(x->test_acc, y->test_acc) ||
            memcmp(x->q, y->q, sizeof x->q) != 0 || x->stalled != y->stalled ||
            x->considered != y->considered)
            return 0;
    }
    return a->diverged_step == b->diverged_step;
}

/* The run-level totals of two results agree (counters, epochs, last
 * epoch's loss and accuracy; not wall times). */
static int same_totals(const agt_result *a, const agt_result *b)
{
    const agt_totals x = agt_result_totals(a), y = agt_result_totals(b);
    return memcmp(&x.c, &y.c, sizeof x.c) == 0 && x.epochs == y.epochs &&
           same_d(x.acc, y.acc) && same_d(x.loss, y.loss);
}

static int same_files(const char *p, const char *q)
{
    FILE *f = fopen(p, "rb"), *g = fopen(q, "rb");
    int same = f && g;
    while (same) {
        int c = fgetc(f), d = fgetc(g);
        if (c != d)
            same = 0;
        if (c == EOF)
            break;
    }
    if (f) fclose(f);
    if (g) fclose(g);
    return same;
}

static void base_cfg(agt_config *c, const char *fmt, const char *gfmt)
{
    agt_config_default(c);
    c->epochs = 2;
    c->batch = 32;
    c->quiet = 1;
    c->seed = 7;
    for (int l = 0; l < c->nlin; l++) {
        snprintf(c->fmt[l].spec[AGT_QW], 48, "%s", fmt);
        snprintf(c->fmt[l].spec[AGT_QX], 48, "%s", fmt);
        snprintf(c->fmt[l].spec[AGT_QG], 48, "%s", gfmt);
    }
}

static int run(agt_result *r, const agt_config *c, agt_err *err)
{
    int rc = agt_run(r, c, &tr, &te, err);
    AG_CHECK(rc == 0, "run %s: %s", c->name, err->msg);
    return rc;
}

static void test_determinism(void)
{
    agt_config c;
    agt_err err;
    base_cfg(&c, "E3M4", "E5M2");
    c.stochastic_grads = 1;
    agt_result a, b, d;
    char pa[128], pb[128];
    sprintf(pa, "%s/a.ckpt", dir);
    sprintf(pb, "%s/b.ckpt", dir);
    c.save = pa;
    if (run(&a, &c, &err)) return;
    c.save = pb;
    c.threads = 2;
    if (run(&b, &c, &err)) return;
    AG_CHECK(same_results(&a, &b, 0, 0, 2), "--threads 2 changes the results");
    AG_CHECK(same_files(pa, pb), "--threads 2 changes the final state");
    AG_CHECK(a.nepochs == 2 && a.epochs[1].test_acc > 0.5,
             "the synthetic task is learnt (acc %g)", a.nepochs ? a.epochs[a.nepochs - 1].test_acc : -1.0);
    AG_CHECK(a.epochs[0].q[1][AGT_QG].total > 0 && a.epochs[0].considered > 0,
             "quantizer and stall counters filled");
    /* same command again: same numbers */
    c.threads = 1;
    c.save = NULL;
    if (run(&d, &c, &err)) return;
    AG_CHECK(same_results(&a, &d, 0, 0, 2), "rerun differs");
    agt_result_free(&d);
    /* nearest rounding of gradients is a different run */
    c.stochastic_grads = 0;
    if (run(&d, &c, &err)) return;
    AG_CHECK(!same_d(a.epochs[0].train_loss, d.epochs[0].train_loss),
             "stochastic gradient rounding has no effect");
    agt_result_free(&d);
    agt_result_free(&a);
    agt_result_free(&b);
}

static void test_resume(const char *fmt, agt_optkind opt)
{
    agt_config c;
    agt_err err;
    base_cfg(&c, fmt, fmt);
    c.optimizer = opt;
    c.lr = opt == AGT_SGD ? 0.05f : 1e-3f;
    char pfull[128], phalf[128], presumed[128], pmid[128], pmid2[128];
    sprintf(pfull, "%s/full.ckpt", dir);
    sprintf(phalf, "%s/half.ckpt", dir);
    sprintf(presumed, "%s/resumed.ckpt", dir);
    sprintf(pmid, "%s/mid.ckpt", dir);
    sprintf(pmid2, "%s/mid2.ckpt", dir);
    agt_result full, half, resumed, mid, mid2;
    c.save = pfull;
    if (run(&full, &c, &err)) return;
    /* epoch boundary */
    c.epochs = 1;
    c.save = phalf;
    if (run(&half, &c, &err)) return;
    c.epochs = 2;
    c.resume = phalf;
    c.save = presumed;
    if (run(&resumed, &c, &err)) return;
    AG_CHECK(resumed.nepochs == 1 && same_results(&full, &resumed, 1, 0, 1),
             "%s: resumed epoch 2 differs from the uninterrupted run", fmt);
    /* the summary of the resumed run covers epoch 1 too */
    AG_CHECK(same_totals(&full, &resumed) && resumed.epochs_before == 1,
             "%s: resumed totals differ from the uninterrupted run's", fmt);
    AG_CHECK(agt_result_totals(&full).c.total > agt_result_totals(&half).c.total ||
             !strcmp(fmt, "fp32"), "%s: no counters to compare", fmt);
    AG_CHECK(same_results(&full, &half, 0, 0, 1), "%s: epoch 1 differs", fmt);
    AG_CHECK(same_files(pfull, presumed), "%s: resumed final state differs", fmt);
    /* middle of epoch 2 (steps per epoch = 10) */
    c.resume = NULL;
    c.max_steps = 14;
    c.save = pmid;
    if (run(&mid, &c, &err)) return;
    /* epoch 1 and the 4 steps of epoch 2 it measured, marked partial */
    AG_CHECK(mid.nepochs == 2 && mid.epochs[0].partial_steps == 0 &&
             mid.epochs[1].partial_steps == 4 && mid.epochs[1].step == 14 &&
             isfinite(mid.epochs[1].train_loss) && isfinite(mid.epochs[1].test_acc),
             "max_steps stops in epoch 2 after 4 steps (%d epochs)", mid.nepochs);
    AG_CHECK(same_results(&full, &mid, 0, 0, 1), "%s: epoch 1 before max_steps differs", fmt);
    c.max_steps = 0;
    c.resume = pmid;
    c.save = pmid2;
    if (run(&mid2, &c, &err)) return;
    AG_CHECK(mid2.nepochs == 1 && same_results(&full, &mid2, 1, 0, 1),
             "%s: mid-epoch resume differs from the uninterrupted run", fmt);
    AG_CHECK(same_totals(&full, &mid2),
             "%s: mid-epoch resumed totals differ from the uninterrupted run's", fmt);
    AG_CHECK(same_files(pfull, pmid2), "%s: mid-epoch resumed state differs", fmt);
    /* resuming a finished run without more epochs is an error */
    c.resume = pfull;
    c.save = NULL;
    agt_result r;
    int rc = agt_run(&r, &c, &tr, &te, &err);
    AG_CHECK(rc == -1 && strstr(err.msg, "--epochs") && strstr(err.msg, "has 2 epochs done"),
             "finished checkpoint: %s", err.msg);
    c.resume = phalf;
    c.epochs = 1;
    rc = agt_run(&r, &c, &tr, &te, &err);
    AG_CHECK(rc == -1 && strstr(err.msg, "has 1 epoch done;"), "finished checkpoint: %s",
             err.msg);
    c.resume = pfull;
    c.epochs = 2;
    /* mismatched options */
    c.epochs = 3;
    c.lr *= 2.0f;
    rc = agt_run(&r, &c, &tr, &te, &err);
    AG_CHECK(rc == -1 && strstr(err.msg, "--lr") && strstr(err.msg, pfull),
             "lr mismatch: %s", err.msg);
    agt_result_free(&full);
    agt_result_free(&half);
    agt_result_free(&resumed);
    agt_result_free(&mid);
    agt_result_free(&mid2);
}

static void test_bad_checkpoints(void)
{
    agt_config c;
    agt_err err;
    base_cfg(&c, "fp32", "fp32");
    char good[128], bad[128];
    sprintf(good, "%s/good.ckpt", dir);
    sprintf(bad, "%s/bad.ckpt", dir);
    c.epochs = 1;
    c.save = good;
    agt_result r;
    if (run(&r, &c, &err)) return;
    agt_result_free(&r);
    FILE *f = fopen(good, "rb");
    static unsigned char bytes[4 << 20];
    size_t n = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    c.save = NULL;
    c.epochs = 2;
    c.resume = bad;
    struct { const char *name; size_t len; size_t flip; const char *want; } cases[] = {
        {"flipped byte", n, n / 2, "checksum"},
        {"truncated", n - 10, (size_t)-1, "truncated"},
        {"bad magic", n, 0, "magic"},
        {"empty", 0, (size_t)-1, "magic"},
        {"version", n, 8, "version"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].flip != (size_t)-1)
            bytes[cases[i].flip] ^= 0x40;
        tt_write(bad, bytes, cases[i].len, 0);
        if (cases[i].flip != (size_t)-1)
            bytes[cases[i].flip] ^= 0x40;
        int rc = agt_run(&r, &c, &tr, &te, &err);
        AG_CHECK(rc == -1 && strstr(err.msg, bad) && strstr(err.msg, cases[i].want),
                 "%s: rc %d: %s", cases[i].name, rc, err.msg);
    }
    sprintf(bad, "%s/no-such.ckpt", dir);
    int rc = agt_run(&r, &c, &tr, &te, &err);
    AG_CHECK(rc == -1 && strstr(err.msg, bad), "missing checkpoint: %s", err.msg);
    /* an unwritable save path is an error, and leaves no temporary file */
    c.resume = NULL;
    c.epochs = 1;
    sprintf(bad, "%s/no-such-dir/x.ckpt", dir);
    c.save = bad;
    rc = agt_run(&r, &c, &tr, &te, &err);
    AG_CHECK(rc == -1 && strstr(err.msg, "no-such-dir"), "unwritable save: %s", err.msg);
    /* ... found before training starts: it wins over a batch larger than
     * the training set, which the run finds first thing */
    c.batch = 4096;
    rc = agt_run(&r, &c, &tr, &te, &err);
    AG_CHECK(rc == -1 && strstr(err.msg, "no-such-dir"), "save checked late: %s", err.msg);
    c.save = dir; /* a directory */
    rc = agt_run(&r, &c, &tr, &te, &err);
    AG_CHECK(rc == -1 && strstr(err.msg, "directory"), "save to a directory: %s", err.msg);
    AG_CHECK(agt_check_save("", &err) == -1, "empty save path accepted");
    sprintf(bad, "%s/ok.ckpt", dir);
    AG_CHECK(agt_check_save(bad, &err) == 0, "writable path refused: %s", err.msg);
    struct stat st;
    AG_CHECK(stat(bad, &st) != 0, "the probe left %s behind", bad);
}

/* --max-steps inside the first epoch: the partial epoch is what the run
 * reports (train loss of its steps, test accuracy there), not nan. */
static void test_partial_epoch(void)
{
    agt_config c;
    agt_err err;
    base_cfg(&c, "E3M4", "fp32");
    c.max_steps = 3;
    agt_result r;
    if (run(&r, &c, &err)) return;
    AG_CHECK(r.nepochs == 1 && r.epochs[0].partial_steps == 3 && r.epochs[0].step == 3 &&
             isfinite(r.epochs[0].train_loss) && isfinite(r.epochs[0].test_acc) &&
             r.epochs[0].q[0][AGT_QW].total > 0,
             "partial first epoch: %d records", r.nepochs);
    char path[128];
    snprintf(path, sizeof path, "%s/table.txt", dir);
    FILE *f = fopen(path, "w+");
    AG_CHECK(f != NULL, "cannot write %s", path);
    if (!f) {
        agt_result_free(&r);
        return;
    }
    agt_print_table(f, &r, 1);
    rewind(f);
    char text[4096];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    char *row = strchr(text, '\n'); /* the run's row, after the header */
    row = row ? row + 1 : text;
    row[strcspn(row, "\n")] = '\0';
    const char *st = strstr(row, "partial: epoch 1, 3/10 steps");
    AG_CHECK(st && st[28] == '\0' && !strstr(row, "nan") && !strstr(row, " ok"),
             "table row of a partial run: %s", row);
    snprintf(path, sizeof path, "%s/partial.csv", dir);
    AG_CHECK(agt_write_csv(&r, path, &err) == 0, "csv: %s", err.msg);
    f = fopen(path, "r");
    n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = '\0';
    if (f)
        fclose(f);
    AG_CHECK(strstr(text, ",partial@3/10,") != NULL, "csv of a partial run:\n%.300s", text);
    agt_result_free(&r);
}

static void test_divergence(void)
{
    agt_config c;
    agt_err err;
    base_cfg(&c, "fp32", "fp32");
    c.optimizer = AGT_SGD;
    c.lr = 1e5f;
    c.epochs = 3;
    agt_result r;
    if (run(&r, &c, &err)) return;
    AG_CHECK(r.diverged_step > 0 && r.diverged_step <= 30, "diverged at %ld", r.diverged_step);
    AG_CHECK(r.nepochs >= 1 && isnan(r.epochs[r.nepochs - 1].test_acc),
             "the diverged epoch is recorded without a test accuracy");
    agt_result_free(&r);
}

static int file_exists(const char *dir_, const char *name)
{
    char p[256];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir_, name);
    return stat(p, &st) == 0 && st.st_size > 0;
}

static int call(int (*fn)(int, char **), const char *const *args)
{
    char *argv[40];
    int argc = 0;
    for (; args[argc]; argc++)
        argv[argc] = (char *)args[argc];
    argv[argc] = NULL;
    fflush(stdout);
    return fn(argc, argv);
}

/* Two run logs hold the same numbers: every field but column 7 (seconds). */
static int same_logs(const char *p, const char *q)
{
    FILE *f = fopen(p, "r"), *g = fopen(q, "r");
    int same = f && g;
    char a[8192], b[8192];
    while (same) {
        char *x = fgets(a, sizeof a, f), *y = fgets(b, sizeof b, g);
        if (!x || !y) {
            same = !x && !y;
            break;
        }
        char *ca = a, *cb = b;
        for (int field = 1; *ca || *cb; field++) {
            size_t la = strcspn(ca, ",\n"), lb = strcspn(cb, ",\n");
            if (field != 7 && (la != lb || memcmp(ca, cb, la) != 0)) {
                same = 0;
                break;
            }
            ca += la + (ca[la] != '\0');
            cb += lb + (cb[lb] != '\0');
        }
    }
    if (f) fclose(f);
    if (g) fclose(g);
    return same;
}

static void test_cli(void)
{
    char out[128];
    snprintf(out, sizeof out, "%s/out", dir);
    const char *cmp[] = {"compare", "--model", "mlp", "--data", dir, "--epochs", "1", "--batch", "32",
                         "--formats", "fp32,E3M4,fp8", "--layer-formats", "fp32,*,*",
                         "--out", out, "--quiet", "--test-limit", "100", "--jobs", "1",
                         NULL};
    int rc = call(ag_compare_main, cmp);
    AG_CHECK(rc == 0, "compare rc %d", rc);
    AG_CHECK(file_exists(out, "compare.csv") && file_exists(out, "compare.svg") &&
             file_exists(out, "fp32.csv") && file_exists(out, "E3M4.csv") &&
             file_exists(out, "fp8-e4m3fn-e5m2.csv"), "compare outputs missing in %s", out);
    /* --jobs changes nothing but the wall time */
    char out2[128];
    snprintf(out2, sizeof out2, "%s/out2", dir);
    const char *cmp2[] = {"compare", "--model=mlp", "--data", dir, "--epochs", "1", "--batch", "32",
                          "--formats", "fp32,E3M4,fp8", "--layer-formats", "fp32,*,*",
                          "--out", out2, "--quiet", "--test-limit", "100", "--jobs",
                          "3", NULL};
    rc = call(ag_compare_main, cmp2);
    const char *names[] = {"fp32.csv", "E3M4.csv", "fp8-e4m3fn-e5m2.csv"};
    for (int i = 0; i < 3; i++) {
        char p1[256], p2[256];
        snprintf(p1, sizeof p1, "%s/%s", out, names[i]);
        snprintf(p2, sizeof p2, "%s/%s", out2, names[i]);
        AG_CHECK(rc == 0 && same_logs(p1, p2), "--jobs 3 changes %s", names[i]);
    }
    char ck[128];
    snprintf(ck, sizeof ck, "%s/cli.ckpt", dir);
    const char *trn[] = {"train", "--data", dir, "--epochs", "1", "--batch", "32",
                         "--layer-formats", "fp32,E3M4/E5M2,fp32", "--stochastic-grads",
                         "--optimizer", "sgd", "--lr", "0.05", "--out", out, "--quiet",
                         "--save", ck, "--name", "mixed", NULL};
    rc = call(ag_train_main, trn);
    AG_CHECK(rc == 0 && file_exists(out, "mixed.csv") && file_exists(dir, "cli.ckpt"),
             "train rc %d", rc);
    const char *res[] = {"train", "--data", dir, "--epochs", "2", "--batch", "32",
                         "--layer-formats", "fp32,E3M4/E5M2,fp32", "--stochastic-grads",
                         "--optimizer", "sgd", "--lr", "0.05", "--out", out, "--quiet",
                         "--resume", ck, "--name", "mixed", NULL};
    rc = call(ag_train_main, res);
    AG_CHECK(rc == 0, "train --resume rc %d", rc);
    const char *help[] = {"train", "--help", NULL};
    AG_CHECK(call(ag_train_main, help) == 0, "train --help");
    /* usage errors: 1; runtime errors: 2 */
    const char *bad1[] = {"train", "--epochs", "zero", NULL};
    const char *bad2[] = {"train", "--bogus", NULL};
    const char *bad3[] = {"compare", "--formats", "fp32,E9M9", "--data", dir, NULL};
    const char *bad4[] = {"train", "--layer-formats", "fp32,E3M4", "--data", dir, NULL};
    const char *bad5[] = {"train", "--optimizer", "adam", NULL};
    const char *bad6[] = {"train", "--lr", NULL};
    const char *bad7[] = {"compare", "--formats", "fp32,,E3M4", NULL};
    const char *run1[] = {"train", "--data", "/nonexistent-agt", "--quiet", NULL};
    const char *run2[] = {"train", "--data", dir, "--quiet", "--batch", "4096", "--out", out, NULL};
    AG_CHECK(call(ag_train_main, bad1) == 1, "bad number");
    AG_CHECK(call(ag_train_main, bad2) == 1, "unknown option");
    AG_CHECK(call(ag_compare_main, bad3) == 1, "bad format");
    AG_CHECK(call(ag_train_main, bad4) == 1, "layer count");
    AG_CHECK(call(ag_train_main, bad5) == 1, "bad optimizer");
    AG_CHECK(call(ag_train_main, bad6) == 1, "missing value");
    AG_CHECK(call(ag_compare_main, bad7) == 1, "empty entry");
    AG_CHECK(call(ag_train_main, run1) == 2, "missing data");
    AG_CHECK(call(ag_train_main, run2) == 2, "batch larger than the data");
}

/* The grid optimizer on the MLP: it learns the synthetic task, and counts
 * updates and moves of the quantized weights. */
static void test_grid(void)
{
    agt_config c;
    agt_err err;
    agt_result r;
    base_cfg(&c, "E3M4", "fp32");
    c.optimizer = AGT_GRID;
    c.epochs = 3;
    if (run(&r, &c, &err))
        return;
    const agt_epoch *e = &r.epochs[r.nepochs - 1];
    AG_CHECK(r.nepochs == 3 && e->test_acc > 0.5 && e->considered > 0 &&
                 e->stalled < e->considered,
             "grid optimizer: acc %g, %llu of %llu updates stalled",
             e->test_acc, (unsigned long long)e->stalled,
             (unsigned long long)e->considered);
    agt_result_free(&r);
}

int main(void)
{
    if (tt_tmpdir(dir, sizeof dir) || tt_synthetic(dir, 320, 100)) {
        fprintf(stderr, "cannot write the synthetic data set\n");
        return 1;
    }
    agt_err err;
    if (agt_dataset_load_dir(&tr, dir, 1, 0, &err) ||
        agt_dataset_load_dir(&te, dir, 0, 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    test_determinism();
    test_resume("fp32", AGT_ADAMW);
    test_resume("E3M4", AGT_SGD);
    test_resume("E3M4", AGT_GRID);
    test_grid();
    test_bad_checkpoints();
    test_partial_epoch();
    test_divergence();
    test_cli();
    agt_dataset_free(&tr);
    agt_dataset_free(&te);
    tt_rmdir(dir);
    return ag_test_summary("test_train_run");
}
