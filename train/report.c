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

void agt_csv_stats(FILE *f, const char *spec, const ag_stats *s)
{
    fprintf(f, ",%s,%llu,%llu,%llu,%llu", spec, (unsigned long long)s->total,
            (unsigned long long)s->overflow, (unsigned long long)s->underflow,
            (unsigned long long)s->nan);
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
        else if (e->partial_steps)
            snprintf(status, sizeof status, "partial@%llu/%zu",
                     (unsigned long long)e->partial_steps, r->steps_per_epoch);
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
            for (int k = 0; k < AGT_NQ; k++)
                agt_csv_stats(f, r->cfg.fmt[l].spec[k], &e->q[l][k]);
        fputc('\n', f);
    }
    return close_checked(f, path, err);
}

agt_totals agt_result_totals(const agt_result *r)
{
    agt_totals t;
    memset(&t, 0, sizeof t);
    t.c = r->counts_before;
    double sec = 0.0;
    for (int i = 0; i < r->nepochs; i++) {
        agt_counts_add(&t.c, &r->epochs[i], r->cfg.nlin);
        sec += r->epochs[i].seconds;
    }
    t.epochs = r->epochs_before + r->nepochs;
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
    const double bacc = base ? agt_result_totals(base).acc : (double)NAN;
    int partial = 0;
    fprintf(f, "%-22s %10s %8s %8s %9s %9s %6s %8s %10s %8s  %s\n", "run",
            "train_loss", "test_acc", "vs_fp32", "saturated", "underflow",
            "nan", "stall", "flips", "s/epoch", "status");
    for (int i = 0; i < nruns; i++) {
        const agt_result *r = &runs[i];
        const agt_totals t = agt_result_totals(r);
        const agt_epoch *last = r->nepochs ? &r->epochs[r->nepochs - 1] : NULL;
        char sat[16] = "-", unf[16] = "-", stall[16] = "-", flips[24] = "-",
             vs[16] = "-", status[48] = "ok";
        if (t.c.total) {
            snprintf(sat, sizeof sat, "%.3f%%", 100.0 * (double)t.c.sat / (double)t.c.total);
            snprintf(unf, sizeof unf, "%.3f%%", 100.0 * (double)t.c.unf / (double)t.c.total);
        }
        if (t.c.considered) {
            snprintf(stall, sizeof stall, "%.2f%%",
                     100.0 * (double)t.c.stalled / (double)t.c.considered);
            snprintf(flips, sizeof flips, "%llu",
                     (unsigned long long)(t.c.considered - t.c.stalled));
        }
        if (base && r != base && isfinite(t.acc))
            snprintf(vs, sizeof vs, "%+.2f", 100.0 * (t.acc - bacc));
        if (r->diverged_step) {
            snprintf(status, sizeof status, "DIVERGED at step %ld",
                     r->diverged_step);
        } else if (last && last->partial_steps) {
            snprintf(status, sizeof status, "partial: epoch %d, %llu/%zu steps",
                     last->epoch, (unsigned long long)last->partial_steps,
                     r->steps_per_epoch);
            partial = 1;
        }
        fprintf(f, "%-22s %10.4f %7.2f%% %8s %9s %9s %6llu %8s %10s %8.2f  %s\n",
                r->cfg.name, t.loss, 100.0 * t.acc, vs, sat, unf,
                (unsigned long long)t.c.nan, stall, flips, t.sec_per_epoch,
                status);
    }
    fprintf(f, "(test_acc after the last epoch; vs_fp32 in accuracy points; "
               "saturated/underflow: share of all quantized elements;\n"
               " stall: updates that left the quantized weight code unchanged; "
               "flips: updates that changed it%s)\n",
            partial ? ";\n partial: --max-steps stopped the run inside that "
                      "epoch; train_loss is the mean over its steps so far and "
                      "test_acc was measured there" : "");
}

