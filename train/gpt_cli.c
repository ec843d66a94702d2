/* SPDX-License-Identifier: MIT */
/*
 * gpt_cli.c — the GPT's commands:
 *   altgrad gpt [options]              one training run (CSV log, table,
 *                                      checkpoints);
 *   altgrad compare [--model gpt] ...  the experiment matrix (formats x
 *                                      optimizers), its summary CSV, plots
 *                                      and report.md: the main job.
 * Both train through the run loop (agt_run_net) on the bench's GPT and the
 * token stream of a text (the King James Bible by default).
 */
#define _POSIX_C_SOURCE 200809L
#include "gpt.h"
#include "../cli/ag_cli.h"
#include "bench_cli.h"

#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GPT_FORMATS "fp32,bf16,E5M2,E3M4,E1M6,E0M7,E7M0,fp8"
#define GPT_OPTIMIZERS "adamw,manifold"
/* the matrix's schedule: full (about 10 minutes on 2 cores) and --quick */
#define MATRIX_STEPS 800
#define QUICK_STEPS 150
#define STR_(x) #x
#define XSTR(x) STR_(x)

static const char *const usage_gpt =
    "usage: altgrad gpt [options]\n"
    "Train the bench's GPT (nanoGPT layout, byte tokens) once.\n"
    "  --optimizer O      adamw | manifold (AltGrad's ManifoldAdamW: the\n"
    "                     gradient times the stiffness) | manifold-update\n"
    "                     (the update times the stiffness: lr in grid steps)\n"
    "                     | sgd | grid (GridOptim: whole rungs of the\n"
    "                     weights' grid; --grid-rate rungs per unit of\n"
    "                     velocity)\n"
    "  --format SPEC      weights and inputs of every linear (default fp32)\n"
    "  --precondition P   none | grad | update: the same as --optimizer adamw,\n"
    "                     manifold, manifold-update\n"
    "  --csv FILE         the per-evaluation log (default DIR/NAME.csv)\n"
    "  --name NAME        run name (default from the formats and optimizer)\n"
    "  --save FILE        checkpoint at the end (checked before training)\n"
    "  --resume FILE      continue from a checkpoint (same options): the\n"
    "                     same numbers as an uninterrupted run\n"
    "  --max-steps N      stop after N steps (resume continues there)\n";

static const char *const usage_compare =
    "usage: altgrad compare [--model gpt] [options]\n"
    "The experiment matrix: the GPT trained once per format and optimizer,\n"
    "same seed, weights and data order; then which format and optimizer\n"
    "reach the lowest validation loss, and how the others fail.\n"
    "(--model mlp: the MLP on Fashion-MNIST, see altgrad compare --model mlp\n"
    "--help.)\n"
    "  --formats L,...    runs (default " GPT_FORMATS ");\n"
    "                     each fp32 | F | F/G (G: output gradients) | fp8\n"
    "                     (float8_e4m3fn/float8_e5m2), for every linear\n"
    "  --optimizers L,... adamw | manifold | manifold-update | sgd | grid\n"
    "                     (default " GPT_OPTIMIZERS ")\n"
    "  --quick            a short matrix (" XSTR(QUICK_STEPS) " steps instead of "
    XSTR(MATRIX_STEPS) ")\n"
    "  --seed-check 0|1   float32 once more per optimizer with seed + 1, the\n"
    "                     spread a seed alone makes (default 1): smaller\n"
    "                     differences are reported as ties\n"
    "  --jobs N           runs trained at once (default: the CPUs), each on\n"
    "                     CPUs / N threads; the numbers do not depend on N\n";

