/* SPDX-License-Identifier: MIT */
/*
 * bench_quant.c — throughput of ag_quantize / ag_encode_u8 / ag_decode_u8 as
 * ratios to memory-bound yardsticks measured in the same run (`make bench`).
 *
 * For n = 2^24 (DRAM) and n = 2^14 (cache) float32 elements:
 *  - ag_quantize for each AltGrad format and float8_e4m3fn, nearest-even
 *    and stochastic, with a non-power-of-two scale (and E4M3 nearest-even
 *    once more with a power of two: the multiply path), on 1 thread (vs
 *    memcpy of the same bytes) and on all threads (vs a parallel copy loop
 *    y = x split into the same contiguous chunks, and vs the library's own
 *    1-thread time), plus the scalar reference path (AG_KERNEL_SCALAR, 1
 *    thread) as a second yardstick;
 *  - ag_encode_u8 / ag_decode_u8 (E4M3) vs a loop that reads the same input
 *    and writes the same output bytes (encode also with a power-of-two
 *    scale, 1 thread);
 *  - in cache, ns and cycles per vector (the clock from a chain of
 *    dependent adds): nearest-even with a non-power-of-two scale beside
 *    the divider's own throughput (vdivps of the kernel's width), and
 *    stochastic with a power-of-two scale beside the AES work of ARS-7
 *    alone (the generator's floor), both measured in the run;
 *  - all threads / one thread at 2^16 and 2^24 for quantize (both modes),
 *    encode_u8 and decode_u8.
 * Each ratio is the median over 7 rounds (3 for the slow scalar path) of
 * one yardstick run followed by one run of the call, so that both sides of
 * a ratio ran under the same conditions on a shared machine; GB/s are the
 * medians of the call's own runs. A run of the cache-resident size repeats
 * the call until ~2 ms have passed. GB/s counts bytes read + bytes
 * written. Not a test: no thresholds.
 *
 * Then the fused optimizer steps (ag_adamw_step in its modes, with and
 * without counters, and ag_grid_step) over 2^22 elements against a memcpy
 * of the bytes they touch.
 *
 * Usage: bench_quant [--quick] [--min] [--optim] [--kernel portable|avx2|avx512]
 *   --quick: 2^20 instead of 2^24 (optimizers: 2^20 instead of 2^22),
 *   3 runs; --min: minimum times (the fastest single call of each side; in
 *   cache, of every call in the ~2 ms runs) and the ratio of the minimums,
 *   for cores shared with other processes, where medians mostly measure the
 *   preemptions; --optim: the optimizer steps only; --kernel: quantize and
 *   encode
 *   on that path instead of the best one the CPU has (decode, which takes
 *   no options, stays on the best one).
 */
#define _POSIX_C_SOURCE 200809L
#include <altgrad.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int g_runs = 7;
static int g_min = 0; /* --min: minimum times instead of medians (see time_once) */
static int g_kernel = AG_KERNEL_AUTO; /* --kernel: the path of every ag_ call but decode */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Seconds per call of fn(ctx) in one run: the call repeated until at
 * least min_s have passed. */
typedef void (*bench_fn)(void *ctx);
static double time_once(bench_fn fn, void *ctx, double min_s)
{
    long reps = 0;
    const double t0 = now();
    double t1, tc = t0, best = 1e30;
    do {
        fn(ctx);
        reps++;
        t1 = now();
        if (t1 - tc < best)
            best = t1 - tc;
        tc = t1;
    } while (t1 - t0 < min_s);
    /* --min: the fastest single call (on cores shared with other
     * processes, the one that nothing preempted) */
    return g_min ? best : (t1 - t0) / (double)reps;
}

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof t[0], cmp_double);
    return t[n / 2];
}

/* fn against the yardstick yard (both on ctx), in `runs` rounds of one
 * yardstick run then one fn run, so that each ratio compares two runs
 * made under the same conditions (the machines are shared): *t = median
 * seconds per fn call, returns the median of the per-round ratios
 * t(yard) / t(fn). */
static double time_vs(bench_fn fn, bench_fn yard, void *ctx, int runs,
                      double min_s, double *t)
{
    double tf[16], rt[16];
    if (runs > 16)
        runs = 16;
    fn(ctx); /* warm: page faults, caches, thread pool */
    yard(ctx);
    for (int r = 0; r < runs; r++) {
        const double ty = time_once(yard, ctx, min_s);
        tf[r] = time_once(fn, ctx, min_s);
        rt[r] = ty / tf[r];
    }
    if (g_min) { /* the ratio of the two sides' minimums */
        double ty = 1e30, tm = 1e30;
        for (int r = 0; r < runs; r++) {
            ty = ty < tf[r] * rt[r] ? ty : tf[r] * rt[r];
            tm = tm < tf[r] ? tm : tf[r];
        }
        *t = tm;
        return ty / tm;
    }
    *t = median(tf, runs);
    return median(rt, runs);
}

