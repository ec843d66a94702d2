/* SPDX-License-Identifier: MIT */
/*
 * ag_rng.c — ARS-7, the counter-based generator of stochastic rounding
 * (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2,
 * 3", SC'11; ars4x32 of their Random123 library with its default 7
 * rounds): the AES round function applied to a 128-bit counter, with round
 * keys that step by a Weyl constant instead of the AES key schedule.
 *
 * Three implementations of the same function: VAES on 256-bit vectors (two
 * blocks a register, x86 CPUs with VAES and AVX2), AES-NI on 128-bit ones
 * (checked at run time) and portable C (a table of SubBytes and MixColumns
 * in one, as the AES specification suggests for 32-bit words). The tests
 * check both against an independent reference and the published
 * known-answer vectors. Every call derives its round keys from the seed;
 * the only state is two CPUID bits, read once at load time.
 */
#include "ag_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define AG_RNG_X86 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define AG_RNG_X86 0
#endif

#if AG_RNG_X86
/* CPUID bits, read once when the library is loaded and never written
 * again: AES-NI (leaf 1, ECX bit 25) and VAES (leaf 7, ECX bit 9). A
 * cpuid per call would be slow (it traps to the hypervisor on virtual
 * machines), and not every compiler's __builtin_cpu_supports knows VAES. */
static int ag_rng_have_ni, ag_rng_have_vaes;

__attribute__((constructor)) static void ag_rng_cpu(void)
{
    unsigned a, b, c, d;
    __builtin_cpu_init(); /* constructors may run before libgcc's */
    if (__get_cpuid(1, &a, &b, &c, &d))
        ag_rng_have_ni = (int)((c >> 25) & 1u);
    /* VAES counts only with AVX2 usable (the OS saves the ymm state):
     * its 256-bit form is a VEX instruction */
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d))
        ag_rng_have_vaes = (int)((c >> 9) & 1u) && __builtin_cpu_supports("avx2");
}
#endif

int ag__cpu_vaes(void)
{
#if AG_RNG_X86
    return ag_rng_have_vaes;
#else
    return 0;
#endif
}

/* T[a]: column (2 s, s, s, 3 s) for s = SubBytes(a), row 0 in the low byte
 * (GF(2^8) products modulo x^8 + x^4 + x^3 + x + 1). A state byte in row
 * r adds T[a] rotated left by 8 r bits to its column. Byte 1 is s itself. */
