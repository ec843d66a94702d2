/* SPDX-License-Identifier: MIT */
/*
 * test_gpt.c — the bench's GPT without PyTorch: results independent of
 * the thread count (bit for bit, float32 and quantized with stochastic
 * gradients), the gradient of the loss against central differences in
 * double, bad shapes / tokens / texts as errors, and the token stream
 * (split, determinism, unigram loss against a plain count).
 */
#include "train_test_util.h"
#include "gpt.h"

#include <math.h>
#include <omp.h>

#define NB 2
#define NT 8

static void tiny(agt_gpt_cfg *c)
{
    agt_gpt_cfg_default(c);
    c->n_layer = 2;
    c->n_head = 2;
    c->n_embd = 16;
    c->block_size = NT;
    c->vocab_size = 64;
}

static void batch(uint8_t *tok, uint8_t *tgt, int V)
{
    uint64_t s = 5;
    for (int i = 0; i < NB * NT; i++) {
        tok[i] = (uint8_t)(agt_splitmix64(&s) % (uint64_t)V);
        tgt[i] = (uint8_t)(agt_splitmix64(&s) % (uint64_t)V);
    }
}

/* loss and gradients of three AdamW steps with `threads` OpenMP threads */
static int run(const agt_gpt_cfg *c, int threads, float *grads, double *loss)
{
    agt_gpt m;
    agt_err err;
    agt_gpt_optim o;
    uint8_t tok[NB * NT], tgt[NB * NT];
    batch(tok, tgt, c->vocab_size);
    omp_set_num_threads(threads);
    if (agt_gpt_init(&m, c, NB, 3, &err) || agt_gpt_optim_init(&o, &m, 1e-2, 0.1, AG_PRECONDITION_UPDATE, 3, &err)) {
        AG_CHECK(0, "init: %s", err.msg);
        return -1;
    }
    int rc = 0;
    for (int s = 0; s < 3 && rc == 0; s++) {
        memset(m.grads, 0, m.nparams * sizeof(float));
        rc = agt_gpt_forward(&m, tok, tgt, NB, NT, 1, loss, &err) ||
             agt_gpt_backward(&m, tgt, 1, &err) ||
             agt_gpt_optim_step(&o, &m, &err);
    }
    AG_CHECK(rc == 0, "steps: %s", err.msg);
    memcpy(grads, m.grads, m.nparams * sizeof(float));
    size_t n = m.nparams;
    agt_gpt_optim_free(&o);
    agt_gpt_free(&m);
    return (int)(n > 0 ? 0 : -1);
}

static void test_threads(void)
{
    agt_gpt_cfg c, q;
    tiny(&c);
    q = c;
    agt_gpt_cfg_set(&q, 0x1fu, -1, "E3M4");
    agt_gpt_cfg_set(&q, 0x1fu, AGT_QG, "E5M2");
    q.qc.stochastic_grads = 1;
    q.qc.threads = 0;
    const agt_gpt_cfg *cs[2] = {&c, &q};
    for (int k = 0; k < 2; k++) {
        agt_gpt m;
        agt_err err;
        AG_CHECK(agt_gpt_init(&m, cs[k], NB, 3, &err) == 0, "%s", err.msg);
        size_t n = m.nparams;
        agt_gpt_free(&m);
        float *g1 = malloc(n * sizeof *g1), *g2 = malloc(n * sizeof *g2);
        double l1 = 0, l2 = 1;
        run(cs[k], 1, g1, &l1);
        run(cs[k], 2, g2, &l2);
        AG_CHECK(memcmp(&l1, &l2, sizeof l1) == 0 && memcmp(g1, g2, n * sizeof *g1) == 0,
                 "%s: 1 and 2 threads differ (loss %.17g vs %.17g)",
                 k ? "quantized" : "fp32", l1, l2);
        free(g1);
        free(g2);
    }
}

/* d loss / d param by central differences (the loss in double) at a few
 * elements of every tensor, against the backward; float32 forward, so
 * steps of 1e-2 and a tolerance of a few percent of the tensor's scale. */
