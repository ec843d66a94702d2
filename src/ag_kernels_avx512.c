/* SPDX-License-Identifier: MIT */
/*
 * ag_kernels_avx512.c — the kernel body compiled for AVX-512 (F, BW, DQ,
 * VL, CD), picked at run time by ag__kernel_table when the CPU has it, plus
 * hand-written loops for the hot cases:
 *  - nearest-even quantize / encode (p->nefast, p->sym);
 *  - stochastic quantize / encode (p->sr_fast, p->sym), with Philox4x32-10
 *    computed in registers, sixteen blocks (64 elements) at a time.
 * Both round the float32 pattern itself and produce the bits and counts of
 * the scalar specification (tests/test_kernels.c checks them against it on
 * every format, mode, policy, scale and alignment). The first and last
 * vectors of a call are masked, so any n, alignment and stream offset takes
 * the same loop; large outputs (p->stream_out) use non-temporal stores.
 * FMA is not enabled, so no product is ever fused: bit-exact with scalar.
 */
#include "ag_kernels.h"

#if AG__HAVE_X86_KERNELS
#if !defined(__clang__)
#pragma GCC optimize("O3", "fp-contract=off", "no-trapping-math")
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512cd,prefer-vector-width=512")
#else
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512cd"))), apply_to = function)
#endif

#define AG_K_NO_TABLE 1 /* the table is defined below */
#include "ag_kernels_body.h"

#include <immintrin.h>

/* ---- shared pieces ---------------------------------------------------------- */

/* Per-call constants of the fast loops, broadcast once. */
typedef struct {
    __m512 scale, inv;
    __m512i abs, sh_v, keep, ovfmag, infmag;
    __m512i maxb, minnorm;
    uint32_t sh;
} x_common;

AG_K_INLINE void x_common_init(x_common *c, const ag__kparams *p)
{
    c->scale = _mm512_set1_ps(p->scale);
    c->inv = _mm512_set1_ps(p->inv_scale);
    c->abs = _mm512_set1_epi32(0x7fffffff);
    c->sh = p->ne_sh;
    c->sh_v = _mm512_set1_epi32((int)p->ne_sh);
    c->keep = _mm512_set1_epi32((int)~((1u << p->ne_sh) - 1u));
    c->ovfmag = _mm512_set1_epi32((int)p->ovf_val[0]);
    c->infmag = _mm512_set1_epi32((int)p->inf_val[0]);
    c->maxb = _mm512_set1_epi32((int)p->ne_maxb);
    c->minnorm = _mm512_set1_epi32((int)p->ne_minnorm);
}

/* Lanes [lo, hi) of a vector set (0 <= lo <= hi <= 16). */
AG_K_INLINE __mmask16 x_lanes(ptrdiff_t lo, ptrdiff_t hi)
{
    const uint32_t top = hi >= 16 ? 0xffffu : ((1u << hi) - 1u);
    const uint32_t bot = lo <= 0 ? 0u : ((1u << lo) - 1u);
    return (__mmask16)(top & ~bot);
}

/* The end of one vector: results r (rounded |v|, float bits), overflow
 * and inf lanes already decided; writes 16 outputs (lanes of m) and counts.
 * code: the code magnitude (encode kinds only). */
