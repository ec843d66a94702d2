/* SPDX-License-Identifier: MIT */
/*
 * test_kernels.c — the fast bulk paths against the scalar specification.
 *
 *  1. Every available path (portable, avx2, avx512, auto) gives the same bits
 *     and the same stats as AG_KERNEL_SCALAR (ag__round per element) for
 *     ag_quantize / ag_encode_u8 / ag_encode_u16, every registry format and
 *     a few custom ones (E = 0, M = 0, unsigned, no_zero, deep subnormals),
 *     every rounding mode, both overflow policies, a power-of-two scale (the
 *     multiply path), a plain one and a huge one; inputs: every code's value
 *     (sampled for 16-bit formats), its float neighbours, the midpoints and
 *     their neighbours, the overflow boundary, +-0, +-inf, NaNs, float
 *     subnormals, random bit patterns; odd lengths, misaligned pointers,
 *     in place.
 *  2. Decode (per path, white box through ag_kernels.h) == to_real * scale.
 *  3. The rule that picks a call's thread count; threads 1, 2, 7 and 0 give
 *     identical outputs and stats (n above every threading threshold).
 *  4. Stochastic rounding: reproducible from the seed, streams and seeds
 *     differ, offset continues a stream, results land on the two
 *     neighbours only, and the number of round-ups over N draws is within
 *     5 binomial standard deviations (+1) of N * p for values in several
 *     binades, subnormals included (a false alarm has probability < 1e-6
 *     per check; the seeds are fixed, so the run is deterministic).
 *  5. Option errors.
 *  6. Stochastic quantize on blocks right above 2^emin * scale (the
 *     AVX-512 integer loop's threshold), and a stride through (or, with
 *     AG_TEST_LONG, all of) the float32 space in both modes against the
 *     generic C body.
 *  7. The generator: every implementation of ARS-7 against the reference.
 *  8. Stochastic rounding with the random word exactly on the threshold
 *     (down) and one ulp above it (up), on every path and both AVX-512
 *     loops, in a normal binade and in the subnormal range.
 *  9. Stream indices that wrap past 2^64 inside a call: every path and
 *     format, quantize and encode, 1 and 2 threads, against the scalar
 *     path and against the call split at the wrap.
 * 10. Vectors of mixed value classes (zero, tiny, below the smallest step,
 *     subnormal range, normal, max_finite, beyond, inf, NaN), one class
 *     or several per vector: every path and 8-bit format against the
 *     scalar path.
 */
#include "ag_test.h"
#include "ag_test_rng.h"

#include <altgrad.h>
#include <math.h>

#include "../src/ag_kernels.h"
#include "ref/ag_ref.h"

static float fbits(uint32_t u) { return ag_test_float(u); }
static uint32_t bitsf(float f) { return ag_test_bits(f); }

/* Inputs for fmt at scale: returns the count written to x (cap entries). */
static size_t make_inputs(float *x, size_t cap, const ag_format *f, float scale)
{
    size_t n = 0;
#define PUT(v) do { if (n < cap) x[n++] = (v); } while (0)
    const uint32_t step = f->ncodes > 512 ? f->ncodes / 509 : 1;
    for (uint32_t c = (uint32_t)(rng_next() % step); c < f->ncodes; c += step) {
        const float v = ag_to_real(f, c);
        if (!isfinite(v))
            continue;
        const float nx = ag_to_real(f, c + 1 < f->ncodes ? c + 1 : c);
        const float xs = v * scale;
        PUT(xs);
        PUT(fbits(bitsf(xs) + 1));
        if (bitsf(xs) & 0x7fffffffu)
            PUT(fbits(bitsf(xs) - 1));
        if (isfinite(nx) && nx != v) {
            const float mid = (float)(((double)v + (double)nx) / 2) * scale;
            PUT(mid);
            PUT(fbits(bitsf(mid) + 1));
            PUT(fbits(bitsf(mid) - 1));
        }
    }
    /* the overflow boundary: max + half a step, and around it */
    const float mx = f->max_finite;
    const float half_step = f->mbits >= 1 ? ldexpf(1.0f, f->emax - f->mbits - 1)
                                          : ldexpf(1.0f, f->emax - 1);
    const float bnd = (mx + half_step) * scale;
    PUT(bnd); PUT(-bnd); PUT(fbits(bitsf(bnd) + 1)); PUT(fbits(bitsf(bnd) - 1));
    PUT(2 * mx * scale); PUT(-4 * mx * scale);
    PUT(f->min_subnormal * scale * 0.5f); PUT(f->min_subnormal * scale * 0.25f);
    PUT(-f->min_subnormal * scale * 0.5f); PUT(f->min_subnormal * scale * 0.75f);
    static const uint32_t sp[] = {0, 0x80000000u, 0x7f800000u, 0xff800000u,
                                  0x7fc00000u, 0xffc00000u, 0x7f800001u,
                                  0xffa00001u, 1, 0x80000001u, 0x007fffffu,
                                  0x00400000u, 0x807fffffu, 0x00800000u,
                                  0x7f7fffffu, 0xff7fffffu, 0x3f800000u,
                                  0xbf800000u};
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++)
        PUT(fbits(sp[i]));
    for (int i = 0; i < 600; i++)
        PUT(fbits((uint32_t)rng_next()));
    for (int i = 0; i < 600; i++) { /* random values around the format's range */
        const int e = f->emin - f->mbits - 3 + (int)(rng_next() % (uint64_t)(f->emax - f->emin + f->mbits + 6));
        const float m = 1.0f + (float)(rng_next() & 0xffffff) / 16777216.0f;
        PUT(ldexpf(rng_next() & 1 ? -m : m, e) * scale);
    }
#undef PUT
    return n;
}

static int stats_eq(const ag_stats *a, const ag_stats *b)
{
    return a->total == b->total && a->overflow == b->overflow &&
           a->underflow == b->underflow && a->nan == b->nan;
}

static const int paths[] = {AG_KERNEL_PORTABLE, AG_KERNEL_AVX2,
                            AG_KERNEL_AVX512, AG_KERNEL_AUTO};
#define NPATHS (sizeof paths / sizeof paths[0])

