/* SPDX-License-Identifier: MIT */
/*
 * ag_scaler.c — delayed scaling: the one owner of "the scale of a tensor
 * from its amax window". A scaler is a format, an amax window (an
 * ag_amax_history of history_len values), the scale and quantize options, a
 * first-step policy, a step count, the stochastic offset and the last scale
 * used. It computes nothing itself: scales come from ag_compute_scale,
 * rounding from ag_quantize, amax from ag_amax, the window is an
 * ag_amax_history.
 *
 * State bytes (ag_scaler_save / ag_scaler_load), every field little-endian
 * whatever the host, written byte by byte (never a struct dump):
 *     off  size  field
 *       0     4  magic "AGSC"
 *       4     4  version (1)
 *       8     8  record size in bytes: 136 + 4 * history_len
 *      16    24  format: ebits, mbits, bias, is_signed, no_zero, specials
 *                (int32 each)
 *      40     8  history_len
 *      48    12  scale options: margin, scale_min (float32 bits), pow2
 *      60    36  quantize options: rounding, overflow, ste (uint32), seed,
 *                stream, starting offset (uint64); first-step policy
 *                (uint32)
 *     100     4  last scale (float32 bits)
 *     104     8  steps
 *     112     8  stochastic offset
 *     120     8  window count
 *     128  4*len window values, oldest first; unused slots zero
 *       ...   8  FNV-1a 64 of every byte before it
 * quant.threads and quant.kernel change no result and are not part of the
 * record. The record is canonical: equal states give equal bytes, whatever
 * the thread count or code path, and a restored scaler saves exactly the
 * record it was loaded from.
 */
#include "ag_internal.h"

#include <stdlib.h>

struct ag_scaler {
    ag_format fmt;        /* own copy */
    ag_scaler_opts opts;  /* own copy; opts.quant.offset = starting offset */
    ag_amax_history *win; /* the window */
    uint64_t steps;
    uint64_t offset;      /* stream element of the next call's element 0 */
    float last_scale;     /* 0 before the first step */
};

#define REC_MAGIC "AGSC"
#define REC_VERSION 1u
#define REC_WINDOW 128u /* offset of the window values */
#define REC_TAIL 8u     /* the checksum */

ag_scaler_opts ag_scaler_opts_default(void)
{
    ag_scaler_opts o;
    memset(&o, 0, sizeof o);
    o.history_len = 16;
    o.scale = ag_scale_opts_default();
    o.quant = ag_qopts_default();
    o.first = AG_SCALER_FIRST_CURRENT;
    return o;
}

/* Largest window whose record size fits size_t. */
#define MAX_LEN ((SIZE_MAX - REC_WINDOW - REC_TAIL) / sizeof(float))

ag_status ag_scaler_create(ag_scaler **out, const ag_format *fmt,
                           const ag_scaler_opts *opts)
{
    if (!out) /* *out cannot be set */
        return AG_ERR_NULL;
    *out = NULL;
    const ag_scaler_opts o = opts ? *opts : ag_scaler_opts_default();
    ag__chk c = AG__CHK_INIT;
    ag__chk_fmt(&c, fmt);
    ag__chk_arg(&c, o.history_len != 0 && o.history_len <= MAX_LEN &&
                        (unsigned)o.first <= (unsigned)AG_SCALER_FIRST_SCALE_ONE);
    ag__chk_sopts(&c, &o.scale);
    ag__chk_qopts(&c, &o.quant);
    const ag_status st = ag__chk_status(&c);
    if (st != AG_OK)
        return st;
    ag_scaler *s = malloc(sizeof *s);
    if (!s)
        return AG_ERR_NOMEM;
    if (ag_amax_history_create(&s->win, o.history_len) != AG_OK) {
        free(s); /* history_len was checked: only memory can fail */
        return AG_ERR_NOMEM;
    }
    s->fmt = *fmt;
    s->opts = o;
    ag_scaler_reset(s);
    *out = s;
    return AG_OK;
}

void ag_scaler_free(ag_scaler *s)
{
    if (!s)
        return;
    ag_amax_history_free(s->win);
    free(s);
}

void ag_scaler_reset(ag_scaler *s)
{
    if (!s)
        return;
    ag_amax_history_reset(s->win);
    s->steps = 0;
    s->offset = s->opts.quant.offset;
    s->last_scale = 0.0f;
}

float ag_scaler_window_max(const ag_scaler *s)
{
    return s ? ag_amax_history_max(s->win) : 0.0f;
}

/* Step 1 for a checked amax_now (>= 0 or +inf); cannot fail. */
static float scale_for(const ag_scaler *s, float amax_now)
{
    float amax;
    if (ag_amax_history_count(s->win) > 0) {
        amax = ag_scaler_window_max(s);
    } else {
        switch (s->opts.first) {
        case AG_SCALER_FIRST_AMAX_ONE:
            amax = 1.0f;
            break;
        case AG_SCALER_FIRST_SCALE_ONE:
            return 1.0f;
        case AG_SCALER_FIRST_CURRENT:
        default:
            amax = amax_now;
            break;
        }
    }
    float scale = 0.0f;
    const ag_status st = ag_compute_scale(&scale, amax, &s->fmt, &s->opts.scale);
    assert(st == AG_OK); /* format and options checked at create */
    (void)st;
    return scale;
}

