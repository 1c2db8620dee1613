/* condconv (CondConv, Yang et al. 2019) and dyconv (Dynamic Convolution,
 * Chen et al. 2020): docs/OPERATORS.md "condconv" and "dyconv".
 *
 * Both mix a bank of E expert kernels with per-sample routing weights r (N, E)
 *   condconv: r  = sigmoid(route_w . gap(x) + route_b)
 *   dyconv:   pi = softmax((fc2_w . relu(fc1_w . gap(x) + fc1_b) + fc2_b) / tau)
 * and then y[n] = conv2d(x[n], sum_e r[n,e] weight[e]) + sum_e r[n,e] bias[e].
 * They differ only in the router, so they share one file and one set of
 * implementation vtables (op->hp says which operator runs):
 *   combine_then_conv/<engine>  mix each sample's kernel (one GEMM for the
 *                               batch), then one convolution per sample;
 *   conv_then_combine/<engine>  convolve with all experts as E*cout output
 *                               channels, then the routing-weighted sum.
 * <engine> is every conv2d engine (DCB_CONV_ENGINES); each strategy has its
 * own file (expert_conv.h lists them). */
#include "expert_backward.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HP(op) ((xc_hp *)(op)->hp)

/* ------------------------------------------------------ hyperparameters */
#define CONV_PARAMS                                                                      \
    DCB_CHANNEL_PARAMS,                                                                  \
    DCB_CONV_GEOMETRY_PARAMS,                                                            \
    {"groups", DCB_PT_INT, 1, NULL, 0, "groups (cin = groups: depthwise)"},              \
    {"bias", DCB_PT_BOOL, 0, NULL, 0, "a bias per expert and output channel"}

static const dcb_param_spec condconv_params[] = {
    CONV_PARAMS,
    {"experts", DCB_PT_INT, 8, NULL, 0, "experts E"},
};

static const dcb_param_spec dyconv_params[] = {
    CONV_PARAMS,
    {"kernels", DCB_PT_INT, 4, NULL, 0, "kernels K"},
    {"hidden", DCB_PT_INT, 0, NULL, 1, "attention hidden width (default max(1, cin / 4))"},
    {"temperature", DCB_PT_FLOAT, 1, NULL, 0, "softmax temperature tau (> 0; training anneals 30 -> 1)"},
};

static dcb_status xc_validate(dcb_op *op, int dy) {
    xc_hp *h = dcb_new_hp(op, sizeof *h);
    if (!h) return DCB_OUT_OF_MEMORY;
    h->name = op->info->name;
    h->dy = dy;
    dcb_status st = dcb_conv2d_read_params(op, h->name, &h->c);
    if (st != DCB_OK) return st;
    if (!dy) return dcb_get_int(op, "experts", 1, &h->E);
    if ((st = dcb_get_int(op, "kernels", 1, &h->E)) != DCB_OK) return st;
    if (isnan(dcb_pv(op, "hidden"))) dcb_set_pv(op, "hidden", h->c.cin / 4 > 1 ? h->c.cin / 4 : 1);
    if ((st = dcb_get_int(op, "hidden", 1, &h->hidden)) != DCB_OK) return st;
    const double tau = dcb_pv(op, "temperature");
    if (!(tau > 0) || !isfinite(tau) || tau > 3.4e38 || (float)tau <= 0)
        return dcb_fail(DCB_INVALID_PARAM, "dyconv: temperature=%g is invalid (need a number > 0)", tau);
    h->tau = (float)tau;
    return DCB_OK;
}

static dcb_status condconv_validate(dcb_op *op) { return xc_validate(op, 0); }
static dcb_status dyconv_validate(dcb_op *op) { return xc_validate(op, 1); }

