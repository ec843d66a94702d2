/* SPDX-License-Identifier: MIT */
/*
 * cli.c — `altgrad train` and `altgrad compare`: option parsing, data
 * loading, runs and reports. Exit status: 0 ok (a diverged run is a result),
 * 1 usage error, 2 runtime error (missing data, I/O, ...).
 *
 * Layer formats: --layer-formats takes one entry per linear layer, each
 *     fp32        the layer stays float32 (weights, inputs and gradients)
 *     F           weights and inputs in F; the output gradient in
 *                 --grad-format (default fp32)
 *     F/G         weights and inputs in F, the output gradient in G
 *     fp8         shorthand for float8_e4m3fn/float8_e5m2 (the standard
 *                 FP8 recipe)
 * F and G are any format spec (E3M4, float8_e4m3fn, e4m3:bias=8, ...). In
 * `compare`, '*' in --layer-formats stands for the format under test
 * (default: '*' for every layer).
 */
#define _POSIX_C_SOURCE 200809L
#include "train.h"

#include <cblas.h>
#include <errno.h>
#include <pthread.h>
#include <unistd.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_FORMATS "fp32,E0M7,E1M6,E3M4,E5M2,E7M0,fp8"
#define FP8_RECIPE "float8_e4m3fn/float8_e5m2"

static const char *const usage_train =
    "usage: altgrad train [options]\n"
    "Train the 784-256-256-10 MLP on Fashion-MNIST with one format setting.\n"
    "\n"
    "  --format F            every linear layer in F (weights and inputs)\n"
    "  --layer-formats L,..  per linear layer: fp32 | F | F/G | fp8\n"
    "                        (e.g. fp32,E3M4,fp32; default fp32,fp32,fp32)\n"
    "  --grad-format G       output-gradient format of the quantized layers\n"
    "                        whose entry has no /G (default fp32)\n"
    "  --stochastic-grads    round gradients stochastically (seeded)\n"
    "  --name NAME           run name (file names); default from the formats\n"
    "  --save FILE           write a checkpoint at the end (atomic)\n"
    "  --resume FILE         continue from a checkpoint (same options)\n";

static const char *const usage_compare =
    "usage: altgrad compare [options]\n"
    "Train the same model, seed and data order once per format and compare:\n"
    "the float32 baseline, the AltGrad formats and the standard FP8 recipe.\n"
    "\n"
    "  --formats L,...       runs to compare (default " DEFAULT_FORMATS ");\n"
    "                        each fp32 | F | F/G | fp8\n"
    "  --layer-formats L,..  template per linear layer, '*' = the format\n"
    "                        under test (default *,*,*; e.g. fp32,*,fp32)\n"
    "  --grad-format G       gradient format for entries without /G\n"
    "  --stochastic-grads    round gradients stochastically (seeded)\n"
    "  --jobs N              runs trained at the same time (default: the\n"
    "                        number of CPUs; each run is single-threaded and\n"
    "                        its numbers do not depend on N)\n";

static const char *const usage_common =
    "\n"
    "  --epochs N            epochs (default 5)\n"
    "  --batch N             batch size (default 128)\n"
    "  --lr X                learning rate (default 0.001)\n"
    "  --wd X                weight decay (default 0.0001)\n"
    "  --optimizer adamw|sgd (default adamw; sgd has momentum 0.9)\n"
    "  --seed N              seed of initialisation, data order and\n"
    "                        stochastic rounding (default 1)\n"
    "  --threads N           threads of the quantizers (default 1); BLAS\n"
    "                        stays single-threaded so results do not depend\n"
    "                        on it\n"
    "  --history N           amax history length (default 16)\n"
    "  --data DIR            IDX data set (default " AGT_DEFAULT_DATA ")\n"
    "  --train-limit N       use only the first N training images\n"
    "  --test-limit N        use only the first N test images\n"
    "  --max-steps N         stop after N steps (mid-epoch; with --save)\n"
    "  --out DIR             output directory (default runs/)\n"
    "  --quiet               no progress on stderr\n"
    "  --help                this text\n"
    "\n"
    "Output: a table on stdout, DIR/RUN.csv per run (one row per epoch,\n"
    "every quantizer's saturated/underflow/NaN counts), a summary CSV and an\n"
    "SVG plot of the loss and accuracy curves.\n";

