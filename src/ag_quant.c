/* SPDX-License-Identifier: MIT */
/*
 * ag_quant.c — bulk quantize / dequantize, their straight-through backward
 * passes, and packed encode / decode. Every element goes through the same
 * rounding core as ag_to_bits (ag__round), so the bulk results are by
 * construction the scalar specification applied element by element.
 */
#include "ag_internal.h"

#include <math.h>

/* Common argument checks of the float -> float calls. */
static ag_status check_common(const void *out, const void *in, size_t n,
                              size_t out_elt, size_t in_elt,
                              const ag_format *fmt, float scale,
                              const ag_qopts *opts)
{
    if (fmt) {
        ag_status st = ag_format_check(fmt);
        if (st != AG_OK)
            return st;
    } else {
        return AG_ERR_NULL;
    }
    if (!ag__scale_ok(scale))
        return AG_ERR_SCALE;
    if (opts) {
        ag_status st = ag__opts_check(opts);
        if (st != AG_OK)
            return st;
    }
    if (n == 0)
        return AG_OK;
    if (!out || !in)
        return AG_ERR_NULL;
    if (n > SIZE_MAX / 4)
        return AG_ERR_SHAPE;
    if (ag__partial_overlap(out, n * out_elt, in, n * in_elt) ||
        (out == in && out_elt != in_elt))
        return AG_ERR_ALIAS;
    return AG_OK;
}

static inline float decode_fast(const ag_format *f, uint32_t code)
{
    return f->bits <= 8 ? f->lut[code] : ag__decode(f, code);
}

static void add_flags(ag_stats *stats, unsigned flags)
{
    stats->overflow += (flags & AG__FLAG_OVERFLOW) != 0;
    stats->underflow += (flags & AG__FLAG_UNDERFLOW) != 0;
    stats->nan += (flags & AG__FLAG_NAN) != 0;
}

ag_status ag_quantize(float *y, const float *x, size_t n, const ag_format *fmt,
                      float scale, const ag_qopts *opts, ag_stats *stats)
{
    ag_status st = check_common(y, x, n, sizeof *y, sizeof *x, fmt, scale, opts);
    if (st != AG_OK || n == 0)
        return st;
    const ag_qopts o = opts ? *opts : ag_qopts_default();
    for (size_t i = 0; i < n; i++) {
        const float v = x[i] / scale;
        unsigned flags = 0;
        const uint32_t rnd =
            o.rounding == AG_ROUND_STOCHASTIC
                ? ag__random_u32(o.seed, o.stream, o.offset + i)
                : 0u;
        const uint32_t code = ag__round(fmt, v, o.rounding, o.overflow, rnd, &flags);
        float q;
        if (isnan(v))
            q = x[i] != x[i] ? x[i] : v; /* keep the input's NaN */
        else
            q = decode_fast(fmt, code) * scale;
        if (stats)
            add_flags(stats, flags);
        y[i] = q;
    }
    if (stats)
        stats->total += n;
    return AG_OK;
}

ag_status ag_quantize_backward(float *dx, const float *dy, const float *x,
                               size_t n, const ag_format *fmt, float scale,
                               const ag_qopts *opts)
{
    ag_status st = check_common(dx, dy, n, sizeof *dx, sizeof *dy, fmt, scale, opts);
    if (st != AG_OK || n == 0)
        return st;
    const int clipped = opts && opts->ste == AG_STE_CLIPPED;
    if (clipped) {
        if (!x)
            return AG_ERR_NULL;
        if (ag__partial_overlap(dx, n * sizeof *dx, x, n * sizeof *x))
            return AG_ERR_ALIAS;
    }
    const float mx = fmt->max_finite;
    for (size_t i = 0; i < n; i++) {
        if (clipped && fabsf(x[i] / scale) > mx)
            continue;
        dx[i] += dy[i];
    }
    return AG_OK;
}

