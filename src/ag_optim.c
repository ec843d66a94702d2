/* SPDX-License-Identifier: MIT */
/*
 * ag_optim.c — fused optimizer steps on a format's grid: AdamW with the
 * stiffness preconditioning of AltGrad's ManifoldAdamW (and the update-space
 * variant), and AltGrad's grid optimizer that moves weights by whole rungs.
 *
 * Both work in chunks of CHUNK elements: the arithmetic loop over a chunk
 * is plain float32 code that vectorizes (no branches on the element in the
 * common path), and the optional counters encode the chunk before and after
 * with the bulk encoder (ag_encode_u16), so they cost two vectorized passes
 * over data that is still in the cache. Chunks are independent, so OpenMP
 * splits them over threads and every result is bit-identical for any
 * thread count. The stiffness is ag__grid_step (the one definition shared
 * with ag_stiffness), the code comparisons and grid positions are the
 * diagnostics' (ag__cmp_*, ag__grid_pos), and the random bits of the rung
 * moves are the library's ARS-7 stream.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3", "fp-contract=off")
#endif

#include "ag_internal.h"

#include <math.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define CHUNK 2048

/* Largest finite float32. */
#define AG__FLT_MAX 3.4028234663852886e38f

static int finite_d(double x)
{
    return x == x && x <= 1.7976931348623157e308 && x >= -1.7976931348623157e308;
}


/* Chunk c of n elements: its start and length. */
static inline size_t chunk_len(size_t n, size_t c)
{
    const size_t i0 = c * CHUNK;
    return n - i0 < CHUNK ? n - i0 : CHUNK;
}

/* Code of every x[i] / scale (nearest-even, saturate): the counters' grid.
 * 8-bit formats take the byte encoder (its fast paths), widened. */
static void encode_nearest(uint16_t *codes, const float *x, size_t len,
                           const ag_format *fmt, float scale)
{
    ag_qopts o = ag_qopts_default();
    o.threads = 1;
    ag_status st;
    if (fmt->bits <= 8) {
        uint8_t c8[CHUNK];
        assert(len <= CHUNK);
        st = ag_encode_u8(c8, x, len, fmt, scale, &o, NULL);
        for (size_t i = 0; i < len; i++)
            codes[i] = c8[i];
    } else {
        st = ag_encode_u16(codes, x, len, fmt, scale, &o, NULL);
    }
    assert(st == AG_OK); /* every argument was checked before */
    (void)st;
}

/* ------------------------------------------------------------------------ */
/* AdamW                                                                    */
/* ------------------------------------------------------------------------ */

ag_adamw_opts ag_adamw_opts_default(void)
{
    ag_adamw_opts o;
    o.lr = 1e-3;
    o.beta1 = 0.9;
    o.beta2 = 0.999;
    o.eps = 1e-8;
    o.weight_decay = 0.01;
    o.precondition = AG_PRECONDITION_NONE;
    o.format = NULL;
    o.scale = 1.0f;
    o.mantissa_bits = 2;
    o.max_stiffness = 1e6f;
    o.threads = 0;
    return o;
}

/* The float32 constants of one step. */
typedef struct adam_k {
    float decay;      /* 1 - lr * wd */
    int has_decay;
    float b1, omb1, b2, omb2, sc2, eps, step;
    const ag_format *fmt; /* NULL: AltGrad's stiffness, float32 grid */
    float scale, low, maxs;
    int M;                /* AltGrad's mantissa_bits */
    int fe, femin, fm;    /* the format's E, emin, M */
} adam_k;

/* S at w, clamped above by max_stiffness; fmt is a compile-time constant
 * at every call site (1: the format's grid step, 0: AltGrad's formula).
 * Selects only, so that the loops vectorize. */
static inline float stiffness_at(const adam_k *k, int fmt, float w)
{
    float s;
    if (fmt) {
        s = w == 0.0f ? k->low * k->scale
                      : ag__grid_step_p(k->fe, k->femin, k->fm, w, k->scale,
                                        k->low);
    } else {
        const float a = fabsf(w);
        const int q = ag__ilogb_bits(a) - k->M;
        s = q < -149 ? 0.0f : ag__pow2f(q); /* AltGrad's float32 pow(2, q) */
        s = a > AG__FLT_MAX ? a : s;
        s = w == 0.0f ? 1.0f : s;
    }
    s = w != w ? 1.0f : s;
    return s < k->maxs ? s : k->maxs;
}