/* Part 1 for one format. */
static void check_format(const ag_format *f, float *x, size_t cap)
{
    static const float scales[] = {1.0f, 0.125f, 3.7f, 0x1p100f};
    float *ys = malloc((cap + 8) * sizeof *ys), *yk = malloc((cap + 8) * sizeof *yk);
    uint16_t *cs = malloc((cap + 8) * sizeof *cs), *ck = malloc((cap + 8) * sizeof *ck);
    uint8_t *bs = malloc(cap + 8), *bk = malloc(cap + 8);
    if (!ys || !yk || !cs || !ck || !bs || !bk) {
        AG_CHECK(0, "malloc");
        goto out;
    }
    for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++) {
        const float scale = scales[si];
        if (si == 3 && f->bits > 8)
            continue; /* keep the run short */
        const size_t n = make_inputs(x + 1, cap - 1, f, scale); /* x+1: misaligned */
        const float *xi = x + 1;
        for (int mode = 0; mode <= AG_ROUND_STOCHASTIC; mode++) {
            for (int ovf = 0; ovf <= 1; ovf++) {
                ag_qopts o = ag_qopts_default();
                o.rounding = (ag_rounding)mode;
                o.overflow = (ag_overflow)ovf;
                o.seed = 0x1234567890abcdefu;
                o.stream = 77;
                o.offset = 5; /* not a multiple of 4 */
                o.kernel = AG_KERNEL_SCALAR;
                ag_stats s_q = {0}, s_e8 = {0}, s_e16 = {0};
                AG_CHECK(ag_quantize(ys, xi, n, f, scale, &o, &s_q) == AG_OK, "q");
                AG_CHECK(ag_encode_u16(cs, xi, n, f, scale, &o, &s_e16) == AG_OK, "e16");
                if (f->bits <= 8)
                    AG_CHECK(ag_encode_u8(bs, xi, n, f, scale, &o, &s_e8) == AG_OK, "e8");
                AG_CHECK(stats_eq(&s_q, &s_e16), "%s: quantize and encode stats", f->name);
                for (size_t pi = 0; pi < NPATHS; pi++) {
                    if (!ag_kernel_available(paths[pi]))
                        continue;
                    o.kernel = paths[pi];
                    const char *pn = ag_kernel_name(paths[pi]);
                    ag_stats k_q = {0}, k_e8 = {0}, k_e16 = {0};
                    /* odd length from the misaligned start: whole array */
                    AG_CHECK(ag_quantize(yk + 1, xi, n, f, scale, &o, &k_q) == AG_OK, "q");
                    size_t bad = 0, first = 0;
                    for (size_t i = 0; i < n; i++)
                        if (bitsf(yk[i + 1]) != bitsf(ys[i]) && !bad++)
                            first = i;
                    AG_CHECK(bad == 0, "%s %s mode %d ovf %d scale %g: quantize %zu "
                             "differ, first x=%a (%08x): %08x vs scalar %08x", f->name, pn,
                             mode, ovf, (double)scale, bad, (double)xi[first],
                             bitsf(xi[first]), bitsf(yk[first + 1]), bitsf(ys[first]));
                    AG_CHECK(stats_eq(&k_q, &s_q), "%s %s mode %d ovf %d: quantize stats "
                             "%llu/%llu/%llu vs %llu/%llu/%llu", f->name, pn, mode, ovf,
                             (unsigned long long)k_q.overflow, (unsigned long long)k_q.underflow,
                             (unsigned long long)k_q.nan, (unsigned long long)s_q.overflow,
                             (unsigned long long)s_q.underflow, (unsigned long long)s_q.nan);
                    AG_CHECK(ag_encode_u16(ck, xi, n, f, scale, &o, &k_e16) == AG_OK, "e16");
                    bad = 0;
                    for (size_t i = 0; i < n; i++)
                        if (ck[i] != cs[i] && !bad++)
                            first = i;
                    AG_CHECK(bad == 0, "%s %s mode %d ovf %d: encode_u16 %zu differ, "
                             "first x=%a: %04x vs %04x", f->name, pn, mode, ovf, bad,
                             (double)xi[first], ck[first], cs[first]);
                    AG_CHECK(stats_eq(&k_e16, &s_e16), "%s %s: encode_u16 stats", f->name, pn);
                    if (f->bits <= 8) {
                        AG_CHECK(ag_encode_u8(bk + 1, xi, n, f, scale, &o, &k_e8) == AG_OK, "e8");
                        AG_CHECK(memcmp(bk + 1, bs, n) == 0, "%s %s mode %d: encode_u8",
                                 f->name, pn, mode);
                        AG_CHECK(stats_eq(&k_e8, &s_e8), "%s %s: encode_u8 stats", f->name, pn);
                    }
                    /* without stats (the uncounted loops): the same bits */
                    AG_CHECK(ag_quantize(yk + 1, xi, n, f, scale, &o, NULL) == AG_OK, "q");
                    AG_CHECK(n == 0 || memcmp(yk + 1, ys, n * sizeof *yk) == 0,
                             "%s %s mode %d ovf %d: quantize without stats", f->name, pn,
                             mode, ovf);
                    AG_CHECK(ag_encode_u16(ck, xi, n, f, scale, &o, NULL) == AG_OK, "e16");
                    AG_CHECK(n == 0 || memcmp(ck, cs, n * sizeof *ck) == 0,
                             "%s %s mode %d ovf %d: encode_u16 without stats", f->name, pn,
                             mode, ovf);
                    if (f->bits <= 8) {
                        AG_CHECK(ag_encode_u8(bk + 1, xi, n, f, scale, &o, NULL) == AG_OK, "e8");
                        AG_CHECK(n == 0 || memcmp(bk + 1, bs, n) == 0,
                                 "%s %s mode %d: encode_u8 without stats", f->name, pn, mode);
                    }
                    /* in place, and short odd lengths at odd offsets */
                    if (si == 0) {
                        memcpy(yk, xi, n * sizeof *yk);
                        AG_CHECK(ag_quantize(yk, yk, n, f, scale, &o, NULL) == AG_OK, "q");
                        AG_CHECK(memcmp(yk, ys, n * sizeof *yk) == 0 ||
                                     n == 0, "%s %s mode %d: in place", f->name, pn, mode);
                        for (size_t len = 1; len < 40 && len + 3 < n; len += 3) {
                            ag_qopts o2 = o;
                            o2.offset = o.offset + 3; /* element 3 of the stream */
                            AG_CHECK(ag_quantize(yk, xi + 3, len, f, scale, &o2, NULL) == AG_OK, "q");
                            AG_CHECK(memcmp(yk, ys + 3, len * sizeof *yk) == 0,
                                     "%s %s mode %d: len %zu", f->name, pn, mode, len);
                        }
                    }
                }
            }
        }
    }
    /* the streaming-store path of large encodes (white box: forced on a
     * small output at every offset within a cache line; quantize ignores
     * the flag and is checked at the same offsets), every path,
     * nearest-even and stochastic (stream offsets 0 and 7), against the
     * scalar path */
    for (int mode = 0; mode < 3; mode++) {
        const float scale = 0.375f;
        const size_t n = make_inputs(x + 1, cap - 16, f, scale);
        ag_qopts o = ag_qopts_default();
        o.rounding = mode ? AG_ROUND_STOCHASTIC : AG_ROUND_NEAREST_EVEN;
        o.seed = 99;
        const uint64_t g0 = mode == 2 ? 7 : 0;
        static ag__kparams p;
        ag__kparams_init(&p, f, scale, &o);
        const ag__kernel_ops *sk = ag__kernel_table(AG_KERNEL_SCALAR);
        ag__kstats s0 = {0, 0, 0}, e0 = {0, 0, 0};
        sk->quantize(ys, x + 1, n, g0, &p, &s0);
        sk->encode_u16(cs, x + 1, n, g0, &p, &e0);
        if (f->bits <= 8)
            sk->encode_u8(bs, x + 1, n, g0, &p, &e0);
        p.stream_out = 1;
        for (size_t pi = 0; pi < NPATHS; pi++) {
            const ag__kernel_ops *k = ag__kernel_table(paths[pi]);
            if (!k)
                continue;
            size_t bad_q = 0, bad_e = 0;
            for (size_t off = 0; off < 16; off++) {
                ag__kstats s1 = {0, 0, 0}, e1 = {0, 0, 0};
                k->quantize(yk + off, x + 1, n, g0, &p, &s1);
                bad_q += memcmp(yk + off, ys, n * sizeof *ys) != 0 ||
                         s1.overflow != s0.overflow || s1.underflow != s0.underflow ||
                         s1.nan != s0.nan;
                /* codes at every offset within 16 / 32 bytes */
                k->encode_u16(ck + off, x + 1, n, g0, &p, &e1);
                bad_e += memcmp(ck + off, cs, n * sizeof *cs) != 0;
                if (f->bits <= 8) {
                    k->encode_u8(bk + off, x + 1, n, g0, &p, &e1);
                    bad_e += memcmp(bk + off, bs, n) != 0;
                }
            }
            AG_CHECK(bad_q == 0 && bad_e == 0,
                     "%s %s mode %d: streamed quantize / encode, %zu / %zu offsets differ",
                     f->name, ag_kernel_name(paths[pi]), mode, bad_q, bad_e);
        }
    }
    /* decode, every path, against to_real * scale */
    if (f->bits <= 16) {
        const size_t nc = f->ncodes;
        float *ref = malloc(nc * sizeof *ref), *got = malloc((nc + 1) * sizeof *got);
        uint16_t *codes = malloc((nc + 1) * sizeof *codes);
        uint8_t *codes8 = malloc(nc + 1);
        if (!ref || !got || !codes || !codes8) {
            AG_CHECK(0, "malloc");
        } else {
            const float scale = 0.375f;
            for (size_t c = 0; c < nc; c++) {
                codes[c] = (uint16_t)c;
                codes8[c + 1] = (uint8_t)c;
                ref[c] = ag_to_real(f, (uint32_t)c) * scale;
            }
            ag_qopts o = ag_qopts_default();
            static ag__kparams p; /* large: the decode table */
            ag__kparams_init(&p, f, scale, &o);
            for (size_t pi = 0; pi < 2 * NPATHS; pi++) {
                const ag__kernel_ops *k = ag__kernel_table(paths[pi % NPATHS]);
                if (pi == NPATHS) /* second round: the 8-bit table path */
                    ag__kparams_decode_lut(&p);
                if (!k || (pi >= NPATHS && !p.dlut_ok))
                    continue;
                k->decode_u16(got + 1, codes, nc, &p);
                size_t bad = 0, first = 0;
                for (size_t c = 0; c < nc; c++)
                    if (bitsf(got[c + 1]) != bitsf(ref[c]) && !bad++)
                        first = c;
                AG_CHECK(bad == 0, "%s %s decode_u16: %zu differ, first code %zx: %08x vs %08x",
                         f->name, ag_kernel_name(paths[pi % NPATHS]), bad, first,
                         bitsf(got[first + 1]), bitsf(ref[first]));
                if (f->bits <= 8) {
                    k->decode_u8(got, codes8 + 1, nc, &p);
                    AG_CHECK(memcmp(got, ref, nc * sizeof *got) == 0, "%s %s decode_u8 (%s)",
                             f->name, ag_kernel_name(paths[pi % NPATHS]),
                             pi >= NPATHS ? "table" : "arithmetic");
                    /* random codes, lengths around the 64-code steps of
                     * the AVX-512 table loop, from several offsets */
                    uint8_t rc[1100];
                    float rg[1100];
                    for (size_t r = 0; r < sizeof rc; r++)
                        rc[r] = (uint8_t)(rng_next() % nc);
                    size_t rbad = 0;
                    for (size_t off = 0; off < 4; off++) {
                        const size_t len = 1027 + 17 * off;
                        k->decode_u8(rg + off, rc + off, len, &p);
                        for (size_t r = 0; r < len; r++)
                            rbad += bitsf(rg[off + r]) != bitsf(ref[rc[off + r]]);
                    }
                    AG_CHECK(rbad == 0, "%s %s decode_u8 (%s), random codes: %zu differ", f->name,
                             ag_kernel_name(paths[pi % NPATHS]),
                             pi >= NPATHS ? "table" : "arithmetic", rbad);
                }
            }
            /* the public calls */
            if (f->bits <= 8) {
                AG_CHECK(ag_decode_u8(got, codes8 + 1, nc, f, scale) == AG_OK, "decode_u8");
                AG_CHECK(memcmp(got, ref, nc * sizeof *got) == 0, "%s ag_decode_u8", f->name);
            }
            AG_CHECK(ag_decode_u16(got, codes, nc, f, scale) == AG_OK, "decode_u16");
            AG_CHECK(memcmp(got, ref, nc * sizeof *got) == 0, "%s ag_decode_u16", f->name);
        }
        free(ref);
        free(got);
        free(codes);
        free(codes8);
    }
