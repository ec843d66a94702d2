/* SPDX-License-Identifier: MIT */
/*
 * altgrad.c — the `altgrad` command-line tool, a client of the public API
 * (altgrad.h) only.
 *
 *     altgrad formats            every registry format: layout, range, source
 *     altgrad table FORMAT       every code of a format: bits, class, value
 *     altgrad quantize -f FORMAT [-s SCALE] [-r MODE] [--seed N]
 *                      [--overflow saturate|ieee] [VALUES...]
 *     altgrad tour               the AltGrad formats and a sample tensor
 *     altgrad help [COMMAND]     (also --help / -h, globally and per command)
 *     altgrad --version
 *
 * Exit status: 0 ok, 1 usage error (bad command line), 2 runtime error (bad
 * input data on stdin, I/O or memory). Every error is one line on stderr
 * naming what is wrong. Commands return their status instead of calling
 * exit(), so ag_cli_main() can be called as a function (tests, fuzzing);
 * build with -DAG_CLI_NO_MAIN to leave main() out.
 *
 * Numbers are printed exactly: float32 values as the shortest decimal that
 * reads back as the same float (%.Ng, N <= 9), powers of two as 2^k, and in
 * `table` each value also as significand * 2^exponent with the significand
 * written out in full.
 */
#include "ag_cli.h"
#include "../train/train.h" /* ag_train_main, ag_compare_main */
#include "../train/gpt.h"   /* ag_gpt_main */

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "altgrad"

/* ------------------------------------------------------------------------ */
/* Helpers shared by the commands (declared in ag_cli.h)                    */
/* ------------------------------------------------------------------------ */

/* 1 for the bytes a message may show as they are: printable ASCII. */
static int shown_as_is(unsigned char c)
{
    return c >= 0x20 && c < 0x7f;
}

char *cli_sanitize(char *buf, size_t len, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t k = 0;
    if (len == 0)
        return buf;
    for (; *s; s++) {
        const unsigned char c = (unsigned char)*s;
        const size_t need = shown_as_is(c) ? 1 : 4;
        if (k + need >= len)
            break;
        if (need == 1) {
            buf[k++] = (char)c;
        } else {
            buf[k++] = '\\';
            buf[k++] = 'x';
            buf[k++] = hex[c >> 4];
            buf[k++] = hex[c & 15];
        }
    }
    buf[k] = '\0';
    return buf;
}

void cli_error(const char *cmd, const char *fmt, ...)
{
    /* the whole line is formatted first and written sanitized: messages
     * quote arguments, stdin tokens, paths and library messages, none of
     * which may send a control byte to the terminal */
    char msg[1024], safe[4 * sizeof msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (cmd) {
        char c[256];
        fprintf(stderr, PROG " %s: ", cli_sanitize(c, sizeof c, cmd));
    } else {
        fputs(PROG ": ", stderr);
    }
    fputs(cli_sanitize(safe, sizeof safe, msg), stderr);
    fputc('\n', stderr);
}

int cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

int cli_option(int argc, char **argv, int *i, const char *shrt,
               const char *lng, const char **val, const char *cmd)
{
    const char *a = argv[*i];
    const char *name = NULL;
    if (shrt && strcmp(a, shrt) == 0) {
        name = shrt;
    } else if (lng && strcmp(a, lng) == 0) {
        name = lng;
    } else if (shrt && strncmp(a, shrt, strlen(shrt)) == 0 && a[1] != '-') {
        *val = a + strlen(shrt); /* -fE4M3 */
        return 1;
    } else if (lng && strncmp(a, lng, strlen(lng)) == 0 &&
               a[strlen(lng)] == '=') {
        *val = a + strlen(lng) + 1; /* --format=E4M3 */
        return 1;
    } else {
        return 0;
    }
    if (*i + 1 >= argc) {
        cli_error(cmd, "option '%s' needs a value (see '" PROG " %s --help')",
                  name, cmd ? cmd : "");
        return -1;
    }
    *i += 1;
    *val = argv[*i];
    return 1;
}

int cli_parse_float(float *out, const char *s)
{
    char *end;
    if (!s || !*s || isspace((unsigned char)s[0]))
        return 0;
    errno = 0;
    const float v = strtof(s, &end);
    if (end == s || *end != '\0')
        return 0;
    /* a finite literal beyond float32's range: strtof gives +-HUGE_VALF
     * with ERANGE (a literal "inf" leaves errno alone) */
    if (errno == ERANGE && isinf(v))
        return 0;
    *out = v;
    return 1;
}

int cli_parse_u64(uint64_t *out, const char *s)
{
    char *end;
    if (!s || !isdigit((unsigned char)s[0]))
        return 0; /* no sign, no space: strtoull would wrap "-1" */
    errno = 0;
    const unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno == ERANGE || v > UINT64_MAX)
        return 0;
    *out = (uint64_t)v;
    return 1;
}

/* Why s is not an integer in lo..hi (NULL when it is one, stored in *out). */
static const char *int_problem(long long *out, const char *s, long long lo,
                               long long hi)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return "is not an integer";
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q))
            return "is not an integer";
    char *end;
    errno = 0;
    const long long v = strtoll(s, &end, 10);
    if (*s == '-' && lo >= 0 && (v != 0 || errno == ERANGE))
        return "is negative";
    if (errno == ERANGE || v < lo || v > hi)
        return "is out of range";
    *out = v;
    return NULL;
}