typedef struct opts {
    agt_config cfg;
    const char *layer_formats;   /* NULL: default */
    const char *grad_format;     /* NULL: fp32 */
    const char *formats;         /* compare */
    const char *name;
    int jobs;                    /* compare: runs at once (0: CPUs) */
    int help;
} opts;

static int usage_error(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "altgrad %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(try 'altgrad %s --help')\n", cmd);
    return 1;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_float(const char *s, float *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < 0.0 || v > 1e6)
        return -1;
    *out = (float)v;
    return 0;
}

static int parse_common(int argc, char **argv, opts *o, int compare)
{
    const char *cmd = compare ? "compare" : "train";
    agt_config_default(&o->cfg);
    o->cfg.epochs = 5;
    o->cfg.out_dir = "runs";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
#define NEED()                                                         \
    do {                                                               \
        if (!v)                                                        \
            return usage_error(cmd, "%s needs a value", a);            \
        i++;                                                           \
    } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            o->help = 1;
        } else if (!strcmp(a, "--quiet")) {
            o->cfg.quiet = 1;
        } else if (!strcmp(a, "--stochastic-grads")) {
            o->cfg.stochastic_grads = 1;
        } else if (!strcmp(a, "--epochs")) {
            NEED();
            if (parse_long(v, 1, 100000, &n))
                return usage_error(cmd, "--epochs: '%s' is not an integer in 1..100000", v);
            o->cfg.epochs = (int)n;
        } else if (!strcmp(a, "--batch")) {
            NEED();
            if (parse_long(v, 1, 65536, &n))
                return usage_error(cmd, "--batch: '%s' is not an integer in 1..65536", v);
            o->cfg.batch = (int)n;
        } else if (!strcmp(a, "--lr")) {
            NEED();
            if (parse_float(v, &o->cfg.lr) || o->cfg.lr <= 0.0f)
                return usage_error(cmd, "--lr: '%s' is not a positive number", v);
        } else if (!strcmp(a, "--wd")) {
            NEED();
            if (parse_float(v, &o->cfg.wd))
                return usage_error(cmd, "--wd: '%s' is not a number >= 0", v);
        } else if (!strcmp(a, "--optimizer")) {
            NEED();
            if (!strcmp(v, "adamw"))
                o->cfg.optimizer = AGT_ADAMW;
            else if (!strcmp(v, "sgd"))
                o->cfg.optimizer = AGT_SGD;
            else
                return usage_error(cmd, "--optimizer: '%s' (expected adamw or sgd)", v);
        } else if (!strcmp(a, "--seed")) {
            NEED();
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (errno || *end || !*v || *v == '-')
                return usage_error(cmd, "--seed: '%s' is not a non-negative integer", v);
            o->cfg.seed = (uint64_t)s;
        } else if (!strcmp(a, "--threads")) {
            NEED();
            if (parse_long(v, 1, 256, &n))
                return usage_error(cmd, "--threads: '%s' is not an integer in 1..256", v);
            o->cfg.threads = (int)n;
        } else if (!strcmp(a, "--history")) {
            NEED();
            if (parse_long(v, 1, AGT_HIST_MAX, &n))
                return usage_error(cmd, "--history: '%s' is not an integer in 1..64", v);
            o->cfg.hist_len = (size_t)n;
        } else if (!strcmp(a, "--train-limit")) {
            NEED();
            if (parse_long(v, 1, LONG_MAX, &n))
                return usage_error(cmd, "--train-limit: '%s' is not a positive integer", v);
            o->cfg.train_limit = (size_t)n;
        } else if (!strcmp(a, "--test-limit")) {
            NEED();
            if (parse_long(v, 1, LONG_MAX, &n))
                return usage_error(cmd, "--test-limit: '%s' is not a positive integer", v);
            o->cfg.test_limit = (size_t)n;
        } else if (!strcmp(a, "--max-steps")) {
            NEED();
            if (parse_long(v, 1, LONG_MAX, &n))
                return usage_error(cmd, "--max-steps: '%s' is not a positive integer", v);
            o->cfg.max_steps = n;
        } else if (!strcmp(a, "--data")) {
            NEED();
            o->cfg.data_dir = v;
        } else if (!strcmp(a, "--out")) {
            NEED();
            o->cfg.out_dir = v;
        } else if (!strcmp(a, "--layer-formats")) {
            NEED();
            o->layer_formats = v;
        } else if (!strcmp(a, "--grad-format")) {
            NEED();
            o->grad_format = v;
        } else if (!compare && !strcmp(a, "--format")) {
            NEED();
            o->formats = v;
        } else if (compare && !strcmp(a, "--jobs")) {
            NEED();
            if (parse_long(v, 1, 64, &n))
                return usage_error(cmd, "--jobs: '%s' is not an integer in 1..64", v);
            o->jobs = (int)n;
        } else if (compare && !strcmp(a, "--formats")) {
            NEED();
            o->formats = v;
        } else if (!compare && !strcmp(a, "--name")) {
            NEED();
            o->name = v;
        } else if (!compare && !strcmp(a, "--save")) {
            NEED();
            o->cfg.save = v;
        } else if (!compare && !strcmp(a, "--resume")) {
            NEED();
            o->cfg.resume = v;
        } else {
            return usage_error(cmd, "unknown option '%s'", a);
        }
