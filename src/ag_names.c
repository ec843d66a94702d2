/* SPDX-License-Identifier: MIT */
/*
 * ag_names.c — the one vocabulary of option names: the canonical name of
 * every value of every option enum (rounding, overflow, STE, kernel,
 * specials, scaler first-step policy, MX scale rule, optimizer
 * preconditioning), their aliases, and parsing with the
 * message that lists the valid names. ag_specials_name and ag_kernel_name
 * read the same table. Canonical names are index = enum value.
 */
#include "ag_internal.h"

#include <stdio.h>

/* A value's canonical name and up to two aliases (NULL-terminated). */
typedef struct name_entry {
    const char *name;
    const char *alias[3];
} name_entry;

typedef struct name_kind {
    const char *kind;
    const name_entry *entries;
    size_t count;
} name_kind;

static const name_entry rounding_names[] = {
    {"nearest-even", {"nearest", "rne", NULL}},
    {"nearest-away", {NULL, NULL, NULL}},
    {"toward-zero", {"truncate", "rtz", NULL}},
    {"down", {NULL, NULL, NULL}},
    {"up", {NULL, NULL, NULL}},
    {"stochastic", {"sr", NULL, NULL}},
};

static const name_entry overflow_names[] = {
    {"saturate", {NULL, NULL, NULL}},
    {"ieee", {NULL, NULL, NULL}},
};

static const name_entry ste_names[] = {
    {"identity", {"none", "ste", NULL}},
    {"clipped", {NULL, NULL, NULL}},
};

static const name_entry kernel_names[] = {
    {"auto", {NULL, NULL, NULL}},
    {"scalar", {NULL, NULL, NULL}},
    {"portable", {NULL, NULL, NULL}},
    {"avx2", {NULL, NULL, NULL}},
    {"avx512", {NULL, NULL, NULL}},
};

static const name_entry specials_names[] = {
    {"none", {NULL, NULL, NULL}},
    {"ieee", {NULL, NULL, NULL}},
    {"fn", {NULL, NULL, NULL}},
    {"fnuz", {NULL, NULL, NULL}},
};

static const name_entry first_names[] = {
    {"current", {NULL, NULL, NULL}},
    {"amax-one", {NULL, NULL, NULL}},
    {"scale-one", {NULL, NULL, NULL}},
};

static const name_entry mx_scale_names[] = {
    {"floor", {NULL, NULL, NULL}},
    {"rceil", {NULL, NULL, NULL}},
};

static const name_entry precondition_names[] = {
    {"none", {NULL, NULL, NULL}},
    {"grad", {NULL, NULL, NULL}},
    {"update", {NULL, NULL, NULL}},
};

#define AG__N(a) (sizeof(a) / sizeof((a)[0]))

/* Indexed by ag_option_kind; each table's index is the enum value (the
 * asserts below pin the last value of each enum to its table's length). */
static const name_kind kinds[] = {
    {"rounding", rounding_names, AG__N(rounding_names)},
    {"overflow", overflow_names, AG__N(overflow_names)},
    {"ste", ste_names, AG__N(ste_names)},
    {"kernel", kernel_names, AG__N(kernel_names)},
    {"specials", specials_names, AG__N(specials_names)},
    {"scaler-first", first_names, AG__N(first_names)},
    {"mx-scale", mx_scale_names, AG__N(mx_scale_names)},
    {"precondition", precondition_names, AG__N(precondition_names)},
};

_Static_assert(AG__N(rounding_names) == AG_ROUND_STOCHASTIC + 1, "rounding names");
_Static_assert(AG__N(overflow_names) == AG_OVERFLOW_IEEE + 1, "overflow names");
_Static_assert(AG__N(ste_names) == AG_STE_CLIPPED + 1, "ste names");
_Static_assert(AG__N(kernel_names) == AG_KERNEL_AVX512 + 1, "kernel names");
_Static_assert(AG__N(specials_names) == AG_SPECIALS_FNUZ + 1, "specials names");
_Static_assert(AG__N(first_names) == AG_SCALER_FIRST_SCALE_ONE + 1, "first names");
_Static_assert(AG__N(mx_scale_names) == AG_MX_SCALE_RCEIL + 1, "mx-scale names");
_Static_assert(AG__N(precondition_names) == AG_PRECONDITION_UPDATE + 1,
               "precondition names");