/* One element; pre and fmt are compile-time constants at every call site. */
static inline __attribute__((always_inline)) void
adam_el(const adam_k *k, ag_precondition pre, int fmt, float *w, float *m,
        float *v, float g)
{
    const float w0 = *w;
    const float s =
        pre != AG_PRECONDITION_NONE ? stiffness_at(k, fmt, w0) : 1.0f;
    const float gp = pre == AG_PRECONDITION_GRAD ? g * s : g;
    float wn = k->has_decay ? w0 * k->decay : w0;
    const float mi = k->b1 * *m + k->omb1 * gp;
    const float vi = k->b2 * *v + k->omb2 * gp * gp;
    const float den = sqrtf(vi) / k->sc2 + k->eps;
    float u = k->step * (mi / den);
    if (pre == AG_PRECONDITION_UPDATE)
        u = u * s;
    wn = wn - u;
    *m = mi;
    *v = vi;
    *w = wn;
}

/* AG__CLONES (ag_internal.h): compiled for AVX-512, AVX2 and the baseline,
 * the same IEEE operations (no contraction) in every clone. */

AG__CLONES
static void adam_loop(const adam_k *k, ag_precondition pre, float *restrict w,
                      float *restrict m, float *restrict v,
                      const float *restrict g, size_t len)
{
    const adam_k c = *k; /* locals: the stores cannot alias them */
#define AG__LOOP(P, F)                                                        \
    for (size_t i = 0; i < len; i++)                                          \
        adam_el(&c, P, F, w + i, m + i, v + i, g[i])
    if (pre == AG_PRECONDITION_NONE)
        AG__LOOP(AG_PRECONDITION_NONE, 0);
    else if (pre == AG_PRECONDITION_GRAD && c.fmt)
        AG__LOOP(AG_PRECONDITION_GRAD, 1);
    else if (pre == AG_PRECONDITION_GRAD)
        AG__LOOP(AG_PRECONDITION_GRAD, 0);
    else if (c.fmt)
        AG__LOOP(AG_PRECONDITION_UPDATE, 1);
    else
        AG__LOOP(AG_PRECONDITION_UPDATE, 0);
#undef AG__LOOP
}

static inline uint32_t is_update(float g)
{
    return (uint32_t)(fabsf(g) > AG_GRAD_EPS); /* false for NaN */
}

/* nextafterf(x, +inf) from the bit pattern (branch-free). */
static inline float next_up(float x)
{
    const uint32_t b = ag__f2u(x);
    uint32_t up = (b & 0x80000000u) ? (b == 0x80000000u ? 1u : b - 1u) : b + 1u;
    up = b == 0x7f800000u ? b : up; /* +inf stays */
    return ag__u2f(up);
}

/* Counters and movement of a chunk: wb before, wa after. Separate
 * branch-free loops per case, so that each vectorizes. */
AG__CLONES
static void adam_count(const adam_k *k, const float *restrict wb,
                       const float *restrict wa, const float *restrict g,
                       size_t len, ag_optim_counts *c, float *restrict mv)
{
    uint32_t nu = 0, nf = 0, ns = 0;
    for (size_t i = 0; i < len; i++)
        nu += is_update(g[i]);
    if (k->fmt) {
        uint16_t ca[CHUNK], cb[CHUNK];
        ag__cmp_ctx cm;
        ag__cmp_init(&cm, k->fmt);
        const uint32_t sm = k->fmt->sign_mask;
        const int nz = k->fmt->no_zero;
        encode_nearest(ca, wb, len, k->fmt, k->scale);
        encode_nearest(cb, wa, len, k->fmt, k->scale);
        for (size_t i = 0; i < len; i++) {
            const uint32_t u = is_update(g[i]);
            const uint32_t na = ag__cmp_nan(&cm, ca[i], wb[i]),
                           nb = ag__cmp_nan(&cm, cb[i], wa[i]);
            const uint32_t same = ag__cmp_same(&cm, ca[i], na, cb[i], nb);
            nf += same ^ 1u;
            ns += u & same;
        }
        if (mv) {
            for (size_t i = 0; i < len; i++) {
                const uint32_t nan = ag__cmp_nan(&cm, ca[i], wb[i]) |
                                     ag__cmp_nan(&cm, cb[i], wa[i]);
                const int32_t d = ag__grid_pos_p(sm, nz, cb[i]) -
                                  ag__grid_pos_p(sm, nz, ca[i]);
                mv[i] += (float)(d & -(int32_t)(nan ^ 1u)); /* 0 for NaN */
            }
        }
    } else {
        for (size_t i = 0; i < len; i++) {
            const uint32_t same = (uint32_t)(wb[i] == wa[i]);
            nf += same ^ 1u;
            ns += is_update(g[i]) & same;
        }
        if (mv) {
            for (size_t i = 0; i < len; i++) {
                float ulp = fabsf(next_up(wb[i]) - wb[i]);
                ulp = ulp < 1e-45f ? 1e-45f : ulp; /* NaN stays (torch clamp_min) */
                mv[i] += (wa[i] - wb[i]) / ulp;
            }
        }
    }
    c->updates += nu;
    c->flips += nf;
    c->stalls += ns;
}

