/* weightnet: WeightNet (Ma et al. 2020), dense and depthwise, as docs/OPERATORS.md
 * states it. Routing a = sigmoid(fc2(fc1(gap(x)))) (no nonlinearity between
 * the FCs, as in the reference code); the per-sample kernel comes from a
 * grouped FC over a; then one conv per sample on any conv2d engine
 * ("combine_then_conv/<engine>"). */
#include "dcb_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const dcb_param_spec wn_params[] = {
    {"cin", DCB_PT_INT, 0, NULL, 1, "input channels (required)"},
    {"cout", DCB_PT_INT, 0, NULL, 1, "output channels (required; = cin when depthwise)"},
    DCB_CONV_GEOMETRY_PARAMS,
    {"M", DCB_PT_INT, 2, NULL, 0, "routing values per output channel (fc2 gives M*cout)"},
    {"G", DCB_PT_INT, 2, NULL, 0, "groups per output channel of the kernel-generating FC; lambda = M/G"},
    {"hidden", DCB_PT_INT, 0, NULL, 1, "width of fc1 (default max(16, cin/16))"},
    {"depthwise", DCB_PT_BOOL, 0, NULL, 0, "depthwise kernel (cin, 1, kh, kw), conv groups = cin"},
};

typedef struct wn_hp {
    dcb_conv2d_p c;   /* groups = 1, or cin when depthwise */
    int M, G, lam, hidden, dw;
    int A;            /* routing values per sample: M*cout, or lam*cin depthwise */
    int ngroups;      /* groups of the kernel-generating FC: G*cout, or cin */
    int Pg;           /* kernel elements per group */
    int64_t P;        /* kernel elements per sample */
} wn_hp;

#define HP(op) ((const wn_hp *)(op)->hp)

static dcb_status wn_validate(dcb_op *op) {
    wn_hp *h = dcb_new_hp(op, sizeof *h);
    if (!h) return DCB_OUT_OF_MEMORY;
    dcb_status st;
    h->dw = dcb_pv(op, "depthwise") != 0;
    if (h->dw) {
        const double cin = dcb_pv(op, "cin"), cout = dcb_pv(op, "cout");
        if (!isnan(cin) && isnan(cout))
            dcb_set_pv(op, "cout", cin);
        else if (!isnan(cin) && cout != cin)
            return dcb_fail(DCB_INVALID_PARAM,
                            "weightnet: cout=%g must equal cin=%g when depthwise=1 (the kernel is (cin, 1, kh, kw))",
                            cout, cin);
    }
    if ((st = dcb_conv2d_read_params(op, "weightnet", &h->c)) != DCB_OK) return st;
    if ((st = dcb_get_int(op, "M", 1, &h->M)) != DCB_OK) return st;
    if ((st = dcb_get_int(op, "G", 1, &h->G)) != DCB_OK) return st;
    if (h->M % h->G)
        return dcb_fail(DCB_INVALID_PARAM, "weightnet: M=%d is not divisible by G=%d", h->M, h->G);
    h->lam = h->M / h->G;
    if (isnan(dcb_pv(op, "hidden"))) dcb_set_pv(op, "hidden", h->c.cin / 16 > 16 ? h->c.cin / 16 : 16);
    if ((st = dcb_get_int(op, "hidden", 1, &h->hidden)) != DCB_OK) return st;
    const double khw = (double)h->c.kh * h->c.kw;
    if (h->dw) {
        h->c.groups = h->c.cin;
        h->ngroups = h->c.cin;
        h->P = (int64_t)h->c.cin * h->c.kh * h->c.kw;
        if ((double)h->lam * h->c.cin > INT32_MAX)
            return dcb_fail(DCB_INVALID_PARAM, "weightnet: (M/G)*cin=%g is too large", (double)h->lam * h->c.cin);
        h->A = h->lam * h->c.cin;
    } else {
        const double P = (double)h->c.cout * h->c.cin * khw, gc = (double)h->G * h->c.cout;
        if ((double)h->M * h->c.cout > INT32_MAX || gc > INT32_MAX || P > 1e15)
            return dcb_fail(DCB_INVALID_PARAM, "weightnet: M*cout=%g is too large", (double)h->M * h->c.cout);
        h->P = (int64_t)P;
        h->ngroups = (int)gc;
        if (h->P % h->ngroups)
            return dcb_fail(DCB_INVALID_PARAM,
                            "weightnet: P=%lld (cout*cin*kh*kw) is not divisible by G*cout=%d (G=%d must divide cin*kh*kw=%.0f)",
                            (long long)h->P, h->ngroups, h->G, h->c.cin * khw);
        h->A = h->M * h->c.cout;
    }
    if (h->P / h->ngroups > INT32_MAX)
        return dcb_fail(DCB_INVALID_PARAM, "weightnet: the kernel (%lld elements) is too large", (long long)h->P);
    h->Pg = (int)(h->P / h->ngroups);
    return DCB_OK;
}

