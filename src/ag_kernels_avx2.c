/* SPDX-License-Identifier: MIT */
/*
 * ag_kernels_avx2.c — the kernel body compiled for AVX2 (picked at run time
 * by ag__kernel_table when the CPU has it; a portable build still uses it),
 * plus hand-written loops for the hot cases, eight lanes a vector:
 *  - the default quantize in nearest-even (saturating to max_finite, no
 *    stats; p->nefast, p->sym, C finite up to max_finite): |v| clamped to
 *    max_finite, then the float sum |v| + C - C, as the body's
 *    k_round_ne_satq and the AVX-512 loop do it;
 *  - nearest-even encodes without stats (M >= 1, the same C): the code
 *    read off the sum, as the AVX-512 "codeonly" loop, packed four
 *    vectors to one store; four vectors with no value beyond the range
 *    (one test for the four) skip the clamp and the selects, and 8-bit
 *    codes then take their sign bits from the inputs packed alike;
 *  - the default stochastic quantize (p->sr_fast) with ARS-7 computed in
 *    registers through VAES on 256-bit vectors (two blocks, eight
 *    elements, a register; where the CPU has VAES, else the body runs it
 *    with AES-NI), the next 64 elements' words before this 64's rounding,
 *    rounded by integer steps on the float pattern, each vector by the
 *    cheapest of three roundings that covers its lanes.
 * With a power-of-two scale the nearest-even loops round x itself on the
 * scaled grid where that grid has normal steps (y_xdom): no quotient and
 * no product.
 * Whole vectors only: the few elements before the first whole vector (a
 * stream offset not a multiple of 4, a code store not aligned for a
 * non-temporal store) and after the last one take the body, which gives
 * the same bits. Everything else (counted calls, other modes and formats)
 * runs the body. tests/test_kernels.c checks every path against the scalar
 * specification. FMA is not enabled, so no product is ever fused:
 * bit-exact with scalar.
 */
#include "ag_kernels.h"

#if AG__HAVE_X86_KERNELS
#if !defined(__clang__)
#pragma GCC optimize("O3", "fp-contract=off", "no-trapping-math")
#pragma GCC target("avx2")
#else
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#endif

#define AG_K_NO_TABLE 1 /* the table is defined below */
#include "ag_kernels_body.h"

#include <immintrin.h>

/* ---- shared pieces ---------------------------------------------------------- */

/* How a loop gets |v| for v = x / scale: the division (Y_DIV), x * (1 /
 * scale) where that is exact (Y_MUL: p->use_inv), or not at all (Y_X:
 * rounding x itself on the grid times the scale, see y_xdom). */
#define Y_DIV 0
#define Y_MUL 1
#define Y_X 2

/* Per-call constants, broadcast once. maxb, magic (and the encodes'
 * ovft) are those of |v|, or with Y_X of |x|: times the scale. infthr:
 * |v| (|x|) bits above it are inf or NaN in v. */
typedef struct {
    __m256 scale, inv, signf;
    __m256i abs, expm, one, maxb, kexp, magic, infb, infthr;
} y_k;

/* Y_X, nearest-even: a power-of-two scale (x / scale = x * 2^-k) for
 * which the grid times the scale is again a grid of normal-float steps:
 * 2^emin * scale at least 2^-126, C * scale finite for every |v| up to
 * max_finite (2^(emax + 23 - M) * scale, E = 0: magic * scale), and the
 * smallest step at least 2^-125 (every quotient x * inv that underflows
 * is then below half a step: 0 either way), M >= 1 (M = 0 reads the
 * exponent's parity, which the scale would shift). Then with |x| = |v| *
 * scale exactly wherever v is normal, the sum |x| + C * scale rounds to
 * the scaled steps as |v| + C to the steps, x below the format's normals
 * (float subnormals too) take magic * scale, v = +-inf is |x| above
 * FLT_MAX * scale (scale < 1) or x = +-inf, and y = r | sign(x) with no
 * multiply: r * scale of the quotient path, bit for bit. */
AG_K_INLINE int y_xdom(const ag__kparams *p)
{
    if (!p->use_inv || p->mbits == 0 || p->q_sub < -125)
        return 0;
    const int k = (int)(k_f2u(p->scale) >> 23) - 127; /* scale = 2^k, normal */
    const int ctop = p->fixed ? p->q_sub + 23 : p->emax + 23 - (int)p->mbits;
    return (k_f2u(p->scale) & 0x7fffffu) == 0 && (k_f2u(p->scale) >> 23) != 0 &&
           p->emin + k >= -126 && ctop + k <= 127;
}

