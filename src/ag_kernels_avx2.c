/* SPDX-License-Identifier: MIT */
/*
 * ag_kernels_avx2.c — the kernel body compiled for AVX2 (picked at run time
 * by ag__kernel_table when the CPU has it; a portable build still uses it),
 * with Philox for stochastic rounding written by hand (x2_philox_vec): GCC's
 * own vectorization of k_philox_fill shuffles across lanes at every round.
 * FMA is not enabled, so no product is ever fused: bit-exact with scalar.
 */
#include "ag_kernels.h"

#if AG__HAVE_X86_KERNELS
#if !defined(__clang__)
#pragma GCC optimize("O3", "fp-contract=off", "no-trapping-math")
#pragma GCC target("avx2")
#else
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#endif

#include <immintrin.h>

/* Philox4x32-10 of blocks blk0 .. blk0 + nblk - 1 (counter (block,
 * stream), key seed), sixteen blocks a step in two interleaved groups of
 * eight lanes (one group alone waits on the multiply latency), written as
 * k_philox_fill does: out[4 j + w] is word w of block blk0 + j. The 32x32
 * -> 64 products: vpmuludq on the even lanes and on the odd lanes shifted
 * down, the halves blended back. Returns the blocks filled (a multiple of
 * 16); k_philox_fill does the rest. */
static size_t x2_philox_vec(uint32_t *restrict out, uint64_t blk0, size_t nblk,
                            uint64_t seed, uint64_t stream)
{
    const __m256i m0 = _mm256_set1_epi32((int)AG__PHILOX_M0);
    const __m256i m1 = _mm256_set1_epi32((int)AG__PHILOX_M1);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i top = _mm256_set1_epi32((int)0x80000000u);
    uint32_t kk[20];
    ag__philox_keys(kk, seed);
    size_t j = 0;
    for (; j + 16 <= nblk; j += 16) {
        __m256i c0[2], c1[2], c2[2], c3[2];
        for (int q = 0; q < 2; q++) {
            const uint64_t b = blk0 + j + 8u * (uint64_t)q;
            const __m256i lo = _mm256_set1_epi32((int)(uint32_t)b);
            c0[q] = _mm256_add_epi32(lo, lane);
            /* carry into the high word where the low word wrapped: c0 <
             * lo unsigned, as a signed compare with the top bits flipped */
            const __m256i wrap = _mm256_cmpgt_epi32(_mm256_xor_si256(lo, top),
                                                    _mm256_xor_si256(c0[q], top));
            c1[q] = _mm256_sub_epi32(_mm256_set1_epi32((int)(uint32_t)(b >> 32)), wrap);
            c2[q] = _mm256_set1_epi32((int)(uint32_t)stream);
            c3[q] = _mm256_set1_epi32((int)(uint32_t)(stream >> 32));
        }
        for (int round = 0; round < 10; round++) {
            const __m256i k0 = _mm256_set1_epi32((int)kk[2 * round]);
            const __m256i k1 = _mm256_set1_epi32((int)kk[2 * round + 1]);
            for (int q = 0; q < 2; q++) {
                const __m256i pe0 = _mm256_mul_epu32(c0[q], m0);
                const __m256i po0 = _mm256_mul_epu32(_mm256_srli_epi64(c0[q], 32), m0);
                const __m256i pe1 = _mm256_mul_epu32(c2[q], m1);
                const __m256i po1 = _mm256_mul_epu32(_mm256_srli_epi64(c2[q], 32), m1);
                /* hi: the even products' high words shifted down, the odd
                 * ones' already in place; lo the other way round */
                const __m256i hi0 = _mm256_blend_epi32(_mm256_srli_epi64(pe0, 32), po0, 0xaa);
                const __m256i hi1 = _mm256_blend_epi32(_mm256_srli_epi64(pe1, 32), po1, 0xaa);
                const __m256i lo0 = _mm256_blend_epi32(pe0, _mm256_slli_epi64(po0, 32), 0xaa);
                const __m256i lo1 = _mm256_blend_epi32(pe1, _mm256_slli_epi64(po1, 32), 0xaa);
                c0[q] = _mm256_xor_si256(_mm256_xor_si256(hi1, c1[q]), k0);
                c2[q] = _mm256_xor_si256(_mm256_xor_si256(hi0, c3[q]), k1);
                c1[q] = lo1;
                c3[q] = lo0;
            }
        }
        /* 4 x 8 transpose: blocks in order, four words each */
        for (int q = 0; q < 2; q++) {
            const __m256i t0 = _mm256_unpacklo_epi32(c0[q], c1[q]);
            const __m256i t1 = _mm256_unpackhi_epi32(c0[q], c1[q]);
            const __m256i t2 = _mm256_unpacklo_epi32(c2[q], c3[q]);
            const __m256i t3 = _mm256_unpackhi_epi32(c2[q], c3[q]);
            const __m256i u0 = _mm256_unpacklo_epi64(t0, t2); /* blocks 0, 4 */
            const __m256i u1 = _mm256_unpackhi_epi64(t0, t2); /* 1, 5 */
            const __m256i u2 = _mm256_unpacklo_epi64(t1, t3); /* 2, 6 */
            const __m256i u3 = _mm256_unpackhi_epi64(t1, t3); /* 3, 7 */
            uint32_t *o = out + 4u * (j + 8u * (size_t)q);
            _mm256_storeu_si256((void *)o, _mm256_permute2x128_si256(u0, u1, 0x20));
            _mm256_storeu_si256((void *)(o + 8), _mm256_permute2x128_si256(u2, u3, 0x20));
            _mm256_storeu_si256((void *)(o + 16), _mm256_permute2x128_si256(u0, u1, 0x31));
            _mm256_storeu_si256((void *)(o + 24), _mm256_permute2x128_si256(u2, u3, 0x31));
        }
    }
    return j;
}
#define AG_K_PHILOX_VEC x2_philox_vec

#define AG_KTABLE ag__kernels_avx2
#include "ag_kernels_body.h"

#if defined(__clang__)
#pragma clang attribute pop
#endif
#else
typedef int ag__kernels_avx2_unused; /* no x86: nothing to build */
#endif
