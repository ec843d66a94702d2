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
#include "../cli/ag_cli.h"
#include "bench_cli.h"

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
    "                        whose entry has no /G (default fp32; an error\n"
    "                        when no layer takes it)\n"
    "  --stochastic-grads    round gradients stochastically (seeded)\n"
    "  --name NAME           run name (file names); default from the formats\n"
    "  --save FILE           write a checkpoint at the end (atomic; checked\n"
    "                        for writability before training)\n"
    "  --resume FILE         continue from a checkpoint (same options); the\n"
    "                        summary covers the whole run\n";

static const char *const usage_compare =
    "usage: altgrad compare [options]\n"
    "Train the same model, seed and data order once per format and compare:\n"
    "the float32 baseline, the AltGrad formats and the standard FP8 recipe.\n"
    "\n"
    "  --formats L,...       runs to compare (default " DEFAULT_FORMATS ");\n"
    "                        each fp32 | F | F/G | fp8\n"
    "  --layer-formats L,..  template per linear layer, '*' = the format\n"
    "                        under test (default *,*,*; e.g. fp32,*,fp32;\n"
    "                        without a '*' only fp32 may be under test)\n"
    "  --grad-format G       gradient format for entries without /G\n"
    "                        (an error when no run takes it)\n"
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
    "  --optimizer O         adamw (default) | manifold (AltGrad's\n"
    "                        ManifoldAdamW) | manifold-update | sgd (momentum\n"
    "                        0.9) | grid (AltGrad's GridOptim: whole rungs of\n"
    "                        each weight's grid, float32 ones on\n"
    "                        float8_e4m3fn's at the tensor's current scale)\n"
    "  --seed N              seed of initialisation, data order and\n"
    "                        stochastic rounding (default 1)\n"
    "  --threads N           threads of the quantizers (default 1); BLAS\n"
    "                        stays single-threaded so results do not depend\n"
    "                        on it\n"
    "  --history N           amax history length (default 16)\n"
    "  --data DIR            IDX data set (default " AGT_DEFAULT_DATA ")\n"
    "  --train-limit N       use only the first N training images\n"
    "  --test-limit N        use only the first N test images\n"
    "  --max-steps N         stop after N training steps; an epoch cut short\n"
    "                        is reported as partial (its steps so far)\n"
    "  --out DIR             output directory (default runs/)\n"
    "  --quiet               no progress on stderr\n"
    "  --help                this text\n"
    "\n"
    "Numbers: decimal integers; X a decimal or hex float. A bad value, or a\n"
    "format named but applied to no tensor, is a usage error (exit 1).\n";

static const char *const output_train =
    "\n"
    "Output: a table on stdout, DIR/NAME.csv (one row per epoch, every\n"
    "quantizer's saturated/underflow/NaN counts) and DIR/NAME.svg (loss and\n"
    "accuracy curves).\n";

static const char *const output_compare =
    "\n"
    "Output: a table on stdout, DIR/RUN.csv per run (one row per epoch,\n"
    "every quantizer's saturated/underflow/NaN counts), DIR/compare.csv (one\n"
    "row per run) and DIR/compare.svg (loss and accuracy curves).\n";

typedef struct opts {
    agt_config cfg;
    const char *layer_formats;   /* NULL: default */
    const char *grad_format;     /* NULL: fp32 */
    const char *formats;         /* compare */
    const char *name;
    int jobs;                    /* compare: runs at once (0: CPUs) */
    int help;
} opts;

