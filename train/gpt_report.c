/* SPDX-License-Identifier: MIT */
/*
 * gpt_report.c — what the GPT runs leave behind: a CSV log per run, the
 * table on stdout, and for the matrix its summary CSV, two SVG plots and
 * report.md. Every sentence of the report is chosen and filled from the
 * numbers of the runs it describes.
 *
 * The report's judgements, in one place (verdict()):
 *   diverged   the training loss was not finite at some step;
 *   no-learn   the final validation loss is not 0.05 nats/byte below the
 *              unigram (byte-frequency) baseline;
 *   degraded   the final validation loss is more than DEGRADED (2 %) above
 *              the float32 run of the same optimizer, or more than the seed
 *              spread when that is larger;
 *   ok         the rest; within TIE (0.5 %), or the seed spread when that is
 *              larger, of each other counts as a tie.
 * The seed spread of an optimizer: how far float32 from seed + 1 ends from
 * float32 from the matrix's seed (the seed check runs).
 * Symptoms: the layer type and role with the largest saturated, underflow
 * and NaN shares of their quantized elements; the layer type with the
 * largest stall rate (updates that left the stored weight unchanged); an
 * effective rank below RANK_COLLAPSE (70 %) of the float32 run's.
 */
#define _POSIX_C_SOURCE 200809L
#include "gpt.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEGRADED 0.02
#define TIE 0.005
#define NO_LEARN 0.05
#define RANK_COLLAPSE 0.7

static const char *const role_name[AGT_NQ] = {"weights", "inputs",
                                              "gradients"};
static const char *const role_col[AGT_NQ] = {"w", "x", "g"};