AG_K_INLINE void y_k_init(y_k *k, const ag__kparams *p, const int qm)
{
    k->scale = _mm256_set1_ps(p->scale);
    k->inv = _mm256_set1_ps(p->inv_scale);
    k->signf = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    k->abs = _mm256_set1_epi32(0x7fffffff);
    k->expm = _mm256_set1_epi32(0x7f800000);
    k->one = _mm256_set1_epi32(1);
    k->kexp = _mm256_set1_epi32((int)(p->ne_sh << 23));
    k->infb = _mm256_set1_epi32((int)p->inf_val[0]);
    if (qm == Y_X) {
        k->maxb = _mm256_set1_epi32((int)k_f2u(p->max_finite * p->scale));
        k->magic = _mm256_set1_epi32((int)k_f2u(p->ne_magic * p->scale));
        k->infthr = _mm256_set1_epi32(
            (int)(p->scale < 1.0f ? k_f2u(0x1.fffffep127f * p->scale) : 0x7f7fffffu));
    } else {
        k->maxb = _mm256_set1_epi32((int)p->ne_maxb);
        k->magic = _mm256_set1_epi32((int)k_f2u(p->ne_magic));
        k->infthr = _mm256_set1_epi32(0x7f7fffff);
    }
}

/* |v| bits of v = x / scale as the scalar path divides it (x * (1/scale)
 * where that is exact: p->use_inv); Y_X: |x| bits. */
AG_K_INLINE __m256i y_absq(__m256 xv, const y_k *k, const int qm)
{
    const __m256 v = qm == Y_X   ? xv
                     : qm == Y_MUL ? _mm256_mul_ps(xv, k->inv)
                                   : _mm256_div_ps(xv, k->scale);
    return _mm256_and_si256(_mm256_castps_si256(v), k->abs);
}

/* The end of the default quantize (k_satq_out): r (|v| rounded, at most
 * max_finite) becomes the policy's inf result where |v| = inf (hasinf: a
 * format with inf; elsewhere that result is max_finite, which r already
 * is), takes the sign of x (= that of v), times the scale (Y_X: r is
 * already that); NaN keeps x. */
AG_K_INLINE __m256 y_out_q(__m256i r, __m256i a, __m256 xv, const y_k *k, const int hasinf,
                           const int qm)
{
    if (hasinf)
        r = _mm256_blendv_epi8(r, k->infb, _mm256_cmpgt_epi32(a, k->infthr));
    const __m256 o = _mm256_or_ps(_mm256_castsi256_ps(r), _mm256_and_ps(xv, k->signf));
    const __m256 y = qm == Y_X ? o : _mm256_mul_ps(o, k->scale);
    return _mm256_blendv_ps(y, xv, _mm256_cmp_ps(xv, xv, _CMP_UNORD_Q));
}

/* ---- nearest-even quantize ----------------------------------------------------- */

/* One vector of the default nearest-even quantize (k_round_ne_satq): |v|
 * clamped to max_finite (NaN and inf too: their lanes are set at the end),
 * C = max(2^(e + 23 - M), magic) from the exponent of the clamped |v|, r =
 * (|v| + C) - C. par (M = 0): C gets its last bit where bit 23 of |v| is
 * clear (the tie then goes down, see k_round_ne_satq). Every value is
 * below 2^31 as an integer, so the signed min and max are the unsigned
 * ones. */
AG_K_INLINE __m256 y_ne_q(__m256 xv, const y_k *k, const int qm, const int par,
                          const int hasinf)
{
    const __m256i a = y_absq(xv, k, qm);
    const __m256i ac = _mm256_min_epi32(a, k->maxb);
    __m256i ce = _mm256_add_epi32(_mm256_and_si256(ac, k->expm), k->kexp);
    if (par)
        ce = _mm256_or_si256(ce, _mm256_andnot_si256(_mm256_srli_epi32(ac, 23), k->one));
    const __m256 c = _mm256_castsi256_ps(_mm256_max_epi32(ce, k->magic));
    const __m256 r = _mm256_sub_ps(_mm256_add_ps(_mm256_castsi256_ps(ac), c), c);
    return y_out_q(_mm256_castps_si256(r), a, xv, k, hasinf, qm);
}

AG_K_INLINE size_t y_ne_q_run(float *y, const float *x, size_t n, const ag__kparams *p,
                              const int qm, const int par, const int hasinf)
{
    y_k k;
    y_k_init(&k, p, qm);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 r0 = y_ne_q(_mm256_loadu_ps(x + i), &k, qm, par, hasinf);
        const __m256 r1 = y_ne_q(_mm256_loadu_ps(x + i + 8), &k, qm, par, hasinf);
        _mm256_storeu_ps(y + i, r0);
        _mm256_storeu_ps(y + i + 8, r1);
    }
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, y_ne_q(_mm256_loadu_ps(x + i), &k, qm, par, hasinf));
    return i;
}