int cli_int_arg(long long *out, const char *s, long long lo, long long hi,
                const char *cmd, const char *opt)
{
    const char *why = int_problem(out, s, lo, hi);
    if (!why)
        return CLI_OK;
    char range[64];
    if (hi == LLONG_MAX)
        snprintf(range, sizeof range, "an integer >= %lld", lo);
    else
        snprintf(range, sizeof range, "an integer in %lld..%lld", lo, hi);
    cli_error(cmd, "%s: '%s' %s: expected %s (see '" PROG " %s --help')", opt,
              s, why, range, cmd ? cmd : "");
    return CLI_USAGE;
}

int cli_u64_arg(uint64_t *out, const char *s, const char *cmd, const char *opt)
{
    if (cli_parse_u64(out, s))
        return CLI_OK;
    const char *why = "is not an integer";
    if (s[0] == '-' && s[1] != '\0' && strspn(s + 1, "0123456789") == strlen(s + 1))
        why = "is negative";
    else if (s[0] != '\0' && strspn(s, "0123456789") == strlen(s))
        why = "is out of range";
    cli_error(cmd, "%s: '%s' %s: expected an integer in 0..2^64-1 (see '" PROG
              " %s --help')", opt, s, why, cmd ? cmd : "");
    return CLI_USAGE;
}

int cli_real_arg(float *out, const char *s, double lo, int lo_open, double hi,
                 const char *cmd, const char *opt)
{
    float v;
    const char *why = NULL;
    if (!cli_parse_float(&v, s) || isnan(v))
        why = "is not a number";
    else if (isinf(v) || (double)v > hi)
        why = "is too large";
    else if ((double)v < lo || (lo_open && (double)v == lo))
        why = v < 0.0f && lo >= 0.0 ? "is negative" : "is too small";
    if (!why) {
        *out = v;
        return CLI_OK;
    }
    char range[96];
    snprintf(range, sizeof range, "a number %s %g and <= %g", lo_open ? ">" : ">=",
             lo, hi);
    cli_error(cmd, "%s: '%s' %s: expected %s (see '" PROG " %s --help')", opt, s,
              why, range, cmd ? cmd : "");
    return CLI_USAGE;
}

int cli_parse_format(ag_format *out, const char *spec, const char *cmd)
{
    char msg[256];
    const ag_status st = ag_format_parse(out, spec, msg, sizeof msg);
    if (st == AG_OK)
        return CLI_OK;
    if (msg[0] && strstr(msg, spec))
        cli_error(cmd, "%s", msg); /* the message names the spec already */
    else
        cli_error(cmd, "bad format '%s': %s", spec,
                  msg[0] ? msg : ag_status_string(st));
    return CLI_USAGE;
}

int cli_parse_scale(float *out, const char *s, const char *cmd)
{
    float v;
    if (!cli_parse_float(&v, s) || !(v > 0.0f) || isinf(v)) {
        cli_error(cmd, "bad scale '%s': expected a positive finite number", s);
        return CLI_USAGE;
    }
    *out = v;
    return CLI_OK;
}

int cli_parse_option(int *out, ag_option_kind kind, const char *s, const char *cmd)
{
    char err[256];
    if (ag_option_parse(out, kind, s, err, sizeof err) != AG_OK) {
        cli_error(cmd, "%s", err);
        return CLI_USAGE;
    }
    return CLI_OK;
}

char *cli_float_str(char *buf, size_t len, float v)
{
    if (isnan(v)) {
        snprintf(buf, len, "%s", signbit(v) ? "-nan" : "nan");
    } else if (isinf(v)) {
        snprintf(buf, len, "%s", v < 0.0f ? "-inf" : "inf");
    } else {
        /* integers below 10^15 in full (1000, not 1e+03), else the
         * shortest %g that reads back exactly */
        if (v == truncf(v) && fabsf(v) < 1e15f) {
            snprintf(buf, len, "%.0f", (double)v);
            return buf;
        }
        for (int p = 1; p <= 9; p++) {
            snprintf(buf, len, "%.*g", p, (double)v);
            if (strtof(buf, NULL) == v)
                break;
        }
    }
    return buf;
}

/* "2^k" when v is a positive power of two, else the shortest decimal. */
static char *pow2_or_float_str(char *buf, size_t len, float v)
{
    int e;
    if (v > 0.0f && !isinf(v) && frexpf(v, &e) == 0.5f)
        snprintf(buf, len, "2^%d", e - 1);
    else
        cli_float_str(buf, len, v);
    return buf;
}

/* Print rows of cells as aligned columns, two spaces apart, trailing blanks
 * trimmed. align[c] is 'l' or 'r'. prefix goes before each row. */
#define CELL 96
#define MAX_COLS 16
static void print_columns(char (*cells)[CELL], size_t rows, size_t cols,
                          const char *align, const char *prefix)
{
    size_t width[MAX_COLS] = {0};
    char line[MAX_COLS * (CELL + 2) + 64];
    if (cols > MAX_COLS)
        cols = MAX_COLS;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            const size_t w = strlen(cells[r * cols + c]);
            if (w > width[c])
                width[c] = w;
        }
    for (size_t r = 0; r < rows; r++) {
        size_t k = (size_t)snprintf(line, sizeof line, "%s", prefix);
        for (size_t c = 0; c < cols && k < sizeof line; c++) {
            const int n = snprintf(line + k, sizeof line - k,
                                   align[c] == 'r' ? "%*s%s" : "%-*s%s",
                                   (int)width[c], cells[r * cols + c],
                                   c + 1 < cols ? "  " : "");
            if (n < 0)
                break;
            k += (size_t)n;
        }
        if (k >= sizeof line)
            k = sizeof line - 1;
        while (k > 0 && line[k - 1] == ' ')
            k--;
        line[k] = '\0';
        puts(line);
    }
}

