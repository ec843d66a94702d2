/* SPDX-License-Identifier: MIT */
/*
 * gpt.h — the training bench's transformer: a GPT (nanoGPT layout, the twin
 * of python/altgrad/training/model.py) trained in C on byte-level text,
 * with narrow formats per tensor role and per linear-layer type.
 *
 * Layout of the code:
 *     train/ops.c      forward/backward pairs of the GPT's ops over flat
 *                      arrays (destination first; backward ACCUMULATES):
 *                      embedding, layernorm, causal attention, GELU,
 *                      residual add, token cross-entropy (the quantized
 *                      linear, agt_qlinear, is train/nn.c's)
 *     train/gpt.c      the model: parameter table, forward, backward,
 *                      quantizers per (layer type, role), optimizer step
 *     train/tokens.c   the token stream (a UTF-8 text file or the King
 *                      James Bible of Debian's bible-kjv), split, batches
 *     train/gpt_cli.c  `altgrad gpt`: one training run with a CSV log
 *
 * Determinism: every op is either elementwise, row-parallel (each output
 * row written by one task) or reduces in a fixed serial order, and each
 * matrix product is cut into tiles fixed by its shape, one single-threaded
 * sgemm per tile (agt_gemm), so results do not depend on the thread count.
 * The threads are the model's own pool (train/pool.c), not OpenMP's.
 */
#ifndef AGT_GPT_H
#define AGT_GPT_H

#include "train.h"

int ag_gpt_main(int argc, char **argv);
/* altgrad compare --model gpt: the experiment matrix. */
int agt_gpt_compare_main(int argc, char **argv);

/* ------------------------------------------------------------------------ */
/* Ops (train/ops.c). [N,C] is row-major; N = B*T rows. pool: the team that  */
/* runs the op's tasks (NULL: the caller alone); results do not depend on it. */
/* ------------------------------------------------------------------------ */
/* out[b,t,:] = wte[tok[b,t],:] + wpe[t,:]. */
void agt_embed_forward(float *out, const uint8_t *tok, const float *wte,
                       const float *wpe, int B, int T, int C);
/* dwte[tok] += dout rows, dwpe[t] += dout rows (fixed serial order). */
void agt_embed_backward(float *dwte, float *dwpe, const float *dout,
                        const uint8_t *tok, int B, int T, int C);
/* out = (x - mean) * rstd * w + b per row (eps 1e-5, biased variance);
 * mean[N], rstd[N] kept for the backward. */
void agt_layernorm_forward(agt_pool *pool, float *out, float *mean,
                           float *rstd, const float *inp, const float *w,
                           const float *b, int N, int C);
/* dinp += ..., dw += ..., db += ... (accumulate). */
void agt_layernorm_backward(agt_pool *pool, float *dinp, float *dw,
                            float *db, const float *dout, const float *inp,
                            const float *w, const float *mean,
                            const float *rstd, int N, int C);
/* Causal self-attention of qkv[B,T,3C] (q, k, v each C = NH heads of
 * C/NH): att[B,NH,T,T] keeps the softmax (rows t, columns <= t; the rest
 * 0), out[B,T,C] the heads side by side. */
void agt_attention_forward(agt_pool *pool, float *out, float *att,
                           const float *qkv, int B, int T, int C, int NH);
/* dqkv += d/dqkv (accumulates); datt is scratch [B,NH,T,T]. */
void agt_attention_backward(agt_pool *pool, float *dqkv, float *datt,
                            const float *dout, const float *qkv,
                            const float *att, int B, int T, int C, int NH);
/* out = x * Phi(x) (the exact GELU, torch's nn.GELU(); Phi within 1e-6
 * relative, see ops.c). out == inp allowed. */
void agt_gelu_forward(agt_pool *pool, float *out, const float *inp,
                      size_t n);
/* dinp += dout * gelu'(inp). */
void agt_gelu_backward(agt_pool *pool, float *dinp, const float *dout,
                       const float *inp, size_t n);
/* out = a + b. */
void agt_residual_forward(float *out, const float *a, const float *b,
                          size_t n);
/* probs[N,V] = softmax(logits) (may equal logits); returns the mean over the
 * N rows of -log probs[row, tgt[row]] (NaN when a logit is NaN), summed in
 * double in row order. */
double agt_token_xent_forward(agt_pool *pool, float *probs,
                              const float *logits, const uint8_t *tgt, int N,
                              int V);