/* ---- nearest-even encodes -------------------------------------------------------- */

/* Constants of the encodes, beside y_k. */
typedef struct {
    __m256i ovft, ovfcode, infcode, nancode, signcode, lim, sh;
} y_ek;

/* Codes of one vector (the AVX-512 codeonly loop, x_ne_vec): with C as
 * for quantize, the bits s - C of the sum s = |v| + C are the rounded |v|
 * in steps of ulp(C), and (C - magic) >> (23 - M) is (e - emin) << M, so
 * code = (s - C) + ((C - magic) >> (23 - M)). sat (saturating, overflow
 * code = max code): |v| clamped to ne_ovft first (rounds to the max
 * code), else |v| > ne_ovft selects the overflow code (C is garbage
 * there, and only there). Then inf (hasinf), the sign bit (of x, = that
 * of v) and NaN. */
AG_K_INLINE __m256i y_ne_code(__m256 xv, const __m256i a, const y_k *k, const y_ek *e,
                              const int sat, const int hasinf)
{
    const __m256i ac = sat ? _mm256_min_epi32(a, e->ovft) : a;
    const __m256i cc =
        _mm256_max_epi32(_mm256_add_epi32(_mm256_and_si256(ac, k->expm), k->kexp), k->magic);
    const __m256i s = _mm256_castps_si256(
        _mm256_add_ps(_mm256_castsi256_ps(ac), _mm256_castsi256_ps(cc)));
    __m256i code = _mm256_add_epi32(_mm256_sub_epi32(s, cc),
                                    _mm256_srlv_epi32(_mm256_sub_epi32(cc, k->magic), e->sh));
    if (!sat)
        code = _mm256_blendv_epi8(code, e->ovfcode, _mm256_cmpgt_epi32(a, e->ovft));
    if (hasinf)
        code = _mm256_blendv_epi8(code, e->infcode, _mm256_cmpgt_epi32(a, k->infthr));
    code = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(code),
                                                _mm256_castsi256_ps(_mm256_or_si256(code, e->signcode)),
                                                xv));
    return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(code),
                                                _mm256_castsi256_ps(e->nancode),
                                                _mm256_cmp_ps(xv, xv, _CMP_UNORD_Q)));
}

/* The code of |v| for a vector none of whose lanes is above e->lim (no
 * clamp, overflow, inf or NaN to select: y_ne_group_plain), unsigned. */
AG_K_INLINE __m256i y_ne_mag_plain(const __m256i a, const y_k *k, const y_ek *e)
{
    const __m256i cc =
        _mm256_max_epi32(_mm256_add_epi32(_mm256_and_si256(a, k->expm), k->kexp), k->magic);
    const __m256i s = _mm256_castps_si256(
        _mm256_add_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(cc)));
    return _mm256_add_epi32(_mm256_sub_epi32(s, cc),
                            _mm256_srlv_epi32(_mm256_sub_epi32(cc, k->magic), e->sh));
}

/* y_ne_code of such a vector: y_ne_mag_plain with the sign bit of x. */
AG_K_INLINE __m256i y_ne_code_plain(__m256 xv, const __m256i a, const y_k *k, const y_ek *e)
{
    const __m256i code = y_ne_mag_plain(a, k, e);
    return _mm256_castps_si256(_mm256_blendv_ps(
        _mm256_castsi256_ps(code), _mm256_castsi256_ps(_mm256_or_si256(code, e->signcode)),
        xv));
}

/* 1 when no lane of a0 .. a3 (|v| bits) is above e->lim = min(ne_ovft,
 * the inf threshold): every lane then rounds inside the format's range
 * (NaN and inf bits are above it), so y_ne_code_plain gives y_ne_code's
 * codes. One test for four vectors: data with no such values (nearly
 * all) skip the clamp and three selects a vector. */
AG_K_INLINE int y_ne_group_plain(__m256i a0, __m256i a1, __m256i a2, __m256i a3,
                                 const y_ek *e)
{
    const __m256i m = _mm256_max_epi32(_mm256_max_epi32(a0, a1), _mm256_max_epi32(a2, a3));
    return _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(m, e->lim))) == 0;
}

/* Whole groups of out[i ..) (32 codes of 8 bits or 16 of 16 bits, one
 * 32-byte store each) from element 0; returns the elements done. stream:
 * non-temporal stores (the caller aligned out to 32 bytes). */