/* ------------------------------------------------------------------------ */
/* formats                                                                  */
/* ------------------------------------------------------------------------ */

#define FMT_COLS 12
static const char fmt_align[FMT_COLS + 1] = "lrrrrllllllr";

static void format_row(char (*row)[CELL], const ag_format *f)
{
    snprintf(row[0], CELL, "%s", f->name);
    snprintf(row[1], CELL, "%d", f->bits);
    snprintf(row[2], CELL, "%d", f->ebits);
    snprintf(row[3], CELL, "%d", f->mbits);
    snprintf(row[4], CELL, "%d", f->bias);
    snprintf(row[5], CELL, "%s%s", ag_specials_name(f->specials),
             f->no_zero ? ", no zero" : "");
    snprintf(row[6], CELL, "%s", f->is_signed ? "yes" : "no");
    pow2_or_float_str(row[7], CELL, f->min_subnormal);
    pow2_or_float_str(row[8], CELL, f->min_normal);
    pow2_or_float_str(row[9], CELL, f->max_finite);
    snprintf(row[10], CELL, "%lu", (unsigned long)f->finite_codes);
    /* dynamic range in binades: log2(max / min subnormal) */
    snprintf(row[11], CELL, "%.1f",
             log2((double)f->max_finite) - log2((double)f->min_subnormal));
}

/* The formats table for list[0..n), with a header row. */
static int print_formats(const ag_format *const *list, size_t n)
{
    char (*cells)[CELL] = calloc((n + 1) * FMT_COLS, CELL);
    if (!cells) {
        cli_error(NULL, "out of memory");
        return CLI_RUNTIME;
    }
    static const char *const head[FMT_COLS] = {
        "name", "bits", "E", "M", "bias", "specials", "signed",
        "min subnormal", "min normal", "max", "finite", "binades"};
    for (size_t c = 0; c < FMT_COLS; c++)
        snprintf(cells[c], CELL, "%s", head[c]);
    for (size_t i = 0; i < n; i++)
        format_row(&cells[(i + 1) * FMT_COLS], list[i]);
    print_columns(cells, n + 1, FMT_COLS, fmt_align, "");
    free(cells);
    return CLI_OK;
}

static const char formats_help[] =
    "usage: " PROG " formats\n"
    "\n"
    "List every format of the registry: total bits, exponent bits E, mantissa\n"
    "bits M, bias, specials convention (none, ieee, fn, fnuz; 'no zero' when\n"
    "exponent field 0 is an ordinary binade), whether it has a sign bit, the\n"
    "smallest subnormal, smallest normal (for E = 0: the grid step) and\n"
    "largest finite value, the number of finite codes, the dynamic range in\n"
    "binades (log2 max/min subnormal), and the source of each definition.\n"
    "Any of these names, or a spec such as e3m4:bias=2, is a FORMAT for the\n"
    "other commands.\n";

static int cmd_formats(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(formats_help, stdout);
            return CLI_OK;
        }
    }
    if (argc > 1) {
        cli_error(argv[0], "unexpected argument '%s' (see '" PROG " formats --help')",
                  argv[1]);
        return CLI_USAGE;
    }
    const size_t n = ag_format_count();
    const ag_format **list = calloc(n ? n : 1, sizeof *list);
    if (!list) {
        cli_error(argv[0], "out of memory");
        return CLI_RUNTIME;
    }
    size_t namew = 0;
    for (size_t i = 0; i < n; i++) {
        list[i] = ag_format_at(i);
        if (strlen(list[i]->name) > namew)
            namew = strlen(list[i]->name);
    }
    int rc = print_formats(list, n);
    if (rc == CLI_OK) {
        printf("\nsources:\n");
        for (size_t i = 0; i < n; i++)
            printf("  %-*s  %s\n", (int)namew, list[i]->name, list[i]->source);
    }
    free(list);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* table                                                                    */
/* ------------------------------------------------------------------------ */

static const char *value_class(const ag_format *f, float v)
{
    if (isnan(v))
        return "nan";
    if (isinf(v))
        return "inf";
    if (v == 0.0f)
        return "zero";
    return fabsf(v) < f->min_normal ? "subnormal" : "normal";
}

/* The code's bit fields, "s|eeee|mmm" style (fields the format lacks are
 * left out). With code == UINT32_MAX: the layout legend. */
static void fields_str(char *buf, size_t len, const ag_format *f, uint32_t code)
{
    size_t k = 0;
    const int widths[3] = {f->is_signed, f->ebits, f->mbits};
    const char legend[3] = {'s', 'e', 'm'};
    int shift = f->bits;
    for (int part = 0; part < 3; part++) {
        if (widths[part] == 0)
            continue;
        if (k > 0 && k + 1 < len)
            buf[k++] = '|';
        for (int b = 0; b < widths[part] && k + 1 < len; b++) {
            shift--;
            buf[k++] = code == UINT32_MAX ? legend[part]
                                          : (char)('0' + ((code >> shift) & 1u));
        }
    }
    buf[k] = '\0';
}

/* The significand written out in full (it has at most 23 fraction bits, so
 * %.23f is exact), trailing zeros trimmed. */