/* Step 3: record amax (>= 0 or +inf) of a step over n elements that used
 * `scale`. */
static void record(ag_scaler *s, float amax, size_t n, float scale)
{
    const ag_status st = ag_amax_history_push(s->win, amax); /* -0 -> +0 */
    assert(st == AG_OK); /* amax was checked: >= 0 or +inf */
    (void)st;
    s->steps++;
    s->offset += (uint64_t)n;
    s->last_scale = scale;
}

ag_status ag_scaler_quantize(ag_scaler *s, float *y, const float *x, size_t n,
                             ag_stats *stats)
{
    ag__chk c = AG__CHK_INIT;
    ag__chk_ptr(&c, s);
    if (n) {
        ag__chk_ptr(&c, y);
        ag__chk_ptr(&c, x);
    }
    ag_status st = ag__chk_status(&c);
    if (st != AG_OK) /* the rest is ag_quantize's to check */
        return st;
    float amax = 0.0f;
    st = ag_amax(&amax, x, n, NULL);
    if (st != AG_OK)
        return st;
    /* amax is read before y is written: y == x works */
    const float scale = scale_for(s, amax);
    ag_qopts o = s->opts.quant;
    o.offset = s->offset;
    if ((st = ag_quantize(y, x, n, &s->fmt, scale, &o, stats)) != AG_OK)
        return st;
    record(s, amax, n, scale);
    return AG_OK;
}

ag_status ag_scaler_backward(const ag_scaler *s, float *dx, const float *dy,
                             const float *x, size_t n)
{
    ag__chk c = AG__CHK_INIT;
    ag__chk_ptr(&c, s);
    if (n) {
        ag__chk_ptr(&c, dx);
        ag__chk_ptr(&c, dy);
        if (s && s->opts.quant.ste == AG_STE_CLIPPED)
            ag__chk_ptr(&c, x);
    }
    ag__chk_arg(&c, s && s->steps > 0);
    const ag_status st = ag__chk_status(&c);
    if (st != AG_OK) /* the rest is ag_quantize_backward's */
        return st;
    return ag_quantize_backward(dx, dy, x, n, &s->fmt, s->last_scale,
                                &s->opts.quant);
}

ag_status ag_scaler_scale(const ag_scaler *s, float amax_now, float *scale)
{
    ag__chk c = AG__CHK_INIT;
    ag__chk_ptr(&c, s);
    ag__chk_ptr(&c, scale);
    ag__chk_arg(&c, !s || ag_amax_history_count(s->win) > 0 ||
                        s->opts.first != AG_SCALER_FIRST_CURRENT ||
                        amax_now >= 0.0f);
    const ag_status st = ag__chk_status(&c);
    if (st != AG_OK)
        return st;
    *scale = scale_for(s, amax_now);
    return AG_OK;
}

ag_status ag_scaler_record(ag_scaler *s, float amax, size_t n)
{
    ag__chk c = AG__CHK_INIT;
    ag__chk_ptr(&c, s);
    ag__chk_arg(&c, amax >= 0.0f);
    const ag_status st = ag__chk_status(&c);
    if (st != AG_OK)
        return st;
    record(s, amax, n, scale_for(s, amax));
    return AG_OK;
}

float ag_scaler_last_scale(const ag_scaler *s)
{
    return s ? s->last_scale : 0.0f;
}

size_t ag_scaler_window_count(const ag_scaler *s)
{
    return s ? ag_amax_history_count(s->win) : 0;
}

uint64_t ag_scaler_steps(const ag_scaler *s)
{
    return s ? s->steps : 0;
}

uint64_t ag_scaler_offset(const ag_scaler *s)
{
    return s ? s->offset : 0;
}

const ag_format *ag_scaler_format(const ag_scaler *s)
{
    return s ? &s->fmt : NULL;
}

const ag_scaler_opts *ag_scaler_options(const ag_scaler *s)
{
    return s ? &s->opts : NULL;
}

/* ------------------------------------------------------------------------ */
/* State bytes                                                              */
/* ------------------------------------------------------------------------ */

static size_t record_size(size_t len)
{
    return REC_WINDOW + len * sizeof(float) + REC_TAIL;
}

