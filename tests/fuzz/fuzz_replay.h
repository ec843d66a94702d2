/* SPDX-License-Identifier: MIT */
/*
 * fuzz_replay.h — the standalone replay driver of the fuzz targets (built
 * without libFuzzer): runs the target once on every file named on the
 * command line; a directory stands for every regular file in it. Exits
 * non-zero if a file cannot be read (a failing input aborts the target).
 */
#ifndef AG_FUZZ_REPLAY_H
#define AG_FUZZ_REPLAY_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef int (*ag_fuzz_fn)(const uint8_t *data, size_t size);

/* Run fn on the file at path; -1 if it cannot be read. */
static inline int ag_fuzz_replay_file(const char *path, ag_fuzz_fn fn)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return -1;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        fclose(fp);
        return -1;
    }
    for (;;) {
        if (n == cap) {
            uint8_t *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                fclose(fp);
                return -1;
            }
            buf = p;
            cap *= 2;
        }
        const size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0)
            break;
    }
    fclose(fp);
    fn(buf, n);
    free(buf);
    return 0;
}

/* Files (or directories of files) -> number run, or -1 on a read error. */
static inline long ag_fuzz_replay_path(const char *path, ag_fuzz_fn fn)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return -1;
    if (!S_ISDIR(sb.st_mode))
        return ag_fuzz_replay_file(path, fn) == 0 ? 1 : -1;
    DIR *d = opendir(path);
    if (!d)
        return -1;
    long count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", path, e->d_name);
        if (stat(full, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        if (ag_fuzz_replay_file(full, fn) != 0) {
            closedir(d);
            return -1;
        }
        count++;
    }
    closedir(d);
    return count;
}

static inline int ag_fuzz_replay(int argc, char **argv, ag_fuzz_fn fn)
{
    long total = 0;
    for (int i = 1; i < argc; i++) {
        const long c = ag_fuzz_replay_path(argv[i], fn);
        if (c < 0) {
            fprintf(stderr, "%s: cannot read %s\n", argv[0], argv[i]);
            return 2;
        }
        total += c;
    }
    printf("%s: %ld inputs replayed, no failure\n", argv[0], total);
    return 0;
}

#endif /* AG_FUZZ_REPLAY_H */
