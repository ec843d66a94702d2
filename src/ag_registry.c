/* SPDX-License-Identifier: MIT */
/*
 * ag_registry.c — the static const registry of named formats and the format
 * spec parser (BASE[:KEY=VALUE]...). The table itself is generated at build
 * time (tools/gen_registry.c over ag_registry_defs.h), so lookups need no
 * initialisation and no global mutable state.
 */
#include "ag_internal.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static const ag_format registry[] = {
#include "ag_registry.inc"
};

#define NREG (sizeof registry / sizeof registry[0])

size_t ag_format_count(void) { return NREG; }

const ag_format *ag_format_at(size_t i)
{
    return i < NREG ? &registry[i] : NULL;
}

int ag__format_in_registry(const ag_format *f)
{
    const uintptr_t p = (uintptr_t)f, a = (uintptr_t)registry;
    return p >= a && p - a < sizeof registry && (p - a) % sizeof *registry == 0;
}

/* ASCII case-insensitive equality of s[0..n) and the NUL-terminated t */
static int ieq(const char *s, size_t n, const char *t)
{
    size_t i = 0;
    for (; i < n && t[i]; i++)
        if (tolower((unsigned char)s[i]) != tolower((unsigned char)t[i]))
            return 0;
    return i == n && t[i] == '\0';
}

static const ag_format *lookup(const char *s, size_t n)
{
    for (size_t i = 0; i < NREG; i++)
        if (ieq(s, n, registry[i].name))
            return &registry[i];
    return NULL;
}

const ag_format *ag_format_get(const char *name)
{
    return name ? lookup(name, strlen(name)) : NULL;
}

static ag_status fail(ag_status st, char *err, size_t errlen, const char *fmt,
                      ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* Parse a decimal int (optional sign) that is all of s[0..n). */
static int parse_int(const char *s, size_t n, long *out)
{
    char buf[32];
    if (n == 0 || n >= sizeof buf)
        return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)buf[i]) && !(i == 0 && (buf[i] == '-' || buf[i] == '+')))
            return 0;
    if (!isdigit((unsigned char)buf[n - 1]))
        return 0;
    errno = 0;
    *out = strtol(buf, NULL, 10);
    return errno == 0;
}

static int parse_bool(const char *s, size_t n, int *out)
{
    if (ieq(s, n, "yes") || ieq(s, n, "1") || ieq(s, n, "true")) {
        *out = 1;
        return 1;
    }
    if (ieq(s, n, "no") || ieq(s, n, "0") || ieq(s, n, "false")) {
        *out = 0;
        return 1;
    }
    return 0;
}

