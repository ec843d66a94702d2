/* SPDX-License-Identifier: MIT */
/*
 * ag_kernels_avx2.c — the kernel body compiled for AVX2 (picked at run time
 * by ag__kernel_table when the CPU has it; a portable build still uses it).
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

#define AG_KTABLE ag__kernels_avx2
#include "ag_kernels_body.h"

#if defined(__clang__)
#pragma clang attribute pop
#endif
#else
typedef int ag__kernels_avx2_unused; /* no x86: nothing to build */
#endif