out:
    free(ys);
    free(yk);
    free(cs);
    free(ck);
    free(bs);
    free(bk);
}

/* Part 3a: the rule that picks the thread count of (operation, n): one
 * thread below the operation's threshold and when asked for one; above
 * it never more than asked for (or available), never a thread for less
 * than AG__PAR_THREAD_NS of estimated work, never fewer threads for more
 * elements; with every core busy, one thread below AG__PAR_BUSY_NS of
 * work; costlier elements (stochastic) reach it with fewer elements; a
 * pure function of its arguments. (Not a timing test: the rule only.) */
static void check_thread_rule(void)
{
    size_t bad = 0;
    for (int op = 0; op < AG__PAR_NOPS; op++) {
        const size_t m = ag__par_min((ag__par_op)op);
        AG_CHECK(m > ((size_t)1 << 16) && m < ((size_t)1 << 24), "op %d: threshold %zu", op, m);
        for (int avail = 1; avail <= 64; avail *= 4) {
            int prev = 1;
            for (size_t n = 1; n < ((size_t)1 << 28); n = n * 5 / 4 + 1) {
                const int t = ag__par_threads((ag__par_op)op, n, 0, avail, 0);
                const size_t b0 = bad;
                bad += t < 1 || t > avail || t < prev;
                bad += n < m && t != 1;
                bad += ag__par_threads((ag__par_op)op, n, 1, avail, 0) != 1;
                bad += ag__par_threads((ag__par_op)op, n, 3, avail, 0) > 3;
                bad += ag__par_threads((ag__par_op)op, n, 0, avail, 0) != t; /* pure */
                if (bad != b0 && bad < 4)
                    printf("thread rule: op %d n %zu avail %d: %d threads\n", op, n, avail, t);
                prev = t;
            }
            /* busy cores: one thread below AG__PAR_BUSY_NS of work (m
             * holds AG__PAR_MIN_NS of it), the same as not busy far above */
            for (size_t n = m; n < ((size_t)1 << 28); n = n * 5 / 4 + 1) {
                const int tb = ag__par_threads((ag__par_op)op, n, 0, avail, 1);
                const int tq = ag__par_threads((ag__par_op)op, n, 0, avail, 0);
                bad += tb != 1 && tb != tq;
                bad += n < m * (size_t)(AG__PAR_BUSY_NS / AG__PAR_MIN_NS) / 2 && tb != 1;
                bad += n > m * (size_t)(AG__PAR_BUSY_NS / AG__PAR_MIN_NS) * 2 && tb != tq;
                /* an explicit count is not lowered for busy cores */
                bad += ag__par_threads((ag__par_op)op, n, 3, avail, 1) !=
                       ag__par_threads((ag__par_op)op, n, 3, avail, 0);
            }
            /* far above the threshold every available thread is used */
            bad += ag__par_threads((ag__par_op)op, (size_t)1 << 30, 0, avail, 0) != avail;
        }
        /* the per-thread work: t threads only when n holds t times the
         * work of AG__PAR_THREAD_NS (m holds twice that, rounded up to
         * 64 elements) */
        size_t bt = 0;
        for (int t = 2; t <= 8; t++) {
            bt += ag__par_threads((ag__par_op)op, m / 2 * (size_t)t - m / 8, 0, 64, 0) >= t;
            bt += ag__par_threads((ag__par_op)op, m / 2 * (size_t)t + m / 8, 0, 64, 0) < t;
        }
        AG_CHECK(bt == 0, "op %d: threads against the work per thread: %zu wrong", op, bt);
        bad += ag__par_threads((ag__par_op)op, m, 0, 64, 0) != 2;
        bad += ag__par_threads((ag__par_op)op, m - 1, 0, 64, 0) != 1;
    }
    AG_CHECK(bad == 0, "thread rule: %zu violations", bad);
    AG_CHECK(ag__par_min(AG__PAR_QUANT_SR) < ag__par_min(AG__PAR_QUANT) &&
                 ag__par_min(AG__PAR_ENCODE_SR) < ag__par_min(AG__PAR_ENCODE),
             "stochastic (costlier per element) reaches threads sooner");
    AG_CHECK(ag__par_min((ag__par_op)-1) == SIZE_MAX && ag__par_min(AG__PAR_NOPS) == SIZE_MAX,
             "unknown operation: never threaded");
    printf("thread rule: thresholds quantize %zu, stochastic %zu, encode %zu, decode %zu\n",
           ag__par_min(AG__PAR_QUANT), ag__par_min(AG__PAR_QUANT_SR),
           ag__par_min(AG__PAR_ENCODE), ag__par_min(AG__PAR_DECODE));
}

/* Part 3: thread counts (n above every operation's threshold). */
/* Mixed inputs: every 97th a random bit pattern (NaNs, infs, subnormals),
 * the rest uniform in (-1, 1) times 2^e for e in [-emag, emag). */
static void fill_mixed(float *x, size_t n, int emag)
{
    for (size_t i = 0; i < n; i++)
        x[i] = i % 97 == 0 ? fbits((uint32_t)rng_next())
                           : ldexpf((float)(int64_t)(rng_next() % 2000001) / 1e6f - 1.0f,
                                    (int)(rng_next() % (uint64_t)(2 * emag)) - emag);
}

