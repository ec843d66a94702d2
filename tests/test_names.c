/* SPDX-License-Identifier: MIT */
/*
 * test_names.c — the option vocabulary (ag_option_*): every canonical name
 * against a table written here from the header's list, each alias, '-' and
 * '_' alike, ASCII case, the unknown-name message (the bad name, then every
 * canonical name), control bytes written as '?', truncation to errlen, NULL
 * arguments, unknown kinds; ag_specials_name and ag_kernel_name read the
 * same names.
 */
#include "ag_test.h"

#include <altgrad.h>
#include <ctype.h>

/* The header's list, written out independently. */
static const struct {
    ag_option_kind kind;
    const char *kind_name;
    const char *names[7];
} vocab[] = {
    {AG_OPTION_ROUNDING, "rounding",
     {"nearest-even", "nearest-away", "toward-zero", "down", "up", "stochastic", NULL}},
    {AG_OPTION_OVERFLOW, "overflow", {"saturate", "ieee", NULL}},
    {AG_OPTION_STE, "ste", {"identity", "clipped", NULL}},
    {AG_OPTION_KERNEL, "kernel", {"auto", "scalar", "portable", "avx2", "avx512", NULL}},
    {AG_OPTION_SPECIALS, "specials", {"none", "ieee", "fn", "fnuz", NULL}},
    {AG_OPTION_SCALER_FIRST, "scaler-first", {"current", "amax-one", "scale-one", NULL}},
    {AG_OPTION_MX_SCALE, "mx-scale", {"floor", "rceil", NULL}},
    {AG_OPTION_PRECONDITION, "precondition", {"none", "grad", "update", NULL}},
};
#define NKINDS (sizeof vocab / sizeof vocab[0])

static const struct {
    ag_option_kind kind;
    const char *alias;
    int value;
} aliases[] = {
    {AG_OPTION_ROUNDING, "nearest", AG_ROUND_NEAREST_EVEN},
    {AG_OPTION_ROUNDING, "rne", AG_ROUND_NEAREST_EVEN},
    {AG_OPTION_ROUNDING, "truncate", AG_ROUND_TOWARD_ZERO},
    {AG_OPTION_ROUNDING, "rtz", AG_ROUND_TOWARD_ZERO},
    {AG_OPTION_ROUNDING, "sr", AG_ROUND_STOCHASTIC},
    {AG_OPTION_STE, "none", AG_STE_IDENTITY},
    {AG_OPTION_STE, "ste", AG_STE_IDENTITY},
};

static int parse(ag_option_kind kind, const char *name)
{
    int v = -77;
    const ag_status st = ag_option_parse(&v, kind, name, NULL, 0);
    return st == AG_OK ? v : -1;
}

/* s with '-' -> '_' and every other letter upper case */
static void spell(char *out, const char *s, int swap, int upper)
{
    size_t i = 0;
    for (; s[i]; i++) {
        char c = s[i];
        if (swap && c == '-')
            c = '_';
        if (upper && (i % 2 == 0 || upper == 2))
            c = (char)toupper((unsigned char)c);
        out[i] = c;
    }
    out[i] = '\0';
}