int agt_cli_common_option(int argc, char **argv, int *at, agt_config *c,
                          const char *cmd, long long max_batch, int *matched)
{
    int i = *at, m;
    const char *a = argv[i], *v = NULL;
    long long n = 0;
    *matched = 1;
    if (!strcmp(a, "--quiet")) {
        c->quiet = 1;
    } else if (!strcmp(a, "--stochastic-grads")) {
        c->stochastic_grads = 1;
    } else if (AGT_OPT("--batch")) {
        AGT_INT("--batch", 1, max_batch);
        c->batch = (int)n;
    } else if (AGT_OPT("--lr")) {
        if (m < 0 || cli_real_arg(&c->lr, v, 0.0, 1, 1e6, cmd, "--lr"))
            return CLI_USAGE;
    } else if (AGT_OPT("--wd")) {
        if (m < 0 || cli_real_arg(&c->wd, v, 0.0, 0, 1e6, cmd, "--wd"))
            return CLI_USAGE;
    } else if (AGT_OPT("--seed")) {
        if (m < 0 || cli_u64_arg(&c->seed, v, cmd, "--seed"))
            return CLI_USAGE;
    } else if (AGT_OPT("--threads")) {
        AGT_INT("--threads", 1, 256);
        c->threads = (int)n;
    } else if (AGT_OPT("--history")) {
        AGT_INT("--history", 1, AGT_HIST_MAX);
        c->hist_len = (size_t)n;
    } else if (AGT_OPT("--out")) {
        AGT_STR(c->out_dir);
    } else {
        *matched = 0;
    }
    *at = i;
    return CLI_OK;
}

static int parse_common(int argc, char **argv, opts *o, int compare)
{
    const char *cmd = compare ? "compare" : "train";
    agt_config_default(&o->cfg);
    o->cfg.epochs = 5;
    o->cfg.out_dir = "runs";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        long long n = 0;
        int m;
        int common;
        if (agt_cli_common_option(argc, argv, &i, &o->cfg, cmd, 65536,
                                  &common))
            return CLI_USAGE;
        if (common)
            continue;
        if (cli_is_help(a)) {
            o->help = 1;
        } else if (AGT_OPT("--epochs")) {
            AGT_INT("--epochs", 1, 100000);
            o->cfg.epochs = (int)n;
        } else if (AGT_OPT("--optimizer")) {
            if (m < 0)
                return CLI_USAGE;
            if (agt_optim_parse(v, &o->cfg.optimizer, &o->cfg.precondition)) {
                cli_error(cmd, "--optimizer: '%s' is not an optimizer: expected "
                          AGT_OPTIM_NAMES, v);
                return CLI_USAGE;
            }
        } else if (AGT_OPT("--train-limit")) {
            AGT_INT("--train-limit", 1, LLONG_MAX);
            o->cfg.train_limit = (size_t)n;
        } else if (AGT_OPT("--test-limit")) {
            AGT_INT("--test-limit", 1, LLONG_MAX);
            o->cfg.test_limit = (size_t)n;
        } else if (AGT_OPT("--max-steps")) {
            AGT_INT("--max-steps", 1, LONG_MAX);
            o->cfg.max_steps = (long)n;
        } else if (AGT_OPT("--data")) {
            AGT_STR(o->cfg.data_dir);
        } else if (AGT_OPT("--layer-formats")) {
            AGT_STR(o->layer_formats);
        } else if (AGT_OPT("--grad-format")) {
            AGT_STR(o->grad_format);
        } else if (!compare && AGT_OPT("--format")) {
            AGT_STR(o->formats);
        } else if (compare && AGT_OPT("--jobs")) {
            AGT_INT("--jobs", 1, 64);
            o->jobs = (int)n;
        } else if (compare && AGT_OPT("--formats")) {
            AGT_STR(o->formats);
        } else if (!compare && AGT_OPT("--name")) {
            AGT_STR(o->name);
        } else if (!compare && AGT_OPT("--save")) {
            AGT_STR(o->cfg.save);
        } else if (!compare && AGT_OPT("--resume")) {
            AGT_STR(o->cfg.resume);
        } else {
            cli_error(cmd, "unknown option '%s' (see 'altgrad %s --help')", a, cmd);
            return CLI_USAGE;
        }
    }
    return 0;
}

/* The comma-separated item `idx` of list into out (cap bytes); returns the
 * number of items, or -1 when item idx does not fit out. */
int agt_cli_list_item(const char *list, int idx, char *out, size_t cap)
{
    int count = 0, fits = 1;
    const char *p = list;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (count == idx && out) {
            fits = len < cap;
            if (!fits)
                len = cap - 1;
            memcpy(out, p, len);
            out[len] = '\0';
        }
        count++;
        if (!e)
            break;
        p = e + 1;
    }
    return fits ? count : -1;
}

