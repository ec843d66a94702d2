/* SPDX-License-Identifier: MIT */
/*
 * test_train_data.c — the IDX loader: valid files (plain and gzip) load;
 * every kind of corrupt or missing file is an error that names the file;
 * Debian's Fashion-MNIST (when installed) validates.
 */
#include "train_test_util.h"

static char dir[64];

/* Load images/labels written from the given bytes; returns the loader's rc
 * and leaves the message in err. */
static int try_load(const unsigned char *img, size_t il, const unsigned char *lab,
                    size_t ll, int gz, agt_dataset *ds, agt_err *err,
                    char *ipath, char *lpath)
{
    sprintf(ipath, "%s/img%s", dir, gz ? ".gz" : "");
    sprintf(lpath, "%s/lab%s", dir, gz ? ".gz" : "");
    if (tt_write(ipath, img, il, gz) || tt_write(lpath, lab, ll, gz))
        return 99;
    return agt_dataset_load(ds, ipath, lpath, 0, err);
}

/* The load fails and the message contains `file` and `what`. */
static void expect_fail(const char *name, const unsigned char *img, size_t il,
                        const unsigned char *lab, size_t ll, int gz,
                        int bad_is_labels, const char *what)
{
    agt_dataset ds;
    agt_err err = {{0}};
    char ip[128], lp[128];
    int rc = try_load(img, il, lab, ll, gz, &ds, &err, ip, lp);
    AG_CHECK(rc == -1, "%s: rc %d (expected an error)", name, rc);
    AG_CHECK(strstr(err.msg, bad_is_labels ? lp : ip) != NULL,
             "%s: message does not name the file: %s", name, err.msg);
    AG_CHECK(strstr(err.msg, what) != NULL, "%s: message lacks '%s': %s", name,
             what, err.msg);
    AG_CHECK(ds.pixels == NULL && ds.n == 0, "%s: dataset not empty", name);
    agt_dataset_free(&ds);
}

