/*
 * dcb.h — public interface of libdcb, the kernel library of dcbench.
 *
 * Everything here is float32, C-contiguous, batch first, in the layouts of
 * docs/OPERATORS.md (images (N, C, H, W); conv weights (Cout, Cin/groups,
 * kh, kw)). Exported names start with dcb_.
 *
 * STATUS CODES
 *   Every fallible call returns a dcb_status. DCB_OK is 0.
 *   DCB_INVALID_*      the caller's mistake (a hyperparameter, a shape, a
 *                      weight, a file);
 *   DCB_UNSUPPORTED_*  legal, but not done by this implementation (e.g.
 *                      winograd with stride 2): a normal result that a sweep
 *                      records as N/A, never a crash and never a fallback;
 *   DCB_UNKNOWN_*      a name that is not registered;
 *   DCB_OUT_OF_MEMORY, DCB_IO_ERROR.
 *   dcb_status_name() gives the code's name ("invalid_param", ...);
 *   dcb_last_error() gives, for the calling thread, the message of the last
 *   failure, which names the offending parameter, weight or file and its
 *   value, e.g. "conv2d: groups=3 does not divide cin=64".
 *
 * LIFECYCLE OF AN OPERATOR
 *   dcb_op_create(op, impl, hparams)  validate hyperparameters; answer
 *                                     unsupported for impls that cannot run;
 *   dcb_op_set_weight / dcb_op_init_weights   provide weights (shape-checked);
 *   dcb_op_prepare(op)                weight-only work (transforms, packing),
 *                                     timed separately from run;
 *   dcb_op_plan(op, x_shape, ...)     validates an input shape, gives the
 *                                     output shape and the workspace size;
 *   dcb_op_run(op, x, y, ws, prof)    everything that depends on the input;
 *                                     the caller owns y and the workspace;
 *   dcb_op_destroy(op).
 *
 * CONV2D (the static operator; grouped = ResNeXt, depthwise = groups == cin)
 *   hparams: cin, cout, k | kh,kw, stride (1), pad (0), dilation (1),
 *            groups (1), bias (0/1)
 *   x (N, cin, H, W) -> y (N, cout, H', W'),
 *   H' = (H + 2*pad - dilation*(kh-1) - 1) / stride + 1  (same for W)
 *   y[n,o,i,j] = bias[o] + sum_{c in group(o),u,v} weight[o,c',u,v] *
 *                x[n, c, i*stride + u*dilation - pad, j*stride + v*dilation - pad]
 *   weights: "weight" (cout, cin/groups, kh, kw), "bias" (cout) when bias.
 *   Engines (implementations): "naive" (the oracle, fp64 accumulation),
 *   "im2col" (im2col + CBLAS sgemm), "winograd" (= F(4x4,3x3)),
 *   "winograd_f2" (F(2x2,3x3)), "winograd_f6" (F(6x6,3x3), about 2x F(4x4)'s
 *   error; no fused dynamic path); Winograd needs a 3x3 kernel, stride 1 and
 *   dilation 1 (any padding, any groups); "onednn" (the oneDNN peer: its
 *   primitive is built per input shape by dcb_op_plan, its reorders are
 *   reported in the transform phase); "direct" (no BLAS: depthwise as direct
 *   loops along the output rows, every other conv as an implicit GEMM with
 *   its own packed AVX2 micro-kernel; runs every conv2d).
 *
 * COSTS (dcb_op_cost; see docs/OPERATORS.md COSTS): for the whole input shape given
 *   (multiply by N is already done); params do not depend on N.
 *   macs   multiply-accumulates (conv: kh*kw*(cin/groups)*cout*H'*W' per
 *          image, + cout*H'*W' with bias);
 *   flops  2*macs plus elementwise work, a separate column, never macs;
 *   params every weight and bias;   acts   output elements;
 *   bytes  fp32 bytes of input + weights + output moved at least once;
 *   dynamic_macs   the routing / kernel-generation term (0 for static ops),
 *                  included in macs;
 *   executed_macs  what the implementation really performs (e.g. E times the
 *                  conv for conv_then_combine); equals macs otherwise.
 *
 * THREADS: the "threads" hyperparameter (default 1) sets the OpenMP team of
 *   every parallel region of the op and the BLAS thread count for its GEMMs.
 */
#ifndef DCB_H
#define DCB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* libdcb is built with -fvisibility=hidden: what this header declares is
 * its exported API, and nothing else leaves libdcb.so. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define DCB_VERSION "0.1.0"
#define DCB_MAX_DIMS 6
#define DCB_ALIGN 64