/* 1 for the spellings of "no format: float32". */
int agt_cli_is_fp32(const char *s)
{
    static const char *const f32[] = {"fp32", "f32", "float32", "none"};
    for (size_t i = 0; i < sizeof f32 / sizeof f32[0]; i++)
        if (!strcmp(s, f32[i]))
            return 1;
    return 0;
}

/* A format spec of an option: fp32 or anything ag_format_parse takes. */
int agt_cli_check_spec(const char *cmd, const char *spec)
{
    ag_format f;
    if (agt_cli_is_fp32(spec))
        return CLI_OK;
    if (strlen(spec) >= 48) {
        cli_error(cmd, "format spec too long (47 bytes at most): '%s'", spec);
        return CLI_USAGE;
    }
    return cli_parse_format(&f, spec, cmd);
}

/* Fill fmt from one entry (fp32 | F | F/G | fp8); *grad_used is set to 1
 * when the layer's gradient gets --grad-format (grad). */
int agt_cli_entry_to_fmt(const char *cmd, const char *entry, const char *grad,
                        agt_layer_fmt *fmt, int *grad_used)
{
    char e[100];
    if (strlen(entry) >= sizeof e) {
        cli_error(cmd, "format entry too long: '%s'", entry);
        return CLI_USAGE;
    }
    snprintf(e, sizeof e, "%s", entry);
    if (!strcmp(e, "fp8") || !strcmp(e, "FP8"))
        snprintf(e, sizeof e, "%s", FP8_RECIPE);
    if (!e[0]) {
        cli_error(cmd, "empty format entry");
        return CLI_USAGE;
    }
    /* the gradient format: the entry's /G, else --grad-format */
    int from_option = grad && !agt_cli_is_fp32(grad);
    const char *g = from_option ? grad : "fp32";
    char *slash = strchr(e, '/');
    if (slash) {
        *slash = '\0';
        g = slash + 1;
        from_option = 0;
    }
    const char *f = agt_cli_is_fp32(e) ? "fp32" : e;
    if (agt_cli_is_fp32(g))
        g = "fp32";
    if (!strcmp(f, "fp32") && !slash) {
        g = "fp32"; /* an fp32 layer stays float32 through and through */
        from_option = 0;
    }
    if (agt_cli_check_spec(cmd, f) || agt_cli_check_spec(cmd, g))
        return CLI_USAGE;
    snprintf(fmt->spec[AGT_QW], 48, "%.47s", f);
    snprintf(fmt->spec[AGT_QX], 48, "%.47s", f);
    snprintf(fmt->spec[AGT_QG], 48, "%.47s", g);
    if (from_option)
        *grad_used = 1;
    return CLI_OK;
}

/* Layer formats of one run: template entries ('*' = under_test; no
 * template: '*' for every layer). *stars counts the '*' entries (where
 * under_test went); *grad_used is set to 1 when --grad-format reached a
 * layer. */
static int build_layers(const char *cmd, agt_config *c, const char *tmpl,
                        const char *under_test, const char *grad, int *stars,
                        int *grad_used)
{
    const int nlin = c->nlin;
    *stars = 0;
    if (tmpl) {
        int n = agt_cli_list_item(tmpl, 0, NULL, 0);
        if (n != nlin) {
            cli_error(cmd, "--layer-formats has %d entr%s, the model has %d "
                      "linear layers", n, n == 1 ? "y" : "ies", nlin);
            return CLI_USAGE;
        }
    }
    for (int l = 0; l < nlin; l++) {
        char item[100];
        if (tmpl) {
            if (agt_cli_list_item(tmpl, l, item, sizeof item) < 0) {
                cli_error(cmd, "--layer-formats: entry %d is too long", l + 1);
                return CLI_USAGE;
            }
        } else {
            snprintf(item, sizeof item, "*");
        }
        if (!strcmp(item, "*")) {
            (*stars)++;
            snprintf(item, sizeof item, "%s", under_test ? under_test : "fp32");
        }
        if (agt_cli_entry_to_fmt(cmd, item, grad, &c->fmt[l], grad_used))
            return CLI_USAGE;
    }
    return CLI_OK;
}