static void test_canonical(void)
{
    for (size_t k = 0; k < NKINDS; k++) {
        const ag_option_kind kind = vocab[k].kind;
        size_t n = 0;
        while (vocab[k].names[n])
            n++;
        AG_CHECK(ag_option_count(kind) == n, "%s: count %zu want %zu", vocab[k].kind_name,
                 ag_option_count(kind), n);
        AG_CHECK(strcmp(ag_option_kind_name(kind), vocab[k].kind_name) == 0, "kind name %s",
                 vocab[k].kind_name);
        for (size_t v = 0; v < n; v++) {
            const char *name = vocab[k].names[v];
            const char *got = ag_option_name(kind, (int)v);
            AG_CHECK(got && strcmp(got, name) == 0, "%s %zu: name %s want %s",
                     vocab[k].kind_name, v, got ? got : "(null)", name);
            char buf[64];
            for (int swap = 0; swap < 2; swap++)
                for (int upper = 0; upper < 3; upper++) {
                    spell(buf, name, swap, upper);
                    AG_CHECK(parse(kind, buf) == (int)v, "%s: parse '%s'", vocab[k].kind_name,
                             buf);
                }
        }
        AG_CHECK(ag_option_name(kind, (int)n) == NULL && ag_option_name(kind, -1) == NULL,
                 "%s: names beyond the values", vocab[k].kind_name);
    }
    /* the enum values are the indices */
    AG_CHECK(parse(AG_OPTION_ROUNDING, "stochastic") == AG_ROUND_STOCHASTIC &&
                 parse(AG_OPTION_ROUNDING, "down") == AG_ROUND_DOWN &&
                 parse(AG_OPTION_OVERFLOW, "ieee") == AG_OVERFLOW_IEEE &&
                 parse(AG_OPTION_STE, "clipped") == AG_STE_CLIPPED &&
                 parse(AG_OPTION_KERNEL, "avx2") == AG_KERNEL_AVX2 &&
                 parse(AG_OPTION_SPECIALS, "fnuz") == AG_SPECIALS_FNUZ &&
                 parse(AG_OPTION_SCALER_FIRST, "scale_one") == AG_SCALER_FIRST_SCALE_ONE,
             "values are the enums");
    /* the older name functions read the same table */
    for (int s = 0; s <= AG_SPECIALS_FNUZ; s++)
        AG_CHECK(strcmp(ag_specials_name((ag_specials)s), vocab[4].names[s]) == 0,
                 "specials name %d", s);
    for (int kk = 0; kk <= AG_KERNEL_AVX512; kk++)
        AG_CHECK(strcmp(ag_kernel_name(kk), vocab[3].names[kk]) == 0, "kernel name %d", kk);
    AG_CHECK(strcmp(ag_specials_name((ag_specials)4), "?") == 0 &&
                 strcmp(ag_kernel_name(-1), "?") == 0 && strcmp(ag_kernel_name(5), "?") == 0,
             "unknown values: ?");
}