static void sig_str(char *buf, size_t len, double sig)
{
    snprintf(buf, len, "%.23f", sig);
    char *dot = strchr(buf, '.');
    if (dot) {
        char *e = buf + strlen(buf) - 1;
        while (e > dot && *e == '0')
            *e-- = '\0';
        if (e == dot)
            *e = '\0';
    }
}

/* The exact value as significand * 2^exponent, matching the fields: normal
 * 1.f * 2^e, subnormal 0.f * 2^emin, fixed point (E = 0) m * 2^k with 2^k
 * the step. */
static void exact_str(char *buf, size_t len, const ag_format *f, float v)
{
    if (isnan(v) || isinf(v) || v == 0.0f) {
        cli_float_str(buf, len, v);
        return;
    }
    const double a = fabs((double)v);
    /* E = 0: the step, so the significand is the integer m; subnormal:
     * the lowest binade's exponent */
    const int k = f->ebits == 0 || a < (double)f->min_normal
                      ? ilogb((double)f->min_normal)
                      : ilogb(a);
    char sig[64];
    sig_str(sig, sizeof sig, ldexp(a, -k));
    snprintf(buf, len, "%s%s * 2^%d", v < 0.0f ? "-" : "", sig, k);
}

static const char table_help[] =
    "usage: " PROG " table FORMAT\n"
    "\n"
    "Print every code of FORMAT, one per line: the code in hex, its bit\n"
    "fields sign|exponent|mantissa, its class (zero, subnormal, normal, inf,\n"
    "nan), its value (the shortest decimal that reads back as exactly that\n"
    "float32) and the value as significand * 2^exponent (normal 1.f * 2^e,\n"
    "subnormal 0.f * 2^emin, fixed point m * 2^k with 2^k the step). Lines\n"
    "starting with '#' are headers.\n"
    "\n"
    "FORMAT is a registry name (see '" PROG " formats') or a spec:\n"
    "    BASE[:bias=INT][:specials=none|ieee|fn|fnuz][:signed=yes|no][:zero=yes|no]\n"
    "e.g. E4M3, float8_e5m2, e3m4:bias=2, e5m2:specials=fnuz.\n";

static int cmd_table(int argc, char **argv)
{
    const char *spec = NULL;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(table_help, stdout);
            return CLI_OK;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1] != '\0') {
            cli_error(argv[0], "unknown option '%s' (see '" PROG " table --help')", a);
            return CLI_USAGE;
        }
        if (spec) {
            cli_error(argv[0], "unexpected argument '%s': give one FORMAT", a);
            return CLI_USAGE;
        }
        spec = a;
    }
    if (!spec) {
        cli_error(argv[0], "missing FORMAT (e.g. '" PROG " table E4M3')");
        return CLI_USAGE;
    }
    ag_format f;
    int rc = cli_parse_format(&f, spec, argv[0]);
    if (rc != CLI_OK)
        return rc;

    char legend[32];
    fields_str(legend, sizeof legend, &f, UINT32_MAX);
    printf("# %s: %d bits (%s%d exponent, %d mantissa), bias %d, specials %s%s, "
           "%lu codes, %lu finite\n",
           f.name, f.bits, f.is_signed ? "sign, " : "unsigned, ", f.ebits,
           f.mbits, f.bias, ag_specials_name(f.specials),
           f.no_zero ? ", no zero" : "", (unsigned long)f.ncodes,
           (unsigned long)f.finite_codes);
    const int hexw = (f.bits + 3) / 4;
    char bits[32], val[32], ex[96];
    const int codew = hexw + 2;
    const int bitsw = (int)strlen(legend) > 4 ? (int)strlen(legend) : 4;
    printf("# %-*s  %-*s  %-9s  %-16s  %s\n", codew - 2, "code", bitsw, legend,
           "class", "value", "exact");
    for (uint32_t c = 0; c < f.ncodes; c++) {
        const float v = ag_to_real(&f, c);
        fields_str(bits, sizeof bits, &f, c);
        exact_str(ex, sizeof ex, &f, v);
        printf("  0x%0*lx  %-*s  %-9s  %-16s  %s\n", hexw, (unsigned long)c, bitsw,
               bits, value_class(&f, v), cli_float_str(val, sizeof val, v), ex);
    }
    return CLI_OK;
}

/* ------------------------------------------------------------------------ */
/* quantize                                                                 */
/* ------------------------------------------------------------------------ */

static const char quantize_help[] =
    "usage: " PROG " quantize -f FORMAT [-s SCALE] [-r MODE] [--seed N]\n"
    "                        [--overflow saturate|ieee] [VALUES...]\n"
    "\n"
    "Round float32 values onto FORMAT's grid, as ag_quantize does:\n"
    "    quantized = to_real(to_bits(value / SCALE)) * SCALE   (float32)\n"
    "and print, per value: the input (as float32), the quantized value and the\n"
    "code (hex, as ag_encode stores it: a NaN input stays NaN and gets the\n"
    "format's NaN code, or 0 where the format has none). The values come from\n"
    "the arguments or, when there are none, from stdin (separated by white\n"
    "space; any other control byte, NUL included, is an error); they may be\n"
    "decimal, hex floats, inf or nan. Lines starting with '#' are headers;\n"
    "the last one counts overflow, underflow and NaN.\n"
    "\n"
    "  -f, --format FORMAT   a registry name or spec (see '" PROG " table --help')\n"
    "  -s, --scale SCALE     positive finite scale (default 1)\n"
    "  -r, --rounding MODE   nearest-even (default), nearest-away, toward-zero,\n"
    "                        down, up, stochastic ('_' for '-' and the\n"
    "                        aliases nearest, rne, truncate, rtz, sr work too)\n"
    "      --seed N          stochastic rounding key (default 0); value i uses\n"
    "                        element i of the stream, so a run is reproducible\n"
    "      --overflow POLICY saturate (default: finite values beyond max become\n"
    "                        +-max) or ieee (+-inf where the format has inf,\n"
    "                        NaN where it has NaN only, else +-max)\n"
    "  -h, --help            this text\n"
    "\n"
    "Use -- before values that could look like options. Exit status: 0 ok,\n"
    "1 bad command line (including a malformed VALUE), 2 malformed stdin.\n"
    "Example: " PROG " quantize -f E4M3 464 -1e-3 0.3\n";