typedef enum dcb_status {
    DCB_OK = 0,
    DCB_INVALID_ARGUMENT,    /* NULL pointer, bad call order */
    DCB_INVALID_PARAM,       /* a hyperparameter's value */
    DCB_INVALID_SHAPE,       /* an input/output tensor's shape */
    DCB_INVALID_WEIGHT,      /* a missing or wrongly shaped weight */
    DCB_INVALID_FILE,        /* a malformed .npy (or other) file */
    DCB_UNSUPPORTED_PARAM,   /* legal hyperparameters this impl cannot run */
    DCB_UNSUPPORTED_SHAPE,   /* legal input shape this impl cannot run */
    DCB_UNKNOWN_OP,
    DCB_UNKNOWN_IMPL,
    DCB_UNKNOWN_PARAM,
    DCB_OUT_OF_MEMORY,
    DCB_IO_ERROR,
    DCB_STATUS_COUNT
} dcb_status;

const char *dcb_status_name(dcb_status s);      /* "ok", "invalid_param", ... */
const char *dcb_last_error(void);               /* thread-local detail message */
int dcb_status_is_unsupported(dcb_status s);
int dcb_status_is_invalid(dcb_status s);

/* ---------------------------------------------------------------- tensors */
typedef struct dcb_tensor {
    int ndim;                        /* 0..DCB_MAX_DIMS */
    int64_t shape[DCB_MAX_DIMS];
    int64_t size;                    /* product of shape (1 for ndim 0) */
    float *data;                     /* DCB_ALIGN-byte aligned, owned */
} dcb_tensor;

/* The memory limit: no tensor, and no operator's weights + output +
 * workspace, may need more bytes (refused with a message that gives the size
 * and the hyperparameters responsible). Default: DCB_MAX_BYTES from the
 * environment (bytes, or a number with K, M, G or T), else 80% of physical
 * memory; dcb_set_max_bytes(0) returns to the default. */
size_t dcb_max_bytes(void);
void dcb_set_max_bytes(size_t bytes);
/* The most elements an operator's input, output or weight may hold (2^30):
 * every index inside the engines fits an int, and their workspace sizes fit
 * 64 bits. */
#define DCB_MAX_TENSOR_ELEMS ((int64_t)1 << 30)

/* A zero-filled tensor; NULL (and dcb_last_error) on bad shape, no memory or
 * more bytes than dcb_max_bytes(). */
dcb_tensor *dcb_tensor_new(int ndim, const int64_t *shape);
dcb_tensor *dcb_tensor_new4(int64_t a, int64_t b, int64_t c, int64_t d);
dcb_tensor *dcb_tensor_clone(const dcb_tensor *t);
void dcb_tensor_free(dcb_tensor *t);
/* Fill with N(0, 1) (or U(lo, hi)) from a seeded generator: same seed, same data. */
void dcb_tensor_randn(dcb_tensor *t, uint64_t seed);
void dcb_tensor_uniform(dcb_tensor *t, uint64_t seed, float lo, float hi);
int dcb_shape_equal(const dcb_tensor *t, int ndim, const int64_t *shape);
/* "(8, 64, 28, 28)" into buf; returns buf. */
char *dcb_shape_str(int ndim, const int64_t *shape, char *buf, size_t len);
/* Max |a-b| / max(1, max|b|) and max |a-b|; shapes must match. */
double dcb_max_rel_err(const dcb_tensor *a, const dcb_tensor *b, double *max_abs);

/* ----------------------------------------------------------- .npy files
 * Versions 1.0, 2.0 (and 3.0 headers), dtype '<f4' (also '=f4'), C order,
 * at most DCB_MAX_DIMS dimensions. Anything else is DCB_INVALID_FILE with a
 * message naming the file and the problem; *out stays NULL on failure.
 * Saving writes to a temporary file in the same directory and renames it, so
 * a failed save never replaces a good file with a truncated one. */
dcb_status dcb_npy_load(const char *path, dcb_tensor **out);
dcb_status dcb_npy_save(const char *path, const dcb_tensor *t);

/* ---------------------------------------------------------- hyperparameters */
typedef enum { DCB_PT_INT, DCB_PT_FLOAT, DCB_PT_BOOL, DCB_PT_STRING } dcb_param_type;

typedef struct dcb_param_spec {
    const char *name;
    dcb_param_type type;
    double def;                 /* default for INT/FLOAT/BOOL */
    const char *def_str;        /* default for STRING */
    int derived;                /* 1: default computed from others (e.g. hidden) */
    const char *doc;
} dcb_param_spec;

/* A hyperparameter as the caller gives it: numbers in num, strings in str. */
typedef struct dcb_hparam {
    const char *name;
    double num;
    const char *str;            /* non-NULL for string values */
} dcb_hparam;

