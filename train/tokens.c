/* SPDX-License-Identifier: MIT */
/*
 * tokens.c — the GPT's data: a byte stream (byte-level tokens, vocabulary
 * 256) from a UTF-8 text file or from Debian's bible-kjv (the King James
 * Bible, `bible gen1:1-rev22:21`), a fixed split (the last val_frac of the
 * bytes is validation), and batches of windows whose positions depend only
 * on (seed, step, row).
 */
#define _POSIX_C_SOURCE 200809L
#include "gpt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AGT_BIBLE "/usr/bin/bible"
#define AGT_BIBLE_CMD AGT_BIBLE " gen1:1-rev22:21 2>/dev/null"

static int read_all(FILE *f, agt_text *t, const char *what, agt_err *err)
{
    size_t cap = 1 << 20, n = 0;
    uint8_t *b = malloc(cap);
    if (!b)
        return agt_fail(err, "out of memory reading %s", what);
    for (;;) {
        if (n == cap) {
            uint8_t *nb = realloc(b, cap *= 2);
            if (!nb) {
                free(b);
                return agt_fail(err, "out of memory reading %s", what);
            }
            b = nb;
        }
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        free(b);
        return agt_fail(err, "%s: read error", what);
    }
    t->bytes = b;
    t->n = n;
    return 0;
}

int agt_text_load(agt_text *t, const char *path, double val_frac,
                  agt_err *err)
{
    memset(t, 0, sizeof *t);
    if (!(val_frac > 0 && val_frac < 1))
        return agt_fail(err, "validation fraction %g outside (0, 1)",
                        val_frac);
    const char *what = path ? path : "the King James Bible (bible-kjv)";
    if (path) {
        FILE *f = fopen(path, "rb");
        if (!f)
            return agt_fail(err, "cannot open %s", path);
        int rc = read_all(f, t, path, err);
        fclose(f);
        if (rc)
            return -1;
    } else {
        if (access(AGT_BIBLE, X_OK) != 0)
            return agt_fail(err,
                            "%s not found: install Debian's bible-kjv "
                            "(scripts/install-deps.sh) or pass --data FILE",
                            AGT_BIBLE);
        FILE *f = popen(AGT_BIBLE_CMD, "r");
        if (!f)
            return agt_fail(err, "cannot run %s", AGT_BIBLE_CMD);
        int rc = read_all(f, t, what, err);
        int st = pclose(f);
        if (rc)
            return -1;
        if (st != 0) {
            agt_text_free(t);
            return agt_fail(err, "%s failed (status %d): is bible-kjv-text "
                            "installed?", AGT_BIBLE_CMD, st);
        }
    }
    const size_t nval = (size_t)((double)t->n * val_frac);
    t->ntrain = t->n - nval;
    /* a window of T tokens and its targets need T + 1 bytes per split */
    if (t->ntrain < 1024 || nval < 1024) {
        size_t n = t->n;
        agt_text_free(t);
        return agt_fail(err, "%s: %zu bytes is too little text (each split "
                        "needs at least 1024 bytes)", what, n);
    }
    return 0;
}

void agt_text_free(agt_text *t)
{
    free(t->bytes);
    memset(t, 0, sizeof *t);
}

void agt_text_batch(uint8_t *tok, uint8_t *tgt, const agt_text *t, int train,
                    uint64_t seed, uint64_t step, int B, int T)
{
    const size_t lo = train ? 0 : t->ntrain;
    const size_t len = (train ? t->ntrain : t->n - t->ntrain) - (size_t)T - 1;
    for (int b = 0; b < B; b++) {
        size_t pos;
        if (train) {
            uint64_t s = seed ^ (0x9e3779b97f4a7c15ULL * (step + 1)) ^
                         ((uint64_t)b << 32);
            (void)agt_splitmix64(&s);
            pos = (size_t)(agt_splitmix64(&s) % (uint64_t)(len + 1));
        } else {
            /* evenly spread windows, step-th set of B */
            uint64_t k = step * (uint64_t)B + (uint64_t)b;
            pos = (size_t)((k * 2654435761ULL) % (uint64_t)(len + 1));
        }
        memcpy(tok + (size_t)b * T, t->bytes + lo + pos, (size_t)T);
        memcpy(tgt + (size_t)b * T, t->bytes + lo + pos + 1, (size_t)T);
    }
}

double agt_text_unigram_loss(const agt_text *t)
{
    double cnt[256] = {0};
    for (size_t i = 0; i < t->ntrain; i++)
        cnt[t->bytes[i]] += 1;
    /* add-one smoothing so an unseen val byte has a finite loss */
    double tot = (double)t->ntrain + 256;
    double s = 0;
    for (size_t i = t->ntrain; i < t->n; i++)
        s -= log((cnt[t->bytes[i]] + 1) / tot);
    return s / (double)(t->n - t->ntrain);
}
