/* SPDX-License-Identifier: MIT */
/*
 * ag_kernels_avx512.c — the kernel body compiled for AVX-512 (F, BW, DQ,
 * VL, CD), picked at run time by ag__kernel_table when the CPU has it, plus
 * hand-written loops for the hot cases:
 *  - nearest-even quantize / encode (p->nefast, p->sym); 8-bit encodes
 *    without counts take four vectors with no value beyond the range at
 *    a time without the clamp and the selects (x_ne_plain4);
 *  - stochastic quantize / encode (p->sr_fast, p->sym), with ARS-7
 *    computed in registers through VAES (where the CPU has it), sixteen
 *    vectors of four blocks (256 elements) a step, and an integer loop for
 *    quantize blocks whose values are all normal;
 *  - 8-bit decode through byte permutes where the CPU has VBMI.
 * Both round the float32 pattern itself and produce the bits and counts of
 * the scalar specification (tests/test_kernels.c checks them against it on
 * every format, mode, policy, scale and alignment). The first and last
 * vectors of a call are masked, so any n, alignment and stream offset takes
 * the same loop; large code outputs (p->stream_out: encodes) use
 * non-temporal stores.
 * The default quantize (saturating, no stats) clamps v = x / scale to
 * +-max_finite before it rounds (x_clampmax), which leaves no overflow to
 * select afterwards.
 * FMA is not enabled, so no product is ever fused: bit-exact with scalar.
 * (The one explicit FMA, v * 0 + max_finite in x_clampmax, is exact.)
 */
#include "ag_kernels.h"

#if AG__HAVE_X86_KERNELS
#if !defined(__clang__)
#pragma GCC optimize("O3", "fp-contract=off", "no-trapping-math")
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512cd,vaes,prefer-vector-width=512")
#else
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512cd,vaes"))), apply_to = function)
#endif

#define AG_K_NO_TABLE 1 /* the table is defined below */
#include "ag_kernels_body.h"

#include <float.h>
#include <immintrin.h>
#include <math.h>

/* ---- shared pieces ---------------------------------------------------------- */

/* Per-call constants of the fast loops, broadcast once. */
typedef struct {
    __m512 scale, inv, maxf;
    __m512i abs, sh_v, keep, ovfmag, maxb, minnorm;
    __m512i ovfcode, infcode, nancode, signcode;
    __m512i infpat; /* 0x7f800000 with inf, else never equal to |v| */
    __m512i ovft;   /* p->ne_ovft */
    uint32_t sh;
} x_common;

AG_K_INLINE void x_common_init(x_common *c, const ag__kparams *p)
{
    c->scale = _mm512_set1_ps(p->scale);
    c->inv = _mm512_set1_ps(p->inv_scale);
    c->maxf = _mm512_castsi512_ps(_mm512_set1_epi32((int)p->ne_maxb));
    c->abs = _mm512_set1_epi32(0x7fffffff);
    c->sh = p->ne_sh;
    c->sh_v = _mm512_set1_epi32((int)p->ne_sh);
    c->keep = _mm512_set1_epi32((int)~((1u << p->ne_sh) - 1u));
    c->ovfmag = _mm512_set1_epi32((int)p->ovf_val[0]);
    c->maxb = _mm512_set1_epi32((int)p->ne_maxb);
    c->minnorm = _mm512_set1_epi32((int)p->ne_minnorm);
    /* formats with inf give +-inf for v = +-inf; without inf, inf
     * overflows like a finite value */
    const int has_inf = p->inf_val[0] == 0x7f800000u;
    c->infpat = _mm512_set1_epi32((int)(has_inf ? 0x7f800000u : 0xffffffffu));
    c->ovfcode = _mm512_set1_epi32((int)p->ovf_code[0]);
    c->infcode = _mm512_set1_epi32((int)p->inf_code[0]);
    c->nancode = _mm512_set1_epi32((int)p->nan_code);
    c->signcode = _mm512_set1_epi32((int)p->sign_mask);
    c->ovft = _mm512_set1_epi32((int)p->ne_ovft);
}

/* Lanes [lo, hi) of a vector (lo < 16, hi > 0). */
AG_K_INLINE __mmask16 x_lanes(ptrdiff_t lo, ptrdiff_t hi)
{
    const uint32_t top = hi >= 16 ? 0xffffu : ((1u << hi) - 1u);
    const uint32_t bot = lo <= 0 ? 0u : ((1u << lo) - 1u);
    return (__mmask16)(top & ~bot);
}

AG_K_INLINE __m512 x_load(const float *x, ptrdiff_t i, __mmask16 m)
{
    __m512 v = m == 0xffff ? _mm512_loadu_ps(x + i) : _mm512_maskz_loadu_ps(m, x + i);
    __asm__("" : "+v"(v)); /* one load: GCC would load x again for each use */
    return v;
}

/* |v| bits for v = x / scale as the scalar path divides it: vdivps, or
 * x * (1/scale) where that is exact (scale a power of two: p->use_inv).
 * (A reciprocal with an FMA correction, exact by Markstein's theorem, was
 * measured slower on the machines at hand than the divider.) */
AG_K_INLINE __m512i x_quot(__m512 xv, const x_common *c, const int use_inv)
{
    const __m512 v = use_inv ? _mm512_mul_ps(xv, c->inv) : _mm512_div_ps(xv, c->scale);
    return _mm512_and_si512(_mm512_castps_si512(v), c->abs);
}

/* v = x / scale as x_quot computes it, sign and all. */
AG_K_INLINE __m512 x_div(__m512 xv, const x_common *c, const int use_inv)
{
    return use_inv ? _mm512_mul_ps(xv, c->inv) : _mm512_div_ps(xv, c->scale);
}

/* Saturating quantize without counts (x_round's sat_q) clamps v to
 * +-max_finite by magnitude before it rounds: max_finite rounds to itself
 * in every mode, and every |v| above it would round to max_finite or
 * beyond and saturate there, so the result is the same, for one vrangeps
 * (the unsigned min and max run on fewer pipes on the cores at hand).
 * sgn: keep the sign of v, else |v|. A format with inf keeps v = +-inf
 * (+inf for |v|): the bound is v * 0 + max_finite, a quiet NaN there,
 * and vrangeps returns the other operand of a quiet NaN (one FMA, exact:
 * v * 0 is +-0 for every finite v; cheaper than a class test into a mask).
 * NaN lanes (v is a quiet NaN: a quotient) come out as some finite value
 * or NaN: x_store_q puts x back there. */
