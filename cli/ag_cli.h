/* SPDX-License-Identifier: MIT */
/*
 * ag_cli.h — what the subcommands of the `altgrad` tool share: the command
 * signature, exit codes, and argument helpers that print one-line errors.
 * Implemented in cli/altgrad.c; the training bench's commands (train/cli.c)
 * use them too (its tests link cli/altgrad.c built with -DAG_CLI_NO_MAIN). Clients of the public API only (altgrad.h).
 *
 * A command is `int cmd(int argc, char **argv)` where argv[0] is the command
 * name ("quantize") and argv[1..argc) its arguments. It returns an exit code
 * and never calls exit(), so the whole tool can be driven as a function
 * (ag_cli_main) by tests and fuzzers. Errors go to stderr as one line:
 *     altgrad CMD: MESSAGE
 */
#ifndef AG_CLI_H
#define AG_CLI_H

#include <altgrad.h>

#include <stddef.h>
#include <stdint.h>

/* Exit codes of every command. */
enum {
    CLI_OK = 0,      /* success */
    CLI_USAGE = 1,   /* bad command line: unknown option, bad value, ... */
    CLI_RUNTIME = 2  /* the command could not run: bad input data, I/O, memory */
};

typedef int cli_command_fn(int argc, char **argv);

/* The whole tool: argv[0] is the program, argv[1] the command. */
int ag_cli_main(int argc, char **argv);

/* Print "altgrad CMD: MESSAGE\n" to stderr (cmd may be NULL: "altgrad: ...");
 * every byte outside printable ASCII is written as \xHH (cli_sanitize). */
void cli_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* 1 when argv[i] is exactly -h or --help. */
int cli_is_help(const char *arg);

/* Match an option that takes a value: `-x VALUE`, `-xVALUE`, `--long VALUE`
 * or `--long=VALUE` (shrt or lng may be NULL). Returns 1 and sets *val (and
 * advances *i past a separate value) when argv[*i] is that option, 0 when it
 * is not, -1 (after printing the error) when its value is missing. */
int cli_option(int argc, char **argv, int *i, const char *shrt,
               const char *lng, const char **val, const char *cmd);

/* 1 when s is a whole float32 number (decimal, hex, inf, nan; surrounding
 * whitespace refused), stored in *out; 0 when malformed or beyond float32's
 * range (a finite literal that overflows: write inf to mean infinity).
 * Literals below float32's range round as float32 does (to 0 or a
 * subnormal). */
int cli_parse_float(float *out, const char *s);

/* 1 when s is a whole unsigned decimal integer that fits uint64_t. */
int cli_parse_u64(uint64_t *out, const char *s);

/* The one parser of numeric option values (the tool's commands and the
 * training bench). Each stores the value and returns CLI_OK, or prints one
 * line naming the option and the value and saying what is wrong (not a
 * number, negative, out of range) and returns CLI_USAGE.
 *   cli_int_arg:  a whole decimal integer ('-' allowed, no '+', no spaces)
 *                 in lo..hi (hi = LLONG_MAX: no upper bound)
 *   cli_u64_arg:  a whole unsigned decimal integer in 0..2^64-1
 *   cli_real_arg: a finite float32 number (cli_parse_float) in lo..hi,
 *                 lo itself excluded when lo_open */
int cli_int_arg(long long *out, const char *s, long long lo, long long hi,
                const char *cmd, const char *opt);
int cli_u64_arg(uint64_t *out, const char *s, const char *cmd, const char *opt);
int cli_real_arg(float *out, const char *s, double lo, int lo_open, double hi,
                 const char *cmd, const char *opt);

/* Copy s into buf (len > 0 bytes, always terminated, cut to fit) with every
 * byte outside printable ASCII written as \xHH, so that echoing user input
 * never sends a control byte to the terminal. Returns buf. */
char *cli_sanitize(char *buf, size_t len, const char *s);

/* Parse a format spec (registry name or ag_format_parse spec) into *out.
 * Prints the parser's message and returns CLI_USAGE on error, else CLI_OK. */
int cli_parse_format(ag_format *out, const char *spec, const char *cmd);

/* A positive finite scale; prints the error and returns CLI_USAGE if not. */
int cli_parse_scale(float *out, const char *s, const char *cmd);

/* An option name of `kind` (the library's vocabulary, ag_option_parse:
 * '-' or '_', any case, aliases) into *out; on a bad name prints the
 * library's message, which lists the valid names, and returns CLI_USAGE,
 * else CLI_OK. Print a value with ag_option_name. */
int cli_parse_option(int *out, ag_option_kind kind, const char *s, const char *cmd);

/* The shortest decimal (%.Ng, N <= 9) that reads back as exactly v; "nan",
 * "-nan", "inf", "-inf" for the specials. Writes into buf (>= 32 bytes)
 * and returns it. */
char *cli_float_str(char *buf, size_t len, float v);

#endif /* AG_CLI_H */
