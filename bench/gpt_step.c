/* SPDX-License-Identifier: MIT */
/*
 * gpt_step.c — the C GPT's training step with quantized linears against
 * its own float32 step, in one process (make gpt-step-bench):
 *
 *     build/bench/gpt_step [--layers N --heads N --embd N --ctx N
 *                           --batch B --steps S --threads T]
 *
 * Two models of the same shape and seed, float32 and the FP8 recipe
 * (float8_e4m3fn weights and inputs, float8_e5m2 output gradients, as
 * `altgrad gpt --recipe fp8`), step in alternation on the same batches
 * (forward, backward, AdamW), so that load from other processes hits both
 * alike; prints the median and the fastest step of each and their ratios.
 * Uses the bench's internal interface (train/gpt.h), as its tests do.
 */
#include "gpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int arg(int argc, char **argv, const char *name, int def, int lo,
               int hi)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) {
            char *end;
            long v = strtol(argv[i + 1], &end, 10);
            if (*end || v < lo || v > hi) {
                fprintf(stderr, "gpt_step: %s needs an integer in %d..%d\n",
                        name, lo, hi);
                exit(1);
            }
            return (int)v;
        }
    return def;
}

int main(int argc, char **argv)
{
    static const char *const known[] = {"--layers", "--heads", "--embd",
                                        "--ctx", "--batch", "--steps",
                                        "--threads"};
    for (int i = 1; i < argc; i += 2) {
        int found = 0;
        for (size_t k = 0; k < sizeof known / sizeof *known; k++)
            found |= !strcmp(argv[i], known[k]);
        if (!found || i + 1 >= argc) {
            fprintf(stderr, "gpt_step: bad argument '%s' (options: --layers "
                            "--heads --embd --ctx --batch --steps --threads, "
                            "each with a value)\n", argv[i]);
            return 1;
        }
    }
    agt_gpt_cfg c[2];
    agt_gpt_cfg_default(&c[0]);
    c[0].n_layer = arg(argc, argv, "--layers", 2, 1, 64);
    c[0].n_head = arg(argc, argv, "--heads", 4, 1, 1024);
    c[0].n_embd = arg(argc, argv, "--embd", 128, 1, 8192);
    c[0].block_size = arg(argc, argv, "--ctx", 64, 1, 4096);
    c[0].qc.threads = arg(argc, argv, "--threads", 0, 0, 1024);
    const int B = arg(argc, argv, "--batch", 16, 1, 4096);
    const int steps = arg(argc, argv, "--steps", 40, 2, 100000);
    c[1] = c[0];
    agt_gpt_cfg_set(&c[1], 0x1fu, -1, "float8_e4m3fn");
    agt_gpt_cfg_set(&c[1], 0x1fu, AGT_QG, "float8_e5m2");
    const int T = c[0].block_size;
    agt_gpt m[2];
    agt_gpt_optim o[2];
    agt_err err;
    for (int k = 0; k < 2; k++)
        if (agt_gpt_init(&m[k], &c[k], B, 1, &err) ||
            agt_gpt_optim_init(&o[k], &m[k], 1e-3, 0.1, AG_PRECONDITION_NONE,
                               2, &err)) {
            fprintf(stderr, "gpt_step: %s\n", err.msg);
            return 2;
        }
    uint8_t *tok = malloc((size_t)B * T), *tgt = malloc((size_t)B * T);
    double *dt = malloc(2 * (size_t)steps * sizeof *dt);
    if (!tok || !tgt || !dt) {
        fprintf(stderr, "gpt_step: out of memory\n");
        return 2;
    }
    uint64_t s = 1;
    for (int i = 0; i < steps + 1; i++) {
        for (int j = 0; j < B * T; j++) {
            tok[j] = (uint8_t)(agt_splitmix64(&s) % 256);
            tgt[j] = (uint8_t)(agt_splitmix64(&s) % 256);
        }
        for (int k = 0; k < 2; k++) {
            double loss, t0 = now();
            memset(m[k].grads, 0, m[k].nparams * sizeof(float));
            if (agt_gpt_forward(&m[k], tok, tgt, B, T, 1, &loss, &err) ||
                agt_gpt_backward(&m[k], tgt, 1, &err) ||
                agt_gpt_optim_step(&o[k], &m[k], &err)) {
                fprintf(stderr, "gpt_step: %s\n", err.msg);
                return 2;
            }
            if (i > 0) /* step 0 warms the buffers up */
                dt[(size_t)k * steps + (size_t)(i - 1)] = now() - t0;
        }
    }
    double med[2], best[2];
    for (int k = 0; k < 2; k++) {
        double *d = dt + (size_t)k * steps;
        qsort(d, (size_t)steps, sizeof *d, cmp);
        med[k] = d[steps / 2];
        best[k] = d[0];
    }
    printf("gpt %d x %d, %d heads, context %d, batch %d; %d threads; %d "
           "alternating steps each\n",
           c[0].n_layer, c[0].n_embd, c[0].n_head, T, B,
           agt_pool_threads(m[0].pool), steps);
    printf("fp32 step: median %.2f ms (%.0f tokens/s), fastest %.2f ms\n",
           med[0] * 1e3, B * T / med[0], best[0] * 1e3);
    printf("fp8  step: median %.2f ms (%.0f tokens/s), fastest %.2f ms\n",
           med[1] * 1e3, B * T / med[1], best[1] * 1e3);
    printf("fp8 step / fp32 step: %.3fx (medians), %.3fx (fastest)\n",
           med[1] / med[0], best[1] / best[0]);
    for (int k = 0; k < 2; k++) {
        agt_gpt_optim_free(&o[k]);
        agt_gpt_free(&m[k]);
    }
    free(tok);
    free(tgt);
    free(dt);
    return 0;
}