/* ------------------------------------------------------------- weights */
static int xc_weights(const dcb_op *op, dcb_weight_spec *s) {
    const xc_hp *h = HP(op);
    const dcb_conv2d_p *p = &h->c;
    const int cig = p->cin / p->groups;
    const double fan = (double)cig * p->kh * p->kw; /* per expert, as nn.Conv2d */
    int n = 0;
    s[n++] = (dcb_weight_spec){"weight", 5, {h->E, p->cout, cig, p->kh, p->kw}, fan, 0};
    if (p->bias) s[n++] = (dcb_weight_spec){"bias", 2, {h->E, p->cout}, fan, 1};
    if (!h->dy) {
        s[n++] = (dcb_weight_spec){"route_w", 2, {h->E, p->cin}, p->cin, 0};
        s[n++] = (dcb_weight_spec){"route_b", 1, {h->E}, p->cin, 1};
    } else {
        s[n++] = (dcb_weight_spec){"fc1_w", 2, {h->hidden, p->cin}, p->cin, 0};
        s[n++] = (dcb_weight_spec){"fc1_b", 1, {h->hidden}, p->cin, 1};
        s[n++] = (dcb_weight_spec){"fc2_w", 2, {h->E, h->hidden}, h->hidden, 0};
        s[n++] = (dcb_weight_spec){"fc2_b", 1, {h->E}, h->hidden, 1};
    }
    return n;
}

static dcb_status xc_out_shape(const dcb_op *op, int ndim, const int64_t *x, int *yn, int64_t *y) {
    return dcb_conv2d_out_shape(HP(op)->name, &HP(op)->c, ndim, x, yn, y);
}

/* ---------------------------------------------------------------- costs
 * Per sample (then times N), following docs/OPERATORS.md COSTS:
 *   conv     kh*kw*(cin/groups)*cout*H'*W' (+ cout*H'*W' with bias);
 *   routing  condconv: route FC E*cin + E;
 *            dyconv:   fc1 hidden*cin + hidden, fc2 K*hidden + K;
 *   kernel generation  E*P (+ E*cout with bias), P = cout*(cin/groups)*kh*kw.
 * macs = conv + routing + kernel generation; dynamic_macs = routing + kernel
 * generation. flops = 2*macs + elementwise: gap cin*H*W adds, sigmoid or
 * softmax counted as 4 per routing value (exp, add, divide, max/compare),
 * dyconv's relu 1 per hidden value. params: the expert bank plus the router;
 * acts: conv outputs plus router (linear) outputs; the gap adds none, as
 * pycls's gap2d_cx (whose figures the COSTS rules reproduce). */
static double conv_macs1(const dcb_conv2d_p *p, double howo, int cout) {
    return (double)p->kh * p->kw * (p->cin / p->groups) * cout * howo + (p->bias ? (double)cout * howo : 0);
}

static double route_macs1(const xc_hp *h) {
    const double cin = h->c.cin, E = h->E, hid = h->hidden;
    return h->dy ? hid * cin + hid + E * hid + E : E * cin + E;
}

static double kgen_macs1(const xc_hp *h) {
    const dcb_conv2d_p *p = &h->c;
    const double P = (double)p->cout * (p->cin / p->groups) * p->kh * p->kw;
    return h->E * P + (p->bias ? (double)h->E * p->cout : 0);
}

static void out_hw(const dcb_conv2d_p *p, const int64_t *x, int *ho, int *wo) {
    *ho = dcb_conv_out((int)x[2], p->kh, p->stride, p->pad, p->dil);
    *wo = dcb_conv_out((int)x[3], p->kw, p->stride, p->pad, p->dil);
}

static void xc_cost(const dcb_op *op, const int64_t *x, dcb_cost *c) {
    const xc_hp *h = HP(op);
    const dcb_conv2d_p *p = &h->c;
    int ho, wo;
    out_hw(p, x, &ho, &wo);
    const double N = (double)x[0], howo = (double)ho * wo;
    const double route = route_macs1(h), kgen = kgen_macs1(h);
    c->macs = N * (conv_macs1(p, howo, p->cout) + route + kgen);
    c->dynamic_macs = N * (route + kgen);
    c->flops = 2 * c->macs + N * ((double)p->cin * x[2] * x[3] + 4.0 * h->E + (h->dy ? h->hidden : 0));
    c->params = kgen + route; /* the bank has E*P (+ E*cout) numbers, the router as many as its MACs */
    c->acts = N * ((double)p->cout * howo + h->E + (h->dy ? h->hidden : 0));
    c->bytes = 4.0 * (N * p->cin * (double)x[2] * x[3] + c->params + N * p->cout * howo);
}