static ag_status adam_check(const float *w, const float *m, const float *v,
                            const float *g, size_t n, uint64_t t,
                            const ag_adamw_opts *o, const float *mv)
{
    ag__chk c = AG__CHK_INIT;
    ag__chk_ptr(&c, o);
    if (n) {
        ag__chk_ptr(&c, w);
        ag__chk_ptr(&c, m);
        ag__chk_ptr(&c, v);
        ag__chk_ptr(&c, g);
    }
    if (o) {
        if (o->format) {
            ag__chk_fmt(&c, o->format);
            ag__chk_scale(&c, o->scale);
        }
        ag__chk_arg(&c, t != 0 && finite_d(o->lr) && o->lr >= 0.0 &&
                            o->beta1 >= 0.0 && o->beta1 < 1.0 && o->beta2 >= 0.0 &&
                            o->beta2 < 1.0 && finite_d(o->eps) && o->eps >= 0.0 &&
                            finite_d(o->weight_decay) &&
                            (unsigned)o->precondition <=
                                (unsigned)AG_PRECONDITION_UPDATE &&
                            o->mantissa_bits >= 0 && o->mantissa_bits <= 23 &&
                            o->max_stiffness > 0.0f && o->threads >= 0);
    }
    size_t k;
    ag__chk_count(&c, &k, 1, n);
    /* no two of the arrays may share a byte (in place is not a thing here) */
    const size_t b = k * sizeof(float);
    const void *p[5] = {w, m, v, g, mv};
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++)
            if (p[i] && p[j])
                ag__chk_alias(&c, p[i], b, p[j], b, 0);
    return ag__chk_status(&c);
}

ag_status ag_adamw_step(float *w, float *m, float *v, const float *g, size_t n,
                        uint64_t t, const ag_adamw_opts *opts,
                        ag_optim_counts *counts, float *movement)
{
    ag_status st = adam_check(w, m, v, g, n, t, opts, movement);
    if (st != AG_OK || n == 0)
        return st;
    const ag_adamw_opts *o = opts;
    adam_k k;
    const double wd = o->lr * o->weight_decay;
    k.has_decay = o->weight_decay != 0.0;
    k.decay = (float)(1.0 - wd);
    k.b1 = (float)o->beta1;
    k.omb1 = (float)(1.0 - o->beta1);
    k.b2 = (float)o->beta2;
    k.omb2 = (float)(1.0 - o->beta2);
    /* bias corrections as torch: Python floats, then float32 scalars; a
     * beta of 0 gives 1 - 0^t = 1 */
    const double c1 = 1.0 - pow(o->beta1, (double)t);
    const double c2 = 1.0 - pow(o->beta2, (double)t);
    k.sc2 = (float)sqrt(c2);
    k.step = (float)(o->lr / c1);
    k.eps = (float)o->eps;
    k.fmt = o->format;
    k.scale = o->format ? o->scale : 1.0f;
    k.low = o->format ? ag__pow2f(o->format->emin - o->format->mbits) : 0.0f;
    k.maxs = o->max_stiffness;
    k.M = o->mantissa_bits;
    k.fe = o->format ? o->format->ebits : 0;
    k.femin = o->format ? o->format->emin : 0;
    k.fm = o->format ? o->format->mbits : 0;
    const ag_precondition pre = o->precondition;
    const int want = counts != NULL || movement != NULL;
    const size_t nch = (n + CHUNK - 1) / CHUNK;
    const int nt = ag__thread_count(AG__PAR_ADAMW, n, o->threads);
    uint64_t nu = 0, nf = 0, ns = 0;
    ptrdiff_t c;
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1) \
    reduction(+ : nu, nf, ns)