static void check_threads(void)
{
    const size_t n = (size_t)5 << 19 | 13;
    float *x = malloc(n * sizeof *x), *y1 = malloc(n * sizeof *y1),
          *y2 = malloc(n * sizeof *y2);
    uint8_t *c1 = malloc(n), *c2 = malloc(n);
    if (!x || !y1 || !y2 || !c1 || !c2) {
        AG_CHECK(0, "malloc");
        goto out;
    }
    fill_mixed(x, n, 20);
    const ag_format *fs[] = {ag_format_get("E4M3"), ag_format_get("E5M2"),
                             ag_format_get("float8_e4m3fn"), ag_format_get("BF16")};
    static const int modes[] = {AG_ROUND_NEAREST_EVEN, AG_ROUND_STOCHASTIC, AG_ROUND_DOWN};
    static const int thr[] = {2, 7, 0};
    for (size_t fi = 0; fi < sizeof fs / sizeof fs[0]; fi++) {
        for (size_t mi = 0; mi < sizeof modes / sizeof modes[0]; mi++) {
            ag_qopts o = ag_qopts_default();
            o.rounding = (ag_rounding)modes[mi];
            o.seed = 42;
            o.offset = 3;
            o.threads = 1;
            ag_stats s1 = {0}, e1 = {0};
            AG_CHECK(ag_quantize(y1, x, n, fs[fi], 0.5f, &o, &s1) == AG_OK, "q");
            if (fs[fi]->bits <= 8)
                AG_CHECK(ag_encode_u8(c1, x, n, fs[fi], 0.5f, &o, &e1) == AG_OK, "e");
            for (size_t ti = 0; ti < sizeof thr / sizeof thr[0]; ti++) {
                o.threads = thr[ti];
                ag_stats s2 = {0}, e2 = {0};
                AG_CHECK(ag_quantize(y2, x, n, fs[fi], 0.5f, &o, &s2) == AG_OK, "q");
                AG_CHECK(memcmp(y1, y2, n * sizeof *y1) == 0, "%s mode %d threads %d: outputs",
                         fs[fi]->name, modes[mi], thr[ti]);
                AG_CHECK(stats_eq(&s1, &s2), "%s threads %d: stats", fs[fi]->name, thr[ti]);
                if (fs[fi]->bits <= 8) {
                    AG_CHECK(ag_encode_u8(c2, x, n, fs[fi], 0.5f, &o, &e2) == AG_OK, "e");
                    AG_CHECK(memcmp(c1, c2, n) == 0 && stats_eq(&e1, &e2),
                             "%s threads %d: encode", fs[fi]->name, thr[ti]);
                    /* decode and the scale calls split the same way */
                    AG_CHECK(ag_decode_u8(y2, c2, n, fs[fi], 0.5f) == AG_OK, "d");
                }
            }
            if (fs[fi]->bits <= 8) {
                size_t bad = 0;
                for (size_t i = 0; i < n; i++)
                    bad += bitsf(y2[i]) != bitsf(ag_to_real(fs[fi], c1[i]) * 0.5f);
                AG_CHECK(bad == 0, "%s: threaded decode %zu differ", fs[fi]->name, bad);
            }
        }
    }
    /* backward and dequantize, threaded vs the element-wise definition */
    {
        ag_qopts o = ag_qopts_default();
        o.ste = AG_STE_CLIPPED;
        const ag_format *f = fs[0];
        for (size_t i = 0; i < n; i++)
            y1[i] = (float)(i % 7) - 3.0f;
        memcpy(y2, y1, n * sizeof *y1);
        AG_CHECK(ag_quantize_backward(y2, x, x, n, f, 0.5f, &o) == AG_OK, "bwd");
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) {
            const float want = fabsf(x[i] / 0.5f) > f->max_finite ? y1[i] : y1[i] + x[i];
            bad += bitsf(want) != bitsf(y2[i]);
        }
        AG_CHECK(bad == 0, "clipped backward: %zu differ", bad);
        memcpy(y2, y1, n * sizeof *y1);
        AG_CHECK(ag_dequantize_backward(y2, x, n, 3.0f) == AG_OK, "dqb");
        bad = 0;
        for (size_t i = 0; i < n; i++) {
            const float prod = x[i] * 3.0f;
            bad += bitsf(y1[i] + prod) != bitsf(y2[i]);
        }
        AG_CHECK(bad == 0, "dequantize_backward: %zu differ", bad);
        AG_CHECK(ag_dequantize(y2, x, n, 3.0f) == AG_OK, "dq");
        bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += bitsf(x[i] * 3.0f) != bitsf(y2[i]);
        AG_CHECK(bad == 0, "dequantize: %zu differ", bad);
    }
out:
    free(x);
    free(y1);
    free(y2);
    free(c1);
    free(c2);
}

/* Part 4: stochastic rounding. */
static void check_stochastic(void)
{
    const size_t n = 20000;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y),
          *y2 = malloc(n * sizeof *y2);
    if (!x || !y || !y2) {
        AG_CHECK(0, "malloc");
        goto out;
    }
    ag_format deep; /* E8M3, bias 130: normals and subnormals below 2^-126 */
    AG_CHECK(ag_format_init(&deep, "deep", 8, 3, 130, 1, AG_SPECIALS_NONE, 0) == AG_OK, "init");
    struct { const ag_format *f; float v; } cases[] = {
        {ag_format_get("E4M3"), 1.1f},        {ag_format_get("E4M3"), -300.0f},
        {ag_format_get("E4M3"), 0x1.3p-8f},   /* E4M3 subnormal */
        {ag_format_get("E4M3"), 0x1p-12f},    /* below the smallest */
        {ag_format_get("E5M2"), 0.3f},        {ag_format_get("E5M2"), -0x1.8p-15f},
        {ag_format_get("E2M5"), 0.7f},        {ag_format_get("E7M0"), 5.0f},
        {ag_format_get("E0M7"), 0.3f},        {ag_format_get("float8_e4m3fn"), 3.3f},
        {ag_format_get("BF16"), 1.00001f},    {&deep, 0x1.5p-128f}, /* float subnormal */
        {&deep, 0x1.0p-140f},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const ag_format *f = cases[ci].f;
        const float v = cases[ci].v;
        for (size_t i = 0; i < n; i++)
            x[i] = v;
        ag_qopts o = ag_qopts_default();
        o.rounding = AG_ROUND_STOCHASTIC;
        o.seed = 1000 + ci;
        o.stream = ci;
        AG_CHECK(ag_quantize(y, x, n, f, 1.0f, &o, NULL) == AG_OK, "q");
        ag_qopts od = o, ou = o;
        od.rounding = AG_ROUND_DOWN;
        ou.rounding = AG_ROUND_UP;
        const float lo = ag_to_real(f, ag_to_bits_opts(f, v, &od));
        const float hi = ag_to_real(f, ag_to_bits_opts(f, v, &ou));
        size_t ups = 0, other = 0;
        for (size_t i = 0; i < n; i++) {
            if (y[i] == hi && hi != lo)
                ups++;
            else if (y[i] != lo)
                other++;
        }
        AG_CHECK(other == 0, "%s v=%a: %zu results not on a neighbour (%a, %a)",
                 f->name, (double)v, other, (double)lo, (double)hi);
        const double p = hi == lo ? 0.0 : ((double)v - (double)lo) / ((double)hi - (double)lo);
        const double mean = (double)n * p, sd = sqrt((double)n * p * (1 - p));
        AG_CHECK(fabs((double)ups - mean) <= 5 * sd + 1,
                 "%s v=%a: %zu ups of %zu, expected %.1f +- %.1f", f->name, (double)v,
                 ups, n, mean, sd);
        /* the mean of the draws is the input within the same bound */
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += (double)y[i];
        AG_CHECK(fabs(sum / (double)n - (double)v) <= (5 * sd + 1) / (double)n * ((double)hi - (double)lo) + 1e-300,
                 "%s v=%a: mean %a", f->name, (double)v, sum / (double)n);
        /* reproducible; another seed / stream differs */
        AG_CHECK(ag_quantize(y2, x, n, f, 1.0f, &o, NULL) == AG_OK, "q");
        AG_CHECK(memcmp(y, y2, n * sizeof *y) == 0, "%s: same seed, same bits", f->name);
        if (p > 0.01 && p < 0.99) {
            ag_qopts o2 = o;
            o2.stream = o.stream + 1;
            AG_CHECK(ag_quantize(y2, x, n, f, 1.0f, &o2, NULL) == AG_OK, "q");
            AG_CHECK(memcmp(y, y2, n * sizeof *y) != 0, "%s: another stream differs", f->name);
            o2 = o;
            o2.seed = o.seed ^ 0x100000000u; /* the high word of the key */
            AG_CHECK(ag_quantize(y2, x, n, f, 1.0f, &o2, NULL) == AG_OK, "q");
            AG_CHECK(memcmp(y, y2, n * sizeof *y) != 0, "%s: another seed differs", f->name);
        }
        /* offset continuation: [0, n1) then [n1, n) == one call */
        const size_t n1 = 4093;
        ag_qopts o3 = o;
        AG_CHECK(ag_quantize(y2, x, n1, f, 1.0f, &o3, NULL) == AG_OK, "q");
        o3.offset = o.offset + n1;
        AG_CHECK(ag_quantize(y2 + n1, x + n1, n - n1, f, 1.0f, &o3, NULL) == AG_OK, "q");
        AG_CHECK(memcmp(y, y2, n * sizeof *y) == 0, "%s: offset continuation", f->name);
    }
    /* the random words are the documented ones: element i of a call with
     * offset o uses stream element o + i (ag_to_bits_opts), on every path
     * (256 elements: the SIMD ARS loops see the block counter's carry) */
    for (int kern = AG_KERNEL_AUTO; kern <= AG_KERNEL_AVX512; kern++) {
        if (!ag_kernel_available(kern))
            continue;
        const ag_format *f = ag_format_get("E4M3");
        ag_qopts o = ag_qopts_default();
        o.rounding = AG_ROUND_STOCHASTIC;
        o.kernel = kern;
        o.seed = 0xfeedfacecafebeefu;
        o.stream = 0x100000003u;
        o.offset = ((uint64_t)1 << 34) - 6; /* the block counter's carry */
        enum { NC = 256 };
        for (size_t i = 0; i < NC; i++)
            x[i] = 1.0f + (float)i / NC;
        uint8_t c[NC];
        AG_CHECK(ag_encode_u8(c, x, NC, f, 1.0f, &o, NULL) == AG_OK, "e");
        size_t bad = 0;
        for (size_t i = 0; i < NC; i++) {
            ag_qopts oi = o;
            oi.offset = o.offset + i;
            bad += c[i] != ag_to_bits_opts(f, x[i], &oi);
        }
        AG_CHECK(bad == 0, "%s: stream element offset + i: %zu differ", ag_kernel_name(kern), bad);
    }
