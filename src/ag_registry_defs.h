/* SPDX-License-Identifier: MIT */
/*
 * ag_registry_defs.h — the registry's definitions, one line per name:
 *     AG_FMT(name, E, M, bias, signed, specials, no_zero, source)
 * tools/gen_registry.c turns this list into the static const table
 * (build/ag_registry.inc) with every derived field and decode table computed
 * by ag_format_init(). Each entry cites where its definition comes from.
 */
#define AG__ALTGRAD "AltGrad research bench (altgrad.quantization.formats)"
#define AG__OCP_FP8 "OCP 8-bit Floating Point Specification (OFP8) rev 1.0, 2023-06-20"
#define AG__OCP_MX "OCP Microscaling Formats (MX) Specification v1.0, 2023-09"
#define AG__SPLIT "altgrad 16-bit split: bias 2^(E-1)-1 (0 for E <= 1), no specials"

/* The AltGrad family (research formats; DESIGN.md is the contract). */
AG_FMT("E0M7", 0, 7, 0, 1, AG_SPECIALS_NONE, 0, AG__ALTGRAD ": fixed point, 1/128 steps")
AG_FMT("E1M6", 1, 6, 0, 1, AG_SPECIALS_NONE, 0, AG__ALTGRAD)
AG_FMT("E2M5", 2, 5, 1, 1, AG_SPECIALS_NONE, 0, AG__ALTGRAD)
AG_FMT("E3M4", 3, 4, 1, 1, AG_SPECIALS_NONE, 0, AG__ALTGRAD)
AG_FMT("E4M3", 4, 3, 7, 1, AG_SPECIALS_FN, 0, AG__ALTGRAD "; = " AG__OCP_FP8 " E4M3")
AG_FMT("E5M2", 5, 2, 15, 1, AG_SPECIALS_IEEE, 0, AG__ALTGRAD "; = " AG__OCP_FP8 " E5M2")
AG_FMT("E6M1", 6, 1, 31, 1, AG_SPECIALS_NONE, 0, AG__ALTGRAD)
AG_FMT("E7M0", 7, 0, 63, 1, AG_SPECIALS_NONE, 0, AG__ALTGRAD ": powers of two")

/* The 16-bit splits (sign + E + M = 16). E > 8 is out of float32's range. */
AG_FMT("E0M15", 0, 15, 0, 1, AG_SPECIALS_NONE, 0, AG__SPLIT)
AG_FMT("E1M14", 1, 14, 0, 1, AG_SPECIALS_NONE, 0, AG__SPLIT)
AG_FMT("E2M13", 2, 13, 1, 1, AG_SPECIALS_NONE, 0, AG__SPLIT)
AG_FMT("E3M12", 3, 12, 3, 1, AG_SPECIALS_NONE, 0, AG__SPLIT)
AG_FMT("E4M11", 4, 11, 7, 1, AG_SPECIALS_NONE, 0, AG__SPLIT)
AG_FMT("E5M10", 5, 10, 15, 1, AG_SPECIALS_IEEE, 0, "IEEE 754-2008 binary16 (the E5M10 split is FP16)")
AG_FMT("E6M9", 6, 9, 31, 1, AG_SPECIALS_NONE, 0, AG__SPLIT)
AG_FMT("E7M8", 7, 8, 63, 1, AG_SPECIALS_NONE, 0, AG__SPLIT)
AG_FMT("E8M7", 8, 7, 127, 1, AG_SPECIALS_IEEE, 0, "bfloat16 (the E8M7 split is BF16), as torch.bfloat16 / ml_dtypes")
AG_FMT("FP16", 5, 10, 15, 1, AG_SPECIALS_IEEE, 0, "IEEE 754-2008 binary16")
AG_FMT("BF16", 8, 7, 127, 1, AG_SPECIALS_IEEE, 0, "bfloat16, as torch.bfloat16 / ml_dtypes bfloat16")

/* The standard family, named and specified as ml_dtypes names them. */
AG_FMT("float8_e4m3fn", 4, 3, 7, 1, AG_SPECIALS_FN, 0, AG__OCP_FP8 " E4M3; ml_dtypes float8_e4m3fn")
AG_FMT("float8_e4m3fnuz", 4, 3, 8, 1, AG_SPECIALS_FNUZ, 0, "Graphcore/AMD FP8 (Noune et al. 2022, arXiv:2206.02915); ml_dtypes float8_e4m3fnuz")
AG_FMT("float8_e4m3b11fnuz", 4, 3, 11, 1, AG_SPECIALS_FNUZ, 0, "Graphcore FP8 with bias 11; ml_dtypes float8_e4m3b11fnuz")
AG_FMT("float8_e5m2", 5, 2, 15, 1, AG_SPECIALS_IEEE, 0, AG__OCP_FP8 " E5M2; ml_dtypes float8_e5m2")
AG_FMT("float8_e5m2fnuz", 5, 2, 16, 1, AG_SPECIALS_FNUZ, 0, "Graphcore/AMD FP8 (Noune et al. 2022, arXiv:2206.02915); ml_dtypes float8_e5m2fnuz")
AG_FMT("float8_e3m4", 3, 4, 3, 1, AG_SPECIALS_IEEE, 0, "IEEE 754-style 8-bit float; ml_dtypes float8_e3m4")
AG_FMT("float8_e4m3", 4, 3, 7, 1, AG_SPECIALS_IEEE, 0, "IEEE 754-style 8-bit float; ml_dtypes float8_e4m3")
AG_FMT("float8_e8m0fnu", 8, 0, 127, 0, AG_SPECIALS_FN, 1, AG__OCP_MX " E8M0 scale; ml_dtypes float8_e8m0fnu")
AG_FMT("float6_e2m3fn", 2, 3, 1, 1, AG_SPECIALS_NONE, 0, AG__OCP_MX " FP6 E2M3; ml_dtypes float6_e2m3fn")
AG_FMT("float6_e3m2fn", 3, 2, 3, 1, AG_SPECIALS_NONE, 0, AG__OCP_MX " FP6 E3M2; ml_dtypes float6_e3m2fn")
AG_FMT("float4_e2m1fn", 2, 1, 1, 1, AG_SPECIALS_NONE, 0, AG__OCP_MX " FP4 E2M1; ml_dtypes float4_e2m1fn")
AG_FMT("float16", 5, 10, 15, 1, AG_SPECIALS_IEEE, 0, "IEEE 754-2008 binary16; ml_dtypes/numpy float16")
AG_FMT("bfloat16", 8, 7, 127, 1, AG_SPECIALS_IEEE, 0, "bfloat16; ml_dtypes bfloat16")
