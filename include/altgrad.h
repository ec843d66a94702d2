/* SPDX-License-Identifier: MIT */
/*
 * altgrad.h — the one public header of altgrad: simulate narrow floating-point
 * formats (FP8 and its cousins, any ExMy up to 16 bits) on float32 data.
 *
 * Usage:
 *     #include <altgrad.h>
 *     const ag_format *f = ag_format_get("E5M2");
 *     ag_status st = ag_quantize(y, x, n, f, 1.0f, NULL, NULL);
 *     if (st != AG_OK) fprintf(stderr, "%s\n", ag_status_string(st));
 *
 * Link with -laltgrad -lm (pkg-config --cflags --libs altgrad).
 *
 * Conventions (every function):
 *  - Fallible calls return ag_status: AG_OK (0) or a positive error code.
 *    On error the outputs are left untouched unless the comment says otherwise.
 *  - Array calls take the output first, then const inputs, then the count,
 *    then the format, scale and options. n == 0 is a no-op that returns AG_OK
 *    (pointers may then be NULL).
 *  - Aliasing: an output may be the very same array as an input (in place);
 *    any other overlap is AG_ERR_ALIAS.
 *  - Several bad arguments at once: the status is the first that applies in
 *    one order, the same for every call: AG_ERR_NULL (a pointer the call
 *    needs, the format included; arrays only when their count is > 0),
 *    AG_ERR_FORMAT, AG_ERR_STORAGE, AG_ERR_SCALE, AG_ERR_ARG (an option or
 *    other scalar argument), AG_ERR_SHAPE, AG_ERR_ALIAS. The contents of
 *    arrays (AG_ERR_CODE, a bad per-row scale, a bad amax value) are checked
 *    after all of those, still before anything is written.
 *  - `_backward` functions ACCUMULATE into their gradient output (dx += ...);
 *    the caller zeroes it first.
 *  - No global state: every function is thread-safe and reentrant; random
 *    streams are explicit (seed, stream, offset in ag_qopts).
 *  - The library never prints, never exits and never aborts on bad input.
 */
#ifndef ALTGRAD_H
#define ALTGRAD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(AG_BUILDING_LIBRARY) && defined(__GNUC__)
#define AG_API __attribute__((visibility("default")))
#else
#define AG_API
#endif

#define ALTGRAD_VERSION_MAJOR 0
#define ALTGRAD_VERSION_MINOR 1
#define ALTGRAD_VERSION_PATCH 0
#define ALTGRAD_VERSION_NUMBER \
    (ALTGRAD_VERSION_MAJOR * 10000 + ALTGRAD_VERSION_MINOR * 100 + ALTGRAD_VERSION_PATCH)

/* The library's version as "MAJOR.MINOR.PATCH" (static string). */
AG_API const char *ag_version(void);

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/* Status codes. Values are pinned: they never change once released. */
typedef enum ag_status {
    AG_OK = 0,
    AG_ERR_NULL = 1,      /* a required pointer is NULL */
    AG_ERR_SCALE = 2,     /* scale is zero, negative, NaN or infinite */
    AG_ERR_FORMAT = 3,    /* format is NULL or not a valid ag_format */
    AG_ERR_SPEC = 4,      /* malformed format spec string */
    AG_ERR_RANGE = 5,     /* format holds values float32 cannot (E > 8, ...) */
    AG_ERR_ALIAS = 6,     /* input and output overlap partially */
    AG_ERR_ARG = 7,       /* an option or size argument is out of range */
    AG_ERR_NOMEM = 8,     /* allocation failed */
    AG_ERR_CODE = 9,      /* a code is outside the format's 2^bits codes */
    AG_ERR_STORAGE = 10,  /* the format does not fit the storage type */
    AG_ERR_SHAPE = 11     /* sizes disagree, or a size product overflows */
} ag_status;

/* A short English description of `st`; never NULL (unknown codes get a
 * generic text). */
AG_API const char *ag_status_string(ag_status st);

/* ------------------------------------------------------------------------ */
/* Formats                                                                  */
/* ------------------------------------------------------------------------ */

/* Conventions for special values (see DESIGN.md):
 *  NONE  every code is a finite number; no inf, no NaN.
 *  IEEE  exponent field all ones is reserved: mantissa 0 = +-inf, else NaN.
 *        (With M = 0 that leaves +-inf and no NaN.)
 *  FN    no inf; only S.1..1.1..1 is NaN; the rest of the top binade is finite
 *        (OCP E4M3).
 *  FNUZ  no inf, no negative zero; the code with only the sign bit set is NaN. */
typedef enum ag_specials {
    AG_SPECIALS_NONE = 0,
    AG_SPECIALS_IEEE = 1,
    AG_SPECIALS_FN = 2,
    AG_SPECIALS_FNUZ = 3
} ag_specials;

/* A number format. Read-only for callers: registry entries come from
 * ag_format_get(); custom ones are filled by ag_format_init() or
 * ag_format_parse(), which compute every derived field. A hand-filled struct
 * is rejected by every call (AG_ERR_FORMAT) since its check word is wrong.
 *
 * Code layout (LSB first): M mantissa bits, E exponent bits, then the sign bit
 * when is_signed. Values: for E >= 1 an exponent field e > 0 gives
 * (-1)^s 2^(e-bias) (1 + m/2^M) and e = 0 gives subnormals (-1)^s 2^(1-bias) m/2^M;
 * for E = 0 the format is fixed point, (-1)^s m 2^(-M-bias). A format with
 * no_zero set (E8M0 scales) has no subnormals: e = 0 is the binade 2^(-bias). */
typedef struct ag_format {
    char name[48];          /* registry name, or the spec it was parsed from */
    const char *source;     /* where the definition comes from (static text) */
    int ebits;              /* E: exponent bits, 0..8 */
    int mbits;              /* M: mantissa bits, 0..23 */
    int bias;               /* exponent bias */
    int is_signed;          /* 1: a sign bit above the exponent */
    int no_zero;            /* 1: exponent field 0 is a normal binade, no zero */
    ag_specials specials;
    /* derived, computed by ag_format_init() */
    int bits;               /* total bits = is_signed + E + M, 1..16 */
    int has_inf, has_nan, has_negzero;
    uint32_t ncodes;        /* 2^bits */
    uint32_t finite_codes;  /* number of codes that decode to finite values */
    uint32_t max_code;      /* code of +max_finite */
    uint32_t nan_code;      /* canonical NaN code (0 when !has_nan) */
    uint32_t inf_code;      /* code of +inf (0 when !has_inf) */
    uint32_t sign_mask;     /* the sign bit, 0 when unsigned */
    float max_finite;       /* largest finite value */
    float min_normal;       /* smallest positive normal (E = 0: the step) */
    float min_subnormal;    /* smallest positive value */
    int emin;               /* the smallest step is 2^(emin - M): 1 - bias,
                               or -bias for E = 0 and no_zero formats */
    int emax;               /* unbiased exponent of max_finite */
    uint32_t check;         /* integrity word set by ag_format_init() */
    float lut[256];         /* decode table (codes < 256), for 8-bit formats */
} ag_format;

/* Registry lookup by name, case-insensitive: the AltGrad family E0M7 E1M6
 * E2M5 E3M4 E4M3 E5M2 E6M1 E7M0, the 16-bit splits E0M15 ... E8M7 (FP16 =
 * E5M10, BF16 = E8M7), and the ml_dtypes names float8_e4m3fn ... bfloat16.
 * Returns a pointer to a static, immutable entry, or NULL for an unknown
 * name (or NULL name). */