static void test_numeric_gradient(void)
{
    agt_gpt_cfg c;
    tiny(&c);
    agt_gpt m;
    agt_err err;
    uint8_t tok[NB * NT], tgt[NB * NT];
    batch(tok, tgt, c.vocab_size);
    AG_CHECK(agt_gpt_init(&m, &c, NB, 11, &err) == 0, "%s", err.msg);
    /* make the LayerNorm parameters non-trivial */
    uint64_t s = 17;
    for (int i = 0; i < m.ntensors; i++)
        if (m.tensors[i].dims == 1)
            for (size_t j = 0; j < m.tensors[i].n; j++)
                m.params[m.tensors[i].off + j] += 0.1f * (float)agt_normal(&s);
    double loss;
    memset(m.grads, 0, m.nparams * sizeof(float));
    agt_gpt_forward(&m, tok, tgt, NB, NT, 1, &loss, &err);
    agt_gpt_backward(&m, tgt, 1, &err);
    int bad = 0;
    for (int i = 0; i < m.ntensors; i++) {
        const agt_tensor *t = &m.tensors[i];
        double gmax = 0;
        for (size_t j = 0; j < t->n; j++)
            gmax = fmax(gmax, fabs((double)m.grads[t->off + j]));
        for (int k = 0; k < 3; k++) {
            size_t j = t->off + (size_t)(agt_splitmix64(&s) % t->n);
            const float h = 1e-2f, p0 = m.params[j];
            double lp, lm;
            m.params[j] = p0 + h;
            agt_gpt_forward(&m, tok, tgt, NB, NT, 0, &lp, &err);
            m.params[j] = p0 - h;
            agt_gpt_forward(&m, tok, tgt, NB, NT, 0, &lm, &err);
            m.params[j] = p0;
            double num = (lp - lm) / (2.0 * (double)h);
            double d = fabs(num - (double)m.grads[j]);
            if (d > 0.05 * gmax + 1e-4) {
                bad++;
                AG_CHECK(0, "%s[%zu]: backward %.6g, central difference %.6g", t->name,
                         j - t->off, (double)m.grads[j], num);
            }
        }
    }
    AG_CHECK(bad == 0, "%d gradient elements off", bad);
    agt_gpt_free(&m);
}

static void test_errors(void)
{
    agt_gpt_cfg c;
    agt_gpt m;
    agt_err err;
    tiny(&c);
    c.n_head = 3; /* 16 not a multiple of 3 */
    AG_CHECK(agt_gpt_init(&m, &c, NB, 1, &err) == -1 && strstr(err.msg, "heads"),
             "bad heads accepted (%s)", err.msg);
    tiny(&c);
    c.vocab_size = 300;
    AG_CHECK(agt_gpt_init(&m, &c, NB, 1, &err) == -1, "vocabulary 300 accepted");
    tiny(&c);
    snprintf(c.spec[AGT_LT_FC][AGT_QW], 48, "E9M9");
    AG_CHECK(agt_gpt_init(&m, &c, NB, 1, &err) == -1 && strstr(err.msg, "c_fc"),
             "bad format accepted or not named (%s)", err.msg);
    tiny(&c);
    AG_CHECK(agt_gpt_init(&m, &c, NB, 1, &err) == 0, "%s", err.msg);
    uint8_t tok[NB * NT] = {0}, tgt[NB * NT] = {0};
    double loss;
    tok[3] = 64;
    AG_CHECK(agt_gpt_forward(&m, tok, tgt, NB, NT, 1, &loss, &err) == -1 &&
             strstr(err.msg, "vocabulary"), "token 64 of 64 accepted");
    tok[3] = 0;
    AG_CHECK(agt_gpt_forward(&m, tok, tgt, NB, NT + 1, 1, &loss, &err) == -1,
             "sequence longer than the context accepted");
    AG_CHECK(agt_gpt_forward(&m, tok, tgt, NB + 1, NT, 1, &loss, &err) == -1,
             "batch larger than the buffers accepted");
    agt_gpt_free(&m);
    agt_text tx;
    AG_CHECK(agt_text_load(&tx, "/nonexistent/text.txt", 0.1, &err) == -1 &&
             strstr(err.msg, "/nonexistent/text.txt"), "missing file: %s", err.msg);
}