AG_K_INLINE size_t y_ne_enc_run(void *out, const float *x, size_t n, const ag__kparams *p,
                                const int wide, const int qm, const int sat,
                                const int hasinf, const int stream)
{
    y_k k;
    y_k_init(&k, p, qm);
    y_ek e;
    e.ovft = _mm256_set1_epi32(
        (int)(qm == Y_X ? k_f2u(k_u2f(p->ne_ovft) * p->scale) : p->ne_ovft));
    e.ovfcode = _mm256_set1_epi32((int)p->ovf_code[0]);
    e.infcode = _mm256_set1_epi32((int)p->inf_code[0]);
    e.nancode = _mm256_set1_epi32((int)p->nan_code);
    e.signcode = _mm256_set1_epi32((int)p->sign_mask);
    e.sh = _mm256_set1_epi32((int)p->ne_sh);
    e.lim = _mm256_min_epi32(e.ovft, k.infthr);
    size_t i = 0;
    if (!wide) {
        /* the in-lane packs leave dword j of the 32 bytes from vector
         * (j mod 4), half (j / 4): put them back in order */
        const __m256i ord = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        const int s8 = p->sign_mask == 0x80u;
        const __m256i sb = _mm256_set1_epi8((char)0x80);
        for (; i + 32 <= n; i += 32) {
            const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
            const __m256 x2 = _mm256_loadu_ps(x + i + 16), x3 = _mm256_loadu_ps(x + i + 24);
            const __m256i a0 = y_absq(x0, &k, qm), a1 = y_absq(x1, &k, qm);
            const __m256i a2 = y_absq(x2, &k, qm), a3 = y_absq(x3, &k, qm);
            __m256i q0, q1, q2, q3;
            if (s8 && y_ne_group_plain(a0, a1, a2, a3, &e)) {
                /* the sign bits packed as the codes are: the signed packs
                 * take a negative x (bits at least 2^31 as an integer,
                 * NaN aside) to -128, 0x80, and a positive one to at
                 * most 127 */
                const __m256i c = _mm256_packus_epi16(
                    _mm256_packus_epi32(y_ne_mag_plain(a0, &k, &e), y_ne_mag_plain(a1, &k, &e)),
                    _mm256_packus_epi32(y_ne_mag_plain(a2, &k, &e), y_ne_mag_plain(a3, &k, &e)));
                const __m256i sg = _mm256_packs_epi16(
                    _mm256_packs_epi32(_mm256_castps_si256(x0), _mm256_castps_si256(x1)),
                    _mm256_packs_epi32(_mm256_castps_si256(x2), _mm256_castps_si256(x3)));
                const __m256i b = _mm256_permutevar8x32_epi32(
                    _mm256_or_si256(c, _mm256_and_si256(sg, sb)), ord);
                __m256i *d = (__m256i *)(void *)((uint8_t *)out + i);
                if (stream)
                    _mm256_stream_si256(d, b);
                else
                    _mm256_storeu_si256(d, b);
                continue;
            }
            if (y_ne_group_plain(a0, a1, a2, a3, &e)) {
                q0 = y_ne_code_plain(x0, a0, &k, &e);
                q1 = y_ne_code_plain(x1, a1, &k, &e);
                q2 = y_ne_code_plain(x2, a2, &k, &e);
                q3 = y_ne_code_plain(x3, a3, &k, &e);
            } else {
                q0 = y_ne_code(x0, a0, &k, &e, sat, hasinf);
                q1 = y_ne_code(x1, a1, &k, &e, sat, hasinf);
                q2 = y_ne_code(x2, a2, &k, &e, sat, hasinf);
                q3 = y_ne_code(x3, a3, &k, &e, sat, hasinf);
            }
            const __m256i b = _mm256_permutevar8x32_epi32(
                _mm256_packus_epi16(_mm256_packus_epi32(q0, q1), _mm256_packus_epi32(q2, q3)), ord);
            __m256i *d = (__m256i *)(void *)((uint8_t *)out + i);
            if (stream)
                _mm256_stream_si256(d, b);
            else
                _mm256_storeu_si256(d, b);
        }
    } else {
        for (; i + 16 <= n; i += 16) {
            const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
            const __m256i q0 = y_ne_code(x0, y_absq(x0, &k, qm), &k, &e, sat, hasinf);
            const __m256i q1 = y_ne_code(x1, y_absq(x1, &k, qm), &k, &e, sat, hasinf);
            const __m256i w = _mm256_permute4x64_epi64(_mm256_packus_epi32(q0, q1), 0xd8);
            __m256i *d = (__m256i *)(void *)((uint16_t *)out + i);
            if (stream)
                _mm256_stream_si256(d, w);
            else
                _mm256_storeu_si256(d, w);
        }
    }
    if (stream)
        _mm_sfence();
    return i;
}