int main(void)
{
    if (tt_tmpdir(dir, sizeof dir)) {
        fprintf(stderr, "cannot create a temporary directory\n");
        return 1;
    }
    const uint32_t n = 20;
    uint8_t pix[20 * 784], lab[20];
    for (size_t i = 0; i < sizeof pix; i++)
        pix[i] = (uint8_t)(i * 31 + 7);
    for (uint32_t i = 0; i < n; i++)
        lab[i] = (uint8_t)((i * 7) % 10);
    size_t il, ll;
    unsigned char *img = tt_idx_images(0x803, n, 28, 28, pix, &il);
    unsigned char *labs = tt_idx_labels(0x801, n, lab, &ll);
    if (!img || !labs)
        return 1;

    /* valid, plain and gzip */
    for (int gz = 0; gz < 2; gz++) {
        agt_dataset ds;
        agt_err err = {{0}};
        char ip[128], lp[128];
        int rc = try_load(img, il, labs, ll, gz, &ds, &err, ip, lp);
        AG_CHECK(rc == 0, "valid %s: %s", gz ? "gz" : "plain", err.msg);
        AG_CHECK(ds.n == n, "n = %zu", ds.n);
        AG_CHECK(rc == 0 && memcmp(ds.pixels, pix, sizeof pix) == 0, "pixels differ");
        AG_CHECK(rc == 0 && memcmp(ds.labels, lab, n) == 0, "labels differ");
        if (rc == 0) {
            float x[2 * 784];
            uint8_t y[2];
            uint32_t idx[2] = {3, 0};
            agt_dataset_batch(x, y, &ds, idx, 2);
            AG_CHECK(y[0] == lab[3] && y[1] == lab[0], "batch labels");
            AG_CHECK(x[5] == (float)pix[3 * 784 + 5] / 255.0f, "batch pixel %g", (double)x[5]);
            AG_CHECK(x[784] == (float)pix[0] / 255.0f, "batch pixel row 2");
        }
        agt_dataset_free(&ds);
        /* limit */
        rc = agt_dataset_load(&ds, ip, lp, 5, &err);
        AG_CHECK(rc == 0 && ds.n == 5, "limit: rc %d n %zu", rc, ds.n);
        agt_dataset_free(&ds);
    }

    /* corrupt files */
    size_t bl;
    unsigned char *bad;
    bad = tt_idx_images(0x801, n, 28, 28, pix, &bl);
    expect_fail("image magic", bad, bl, labs, ll, 0, 0, "magic");
    free(bad);
    bad = tt_idx_labels(0x803, n, lab, &bl);
    expect_fail("label magic", img, il, bad, bl, 1, 1, "magic");
    free(bad);
    bad = tt_idx_images(0x803, 4, 32, 32, NULL, &bl);
    expect_fail("dims", bad, bl, labs, ll, 0, 0, "28x28");
    free(bad);
    bad = tt_idx_images(0x803, 0, 28, 28, NULL, &bl);
    expect_fail("zero images", bad, bl, labs, ll, 0, 0, "dimension");
    free(bad);
    expect_fail("truncated images", img, il - 100, labs, ll, 0, 0, "truncated");
    expect_fail("truncated images gz", img, il - 1, labs, ll, 1, 0, "truncated");
    expect_fail("truncated header", img, 10, labs, ll, 0, 0, "truncated");
    expect_fail("empty", img, 0, labs, ll, 0, 0, "truncated");
    expect_fail("truncated labels", img, il, labs, ll - 3, 0, 1, "truncated");
    {
        unsigned char *big = malloc(il + 5);
        memcpy(big, img, il);
        memset(big + il, 0, 5);
        expect_fail("trailing", big, il + 5, labs, ll, 0, 0, "trailing");
        free(big);
    }
    bad = tt_idx_labels(0x801, n - 1, lab, &bl);
    expect_fail("count mismatch", img, il, bad, bl, 0, 1, "labels for");
    free(bad);
    {
        uint8_t lab2[20];
        memcpy(lab2, lab, sizeof lab2);
        lab2[13] = 10;
        bad = tt_idx_labels(0x801, n, lab2, &bl);
        expect_fail("label range", img, il, bad, bl, 0, 1, "out of range");
        free(bad);
    }
    {
        /* a gzip stream with its middle damaged */
        char p[128];
        sprintf(p, "%s/tmp.gz", dir);
        tt_write(p, img, il, 1);
        FILE *f = fopen(p, "rb");
        unsigned char gzb[65536];
        size_t gl = fread(gzb, 1, sizeof gzb, f);
        fclose(f);
        for (size_t i = gl / 3; i < gl / 3 + 40 && i < gl; i++)
            gzb[i] ^= 0x5a;
        agt_dataset ds;
        agt_err err = {{0}};
        char ip[128], lp[128];
        sprintf(ip, "%s/corrupt.gz", dir);
        sprintf(lp, "%s/lab.gz", dir);
        tt_write(ip, gzb, gl, 0);
        tt_write(lp, labs, ll, 1);
        int rc = agt_dataset_load(&ds, ip, lp, 0, &err);
        AG_CHECK(rc == -1 && strstr(err.msg, ip), "corrupt gzip: rc %d msg %s", rc, err.msg);
    }
    {
        agt_dataset ds;
        agt_err err = {{0}};
        char ip[128];
        sprintf(ip, "%s/missing-file", dir);
        int rc = agt_dataset_load(&ds, ip, ip, 0, &err);
        AG_CHECK(rc == -1 && strstr(err.msg, ip) && strstr(err.msg, "cannot open"),
                 "missing: %s", err.msg);
        rc = agt_dataset_load_dir(&ds, dir, 1, 0, &err);
        AG_CHECK(rc == -1 && strstr(err.msg, "train-images-idx3-ubyte"),
                 "missing dir files: %s", err.msg);
    }
    free(img);
    free(labs);

    /* Debian's Fashion-MNIST, when installed: the test split validates */
    if (access(AGT_DEFAULT_DATA "/t10k-images-idx3-ubyte.gz", F_OK) == 0 ||
        access(AGT_DEFAULT_DATA "/t10k-images-idx3-ubyte", F_OK) == 0) {
        agt_dataset ds;
        agt_err err = {{0}};
        int rc = agt_dataset_load_dir(&ds, AGT_DEFAULT_DATA, 0, 0, &err);
        AG_CHECK(rc == 0 && ds.n == 10000, "fashion-mnist test split: %s", err.msg);
        size_t hist[10] = {0};
        for (size_t i = 0; rc == 0 && i < ds.n; i++)
            hist[ds.labels[i]]++;
        for (int c = 0; rc == 0 && c < 10; c++)
            AG_CHECK(hist[c] == 1000, "class %d: %zu", c, hist[c]);
        agt_dataset_free(&ds);
    } else {
        printf("note: %s not installed; real-data check skipped\n", AGT_DEFAULT_DATA);
    }
    tt_rmdir(dir);
    return ag_test_summary("test_train_data");
}