static int close_checked(FILE *f, const char *path, agt_err *err)
{
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return agt_fail(err, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

const char *agt_gpt_optimizer_name(const agt_config *c)
{
    return agt_optim_name(c->optimizer, c->precondition);
}

/* ------------------------------------------------------------ figures --- */

/* What one run's records add up to. */
typedef struct summary {
    int evals;
    long steps;                      /* steps done */
    double final_val, best_val, final_train;
    long best_step;
    uint64_t q_total[AGT_MAX_LAYERS][AGT_NQ], q_sat[AGT_MAX_LAYERS][AGT_NQ],
        q_unf[AGT_MAX_LAYERS][AGT_NQ], q_nan[AGT_MAX_LAYERS][AGT_NQ];
    uint64_t g_stalled[AGT_MAX_LAYERS], g_considered[AGT_MAX_LAYERS];
    agt_counts c;
    double eff_rank[AGT_MAX_LAYERS], stable_rank[AGT_MAX_LAYERS];
    double tokens_per_s;
    int quantized;                   /* any role of any type not fp32 */
} summary;

static int is_f32(const char *s)
{
    return !strcmp(s, "fp32");
}

static summary summarize(const agt_result *r)
{
    summary s;
    memset(&s, 0, sizeof s);
    s.final_val = s.best_val = s.final_train = (double)NAN;
    s.evals = r->nepochs;
    for (int g = 0; g < AGT_MAX_LAYERS; g++)
        s.eff_rank[g] = s.stable_rank[g] = (double)NAN;
    for (int i = 0; i < r->nepochs; i++) {
        const agt_epoch *e = &r->epochs[i];
        s.steps = (long)e->step;
        s.final_train = e->train_loss;
        if (isfinite(e->test_loss)) {
            s.final_val = e->test_loss;
            if (!(e->test_loss >= s.best_val)) {
                s.best_val = e->test_loss;
                s.best_step = (long)e->step;
            }
        } else {
            s.final_val = (double)NAN;
        }
        for (int g = 0; g < r->ngroups; g++) {
            for (int k = 0; k < AGT_NQ; k++) {
                s.q_total[g][k] += e->q[g][k].total;
                s.q_sat[g][k] += e->q[g][k].overflow;
                s.q_unf[g][k] += e->q[g][k].underflow;
                s.q_nan[g][k] += e->q[g][k].nan;
            }
            s.g_stalled[g] += e->g_stalled[g];
            s.g_considered[g] += e->g_considered[g];
            s.eff_rank[g] = e->eff_rank[g];
            s.stable_rank[g] = e->stable_rank[g];
        }
        agt_counts_add(&s.c, e, r->ngroups);
    }
    if (r->diverged_step)
        s.steps = r->diverged_step;
    s.tokens_per_s = r->step_seconds > 0 ? r->tokens_per_step / r->step_seconds
                                         : (double)NAN;
    for (int g = 0; g < r->ngroups; g++)
        for (int k = 0; k < AGT_NQ; k++)
            s.quantized |= !is_f32(r->cfg.fmt[g].spec[k]);
    return s;
}

static double share(uint64_t a, uint64_t b)
{
    return b ? (double)a / (double)b : 0.0;
}

/* The float32 run of the same optimizer (NULL: none, or it diverged). */
static const agt_result *baseline_of(const agt_result *runs, int n,
                                     const agt_result *r)
{
    for (int i = 0; i < n; i++) {
        const agt_result *b = &runs[i];
        if (b->cfg.optimizer != r->cfg.optimizer ||
            b->cfg.precondition != r->cfg.precondition ||
            b->cfg.seed != r->cfg.seed || b->diverged_step)
            continue;
        int all = 1;
        for (int g = 0; g < b->ngroups; g++)
            for (int k = 0; k < AGT_NQ; k++)
                all &= is_f32(b->cfg.fmt[g].spec[k]);
        if (all)
            return b;
    }
    return NULL;
}

typedef enum { V_OK, V_DEGRADED, V_NOLEARN, V_DIVERGED } vkind;

typedef struct verdict {
    vkind kind;
    double rel;                      /* final val vs the baseline's */
    long departed;                   /* first validation step more than
                                        DEGRADED above the baseline's */
} verdict;

static verdict judge(const agt_result *r, const agt_result *base,
                     double unigram, double degraded)
{
    verdict v = {V_OK, (double)NAN, 0};
    const summary s = summarize(r);
    if (base) {
        const summary b = summarize(base);
        if (isfinite(s.final_val) && isfinite(b.final_val))
            v.rel = s.final_val / b.final_val - 1.0;
        for (int i = 0; i < r->nepochs && i < base->nepochs; i++) {
            double a = r->epochs[i].test_loss, c = base->epochs[i].test_loss;
            if (!(a <= c * (1.0 + degraded))) {
                v.departed = (long)r->epochs[i].step;
                break;
            }
        }
    }
    if (r->diverged_step)
        v.kind = V_DIVERGED;
    else if (!(s.final_val < unigram - NO_LEARN))
        v.kind = V_NOLEARN;
    else if (isfinite(v.rel) && v.rel > degraded)
        v.kind = V_DEGRADED;
    return v;
}

static const char *verdict_word(vkind k)
{
    return k == V_DIVERGED ? "diverged"
           : k == V_NOLEARN ? "did not learn"
           : k == V_DEGRADED ? "degraded"
                             : "ok";
}

/* ------------------------------------------------------------ per run --- */

int agt_gpt_write_csv(const agt_result *r, const char *path, agt_err *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return agt_fail(err, "%s: cannot create: %s", path, strerror(errno));
    fprintf(f, "run,eval,step,train_loss,val_loss,seconds,stalled,considered,"
               "stall_rate,status");
    for (int g = 0; g < r->ngroups; g++) {
        for (int k = 0; k < AGT_NQ; k++)
            fprintf(f, ",%s_%s_format,%s_%s_total,%s_%s_saturated,"
                       "%s_%s_underflow,%s_%s_nan",
                    r->group[g], role_col[k], r->group[g], role_col[k],
                    r->group[g], role_col[k], r->group[g], role_col[k],
                    r->group[g], role_col[k]);
        fprintf(f, ",%s_stall_rate,%s_stable_rank,%s_eff_rank", r->group[g],
                r->group[g], r->group[g]);
    }
    fputc('\n', f);
    for (int i = 0; i < r->nepochs; i++) {
        const agt_epoch *e = &r->epochs[i];
        char status[64] = "ok";
        if (r->diverged_step && i == r->nepochs - 1)
            snprintf(status, sizeof status, "diverged@%ld", r->diverged_step);
        else if (e->partial_steps)
            snprintf(status, sizeof status, "partial@%llu/%zu",
                     (unsigned long long)e->partial_steps, r->steps_per_epoch);
        fprintf(f, "%s,%d,%llu,%.10g,%.10g,%.3f,%llu,%llu,%.10g,%s",
                r->cfg.name, e->epoch, (unsigned long long)e->step,
                e->train_loss, e->test_loss, e->seconds,
                (unsigned long long)e->stalled,
                (unsigned long long)e->considered,
                e->considered ? (double)e->stalled / (double)e->considered
                              : (double)NAN,
                status);
        for (int g = 0; g < r->ngroups; g++) {
            for (int k = 0; k < AGT_NQ; k++)
                agt_csv_stats(f, r->cfg.fmt[g].spec[k], &e->q[g][k]);
            fprintf(f, ",%.10g,%.6g,%.6g",
                    e->g_considered[g] ? (double)e->g_stalled[g] /
                                             (double)e->g_considered[g]
                                       : (double)NAN,
                    e->stable_rank[g], e->eff_rank[g]);
        }
        fputc('\n', f);
    }
    return close_checked(f, path, err);
}

/* ------------------------------------------------------------- matrix --- */

/* The seed check of optimizer j: |final val (seed + 1) / final val - 1|
 * of float32; NaN without one. */
static double spread_of(const agt_matrix *m, int j)
{
    if (j >= m->ns)
        return (double)NAN;
    const agt_result *a = &m->runs[m->nf * m->no + j];
    const agt_result *b = baseline_of(m->runs, m->nf * m->no, &m->runs[j * m->nf]);
    if (!b || a->diverged_step)
        return (double)NAN;
    const double va = summarize(a).final_val, vb = summarize(b).final_val;
    return isfinite(va) && isfinite(vb) ? fabs(va / vb - 1.0) : (double)NAN;
}

static int optimizer_index(const agt_matrix *m, const agt_result *r)
{
    for (int j = 0; j < m->no; j++) {
        const agt_config *c = &m->runs[j * m->nf].cfg;
        if (c->optimizer == r->cfg.optimizer &&
            c->precondition == r->cfg.precondition)
            return j;
    }
    return -1;
}

/* Ties: within TIE or the seed spread, whichever is larger; degraded:
 * more than DEGRADED or the seed spread above float32. */
static double tie_of(const agt_matrix *m, int j)
{
    const double sp = spread_of(m, j);
    return isfinite(sp) && sp > TIE ? sp : TIE;
}

static double degraded_of(const agt_matrix *m, const agt_result *r)
{
    const double sp = spread_of(m, optimizer_index(m, r));
    return isfinite(sp) && sp > DEGRADED ? sp : DEGRADED;
}

void agt_gpt_print_table(FILE *f, const agt_matrix *m)
{
    const agt_result *runs = m->runs;
    const int n = m->n;
    const double unigram = m->unigram;
    fprintf(f, "%-30s %9s %9s %8s %9s %9s %6s %8s %8s  %s\n", "run",
            "val_loss", "best", "vs_fp32", "saturated", "underflow", "nan",
            "stall", "tok/s", "status");
    for (int i = 0; i < n; i++) {
        const agt_result *r = &runs[i];
        const summary s = summarize(r);
        const agt_result *base = baseline_of(runs, n, r);
        const verdict v = judge(r, base, unigram, degraded_of(m, r));
        char vs[16] = "-", sat[16] = "-", unf[16] = "-", st[16] = "-",
             status[64];
        if (base && base != r && isfinite(v.rel))
            snprintf(vs, sizeof vs, "%+.2f%%", 100.0 * v.rel);
        if (s.c.total) {
            snprintf(sat, sizeof sat, "%.3f%%", 100.0 * share(s.c.sat, s.c.total));
            snprintf(unf, sizeof unf, "%.3f%%", 100.0 * share(s.c.unf, s.c.total));
        }
        if (s.c.considered)
            snprintf(st, sizeof st, "%.2f%%",
                     100.0 * share(s.c.stalled, s.c.considered));
        if (r->diverged_step)
            snprintf(status, sizeof status, "DIVERGED at step %ld",
                     r->diverged_step);
        else
            snprintf(status, sizeof status, "%s", verdict_word(v.kind));
        fprintf(f, "%-30s %9.4f %9.4f %8s %9s %9s %6llu %8s %8.0f  %s\n",
                r->cfg.name, s.final_val, s.best_val, vs, sat, unf,
                (unsigned long long)s.c.nan, st, s.tokens_per_s, status);
    }
    fprintf(f, "(validation loss in nats per byte, after the last step; "
               "unigram baseline %.4f; vs_fp32: against\n the float32 run of "
               "the same optimizer; saturated/underflow: share of all "
               "quantized elements;\n stall: updates that left the stored "
               "weight unchanged)\n", unigram);
}

int agt_matrix_write_csv(const agt_matrix *m, const char *path, agt_err *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return agt_fail(err, "%s: cannot create: %s", path, strerror(errno));
    fprintf(f, "run,format,optimizer,steps,final_val_loss,best_val_loss,"
               "best_step,val_vs_fp32,final_train_loss,quantized,saturated,"
               "underflow,nan,stall_rate,tokens_per_second,diverged_step,"
               "verdict,unigram_loss\n");
    for (int i = 0; i < m->n; i++) {
        const agt_result *r = &m->runs[i];
        const summary s = summarize(r);
        const verdict v = judge(r, baseline_of(m->runs, m->n, r), m->unigram,
                                degraded_of(m, r));
        fprintf(f, "%s,%s,%s,%ld,%.10g,%.10g,%ld,%.10g,%.10g,%llu,%llu,%llu,"
                   "%llu,%.10g,%.1f,%ld,%s,%.10g\n",
                r->cfg.name, m->entries[i], agt_gpt_optimizer_name(&r->cfg),
                s.steps, s.final_val, s.best_val, s.best_step, v.rel,
                s.final_train, (unsigned long long)s.c.total,
                (unsigned long long)s.c.sat, (unsigned long long)s.c.unf,
                (unsigned long long)s.c.nan,
                s.c.considered ? share(s.c.stalled, s.c.considered)
                               : (double)NAN,
                s.tokens_per_s, r->diverged_step, verdict_word(v.kind),
                m->unigram);
    }
    return close_checked(f, path, err);
}

int agt_matrix_write_loss_svg(const agt_matrix *m, const char *path,
                              agt_err *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return agt_fail(err, "%s: cannot create: %s", path, strerror(errno));
    const double pw = 420, ph = 330, gap = 90;
    const double W = 80 + m->no * (pw + gap) + 170, H = 460;
    double lo = HUGE_VAL, hi = -HUGE_VAL, xmax = 1;
    for (int i = 0; i < m->n; i++)
        for (int j = 0; j < m->runs[i].nepochs; j++) {
            const agt_epoch *e = &m->runs[i].epochs[j];
            if (isfinite(e->test_loss)) {
                lo = fmin(lo, e->test_loss);
                hi = fmax(hi, e->test_loss);
            }
            xmax = fmax(xmax, (double)e->step);
        }
    if (!(lo <= hi)) {
        lo = 0;
        hi = 1;
    }
    /* the baseline in view; a failing run far above it is clipped */
    hi = fmin(fmax(hi, m->unigram), m->unigram + 0.5);
    lo = fmin(lo, m->unigram);
    const double pad = 0.05 * (hi - lo + 1e-9);
    agt_svg_begin(f, W, H);
    for (int j = 0; j < m->no; j++) {
        agt_panel P = {80 + j * (pw + gap), 50, pw, ph, 0, xmax,
                       lo - pad, hi + pad};
        char title[96];
        snprintf(title, sizeof title, "validation loss, %s",
                 agt_gpt_optimizer_name(&m->runs[j * m->nf].cfg));
        agt_svg_axes(f, &P, title, "step", "nats per byte", 0);
        const double yb = agt_py(&P, m->unigram);
        fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' "
                   "stroke='#999' stroke-dasharray='2,3'/>\n"
                   "<text x='%.1f' y='%.1f' font-size='10' fill='#666' "
                   "text-anchor='end'>unigram %.3f</text>\n",
                P.x0, yb, P.x0 + P.w, yb, P.x0 + P.w - 4, yb - 4, m->unigram);
        for (int k = 0; k < m->nf; k++) {
            const agt_result *r = &m->runs[j * m->nf + k];
            const char *col = agt_palette[k % AGT_NPALETTE];
            const char *dash = r->diverged_step ? " stroke-dasharray='6,3'" : "";
            fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='1.6'%s "
                       "points='", col, dash);
            for (int e = 0; e < r->nepochs; e++)
                if (isfinite(r->epochs[e].test_loss))
                    fprintf(f, "%.1f,%.1f ",
                            agt_px(&P, (double)r->epochs[e].step),
                            agt_py(&P, r->epochs[e].test_loss));
            fputs("'/>\n", f);
            if (r->diverged_step) /* a cross where it stopped */
                fprintf(f, "<text x='%.1f' y='%.1f' fill='%s' font-size='14' "
                           "text-anchor='middle'>&#215;</text>\n",
                        agt_px(&P, (double)r->diverged_step), P.y0 + 14, col);
        }
    }
    for (int j = 0; j < m->ns; j++) {
        /* the seed check, thin and grey, in its optimizer's panel */
        agt_panel P = {80 + j * (pw + gap), 50, pw, ph, 0, xmax,
                       lo - pad, hi + pad};
        const agt_result *r = &m->runs[m->nf * m->no + j];
        fprintf(f, "<polyline fill='none' stroke='#888' stroke-width='1' "
                   "stroke-dasharray='1,2' points='");
        for (int e = 0; e < r->nepochs; e++)
            if (isfinite(r->epochs[e].test_loss))
                fprintf(f, "%.1f,%.1f ", agt_px(&P, (double)r->epochs[e].step),
                        agt_py(&P, r->epochs[e].test_loss));
        fputs("'/>\n", f);
    }
    const double lx = 80 + m->no * (pw + gap) - gap + 20;
    for (int k = 0; k < m->nf; k++) {
        const double ly = 60 + 20 * k;
        fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' "
                   "stroke='%s' stroke-width='3'/>\n"
                   "<text x='%.1f' y='%.1f' font-size='12'>",
                lx, ly, lx + 20, ly, agt_palette[k % AGT_NPALETTE], lx + 25,
                ly + 4);
        agt_svg_text(f, m->entries[k]);
        fputs("</text>\n", f);
    }
    if (m->ns) {
        const double ly = 60 + 20 * m->nf;
        fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' "
                   "stroke='#888' stroke-dasharray='1,2'/>\n"
                   "<text x='%.1f' y='%.1f' font-size='12'>",
                lx, ly, lx + 20, ly, lx + 25, ly + 4);
        agt_svg_text(f, m->entries[m->nf * m->no]);
        fputs("</text>\n", f);
    }
    fputs("</svg>\n", f);
    return close_checked(f, path, err);
}