/* ---- stochastic quantize ---------------------------------------------------------- */

#define Y_VAES __attribute__((target("avx2,vaes,aes")))

/* ARS-7 of blocks blk .. blk + 15 (counter (block, stream), block modulo
 * 2^64) as the random words of stream elements 4 blk .. 4 blk + 63 in
 * order: w[q] holds blocks blk + 2 q (low lane) and blk + 2 q + 1, the
 * words of elements 4 blk + 8 q .. + 7. Eight registers in flight hide the
 * latency of the AES unit. */
Y_VAES static inline __attribute__((always_inline)) void
y_ars8(uint64_t blk, uint64_t stream, const __m256i *rk, __m256i w[8])
{
    const __m256i two = _mm256_set_epi64x(0, 2, 0, 2);
    __m256i ctr = _mm256_set_epi64x((long long)stream, (long long)(blk + 1), (long long)stream,
                                    (long long)blk);
    for (int q = 0; q < 8; q++) {
        w[q] = _mm256_xor_si256(ctr, rk[0]);
        ctr = _mm256_add_epi64(ctr, two);
    }
    for (int r = 1; r < AG__ARS_ROUNDS; r++)
        for (int q = 0; q < 8; q++)
            w[q] = _mm256_aesenc_epi128(w[q], rk[r]);
    for (int q = 0; q < 8; q++)
        w[q] = _mm256_aesenclast_epi128(w[q], rk[AG__ARS_ROUNDS]);
}

/* Constants of the stochastic loop, beside y_k (see y_sr_any and
 * y_sr_norm). */
typedef struct {
    __m256i tadd, tmax, ones, mant, impl, stepb, minnb, tinyb, lowmc;
    __m128i ush;
} y_sk;

/* The stochastic rounding of one vector by integer steps on the pattern
 * of |v| clamped to max_finite (ac; max_finite has no dropped bits, so it
 * stays), rnd the elements' random words. For |v| = 1.f * 2^e at least the
 * smallest step 2^q_sub, the step is 2^s ulps of |v| with s = max(23 - M,
 * q_sub + 23 - e) (s = q_sub + 23 - e alone when E = 0), 1 <= s <= 23, and
 * frac * 2^32 = f << (32 - s) for the s dropped bits f, so the spec's rnd
 * < floor(frac * 2^32) is (rnd >> (32 - s)) < f: exactly when f + (2^s -
 * 1 - (rnd >> (32 - s))) carries into the kept bits, r = (|v| + (lowm ^
 * u)) & ~lowm with lowm = 2^s - 1 and u = rnd >> (32 - s) <= lowm (the
 * carry runs on into the exponent where the kept fraction is full). Both
 * shifts are by t = 32 - s = min(e + 9 - q_sub, 32 - s_min), from the
 * exponent field. Below the smallest step (s >= 24: t <= 8) the result is
 * 0 or the step, up iff rnd < floor(sig * 2^t) for the significand sig
 * (24 bits), that is iff (rnd >> t) = u < sig: one compare, for 1 <= t
 * (u < 2^31, so the signed compare is the unsigned one). Zero: t < 0,
 * where both variable shifts give 0, so r = 0, and sig = 0 (the implicit
 * bit is min(ac, 2^23)), so the below-the-step result is 0 too. Nonzero
 * |v| below 2^(q_sub - 8) (t <= 0, float subnormals among them) are the
 * caller's (y_sr_tiny). Every value is below 2^31: the signed min is the
 * unsigned one. */
AG_K_INLINE __m256i y_sr_any(__m256i ac, __m256i rnd, const y_sk *s)
{
    const __m256i t =
        _mm256_min_epi32(_mm256_add_epi32(_mm256_srli_epi32(ac, 23), s->tadd), s->tmax);
    const __m256i lowm = _mm256_srlv_epi32(s->ones, t);
    const __m256i u = _mm256_srlv_epi32(rnd, t);
    const __m256i r =
        _mm256_andnot_si256(lowm, _mm256_add_epi32(ac, _mm256_xor_si256(u, lowm)));
    const __m256i sig =
        _mm256_or_si256(_mm256_and_si256(ac, s->mant), _mm256_min_epi32(ac, s->impl));
    const __m256i rs = _mm256_and_si256(_mm256_cmpgt_epi32(sig, u), s->stepb);
    return _mm256_blendv_epi8(r, rs, _mm256_cmpgt_epi32(s->stepb, ac));
}

