/* linear (docs/TRAINING.md "Layers"): y (..., out) = x (..., in) . weight^T
 * + bias, weight (out, in) and bias (out) as PyTorch's nn.Linear, on any
 * input of at least 2 dimensions (rows = the product of all but the last).
 * Cost (netcost.lua: a 1x1 conv with bias on a 1x1 map, per row):
 * macs = rows * (in*out + out with bias), params = in*out (+ out),
 * acts = rows * out, flops = 2 * macs. */
#include "dcb_internal.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

typedef struct linear_hp {
    int in, out, bias;
    int ndim; /* of the last shape out_shape saw: the cost hook gets none (layer_act.c) */
} linear_hp;

#define HP(op) ((const linear_hp *)(op)->hp)

static const dcb_param_spec linear_params[] = {
    {"in", DCB_PT_INT, 0, NULL, 1, "input features: the last dimension of x (required)"},
    {"out", DCB_PT_INT, 0, NULL, 1, "output features (required)"},
    {"bias", DCB_PT_BOOL, 1, NULL, 0, "add a bias per output feature"},
};

static dcb_status linear_validate(dcb_op *op) {
    linear_hp *h = dcb_new_hp(op, sizeof *h);
    if (!h) return DCB_OUT_OF_MEMORY;
    dcb_status st;
    if ((st = dcb_get_required_int(op, "in", 1, &h->in)) != DCB_OK) return st;
    if ((st = dcb_get_required_int(op, "out", 1, &h->out)) != DCB_OK) return st;
    h->bias = dcb_pv(op, "bias") != 0;
    h->ndim = 3; /* the registry's sequence layout (N, T, in) */
    return DCB_OK;
}

static int linear_weights(const dcb_op *op, dcb_weight_spec *s) {
    const linear_hp *h = HP(op);
    s[0] = (dcb_weight_spec){.name = "weight", .ndim = 2, .shape = {h->out, h->in}, .fan_in = 0, .flags = 0};
    if (!h->bias) return 1;
    s[1] = (dcb_weight_spec){.name = "bias", .ndim = 1, .shape = {h->out}, .fan_in = h->in, .flags = DCB_W_BIAS};
    return 2;
}

static dcb_status linear_out_shape(const dcb_op *op, int ndim, const int64_t *x, int *yn, int64_t *y) {
    char s[128];
    const linear_hp *h = HP(op);
    if (ndim < 2)
        return dcb_fail(DCB_INVALID_SHAPE, "linear: input must be (..., in) with at least 2 dimensions, got %s",
                        dcb_shape_str(ndim, x, s, sizeof s));
    int64_t rows = 1;
    for (int d = 0; d < ndim; d++) {
        if (x[d] < 1)
            return dcb_fail(DCB_INVALID_SHAPE, "linear: input shape %s has a bad size", dcb_shape_str(ndim, x, s, sizeof s));
        if (d < ndim - 1) rows *= x[d];
    }
    if (x[ndim - 1] != h->in)
        return dcb_fail(DCB_INVALID_SHAPE, "linear: input %s has %lld features in its last dimension, in=%d",
                        dcb_shape_str(ndim, x, s, sizeof s), (long long)x[ndim - 1], h->in);
    if (rows > INT32_MAX)
        return dcb_fail(DCB_INVALID_SHAPE, "linear: input %s has %lld rows (at most %d)",
                        dcb_shape_str(ndim, x, s, sizeof s), (long long)rows, INT32_MAX);
    ((linear_hp *)op->hp)->ndim = ndim;
    *yn = ndim;
    memcpy(y, x, sizeof(int64_t) * (size_t)ndim);
    y[ndim - 1] = h->out;
    return DCB_OK;
}

static double rows_of(const dcb_op *op, const int64_t *x) {
    double r = 1;
    for (int d = 0; d < HP(op)->ndim - 1; d++) r *= (double)x[d];
    return r;
}

static void linear_cost(const dcb_op *op, const int64_t *x, dcb_cost *c) {
    const linear_hp *h = HP(op);
    const double rows = rows_of(op, x), io = (double)h->in * h->out, b = h->bias ? h->out : 0;
    c->macs = rows * (io + b);
    c->flops = 2 * c->macs;
    c->params = io + b;
    c->acts = rows * h->out;
    c->bytes = 4.0 * (rows * h->in + c->params + rows * h->out);
    c->dynamic_macs = 0;
}

static const float *bias_of(const dcb_op *op) {
    const dcb_tensor *b = dcb_w(op, "bias");
    return b ? b->data : NULL;
}

/* Rows per parallel work item of the naive loops. */
#define ROWS_PER_ITEM 4

/* ------------------------------------------------------------- forward */
/* Every output in double over contiguous rows of x and weight. */
static dcb_status naive_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    (void)ws;
    const linear_hp *h = HP(op);
    const int in = h->in, out = h->out;
    const long rows = (long)(x->size / in);
    const float *w = dcb_w(op, "weight")->data, *b = bias_of(op);
    const double t0 = dcb_now();
#pragma omp parallel for schedule(static) num_threads(op->threads) if (op->threads > 1 && (double)rows * in * out > 32768)
    for (long r = 0; r < rows; r++) {
        const float *xr = x->data + (size_t)r * in;
        float *yr = y->data + (size_t)r * out;
        for (int o = 0; o < out; o++) {
            const float *wo = w + (size_t)o * in;
            double acc = b ? b[o] : 0;
#pragma omp simd reduction(+ : acc)
            for (int i = 0; i < in; i++) acc += (double)xr[i] * wo[i];
            yr[o] = (float)acc;
        }
    }
    DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
    return DCB_OK;
}