out:
    free(x);
    free(y);
    free(y2);
}

/* Part 8: the random word exactly on the threshold, on every path. The
 * spec rounds up iff rnd < floor(frac * 2^32): an element whose frac *
 * 2^32 is exactly its own word R stays down, one float ulp above goes up.
 * Such an x is a float only where R's low bits are zero, so stream
 * positions are searched for one; the element then sits at position p of
 * a 256-element call (the rest all normal: the AVX-512 integer loop; or
 * one tiny value among them: the float-sum loop). Values in [1, 2), in
 * the format's subnormal range [2^(emin-1), 2^emin), and below its
 * smallest step 2^(emin-M) (where R decides between 0 and the step). */
static void check_sr_exact_threshold(void)
{
    static const char *names[] = {"E0M7", "E1M6", "E2M5", "E3M4", "E4M3",
                                  "E5M2", "E7M0", "float8_e4m3fn"};
    enum { NC = 256 };
    float x[NC], y[NC];
    const uint64_t seed = 0x5eedc0de12345678u, stream = 7;
    size_t tried = 0, bad = 0;
    uint64_t g = 1000;
    for (size_t fi = 0; fi < sizeof names / sizeof names[0]; fi++) {
        const ag_format *f = ag_format_get(names[fi]);
        const int M = f->mbits;
        for (int sub = 0; sub < 3; sub++) {
            /* the grid point kk * step at the bottom of binade 2^eb (or 0
             * below it, for M = 0, and below the smallest step: sub 2) and
             * the step there; the word R must leave kk * step + R * step *
             * 2^-32 a float */
            const int eb = sub == 2 ? f->emin - M - 3 : (sub ? f->emin - 1 : 0);
            const int estep = sub ? f->emin - M : -M;
            if (sub == 0 && (f->emin > 0 || f->max_finite < 2.0f))
                continue; /* [1, 2) not normal (E1M6) or beyond the range (E0M7) */
            const double stepd = ldexp(1.0, estep), kk = floor(ldexp(1.0, eb) / stepd);
            /* below the step (kk = 0) R is x's frac * 2^32 itself, and
             * one float ulp of x above it moves frac * 2^32 by 2^t for x
             * in [2^(estep - 9 + t), 2^(estep - 8 + t)): t >= 1, R at
             * least 2^24, so that it reaches the next integer; the binade
             * of R (t) taken from the format's index, 1 to 8 */
            const int tb = 24 + (int)(fi % 8);
            double vd = 0;
            for (;; g++) {
                const uint32_t R = ag__random_u32(seed, stream, g);
                vd = kk * stepd + ldexp((double)R, estep - 32);
                if (R != 0 && (double)(float)vd == vd &&
                    (sub < 2 || (R >> tb) == 1u || (tb == 31 && R >> 31)))
                    break;
            }
            const float down = (float)vd;
            const float up = nextafterf(down, INFINITY);
            const float want_down = (float)(kk * stepd), want_up = (float)((kk + 1) * stepd);
            for (int kern = AG_KERNEL_SCALAR; kern <= AG_KERNEL_AVX512; kern++) {
                if (!ag_kernel_available(kern))
                    continue;
                for (int mix = 0; mix < 2; mix++) {
                    for (int pi = 0; pi < 3; pi++) {
                        const size_t pos = pi == 0 ? 0 : (pi == 1 ? 37 : NC - 1);
                        for (int side = 0; side < 2; side++) {
                            for (size_t i = 0; i < NC; i++)
                                x[i] = 1.5f;
                            if (mix)
                                x[(pos + 100) % NC] = 1e-30f; /* below 2^emin */
                            x[pos] = side ? up : down;
                            ag_qopts o = ag_qopts_default();
                            o.rounding = AG_ROUND_STOCHASTIC;
                            o.kernel = kern;
                            o.seed = seed;
                            o.stream = stream;
                            o.offset = g - pos;
                            AG_CHECK(ag_quantize(y, x, NC, f, 1.0f, &o, NULL) == AG_OK, "q");
                            const float want = side ? want_up : want_down;
                            tried++;
                            if (y[pos] != want && bad++ < 5)
                                AG_CHECK(0, "%s %s sub %d mix %d pos %zu: %a gives %a, want %a",
                                         f->name, ag_kernel_name(kern), sub, mix, pos,
                                         (double)x[pos], (double)y[pos], (double)want);
                        }
                    }
                }
            }
            g++;
        }
    }
    AG_CHECK(bad == 0, "random word on the threshold: %zu of %zu wrong", bad, tried);
    printf("sr threshold: %zu calls with the random word exactly on it\n", tried);
}

/* Part 7: the generator itself. Every implementation of ARS-7 in the
 * library (one block and the block fill; VAES and AES-NI where the CPU has
 * them, and the portable C one always) against the reference, for random seeds,
 * streams and blocks, block counters where the low word carries and where
 * the 64-bit counter wraps, and fill lengths around the 8-block step. */
static void check_generator(void)
{
    enum { NB = 37 };
    static const uint64_t edge[] = {0, 1, 0xfffffff0u, 0xfffffffdull, 0xfffffffffffffff0ull,
                                    0xfffffffffffffffdull};
    size_t bad = 0, n = 0;
    int nvaes = 0;
    for (int t = 0; t < 64; t++) {
        const uint64_t seed = t == 0 ? 0 : rng_next();
        const uint64_t stream = t < 2 ? 0 : rng_next();
        const uint64_t blk0 = t < 12 ? edge[t % 6] : rng_next();
        const size_t nblk = (size_t)t % (NB + 1);
        uint32_t a[4 * NB], b[4 * NB], v[4 * NB];
        ag__ars_fill(a, blk0, nblk, seed, stream);
        ag__ars_fill_soft(b, blk0, nblk, seed, stream);
        const int hv = ag__ars_fill_vaes(v, blk0, nblk, seed, stream);
        nvaes += hv;
        for (size_t j = 0; j < nblk; j++) {
            const uint64_t blk = blk0 + j;
            const uint32_t ctr[4] = {(uint32_t)blk, (uint32_t)(blk >> 32), (uint32_t)stream,
                                     (uint32_t)(stream >> 32)};
            const uint32_t key[4] = {(uint32_t)seed, (uint32_t)(seed >> 32), 0, 0};
            uint32_t r[4], one[4], soft[4];
            ag_ref_ars4x32(r, ctr, key, AG__ARS_ROUNDS);
            ag__ars4x32(one, ctr, seed);
            ag__ars4x32_soft(soft, ctr, seed);
            bad += memcmp(r, a + 4 * j, sizeof r) != 0;
            bad += memcmp(r, b + 4 * j, sizeof r) != 0;
            bad += hv && memcmp(r, v + 4 * j, sizeof r) != 0;
            bad += memcmp(r, one, sizeof r) != 0;
            bad += memcmp(r, soft, sizeof r) != 0;
            for (int w = 0; w < 4 && blk < ((uint64_t)1 << 62); w++) /* g = 4 blk + w */
                bad += ag__random_u32(seed, stream, 4 * blk + (uint64_t)w) != r[w];
            n++;
        }
    }
    AG_CHECK(bad == 0, "ARS-7: %zu mismatches against the reference in %zu blocks", bad, n);
    printf("generator: %zu blocks, %d implementations, against the reference\n", n,
           nvaes ? 7 : 6);
}