AG_K_INLINE __m512 x_clampmax(__m512 v, const x_common *c, const int hasinf, const int sgn)
{
    const __m512 bound = hasinf ? _mm512_fmadd_ps(v, _mm512_setzero_ps(), c->maxf) : c->maxf;
    return sgn ? _mm512_range_ps(v, bound, 0x02)  /* min |.|, sign of v */
               : _mm512_range_ps(v, bound, 0x0a); /* min |.|, sign cleared */
}

/* Store quantize results r (|v| rounded, or v rounded with its sign but
 * for zeros) of lanes m: the sign of x set, times the scale; NaN keeps x. */
AG_K_INLINE void x_store_q(void *out, ptrdiff_t i, __mmask16 m, __m512 xv, __m512i r,
                           const x_common *c)
{
    const __m512i o = _mm512_ternarylogic_epi32(r, _mm512_castps_si512(xv),
                                                _mm512_set1_epi32((int)0x80000000u), 0xf8);
    const __mmask16 nan = _mm512_cmp_ps_mask(xv, xv, _CMP_UNORD_Q);
    const __m512 y = _mm512_mask_mul_ps(xv, (__mmask16)~nan, _mm512_castsi512_ps(o), c->scale);
    float *yo = (float *)out + i;
    if (m == 0xffff)
        _mm512_storeu_ps(yo, y);
    else
        _mm512_mask_storeu_ps(yo, m, y);
}

/* The end of one vector, the same for both modes. x: the inputs, b: the
 * bits of x (the sign of v = x / scale), a = |v| bits, r: |v| rounded
 * (float bits), before overflow: r > max_finite's bits (unsigned) exactly
 * on the lanes that overflow, +-inf and NaN included (every rounding loop
 * below guarantees it, garbage lanes too). code: the code magnitude
 * (encode kinds only). satmin: quantize that saturates to max_finite with
 * no counts: min(r, maxb) instead of a compare and a select. hasinf: the
 * format has inf (only then can v = +-inf give a result other than an
 * overflow; 0 saves a compare). Writes the lanes of m. */
AG_K_INLINE void x_finish(void *out, ptrdiff_t i, __mmask16 m, __m512 x,
                          __m512i b, __m512i a, __m512i r, __m512i code,
                          const x_common *c, const int kind, const int satmin,
                          const int count, const int stream, uint64_t cnt[3],
                          __m512i *cret, const int codeonly, const int hasinf)
{
    /* codeonly (nearest-even encodes): no r; overflow is |v| > ne_ovft
     * (none left when satmin clamped |v| to it), zero is code 0 */
    __mmask16 ovf = 0;
    if (codeonly) {
        if (!satmin)
            ovf = _mm512_cmpgt_epu32_mask(a, c->ovft);
    } else if (!satmin || kind != K_OUT_F32) {
        ovf = _mm512_cmpgt_epu32_mask(r, c->maxb);
    }
    if (count) {
        /* x is NaN exactly where v is (the same test as x_store_q's) */
        const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
        const __mmask16 xnz = _mm512_test_epi32_mask(_mm512_castps_si512(x), c->abs);
        const __mmask16 zero = _mm512_cmpeq_epi32_mask(codeonly ? code : r, _mm512_setzero_si512());
        cnt[0] += (uint32_t)__builtin_popcount((unsigned)(ovf & ~nan & m));
        cnt[1] += (uint32_t)__builtin_popcount((unsigned)(zero & xnz & m));
        cnt[2] += (uint32_t)__builtin_popcount((unsigned)(nan & m));
    }
    if (kind == K_OUT_F32) {
        /* v = +-inf (x inf, or x / scale past FLT_MAX) gives +-inf in a
         * format with inf: r is already inf there */
        const __mmask16 infm = hasinf ? _mm512_cmpeq_epi32_mask(a, c->infpat) : 0;
        if (satmin && !hasinf)
            r = _mm512_min_epu32(r, c->maxb);
        else if (satmin)
            r = _mm512_mask_min_epu32(r, (__mmask16)~infm, r, c->maxb);
        else
            r = _mm512_mask_mov_epi32(r, ovf & (__mmask16)~infm, c->ovfmag);
        x_store_q(out, i, m, x, r, c); /* b is the bits of x */
    } else {
        code = _mm512_mask_mov_epi32(code, ovf, c->ovfcode);
        if (hasinf)
            code = _mm512_mask_mov_epi32(code, _mm512_cmpeq_epi32_mask(a, c->infpat), c->infcode);
        code = _mm512_mask_or_epi32(code, _mm512_movepi32_mask(b), code, c->signcode);
        code = _mm512_mask_mov_epi32(
            code, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), c->nancode); /* NaN: as above */
        if (cret) { /* the caller packs four vectors into one store */
            *cret = code;
            return;
        }
        /* narrow in registers, one plain (or non-temporal) store for full
         * vectors; the masked narrowing store is slow on some cores */
        if (kind == K_OUT_U8) {
            void *d = (uint8_t *)out + i;
            if (stream && m == 0xffff)
                _mm_stream_si128(d, _mm512_cvtepi32_epi8(code));
            else if (m == 0xffff)
                _mm_storeu_si128(d, _mm512_cvtepi32_epi8(code));
            else
                _mm512_mask_cvtepi32_storeu_epi8((uint8_t *)out + i, m, code);
        } else {
            void *d = (uint16_t *)out + i;
            if (stream && m == 0xffff)
                _mm256_stream_si256(d, _mm512_cvtepi32_epi16(code));
            else if (m == 0xffff)
                _mm256_storeu_si256(d, _mm512_cvtepi32_epi16(code));
            else
                _mm512_mask_cvtepi32_storeu_epi16((uint16_t *)out + i, m, code);
        }
    }
}

/* ---- nearest-even ------------------------------------------------------------ */