typedef struct {
    float *y;
    const float *x;
    uint8_t *c;
    size_t n;
    const ag_format *f;
    float scale;
    ag_qopts o;
    int threads; /* copy loops: threads to split over */
} ctx_t;

static void run_quant(void *p)
{
    ctx_t *c = p;
    if (ag_quantize(c->y, c->x, c->n, c->f, c->scale, &c->o, NULL) != AG_OK)
        abort();
}

static void run_encode(void *p)
{
    ctx_t *c = p;
    if (ag_encode_u8(c->c, c->x, c->n, c->f, c->scale, &c->o, NULL) != AG_OK)
        abort();
}

static void run_decode(void *p)
{
    ctx_t *c = p;
    if (ag_decode_u8(c->y, c->c, c->n, c->f, c->scale) != AG_OK)
        abort();
}

static void run_memcpy(void *p)
{
    ctx_t *c = p;
    memcpy(c->y, c->x, c->n * sizeof *c->y);
}

/* y = x split into `threads` contiguous chunks, one per thread (the
 * library's split: multiples of 64 elements, the last takes the rest). */
static void run_parcopy(void *p)
{
    ctx_t *c = p;
#ifdef _OPENMP
    const int nt = c->threads;
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), k = omp_get_num_threads();
        const size_t per = ((c->n / (size_t)k) + 63u) & ~(size_t)63u;
        size_t lo = per * (size_t)t, hi = lo + per;
        if (lo > c->n)
            lo = c->n;
        if (hi > c->n || t == k - 1)
            hi = c->n;
        memcpy(c->y + lo, c->x + lo, (hi - lo) * sizeof *c->y);
    }
#else
    memcpy(c->y, c->x, c->n * sizeof *c->y);
#endif
}

/* The byte loops: the same bytes in and out as encode_u8 / decode_u8. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define BENCH_CLONES __attribute__((target_clones("avx2", "default"), optimize("O3")))
#else
#define BENCH_CLONES
#endif
BENCH_CLONES
static void byte_loop_enc(uint8_t *restrict c, const float *restrict x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        c[i] = (uint8_t)(u >> 24);
    }
}

BENCH_CLONES
static void byte_loop_dec(float *restrict y, const uint8_t *restrict c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = (float)c[i];
}

static void run_byte_enc(void *p)
{
    ctx_t *c = p;
    byte_loop_enc(c->c, c->x, c->n);
}

static void run_byte_dec(void *p)
{
    ctx_t *c = p;
    byte_loop_dec(c->y, c->c, c->n);
}

/* The divider alone: seconds per division of one vector of `lanes`
 * floats (8: AVX2 vdivps ymm; 16: AVX-512 zmm), twelve independent
 * chains in flight so that the figure is the throughput, not the latency
 * (each chain divides by 1 + 2^-20 a few million times: the values stay
 * normal). 0 where the CPU or compiler lacks that width. */
#if defined(__GNUC__) && defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
/* twelve named registers: an array of them is kept in memory by GCC,
 * and the store-to-load round trip of each division (slow for 64-byte
 * vectors on some cores) would be timed instead of the divider */
#define DIV_CHAINS(T, SET1, DIV, ADD, X)                                      \
    do {                                                                      \
        const T d = SET1(1.0f + 0x1p-20f);                                    \
        T a0 = SET1(1.0f), a1 = SET1(2.0f), a2 = SET1(3.0f), a3 = SET1(4.0f);  \
        T a4 = SET1(5.0f), a5 = SET1(6.0f), a6 = SET1(7.0f), a7 = SET1(8.0f);  \
        T a8 = SET1(9.0f), a9 = SET1(10.0f), a10 = SET1(11.0f), a11 = SET1(12.0f); \
        for (long r = 0; r < reps; r++) {                                     \
            a0 = DIV(a0, d); a1 = DIV(a1, d); a2 = DIV(a2, d); a3 = DIV(a3, d); \
            a4 = DIV(a4, d); a5 = DIV(a5, d); a6 = DIV(a6, d); a7 = DIV(a7, d); \
            a8 = DIV(a8, d); a9 = DIV(a9, d); a10 = DIV(a10, d); a11 = DIV(a11, d); \
            __asm__("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5)); \
            __asm__("" : "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11)); \
        }                                                                     \
        X = ADD(ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7))), \
                ADD(ADD(a8, a9), ADD(a10, a11)));                             \
    } while (0)