static const char *const usage_common =
    "\n"
    "  --attn SPEC --mlp SPEC --head SPEC   weights and inputs of one layer\n"
    "                     type (attn: c_attn and attn.c_proj; mlp: c_fc and\n"
    "                     mlp.c_proj; head: lm_head), over the format\n"
    "  --grad-format SPEC output gradients of every linear (default fp32)\n"
    "  --recipe fp8       float8_e4m3fn weights/inputs, float8_e5m2 gradients\n"
    "  --stochastic-grads stochastic rounding of the gradient quantizers\n"
    "  --data FILE        UTF-8 text (default: the King James Bible of\n"
    "                     Debian's bible-kjv); the last 10% validates\n"
    "  --steps N          training steps (gpt: 200; compare: "
    XSTR(MATRIX_STEPS) ")\n"
    "  --batch B          sequences per step (default 16)\n"
    "  --layers N --heads N --embd N --ctx N   model size (2 4 128 64)\n"
    "  --lr X --wd X      learning rate (1e-3) and decay of the 2-D tensors\n"
    "                     (0.1)\n"
    "  --mantissa-bits M  manifold stiffness of float32 weights,\n"
    "                     2^(floor(log2|w|) - M) (default 2); quantized ones\n"
    "                     use their format's grid step\n"
    "  --grid-rate X      grid optimizer: rungs per unit of velocity (6)\n"
    "  --history N        amax window of the delayed scaling (default 16)\n"
    "  --eval-every N     validation every N steps (default 50)\n"
    "  --eval-batches N   validation batches (default 8)\n"
    "  --seed N           weights, data order, stochastic rounding (1)\n"
    "  --threads N        threads of one run (gpt default: all CPUs;\n"
    "                     compare: CPUs / --jobs); the numbers do not change\n"
    "  --out DIR          output directory (gpt: runs; compare: runs/gpt)\n"
    "  --quiet            no progress on stderr\n"
    "Exit status: 0 ok (a diverged run is a result), 1 usage, 2 runtime error.\n";

typedef struct gopts {
    agt_config cfg;
    const char *fmt_all, *fmt_attn, *fmt_mlp, *fmt_head, *fmt_grad;
    const char *optimizer, *formats, *optimizers, *csv, *name;
    int jobs, quick, help, steps_set, threads_set, recipe, seed_check;
    double grid_rate;
} gopts;

static int bad_optimizer(const char *cmd, const char *opt, const char *v)
{
    cli_error(cmd, "%s: '%s' is not an optimizer: expected " AGT_OPTIM_NAMES,
              opt, v);
    return CLI_USAGE;
}