/* A cell's shade: white at 0, darkest at 1 and above (rates on a log
 * scale from 1e-6). */
static double shade(double rate)
{
    if (!(rate > 1e-6))
        return 0.0;
    double t = (log10(rate) + 6.0) / 6.0;
    return t > 1.0 ? 1.0 : t;
}

int agt_matrix_write_rates_svg(const agt_matrix *m, const char *path,
                               agt_err *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return agt_fail(err, "%s: cannot create: %s", path, strerror(errno));
    const int ng = m->n ? m->runs[0].ngroups : 0;
    const double cw = 74, chh = 20, left = 230, top = 80;
    const double pw = ng * cw, gap = 40;
    const int rows = m->nf * m->no;
    const double W = left + 3 * (pw + gap), H = top + rows * chh + 60;
    static const char *const title[3] = {
        "saturated (share of quantized elements)",
        "underflow (share of quantized elements)",
        "stall (updates leaving the weight's code)"};
    static const char *const hue[3] = {"214,39,40", "31,119,180", "148,103,189"};
    agt_svg_begin(f, W, H);
    for (int i = 0; i < rows; i++) {
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='11' "
                   "text-anchor='end'>", left - 8, top + i * chh + 14);
        agt_svg_text(f, m->runs[i].cfg.name);
        fputs("</text>\n", f);
    }
    for (int p = 0; p < 3; p++) {
        const double x0 = left + p * (pw + gap);
        fprintf(f, "<text x='%.1f' y='30' font-size='13' "
                   "text-anchor='middle'>%s</text>\n", x0 + pw / 2, title[p]);
        for (int g = 0; g < ng; g++) {
            fprintf(f, "<text x='%.1f' y='%.1f' font-size='10' "
                       "text-anchor='middle'>", x0 + g * cw + cw / 2, top - 8);
            agt_svg_text(f, m->runs[0].group[g]);
            fputs("</text>\n", f);
        }
        for (int i = 0; i < rows; i++) {
            const summary s = summarize(&m->runs[i]);
            for (int g = 0; g < ng; g++) {
                uint64_t a = 0, b = 0;
                if (p == 2) {
                    a = s.g_stalled[g];
                    b = s.g_considered[g];
                } else {
                    for (int k = 0; k < AGT_NQ; k++) {
                        if (is_f32(m->runs[i].cfg.fmt[g].spec[k]))
                            continue;
                        a += p == 0 ? s.q_sat[g][k] : s.q_unf[g][k];
                        b += s.q_total[g][k];
                    }
                }
                const double x = x0 + g * cw, y = top + i * chh;
                if (!b) {
                    fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' "
                               "height='%.1f' fill='#f4f4f4' stroke='#fff'/>\n"
                               "<text x='%.1f' y='%.1f' font-size='10' "
                               "fill='#aaa' text-anchor='middle'>-</text>\n",
                            x, y, cw, chh, x + cw / 2, y + 14);
                    continue;
                }
                const double r = share(a, b), t = shade(r);
                fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' "
                           "fill='rgba(%s,%.3f)' stroke='#fff'/>\n"
                           "<text x='%.1f' y='%.1f' font-size='10' fill='%s' "
                           "text-anchor='middle'>%.2g%%</text>\n",
                        x, y, cw, chh, hue[p], 0.08 + 0.85 * t, x + cw / 2,
                        y + 14, t > 0.6 ? "#fff" : "#000", 100.0 * r);
            }
        }
    }
    fprintf(f, "<text x='%.1f' y='%.1f' font-size='11' fill='#555'>shade: "
               "log scale from 1e-6 to 100%%; '-': nothing quantized (or no "
               "quantized weights to stall)</text>\n", left, H - 20);
    fputs("</svg>\n", f);
    return close_checked(f, path, err);
}