__attribute__((target("avx2"))) static void div_run8(long reps, float *sink)
{
    __m256 acc;
    DIV_CHAINS(__m256, _mm256_set1_ps, _mm256_div_ps, _mm256_add_ps, acc);
    *sink = _mm256_cvtss_f32(acc);
}
__attribute__((target("avx512f"))) static void div_run16(long reps, float *sink)
{
    __m512 acc;
    DIV_CHAINS(__m512, _mm512_set1_ps, _mm512_div_ps, _mm512_add_ps, acc);
    *sink = _mm512_cvtss_f32(acc);
}
static double div_seconds(int lanes)
{
    if (lanes == 8 ? !__builtin_cpu_supports("avx2") : !__builtin_cpu_supports("avx512f"))
        return 0.0;
    const long reps = 200000;
    double t[7];
    float sink = 0;
    for (int r = 0; r < 7; r++) {
        const double t0 = now();
        if (lanes == 8)
            div_run8(reps, &sink);
        else
            div_run16(reps, &sink);
        t[r] = (now() - t0) / (double)(reps * 12);
    }
    if (sink == 42.0f)
        printf(" ");
    const double med = median(t, 7); /* sorts t */
    return g_min ? t[0] : med;
}

/* The core clock in GHz, from a chain of dependent integer adds (one a
 * cycle on every x86-64 core): the fastest of three runs of 2^26 adds. It
 * turns the in-cache rows' ns into cycles. */
static double clock_ghz(void)
{
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        uint64_t a = 0;
        const double t0 = now();
        for (long i = 0; i < (1L << 24); i++)
            __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0"
                             : "+r"(a));
        const double t = now() - t0;
        best = t < best ? t : best;
        if (a != (uint64_t)4 << 24)
            return 0.0;
    }
    return (double)(4L << 24) / best * 1e-9;
}

/* The AES work of ARS-7 alone, as the stochastic loops do it: per vector
 * of `lanes` random words (8: two blocks a ymm register, VAES on 256
 * bits; 16: four blocks a zmm register) the counter XOR the first key,
 * six vaesenc and one vaesenclast, eight vectors in flight (the loops'
 * count), the words stored to a buffer in L1. Seconds per vector; 0
 * where the CPU or compiler lacks VAES at that width. The floor of any
 * stochastic loop on this core: its rounding comes on top. */
#define AES_CHAINS(T, SET1, XOR, ADD, ENC, LAST, STORE, buf)                  \
    do {                                                                      \
        const T k0 = SET1(0x243f6a88), k1 = SET1(0x0f6a8885), k2 = SET1(0x3c6ef372); \
        const T step = SET1(8);                                               \
        T c0 = SET1(0), c1 = SET1(1), c2 = SET1(2), c3 = SET1(3);              \
        T c4 = SET1(4), c5 = SET1(5), c6 = SET1(6), c7 = SET1(7);              \
        for (long r = 0; r < reps; r++) {                                     \
            T w0 = XOR(c0, k0), w1 = XOR(c1, k0), w2 = XOR(c2, k0), w3 = XOR(c3, k0); \
            T w4 = XOR(c4, k0), w5 = XOR(c5, k0), w6 = XOR(c6, k0), w7 = XOR(c7, k0); \
            for (int q = 0; q < 6; q++) {                                     \
                const T kq = q & 1 ? k1 : k2;                                 \
                w0 = ENC(w0, kq); w1 = ENC(w1, kq); w2 = ENC(w2, kq); w3 = ENC(w3, kq); \
                w4 = ENC(w4, kq); w5 = ENC(w5, kq); w6 = ENC(w6, kq); w7 = ENC(w7, kq); \
            }                                                                 \
            STORE(buf + 0, LAST(w0, k1)); STORE(buf + 1, LAST(w1, k1));       \
            STORE(buf + 2, LAST(w2, k1)); STORE(buf + 3, LAST(w3, k1));       \
            STORE(buf + 4, LAST(w4, k1)); STORE(buf + 5, LAST(w5, k1));       \
            STORE(buf + 6, LAST(w6, k1)); STORE(buf + 7, LAST(w7, k1));       \
            c0 = ADD(c0, step); c1 = ADD(c1, step); c2 = ADD(c2, step); c3 = ADD(c3, step); \
            c4 = ADD(c4, step); c5 = ADD(c5, step); c6 = ADD(c6, step); c7 = ADD(c7, step); \
            __asm__ volatile("" : : "r"(buf) : "memory");                     \
        }                                                                     \
    } while (0)
