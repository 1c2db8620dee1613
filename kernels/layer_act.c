/* Elementwise activations for networks (docs/TRAINING.md "Layers"): relu,
 * relu6, silu, sigmoid. Any shape, no hyperparameters, no weights.
 *   relu(x) = max(x, 0)            relu'(0) = 0
 *   relu6(x) = min(max(x, 0), 6)   derivative 1 on (0, 6) only (PyTorch's hardtanh)
 *   sigmoid(x) = 1 / (1 + e^-x)    silu(x) = x * sigmoid(x)
 * Costs (netcost.lua): one flop per element, nothing else. */
#include "dcb_internal.h"
#include "ukernels/vmath.h"

#include <string.h>

/* Elements per parallel work item: below this a team costs more than the loop. */
#define ACT_CHUNK 16384

typedef void (*act_fwd_fn)(const float *x, float *y, size_t n);
/* dx from x, the forward's y and dy. */
typedef void (*act_bwd_fn)(const float *x, const float *y, const float *dy, float *dx, size_t n);

static void relu_fwd(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0.0f;
}
static void relu_bwd(const float *x, const float *y, const float *dy, float *dx, size_t n) {
    (void)y;
    for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0 ? dy[i] : 0.0f;
}

static void relu6_fwd(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float v = x[i] > 0 ? x[i] : 0.0f;
        y[i] = v < 6.0f ? v : 6.0f;
    }
}
static void relu6_bwd(const float *x, const float *y, const float *dy, float *dx, size_t n) {
    (void)y;
    for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0 && x[i] < 6.0f ? dy[i] : 0.0f;
}

/* s = sigmoid(x) as 1 / (1 + e^-x), e^-x clamped to e^[-87, 88] so that
 * neither overflows: the exp family's sigmoid (ukernels/vmath.h), its
 * variant picked at run time for the CPU. */
static void sigmoid_fwd(const float *x, float *y, size_t n) { dcb_vmath()->sigmoid(x, y, n); }
static void sigmoid_bwd(const float *x, const float *y, const float *dy, float *dx, size_t n) {
    (void)x;
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

/* Through a small buffer of s, so that y (or dx) may be x (or dy). */
#define SILU_BLOCK 256
static void silu_fwd(const float *x, float *y, size_t n) {
    float s[SILU_BLOCK];
    for (size_t lo = 0; lo < n; lo += SILU_BLOCK) {
        const size_t m = n - lo < SILU_BLOCK ? n - lo : SILU_BLOCK;
        sigmoid_fwd(x + lo, s, m);
        for (size_t i = 0; i < m; i++) y[lo + i] = x[lo + i] * s[i];
    }
}
/* silu' = s (1 + x (1 - s)), s recomputed from x (y = x s loses it at x = 0). */
static void silu_bwd(const float *x, const float *y, const float *dy, float *dx, size_t n) {
    (void)y;
    float s[SILU_BLOCK];
    for (size_t lo = 0; lo < n; lo += SILU_BLOCK) {
        const size_t m = n - lo < SILU_BLOCK ? n - lo : SILU_BLOCK;
        sigmoid_fwd(x + lo, s, m);
        for (size_t i = 0; i < m; i++) dx[lo + i] = dy[lo + i] * s[i] * (1.0f + x[lo + i] * (1.0f - s[i]));
    }
}

/* ------------------------------------------------------------ the operators */
/* The cost hook is given no ndim, and these layers take any shape: out_shape,
 * which dcb_op_cost calls first with the same shape, records it in the op's
 * hyperparameter block (op->hp points to writable memory even from a const
 * op). Without a shape seen yet, 4 dimensions: the registry's image layout. */
typedef struct act_hp {
    int ndim;
} act_hp;

static dcb_status act_validate(dcb_op *op) {
    act_hp *h = dcb_new_hp(op, sizeof *h);
    if (!h) return DCB_OUT_OF_MEMORY;
    h->ndim = 4;
    return DCB_OK;
}

static int act_weights(const dcb_op *op, dcb_weight_spec *s) {
    (void)op, (void)s;
    return 0;
}

static dcb_status act_out_shape(const dcb_op *op, int ndim, const int64_t *x, int *yn, int64_t *y) {
    char s[128];
    if (ndim < 1)
        return dcb_fail(DCB_INVALID_SHAPE, "%s: input must have at least one dimension, got %s", op->info->name,
                        dcb_shape_str(ndim, x, s, sizeof s));
    for (int d = 0; d < ndim; d++)
        if (x[d] < 1)
            return dcb_fail(DCB_INVALID_SHAPE, "%s: input shape %s has a bad size", op->info->name,
                            dcb_shape_str(ndim, x, s, sizeof s));
    ((act_hp *)op->hp)->ndim = ndim;
    *yn = ndim;
    memcpy(y, x, sizeof(int64_t) * (size_t)ndim);
    return DCB_OK;
}

/* flops: one per element (netcost.lua's relu / swish / sigmoid); bytes: x and y. */
static void act_cost(const dcb_op *op, const int64_t *x, dcb_cost *c) {
    double e = 1;
    for (int d = 0; d < ((const act_hp *)op->hp)->ndim; d++) e *= (double)x[d];
    c->macs = 0;
    c->flops = e;
    c->params = 0;
    c->acts = 0;
    c->bytes = 4.0 * 2 * e;
    c->dynamic_macs = 0;
}

static void act_apply_fwd(act_fwd_fn f, const float *x, float *y, int64_t n, int threads) {
    const int64_t nb = (n + ACT_CHUNK - 1) / ACT_CHUNK;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && nb > 1)
    for (int64_t b = 0; b < nb; b++) {
        const int64_t lo = b * ACT_CHUNK, hi = lo + ACT_CHUNK < n ? lo + ACT_CHUNK : n;
        f(x + lo, y + lo, (size_t)(hi - lo));
    }
}