/* What an implementation performs: the engine's multiplications (Winograd:
 * a^2 per tile and channel pair, as conv2d reports it), once per sample with
 * the mixed kernel, or E times plus the E*cout*H'*W' weighted sum for
 * conv_then_combine (which mixes no kernels). */
static double xc_executed(const dcb_op *op, const int64_t *x) {
    const xc_hp *h = HP(op);
    const dcb_conv2d_p *p = &h->c;
    int ho, wo;
    out_hw(p, x, &ho, &wo);
    const double conv1 = dcb_engine_executed_macs(op->impl->engine, p, 1, (int)x[2], (int)x[3]);
    if (op->impl->strategy_id == XC_combine_then_conv) return (double)x[0] * (route_macs1(h) + kgen_macs1(h) + conv1);
    return (double)x[0] * (route_macs1(h) + h->E * conv1 + (double)h->E * p->cout * ho * wo);
}

/* -------------------------------------------------------------- routing */
size_t dcb_xc_route_scratch(const xc_hp *h, int N) {
    return dcb_xc_rnd((size_t)N * h->c.cin) + (h->dy ? dcb_xc_rnd((size_t)N * h->hidden) : 0);
}

void dcb_xc_route(const dcb_op *op, const float *x, int N, size_t HW, void *scratch, float *r) {
    const xc_hp *h = HP(op);
    const int cin = h->c.cin;
    float *g = scratch;
    dcb_gap(x, N, cin, HW, g, op->threads);
    if (!h->dy) {
        dcb_linear(g, N, cin, dcb_w(op, "route_w")->data, dcb_w(op, "route_b")->data, h->E, r, op->threads);
        dcb_sigmoid(r, (size_t)N * h->E);
        return;
    }
    float *t = (float *)((char *)scratch + dcb_xc_rnd((size_t)N * cin));
    dcb_linear(g, N, cin, dcb_w(op, "fc1_w")->data, dcb_w(op, "fc1_b")->data, h->hidden, t, op->threads);
    dcb_relu(t, (size_t)N * h->hidden);
    dcb_linear(t, N, h->hidden, dcb_w(op, "fc2_w")->data, dcb_w(op, "fc2_b")->data, h->E, r, op->threads);
    dcb_softmax_rows(r, N, h->E, h->tau);
}

void dcb_xc_mix_kernels(const dcb_op *op, const float *r, int N, float *Wm, float *bm) {
    const xc_hp *h = HP(op);
    const int P = (int)dcb_xc_kernel_floats(&h->c);
    dcb_blas_threads_for(op->threads);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, P, h->E, 1.0f, r, h->E, dcb_w(op, "weight")->data, P,
                0.0f, Wm, P);
    if (bm)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, h->c.cout, h->E, 1.0f, r, h->E,
                    dcb_w(op, "bias")->data, h->c.cout, 0.0f, bm, h->c.cout);
}

static dcb_status xc_routing(dcb_op *op, const dcb_tensor *x, dcb_tensor **out) {
    const xc_hp *h = HP(op);
    const int N = (int)x->shape[0];
    dcb_tensor *r = dcb_tensor_new(2, (int64_t[]){N, h->E});
    void *scratch = dcb_aligned_alloc(dcb_xc_route_scratch(h, N));
    if (!r || !scratch) {
        dcb_tensor_free(r);
        dcb_aligned_free(scratch);
        return dcb_fail(DCB_OUT_OF_MEMORY, "%s: out of memory for the routing weights", h->name);
    }
    dcb_xc_route(op, x->data, N, (size_t)x->shape[2] * x->shape[3], scratch, r->data);
    dcb_aligned_free(scratch);
    *out = r;
    return DCB_OK;
}