/* dlogits += (probs - onehot(tgt)) / N. */
void agt_token_xent_backward(agt_pool *pool, float *dlogits,
                             const float *probs, const uint8_t *tgt, int N,
                             int V);

/* ------------------------------------------------------------------------ */
/* The model (train/gpt.c)                                                   */
/* ------------------------------------------------------------------------ */
/* Linear-layer types (the module names of the twin). */
enum {
    AGT_LT_QKV = 0,    /* attn.c_attn */
    AGT_LT_PROJ = 1,   /* attn.c_proj */
    AGT_LT_FC = 2,     /* mlp.c_fc */
    AGT_LT_MPROJ = 3,  /* mlp.c_proj */
    AGT_LT_HEAD = 4,   /* lm_head (tied to wte) */
    AGT_NLT = 5
};
extern const char *const agt_layer_type_names[AGT_NLT];
_Static_assert(AGT_NLT == AGT_GPT_GROUPS, "the GPT's counter groups");

typedef struct agt_gpt_cfg {
    int n_layer, n_head, n_embd, block_size, vocab_size;
    /* formats: spec[layer type][role], "fp32" = identity */
    char spec[AGT_NLT][AGT_NQ][48];
    agt_quant_cfg qc;            /* window, seed, stochastic grads, threads */
} agt_gpt_cfg;

/* Defaults: 2 layers, 4 heads, 128 wide, context 64, 256 tokens (bytes),
 * every quantizer fp32, window 16, seed 1, nearest, 1 thread. */
void agt_gpt_cfg_default(agt_gpt_cfg *c);
/* Set role `role` (AGT_QW/QX/QG, or -1: weights and inputs) of every layer
 * type in mask (bit i = type i) to spec. */
void agt_gpt_cfg_set(agt_gpt_cfg *c, unsigned mask, int role,
                     const char *spec);

/* agt_tensor (train.h): the parameter table has the twin's state_dict
 * names. */

typedef struct agt_gpt_acts agt_gpt_acts;

typedef struct agt_gpt {
    agt_gpt_cfg cfg;
    int bmax;
    size_t nparams;
    float *params, *grads;
    int ntensors;
    agt_tensor *tensors;
    agt_qlinear *lin;        /* [n_layer * 4 + 1]: per layer qkv, proj, fc,
                                mproj; then the head */
    size_t ndecay;           /* params [0, ndecay) are the 2-D tensors */
    agt_gpt_acts *a;
    agt_pool *pool;          /* threads of the ops and products (cfg.qc.threads) */
    int B, T;                /* of the last forward */
} agt_gpt;

/* Build with nanoGPT's initialisation (N(0,0.02), c_proj weights
 * N(0, 0.02/sqrt(2 n_layer)), LayerNorm 1/0, biases 0) from seed, buffers
 * for batches up to bmax sequences of block_size tokens. */
int agt_gpt_init(agt_gpt *m, const agt_gpt_cfg *cfg, int bmax, uint64_t seed,
                 agt_err *err);
void agt_gpt_free(agt_gpt *m);
/* Index of the tensor called name, or -1. */
int agt_gpt_find(const agt_gpt *m, const char *name);
/* Forward over tok[B,T] with targets tgt[B,T] (next bytes): *loss = mean
 * cross-entropy. update: training (scalers move) or evaluation. */
int agt_gpt_forward(agt_gpt *m, const uint8_t *tok, const uint8_t *tgt,
                    int B, int T, int update, double *loss, agt_err *err);
/* grads += d loss / d params of the last forward (caller zeroes grads). */
int agt_gpt_backward(agt_gpt *m, const uint8_t *tgt, int update,
                     agt_err *err);
/* Counters of every quantizer of one layer type and role, summed since the
 * last agt_gpt_reset_stats. */
void agt_gpt_stats(const agt_gpt *m, int type, int role, ag_stats *out);
void agt_gpt_reset_stats(agt_gpt *m);

/* The bench's optimizer (agt_optim: the library's fused AdamW) over the
 * GPT's parameter table, for callers that drive an agt_gpt without the run
 * loop (tests, bench/gpt_step.c): the 2-D tensors decayed and the 1-D ones
 * not (the twin's configure_optimizers; the table stores the decayed
 * tensors first, [0, ndecay)); pre: plain AdamW or the manifold modes,
 * GRAD or UPDATE, with AltGrad's float32 stiffness
 * 2^(floor(log2|w|) - mantissa_bits). */