/* 1 when a starts with '-' and is an option rather than a negative number. */
static int looks_like_option(const char *a)
{
    float v;
    return a[0] == '-' && a[1] != '\0' && !cli_parse_float(&v, a);
}

/* Why cli_parse_float refused s: out of range or not a number at all. */
static const char *bad_number(const char *s)
{
    char *end;
    if (*s && !isspace((unsigned char)s[0])) {
        (void)strtod(s, &end);
        if (end != s && *end == '\0')
            return "is beyond float32's range (write inf for infinity)";
    }
    return "is not a number";
}

/* A growing array of floats. */
typedef struct {
    float *v;
    size_t n, cap;
} float_vec;

static int vec_push(float_vec *fv, float x)
{
    if (fv->n == fv->cap) {
        const size_t cap = fv->cap ? 2 * fv->cap : 256;
        if (cap > SIZE_MAX / sizeof *fv->v)
            return 0;
        float *p = realloc(fv->v, cap * sizeof *p);
        if (!p)
            return 0;
        fv->v = p;
        fv->cap = cap;
    }
    fv->v[fv->n++] = x;
    return 1;
}

/* Read whitespace-separated numbers from `in` into fv. Returns CLI_OK or
 * CLI_RUNTIME after printing the error (malformed number or a control byte
 * such as NUL, with its line and position; read error; memory). */
static int read_values(FILE *in, float_vec *fv, const char *cmd)
{
    char *tok = NULL;
    size_t len = 0, cap = 0;
    unsigned long line = 1, tok_line = 1;
    int rc = CLI_OK;
    for (;;) {
        const int ch = getc(in);
        if (ch == EOF || isspace(ch)) {
            if (len > 0) {
                float x;
                tok[len] = '\0';
                if (!cli_parse_float(&x, tok)) {
                    cli_error(cmd, "'%.60s%s' on stdin (line %lu, value %lu) %s",
                              tok, len > 60 ? "..." : "", tok_line,
                              (unsigned long)fv->n + 1, bad_number(tok));
                    rc = CLI_RUNTIME;
                    break;
                }
                if (!vec_push(fv, x)) {
                    cli_error(cmd, "out of memory reading stdin");
                    rc = CLI_RUNTIME;
                    break;
                }
                len = 0;
            }
            if (ch == EOF)
                break;
            if (ch == '\n')
                line++;
            continue;
        }
        if (ch < 0x20 || ch == 0x7f) {
            /* a NUL would end the token early and drop what follows it */
            cli_error(cmd, "control byte 0x%02x on stdin (line %lu, value %lu): "
                      "expected numbers separated by white space",
                      (unsigned)ch, line, (unsigned long)fv->n + 1);
            rc = CLI_RUNTIME;
            break;
        }
        if (len == 0)
            tok_line = line;
        if (len + 2 > cap) {
            const size_t ncap = cap ? 2 * cap : 64;
            char *p = realloc(tok, ncap);
            if (!p) {
                cli_error(cmd, "out of memory reading stdin");
                rc = CLI_RUNTIME;
                break;
            }
            tok = p;
            cap = ncap;
        }
        tok[len++] = (char)ch;
    }
    if (rc == CLI_OK && ferror(in)) {
        cli_error(cmd, "error reading stdin");
        rc = CLI_RUNTIME;
    }
    free(tok);
    return rc;
}

