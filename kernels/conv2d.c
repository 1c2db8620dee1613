/* conv2d: the static operator and its engines behind the vtable. The shared
 * conv hyperparameter reader lives here too, for the dynamic operators. */
#include "dcb_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const dcb_param_spec conv2d_params[] = {
    DCB_CHANNEL_PARAMS,
    DCB_CONV_GEOMETRY_PARAMS,
    {"groups", DCB_PT_INT, 1, NULL, 0, "groups (cin = groups: depthwise)"},
    {"bias", DCB_PT_BOOL, 0, NULL, 0, "add a bias per output channel"},
};

dcb_status dcb_conv2d_read_params(dcb_op *op, const char *opname, dcb_conv2d_p *p) {
    dcb_status st;
    memset(p, 0, sizeof *p);
    double cin = dcb_pv(op, "cin"), cout = dcb_pv(op, "cout");
    if (isnan(cin)) return dcb_fail(DCB_INVALID_PARAM, "%s: cin is required", opname);
    if (isnan(cout)) return dcb_fail(DCB_INVALID_PARAM, "%s: cout is required", opname);
    if ((st = dcb_get_int(op, "cin", 1, &p->cin)) != DCB_OK) return st;
    if ((st = dcb_get_int(op, "cout", 1, &p->cout)) != DCB_OK) return st;
    double k = dcb_pv(op, "k"), kh = dcb_pv(op, "kh"), kw = dcb_pv(op, "kw");
    if (isnan(kh)) kh = k;
    if (isnan(kw)) kw = k;
    if (isnan(kh) || isnan(kw))
        return dcb_fail(DCB_INVALID_PARAM, "%s: the kernel size is required (k, or kh and kw)", opname);
    int kint;
    if (!isnan(k) && (st = dcb_get_int(op, "k", 1, &kint)) != DCB_OK) return st;   /* named as given */
    dcb_set_pv(op, "kh", kh);
    dcb_set_pv(op, "kw", kw);
    if ((st = dcb_get_int(op, "kh", 1, &p->kh)) != DCB_OK) return st;
    if ((st = dcb_get_int(op, "kw", 1, &p->kw)) != DCB_OK) return st;
    if ((st = dcb_get_int(op, "stride", 1, &p->stride)) != DCB_OK) return st;
    if ((st = dcb_get_int(op, "pad", 0, &p->pad)) != DCB_OK) return st;
    if ((st = dcb_get_int(op, "dilation", 1, &p->dil)) != DCB_OK) return st;
    /* Bounds that keep the engines' padded-plane arithmetic (H + 2 pad, the
     * kernel extent) inside an int: sizes beyond 65536 pixels are refused. */
    const int64_t ext_h = (int64_t)p->dil * (p->kh - 1) + 1, ext_w = (int64_t)p->dil * (p->kw - 1) + 1;
    if (ext_h > 65536 || ext_w > 65536) {
        const int h = ext_h >= ext_w;
        return dcb_fail(DCB_INVALID_PARAM, "%s: the kernel extent dilation*(k-1)+1 = %lld (%s=%d, dilation=%d) is "
                        "above 65536", opname, (long long)(h ? ext_h : ext_w), isnan(k) ? (h ? "kh" : "kw") : "k",
                        h ? p->kh : p->kw, p->dil);
    }
    if (p->pad > 65535)
        return dcb_fail(DCB_INVALID_PARAM, "%s: pad=%d is above 65535", opname, p->pad);
    p->groups = 1;
    if (dcb_param_index(op->info, "groups") >= 0 &&
        (st = dcb_get_int(op, "groups", 1, &p->groups)) != DCB_OK)
        return st;
    if (p->cin % p->groups)
        return dcb_fail(DCB_INVALID_PARAM, "%s: groups=%d does not divide cin=%d", opname, p->groups, p->cin);
    if (p->cout % p->groups)
        return dcb_fail(DCB_INVALID_PARAM, "%s: groups=%d does not divide cout=%d", opname, p->groups, p->cout);
    double b = dcb_pv(op, "bias");
    p->bias = !isnan(b) && b != 0;
    return DCB_OK;
}