int agt_write_summary_csv(const agt_result *runs, int nruns, const char *path,
                          agt_err *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return agt_fail(err, "%s: cannot create: %s", path, strerror(errno));
    const agt_result *base = baseline(runs, nruns);
    const double bacc = base ? agt_result_totals(base).acc : (double)NAN;
    fprintf(f, "run,epochs,train_loss,test_acc,acc_vs_fp32,quantized,"
               "saturated,underflow,nan,stalled,considered,seconds_per_epoch,"
               "diverged_step\n");
    for (int i = 0; i < nruns; i++) {
        const agt_totals t = agt_result_totals(&runs[i]);
        fprintf(f, "%s,%d,%.10g,%.10g,%.10g,%llu,%llu,%llu,%llu,%llu,%llu,%.3f,%ld\n",
                runs[i].cfg.name, t.epochs, t.loss, t.acc,
                base ? t.acc - bacc : (double)NAN,
                (unsigned long long)t.c.total, (unsigned long long)t.c.sat,
                (unsigned long long)t.c.unf, (unsigned long long)t.c.nan,
                (unsigned long long)t.c.stalled,
                (unsigned long long)t.c.considered, t.sec_per_epoch,
                runs[i].diverged_step);
    }
    return close_checked(f, path, err);
}

/* ---------------------------------------------------------------- SVG --- */

const char *const agt_palette[AGT_NPALETTE] = {"#000000", "#1f77b4", "#ff7f0e",
                                      "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f",
                                      "#bcbd22", "#17becf"};

void agt_svg_begin(FILE *f, double W, double H)
{
    fprintf(f, "<?xml version='1.0' encoding='UTF-8'?>\n"
               "<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' "
               "height='%.0f' viewBox='0 0 %.0f %.0f' "
               "font-family='sans-serif'>\n"
               "<rect width='100%%' height='100%%' fill='white'/>\n",
            W, H, W, H);
}

void agt_svg_text(FILE *f, const char *s)
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

/* Where an epoch record sits on the epoch axis: its end, or for a partial
 * epoch the fraction of it that ran. */
static double epoch_x(const agt_result *r, const agt_epoch *e)
{
    if (e->partial_steps && r->steps_per_epoch)
        return e->epoch - 1 + (double)e->partial_steps / (double)r->steps_per_epoch;
    return e->epoch;
}

typedef agt_panel panel;

double agt_px(const agt_panel *p, double x)
{
    return p->x0 + (x - p->xmin) / (p->xmax - p->xmin) * p->w;
}

double agt_py(const agt_panel *p, double y)
{
    if (y < p->ymin)
        y = p->ymin;
    if (y > p->ymax)
        y = p->ymax;
    return p->y0 + p->h - (y - p->ymin) / (p->ymax - p->ymin) * p->h;
}

int agt_axis_ticks(double lo, double hi, int max_ticks, double min_step,
                   double *t, int cap, int *decimals)
{
    static const int mult[3] = {1, 2, 5};
    *decimals = 0;
    if (!isfinite(lo) || !isfinite(hi) || !(hi > lo) || max_ticks < 1 ||
        cap < 1)
        return 0;
    const double raw = (hi - lo) / max_ticks;
    /* from a decade below the raw step upwards: the first step that gives
     * 1..max_ticks ticks */
    int p0 = (int)floor(log10(raw)) - 1;
    if (min_step > 0.0 && (int)floor(log10(min_step)) > p0)
        p0 = (int)floor(log10(min_step));
    for (int p = p0, tries = 0; tries < 12; p++) {
        for (int j = 0; j < 3; j++, tries++) {
            /* tick k is k * m * 10^p, computed as an integer divided by
             * an exact power of ten, the nearest double to the decimal */
            const double m = mult[j], ten = pow(10.0, p < 0 ? -p : p);
            const double step = p < 0 ? m / ten : m * ten;
            if (min_step > 0.0 && step < min_step)
                continue;
            const double slack = 1e-9 * (hi - lo);
            const double kmin = ceil((lo - slack) / step);
            const double kmax = floor((hi + slack) / step);
            const double n = kmax - kmin + 1.0;
            if (n < 1.0 || n > max_ticks)
                continue;
            int count = 0;
            for (double k = kmin; k <= kmax && count < cap; k++)
                t[count++] = (p < 0 ? k * m / ten : k * m * ten) + 0.0; /* no -0 */
            *decimals = p < 0 ? -p : 0;
            return count;
        }
    }
    return 0;
}

