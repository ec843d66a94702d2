/* SPDX-License-Identifier: MIT */
/*
 * train.h — the altgrad training bench: models trained in C on real data
 * (an MLP on Fashion-MNIST, a GPT on byte-level text), with narrow formats
 * applied at the boundaries of their linear layers, to answer "what happens
 * to training if this tensor is stored in that format?".
 *
 * Entry points for the CLI (cli/altgrad.c dispatches to them):
 *     int ag_train_main(int argc, char **argv);     altgrad train ...
 *     int ag_compare_main(int argc, char **argv);   altgrad compare ...
 *     int ag_gpt_main(int argc, char **argv);       altgrad gpt ... (gpt.h)
 * argv[0] is the subcommand name. Exit status: 0 ok, 1 usage, 2 runtime error
 * (a diverged run is a result, not an error: 0).
 *
 * The rest of this header is the bench's internal interface, shared by the
 * train/ sources and the tests in tests/train/ (the bench is a client of the
 * public library header <altgrad.h> only). Names: agt_ prefix.
 *
 * The shape: one run loop (train/run.c) trains any model behind agt_net
 * (parameter table, forward, backward, counters, checkpoint section) on
 * any data behind agt_feed (training batches in periods, evaluation
 * batches), with one optimizer (agt_optim over the library's fused steps),
 * one checkpoint format and one record per period; the reports read the
 * records.
 *
 * Layout of the code:
 *     train/data.c       IDX loader (zlib), validation, batches
 *     train/tokens.c     the token stream of a text (gpt.h)
 *     train/nn.c         matrix products (agt_gemm), quantizers with
 *                        delayed scaling, the quantized linear, layers,
 *                        the MLP
 *     train/ops.c        the ops over flat arrays (llm.c style): the
 *                        GPT's (gpt.h), the MLP's ReLU and cross-entropy
 *     train/pool.c       the models' worker threads
 *     train/gpt.c        the GPT (gpt.h)
 *     train/net.c        both models as agt_net, both data sets as
 *                        agt_feed, the quantized linears' checkpoint
 *                        section, weight ranks, agt_run_gpt
 *     train/optim.c      RNG, initialisation, AdamW (plain and manifold),
 *                        SGD with momentum, the grid optimizer
 *     train/run.c        the run loop: schedule, metrics, divergence,
 *                        checkpoints (save/resume), the pool of runs
 *     train/report.c     the MLP's CSV logs, table and SVG plot; SVG pieces
 *     train/gpt_report.c the GPT's logs and table, the matrix's summary
 *                        CSV, plots and report.md
 *     train/cli.c        altgrad train, altgrad compare --model mlp
 *     train/gpt_cli.c    altgrad gpt, altgrad compare (the GPT matrix)
 *     train/bench_cli.h  option helpers the two CLI files share
 */
#ifndef AGT_TRAIN_H
#define AGT_TRAIN_H

#include <altgrad.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

int ag_train_main(int argc, char **argv);
int ag_compare_main(int argc, char **argv);

/* ------------------------------------------------------------------------ */
/* Errors: every fallible bench call returns 0 or -1 and writes a message    */
/* (naming the file, option or tensor at fault) into an agt_err.            */
/* ------------------------------------------------------------------------ */
typedef struct agt_err {
    char msg[512];
} agt_err;