/* ---------------------------------------------------------------- profile */
enum {
    DCB_PHASE_ROUTING = 0,      /* gap + router / attention FCs */
    DCB_PHASE_KERNEL_GEN,       /* kernel generation / combine */
    DCB_PHASE_TRANSFORM,        /* im2col, Winograd input/output transforms */
    DCB_PHASE_GEMM,             /* GEMM or direct conv */
    DCB_PHASE_COMBINE,          /* output combine / select / scale */
    DCB_PHASE_COUNT
};
typedef struct dcb_profile {
    double seconds[DCB_PHASE_COUNT];
} dcb_profile;
const char *dcb_phase_name(int phase);   /* "routing", "kernel_gen", ... */

/* ------------------------------------------------------------------ costs */
typedef struct dcb_cost {
    double macs, flops, params, acts, bytes;
    double dynamic_macs;        /* routing / kernel generation, inside macs */
    double executed_macs;       /* what the implementation performs */
} dcb_cost;

/* ------------------------------------------------------------- registry */
typedef struct dcb_op dcb_op;

int dcb_op_count(void);
const char *dcb_op_name(int i);                    /* NULL past the end */
const char *dcb_op_doc(const char *op);
/* Implementation 0 of every operator is its oracle (the naive loops, or
 * drconv's all_regions) and its default; the tests check every other one
 * against it within dcb_op_tolerance. */
int dcb_impl_count(const char *op);                /* -1: unknown op */
const char *dcb_impl_name(const char *op, int i);  /* NULL past the end */
const dcb_param_spec *dcb_op_params(const char *op, int *count);

/* What an operator takes as input: images (N, C, H, W) or sequences (N, T, C). */
typedef enum dcb_input_layout { DCB_INPUT_IMAGE = 0, DCB_INPUT_SEQUENCE = 1 } dcb_input_layout;
/* The layout of a registered operator; -1 for an unknown one. */
int dcb_op_input_layout(const char *op);
/* 1 when `key` names a size of the operator's input rather than a
 * hyperparameter: N for every operator, H and W for images (not for
 * localconv, whose H and W are hyperparameters), T for sequences. */
int dcb_op_is_shape_key(const char *op, const char *key);
/* The input shape of a created op for the sizes N, H, W (images) or N, T
 * (sequences), with the channel count its hyperparameters give (and, for
 * localconv, its own H and W). Returns ndim (4 or 3). */
int dcb_op_input_shape(const dcb_op *op, int64_t N, int64_t H, int64_t W, int64_t T,
                       int64_t shape[DCB_MAX_DIMS]);

/* ---------------------------------------------------------- operator API */
dcb_status dcb_op_create(const char *op, const char *impl,
                         const dcb_hparam *hp, int nhp, dcb_op **out);
void dcb_op_destroy(dcb_op *op);
const char *dcb_op_get_name(const dcb_op *op);
const char *dcb_op_get_impl(const dcb_op *op);
/* Value of a hyperparameter after defaults and derivation; NAN if unknown. */
double dcb_op_get_param(const dcb_op *op, const char *name);
int dcb_op_threads(const dcb_op *op);
/* The thread count of ops whose hyperparameters name none (1 unless set;
 * dcbench --threads N sets it): DCB_INVALID_PARAM outside 1..1024. */
dcb_status dcb_set_default_threads(int n);
int dcb_default_threads(void);
/* The implementation's identity as data: its conv2d engine ("winograd") and
 * its strategy ("combine_then_conv"), NULL where it has none; its doc line;
 * and the largest relative error against the operator's naive
 * implementation (dcb_max_rel_err) that it promises. */
const char *dcb_op_get_engine(const dcb_op *op);
const char *dcb_op_get_strategy(const dcb_op *op);
/* AUTO: impl "auto", for every operator with two or more implementations
 * beside its oracle (dcb_impl_has_auto; it is not in dcb_impl_name's list).
 * Its candidates are every implementation but the oracle, those on the
 * naive engine and the peers (onednn); those that refuse the
 * hyperparameters drop out at create, those that refuse an input shape at
 * plan. On every new input shape it picks one: the least predicted time,
 * where a candidate's prediction is its measured time at its nearest
 * reference layer (log2 distance over the operator's macs, bytes, params,
 * acts) times executed_macs here / executed_macs there, of the references
 * for this operator, ISA level (dcb_isa) and the nearest thread count.
 * Without references for the operator at this ISA level it follows a fixed
 * rule: combine_then_conv first, then Winograd F(4x4) where the output is
 * at least 14x14 and F(2x2) below, direct, im2col; otherwise direct,
 * region_sorted, band, gather, unfold. Its run, workspace, tolerance and
 * executed_macs are the pick's. dcb_op_get_picked gives the pick's name
 * (NULL before the first plan, and for other impls); dcb_op_get_pick_reason
 * the predictions or the rule, e.g. "calibrated (avx512, 1 thread) for
 * (8, 256, 14, 14): winograd 4.2 ms (reference at distance 0.00); ... ->
 * winograd". */