static void check_options(void)
{
    const ag_format *f = ag_format_get("E4M3");
    float x[3] = {1, 2, 3}, y[3];
    ag_qopts o = ag_qopts_default();
    AG_CHECK(o.kernel == AG_KERNEL_AUTO, "default kernel");
    AG_CHECK(ag_kernel_available(AG_KERNEL_AUTO) && ag_kernel_available(AG_KERNEL_SCALAR) &&
                 ag_kernel_available(AG_KERNEL_PORTABLE), "always available");
    AG_CHECK(!ag_kernel_available(-1) && !ag_kernel_available(99), "unknown ids");
    AG_CHECK(strcmp(ag_kernel_name(AG_KERNEL_AVX512), "avx512") == 0 &&
                 strcmp(ag_kernel_name(42), "?") == 0, "names");
    o.kernel = 99;
    AG_CHECK(ag_quantize(y, x, 3, f, 1.0f, &o, NULL) == AG_ERR_ARG, "bad kernel id");
    o.kernel = -1;
    AG_CHECK(ag_encode_u8((uint8_t *)y, x, 3, f, 1.0f, &o, NULL) == AG_ERR_ARG, "bad kernel id");
    for (int k = AG_KERNEL_AUTO; k <= AG_KERNEL_AVX512; k++) {
        o.kernel = k;
        AG_CHECK(ag_quantize(y, x, 3, f, 1.0f, &o, NULL) ==
                     (ag_kernel_available(k) ? AG_OK : AG_ERR_ARG), "kernel %d", k);
    }
    o = ag_qopts_default();
    o.threads = -1;
    AG_CHECK(ag_quantize(y, x, 3, f, 1.0f, &o, NULL) == AG_ERR_ARG, "threads < 0");
    printf("kernels available:");
    for (int k = AG_KERNEL_SCALAR; k <= AG_KERNEL_AVX512; k++)
        if (ag_kernel_available(k))
            printf(" %s", ag_kernel_name(k));
    printf("\n");
}

/* Part 6: the whole float32 space. Every bit pattern x (AG_TEST_LONG=1,
 * `make test-long`; else a stride through it that still visits every
 * exponent and sign), for formats and scales that take the hand-written
 * loops, quantize and encode_u8 in nearest-even and stochastic rounding:
 * the automatic kernel against the generic C body (a separate
 * implementation), quantize with and without stats (the default call has
 * loops of its own), and a sample against the scalar specification. */
static void check_space(void)
{
    const int full = getenv("AG_TEST_LONG") != NULL;
    const size_t chunk = (size_t)1 << 20;
    const uint64_t total = full ? (uint64_t)1 << 32 : (uint64_t)1 << 21;
    const uint32_t stride = full ? 1u : 2047u; /* odd: visits every class */
    static const char *fmts[] = {"E4M3", "E5M2", "E3M4", "E7M0", "E0M7", "float8_e4m3fn"};
    static const float scales[] = {1.0f, 3.7f, 0.0183f};
    float *x = malloc(chunk * sizeof *x), *ya = malloc(chunk * sizeof *ya),
          *yp = malloc(chunk * sizeof *yp);
    uint8_t *ca = malloc(chunk), *cp = malloc(chunk);
    if (!x || !ya || !yp || !ca || !cp) {
        AG_CHECK(0, "malloc");
        goto out;
    }
    for (size_t fi = 0; fi < sizeof fmts / sizeof fmts[0]; fi++) {
        const ag_format *f = ag_format_get(fmts[fi]);
        for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++) {
            for (int mode = 0; mode < 2; mode++) {
                ag_qopts oa = ag_qopts_default();
                oa.rounding = mode ? AG_ROUND_STOCHASTIC : AG_ROUND_NEAREST_EVEN;
                oa.seed = 0xfeedu + si;
                ag_qopts op = oa, os = oa;
                /* the generic C body (AVX2 build where the CPU has it:
                 * several times faster than the baseline one) */
                op.kernel = ag_kernel_available(AG_KERNEL_AVX2) ? AG_KERNEL_AVX2
                                                                : AG_KERNEL_PORTABLE;
                os.kernel = AG_KERNEL_SCALAR;
                size_t bad_q = 0, bad_c = 0, bad_s = 0, bad_st = 0, bad_n = 0;
                uint32_t first = 0;
                for (uint64_t base = 0; base < total; base += chunk) {
                    const size_t n = (size_t)(total - base < chunk ? total - base : chunk);
                    for (size_t i = 0; i < n; i++)
                        x[i] = fbits((uint32_t)((base + i) * stride));
                    oa.offset = op.offset = os.offset = base;
                    ag_stats sa = {0}, sp = {0};
                    AG_CHECK(ag_quantize(ya, x, n, f, scales[si], &oa, &sa) == AG_OK, "q");
                    AG_CHECK(ag_quantize(yp, x, n, f, scales[si], &op, &sp) == AG_OK, "q");
                    for (size_t i = 0; i < n; i++)
                        if (bitsf(ya[i]) != bitsf(yp[i]) && !bad_q++)
                            first = bitsf(x[i]);
                    bad_st += !stats_eq(&sa, &sp);
                    /* without stats: the default quantize takes its own
                     * loops (AVX-512: clamp first, then round) */
                    AG_CHECK(ag_quantize(yp, x, n, f, scales[si], &oa, NULL) == AG_OK, "q");
                    bad_n += memcmp(ya, yp, n * sizeof *ya) != 0;
                    AG_CHECK(ag_encode_u8(ca, x, n, f, scales[si], &oa, NULL) == AG_OK, "e");
                    AG_CHECK(ag_encode_u8(cp, x, n, f, scales[si], &op, NULL) == AG_OK, "e");
                    bad_c += memcmp(ca, cp, n) != 0;
                    /* the specification itself on a slice of each chunk */
                    const size_t ns = n < 4096 ? n : 4096;
                    AG_CHECK(ag_quantize(yp, x, ns, f, scales[si], &os, NULL) == AG_OK, "q");
                    bad_s += memcmp(ya, yp, ns * sizeof *ya) != 0;
                }
                AG_CHECK(bad_q == 0 && bad_c == 0 && bad_s == 0 && bad_st == 0 && bad_n == 0,
                         "%s scale %g mode %d, %s: quantize %zu differ (first x %08x), "
                         "encode %zu chunks, scalar %zu chunks, stats %zu chunks, "
                         "without stats %zu chunks",
                         f->name, (double)scales[si], mode, full ? "all 2^32 inputs" : "a stride",
                         bad_q, first, bad_c, bad_s, bad_st, bad_n);
            }
        }
    }
out:
    free(x);
    free(ya);
    free(yp);
    free(ca);
    free(cp);
}

/* Stochastic quantize around the smallest normal: blocks of 256 whose
 * nonzero |x| all reach a threshold just above 2^emin * scale take an
 * integer loop in the AVX-512 build (see x_sr_normal_block). Walk the
 * floats upward from 64 ulps below 2^emin * scale (so that the first
 * blocks mix both sides and later ones sit right above the threshold),
 * and again from half to 1.5 times it, signs alternating, zeros
 * sprinkled in, at plain, power-of-two, tiny and
 * huge scales, with and without stats, against the scalar path. */