/* One vector of nearest-even rounding (p->nefast, p->sym), lanes m of
 * x[i .. i + 16).
 * Float sum (M >= 1): with C = 2^(e + 23 - M) for |v| = 1.f * 2^e the
 * float sum |v| + C rounds |v| to M fraction bits (ties to even = even
 * code) and subtracting C back is exact; below 2^emin, C = 2^(emin - M +
 * 23) (magic) rounds to the subnormal step, so C = max(2^(e + 23 - M),
 * magic) serves both. Past the range C is garbage (inf, or a tiny negative
 * number), which leaves r = NaN bits or |v|: still above maxb.
 * Integer (intround: M = 0, or C could overflow): the normal range adds
 * half an ulp minus one plus the kept LSB (the exponent's parity for M =
 * 0, that of the code for an odd bias) and clears the dropped bits, as
 * k_round_ne_fast does; nonzero |v| below 2^emin (rare: a branch) take
 * the magic sum. intround 2: M = 0 with C finite, where the default
 * quantize takes the float sum with a parity bit in C (see below) and
 * every other call the integer rounding. */
AG_K_INLINE void x_ne_vec(void *out, const float *x, ptrdiff_t i, __mmask16 m,
                          const x_common *c, const __m512i kexp,
                          const __m512i magic, const __m512i off,
                          const int kind, const int use_inv, const int intround,
                          const int satmin, const int count, const int stream,
                          uint64_t cnt[3], __m512i *cret, const int hasinf)
{
    const __m512 xv = x_load(x, i, m);
    if (kind == K_OUT_F32 && satmin && !count && intround != 1) {
        /* the default quantize: v clamped first (x_clampmax), then the
         * float sum with C signed as v, so that no abs is needed: the sum
         * rounds symmetrically, and only zero results lose the sign of
         * v, which x_store_q sets again. (Past max_finite C would be
         * garbage; the clamp leaves only +-inf there, and for them C is
         * finite and r = v.)
         * intround 2 (M = 0, odd bias: the code's parity is that of the
         * float exponent): the sum's tie goes to the even multiple of the
         * step 2^e, that is up to 2^(e + 1), which is right where the code
         * of 2^e is odd (exponent bit 23 set); elsewhere C gets its last
         * bit set, an odd multiple of the step, and the tie goes down.
         * Below 2^emin C = magic, whose tie at half the step goes to 0,
         * the even code. */
        const __m512 v = x_clampmax(x_div(xv, c, use_inv), c, hasinf, 1);
        const __m512i vb = _mm512_castps_si512(v);
        __m512i ce = _mm512_add_epi32(_mm512_and_si512(vb, _mm512_set1_epi32((int)0xff800000u)), kexp);
        if (intround == 2) /* ce | (~(bit 23 of v) & 1): bit 23 rotated to bit 0 */
            ce = _mm512_ternarylogic_epi32(ce, _mm512_rol_epi32(vb, 9), _mm512_set1_epi32(1), 0xf2);
        const __m512 cs = _mm512_range_ps(_mm512_castsi512_ps(ce), _mm512_castsi512_ps(magic),
                                          0x03); /* max |.|, sign of the first */
        const __m512 r = _mm512_sub_ps(_mm512_add_ps(v, cs), cs);
        x_store_q(out, i, m, xv, _mm512_castps_si512(r), c);
        return;
    }
    const __m512i a = x_quot(xv, c, use_inv);
    const __m512i b = _mm512_castps_si512(xv); /* sign of v = sign of x */
    const __m512 af = _mm512_castsi512_ps(a);
    __m512i r = a, code = a;
    const int codeonly = kind != K_OUT_F32 && !intround;
    if (codeonly) {
        /* encodes: the code straight from the sum, without r. The bits
         * s - C are k, the rounded |v| in steps of ulp(C) (k in [2^M,
         * 2^(M+1)] on the normal range), and (C - magic) >> (23 - M) is
         * (e - emin) << M, so code = k + ((e - emin) << M); below 2^emin
         * C = magic and the code is k. A saturating encode clamps |v| to
         * ne_ovft first, so no overflow is left to select. */
        const __m512i ac = satmin ? _mm512_min_epu32(a, c->ovft) : a;
        const __m512i cc = _mm512_max_epu32(
            _mm512_add_epi32(_mm512_and_si512(ac, _mm512_set1_epi32(0x7f800000)), kexp), magic);
        const __m512i s = _mm512_castps_si512(
            _mm512_add_ps(_mm512_castsi512_ps(ac), _mm512_castsi512_ps(cc)));
        code = _mm512_add_epi32(_mm512_sub_epi32(s, cc),
                                _mm512_srlv_epi32(_mm512_sub_epi32(cc, magic), c->sh_v));
    } else if (!intround) {
        const __m512i cc = _mm512_max_epu32(
            _mm512_add_epi32(_mm512_and_si512(a, _mm512_set1_epi32(0x7f800000)), kexp), magic);
        const __m512 s = _mm512_add_ps(af, _mm512_castsi512_ps(cc));
        r = _mm512_castps_si512(_mm512_sub_ps(s, _mm512_castsi512_ps(cc)));
    } else {
        const __m512i half1 = _mm512_set1_epi32((int)((1u << (c->sh - 1u)) - 1u));
        const __mmask16 odd = _mm512_test_epi32_mask(a, _mm512_sllv_epi32(_mm512_set1_epi32(1), c->sh_v));
        const __m512i h = _mm512_add_epi32(a, half1);
        r = _mm512_and_si512(_mm512_mask_add_epi32(h, odd, h, _mm512_set1_epi32(1)), c->keep);
        if (kind != K_OUT_F32) /* normal results; zeros give code 0 */
            code = _mm512_maskz_sub_epi32(_mm512_test_epi32_mask(r, r),
                                          _mm512_srlv_epi32(r, c->sh_v), off);
        /* nonzero |v| below 2^emin (zeros round right above, and data
         * full of zeros must not make this branch unpredictable) */
        const __mmask16 sub = _mm512_cmplt_epu32_mask(_mm512_sub_epi32(a, _mm512_set1_epi32(1)),
                                                      _mm512_sub_epi32(c->minnorm, _mm512_set1_epi32(1)));
        if (sub) {
            const __m512 s = _mm512_add_ps(af, _mm512_castsi512_ps(magic));
            const __m512i rs = _mm512_castps_si512(_mm512_sub_ps(s, _mm512_castsi512_ps(magic)));
            r = _mm512_mask_mov_epi32(r, sub, rs);
            if (kind != K_OUT_F32)
                code = _mm512_mask_sub_epi32(code, sub, _mm512_castps_si512(s), magic);
        }
    }
    x_finish(out, i, m, xv, b, a, r, code, c, kind, intround && kind != K_OUT_F32 ? 0 : satmin,
             count, stream, cnt, cret, codeonly, hasinf);
}