AG_K_INLINE void x_finish(void *out, ptrdiff_t i, __mmask16 m, __m512 x,
                          __m512i b, __m512i r, __m512i code, __mmask16 ovf,
                          __mmask16 inf, const x_common *c,
                          const ag__kparams *p, const int kind,
                          const int count, const int stream, uint64_t cnt[3])
{
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    if (count) {
        const __mmask16 xnz = _mm512_test_epi32_mask(_mm512_castps_si512(x), c->abs);
        const __mmask16 zero = _mm512_cmpeq_epi32_mask(r, _mm512_setzero_si512());
        cnt[0] += (uint32_t)__builtin_popcount((unsigned)(ovf & ~nan & m));
        cnt[1] += (uint32_t)__builtin_popcount((unsigned)(zero & xnz & ~ovf & m));
        cnt[2] += (uint32_t)__builtin_popcount((unsigned)(nan & m));
    }
    if (kind == K_OUT_F32) {
        r = _mm512_mask_mov_epi32(r, ovf, c->ovfmag);
        r = _mm512_mask_mov_epi32(r, inf, c->infmag);
        /* r | (b & sign) */
        const __m512i o = _mm512_ternarylogic_epi32(r, b, _mm512_set1_epi32((int)0x80000000u), 0xf8);
        const __m512 y = _mm512_mask_mul_ps(x, (__mmask16)~nan, _mm512_castsi512_ps(o), c->scale);
        float *yo = (float *)out + i;
        if (stream && m == 0xffff)
            _mm512_stream_ps(yo, y);
        else
            _mm512_mask_storeu_ps(yo, m, y);
    } else {
        code = _mm512_mask_mov_epi32(code, ovf, _mm512_set1_epi32((int)p->ovf_code[0]));
        code = _mm512_mask_mov_epi32(code, inf, _mm512_set1_epi32((int)p->inf_code[0]));
        /* the sign bit of negative lanes */
        code = _mm512_mask_or_epi32(code, _mm512_movepi32_mask(b), code,
                                    _mm512_set1_epi32((int)p->sign_mask));
        code = _mm512_mask_mov_epi32(code, nan, _mm512_set1_epi32((int)p->nan_code));
        if (kind == K_OUT_U8)
            _mm512_mask_cvtepi32_storeu_epi8((uint8_t *)out + i, m, code);
        else
            _mm512_mask_cvtepi32_storeu_epi16((uint16_t *)out + i, m, code);
    }
}

/* ---- nearest-even ------------------------------------------------------------ */

/* One vector of nearest-even rounding (p->nefast, p->sym), lanes m of
 * x[i .. i + 16). Normal range of the format, M >= 1: with
 * C = 2^(e + 23 - M) for |v| = 1.f * 2^e the float sum |v| + C rounds
 * |v| to M fraction bits (ties to even = even code) and subtracting C back
 * is exact; below 2^emin C = 2^(emin - M + 23) (magic) rounds to the
 * subnormal step, so C = max(2^(e + 23 - M), magic) serves both. M = 0
 * (intround): the normal range rounds on the integer pattern with the
 * exponent's parity (that of the code for an odd bias), as
 * k_round_ne_fast does. |v| > ne_ovft overflows; inf and NaN are
 * overridden. */
AG_K_INLINE void x_ne_vec(void *out, const float *x, ptrdiff_t i, __mmask16 m,
                          const x_common *c, const ag__kparams *p,
                          const __m512i kexp, const __m512i magic,
                          const __m512i ovft, const __m512i off,
                          const int kind, const int use_inv, const int intround,
                          const int count, const int stream, uint64_t cnt[3])
{
    const __m512 xv = m == 0xffff ? _mm512_loadu_ps(x + i)
                                  : _mm512_maskz_loadu_ps(m, x + i);
    const __m512 v = use_inv ? _mm512_mul_ps(xv, c->inv) : _mm512_div_ps(xv, c->scale);
    const __m512i b = _mm512_castps_si512(v);
    const __m512i a = _mm512_and_si512(b, c->abs);
    __m512i r, s, cc;
    if (!intround) {
        /* C = max((a & exponent) + (23 - M) << 23, magic) */
        cc = _mm512_max_epu32(
            _mm512_add_epi32(_mm512_and_si512(a, _mm512_set1_epi32(0x7f800000)), kexp),
            magic);
        s = _mm512_castps_si512(_mm512_add_ps(_mm512_castsi512_ps(a), _mm512_castsi512_ps(cc)));
        r = _mm512_castps_si512(_mm512_sub_ps(_mm512_castsi512_ps(s), _mm512_castsi512_ps(cc)));
    } else {
        const __m512i lsb = _mm512_and_si512(_mm512_srlv_epi32(a, c->sh_v), _mm512_set1_epi32(1));
        const __m512i half1 = _mm512_set1_epi32((int)((1u << (c->sh - 1u)) - 1u));
        const __m512i rn = _mm512_and_si512(_mm512_add_epi32(_mm512_add_epi32(a, half1), lsb), c->keep);
        s = _mm512_castps_si512(_mm512_add_ps(_mm512_castsi512_ps(a), _mm512_castsi512_ps(magic)));
        const __m512i rs = _mm512_castps_si512(_mm512_sub_ps(_mm512_castsi512_ps(s), _mm512_castsi512_ps(magic)));
        const __mmask16 sub = _mm512_cmplt_epu32_mask(a, c->minnorm);
        r = _mm512_mask_mov_epi32(rn, sub, rs);
        cc = magic;
    }
    const __mmask16 ovf = _mm512_cmpgt_epu32_mask(a, ovft);
    const __mmask16 inf = _mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(0x7f800000));
    __m512i code = r;
    if (kind != K_OUT_F32) {
        /* normal results: (r >> sh) - off; below 2^emin: s - C counts
         * the subnormal steps (C = magic there) */
        const __mmask16 sub = _mm512_cmplt_epu32_mask(r, c->minnorm);
        const __m512i cn = _mm512_sub_epi32(_mm512_srlv_epi32(r, c->sh_v), off);
        code = _mm512_mask_sub_epi32(cn, sub, s, cc);
    }
    x_finish(out, i, m, xv, b, r, code, ovf, inf, c, p, kind, count, stream, cnt);
}