dcb_status dcb_conv2d_check_input(const char *opname, const dcb_conv2d_p *p, int ndim,
                                  const int64_t *x, int *ho, int *wo) {
    char s[128];
    if (ndim != 4)
        return dcb_fail(DCB_INVALID_SHAPE, "%s: input must be (N, C, H, W), got %s", opname,
                        dcb_shape_str(ndim, x, s, sizeof s));
    if (x[0] < 1 || x[2] < 1 || x[3] < 1 || x[0] > INT32_MAX || x[2] > INT32_MAX || x[3] > INT32_MAX)
        return dcb_fail(DCB_INVALID_SHAPE, "%s: input shape %s has a bad size", opname,
                        dcb_shape_str(ndim, x, s, sizeof s));
    if (x[1] != p->cin)
        return dcb_fail(DCB_INVALID_SHAPE, "%s: input has %lld channels, cin=%d", opname,
                        (long long)x[1], p->cin);
    const int64_t eh = (int64_t)p->dil * (p->kh - 1) + 1, ew = (int64_t)p->dil * (p->kw - 1) + 1;
    if (eh > x[2] + 2 * (int64_t)p->pad)
        return dcb_fail(DCB_INVALID_SHAPE,
                        "%s: kernel height %lld (kh=%d, dilation=%d) exceeds the padded input height %lld (H=%lld, pad=%d)",
                        opname, (long long)eh, p->kh, p->dil, (long long)(x[2] + 2 * (int64_t)p->pad),
                        (long long)x[2], p->pad);
    if (ew > x[3] + 2 * (int64_t)p->pad)
        return dcb_fail(DCB_INVALID_SHAPE,
                        "%s: kernel width %lld (kw=%d, dilation=%d) exceeds the padded input width %lld (W=%lld, pad=%d)",
                        opname, (long long)ew, p->kw, p->dil, (long long)(x[3] + 2 * (int64_t)p->pad),
                        (long long)x[3], p->pad);
    *ho = dcb_conv_out((int)x[2], p->kh, p->stride, p->pad, p->dil);
    *wo = dcb_conv_out((int)x[3], p->kw, p->stride, p->pad, p->dil);
    return DCB_OK;
}

#define P(op) ((const dcb_conv2d_p *)(op)->hp)

static dcb_status conv2d_validate(dcb_op *op) {
    dcb_conv2d_p *p = dcb_new_hp(op, sizeof *p);
    return p ? dcb_conv2d_read_params(op, "conv2d", p) : DCB_OUT_OF_MEMORY;
}

static int conv2d_weights(const dcb_op *op, dcb_weight_spec *s) {
    const dcb_conv2d_p *p = P(op);
    int n = 0;
    s[n] = (dcb_weight_spec){"weight", 4, {p->cout, p->cin / p->groups, p->kh, p->kw}, 0, 0};
    n++;
    if (p->bias) {
        s[n] = (dcb_weight_spec){"bias", 1, {p->cout}, (double)(p->cin / p->groups) * p->kh * p->kw, 1};
        n++;
    }
    return n;
}

dcb_status dcb_conv2d_out_shape(const char *opname, const dcb_conv2d_p *p, int ndim, const int64_t *x,
                                int *yn, int64_t *y) {
    int ho, wo;
    dcb_status st = dcb_conv2d_check_input(opname, p, ndim, x, &ho, &wo);
    if (st != DCB_OK) return st;
    *yn = 4;
    y[0] = x[0];
    y[1] = p->cout;
    y[2] = ho;
    y[3] = wo;
    return DCB_OK;
}

static dcb_status conv2d_out_shape(const dcb_op *op, int ndim, const int64_t *x, int *yn, int64_t *y) {
    return dcb_conv2d_out_shape("conv2d", P(op), ndim, x, yn, y);
}

static void conv2d_cost(const dcb_op *op, const int64_t *x, dcb_cost *c) {
    const dcb_conv2d_p *p = P(op);
    const double N = (double)x[0];
    const double ho = dcb_conv_out((int)x[2], p->kh, p->stride, p->pad, p->dil);
    const double wo = dcb_conv_out((int)x[3], p->kw, p->stride, p->pad, p->dil);
    const double outs = p->cout * ho * wo;
    const double per = (double)p->kh * p->kw * (p->cin / p->groups) * outs + (p->bias ? outs : 0);
    c->macs = N * per;
    c->flops = 2 * c->macs;
    c->params = (double)p->kh * p->kw * (p->cin / p->groups) * p->cout + (p->bias ? p->cout : 0);
    c->acts = N * outs;
    c->bytes = 4.0 * (N * p->cin * (double)x[2] * x[3] + c->params + c->acts);
    c->dynamic_macs = 0;
}

static const float *bias_of(const dcb_op *op) {
    const dcb_tensor *b = dcb_w(op, "bias");
    return b ? b->data : NULL;
}

/* One implementation per conv2d engine, generated from DCB_CONV_ENGINES:
 * the engine's static-weight path behind the vtable. */
static dcb_status engine_check(dcb_op *op) { return dcb_engine_check_op(op, P(op)); }

static dcb_status engine_prepare(dcb_op *op) {
    dcb_status st = dcb_engine_prepare(DCB_ENGINE(op), P(op), dcb_w(op, "weight")->data, &op->state);
    if (st != DCB_OK) {
        char who[96];
        return dcb_fail(st, "%s: %s", dcb_op_who(op, who, sizeof who), dcb_last_error());
    }
    return DCB_OK;
}

static void engine_release(dcb_op *op) { dcb_engine_release(DCB_ENGINE(op), op->state); }

static size_t engine_ws(const dcb_op *op, const int64_t *x) {
    return dcb_engine_workspace(DCB_ENGINE(op), P(op), op->state, (int)x[0], (int)x[2], (int)x[3], op->threads);
}

