/* SPDX-License-Identifier: MIT */
/*
 * ag_kernels_portable.c — the kernel body for the baseline ISA of the build
 * (SSE2 on x86-64), auto-vectorized by GCC. See ag_kernels_body.h.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3", "fp-contract=off", "no-trapping-math")
#endif

#define AG_KTABLE ag__kernels_portable
#include "ag_kernels_body.h"