/* ------------------------------------------------------------- report --- */

/* The worst (group, role) of a run by one counter (0 saturated, 1
 * underflow, 2 NaN); share of that quantizer's elements. */
static double worst_q(const summary *s, int ngroups, int which, int *g_out,
                      int *k_out)
{
    double best = -1.0;
    *g_out = *k_out = -1;
    for (int g = 0; g < ngroups; g++)
        for (int k = 0; k < AGT_NQ; k++) {
            if (!s->q_total[g][k])
                continue;
            const uint64_t a = which == 0 ? s->q_sat[g][k]
                               : which == 1 ? s->q_unf[g][k]
                                            : s->q_nan[g][k];
            const double r = share(a, s->q_total[g][k]);
            if (r > best) {
                best = r;
                *g_out = g;
                *k_out = k;
            }
        }
    return best;
}

static double worst_stall(const summary *s, int ngroups, int *g_out)
{
    double best = -1.0;
    *g_out = -1;
    for (int g = 0; g < ngroups; g++)
        if (s->g_considered[g]) {
            double r = share(s->g_stalled[g], s->g_considered[g]);
            if (r > best) {
                best = r;
                *g_out = g;
            }
        }
    return best;
}

static void pct(char *out, size_t cap, double r)
{
    if (r >= 0.0995)
        snprintf(out, cap, "%.1f%%", 100.0 * r);
    else if (r > 0.0)
        snprintf(out, cap, "%.2g%%", 100.0 * r);
    else
        snprintf(out, cap, "0%%");
}

