/* SPDX-License-Identifier: MIT */
/*
 * optim.c — random numbers and optimizers of the training bench.
 *
 * Randomness is explicit and seeded: splitmix64 (Steele, Lea, Flood 2014)
 * for initialisation, and a per-epoch permutation that depends only on
 * (seed, epoch), so a resumed run needs no generator state beyond the step
 * counter. No rand(), no time().
 *
 * Optimizers work on the flat parameter array. They compute the update into
 * o->upd first and apply it separately, so the run can measure bit stall
 * (does w - upd quantize to the same code as w?) on the exact update.
 */
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

uint64_t agt_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double agt_uniform(uint64_t *state)
{
    return (double)(agt_splitmix64(state) >> 11) * 0x1p-53;
}

double agt_normal(uint64_t *state)
{
    double u1 = agt_uniform(state), u2 = agt_uniform(state);
    if (u1 < 0x1p-60)
        u1 = 0x1p-60;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void agt_epoch_order(uint32_t *perm, size_t n, uint64_t seed, uint64_t epoch)
{
    uint64_t s = seed ^ 0x5DEECE66Dull;
    s = agt_splitmix64(&s) ^ (epoch * 0xD1B54A32D192ED03ull);
    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    for (size_t i = n; i > 1; i--) {
        /* unbiased bounded draw: reject the low (2^64 mod i) values */
        const uint64_t bound = i, thresh = (0 - bound) % bound;
        uint64_t r;
        do
            r = agt_splitmix64(&s);
        while (r < thresh);
        size_t j = (size_t)(r % bound);
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

int agt_optim_init(agt_optim *o, agt_optkind kind, size_t n, float lr,
                   float wd, agt_err *err)
{
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->lr = lr;
    o->wd = wd;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->momentum = 0.9f;
    o->n = n;
    o->m = calloc(n, sizeof *o->m);
    o->v = calloc(n, sizeof *o->v);
    o->upd = calloc(n, sizeof *o->upd);
    if (!o->m || !o->v || !o->upd) {
        agt_optim_free(o);
        return agt_fail(err, "out of memory (optimizer state, %zu floats)", n);
    }
    return 0;
}

void agt_optim_free(agt_optim *o)
{
    if (!o)
        return;
    free(o->m);
    free(o->v);
    free(o->upd);
    o->m = o->v = o->upd = NULL;
}

void agt_optim_compute(agt_optim *o, const float *params, const float *grads)
{
    o->t++;
    const size_t n = o->n;
    float *restrict m = o->m, *restrict v = o->v, *restrict u = o->upd;
    const float lr = o->lr, wd = o->wd;
    if (o->kind == AGT_ADAMW) {
        const float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
        /* bias corrections in double, then float (as torch: computed once) */
        const float c1 = (float)(1.0 - pow((double)b1, (double)o->t));
        const float c2 = (float)(1.0 - pow((double)b2, (double)o->t));
        const float sc2 = sqrtf(c2);
        const float step = lr / c1;
        for (size_t i = 0; i < n; i++) {
            const float g = grads[i];
            m[i] = b1 * m[i] + (1.0f - b1) * g;
            v[i] = b2 * v[i] + (1.0f - b2) * g * g;
            const float denom = sqrtf(v[i]) / sc2 + eps;
            u[i] = step * (m[i] / denom) + lr * wd * params[i];
        }
    } else {
        const float mom = o->momentum;
        const int first = o->t == 1;
        for (size_t i = 0; i < n; i++) {
            const float g = grads[i] + wd * params[i];
            m[i] = first ? g : mom * m[i] + g;
            u[i] = lr * m[i];
        }
    }
}

void agt_optim_apply(const agt_optim *o, float *params)
{
    for (size_t i = 0; i < o->n; i++)
        params[i] -= o->upd[i];
}