AG_API const ag_format *ag_format_get(const char *name);

/* Number of registry entries, and entry i (0 <= i < count; NULL beyond).
 * Aliases (FP16/E5M10, BF16/E8M7, float16, bfloat16) are separate entries. */
AG_API size_t ag_format_count(void);
AG_API const ag_format *ag_format_at(size_t i);

/* Fill *out with a custom format and compute its derived fields.
 * name may be NULL (then "eXmY" is used; longer names are truncated).
 * Errors: AG_ERR_NULL (out), AG_ERR_RANGE (E > 8, M > 23, bits > 16, or a
 * format whose finite values or smallest step fall outside float32),
 * AG_ERR_SPEC (a specials convention the layout cannot have, e.g. FNUZ
 * unsigned, IEEE with E = 0, no_zero with E = 0). *out untouched on error. */
AG_API ag_status ag_format_init(ag_format *out, const char *name, int ebits,
                                int mbits, int bias, int is_signed,
                                ag_specials specials, int no_zero);

/* Parse a format spec into *out:
 *     BASE[:KEY=VALUE]...
 * BASE is a registry name (its settings are the starting point) or eXmY
 * (E exponent bits, M mantissa bits; defaults: bias 2^(E-1)-1, 0 for E <= 1,
 * signed, specials none). KEYs, each at most once:
 *     bias=INT  specials=none|ieee|fn|fnuz  signed=yes|no  zero=yes|no
 * Case-insensitive. On error returns AG_ERR_NULL, AG_ERR_SPEC or
 * AG_ERR_RANGE and, when err != NULL and errlen > 0, writes a NUL-terminated
 * message naming the bad part into err[0..errlen). *out untouched on error. */
AG_API ag_status ag_format_parse(ag_format *out, const char *spec, char *err,
                                 size_t errlen);

/* AG_OK if fmt is a valid format (registry entry or initialised custom),
 * AG_ERR_NULL for NULL, AG_ERR_FORMAT otherwise. */
AG_API ag_status ag_format_check(const ag_format *fmt);

/* Name of a specials convention: "none", "ieee", "fn", "fnuz" ("?" else;
 * the names of AG_OPTION_SPECIALS). */
AG_API const char *ag_specials_name(ag_specials s);

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

/* Rounding modes. Nearest modes pick the nearest code; ties go to the even
 * code (NEAREST_EVEN: for exponent-only formats such as E7M0 that is the
 * even exponent field) or away from zero (NEAREST_AWAY). DOWN is toward
 * -inf, UP toward +inf. STOCHASTIC rounds up (in magnitude) with probability
 * equal to the distance from the lower neighbour over the gap, using the
 * counter-based stream (seed, stream, offset + element index): element g of
 * a stream takes 32 random bits, word (g mod 4) of ARS-7 (Salmon et al.,
 * SC'11: Random123's ars4x32 with its default 7 AES rounds) with key
 * (seed lo, seed hi, 0, 0) and counter (g/4 lo, g/4 hi, stream lo, stream
 * hi), and rounds up iff those bits < floor(frac * 2^32). The probability
 * is exact whenever at most 32 bits are discarded, which holds for every
 * |x/scale| >= min_subnormal * 2^-9; further below it is truncated to a
 * multiple of 2^-32 (a bias below 2^-32 of the gap). Results do not depend on threads, SIMD width or
 * how the array is split across calls (continue a stream with offset). */
typedef enum ag_rounding {
    AG_ROUND_NEAREST_EVEN = 0,
    AG_ROUND_NEAREST_AWAY = 1,
    AG_ROUND_TOWARD_ZERO = 2,
    AG_ROUND_DOWN = 3,
    AG_ROUND_UP = 4,
    AG_ROUND_STOCHASTIC = 5
} ag_rounding;

/* What happens to values beyond the format's range in ag_quantize/encode.
 * SATURATE: finite values clamp to +-max; +-inf stays +-inf where the
 *   format has inf, else +-max.
 * IEEE: as ag_to_bits: +-inf where the format has inf, NaN where it has
 *   NaN but no inf, else +-max. */
typedef enum ag_overflow {
    AG_OVERFLOW_SATURATE = 0,
    AG_OVERFLOW_IEEE = 1
} ag_overflow;

/* Straight-through estimator for ag_quantize_backward.
 * IDENTITY: dx += dy.  CLIPPED: dx += dy where |x/scale| <= max_finite (or
 * x/scale is NaN), nothing where it is beyond (the forward saturated). */
typedef enum ag_ste {
    AG_STE_IDENTITY = 0,
    AG_STE_CLIPPED = 1
} ag_ste;

/* The shared-scale rule of the MX block calls (ag_qopts.mx_scale; see
 * "MX block scaling" below). Values are pinned. */
typedef enum ag_mx_scale {
    AG_MX_SCALE_FLOOR = 0, /* OCP MX v1.0: floor(log2 amax) - emax_elem */
    AG_MX_SCALE_RCEIL = 1  /* round up: the smallest X with amax/X <= max */
} ag_mx_scale;

/* Options for the bulk calls. Fill with ag_qopts_default(), then set fields
 * by name. A NULL options pointer means the defaults. */
typedef struct ag_qopts {
    ag_rounding rounding;   /* default AG_ROUND_NEAREST_EVEN */
    ag_overflow overflow;   /* default AG_OVERFLOW_SATURATE */
    ag_ste ste;             /* default AG_STE_IDENTITY */
    uint64_t seed;          /* stochastic rounding key (default 0) */
    uint64_t stream;        /* independent stream per tensor (default 0) */
    uint64_t offset;        /* index of element 0 in the stream (default 0) */
    int threads;            /* 0: library's choice; 1: serial; >1: at most */
    int kernel;             /* AG_KERNEL_*: code path (default AUTO) */
    ag_mx_scale mx_scale;   /* MX shared-scale rule (default FLOOR); read by
                               the ag_mx_* calls only */
} ag_qopts;

/* Code paths of the bulk calls (ag_qopts.kernel). Every path gives the same
 * bits and stats; forcing one is for tests and benchmarks. AUTO picks the
 * fastest the CPU supports (a portable build still uses AVX2 / AVX-512).
 * SCALAR is the specification applied per element (slow); PORTABLE the
 * auto-vectorized kernel for the build's baseline ISA. A path that is not
 * available here (ag_kernel_available() == 0) makes the call fail with
 * AG_ERR_ARG. Values are pinned. */
enum {
    AG_KERNEL_AUTO = 0,
    AG_KERNEL_SCALAR = 1,
    AG_KERNEL_PORTABLE = 2,
    AG_KERNEL_AVX2 = 3,
    AG_KERNEL_AVX512 = 4
};

/* 1 if the path `kernel` can run on this machine and build (AUTO, SCALAR
 * and PORTABLE always can), else 0 (unknown ids included). */
AG_API int ag_kernel_available(int kernel);

/* Name of a path: "auto", "scalar", "portable", "avx2", "avx512" ("?"
 * for an unknown id; the names of AG_OPTION_KERNEL). Static string. */
AG_API const char *ag_kernel_name(int kernel);

/* The default options (see each field). */
AG_API ag_qopts ag_qopts_default(void);