static int cmd_quantize(int argc, char **argv)
{
    const char *cmd = argv[0];
    const char *spec = NULL, *val;
    float scale = 1.0f;
    ag_qopts opts = ag_qopts_default();
    float_vec xs = {NULL, 0, 0};
    int rc = CLI_OK, only_values = 0;

    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i]) && !only_values) {
            fputs(quantize_help, stdout);
            free(xs.v);
            return CLI_OK;
        }
        if (strcmp(argv[i], "--") == 0 && !only_values) {
            only_values = 1;
            continue;
        }
    }
    only_values = 0;
    for (int i = 1; i < argc && rc == CLI_OK; i++) {
        const char *a = argv[i];
        int m;
        if (!only_values && strcmp(a, "--") == 0) {
            only_values = 1;
        } else if (only_values || !looks_like_option(a)) {
            float x;
            if (!cli_parse_float(&x, a)) {
                cli_error(cmd, "'%s' (value %lu) %s", a, (unsigned long)xs.n + 1,
                          bad_number(a));
                rc = CLI_USAGE;
            } else if (!vec_push(&xs, x)) {
                cli_error(cmd, "out of memory");
                rc = CLI_RUNTIME;
            }
        } else if ((m = cli_option(argc, argv, &i, "-f", "--format", &val, cmd))) {
            if (m < 0)
                rc = CLI_USAGE;
            else if (spec) {
                cli_error(cmd, "option '%s' given twice", a);
                rc = CLI_USAGE;
            } else
                spec = val;
        } else if ((m = cli_option(argc, argv, &i, "-s", "--scale", &val, cmd))) {
            rc = m < 0 ? CLI_USAGE : cli_parse_scale(&scale, val, cmd);
        } else if ((m = cli_option(argc, argv, &i, "-r", "--rounding", &val, cmd))) {
            int v = 0;
            rc = m < 0 ? CLI_USAGE : cli_parse_option(&v, AG_OPTION_ROUNDING, val, cmd);
            opts.rounding = rc == CLI_OK ? (ag_rounding)v : opts.rounding;
        } else if ((m = cli_option(argc, argv, &i, NULL, "--seed", &val, cmd))) {
            if (m < 0)
                rc = CLI_USAGE;
            else if (!cli_parse_u64(&opts.seed, val)) {
                cli_error(cmd, "bad seed '%s': expected an integer in 0..2^64-1", val);
                rc = CLI_USAGE;
            }
        } else if ((m = cli_option(argc, argv, &i, NULL, "--overflow", &val, cmd))) {
            int v = 0;
            rc = m < 0 ? CLI_USAGE : cli_parse_option(&v, AG_OPTION_OVERFLOW, val, cmd);
            opts.overflow = rc == CLI_OK ? (ag_overflow)v : opts.overflow;
        } else {
            cli_error(cmd, "unknown option '%s' (see '" PROG " quantize --help')", a);
            rc = CLI_USAGE;
        }
    }
    ag_format f;
    if (rc == CLI_OK && !spec) {
        cli_error(cmd, "missing -f FORMAT (e.g. '" PROG " quantize -f E4M3 1.3')");
        rc = CLI_USAGE;
    }
    if (rc == CLI_OK)
        rc = cli_parse_format(&f, spec, cmd);
    if (rc == CLI_OK && xs.n == 0)
        rc = read_values(stdin, &xs, cmd);
    if (rc != CLI_OK) {
        free(xs.v);
        return rc;
    }

    const size_t n = xs.n;
    float *q = malloc((n ? n : 1) * sizeof *q);
    uint16_t *codes = malloc((n ? n : 1) * sizeof *codes);
    ag_stats stats = {0, 0, 0, 0};
    ag_status st = AG_ERR_NOMEM;
    if (q && codes) {
        /* quantize and encode with the same options: the same stream
         * elements, so the code is the one the value came from */
        st = ag_quantize(q, xs.v, n, &f, scale, &opts, &stats);
        if (st == AG_OK)
            st = ag_encode_u16(codes, xs.v, n, &f, scale, &opts, NULL);
    }
    if (st != AG_OK) {
        cli_error(cmd, "%s", ag_status_string(st));
        rc = st == AG_ERR_SCALE || st == AG_ERR_ARG ? CLI_USAGE : CLI_RUNTIME;
    } else {
        char a[32], b[32];
        const int hexw = (f.bits + 3) / 4;
        printf("# %s, scale %s, %s, %s\n", f.name, cli_float_str(a, sizeof a, scale),
               ag_option_name(AG_OPTION_ROUNDING, (int)opts.rounding),
               ag_option_name(AG_OPTION_OVERFLOW, (int)opts.overflow));
        printf("# %-14s %-15s %s\n", "input", "quantized", "code");
        for (size_t i = 0; i < n; i++)
            printf("  %-14s %-15s 0x%0*x\n", cli_float_str(a, sizeof a, xs.v[i]),
                   cli_float_str(b, sizeof b, q[i]), hexw, (unsigned)codes[i]);
        printf("# %lu value%s: %lu overflow, %lu underflow, %lu nan\n",
               (unsigned long)stats.total, stats.total == 1 ? "" : "s",
               (unsigned long)stats.overflow,
               (unsigned long)stats.underflow, (unsigned long)stats.nan);
    }
    free(q);
    free(codes);
    free(xs.v);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* tour                                                                     */
/* ------------------------------------------------------------------------ */

static const char tour_help[] =
    "usage: " PROG " tour\n"
    "\n"
    "A short tour: the table of the AltGrad formats (E0M7 ... E7M0), then a\n"
    "fixed sample tensor (hand-picked values, including ties, a subnormal,\n"
    "overflows, underflows, NaN and -inf, plus log-uniform values from a\n"
    "fixed seed) quantized with ag_quantize's defaults (scale 1,\n"
    "nearest-even, saturate) in E0M7 E1M6 E3M4 E5M2 E7M0 side by side, with\n"
    "the overflow, underflow and NaN counts of ag_stats.\n";

/* splitmix64: the tour's own tiny generator (fixed seed, printed) */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

#define TOUR_N 16
#define TOUR_NF 5
#define TOUR_SEED 2024u

static void append(char *buf, size_t len, const char *s)
{
    const size_t k = strlen(buf);
    if (k < len)
        snprintf(buf + k, len - k, "%s", s);
}