#define AES_ST8(p, v) _mm256_storeu_si256((p), (v))
#define AES_ST16(p, v) _mm512_storeu_si512((void *)(p), (v))
__attribute__((target("avx2,aes,vaes"))) static void aes_run8(long reps, __m256i *buf)
{
    AES_CHAINS(__m256i, _mm256_set1_epi32, _mm256_xor_si256, _mm256_add_epi64,
               _mm256_aesenc_epi128, _mm256_aesenclast_epi128, AES_ST8, buf);
}
__attribute__((target("avx512f,aes,vaes"))) static void aes_run16(long reps, __m512i *buf)
{
    AES_CHAINS(__m512i, _mm512_set1_epi32, _mm512_xor_si512, _mm512_add_epi64,
               _mm512_aesenc_epi128, _mm512_aesenclast_epi128, AES_ST16, buf);
}
/* CPUID leaf 7 ECX bit 9 (GCC's and clang's __builtin_cpu_supports do
 * not all know "vaes"); the OS's support of the registers is that of
 * AVX2 or AVX-512F, checked beside it. */
static int cpu_has_vaes(void)
{
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (c >> 9 & 1u);
}
static double aes_seconds(int lanes)
{
    if (!cpu_has_vaes() ||
        (lanes == 8 ? !__builtin_cpu_supports("avx2") : !__builtin_cpu_supports("avx512f")))
        return 0.0;
    const long reps = 100000;
    double t[7];
    static uint32_t buf[8 * 16] __attribute__((aligned(64)));
    for (int r = 0; r < 7; r++) {
        const double t0 = now();
        if (lanes == 8)
            aes_run8(reps, (__m256i *)(void *)buf);
        else
            aes_run16(reps, (__m512i *)(void *)buf);
        t[r] = (now() - t0) / (double)(reps * 8);
    }
    const double med = median(t, 7); /* sorts t */
    return g_min ? t[0] : med;
}
#else
static double clock_ghz(void)
{
    return 0.0;
}
static double div_seconds(int lanes)
{
    (void)lanes;
    return 0.0;
}
static double aes_seconds(int lanes)
{
    (void)lanes;
    return 0.0;
}
#endif

/* All threads against one thread at 2^16 and 2^24 elements for each
 * operation (the library picks the thread count: below its threshold the
 * "all threads" call runs on one thread too): the median over the rounds
 * of t(1 thread) / t(all), each round one run of each. Decode takes no
 * options: its 1-thread run sets OpenMP's thread count to 1 around it. */
static void run_decode_1t(void *p)
{
#ifdef _OPENMP
    const int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    run_decode(p);
    omp_set_num_threads(nt);
#else
    run_decode(p);
#endif
}

typedef struct {
    ctx_t *c;
    bench_fn fn;
    int threads;
} thr_ctx;

static void run_thr(void *p)
{
    thr_ctx *t = p;
    t->c->o.threads = t->threads;
    t->fn(t->c);
}

static void bench_threads(float *x, float *y, uint8_t *c, size_t nmax, int nthreads)
{
    printf("\nthreads: all (%d) / 1 thread, time ratio t(1) / t(all), %s of %d "
           "(> 1: faster on all; the library keeps calls below its threshold on one)\n",
           nthreads, g_min ? "minimums" : "median", g_runs);
    printf("  %-28s | %8s | %8s\n", "operation (E4M3)", "2^16", nmax >= ((size_t)1 << 24) ? "2^24" : "2^20");
    static const char *names[] = {"quantize ne", "quantize sr", "encode_u8 ne", "decode_u8"};
    for (int op = 0; op < 4; op++) {
        double r[2];
        for (int si = 0; si < 2; si++) {
            const size_t n = si == 0 ? (size_t)1 << 16 : nmax;
            ctx_t cx = {y, x, c, n, ag_format_get("E4M3"), 4.0f / 448.0f * 1.1f,
                        ag_qopts_default(), nthreads};
            cx.o.kernel = g_kernel;
            cx.o.rounding = op == 1 ? AG_ROUND_STOCHASTIC : AG_ROUND_NEAREST_EVEN;
            const double min_s = n >= ((size_t)1 << 20) ? 0.0 : 2e-3;
            double t;
            if (op == 3) {
                cx.o.threads = 1;
                run_encode(&cx); /* the codes to decode */
                r[si] = time_vs(run_decode, run_decode_1t, &cx, g_runs, min_s, &t);
            } else {
                bench_fn fn = op == 2 ? run_encode : run_quant;
                thr_ctx one = {&cx, fn, 1}, all = {&cx, fn, 0};
                /* one run of each per round: all threads against one */
                double ta[16], rt[16];
                run_thr(&all);
                run_thr(&one);
                for (int k = 0; k < g_runs && k < 16; k++) {
                    const double t1 = time_once(run_thr, &one, min_s);
                    ta[k] = time_once(run_thr, &all, min_s);
                    rt[k] = t1 / ta[k];
                }
                if (g_min) { /* min(t1) / min(t_all) */
                    double m1 = 1e30, ma = 1e30;
                    for (int k = 0; k < g_runs && k < 16; k++) {
                        m1 = m1 < rt[k] * ta[k] ? m1 : rt[k] * ta[k];
                        ma = ma < ta[k] ? ma : ta[k];
                    }
                    r[si] = m1 / ma;
                } else {
                    r[si] = median(rt, g_runs < 16 ? g_runs : 16);
                }
            }
        }
        printf("  %-28s | %8.2f | %8.2f\n", names[op], r[0], r[1]);
    }
}

