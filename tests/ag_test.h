/* SPDX-License-Identifier: MIT */
/*
 * ag_test.h — the tiny test harness of the C suite.
 *
 *     AG_CHECK(cond, "fmt", ...)   count a check; on failure print
 *                                  file:line and the message (first 50
 *                                  failures of a binary are printed)
 *     return ag_test_summary("name");   prints "name: N passed, N failed"
 *                                  and returns the process exit status
 *
 * Checks are counted, not aborted on, so one run shows every failure.
 * Not thread-safe: call AG_CHECK from the main thread.
 */
#ifndef AG_TEST_H
#define AG_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long ag_test_passed, ag_test_failed;

#define AG_CHECK(cond, ...)                                                  \
    do {                                                                     \
        if (cond) {                                                          \
            ag_test_passed++;                                                \
        } else {                                                             \
            if (ag_test_failed++ < 50) {                                     \
                fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__,       \
                        __LINE__, #cond);                                    \
                fprintf(stderr, __VA_ARGS__);                                \
                fputc('\n', stderr);                                         \
            }                                                                \
        }                                                                    \
    } while (0)

/* Bit pattern of a float, for messages and exact comparisons. */
static inline uint32_t ag_test_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float ag_test_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Equal as bit patterns, or both NaN. */
static inline int ag_test_same(float a, float b)
{
    return ag_test_bits(a) == ag_test_bits(b) || (a != a && b != b);
}

static inline int ag_test_summary(const char *name)
{
    printf("%s: %lu passed, %lu failed\n", name, ag_test_passed,
           ag_test_failed);
    return ag_test_failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif /* AG_TEST_H */