static int parse(int argc, char **argv, gopts *o, int matrix)
{
    const char *cmd = matrix ? "compare" : "gpt";
    memset(o, 0, sizeof *o);
    agt_config_default_gpt(&o->cfg);
    o->cfg.out_dir = matrix ? "runs/gpt" : "runs";
    o->grid_rate = ag_grid_opts_default().rate;
    o->seed_check = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        long long n = 0;
        int m;
        float x;
        const int threads = o->cfg.threads;
        o->cfg.threads = 0;
        int common;
        if (agt_cli_common_option(argc, argv, &i, &o->cfg, cmd, 4096,
                                  &common))
            return CLI_USAGE;
        o->threads_set |= o->cfg.threads != 0;
        if (!o->cfg.threads)
            o->cfg.threads = threads;
        if (common)
            continue;
        if (cli_is_help(a)) {
            o->help = 1;
        } else if (matrix && !strcmp(a, "--quick")) {
            o->quick = 1;
        } else if (AGT_OPT("--model")) {
            if (m < 0)
                return CLI_USAGE;
            if (strcmp(v, "gpt")) {
                cli_error(cmd, "--model: '%s' is not a model: expected gpt or "
                          "mlp", v);
                return CLI_USAGE;
            }
        } else if (AGT_OPT("--steps")) {
            AGT_INT("--steps", 1, 100000000);
            o->cfg.steps = (long)n;
            o->steps_set = 1;
        } else if (AGT_OPT("--layers")) {
            AGT_INT("--layers", 1, 64);
            o->cfg.dims[0] = (int)n;
        } else if (AGT_OPT("--heads")) {
            AGT_INT("--heads", 1, 1024);
            o->cfg.dims[1] = (int)n;
        } else if (AGT_OPT("--embd")) {
            AGT_INT("--embd", 1, 8192);
            o->cfg.dims[2] = (int)n;
        } else if (AGT_OPT("--ctx")) {
            AGT_INT("--ctx", 1, 4096);
            o->cfg.dims[3] = (int)n;
        } else if (AGT_OPT("--grid-rate")) {
            if (m < 0 || cli_real_arg(&x, v, 0.0, 1, 1e6, cmd, "--grid-rate"))
                return CLI_USAGE;
            o->grid_rate = x;
        } else if (AGT_OPT("--eval-every")) {
            AGT_INT("--eval-every", 1, 100000000);
            o->cfg.eval_every = (int)n;
        } else if (AGT_OPT("--eval-batches")) {
            AGT_INT("--eval-batches", 1, 10000);
            o->cfg.eval_batches = (int)n;
        } else if (AGT_OPT("--mantissa-bits")) {
            AGT_INT("--mantissa-bits", 0, 23);
            o->cfg.mantissa_bits = (int)n;
        } else if (AGT_OPT("--data")) {
            AGT_STR(o->cfg.text_path);
        } else if (AGT_OPT("--attn")) {
            AGT_STR(o->fmt_attn);
        } else if (AGT_OPT("--mlp")) {
            AGT_STR(o->fmt_mlp);
        } else if (AGT_OPT("--head")) {
            AGT_STR(o->fmt_head);
        } else if (AGT_OPT("--grad-format")) {
            AGT_STR(o->fmt_grad);
        } else if (AGT_OPT("--recipe")) {
            if (m < 0)
                return CLI_USAGE;
            if (strcmp(v, "fp8")) {
                cli_error(cmd, "--recipe: '%s' is not a recipe: expected fp8", v);
                return CLI_USAGE;
            }
            o->recipe = 1;
        } else if (!matrix && AGT_OPT("--format")) {
            AGT_STR(o->fmt_all);
        } else if (!matrix && AGT_OPT("--optimizer")) {
            AGT_STR(o->optimizer);
        } else if (!matrix && AGT_OPT("--precondition")) {
            /* the older spelling: --precondition none|grad|update */
            int pre;
            char msg[200];
            if (m < 0)
                return CLI_USAGE;
            if (ag_option_parse(&pre, AG_OPTION_PRECONDITION, v, msg,
                                sizeof msg) != AG_OK) {
                cli_error(cmd, "--precondition: %s", msg);
                return CLI_USAGE;
            }
            o->optimizer = pre == AG_PRECONDITION_GRAD     ? "manifold"
                           : pre == AG_PRECONDITION_UPDATE ? "manifold-update"
                                                           : "adamw";
        } else if (!matrix && AGT_OPT("--csv")) {
            AGT_STR(o->csv);
        } else if (!matrix && AGT_OPT("--name")) {
            AGT_STR(o->name);
        } else if (!matrix && AGT_OPT("--save")) {
            AGT_STR(o->cfg.save);
        } else if (!matrix && AGT_OPT("--resume")) {
            AGT_STR(o->cfg.resume);
        } else if (!matrix && AGT_OPT("--max-steps")) {
            AGT_INT("--max-steps", 1, LONG_MAX);
            o->cfg.max_steps = (long)n;
        } else if (matrix && AGT_OPT("--formats")) {
            AGT_STR(o->formats);
        } else if (matrix && AGT_OPT("--optimizers")) {
            AGT_STR(o->optimizers);
        } else if (matrix && AGT_OPT("--seed-check")) {
            AGT_INT("--seed-check", 0, 1);
            o->seed_check = (int)n;
        } else if (matrix && AGT_OPT("--jobs")) {
            AGT_INT("--jobs", 1, 64);
            o->jobs = (int)n;
        } else {
            cli_error(cmd, "unknown option '%s' (see 'altgrad %s --help')", a,
                      cmd);
            return CLI_USAGE;
        }
    }
    if (o->recipe && (o->fmt_all || o->fmt_grad)) {
        cli_error(cmd, "--recipe fp8 sets the formats: give it without "
                  "--format / --grad-format");
        return CLI_USAGE;
    }
    if (o->cfg.dims[2] % o->cfg.dims[1] != 0) {
        cli_error(cmd, "--embd %d must be a multiple of --heads %d",
                  o->cfg.dims[2], o->cfg.dims[1]);
        return CLI_USAGE;
    }
    if (!o->steps_set && matrix)
        o->cfg.steps = o->quick ? QUICK_STEPS : MATRIX_STEPS;
    if (o->cfg.steps % o->cfg.eval_every != 0) {
        cli_error(cmd, "--steps %ld must be a multiple of --eval-every %d "
                  "(the validation points)", o->cfg.steps, o->cfg.eval_every);
        return CLI_USAGE;
    }
    /* every format option up front, used or not */
    const char *specs[] = {o->fmt_all, o->fmt_attn, o->fmt_mlp, o->fmt_head,
                           o->fmt_grad};
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++)
        if (specs[k] && agt_cli_check_spec(cmd, specs[k]))
            return CLI_USAGE;
    return CLI_OK;
}