static int cmd_tour(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(tour_help, stdout);
            return CLI_OK;
        }
    }
    if (argc > 1) {
        cli_error(argv[0], "unexpected argument '%s' (see '" PROG " tour --help')",
                  argv[1]);
        return CLI_USAGE;
    }
    static const char *const family[] = {"E0M7", "E1M6", "E2M5", "E3M4",
                                         "E4M3", "E5M2", "E6M1", "E7M0"};
    static const char *const shown[TOUR_NF] = {"E0M7", "E1M6", "E3M4", "E5M2", "E7M0"};
    const ag_format *fam[8], *fs[TOUR_NF];
    for (size_t i = 0; i < 8; i++)
        if (!(fam[i] = ag_format_get(family[i]))) {
            cli_error(argv[0], "format %s missing from the registry", family[i]);
            return CLI_RUNTIME;
        }
    for (size_t i = 0; i < TOUR_NF; i++)
        fs[i] = ag_format_get(shown[i]);

    printf(PROG " %s: simulate narrow floating-point formats on float32.\n\n",
           ag_version());
    printf("The AltGrad formats (" PROG " formats lists all %lu; "
           PROG " table FORMAT shows every code):\n\n",
           (unsigned long)ag_format_count());
    int rc = print_formats(fam, 8);
    if (rc != CLI_OK)
        return rc;

    /* The sample: hand-picked values (ties: 1.125 in E5M2, 1.5 in E7M0;
     * 3e-05 subnormal in E5M2; 0.001 underflows the small-range formats;
     * 1000 and 1e5 overflow; NaN; -inf) and log-uniform values in
     * [2^-12, 2^12) with random signs, 3 significant digits. */
    float x[TOUR_N] = {0.1f, -0.75f, 1.125f, 1.5f, 3e-05f, 0.001f, 1000.0f,
                       1e5f, NAN, -INFINITY};
    uint64_t s = TOUR_SEED;
    for (size_t i = 10; i < TOUR_N; i++) {
        const uint64_t r = splitmix64(&s);
        const double u = (double)(r >> 11) * 0x1p-53;
        char buf[32];
        snprintf(buf, sizeof buf, "%.3g", ldexp(1.0, -12) * exp2(24.0 * u) *
                                           ((r & 1u) ? -1.0 : 1.0));
        x[i] = strtof(buf, NULL);
    }
    /* sort by magnitude, NaN last, for reading */
    for (size_t i = 1; i < TOUR_N; i++) {
        const float v = x[i];
        size_t j = i;
        while (j > 0 && (isnan(x[j - 1]) || (!isnan(v) && fabsf(x[j - 1]) > fabsf(v)))) {
            x[j] = x[j - 1];
            j--;
        }
        x[j] = v;
    }

    float q[TOUR_NF][TOUR_N];
    ag_stats st[TOUR_NF];
    char note[TOUR_N][CELL];
    memset(note, 0, sizeof note);
    for (size_t k = 0; k < TOUR_NF; k++) {
        memset(&st[k], 0, sizeof st[k]);
        ag_status e = ag_quantize(q[k], x, TOUR_N, fs[k], 1.0f, NULL, &st[k]);
        if (e != AG_OK) {
            cli_error(argv[0], "%s: %s", fs[k]->name, ag_status_string(e));
            return CLI_RUNTIME;
        }
    }
    /* per-element notes, from the library itself: a tie is a value exactly
     * halfway between its neighbours (rounded down and up); overflow and
     * underflow come from one-element ag_stats */
    static const char *const kinds[3] = {"tie", "underflow", "overflow"};
    ag_qopts down = ag_qopts_default(), up = ag_qopts_default();
    down.rounding = AG_ROUND_DOWN;
    up.rounding = AG_ROUND_UP;
    for (size_t i = 0; i < TOUR_N; i++) {
        for (int kind = 0; kind < 3; kind++) {
            char who[CELL] = "";
            for (size_t k = 0; k < TOUR_NF; k++) {
                ag_stats one = {0, 0, 0, 0};
                float y, lo, hi;
                if (ag_quantize(&y, &x[i], 1, fs[k], 1.0f, NULL, &one) != AG_OK ||
                    ag_quantize(&lo, &x[i], 1, fs[k], 1.0f, &down, NULL) != AG_OK ||
                    ag_quantize(&hi, &x[i], 1, fs[k], 1.0f, &up, NULL) != AG_OK)
                    continue;
                /* float32 differences are exact in double here */
                const int hit =
                    kind == 0   ? (isfinite(x[i]) && lo != hi &&
                                 (double)x[i] - (double)lo == (double)hi - (double)x[i])
                    : kind == 1 ? one.underflow > 0
                                : one.overflow > 0;
                if (hit) {
                    append(who, sizeof who, who[0] ? "," : " ");
                    append(who, sizeof who, fs[k]->name);
                }
            }
            if (who[0]) {
                append(note[i], CELL, note[i][0] ? "; " : "");
                append(note[i], CELL, kinds[kind]);
                append(note[i], CELL, who);
            }
        }
    }

    const size_t cols = TOUR_NF + 2, rows = 1 + TOUR_N + 1 + 4;
    char (*cells)[CELL] = calloc(rows * cols, CELL);
    if (!cells) {
        cli_error(argv[0], "out of memory");
        return CLI_RUNTIME;
    }
    snprintf(cells[0], CELL, "x");
    for (size_t k = 0; k < TOUR_NF; k++)
        snprintf(cells[1 + k], CELL, "%s", fs[k]->name);
    snprintf(cells[cols - 1], CELL, "note");
    for (size_t i = 0; i < TOUR_N; i++) {
        char (*row)[CELL] = &cells[(1 + i) * cols];
        cli_float_str(row[0], CELL, x[i]);
        for (size_t k = 0; k < TOUR_NF; k++)
            cli_float_str(row[1 + k], CELL, q[k][i]);
        snprintf(row[cols - 1], CELL, "%s", note[i]);
    }
    static const char *const counters[4] = {"overflow", "underflow", "nan", "exact"};
    for (size_t c = 0; c < 4; c++) {
        char (*row)[CELL] = &cells[(2 + TOUR_N + c) * cols];
        snprintf(row[0], CELL, "%s", counters[c]);
        for (size_t k = 0; k < TOUR_NF; k++) {
            unsigned long v;
            if (c == 0)
                v = (unsigned long)st[k].overflow;
            else if (c == 1)
                v = (unsigned long)st[k].underflow;
            else if (c == 2)
                v = (unsigned long)st[k].nan;
            else {
                v = 0;
                for (size_t i = 0; i < TOUR_N; i++)
                    v += q[k][i] == x[i];
            }
            snprintf(row[1 + k], CELL, "%lu", v);
        }
    }
    printf("\nA sample tensor of %d values (10 hand-picked, %d log-uniform from "
           "seed %u),\nquantized with ag_quantize's defaults: scale 1, "
           "nearest-even, saturate.\n\n", TOUR_N, TOUR_N - 10, TOUR_SEED);
    print_columns(cells, rows, cols, "rrrrrrl", "  ");
    free(cells);
    printf("\nexact = values the format holds unchanged. 3e-05 lands on an E5M2\n"
           "subnormal (below 2^-14). NaN stays NaN; -inf saturates to -max except\n"
           "in E5M2, which has inf. Next: " PROG " table E5M2, or\n"
           "  " PROG " quantize -f E4M3 464 465 -0.3 --overflow ieee\n");
    return CLI_OK;
}