/* A configuration that names a format no tensor gets is an error: a run
 * that quantizes nothing would read as "this format loses nothing". */
static int grad_option_unused(const char *cmd, const char *grad)
{
    cli_error(cmd, "--grad-format %s is applied to no tensor: it reaches the "
              "output gradient of quantized layers whose entry has no /G, and "
              "there is none", grad);
    return CLI_USAGE;
}

void agt_cli_file_safe(char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
            *s = '-';
}

/* Everything a run writes must be writable before it starts: the output
 * directory (created) and the checkpoint path. Runtime errors (2). */
int agt_cli_check_outputs(const char *cmd, const agt_config *c)
{
    agt_err err;
    if (c->save && agt_check_save(c->save, &err)) {
        cli_error(cmd, "--save: %s", err.msg);
        return CLI_RUNTIME;
    }
    if (agt_mkdirs(c->out_dir, &err)) {
        cli_error(cmd, "--out: %s", err.msg);
        return CLI_RUNTIME;
    }
    if (access(c->out_dir, W_OK | X_OK) != 0) {
        cli_error(cmd, "--out: %s: cannot write there: %s", c->out_dir,
                  strerror(errno));
        return CLI_RUNTIME;
    }
    return CLI_OK;
}

static int load_data(const char *cmd, const agt_config *c, agt_dataset *tr,
                     agt_dataset *te)
{
    agt_err err;
    if (agt_dataset_load_dir(tr, c->data_dir, 1, c->train_limit, &err) ||
        agt_dataset_load_dir(te, c->data_dir, 0, c->test_limit, &err)) {
        cli_error(cmd, "%s", err.msg);
        agt_dataset_free(tr);
        return CLI_RUNTIME;
    }
    return CLI_OK;
}

int agt_cli_set_name(agt_config *c, const char *name, const char *cmd)
{
    if (!name[0] || name[0] == '.' || strlen(name) >= sizeof c->name) {
        cli_error(cmd, "--name '%s': a run name is 1..%zu characters and "
                  "does not start with '.' (it names the output files)",
                  name, sizeof c->name - 1);
        return CLI_USAGE;
    }
    snprintf(c->name, sizeof c->name, "%s", name);
    return CLI_OK;
}

/* "LABEL: PATH" on stdout, the path sanitized (it holds user input). */
void agt_cli_print_path(const char *label, const char *path)
{
    char safe[4096];
    printf("%s: %s\n", label, cli_sanitize(safe, sizeof safe, path));
}