static void test_text(void)
{
    char dir[64], path[96];
    AG_CHECK(tt_tmpdir(dir, sizeof dir) == 0, "tmpdir");
    snprintf(path, sizeof path, "%s/t.txt", dir);
    static uint8_t buf[20000];
    uint64_t s = 9;
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)('a' + agt_splitmix64(&s) % 5);
    tt_write(path, buf, sizeof buf, 0);
    agt_text tx;
    agt_err err;
    AG_CHECK(agt_text_load(&tx, path, 0.1, &err) == 0, "%s", err.msg);
    AG_CHECK(tx.n == sizeof buf && tx.ntrain == 18000, "split %zu/%zu", tx.ntrain, tx.n);
    uint8_t a[4 * 32], b[4 * 32], c[4 * 32], d[4 * 32];
    agt_text_batch(a, b, &tx, 1, 7, 3, 4, 32);
    agt_text_batch(c, d, &tx, 1, 7, 3, 4, 32);
    AG_CHECK(!memcmp(a, c, sizeof a) && !memcmp(b, d, sizeof b), "batch not deterministic");
    AG_CHECK(!memcmp(a + 1, b, 31), "targets are not the next bytes");
    /* validation windows lie in the validation split */
    agt_text_batch(a, b, &tx, 0, 0, 0, 4, 32);
    int in_val = 0;
    for (size_t p = tx.ntrain; p + 32 <= tx.n; p++)
        if (!memcmp(tx.bytes + p, a, 32)) { in_val = 1; break; }
    AG_CHECK(in_val, "validation window not found in the validation split");
    /* unigram loss against a plain count (add-one smoothing) */
    double cnt[256] = {0}, want = 0;
    for (size_t i = 0; i < tx.ntrain; i++) cnt[buf[i]]++;
    for (size_t i = tx.ntrain; i < tx.n; i++)
        want -= log((cnt[buf[i]] + 1) / (18000.0 + 256));
    want /= 2000;
    double got = agt_text_unigram_loss(&tx);
    AG_CHECK(fabs(got - want) < 1e-9 && fabs(got - log(5.0)) < 0.05,
             "unigram %.9g vs %.9g (log 5 = %.4f)", got, want, log(5.0));
    agt_text_free(&tx);
    /* too little text */
    tt_write(path, buf, 100, 0);
    AG_CHECK(agt_text_load(&tx, path, 0.1, &err) == -1 && strstr(err.msg, "too little"),
             "100 bytes accepted (%s)", err.msg);
    remove(path);
    tt_rmdir(dir);
}

static int gpt_cli(const char *const *args, int n)
{
    char *argv[32];
    argv[0] = (char *)"gpt";
    for (int i = 0; i < n; i++) argv[i + 1] = (char *)args[i];
    return ag_gpt_main(n + 1, argv);
}

/* altgrad gpt: usage errors exit 1, runtime errors 2, a tiny run 0 with
 * its CSV */
static void test_cli(void)
{
    char dir[64], text[96], csv[96];
    AG_CHECK(tt_tmpdir(dir, sizeof dir) == 0, "tmpdir");
    snprintf(text, sizeof text, "%s/t.txt", dir);
    snprintf(csv, sizeof csv, "%s/log.csv", dir);
    static char buf[16384];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = "abc de\n"[i * 7 % 7];
    tt_write(text, buf, sizeof buf, 0);
    const char *bad_opt[] = {"--bogus"};
    AG_CHECK(gpt_cli(bad_opt, 1) == 1, "unknown option not exit 1");
    const char *bad_fmt[] = {"--format", "E9M9", "--data", text};
    AG_CHECK(gpt_cli(bad_fmt, 4) == 1, "bad format not exit 1");
    const char *bad_pre[] = {"--precondition", "sideways"};
    AG_CHECK(gpt_cli(bad_pre, 2) == 1, "bad precondition not exit 1");
    const char *bad_heads[] = {"--embd", "30", "--heads", "4"};
    AG_CHECK(gpt_cli(bad_heads, 4) == 1, "embd not a multiple of heads not exit 1");
    const char *no_file[] = {"--data", "/nonexistent/x.txt"};
    AG_CHECK(gpt_cli(no_file, 2) == 2, "missing data file not exit 2");
    const char *run[] = {"--data", text, "--steps", "4", "--eval-every", "2",
                         "--eval-batches", "1", "--layers", "1", "--embd", "16",
                         "--heads", "2", "--ctx", "8", "--batch", "2", "--quiet",
                         "--format", "E3M4", "--precondition", "grad", "--csv", csv};
    AG_CHECK(gpt_cli(run, 25) == 0, "tiny run failed");
    FILE *f = fopen(csv, "r");
    int lines = 0, c;
    while (f && (c = fgetc(f)) != EOF)
        lines += c == '\n';
    if (f) fclose(f);
    AG_CHECK(lines == 3, "CSV has %d lines, want header + 2", lines);
    remove(csv);
    remove(text);
    tt_rmdir(dir);
}

int main(void)
{
    test_cli();
    test_threads();
    test_numeric_gradient();
    test_errors();
    test_text();
    return ag_test_summary("test_gpt");
}