/* The formats of one run: entry for every linear, then the per-type
 * options over it; --grad-format for the gradients of entries without
 * /G. */
static int set_formats(const char *cmd, agt_config *c, const gopts *o,
                       const char *entry)
{
    int used = 0;
    agt_layer_fmt f;
    if (agt_cli_entry_to_fmt(cmd, entry, o->fmt_grad, &f, &used))
        return CLI_USAGE;
    /* a float32 entry keeps float32 gradients unless --grad-format says */
    if (o->fmt_grad && !strchr(entry, '/') && agt_cli_is_fp32(entry))
        snprintf(f.spec[AGT_QG], 48, "%.47s",
                 agt_cli_is_fp32(o->fmt_grad) ? "fp32" : o->fmt_grad);
    for (int t = 0; t < AGT_NLT; t++)
        c->fmt[t] = f;
    const struct {
        const char *spec;
        unsigned mask;
    } over[3] = {{o->fmt_attn, 1u << AGT_LT_QKV | 1u << AGT_LT_PROJ},
                 {o->fmt_mlp, 1u << AGT_LT_FC | 1u << AGT_LT_MPROJ},
                 {o->fmt_head, 1u << AGT_LT_HEAD}};
    for (int k = 0; k < 3; k++)
        if (over[k].spec)
            for (int t = 0; t < AGT_NLT; t++)
                if (over[k].mask >> t & 1u) {
                    const char *s = agt_cli_is_fp32(over[k].spec) ? "fp32"
                                                                  : over[k].spec;
                    snprintf(c->fmt[t].spec[AGT_QW], 48, "%.47s", s);
                    snprintf(c->fmt[t].spec[AGT_QX], 48, "%.47s", s);
                }
    return CLI_OK;
}

static int load_text(const char *cmd, const agt_config *c, agt_text *tx)
{
    agt_err err;
    if (agt_text_load(tx, c->text_path, c->val_frac, &err)) {
        cli_error(cmd, "%s", err.msg);
        return CLI_RUNTIME;
    }
    return CLI_OK;
}

static void describe(const agt_config *c, const agt_text *tx, double unigram)
{
    char data[4096];
    printf("GPT %d layers x %d wide, %d heads, context %d; %ld steps of %d x "
           "%d bytes, seed %llu; %s: %zu train / %zu validation bytes "
           "(unigram baseline %.4f nats/byte)\n",
           c->dims[0], c->dims[2], c->dims[1], c->dims[3], c->steps, c->batch,
           c->dims[3], (unsigned long long)c->seed,
           c->text_path ? cli_sanitize(data, sizeof data, c->text_path)
                        : "the King James Bible (bible-kjv)",
           tx->ntrain, tx->n - tx->ntrain, unigram);
}

