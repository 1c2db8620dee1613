/* se: Squeeze-and-Excitation (docs/OPERATORS.md "se").
 *   s = sigmoid(fc2_w . relu(fc1_w . gap(x) + fc1_b) + fc2_b);  y = s[n,c] * x[n,c].
 * One implementation, "naive": it is the M = G = 1 corner of WeightNet, and
 * its cost is the two FCs; there is no convolution to choose an engine for. */
#include "dcb_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct se_hp {
    int C, r, hidden;
} se_hp;

#define HP(op) ((const se_hp *)(op)->hp)

static const dcb_param_spec se_params[] = {
    {"channels", DCB_PT_INT, 0, NULL, 1, "channels C (required)"},
    {"reduction", DCB_PT_INT, 16, NULL, 0, "reduction ratio r"},
    {"hidden", DCB_PT_INT, 0, NULL, 1, "hidden width (default max(1, C / r))"},
};

static dcb_status se_validate(dcb_op *op) {
    se_hp *h = dcb_new_hp(op, sizeof *h);
    if (!h) return DCB_OUT_OF_MEMORY;
    dcb_status st;
    if ((st = dcb_get_required_int(op, "channels", 1, &h->C)) != DCB_OK) return st;
    if ((st = dcb_get_int(op, "reduction", 1, &h->r)) != DCB_OK) return st;
    if (isnan(dcb_pv(op, "hidden"))) dcb_set_pv(op, "hidden", h->C / h->r > 1 ? h->C / h->r : 1);
    return dcb_get_int(op, "hidden", 1, &h->hidden);
}

static int se_weights(const dcb_op *op, dcb_weight_spec *s) {
    const se_hp *h = HP(op);
    s[0] = (dcb_weight_spec){"fc1_w", 2, {h->hidden, h->C}, h->C, 0};
    s[1] = (dcb_weight_spec){"fc1_b", 1, {h->hidden}, h->C, 1};
    s[2] = (dcb_weight_spec){"fc2_w", 2, {h->C, h->hidden}, h->hidden, 0};
    s[3] = (dcb_weight_spec){"fc2_b", 1, {h->C}, h->hidden, 1};
    return 4;
}

static dcb_status se_out_shape(const dcb_op *op, int ndim, const int64_t *x, int *yn, int64_t *y) {
    char s[128];
    if (ndim != 4)
        return dcb_fail(DCB_INVALID_SHAPE, "se: input must be (N, C, H, W), got %s", dcb_shape_str(ndim, x, s, sizeof s));
    if (x[0] < 1 || x[2] < 1 || x[3] < 1 || x[0] > INT32_MAX || x[2] > INT32_MAX || x[3] > INT32_MAX)
        return dcb_fail(DCB_INVALID_SHAPE, "se: input shape %s has a bad size", dcb_shape_str(ndim, x, s, sizeof s));
    if (x[1] != HP(op)->C)
        return dcb_fail(DCB_INVALID_SHAPE, "se: input has %lld channels, channels=%d", (long long)x[1], HP(op)->C);
    *yn = 4;
    memcpy(y, x, 4 * sizeof *x);
    return DCB_OK;
}

/* macs: fc1 hidden*C + hidden, fc2 C*hidden + C (the linear rule, biases
 * included), all of it routing, so dynamic_macs = macs. flops = 2*macs plus
 * the elementwise work per sample: gap C*H*W adds, relu hidden, sigmoid 4 per
 * element (exp, add, divide, compare) = 4*C, scaling C*H*W multiplies.
 * acts: the FC outputs hidden + C (pycls); the gap adds none (pycls's
 * gap2d_cx) and the scaling is elementwise. */
static void se_cost(const dcb_op *op, const int64_t *x, dcb_cost *c) {
    const se_hp *h = HP(op);
    const double N = (double)x[0], HW = (double)x[2] * x[3], C = h->C, hid = h->hidden;
    const double per = hid * C + hid + C * hid + C;
    c->macs = N * per;
    c->dynamic_macs = c->macs;
    c->flops = 2 * c->macs + N * (C * HW + hid + 4 * C + C * HW);
    c->params = per;
    c->acts = N * (hid + C);
    c->bytes = 4.0 * (2 * N * C * HW + c->params);
}