ag_status ag_format_parse(ag_format *out, const char *spec, char *err,
                          size_t errlen)
{
    if (err && errlen > 0)
        err[0] = '\0';
    if (!out || !spec)
        return fail(AG_ERR_NULL, err, errlen, "format spec is NULL");
    if (*spec == '\0')
        return fail(AG_ERR_SPEC, err, errlen, "empty format spec");

    const char *colon = strchr(spec, ':');
    const size_t blen = colon ? (size_t)(colon - spec) : strlen(spec);
    int E, M, bias, sgn, nz;
    ag_specials sp;
    const ag_format *base = lookup(spec, blen);
    if (base) {
        E = base->ebits;
        M = base->mbits;
        bias = base->bias;
        sgn = base->is_signed;
        sp = base->specials;
        nz = base->no_zero;
    } else {
        /* eXmY */
        long le = -1, lm = -1;
        size_t i = 0;
        if (blen >= 4 && tolower((unsigned char)spec[0]) == 'e') {
            size_t j = 1;
            while (j < blen && isdigit((unsigned char)spec[j]))
                j++;
            if (j > 1 && j < blen && tolower((unsigned char)spec[j]) == 'm' &&
                j + 1 < blen && j - 1 <= 3 && blen - j - 1 <= 3) {
                size_t k = j + 1;
                while (k < blen && isdigit((unsigned char)spec[k]))
                    k++;
                if (k == blen) {
                    le = strtol(spec + 1, NULL, 10);
                    lm = strtol(spec + j + 1, NULL, 10);
                    i = k;
                }
            }
        }
        if (i == 0)
            return fail(AG_ERR_SPEC, err, errlen,
                        "unknown format '%.*s': expected a registry name "
                        "(see 'altgrad formats') or eXmY",
                        (int)(blen > 64 ? 64 : blen), spec);
        if (le > 8)
            return fail(AG_ERR_RANGE, err, errlen,
                        "'%.*s': %ld exponent bits > 8: values beyond "
                        "float32's range are out of scope",
                        (int)blen, spec, le);
        if (lm > 23)
            return fail(AG_ERR_RANGE, err, errlen,
                        "'%.*s': %ld mantissa bits > 23: finer than float32",
                        (int)blen, spec, lm);
        if (le + lm < 1)
            return fail(AG_ERR_RANGE, err, errlen,
                        "'%.*s': a format needs at least one exponent or "
                        "mantissa bit", (int)blen, spec);
        E = (int)le;
        M = (int)lm;
        bias = E <= 1 ? 0 : (1 << (E - 1)) - 1;
        sgn = 1;
        sp = AG_SPECIALS_NONE;
        nz = 0;
    }

    unsigned seen = 0;
    const char *p = colon;
    while (p) {
        const char *part = p + 1;
        const char *next = strchr(part, ':');
        const size_t plen = next ? (size_t)(next - part) : strlen(part);
        const char *eq = memchr(part, '=', plen);
        if (plen == 0)
            return fail(AG_ERR_SPEC, err, errlen,
                        "empty option in '%s' (a stray ':')", spec);
        if (!eq)
            return fail(AG_ERR_SPEC, err, errlen,
                        "option '%.*s' is not KEY=VALUE", (int)plen, part);
        const size_t klen = (size_t)(eq - part);
        const char *val = eq + 1;
        const size_t vlen = plen - klen - 1;
        unsigned bit;
        if (ieq(part, klen, "bias")) {
            long v;
            bit = 1;
            if (!parse_int(val, vlen, &v) || v < -1000 || v > 1000)
                return fail(AG_ERR_SPEC, err, errlen,
                            "bad value '%.*s' for bias: expected an integer "
                            "in -1000..1000", (int)vlen, val);
            bias = (int)v;
        } else if (ieq(part, klen, "specials")) {
            /* the value is not NUL-terminated: a copy for the one
             * vocabulary of names (ag_option_parse) */
            char name[16];
            int v = 0;
            bit = 2;
            if (vlen < sizeof name) {
                memcpy(name, val, vlen);
                name[vlen] = '\0';
            }
            if (vlen >= sizeof name ||
                ag_option_parse(&v, AG_OPTION_SPECIALS, name, NULL, 0) != AG_OK)
                return fail(AG_ERR_SPEC, err, errlen,
                            "bad value '%.*s' for specials: expected none, "
                            "ieee, fn or fnuz", (int)vlen, val);
            sp = (ag_specials)v;
        } else if (ieq(part, klen, "signed")) {
            bit = 4;
            if (!parse_bool(val, vlen, &sgn))
                return fail(AG_ERR_SPEC, err, errlen,
                            "bad value '%.*s' for signed: expected yes or no",
                            (int)vlen, val);
        } else if (ieq(part, klen, "zero")) {
            int z;
            bit = 8;
            if (!parse_bool(val, vlen, &z))
                return fail(AG_ERR_SPEC, err, errlen,
                            "bad value '%.*s' for zero: expected yes or no",
                            (int)vlen, val);
            nz = !z;
        } else {
            return fail(AG_ERR_SPEC, err, errlen,
                        "unknown option '%.*s': expected bias, specials, "
                        "signed or zero", (int)klen, part);
        }
        if (seen & bit)
            return fail(AG_ERR_SPEC, err, errlen, "option '%.*s' given twice",
                        (int)klen, part);
        seen |= bit;
        p = next;
    }

    ag_format f;
    ag_status st = ag_format_init(&f, spec, E, M, bias, sgn, sp, nz);
    if (st == AG_ERR_RANGE)
        return fail(st, err, errlen,
                    "'%s': with bias %d its values do not fit float32 "
                    "(largest above 2^128 or smallest step below 2^-149), "
                    "or it is wider than 16 bits", spec, bias);
    if (st != AG_OK && nz && E == 0) /* name the part at fault */
        return fail(st, err, errlen,
                    "'%s': zero=no does not fit this layout (zero=no needs "
                    "E >= 1)", spec);
    if (st != AG_OK)
        return fail(st, err, errlen,
                    "'%s': specials=%s does not fit this layout (ieee needs "
                    "E >= 1 and a finite binade, fnuz needs a sign bit and a "
                    "zero, zero=no needs E >= 1)",
                    spec, ag_specials_name(sp));
    if (base && !colon)
        f = *base; /* the registry entry itself, with its citation */
    *out = f;
    return AG_OK;
}