static int wn_weights(const dcb_op *op, dcb_weight_spec *s) {
    const wn_hp *h = HP(op);
    int n = 0;
    s[n++] = (dcb_weight_spec){"fc1_w", 2, {h->hidden, h->c.cin}, 0, 0};
    s[n++] = (dcb_weight_spec){"fc1_b", 1, {h->hidden}, h->c.cin, 1};
    s[n++] = (dcb_weight_spec){"fc2_w", 2, {h->A, h->hidden}, 0, 0};
    s[n++] = (dcb_weight_spec){"fc2_b", 1, {h->A}, h->hidden, 1};
    /* the reference's grouped 1x1 conv: fan_in = M/G */
    s[n++] = (dcb_weight_spec){"wgen_w", 2, {h->P, h->lam}, 0, 0};
    return n;
}

static dcb_status wn_out_shape(const dcb_op *op, int ndim, const int64_t *x, int *yn, int64_t *y) {
    return dcb_conv2d_out_shape("weightnet", &HP(op)->c, ndim, x, yn, y);
}

static double conv_macs(const wn_hp *h, const int64_t *x) {
    const double ho = dcb_conv_out((int)x[2], h->c.kh, h->c.stride, h->c.pad, h->c.dil);
    const double wo = dcb_conv_out((int)x[3], h->c.kw, h->c.stride, h->c.pad, h->c.dil);
    return (double)x[0] * h->c.kh * h->c.kw * (h->c.cin / h->c.groups) * h->c.cout * ho * wo;
}

/* macs = conv + fc1 + fc2 + kernel generation (lambda*P), per sample times N;
 * dynamic_macs = fc1 + fc2 + kernel generation.
 * flops = 2*macs + the gap's adds (cin*H*W) + one per sigmoid (A).
 * acts (pycls rule) = conv outputs + FC outputs (fc1, fc2, and the
 * kernel-generating grouped FC: P); the gap adds none, as pycls' gap2d_cx. */
static void wn_cost(const dcb_op *op, const int64_t *x, dcb_cost *c) {
    const wn_hp *h = HP(op);
    const double N = (double)x[0], cin = h->c.cin, A = h->A, hid = h->hidden, P = (double)h->P;
    const double ho = dcb_conv_out((int)x[2], h->c.kh, h->c.stride, h->c.pad, h->c.dil);
    const double wo = dcb_conv_out((int)x[3], h->c.kw, h->c.stride, h->c.pad, h->c.dil);
    const double dyn = hid * cin + hid + A * hid + A + h->lam * P;
    c->dynamic_macs = N * dyn;
    c->macs = conv_macs(h, x) + c->dynamic_macs;
    c->flops = 2 * c->macs + N * (cin * (double)x[2] * x[3] + A);
    c->params = hid * cin + hid + A * hid + A + P * h->lam;
    c->acts = N * (h->c.cout * ho * wo + hid + A + P);
    c->bytes = 4.0 * (N * cin * (double)x[2] * x[3] + c->params + N * h->c.cout * ho * wo);
}

/* -------------------------------------------------------------- the parts */
/* prepare: wgen_w (P, lam) transposed to (lam, P), so that each group's
 * kernels are lam contiguous rows and generation is rank-lam updates. */
static dcb_status wn_prepare(dcb_op *op) {
    const wn_hp *h = HP(op);
    const float *w = dcb_w(op, "wgen_w")->data;
    float *t = dcb_aligned_alloc(sizeof(float) * (size_t)h->P * h->lam);
    if (!t) return dcb_fail(DCB_OUT_OF_MEMORY, "weightnet: out of memory for the transposed wgen_w");
    for (int64_t f = 0; f < h->P; f++)
        for (int m = 0; m < h->lam; m++) t[(size_t)m * h->P + f] = w[(size_t)f * h->lam + m];
    op->state = t;
    return DCB_OK;
}

static void wn_release(dcb_op *op) { dcb_aligned_free(op->state); }