int dcb_impl_has_auto(const char *op);
int dcb_impl_is_auto_candidate(const char *op, int i); /* implementation i is one of auto's */
const char *dcb_op_get_picked(const dcb_op *op);
const char *dcb_op_get_pick_reason(const dcb_op *op);
/* The references (dcbench calibrate writes them; the harness adds them from
 * its calibration file at start): seconds measured for op/impl at ISA level
 * isa on `threads` threads, with the operator's dcb_cost there. Call before
 * creating auto ops; DCB_INVALID_ARGUMENT names a bad value. */
dcb_status dcb_auto_add_reference(const char *op, const char *impl, const char *isa, int threads, double macs,
                                  double bytes, double params, double acts, double executed_macs, double seconds);
void dcb_auto_clear_references(void);
int dcb_auto_reference_count(const char *op); /* NULL: all operators */
const char *dcb_op_get_impl_doc(const dcb_op *op);
double dcb_op_tolerance(const dcb_op *op);
/* How many plans the op has made (dcb_op_plan on a new shape or after new
 * weights). dcb_op_run on the planned shape makes none. */
uint64_t dcb_op_plan_count(const dcb_op *op);

/* Weights, in docs/OPERATORS.md's names and layouts. */
int dcb_op_weight_count(const dcb_op *op);
const char *dcb_op_weight_name(const dcb_op *op, int i);
/* Expected shape of weight i (ndim returned). */
int dcb_op_weight_shape(const dcb_op *op, int i, int64_t shape[DCB_MAX_DIMS]);
/* Copies t; DCB_INVALID_WEIGHT names the weight, expected and given shape. */
dcb_status dcb_op_set_weight(dcb_op *op, const char *name, const dcb_tensor *t);
const dcb_tensor *dcb_op_get_weight(const dcb_op *op, const char *name);
/* Seeded initialisation (PyTorch's default: kaiming-uniform weights, biases
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in))). */
dcb_status dcb_op_init_weights(dcb_op *op, uint64_t seed);
/* Reads dir/<weight name>.npy for every weight. */
dcb_status dcb_op_load_weights(dcb_op *op, const char *dir);

dcb_status dcb_op_prepare(dcb_op *op);
/* Given the input shape: the output shape and the workspace bytes run needs.
 * Unsupported shapes for this implementation answer DCB_UNSUPPORTED_SHAPE. */
dcb_status dcb_op_plan(dcb_op *op, int ndim, const int64_t *x_shape,
                       int *y_ndim, int64_t y_shape[DCB_MAX_DIMS],
                       size_t *workspace_bytes);
/* ws must hold the planned workspace_bytes (DCB_ALIGN aligned); prof may be
 * NULL; y must have the planned shape. */
dcb_status dcb_op_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y,
                      void *ws, dcb_profile *prof);
/* dcb_op_run with the workspace's size: DCB_INVALID_ARGUMENT naming both
 * sizes when ws_bytes is below the planned workspace. */
dcb_status dcb_op_run_ws(dcb_op *op, const dcb_tensor *x, dcb_tensor *y,
                         void *ws, size_t ws_bytes, dcb_profile *prof);
/* Convenience: plan, allocate y and workspace, prepare if needed, run. */
dcb_status dcb_op_forward(dcb_op *op, const dcb_tensor *x, dcb_tensor **y);
dcb_status dcb_op_cost(const dcb_op *op, int ndim, const int64_t *x_shape,
                       dcb_cost *out);

/* ------------------------------------------- dynamic operators' products */
/* Per-sample kernels a dynamic operator generates for input x (condconv,
 * dyconv, weightnet: (N, cout, cin/groups, kh, kw); drconv: (N, m, cout, cin,
 * kh, kw); dynconv1d: (N, T, heads, K)); DCB_UNSUPPORTED_PARAM for static
 * operators. *out is a new tensor. */
dcb_status dcb_op_kernels(dcb_op *op, const dcb_tensor *x, dcb_tensor **out);
/* Routing / attention weights (condconv (N, E), dyconv (N, K), weightnet
 * (N, M*cout), drconv mask (N, H', W') as region indices, skconv/splat
 * (N, branches, cout), se (N, C)). */