int ag_gpt_main(int argc, char **argv)
{
    gopts o;
    int rc = parse(argc, argv, &o, 0);
    if (rc)
        return rc;
    if (o.help) {
        fputs(usage_gpt, stdout);
        fputs(usage_common, stdout);
        return CLI_OK;
    }
    agt_config *c = &o.cfg;
    if (o.optimizer && agt_optim_parse(o.optimizer, &c->optimizer,
                                    &c->precondition))
        return bad_optimizer("gpt", "--optimizer", o.optimizer);
    const char *entry = o.recipe ? "fp8" : o.fmt_all ? o.fmt_all : "fp32";
    if (set_formats("gpt", c, &o, entry))
        return CLI_USAGE;
    if (o.name) {
        if (agt_cli_set_name(c, o.name, "gpt"))
            return CLI_USAGE;
    } else {
        snprintf(c->name, sizeof c->name, "%.40s-%.20s", entry,
                 o.optimizer ? o.optimizer : "adamw");
    }
    agt_cli_file_safe(c->name);
    if (!o.threads_set) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        c->threads = cpus > 0 ? (int)cpus : 1;
    }
    if ((rc = agt_cli_check_outputs("gpt", c)))
        return rc;
    agt_text tx;
    if ((rc = load_text("gpt", c, &tx)))
        return rc;
    agt_result res;
    agt_err err;
    const double unigram = agt_text_unigram_loss(&tx);
    if (agt_run_gpt(&res, c, &tx, o.grid_rate, &err)) {
        cli_error("gpt", "%s", err.msg);
        agt_text_free(&tx);
        return CLI_RUNTIME;
    }
    describe(c, &tx, unigram);
    char entries[1][100];
    snprintf(entries[0], sizeof entries[0], "%s", entry);
    const agt_matrix one = {&res,     1,         1,
                            1,        0,         (const char(*)[100])entries,
                            unigram,  tx.ntrain, tx.n - tx.ntrain,
                            c->text_path};
    agt_gpt_print_table(stdout, &one);
    printf("%.0f tokens/s over the training steps (%d thread%s)\n",
           res.step_seconds > 0 ? res.tokens_per_step / res.step_seconds : 0.0,
           c->threads, c->threads == 1 ? "" : "s");
    char path[4096];
    if (o.csv)
        snprintf(path, sizeof path, "%s", o.csv);
    else
        snprintf(path, sizeof path, "%s/%s.csv", c->out_dir, c->name);
    if (agt_gpt_write_csv(&res, path, &err)) {
        cli_error("gpt", "%s", err.msg);
        rc = CLI_RUNTIME;
    } else {
        agt_cli_print_path("log", path);
    }
    if (c->save && rc == 0)
        agt_cli_print_path("checkpoint", c->save);
    agt_result_free(&res);
    agt_text_free(&tx);
    return rc;
}

/* ------------------------------------------------------------- matrix --- */

typedef struct gpt_jobs {
    const agt_config *cfgs;
    agt_result *runs;
    agt_err *errs;
    const agt_text *text;
    double grid_rate;
} gpt_jobs;

static int gpt_job(void *ctx, int i)
{
    gpt_jobs *p = ctx;
    return agt_run_gpt(&p->runs[i], &p->cfgs[i], p->text, p->grid_rate,
                       &p->errs[i]);
}