AG_K_INLINE void x_ne_run(void *out, const float *x, size_t n,
                          const ag__kparams *p, const int kind,
                          const int use_inv, const int intround,
                          const int count, uint64_t cnt[3])
{
    x_common c;
    x_common_init(&c, p);
    const __m512i kexp = _mm512_set1_epi32((int)(p->ne_sh << 23));
    const __m512i magic = _mm512_set1_epi32((int)k_f2u(p->ne_magic));
    const __m512i ovft = _mm512_set1_epi32((int)p->ne_ovft);
    const __m512i off = _mm512_set1_epi32((int)((uint32_t)(127 - p->bias) << p->mbits));
    /* start so that the output of the full vectors is 64-byte aligned
     * (quantize: 16 floats; the first vector is masked) */
    const size_t esz = kind == K_OUT_F32 ? 4 : (kind == K_OUT_U8 ? 1 : 2);
    const uintptr_t addr = (uintptr_t)out;
    const int stream = kind == K_OUT_F32 && p->stream_out && (addr & 3u) == 0;
    ptrdiff_t i = 0;
    if (kind == K_OUT_F32 && (addr & 3u) == 0)
        i = -(ptrdiff_t)(((addr & 63u) / esz) & 15u);
    const ptrdiff_t nn = (ptrdiff_t)n;
#define X_NE(STREAM)                                                          \
    do {                                                                      \
        for (; i < nn; i += 16) {                                             \
            const __mmask16 m = (i >= 0 && i + 16 <= nn) ? (__mmask16)0xffff \
                                                         : x_lanes(-i, nn - i); \
            x_ne_vec(out, x, i, m, &c, p, kexp, magic, ovft, off, kind,       \
                     use_inv, intround, count, STREAM, cnt);                  \
        }                                                                     \
    } while (0)
    if (stream) {
        X_NE(1);
        _mm_sfence();
    } else {
        X_NE(0);
    }
#undef X_NE
}

/* ---- stochastic ---------------------------------------------------------------- */

/* Philox4x32-10 of blocks blk .. blk + 15 (counter (blk, stream), key
 * seed), returned as the random words of stream elements 4 blk .. 4 blk +
 * 63 in order: w[q] holds elements 4 blk + 16 q .. + 15. Lane p of the
 * counter vectors carries block blk + 4 (p mod 4) + p / 4, so that the two
 * unpack stages of the 4 x 4 word transpose already put the words in
 * element order. */