dcb_status dcb_op_routing(dcb_op *op, const dcb_tensor *x, dcb_tensor **out);

/* ---------------------------------------------------------- training
 * Backward passes (docs/TRAINING.md). A training forward keeps what the
 * backward needs; an inference forward (dcb_op_run) keeps nothing.
 *   dcb_op_forward_train(op, x, y)   y = forward(x) (y of the planned shape),
 *       computed by the op's backward implementation's own training forward
 *       when it has one, else by its forward implementation. x and y are
 *       referenced, not copied: keep both alive and unchanged until the
 *       backward (a network keeps its activations anyway).
 *   dcb_op_backward(op, dy, dx, dw)  dy: y's shape. dx (x's shape, NULL: not
 *       wanted) and dw[i] the gradient of weight i (dcb_op_weight_name
 *       order, each in its weight's own shape; dw NULL or dw[i] NULL: not
 *       wanted) are overwritten with the gradients of sum(dy * y), the loss
 *       being summed over the batch (nothing is averaged inside an operator).
 *       It may be called again for another dy of the same forward.
 *   Errors: backward before a training forward, or after the weights
 *   changed (DCB_INVALID_ARGUMENT); dy, dx or dw[i] of the wrong shape
 *   (DCB_INVALID_SHAPE, naming the tensor and both shapes).
 * Gradients are exact derivatives of the forward, except where
 * dcb_op_weight_grad_exact says 0: drconv's guide_w and guide_b get the
 * gradient of softmax(F) over regions in place of the one-hot mask (the
 * paper's rule). Ties of argmax and max go to the first maximum.
 * Backward implementations are registered per operator like forward ones:
 * 0 is the naive oracle; an op starts with the last registered one that
 * supports its hyperparameters (dcb_op_set_backward(op, NULL) chooses it
 * again), and dcb_op_get_backward says which it uses. */
int dcb_bwd_count(const char *op);                 /* -1: unknown op */
const char *dcb_bwd_name(const char *op, int i);   /* NULL past the end */
/* Chooses backward implementation `name` (NULL: the default); an unknown
 * name is DCB_UNKNOWN_IMPL listing the valid ones, one that cannot run
 * these hyperparameters DCB_UNSUPPORTED_PARAM. */
dcb_status dcb_op_set_backward(dcb_op *op, const char *name);
const char *dcb_op_get_backward(const dcb_op *op);   /* NULL: the op has none */
const char *dcb_op_get_backward_doc(const dcb_op *op);
/* Largest relative error against the naive backward it promises. */
double dcb_op_backward_tolerance(const dcb_op *op);
/* 1 when weight i's gradient is the exact derivative of the forward. */
int dcb_op_weight_grad_exact(const dcb_op *op, int i);
/* 1 when dx is the exact derivative of the forward: not when a surrogate
 * gradient flows into x (drconv's guide conv reads x). */
int dcb_op_input_grad_exact(const dcb_op *op);
/* 1 when weight i is a buffer, not trained (batch norm's running_mean and
 * running_var): its gradient is 0 and a training forward may update it. */
int dcb_op_weight_is_buffer(const dcb_op *op, int i);
/* 1 when the training forward computes another function than the inference
 * forward (batch norm normalises with the batch's statistics). */
int dcb_op_train_differs(const dcb_op *op);
dcb_status dcb_op_forward_train(dcb_op *op, const dcb_tensor *x, dcb_tensor *y);
dcb_status dcb_op_backward(dcb_op *op, const dcb_tensor *dy, dcb_tensor *dx, dcb_tensor *const *dw);
/* Weight i for in-place updates (an optimiser step): drops the prepared
 * state and the training state, as dcb_op_set_weight does. NULL when the
 * weight is not set. */
dcb_tensor *dcb_op_weight_mut(dcb_op *op, int i);

/* ------------------------------------------------------------- datasets
 * Labelled image sets in memory: x (n, c, h, w) floats, y (n) labels. The
 * IDX format (MNIST, Fashion-MNIST: big-endian magic 0x00000803 for uint8
 * images of 3 dimensions, 0x00000801 for uint8 labels), plain or
 * gzip-compressed (zlib, detected from the content). Malformed, truncated or
 * mismatched files are DCB_INVALID_FILE naming the file and the problem; a
 * missing file DCB_IO_ERROR naming it. Pixels are scaled to [0, 1]. */