#undef NEED
    }
    return 0;
}

/* Copy the comma-separated item `idx` of list into out; returns the number
 * of items. */
static int list_item(const char *list, int idx, char *out, size_t cap)
{
    int count = 0;
    const char *p = list;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (count == idx && out) {
            if (len >= cap)
                len = cap - 1;
            memcpy(out, p, len);
            out[len] = '\0';
        }
        count++;
        if (!e)
            break;
        p = e + 1;
    }
    return count;
}

static int check_spec(const char *cmd, const char *spec)
{
    if (!strcmp(spec, "fp32"))
        return 0;
    ag_format f;
    char msg[200];
    if (ag_format_parse(&f, spec, msg, sizeof msg) != AG_OK) {
        fprintf(stderr, "altgrad %s: format '%s': %s\n", cmd, spec, msg);
        return 1;
    }
    return 0;
}

/* Fill fmt from one entry (fp32 | F | F/G | fp8). */
static int entry_to_fmt(const char *cmd, const char *entry, const char *grad,
                        agt_layer_fmt *fmt)
{
    char e[100];
    snprintf(e, sizeof e, "%s", entry);
    if (!strcmp(e, "fp8") || !strcmp(e, "FP8"))
        snprintf(e, sizeof e, "%s", FP8_RECIPE);
    if (!e[0])
        return usage_error(cmd, "empty format entry%s", "");
    const char *g = grad ? grad : "fp32";
    char *slash = strchr(e, '/');
    if (slash) {
        *slash = '\0';
        g = slash + 1;
    }
    const char *f = e;
    static const char *const f32[] = {"fp32", "f32", "float32", "none"};
    for (size_t i = 0; i < 4; i++)
        if (!strcmp(f, f32[i]))
            f = "fp32";
    int all32 = !strcmp(f, "fp32");
    for (size_t i = 0; i < 4; i++)
        if (!strcmp(g, f32[i]))
            g = "fp32";
    if (all32 && !slash)
        g = "fp32"; /* an fp32 layer stays float32 through and through */
    if (strlen(f) >= 48 || strlen(g) >= 48)
        return usage_error(cmd, "format spec too long: '%s'", entry);
    snprintf(fmt->spec[AGT_QW], 48, "%.47s", f);
    snprintf(fmt->spec[AGT_QX], 48, "%.47s", f);
    snprintf(fmt->spec[AGT_QG], 48, "%.47s", g);
    if (check_spec(cmd, fmt->spec[AGT_QW]) || check_spec(cmd, fmt->spec[AGT_QG]))
        return 1;
    return 0;
}

/* Layer formats of one run: template entries ('*' = fmt_under_test). */
static int build_layers(const char *cmd, agt_config *c, const char *tmpl,
                        const char *under_test, const char *grad)
{
    const int nlin = c->nlin;
    if (tmpl) {
        int n = list_item(tmpl, 0, NULL, 0);
        if (n != nlin) {
            fprintf(stderr, "altgrad %s: --layer-formats has %d entries, the "
                    "model has %d linear layers\n", cmd, n, nlin);
            return 1;
        }
    }
    for (int l = 0; l < nlin; l++) {
        char item[100];
        if (tmpl)
            list_item(tmpl, l, item, sizeof item);
        else
            snprintf(item, sizeof item, "*");
        if (!strcmp(item, "*"))
            snprintf(item, sizeof item, "%s", under_test ? under_test : "fp32");
        if (entry_to_fmt(cmd, item, grad, &c->fmt[l]))
            return 1;
    }
    return 0;
}

