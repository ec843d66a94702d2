/* SPDX-License-Identifier: MIT */
/*
 * train_test_util.h — helpers of the training-bench tests: temporary
 * directories and IDX files written by the tests themselves (synthetic data
 * sets, corrupt files).
 */
#ifndef AGT_TRAIN_TEST_UTIL_H
#define AGT_TRAIN_TEST_UTIL_H

#define _POSIX_C_SOURCE 200809L
#include "train.h"
#include "ag_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <zlib.h>

/* A fresh directory under /tmp; the caller fills dir (>= 64 bytes). */
static inline int tt_tmpdir(char *dir, size_t cap)
{
    snprintf(dir, cap, "/tmp/agt_test_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static inline void tt_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Write bytes to path, gzip-compressed when gz. */
static inline int tt_write(const char *path, const void *data, size_t n,
                           int gz)
{
    if (gz) {
        gzFile g = gzopen(path, "wb");
        if (!g)
            return -1;
        int ok = n == 0 || gzwrite(g, data, (unsigned)n) == (int)n;
        return gzclose(g) == Z_OK && ok ? 0 : -1;
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* IDX image file bytes: magic, n, rows, cols, pixels; *len set. */
static inline unsigned char *tt_idx_images(uint32_t magic, uint32_t n,
                                           uint32_t rows, uint32_t cols,
                                           const uint8_t *pix, size_t *len)
{
    size_t body = (size_t)n * rows * cols;
    unsigned char *b = malloc(16 + body);
    if (!b)
        return NULL;
    tt_be32(b, magic);
    tt_be32(b + 4, n);
    tt_be32(b + 8, rows);
    tt_be32(b + 12, cols);
    if (pix)
        memcpy(b + 16, pix, body);
    else
        memset(b + 16, 7, body);
    *len = 16 + body;
    return b;
}

static inline unsigned char *tt_idx_labels(uint32_t magic, uint32_t n,
                                           const uint8_t *lab, size_t *len)
{
    unsigned char *b = malloc(8 + (size_t)n);
    if (!b)
        return NULL;
    tt_be32(b, magic);
    tt_be32(b + 4, n);
    for (uint32_t i = 0; i < n; i++)
        b[8 + i] = lab ? lab[i] : (uint8_t)(i % 10);
    *len = 8 + (size_t)n;
    return b;
}

/* A synthetic, learnable data set in DIR (train and t10k splits, plain
 * IDX files): class c lights up a 4-row band at row 2c plus seeded noise. */
static inline int tt_synthetic(const char *dir, uint32_t ntrain,
                               uint32_t ntest)
{
    uint64_t s = 12345;
    for (int split = 0; split < 2; split++) {
        uint32_t n = split ? ntest : ntrain;
        uint8_t *pix = malloc((size_t)n * 784), *lab = malloc(n);
        if (!pix || !lab)
            return -1;
        for (uint32_t i = 0; i < n; i++) {
            lab[i] = (uint8_t)(agt_splitmix64(&s) % 10);
            for (int j = 0; j < 784; j++) {
                int row = j / 28;
                int on = row >= 2 * lab[i] + 2 && row < 2 * lab[i] + 6;
                int noise = (int)(agt_splitmix64(&s) % 90);
                pix[(size_t)i * 784 + (size_t)j] = (uint8_t)(on ? 160 + noise : noise);
            }
        }
        size_t li = 0, ll = 0;
        unsigned char *bi = tt_idx_images(0x803, n, 28, 28, pix, &li);
        unsigned char *bl = tt_idx_labels(0x801, n, lab, &ll);
        char p[512];
        int rc = 0;
        snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte", dir, split ? "t10k" : "train");
        rc |= bi ? tt_write(p, bi, li, 0) : -1;
        snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte", dir, split ? "t10k" : "train");
        rc |= bl ? tt_write(p, bl, ll, 0) : -1;
        free(bi);
        free(bl);
        free(pix);
        free(lab);
        if (rc)
            return -1;
    }
    return 0;
}

/* Remove the files a test put in dir, then dir. */
static inline void tt_rmdir(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (strncmp(dir, "/tmp/agt_test_", 14) == 0 && system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", dir);
}

/* max |a - b| / max |b| over n elements (HUGE_VAL on a NaN difference):
 * the tensor-wise relative error of the PyTorch comparisons. */
static inline double tt_tensor_rel(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d != d)
            return HUGE_VAL;
        num = fmax(num, d);
        den = fmax(den, fabs((double)b[i]));
    }
    return den > 0 ? num / den : num;
}

static inline void tt_put32(FILE *f, int32_t v) { fwrite(&v, 4, 1, f); }

/* Run `python3 tests/train/SCRIPT IN OUT` (AG_PYTHON overrides the
 * interpreter; python/ first on PYTHONPATH); returns its exit status (77:
 * the script could not import what it needs), -1 when it could not run,
 * 128 when it died. cmd (>= 1024 bytes) gets the command line. */
static inline int tt_run_python(char *cmd, size_t cap, const char *script,
                                const char *in, const char *out)
{
    const char *py = getenv("AG_PYTHON") ? getenv("AG_PYTHON") : "/usr/bin/python3";
    const char *pp = getenv("PYTHONPATH");
    snprintf(cmd, cap, "PYTHONPATH=python%s%s %s tests/train/%s %s %s", pp ? ":" : "",
             pp ? pp : "", py, script, in, out);
    int rc = system(cmd);
    return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

#endif