static const uint32_t ag_rng_te[256] = {
    0xa56363c6u, 0x847c7cf8u, 0x997777eeu, 0x8d7b7bf6u, 0x0df2f2ffu, 0xbd6b6bd6u,
    0xb16f6fdeu, 0x54c5c591u, 0x50303060u, 0x03010102u, 0xa96767ceu, 0x7d2b2b56u,
    0x19fefee7u, 0x62d7d7b5u, 0xe6abab4du, 0x9a7676ecu, 0x45caca8fu, 0x9d82821fu,
    0x40c9c989u, 0x877d7dfau, 0x15fafaefu, 0xeb5959b2u, 0xc947478eu, 0x0bf0f0fbu,
    0xecadad41u, 0x67d4d4b3u, 0xfda2a25fu, 0xeaafaf45u, 0xbf9c9c23u, 0xf7a4a453u,
    0x967272e4u, 0x5bc0c09bu, 0xc2b7b775u, 0x1cfdfde1u, 0xae93933du, 0x6a26264cu,
    0x5a36366cu, 0x413f3f7eu, 0x02f7f7f5u, 0x4fcccc83u, 0x5c343468u, 0xf4a5a551u,
    0x34e5e5d1u, 0x08f1f1f9u, 0x937171e2u, 0x73d8d8abu, 0x53313162u, 0x3f15152au,
    0x0c040408u, 0x52c7c795u, 0x65232346u, 0x5ec3c39du, 0x28181830u, 0xa1969637u,
    0x0f05050au, 0xb59a9a2fu, 0x0907070eu, 0x36121224u, 0x9b80801bu, 0x3de2e2dfu,
    0x26ebebcdu, 0x6927274eu, 0xcdb2b27fu, 0x9f7575eau, 0x1b090912u, 0x9e83831du,
    0x742c2c58u, 0x2e1a1a34u, 0x2d1b1b36u, 0xb26e6edcu, 0xee5a5ab4u, 0xfba0a05bu,
    0xf65252a4u, 0x4d3b3b76u, 0x61d6d6b7u, 0xceb3b37du, 0x7b292952u, 0x3ee3e3ddu,
    0x712f2f5eu, 0x97848413u, 0xf55353a6u, 0x68d1d1b9u, 0x00000000u, 0x2cededc1u,
    0x60202040u, 0x1ffcfce3u, 0xc8b1b179u, 0xed5b5bb6u, 0xbe6a6ad4u, 0x46cbcb8du,
    0xd9bebe67u, 0x4b393972u, 0xde4a4a94u, 0xd44c4c98u, 0xe85858b0u, 0x4acfcf85u,
    0x6bd0d0bbu, 0x2aefefc5u, 0xe5aaaa4fu, 0x16fbfbedu, 0xc5434386u, 0xd74d4d9au,
    0x55333366u, 0x94858511u, 0xcf45458au, 0x10f9f9e9u, 0x06020204u, 0x817f7ffeu,
    0xf05050a0u, 0x443c3c78u, 0xba9f9f25u, 0xe3a8a84bu, 0xf35151a2u, 0xfea3a35du,
    0xc0404080u, 0x8a8f8f05u, 0xad92923fu, 0xbc9d9d21u, 0x48383870u, 0x04f5f5f1u,
    0xdfbcbc63u, 0xc1b6b677u, 0x75dadaafu, 0x63212142u, 0x30101020u, 0x1affffe5u,
    0x0ef3f3fdu, 0x6dd2d2bfu, 0x4ccdcd81u, 0x140c0c18u, 0x35131326u, 0x2fececc3u,
    0xe15f5fbeu, 0xa2979735u, 0xcc444488u, 0x3917172eu, 0x57c4c493u, 0xf2a7a755u,
    0x827e7efcu, 0x473d3d7au, 0xac6464c8u, 0xe75d5dbau, 0x2b191932u, 0x957373e6u,
    0xa06060c0u, 0x98818119u, 0xd14f4f9eu, 0x7fdcdca3u, 0x66222244u, 0x7e2a2a54u,
    0xab90903bu, 0x8388880bu, 0xca46468cu, 0x29eeeec7u, 0xd3b8b86bu, 0x3c141428u,
    0x79dedea7u, 0xe25e5ebcu, 0x1d0b0b16u, 0x76dbdbadu, 0x3be0e0dbu, 0x56323264u,
    0x4e3a3a74u, 0x1e0a0a14u, 0xdb494992u, 0x0a06060cu, 0x6c242448u, 0xe45c5cb8u,
    0x5dc2c29fu, 0x6ed3d3bdu, 0xefacac43u, 0xa66262c4u, 0xa8919139u, 0xa4959531u,
    0x37e4e4d3u, 0x8b7979f2u, 0x32e7e7d5u, 0x43c8c88bu, 0x5937376eu, 0xb76d6ddau,
    0x8c8d8d01u, 0x64d5d5b1u, 0xd24e4e9cu, 0xe0a9a949u, 0xb46c6cd8u, 0xfa5656acu,
    0x07f4f4f3u, 0x25eaeacfu, 0xaf6565cau, 0x8e7a7af4u, 0xe9aeae47u, 0x18080810u,
    0xd5baba6fu, 0x887878f0u, 0x6f25254au, 0x722e2e5cu, 0x241c1c38u, 0xf1a6a657u,
    0xc7b4b473u, 0x51c6c697u, 0x23e8e8cbu, 0x7cdddda1u, 0x9c7474e8u, 0x211f1f3eu,
    0xdd4b4b96u, 0xdcbdbd61u, 0x868b8b0du, 0x858a8a0fu, 0x907070e0u, 0x423e3e7cu,
    0xc4b5b571u, 0xaa6666ccu, 0xd8484890u, 0x05030306u, 0x01f6f6f7u, 0x120e0e1cu,
    0xa36161c2u, 0x5f35356au, 0xf95757aeu, 0xd0b9b969u, 0x91868617u, 0x58c1c199u,
    0x271d1d3au, 0xb99e9e27u, 0x38e1e1d9u, 0x13f8f8ebu, 0xb398982bu, 0x33111122u,
    0xbb6969d2u, 0x70d9d9a9u, 0x898e8e07u, 0xa7949433u, 0xb69b9b2du, 0x221e1e3cu,
    0x92878715u, 0x20e9e9c9u, 0x49cece87u, 0xff5555aau, 0x78282850u, 0x7adfdfa5u,
    0x8f8c8c03u, 0xf8a1a159u, 0x80898909u, 0x170d0d1au, 0xdabfbf65u, 0x31e6e6d7u,
    0xc6424284u, 0xb86868d0u, 0xc3414182u, 0xb0999929u, 0x772d2d5au, 0x110f0f1eu,
    0xcbb0b07bu, 0xfc5454a8u, 0xd6bbbb6du, 0x3a16162cu
};