int agt_gpt_compare_main(int argc, char **argv)
{
    gopts o;
    int rc = parse(argc, argv, &o, 1);
    if (rc)
        return rc;
    if (o.help) {
        fputs(usage_compare, stdout);
        fputs(usage_common, stdout);
        printf("\nOutput (DIR): RUN.csv per run (one row per validation), "
               "matrix.csv (one row\nper run), val_loss.svg (validation loss, "
               "a panel per optimizer), rates.svg\n(overflow, underflow and "
               "stall per layer type) and report.md (the answer,\nwritten from "
               "this run's numbers); a table on stdout.\n");
        return CLI_OK;
    }
    const char *flist = o.formats ? o.formats : GPT_FORMATS;
    const char *olist = o.optimizers ? o.optimizers : GPT_OPTIMIZERS;
    if (o.recipe) {
        cli_error("compare", "--recipe: the matrix names its formats in "
                  "--formats (fp8 is the recipe's entry)");
        return CLI_USAGE;
    }
    const int nf = agt_cli_list_item(flist, 0, NULL, 0);
    const int no = agt_cli_list_item(olist, 0, NULL, 0);
    if (nf * no > 256) {
        cli_error("compare", "%d runs: the matrix takes at most 256", nf * no);
        return CLI_USAGE;
    }
    /* the seed check: float32 once more per optimizer, seed + 1 */
    const int ns = o.seed_check ? no : 0;
    const int n = nf * no + ns;
    agt_config *cfgs = calloc((size_t)n, sizeof *cfgs);
    agt_result *runs = calloc((size_t)n, sizeof *runs);
    agt_err *errs = calloc((size_t)n, sizeof *errs);
    int *failed = calloc((size_t)n, sizeof *failed);
    char (*entries)[100] = calloc((size_t)n, sizeof *entries);
    if (!cfgs || !runs || !errs || !failed || !entries) {
        rc = CLI_RUNTIME;
        cli_error("compare", "out of memory");
        goto out;
    }
    /* the CPUs shared out: --jobs runs at once, each on the rest */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1)
        cpus = 1;
    const int jobs = o.jobs > 0 ? o.jobs : (int)cpus;
    const int per_run = jobs >= cpus ? 1 : (int)(cpus / jobs);
    int grad_used = 0;
    for (int j = 0; j < no && rc == 0; j++) {
        char opt[40];
        agt_optkind kind;
        ag_precondition pre;
        if (agt_cli_list_item(olist, j, opt, sizeof opt) < 0 || !opt[0] ||
            agt_optim_parse(opt, &kind, &pre)) {
            rc = bad_optimizer("compare", "--optimizers", opt);
            break;
        }
        for (int j2 = 0; j2 < j && rc == 0; j2++) {
            char prev[40];
            agt_cli_list_item(olist, j2, prev, sizeof prev);
            if (!strcmp(prev, opt)) {
                cli_error("compare", "--optimizers: '%s' is listed twice", opt);
                rc = CLI_USAGE;
            }
        }
        for (int f = 0; f < nf && rc == 0; f++) {
            const int i = j * nf + f;
            char item[100];
            if (agt_cli_list_item(flist, f, item, sizeof item) < 0 || !item[0]) {
                cli_error("compare", "--formats: entry %d is %s", f + 1,
                          item[0] ? "too long" : "empty");
                rc = CLI_USAGE;
                break;
            }
            cfgs[i] = o.cfg;
            cfgs[i].optimizer = kind;
            cfgs[i].precondition = pre;
            cfgs[i].threads = o.threads_set ? o.cfg.threads : per_run;
            cfgs[i].progress_seconds = 15.0;
            agt_layer_fmt probe;
            if (agt_cli_entry_to_fmt("compare", item, o.fmt_grad, &probe,
                                     &grad_used) ||
                set_formats("compare", &cfgs[i], &o, item)) {
                rc = CLI_USAGE;
                break;
            }
            snprintf(entries[i], sizeof entries[i], "%s", item);
            snprintf(cfgs[i].name, sizeof cfgs[i].name, "%.40s-%.20s",
                     !strcmp(item, "fp8") || !strcmp(item, "FP8")
                         ? "fp8-e4m3fn-e5m2" : item, opt);
            agt_cli_file_safe(cfgs[i].name);
            for (int k = 0; k < f; k++)
                if (!strcmp(cfgs[j * nf + k].name, cfgs[i].name)) {
                    cli_error("compare", "--formats: entry '%s' is listed "
                              "twice (runs are named, and their files "
                              "written, after it)", item);
                    rc = CLI_USAGE;
                    break;
                }
        }
    }
    for (int j = 0; j < ns && rc == 0; j++) {
        const int i = nf * no + j;
        cfgs[i] = cfgs[j * nf];
        cfgs[i].seed = o.cfg.seed + 1;
        if (set_formats("compare", &cfgs[i], &o, "fp32"))
            rc = CLI_USAGE;
        snprintf(entries[i], sizeof entries[i], "fp32 (seed %llu)",
                 (unsigned long long)cfgs[i].seed);
        char opt[40];
        agt_cli_list_item(olist, j, opt, sizeof opt);
        snprintf(cfgs[i].name, sizeof cfgs[i].name, "fp32-seed%llu-%.20s",
                 (unsigned long long)cfgs[i].seed, opt);
        agt_cli_file_safe(cfgs[i].name);
    }
    if (rc == 0 && o.fmt_grad && !agt_cli_is_fp32(o.fmt_grad) && !grad_used) {
        int all_fp32 = 1;
        for (int f = 0; f < nf; f++) {
            char item[100];
            agt_cli_list_item(flist, f, item, sizeof item);
            all_fp32 &= agt_cli_is_fp32(item);
        }
        if (!all_fp32) {
            cli_error("compare", "--grad-format %s is applied to no tensor: "
                      "every quantized entry names its own /G", o.fmt_grad);
            rc = CLI_USAGE;
        }
    }
    if (rc)
        goto out;
    if ((rc = agt_cli_check_outputs("compare", &o.cfg)))
        goto out;
    agt_text tx;
    if ((rc = load_text("compare", &o.cfg, &tx)))
        goto out;
    const double unigram = agt_text_unigram_loss(&tx);
    /* one BLAS thread per run (before any worker starts) */
    openblas_set_num_threads(1);
    if (!o.cfg.quiet)
        fprintf(stderr, "[matrix] %d runs (%d formats x %d optimizers%s), "
                "%ld steps each, %d at a time\n", n, nf, no,
                ns ? ", float32 with a second seed" : "", o.cfg.steps,
                jobs < n ? jobs : n);
    gpt_jobs p = {cfgs, runs, errs, &tx, o.grid_rate};
    agt_run_pool(n, jobs, gpt_job, &p, failed, "matrix", o.cfg.quiet);
    for (int i = 0; i < n; i++)
        if (failed[i]) {
            cli_error("compare", "run %s: %s", cfgs[i].name, errs[i].msg);
            rc = CLI_RUNTIME;
        }
    if (rc == 0) {
        describe(&o.cfg, &tx, unigram);
        agt_matrix mx = {runs, n, nf, no, ns, (const char(*)[100])entries,
                         unigram, tx.ntrain, tx.n - tx.ntrain,
                         o.cfg.text_path};
        agt_gpt_print_table(stdout, &mx);
        agt_err err;
        char path[4096];
        for (int i = 0; i < n && rc == 0; i++) {
            snprintf(path, sizeof path, "%s/%s.csv", o.cfg.out_dir,
                     runs[i].cfg.name);
            if (agt_gpt_write_csv(&runs[i], path, &err)) {
                cli_error("compare", "%s", err.msg);
                rc = CLI_RUNTIME;
            }
        }
        static const char *const what[4] = {"summary", "plot", "plot",
                                            "report"};
        static const char *const file[4] = {"matrix.csv", "val_loss.svg",
                                            "rates.svg", "report.md"};
        for (int k = 0; k < 4 && rc == 0; k++) {
            snprintf(path, sizeof path, "%s/%s", o.cfg.out_dir, file[k]);
            int w = k == 0   ? agt_matrix_write_csv(&mx, path, &err)
                    : k == 1 ? agt_matrix_write_loss_svg(&mx, path, &err)
                    : k == 2 ? agt_matrix_write_rates_svg(&mx, path, &err)
                             : agt_matrix_write_report(&mx, path, &err);
            if (w) {
                cli_error("compare", "%s", err.msg);
                rc = CLI_RUNTIME;
            } else {
                agt_cli_print_path(what[k], path);
            }
        }
        if (rc == 0) {
            char safe[4096];
            printf("runs: %s/RUN.csv (%d files)\n",
                   cli_sanitize(safe, sizeof safe, o.cfg.out_dir), n);
        }
    }
    for (int i = 0; i < n; i++)
        if (!failed[i])
            agt_result_free(&runs[i]);
    agt_text_free(&tx);
out:
    free(cfgs);
    free(runs);
    free(errs);
    free(failed);
    free(entries);
    return rc;
}