static void cpu_model(char *buf, size_t len)
{
    snprintf(buf, len, "unknown");
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp)
        return;
    char line[512];
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "model name", 10) == 0) {
            const char *v = strchr(line, ':');
            if (v) {
                v++;
                while (*v == ' ')
                    v++;
                snprintf(buf, len, "%s", v);
                buf[strcspn(buf, "\n")] = 0;
            }
            break;
        }
    }
    fclose(fp);
}

static double gbps(size_t bytes, double s) { return (double)bytes / s * 1e-9; }

static void bench_size(size_t n, int nthreads, float *x, float *y, uint8_t *c)
{
    const int big = n >= ((size_t)1 << 20);
    const double min_s = big ? 0.0 : 2e-3;
    ctx_t cx = {y, x, c, n, NULL, 1.0f, ag_qopts_default(), nthreads};
    const size_t bytes = n * 8; /* 4 read + 4 written per element */
    double t_mc, t_pc;
    (void)time_vs(run_memcpy, run_parcopy, &cx, g_runs, min_s, &t_mc);
    (void)time_vs(run_parcopy, run_memcpy, &cx, g_runs, min_s, &t_pc);
    printf("\nn = 2^%d floats (%.1f MiB in, %.1f MiB out)\n", (int)log2((double)n),
           (double)n * 4 / 1048576.0, (double)n * 4 / 1048576.0);
    printf("  memcpy 1 thread: %6.2f GB/s    parallel copy %d threads: %6.2f GB/s\n",
           gbps(bytes, t_mc), nthreads, gbps(bytes, t_pc));
    printf("  %-14s %-5s | %7s %6s | %7s %6s %6s | %7s %6s\n", "format", "mode",
           "1T GB/s", "/memcp", "nT GB/s", "/pcopy", "/1T", "scalar", "/memcp");
    static const char *fmts[] = {"E0M7", "E1M6", "E2M5", "E3M4", "E4M3",
                                 "E5M2", "E6M1", "E7M0", "float8_e4m3fn"};
    static const ag_rounding modes[] = {AG_ROUND_NEAREST_EVEN, AG_ROUND_STOCHASTIC};
    for (size_t fi = 0; fi < sizeof fmts / sizeof fmts[0]; fi++) {
        const ag_format *f = ag_format_get(fmts[fi]);
        if (!f)
            continue;
        for (size_t mi = 0; mi < 2; mi++) {
            cx.f = f;
            /* data ~ N(0,1)-ish, scaled so that |x| <= 4 maps to max_finite:
             * a typical, non-power-of-two scale (the division path) */
            cx.scale = 4.0f / f->max_finite * 1.1f;
            cx.o = ag_qopts_default();
            cx.o.kernel = g_kernel;
            cx.o.rounding = modes[mi];
            cx.o.seed = 12345;
            double t1, tn, ts;
            cx.o.threads = 1;
            const double r1 = time_vs(run_quant, run_memcpy, &cx, g_runs, min_s, &t1);
            cx.o.threads = 0;
            const double rn = time_vs(run_quant, run_parcopy, &cx, g_runs, min_s, &tn);
            cx.o.threads = 1;
            cx.o.kernel = AG_KERNEL_SCALAR;
            const double rs = time_vs(run_quant, run_memcpy, &cx, big ? 3 : g_runs, min_s, &ts);
            printf("  %-14s %-5s | %7.2f %6.2f | %7.2f %6.2f %6.2f | %7.2f %6.3f\n",
                   fmts[fi], mi ? "sr" : "ne", gbps(bytes, t1), r1, gbps(bytes, tn), rn,
                   t1 / tn, gbps(bytes, ts), rs);
        }
    }
    /* the multiply path: a power-of-two scale (x * 2^-k is x / 2^k) */
    {
        double t1, tn;
        cx.f = ag_format_get("E4M3");
        cx.scale = 0.015625f;
        cx.o = ag_qopts_default();
        cx.o.kernel = g_kernel;
        cx.o.threads = 1;
        const double r1 = time_vs(run_quant, run_memcpy, &cx, g_runs, min_s, &t1);
        cx.o.threads = 0;
        const double rn = time_vs(run_quant, run_parcopy, &cx, g_runs, min_s, &tn);
        printf("  %-14s %-5s | %7.2f %6.2f | %7.2f %6.2f %6.2f | (scale 2^-6: a multiply)\n",
               "E4M3", "ne", gbps(bytes, t1), r1, gbps(bytes, tn), rn, t1 / tn);
    }
    /* in cache, a non-power-of-two scale: the exact division bounds the
     * loop; its time per vector beside the divider's own throughput */
    if (!big) {
        const int k = g_kernel == AG_KERNEL_AUTO
                          ? (ag_kernel_available(AG_KERNEL_AVX512) ? AG_KERNEL_AVX512
                                                                   : AG_KERNEL_AVX2)
                          : g_kernel;
        const int lanes = k == AG_KERNEL_AVX512 ? 16 : 8;
        const double tdiv = div_seconds(lanes);
        double t1;
        cx.f = ag_format_get("E4M3");
        cx.scale = 4.0f / 448.0f * 1.1f;
        cx.o = ag_qopts_default();
        cx.o.kernel = g_kernel;
        cx.o.threads = 1;
        (void)time_vs(run_quant, run_memcpy, &cx, g_runs, min_s, &t1);
        const double per = t1 / ((double)n / lanes);
        /* stochastic, a power-of-two scale: the generator's AES work
         * bounds the loop (the stream is the contract: seven AES rounds
         * for four words) */
        const double taes = aes_seconds(lanes);
        double tm, ts;
        cx.scale = 0.015625f;
        cx.o.rounding = AG_ROUND_STOCHASTIC;
        cx.o.seed = 12345;
        const double rs = time_vs(run_quant, run_memcpy, &cx, g_runs, min_s, &ts);
        (void)time_vs(run_memcpy, run_quant, &cx, g_runs, min_s, &tm);
        const double psr = ts / ((double)n / lanes), pcp = tm / ((double)n / lanes);
        const double ghz = clock_ghz();
        if (ghz > 0)
            printf("  in cache, per %d-lane vector (cycles at %.2f GHz, the clock a chain of "
                   "dependent adds runs at):\n", lanes, ghz);
        else
            printf("  in cache, per %d-lane vector (cycles: no clock measured on this CPU, "
                   "shown as 0):\n", lanes);
        printf("    E4M3 ne, scale 4/448*1.1: %.2f ns, %.1f cycles; the divider alone (vdivps, "
               "12 in flight): %.2f ns, %.1f cycles%s\n",
               per * 1e9, per * ghz * 1e9, tdiv * 1e9, tdiv * ghz * 1e9,
               tdiv > 0 ? "" : " (not measured here)");
        printf("    E4M3 sr, scale 2^-6: %.2f ns, %.1f cycles (/memcpy %.2f); ARS-7's AES work "
               "alone (%s, 8 in flight, stored): %.2f ns, %.1f cycles (/memcpy %.2f)%s\n",
               psr * 1e9, psr * ghz * 1e9, rs, lanes == 8 ? "VAES ymm" : "VAES zmm",
               taes * 1e9, taes * ghz * 1e9, taes > 0 ? pcp / taes : 0.0,
               taes > 0 ? "" : " (no VAES here)");
    }
    /* packed uint8: 4 bytes in, 1 out (encode) and 1 in, 4 out (decode) */
    cx.f = ag_format_get("E4M3");
    cx.scale = 0.01f;
    cx.o = ag_qopts_default();
    cx.o.kernel = g_kernel;
    double t_be, t_bd, t_e1, t_d1, t_en, t_es;
    cx.o.threads = 1;
    const double re = time_vs(run_encode, run_byte_enc, &cx, g_runs, min_s, &t_e1);
    const double rd = time_vs(run_decode, run_byte_dec, &cx, g_runs, min_s, &t_d1);
    (void)time_vs(run_byte_enc, run_byte_dec, &cx, g_runs, min_s, &t_be);
    (void)time_vs(run_byte_dec, run_byte_enc, &cx, g_runs, min_s, &t_bd);
    cx.o.threads = 0;
    (void)time_vs(run_encode, run_byte_enc, &cx, g_runs, min_s, &t_en);
    cx.o.kernel = AG_KERNEL_SCALAR;
    cx.o.threads = 1;
    (void)time_vs(run_encode, run_byte_enc, &cx, big ? 3 : g_runs, min_s, &t_es);
    const size_t eb = n * 5;
    printf("  %-20s | %7s %6s | %s\n", "E4M3 packed u8", "GB/s", "/loop", "(loop: same bytes in/out, 1 thread)");
    printf("  %-20s | %7.2f %6.2f | loop %.2f GB/s; all threads %.2f GB/s; scalar %.2f GB/s\n",
           "encode_u8 1T", gbps(eb, t_e1), re, gbps(eb, t_be), gbps(eb, t_en),
           gbps(eb, t_es));
    printf("  %-20s | %7.2f %6.2f | loop %.2f GB/s (decode runs on all threads: %s)\n",
           "decode_u8", gbps(eb, t_d1), rd, gbps(eb, t_bd),
           n >= ((size_t)1 << 16) ? "yes" : "no, below the threshold");
    /* encode_u8 with a power-of-two scale (no division), 1 thread */
    {
        double t_ep;
        cx.scale = 0.015625f;
        cx.o = ag_qopts_default();
        cx.o.kernel = g_kernel;
        cx.o.threads = 1;
        const double rp = time_vs(run_encode, run_byte_enc, &cx, g_runs, min_s, &t_ep);
        printf("  %-20s | %7.2f %6.2f | (scale 2^-6: no division)\n", "encode_u8 1T 2^-6",
               gbps(eb, t_ep), rp);
    }
}

