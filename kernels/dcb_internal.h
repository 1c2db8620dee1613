/* dcb_internal.h — what the library's own files share; not installed. */
#ifndef DCB_INTERNAL_H
#define DCB_INTERNAL_H

#include "dcb.h"
#include "registry.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#define DCB_MAX_PARAMS 48
#define DCB_MAX_WEIGHTS 16
#define DCB_NAME_LEN 48

/* Records the thread-local message and returns s, so that callers can write
 * `return dcb_fail(DCB_INVALID_PARAM, "conv2d: groups=%d ...", g);` */
dcb_status dcb_fail(dcb_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

double dcb_now(void);   /* monotonic seconds */

enum { DCB_W_BIAS = 1, DCB_W_SURROGATE = 2, DCB_W_BUFFER = 4, DCB_W_INIT_ONE = 8, DCB_W_INIT_ZERO = 16 };
typedef struct dcb_weight_spec {
    char name[DCB_NAME_LEN];
    int ndim;
    int64_t shape[DCB_MAX_DIMS];
    double fan_in;          /* for the default initialisation; 0: use shape */
    /* DCB_W_* bits. DCB_W_BIAS: a bias (initialised like one). DCB_W_SURROGATE:
     * its gradient is a surrogate, not the derivative of the forward
     * (drconv's guide conv: softmax(F) in place of the one-hot mask).
     * DCB_W_BUFFER: a buffer, not a trainable weight (batch norm's running
     * statistics): its "gradient" is 0, optimisers and weight decay skip it,
     * a training forward may update it. DCB_W_INIT_ONE / _ZERO: initialised
     * to 1 / 0 (batch norm's weight and bias, running_var and running_mean),
     * not uniformly. */
    int flags;
} dcb_weight_spec;

typedef struct dcb_engine_desc dcb_engine_desc;

/* One implementation: the vtable. Its identity is data: the conv2d engine it
 * runs on (NULL for implementations that have none) and the operator's own
 * strategy (a name for listing, an operator-defined id for dispatch), so that
 * nothing after create reads the name back. */
typedef struct dcb_impl_vt {
    const char *name;
    const char *doc;            /* NULL: the engine's doc */
    const dcb_engine_desc *engine;
    const char *strategy;       /* e.g. "combine_then_conv"; NULL: none */
    int strategy_id;            /* the operator's enum value for strategy */
    /* Largest relative error against the operator's naive implementation
     * that this implementation promises (dcb_op_tolerance): the larger of
     * this and the engine's. */
    double tol;
    /* Implementation-specific support check, after the operator validated the
     * hyperparameters: returns DCB_OK or DCB_UNSUPPORTED_PARAM with a message. */
    dcb_status (*check)(dcb_op *op);
    /* Bytes of workspace run needs for this input shape (may be 0). */
    size_t (*workspace)(const dcb_op *op, const int64_t *x_shape);
    /* Weight-only work; store state in op->state (freed by release). */
    dcb_status (*prepare)(dcb_op *op);
    dcb_status (*run)(dcb_op *op, const dcb_tensor *x, dcb_tensor *y,
                      void *ws, dcb_profile *prof);
    void (*release)(dcb_op *op);
    /* MACs this implementation performs; NULL: the operator's macs. */
    double (*executed_macs)(const dcb_op *op, const int64_t *x_shape);
    /* Optional shape-dependent setup after prepare (e.g. a oneDNN primitive
     * for this input shape), so that run only executes. dcb_op_plan calls it
     * when the input shape or the prepared state changed, never run. */
    dcb_status (*plan)(dcb_op *op, const int64_t *x_shape);
    /* 1: a peer library's (oneDNN), measured against, never picked by auto */
    int peer;
} dcb_impl_vt;

/* One backward implementation (docs/TRAINING.md), registered per operator
 * beside the forward ones; bwds[0] is the naive oracle. What run is given: */
typedef struct dcb_train_ctx {
    const dcb_tensor *x, *y, *dy;   /* the training forward's input and output, and dy (y's shape) */
    dcb_tensor *dx;                 /* x's shape, or NULL: not wanted */
    dcb_tensor *const *dw;          /* op->nweights entries (NULL entries: not wanted), or NULL */
    void *saved;                    /* what the impl's forward kept, or NULL */
} dcb_train_ctx;

typedef struct dcb_bwd_vt {
    const char *name;
    const char *doc;
    /* Largest relative error against the naive backward (tests). */
    double tol;
    /* DCB_OK, or DCB_UNSUPPORTED_PARAM with a message; NULL: runs every
     * configuration of the operator. */
    dcb_status (*check)(const dcb_op *op);
    /* Optional training forward: y = the operator's forward of x, keeping in
     * *saved what run needs (freed by free_saved before the next training
     * forward and at destroy). NULL: the op's forward implementation computes
     * y and run gets x and y only (and recomputes what it needs). */
    dcb_status (*forward)(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void **saved);
    void (*free_saved)(void *saved);
    /* Fills c->dx and every non-NULL c->dw[i] (overwriting). Scratch memory
     * is its own (allocated per call, or cached in its saved state). */
    dcb_status (*run)(dcb_op *op, const dcb_train_ctx *c);
} dcb_bwd_vt;

/* Creates directory path (one level; an existing one is fine), or
 * DCB_IO_ERROR naming it (net.c; networks and checkpoints write to it). */
dcb_status dcb_mkdir(const char *path);

/* The gradient buffer of weight `name` in c, or NULL when not wanted (or
 * the op has no such weight). */
float *dcb_dw(const dcb_op *op, const dcb_train_ctx *c, const char *name);

/* One operator: hyperparameters, weights, shapes, costs and its impls. */
typedef struct dcb_op_info {
    const char *name;
    const char *doc;
    const dcb_param_spec *params;
    int nparams;
    /* Check hyperparameters, fill derived ones (op->pv) and op->hp. */
    dcb_status (*validate)(dcb_op *op);
    /* Fill specs (at most DCB_MAX_WEIGHTS), return the count. */
    int (*weights)(const dcb_op *op, dcb_weight_spec *specs);
    /* Check an input shape and give the output shape. */
    dcb_status (*out_shape)(const dcb_op *op, int ndim, const int64_t *x,
                            int *y_ndim, int64_t *y);
    void (*cost)(const dcb_op *op, const int64_t *x_shape, dcb_cost *c);
    const dcb_impl_vt *const *impls;
    int nimpls;
    /* Dynamic operators only (NULL otherwise): what the operator generates
     * for input x, as new tensors. kernels: per-sample (or per-region)
     * kernels; routing: routing / attention weights. */
    dcb_status (*kernels)(dcb_op *op, const dcb_tensor *x, dcb_tensor **out);
    dcb_status (*routing)(dcb_op *op, const dcb_tensor *x, dcb_tensor **out);
    /* The input the harness generates for a sweep point: images (N, C, H, W)
     * or sequences (N, T, C), C being the hyperparameter channels_param;
     * hw_are_params: H and W are hyperparameters (localconv's weights depend
     * on the position), not free input sizes. */
    dcb_input_layout layout;
    const char *channels_param;
    int hw_are_params;
    /* The training forward computes another function than the inference
     * forward (batch norm: batch statistics against running ones). */
    int train_differs;
    /* Backward implementations (DCB_BWDS(t)); none: the op cannot train. */
    const dcb_bwd_vt *const *bwds;
    int nbwds;
} dcb_op_info;

struct dcb_op {
    const dcb_op_info *info;
    const dcb_impl_vt *impl;
    double pv[DCB_MAX_PARAMS];          /* numeric values, in info->params order */
    char *ps[DCB_MAX_PARAMS];           /* string values (owned) */
    int threads;
    int nweights;
    dcb_weight_spec wspec[DCB_MAX_WEIGHTS];
    dcb_tensor *w[DCB_MAX_WEIGHTS];     /* NULL until set */
    void *hp;                           /* operator's typed hyperparameters (owned) */
    void *state;                        /* implementation's prepared state */
    int prepared;
    /* The plan of the last input shape (dcb_op_plan), valid while planned:
     * run on the same shape does no planning. */
    int planned;
    int plan_ndim, plan_yndim;
    int64_t plan_x[DCB_MAX_DIMS], plan_y[DCB_MAX_DIMS];
    size_t plan_ws;
    uint64_t plan_count;                /* plans made (tests: none in the timed loop) */
    /* Training: the backward implementation and the state of the last
     * training forward (valid while trained). */
    const dcb_bwd_vt *bwd;
    int trained;
    const dcb_tensor *train_x, *train_y;
    void *train_saved;
    /* The training workspace, kept across steps (freed at destroy): the
     * forward implementation's when the backward has no forward of its own;
     * a backward with its own forward may keep its state in it instead
     * (grown as op.c does: free, allocate, set train_ws_bytes). */
    void *train_ws;
    size_t train_ws_bytes;
    /* impl "auto" (op_auto.c): the candidates and the pick; NULL otherwise */
    struct dcb_auto *autos;
};

/* impl "auto" (op_auto.c): not in an operator's impls table; dcb_op_create
 * takes it for operators with two or more candidates (dcb_impl_has_auto). */
typedef struct dcb_auto dcb_auto;
extern const dcb_impl_vt dcb_auto_impl;
dcb_status dcb_auto_init(dcb_op *op, const dcb_hparam *hp, int nhp); /* before the impl check */
void dcb_auto_free(dcb_auto *a);
/* Picks for a new input shape (make_plan); DCB_UNSUPPORTED_SHAPE when no
 * candidate plans it. */
dcb_status dcb_auto_pick(dcb_op *op, int ndim, const int64_t *x);
/* The picked inner op, with the outer op's weights and prepared; NULL before a pick. */
dcb_op *dcb_auto_inner(dcb_op *op);
double dcb_auto_tolerance(const dcb_op *op);
/* dcb_op_set_param's new value for the candidates (before the impl check
 * re-creates them), and new weights: every candidate takes them again. */
dcb_status dcb_auto_set_hp(dcb_op *op, const char *name, double value);
void dcb_auto_stale(dcb_auto *a);
const dcb_op_info *dcb_find_op_info(const char *name);

/* The two fields of a table and its length in a dcb_op_info:
 * `DCB_PARAMS(x_params), DCB_IMPLS(x_impls),`. */
#define DCB_COUNT(t) ((int)(sizeof(t) / sizeof((t)[0])))
#define DCB_PARAMS(t) .params = (t), .nparams = DCB_COUNT(t)
#define DCB_IMPLS(t) .impls = (t), .nimpls = DCB_COUNT(t)
#define DCB_BWDS(t) .bwds = (t), .nbwds = DCB_COUNT(t)

/* n rounded up to a multiple of DCB_ALIGN: workspace layouts. */
static inline size_t dcb_align_up(size_t n) { return (n + DCB_ALIGN - 1) / DCB_ALIGN * DCB_ALIGN; }

/* For validate: op->hp = a zeroed block of `bytes`, or NULL when that fails
 * (after dcb_fail(DCB_OUT_OF_MEMORY, "<op>: out of memory")). */
void *dcb_new_hp(dcb_op *op, size_t bytes);

/* Lookup helpers for validate functions. */
int dcb_param_index(const dcb_op_info *info, const char *name);
double dcb_pv(const dcb_op *op, const char *name);
const char *dcb_ps(const dcb_op *op, const char *name);
void dcb_set_pv(dcb_op *op, const char *name, double v);
/* An integer hyperparameter >= lo, or DCB_INVALID_PARAM naming it. */
dcb_status dcb_get_int(const dcb_op *op, const char *name, long lo, int *out);
/* The same for a parameter without a default: "<op>: <name> is required" when unset. */
dcb_status dcb_get_required_int(const dcb_op *op, const char *name, long lo, int *out);
/* The macs of the operator's cost on input x: the base of an executed_macs. */
double dcb_op_macs(const dcb_op *op, const int64_t *x_shape);
const dcb_tensor *dcb_w(const dcb_op *op, const char *name);
/* Runs the forward pass on x into a scratch output and workspace, and returns
 * a new tensor of the given shape copied from the workspace at byte offset
 * ws_offset: for routing hooks of operators whose attention weights are an
 * intermediate of run (skconv, splat). */
dcb_status dcb_capture_ws(dcb_op *op, const dcb_tensor *x, size_t ws_offset, int ndim, const int64_t *shape,
                          dcb_tensor **out);

/* ------------------------------------------------------- conv2d internals */
typedef struct dcb_conv2d_p {
    int cin, cout, kh, kw, stride, pad, dil, groups, bias;
} dcb_conv2d_p;

/* In 64 bits: with every size and hyperparameter below 2^31 nothing
 * overflows; the callers that store it in an int have checked it fits
 * (dcb_conv2d_check_input, the output guard of make_plan). */
static inline int64_t dcb_conv_out(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil) {
    return (in + 2 * pad - dil * (k - 1) - 1) / stride + 1;
}
/* Not in dcb.h (hidden in libdcb.so): dcb_npy_load from an open stream of
 * unknown size, read as a pipe is, in chunks that grow as data arrives
 * (tests/fuzz/fuzz_npy.c gives it an fmemopen stream); name is the file name
 * for the messages. */
dcb_status dcb_npy_load_stream(const char *name, FILE *f, dcb_tensor **out);
/* "12.0 GiB": a byte count for messages. */
const char *dcb_bytes_str(double bytes, char *buf, size_t len);
/* A hyperparameter's value for a message: an integer without exponent
 * (2147483648, not 2.14748e+09), else %g ("nan", "inf"). */
const char *dcb_num_str(double v, char *buf, size_t len);

/* Validates conv hyperparameters of any operator that has them (cin, cout,
 * k|kh,kw, stride, pad, dilation, groups, bias): fills *p. */
dcb_status dcb_conv2d_read_params(dcb_op *op, const char *opname, dcb_conv2d_p *p);
/* The parameter rows dcb_conv2d_read_params reads: cin and cout (required),
 * then the geometry, which every operator with one lists the same way (_FOR:
 * with `note` after the doc of stride, pad and dilation); groups and bias are
 * the operator's own. */
#define DCB_CHANNEL_PARAMS                                                          \
    {"cin", DCB_PT_INT, 0, NULL, 1, "input channels (required)"},                   \
    {"cout", DCB_PT_INT, 0, NULL, 1, "output channels (required)"}
#define DCB_CONV_GEOMETRY_PARAMS_FOR(note)                                          \
    {"k", DCB_PT_INT, 0, NULL, 1, "square kernel size (or kh, kw)"},                \
    {"kh", DCB_PT_INT, 0, NULL, 1, "kernel height (default k)"},                    \
    {"kw", DCB_PT_INT, 0, NULL, 1, "kernel width (default k)"},                     \
    {"stride", DCB_PT_INT, 1, NULL, 0, "stride" note},                              \
    {"pad", DCB_PT_INT, 0, NULL, 0, "zero padding on every side" note},             \
    {"dilation", DCB_PT_INT, 1, NULL, 0, "dilation" note}
#define DCB_CONV_GEOMETRY_PARAMS DCB_CONV_GEOMETRY_PARAMS_FOR("")
/* The out_shape of an image operator whose output is conv2d's (N, cout, H', W'). */
dcb_status dcb_conv2d_out_shape(const char *opname, const dcb_conv2d_p *p, int ndim, const int64_t *x,
                                int *y_ndim, int64_t *y);
/* Checks x against p, gives H', W'. */
dcb_status dcb_conv2d_check_input(const char *opname, const dcb_conv2d_p *p,
                                  int ndim, const int64_t *x, int *ho, int *wo);

/* Engines as plain functions, reused by the dynamic operators.
 * x: (N, cin, H, W); w: (cout, cin/groups, kh, kw); b: (cout) or NULL;
 * y: (N, cout, H', W'). Workspace as given by the matching _ws function. */
void dcb_conv2d_naive(const dcb_conv2d_p *p, int N, int H, int W,
                      const float *x, const float *w, const float *b, float *y,
                      int threads);
size_t dcb_conv2d_im2col_ws(const dcb_conv2d_p *p, int N, int H, int W, int threads);
void dcb_conv2d_im2col(const dcb_conv2d_p *p, int N, int H, int W,
                       const float *x, const float *w, const float *b, float *y,
                       void *ws, int threads, dcb_profile *prof);

/* conv2d backward building blocks (conv2d_backward*.c), for N images of
 * H x W (the forward's input size) and conv p, whatever the groups:
 *   bwd_data:   dx (N, cin, H, W) = the transposed conv of dy (N, cout, H', W')
 *               with w (cout, cin/groups, kh, kw)   [overwritten];
 *   bwd_weight: dw (cout, cin/groups, kh, kw) = sum over n of the
 *               correlation of x and dy, db (cout) = sum of dy over n and
 *               pixels (db may be NULL)               [overwritten].
 * _naive: direct loops in double (the oracle); _gemm: im2col/col2im and
 * CBLAS sgemm, with the workspace of dcb_conv2d_bwd_gemm_ws. */
void dcb_conv2d_bwd_data_naive(const dcb_conv2d_p *p, int N, int H, int W, const float *dy, const float *w,
                               float *dx, int threads);
void dcb_conv2d_bwd_weight_naive(const dcb_conv2d_p *p, int N, int H, int W, const float *x, const float *dy,
                                 float *dw, float *db, int threads);
size_t dcb_conv2d_bwd_gemm_ws(const dcb_conv2d_p *p, int N, int H, int W, int threads);
void dcb_conv2d_bwd_data_gemm(const dcb_conv2d_p *p, int N, int H, int W, const float *dy, const float *w,
                              float *dx, void *ws, int threads);
void dcb_conv2d_bwd_weight_gemm(const dcb_conv2d_p *p, int N, int H, int W, const float *x, const float *dy,
                                float *dw, float *db, void *ws, int threads);

/* The im2col engine's blocks (conv2d_im2col.c), shared with the "batch"
 * backward (conv2d_backward_batch.c): images per block, a function of the
 * shape only (so that sums never depend on the thread count); the valid
 * output indices j (0 <= j*stride + off < n) as [*j0, *j1); the column
 * matrix of m images of nc channels (image b at x + b*xstride), row (c, u,
 * v), columns b*P .. b*P+P-1, rows m*P long. */
int dcb_conv2d_block_images(const dcb_conv2d_p *p, int N, int H, int W);
void dcb_conv2d_valid_range(int n, int no, int stride, int off, int *j0, int *j1);
void dcb_conv2d_im2col_block(const dcb_conv2d_p *p, int H, int W, const float *x, size_t xstride, int m, int nc,
                             float *col, int threads);
/* One row (u, v) of the column matrix of channel plane xc (H x W): dst
 * (Ho x Wo) = the tap's inputs, zero outside the image; and its adjoint,
 * dxc += the scatter of such a row src (conv2d_backward_gemm.c). */
void dcb_conv2d_im2col_row(const dcb_conv2d_p *p, int H, int W, int Ho, int Wo, const float *xc, int u, int v,
                           float *dst);
void dcb_conv2d_col2im_row(const dcb_conv2d_p *p, int H, int W, int Ho, int Wo, const float *src, int u, int v,
                           float *dxc);

/* Winograd F(m x m, 3x3), m in {2, 4}: the static engine in conv2d_winograd.c,
 * the dynamic path (dcb_winograd_dyn_*, dcb_winograd_bank_*) in
 * conv2d_winograd_dyn.c. plan_new does the weight-only kernel
 * transform (w may be NULL: a shape-only plan, enough for dcb_winograd_ws). */
typedef struct dcb_winograd_plan dcb_winograd_plan;
dcb_winograd_plan *dcb_winograd_plan_new(const dcb_conv2d_p *p, int m,
                                         const float *w);
void dcb_winograd_plan_free(dcb_winograd_plan *pl);
/* The same plan in caller memory (for dynamic kernels, transformed inside
 * run): dcb_winograd_plan_bytes gives the size, _init builds it in mem
 * (DCB_ALIGN aligned) and needs no free. */
size_t dcb_winograd_plan_bytes(const dcb_conv2d_p *p, int m);
dcb_winograd_plan *dcb_winograd_plan_init(void *mem, const dcb_conv2d_p *p, int m,
                                          const float *w);
/* How dcb_winograd_run shares tile blocks among its threads: the team on
 * each block, or a block per thread (conv2d_winograd.c says when each pays).
 * Process-wide, for tests and benchmarks; set it before planning, since the
 * workspace size depends on it. */
enum { DCB_WINO_AUTO, DCB_WINO_SHARED, DCB_WINO_PRIVATE };
void dcb_winograd_set_sharing(int mode);
size_t dcb_winograd_ws(const dcb_winograd_plan *pl, int N, int H, int W, int threads);
void dcb_winograd_run(const dcb_winograd_plan *pl, int N, int H, int W,
                      const float *x, const float *b, float *y, void *ws,
                      int threads, dcb_profile *prof);

/* The direct engine (conv2d_direct.c): depthwise (groups == cin) as direct
 * loops, everything else as an implicit GEMM on the packed 6x16 micro-kernel
 * (ukernels/ukernels.h); it runs every conv2d. Weights go through
 * dcb_direct_pack_weights into dcb_direct_wpack_bytes (0 for depthwise: run
 * reads w itself); run needs the raw w for depthwise and wpacked otherwise. */
size_t dcb_direct_wpack_bytes(const dcb_conv2d_p *p);
void dcb_direct_pack_weights(const dcb_conv2d_p *p, const float *w, float *wpacked);
size_t dcb_direct_ws(const dcb_conv2d_p *p, int N, int H, int W, int threads);
void dcb_direct_run(const dcb_conv2d_p *p, int N, int H, int W, const float *x,
                    const float *w, const float *wpacked, const float *b, float *y,
                    void *ws, int threads, dcb_profile *prof);
/* Its two paths, which the functions above dispatch to (threads >= 1):
 * the implicit GEMM (conv2d_direct_gemm.c) and depthwise (conv2d_direct_dw.c). */
size_t dcb_direct_gemm_wpack_bytes(const dcb_conv2d_p *p);
void dcb_direct_gemm_pack_weights(const dcb_conv2d_p *p, const float *w, float *wpacked);
size_t dcb_direct_gemm_ws(const dcb_conv2d_p *p, int N, int H, int W, int threads);
void dcb_direct_gemm_run(const dcb_conv2d_p *p, int N, int H, int W, const float *x,
                         const float *wpacked, const float *b, float *y, void *ws, int threads);
size_t dcb_direct_dw_ws(const dcb_conv2d_p *p, int H, int W, int threads);
void dcb_direct_dw_run(const dcb_conv2d_p *p, int N, int H, int W, const float *x,
                       const float *w, const float *b, float *y, void *ws, int threads);

/* Winograd with a kernel per sample (the dynamic operators): the kernel
 * transform is fused with the GEMM, in float, inside run. The kernels come in
 * "panel layout", [group][panel of 6 outputs][chunk of 128 inputs][9 taps]
 * [input][6] (conv2d_winograd_dyn.c; dcb_winograd_bank_floats per kernel;
 * dcb_winograd_bank_pack converts one (cout, cin/groups, 3, 3) kernel), either
 *   E == 0: w holds the N per-sample kernels, or
 *   E > 0:  bank holds E kernels and sample n's kernel is
 *           sum_e r[n*E + e] * bank[e] (mixed block by block, never whole);
 * b: (N, cout) per-sample bias or NULL. shared = 1 (with E == 0): w is one
 * kernel and b one bias (cout) for all N images. The panel-layout buffers
 * keep DCB_OVERREAD_FLOATS of zeroed room past their end. Only where
 * dcb_winograd_dyn_supported (F(2x2) and F(4x4), with the packed GEMM's 8
 * or more input and output channels per group). */
typedef struct dcb_wino_dyn {
    const float *w, *bank, *r, *b;
    int E, shared;
} dcb_wino_dyn;
size_t dcb_winograd_bank_floats(const dcb_conv2d_p *p);
void dcb_winograd_bank_pack(const dcb_conv2d_p *p, const float *w, float *out);
int dcb_winograd_dyn_supported(const dcb_conv2d_p *p, int m);
size_t dcb_winograd_dyn_ws(const dcb_conv2d_p *p, int m, int N, int H, int W, int threads);
/* The bank path (E > 0): where it moves less (E + 2N < N*E), every sample's
 * kernel is mixed first, the bank read once, then run as E == 0; otherwise
 * dcb_winograd_dyn_run. Its workspace depends on E. */
size_t dcb_winograd_bank_ws(const dcb_conv2d_p *p, int m, int N, int H, int W, int E, int threads);
void dcb_winograd_bank_run(const dcb_conv2d_p *p, int m, int N, int H, int W, const float *x,
                           const dcb_wino_dyn *k, float *y, void *ws, int threads, dcb_profile *prof);
void dcb_winograd_dyn_run(const dcb_conv2d_p *p, int m, int N, int H, int W, const float *x,
                          const dcb_wino_dyn *k, float *y, void *ws, int threads, dcb_profile *prof);

/* ------------------------------------------------------- conv2d engines
 * An engine computes a conv2d (dcb_conv2d_p) on N images. registry.h lists
 * them once (DCB_CONV_ENGINES); each engine's file defines its descriptor
 * dcb_engine_<name>, and every operator built on an engine (conv2d, condconv,
 * dyconv, weightnet, skconv, splat) generates one implementation per entry
 * from that list, so a new engine is one file plus one list line.
 *
 * Two ways to use an engine:
 *   static weights   prepare(p, w) once (packing, kernel transform) into an
 *                    engine state, then workspace/run with that state;
 *   kernels known only inside run (per-sample mixed kernels): dyn_workspace /
 *                    dyn_run, which do any weight-side work per call.
 * Optionally, an engine mixes a bank of E kernels per sample itself, fused
 * with its own kernel-side work (bank_*): the dynamic operators use it when
 * bank_supported says so, else they mix with a GEMM and call dyn_run. */
typedef struct dcb_dyn_bank {
    const float *bank;   /* E kernels, each bank_floats long, in the engine's layout */
    const float *r;      /* (N, E) mixing weights */
    const float *b;      /* (N, cout) per-sample bias, or NULL */
    int E;
} dcb_dyn_bank;

struct dcb_engine_desc {
    const char *name;
    const char *doc;
    /* The relative error against naive that the engine promises (tests). */
    double tol;
    /* DCB_OK, or DCB_UNSUPPORTED_PARAM with a message naming `who` (e.g.
     * "condconv/combine_then_conv/winograd"); NULL: runs every conv2d. */
    dcb_status (*check)(const dcb_conv2d_p *p, const char *who);
    /* Static weights. prepare may leave *state NULL (nothing to prepare);
     * prepare == NULL likewise. workspace may be given state NULL (the size
     * then comes from the shapes alone). */
    dcb_status (*prepare)(const dcb_conv2d_p *p, const float *w, void **state);
    void (*release)(void *state);
    size_t (*workspace)(const dcb_conv2d_p *p, const void *state, int N, int H, int W, int threads);
    void (*run)(const dcb_conv2d_p *p, const void *state, int N, int H, int W, const float *x,
                const float *w, const float *b, float *y, void *ws, int threads, dcb_profile *prof);
    /* A kernel that changes every call (w as conv2d's weight). */
    size_t (*dyn_workspace)(const dcb_conv2d_p *p, int N, int H, int W, int threads);
    void (*dyn_run)(const dcb_conv2d_p *p, int N, int H, int W, const float *x, const float *w,
                    const float *b, float *y, void *ws, int threads, dcb_profile *prof);
    /* Optional fused bank mixing (all NULL when the engine has none). The
     * packed bank needs DCB_OVERREAD_FLOATS of room past its end. */
    int (*bank_supported)(const dcb_conv2d_p *p);
    size_t (*bank_floats)(const dcb_conv2d_p *p);
    void (*bank_pack)(const dcb_conv2d_p *p, const float *w, float *out);
    size_t (*bank_workspace)(const dcb_conv2d_p *p, int N, int H, int W, int E, int threads);
    void (*bank_run)(const dcb_conv2d_p *p, int N, int H, int W, const float *x, const dcb_dyn_bank *k,
                     float *y, void *ws, int threads, dcb_profile *prof);
    /* Multiplications it performs for N images; NULL: the direct count
     * kh*kw*(cin/groups)*cout*H'*W' (+ cout*H'*W' with bias). */
    double (*executed_macs)(const dcb_conv2d_p *p, int N, int H, int W);
};

/* Floats that vector loads may read past the end of a packed panel buffer:
 * such buffers are allocated with this much zeroed room. */
#define DCB_OVERREAD_FLOATS 8

#define DCB_ENGINE_DECLARE(e) extern const dcb_engine_desc dcb_engine_##e;
DCB_CONV_ENGINES(DCB_ENGINE_DECLARE)
#undef DCB_ENGINE_DECLARE
#define DCB_ENGINE_ENUM(e) DCB_ENGINE_##e,
typedef enum { DCB_CONV_ENGINES(DCB_ENGINE_ENUM) DCB_ENGINE_COUNT } dcb_engine_id;
#undef DCB_ENGINE_ENUM
/* An operator built on the engines names its vtable of engine e impl_<e>
 * (generated by DCB_CONV_ENGINES(its own X)); its implementation array is then
 * {DCB_CONV_ENGINES(DCB_ENGINE_IMPL_REF)}. */
#define DCB_ENGINE_IMPL_REF(e) &impl_##e,
/* Every engine, in list order. */
extern const dcb_engine_desc *const dcb_engines[DCB_ENGINE_COUNT];
/* The engine an operator's implementation runs on. */
#define DCB_ENGINE(op) ((op)->impl->engine)

/* The direct MAC count of conv p on N images (what naive and im2col do). */
double dcb_conv2d_direct_macs(const dcb_conv2d_p *p, int N, int H, int W);
/* What engine e performs on N images. */
double dcb_engine_executed_macs(const dcb_engine_desc *e, const dcb_conv2d_p *p, int N, int H, int W);
/* What engine e performs beyond the direct count of the products (Winograd:
 * a^2 per tile instead of 9 per output; 0 for direct-count engines): an
 * operator's executed MACs are its macs plus this for each of its convs. */
double dcb_engine_extra_macs(const dcb_engine_desc *e, const dcb_conv2d_p *p, int N, int H, int W);
/* Engine-state helpers for operators that convolve with static weights:
 * prepare (a missing hook is no state), release (NULL-safe). */
dcb_status dcb_engine_prepare(const dcb_engine_desc *e, const dcb_conv2d_p *p, const float *w, void **state);
void dcb_engine_release(const dcb_engine_desc *e, void *state);
/* "op/impl" of an op, for messages. */
const char *dcb_op_who(const dcb_op *op, char *buf, size_t len);
/* The check of op's engine on conv p, its message naming op ("conv2d/winograd"):
 * DCB_OK for an engine without a check. */
dcb_status dcb_engine_check_op(const dcb_op *op, const dcb_conv2d_p *p);
/* The workspace and dyn_workspace of engine e, 0 where it has none. */
size_t dcb_engine_workspace(const dcb_engine_desc *e, const dcb_conv2d_p *p, const void *state, int N, int H, int W,
                            int threads);
size_t dcb_engine_dyn_workspace(const dcb_engine_desc *e, const dcb_conv2d_p *p, int N, int H, int W, int threads);

/* ----------------------------------------------- small dense building blocks */
/* out (N, C) = mean over H*W of x (N, C, HW). */
/* Sum of n floats, accumulated in double (vectorised). */
double dcb_sum_f64(const float *p, size_t n);
void dcb_gap(const float *x, int N, int C, size_t HW, float *out, int threads);
/* y (N, out) = x (N, in) . w^T (w: (out, in)) + b (b may be NULL). */
void dcb_linear(const float *x, int N, int in, const float *w, const float *b, int out,
                float *y, int threads);
void dcb_relu(float *x, size_t n);
void dcb_sigmoid(float *x, size_t n);
/* Row-wise softmax of x (rows, cols) / temperature, max-subtracted. */
void dcb_softmax_rows(float *x, int rows, int cols, float temperature);
/* out[i*os] = softmax over i < n of in[i*is], max-subtracted, summed in
 * double; in may be out (in place). */
void dcb_softmax_strided(const float *in, size_t is, float *out, size_t os, int n);
/* B branch outputs U of N samples and C channels of P pixels, branch b of
 * sample n, channel c at U + n*sn + b*sb + c*P (skconv, splat): s (N, C) =
 * the mean over the pixels of their sum; y (N, C, P) = the sum over b of
 * a[n, b, c] * U_b, a being (N, B, C). */
void dcb_branch_gap(const float *U, int N, int C, int B, size_t P, size_t sn, size_t sb, float *s, int threads);
void dcb_branch_mix(const float *U, const float *a, int N, int C, int B, size_t P, size_t sn, size_t sb, float *y,
                    int threads);

/* BLAS thread control and a timed-phase helper. */
void dcb_blas_threads_for(int threads);
#define DCB_PHASE_ADD(prof, ph, t0) \
    do { if (prof) (prof)->seconds[(ph)] += dcb_now() - (t0); } while (0)
/* Threads that each run whole work items keep their own profile; the run's
 * phase is the largest of theirs (about the wall time when they share the
 * items evenly, and never 0 because one thread happened to get none). */
static inline void dcb_profile_max(dcb_profile *into, const dcb_profile *p) {
    for (int i = 0; i < DCB_PHASE_COUNT; i++)
        if (p->seconds[i] > into->seconds[i]) into->seconds[i] = p->seconds[i];
}
/* into += p, phase by phase (nothing when into is NULL). */
static inline void dcb_profile_add(dcb_profile *into, const dcb_profile *p) {
    if (into)
        for (int i = 0; i < DCB_PHASE_COUNT; i++) into->seconds[i] += p->seconds[i];
}

#endif