static dcb_status blas_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    (void)ws;
    const linear_hp *h = HP(op);
    const double t0 = dcb_now();
    dcb_linear(x->data, (int)(x->size / h->in), h->in, dcb_w(op, "weight")->data, bias_of(op), h->out, y->data,
               op->threads); /* sets the BLAS threads (dcb_blas_threads_for) */
    DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
    return DCB_OK;
}

static const dcb_impl_vt linear_naive = {.name = "naive", .doc = "loops in double: the oracle", .tol = 1e-6,
                                         .run = naive_run};
static const dcb_impl_vt linear_blas = {.name = "blas", .doc = "one CBLAS sgemm, bias pre-filled", .tol = 1e-5,
                                        .run = blas_run};
static const dcb_impl_vt *const linear_impls[] = {&linear_naive, &linear_blas};

/* ------------------------------------------------------------ backward */
/* dx (rows, in) = dy (rows, out) . weight; dweight (out, in) = dy^T . x;
 * dbias (out) = the column sums of dy. Each output row is owned by one
 * thread and summed in a fixed order: no dependence on the thread count. */
static dcb_status bwd_naive_run(dcb_op *op, const dcb_train_ctx *c) {
    const linear_hp *h = HP(op);
    const int in = h->in, out = h->out;
    const long rows = (long)(c->x->size / in);
    const float *x = c->x->data, *dy = c->dy->data, *w = dcb_w(op, "weight")->data;
    float *dw = dcb_dw(op, c, "weight"), *db = dcb_dw(op, c, "bias");
    float *dx = c->dx ? c->dx->data : NULL;
    int oom = 0;
#pragma omp parallel num_threads(op->threads) if (op->threads > 1 && (double)rows * in * out > 32768)
    {
        double *acc = malloc(sizeof(double) * (size_t)in);
        if (!acc) {
#pragma omp atomic write
            oom = 1;
        }
        if (dx && acc)
#pragma omp for schedule(static)
            for (long r = 0; r < rows; r++) {
                const float *dyr = dy + (size_t)r * out;
                for (int i = 0; i < in; i++) acc[i] = 0;
                for (int o = 0; o < out; o++) {
                    const double g = dyr[o];
                    const float *wo = w + (size_t)o * in;
#pragma omp simd
                    for (int i = 0; i < in; i++) acc[i] += g * wo[i];
                }
                float *dxr = dx + (size_t)r * in;
                for (int i = 0; i < in; i++) dxr[i] = (float)acc[i];
            }
        if ((dw || db) && acc)
#pragma omp for schedule(static)
            for (int o = 0; o < out; o++) {
                double sb = 0;
                for (int i = 0; i < in; i++) acc[i] = 0;
                for (long r = 0; r < rows; r++) {
                    const double g = dy[(size_t)r * out + o];
                    const float *xr = x + (size_t)r * in;
                    sb += g;
                    if (dw)
#pragma omp simd
                        for (int i = 0; i < in; i++) acc[i] += g * xr[i];
                }
                if (dw)
                    for (int i = 0; i < in; i++) dw[(size_t)o * in + i] = (float)acc[i];
                if (db) db[o] = (float)sb;
            }
        free(acc);
    }
    if (oom) return dcb_fail(DCB_OUT_OF_MEMORY, "linear backward: out of memory");
    return DCB_OK;
}

/* Two sgemms; dbias as column sums of dy in double (one pass over dy). */
static dcb_status bwd_blas_run(dcb_op *op, const dcb_train_ctx *c) {
    const linear_hp *h = HP(op);
    const int in = h->in, out = h->out, rows = (int)(c->x->size / in);
    const float *x = c->x->data, *dy = c->dy->data, *w = dcb_w(op, "weight")->data;
    float *dw = dcb_dw(op, c, "weight"), *db = dcb_dw(op, c, "bias");
    dcb_blas_threads_for(op->threads);
    if (c->dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, in, out, 1.0f, dy, out, w, in, 0.0f,
                    c->dx->data, in);
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, rows, 1.0f, dy, out, x, in, 0.0f, dw, in);
    if (db) {
        double *acc = calloc((size_t)out, sizeof(double));
        if (!acc) return dcb_fail(DCB_OUT_OF_MEMORY, "linear backward: out of memory");
        for (int r = 0; r < rows; r++) {
            const float *dyr = dy + (size_t)r * out;
#pragma omp simd
            for (int o = 0; o < out; o++) acc[o] += dyr[o];
        }
        for (int o = 0; o < out; o++) db[o] = (float)acc[o];
        free(acc);
    }
    return DCB_OK;
}

static const dcb_bwd_vt linear_bwd_naive = {.name = "naive", .doc = "loops in double: the oracle", .tol = 1e-6,
                                            .run = bwd_naive_run};
static const dcb_bwd_vt linear_bwd_blas = {.name = "blas", .doc = "two CBLAS sgemms (dx, dweight), dbias in double",
                                           .tol = 1e-5, .run = bwd_blas_run};
static const dcb_bwd_vt *const linear_bwds[] = {&linear_bwd_naive, &linear_bwd_blas};

const dcb_op_info dcb_linear_info = {
    .name = "linear", .doc = "fully connected: y (..., out) = x (..., in) . weight^T + bias (PyTorch's nn.Linear)",
    DCB_PARAMS(linear_params), DCB_IMPLS(linear_impls), DCB_BWDS(linear_bwds), .layout = DCB_INPUT_SEQUENCE,
    .channels_param = "in", .validate = linear_validate, .weights = linear_weights, .out_shape = linear_out_shape,
    .cost = linear_cost,
};