static int write_outputs(const char *cmd, agt_result *runs, int n,
                         const char *out_dir, const char *stem)
{
    agt_err err;
    if (agt_mkdirs(out_dir, &err)) {
        cli_error(cmd, "%s", err.msg);
        return CLI_RUNTIME;
    }
    char path[4096];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s.csv", out_dir, runs[i].cfg.name);
        if (agt_write_csv(&runs[i], path, &err)) {
            cli_error(cmd, "%s", err.msg);
            return CLI_RUNTIME;
        }
        agt_cli_print_path("log", path);
    }
    if (n > 1) {
        snprintf(path, sizeof path, "%s/%s.csv", out_dir, stem);
        if (agt_write_summary_csv(runs, n, path, &err)) {
            cli_error(cmd, "%s", err.msg);
            return CLI_RUNTIME;
        }
        agt_cli_print_path("summary", path);
    }
    snprintf(path, sizeof path, "%s/%s.svg", out_dir, stem);
    if (agt_write_svg(runs, n, path, &err)) {
        cli_error(cmd, "%s", err.msg);
        return CLI_RUNTIME;
    }
    agt_cli_print_path("plot", path);
    return CLI_OK;
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
        fputs(output_train, stdout);
        return CLI_OK;
    }
    if (o.formats && o.layer_formats) {
        cli_error("train", "--format and --layer-formats are exclusive");
        return CLI_USAGE;
    }
    /* every format option up front, used or not */
    if (o.grad_format && agt_cli_check_spec("train", o.grad_format))
        return CLI_USAGE;
    int stars, grad_used = 0;
    if (build_layers("train", &o.cfg, o.layer_formats, o.formats, o.grad_format,
                     &stars, &grad_used))
        return CLI_USAGE;
    if (o.layer_formats && stars > 0) {
        cli_error("train", "--layer-formats %s: '*' (the format under test) is "
                  "for compare; name the layer's format", o.layer_formats);
        return CLI_USAGE;
    }
    if (o.grad_format && !agt_cli_is_fp32(o.grad_format) && !grad_used)
        return grad_option_unused("train", o.grad_format);
    if (o.name) {
        if (agt_cli_set_name(&o.cfg, o.name, "train"))
            return CLI_USAGE;
    } else if (o.formats || o.layer_formats) {
        snprintf(o.cfg.name, sizeof o.cfg.name, "%.63s",
                 o.formats ? o.formats : o.layer_formats);
        if (o.grad_format) {
            size_t l = strlen(o.cfg.name);
            snprintf(o.cfg.name + l, sizeof o.cfg.name - l, "_g%s", o.grad_format);
        }
    }
    agt_cli_file_safe(o.cfg.name);
    if ((rc = agt_cli_check_outputs("train", &o.cfg)))
        return rc;
    agt_dataset tr, te;
    if ((rc = load_data("train", &o.cfg, &tr, &te)))
        return rc;
    agt_result res;
    agt_err err;
    if (agt_run(&res, &o.cfg, &tr, &te, &err)) {
        cli_error("train", "%s", err.msg);
        agt_dataset_free(&tr);
        agt_dataset_free(&te);
        return CLI_RUNTIME;
    }
    agt_print_table(stdout, &res, 1);
    rc = write_outputs("train", &res, 1, o.cfg.out_dir, o.cfg.name);
    if (o.cfg.save && rc == 0)
        agt_cli_print_path("checkpoint", o.cfg.save);
    agt_result_free(&res);
    agt_dataset_free(&tr);
    agt_dataset_free(&te);
    return rc;
}

static int mlp_compare(int argc, char **argv);
int agt_gpt_compare_main(int argc, char **argv);

/* One run of a comparison (each is single-threaded and deterministic, so
 * the results do not depend on how many run at once). */
typedef struct mlp_jobs {
    const agt_config *cfgs;
    agt_result *runs;
    agt_err *errs;
    const agt_dataset *tr, *te;
} mlp_jobs;

static int mlp_job(void *ctx, int i)
{
    mlp_jobs *p = ctx;
    return agt_run(&p->runs[i], &p->cfgs[i], p->tr, p->te, &p->errs[i]);
}

/* compare --model gpt (the default) is the GPT's matrix; --model mlp
 * this file's comparison, without the option. */
int ag_compare_main(int argc, char **argv)
{
    const char *model = "gpt";
    int at = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) {
            model = argv[i + 1];
            at = i;
            break;
        }
        if (!strncmp(argv[i], "--model=", 8)) {
            model = argv[i] + 8;
            at = i;
            break;
        }
    }
    if (strcmp(model, "mlp"))
        return agt_gpt_compare_main(argc, argv);
    /* the MLP's options without --model mlp */
    char **av = malloc((size_t)(argc + 1) * sizeof *av);
    if (!av) {
        cli_error("compare", "out of memory");
        return CLI_RUNTIME;
    }
    int ac = 0;
    for (int i = 0; i < argc; i++) {
        if (i == at) {
            if (!strchr(argv[i], '='))
                i++;
            continue;
        }
        av[ac++] = argv[i];
    }
    av[ac] = NULL;
    int rc = mlp_compare(ac, av);
    free(av);
    return rc;
}

