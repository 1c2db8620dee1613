/* flatten (docs/TRAINING.md "Layers"): (N, d1, ..., dk) -> (N, d1*...*dk),
 * the same data in the same order (torch.flatten(x, 1)). No hyperparameters,
 * no weights, and no cost: a reshape, which a network could do as a view
 * (the copy here is only because y is the caller's own tensor). */
#include "dcb_internal.h"

#include <string.h>

static dcb_status flatten_validate(dcb_op *op) {
    (void)op;
    return DCB_OK;
}

static int flatten_weights(const dcb_op *op, dcb_weight_spec *s) {
    (void)op, (void)s;
    return 0;
}

static dcb_status flatten_out_shape(const dcb_op *op, int ndim, const int64_t *x, int *yn, int64_t *y) {
    char s[128];
    (void)op;
    if (ndim < 2)
        return dcb_fail(DCB_INVALID_SHAPE, "flatten: input must be (N, ...) with at least 2 dimensions, got %s",
                        dcb_shape_str(ndim, x, s, sizeof s));
    int64_t p = 1;
    for (int d = 0; d < ndim; d++) {
        if (x[d] < 1)
            return dcb_fail(DCB_INVALID_SHAPE, "flatten: input shape %s has a bad size",
                            dcb_shape_str(ndim, x, s, sizeof s));
        if (d) p *= x[d];
    }
    *yn = 2;
    y[0] = x[0];
    y[1] = p;
    return DCB_OK;
}

/* Nothing: netcost.lua has no row for a reshape. */
static void flatten_cost(const dcb_op *op, const int64_t *x, dcb_cost *c) {
    (void)op, (void)x;
    memset(c, 0, sizeof *c);
}

#define FLAT_CHUNK ((size_t)1 << 18)

static void copy_floats(float *dst, const float *src, size_t n, int threads) {
    const size_t nb = (n + FLAT_CHUNK - 1) / FLAT_CHUNK;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && nb > 1)
    for (size_t b = 0; b < nb; b++) {
        const size_t lo = b * FLAT_CHUNK, m = n - lo < FLAT_CHUNK ? n - lo : FLAT_CHUNK;
        memcpy(dst + lo, src + lo, m * sizeof(float));
    }
}

static dcb_status flatten_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    (void)ws;
    const double t0 = dcb_now();
    copy_floats(y->data, x->data, (size_t)x->size, op->threads);
    DCB_PHASE_ADD(prof, DCB_PHASE_COMBINE, t0);
    return DCB_OK;
}

static dcb_status flatten_bwd_run(dcb_op *op, const dcb_train_ctx *c) {
    if (c->dx) copy_floats(c->dx->data, c->dy->data, (size_t)c->dy->size, op->threads);
    return DCB_OK;
}

static const dcb_impl_vt flatten_naive = {.name = "naive", .doc = "a copy", .tol = 1e-6, .run = flatten_run};
static const dcb_impl_vt *const flatten_impls[] = {&flatten_naive};
static const dcb_bwd_vt flatten_bwd_naive = {.name = "naive", .doc = "dx = dy, reshaped", .tol = 1e-6,
                                             .run = flatten_bwd_run};
static const dcb_bwd_vt *const flatten_bwds[] = {&flatten_bwd_naive};

const dcb_op_info dcb_flatten_info = {
    .name = "flatten", .doc = "(N, ...) -> (N, prod(...)), the data unchanged", .params = NULL, .nparams = 0,
    DCB_IMPLS(flatten_impls), DCB_BWDS(flatten_bwds), .layout = DCB_INPUT_IMAGE, .channels_param = NULL,
    .validate = flatten_validate, .weights = flatten_weights, .out_shape = flatten_out_shape, .cost = flatten_cost,
};
