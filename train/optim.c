/* SPDX-License-Identifier: MIT */
/*
 * optim.c — random numbers and optimizers of the training bench.
 *
 * Randomness is explicit and seeded: splitmix64 (Steele, Lea, Flood 2014)
 * for initialisation, and a per-epoch permutation that depends only on
 * (seed, epoch), so a resumed run needs no generator state beyond the step
 * counter. No rand(), no time().
 *
 * Optimizers work on the flat parameter array in place. AdamW is the
 * library's fused step (ag_adamw_step), which counts the bit stall of a
 * quantized weight tensor in the same pass: among the weights with a
 * nonzero gradient, those whose code (format and scale of this step's
 * forward) the step left unchanged. SGD computes the new weights into
 * o->upd and counts the same way with ag_update_flips.
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
    o->pre = AG_PRECONDITION_NONE;
    o->mantissa_bits = 2;
    o->grid = ag_grid_opts_default();
    o->grid_fmt = NULL;
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

/* The optimizers by name: the kinds, and AdamW's manifold variants. */
static const struct {
    const char *name;
    agt_optkind kind;
    ag_precondition pre;
} optim_names[] = {{"adamw", AGT_ADAMW, AG_PRECONDITION_NONE},
                   {"manifold", AGT_ADAMW, AG_PRECONDITION_GRAD},
                   {"manifold-update", AGT_ADAMW, AG_PRECONDITION_UPDATE},
                   {"sgd", AGT_SGD, AG_PRECONDITION_NONE},
                   {"grid", AGT_GRID, AG_PRECONDITION_NONE}};
#define NOPTIM (sizeof optim_names / sizeof optim_names[0])

int agt_optim_parse(const char *name, agt_optkind *kind, ag_precondition *pre)
{
    for (size_t i = 0; name && i < NOPTIM; i++)
        if (!strcmp(name, optim_names[i].name)) {
            *kind = optim_names[i].kind;
            *pre = optim_names[i].pre;
            return 0;
        }
    return -1;
}

const char *agt_optim_name(agt_optkind kind, ag_precondition pre)
{
    for (size_t i = 0; i < NOPTIM; i++)
        if (optim_names[i].kind == kind &&
            (kind != AGT_ADAMW || optim_names[i].pre == pre))
            return optim_names[i].name;
    return "?";
}

/* AdamW over [off, off + n): the library's fused step, with the stall
 * counters of seg's format (and scale) when it has one. */
static int adamw_range(agt_optim *o, float *params, const float *grads,
                       size_t off, size_t n, agt_optseg *seg, agt_err *err)
{
    ag_adamw_opts ao = ag_adamw_opts_default();
    ao.lr = (double)o->lr;
    ao.beta1 = (double)o->beta1;
    ao.beta2 = (double)o->beta2;
    ao.eps = (double)o->eps;
    ao.weight_decay = seg->decay ? (double)o->wd : 0.0;
    ao.precondition = o->pre;
    ao.mantissa_bits = o->mantissa_bits;
    ao.threads = o->threads;
    ag_optim_counts c = {0, 0, 0};
    if (seg->fmt) {
        ao.format = seg->fmt;
        ao.scale = seg->scale;
    }
    ag_status s = ag_adamw_step(params + off, o->m + off, o->v + off,
                                grads + off, n, o->t, &ao,
                                seg->fmt ? &c : NULL, NULL);
    if (s != AG_OK)
        return agt_fail(err, "adamw step: %s", ag_status_string(s));
    if (seg->fmt) {
        seg->stalled += c.stalls;
        seg->considered += c.updates;
    }
    return 0;
}

/* The grid optimizer over [off, off + n): seg's storage grid, or for a
 * float32 range grid_fmt's at the range's current scale (the library's
 * amax and compute_scale); stream `index`, offset (t - 1) n. Counters:
 * updates and the weights whose value moved. */