static dcb_status engine_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    DCB_ENGINE(op)->run(P(op), op->state, (int)x->shape[0], (int)x->shape[2], (int)x->shape[3], x->data,
                    dcb_w(op, "weight")->data, bias_of(op), y->data, ws, op->threads, prof);
    return DCB_OK;
}

static double engine_executed(const dcb_op *op, const int64_t *x) {
    return dcb_engine_executed_macs(DCB_ENGINE(op), P(op), (int)x[0], (int)x[2], (int)x[3]);
}

#define CONV2D_IMPL(e)                                                                                              \
    static const dcb_impl_vt impl_##e = {.name = #e, .engine = &dcb_engine_##e, .check = engine_check,              \
                                         .workspace = engine_ws, .prepare = engine_prepare, .run = engine_run,      \
                                         .release = engine_release, .executed_macs = engine_executed};
DCB_CONV_ENGINES(CONV2D_IMPL)
#undef CONV2D_IMPL

#ifdef DCB_WITH_ONEDNN
extern const dcb_impl_vt dcb_conv2d_onednn_impl;
#endif

static const dcb_impl_vt *const conv2d_impls[] = {DCB_CONV_ENGINES(DCB_ENGINE_IMPL_REF)
#ifdef DCB_WITH_ONEDNN
                                                   &dcb_conv2d_onednn_impl,
#endif
};

/* ------------------------------------------------------------ backward */
static dcb_status bwd_naive_run(dcb_op *op, const dcb_train_ctx *c) {
    const dcb_conv2d_p *p = P(op);
    const int N = (int)c->x->shape[0], H = (int)c->x->shape[2], W = (int)c->x->shape[3];
    if (c->dx) dcb_conv2d_bwd_data_naive(p, N, H, W, c->dy->data, dcb_w(op, "weight")->data, c->dx->data, op->threads);
    float *dw = dcb_dw(op, c, "weight"), *db = dcb_dw(op, c, "bias");
    if (dw || db) {
        float *tmp = dw ? NULL : dcb_aligned_alloc(sizeof(float) * (size_t)dcb_w(op, "weight")->size);
        if (!dw && !tmp) return dcb_fail(DCB_OUT_OF_MEMORY, "conv2d backward: out of memory");
        dcb_conv2d_bwd_weight_naive(p, N, H, W, c->x->data, c->dy->data, dw ? dw : tmp, db, op->threads);
        dcb_aligned_free(tmp);
    }
    return DCB_OK;
}

static const dcb_bwd_vt bwd_naive = {.name = "naive", .doc = "direct loops in double: the oracle", .tol = 1e-6,
                                     .run = bwd_naive_run};

static dcb_status bwd_gemm_run(dcb_op *op, const dcb_train_ctx *c) {
    const dcb_conv2d_p *p = P(op);
    const int N = (int)c->x->shape[0], H = (int)c->x->shape[2], W = (int)c->x->shape[3];
    float *dw = dcb_dw(op, c, "weight"), *db = dcb_dw(op, c, "bias");
    const size_t bytes = dcb_conv2d_bwd_gemm_ws(p, N, H, W, op->threads);
    void *ws = bytes ? dcb_aligned_alloc(bytes) : NULL;
    if (bytes && !ws) return dcb_fail(DCB_OUT_OF_MEMORY, "conv2d backward: out of memory");
    if (c->dx) dcb_conv2d_bwd_data_gemm(p, N, H, W, c->dy->data, dcb_w(op, "weight")->data, c->dx->data, ws, op->threads);
    if (dw || db) dcb_conv2d_bwd_weight_gemm(p, N, H, W, c->x->data, c->dy->data, dw, db, ws, op->threads);
    dcb_aligned_free(ws);
    return DCB_OK;
}

/* Float sums: cout_g terms (times up to kh*kw taps in col2im) for dx, N*H'*W' for dw. */
static const dcb_bwd_vt bwd_gemm = {
    .name = "gemm",
    .doc = "im2col/col2im + CBLAS sgemm per group (dw summed over batches of images); depthwise: direct loops",
    .tol = 1e-5, .run = bwd_gemm_run};
/* conv2d_backward_batch.c: the default wherever its check passes (not depthwise). */
extern const dcb_bwd_vt dcb_conv2d_bwd_batch;
static const dcb_bwd_vt *const conv2d_bwds[] = {&bwd_naive, &bwd_gemm, &dcb_conv2d_bwd_batch};

const dcb_op_info dcb_conv2d_info = {
    DCB_BWDS(conv2d_bwds),
    .name = "conv2d", .doc = "static 2-D convolution; grouped (ResNeXt) and depthwise (groups = cin) included",
    DCB_PARAMS(conv2d_params), DCB_IMPLS(conv2d_impls), .layout = DCB_INPUT_IMAGE, .channels_param = "cin",
    .validate = conv2d_validate, .weights = conv2d_weights, .out_shape = conv2d_out_shape, .cost = conv2d_cost,
};