typedef struct dcb_dataset {
    int64_t n;              /* examples */
    int c, h, w;            /* one example's shape (IDX images: c = 1) */
    int classes;            /* 1 + the largest label */
    float *x;               /* n * c * h * w */
    int32_t *y;             /* n labels in [0, classes) */
} dcb_dataset;
dcb_status dcb_dataset_load_idx(const char *images, const char *labels, dcb_dataset **out);
/* A named dataset's files: "fashion-mnist" (Debian's dataset-fashion-mnist,
 * /usr/share/datasets/fashion-mnist/, or the directory in DCB_DATA_FASHION_MNIST)
 * and "mnist"; train selects the training or the test split. An unknown
 * name is DCB_UNKNOWN_PARAM listing the known ones. */
dcb_status dcb_dataset_paths(const char *name, int train, char *images, char *labels, size_t len);
dcb_status dcb_dataset_load(const char *name, int train, dcb_dataset **out);
void dcb_dataset_free(dcb_dataset *d);
/* The first n examples of a seeded permutation (a new dataset). */
dcb_status dcb_dataset_subset(const dcb_dataset *d, int64_t n, uint64_t seed, dcb_dataset **out);
/* Per-channel mean and std over the whole set (to normalise with). */
void dcb_dataset_stats(const dcb_dataset *d, float *mean, float *std);
/* x = (x - mean[c]) / std[c] in place. */
void dcb_dataset_normalize(dcb_dataset *d, const float *mean, const float *std);
/* perm (n) = the examples' order in epoch `epoch` for `seed`: a function of
 * (seed, epoch) alone (Fisher-Yates on splitmix64). */
void dcb_dataset_order(int64_t n, uint64_t seed, int64_t epoch, int64_t *perm);
/* Copies examples perm[start .. start+B) into xb (B, c, h, w) and yb (B)
 * (B clipped at n: returns the count copied). Augmentation when aug is
 * non-NULL: a random horizontal flip (aug->flip) and a random crop of the
 * image zero-padded by aug->crop_pad pixels, drawn from aug->seed, the
 * epoch and the example's index, so that a batch is a function of its
 * position alone (resumable). */
typedef struct dcb_augment {
    int flip, crop_pad;
    uint64_t seed;
    int64_t epoch;
} dcb_augment;
int dcb_dataset_batch(const dcb_dataset *d, const int64_t *perm, int64_t start, int B, const dcb_augment *aug,
                      float *xb, int32_t *yb);

/* Changes a numeric hyperparameter of a created op (dyconv's temperature
 * during training, say): validated again; refused, with the op unchanged,
 * when the value is invalid or would change the weights' shapes. */
dcb_status dcb_op_set_param(dcb_op *op, const char *name, double value);

/* ------------------------------------------------------------- networks
 * A network is a list of nodes, each computing on the output of earlier
 * nodes: an operator of the registry (the layers batchnorm, relu, linear,
 * ... included) on one node's output, the sum of two nodes (a residual
 * connection), or `rows` ((N, C, H, W) -> (N, H, C*W): an image read row by
 * row as a sequence). Node -1 is the network's input; the last node is its
 * output. Parameters are the weights of the operator nodes, named
 * "<node>.<weight>". */
typedef struct dcb_net dcb_net;
dcb_status dcb_net_create(int threads, dcb_net **out);
void dcb_net_destroy(dcb_net *net);
/* impl, bwd: forward and backward implementations (NULL: the default
 * forward is implementation 0, the oracle, so callers pass a fast one;
 * the default backward as dcb_op_create chooses it). The node's threads
 * are the network's. *id (may be NULL) is the new node's index. */
dcb_status dcb_net_add(dcb_net *net, const char *name, const char *op, const char *impl, const char *bwd,
                       const dcb_hparam *hp, int nhp, int input, int *id);
dcb_status dcb_net_add_sum(dcb_net *net, const char *name, int a, int b, int *id);
dcb_status dcb_net_add_rows(dcb_net *net, const char *name, int input, int *id);
int dcb_net_size(const dcb_net *net);
const char *dcb_net_node_name(const dcb_net *net, int i);
/* The node's operator, or NULL for sum and rows nodes. */
dcb_op *dcb_net_node_op(dcb_net *net, int i);
/* The node's inputs (a and b; b = -2 unless a sum); returns the node's kind
 * name: the operator's name, "sum" or "rows". */
const char *dcb_net_node_inputs(const dcb_net *net, int i, int *a, int *b);
/* Every operator's dcb_op_init_weights, seeded by seed and the node. */
dcb_status dcb_net_init(dcb_net *net, uint64_t seed);
/* Forward of a batch; train: training forwards (batch statistics, state
 * kept for dcb_net_backward). *y is the net's (valid until the next call). */
