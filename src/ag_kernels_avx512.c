/* SPDX-License-Identifier: MIT */
/*
 * ag_kernels_avx512.c — the kernel body compiled for AVX-512 (F, BW, DQ,
 * VL, CD), picked at run time by ag__kernel_table when the CPU has it.
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

#define AG_KTABLE ag__kernels_avx512
#include "ag_kernels_body.h"

#if defined(__clang__)
#pragma clang attribute pop
#endif
#else
typedef int ag__kernels_avx512_unused; /* no x86: nothing to build */
#endif