static void check_sr_threshold(void)
{
    const size_t n = 4096;
    float *x = malloc(n * sizeof *x), *ya = malloc(n * sizeof *ya), *ys = malloc(n * sizeof *ys);
    if (!x || !ya || !ys) {
        AG_CHECK(0, "malloc");
        goto out;
    }
    static const float scales[] = {1.0f, 0.375f, 3.7f, 0.015625f, 1e-30f, 3e25f};
    for (size_t fi = 0; fi < ag_format_count(); fi++) {
        const ag_format *f = ag_format_at(fi);
        if (f->ebits == 0 || !f->is_signed)
            continue;
        for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++) {
            const double t = ldexp(1.0, f->emin) * (double)scales[si];
            if (t > 1e38 || t < 1e-44)
                continue;
            for (int walk = 0; walk < 2; walk++) {
            /* walk 0: ulp by ulp from 64 below; walk 1: from 0.5 t to 1.5 t */
            uint32_t b = bitsf((float)t) - 64u;
            for (size_t i = 0; i < n; i++, b++) {
                const float v = walk ? (float)(t * (0.5 + (double)i / (double)n)) : fbits(b);
                x[i] = i % 193 == 5 ? 0.0f : (i & 1u ? -v : v);
            }
            for (int cnt = 0; cnt < 2; cnt++) {
                ag_qopts oa = ag_qopts_default(), os;
                oa.rounding = AG_ROUND_STOCHASTIC;
                oa.seed = 0x51u + si;
                os = oa;
                os.kernel = AG_KERNEL_SCALAR;
                ag_stats sa = {0}, ss = {0};
                AG_CHECK(ag_quantize(ya, x, n, f, scales[si], &oa, cnt ? &sa : NULL) == AG_OK, "q");
                AG_CHECK(ag_quantize(ys, x, n, f, scales[si], &os, cnt ? &ss : NULL) == AG_OK, "q");
                size_t bad = 0, first = 0;
                for (size_t i = 0; i < n; i++)
                    if (bitsf(ya[i]) != bitsf(ys[i]) && !bad++)
                        first = i;
                AG_CHECK(bad == 0 && stats_eq(&sa, &ss),
                         "%s scale %g walk %d stats %d: stochastic near 2^emin: %zu differ "
                         "(first x %a)", f->name, (double)scales[si], walk, cnt, bad,
                         (double)x[first]);
            }
            }
        }
    }
out:
    free(x);
    free(ya);
    free(ys);
}

/* Part 9: stream indices that wrap. Element i of a call is stream element
 * offset + i modulo 2^64 (altgrad.h), so a call whose offset is just below
 * 2^64 and whose length crosses it continues from element 0: every path
 * gives the scalar path's bits, and both equal two calls split at the wrap
 * (the first k elements at offset 2^64 - k, the rest at offset 0), for
 * every registry format, quantize and encode, 1 thread; and 2 threads on a
 * length above the threading threshold, the wrap inside a later chunk. */
static int wrap_run(int op, void *out, const float *x, size_t n, const ag_format *f,
                    uint64_t offset, int kern, int threads, ag_stats *st)
{
    ag_qopts o = ag_qopts_default();
    o.rounding = AG_ROUND_STOCHASTIC;
    o.seed = 0x5eedu;
    o.stream = 3;
    o.offset = offset;
    o.kernel = kern;
    o.threads = threads;
    ag_status r = op == 0   ? ag_quantize((float *)out, x, n, f, 0.5f, &o, st)
                  : op == 1 ? ag_encode_u8((uint8_t *)out, x, n, f, 0.5f, &o, st)
                            : ag_encode_u16((uint16_t *)out, x, n, f, 0.5f, &o, st);
    return r == AG_OK;
}

static void check_wrap(void)
{
    const size_t cap = 600000; /* above every stochastic threading threshold */
    float *x = malloc(cap * sizeof *x), *ref = malloc(cap * sizeof *ref),
          *got = malloc(cap * sizeof *got);
    if (!x || !ref || !got) {
        AG_CHECK(0, "malloc");
        goto out;
    }
    fill_mixed(x, cap, 15);
    static const struct { uint64_t back; size_t n; } cases[] = {
        {37, 3001}, {1, 3001}, {4096, 9001}, {2, 5}, {100003, 600000},
    };
    size_t bad = 0, calls = 0;
    for (size_t fi = 0; fi < ag_format_count(); fi++) {
        const ag_format *f = ag_format_at(fi);
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            const uint64_t off = 0u - cases[ci].back;
            const size_t n = cases[ci].n, k = (size_t)cases[ci].back;
            const int big = n >= cap;
            if (big && !(f->bits == 4 || !strcmp(f->name, "E4M3") || !strcmp(f->name, "E5M2") ||
                         !strcmp(f->name, "BF16")))
                continue; /* the long case on one format of each family */
            for (int op = 0; op < 3; op++) {
                if ((op == 1 && f->bits > 8) || (op == 2 && f->bits > 16))
                    continue;
                const size_t esz = op == 0 ? sizeof(float) : op == 1 ? 1u : 2u;
                ag_stats sr = {0}, s1 = {0}, s2 = {0};
                /* the scalar path, and the scalar path split at the wrap */
                bad += !wrap_run(op, ref, x, n, f, off, AG_KERNEL_SCALAR, 1, &sr);
                bad += !wrap_run(op, got, x, k, f, off, AG_KERNEL_SCALAR, 1, &s1);
                bad += !wrap_run(op, (char *)got + k * esz, x + k, n - k, f, 0,
                                 AG_KERNEL_SCALAR, 1, &s1);
                bad += memcmp(ref, got, n * esz) != 0 || !stats_eq(&sr, &s1);
                for (int kern = AG_KERNEL_AUTO; kern <= AG_KERNEL_AVX512; kern++) {
                    if (kern == AG_KERNEL_SCALAR || !ag_kernel_available(kern))
                        continue;
                    for (int t = 1; t <= 2; t++) {
                        if (t == 2 && !big)
                            continue;
                        memset(got, 0xa5, n * esz);
                        s2 = (ag_stats){0};
                        bad += !wrap_run(op, got, x, n, f, off, kern, t, &s2);
                        const int diff = memcmp(ref, got, n * esz) != 0 || !stats_eq(&sr, &s2);
                        if (diff && bad < 8)
                            printf("wrap: %s op %d kernel %d threads %d offset 2^64-%zu n %zu "
                                   "differs\n", f->name, op, kern, t, k, n);
                        bad += diff;
                        calls++;
                    }
                }
            }
        }
    }
    AG_CHECK(bad == 0, "stream wrap: %zu of %zu calls differ from the scalar path", bad, calls);
    printf("stream wrap: %zu calls against the scalar path\n", calls);
out:
    free(x);
    free(ref);
    free(got);
}

/* Part 10: vectors of mixed value classes. The hand-written loops pick a
 * rounding per vector from what its lanes hold (AVX2 stochastic: all
 * lanes 0 or normal, none below the smallest step, some below it, some
 * tiny, each a loop of its own), so the inputs here are vectors of eight
 * lanes each either of one class or of classes drawn per lane: +-0, tiny
 * (below 2^(q_sub - 8), float subnormals among them), below the smallest
 * step 2^q_sub, the format's subnormal range, normal, around max_finite,
 * beyond it, huge (x / scale overflows), +-inf, NaN. Every registry format, nearest-even and
 * stochastic, plain and power-of-two scales, stream offsets 0 and 5, with
 * and without stats, every path against the scalar one. */
static float class_value(const ag_format *f, int cls, float scale)
{
    const int qs = f->emin - f->mbits;
    const float m = 1.0f + (float)(rng_next() & 0xffffff) / 16777216.0f;
    float v;
    switch (cls) {
    case 0: v = 0.0f; break;
    case 1: /* tiny: 2^(qs - 30) .. 2^(qs - 8), or a float subnormal */
        v = rng_next() % 4 == 0 ? fbits((uint32_t)(rng_next() % 0x800000u))
                                : ldexpf(m, qs - 9 - (int)(rng_next() % 22)) * scale;
        break;
    case 2: v = ldexpf(m, qs - 1 - (int)(rng_next() % 8)) * scale; break;
    case 3: v = ldexpf(m, qs + (int)(rng_next() % (uint64_t)(f->mbits + 1))) * scale; break;
    case 4: /* normal (E = 0: the grid) */
        v = f->ebits == 0 ? ldexpf(m, qs + (int)(rng_next() % (uint64_t)f->mbits)) * scale
                          : ldexpf(m, f->emin + (int)(rng_next() % (uint64_t)(f->emax - f->emin + 1))) *
                                scale;
        break;
    case 5: v = fbits(bitsf(f->max_finite * scale) + (uint32_t)(rng_next() % 9) - 4u); break;
    case 6: v = f->max_finite * scale * (1.0f + (float)(rng_next() % 1000)); break;
    case 7: v = INFINITY; break;
    case 8: /* huge: x / scale overflows for scales below 1 */
        v = ldexpf(m, 100 + (int)(rng_next() % 28));
        break;
    default: v = fbits(rng_next() & 1 ? 0x7fc00001u : 0x7fa00000u); break; /* quiet, signaling */
    }
    return rng_next() & 1 ? -v : v;
}