#endif
    for (c = 0; c < (ptrdiff_t)nch; c++) {
        const size_t i0 = (size_t)c * CHUNK, len = chunk_len(n, (size_t)c);
        if (!want) {
            adam_loop(&k, pre, w + i0, m + i0, v + i0, g + i0, len);
            continue;
        }
        float wb[CHUNK];
        memcpy(wb, w + i0, len * sizeof *wb);
        adam_loop(&k, pre, w + i0, m + i0, v + i0, g + i0, len);
        ag_optim_counts lc = {0, 0, 0};
        adam_count(&k, wb, w + i0, g + i0, len, &lc,
                   movement ? movement + i0 : NULL);
        nu += lc.updates;
        nf += lc.flips;
        ns += lc.stalls;
    }
    if (counts) {
        counts->updates += nu;
        counts->flips += nf;
        counts->stalls += ns;
    }
    return AG_OK;
}

/* ------------------------------------------------------------------------ */
/* Grid optimizer                                                           */
/* ------------------------------------------------------------------------ */

ag_grid_opts ag_grid_opts_default(void)
{
    ag_grid_opts o;
    o.rate = 6.0;
    o.momentum = 0.9;
    o.weight_decay = 1e-4;
    o.rung_clip = 10;
    o.seed = 0;
    o.stream = 0;
    o.offset = 0;
    o.threads = 0;
    return o;
}

typedef struct grid_k {
    const ag_format *fmt;
    float scale, wd, mom, rate, clip;
    int has_decay;
    int32_t pmin, pmax;  /* grid positions of the finite ends */
    uint64_t seed, stream, offset;
} grid_k;

/* The new codes of the grid step: position of codes[i] minus the rung
 * move of r[i] (not NaN) with bits rnd[i], clamped to [pmin, pmax].
 * Selects only (a loop of its own, so that it vectorizes). */
static inline void rung_codes(uint16_t *restrict nc, const float *restrict r,
                              const uint32_t *restrict rnd,
                              const uint16_t *restrict codes, size_t len,
                              uint32_t sm, int nz, int32_t pmin, int32_t pmax)
{
    for (size_t i = 0; i < len; i++) {
        const float rs = r[i]; /* never NaN here; |rs| <= clip <= 2^17 */
        const int32_t ti = (int32_t)rs;   /* toward zero, then floor: */
        const int32_t fi = ti - (int32_t)((float)ti > rs);
        const float fl = (float)fi, fr = rs - fl;
        /* bits < floor(fr 2^32)  <=>  bits + 1 <= fr 2^32 (exact in double) */
        const int32_t up = (double)rnd[i] + 1.0 <= (double)fr * 4294967296.0;
        const int32_t kk = fi + up;
        int32_t p = ag__grid_pos_p(sm, nz, codes[i]) - kk;
        p = p < pmin ? pmin : p;
        p = p > pmax ? pmax : p;
        /* the code at position p: p >= 0 -> p; p < 0 -> sign | (-p - nz) */
        const int32_t ng = (int32_t)(p < 0);
        const int32_t mag = ((p ^ -ng) + ng) - ng * (int32_t)(nz != 0);
        nc[i] = (uint16_t)((uint32_t)ng * sm | (uint32_t)mag);
    }
}

