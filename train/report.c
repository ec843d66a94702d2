/* SPDX-License-Identifier: MIT */
/*
 * report.c — what a run leaves behind: a CSV log per run (one row per
 * epoch, every counter of every quantizer), the comparison table on stdout,
 * a summary CSV, and an SVG plot of the loss and accuracy curves side by
 * side (written by hand: no plotting dependency).
 */
#define _POSIX_C_SOURCE 200809L
#include "train.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

static const char *const qname[AGT_NQ] = {"w", "x", "g"};

int agt_mkdirs(const char *dir, agt_err *err)
{
    char p[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof p)
        return agt_fail(err, "bad output directory '%s'", dir);
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            return agt_fail(err, "%s: cannot create directory: %s", p,
                            strerror(errno));
        p[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return agt_fail(err, "%s: not a directory", dir);
    return 0;
}

static int close_checked(FILE *f, const char *path, agt_err *err)
{
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return agt_fail(err, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

int agt_write_csv(const agt_result *r, const char *path, agt_err *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return agt_fail(err, "%s: cannot create: %s", path, strerror(errno));
    const int nl = r->cfg.nlin;
    fprintf(f, "run,epoch,step,train_loss,test_loss,test_acc,seconds,"
               "stalled,considered,stall_rate,flips,status");
    for (int l = 0; l < nl; l++)
        for (int k = 0; k < AGT_NQ; k++)
            fprintf(f, ",L%d_%s_format,L%d_%s_total,L%d_%s_saturated,"
                       "L%d_%s_underflow,L%d_%s_nan",
                    l + 1, qname[k], l + 1, qname[k], l + 1, qname[k],
                    l + 1, qname[k], l + 1, qname[k]);
    fputc('\n', f);
    for (int i = 0; i < r->nepochs; i++) {
        const agt_epoch *e = &r->epochs[i];
        char status[64];
        if (r->diverged_step && i == r->nepochs - 1)
            snprintf(status, sizeof status, "diverged@%ld", r->diverged_step);
        else
            snprintf(status, sizeof status, "ok");
        double rate = e->considered ? (double)e->stalled / (double)e->considered
                                    : (double)NAN;
        fprintf(f, "%s,%d,%llu,%.10g,%.10g,%.10g,%.3f,%llu,%llu,%.10g,%llu,%s",
                r->cfg.name, e->epoch, (unsigned long long)e->step,
                e->train_loss, e->test_loss, e->test_acc, e->seconds,
                (unsigned long long)e->stalled,
                (unsigned long long)e->considered, rate,
                (unsigned long long)(e->considered - e->stalled), status);
        for (int l = 0; l < nl; l++)
            for (int k = 0; k < AGT_NQ; k++) {
                const ag_stats *s = &e->q[l][k];
                fprintf(f, ",%s,%llu,%llu,%llu,%llu", r->cfg.fmt[l].spec[k],
                        (unsigned long long)s->total,
                        (unsigned long long)s->overflow,
                        (unsigned long long)s->underflow,
                        (unsigned long long)s->nan);
            }
        fputc('\n', f);
    }
    return close_checked(f, path, err);
}

/* Totals of a run over its epochs. */
typedef struct totals {
    uint64_t total, sat, unf, nan, stalled, considered;
    double acc, loss, sec_per_epoch;
} totals;

static totals run_totals(const agt_result *r)
{
    totals t;
    memset(&t, 0, sizeof t);
    double sec = 0.0;
    for (int i = 0; i < r->nepochs; i++) {
        const agt_epoch *e = &r->epochs[i];
        for (int l = 0; l < r->cfg.nlin; l++)
            for (int k = 0; k < AGT_NQ; k++) {
                t.total += e->q[l][k].total;
                t.sat += e->q[l][k].overflow;
                t.unf += e->q[l][k].underflow;
                t.nan += e->q[l][k].nan;
            }
        t.stalled += e->stalled;
        t.considered += e->considered;
        sec += e->seconds;
    }
    t.acc = r->nepochs ? r->epochs[r->nepochs - 1].test_acc : (double)NAN;
    t.loss = r->nepochs ? r->epochs[r->nepochs - 1].train_loss : (double)NAN;
    t.sec_per_epoch = r->nepochs ? sec / r->nepochs : (double)NAN;
    return t;
}

static int is_baseline(const agt_result *r)
{
    for (int l = 0; l < r->cfg.nlin; l++)
        for (int k = 0; k < AGT_NQ; k++)
            if (strcmp(r->cfg.fmt[l].spec[k], "fp32") != 0)
                return 0;
    return 1;
}

static const agt_result *baseline(const agt_result *runs, int n)
{
    for (int i = 0; i < n; i++)
        if (is_baseline(&runs[i]) && !runs[i].diverged_step)
            return &runs[i];
    return NULL;
}

void agt_print_table(FILE *f, const agt_result *runs, int nruns)
{
    const agt_result *base = baseline(runs, nruns);
    const double bacc = base ? run_totals(base).acc : (double)NAN;
    fprintf(f, "%-22s %10s %8s %8s %9s %9s %6s %8s %10s %8s  %s\n", "run",
            "train_loss", "test_acc", "vs_fp32", "saturated", "underflow",
            "nan", "stall", "flips", "s/epoch", "status");
    for (int i = 0; i < nruns; i++) {
        const agt_result *r = &runs[i];
        const totals t = run_totals(r);
        char sat[16] = "-", unf[16] = "-", stall[16] = "-", flips[24] = "-",
             vs[16] = "-", status[48] = "ok";
        if (t.total) {
            snprintf(sat, sizeof sat, "%.3f%%", 100.0 * (double)t.sat / (double)t.total);
            snprintf(unf, sizeof unf, "%.3f%%", 100.0 * (double)t.unf / (double)t.total);
        }
        if (t.considered) {
            snprintf(stall, sizeof stall, "%.2f%%",
                     100.0 * (double)t.stalled / (double)t.considered);
            snprintf(flips, sizeof flips, "%llu",
                     (unsigned long long)(t.considered - t.stalled));
        }
        if (base && r != base && isfinite(t.acc))
            snprintf(vs, sizeof vs, "%+.2f", 100.0 * (t.acc - bacc));
        if (r->diverged_step)
            snprintf(status, sizeof status, "DIVERGED at step %ld",
                     r->diverged_step);
        fprintf(f, "%-22s %10.4f %7.2f%% %8s %9s %9s %6llu %8s %10s %8.2f  %s\n",
                r->cfg.name, t.loss, 100.0 * t.acc, vs, sat, unf,
                (unsigned long long)t.nan, stall, flips, t.sec_per_epoch,
                status);
    }
    fprintf(f, "(test_acc after the last epoch; vs_fp32 in accuracy points; "
               "saturated/underflow: share of all quantized elements;\n"
               " stall: updates that left the quantized weight code unchanged; "
               "flips: updates that changed it)\n");
}

int agt_write_summary_csv(const agt_result *runs, int nruns, const char *path,
                          agt_err *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return agt_fail(err, "%s: cannot create: %s", path, strerror(errno));
    const agt_result *base = baseline(runs, nruns);
    const double bacc = base ? run_totals(base).acc : (double)NAN;
    fprintf(f, "run,epochs,train_loss,test_acc,acc_vs_fp32,quantized,"
               "saturated,underflow,nan,stalled,considered,seconds_per_epoch,"
               "diverged_step\n");
    for (int i = 0; i < nruns; i++) {
        const totals t = run_totals(&runs[i]);
        fprintf(f, "%s,%d,%.10g,%.10g,%.10g,%llu,%llu,%llu,%llu,%llu,%llu,%.3f,%ld\n",
                runs[i].cfg.name, runs[i].nepochs, t.loss, t.acc,
                base ? t.acc - bacc : (double)NAN,
                (unsigned long long)t.total, (unsigned long long)t.sat,
                (unsigned long long)t.unf, (unsigned long long)t.nan,
                (unsigned long long)t.stalled,
                (unsigned long long)t.considered, t.sec_per_epoch,
                runs[i].diverged_step);
    }
    return close_checked(f, path, err);
}

/* ---------------------------------------------------------------- SVG --- */

static const char *const palette[] = {"#000000", "#1f77b4", "#ff7f0e",
                                      "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f",
                                      "#bcbd22", "#17becf"};

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else
            fputc(*s, f);
    }
}

typedef struct panel {
    double x0, y0, w, h;          /* pixel box */
    double xmin, xmax, ymin, ymax;
} panel;

static double px(const panel *p, double x)
{
    return p->x0 + (x - p->xmin) / (p->xmax - p->xmin) * p->w;
}

static double py(const panel *p, double y)
{
    if (y < p->ymin)
        y = p->ymin;
    if (y > p->ymax)
        y = p->ymax;
    return p->y0 + p->h - (y - p->ymin) / (p->ymax - p->ymin) * p->h;
}

static void axes(FILE *f, const panel *p, const char *title,
                 const char *ylabel, int percent)
{
    fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' "
               "fill='none' stroke='#444'/>\n", p->x0, p->y0, p->w, p->h);
    fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='middle' "
               "font-size='15'>", p->x0 + p->w / 2, p->y0 - 10);
    xml_text(f, title);
    fputs("</text>\n", f);
    for (int i = 0; i <= 5; i++) {
        double v = p->ymin + (p->ymax - p->ymin) * i / 5.0, y = py(p, v);
        fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' "
                   "stroke='#ddd'/>\n", p->x0, y, p->x0 + p->w, y);
        fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='end' "
                   "font-size='11'>%.*f%s</text>\n", p->x0 - 4, y + 4,
                percent ? 1 : 3, percent ? 100.0 * v : v, percent ? "%" : "");
    }
    int ticks = (int)ceil(p->xmax - p->xmin);
    int stride = ticks > 10 ? (ticks + 9) / 10 : 1;
    for (int i = 0; i <= ticks; i += stride) {
        double v = p->xmin + i, x = px(p, v);
        if (v > p->xmax + 1e-9)
            break;
        fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='middle' "
                   "font-size='11'>%g</text>\n", x, p->y0 + p->h + 15, v);
    }
    fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='middle' "
               "font-size='12'>epoch</text>\n", p->x0 + p->w / 2,
            p->y0 + p->h + 32);
    fprintf(f, "<text x='%.1f' y='%.1f' font-size='12' transform='rotate(-90 "
               "%.1f %.1f)' text-anchor='middle'>%s</text>\n",
            p->x0 - 48, p->y0 + p->h / 2, p->x0 - 48, p->y0 + p->h / 2, ylabel);
}