void agt_svg_axes(FILE *f, const agt_panel *p, const char *title,
                  const char *xlabel, const char *ylabel, int percent)
{
    fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' "
               "fill='none' stroke='#444'/>\n", p->x0, p->y0, p->w, p->h);
    fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='middle' "
               "font-size='15'>", p->x0 + p->w / 2, p->y0 - 10);
    agt_svg_text(f, title);
    fputs("</text>\n", f);
    /* round ticks (1, 2 or 5 times a power of ten), in percent on the
     * accuracy panel */
    const double unit = percent ? 100.0 : 1.0;
    double t[16];
    int dec;
    int n = agt_axis_ticks(unit * p->ymin, unit * p->ymax, 6, 0.0, t, 16, &dec);
    for (int i = 0; i < n; i++) {
        double y = agt_py(p, t[i] / unit);
        fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' "
                   "stroke='#ddd'/>\n", p->x0, y, p->x0 + p->w, y);
        fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='end' "
                   "font-size='11'>%.*f%s</text>\n", p->x0 - 4, y + 4, dec,
                t[i], percent ? "%" : "");
    }
    n = agt_axis_ticks(p->xmin, p->xmax, 10, 1.0, t, 16, &dec);
    for (int i = 0; i < n; i++)
        fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='middle' "
                   "font-size='11'>%.*f</text>\n", agt_px(p, t[i]),
                p->y0 + p->h + 15, dec, t[i]);
    fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='middle' "
               "font-size='12'>%s</text>\n", p->x0 + p->w / 2,
            p->y0 + p->h + 32, xlabel);
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
            xmax = fmax(xmax, epoch_x(r, &r->epochs[j]));
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

    agt_svg_begin(f, W, H);
    agt_svg_axes(f, &L, "training loss (window mean)", "epoch", "loss", 0);
    agt_svg_axes(f, &R, "test accuracy (after each epoch)", "epoch",
                 "accuracy", 1);
    for (int i = 0; i < nruns; i++) {
        const agt_result *r = &runs[i];
        const char *col = agt_palette[i % AGT_NPALETTE];
        const char *dash = r->diverged_step ? " stroke-dasharray='6,3'" : "";
        fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='1.6'%s "
                   "points='", col, dash);
        for (size_t j = 0; j < r->nloss; j++)
            if (isfinite(r->loss_y[j]))
                fprintf(f, "%.1f,%.1f ", agt_px(&L, r->loss_x[j]),
                        agt_py(&L, r->loss_y[j]));
        fputs("'/>\n", f);
        fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='1.6'%s "
                   "points='", col, dash);
        for (int j = 0; j < r->nepochs; j++)
            if (isfinite(r->epochs[j].test_acc))
                fprintf(f, "%.1f,%.1f ", agt_px(&R, epoch_x(r, &r->epochs[j])),
                        agt_py(&R, r->epochs[j].test_acc));
        fputs("'/>\n", f);
        for (int j = 0; j < r->nepochs; j++)
            if (isfinite(r->epochs[j].test_acc))
                fprintf(f, "<circle cx='%.1f' cy='%.1f' r='3' fill='%s'/>\n",
                        agt_px(&R, epoch_x(r, &r->epochs[j])),
                        agt_py(&R, r->epochs[j].test_acc), col);
        /* legend, right of the accuracy panel */
        double ly = 60 + 20 * i;
        fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' "
                   "stroke='%s' stroke-width='3'%s/>\n", R.x0 + R.w + 15, ly,
                R.x0 + R.w + 35, ly, col, dash);
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='12'>", R.x0 + R.w + 40,
                ly + 4);
        agt_svg_text(f, r->cfg.name);
        if (r->diverged_step)
            fprintf(f, " (diverged @%ld)", r->diverged_step);
        fputs("</text>\n", f);
    }
    fputs("</svg>\n", f);
    return close_checked(f, path, err);
}