AG_K_INLINE void x_philox64(uint64_t blk, uint64_t seed, uint64_t stream,
                            const __m512i lane_off, __m512i w[4])
{
    const __m512i blo = _mm512_set1_epi32((int)(uint32_t)blk);
    const __m512i c0i = _mm512_add_epi32(blo, lane_off);
    /* carry into the high word where the low word wrapped */
    const __mmask16 carry = _mm512_cmplt_epu32_mask(c0i, blo);
    __m512i c0 = c0i;
    __m512i c1 = _mm512_mask_add_epi32(_mm512_set1_epi32((int)(uint32_t)(blk >> 32)), carry,
                                       _mm512_set1_epi32((int)(uint32_t)(blk >> 32)),
                                       _mm512_set1_epi32(1));
    __m512i c2 = _mm512_set1_epi32((int)(uint32_t)stream);
    __m512i c3 = _mm512_set1_epi32((int)(uint32_t)(stream >> 32));
    const __m512i m0 = _mm512_set1_epi32((int)AG__PHILOX_M0);
    const __m512i m1 = _mm512_set1_epi32((int)AG__PHILOX_M1);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        /* 32 x 32 -> 64 products: even lanes, odd lanes shifted down */
        const __m512i pe0 = _mm512_mul_epu32(c0, m0);
        const __m512i po0 = _mm512_mul_epu32(_mm512_srli_epi64(c0, 32), m0);
        const __m512i pe1 = _mm512_mul_epu32(c2, m1);
        const __m512i po1 = _mm512_mul_epu32(_mm512_srli_epi64(c2, 32), m1);
        const __m512i hi0 = _mm512_mask_mov_epi32(_mm512_srli_epi64(pe0, 32), 0xaaaa, po0);
        const __m512i hi1 = _mm512_mask_mov_epi32(_mm512_srli_epi64(pe1, 32), 0xaaaa, po1);
        const __m512i lo0 = _mm512_mullo_epi32(c0, m0);
        const __m512i lo1 = _mm512_mullo_epi32(c2, m1);
        c0 = _mm512_ternarylogic_epi32(hi1, c1, _mm512_set1_epi32((int)k0), 0x96);
        c2 = _mm512_ternarylogic_epi32(hi0, c3, _mm512_set1_epi32((int)k1), 0x96);
        c1 = lo1;
        c3 = lo0;
        k0 += AG__PHILOX_W0;
        k1 += AG__PHILOX_W1;
    }
    const __m512i t0 = _mm512_unpacklo_epi32(c0, c1);
    const __m512i t1 = _mm512_unpackhi_epi32(c0, c1);
    const __m512i t2 = _mm512_unpacklo_epi32(c2, c3);
    const __m512i t3 = _mm512_unpackhi_epi32(c2, c3);
    w[0] = _mm512_unpacklo_epi64(t0, t2);
    w[1] = _mm512_unpackhi_epi64(t0, t2);
    w[2] = _mm512_unpacklo_epi64(t1, t3);
    w[3] = _mm512_unpackhi_epi64(t1, t3);
}

/* Constants of the stochastic loop. */
typedef struct {
    __m512i c_sh1, rsh, nextb, off;
    __m512 up_q, down_q, two32;
    int fixed;
} x_srconst;

/* One vector of stochastic rounding with random words rnd. The spec: up
 * iff rnd < floor(frac * 2^32), frac = the dropped part over the step.
 * Normal range (s = 23 - M dropped bits d): rnd < d * 2^(32 - s) iff
 * (rnd >> (32 - s)) < d iff adding 2^s - 1 - (rnd >> (32 - s)) to the
 * pattern carries into the kept bits. Below 2^emin (any lane; all of an
 * E = 0 format): w = |v| * 2^-q_sub exactly, k0 = trunc(w), frac = w - k0
 * exactly, floor(frac * 2^32) by truncation, r = (k0 + up) * 2^q_sub. */