static inline uint32_t rotl32(uint32_t v, unsigned r)
{
    return (v << r) | (v >> (32u - r));
}

void ag__ars_keys(uint32_t rk[AG__ARS_ROUNDS + 1][4], uint64_t seed)
{
    for (unsigned r = 0; r <= AG__ARS_ROUNDS; r++) {
        const uint64_t lo = seed + (uint64_t)r * AG__ARS_W0;
        const uint64_t hi = (uint64_t)r * AG__ARS_W1;
        rk[r][0] = (uint32_t)lo;
        rk[r][1] = (uint32_t)(lo >> 32);
        rk[r][2] = (uint32_t)hi;
        rk[r][3] = (uint32_t)(hi >> 32);
    }
}

/* One block in portable C with the round keys of ag__ars_keys. */
static void ars_block_soft(uint32_t out[4], const uint32_t ctr[4],
                           uint32_t rk[AG__ARS_ROUNDS + 1][4])
{
    uint32_t s[4], t[4];
    for (int c = 0; c < 4; c++)
        s[c] = ctr[c] ^ rk[0][c];
    for (unsigned r = 1; r <= AG__ARS_ROUNDS; r++) {
        /* ShiftRows: row j of column c comes from column c + j */
        for (int c = 0; c < 4; c++) {
            const uint32_t a0 = s[c] & 0xffu, a1 = (s[(c + 1) & 3] >> 8) & 0xffu,
                           a2 = (s[(c + 2) & 3] >> 16) & 0xffu, a3 = s[(c + 3) & 3] >> 24;
            if (r < AG__ARS_ROUNDS) /* SubBytes and MixColumns (AESENC) */
                t[c] = ag_rng_te[a0] ^ rotl32(ag_rng_te[a1], 8) ^ rotl32(ag_rng_te[a2], 16) ^
                       rotl32(ag_rng_te[a3], 24);
            else /* the last round: SubBytes only (AESENCLAST) */
                t[c] = ((ag_rng_te[a0] >> 8) & 0xffu) | (ag_rng_te[a1] & 0xff00u) |
                       ((ag_rng_te[a2] << 8) & 0xff0000u) | ((ag_rng_te[a3] << 16) & 0xff000000u);
        }
        for (int c = 0; c < 4; c++)
            s[c] = t[c] ^ rk[r][c];
    }
    memcpy(out, s, sizeof s);
}

void ag__ars4x32_soft(uint32_t out[4], const uint32_t ctr[4], uint64_t seed)
{
    uint32_t rk[AG__ARS_ROUNDS + 1][4];
    ag__ars_keys(rk, seed);
    ars_block_soft(out, ctr, rk);
}