static int grid_range(agt_optim *o, float *params, const float *grads,
                      size_t off, size_t n, agt_optseg *seg, uint64_t index,
                      agt_err *err)
{
    const ag_format *fmt = seg->fmt ? seg->fmt : o->grid_fmt;
    float scale = seg->scale;
    ag_status s = AG_OK;
    if (!fmt)
        return agt_fail(err, "grid optimizer: no grid for a float32 range");
    if (!seg->fmt) {
        float amax = 0.0f;
        s = ag_amax(&amax, params + off, n, NULL);
        if (s == AG_OK)
            s = ag_compute_scale(&scale, isfinite(amax) ? amax : 0.0f, fmt,
                                 NULL);
    }
    ag_grid_opts go = o->grid;
    go.weight_decay = seg->decay ? (double)o->wd : 0.0;
    go.stream = index;
    go.offset = (o->t - 1) * (uint64_t)n;
    go.threads = o->threads;
    uint64_t upd = 0, fl = 0;
    if (s == AG_OK)
        s = ag_grid_step(params + off, o->m + off, grads + off, n, fmt, scale,
                         &go, &upd, &fl);
    if (s != AG_OK)
        return agt_fail(err, "grid step: %s", ag_status_string(s));
    if (seg->fmt) {
        seg->considered += upd;
        seg->stalled += upd > fl ? upd - fl : 0;
    }
    return 0;
}

/* SGD with momentum over [off, off + n): the new weights go to o->upd
 * first, so that the stall counters compare before and after. */
static int sgd_range(agt_optim *o, float *params, const float *grads,
                     size_t off, size_t n, agt_optseg *seg, agt_err *err)
{
    const float lr = o->lr, wd = seg->decay ? o->wd : 0.0f, mom = o->momentum;
    const int first = o->t == 1;
    float *restrict m = o->m + off, *restrict nw = o->upd + off;
    const float *restrict p = params + off, *restrict g = grads + off;
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] + wd * p[i];
        m[i] = first ? gi : mom * m[i] + gi;
        nw[i] = p[i] - lr * m[i];
    }
    if (seg->fmt) {
        uint64_t upd = 0, fl = 0;
        ag_status s = ag_update_flips(&upd, &fl, p, nw, g, n, seg->fmt,
                                      seg->scale, NULL);
        if (s != AG_OK)
            return agt_fail(err, "update flips: %s", ag_status_string(s));
        seg->considered += upd;
        seg->stalled += upd - fl;
    }
    memcpy(params + off, nw, n * sizeof *nw);
    return 0;
}

static int step_range(agt_optim *o, float *params, const float *grads,
                      size_t off, size_t n, agt_optseg *seg, uint64_t index,
                      agt_err *err)
{
    if (n == 0)
        return 0;
    switch (o->kind) {
    case AGT_ADAMW:
        return adamw_range(o, params, grads, off, n, seg, err);
    case AGT_SGD:
        return sgd_range(o, params, grads, off, n, seg, err);
    case AGT_GRID:
        return grid_range(o, params, grads, off, n, seg, index, err);
    }
    return agt_fail(err, "unknown optimizer %d", (int)o->kind);
}

int agt_optim_step(agt_optim *o, float *params, const float *grads,
                   agt_optseg *segs, int nsegs, agt_err *err)
{
    o->t++;
    size_t at = 0;
    uint64_t index = 0;
    agt_optseg gap = {0, 0, NULL, 0.0f, 1, 0, 0, 0};
    for (int i = 0; i < nsegs; i++) {
        agt_optseg *sg = &segs[i];
        if (sg->off < at || sg->n > o->n - sg->off)
            return agt_fail(err, "optimizer segment %d out of order or range", i);
        if (step_range(o, params, grads, at, sg->off - at, &gap, index++, err) ||
            step_range(o, params, grads, sg->off, sg->n, sg, index++, err))
            return -1;
        at = sg->off + sg->n;
    }
    return step_range(o, params, grads, at, o->n - at, &gap, index, err);
}