/* ------------------------------------------------------------------------ */
/* Optimizer steps                                                          */
/* ------------------------------------------------------------------------ */

typedef struct {
    float *w, *m, *v, *g, *mv;  /* state (mv: movement or NULL) */
    float *cs, *cd;             /* memcpy yardstick: source, destination */
    size_t n, ncopy;            /* elements; floats the yardstick copies */
    ag_adamw_opts ao;
    ag_grid_opts go;
    const ag_format *gf;
    ag_optim_counts *counts;
    uint64_t t;
} octx_t;

static void run_adamw(void *p)
{
    octx_t *c = p;
    /* t stays 1: the same constants every call (the step count only
     * changes two scalars) */
    (void)ag_adamw_step(c->w, c->m, c->v, c->g, c->n, 1, &c->ao, c->counts, c->mv);
}

static void run_grid(void *p)
{
    octx_t *c = p;
    (void)ag_grid_step(c->w, c->v, c->g, c->n, c->gf, 0.01f, &c->go, NULL, NULL);
}

static void run_ocopy(void *p)
{
    octx_t *c = p;
    memcpy(c->cd, c->cs, c->ncopy * sizeof *c->cd);
}

/* The fused steps against a memcpy of the bytes they touch: AdamW reads
 * w, m, v, g and writes w, m, v (7 arrays: a memcpy of 3.5 arrays reads
 * and writes as much), with movement 9 arrays; the grid step reads w, vel,
 * g and writes w, vel (5). */