static void file_safe(char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
            *s = '-';
}

static int load_data(const agt_config *c, agt_dataset *tr, agt_dataset *te)
{
    agt_err err;
    if (agt_dataset_load_dir(tr, c->data_dir, 1, c->train_limit, &err) ||
        agt_dataset_load_dir(te, c->data_dir, 0, c->test_limit, &err)) {
        fprintf(stderr, "altgrad: %s\n", err.msg);
        agt_dataset_free(tr);
        return 2;
    }
    return 0;
}

static int write_outputs(const char *cmd, agt_result *runs, int n,
                         const char *out_dir, const char *stem)
{
    agt_err err;
    if (agt_mkdirs(out_dir, &err)) {
        fprintf(stderr, "altgrad %s: %s\n", cmd, err.msg);
        return 2;
    }
    char path[4096];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s.csv", out_dir, runs[i].cfg.name);
        if (agt_write_csv(&runs[i], path, &err)) {
            fprintf(stderr, "altgrad %s: %s\n", cmd, err.msg);
            return 2;
        }
        printf("log: %s\n", path);
    }
    if (n > 1) {
        snprintf(path, sizeof path, "%s/%s.csv", out_dir, stem);
        if (agt_write_summary_csv(runs, n, path, &err)) {
            fprintf(stderr, "altgrad %s: %s\n", cmd, err.msg);
            return 2;
        }
        printf("summary: %s\n", path);
    }
    snprintf(path, sizeof path, "%s/%s.svg", out_dir, stem);
    if (agt_write_svg(runs, n, path, &err)) {
        fprintf(stderr, "altgrad %s: %s\n", cmd, err.msg);
        return 2;
    }
    printf("plot: %s\n", path);
    return 0;
}

int ag_train_main(int argc, char **argv)
{
    opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_common(argc, argv, &o, 0);
    if (rc)
        return rc;
    if (o.help) {
        fputs(usage_train, stdout);
        fputs(usage_common, stdout);
        return 0;
    }
    if (o.formats && o.layer_formats)
        return usage_error("train", "%s", "--format and --layer-formats are exclusive");
    if (build_layers("train", &o.cfg, o.layer_formats, o.formats, o.grad_format))
        return 1;
    if (o.name) {
        snprintf(o.cfg.name, sizeof o.cfg.name, "%s", o.name);
    } else if (o.formats || o.layer_formats) {
        snprintf(o.cfg.name, sizeof o.cfg.name, "%s",
                 o.formats ? o.formats : o.layer_formats);
        if (o.grad_format) {
            size_t l = strlen(o.cfg.name);
            snprintf(o.cfg.name + l, sizeof o.cfg.name - l, "_g%s", o.grad_format);
        }
    }
    file_safe(o.cfg.name);
    agt_dataset tr, te;
    if ((rc = load_data(&o.cfg, &tr, &te)))
        return rc;
    agt_result res;
    agt_err err;
    if (agt_run(&res, &o.cfg, &tr, &te, &err)) {
        fprintf(stderr, "altgrad train: %s\n", err.msg);
        agt_dataset_free(&tr);
        agt_dataset_free(&te);
        return 2;
    }
    agt_print_table(stdout, &res, 1);
    rc = write_outputs("train", &res, 1, o.cfg.out_dir, o.cfg.name);
    if (o.cfg.save && rc == 0)
        printf("checkpoint: %s\n", o.cfg.save);
    agt_result_free(&res);
    agt_dataset_free(&tr);
    agt_dataset_free(&te);
    return rc;
}

/* The runs of a comparison, handed out to worker threads one at a time.
 * Each run is single-threaded and deterministic, so the results do not
 * depend on how many run at once. */
typedef struct pool {
    const agt_config *cfgs;
    agt_result *runs;
    agt_err *errs;
    const agt_dataset *tr, *te;
    int n, next;
    pthread_mutex_t lock;
    int *failed;             /* per run: 1 when it failed (errs[i] says why) */
} pool;

static void *worker(void *arg)
{
    pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        int i = p->next < p->n ? p->next++ : -1;
        pthread_mutex_unlock(&p->lock);
        if (i < 0)
            return NULL;
        if (agt_run(&p->runs[i], &p->cfgs[i], p->tr, p->te, &p->errs[i]))
            p->failed[i] = 1;
    }
}