/* The code magnitude of x_ne_vec's codeonly sum for |v| bits a at most
 * min(ne_ovft, FLT_MAX's bits): no clamp, overflow, inf or NaN to select
 * (x_ne_plain4). */
AG_K_INLINE __m512i x_code_plain(__m512i a, const x_common *c, const __m512i kexp,
                                 const __m512i magic)
{
    const __m512i cc = _mm512_max_epu32(
        _mm512_add_epi32(_mm512_and_si512(a, _mm512_set1_epi32(0x7f800000)), kexp), magic);
    const __m512i s = _mm512_castps_si512(
        _mm512_add_ps(_mm512_castsi512_ps(a), _mm512_castsi512_ps(cc)));
    return _mm512_add_epi32(_mm512_sub_epi32(s, cc),
                            _mm512_srlv_epi32(_mm512_sub_epi32(cc, magic), c->sh_v));
}

/* The 8-bit codes of x[i .. i + 64) into *b8 (in the packs' order, as the
 * caller's four-vector step has them) when no |v| among them is above
 * lim = min(ne_ovft, FLT_MAX's bits), one test for the four vectors;
 * else 0 and the caller's general path. The sign bits: packed as the
 * codes are where the sign is 0x80 (the signed packs take a negative x,
 * NaN aside, to -128), else set a vector at a time. */
AG_K_INLINE int x_ne_plain4(__m512i *b8, const float *x, ptrdiff_t i, const x_common *c,
                            const __m512i kexp, const __m512i magic, const __m512i lim,
                            const int use_inv, const int s8)
{
    __m512 xv[4];
    __m512i a[4];
    for (int k = 0; k < 4; k++) {
        xv[k] = x_load(x, i + 16 * k, (__mmask16)0xffff);
        a[k] = x_quot(xv[k], c, use_inv);
    }
    const __m512i mx = _mm512_max_epu32(_mm512_max_epu32(a[0], a[1]), _mm512_max_epu32(a[2], a[3]));
    if (_mm512_cmpgt_epu32_mask(mx, lim))
        return 0;
    __m512i q[4];
    for (int k = 0; k < 4; k++) {
        q[k] = x_code_plain(a[k], c, kexp, magic);
        if (!s8)
            q[k] = _mm512_mask_or_epi32(q[k], _mm512_movepi32_mask(_mm512_castps_si512(xv[k])),
                                        q[k], c->signcode);
    }
    __m512i b = _mm512_packus_epi16(_mm512_packus_epi32(q[0], q[1]), _mm512_packus_epi32(q[2], q[3]));
    if (s8) {
        const __m512i sg = _mm512_packs_epi16(
            _mm512_packs_epi32(_mm512_castps_si512(xv[0]), _mm512_castps_si512(xv[1])),
            _mm512_packs_epi32(_mm512_castps_si512(xv[2]), _mm512_castps_si512(xv[3])));
        b = _mm512_ternarylogic_epi32(b, sg, _mm512_set1_epi8((char)0x80), 0xf8); /* b | (sg & 0x80) */
    }
    *b8 = b;
    return 1;
}

AG_K_INLINE void x_ne_run(void *out, const float *x, size_t n,
                          const ag__kparams *p, const int kind,
                          const int use_inv, const int intround,
                          const int satmin, const int count, const int hasinf,
                          uint64_t cnt[3])
{
    x_common c;
    x_common_init(&c, p);
    const __m512i kexp = _mm512_set1_epi32((int)(p->ne_sh << 23));
    const __m512i magic = _mm512_set1_epi32((int)k_f2u(p->ne_magic));
    const __m512i off = _mm512_set1_epi32((int)((uint32_t)(127 - p->bias) << p->mbits));
    /* start so that the output of the full vectors is aligned to its
     * size (64 bytes of floats, 16 or 32 of codes; the first vector is
     * masked): required by the non-temporal stores of large code outputs
     * (encodes; float outputs are stored plainly, see ag_quant.c) */
    const uintptr_t addr = (uintptr_t)out;
    const uintptr_t esz = kind == K_OUT_F32 ? 4u : (kind == K_OUT_U8 ? 1u : 2u);
    const int stream = kind != K_OUT_F32 && p->stream_out && (addr & (esz - 1u)) == 0;
    ptrdiff_t i = 0;
    if ((addr & (esz - 1u)) == 0)
        i = -(ptrdiff_t)(((addr & (16u * esz - 1u)) / esz) & 15u);
    const ptrdiff_t nn = (ptrdiff_t)n;
    /* 8-bit encodes without counts: four vectors within the range at a
     * time take x_ne_plain4 */
    const int plain = kind == K_OUT_U8 && !intround && !count, s8 = p->sign_mask == 0x80u;
    const __m512i lim = _mm512_min_epu32(c.ovft, _mm512_set1_epi32(0x7f7fffff));
    /* masked first vector, unmasked body (two vectors a step), masked
     * last vector */
#define X_NE_VEC(I, M, STREAM)                                                \
    x_ne_vec(out, x, I, M, &c, kexp, magic, off, kind, use_inv, intround,     \
             satmin, count, STREAM, cnt, NULL, hasinf)
#define X_NE(STREAM)                                                          \
    do {                                                                      \
        if (i < 0 || i + 16 > nn) {                                           \
            X_NE_VEC(i, x_lanes(-i, nn - i), STREAM);                         \
            i += 16;                                                          \
        }                                                                     \
        for (; i + 32 <= nn; i += 32) {                                       \
            X_NE_VEC(i, (__mmask16)0xffff, STREAM);                           \
            X_NE_VEC(i + 16, (__mmask16)0xffff, STREAM);                      \
        }                                                                     \
        for (; i < nn; i += 16)                                               \
            X_NE_VEC(i, x_lanes(-i, nn - i), STREAM);                         \
    } while (0)
    /* 8-bit codes: single vectors up to a 64-byte boundary, then four
     * vectors a step packed into one 64-byte store (two dword -> word
     * packs, one word -> byte pack, one dword permute back into order:
     * cheaper than four narrowing moves) */
#define X_NE8(STREAM)                                                         \
    do {                                                                      \
        const __m512i ord = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2,      \
                                             13, 9, 5, 1, 12, 8, 4, 0);       \
        while (i < nn && (i < 0 || ((addr + (uintptr_t)i) & 63u) != 0)) {     \
            X_NE_VEC(i, i < 0 || i + 16 > nn ? x_lanes(-i, nn - i)            \
                                             : (__mmask16)0xffff, STREAM);    \
            i += 16;                                                          \
        }                                                                     \
        for (; i + 64 <= nn; i += 64) {                                       \
            __m512i b8;                                                       \
            if (plain && x_ne_plain4(&b8, x, i, &c, kexp, magic, lim, use_inv, s8)) { \
                b8 = _mm512_permutexvar_epi32(ord, b8);                       \
            } else {                                                          \
                __m512i q[4];                                                 \
                for (int k = 0; k < 4; k++)                                   \
                    x_ne_vec(out, x, i + 16 * k, (__mmask16)0xffff, &c, kexp, \
                             magic, off, kind, use_inv, intround, satmin,     \
                             count, STREAM, cnt, &q[k], hasinf);              \
                const __m512i w01 = _mm512_packus_epi32(q[0], q[1]);          \
                const __m512i w23 = _mm512_packus_epi32(q[2], q[3]);          \
                b8 = _mm512_permutexvar_epi32(ord, _mm512_packus_epi16(w01, w23)); \
            }                                                                 \
            if (STREAM)                                                       \
                _mm512_stream_si512((void *)((uint8_t *)out + i), b8);        \
            else                                                              \
                _mm512_storeu_si512((uint8_t *)out + i, b8);                  \
        }                                                                     \
        for (; i < nn; i += 16)                                               \
            X_NE_VEC(i, x_lanes(-i, nn - i), STREAM);                         \
    } while (0)
    if (kind == K_OUT_U8) {
        if (stream) {
            X_NE8(1);
            _mm_sfence();
        } else {
            X_NE8(0);
        }
    } else if (stream) {
        X_NE(1);
        _mm_sfence();
    } else {
        X_NE(0);
    }