dcb_status dcb_net_forward(dcb_net *net, const dcb_tensor *x, int train, const dcb_tensor **y);
/* Seconds node i spent in forwards and backwards (and how many) since the
 * net was made or dcb_net_reset_times: where a network's time goes. */
void dcb_net_node_times(const dcb_net *net, int i, double *fwd, double *bwd, int64_t *nfwd, int64_t *nbwd);
void dcb_net_reset_times(dcb_net *net);
/* The activation of node i from the last forward (NULL before one). */
const dcb_tensor *dcb_net_activation(const dcb_net *net, int i);
/* After a training forward: the gradient of sum(dy * y) for every
 * parameter (dcb_net_grad), overwritten. */
dcb_status dcb_net_backward(dcb_net *net, const dcb_tensor *dy);
/* The sum of the nodes' costs (dcb_op_cost; sum: flops = elements) for
 * input shape x. */
dcb_status dcb_net_cost(dcb_net *net, int ndim, const int64_t *x, dcb_cost *total);
enum { DCB_PARAM_WEIGHT = 0, DCB_PARAM_NO_DECAY = 1, DCB_PARAM_BUFFER = 2 };
int dcb_net_param_count(const dcb_net *net);
const char *dcb_net_param_name(const dcb_net *net, int i);
/* DCB_PARAM_NO_DECAY: biases and batch-norm weights (what "no weight decay
 * on bias and BN" excludes); DCB_PARAM_BUFFER: running statistics. */
int dcb_net_param_kind(const dcb_net *net, int i);
const dcb_tensor *dcb_net_param(const dcb_net *net, int i);
/* For an in-place update: drops the owning op's prepared state. */
dcb_tensor *dcb_net_param_mut(dcb_net *net, int i);
const dcb_tensor *dcb_net_grad(const dcb_net *net, int i);
/* dir/<node>/<weight>.npy for every parameter (so that an op of the same
 * hyperparameters loads a node's weights with dcb_op_load_weights(op,
 * "dir/<node>")); load checks every name and shape. */
dcb_status dcb_net_save(const dcb_net *net, const char *dir);
dcb_status dcb_net_load(dcb_net *net, const char *dir);
/* Mean softmax cross-entropy of logits (N, K) against labels, with label
 * smoothing s (targets (1-s) one-hot + s/K); dlogits (N, K) (may be NULL)
 * gets the gradient of the mean; *correct (may be NULL) the argmax hits. */
double dcb_softmax_ce(const dcb_tensor *logits, const int32_t *labels, double smoothing, dcb_tensor *dlogits,
                      int64_t *correct);

/* ------------------------------------------------------------- training
 * dcb_train: minibatch training of net on `train`, evaluated on `test` at
 * every epoch's end. Deterministic for a seed and a thread count: the data
 * order and augmentation come from the seed alone, and a run resumed from
 * its checkpoint reaches bit-identical weights. */
typedef struct dcb_train_config {
    int epochs, batch, threads;
    uint64_t seed;
    const char *optimizer;      /* "sgd" (momentum, nesterov) | "adamw" */
    double lr, momentum, weight_decay;
    int nesterov;
    int no_decay_bn_bias;       /* no weight decay on biases and batch norm */
    double beta1, beta2, adam_eps;
    const char *schedule;       /* "onecycle" | "cosine" | "step" | "constant" */
    double pct_start, div_factor, final_div_factor;  /* onecycle (PyTorch's OneCycleLR, no momentum cycling) */
    int step_epochs;            /* step: lr *= gamma every step_epochs */
    double gamma;
    double label_smoothing;
    int flip, crop_pad;         /* augmentation */
    /* Temperature annealing of every node with a "temperature"
     * hyperparameter (dyconv): linear from tau_start to tau_end over the
     * first tau_epochs epochs (step by step), tau_end after; 0: none. */
    double tau_start, tau_end, tau_epochs;
    const char *checkpoint;     /* directory, or NULL: none */
    int64_t checkpoint_every;   /* steps between checkpoints (0: each epoch's end) */
    int64_t max_steps;          /* stop after this many steps in all (0: the epochs) */
    int eval_batch;
} dcb_train_config;
/* The defaults: SGD lr 0.1 momentum 0.9 nesterov, weight decay 5e-4,
 * onecycle (pct_start 0.3, div 25, final div 1e4), 3 epochs of batch 64. */
dcb_train_config dcb_train_defaults(void);