int agt_write_svg(const agt_result *runs, int nruns, const char *path,
                  agt_err *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return agt_fail(err, "%s: cannot create: %s", path, strerror(errno));
    const double W = 1280, H = 480;
    panel L = {80, 50, 420, 330, 0, 1, 0, 1}, R = L;
    R.x0 = 640;
    /* ranges over every finite point */
    double lmin = HUGE_VAL, lmax = -HUGE_VAL, amin = HUGE_VAL, amax = -HUGE_VAL,
           xmax = 1;
    for (int i = 0; i < nruns; i++) {
        const agt_result *r = &runs[i];
        for (size_t j = 0; j < r->nloss; j++)
            if (isfinite(r->loss_y[j])) {
                lmin = fmin(lmin, r->loss_y[j]);
                lmax = fmax(lmax, r->loss_y[j]);
                xmax = fmax(xmax, r->loss_x[j]);
            }
        for (int j = 0; j < r->nepochs; j++) {
            if (isfinite(r->epochs[j].test_acc)) {
                amin = fmin(amin, r->epochs[j].test_acc);
                amax = fmax(amax, r->epochs[j].test_acc);
            }
            xmax = fmax(xmax, r->epochs[j].epoch);
        }
    }
    if (!(lmin <= lmax)) {
        lmin = 0;
        lmax = 1;
    }
    if (!(amin <= amax)) {
        amin = 0;
        amax = 1;
    }
    /* loss: clip very high values (a failing run) at 2.5 so the others
     * stay readable */
    if (lmax > 2.5 && lmin < 2.5)
        lmax = 2.5;
    L.ymin = fmax(0.0, lmin - 0.05 * (lmax - lmin + 1e-9));
    L.ymax = lmax + 0.05 * (lmax - lmin + 1e-9);
    R.ymin = fmax(0.0, amin - 0.05 * (amax - amin + 1e-3));
    R.ymax = fmin(1.0, amax + 0.05 * (amax - amin + 1e-3));
    if (R.ymax <= R.ymin)
        R.ymax = R.ymin + 0.01;
    L.xmax = R.xmax = ceil(xmax);
    R.xmin = 0;

    fprintf(f, "<?xml version='1.0' encoding='UTF-8'?>\n"
               "<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' "
               "height='%.0f' viewBox='0 0 %.0f %.0f' "
               "font-family='sans-serif'>\n"
               "<rect width='100%%' height='100%%' fill='white'/>\n",
            W, H, W, H);
    axes(f, &L, "training loss (window mean)", "loss", 0);
    axes(f, &R, "test accuracy (after each epoch)", "accuracy", 1);
    const int npal = (int)(sizeof palette / sizeof palette[0]);
    for (int i = 0; i < nruns; i++) {
        const agt_result *r = &runs[i];
        const char *col = palette[i % npal];
        const char *dash = r->diverged_step ? " stroke-dasharray='6,3'" : "";
        fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='1.6'%s "
                   "points='", col, dash);
        for (size_t j = 0; j < r->nloss; j++)
            if (isfinite(r->loss_y[j]))
                fprintf(f, "%.1f,%.1f ", px(&L, r->loss_x[j]),
                        py(&L, r->loss_y[j]));
        fputs("'/>\n", f);
        fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='1.6'%s "
                   "points='", col, dash);
        for (int j = 0; j < r->nepochs; j++)
            if (isfinite(r->epochs[j].test_acc))
                fprintf(f, "%.1f,%.1f ", px(&R, r->epochs[j].epoch),
                        py(&R, r->epochs[j].test_acc));
        fputs("'/>\n", f);
        for (int j = 0; j < r->nepochs; j++)
            if (isfinite(r->epochs[j].test_acc))
                fprintf(f, "<circle cx='%.1f' cy='%.1f' r='3' fill='%s'/>\n",
                        px(&R, r->epochs[j].epoch),
                        py(&R, r->epochs[j].test_acc), col);
        /* legend, right of the accuracy panel */
        double ly = 60 + 20 * i;
        fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' "
                   "stroke='%s' stroke-width='3'%s/>\n", R.x0 + R.w + 15, ly,
                R.x0 + R.w + 35, ly, col, dash);
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='12'>", R.x0 + R.w + 40,
                ly + 4);
        xml_text(f, r->cfg.name);
        if (r->diverged_step)
            fprintf(f, " (diverged @%ld)", r->diverged_step);
        fputs("</text>\n", f);
    }
    fputs("</svg>\n", f);
    return close_checked(f, path, err);
}