/* Option names: the one vocabulary of every enum above (and of the format
 * specials), shared by the CLI, the training bench and the Python package.
 * Canonical names use '-' ("nearest-even", "toward-zero", "saturate",
 * "clipped", "avx512"); parsing accepts '-' and '_' alike, ignores ASCII
 * case, and takes the aliases listed with each kind:
 *   AG_OPTION_ROUNDING  nearest-even (alias: nearest, rne), nearest-away,
 *                       toward-zero (alias: truncate, rtz), down, up,
 *                       stochastic (alias: sr)
 *   AG_OPTION_OVERFLOW  saturate, ieee
 *   AG_OPTION_STE       identity (alias: none, ste), clipped
 *   AG_OPTION_KERNEL    auto, scalar, portable, avx2, avx512
 *   AG_OPTION_SPECIALS  none, ieee, fn, fnuz
 *   AG_OPTION_SCALER_FIRST  current, amax-one, scale-one (ag_scaler_first)
 *   AG_OPTION_MX_SCALE  floor, rceil (ag_mx_scale, the MX shared-scale rule)
 *   AG_OPTION_PRECONDITION  none, grad, update (ag_precondition)
 * Values of each kind are 0 .. ag_option_count(kind) - 1 (the enum values).
 * New kinds are appended; values are pinned. */
typedef enum ag_option_kind {
    AG_OPTION_ROUNDING = 0,
    AG_OPTION_OVERFLOW = 1,
    AG_OPTION_STE = 2,
    AG_OPTION_KERNEL = 3,
    AG_OPTION_SPECIALS = 4,
    AG_OPTION_SCALER_FIRST = 5,
    AG_OPTION_MX_SCALE = 6,
    AG_OPTION_PRECONDITION = 7
} ag_option_kind;

/* The kind's own name ("rounding", "overflow", "ste", "kernel", "specials",
 * "scaler-first", "mx-scale", "precondition"); "?" for an unknown kind.
 * Static string. */
AG_API const char *ag_option_kind_name(ag_option_kind kind);

/* Number of values of `kind` (0 for an unknown kind). */
AG_API size_t ag_option_count(ag_option_kind kind);

/* Canonical name of value `value` of `kind` (static string), or NULL when
 * either is unknown. */
AG_API const char *ag_option_name(ag_option_kind kind, int value);

/* Parse `name` as a value of `kind` into *value ('-' and '_' alike, ASCII
 * case ignored, aliases as listed above). On failure *value is untouched,
 * and when err != NULL and errlen > 0 a NUL-terminated one-line message is
 * written there, naming the bad value and listing every canonical name,
 * e.g. "unknown rounding 'nearset' (expected one of: nearest-even,
 * nearest-away, toward-zero, down, up, stochastic)"; control bytes of name
 * are written as '?' and a name longer than 64 bytes is cut ("..."); the
 * message is truncated to errlen. On success err gets "". Errors:
 * AG_ERR_NULL (value or name), AG_ERR_ARG (unknown kind or name). */
AG_API ag_status ag_option_parse(int *value, ag_option_kind kind,
                                 const char *name, char *err, size_t errlen);

/* Counters filled by the bulk calls when a non-NULL ag_stats* is passed.
 * The call ADDS to the counters (zero them with {0} to start), so a
 * training loop can accumulate over a step. */
typedef struct ag_stats {
    uint64_t total;      /* elements processed */
    uint64_t overflow;   /* +-inf inputs, or finite ones whose rounding went
                            beyond max_finite (whatever the policy then gave,
                            the NaN code included) */
    uint64_t underflow;  /* nonzero inputs that became (+-)zero: x / scale
                            rounded to zero or was already 0 in float32;
                            negative inputs of an unsigned format without NaN */
    uint64_t nan;        /* NaN inputs, and inputs a format maps to its NaN
                            code: negative in an unsigned format, zero or
                            negative in E8M0 */
} ag_stats;

/* ------------------------------------------------------------------------ */
/* Transfer functions (scalar, exact: the specification in code)            */
/* ------------------------------------------------------------------------ */

/* Round x to the nearest code of fmt, ties to the even code.
 * Overflow is decided as if the exponent range went on (the boundary is
 * halfway between max_finite and the next value beyond it, ties to even);
 * the result is then +-inf where the format has inf, NaN where it has NaN
 * but no inf, else +-max. NaN -> the canonical NaN code (nan_code), or 0
 * where the format has no NaN. -0 and negative values that round to zero
 * keep the sign where the format has -0 (FNUZ: +0). Unsigned formats:
 * negative inputs -> NaN code if any, else 0. Formats without zero (E8M0):
 * zero and negative inputs -> NaN code; positive values below the smallest
 * one -> the smallest. A NULL or invalid fmt returns 0. */
AG_API uint32_t ag_to_bits(const ag_format *fmt, float x);

/* As ag_to_bits, with the rounding mode and overflow policy of *opts (NULL:
 * defaults, which saturate). Stochastic rounding uses stream element
 * opts->offset. Directed modes never overflow toward zero: e.g. TOWARD_ZERO
 * maps every finite value beyond max to +-max_finite. An infinite input is
 * exact: +-inf where the format has inf; otherwise +-max under SATURATE and
 * the NaN code (or +-max without one) under IEEE, in every mode. */
AG_API uint32_t ag_to_bits_opts(const ag_format *fmt, float x,
                                const ag_qopts *opts);

/* Decode a code. NaN codes give a quiet NaN (with the code's sign), inf codes
 * +-inf. A code >= fmt->ncodes, or a NULL/invalid fmt, gives NaN. */
AG_API float ag_to_real(const ag_format *fmt, uint32_t code);

/* ------------------------------------------------------------------------ */
/* Bulk operations                                                          */
/* ------------------------------------------------------------------------ */

/* y[i] = to_real(to_bits(x[i] / scale)) * scale, bit-exact with that float32
 * expression (division and product in float32), under the rounding and
 * overflow policy of opts (NULL: nearest-even, saturate). NaN inputs stay
 * NaN in y whatever the format (counted in stats->nan). y == x allowed.
 * Errors: AG_ERR_NULL (y, x with n > 0; fmt), AG_ERR_FORMAT, AG_ERR_SCALE,
 * AG_ERR_ARG (bad option), AG_ERR_ALIAS. stats may be NULL. */
AG_API ag_status ag_quantize(float *y, const float *x, size_t n,
                             const ag_format *fmt, float scale,
                             const ag_qopts *opts, ag_stats *stats);

/* Straight-through backward of ag_quantize: dx[i] += dy[i], or with
 * opts->ste == AG_STE_CLIPPED only where |x[i]/scale| <= fmt->max_finite
 * (the mask is recomputed from the forward input x, so nothing has to be
 * stored between the passes; x may be NULL for IDENTITY). Accumulates.
 * dx == dy allowed. Errors as ag_quantize. */
AG_API ag_status ag_quantize_backward(float *dx, const float *dy,
                                      const float *x, size_t n,
                                      const ag_format *fmt, float scale,
                                      const ag_qopts *opts);

/* y[i] = x[i] * scale (float32 product). y == x allowed.
 * Errors: AG_ERR_NULL, AG_ERR_SCALE, AG_ERR_ALIAS. */
AG_API ag_status ag_dequantize(float *y, const float *x, size_t n, float scale);

/* dx[i] += dy[i] * scale. Accumulates. Errors as ag_dequantize. */
AG_API ag_status ag_dequantize_backward(float *dx, const float *dy, size_t n,
                                        float scale);