int ag_compare_main(int argc, char **argv)
{
    opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_common(argc, argv, &o, 1);
    if (rc)
        return rc;
    if (o.help) {
        fputs(usage_compare, stdout);
        fputs(usage_common, stdout);
        return 0;
    }
    const char *list = o.formats ? o.formats : DEFAULT_FORMATS;
    const int n = list_item(list, 0, NULL, 0);
    agt_config *cfgs = calloc((size_t)n, sizeof *cfgs);
    agt_result *runs = calloc((size_t)n, sizeof *runs);
    if (!cfgs || !runs) {
        free(cfgs);
        free(runs);
        fprintf(stderr, "altgrad compare: out of memory\n");
        return 2;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        char item[100];
        list_item(list, i, item, sizeof item);
        cfgs[i] = o.cfg;
        if (!item[0]) {
            rc = usage_error("compare", "--formats: empty entry%s", "");
            break;
        }
        if (build_layers("compare", &cfgs[i], o.layer_formats, item, o.grad_format)) {
            rc = 1;
            break;
        }
        if (!strcmp(item, "fp8") || !strcmp(item, "FP8"))
            snprintf(cfgs[i].name, sizeof cfgs[i].name, "fp8-e4m3fn-e5m2");
        else
            snprintf(cfgs[i].name, sizeof cfgs[i].name, "%.63s", item);
        file_safe(cfgs[i].name);
    }
    agt_dataset tr, te;
    if (rc == 0)
        rc = load_data(&o.cfg, &tr, &te);
    if (rc) {
        free(cfgs);
        free(runs);
        return rc;
    }
    int jobs = o.jobs;
    if (jobs <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        jobs = cpus > 0 ? (int)cpus : 1;
    }
    if (jobs > n)
        jobs = n;
    pool p = {cfgs, runs, NULL, &tr, &te, n, 0, PTHREAD_MUTEX_INITIALIZER, NULL};
    p.failed = calloc((size_t)n, sizeof *p.failed);
    p.errs = calloc((size_t)n, sizeof *p.errs);
    if (!p.failed || !p.errs) {
        free(p.failed);
        p.failed = NULL;
        rc = 2;
        fprintf(stderr, "altgrad compare: out of memory\n");
        jobs = 0;
    }
    /* before any worker starts: the runs only ever set the same value */
    openblas_set_num_threads(1);
    pthread_t th[64];
    int started = 0;
    for (int j = 1; j < jobs; j++) {
        if (pthread_create(&th[started], NULL, worker, &p) != 0)
            break;
        started++;
    }
    if (jobs > 0)
        worker(&p);
    for (int j = 0; j < started; j++)
        pthread_join(th[j], NULL);
    /* results in the order of --formats; a failed run ends the list */
    int done = 0;
    for (int i = 0; i < n && p.failed && rc == 0; i++) {
        if (p.failed[i]) {
            fprintf(stderr, "altgrad compare: run %s: %s\n", cfgs[i].name,
                    p.errs[i].msg);
            rc = 2;
            break;
        }
        done++;
    }
    if (p.failed)
        for (int i = done; i < n; i++)
            if (!p.failed[i])
                agt_result_free(&runs[i]);
    free(p.failed);
    free(p.errs);
    if (done > 0) {
        printf("altgrad compare: MLP %d-%d-%d-%d, %d epochs, batch %d, %s lr %g, "
               "seed %llu, %zu train / %zu test images from %s\n",
               o.cfg.dims[0], o.cfg.dims[1], o.cfg.dims[2], o.cfg.dims[3],
               o.cfg.epochs, o.cfg.batch,
               o.cfg.optimizer == AGT_ADAMW ? "adamw" : "sgd", (double)o.cfg.lr,
               (unsigned long long)o.cfg.seed, tr.n, te.n, o.cfg.data_dir);
        agt_print_table(stdout, runs, done);
        int w = write_outputs("compare", runs, done, o.cfg.out_dir, "compare");
        if (rc == 0)
            rc = w;
    }
    for (int i = 0; i < n; i++)
        agt_result_free(&runs[i]);
    free(cfgs);
    free(runs);
    agt_dataset_free(&tr);
    agt_dataset_free(&te);
    return rc;
}