_Static_assert(AG__N(kinds) == AG_OPTION_PRECONDITION + 1, "option kinds");

static const name_kind *kind_of(ag_option_kind kind)
{
    return (unsigned)kind < AG__N(kinds) ? &kinds[kind] : NULL;
}

const char *ag_option_kind_name(ag_option_kind kind)
{
    const name_kind *k = kind_of(kind);
    return k ? k->kind : "?";
}

size_t ag_option_count(ag_option_kind kind)
{
    const name_kind *k = kind_of(kind);
    return k ? k->count : 0;
}

const char *ag_option_name(ag_option_kind kind, int value)
{
    const name_kind *k = kind_of(kind);
    if (!k || value < 0 || (size_t)value >= k->count)
        return NULL;
    return k->entries[value].name;
}

const char *ag_specials_name(ag_specials s)
{
    const char *n = ag_option_name(AG_OPTION_SPECIALS, (int)s);
    return n ? n : "?";
}

const char *ag_kernel_name(int kernel)
{
    const char *n = ag_option_name(AG_OPTION_KERNEL, kernel);
    return n ? n : "?";
}

/* 1 when `name` spells `ref` (lower case, '-') up to ASCII case and '_'. */
static int same_name(const char *name, const char *ref)
{
    for (;; name++, ref++) {
        char c = *name;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        else if (c == '_')
            c = '-';
        if (c != *ref)
            return 0;
        if (c == '\0')
            return 1;
    }
}

/* An appender that never overflows err[0..len) and keeps it terminated. */
typedef struct msg_buf {
    char *p;
    size_t len, used;
} msg_buf;

static void msg_put(msg_buf *m, const char *s, size_t n)
{
    for (size_t i = 0; i < n && m->used + 1 < m->len; i++)
        m->p[m->used++] = s[i];
    m->p[m->used] = '\0';
}

static void msg_str(msg_buf *m, const char *s)
{
    msg_put(m, s, strlen(s));
}

/* The user's text, control bytes written as '?', at most `cap` bytes of it
 * (then "..."). */
#define AG__ECHO_MAX 64
static void msg_echo(msg_buf *m, const char *s)
{
    size_t i = 0;
    for (; s[i] && i < AG__ECHO_MAX; i++) {
        const unsigned char c = (unsigned char)s[i];
        const char out = c < 0x20u || c == 0x7fu ? '?' : (char)c;
        msg_put(m, &out, 1);
    }
    if (s[i])
        msg_str(m, "...");
}

ag_status ag_option_parse(int *value, ag_option_kind kind, const char *name,
                          char *err, size_t errlen)
{
    msg_buf m = {err, errlen, 0};
    if (err && errlen > 0)
        err[0] = '\0';
    if (!value || !name) {
        if (err && errlen > 0)
            msg_str(&m, !value ? "option parse: value is NULL"
                               : "option parse: name is NULL");
        return AG_ERR_NULL;
    }
    const name_kind *k = kind_of(kind);
    if (!k) {
        if (err && errlen > 0) {
            char num[32];
            snprintf(num, sizeof num, "%d", (int)kind);
            msg_str(&m, "unknown option kind ");
            msg_str(&m, num);
        }
        return AG_ERR_ARG;
    }
    for (size_t v = 0; v < k->count; v++) {
        const name_entry *e = &k->entries[v];
        int hit = same_name(name, e->name);
        for (size_t a = 0; !hit && a < AG__N(e->alias) && e->alias[a]; a++)
            hit = same_name(name, e->alias[a]);
        if (hit) {
            *value = (int)v;
            return AG_OK;
        }
    }
    if (err && errlen > 0) {
        msg_str(&m, "unknown ");
        msg_str(&m, k->kind);
        msg_str(&m, " '");
        msg_echo(&m, name);
        msg_str(&m, "' (expected one of: ");
        for (size_t v = 0; v < k->count; v++) {
            if (v)
                msg_str(&m, ", ");
            msg_str(&m, k->entries[v].name);
        }
        msg_str(&m, ")");
    }
    return AG_ERR_ARG;
}