static dcb_status xc_kernels(dcb_op *op, const dcb_tensor *x, dcb_tensor **out) {
    const xc_hp *h = HP(op);
    const dcb_conv2d_p *p = &h->c;
    const int N = (int)x->shape[0];
    dcb_tensor *k = dcb_tensor_new(5, (int64_t[]){N, p->cout, p->cin / p->groups, p->kh, p->kw});
    void *scratch = dcb_aligned_alloc(dcb_xc_route_scratch(h, N) + dcb_xc_rnd((size_t)N * h->E));
    if (!k || !scratch) {
        dcb_tensor_free(k);
        dcb_aligned_free(scratch);
        return dcb_fail(DCB_OUT_OF_MEMORY, "%s: out of memory for the kernels", h->name);
    }
    float *r = (float *)((char *)scratch + dcb_xc_route_scratch(h, N));
    dcb_xc_route(op, x->data, N, (size_t)x->shape[2] * x->shape[3], scratch, r);
    dcb_xc_mix_kernels(op, r, N, k->data, NULL);
    dcb_aligned_free(scratch);
    *out = k;
    return DCB_OK;
}

/* -------------------------------------------------------- implementations */
static dcb_status xc_check(dcb_op *op) { return dcb_engine_check_op(op, &HP(op)->c); }

/* One implementation per strategy and conv2d engine, strategies outermost. */
#define XC_IMPL(e, s)                                                                                        \
    static const dcb_impl_vt s##_##e = {                                                                     \
        .name = #s "/" #e, .doc = "strategy " #s " (expert_" #s ".c) on the " #e " engine",                  \
        .engine = &dcb_engine_##e, .strategy = #s, .strategy_id = XC_##s, .tol = 2e-6, .check = xc_check,    \
        .workspace = dcb_xc_##s##_workspace, .prepare = dcb_xc_##s##_prepare, .run = dcb_xc_##s##_run,       \
        .release = dcb_xc_##s##_release, .executed_macs = xc_executed};
#define XC_IMPLS_OF(s) DCB_CONV_ENGINES_WITH(XC_IMPL, s)
DCB_EXPERT_STRATEGIES(XC_IMPLS_OF)
#define XC_REF(e, s) &s##_##e,
#define XC_REFS_OF(s) DCB_CONV_ENGINES_WITH(XC_REF, s)
static const dcb_impl_vt *const xc_impls[] = {DCB_EXPERT_STRATEGIES(XC_REFS_OF)};

/* Backward implementations (expert_backward.h): naive, the oracle, first. */
static const dcb_bwd_vt *const xc_bwds[] = {&dcb_xc_bwd_naive, &dcb_xc_bwd_gemm, &dcb_xc_bwd_batch};

/* The two operators: the same hooks, their own router (op->hp->dy). */
#define XC_HOOKS                                                                                             \
    DCB_IMPLS(xc_impls), DCB_BWDS(xc_bwds), .layout = DCB_INPUT_IMAGE, .channels_param = "cin",             \
        .weights = xc_weights, .out_shape = xc_out_shape, .cost = xc_cost, .kernels = xc_kernels,            \
        .routing = xc_routing

const dcb_op_info dcb_condconv_info = {
    .name = "condconv", .doc = "CondConv: sigmoid-routed mixture of E expert kernels per sample",
    DCB_PARAMS(condconv_params), .validate = condconv_validate, XC_HOOKS,
};

const dcb_op_info dcb_dyconv_info = {
    .name = "dyconv", .doc = "Dynamic Convolution: softmax(/tau)-attention over K kernels per sample",
    DCB_PARAMS(dyconv_params), .validate = dyconv_validate, XC_HOOKS,
};
