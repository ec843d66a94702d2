/* SPDX-License-Identifier: MIT */
/*
 * bench_cli.h — option helpers shared by the bench's commands (train/cli.c:
 * train, compare --model mlp; train/gpt_cli.c: gpt, compare --model gpt).
 * Each prints its own error (cli_error) and returns a CLI_* status.
 */
#ifndef AGT_BENCH_CLI_H
#define AGT_BENCH_CLI_H

#include "train.h"

#include <stddef.h>

/* The option matchers of the bench's parsers, used in a loop over argv
 * with these locals in scope: argc, argv, i (the index), cmd (the command
 * name), m (int), v (const char *) and n (long long).
 * AGT_OPT(name): argv[i] is --name VALUE or --name=VALUE: m = 1 (v set),
 *   0 (another option) or -1 (the value is missing: cli_option said so);
 * AGT_INT(name, lo, hi): the value as an integer in lo..hi, into n;
 * AGT_STR(dst): the value as a string.
 * The last two return CLI_USAGE from the function on a bad value. */
#define AGT_OPT(name) ((m = cli_option(argc, argv, &i, NULL, name, &v, cmd)) != 0)
#define AGT_INT(name, lo, hi)                                          \
    do {                                                               \
        if (m < 0 || cli_int_arg(&n, v, lo, hi, cmd, name) != CLI_OK)  \
            return CLI_USAGE;                                          \
    } while (0)
#define AGT_STR(dst)                                                   \
    do {                                                               \
        if (m < 0)                                                     \
            return CLI_USAGE;                                          \
        dst = v;                                                       \
    } while (0)

/* The comma-separated item idx of list into out (cap bytes; out may be
 * NULL); returns the number of items, or -1 when item idx does not fit. */
int agt_cli_list_item(const char *list, int idx, char *out, size_t cap);
/* 1 for the spellings of "no format: float32" (fp32 f32 float32 none). */
int agt_cli_is_fp32(const char *s);
/* A format spec of an option: fp32 or anything ag_format_parse takes. */
int agt_cli_check_spec(const char *cmd, const char *spec);
/* fmt from one entry (fp32 | F | F/G | fp8 = float8_e4m3fn/float8_e5m2),
 * the gradient from grad (--grad-format) when the entry has no /G;
 * *grad_used = 1 when grad reached it. */
int agt_cli_entry_to_fmt(const char *cmd, const char *entry, const char *grad,
                         agt_layer_fmt *fmt, int *grad_used);
/* Bytes outside [A-Za-z0-9._-] become '-' (s names files). */
void agt_cli_file_safe(char *s);
/* The output directory (created) and the checkpoint path are writable;
 * else CLI_RUNTIME. */
int agt_cli_check_outputs(const char *cmd, const agt_config *c);
/* The options both bench commands take, into c: --quiet,
 * --stochastic-grads, --batch (1..max_batch), --lr, --wd, --seed,
 * --threads, --history, --out. *matched = 1 when argv[*i] was one (and *i
 * past its value), else 0. Returns CLI_OK, or CLI_USAGE after printing
 * what is wrong. */
int agt_cli_common_option(int argc, char **argv, int *i, agt_config *c,
                          const char *cmd, long long max_batch, int *matched);
/* c->name = name: 1.. characters that fit and do not start with '.' (it
 * names the output files); else CLI_USAGE after saying so. */
int agt_cli_set_name(agt_config *c, const char *name, const char *cmd);
/* "LABEL: PATH" on stdout, the path sanitized. */
void agt_cli_print_path(const char *label, const char *path);

#endif /* AGT_BENCH_CLI_H */