/* Packed storage: codes[i] = to_bits(x[i] / scale) under opts (overflow
 * policy as ag_quantize: saturate -> +-max code, inf kept where the format
 * has inf; NaN -> nan_code, or 0 where the format has none, counted).
 * _u8 needs fmt->bits <= 8 and _u16 fmt->bits <= 16 (else AG_ERR_STORAGE).
 * Errors otherwise as ag_quantize. */
AG_API ag_status ag_encode_u8(uint8_t *codes, const float *x, size_t n,
                              const ag_format *fmt, float scale,
                              const ag_qopts *opts, ag_stats *stats);
AG_API ag_status ag_encode_u16(uint16_t *codes, const float *x, size_t n,
                               const ag_format *fmt, float scale,
                               const ag_qopts *opts, ag_stats *stats);

/* y[i] = to_real(codes[i]) * scale. Every code must be < fmt->ncodes, else
 * AG_ERR_CODE (y untouched). Errors otherwise as ag_dequantize, plus
 * AG_ERR_STORAGE when the format is wider than the storage. */
AG_API ag_status ag_decode_u8(float *y, const uint8_t *codes, size_t n,
                              const ag_format *fmt, float scale);
AG_API ag_status ag_decode_u16(float *y, const uint16_t *codes, size_t n,
                               const ag_format *fmt, float scale);

/* ------------------------------------------------------------------------ */
/* Scaling                                                                  */
/* ------------------------------------------------------------------------ */

/* *amax = max |x[i]| over the non-NaN elements (0 for n == 0 or when every
 * element is NaN); *nan_count (may be NULL) = number of NaN elements. +-inf
 * gives +inf; -0 gives +0. x may be NULL when n == 0, amax never.
 * Errors: AG_ERR_NULL. Outputs untouched on error. */
AG_API ag_status ag_amax(float *amax, const float *x, size_t n,
                         size_t *nan_count);

/* A window of the last `len` amax values (delayed scaling). Opaque; one
 * object must not be used from two threads at once. */
typedef struct ag_amax_history ag_amax_history;

/* Create a history of window length len >= 1 (else AG_ERR_ARG; AG_ERR_NULL
 * for out == NULL, AG_ERR_NOMEM). *out is set to NULL on error. */
AG_API ag_status ag_amax_history_create(ag_amax_history **out, size_t len);
/* Free; NULL is a no-op. */
AG_API void ag_amax_history_free(ag_amax_history *h);
/* Push one amax (the oldest drops out when full). A NaN or negative amax is
 * AG_ERR_ARG and is not recorded; +inf is recorded (and is then the window
 * maximum until it drops out); -0 is recorded as 0. h NULL: AG_ERR_NULL. */
AG_API ag_status ag_amax_history_push(ag_amax_history *h, float amax);
/* Maximum over the window; 0 when empty (or h NULL). */
AG_API float ag_amax_history_max(const ag_amax_history *h);
/* Number of values held (<= window length), and the window length (both 0
 * for h NULL). */
AG_API size_t ag_amax_history_count(const ag_amax_history *h);
AG_API size_t ag_amax_history_len(const ag_amax_history *h);
/* Forget every value (the window length stays). NULL is a no-op. */
AG_API void ag_amax_history_reset(ag_amax_history *h);

/* Options for ag_compute_scale; fill with ag_scale_opts_default(). */
typedef struct ag_scale_opts {
    float margin;     /* amax is multiplied by this first (default 1) */
    float scale_min;  /* floor of the scale (default 1e-10) */
    int pow2;         /* 1: round the scale up to a power of two (default 0) */
} ag_scale_opts;

AG_API ag_scale_opts ag_scale_opts_default(void);

/* *scale = max(amax * margin / fmt->max_finite, scale_min), computed in
 * double and rounded once to float32 (with margin 1: exactly the float32
 * quotient amax / max_finite); with pow2 the result is then rounded up to a
 * power of two, so that amax / *scale <= max_finite exactly. The result is
 * always a positive finite float32:
 *   amax 0 or tiny  -> scale_min (pow2: scale_min rounded up to 2^k);
 *   amax +inf       -> as amax = FLT_MAX, the largest finite amax;
 *   quotient > FLT_MAX (margin > 1, or max_finite < 1) -> FLT_MAX
 *                      (pow2: 2^127, the largest power of two);
 *   amax NaN or < 0 -> AG_ERR_ARG.
 * opts NULL: the defaults. Errors: AG_ERR_NULL (scale, fmt), AG_ERR_FORMAT,
 * AG_ERR_ARG (amax; opts: margin or scale_min not positive finite, pow2 not
 * 0 or 1). *scale untouched on error. */
AG_API ag_status ag_compute_scale(float *scale, float amax,
                                  const ag_format *fmt,
                                  const ag_scale_opts *opts);

/* Delayed scaling: ag_scaler, the one owner of "the scale of a tensor from
 * its amax window". A scaler holds a format, an amax window of
 * history_len values, ag_scale_opts, the quantize options (rounding mode,
 * overflow policy, seed and stream of stochastic rounding) and a
 * first-step policy. ag_scaler_quantize does, in this order (DESIGN.md):
 *   1. scale = ag_scaler_scale(amax of x): ag_compute_scale(window max)
 *      while the window holds a value; while it is empty, by `first`:
 *        CURRENT   ag_compute_scale(amax of x) (the buffer's own amax);
 *        AMAX_ONE  ag_compute_scale(1.0) (AltGrad's AmaxHistory: an empty
 *                  window reads as amax 1);
 *        SCALE_ONE scale 1;
 *   2. y = ag_quantize(x, scale) under the options, stochastic rounding at
 *      stream element `offset` (see below);
 *   3. push the amax of x (NaN elements left out, +-inf as +inf) into the
 *      window, count a step, and advance offset by n.
 * The stochastic offset starts at 0 and advances by the elements of every
 * call, so that successive steps draw new bits from the scaler's stream and
 * a restored scaler draws the bits an uninterrupted one would. An object
 * must not be used from two threads at once; distinct objects are
 * independent. */
typedef enum ag_scaler_first {
    AG_SCALER_FIRST_CURRENT = 0,
    AG_SCALER_FIRST_AMAX_ONE = 1,
    AG_SCALER_FIRST_SCALE_ONE = 2
} ag_scaler_first;

typedef struct ag_scaler_opts {
    size_t history_len;     /* window length >= 1 (default 16) */
    ag_scale_opts scale;    /* margin, scale_min, pow2 (ag_scale_opts_default) */
    ag_qopts quant;         /* rounding, overflow, ste, seed, stream, threads,
                               kernel (ag_qopts_default); quant.offset is the
                               starting stochastic offset (default 0) */
    ag_scaler_first first;  /* empty-window policy (default CURRENT) */
} ag_scaler_opts;

typedef struct ag_scaler ag_scaler;

/* The default options (see each field). */
AG_API ag_scaler_opts ag_scaler_opts_default(void);

/* Create a scaler for fmt (copied: the caller's ag_format may go away)
 * with opts (NULL: the defaults). Errors: AG_ERR_NULL (out, fmt),
 * AG_ERR_FORMAT, AG_ERR_ARG (history_len 0, a bad option field: as
 * ag_compute_scale and ag_quantize check them; kernel not available here),
 * AG_ERR_NOMEM. *out is NULL on error. */
AG_API ag_status ag_scaler_create(ag_scaler **out, const ag_format *fmt,
                                  const ag_scaler_opts *opts);