/* y_sr_any where every lane's |v| is 0 or at least the smallest step
 * (y_sr_step_ok): no lane below the step to select. */
AG_K_INLINE __m256i y_sr_var(__m256i ac, __m256i rnd, const y_sk *s)
{
    const __m256i t =
        _mm256_min_epi32(_mm256_add_epi32(_mm256_srli_epi32(ac, 23), s->tadd), s->tmax);
    const __m256i lowm = _mm256_srlv_epi32(s->ones, t);
    return _mm256_andnot_si256(
        lowm, _mm256_add_epi32(ac, _mm256_xor_si256(_mm256_srlv_epi32(rnd, t), lowm)));
}

/* 1 when every lane of ac is 0 or at least the smallest step. */
AG_K_INLINE int y_sr_step_ok(__m256i ac, const y_sk *s)
{
    return _mm256_testz_si256(_mm256_cmpgt_epi32(s->stepb, ac), ac);
}

/* y_sr_any where every lane's |v| is 0 or at least 2^emin (y_sr_norm_ok):
 * there s = 23 - M, so lowm and the shift are constants. */
AG_K_INLINE __m256i y_sr_norm(__m256i ac, __m256i rnd, const y_sk *s)
{
    const __m256i u = _mm256_srl_epi32(rnd, s->ush);
    return _mm256_andnot_si256(s->lowmc, _mm256_add_epi32(ac, _mm256_xor_si256(u, s->lowmc)));
}

/* 1 when every lane of ac is 0 or at least 2^emin. */
AG_K_INLINE int y_sr_norm_ok(__m256i ac, const y_sk *s)
{
    return _mm256_testz_si256(_mm256_cmpgt_epi32(s->minnb, ac), ac);
}

/* 1 when some lane of ac is nonzero and below 2^(q_sub - 8) (y_sr_any
 * does not cover it). */
AG_K_INLINE int y_sr_tiny(__m256i ac, const y_sk *s)
{
    return !_mm256_testz_si256(_mm256_cmpgt_epi32(s->tinyb, ac), ac);
}

/* The class of a format for y_sr_steps, from the binades between its
 * smallest step and its largest value (span), for data spread over the
 * format's range: each check costs two operations and a branch, which
 * pays where it nearly always goes the same way. At most 9 (E <= 2 for
 * the usual M, and E = 0), values below the step or in the subnormal
 * range are common: 0, y_sr_any for every vector, branch-free. 10 to 12
 * (E3M4): a few per cent of the values are subnormal, a fraction of a per
 * cent below the step: 1. More (E >= 4): 2. (Measured on Zen 4 with
 * --kernel avx2 at 2^24 elements: a check that goes either way a fifth
 * of the time, as the normal check of E3M4 or the below-the-step check
 * of E0M7 to E2M5, made those calls 1.5 to 2 times slower than these
 * classes; in cache the difference was smaller and the other way.) */
AG_K_INLINE int y_sr_class(const ag__kparams *p)
{
    const int span = p->emax - p->q_sub;
    return span <= 9 ? 0 : (p->fixed || span <= 12 ? 1 : 2);
}

/* One step of y_sr_steps: elements i .. i + 63 rounded with the words w
 * (y_ars8), each vector by the cheapest rounding that covers its lanes. */
AG_K_INLINE void y_sr_round8(float *y, const float *x, size_t i, const __m256i w[8],
                             const y_k *k, const y_sk *s, const ag__kparams *p,
                             const int use_inv, const int hasinf, const int cls)
{
    for (int q = 0; q < 8; q++) {
        const size_t iq = i + 8 * (size_t)q;
        const __m256 xv = _mm256_loadu_ps(x + iq);
        const __m256i a = y_absq(xv, k, use_inv);
        const __m256i ac = _mm256_min_epi32(a, k->maxb);
        __m256i r;
        if (cls == 2 && y_sr_norm_ok(ac, s)) {
            r = y_sr_norm(ac, w[q], s);
        } else if (cls >= 1 && y_sr_step_ok(ac, s)) {
            r = y_sr_var(ac, w[q], s);
        } else if (!y_sr_tiny(ac, s)) {
            r = y_sr_any(ac, w[q], s);
        } else {
            uint32_t rb[8];
            _mm256_storeu_si256((__m256i *)(void *)rb, w[q]);
            k_round_sr_satq(y + iq, x + iq, rb, 8, p, use_inv, (int)p->fixed);
            continue;
        }
        _mm256_storeu_ps(y + iq, y_out_q(r, a, xv, k, hasinf, use_inv));
    }
}