/* printf into err->msg; returns -1 (so `return agt_fail(err, ...)`). */
int agt_fail(agt_err *err, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ------------------------------------------------------------------------ */
/* Data                                                                      */
/* ------------------------------------------------------------------------ */
#define AGT_IMG 784     /* 28 x 28 */
#define AGT_CLASSES 10

typedef struct agt_dataset {
    size_t n;           /* examples */
    uint8_t *pixels;    /* n * 784, row-major, 0..255 */
    uint8_t *labels;    /* n, 0..9 */
} agt_dataset;

/* Load an IDX image file and its label file (gzip or plain; zlib reads both).
 * Validates: magic numbers (0x00000803 images, 0x00000801 labels), 28x28
 * images, equal counts, labels < 10, no truncation and no trailing bytes.
 * limit > 0 keeps only the first `limit` examples. On error *ds is zeroed and
 * err names the file. */
int agt_dataset_load(agt_dataset *ds, const char *images_path,
                     const char *labels_path, size_t limit, agt_err *err);

/* The train (train=1) or test (train=0) split of an IDX directory: looks
 * for DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte, then the same + .gz. */
int agt_dataset_load_dir(agt_dataset *ds, const char *dir, int train,
                         size_t limit, agt_err *err);
void agt_dataset_free(agt_dataset *ds);

/* x[b*784 + j] = pixels/255 and y[b] = label of example idx[b], b < B. */
void agt_dataset_batch(float *x, uint8_t *y, const agt_dataset *ds,
                       const uint32_t *idx, int B);

/* The default data directory (Debian's dataset-fashion-mnist). */
#define AGT_DEFAULT_DATA "/usr/share/datasets/fashion-mnist"

/* ------------------------------------------------------------------------ */
/* Random numbers (explicit state; no rand(), no time())                    */
/* ------------------------------------------------------------------------ */
uint64_t agt_splitmix64(uint64_t *state);
/* Uniform in [0,1) with 53 random bits. */
double agt_uniform(uint64_t *state);
/* Standard normal (Box-Muller). */
double agt_normal(uint64_t *state);
/* perm[0..n) = a permutation of 0..n-1 that depends only on (seed, epoch). */
void agt_epoch_order(uint32_t *perm, size_t n, uint64_t seed, uint64_t epoch);

/* ------------------------------------------------------------------------ */
/* Primitive ops over flat arrays. Shapes in comments: [B,C] is row-major.    */
/* Backward functions ACCUMULATE into their gradient outputs: the caller     */
/* zeroes them first.                                                        */
/* ------------------------------------------------------------------------ */
/* A team of worker threads (train/pool.c) for loops of independent tasks:
 * workers spin briefly, then sleep (OpenMP's spinning team stalls on a
 * shared machine). No result may depend on the team size. */
typedef struct agt_pool agt_pool;
/* threads: the team size, the caller included (0: omp_get_max_threads()). */
int agt_pool_create(agt_pool **p, int threads, agt_err *err);
void agt_pool_free(agt_pool *p);
/* The team size (1 for NULL). */
int agt_pool_threads(const agt_pool *p);
/* fn(ctx, t) for every t in [0, ntasks), tasks handed to the team (the
 * caller included) one at a time; returns when all are done. p NULL or of
 * one thread: a plain loop. Not reentrant on one pool. */
void agt_pool_run(agt_pool *p, int ntasks, void (*fn)(void *ctx, int t),
                  void *ctx);

/* C[M,N] = alpha op(A) op(B) + beta C, row-major with CBLAS's conventions
 * (ta / tb: op is the transpose; lda, ldb, ldc row strides). The output is
 * cut into tiles whose sizes depend on M and N only, one cblas_sgemm call
 * (OpenBLAS kept on one thread) per tile with the whole K loop, the tiles
 * run as tasks of pool (NULL: serial): each element is computed by the
 * same call for any team, so results do not depend on it. */
void agt_gemm(agt_pool *pool, int ta, int tb, int M, int N, int K,
              float alpha, const float *A, int lda, const float *B, int ldb,
              float beta, float *C, int ldc);
/* out[B,OC] = inp[B,C] @ w[OC,C]^T + b[OC] (b may be NULL); serial, the
 * same bits as the threaded products of agt_qlinear. */
void agt_linear_forward(float *out, const float *inp, const float *w,
                        const float *b, int B, int C, int OC);
/* dinp[B,C] += dout @ w (dinp may be NULL); dw[OC,C] += dout^T @ inp;
 * db[OC] += sum over B of dout (db may be NULL). Accumulates. */
void agt_linear_backward(float *dinp, float *dw, float *db, const float *dout,
                         const float *inp, const float *w, int B, int C,
                         int OC);
/* out = max(inp, 0) (NaN stays NaN). out == inp allowed. */
void agt_relu_forward(float *out, const float *inp, size_t n);
/* dinp += dout where inp > 0. Accumulates. */
void agt_relu_backward(float *dinp, const float *dout, const float *inp,
                       size_t n);
/* probs[B,V] = softmax(logits); returns the mean cross-entropy over the
 * batch (NaN if any logit is NaN); correct (may be NULL) += number of rows
 * whose argmax is the label. */
float agt_xent_forward(float *probs, const float *logits,
                       const uint8_t *labels, int B, int V, size_t *correct);
/* dlogits[B,V] += (probs - onehot(label)) / B. Accumulates. */
void agt_xent_backward(float *dlogits, const float *probs,
                       const uint8_t *labels, int B, int V);

/* ------------------------------------------------------------------------ */
/* Quantizers with delayed (amax-history) scaling                            */
/* ------------------------------------------------------------------------ */
#define AGT_HIST_MAX 64

/* How the model's quantizers round and scale: one ag_scaler per quantizer,
 * window hist_len (1..AGT_HIST_MAX), an empty window using the current
 * amax (AG_SCALER_FIRST_CURRENT). Gradient quantizers round stochastically
 * when stochastic_grads, keyed by seed, one stream per (layer, quantizer):
 * each scaler's stream advances by the elements of every step, so no two
 * tensors or steps share random bits and the result does not depend on
 * threads (ag_qopts.threads of every quantizer). */
typedef struct agt_quant_cfg {
    size_t hist_len;
    uint64_t seed;
    int stochastic_grads;
    int threads;
} agt_quant_cfg;

typedef struct agt_quant {
    const ag_format *fmt;   /* NULL: float32, the quantizer is the identity;
                               else the scaler's own copy of the format */
    ag_scaler *sc;          /* delayed scaling: window, scale, stream, state */
    ag_stats stats;         /* counters since the last reset (per epoch) */
    agt_pool *pool;         /* NULL: whole-array library calls (their own
                               threads); else chunks over this team */
} agt_quant;

/* Parse "fp32" (or "f32", "float32", "none") or any format spec accepted by
 * ag_format_parse into q, with a scaler of options *so (so->history_len in
 * 1..AGT_HIST_MAX). */
int agt_quant_init(agt_quant *q, const char *spec, const ag_scaler_opts *so,
                   agt_err *err);
void agt_quant_free(agt_quant *q);
/* y[0..n) = quantize(x) with the delayed scale of q's scaler (the window
 * max before this tensor's amax is pushed; the current amax while the
 * window is empty). update != 0 (training): ag_scaler_quantize, so the amax
 * is pushed, the stream advances and the counters accumulate. update == 0
 * (evaluation): the same scale and rounding, nothing recorded. fp32
 * quantizers copy (y may equal x). */
int agt_quant_apply(agt_quant *q, float *y, const float *x, size_t n,
                    int update, agt_err *err);

/* Roles of a linear layer's quantizers. */
enum { AGT_QW = 0, AGT_QX = 1, AGT_QG = 2, AGT_NQ = 3 };

/* A quantized linear layer's quantizers and buffers (AltGrad's
 * QuantizedLinear, as train/nn.c's layer): xq = Qx(x), wq = Qw(W),
 * y = xq wq^T + b; backward gq = Qg(dy), dW += STE(gq^T xq), db += sum gq,
 * dx += STE(gq wq). */
typedef struct agt_qlinear {
    int in, out, rows;       /* rows: the most input rows it holds */
    agt_pool *pool;          /* its products' and quantizers' team (NULL:
                                serial products); set by agt_qlinear_set_pool */
    agt_quant q[AGT_NQ];
    float *wq, *xq, *gq, *dwq, *dxq;   /* only for quantized roles */
} agt_qlinear;

/* so[0..AGT_NQ) = the scaler options of one layer's quantizers under qc:
 * window, empty window read as the current amax, threads, seed, streams
 * stream0 + role, stochastic rounding of the gradient role when asked. */
void agt_quant_opts(ag_scaler_opts *so, const agt_quant_cfg *qc,
                    uint64_t stream0);
/* specs[AGT_NQ] as agt_quant_init, so[k] the options of role k. */
int agt_qlinear_init(agt_qlinear *L, int in, int out, int rows,
                     const char (*specs)[48], const ag_scaler_opts *so,
                     agt_err *err);
void agt_qlinear_free(agt_qlinear *L);
/* Run L's products and quantizers on pool (not owned; NULL: serial). */
void agt_qlinear_set_pool(agt_qlinear *L, agt_pool *pool);
int agt_qlinear_forward(agt_qlinear *L, float *y, const float *x,
                        const float *W, const float *b, int N, int update,
                        agt_err *err);
/* x, W: the forward's inputs; dx may be NULL; db may be NULL. */
int agt_qlinear_backward(agt_qlinear *L, float *dx, float *dW, float *db,
                         const float *dy, const float *x, const float *W,
                         int N, int update, agt_err *err);

/* ------------------------------------------------------------------------ */
/* Layers and the model                                                      */
/* ------------------------------------------------------------------------ */
/* Layer kinds. A model is a list of layers run in order; each layer maps
 * [B, in_dim] to [B, out_dim]. New kinds (attention, layer norm, ...) join
 * by adding a case to agt_layer_forward / agt_layer_backward. */
typedef enum agt_kind {
    AGT_LINEAR = 0,   /* quantized linear: y = Qx(x) Qw(W)^T + b, Qg on dy */
    AGT_RELU = 1
} agt_kind;


/* Per-layer quantizer specs: w, x (forward) and g (output gradient). */
typedef struct agt_layer_fmt {
    char spec[AGT_NQ][48];
} agt_layer_fmt;

typedef struct agt_layer {
    agt_kind kind;
    int in_dim, out_dim;
    int index;               /* position among the linear layers (0-based) */
    size_t w_off, b_off;     /* offsets into the model's params / grads */
    agt_qlinear lin;         /* LINEAR: quantizers (weight, input, output
                                gradient) and their buffers */
    /* bit-stall counters of the last reset (LINEAR with quantized weights) */
    uint64_t stalled, considered;
} agt_layer;

typedef struct agt_model {
    int nlayers;
    agt_layer *layers;
    int bmax;                /* largest batch the buffers hold */
    size_t nparams;
    float *params, *grads;   /* flat master weights (float32) and gradients */
    float **acts;            /* acts[0] = input, acts[i+1] = output of layer i */
    float **dacts;           /* gradients w.r.t. acts */
    float *probs;            /* [bmax, classes] */
    int in_dim, out_dim;
} agt_model;

/* Build an MLP with dims[0..ndims) (e.g. 784,256,256,10), ReLU between the
 * linear layers, one agt_layer_fmt per linear layer (ndims-1 of them), and
 * He/Kaiming-normal weights (std sqrt(2/fan_in)), zero biases, from seed;
 * the quantizers as *qc says. */
int agt_model_mlp(agt_model *m, const int *dims, int ndims,
                  const agt_layer_fmt *fmts, const agt_quant_cfg *qc, int bmax,
                  uint64_t seed, agt_err *err);
void agt_model_free(agt_model *m);

/* Per-step context (the quantizers' options live in their scalers, see
 * agt_quant_cfg). */
typedef struct agt_stepctx {
    int update;              /* 1: training (windows, streams and counters
                                move); 0: evaluation */
} agt_stepctx;

/* Forward pass over a batch x[B,in]; returns the mean loss in *loss and the
 * number of correct predictions in *correct (may be NULL). */
int agt_model_forward(agt_model *m, const float *x, const uint8_t *y, int B,
                      const agt_stepctx *ctx, float *loss, size_t *correct,
                      agt_err *err);
/* Backward pass of the last forward: grads += d loss / d params (the caller
 * zeroes m->grads first). */
int agt_model_backward(agt_model *m, const uint8_t *y, int B,
                       const agt_stepctx *ctx, agt_err *err);

/* ------------------------------------------------------------------------ */
/* Optimizers                                                                */
/* ------------------------------------------------------------------------ */
/* AdamW (torch's), SGD with momentum, AltGrad's grid optimizer
 * (GridOptim: weights move by whole rungs of their storage grid; float32
 * weights on the grid of grid_fmt at the tensor's current scale). */
typedef enum agt_optkind { AGT_ADAMW = 0, AGT_SGD = 1, AGT_GRID = 2 } agt_optkind;

typedef struct agt_optim {
    agt_optkind kind;
    float lr, beta1, beta2, eps, wd, momentum;
    ag_precondition pre;     /* AdamW: none, or manifold AdamW's grad/update */
    int mantissa_bits;       /* manifold stiffness of float32 ranges */
    const ag_format *grid_fmt; /* GRID: the grid of float32 ranges */
    ag_grid_opts grid;       /* GRID: rate (--lr), momentum, decay, seed */
    int threads;             /* ag_adamw_opts.threads (results do not depend on it) */
    size_t n;
    uint64_t t;              /* steps taken */
    float *m, *v;            /* AdamW moments; SGD uses m as the velocity */
    float *upd;              /* SGD: scratch for the new weights */
} agt_optim;

/* A parameter range of the step: [off, off + n), decayed or not, whose
 * weights are stored in fmt at scale (NULL: float32). With a format the
 * step counts the range's bit stall (stalled and considered are ADDED to),
 * manifold AdamW takes its stiffness from that grid, and the grid
 * optimizer moves on it. group: the counter group it reports to (the
 * model's layer or layer type). */
typedef struct agt_optseg {
    size_t off, n;
    const ag_format *fmt;
    float scale;
    int decay;
    int group;
    uint64_t stalled, considered;
} agt_optseg;

int agt_optim_init(agt_optim *o, agt_optkind kind, size_t n, float lr,
                   float wd, agt_err *err);
/* The optimizers' option names: adamw, manifold (AdamW preconditioned
 * GRAD: AltGrad's ManifoldAdamW), manifold-update (UPDATE), sgd, grid.
 * Parse: 0 and the kind and preconditioning, or -1 for another name. */
#define AGT_OPTIM_NAMES "adamw, manifold, manifold-update, sgd or grid"
int agt_optim_parse(const char *name, agt_optkind *kind, ag_precondition *pre);
const char *agt_optim_name(agt_optkind kind, ag_precondition pre);
void agt_optim_free(agt_optim *o);
/* One step in place on params[0 .. o->n) (torch's conventions):
 *   AdamW: ag_adamw_step (decoupled decay, bias correction; o->pre);
 *   SGD:   v = momentum * v + (g + wd * p); p -= lr * v;
 *   GRID:  ag_grid_step on each range's grid (o->grid, stream = range
 *          index, offsets advancing by the range's size every step).
 * segs[0 .. nsegs) (sorted, disjoint; may be NULL with nsegs 0): the
 * ranges with a storage format or no decay; elements outside them are
 * float32 and decayed. Ranges with a format get their stall counters:
 * considered = weights with |g| > AG_GRAD_EPS, stalled = those of them
 * whose code did not change. Returns 0, or -1 with err. */
int agt_optim_step(agt_optim *o, float *params, const float *grads,
                   agt_optseg *segs, int nsegs, agt_err *err);

/* ------------------------------------------------------------------------ */
/* Checkpoint byte buffers (little-endian host order; the run loop writes   */
/* the file around them)                                                     */
/* ------------------------------------------------------------------------ */
typedef struct agt_buf {
    unsigned char *p;
    size_t len, cap, rd;
    int bad;                 /* out of memory, or a read past the end */
} agt_buf;
void agt_buf_put(agt_buf *b, const void *src, size_t n);
/* Reads n bytes (zeroes and sets bad past the end). */
void agt_buf_get(agt_buf *b, void *dst, size_t n);
#define AGT_PUT(b, v) agt_buf_put((b), &(v), sizeof(v))
#define AGT_GET(b, v) agt_buf_get((b), &(v), sizeof(v))

/* A linear layer's checkpoint section: per role the scaler's state record
 * and the counters. Load: -1 with err (naming what) when it does not fit. */
void agt_qlinear_save(const agt_qlinear *L, agt_buf *b);
int agt_qlinear_load(agt_qlinear *L, agt_buf *b, const char *what,
                     agt_err *err);

/* ------------------------------------------------------------------------ */
/* The model and data interfaces of the run loop: train/run.c trains any     */
/* agt_net on any agt_feed and knows nothing else of either.                 */
/* ------------------------------------------------------------------------ */
#define AGT_MAX_LAYERS 8     /* counter groups of a model */

typedef struct agt_config agt_config;   /* a run's options (below) */

/* A batch: images x[B,784] with labels y[B] (the MLP), or token sequences
 * tok[B,T] with their next tokens tgt[B,T] (the GPT). */
typedef struct agt_batch {
    int B, T;
    const float *x;
    const uint8_t *y;
    const uint8_t *tok, *tgt;
} agt_batch;

/* One tensor of a model's parameter table: its name (the PyTorch twin's
 * state_dict key), its range of the flat arrays, 1 or 2 dimensions. */
typedef struct agt_tensor {
    char name[48];
    size_t off, n;
    int dims;
} agt_tensor;

typedef struct agt_net agt_net;
typedef struct agt_net_ops {
    /* Forward: *loss = mean loss; *correct (may be NULL) += rows whose
     * argmax is right (models without it leave it). update: training. */
    int (*forward)(agt_net *n, const agt_batch *b, int update, double *loss,
                   size_t *correct, agt_err *err);
    /* grads += d loss / d params of the last forward. */
    int (*backward)(agt_net *n, const agt_batch *b, agt_err *err);
    /* The counters of group g, role k since the last reset_stats. */
    void (*stats)(const agt_net *n, int g, int k, ag_stats *out);
    void (*reset_stats)(agt_net *n);
    /* The optimizer's ranges (agt_optseg) now: one per parameter tensor,
     * in order, with the storage format and scale of the quantized
     * weights. Returns the count (<= cap). */
    int (*segs)(const agt_net *n, agt_optseg *segs, int cap);
    /* Checkpoint section: the quantizers' states and counters. */
    void (*save)(const agt_net *n, agt_buf *b);
    int (*load)(agt_net *n, agt_buf *b, const char *path, agt_err *err);
    /* stable[g], eff[g]: mean ranks of group g's weight matrices (NaN:
     * none, or not finite). */
    void (*ranks)(const agt_net *n, double *stable, double *eff);
    void (*free)(agt_net *n);
} agt_net_ops;

/* Stable rank |W|_F^2 / sigma_max^2 and effective rank exp(-sum p log p),
 * p = sigma / sum sigma, of the rows x cols matrix w (from the Gram
 * matrix's eigenvalues in double, LAPACK's dsyev); NaN for a zero or
 * non-finite matrix. -1: out of memory. */
int agt_matrix_ranks(const float *w, int rows, int cols, double *stable,
                     double *eff);

/* The MLP of cfg (dims, fmt, seed, quantizers) as a net for batches up to
 * cfg->batch; groups "L1".. (its linear layers). */
int agt_net_mlp(agt_net *n, const agt_config *cfg, agt_err *err);
/* The GPT of cfg (dims = layers, heads, width, context; fmt per layer
 * type) as a net; groups the layer types. */
int agt_net_gpt(agt_net *n, const agt_config *cfg, agt_err *err);
/* Either, by cfg->model. */
int agt_net_make(agt_net *n, const agt_config *cfg, agt_err *err);
void agt_net_free(agt_net *n);

struct agt_net {
    const agt_net_ops *ops;
    void *self;                       /* the model (agt_model, agt_gpt) */
    size_t nparams;
    float *params, *grads;            /* the model's flat arrays */
    int ntensors;                     /* the parameter table, in the */
    const agt_tensor *tensors;        /*   order of the flat arrays */
    int ngroups;                      /* counter groups (<= AGT_MAX_LAYERS) */
    char group[AGT_MAX_LAYERS][16];   /* their names: layer 1.. / type */
};

/* Batches of a run: training steps come in periods (the MLP: an epoch
 * of a permutation drawn from (seed, epoch); the GPT: eval_every steps of
 * positions drawn from (seed, step)), each followed by an evaluation over
 * the batches eval(0), eval(1), ... until one has B == 0. */
typedef struct agt_feed agt_feed;
struct agt_feed {
    int (*train)(agt_feed *f, uint64_t period, uint64_t k, uint64_t step,
                 agt_batch *b);
    int (*eval)(agt_feed *f, int k, agt_batch *b);
    void *self;
    size_t ntrain;                    /* examples or bytes of the train
                                         split (checkpoints check it) */
    uint64_t steps_per_period;
    /* buffers of the batches */
    float *x;
    uint8_t *y, *tok, *tgt;
    uint32_t *perm, *idx;
    uint64_t perm_period;             /* period of perm (UINT64_MAX: none) */
    int B, T;
    uint64_t seed;
};
void agt_feed_free(agt_feed *f);
/* The IDX data sets in batches of B (the last eval batch may be short). */
int agt_feed_idx(agt_feed *f, const agt_dataset *train,
                 const agt_dataset *test, int B, uint64_t seed,
                 agt_err *err);

typedef enum agt_model_kind { AGT_MODEL_MLP = 0, AGT_MODEL_GPT = 1 } agt_model_kind;

struct agt_config {
    char name[64];                    /* run name (file names, table) */
    agt_model_kind model;
    int nlin;                         /* counter groups: the MLP's linear
                                         layers; the GPT's 5 layer types */
    int dims[AGT_MAX_LAYERS + 1];     /* MLP sizes; GPT: layers, heads,
                                         width, context */
    agt_layer_fmt fmt[AGT_MAX_LAYERS];/* formats per group and role */
    /* GPT: steps in periods of eval_every, eval_batches validation
     * batches, the text (text_path, NULL: the Bible) split at val_frac;
     * precondition / mantissa_bits of manifold AdamW */
    long steps;
    int eval_every, eval_batches;
    double val_frac;
    const char *text_path;
    ag_precondition precondition;
    int mantissa_bits;
    double grid_rate;                 /* grid optimizer: rungs per unit of
                                         velocity (0: the library's 6) */
    int stochastic_grads;
    int epochs;
    int batch;
    float lr, wd;
    agt_optkind optimizer;
    uint64_t seed;
    size_t hist_len;
    size_t train_limit, test_limit;   /* 0: all */
    long max_steps;                   /* > 0: stop after this global step */
    int threads;
    int quiet;                        /* no progress on stderr */
    double progress_seconds;          /* between progress lines (0: 1) */
    const char *data_dir;
    const char *out_dir;              /* NULL: no files */
    const char *save, *resume;        /* checkpoint paths or NULL */
};

void agt_config_default(agt_config *c);
/* The GPT's defaults: 2 layers, 4 heads, 128 wide, context 64, batch 16,
 * 200 steps in periods of 50, 8 validation batches, AdamW lr 1e-3 wd 0.1,
 * the Bible split 90/10. */
#define AGT_GPT_GROUPS 5
void agt_config_default_gpt(agt_config *c);

/* Per-epoch record. */
typedef struct agt_epoch {
    int epoch;                        /* 1-based */
    uint64_t step;                    /* global steps done at its end */
    uint64_t partial_steps;           /* > 0: the run stopped (--max-steps)
                                       * after this many of the epoch's
                                       * steps; the record covers those */
    double train_loss;                /* mean over the epoch's steps */
    double test_loss, test_acc;       /* test set, after the epoch */
    double seconds;                   /* wall time of the epoch (training+eval) */
    ag_stats q[AGT_MAX_LAYERS][AGT_NQ];
    uint64_t stalled, considered;     /* bit stall over quantized weights */
    uint64_t g_stalled[AGT_MAX_LAYERS], g_considered[AGT_MAX_LAYERS];
    /* mean stable rank (|W|_F^2 / sigma_max^2) and effective rank
     * (exp of the entropy of the normalised singular values) of each
     * group's weight matrices after the period; NaN where not measured */
    double stable_rank[AGT_MAX_LAYERS], eff_rank[AGT_MAX_LAYERS];
} agt_epoch;

/* Counters summed over epochs and over every quantizer of every layer:
 * quantized elements, saturated, underflowed, NaN; bit stall. */
typedef struct agt_counts {
    uint64_t total, sat, unf, nan, stalled, considered;
} agt_counts;

/* c += the counters of epoch e of a model with nlin linear layers. */
void agt_counts_add(agt_counts *c, const agt_epoch *e, int nlin);

typedef struct agt_result {
    agt_config cfg;
    int nepochs;
    agt_epoch *epochs;                /* nepochs records */
    /* A resumed run: the epochs its checkpoint had completed, whose
     * records are not in epochs[], and their counters (carried in the
     * checkpoint), so that run-level totals cover the whole run. Zero for
     * a fresh run. */
    int epochs_before;
    agt_counts counts_before;
    size_t nloss;                     /* loss curve: (x = epochs, y = loss) */
    double *loss_x, *loss_y;
    long diverged_step;               /* 0, or the global step (1-based) whose loss was not finite */
    double seconds;
    double step_seconds;              /* mean wall time per training step
                                         (batch, forward, backward, optimizer;
                                         evaluations not included) */
    size_t steps_per_epoch;
    double tokens_per_step;           /* GPT: B * T; MLP: B */
    int ngroups;                      /* the net's counter groups */
    char group[AGT_MAX_LAYERS][16];
} agt_result;

/* Run one configuration on loaded data; saves/resumes checkpoints as
 * configured. A --save path that cannot be written is an error before any
 * training (agt_check_save). */
int agt_run(agt_result *res, const agt_config *cfg, const agt_dataset *train,
            const agt_dataset *test, agt_err *err);
/* The loop itself: cfg's schedule (the MLP: cfg->epochs periods of
 * feed->steps_per_period steps; the GPT: cfg->steps in periods of
 * cfg->eval_every), optimizer, checkpoints (their configuration record is
 * agt_config_sig's) and records over net and feed. Owns neither. */
int agt_run_net(agt_result *res, const agt_config *cfg, agt_net *net,
                agt_feed *feed, agt_err *err);
/* fn(ctx, i) for every i in [0, n), on up to jobs threads (1..64), each
 * index once; failed[i] = fn's result != 0. Unless quiet, after every
 * finished run a line "[label] k/n runs done, ..s so far, ETA ..s" on
 * stderr. Returns the threads used. */
int agt_run_pool(int n, int jobs, int (*fn)(void *ctx, int i), void *ctx,
                 int *failed, const char *label, int quiet);
/* The lines of cfg that a resumed run must share with the saved one, as
 * "what=value\n" (what: the option named in the mismatch error). */
void agt_config_sig(char *out, size_t cap, const agt_config *cfg,
                    size_t ntrain);
void agt_result_free(agt_result *res);

/* 0 when a checkpoint can be written to path: it is not a directory and
 * its directory takes a new file (probed by creating and removing
 * path.tmp.PID, the file ckpt_save writes first); else -1 and err says
 * why. */
int agt_check_save(const char *path, agt_err *err);

/* The run-level totals: counters over every epoch of the run (those before
 * a resume included), the last epoch's train loss and test accuracy, and
 * the mean wall time of this process's epochs. */
typedef struct agt_totals {
    agt_counts c;
    int epochs;                       /* epochs of the whole run */
    double acc, loss, sec_per_epoch;
} agt_totals;
agt_totals agt_result_totals(const agt_result *r);

/* ------------------------------------------------------------------------ */
/* Reports                                                                   */
/* ------------------------------------------------------------------------ */
int agt_write_csv(const agt_result *r, const char *path, agt_err *err);
/* ",SPEC,total,saturated,underflow,nan": one quantizer's CSV columns. */
void agt_csv_stats(FILE *f, const char *spec, const ag_stats *s);
void agt_print_table(FILE *f, const agt_result *runs, int nruns);
int agt_write_summary_csv(const agt_result *runs, int nruns,
                          const char *path, agt_err *err);
int agt_write_svg(const agt_result *runs, int nruns, const char *path,
                  agt_err *err);

/* Axis ticks for [lo, hi]: the multiples of one step in [lo, hi], the step
 * being 1, 2 or 5 times a power of ten (at least min_step when min_step > 0),
 * the smallest such step that gives at most max_ticks ticks. Writes up to
 * cap ticks into t and the decimals a label needs to show the step
 * (labels %.*f with *decimals are distinct) and returns the tick count; 0
 * for an empty or non-finite range or max_ticks < 1. */
int agt_axis_ticks(double lo, double hi, int max_ticks, double min_step,
                   double *t, int cap, int *decimals);
/* SVG pieces shared by the plots: a panel maps data (x, y) into its pixel
 * box (y clipped to the range); axes draws its frame, title, round ticks
 * and labels (percent: y in [0,1] shown in %); text escapes <, >, &. */
typedef struct agt_panel {
    double x0, y0, w, h;          /* pixel box */
    double xmin, xmax, ymin, ymax;
} agt_panel;
double agt_px(const agt_panel *p, double x);
double agt_py(const agt_panel *p, double y);
void agt_svg_axes(FILE *f, const agt_panel *p, const char *title,
                  const char *xlabel, const char *ylabel, int percent);
void agt_svg_text(FILE *f, const char *s);
/* The document's opening: an SVG of W x H pixels on white. */
void agt_svg_begin(FILE *f, double W, double H);
#define AGT_NPALETTE 11
extern const char *const agt_palette[AGT_NPALETTE];

/* mkdir -p */
int agt_mkdirs(const char *dir, agt_err *err);

#endif /* AGT_TRAIN_H */