AG__CLONES
static void grid_chunk(const grid_k *k, float *restrict w, float *restrict vel,
                       const float *restrict g, size_t len, size_t i0,
                       uint64_t *nu, uint64_t *nf)
{
    uint16_t codes[CHUNK];
    uint32_t rnd[CHUNK + 4];
    float r[CHUNK];
    const uint64_t g0 = k->offset + (uint64_t)i0;
    size_t first = 0;
    if (g0 <= UINT64_MAX - len) {
        first = (size_t)(g0 & 3u);
        ag__ars_fill(rnd, g0 >> 2, (first + len + 3) / 4, k->seed, k->stream);
    } else { /* the stream index wraps inside the chunk */
        for (size_t i = 0; i < len; i++)
            rnd[i] = ag__random_u32(k->seed, k->stream, g0 + i);
    }
    encode_nearest(codes, w, len, k->fmt, k->scale);
    uint8_t bad[CHUNK];
    uint32_t cu = 0;
    /* velocity and rung move: plain float32 that vectorizes */
    for (size_t i = 0; i < len; i++) {
        const float gi = g[i];
        cu += is_update(gi);
        const float gd = k->has_decay ? gi + k->wd * w[i] : gi;
        const float vi = k->mom * vel[i] + gd;
        vel[i] = vi;
        float ri = k->rate * vi;
        ri = ri > k->clip ? k->clip : ri;
        ri = ri < -k->clip ? -k->clip : ri;
        /* a NaN weight or move: the weight becomes NaN, the move 0 */
        const uint32_t nan = (uint32_t)(ri != ri) | (uint32_t)(w[i] != w[i]);
        bad[i] = (uint8_t)nan;
        r[i] = ag__u2f(ag__f2u(ri) & (nan - 1u));
    }
    /* the rung move on grid positions (int32, selects only), then the
     * bulk decoder gives to_real(code) * scale */
    uint16_t nc[CHUNK];
    const uint32_t sm = k->fmt->sign_mask;
    const int nz = k->fmt->no_zero;
    const int32_t pmin = k->pmin, pmax = k->pmax;
    rung_codes(nc, r, rnd + first, codes, len, sm, nz, pmin, pmax);
    ag_status st;
    if (k->fmt->bits <= 8) { /* the byte decoder's fast paths */
        uint8_t c8[CHUNK];
        for (size_t i = 0; i < len; i++)
            c8[i] = (uint8_t)nc[i];
        st = ag_decode_u8(r, c8, len, k->fmt, k->scale);
    } else {
        st = ag_decode_u16(r, nc, len, k->fmt, k->scale);
    }
    assert(st == AG_OK); /* codes of finite grid values */
    (void)st;
    uint32_t cf = 0;
    for (size_t i = 0; i < len; i++) {
        const float w0 = w[i];
        const float wn = bad[i] ? NAN : r[i];
        cf += (uint32_t)(wn != w0) & (uint32_t)(wn == wn) & (uint32_t)(w0 == w0);
        w[i] = wn;
    }
    *nu += cu;
    *nf += cf;
}

ag_status ag_grid_step(float *w, float *vel, const float *g, size_t n,
                       const ag_format *fmt, float scale,
                       const ag_grid_opts *opts, uint64_t *updates,
                       uint64_t *flips)
{
    ag__chk ck = AG__CHK_INIT;
    ag__chk_ptr(&ck, opts);
    if (n) {
        ag__chk_ptr(&ck, w);
        ag__chk_ptr(&ck, vel);
        ag__chk_ptr(&ck, g);
    }
    ag__chk_fmt(&ck, fmt);
    ag__chk_scale(&ck, scale);
    const ag_grid_opts *o = opts;
    if (o)
        ag__chk_arg(&ck, finite_d(o->rate) && o->rate >= 0.0 && finite_d(o->momentum) &&
                            o->momentum >= 0.0 && finite_d(o->weight_decay) &&
                            o->weight_decay >= 0.0 && o->rung_clip >= 0 &&
                            o->threads >= 0);
    size_t m;
    ag__chk_count(&ck, &m, 1, n);
    const size_t b = m * sizeof(float);
    ag__chk_alias(&ck, w, b, vel, b, 0);
    ag__chk_alias(&ck, w, b, g, b, 0);
    ag__chk_alias(&ck, vel, b, g, b, 0);
    const ag_status st = ag__chk_status(&ck);
    if (st != AG_OK || n == 0)
        return st;
    grid_k k;
    k.fmt = fmt;
    k.scale = scale;
    k.wd = (float)o->weight_decay;
    k.has_decay = o->weight_decay != 0.0;
    k.mom = (float)o->momentum;
    k.rate = (float)o->rate;
    /* beyond 2^17 rungs the clamp to the grid decides anyway (at most
     * 2^16 positions): the bound keeps the rung count exact in float32 */
    k.clip = (float)(o->rung_clip < (1 << 17) ? o->rung_clip : (1 << 17));
    k.pmax = (int32_t)ag__grid_pos(fmt, fmt->max_code);
    k.pmin = fmt->is_signed
                 ? (int32_t)ag__grid_pos(fmt, fmt->sign_mask | fmt->max_code)
                 : 0;
    k.seed = o->seed;
    k.stream = o->stream;
    k.offset = o->offset;
    const size_t nch = (n + CHUNK - 1) / CHUNK;
    const int nt = ag__thread_count(AG__PAR_GRID, n, o->threads);
    uint64_t nu = 0, nf = 0;
    ptrdiff_t c;
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1) \
    reduction(+ : nu, nf)
#endif
    for (c = 0; c < (ptrdiff_t)nch; c++) {
        const size_t i0 = (size_t)c * CHUNK;
        grid_chunk(&k, w + i0, vel + i0, g + i0, chunk_len(n, (size_t)c), i0,
                   &nu, &nf);
    }
    if (updates)
        *updates += nu;
    if (flips)
        *flips += nf;
    return AG_OK;
}