static void bench_optim(size_t n, int nthreads)
{
    octx_t c;
    memset(&c, 0, sizeof c);
    c.n = n;
    float *mvbuf = NULL;
    float **arrs[] = {&c.w, &c.m, &c.v, &c.g, &mvbuf};
    for (size_t i = 0; i < 5; i++) {
        *arrs[i] = malloc(n * sizeof(float));
        if (!*arrs[i]) {
            fprintf(stderr, "bench_quant: out of memory\n");
            exit(1);
        }
    }
    c.cs = malloc(n * 5 * sizeof(float));
    c.cd = malloc(n * 5 * sizeof(float));
    if (!c.cs || !c.cd) {
        fprintf(stderr, "bench_quant: out of memory\n");
        exit(1);
    }
    uint64_t s = 99;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        c.w[i] = ((float)(int32_t)(s >> 32) * 0x1p-31f) * 0.1f;
        c.g[i] = ((float)(int32_t)(uint32_t)s * 0x1p-31f) * 1e-3f;
        c.m[i] = c.v[i] = mvbuf[i] = 0.0f;
    }
    memset(c.cs, 0, n * 5 * sizeof(float));
    printf("\noptimizer steps, n = 2^%d floats (%.0f MiB per array): ratio = memcpy of "
           "the same bytes / the step (1 = memory speed)\n",
           (int)log2((double)n), (double)n * 4 / 1048576.0);
    printf("  %-34s | %7s %6s | %7s %6s\n", "step", "1T GB/s", "/memcp", "nT GB/s",
           "/memcp");
    ag_optim_counts cnt = {0, 0, 0};
    struct {
        const char *name;
        int grid, pre, fmt, counts, mv;
        size_t arrays;
    } rows[] = {
        {"adamw (plain)", 0, AG_PRECONDITION_NONE, 0, 0, 0, 7},
        {"adamw grad (AltGrad M=2)", 0, AG_PRECONDITION_GRAD, 0, 0, 0, 7},
        {"adamw grad, E4M3 stiffness", 0, AG_PRECONDITION_GRAD, 1, 0, 0, 7},
        {"adamw update, E4M3", 0, AG_PRECONDITION_UPDATE, 1, 0, 0, 7},
        {"adamw update, E4M3 +counts", 0, AG_PRECONDITION_UPDATE, 1, 1, 0, 7},
        {"adamw update, E4M3 +counts+movement", 0, AG_PRECONDITION_UPDATE, 1, 1, 1, 9},
        {"grid step, float8_e4m3fn", 1, 0, 0, 0, 0, 5},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        c.ao = ag_adamw_opts_default();
        c.ao.precondition = (ag_precondition)rows[r].pre;
        c.ao.format = rows[r].fmt ? ag_format_get("E4M3") : NULL;
        c.ao.scale = 0.01f;
        c.counts = rows[r].counts ? &cnt : NULL;
        c.mv = rows[r].mv ? mvbuf : NULL;
        c.go = ag_grid_opts_default();
        c.gf = ag_format_get("float8_e4m3fn");
        c.ncopy = n * rows[r].arrays / 2;
        const size_t bytes = n * rows[r].arrays * 4;
        bench_fn fn = rows[r].grid ? run_grid : run_adamw;
        double t1, tn;
        c.ao.threads = c.go.threads = 1;
        const double r1 = time_vs(fn, run_ocopy, &c, g_runs, 0.0, &t1);
        c.ao.threads = c.go.threads = 0;
        const double rn = time_vs(fn, run_ocopy, &c, g_runs, 0.0, &tn);
        printf("  %-34s | %7.2f %6.2f | %7.2f %6.2f\n", rows[r].name, gbps(bytes, t1), r1,
               gbps(bytes, tn), rn);
    }
    printf("  (%d threads for nT; AdamW's stall counters add two encodes of each "
           "cached chunk)\n", nthreads);
    free(c.w), free(c.m), free(c.v), free(c.g), free(mvbuf), free(c.cs), free(c.cd);
}