static void act_apply_bwd(act_bwd_fn f, const float *x, const float *y, const float *dy, float *dx, int64_t n,
                          int threads) {
    const int64_t nb = (n + ACT_CHUNK - 1) / ACT_CHUNK;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && nb > 1)
    for (int64_t b = 0; b < nb; b++) {
        const int64_t lo = b * ACT_CHUNK, hi = lo + ACT_CHUNK < n ? lo + ACT_CHUNK : n;
        f(x + lo, y + lo, dy + lo, dx + lo, (size_t)(hi - lo));
    }
}

/* One operator: its forward ("naive", the only one: it is already one
 * vectorised pass) and its backward, from x, y and dy (no training forward
 * of its own: the inference forward keeps nothing, and x and y suffice). */
#define ACT_OP(nm, doc_)                                                                                           \
    static dcb_status nm##_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {    \
        (void)ws;                                                                                                  \
        const double t0 = dcb_now();                                                                               \
        act_apply_fwd(nm##_fwd, x->data, y->data, x->size, op->threads);                                           \
        DCB_PHASE_ADD(prof, DCB_PHASE_COMBINE, t0);                                                                \
        return DCB_OK;                                                                                             \
    }                                                                                                              \
    static dcb_status nm##_bwd_run(dcb_op *op, const dcb_train_ctx *c) {                                          \
        if (c->dx)                                                                                                 \
            act_apply_bwd(nm##_bwd, c->x->data, c->y->data, c->dy->data, c->dx->data, c->x->size, op->threads);    \
        return DCB_OK;                                                                                             \
    }                                                                                                              \
    static const dcb_impl_vt nm##_naive = {.name = "naive", .doc = "one vectorisable pass", .tol = 1e-6,         \
                                           .run = nm##_run};                                                       \
    static const dcb_impl_vt *const nm##_impls[] = {&nm##_naive};                                                  \
    static const dcb_bwd_vt nm##_bwd_naive = {.name = "naive", .doc = "one pass over x, y and dy", .tol = 1e-6, \
                                              .run = nm##_bwd_run};                                                \
    static const dcb_bwd_vt *const nm##_bwds[] = {&nm##_bwd_naive};                                                \
    const dcb_op_info dcb_##nm##_info = {                                                                          \
        .name = #nm, .doc = doc_, .params = NULL, .nparams = 0, DCB_IMPLS(nm##_impls), DCB_BWDS(nm##_bwds),       \
        .layout = DCB_INPUT_IMAGE, .channels_param = NULL, .validate = act_validate, .weights = act_weights,      \
        .out_shape = act_out_shape, .cost = act_cost,                                                             \
    };

ACT_OP(relu, "max(x, 0), elementwise, any shape (relu'(0) = 0)")
ACT_OP(relu6, "min(max(x, 0), 6), elementwise, any shape (derivative 1 on (0, 6) only)")
ACT_OP(silu, "x * sigmoid(x) (swish), elementwise, any shape")
ACT_OP(sigmoid, "1 / (1 + exp(-x)), elementwise, any shape")