/* Elements [i0, n) of the default stochastic quantize from i0 with g0 + i0
 * a multiple of 4, 64 a step (sixteen ARS blocks); returns the end of the
 * whole steps. Each vector takes the cheapest rounding that covers its
 * lanes, as far as the class cls of the format looks (y_sr_class): cls 2
 * y_sr_norm where every lane is 0 or normal; cls >= 1 y_sr_var where none
 * is below the smallest step; else y_sr_any; a vector with a tiny lane
 * (y_sr_tiny) the body's float-sum loop k_round_sr_satq with the same
 * words. */
Y_VAES static inline __attribute__((always_inline)) size_t
y_sr_steps(float *y, const float *x, size_t i0, size_t n, uint64_t g0, const ag__kparams *p,
           const int use_inv, const int hasinf, const int cls)
{
    y_k k;
    y_k_init(&k, p, use_inv);
    y_sk s;
    const int smin = p->fixed ? 0 : (int)p->ne_sh; /* the smallest s: 23 - M */
    s.tadd = _mm256_set1_epi32(-118 - p->q_sub);
    s.tmax = _mm256_set1_epi32(32 - smin);
    s.ones = _mm256_set1_epi32(-1);
    s.mant = _mm256_set1_epi32(0x7fffff);
    s.impl = _mm256_set1_epi32(0x800000);
    s.stepb = _mm256_set1_epi32((int)((uint32_t)(p->q_sub + 127) << 23));
    s.minnb = _mm256_set1_epi32((int)p->ne_minnorm);
    s.tinyb = _mm256_set1_epi32((int)((uint32_t)(p->q_sub - 8 + 127) << 23));
    s.lowmc = _mm256_set1_epi32((int)((1u << p->ne_sh) - 1u));
    s.ush = _mm_cvtsi32_si128(32 - (int)p->ne_sh);
    uint32_t wk[AG__ARS_ROUNDS + 1][4];
    ag__ars_keys(wk, p->seed);
    __m256i rk[AG__ARS_ROUNDS + 1];
    for (int r = 0; r <= AG__ARS_ROUNDS; r++)
        rk[r] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)wk[r]));
    size_t i = i0;
    uint64_t blk = (g0 + i0) >> 2;
    if (i + 64 > n)
        return i;
    /* Software-pipelined: the words of the next step are computed before
     * this step is rounded, so that the AES unit's latency overlaps the
     * rounding instead of adding to it (two buffers in turn). */
    __m256i w[2][8];
    unsigned cur = 0;
    y_ars8(blk, p->stream, rk, w[0]);
    for (; i + 64 <= n; i += 64, blk += 16, cur ^= 1u) {
        if (i + 128 <= n)
            y_ars8(blk + 16, p->stream, rk, w[cur ^ 1u]);
        y_sr_round8(y, x, i, w[cur], &k, &s, p, use_inv, hasinf, cls);
    }
    return i;
}

/* y_sr_steps with its constant arguments: one loop each (a function of its
 * own: the VAES target stays out of the callers). */
Y_VAES static size_t y_sr_run(float *y, const float *x, size_t i0, size_t n, uint64_t g0,
                              const ag__kparams *p, int use_inv, int hasinf, int cls)
{
#define Y_SR(I, H)                                                            \
    (cls == 2   ? y_sr_steps(y, x, i0, n, g0, p, I, H, 2)                     \
     : cls == 1 ? y_sr_steps(y, x, i0, n, g0, p, I, H, 1)                     \
                : y_sr_steps(y, x, i0, n, g0, p, I, H, 0))
    if (use_inv)
        return hasinf ? Y_SR(1, 1) : Y_SR(1, 0);
    return hasinf ? Y_SR(0, 1) : Y_SR(0, 0);
#undef Y_SR
}

/* ---- dispatch ----------------------------------------------------------------------- */

/* The default quantize (k_round_run's satq): float output, no stats,
 * overflow and inf by sign bit, saturating to max_finite, C finite up to
 * max_finite, M = 0 only with normals. */
AG_K_INLINE int y_satq(const ag__kparams *p)
{
    return !p->count && p->sym && p->ovf_val[0] == p->ne_maxb &&
           (p->mbits >= 1 || !p->fixed) && p->ne_cfin;
}