AG_K_INLINE void x_sr_vec(void *out, const float *x, ptrdiff_t i, __mmask16 m,
                          __m512i rnd, const x_common *c, const x_srconst *k,
                          const ag__kparams *p, const int kind,
                          const int use_inv, const int count, const int stream,
                          uint64_t cnt[3])
{
    const __m512 xv = m == 0xffff ? _mm512_loadu_ps(x + i)
                                  : _mm512_maskz_loadu_ps(m, x + i);
    const __m512 v = use_inv ? _mm512_mul_ps(xv, c->inv) : _mm512_div_ps(xv, c->scale);
    const __m512i b = _mm512_castps_si512(v);
    const __m512i a = _mm512_and_si512(b, c->abs);
    __m512i r = _mm512_and_si512(
        _mm512_sub_epi32(_mm512_add_epi32(a, k->c_sh1), _mm512_srlv_epi32(rnd, k->rsh)),
        c->keep);
    __m512i code = r;
    if (kind != K_OUT_F32)
        code = _mm512_sub_epi32(_mm512_srlv_epi32(r, c->sh_v), k->off);
    const __mmask16 sub = k->fixed ? (__mmask16)0xffff
                                   : _mm512_cmplt_epu32_mask(a, c->minnorm);
    if (sub) {
        const __m512 w = _mm512_mul_ps(_mm512_castsi512_ps(a), k->up_q);
        const __m512i k0 = _mm512_cvttps_epi32(w);
        const __m512 frac = _mm512_sub_ps(w, _mm512_cvtepi32_ps(k0));
        const __m512i thr = _mm512_cvttps_epu32(_mm512_mul_ps(frac, k->two32));
        const __mmask16 up = _mm512_cmplt_epu32_mask(rnd, thr);
        const __m512i kk = _mm512_mask_add_epi32(k0, up, k0, _mm512_set1_epi32(1));
        const __m512i rs = _mm512_castps_si512(_mm512_mul_ps(_mm512_cvtepi32_ps(kk), k->down_q));
        r = _mm512_mask_mov_epi32(r, sub, rs);
        if (kind != K_OUT_F32)
            code = _mm512_mask_mov_epi32(code, sub, kk);
    }
    const __mmask16 ovf = _mm512_cmpgt_epu32_mask(r, c->maxb) |
                          _mm512_cmpge_epu32_mask(a, k->nextb);
    const __mmask16 inf = _mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(0x7f800000));
    x_finish(out, i, m, xv, b, r, code, ovf, inf, c, p, kind, count, stream, cnt);
}

AG_K_INLINE void x_sr_run(void *out, const float *x, size_t n, uint64_t g0,
                          const ag__kparams *p, const int kind,
                          const int use_inv, const int count, uint64_t cnt[3])
{
    x_common c;
    x_common_init(&c, p);
    x_srconst k;
    k.c_sh1 = _mm512_set1_epi32((int)((1u << p->ne_sh) - 1u));
    k.rsh = _mm512_set1_epi32((int)(32u - p->ne_sh));
    k.nextb = _mm512_set1_epi32((int)p->sr_nextb);
    k.off = _mm512_set1_epi32((int)((uint32_t)(127 - p->bias) << p->mbits));
    k.up_q = _mm512_set1_ps(k_u2f((uint32_t)(127 - p->q_sub) << 23));  /* 2^-q_sub */
    k.down_q = _mm512_set1_ps(k_u2f((uint32_t)(127 + p->q_sub) << 23)); /* 2^q_sub */
    k.two32 = _mm512_set1_ps(0x1p32f);
    k.fixed = (int)p->fixed;
    const __m512i lane_off = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2,
                                              13, 9, 5, 1, 12, 8, 4, 0);
    /* element i is stream element g0 + i; vectors start at multiples of 4
     * in the stream (lanes before element 0 are masked) */
    ptrdiff_t i = -(ptrdiff_t)(g0 & 3u);
    uint64_t blk = g0 >> 2;
    const ptrdiff_t nn = (ptrdiff_t)n;
    const int stream = kind == K_OUT_F32 && p->stream_out &&
                       (((uintptr_t)((float *)out + i)) & 63u) == 0;