#undef X_NE8
#undef X_NE
#undef X_NE_VEC
}

/* ---- stochastic ---------------------------------------------------------------- */

/* The round keys of ARS-7 (ag_rng.c), each in the four 128-bit lanes. */
AG_K_INLINE void x_ars_keys(__m512i rk[AG__ARS_ROUNDS + 1], uint64_t seed)
{
    uint32_t w[AG__ARS_ROUNDS + 1][4];
    ag__ars_keys(w, seed);
    for (int r = 0; r <= AG__ARS_ROUNDS; r++)
        rk[r] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)w[r]));
}

/* ARS-7 of blocks blk .. blk + 4 Q - 1 (counter (block, stream), block
 * modulo 2^64), returned as the random words of stream elements 4 blk ..
 * 4 blk + 16 Q - 1 in order: w[q] holds blocks blk + 4 q .. + 3, one per
 * 128-bit lane, which are elements 4 blk + 16 q .. + 15. VAES (checked at
 * run time by x_round): one instruction a round for four blocks; Q
 * independent vectors in flight hide its latency. */
AG_K_INLINE void x_ars(uint64_t blk, uint64_t stream, const __m512i *rk, __m512i *w,
                       const int Q)
{
    const __m512i four = _mm512_set_epi64(0, 4, 0, 4, 0, 4, 0, 4);
    __m512i ctr = _mm512_set_epi64((long long)stream, (long long)(blk + 3), (long long)stream,
                                   (long long)(blk + 2), (long long)stream, (long long)(blk + 1),
                                   (long long)stream, (long long)blk);
    for (int q = 0; q < Q; q++) {
        w[q] = _mm512_xor_si512(ctr, rk[0]);
        ctr = _mm512_add_epi64(ctr, four);
    }
    for (int r = 1; r < AG__ARS_ROUNDS; r++)
        for (int q = 0; q < Q; q++)
            w[q] = _mm512_aesenc_epi128(w[q], rk[r]);
    for (int q = 0; q < Q; q++)
        w[q] = _mm512_aesenclast_epi128(w[q], rk[AG__ARS_ROUNDS]);
}

/* Constants of the stochastic loop (lowm, ush: the normal-range loop). */
typedef struct {
    __m512i kexp, magic, off, scl, stp, lowm;
    __m128i ush;
} x_srconst;

/* One vector of stochastic rounding with random words rnd. The spec: up
 * iff rnd < floor(frac * 2^32), frac = the part of |v| below the step
 * over the step. With C = max(2^(e + 23 - M), magic) as for nearest-even
 * (the step is ulp(C) = C * 2^-23 in both ranges), the float sum
 * |v| + C rounded toward zero (embedded rounding) keeps the multiple of
 * the step below |v|: t = that sum - C exactly, the rest |v| - t is exact,
 * and rest * 2^32 / step (a power of two: 2^55 / C) is exact, so its
 * truncation is floor(frac * 2^32) itself. r = t, plus the step where
 * rnd is below it. Past the range C is garbage and r lands above maxb
 * (or is NaN, or negative: above it as unsigned); branch-free, so that
 * data mixing the two ranges costs no mispredicted branches. */
