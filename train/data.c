/* SPDX-License-Identifier: MIT */
/*
 * data.c — the IDX loader of the training bench (Fashion-MNIST, MNIST).
 *
 * IDX: a big-endian header (magic 0x00000803 for 3-d uint8 images,
 * 0x00000801 for 1-d uint8 labels; then one uint32 per dimension) followed
 * by the raw bytes. Debian's dataset-fashion-mnist ships the files gzipped;
 * gzread reads gzip and plain files alike, so both work. Every malformed
 * input (bad magic, wrong dimensions, count mismatch, label out of range,
 * truncation, trailing bytes, a corrupt gzip stream) is an error naming
 * the file.
 */
#define _POSIX_C_SOURCE 200809L
#include "train.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

int agt_fail(agt_err *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Read exactly n bytes; returns the count read (short on EOF), -1 on error. */
static long read_full(gzFile g, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t want = n - got;
        if (want > (1u << 30))
            want = 1u << 30;
        int r = gzread(g, (char *)buf + got, (unsigned)want);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (long)got;
}

static uint32_t be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static const char *gz_msg(gzFile g)
{
    int code = 0;
    const char *m = gzerror(g, &code);
    if (code == Z_ERRNO)
        return strerror(errno);
    return m && *m ? m : "read error";
}

/* Open `path` and read an IDX file with magic `magic` and `ndims` dims into
 * a fresh buffer; dims[] receives the sizes. */
static int idx_read(const char *path, uint32_t magic, int ndims,
                    uint32_t *dims, uint8_t **data, size_t *len,
                    agt_err *err)
{
    *data = NULL;
    *len = 0;
    errno = 0;
    gzFile g = gzopen(path, "rb");
    if (!g)
        return agt_fail(err, "%s: cannot open: %s", path,
                        errno ? strerror(errno) : "out of memory");
    unsigned char hdr[16];
    size_t hlen = 4 + 4 * (size_t)ndims;
    long r = read_full(g, hdr, hlen);
    if (r < 0) {
        agt_fail(err, "%s: %s", path, gz_msg(g));
        gzclose(g);
        return -1;
    }
    if ((size_t)r < hlen) {
        gzclose(g);
        return agt_fail(err, "%s: truncated IDX header (%ld of %zu bytes)",
                        path, r, hlen);
    }
    uint32_t m = be32(hdr);
    if (m != magic) {
        gzclose(g);
        return agt_fail(err,
                        "%s: not an IDX %s file (magic 0x%08x, expected "
                        "0x%08x)",
                        path, ndims == 3 ? "image" : "label", (unsigned)m,
                        (unsigned)magic);
    }
    size_t total = 1;
    for (int i = 0; i < ndims; i++) {
        dims[i] = be32(hdr + 4 + 4 * i);
        if (dims[i] == 0 || dims[i] > 100000000u) {
            gzclose(g);
            return agt_fail(err, "%s: bad dimension %d: %u", path, i,
                            (unsigned)dims[i]);
        }
        total *= dims[i];
        if (total > ((size_t)1 << 34)) {
            gzclose(g);
            return agt_fail(err, "%s: implausible size", path);
        }
    }
    uint8_t *buf = malloc(total ? total : 1);
    if (!buf) {
        gzclose(g);
        return agt_fail(err, "%s: out of memory (%zu bytes)", path, total);
    }
    r = read_full(g, buf, total);
    if (r < 0) {
        agt_fail(err, "%s: %s", path, gz_msg(g));
        free(buf);
        gzclose(g);
        return -1;
    }
    if ((size_t)r < total) {
        free(buf);
        gzclose(g);
        return agt_fail(err,
                        "%s: truncated: %zu data bytes, header says %zu",
                        path, (size_t)r, total);
    }
    unsigned char extra;
    r = read_full(g, &extra, 1);
    if (r != 0) {
        if (r < 0)
            agt_fail(err, "%s: %s", path, gz_msg(g));
        else
            agt_fail(err, "%s: trailing bytes after %zu data bytes", path,
                     total);
        free(buf);
        gzclose(g);
        return -1;
    }
    gzclose(g);
    *data = buf;
    *len = total;
    return 0;
}

int agt_dataset_load(agt_dataset *ds, const char *images_path,
                     const char *labels_path, size_t limit, agt_err *err)
{
    memset(ds, 0, sizeof *ds);
    uint32_t idims[3], ldims[1];
    uint8_t *pix = NULL, *lab = NULL;
    size_t plen, llen;
    if (idx_read(images_path, 0x00000803u, 3, idims, &pix, &plen, err))
        return -1;
    if (idims[1] != 28 || idims[2] != 28) {
        free(pix);
        return agt_fail(err, "%s: images are %ux%u, expected 28x28",
                        images_path, (unsigned)idims[1], (unsigned)idims[2]);
    }
    if (idx_read(labels_path, 0x00000801u, 1, ldims, &lab, &llen, err)) {
        free(pix);
        return -1;
    }
    if (ldims[0] != idims[0]) {
        free(pix);
        free(lab);
        return agt_fail(err, "%s: %u labels for %u images in %s",
                        labels_path, (unsigned)ldims[0], (unsigned)idims[0],
                        images_path);
    }
    for (size_t i = 0; i < llen; i++) {
        if (lab[i] >= AGT_CLASSES) {
            int bad = lab[i];
            free(pix);
            free(lab);
            return agt_fail(err, "%s: label %d out of range 0..9 at index %zu",
                            labels_path, bad, i);
        }
    }
    ds->n = idims[0];
    if (limit > 0 && limit < ds->n)
        ds->n = limit;
    ds->pixels = pix;
    ds->labels = lab;
    return 0;
}

int agt_dataset_load_dir(agt_dataset *ds, const char *dir, int train,
                         size_t limit, agt_err *err)
{
    const char *pre = train ? "train" : "t10k";
    char ip[4096], lp[4096];
    const char *sfx[2] = {"", ".gz"};
    int found = 0;
    for (int s = 0; s < 2 && !found; s++) {
        snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte%s", dir, pre, sfx[s]);
        snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte%s", dir, pre, sfx[s]);
        if (access(ip, F_OK) == 0 || access(lp, F_OK) == 0)
            found = 1;
    }
    if (!found) {
        memset(ds, 0, sizeof *ds);
        return agt_fail(err,
                        "%s/%s-images-idx3-ubyte(.gz): no such file (the "
                        "IDX data set: install dataset-fashion-mnist or pass "
                        "--data DIR)",
                        dir, pre);
    }
    return agt_dataset_load(ds, ip, lp, limit, err);
}

void agt_dataset_free(agt_dataset *ds)
{
    if (!ds)
        return;
    free(ds->pixels);
    free(ds->labels);
    memset(ds, 0, sizeof *ds);
}

void agt_dataset_batch(float *x, uint8_t *y, const agt_dataset *ds,
                       const uint32_t *idx, int B)
{
    /* pixel / 255 of every byte value, the same quotients as dividing
     * each pixel (a table lookup instead of a division per pixel) */
    float scaled[256];
    for (int v = 0; v < 256; v++)
        scaled[v] = (float)v / 255.0f;
    for (int b = 0; b < B; b++) {
        const uint8_t *p = ds->pixels + (size_t)idx[b] * AGT_IMG;
        float *o = x + (size_t)b * AGT_IMG;
        for (int j = 0; j < AGT_IMG; j++)
            o[j] = scaled[p[j]];
        y[b] = ds->labels[idx[b]];
    }
}