/* Free; NULL is a no-op. */
AG_API void ag_scaler_free(ag_scaler *s);
/* Empty the window, zero the step count and the last scale, and set the
 * stochastic offset back to opts.quant.offset. NULL is a no-op. */
AG_API void ag_scaler_reset(ag_scaler *s);

/* Steps 1-3 above on n elements: y = quantize(x, scale); stats (may be
 * NULL) accumulates as ag_quantize's. y == x allowed. On error nothing is
 * recorded and the scaler is unchanged (y and stats untouched). Errors:
 * AG_ERR_NULL (s; y or x with n > 0), AG_ERR_ALIAS (y and x overlap
 * partially). n == 0 still counts a step and pushes amax 0. */
AG_API ag_status ag_scaler_quantize(ag_scaler *s, float *y, const float *x,
                                    size_t n, ag_stats *stats);

/* The straight-through backward of the last ag_scaler_quantize call:
 * ag_quantize_backward(dx, dy, x, n) with its scale and the scaler's ste
 * mode (x is the forward input; may be NULL for IDENTITY). Accumulates.
 * Errors as ag_quantize_backward; AG_ERR_ARG before any quantize. */
AG_API ag_status ag_scaler_backward(const ag_scaler *s, float *dx,
                                    const float *dy, const float *x, size_t n);

/* *scale = the scale the next ag_scaler_quantize would use (step 1) for a
 * buffer whose amax is amax_now (read only while the window is empty under
 * AG_SCALER_FIRST_CURRENT; pass 0 when unknown). Errors: AG_ERR_NULL,
 * AG_ERR_ARG (amax_now NaN or negative when it is read). */
AG_API ag_status ag_scaler_scale(const ag_scaler *s, float amax_now,
                                 float *scale);

/* Record an amax measured elsewhere (a device, a split buffer): step 3
 * without quantizing (offset advances by n), the last scale becoming the
 * step-1 scale for a buffer of that amax, so that afterwards the scaler is
 * exactly as if ag_scaler_quantize had run on such a buffer. Errors:
 * AG_ERR_NULL, AG_ERR_ARG (amax NaN or negative; nothing recorded). */
AG_API ag_status ag_scaler_record(ag_scaler *s, float amax, size_t n);

/* Read-only state. Each returns 0 for s == NULL. */
AG_API float ag_scaler_last_scale(const ag_scaler *s);   /* 0 before a step */
AG_API float ag_scaler_window_max(const ag_scaler *s);   /* 0 when empty */
AG_API size_t ag_scaler_window_count(const ag_scaler *s);
AG_API uint64_t ag_scaler_steps(const ag_scaler *s);
AG_API uint64_t ag_scaler_offset(const ag_scaler *s);
/* The scaler's own copy of its format and options (NULL for s == NULL). */
AG_API const ag_format *ag_scaler_format(const ag_scaler *s);
AG_API const ag_scaler_opts *ag_scaler_options(const ag_scaler *s);

/* The whole state as bytes, for checkpoints that resume bit for bit: a
 * versioned, little-endian record (magic "AGSC", version 1, its size, the
 * format's defining fields, the options, last scale, step count, offset,
 * window contents oldest first, and a checksum; layout in ag_scaler.c),
 * written byte by byte, so that it reads back on any host. Equal states
 * give equal bytes (quant.threads and quant.kernel, which change no result,
 * are not recorded). *size = the bytes ag_scaler_save writes for s:
 * 136 + 4 * history_len, fixed for a scaler's lifetime. Errors:
 * AG_ERR_NULL. */
AG_API ag_status ag_scaler_state_size(const ag_scaler *s, size_t *size);
/* Write the state into buf (cap bytes). Errors: AG_ERR_NULL, AG_ERR_ARG
 * (cap < the state size). */
AG_API ag_status ag_scaler_save(const ag_scaler *s, void *buf, size_t cap);
/* Restore a state written by ag_scaler_save into s, which must have the
 * same format (defining fields: E, M, bias, signedness, zero, specials; the
 * name may differ) and the same options, except quant.threads and
 * quant.kernel, which change no result (else AG_ERR_ARG). size must be the
 * record's size exactly; a short, long, corrupt (checksum), other-version
 * record, or one holding a state no scaler reaches, is AG_ERR_ARG.
 * Errors: AG_ERR_NULL (s, buf), AG_ERR_ARG. On error s is unchanged. */
AG_API ag_status ag_scaler_load(ag_scaler *s, const void *buf, size_t size);

/* Per-channel scaling: one scale per row of a row-major rows x cols matrix
 * x (row r is x[r*cols .. r*cols + cols)). */

/* amax[r] = ag_amax of row r, for r < rows (0 for every row when cols == 0);
 * *nan_count (may be NULL) = NaN elements in the whole matrix.
 * Errors: AG_ERR_NULL (amax with rows > 0; x with rows*cols > 0),
 * AG_ERR_SHAPE (rows*cols overflows), AG_ERR_ALIAS (amax overlaps x). */
AG_API ag_status ag_amax_rows(float *amax, const float *x, size_t rows,
                              size_t cols, size_t *nan_count);

/* scales[r] = ag_compute_scale(amax[r], fmt, opts) for r < rows. Every
 * amax[r] is checked before anything is written. scales == amax allowed.
 * Errors as ag_compute_scale, plus AG_ERR_NULL (arrays with rows > 0),
 * AG_ERR_ALIAS (partial overlap). */
AG_API ag_status ag_compute_scale_rows(float *scales, const float *amax,
                                       size_t rows, const ag_format *fmt,
                                       const ag_scale_opts *opts);

/* Row r of y = ag_quantize(row r of x, scales[r]) under opts, rounding as
 * ag_quantize (stochastic rounding keys element (r, c) by its flat index:
 * stream element opts->offset + r*cols + c, so the result does not depend
 * on how rows are split). stats (may be NULL) accumulates over every row.
 * Every scales[r] is checked before anything is written. y == x allowed.
 * Errors as ag_quantize (AG_ERR_ARG includes a kernel not available here),
 * plus AG_ERR_SCALE (some scales[r] not positive finite), AG_ERR_NULL
 * (scales with rows*cols > 0), AG_ERR_SHAPE (rows*cols overflows),
 * AG_ERR_ALIAS (y overlaps scales, or y and x overlap partially). */
AG_API ag_status ag_quantize_rows(float *y, const float *x, size_t rows,
                                  size_t cols, const float *scales,
                                  const ag_format *fmt, const ag_qopts *opts,
                                  ag_stats *stats);

/* Straight-through backward of ag_quantize_rows: ag_quantize_backward per
 * row with scales[r] (dx += dy; with opts->ste == AG_STE_CLIPPED only where
 * |x / scales[r]| <= max_finite or x is NaN; x may be NULL for IDENTITY).
 * Accumulates. dx == dy allowed. Errors as ag_quantize_rows. */
AG_API ag_status ag_quantize_rows_backward(float *dx, const float *dy,
                                           const float *x, size_t rows,
                                           size_t cols, const float *scales,
                                           const ag_format *fmt,
                                           const ag_qopts *opts);