/* a (N, A) = sigmoid(fc2(fc1(gap(x)))); g (N, cin) and hid (N, hidden) scratch. */
static void wn_route(const dcb_op *op, const float *x, int N, size_t HW, float *g, float *hid, float *a) {
    const wn_hp *h = HP(op);
    dcb_gap(x, N, h->c.cin, HW, g, op->threads);
    dcb_linear(g, N, h->c.cin, dcb_w(op, "fc1_w")->data, dcb_w(op, "fc1_b")->data, h->hidden, hid, op->threads);
    dcb_linear(hid, N, h->hidden, dcb_w(op, "fc2_w")->data, dcb_w(op, "fc2_b")->data, h->A, a, op->threads);
    dcb_sigmoid(a, (size_t)N * h->A);
}

/* W (N, P): for each group g, the small GEMM over the whole batch
 * W[:, g*Pg : (g+1)*Pg] (N x Pg) = a[:, g*lam : (g+1)*lam] (N x lam) . wt_g (lam x Pg),
 * written as lam axpys of contiguous Pg-rows per sample. */
static void wn_generate(const dcb_op *op, const float *wt, const float *a, int N, float *W) {
    const wn_hp *h = HP(op);
    const int lam = h->lam, Pg = h->Pg, A = h->A;
    const size_t P = (size_t)h->P;
#pragma omp parallel for schedule(static) num_threads(op->threads) \
    if (op->threads > 1 && (double)N * P * lam > 32768)
    for (long g = 0; g < h->ngroups; g++) {
        const size_t f0 = (size_t)g * Pg;
        for (int n = 0; n < N; n++) {
            const float *an = a + (size_t)n * A + (size_t)g * lam;
            float *dst = W + (size_t)n * P + f0;
            const float *w0 = wt + f0, a0 = an[0];
            for (int r = 0; r < Pg; r++) dst[r] = a0 * w0[r];
            for (int m = 1; m < lam; m++) {
                const float am = an[m], *wm = wt + (size_t)m * P + f0;
                for (int r = 0; r < Pg; r++) dst[r] += am * wm[r];
            }
        }
    }
}

/* ------------------------------------------------- combine_then_conv/<e> */
typedef struct wn_ws { size_t g, hid, a, W, eng, total; } wn_ws;

static wn_ws wn_layout(const dcb_op *op, const int64_t *x) {
    const wn_hp *h = HP(op);
    const size_t N = (size_t)x[0];
    wn_ws l;
    l.g = 0;
    l.hid = l.g + dcb_align_up(sizeof(float) * N * h->c.cin);
    l.a = l.hid + dcb_align_up(sizeof(float) * N * h->hidden);
    l.W = l.a + dcb_align_up(sizeof(float) * N * h->A);
    l.eng = l.W + dcb_align_up(sizeof(float) * N * (size_t)h->P);
    l.total = l.eng + dcb_align_up(dcb_engine_dyn_workspace(DCB_ENGINE(op), &h->c, 1, (int)x[2], (int)x[3], op->threads));
    return l;
}

static dcb_status ctc_check(dcb_op *op) { return dcb_engine_check_op(op, &HP(op)->c); }

static size_t ctc_ws(const dcb_op *op, const int64_t *x) { return wn_layout(op, x).total; }

static dcb_status ctc_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    const wn_hp *h = HP(op);
    const int N = (int)x->shape[0], H = (int)x->shape[2], W = (int)x->shape[3];
    const wn_ws l = wn_layout(op, x->shape);
    char *b = ws;
    float *g = (float *)(b + l.g), *hid = (float *)(b + l.hid), *a = (float *)(b + l.a);
    float *Wk = (float *)(b + l.W);
    double t0 = dcb_now();
    wn_route(op, x->data, N, (size_t)H * W, g, hid, a);
    DCB_PHASE_ADD(prof, DCB_PHASE_ROUTING, t0);
    t0 = dcb_now();
    wn_generate(op, op->state, a, N, Wk);
    DCB_PHASE_ADD(prof, DCB_PHASE_KERNEL_GEN, t0);
    const size_t xs = (size_t)h->c.cin * H * W, ys = (size_t)y->size / N;
    for (int n = 0; n < N; n++)
        DCB_ENGINE(op)->dyn_run(&h->c, 1, H, W, x->data + n * xs, Wk + (size_t)n * h->P, NULL,
                        y->data + n * ys, b + l.eng, op->threads, prof);
    return DCB_OK;
}