static void check_lane_mix(void)
{
    enum { NV = 600, N = 8 * NV + 5 };
    float *x = malloc(N * sizeof *x), *ys = malloc(N * sizeof *ys), *yk = malloc(N * sizeof *yk);
    uint8_t *cs = malloc(N), *ck = malloc(N);
    size_t calls = 0, bad = 0;
    if (!x || !ys || !yk || !cs || !ck) {
        AG_CHECK(0, "malloc");
        goto out;
    }
    /* powers of two: the AVX2 loops round x itself on the scaled grid
     * where that grid has normal steps (2^-100 and 2^90 are near its
     * edges for some formats, beyond them for others) */
    static const float scales[] = {1.0f, 0.375f, 0.015625f, 3.7f, 0x1p-100f, 0x1p90f};
    for (size_t fi = 0; fi < ag_format_count(); fi++) {
        const ag_format *f = ag_format_at(fi);
        if (f->bits > 8 || !f->is_signed)
            continue;
        for (size_t si = 0; si < 2 * sizeof scales / sizeof scales[0]; si++) {
            const float scale = scales[si % (sizeof scales / sizeof scales[0])];
            if (si < sizeof scales / sizeof scales[0]) {
                for (size_t v = 0; v < NV; v++) {
                    /* a third of the vectors one class, the rest mixed,
                     * most of them around the common classes */
                    const int one = rng_next() % 3 == 0 ? (int)(rng_next() % 10) : -1;
                    for (size_t j = 0; j < 8; j++) {
                        const uint64_t r = rng_next() % 17;
                        const int cls = one >= 0 ? one : (r < 6 ? 4 : (r < 9 ? 3 : (int)(r - 7)));
                        x[8 * v + j] = class_value(f, cls, scale);
                    }
                }
            } else {
                /* groups of 32 (the 8-bit encodes test four vectors at
                 * once for values beyond the range: 32 values on AVX2,
                 * 64 on AVX-512): half of them in the range (zero, below
                 * the step, subnormal, normal), the other half so but
                 * for one value near or beyond the top (max_finite and
                 * its neighbours, overflow, inf, huge, NaN) anywhere in
                 * the group */
                for (size_t g = 0; g + 32 <= 8 * NV; g += 32) {
                    for (size_t j = 0; j < 32; j++) {
                        const uint64_t r = rng_next() % 8;
                        x[g + j] = class_value(f, r < 4 ? 4 : (r < 6 ? 3 : (int)(r - 6) * 2), scale);
                    }
                    if (rng_next() & 1)
                        x[g + rng_next() % 32] = class_value(f, 5 + (int)(rng_next() % 5), scale);
                }
            }
            for (size_t j = 8 * NV; j < N; j++)
                x[j] = class_value(f, 4, scale);
            for (int mode = 0; mode < 2; mode++) {
                for (int off = 0; off < 2; off++) {
                    ag_qopts o = ag_qopts_default();
                    o.rounding = mode ? AG_ROUND_STOCHASTIC : AG_ROUND_NEAREST_EVEN;
                    o.seed = 0xabcdef12u + fi;
                    o.offset = off ? 5 : 0;
                    o.kernel = AG_KERNEL_SCALAR;
                    ag_stats sq = {0}, se = {0};
                    AG_CHECK(ag_quantize(ys, x, N, f, scale, &o, &sq) == AG_OK, "q");
                    AG_CHECK(ag_encode_u8(cs, x, N, f, scale, &o, &se) == AG_OK, "e");
                    for (size_t pi = 0; pi < NPATHS; pi++) {
                        if (!ag_kernel_available(paths[pi]))
                            continue;
                        o.kernel = paths[pi];
                        for (int st = 0; st < 2; st++) {
                            ag_stats kq = {0}, ke = {0};
                            AG_CHECK(ag_quantize(yk, x, N, f, scale, &o, st ? &kq : NULL) == AG_OK,
                                     "q");
                            AG_CHECK(ag_encode_u8(ck, x, N, f, scale, &o, st ? &ke : NULL) == AG_OK,
                                     "e");
                            size_t nb = 0, first = 0;
                            for (size_t i = 0; i < N; i++)
                                if (bitsf(yk[i]) != bitsf(ys[i]) && !nb++)
                                    first = i;
                            nb += memcmp(ck, cs, N) != 0;
                            nb += st && (!stats_eq(&kq, &sq) || !stats_eq(&ke, &se));
                            calls += 2;
                            if (nb && bad++ < 5)
                                AG_CHECK(0, "%s %s scale %g mode %d offset %d stats %d: lane mix: "
                                         "%zu differ, first x %a: %08x vs scalar %08x",
                                         f->name, ag_kernel_name(paths[pi]), (double)scale, mode,
                                         off, st, nb, (double)x[first], bitsf(yk[first]),
                                         bitsf(ys[first]));
                        }
                    }
                }
            }
        }
    }
    AG_CHECK(bad == 0, "lane mix: %zu of %zu calls differ from the scalar path", bad, calls);
    printf("lane mix: %zu calls of %d elements against the scalar path\n", calls, (int)N);
out:
    free(x);
    free(ys);
    free(yk);
    free(cs);
    free(ck);
}

int main(void)
{
    rng_state = 0x243F6A8885A308D3u; /* the inputs' fixed seed */
    check_options();
    const size_t cap = 8192;
    float *x = malloc(cap * sizeof *x);
    if (!x) {
        AG_CHECK(0, "malloc");
        return ag_test_summary("test_kernels");
    }
    for (size_t i = 0; i < ag_format_count(); i++)
        check_format(ag_format_at(i), x, cap);
    /* custom formats: fixed point, exponent-only, unsigned, no zero, deep
     * subnormals, IEEE with M = 0, odd biases */
    static const struct { int e, m, bias, sgn, nz; ag_specials sp; } cu[] = {
        {0, 5, 2, 1, 0, AG_SPECIALS_NONE},  {0, 8, -3, 0, 0, AG_SPECIALS_NONE},
        {3, 0, 1, 1, 0, AG_SPECIALS_NONE},  {4, 0, 7, 1, 0, AG_SPECIALS_IEEE},
        {5, 2, 15, 0, 0, AG_SPECIALS_IEEE}, {4, 3, 7, 0, 0, AG_SPECIALS_FN},
        {8, 0, 128, 0, 1, AG_SPECIALS_NONE}, {5, 0, 20, 1, 1, AG_SPECIALS_NONE},
        {8, 3, 130, 1, 0, AG_SPECIALS_NONE}, {8, 7, 140, 1, 0, AG_SPECIALS_IEEE},
        {4, 3, -2, 1, 0, AG_SPECIALS_FNUZ}, {2, 13, 1, 1, 0, AG_SPECIALS_NONE},
        {8, 0, 140, 1, 0, AG_SPECIALS_FN},
    };
    for (size_t i = 0; i < sizeof cu / sizeof cu[0]; i++) {
        ag_format f;
        const ag_status st = ag_format_init(&f, NULL, cu[i].e, cu[i].m, cu[i].bias,
                                            cu[i].sgn, cu[i].sp, cu[i].nz);
        AG_CHECK(st == AG_OK, "custom %zu: %s", i, ag_status_string(st));
        if (st == AG_OK)
            check_format(&f, x, cap);
    }
    free(x);
    check_thread_rule();
    check_threads();
    check_stochastic();
    check_sr_threshold();
    check_space();
    check_generator();
    check_sr_exact_threshold();
    check_wrap();
    check_lane_mix();
    return ag_test_summary("test_kernels");
}