/* MX block scaling, after the OCP Microscaling Formats (MX) Specification
 * v1.0 (Sept 2023). A row-major rows x cols matrix is cut along its last
 * axis into blocks of `block` consecutive elements (AG_MX_BLOCK = 32 as in
 * the spec; any block >= 1); the last block of a row holds cols mod block
 * elements when that is not 0, and blocks never span rows. Block b of row r
 * (b < nb = ceil(cols/block)) owns scale index r*nb + b. A block shares one
 * E8M0 scale X = 2^(code - 127) (code 255: NaN), chosen as the spec's
 * section 6.3 does:
 *     shared_exp = floor(log2(amax of the block)) - emax_elem
 * with emax_elem = fmt->emax, the exponent of the element format's largest
 * value (8 float8_e4m3fn, 15 float8_e5m2, 2 float6_e2m3fn and
 * float4_e2m1fn, 4 float6_e3m2fn), clamped to E8M0's [-127, 127]. Each
 * element is then x / X (float32) rounded onto the element format under
 * opts: rounding mode as ag_quantize; the default overflow policy SATURATE
 * is the spec's "clamp to the element format's max normal", AG_OVERFLOW_IEEE
 * is allowed too. Cases the spec's conversion leaves open, decided here:
 *  - all-zero block: scale code 0 (X = 2^-127), elements +-0 (what the
 *    spec's companion code, microsoft/microxcaling, and torchao give);
 *  - a NaN or +-inf in the block: scale code 255 (NaN) and every element of
 *    the block decodes to NaN (in the spec a NaN scale makes every value of
 *    its block NaN whatever the element codes, and 255 is E8M0's NaN,
 *    section 5.4.1; an infinite amax has no finite exponent, and both
 *    microxcaling and torchao give the NaN scale). Its element codes are the
 *    element format's NaN code (0 if it has none); stats counts every
 *    element of such a block as NaN;
 *  - elements beyond max_finite after scaling (the floor leaves amax/X in
 *    [2^emax, 2^(emax+1)), e.g. up to 511.9 > 448 for e4m3) saturate to
 *    +-max_finite, counted in stats->overflow;
 *  - shared_exp < -127 (tiny amax) becomes -127 (elements may underflow);
 *    > 127 (possible only when emax < 1) becomes 127 (elements saturate).
 * opts->mx_scale picks the rule: AG_MX_SCALE_FLOOR is the spec's (above),
 * whose floor can clip the block maximum; AG_MX_SCALE_RCEIL rounds up,
 *     shared_exp = the smallest integer k with amax <= max_finite * 2^k
 * (exact, from amax's own bits; torchao's RCEIL computes the same from the
 * float32 quotient amax / max_finite), clamped the same way, so that
 * |x / X| <= max_finite for every element and nothing saturates unless the
 * clamp at 127 was hit. Zero, NaN and inf blocks are as above.
 * Every element format of at most 8 bits is accepted (else
 * AG_ERR_STORAGE). Stochastic rounding keys element i of the flat matrix by
 * stream element opts->offset + i. A kernel (opts->kernel) that is not
 * available here is AG_ERR_ARG, as in ag_quantize. */
#define AG_MX_BLOCK 32

/* *count = rows * ceil(cols / block), the number of block scales.
 * Errors: AG_ERR_NULL, AG_ERR_ARG (block == 0), AG_ERR_SHAPE (overflow). */
AG_API ag_status ag_mx_scale_count(size_t *count, size_t rows, size_t cols,
                                   size_t block);

/* *code = the E8M0 scale code of a block whose amax (max |x|) is amax, as
 * described above, under the spec's rule AG_MX_SCALE_FLOOR (255 for NaN or
 * +inf; 0 for 0). Errors: AG_ERR_NULL, AG_ERR_FORMAT, AG_ERR_ARG (amax < 0).
 * ag_mx_scale_code_rule: the same under `rule` (AG_ERR_ARG for an unknown
 * rule). *code untouched on error. */
AG_API ag_status ag_mx_scale_code(uint8_t *code, float amax,
                                  const ag_format *fmt);
AG_API ag_status ag_mx_scale_code_rule(uint8_t *code, float amax,
                                       const ag_format *fmt, ag_mx_scale rule);

/* Encode: codes[i] (rows*cols of them) = element codes, scales[j]
 * (ag_mx_scale_count of them) = E8M0 codes. stats (may be NULL) accumulates.
 * Errors: AG_ERR_NULL, AG_ERR_FORMAT, AG_ERR_STORAGE (fmt->bits > 8),
 * AG_ERR_ARG (block == 0, bad opts), AG_ERR_SHAPE, AG_ERR_ALIAS (any two of
 * codes, scales, x overlap), AG_ERR_NOMEM (a staging buffer of at most
 * 256 KiB). rows*cols == 0 is a no-op. */
AG_API ag_status ag_mx_encode(uint8_t *codes, uint8_t *scales, const float *x,
                              size_t rows, size_t cols, size_t block,
                              const ag_format *fmt, const ag_qopts *opts,
                              ag_stats *stats);

/* Decode: y[i] = to_real(codes[i]) * X of its block (float32 product), NaN
 * for every element of a block whose scale code is 255. Every code must be
 * < fmt->ncodes, checked before any write (else AG_ERR_CODE). Errors
 * otherwise as ag_mx_encode (y may not overlap codes or scales). */
AG_API ag_status ag_mx_decode(float *y, const uint8_t *codes,
                              const uint8_t *scales, size_t rows, size_t cols,
                              size_t block, const ag_format *fmt);

/* Fused fake quantization: y = ag_mx_decode(ag_mx_encode(x)), bit for bit
 * (except NaN payloads), without the code arrays. y == x allowed. Errors as
 * ag_mx_encode (AG_ERR_ALIAS for a partial overlap of y and x; AG_ERR_NOMEM
 * for the scale codes, one byte per block). */
AG_API ag_status ag_mx_quantize(float *y, const float *x, size_t rows,
                                size_t cols, size_t block,
                                const ag_format *fmt, const ag_qopts *opts,
                                ag_stats *stats);

/* Straight-through backward of ag_mx_quantize: dx += dy (IDENTITY; x may be
 * NULL), or with opts->ste == AG_STE_CLIPPED only where the forward did not
 * saturate: |x / X| <= max_finite with X the block's scale, recomputed from
 * x (NaN x passes, as in ag_quantize_backward); in a block with a NaN scale
 * every element passes except +-inf. Accumulates. dx == dy allowed.
 * Errors as ag_mx_quantize (AG_ERR_ALIAS: dx overlaps dy or x partially). */
AG_API ag_status ag_mx_quantize_backward(float *dx, const float *dy,
                                         const float *x, size_t rows,
                                         size_t cols, size_t block,
                                         const ag_format *fmt,
                                         const ag_qopts *opts);

/* ------------------------------------------------------------------------ */
/* Diagnostics                                                              */
/* ------------------------------------------------------------------------ */

/* Gradient threshold of the stall and flip counters: an element counts as
 * updated when |g| > AG_GRAD_EPS (float32 compare, as the AltGrad bench). */
#define AG_GRAD_EPS 1e-10f

/* "Same grid point" (bit stall, flips): two values quantized with the same
 * format, scale and options (code = to_bits(x / scale) under opts) are the
 * same point when their codes are equal or both are zeros (+0 and -0 are
 * one point). A NaN (NaN input, or a NaN code) is never the same point as
 * anything: a diverged element never counts as stalled and always as
 * flipped, as the AltGrad reference that compares quantized tensors with ==.
 * Stochastic rounding uses stream element opts->offset + i for element i of
 * both snapshots. Results do not depend on opts->kernel or opts->threads;
 * a kernel not available here is AG_ERR_ARG, as in ag_quantize. */