static int entry_is_f32(const agt_matrix *m, int f)
{
    const agt_result *r = &m->runs[f];
    for (int g = 0; g < r->ngroups; g++)
        for (int k = 0; k < AGT_NQ; k++)
            if (!is_f32(r->cfg.fmt[g].spec[k]))
                return 0;
    return 1;
}

static void symptoms(FILE *f, const agt_matrix *m, const agt_result *r,
                     const agt_result *base, const verdict *v)
{
    const summary s = summarize(r);
    const int ng = r->ngroups;
    char a[32], b[32];
    if (v->kind == V_DIVERGED)
        fprintf(f, "- When: the training loss was not finite at step %ld "
                   "of %ld; the counters below are of the steps until then.\n",
                r->diverged_step, r->cfg.steps);
    else if (v->departed)
        fprintf(f, "- When: its validation loss was first more than %.1f%% "
                   "above float32's at step %ld; at the end it was %.4f "
                   "nats/byte (%+.1f%%).\n",
                100.0 * degraded_of(m, r), v->departed, s.final_val,
                100.0 * v->rel);
    if (v->kind == V_NOLEARN)
        fprintf(f, "- It ended at %.4f nats/byte against the unigram "
                   "baseline's %.4f: it learnt %s than predicting byte "
                   "frequencies.\n", s.final_val, m->unigram,
                s.final_val < m->unigram ? "little more" : "nothing more");
    int g, k;
    double w = worst_q(&s, ng, 0, &g, &k);
    if (g >= 0) {
        pct(a, sizeof a, w);
        if (w > 0.0)
            fprintf(f, "- Saturation: largest in the %s %s, %s of their "
                       "elements clipped to the format's largest value",
                    r->group[g], role_name[k], a);
        else
            fprintf(f, "- Saturation: no quantized element was clipped");
        int g2, k2;
        double u = worst_q(&s, ng, 1, &g2, &k2);
        pct(b, sizeof b, u);
        if (u > 0.0)
            fprintf(f, "; underflow: largest in the %s %s, %s flushed to "
                       "zero.\n", r->group[g2], role_name[k2], b);
        else
            fprintf(f, "; underflow: no nonzero element was flushed to "
                       "zero.\n");
        double nn = worst_q(&s, ng, 2, &g2, &k2);
        if (nn > 0.0)
            fprintf(f, "- NaN: %llu quantized elements were NaN, most in the "
                       "%s %s.\n", (unsigned long long)s.c.nan, r->group[g2],
                    role_name[k2]);
    } else {
        fprintf(f, "- Nothing was quantized in this run.\n");
    }
    double st = worst_stall(&s, ng, &g);
    if (g >= 0) {
        pct(a, sizeof a, st);
        fprintf(f, "- Stall: %s of the %s weight updates left the stored "
                   "weight unchanged (the highest of the layer types).\n",
                a, r->group[g]);
    }
    if (base && base != r) {
        const summary bs = summarize(base);
        int said = 0;
        for (int t = 0; t < ng; t++) {
            if (!(isfinite(s.eff_rank[t]) && isfinite(bs.eff_rank[t])))
                continue;
            double q = s.eff_rank[t] / bs.eff_rank[t];
            if (q < RANK_COLLAPSE) {
                fprintf(f, "%s%s %.1f against float32's %.1f",
                        said ? "; " : "- Rank: the effective rank collapsed: ",
                        r->group[t], s.eff_rank[t], bs.eff_rank[t]);
                said = 1;
            }
        }
        if (said)
            fputs(".\n", f);
        else if (v->kind != V_DIVERGED)
            fprintf(f, "- Rank: no layer type's effective rank fell below "
                       "%.0f%% of float32's.\n", 100.0 * RANK_COLLAPSE);
    }
}