int main(int argc, char **argv)
{
    int quick = 0, optim_only = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--optim") == 0) {
            optim_only = 1;
        } else if (strcmp(argv[i], "--min") == 0) {
            g_min = 1;
        } else if (strcmp(argv[i], "--kernel") == 0 && i + 1 < argc) {
            const char *k = argv[++i];
            g_kernel = strcmp(k, "portable") == 0 ? AG_KERNEL_PORTABLE
                       : strcmp(k, "avx2") == 0   ? AG_KERNEL_AVX2
                       : strcmp(k, "avx512") == 0 ? AG_KERNEL_AVX512
                                                  : -1;
            if (g_kernel < 0 || !ag_kernel_available(g_kernel)) {
                fprintf(stderr, "bench_quant: kernel '%s' unknown or not available here\n", k);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: bench_quant [--quick] [--min] [--optim] [--kernel portable|avx2|avx512]\n");
            return 2;
        }
    }
    if (quick)
        g_runs = 3;
    char model[256];
    cpu_model(model, sizeof model);
    int nthreads = 1;
#ifdef _OPENMP
    nthreads = omp_get_max_threads();
#endif
    printf("altgrad %s bench_quant: CPU %s, %d threads (OpenMP), kernel %s%s\n",
           ag_version(), model, nthreads,
           g_kernel != AG_KERNEL_AUTO ? ag_kernel_name(g_kernel)
           : ag_kernel_available(AG_KERNEL_AVX512) ? "avx512"
           : ag_kernel_available(AG_KERNEL_AVX2) ? "avx2" : "portable",
           g_kernel != AG_KERNEL_AUTO ? " (--kernel; decode: the best one)" : "");
    printf("columns: 1T = 1 thread (/memcpy of the same bytes); nT = all threads "
           "(/parallel copy split the same way, /the 1-thread time);\n"
           "scalar = AG_KERNEL_SCALAR, 1 thread; ne = nearest-even, sr = stochastic; "
           "%s of %d runs (scalar at 2^24: 3)\n", g_min ? "minimum" : "median", g_runs);
    const size_t nmax = quick ? (size_t)1 << 20 : (size_t)1 << 24;
    float *x = malloc(nmax * sizeof *x), *y = malloc(nmax * sizeof *y);
    uint8_t *c = malloc(nmax);
    if (!x || !y || !c) {
        fprintf(stderr, "bench_quant: out of memory\n");
        return 1;
    }
    uint64_t s = 0x9E3779B97F4A7C15u;
    for (size_t i = 0; i < nmax; i++) { /* sum of uniforms: roughly N(0, 1) */
        float acc = 0;
        for (int k = 0; k < 4; k++) {
            s = s * 6364136223846793005u + 1442695040888963407u;
            acc += (float)(s >> 40) / 16777216.0f;
        }
        x[i] = (acc - 2.0f) * 1.7f;
    }
    memset(y, 0, nmax * sizeof *y);
    memset(c, 0, nmax);
    if (!optim_only) {
        bench_size(nmax, nthreads, x, y, c);
        bench_size((size_t)1 << 14, nthreads, x, y, c);
        bench_threads(x, y, c, nmax, nthreads);
    }
    bench_optim(quick ? (size_t)1 << 20 : (size_t)1 << 22, nthreads);
    free(x);
    free(y);
    free(c);
    return 0;
}