/* The generation as counted, plus what the engine performs (Winograd: a^2
 * per m x m tile, as conv2d reports it). */
static double ctc_executed(const dcb_op *op, const int64_t *x) {
    return dcb_op_macs(op, x) + dcb_engine_extra_macs(DCB_ENGINE(op), &HP(op)->c, (int)x[0], (int)x[2], (int)x[3]);
}

/* ------------------------------------------------------------------ hooks */
static dcb_status wn_parts(dcb_op *op, const dcb_tensor *x, float **a_out, float **W_out) {
    const wn_hp *h = HP(op);
    if (!op->prepared) {
        dcb_status st = dcb_op_prepare(op);
        if (st != DCB_OK) return st;
    }
    const int N = (int)x->shape[0];
    const size_t HW = (size_t)x->shape[2] * x->shape[3];
    float *g = malloc(sizeof(float) * (size_t)N * h->c.cin), *hid = malloc(sizeof(float) * (size_t)N * h->hidden);
    float *a = malloc(sizeof(float) * (size_t)N * h->A);
    float *W = W_out ? malloc(sizeof(float) * (size_t)N * h->P) : NULL;
    dcb_status st = DCB_OK;
    if (!g || !hid || !a || (W_out && !W)) {
        st = dcb_fail(DCB_OUT_OF_MEMORY, "weightnet: out of memory");
    } else {
        wn_route(op, x->data, N, HW, g, hid, a);
        if (W) wn_generate(op, op->state, a, N, W);
    }
    free(g);
    free(hid);
    if (st != DCB_OK) {
        free(a);
        free(W);
        return st;
    }
    *a_out = a;
    if (W_out) *W_out = W;
    return DCB_OK;
}

static dcb_status wn_kernels(dcb_op *op, const dcb_tensor *x, dcb_tensor **out) {
    const wn_hp *h = HP(op);
    float *a = NULL, *W = NULL;
    dcb_status st = wn_parts(op, x, &a, &W);
    if (st != DCB_OK) return st;
    const int64_t s[5] = {x->shape[0], h->c.cout, h->dw ? 1 : h->c.cin, h->c.kh, h->c.kw};
    dcb_tensor *t = dcb_tensor_new(5, s);
    if (t) memcpy(t->data, W, sizeof(float) * (size_t)t->size);
    free(a);
    free(W);
    if (!t) return dcb_fail(DCB_OUT_OF_MEMORY, "weightnet: out of memory for the kernels");
    *out = t;
    return DCB_OK;
}

static dcb_status wn_routing(dcb_op *op, const dcb_tensor *x, dcb_tensor **out) {
    float *a = NULL;
    dcb_status st = wn_parts(op, x, &a, NULL);
    if (st != DCB_OK) return st;
    const int64_t s[2] = {x->shape[0], HP(op)->A};
    dcb_tensor *t = dcb_tensor_new(2, s);
    if (t) memcpy(t->data, a, sizeof(float) * (size_t)t->size);
    free(a);
    if (!t) return dcb_fail(DCB_OUT_OF_MEMORY, "weightnet: out of memory for the routing weights");
    *out = t;
    return DCB_OK;
}

/* ------------------------------------------------- combine_then_conv/<e> */
#define WN_IMPL(e)                                                                                           \
    static const dcb_impl_vt impl_##e = {                                                                    \
        .name = "combine_then_conv/" #e, .doc = "per-sample kernel, then the " #e " engine per sample",      \
        .engine = &dcb_engine_##e, .strategy = "combine_then_conv", .tol = 2e-6, .check = ctc_check,         \
        .workspace = ctc_ws, .prepare = wn_prepare, .run = ctc_run, .release = wn_release,                   \
        .executed_macs = ctc_executed};
DCB_CONV_ENGINES(WN_IMPL)
static const dcb_impl_vt *const wn_impls[] = {DCB_CONV_ENGINES(DCB_ENGINE_IMPL_REF)};

const dcb_op_info dcb_weightnet_info = {
    .name = "weightnet", .layout = DCB_INPUT_IMAGE, .channels_param = "cin",
    .doc = "WeightNet (Ma et al. 2020): kernels from a grouped FC over sigmoid routing; dense or depthwise",
    DCB_PARAMS(wn_params), DCB_IMPLS(wn_impls), .validate = wn_validate, .weights = wn_weights,
    .out_shape = wn_out_shape, .cost = wn_cost, .kernels = wn_kernels, .routing = wn_routing,
};
