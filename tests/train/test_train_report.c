/* SPDX-License-Identifier: MIT */
/*
 * test_train_report.c — the plot's axis ticks: round steps (1, 2 or 5 times
 * a power of ten), every tick a multiple of the step inside the range,
 * labels distinct and exact with the decimals the function gives; and an
 * SVG of two runs whose accuracies lie 0.1 points apart (where the plot
 * used to print "84.8%" twice) has distinct, round y labels.
 */
#include "train_test_util.h"

#include <math.h>

/* 1 when d is 1, 2 or 5 times a power of ten (to 1e-9 relative). */
static int round_step(double d)
{
    const double m = d / pow(10.0, floor(log10(d)));
    return fabs(m - 1.0) < 1e-9 || fabs(m - 2.0) < 1e-9 || fabs(m - 5.0) < 1e-9 ||
           fabs(m - 10.0) < 1e-8;
}

/* Check the ticks of [lo, hi]; returns the tick count. */
static int check_ticks(double lo, double hi, int max_ticks, double min_step)
{
    double t[32];
    int dec = -1;
    const int n = agt_axis_ticks(lo, hi, max_ticks, min_step, t, 32, &dec);
    AG_CHECK(n >= 1 && n <= max_ticks && dec >= 0,
             "[%.17g, %.17g] max %d: %d ticks, %d decimals", lo, hi, max_ticks, n, dec);
    if (n < 1)
        return n;
    /* with 5 or more allowed, there are at least two: the step before the
     * chosen one (at most 2.5 times smaller) gave more than max_ticks */
    if (min_step <= 0.0 && max_ticks >= 5)
        AG_CHECK(n >= 2, "[%.17g, %.17g] max %d: only %d tick", lo, hi, max_ticks, n);
    const double slack = 1e-9 * (hi - lo);
    char prev[64] = "";
    for (int i = 0; i < n; i++) {
        AG_CHECK(t[i] >= lo - slack && t[i] <= hi + slack,
                 "[%.17g, %.17g]: tick %.17g outside", lo, hi, t[i]);
        AG_CHECK(!(t[i] == 0.0 && signbit(t[i])), "[%.17g, %.17g]: a tick -0", lo, hi);
        char lab[64];
        snprintf(lab, sizeof lab, "%.*f", dec, t[i]);
        /* distinct from its neighbour (labels increase) and exact: the
         * label reads back as the tick */
        AG_CHECK(i == 0 || strcmp(lab, prev) != 0, "[%.17g, %.17g]: label %s twice", lo,
                 hi, lab);
        AG_CHECK(fabs(strtod(lab, NULL) - t[i]) <= 1e-9 * fmax(1.0, fabs(t[i])),
                 "[%.17g, %.17g]: label %s of tick %.17g", lo, hi, lab, t[i]);
        snprintf(prev, sizeof prev, "%s", lab);
    }
    if (n >= 2) {
        const double step = t[1] - t[0];
        AG_CHECK(round_step(step) && step >= min_step * (1 - 1e-12),
                 "[%.17g, %.17g]: step %.17g is not round", lo, hi, step);
        for (int i = 1; i < n; i++)
            AG_CHECK(fabs(t[i] - t[i - 1] - step) <= 1e-9 * step,
                     "[%.17g, %.17g]: uneven steps", lo, hi);
        /* a multiple of the step (m * 10^k, rebuilt exactly from the
         * rounded difference), and no multiple left out at either end */
        const int k = (int)floor(log10(step) + 1e-9);
        const double ten = pow(10.0, abs(k)), m = nearbyint(k < 0 ? step * ten : step / ten);
        const double exact = k < 0 ? m / ten : m * ten;
        AG_CHECK(fabs(t[0] / exact - nearbyint(t[0] / exact)) < 1e-6,
                 "[%.17g, %.17g]: %.17g is not a multiple of %.17g", lo, hi, t[0], exact);
        AG_CHECK(t[0] - step < lo - slack && t[n - 1] + step > hi + slack,
                 "[%.17g, %.17g]: a tick is missing at an end", lo, hi);
        /* decimals: just enough for the step */
        AG_CHECK(dec == (step >= 1.0 ? 0 : (int)-floor(log10(step) + 1e-9)),
                 "[%.17g, %.17g]: %d decimals for step %.17g", lo, hi, dec, step);
    }
    return n;
}