AG_K_INLINE void x_sr_vec(void *out, const float *x, ptrdiff_t i, __mmask16 m,
                          __m512i rnd, const x_common *c, const x_srconst *k,
                          const int kind, const int use_inv, const int satmin,
                          const int count, uint64_t cnt[3], const int hasinf,
                          const int fixc)
{
    const __m512 xv = x_load(x, i, m);
    /* the default quantize (sat_q) rounds |v| clamped to max_finite
     * (x_clampmax): C is finite then (+inf gives r = +inf), and a vrangeps
     * takes max(C, magic) */
    const int pre = kind == K_OUT_F32 && satmin && !count;
    const __m512i a = pre ? _mm512_castps_si512(x_clampmax(x_div(xv, c, use_inv), c, hasinf, 0))
                          : x_quot(xv, c, use_inv);
    const __m512i b = _mm512_castps_si512(xv); /* sign of v = sign of x */
    const __m512 af = _mm512_castsi512_ps(a);
    /* fixc: a format without normals (E = 0), one step everywhere: C is
     * the constant magic, and so are 2^55 / C and the step */
    const __m512i ce = _mm512_add_epi32(_mm512_and_si512(a, _mm512_set1_epi32(0x7f800000)), k->kexp);
    const __m512i cc = fixc ? k->magic
                       : pre ? _mm512_castps_si512(_mm512_range_ps(_mm512_castsi512_ps(ce),
                                                                   _mm512_castsi512_ps(k->magic),
                                                                   0x0b)) /* max |.|, sign cleared */
                             : _mm512_max_epu32(ce, k->magic);
    const __m512 cf = _mm512_castsi512_ps(cc);
    const __m512 s = _mm512_add_round_ps(af, cf, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m512 t = _mm512_sub_ps(s, cf);
    const __m512 rest = _mm512_sub_ps(af, t);
    /* 2^32 / step = 2^55 / C; step = C * 2^-23 (bits: exponent arithmetic) */
    const __m512 inv_step = _mm512_castsi512_ps(_mm512_sub_epi32(k->scl, cc));
    const __m512i thr = _mm512_cvttps_epu32(_mm512_mul_ps(rest, inv_step));
    const __mmask16 up = _mm512_cmplt_epu32_mask(rnd, thr);
    const __m512 step = _mm512_castsi512_ps(_mm512_sub_epi32(cc, k->stp));
    const __m512i r = _mm512_castps_si512(_mm512_mask_add_ps(t, up, t, step));
    __m512i code = r;
    if (kind != K_OUT_F32) {
        /* normal results: (r >> sh) - off; below 2^emin: the steps
         * counted by s - C (C = magic there), plus up */
        const __mmask16 sub = _mm512_cmplt_epu32_mask(r, c->minnorm);
        const __m512i ks = _mm512_sub_epi32(_mm512_castps_si512(s), cc);
        code = _mm512_mask_mov_epi32(_mm512_sub_epi32(_mm512_srlv_epi32(r, c->sh_v), k->off), sub,
                                     _mm512_mask_add_epi32(ks, up, ks, _mm512_set1_epi32(1)));
    }
    if (pre)
        x_store_q(out, i, m, xv, r, c);
    else
        x_finish(out, i, m, xv, b, a, r, code, c, kind, satmin, count, 0, cnt, NULL, 0, hasinf);
}

/* One vector of stochastic quantize whose nonzero |v| are all at least
 * 2^emin (x_sr_normal_block said so), by integer steps on the pattern.
 * There the step is 2^sh ulps of |v| (sh = 23 - M) and frac * 2^32 =
 * f << (32 - sh) for the sh dropped bits f, so the spec's rnd <
 * floor(frac * 2^32) is (rnd >> (32 - sh)) < f, which is exactly when
 * f + (2^sh - 1 - (rnd >> (32 - sh))) carries into the kept bits: r =
 * (|v| + lowm - (rnd >> (32 - sh))) & keep, the carry running on into
 * the exponent where the fraction is full. Zero stays zero; inf stays
 * inf; overflow and NaN land above maxb (unsigned) as x_finish needs. */
AG_K_INLINE void x_sr_vec_int(float *out, const float *x, ptrdiff_t i,
                              __m512i rnd, const x_common *c,
                              const x_srconst *k, const int use_inv,
                              const int satmin, const int count,
                              uint64_t cnt[3], const int hasinf)
{
    const __m512 xv = x_load(x, i, (__mmask16)0xffff);
    /* sat_q: |v| clamped first (x_clampmax); max_finite has no dropped
     * bits, so it stays, and +inf stays */
    const int pre = satmin && !count;
    const __m512i a = pre ? _mm512_castps_si512(x_clampmax(x_div(xv, c, use_inv), c, hasinf, 0))
                          : x_quot(xv, c, use_inv);
    const __m512i u = _mm512_srl_epi32(rnd, k->ush);
    const __m512i r = _mm512_and_si512(_mm512_sub_epi32(_mm512_add_epi32(a, k->lowm), u), c->keep);
    if (pre)
        x_store_q(out, i, (__mmask16)0xffff, xv, r, c);
    else
        x_finish(out, i, (__mmask16)0xffff, xv, _mm512_castps_si512(xv), a, r, r, c, K_OUT_F32,
                 satmin, count, 0, cnt, NULL, 0, hasinf);
}

/* 1 when every nonzero x[0 .. 256) has |x| bits >= tb, for xthr2 = (tb <<
 * 1) - 1: the x bits shifted left by one (which drops the sign) minus one
 * are compared, so zeros wrap to the top and pass. x_sr_run picks tb so
 * that every nonzero |v| = |x / scale| is then at least 2^emin. */
AG_K_INLINE int x_sr_normal_block(const float *x, const __m512i xthr2)
{
    const __m512i ones = _mm512_set1_epi32(-1);
    __m512i mn = ones;
    for (int q = 0; q < 16; q++) {
        const __m512i xb = _mm512_loadu_si512(x + 16 * q);
        mn = _mm512_min_epu32(mn, _mm512_add_epi32(_mm512_add_epi32(xb, xb), ones));
    }
    return _mm512_cmplt_epu32_mask(mn, xthr2) == 0;
}

AG_K_INLINE void x_sr_run(void *out, const float *x, size_t n, uint64_t g0,
                          const ag__kparams *p, const int kind,
                          const int use_inv, const int satmin, const int count,
                          const int hasinf, const int fixc, uint64_t cnt[3])
{
    x_common c;
    x_common_init(&c, p);
    x_srconst k;
    k.kexp = _mm512_set1_epi32((int)(p->ne_sh << 23));
    k.magic = _mm512_set1_epi32((int)k_f2u(p->ne_magic));
    k.off = _mm512_set1_epi32((int)((uint32_t)(127 - p->bias) << p->mbits));
    k.scl = _mm512_set1_epi32((int)((uint32_t)(2 * 127 + 55) << 23)); /* 2^55 / C */
    k.stp = _mm512_set1_epi32((int)(23u << 23));                      /* C * 2^-23 */
    k.lowm = _mm512_set1_epi32((int)((1u << p->ne_sh) - 1u));
    k.ush = _mm_cvtsi32_si128((int)(32u - p->ne_sh));
    /* blocks of quantize whose nonzero |x| are all at least xthr take the
     * integer loop: xthr = 2^emin * scale (exact in double), rounded to a
     * float and moved one ulp up, so that |x| >= xthr gives |x / scale| >=
     * 2^emin however the two roundings went (inf when it overflows: no
     * block then qualifies). Formats without normals (E = 0) never try. */
    const int try_int = kind == K_OUT_F32 && p->ne_minnorm != 0xffffffffu;
    __m512i xthr2 = _mm512_setzero_si512();
    if (try_int) {
        const double t = ldexp(1.0, p->emin) * (double)p->scale;
        const uint32_t tb = t > (double)FLT_MAX ? 0x7f800000u : k_f2u((float)t) + 1u;
        xthr2 = _mm512_set1_epi32((int)((tb << 1) - 1u));
    }
    /* the round keys (seed + round * Weyl constants), once per call */
    __m512i rk[AG__ARS_ROUNDS + 1];
    x_ars_keys(rk, p->seed);
    /* element i is stream element g0 + i; vectors start where the stream
     * index is a multiple of 4 (lanes before element 0 are masked). Its
     * block, modulo 2^64: a start before element 0 of the stream wraps,
     * and the masked lanes' words are never used. */
    ptrdiff_t i = -(ptrdiff_t)(g0 & 3u);
    uint64_t blk = g0 >> 2;
    const ptrdiff_t nn = (ptrdiff_t)n;
    /* groups of 64 elements with masks (the first, which may start
     * before element 0, and the last ones); the body takes 256 elements
     * (sixteen ARS vectors in flight) a step, unmasked. (Plain stores
     * even for large outputs: non-temporal ones made this loop 30 %
     * slower at 2^24.) */
#define X_SR_GROUP()                                                          \
    do {                                                                      \
        __m512i w[4];                                                         \
        x_ars(blk, p->stream, rk, w, 4);                                      \
        for (int q = 0; q < 4 && i + 16 * q < nn; q++) {                      \
            const ptrdiff_t iq = i + 16 * q;                                  \
            x_sr_vec(out, x, iq, x_lanes(-iq, nn - iq), w[q], &c, &k, kind,   \
                     use_inv, satmin, count, cnt, hasinf, fixc);              \
        }                                                                     \
        i += 64;                                                              \
        blk += 16;                                                            \
    } while (0)
    if (i < 0)
        X_SR_GROUP();
    for (; i + 256 <= nn; i += 256, blk += 64) {
        __m512i w[16];
        const int nrm = try_int && x_sr_normal_block(x + i, xthr2);
        x_ars(blk, p->stream, rk, w, 16);
        if (nrm) {
            for (int q = 0; q < 16; q++)
                x_sr_vec_int((float *)out, x, i + 16 * q, w[q], &c, &k, use_inv, satmin, count,
                             cnt, hasinf);
        } else {
            for (int q = 0; q < 16; q++)
                x_sr_vec(out, x, i + 16 * q, (__mmask16)0xffff, w[q], &c, &k, kind, use_inv,
                         satmin, count, cnt, hasinf, fixc);
        }
    }
    while (i < nn)
        X_SR_GROUP();
#undef X_SR_GROUP
}

/* ---- decode ------------------------------------------------------------------- */

/* Interleave four byte planes (64 entries each, in the lane order of
 * x_decode_u8_vbmi) into 64 floats at y. (The target lists of these two
 * repeat the file's, vaes included: clang inlines the file's helpers only
 * into functions whose targets have every feature they were built for.) */
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512cd,vaes,avx512vbmi")))
static inline void x_dec_store(float *y, const __m512i pk[4])
{
    const __m512i a0 = _mm512_unpacklo_epi8(pk[0], pk[1]);
    const __m512i a1 = _mm512_unpackhi_epi8(pk[0], pk[1]);
    const __m512i b0 = _mm512_unpacklo_epi8(pk[2], pk[3]);
    const __m512i b1 = _mm512_unpackhi_epi8(pk[2], pk[3]);
    _mm512_storeu_si512(y, _mm512_unpacklo_epi16(a0, b0));
    _mm512_storeu_si512(y + 16, _mm512_unpackhi_epi16(a0, b0));
    _mm512_storeu_si512(y + 32, _mm512_unpacklo_epi16(a1, b1));
    _mm512_storeu_si512(y + 48, _mm512_unpackhi_epi16(a1, b1));
}

/* 8-bit codes through the decode table (p->dlut: value * scale), 64 codes
 * a step, with byte permutes instead of a gather (AVX-512 VBMI, checked at
 * run time). Plane k is byte k of every table entry; vpermi2b looks 64
 * codes up in 128 bytes, so a plane takes two lookups (codes below and
 * from 128) and a blend on bit 7 - or, where the upper half of the table
 * is the lower half with the float sign set (signed formats whose code
 * sign bit is bit 7), one lookup per plane and the sign copied from the
 * code. The byte and word unpacks that interleave the four planes into
 * floats work within 128-bit lanes, so the codes are first permuted
 * (vpermb) to come out in order: output vector m, lane L, float j holds
 * code 16 m + 4 L + j. The same bits as the table read (NaN payloads
 * included). */
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512cd,vaes,avx512vbmi")))
static void x_decode_u8_vbmi(float *y, const uint8_t *c, size_t n, const float *dlut)
{
    /* the planes, 16 table entries at a time: a shift and a truncating
     * narrow per plane; and whether entry c + 128 is entry c with the
     * sign bit set, for every c < 128 */
    _Alignas(64) uint8_t pl[4][256];
    const __m512i sgn = _mm512_set1_epi32((int)0x80000000u);
    __mmask16 asym = 0;
    for (int q = 0; q < 16; q++) {
        const __m512i v = _mm512_loadu_si512(dlut + 16 * q);
        for (int k = 0; k < 4; k++)
            _mm_store_si128((void *)(pl[k] + 16 * q),
                            _mm512_cvtepi32_epi8(_mm512_srli_epi32(v, 8 * k)));
        if (q >= 8)
            asym |= _mm512_cmpneq_epi32_mask(
                v, _mm512_xor_si512(_mm512_loadu_si512(dlut + 16 * (q - 8)), sgn));
    }
    __m512i t[4][4];
    for (int k = 0; k < 4; k++)
        for (int h = 0; h < 4; h++)
            t[k][h] = _mm512_load_si512(pl[k] + 64 * h);
    uint8_t ordb[64];
    for (int i = 0; i < 64; i++) /* position 16 L + 4 m + j <- code 16 m + 4 L + j */
        ordb[i] = (uint8_t)(16 * ((i >> 2) & 3) + 4 * (i >> 4) + (i & 3));
    const __m512i ord = _mm512_loadu_si512(ordb);
    size_t i = 0;
    if (!asym) {
        const __m512i top = _mm512_set1_epi8((char)0x80);
        for (; i + 64 <= n; i += 64) {
            const __m512i cv = _mm512_permutexvar_epi8(ord, _mm512_loadu_si512(c + i));
            __m512i pk[4];
            for (int k = 0; k < 3; k++) /* vpermi2b reads 7 index bits */
                pk[k] = _mm512_permutex2var_epi8(t[k][0], cv, t[k][1]);
            pk[3] = _mm512_ternarylogic_epi32(_mm512_permutex2var_epi8(t[3][0], cv, t[3][1]), cv,
                                              top, 0xf8); /* | (code & 0x80) */
            x_dec_store(y + i, pk);
        }
    } else {
        for (; i + 64 <= n; i += 64) {
            const __m512i cv = _mm512_permutexvar_epi8(ord, _mm512_loadu_si512(c + i));
            const __mmask64 hi = _mm512_movepi8_mask(cv);
            __m512i pk[4];
            for (int k = 0; k < 4; k++)
                pk[k] = _mm512_mask_blend_epi8(hi, _mm512_permutex2var_epi8(t[k][0], cv, t[k][1]),
                                               _mm512_permutex2var_epi8(t[k][2], cv, t[k][3]));
            x_dec_store(y + i, pk);
        }
    }
    k_decode_lut(y + i, c + i, n - i, dlut, 0);
}

/* Short calls keep the gather: the planes cost about as much as 64
 * gathered codes. */
static void x_decode_u8(float *y, const uint8_t *c, size_t n, const ag__kparams *p)
{
    if (p->dlut_ok && n >= 256 && __builtin_cpu_supports("avx512vbmi"))
        x_decode_u8_vbmi(y, c, n, p->dlut);
    else
        k_decode_u8(y, c, n, p);
}

/* ---- dispatch ------------------------------------------------------------------- */

/* 1: handled here (the fast loops cover this call), else 0. */
AG_K_INLINE int x_round(void *out, const float *x, size_t n, uint64_t g0,
                        const ag__kparams *p, ag__kstats *st, const int kind)
{
    uint64_t cnt[3] = {0, 0, 0};
    const int cn = p->count;
    /* saturating to max_finite, uncounted: a min instead of a compare and
     * a select (quantize: on r; nearest-even encodes: on |v|) */
    const int sat_q = kind == K_OUT_F32 && !cn && p->ovf_val[0] == p->ne_maxb;
    const int sat_e = kind != K_OUT_F32 && !cn && p->ovf_code[0] == p->max_code;
    const int ne = p->mode == AG_ROUND_NEAREST_EVEN && p->nefast;
    /* the stochastic loops draw ARS-7 through VAES; without it the
     * kernel body runs them (ag__ars_fill: AES-NI or portable C) */
    const int sr = p->mode == AG_ROUND_STOCHASTIC && p->sr_fast && ag__cpu_vaes();
    if (!p->sym || !(ne || sr))
        return 0;
    const int inv = p->use_inv;
    const int hi = p->inf_val[0] == 0x7f800000u; /* the format has inf */
    /* each combination of the constant arguments is one specialised loop:
     * the saturating, uncounted calls (the default policy) with and
     * without inf handling; every other policy takes the counting loop
     * (its counts are dropped when the caller passed no stats), which
     * handles inf whatever the format: fewer loops to compile */
#define X_NE_CALL(Q, R)                                                       \
    (sat_q || sat_e ? (hi ? x_ne_run(out, x, n, p, kind, Q, R, 1, 0, 1, cnt)  \
                          : x_ne_run(out, x, n, p, kind, Q, R, 1, 0, 0, cnt)) \
                    : x_ne_run(out, x, n, p, kind, Q, R, 0, 1, 1, cnt))
#define X_SR_CALL(Q, F)                                                       \
    (sat_q ? (hi ? x_sr_run(out, x, n, g0, p, kind, Q, 1, 0, 1, F, cnt)       \
                 : x_sr_run(out, x, n, g0, p, kind, Q, 1, 0, 0, F, cnt))      \
           : x_sr_run(out, x, n, g0, p, kind, Q, 0, 1, 1, F, cnt))
    if (ne) {
        /* the float-sum rounding needs M >= 1 (code parity = float
         * parity) and C = 2^(e + 23 - M) finite up to max_finite; else
         * the integer rounding */
        const int ir = p->mbits == 0 || !p->ne_cfin;
        /* the default quantize of M = 0 formats with C finite: the float
         * sum with a parity bit in C (x_ne_vec, intround 2) */
        const int par = sat_q && p->mbits == 0 && !p->fixed && p->ne_cfin;
        if (par && inv)
            hi ? x_ne_run(out, x, n, p, kind, 1, 2, 1, 0, 1, cnt)
               : x_ne_run(out, x, n, p, kind, 1, 2, 1, 0, 0, cnt);
        else if (par)
            hi ? x_ne_run(out, x, n, p, kind, 0, 2, 1, 0, 1, cnt)
               : x_ne_run(out, x, n, p, kind, 0, 2, 1, 0, 0, cnt);
        else if (inv) {
            if (ir) X_NE_CALL(1, 1); else X_NE_CALL(1, 0);
        } else {
            if (ir) X_NE_CALL(0, 1); else X_NE_CALL(0, 0);
        }
    } else {
        const int fx = (int)p->fixed; /* E = 0 */
        if (inv) {
            if (fx) X_SR_CALL(1, 1); else X_SR_CALL(1, 0);
        } else {
            if (fx) X_SR_CALL(0, 1); else X_SR_CALL(0, 0);
        }
    }
#undef X_NE_CALL
#undef X_SR_CALL
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
    x_quantize, x_encode_u8, x_encode_u16, x_decode_u8,
    k_decode_u16, k_backward, k_scale_mul, k_max_u16,
};

#if defined(__clang__)
#pragma clang attribute pop
#endif
#else
typedef int ag__kernels_avx512_unused; /* no x86: nothing to build */
#endif