static void test_aliases(void)
{
    for (size_t a = 0; a < sizeof aliases / sizeof aliases[0]; a++) {
        char buf[32];
        spell(buf, aliases[a].alias, 1, 2);
        AG_CHECK(parse(aliases[a].kind, aliases[a].alias) == aliases[a].value &&
                     parse(aliases[a].kind, buf) == aliases[a].value,
                 "alias %s", aliases[a].alias);
    }
    /* an alias belongs to its kind only */
    AG_CHECK(parse(AG_OPTION_OVERFLOW, "nearest") == -1 && parse(AG_OPTION_KERNEL, "sr") == -1 &&
                 parse(AG_OPTION_SPECIALS, "ste") == -1,
             "aliases of one kind only");
    /* near misses */
    static const char *const bad[] = {"", "nearest-", "nearesteven", "nearest even",
                                      " up",  "up ",   "u",           "upp",
                                      "down\n", "nearest--even", "-up", "Ｕp"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        AG_CHECK(parse(AG_OPTION_ROUNDING, bad[i]) == -1, "'%s' refused", bad[i]);
}

static void test_messages(void)
{
    char err[256];
    int v = 42;
    ag_status st = ag_option_parse(&v, AG_OPTION_ROUNDING, "nearset", err, sizeof err);
    AG_CHECK(st == AG_ERR_ARG && v == 42, "unknown: AG_ERR_ARG, value untouched");
    AG_CHECK(strcmp(err, "unknown rounding 'nearset' (expected one of: nearest-even, "
                         "nearest-away, toward-zero, down, up, stochastic)") == 0,
             "message: %s", err);
    for (size_t k = 0; k < NKINDS; k++) {
        st = ag_option_parse(&v, vocab[k].kind, "zzz", err, sizeof err);
        char want[256];
        int len = snprintf(want, sizeof want, "unknown %s 'zzz' (expected one of: ",
                           vocab[k].kind_name);
        for (size_t i = 0; vocab[k].names[i]; i++)
            len += snprintf(want + len, sizeof want - (size_t)len, "%s%s", i ? ", " : "",
                            vocab[k].names[i]);
        snprintf(want + len, sizeof want - (size_t)len, ")");
        AG_CHECK(st == AG_ERR_ARG && strcmp(err, want) == 0, "%s message: %s",
                 vocab[k].kind_name, err);
    }
    /* control bytes of the name are written as '?' */
    st = ag_option_parse(&v, AG_OPTION_OVERFLOW, "sat\x1b[31m\r\x7f", err, sizeof err);
    AG_CHECK(st == AG_ERR_ARG &&
                 strcmp(err, "unknown overflow 'sat?[31m?" "?' (expected one of: saturate, ieee)") == 0,
             "control bytes: %s", err);
    for (const char *p = err; *p; p++)
        AG_CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p != 0x7f, "no control byte");
    /* a long name is cut in the message */
    char longname[300];
    memset(longname, 'q', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    st = ag_option_parse(&v, AG_OPTION_STE, longname, err, sizeof err);
    AG_CHECK(st == AG_ERR_ARG && strstr(err, "qqq...' (expected one of: identity, clipped)") &&
                 strlen(err) < 160,
             "long name: %s", err);
    /* truncation to errlen, always terminated; errlen 0 and err NULL */
    memset(err, 'X', sizeof err);
    st = ag_option_parse(&v, AG_OPTION_ROUNDING, "bad", err, 10);
    AG_CHECK(st == AG_ERR_ARG && strcmp(err, "unknown r") == 0 && err[10] == 'X',
             "truncated: %s", err);
    memset(err, 'X', sizeof err);
    AG_CHECK(ag_option_parse(&v, AG_OPTION_ROUNDING, "bad", err, 0) == AG_ERR_ARG &&
                 err[0] == 'X',
             "errlen 0 writes nothing");
    AG_CHECK(ag_option_parse(&v, AG_OPTION_ROUNDING, "bad", NULL, 10) == AG_ERR_ARG,
             "err NULL");
    st = ag_option_parse(&v, AG_OPTION_ROUNDING, "up", err, sizeof err);
    AG_CHECK(st == AG_OK && v == AG_ROUND_UP && err[0] == '\0', "success clears err");
}

static void test_nulls_kinds(void)
{
    char err[128];
    int v = 42;
    AG_CHECK(ag_option_parse(NULL, AG_OPTION_ROUNDING, "up", err, sizeof err) == AG_ERR_NULL &&
                 err[0] != '\0',
             "NULL value: %s", err);
    AG_CHECK(ag_option_parse(&v, AG_OPTION_ROUNDING, NULL, err, sizeof err) == AG_ERR_NULL &&
                 v == 42 && err[0] != '\0',
             "NULL name: %s", err);
    AG_CHECK(ag_option_parse(&v, (ag_option_kind)8, "up", err, sizeof err) == AG_ERR_ARG &&
                 v == 42 && strcmp(err, "unknown option kind 8") == 0,
             "unknown kind: %s", err);
    AG_CHECK(ag_option_parse(&v, (ag_option_kind)-1, "up", err, sizeof err) == AG_ERR_ARG,
             "kind -1");
    AG_CHECK(strcmp(ag_option_kind_name((ag_option_kind)8), "?") == 0 &&
                 strcmp(ag_option_kind_name((ag_option_kind)-1), "?") == 0 &&
                 ag_option_count((ag_option_kind)8) == 0 &&
                 ag_option_name((ag_option_kind)8, 0) == NULL,
             "unknown kind: name, count, value names");
}

int main(void)
{
    test_canonical();
    test_aliases();
    test_messages();
    test_nulls_kinds();
    return ag_test_summary("test_names");
}