/* ------------------------------------------------------------------------ */
/* The command table and main                                               */
/* ------------------------------------------------------------------------ */

static int cmd_help(int argc, char **argv);

/* ==== THE COMMAND TABLE ==================================================
 * One line per subcommand: name, function (cli_command_fn: argv[0] is the
 * command name), one-line summary for `altgrad --help`. To add a command,
 * declare its function (e.g. in a header of train/, included above) and
 * add its line here; nothing else needs to change. */
static const struct cli_command {
    const char *name;
    cli_command_fn *fn;
    const char *summary;
} commands[] = {
    {"formats", cmd_formats, "list every registry format: layout, range, source"},
    {"table", cmd_table, "every code of one format: bits, class, value"},
    {"quantize", cmd_quantize, "round values onto a format's grid (arguments or stdin)"},
    {"tour", cmd_tour, "the AltGrad formats and a sample tensor in five of them"},
    {"train", ag_train_main, "train the MLP on Fashion-MNIST in one format setting"},
    {"compare", ag_compare_main, "train once per format and compare them (the main job)"},
    {"gpt", ag_gpt_main, "train a small GPT on byte-level text (the King James Bible) in one format setting"},
    {"help", cmd_help, "help on a command: " PROG " help COMMAND"},
};
/* ==== END OF THE COMMAND TABLE ========================================= */

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const struct cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void global_help(FILE *out)
{
    fprintf(out,
            "usage: " PROG " COMMAND [ARGS...]\n"
            "       " PROG " --help | --version\n"
            "\n"
            "Simulate narrow floating-point formats (FP8 and any ExMy up to 16 bits)\n"
            "on float32 values.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s  %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n"
            "'" PROG " COMMAND --help' describes a command. Exit status: 0 ok,\n"
            "1 usage error, 2 runtime error.\n");
}

static int cmd_help(int argc, char **argv)
{
    if (argc < 2 || cli_is_help(argv[1])) {
        global_help(stdout);
        return CLI_OK;
    }
    if (argc > 2) {
        cli_error(argv[0], "unexpected argument '%s': give one COMMAND", argv[2]);
        return CLI_USAGE;
    }
    const struct cli_command *c = find_command(argv[1]);
    if (!c) {
        cli_error(argv[0], "unknown command '%s' (see '" PROG " --help')", argv[1]);
        return CLI_USAGE;
    }
    char help_opt[] = "--help";
    char *sub[3] = {argv[1], help_opt, NULL};
    return c->fn(2, sub);
}

int ag_cli_main(int argc, char **argv)
{
    if (argc < 2 || !argv[1]) {
        char names[256] = "";
        for (size_t i = 0; i < N_COMMANDS; i++) {
            append(names, sizeof names, i ? ", " : "");
            append(names, sizeof names, commands[i].name);
        }
        cli_error(NULL, "missing COMMAND: one of %s (see '" PROG " --help')", names);
        return CLI_USAGE;
    }
    const char *a = argv[1];
    int rc;
    if (cli_is_help(a)) {
        global_help(stdout);
        rc = CLI_OK;
    } else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
        printf(PROG " %s\n", ag_version());
        rc = CLI_OK;
    } else if (a[0] == '-') {
        cli_error(NULL, "unknown option '%s' (see '" PROG " --help')", a);
        rc = CLI_USAGE;
    } else {
        const struct cli_command *c = find_command(a);
        if (!c) {
            cli_error(NULL, "unknown command '%s' (see '" PROG " --help')", a);
            return CLI_USAGE;
        }
        rc = c->fn(argc - 1, argv + 1);
    }
    /* output that did not reach its destination is a runtime error */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error(NULL, "error writing output");
        return CLI_RUNTIME;
    }
    return rc;
}

#ifndef AG_CLI_NO_MAIN
int main(int argc, char **argv)
{
    return ag_cli_main(argc, argv);
}
#endif