/* Bit stall: among the elements with |g[i]| > AG_GRAD_EPS (*considered),
 * count those (*stalled) whose quantized value does not move with the
 * update w - lr * g (float32 product and difference): to_bits((w - lr*g) /
 * scale) and to_bits(w / scale) under opts (NULL: nearest-even, saturate)
 * are the same grid point. Both outputs are set (not accumulated); n == 0
 * sets them to 0. Errors: AG_ERR_NULL (outputs; w, g with n > 0),
 * AG_ERR_FORMAT, AG_ERR_SCALE, AG_ERR_ARG (lr NaN or infinite; bad opts).
 * Outputs untouched on error. */
AG_API ag_status ag_bit_stall(uint64_t *stalled, uint64_t *considered,
                              const float *w, const float *g, size_t n,
                              float lr, const ag_format *fmt, float scale,
                              const ag_qopts *opts);

/* Flips: *flips = number of i where a[i] and b[i] (two snapshots of one
 * tensor) quantize to different grid points (see above). Errors:
 * AG_ERR_NULL, AG_ERR_FORMAT, AG_ERR_SCALE, AG_ERR_ARG (bad opts).
 * *flips untouched on error. */
AG_API ag_status ag_flips(uint64_t *flips, const float *a, const float *b,
                          size_t n, const ag_format *fmt, float scale,
                          const ag_qopts *opts);

/* Flips between two code snapshots (from ag_encode_u8/u16): codes that are
 * not the same grid point. Every code must be < fmt->ncodes (AG_ERR_CODE).
 * Errors otherwise: AG_ERR_NULL, AG_ERR_FORMAT, AG_ERR_STORAGE. */
AG_API ag_status ag_flips_u8(uint64_t *flips, const uint8_t *a,
                             const uint8_t *b, size_t n,
                             const ag_format *fmt);
AG_API ag_status ag_flips_u16(uint64_t *flips, const uint16_t *a,
                              const uint16_t *b, size_t n,
                              const ag_format *fmt);

/* Updates vs flips of one optimizer step: *updates = number of i with
 * |g[i]| > AG_GRAD_EPS, *flips = how many of those moved (before[i] and
 * after[i] not the same grid point), so flips <= updates. For the plain SGD
 * step after = before - lr*g (float32), updates equals ag_bit_stall's
 * considered and updates - flips its stalled. Errors as ag_flips. */
AG_API ag_status ag_update_flips(uint64_t *updates, uint64_t *flips,
                                 const float *before, const float *after,
                                 const float *g, size_t n,
                                 const ag_format *fmt, float scale,
                                 const ag_qopts *opts);

/* *ratio = 1 - flips / updates (in double), 0 when updates == 0.
 * Errors: AG_ERR_NULL, AG_ERR_ARG (flips > updates). */
AG_API ag_status ag_stall_ratio(double *ratio, uint64_t flips,
                                uint64_t updates);

/* ULP distance on a format's grid, in codes. pos(v) is the signed index of
 * the code of v / scale (to_bits under opts) on the ordered grid: +0 and -0
 * are 0, the k-th positive value is k and its negative -k (so a distance
 * across zero counts the steps on both sides), +-inf (formats with inf) one
 * beyond +-max_finite; unsigned formats: the code; signed formats without
 * zero: +smallest is 0 and -smallest -1. d[i] = pos(b[i]) -
 * pos(a[i]), or AG_ULP_NAN when a[i] or b[i] is NaN or quantizes to a NaN
 * code. d may not overlap a or b (AG_ERR_ALIAS). Errors otherwise as
 * ag_flips. */
#define AG_ULP_NAN INT32_MIN
AG_API ag_status ag_ulp_distance(int32_t *d, const float *a, const float *b,
                                 size_t n, const ag_format *fmt, float scale,
                                 const ag_qopts *opts);

/* The same distances summed: *sum_abs = sum of |d[i]|, *max_abs = max
 * |d[i]| over the pairs without NaN (0 when none), *nan_pairs = pairs with
 * a NaN (left out of the sum and max). Each output may be NULL. */
AG_API ag_status ag_ulp_distance_stats(uint64_t *sum_abs, uint32_t *max_abs,
                                       uint64_t *nan_pairs, const float *a,
                                       const float *b, size_t n,
                                       const ag_format *fmt, float scale,
                                       const ag_qopts *opts);

/* Stiffness: s[i] = the grid spacing of fmt (scaled) at w[i]. With
 * v = w[i] / scale (float32) and e = floor(log2 |v|):
 *   E >= 1: 2^(max(e, emin) - M) * scale, i.e. 2^(floor(log2|v|) - M) in
 *           the normal binades (continued as if the exponent range went on
 *           beyond max_finite, as AltGrad's formula) and the subnormal step
 *           2^(emin - M) below min_normal;
 *   E == 0: the fixed-point step 2^(-M - bias) * scale everywhere;
 *   w[i] == +-0: 0;  NaN: NaN;  +-inf: +inf.
 * The product with scale is float32 (exact unless it overflows to inf or
 * goes subnormal). s == w allowed. Errors: AG_ERR_NULL, AG_ERR_FORMAT,
 * AG_ERR_SCALE, AG_ERR_ALIAS. */
AG_API ag_status ag_stiffness(float *s, const float *w, size_t n,
                              const ag_format *fmt, float scale);

/* Exponent occupancy histogram: where a tensor sits on a format. Each
 * element x[i] is rounded (code = to_bits(x[i] / scale) under opts) and
 * counted in exactly one bin of counts[]:
 *   AG_HIST_NAN        NaN input (or a NaN code: E8M0 zero/negative, ...)
 *   AG_HIST_OVERFLOW   +-inf input, or rounded beyond max_finite
 *                      (saturated, or inf/NaN under AG_OVERFLOW_IEEE)
 *   AG_HIST_UNDERFLOW  nonzero input that became a zero code
 *   AG_HIST_ZERO       +-0 input (formats without zero: the bin of
 *                      the code it rounds to, or NaN)
 *   AG_HIST_SUBNORMAL  nonzero code with exponent field 0 (formats with
 *                      subnormals), or any nonzero code of a fixed-point
 *                      (E = 0) format
 *   AG_HIST_FIELD + e  a normal code with exponent field e (0 <= e < 2^E;
 *                      its binade is 2^(e - bias); field 0 is used only by
 *                      formats without zero, such as E8M0)
 * ag_exp_hist_len(fmt) = AG_HIST_FIELD + 2^E bins (0 for an invalid fmt).
 * ag_exp_hist ADDS to counts[0 .. len) (zero it first), so it accumulates
 * over calls; ncounts must be >= that length (else AG_ERR_SHAPE). Errors:
 * AG_ERR_NULL, AG_ERR_FORMAT, AG_ERR_SCALE, AG_ERR_ARG (bad opts),
 * AG_ERR_SHAPE. counts untouched on error. */
#define AG_HIST_NAN 0
#define AG_HIST_OVERFLOW 1
#define AG_HIST_UNDERFLOW 2
#define AG_HIST_ZERO 3
#define AG_HIST_SUBNORMAL 4
#define AG_HIST_FIELD 5
AG_API size_t ag_exp_hist_len(const ag_format *fmt);
AG_API ag_status ag_exp_hist(uint64_t *counts, size_t ncounts, const float *x,
                             size_t n, const ag_format *fmt, float scale,
                             const ag_qopts *opts);

/* ------------------------------------------------------------------------ */
/* Optimizers                                                               */
/* ------------------------------------------------------------------------ */