typedef struct agt_gpt_optim {
    agt_optim opt;
    agt_optseg seg[2];       /* [0, ndecay) decayed, the rest not */
} agt_gpt_optim;
int agt_gpt_optim_init(agt_gpt_optim *o, const agt_gpt *m, double lr,
                       double wd, ag_precondition pre, int mantissa_bits,
                       agt_err *err);
void agt_gpt_optim_free(agt_gpt_optim *o);
int agt_gpt_optim_step(agt_gpt_optim *o, agt_gpt *m, agt_err *err);

/* ------------------------------------------------------------------------ */
/* Token streams (train/tokens.c)                                            */
/* ------------------------------------------------------------------------ */
typedef struct agt_text {
    uint8_t *bytes;
    size_t n;
    size_t ntrain;           /* bytes [0, ntrain) train, the rest val */
} agt_text;

/* Read path (any UTF-8 text; NULL: the King James Bible printed by
 * `bible gen1:1-rev22:21` of Debian's bible-kjv, a clear error when it is
 * missing). The last val_frac of the bytes is the validation split. */
int agt_text_load(agt_text *t, const char *path, double val_frac,
                  agt_err *err);
void agt_text_free(agt_text *t);
/* tok[b,:] = T bytes from a position drawn from (seed, step, b) in the
 * split (train != 0: train), tgt the next T bytes. Val batches with
 * train == 0 and step = k walk the split deterministically. */
void agt_text_batch(uint8_t *tok, uint8_t *tgt, const agt_text *t, int train,
                    uint64_t seed, uint64_t step, int B, int T);
/* The loss of predicting the train split's byte frequencies on the val
 * split (nats per byte). */
double agt_text_unigram_loss(const agt_text *t);

/* The run loop's feed over a text (train/net.c): training batches of B
 * sequences of T bytes at positions drawn from (seed, step), periods of
 * eval_every steps, each evaluated on the first eval_batches validation
 * batches (the same every time). */
int agt_feed_text(agt_feed *f, const agt_text *text, int B, int T,
                  int eval_every, int eval_batches, uint64_t seed,
                  agt_err *err);

/* ------------------------------------------------------------------------ */
/* GPT runs and the matrix's reports (train/net.c, train/gpt_report.c)       */
/* ------------------------------------------------------------------------ */
/* One GPT run of cfg (model GPT) on text through agt_run_net; its ops run
 * on cfg->threads OpenMP threads of the calling thread; grid_rate: the
 * grid optimizer's rungs per unit of velocity. */
int agt_run_gpt(agt_result *res, const agt_config *cfg, const agt_text *text,
                double grid_rate, agt_err *err);

/* The matrix: runs[j * nf + f] is format entry f under optimizer j;
 * with ns == no, runs[nf * no + j] is float32 under optimizer j from
 * another seed (the seed check). */
typedef struct agt_matrix {
    const agt_result *runs;
    int n, nf, no, ns;
    const char (*entries)[100];      /* the --formats entry of each run */
    double unigram;                  /* the byte-frequency baseline */
    size_t ntrain, nval;
    const char *text_path;           /* NULL: the Bible */
} agt_matrix;

/* The optimizer's name of a run ("adamw", "manifold", ...). */
const char *agt_gpt_optimizer_name(const agt_config *c);
/* The per-run log: one row per validation, every counter per layer type
 * and role, the stall rate and the ranks per layer type. */
int agt_gpt_write_csv(const agt_result *r, const char *path, agt_err *err);
/* The table on stdout, one row per run of m: final and best validation
 * loss, the difference to the float32 run of the same optimizer, counters,
 * status (the verdicts of report.md: the same thresholds). */
void agt_gpt_print_table(FILE *f, const agt_matrix *m);
int agt_matrix_write_csv(const agt_matrix *m, const char *path, agt_err *err);
/* Validation loss per step, one panel per optimizer. */
int agt_matrix_write_loss_svg(const agt_matrix *m, const char *path,
                              agt_err *err);
/* Saturation, underflow and stall rates per run and layer type. */
int agt_matrix_write_rates_svg(const agt_matrix *m, const char *path,
                               agt_err *err);
/* report.md: the answer, written from the numbers of these runs. */
int agt_matrix_write_report(const agt_matrix *m, const char *path,
                            agt_err *err);

#endif /* AGT_GPT_H */