typedef struct dcb_epoch_stats {
    int epoch;                  /* 1-based */
    double train_loss, train_acc, test_loss, test_acc;
    double seconds, images_per_s, grad_norm, lr;
} dcb_epoch_stats;
typedef struct dcb_train_progress {
    int epoch, epochs;          /* 1-based epoch */
    int64_t batch, batches;     /* the batch just done, of the epoch's */
    int64_t step;               /* steps done in all */
    double loss, acc;           /* running means over the epoch */
    double images_per_s, eta_s, lr, grad_norm;
    const dcb_epoch_stats *epoch_done;   /* non-NULL at an epoch's end */
} dcb_train_progress;
/* Called after every step and at every epoch's end; nonzero stops. */
typedef int (*dcb_train_callback)(void *ud, const dcb_train_progress *p);
typedef struct dcb_train_result {
    int nepochs;                /* epochs completed, history included */
    dcb_epoch_stats *epochs;    /* nepochs entries (free with dcb_train_result_free) */
    int64_t steps, resumed_step;   /* resumed_step: the checkpoint's step, -1: a fresh run */
    double test_loss, test_acc;
} dcb_train_result;
dcb_status dcb_train(dcb_net *net, const dcb_dataset *train, const dcb_dataset *test, const dcb_train_config *cfg,
                     dcb_train_callback cb, void *ud, dcb_train_result *out);
void dcb_train_result_free(dcb_train_result *r);
/* Mean loss and accuracy of net (eval mode) on d, in batches. */
dcb_status dcb_net_evaluate(dcb_net *net, const dcb_dataset *d, int batch, double *loss, double *acc);

/* ------------------------------------------------- kernel similarity
 * Cosine similarity of every pair of kernels k[i], k[j], i < j, where the
 * first dimension of the tensor indexes the kernels (at least 2):
 *   whole        the flattened kernels k[i] and k[j];
 *   per_channel  k[i][o] against k[j][o] for every o along the second
 *                dimension (output channels), pooled over o.
 * A pair with a zero-norm kernel counts as similarity 0. hist counts the
 * pairs in DCB_SIM_BINS equal bins over [-1, 1]. */
#define DCB_SIM_BINS 20
typedef struct dcb_sim_summary {
    double mean, std, min, max;
    int64_t pairs;
    int64_t hist[DCB_SIM_BINS];
} dcb_sim_summary;
typedef struct dcb_similarity_stats {
    dcb_sim_summary whole, per_channel;
} dcb_similarity_stats;
dcb_status dcb_similarity(const dcb_tensor *k, dcb_similarity_stats *out);
/* Every pair's whole-kernel cosine similarity, in the order (0,1), (0,2), ...,
 * (1,2), ...: *npairs = n(n-1)/2 pairs for n kernels. With out NULL only
 * *npairs is set; otherwise cap must hold them all (DCB_INVALID_ARGUMENT). */
dcb_status dcb_similarity_pairs(const dcb_tensor *k, double *out, int64_t cap, int64_t *npairs);

/* ------------------------------------------------------------ utilities */
void *dcb_aligned_alloc(size_t bytes);   /* DCB_ALIGN aligned; free with dcb_aligned_free */
void dcb_aligned_free(void *p);
/* Calls of dcb_aligned_alloc so far, process-wide (libdcb's own buffers
 * included): what tests count to show a timed loop allocates nothing. */
uint64_t dcb_alloc_count(void);
/* BLAS in use: "OpenBLAS 0.3.21 (core Haswell, ...)" / "BLIS ..." */
const char *dcb_blas_info(void);
const char *dcb_blas_name(void);        /* "openblas" | "blis" */
const char *dcb_blas_core(void);        /* OpenBLAS core name, BLIS arch */
void dcb_blas_set_threads(int n);
const char *dcb_build_flags(void);      /* compiler and flags libdcb was built with */
/* The instruction set libdcb's micro-kernels run in this process: "avx512"
 * (AVX-512 F/BW/DQ/VL), "avx2" (AVX2 + FMA) or "scalar" (portable C). Every
 * variant is compiled into every build, each with its own target flags; the
 * widest the CPU and OS run is chosen once, or the narrower one that the
 * environment variable DCB_ISA names (DCB_ISA=avx2, DCB_ISA=scalar). */
const char *dcb_isa(void);
const char *dcb_isa_available(void);    /* what this CPU runs, widest first: "avx512,avx2,scalar" */
/* DCB_OK where DCB_ISA is unset or names a level this CPU runs; otherwise
 * DCB_INVALID_PARAM with a message naming DCB_ISA's value and the valid
 * ones in msg (cap bytes). An unobeyed DCB_ISA leaves dcb_isa() widest. */
dcb_status dcb_isa_check(char *msg, size_t cap);
const char *dcb_onednn_version(void);   /* "2.6.3", or "" when built without oneDNN */
uint64_t dcb_rand_u64(uint64_t *state); /* splitmix64 step */

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* DCB_H */