int agt_matrix_write_report(const agt_matrix *m, const char *path,
                            agt_err *err)
{
    if (m->n < 1)
        return agt_fail(err, "%s: no runs to report", path);
    FILE *f = fopen(path, "w");
    if (!f)
        return agt_fail(err, "%s: cannot create: %s", path, strerror(errno));
    const agt_config *c0 = &m->runs[0].cfg;
    summary *S = calloc((size_t)m->n, sizeof *S);
    verdict *V = calloc((size_t)m->n, sizeof *V);
    const agt_result **B = calloc((size_t)m->n, sizeof *B);
    if (!S || !V || !B) {
        free(S);
        free(V);
        free(B);
        fclose(f);
        return agt_fail(err, "out of memory (report)");
    }
    const int nm = m->nf * m->no;    /* the matrix without the seed check */
    for (int i = 0; i < m->n; i++) {
        S[i] = summarize(&m->runs[i]);
        B[i] = baseline_of(m->runs, m->n, &m->runs[i]);
        V[i] = judge(&m->runs[i], B[i], m->unigram,
                     degraded_of(m, &m->runs[i]));
    }
    fprintf(f, "# Which format and optimizer train the GPT best\n\n");
    fprintf(f, "Written by `altgrad compare` from the numbers of this run. "
               "GPT of %d layers, %d wide, %d heads, context %d; %d runs (%d "
               "format entries x %d optimizers), each %ld steps of %d x %d "
               "bytes from seed %llu, on %s (%zu train / %zu validation "
               "bytes). Formats apply to the weights and inputs of every "
               "linear layer (attention, MLP, the tied head), gradients as "
               "each entry says; delayed scaling over %zu steps.\n\n",
            c0->dims[0], c0->dims[2], c0->dims[1], c0->dims[3], m->n, m->nf,
            m->no, c0->steps, c0->batch, c0->dims[3],
            (unsigned long long)c0->seed,
            m->text_path ? "the given text" : "the King James Bible",
            m->ntrain, m->nval, c0->hist_len);

    /* ---- the answer ---- */
    int best = -1;
    for (int i = 0; i < nm; i++)
        if (V[i].kind != V_DIVERGED && isfinite(S[i].final_val) &&
            (best < 0 || S[i].final_val < S[best].final_val))
            best = i;
    fprintf(f, "## The answer\n\n");
    if (best < 0) {
        fprintf(f, "- No run finished: every one diverged.\n");
    } else {
        const agt_result *rb = &m->runs[best];
        fprintf(f, "- Lowest validation loss: **%s** (%s with %s), %.4f "
                   "nats/byte after %ld steps, %.4f below the unigram "
                   "baseline (%.4f).\n",
                rb->cfg.name, m->entries[best],
                agt_gpt_optimizer_name(&rb->cfg), S[best].final_val,
                S[best].steps, m->unigram - S[best].final_val, m->unigram);
        /* is its lead over the next run beyond what a seed changes? */
        int second = -1;
        for (int i = 0; i < nm; i++)
            if (i != best && V[i].kind != V_DIVERGED &&
                isfinite(S[i].final_val) &&
                (second < 0 || S[i].final_val < S[second].final_val))
                second = i;
        const int jb = optimizer_index(m, rb);
        if (second >= 0 && jb >= 0) {
            const double lead = S[second].final_val / S[best].final_val - 1.0;
            fprintf(f, "  - Next: %s at %.4f, %.2f%% higher: %s.\n",
                    m->runs[second].cfg.name, S[second].final_val,
                    100.0 * lead,
                    lead > tie_of(m, jb)
                        ? "a lead beyond the ties of this matrix"
                        : "a lead within the ties of this matrix (see the "
                          "seed check below), so not a ranking");
        }
    }
    for (int j = 0; j < m->no; j++) {
        const char *on = agt_gpt_optimizer_name(&m->runs[j * m->nf].cfg);
        int bf = -1, bq = -1;
        for (int k = 0; k < m->nf; k++) {
            const int i = j * m->nf + k;
            if (entry_is_f32(m, i) && V[i].kind != V_DIVERGED)
                bf = i;
            else if (V[i].kind != V_DIVERGED && isfinite(S[i].final_val) &&
                     (bq < 0 || S[i].final_val < S[bq].final_val))
                bq = i;
        }
        if (bf >= 0 && bq >= 0) {
            const double d = S[bq].final_val - S[bf].final_val;
            fprintf(f, "- With %s: float32 reached %.4f; the best narrow "
                       "format was %s at %.4f, %s float32 by %.4f nats/byte "
                       "(%.2f%%)%s.\n",
                    on, S[bf].final_val, m->entries[bq], S[bq].final_val,
                    d < 0 ? "below" : "above", fabs(d),
                    100.0 * fabs(d) / S[bf].final_val,
                    fabs(d) <= tie_of(m, j) * S[bf].final_val ? ", a tie"
                                                              : "");
        }
        /* the entries by outcome */
        int nok = 0, ndeg = 0, nfail = 0;
        for (int k = 0; k < m->nf; k++) {
            const int i = j * m->nf + k;
            if (entry_is_f32(m, i))
                continue;
            nok += V[i].kind == V_OK;
            ndeg += V[i].kind == V_DEGRADED;
            nfail += V[i].kind == V_DIVERGED || V[i].kind == V_NOLEARN;
        }
        fprintf(f, "  - within %.1f%% of float32: %d",
                100.0 * degraded_of(m, &m->runs[j * m->nf]), nok);
        const char *sep = " (";
        for (int k = 0; k < m->nf; k++) {
            const int i = j * m->nf + k;
            if (!entry_is_f32(m, i) && V[i].kind == V_OK) {
                fprintf(f, "%s%s %+.2f%%", sep, m->entries[k], 100.0 * V[i].rel);
                sep = ", ";
            }
        }
        fprintf(f, "%s; degraded: %d", nok ? ")" : "", ndeg);
        sep = " (";
        for (int k = 0; k < m->nf; k++) {
            const int i = j * m->nf + k;
            if (V[i].kind == V_DEGRADED) {
                fprintf(f, "%s%s %+.1f%%", sep, m->entries[k], 100.0 * V[i].rel);
                sep = ", ";
            }
        }
        fprintf(f, "%s; failed: %d", ndeg ? ")" : "", nfail);
        sep = " (";
        for (int k = 0; k < m->nf; k++) {
            const int i = j * m->nf + k;
            if (V[i].kind == V_DIVERGED)
                fprintf(f, "%s%s diverged at step %ld", sep, m->entries[k],
                        m->runs[i].diverged_step);
            else if (V[i].kind == V_NOLEARN)
                fprintf(f, "%s%s did not learn", sep, m->entries[k]);
            else
                continue;
            sep = ", ";
        }
        fprintf(f, "%s.\n", nfail ? ")" : "");
    }

    /* ---- the seed check ---- */
    if (m->ns) {
        fprintf(f, "\n## How much a seed alone changes\n\n");
        for (int j = 0; j < m->ns; j++) {
            const int i = nm + j;
            const char *on = agt_gpt_optimizer_name(&m->runs[i].cfg);
            const double sp = spread_of(m, j);
            if (!isfinite(sp)) {
                fprintf(f, "- With %s: the float32 run of seed %llu did not "
                           "finish, so no spread is measured.\n", on,
                        (unsigned long long)m->runs[i].cfg.seed);
                continue;
            }
            fprintf(f, "- With %s: float32 from seed %llu (weights and data "
                       "order) ended at %.4f, %.2f%% from seed %llu's. "
                       "Differences within %.2f%% are called ties, and a "
                       "format is called degraded above %.2f%%.\n",
                    on, (unsigned long long)m->runs[i].cfg.seed,
                    S[i].final_val, 100.0 * sp,
                    (unsigned long long)m->runs[j * m->nf].cfg.seed,
                    100.0 * tie_of(m, j),
                    100.0 * degraded_of(m, &m->runs[i]));
        }
    }

    /* ---- the optimizers ---- */
    int ja = -1;
    for (int j = 0; j < m->no; j++)
        if (m->runs[j * m->nf].cfg.optimizer == AGT_ADAMW &&
            m->runs[j * m->nf].cfg.precondition == AG_PRECONDITION_NONE)
            ja = j;
    if (ja >= 0 && m->no > 1) {
        fprintf(f, "\n## Does geometry-aware optimization help?\n\n");
        for (int j = 0; j < m->no; j++) {
            if (j == ja)
                continue;
            const char *on = agt_gpt_optimizer_name(&m->runs[j * m->nf].cfg);
            int better = 0, worse = 0, tie = 0, cnt = 0, most = -1, least = -1;
            double sum = 0.0, dmin = HUGE_VAL, dmax = -HUGE_VAL;
            for (int k = 0; k < m->nf; k++) {
                const int i = j * m->nf + k, a = ja * m->nf + k;
                if (!(isfinite(S[i].final_val) && isfinite(S[a].final_val)) ||
                    V[i].kind == V_DIVERGED || V[a].kind == V_DIVERGED)
                    continue;
                const double d = S[i].final_val - S[a].final_val;
                cnt++;
                sum += d;
                const double tj = tie_of(m, j) > tie_of(m, ja) ? tie_of(m, j)
                                                               : tie_of(m, ja);
                if (fabs(d) <= tj * S[a].final_val)
                    tie++;
                else if (d < 0)
                    better++;
                else
                    worse++;
                if (d < dmin) {
                    dmin = d;
                    most = k;
                }
                if (d > dmax) {
                    dmax = d;
                    least = k;
                }
            }
            if (!cnt) {
                fprintf(f, "- %s against AdamW: no format finished under "
                           "both.\n", on);
                continue;
            }
            fprintf(f, "- %s against AdamW, format by format (%d formats "
                       "that finished under both): lower validation loss "
                       "for %d, higher for %d, a tie for %d; "
                       "mean difference %+.4f nats/byte.",
                    on, cnt, better, worse, tie, sum / cnt);
            /* the extremes, and whether they are beyond the ties */
            const double tj = tie_of(m, j) > tie_of(m, ja) ? tie_of(m, j)
                                                           : tie_of(m, ja);
            if (most >= 0 && dmin < 0)
                fprintf(f, " Its largest gain: %s (%+.4f, %s)",
                        m->entries[most], dmin,
                        -dmin > tj * S[ja * m->nf + most].final_val
                            ? "beyond the ties" : "within the ties");
            if (least >= 0 && dmax > 0)
                fprintf(f, "%s largest loss: %s (%+.4f, %s)",
                        most >= 0 && dmin < 0 ? "; its" : " Its",
                        m->entries[least], dmax,
                        dmax > tj * S[ja * m->nf + least].final_val
                            ? "beyond the ties" : "within the ties");
            fprintf(f, "%s\n", (most >= 0 && dmin < 0) || (least >= 0 && dmax > 0)
                                   ? "." : "");
            int saved = 0, lost = 0;
            for (int k = 0; k < m->nf; k++) {
                const int i = j * m->nf + k, a = ja * m->nf + k;
                saved += V[a].kind != V_OK && V[i].kind == V_OK;
                lost += V[a].kind == V_OK && V[i].kind != V_OK;
            }
            if (saved || lost)
                fprintf(f, "  - formats that fail or degrade under AdamW and "
                           "not under %s: %d; the other way round: %d.\n",
                        on, saved, lost);
        }
    }

    /* ---- the table ---- */
    fprintf(f, "\n## Validation loss (nats/byte) after the last step\n\n"
               "| format |");
    for (int j = 0; j < m->no; j++)
        fprintf(f, " %s |", agt_gpt_optimizer_name(&m->runs[j * m->nf].cfg));
    fprintf(f, "\n|---|");
    for (int j = 0; j < m->no; j++)
        fprintf(f, "---|");
    fputc('\n', f);
    for (int k = 0; k < m->nf; k++) {
        fprintf(f, "| %s |", m->entries[k]);
        for (int j = 0; j < m->no; j++) {
            const int i = j * m->nf + k;
            if (V[i].kind == V_DIVERGED)
                fprintf(f, " diverged at step %ld |", m->runs[i].diverged_step);
            else if (entry_is_f32(m, i) || !isfinite(V[i].rel))
                fprintf(f, " %.4f |", S[i].final_val);
            else
                fprintf(f, " %.4f (%+.2f%%)%s |", S[i].final_val,
                        100.0 * V[i].rel,
                        V[i].kind == V_OK ? "" : V[i].kind == V_DEGRADED
                                                     ? " degraded"
                                                     : " no learning");
        }
        fputc('\n', f);
    }
    fprintf(f, "\nIn brackets: against float32 under the same optimizer. "
               "Unigram baseline: %.4f.\n", m->unigram);

    /* ---- failures ---- */
    fprintf(f, "\n## Failures and their symptoms\n\n");
    int nbad = 0;
    for (int i = 0; i < nm; i++) {
        if (V[i].kind == V_OK)
            continue;
        nbad++;
        fprintf(f, "### %s: %s\n\n", m->runs[i].cfg.name,
                verdict_word(V[i].kind));
        symptoms(f, m, &m->runs[i], B[i], &V[i]);
        fputc('\n', f);
    }
    if (!nbad)
        fprintf(f, "No run diverged, failed to learn or ended degraded "
                   "against float32.\n\n");

    /* ---- per layer type ---- */
    const int ng = m->runs[0].ngroups;
    fprintf(f, "## Per layer type, over the quantized runs\n\n"
               "| layer type | most saturated | most underflow | most "
               "stalled | lowest effective rank (float32) |\n"
               "|---|---|---|---|---|\n");
    for (int g = 0; g < ng; g++) {
        int is = -1, iu = -1, it = -1, ir = -1;
        double vs = -1, vu = -1, vt = -1, vr = HUGE_VAL;
        for (int i = 0; i < m->n; i++) {
            uint64_t sat = 0, unf = 0, tot = 0;
            for (int k = 0; k < AGT_NQ; k++) {
                sat += S[i].q_sat[g][k];
                unf += S[i].q_unf[g][k];
                tot += S[i].q_total[g][k];
            }
            if (tot) {
                if (share(sat, tot) > vs) {
                    vs = share(sat, tot);
                    is = i;
                }
                if (share(unf, tot) > vu) {
                    vu = share(unf, tot);
                    iu = i;
                }
            }
            if (S[i].g_considered[g] &&
                share(S[i].g_stalled[g], S[i].g_considered[g]) > vt) {
                vt = share(S[i].g_stalled[g], S[i].g_considered[g]);
                it = i;
            }
            if (tot && isfinite(S[i].eff_rank[g]) && S[i].eff_rank[g] < vr) {
                vr = S[i].eff_rank[g];
                ir = i;
            }
        }
        char a[32], b[32], t[32];
        pct(a, sizeof a, vs);
        pct(b, sizeof b, vu);
        pct(t, sizeof t, vt);
        fprintf(f, "| %s | %s %s | %s %s | %s %s |", m->runs[0].group[g],
                is >= 0 ? m->runs[is].cfg.name : "-", is >= 0 ? a : "",
                iu >= 0 ? m->runs[iu].cfg.name : "-", iu >= 0 ? b : "",
                it >= 0 ? m->runs[it].cfg.name : "-", it >= 0 ? t : "");
        if (ir >= 0 && B[ir])
            fprintf(f, " %s %.1f (%.1f) |\n", m->runs[ir].cfg.name, vr,
                    summarize(B[ir]).eff_rank[g]);
        else if (ir >= 0)
            fprintf(f, " %s %.1f |\n", m->runs[ir].cfg.name, vr);
        else
            fprintf(f, " - |\n");
    }
    fprintf(f, "\nSaturated and underflow: shares of the quantized elements "
               "of that layer type (weights, inputs and gradients together); "
               "stalled: weight updates that left the stored value "
               "unchanged; effective rank: exp of the entropy of the "
               "normalised singular values of the weights after the last "
               "step (the layer type's mean over blocks).\n\n");
    fprintf(f, "Files: matrix.csv (one row per run), RUN.csv (one row per "
               "validation), val_loss.svg, rates.svg.\n");
    free(S);
    free(V);
    free(B);
    return close_checked(f, path, err);
}