#if AG_RNG_X86
#define AG_RNG_NI __attribute__((target("aes,sse2")))

/* The round keys as vectors (the 64-bit halves of key + r * W). */
AG_RNG_NI static inline void ars_keys_ni(__m128i rk[AG__ARS_ROUNDS + 1], uint64_t seed)
{
    uint32_t w[AG__ARS_ROUNDS + 1][4];
    ag__ars_keys(w, seed);
    for (int r = 0; r <= AG__ARS_ROUNDS; r++)
        rk[r] = _mm_loadu_si128((const __m128i *)(const void *)w[r]);
}

AG_RNG_NI static inline __m128i ars_block_ni(__m128i ctr, const __m128i *rk)
{
    __m128i v = _mm_xor_si128(ctr, rk[0]);
    for (int r = 1; r < AG__ARS_ROUNDS; r++)
        v = _mm_aesenc_si128(v, rk[r]);
    return _mm_aesenclast_si128(v, rk[AG__ARS_ROUNDS]);
}

/* One step of the block fills: eight registers of type T (one block each,
 * or two) from the counter ctr, advanced by inc after each, the rounds
 * with the keys rk, stored in order at the T pointer o. Named registers:
 * one block alone waits on the latency of the AES unit, and an array of
 * eight is kept in memory by some compilers. */
#define AG_RNG_ALL8(M, ...)                                                   \
    M(v0, __VA_ARGS__); M(v1, __VA_ARGS__); M(v2, __VA_ARGS__); M(v3, __VA_ARGS__); \
    M(v4, __VA_ARGS__); M(v5, __VA_ARGS__); M(v6, __VA_ARGS__); M(v7, __VA_ARGS__)
#define AG_RNG_START(v, XOR, ADD, inc) v = XOR(ctr, rk[0]); ctr = ADD(ctr, inc)
#define AG_RNG_APPLY(v, F) v = F(v, k)
#define AG_RNG_STEP8(T, XOR, ADD, ENC, LAST, STORE, inc, o)                   \
    do {                                                                      \
        T v0, v1, v2, v3, v4, v5, v6, v7, k;                                  \
        AG_RNG_ALL8(AG_RNG_START, XOR, ADD, inc);                             \
        for (int r = 1; r < AG__ARS_ROUNDS; r++) {                            \
            k = rk[r];                                                        \
            AG_RNG_ALL8(AG_RNG_APPLY, ENC);                                   \
        }                                                                     \
        k = rk[AG__ARS_ROUNDS];                                               \
        AG_RNG_ALL8(AG_RNG_APPLY, LAST);                                      \
        T *o_ = (o);                                                          \
        STORE(o_ + 0, v0); STORE(o_ + 1, v1); STORE(o_ + 2, v2); STORE(o_ + 3, v3); \
        STORE(o_ + 4, v4); STORE(o_ + 5, v5); STORE(o_ + 6, v6); STORE(o_ + 7, v7); \
    } while (0)

/* Blocks blk0 .. blk0 + nblk - 1, eight a step. */
AG_RNG_NI static void ars_fill_ni(uint32_t *out, uint64_t blk0, size_t nblk, uint64_t seed,
                                  uint64_t stream)
{
    __m128i rk[AG__ARS_ROUNDS + 1];
    ars_keys_ni(rk, seed);
    const __m128i one = _mm_set_epi64x(0, 1);
    __m128i ctr = _mm_set_epi64x((long long)stream, (long long)blk0);
    size_t j = 0;
    for (; j + 8 <= nblk; j += 8)
        AG_RNG_STEP8(__m128i, _mm_xor_si128, _mm_add_epi64, _mm_aesenc_si128, _mm_aesenclast_si128,
                     _mm_storeu_si128, one, (__m128i *)(void *)(out + 4 * j));
    for (; j < nblk; j++) {
        _mm_storeu_si128((__m128i *)(void *)(out + 4 * j), ars_block_ni(ctr, rk));
        ctr = _mm_add_epi64(ctr, one);
    }
}