static int mlp_compare(int argc, char **argv)
{
    opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_common(argc, argv, &o, 1);
    if (rc)
        return rc;
    if (o.help) {
        fputs(usage_compare, stdout);
        fputs(usage_common, stdout);
        fputs(output_compare, stdout);
        return CLI_OK;
    }
    /* every format option up front, used or not */
    if (o.grad_format && agt_cli_check_spec("compare", o.grad_format))
        return CLI_USAGE;
    const char *list = o.formats ? o.formats : DEFAULT_FORMATS;
    const int n = agt_cli_list_item(list, 0, NULL, 0);
    agt_config *cfgs = calloc((size_t)n, sizeof *cfgs);
    agt_result *runs = calloc((size_t)n, sizeof *runs);
    if (!cfgs || !runs) {
        free(cfgs);
        free(runs);
        cli_error("compare", "out of memory");
        return CLI_RUNTIME;
    }
    int grad_used = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char item[100];
        cfgs[i] = o.cfg;
        rc = CLI_USAGE;
        if (agt_cli_list_item(list, i, item, sizeof item) < 0) {
            cli_error("compare", "--formats: entry %d is too long", i + 1);
            break;
        }
        if (!item[0]) {
            cli_error("compare", "--formats: entry %d is empty", i + 1);
            break;
        }
        int stars;
        if (build_layers("compare", &cfgs[i], o.layer_formats, item,
                         o.grad_format, &stars, &grad_used))
            break;
        if (stars == 0 && !agt_cli_is_fp32(item)) {
            cli_error("compare", "--formats entry '%s' is applied to no tensor: "
                      "--layer-formats %s has no '*' for the format under test",
                      item, o.layer_formats);
            break;
        }
        if (!strcmp(item, "fp8") || !strcmp(item, "FP8"))
            snprintf(cfgs[i].name, sizeof cfgs[i].name, "fp8-e4m3fn-e5m2");
        else
            snprintf(cfgs[i].name, sizeof cfgs[i].name, "%.63s", item);
        agt_cli_file_safe(cfgs[i].name);
        int dup = 0;
        for (int j = 0; j < i; j++)
            dup |= !strcmp(cfgs[j].name, cfgs[i].name);
        if (dup) {
            cli_error("compare", "--formats: entry '%s' is listed twice (runs "
                      "are named, and their files written, after it)", item);
            break;
        }
        rc = CLI_OK;
    }
    if (rc == CLI_OK && o.grad_format && !agt_cli_is_fp32(o.grad_format) && !grad_used)
        rc = grad_option_unused("compare", o.grad_format);
    if (rc == CLI_OK)
        rc = agt_cli_check_outputs("compare", &o.cfg);
    agt_dataset tr, te;
    if (rc == CLI_OK)
        rc = load_data("compare", &o.cfg, &tr, &te);
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
    int *failed = calloc((size_t)n, sizeof *failed);
    agt_err *errs = calloc((size_t)n, sizeof *errs);
    if (!failed || !errs) {
        free(failed);
        failed = NULL;
        rc = CLI_RUNTIME;
        cli_error("compare", "out of memory");
    } else {
        /* before any worker starts: the runs only ever set the same value */
        openblas_set_num_threads(1);
        mlp_jobs p = {cfgs, runs, errs, &tr, &te};
        agt_run_pool(n, jobs, mlp_job, &p, failed, NULL, 1);
    }
    /* results in the order of --formats; a failed run ends the list */
    int done = 0;
    for (int i = 0; i < n && failed && rc == 0; i++) {
        if (failed[i]) {
            cli_error("compare", "run %s: %s", cfgs[i].name, errs[i].msg);
            rc = CLI_RUNTIME;
            break;
        }
        done++;
    }
    if (failed)
        for (int i = done; i < n; i++)
            if (!failed[i])
                agt_result_free(&runs[i]);
    free(failed);
    free(errs);
    if (done > 0) {
        char data[4096];
        printf("altgrad compare: MLP %d-%d-%d-%d, %d epoch%s, batch %d, %s lr %g, "
               "seed %llu, %zu train / %zu test images from %s\n",
               o.cfg.dims[0], o.cfg.dims[1], o.cfg.dims[2], o.cfg.dims[3],
               o.cfg.epochs, o.cfg.epochs == 1 ? "" : "s", o.cfg.batch,
               agt_optim_name(o.cfg.optimizer, o.cfg.precondition),
               (double)o.cfg.lr,
               (unsigned long long)o.cfg.seed, tr.n, te.n,
               cli_sanitize(data, sizeof data, o.cfg.data_dir));
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