static void test_ticks(void)
{
    double t[32];
    int dec;
    /* the accuracy panel of the report that printed 84.8 % twice */
    check_ticks(84.75, 84.85, 6, 0.0);
    int n = agt_axis_ticks(84.75, 84.85, 6, 0.0, t, 32, &dec);
    AG_CHECK(n == 5 && dec == 2 && fabs(t[0] - 84.76) < 1e-9 && fabs(t[4] - 84.84) < 1e-9,
             "84.75..84.85: %d ticks from %.17g, %d decimals", n, t[0], dec);
    /* known answers */
    n = agt_axis_ticks(0.0, 1.0, 6, 0.0, t, 32, &dec);
    AG_CHECK(n == 6 && dec == 1 && t[0] == 0.0 && fabs(t[5] - 1.0) < 1e-12,
             "0..1: %d ticks", n);
    n = agt_axis_ticks(0.23, 2.61, 6, 0.0, t, 32, &dec);
    AG_CHECK(n == 5 && dec == 1 && fabs(t[0] - 0.5) < 1e-12, "0.23..2.61: %d ticks from %g",
             n, t[0]);
    n = agt_axis_ticks(0.0, 5.0, 10, 1.0, t, 32, &dec);
    AG_CHECK(n == 6 && dec == 0 && t[5] == 5.0, "epochs 0..5: %d ticks", n);
    n = agt_axis_ticks(0.0, 37.0, 10, 1.0, t, 32, &dec);
    AG_CHECK(n == 8 && t[1] == 5.0, "epochs 0..37: %d ticks, step %g", n, t[1]);
    n = agt_axis_ticks(0.0, 1.0, 10, 1.0, t, 32, &dec);
    AG_CHECK(n == 2 && dec == 0, "epochs 0..1: %d ticks (min_step 1)", n);
    check_ticks(-1e-12, 1.0, 6, 0.0); /* the tick at 0 is 0, not -0 */
    check_ticks(-3.0, -1e-13, 6, 0.0);
    /* nothing to tick */
    AG_CHECK(agt_axis_ticks(1.0, 1.0, 6, 0.0, t, 32, &dec) == 0, "empty range");
    AG_CHECK(agt_axis_ticks(2.0, 1.0, 6, 0.0, t, 32, &dec) == 0, "reversed range");
    AG_CHECK(agt_axis_ticks((double)NAN, 1.0, 6, 0.0, t, 32, &dec) == 0, "NaN range");
    AG_CHECK(agt_axis_ticks(0.0, (double)INFINITY, 6, 0.0, t, 32, &dec) == 0, "inf range");
    AG_CHECK(agt_axis_ticks(0.0, 1.0, 0, 0.0, t, 32, &dec) == 0, "max_ticks 0");
    /* cap bounds what is written */
    AG_CHECK(agt_axis_ticks(0.0, 1.0, 6, 0.0, t, 3, &dec) == 3, "cap 3");
    /* ranges of every size and position, fixed seed */
    uint64_t s = 20261207u;
    for (int i = 0; i < 3000; i++) {
        const double scale = pow(10.0, floor(agt_uniform(&s) * 16.0) - 8.0);
        const double lo = (agt_uniform(&s) * 200.0 - 100.0) * scale;
        const double hi = lo + (agt_uniform(&s) + 1e-3) * scale;
        check_ticks(lo, hi, 2 + i % 9, 0.0);
        if (lo >= 0.0 && hi - lo >= 1.0)
            check_ticks(lo, hi, 10, 1.0); /* the epoch axis: 0..ceil(x) */
    }
}

/* The y labels of the accuracy panel (the texts ending in '%'). */
static int percent_labels(const char *svg, char labels[][32], int cap)
{
    int n = 0;
    for (const char *p = svg; (p = strstr(p, "font-size='11'>")) != NULL;) {
        p += strlen("font-size='11'>");
        const size_t len = strcspn(p, "<");
        if (len > 1 && len < 32 && p[len - 1] == '%' && n < cap) {
            memcpy(labels[n], p, len - 1);
            labels[n][len - 1] = '\0';
            n++;
        }
    }
    return n;
}

static void test_svg_labels(const char *dir)
{
    agt_result runs[2];
    agt_epoch ep[2][2];
    memset(runs, 0, sizeof runs);
    memset(ep, 0, sizeof ep);
    const double acc[2][2] = {{0.8478, 0.8481}, {0.8476, 0.8483}};
    for (int r = 0; r < 2; r++) {
        agt_config_default(&runs[r].cfg);
        snprintf(runs[r].cfg.name, sizeof runs[r].cfg.name, "run%d", r);
        runs[r].nepochs = 2;
        runs[r].epochs = ep[r];
        runs[r].steps_per_epoch = 10;
        for (int e = 0; e < 2; e++) {
            ep[r][e].epoch = e + 1;
            ep[r][e].step = (uint64_t)(10 * (e + 1));
            ep[r][e].train_loss = 0.5 - 0.1 * e;
            ep[r][e].test_acc = acc[r][e];
        }
    }
    char path[128];
    snprintf(path, sizeof path, "%s/plot.svg", dir);
    agt_err err;
    AG_CHECK(agt_write_svg(runs, 2, path, &err) == 0, "svg: %s", err.msg);
    FILE *f = fopen(path, "r");
    static char svg[1 << 16];
    const size_t len = f ? fread(svg, 1, sizeof svg - 1, f) : 0;
    svg[len] = '\0';
    if (f)
        fclose(f);
    char labels[16][32];
    const int n = percent_labels(svg, labels, 16);
    AG_CHECK(n >= 2, "%d accuracy labels in %s", n, path);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < i; j++)
            AG_CHECK(strcmp(labels[i], labels[j]) != 0, "accuracy label %s%% twice",
                     labels[i]);
        /* round: a whole number of hundredths of a point at most */
        const double v = strtod(labels[i], NULL) * 100.0;
        AG_CHECK(fabs(v - nearbyint(v)) < 1e-6, "accuracy label %s%% is not round",
                 labels[i]);
    }
}

int main(void)
{
    char dir[64];
    if (tt_tmpdir(dir, sizeof dir)) {
        fprintf(stderr, "cannot create a temporary directory\n");
        return 1;
    }
    test_ticks();
    test_svg_labels(dir);
    tt_rmdir(dir);
    return ag_test_summary("test_train_report");
}