/* Fused optimizer steps over flat float32 arrays (DESIGN.md "Scaling and
 * diagnostics"), in place, one pass, with optional counters. Each element
 * is independent, so results are bit-identical for any thread count.
 *
 * The grid of a step is opts->format times opts->scale when a format is
 * given (codes to_bits(w / scale), nearest-even, saturate), else float32
 * itself. On that grid, per element with |g| > AG_GRAD_EPS an *update*,
 * an element whose value before and after are not the same grid point
 * (altgrad.h, Diagnostics; on float32: w_before != w_after) a *flip*, and
 * an update that is the same grid point after as before a *stall*. */
typedef struct ag_optim_counts {
    uint64_t updates;  /* elements with |g| > AG_GRAD_EPS */
    uint64_t flips;    /* elements that moved to another grid point */
    uint64_t stalls;   /* updates that stayed on their grid point */
} ag_optim_counts;

/* Stiffness preconditioning of ag_adamw_step (AG_OPTION_PRECONDITION:
 * "none", "grad", "update"). S is the stiffness at the weight before the
 * step, min(S, max_stiffness):
 *   with a format: ag_stiffness's grid step at w (its exponent range,
 *     subnormals, fixed point and scale), and at w = 0 the lowest step
 *     2^(emin - M) * scale;
 *   without: AltGrad's 2^(floor(log2|w|) - mantissa_bits) (exact exponent),
 *     1 at w = 0 or NaN.
 * GRAD   (AltGrad's ManifoldAdamW): g is multiplied by S before the
 *        moments. Adam's per-element normalisation m / sqrt(v) then cancels
 *        S almost entirely: only eps / S, zero weights and binade crossings
 *        differ from plain AdamW.
 * UPDATE the normalised update is multiplied by S, so every weight moves
 *        by about lr grid steps per step (lr is then in grid steps); the
 *        weight decay stays in real units. */
typedef enum ag_precondition {
    AG_PRECONDITION_NONE = 0,
    AG_PRECONDITION_GRAD = 1,
    AG_PRECONDITION_UPDATE = 2
} ag_precondition;

/* Options of ag_adamw_step; fill with ag_adamw_opts_default(). The
 * hyper-parameters are doubles, as Python floats, and enter the float32
 * element arithmetic as torch.optim.AdamW's scalars do. */
typedef struct ag_adamw_opts {
    double lr;              /* default 1e-3 */
    double beta1, beta2;    /* default 0.9, 0.999; each in [0, 1) */
    double eps;             /* default 1e-8; >= 0 */
    double weight_decay;    /* decoupled (AdamW); default 0.01 */
    ag_precondition precondition; /* default AG_PRECONDITION_NONE */
    const ag_format *format;/* grid of S and the counters; NULL: float32 */
    float scale;            /* the format's scale (default 1) */
    int mantissa_bits;      /* AltGrad's M when format is NULL (default 2;
                               0..23) */
    float max_stiffness;    /* upper clamp of S (default 1e6; > 0) */
    int threads;            /* as ag_qopts.threads */
} ag_adamw_opts;

AG_API ag_adamw_opts ag_adamw_opts_default(void);

/* One AdamW step t >= 1 (the step count after this step) over n elements,
 * in place on w, m (first moment) and v (second moment), as
 * torch.optim.AdamW (float32 elements, no fused multiply-add):
 *   g' = g, or g * S (GRAD);
 *   w  = w * (float)(1 - lr * weight_decay)     (when weight_decay != 0)
 *   m  = beta1 * m + (1 - beta1) * g'
 *   v  = beta2 * v + (1 - beta2) * g' * g'
 *   u  = (lr / (1 - beta1^t)) * (m / (sqrt(v) / sqrt(1 - beta2^t) + eps))
 *   w  = w - u, or w - u * S (UPDATE)
 * (the scalars computed in double, then rounded to float32 once).
 * counts (may be NULL) is ADDED to. movement (may be NULL) ADDS each
 * weight's signed move: with a format, in grid steps (the difference of
 * the grid positions of ag_ulp_distance, nothing for a NaN pair); without,
 * AltGrad's bit_position increment (w_after - w_before) /
 * max(|nextafter(w_before, +inf) - w_before|, 1e-45) in float32.
 * Errors (w, m, v, movement untouched): AG_ERR_NULL (w, m, v, g with n > 0;
 * opts), AG_ERR_FORMAT, AG_ERR_SCALE (with a format), AG_ERR_ARG (t == 0, a
 * hyper-parameter NaN/infinite or out of its range, lr < 0, precondition,
 * mantissa_bits, max_stiffness, threads), AG_ERR_ALIAS (any two of w, m, v,
 * g, movement overlap). */
AG_API ag_status ag_adamw_step(float *w, float *m, float *v, const float *g,
                               size_t n, uint64_t t,
                               const ag_adamw_opts *opts,
                               ag_optim_counts *counts, float *movement);

/* Options of ag_grid_step; fill with ag_grid_opts_default(). */
typedef struct ag_grid_opts {
    double rate;          /* rungs per unit of velocity: AltGrad's GridOptim
                             `scale` (default 6.0); >= 0 */
    double momentum;      /* default 0.9; >= 0 */
    double weight_decay;  /* coupled (L2 into the gradient); default 1e-4 */
    int rung_clip;        /* most rungs per step (default 10); >= 0 */
    uint64_t seed;        /* stochastic rounding of the rung move: element i */
    uint64_t stream;      /*   takes stream element offset + i, as in */
    uint64_t offset;      /*   ag_qopts (advance offset by n per step) */
    int threads;          /* as ag_qopts.threads */
} ag_grid_opts;

AG_API ag_grid_opts ag_grid_opts_default(void);

/* One step of AltGrad's grid optimizer (GridOptim) on the grid of fmt
 * times scale, in place on w and vel (the velocity, in gradient units):
 *   gd  = g + (float)weight_decay * w             (when weight_decay != 0)
 *   vel = (float)momentum * vel + gd
 *   r   = clamp((float)rate * vel, -rung_clip, rung_clip)   (rungs)
 *   k   = floor(r) + 1 when the element's 32 random bits are below
 *         floor((r - floor(r)) * 2^32), else floor(r)   (E[k] = r)
 *   p   = grid position (ag_ulp_distance's) of the NEAREST grid value to w
 *         (to_bits(w / scale), nearest-even, saturating), so that the first
 *         step snaps an off-grid weight to its nearest grid value (AltGrad
 *         snapped upward);
 *   w   = the grid value at position p - k, clamped to the finite grid
 *         [-max_finite, max_finite] (unsigned formats: [smallest, max]),
 *         i.e. to_real(code) * scale in float32: always a grid value.
 * A NaN weight stays NaN; a NaN velocity makes the weight NaN.
 * *updates and *flips (may be NULL; ADDED to) count |g| > AG_GRAD_EPS and
 * the elements whose value changed (w_after != w_before; NaN never counts).
 * Errors (w, vel untouched): AG_ERR_NULL (w, vel, g with n > 0; fmt, opts),
 * AG_ERR_FORMAT, AG_ERR_SCALE, AG_ERR_ARG (a hyper-parameter NaN, infinite
 * or negative, threads), AG_ERR_ALIAS (any two of w, vel, g overlap). */
AG_API ag_status ag_grid_step(float *w, float *vel, const float *g, size_t n,
                              const ag_format *fmt, float scale,
                              const ag_grid_opts *opts, uint64_t *updates,
                              uint64_t *flips);

#ifdef __cplusplus
}
#endif

#endif /* ALTGRAD_H */