static ag_status check_deq(const float *y, const float *x, size_t n, float scale)
{
    if (!ag__scale_ok(scale))
        return AG_ERR_SCALE;
    if (n == 0)
        return AG_OK;
    if (!y || !x)
        return AG_ERR_NULL;
    if (n > SIZE_MAX / 4)
        return AG_ERR_SHAPE;
    if (ag__partial_overlap(y, n * sizeof *y, x, n * sizeof *x))
        return AG_ERR_ALIAS;
    return AG_OK;
}

ag_status ag_dequantize(float *y, const float *x, size_t n, float scale)
{
    ag_status st = check_deq(y, x, n, scale);
    if (st != AG_OK)
        return st;
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * scale;
    return AG_OK;
}

ag_status ag_dequantize_backward(float *dx, const float *dy, size_t n, float scale)
{
    ag_status st = check_deq(dx, dy, n, scale);
    if (st != AG_OK)
        return st;
    for (size_t i = 0; i < n; i++)
        dx[i] += dy[i] * scale;
    return AG_OK;
}

/* Encode into codes of `width` bytes (1 or 2). */
static ag_status encode(void *codes, int width, const float *x, size_t n,
                        const ag_format *fmt, float scale, const ag_qopts *opts,
                        ag_stats *stats)
{
    ag_status st = check_common(codes, x, n, (size_t)width, sizeof *x, fmt,
                                scale, opts);
    if (st != AG_OK)
        return st;
    if (fmt->bits > 8 * width)
        return AG_ERR_STORAGE;
    if (n == 0)
        return AG_OK;
    const ag_qopts o = opts ? *opts : ag_qopts_default();
    for (size_t i = 0; i < n; i++) {
        unsigned flags = 0;
        const uint32_t rnd =
            o.rounding == AG_ROUND_STOCHASTIC
                ? ag__random_u32(o.seed, o.stream, o.offset + i)
                : 0u;
        const uint32_t code =
            ag__round(fmt, x[i] / scale, o.rounding, o.overflow, rnd, &flags);
        if (stats)
            add_flags(stats, flags);
        if (width == 1)
            ((uint8_t *)codes)[i] = (uint8_t)code;
        else
            ((uint16_t *)codes)[i] = (uint16_t)code;
    }
    if (stats)
        stats->total += n;
    return AG_OK;
}

ag_status ag_encode_u8(uint8_t *codes, const float *x, size_t n,
                       const ag_format *fmt, float scale, const ag_qopts *opts,
                       ag_stats *stats)
{
    return encode(codes, 1, x, n, fmt, scale, opts, stats);
}

ag_status ag_encode_u16(uint16_t *codes, const float *x, size_t n,
                        const ag_format *fmt, float scale, const ag_qopts *opts,
                        ag_stats *stats)
{
    return encode(codes, 2, x, n, fmt, scale, opts, stats);
}

static ag_status decode(float *y, const void *codes, int width, size_t n,
                        const ag_format *fmt, float scale)
{
    ag_status st = check_common(y, codes, n, sizeof *y, (size_t)width, fmt,
                                scale, NULL);
    if (st != AG_OK)
        return st;
    if (fmt->bits > 8 * width)
        return AG_ERR_STORAGE;
    if (n == 0)
        return AG_OK;
    if (fmt->bits < 8 * width) { /* every code must exist before any write */
        for (size_t i = 0; i < n; i++) {
            const uint32_t c = width == 1 ? ((const uint8_t *)codes)[i]
                                          : ((const uint16_t *)codes)[i];
            if (c >= fmt->ncodes)
                return AG_ERR_CODE;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const uint32_t c = width == 1 ? ((const uint8_t *)codes)[i]
                                      : ((const uint16_t *)codes)[i];
        y[i] = decode_fast(fmt, c) * scale;
    }
    return AG_OK;
}

ag_status ag_decode_u8(float *y, const uint8_t *codes, size_t n,
                       const ag_format *fmt, float scale)
{
    return decode(y, codes, 1, n, fmt, scale);
}

ag_status ag_decode_u16(float *y, const uint16_t *codes, size_t n,
                        const ag_format *fmt, float scale)
{
    return decode(y, codes, 2, n, fmt, scale);
}