/* The same on 256-bit vectors (VAES): each register holds blocks b and b +
 * 1 (low lane first, so a store writes them in order), eight registers
 * (sixteen blocks) a step; the rest through AES-NI. */
#define AG_RNG_VAES __attribute__((target("avx2,vaes,aes")))
AG_RNG_VAES static void ars_fill_vaes(uint32_t *out, uint64_t blk0, size_t nblk, uint64_t seed,
                                      uint64_t stream)
{
    uint32_t w[AG__ARS_ROUNDS + 1][4];
    ag__ars_keys(w, seed);
    __m256i rk[AG__ARS_ROUNDS + 1];
    for (int r = 0; r <= AG__ARS_ROUNDS; r++)
        rk[r] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)w[r]));
    const __m256i two = _mm256_set_epi64x(0, 2, 0, 2);
    __m256i ctr = _mm256_set_epi64x((long long)stream, (long long)(blk0 + 1), (long long)stream,
                                    (long long)blk0);
    size_t j = 0;
    for (; j + 16 <= nblk; j += 16)
        AG_RNG_STEP8(__m256i, _mm256_xor_si256, _mm256_add_epi64, _mm256_aesenc_epi128,
                     _mm256_aesenclast_epi128, _mm256_storeu_si256, two,
                     (__m256i *)(void *)(out + 4 * j));
    if (j < nblk)
        ars_fill_ni(out + 4 * j, blk0 + j, nblk - j, seed, stream);
}
#undef AG_RNG_STEP8
#undef AG_RNG_APPLY
#undef AG_RNG_START
#undef AG_RNG_ALL8

AG_RNG_NI static void ars4x32_ni(uint32_t out[4], const uint32_t ctr[4], uint64_t seed)
{
    __m128i rk[AG__ARS_ROUNDS + 1];
    ars_keys_ni(rk, seed);
    _mm_storeu_si128((__m128i *)(void *)out,
                     ars_block_ni(_mm_loadu_si128((const __m128i *)(const void *)ctr), rk));
}

static inline int have_ni(void)
{
    return ag_rng_have_ni;
}
#endif

void ag__ars4x32(uint32_t out[4], const uint32_t ctr[4], uint64_t seed)
{
#if AG_RNG_X86
    if (have_ni()) {
        ars4x32_ni(out, ctr, seed);
        return;
    }
#endif
    ag__ars4x32_soft(out, ctr, seed);
}

void ag__ars_fill_soft(uint32_t *out, uint64_t blk0, size_t nblk, uint64_t seed,
                       uint64_t stream)
{
    uint32_t rk[AG__ARS_ROUNDS + 1][4];
    ag__ars_keys(rk, seed);
    for (size_t j = 0; j < nblk; j++) {
        const uint64_t b = blk0 + j; /* modulo 2^64, as the vector loops */
        const uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), (uint32_t)stream,
                                 (uint32_t)(stream >> 32)};
        ars_block_soft(out + 4 * j, ctr, rk);
    }
}

int ag__ars_fill_vaes(uint32_t *out, uint64_t blk0, size_t nblk, uint64_t seed,
                      uint64_t stream)
{
#if AG_RNG_X86
    if (ag_rng_have_vaes && have_ni()) {
        ars_fill_vaes(out, blk0, nblk, seed, stream);
        return 1;
    }
#else
    (void)out;
    (void)blk0;
    (void)nblk;
    (void)seed;
    (void)stream;
#endif
    return 0;
}

void ag__ars_fill(uint32_t *out, uint64_t blk0, size_t nblk, uint64_t seed, uint64_t stream)
{
#if AG_RNG_X86
    if (nblk >= 16 && ag__ars_fill_vaes(out, blk0, nblk, seed, stream))
        return;
    if (have_ni()) {
        ars_fill_ni(out, blk0, nblk, seed, stream);
        return;
    }
#endif
    ag__ars_fill_soft(out, blk0, nblk, seed, stream);
}