/* Scratch of the router: gap (N, C), hidden (N, hidden), s (N, C). */
static size_t rnd(size_t floats) { return dcb_align_up(floats * sizeof(float)); }

static size_t se_ws(const dcb_op *op, const int64_t *x) {
    const se_hp *h = HP(op);
    return 2 * rnd((size_t)x[0] * h->C) + rnd((size_t)x[0] * h->hidden);
}

/* s (N, C) into s; g and t are scratch of ws's sizes. */
static void se_route(const dcb_op *op, const float *x, int N, size_t HW, float *g, float *t, float *s) {
    const se_hp *h = HP(op);
    dcb_gap(x, N, h->C, HW, g, op->threads);
    dcb_linear(g, N, h->C, dcb_w(op, "fc1_w")->data, dcb_w(op, "fc1_b")->data, h->hidden, t, op->threads);
    dcb_relu(t, (size_t)N * h->hidden);
    dcb_linear(t, N, h->hidden, dcb_w(op, "fc2_w")->data, dcb_w(op, "fc2_b")->data, h->C, s, op->threads);
    dcb_sigmoid(s, (size_t)N * h->C);
}

static dcb_status se_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    const se_hp *h = HP(op);
    const int N = (int)x->shape[0];
    const size_t HW = (size_t)x->shape[2] * x->shape[3];
    float *g = ws, *s = (float *)((char *)ws + rnd((size_t)N * h->C));
    float *t = (float *)((char *)s + rnd((size_t)N * h->C));
    double t0 = dcb_now();
    se_route(op, x->data, N, HW, g, t, s);
    DCB_PHASE_ADD(prof, DCB_PHASE_ROUTING, t0);
    t0 = dcb_now();
    const long NC = (long)N * h->C;
#pragma omp parallel for schedule(static) num_threads(op->threads) if (op->threads > 1)
    for (long nc = 0; nc < NC; nc++) {
        const float sv = s[nc];
        const float *xp = x->data + (size_t)nc * HW;
        float *yp = y->data + (size_t)nc * HW;
        for (size_t i = 0; i < HW; i++) yp[i] = sv * xp[i];
    }
    DCB_PHASE_ADD(prof, DCB_PHASE_COMBINE, t0);
    return DCB_OK;
}

static dcb_status se_routing(dcb_op *op, const dcb_tensor *x, dcb_tensor **out) {
    const se_hp *h = HP(op);
    const int N = (int)x->shape[0];
    dcb_tensor *s = dcb_tensor_new(2, (int64_t[]){N, h->C});
    float *scratch = dcb_aligned_alloc(se_ws(op, x->shape));
    if (!s || !scratch) {
        dcb_tensor_free(s);
        dcb_aligned_free(scratch);
        return dcb_fail(DCB_OUT_OF_MEMORY, "se: out of memory for the routing weights");
    }
    se_route(op, x->data, N, (size_t)x->shape[2] * x->shape[3], scratch,
             (float *)((char *)scratch + rnd((size_t)N * h->C)), s->data);
    dcb_aligned_free(scratch);
    *out = s;
    return DCB_OK;
}

/* SE scales channels; it generates no convolution kernel. */
static dcb_status se_kernels(dcb_op *op, const dcb_tensor *x, dcb_tensor **out) {
    return dcb_fail(DCB_UNSUPPORTED_PARAM, "%s: generates no kernels (its routing is the channel scale s, see dcb_op_routing)",
                    op->info->name);
}

static const dcb_impl_vt se_naive = {.name = "naive", .doc = "gap, two FCs via sgemm, sigmoid, channel scaling",
                                     .tol = 2e-06, .workspace = se_ws, .run = se_run};
static const dcb_impl_vt *const se_impls[] = {&se_naive};

const dcb_op_info dcb_se_info = {
    .name = "se", .doc = "Squeeze-and-Excitation: channel scaling by sigmoid(fc2(relu(fc1(gap(x)))))",
    DCB_PARAMS(se_params), DCB_IMPLS(se_impls), .layout = DCB_INPUT_IMAGE, .channels_param = "channels",
    .validate = se_validate, .weights = se_weights, .out_shape = se_out_shape, .cost = se_cost,
    .kernels = se_kernels, .routing = se_routing,
};