ag_status ag_scaler_state_size(const ag_scaler *s, size_t *size)
{
    ag__chk c = AG__CHK_INIT;
    ag__chk_ptr(&c, s);
    ag__chk_ptr(&c, size);
    const ag_status st = ag__chk_status(&c);
    if (st != AG_OK)
        return st;
    *size = record_size(s->opts.history_len);
    return AG_OK;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t fnv1a64(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* The header (bytes 0 .. REC_WINDOW) that describes s: everything but the
 * window values and the checksum. */
static void put_header(unsigned char *p, const ag_scaler *s)
{
    const ag_format *f = &s->fmt;
    const ag_scaler_opts *o = &s->opts;
    memcpy(p, REC_MAGIC, 4);
    put32(p + 4, REC_VERSION);
    put64(p + 8, (uint64_t)record_size(o->history_len));
    put32(p + 16, (uint32_t)f->ebits);
    put32(p + 20, (uint32_t)f->mbits);
    put32(p + 24, (uint32_t)f->bias);
    put32(p + 28, (uint32_t)f->is_signed);
    put32(p + 32, (uint32_t)f->no_zero);
    put32(p + 36, (uint32_t)f->specials);
    put64(p + 40, (uint64_t)o->history_len);
    put32(p + 48, ag__f2u(o->scale.margin));
    put32(p + 52, ag__f2u(o->scale.scale_min));
    put32(p + 56, (uint32_t)o->scale.pow2);
    put32(p + 60, (uint32_t)o->quant.rounding);
    put32(p + 64, (uint32_t)o->quant.overflow);
    put32(p + 68, (uint32_t)o->quant.ste);
    put64(p + 72, o->quant.seed);
    put64(p + 80, o->quant.stream);
    put64(p + 88, o->quant.offset);
    put32(p + 96, (uint32_t)o->first);
    put32(p + 100, ag__f2u(s->last_scale));
    put64(p + 104, s->steps);
    put64(p + 112, s->offset);
    put64(p + 120, (uint64_t)ag_amax_history_count(s->win));
}

ag_status ag_scaler_save(const ag_scaler *s, void *buf, size_t cap)
{
    ag__chk c = AG__CHK_INIT;
    ag__chk_ptr(&c, s);
    ag__chk_ptr(&c, buf);
    ag__chk_arg(&c, !s || cap >= record_size(s->opts.history_len));
    const ag_status st = ag__chk_status(&c);
    if (st != AG_OK)
        return st;
    const size_t len = s->opts.history_len, size = record_size(len);
    unsigned char *p = buf;
    put_header(p, s);
    const size_t count = ag_amax_history_count(s->win);
    for (size_t i = 0; i < len; i++) { /* oldest first */
        const float v = i < count ? ag__amax_history_at(s->win, i) : 0.0f;
        put32(p + REC_WINDOW + 4 * i, ag__f2u(v));
    }
    put64(p + size - REC_TAIL, fnv1a64(p, size - REC_TAIL));
    return AG_OK;
}

ag_status ag_scaler_load(ag_scaler *s, const void *buf, size_t size)
{
    ag__chk c = AG__CHK_INIT;
    ag__chk_ptr(&c, s);
    ag__chk_ptr(&c, buf);
    const ag_status st = ag__chk_status(&c);
    if (st != AG_OK)
        return st;
    /* the record's contents (the data) are checked below */
    const size_t len = s->opts.history_len;
    const unsigned char *p = buf;
    /* the record must be exactly this scaler's size: that also keeps every
     * read below inside buf */
    if (size != record_size(len) || memcmp(p, REC_MAGIC, 4) != 0 ||
        get32(p + 4) != REC_VERSION || get64(p + 8) != (uint64_t)size ||
        get64(p + size - REC_TAIL) != fnv1a64(p, size - REC_TAIL))
        return AG_ERR_ARG;
    unsigned char mine[REC_WINDOW];
    put_header(mine, s);
    if (memcmp(p, mine, 100) != 0) /* the format and the options */
        return AG_ERR_ARG;
    /* the state must be one a scaler can reach */
    const float last = ag__u2f(get32(p + 100));
    const uint64_t steps = get64(p + 104), offset = get64(p + 112),
                   count = get64(p + 120);
    if (count != (steps < (uint64_t)len ? steps : (uint64_t)len))
        return AG_ERR_ARG;
    if (steps == 0 ? ag__f2u(last) != 0u : !ag__scale_ok(last))
        return AG_ERR_ARG;
    for (size_t i = 0; i < len; i++) {
        const uint32_t u = get32(p + REC_WINDOW + 4 * i);
        const float v = ag__u2f(u);
        /* held: >= +0 (never -0) or +inf; unused: +0 */
        if (i < count ? !(v >= 0.0f) || u == 0x80000000u : u != 0u)
            return AG_ERR_ARG;
    }
    ag_amax_history_reset(s->win);
    for (size_t i = 0; i < (size_t)count; i++) {
        const ag_status pst =
            ag_amax_history_push(s->win, ag__u2f(get32(p + REC_WINDOW + 4 * i)));
        assert(pst == AG_OK); /* every value was checked above */
        (void)pst;
    }
    s->steps = steps;
    s->offset = offset;
    s->last_scale = last;
    return AG_OK;
}