static void y_quantize(float *y, const float *x, size_t n, uint64_t g0, const ag__kparams *p,
                       ag__kstats *st)
{
    size_t i = 0;
    const int hi = p->inf_val[0] != p->ne_maxb; /* v = +-inf gives +-inf */
    if (p->mode == AG_ROUND_NEAREST_EVEN && p->nefast && y_satq(p)) {
        const int par = p->mbits == 0, inv = p->use_inv;
#define Y_NE(I, P) (hi ? y_ne_q_run(y, x, n, p, I, P, 1) : y_ne_q_run(y, x, n, p, I, P, 0))
        if (y_xdom(p)) /* (never par) */
            i = Y_NE(Y_X, 0);
        else if (inv)
            i = par ? Y_NE(Y_MUL, 1) : Y_NE(Y_MUL, 0);
        else
            i = par ? Y_NE(Y_DIV, 1) : Y_NE(Y_DIV, 0);
#undef Y_NE
    } else if (p->mode == AG_ROUND_STOCHASTIC && p->sr_fast && y_satq(p) && ag__cpu_vaes()) {
        /* the first whole step starts at a stream index that is a
         * multiple of 4 */
        const size_t h = (size_t)((4u - (g0 & 3u)) & 3u);
        if (h < n) {
            if (h)
                k_quantize(y, x, h, g0, p, st);
            i = y_sr_run(y, x, h, n, g0, p, p->use_inv, hi, y_sr_class(p));
        }
    }
    if (i < n)
        k_quantize(y + i, x + i, n - i, g0 + i, p, st);
}

/* Nearest-even encodes without stats (M >= 1, C finite: the sum's code);
 * the rest in the body. */
AG_K_INLINE void y_encode(void *c, const float *x, size_t n, uint64_t g0, const ag__kparams *p,
                          ag__kstats *st, const int wide)
{
    const size_t esz = wide ? 2 : 1;
    size_t h = 0, i = 0;
    if (p->mode == AG_ROUND_NEAREST_EVEN && p->nefast && p->sym && !p->count && p->mbits >= 1 &&
        p->ne_cfin) {
        /* large outputs: non-temporal stores from a 32-byte boundary on */
        const uintptr_t addr = (uintptr_t)c;
        const int stream = p->stream_out && (addr & (esz - 1u)) == 0;
        if (stream)
            h = ((32u - (addr & 31u)) & 31u) / esz;
        if (h < n) {
            const int sat = p->ovf_code[0] == p->max_code;
            const int hi = p->inf_code[0] != p->ovf_code[0];
            const int qm = y_xdom(p) ? Y_X : (p->use_inv ? Y_MUL : Y_DIV);
            void *o = (char *)c + h * esz;
            const float *xh = x + h;
            const size_t m = n - h;
#define Y_E(I, S, H, T) y_ne_enc_run(o, xh, m, p, wide, I, S, H, T)
#define Y_E2(I, T)                                                            \
    (sat ? (hi ? Y_E(I, 1, 1, T) : Y_E(I, 1, 0, T)) : (hi ? Y_E(I, 0, 1, T) : Y_E(I, 0, 0, T)))
            if (qm == Y_X)
                i = h + (stream ? Y_E2(Y_X, 1) : Y_E2(Y_X, 0));
            else if (qm == Y_MUL)
                i = h + (stream ? Y_E2(Y_MUL, 1) : Y_E2(Y_MUL, 0));
            else
                i = h + (stream ? Y_E2(Y_DIV, 1) : Y_E2(Y_DIV, 0));
#undef Y_E2
#undef Y_E
            if (h) {
                if (wide)
                    k_encode_u16((uint16_t *)c, x, h, g0, p, st);
                else
                    k_encode_u8((uint8_t *)c, x, h, g0, p, st);
            }
        } else {
            h = 0;
        }
    }
    if (i < n) {
        if (wide)
            k_encode_u16((uint16_t *)c + i, x + i, n - i, g0 + i, p, st);
        else
            k_encode_u8((uint8_t *)c + i, x + i, n - i, g0 + i, p, st);
    }
}

static void y_encode_u8(uint8_t *c, const float *x, size_t n, uint64_t g0, const ag__kparams *p,
                        ag__kstats *st)
{
    y_encode(c, x, n, g0, p, st, 0);
}

static void y_encode_u16(uint16_t *c, const float *x, size_t n, uint64_t g0,
                         const ag__kparams *p, ag__kstats *st)
{
    y_encode(c, x, n, g0, p, st, 1);
}

const ag__kernel_ops ag__kernels_avx2 = {
    y_quantize, y_encode_u8, y_encode_u16, k_decode_u8,
    k_decode_u16, k_backward, k_scale_mul, k_max_u16,
};

#if defined(__clang__)
#pragma clang attribute pop
#endif
#else
typedef int ag__kernels_avx2_unused; /* no x86: nothing to build */
#endif