#define X_SR(STREAM)                                                          \
    do {                                                                      \
        for (; i < nn; i += 64, blk += 16) {                                  \
            __m512i w[4];                                                     \
            x_philox64(blk, p->seed, p->stream, lane_off, w);                 \
            for (int q = 0; q < 4; q++) {                                     \
                const ptrdiff_t iq = i + 16 * q;                              \
                if (iq >= nn)                                                 \
                    break;                                                    \
                const __mmask16 m = (iq >= 0 && iq + 16 <= nn)                \
                                        ? (__mmask16)0xffff                   \
                                        : x_lanes(-iq, nn - iq);              \
                x_sr_vec(out, x, iq, m, w[q], &c, &k, p, kind, use_inv,       \
                         count, STREAM, cnt);                                 \
            }                                                                 \
        }                                                                     \
    } while (0)
    if (stream) {
        X_SR(1);
        _mm_sfence();
    } else {
        X_SR(0);
    }
#undef X_SR
}

/* ---- dispatch ------------------------------------------------------------------- */

/* 1: handled here (the fast loops cover this call), else 0. */
AG_K_INLINE int x_round(void *out, const float *x, size_t n, uint64_t g0,
                        const ag__kparams *p, ag__kstats *st, const int kind)
{
    uint64_t cnt[3] = {0, 0, 0};
    const int inv = p->use_inv, cn = p->count;
    if (!p->sym)
        return 0;
    if (p->mode == AG_ROUND_NEAREST_EVEN && p->nefast) {
        /* the float-sum rounding needs M >= 1 (code parity = float
         * parity) and C = 2^(e + 23 - M) finite up to the overflow
         * threshold; else the integer rounding */
        const int ir = p->mbits == 0 ||
                       (!p->fixed && p->emax + 24 - (int)p->mbits > 127);
        /* the constant arguments give one specialised loop each */
#define X_NE_CALL(I, R, C) x_ne_run(out, x, n, p, kind, I, R, C, cnt)
        if (inv) {
            if (ir) { if (cn) X_NE_CALL(1, 1, 1); else X_NE_CALL(1, 1, 0); }
            else    { if (cn) X_NE_CALL(1, 0, 1); else X_NE_CALL(1, 0, 0); }
        } else {
            if (ir) { if (cn) X_NE_CALL(0, 1, 1); else X_NE_CALL(0, 1, 0); }
            else    { if (cn) X_NE_CALL(0, 0, 1); else X_NE_CALL(0, 0, 0); }
        }
#undef X_NE_CALL
    } else if (p->mode == AG_ROUND_STOCHASTIC && p->sr_fast) {
        if (inv) {
            if (cn) x_sr_run(out, x, n, g0, p, kind, 1, 1, cnt);
            else    x_sr_run(out, x, n, g0, p, kind, 1, 0, cnt);
        } else {
            if (cn) x_sr_run(out, x, n, g0, p, kind, 0, 1, cnt);
            else    x_sr_run(out, x, n, g0, p, kind, 0, 0, cnt);
        }
    } else {
        return 0;
    }
    st->overflow += cnt[0];
    st->underflow += cnt[1];
    st->nan += cnt[2];
    return 1;
}

static void x_quantize(float *y, const float *x, size_t n, uint64_t g0,
                       const ag__kparams *p, ag__kstats *st)
{
    if (!x_round(y, x, n, g0, p, st, K_OUT_F32))
        k_quantize(y, x, n, g0, p, st);
}

static void x_encode_u8(uint8_t *c, const float *x, size_t n, uint64_t g0,
                        const ag__kparams *p, ag__kstats *st)
{
    if (!x_round(c, x, n, g0, p, st, K_OUT_U8))
        k_encode_u8(c, x, n, g0, p, st);
}

static void x_encode_u16(uint16_t *c, const float *x, size_t n, uint64_t g0,
                         const ag__kparams *p, ag__kstats *st)
{
    if (!x_round(c, x, n, g0, p, st, K_OUT_U16))
        k_encode_u16(c, x, n, g0, p, st);
}

const ag__kernel_ops ag__kernels_avx512 = {
    x_quantize, x_encode_u8, x_encode_u16, k_decode_u8,
    k_decode_u16, k_backward, k_scale_mul, k_max_u16,
};

#if defined(__clang__)
#pragma clang attribute pop
#endif
#else
typedef int ag__kernels_avx512_unused; /* no x86: nothing to build */
#endif
