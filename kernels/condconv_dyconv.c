/* condconv (CondConv, Yang et al. 2019) and dyconv (Dynamic Convolution,
 * Chen et al. 2020): OPERATORS.md "condconv" and "dyconv".
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
 * <engine> is every conv2d engine (dcb_engine_names). */
#include "dcb_internal.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct xc_hp {
    dcb_conv2d_p c;
    const char *name;   /* "condconv" | "dyconv" */
    int dy;             /* 1: dyconv router */
    int E;              /* experts (condconv) / kernels K (dyconv) */
    int hidden;         /* dyconv's fc1 width */
    float tau;          /* dyconv's softmax temperature */
    int engine;         /* dcb_engine of the implementation (set by check) */
    int stacked;        /* 1: conv_then_combine */
} xc_hp;

#define HP(op) ((xc_hp *)(op)->hp)

/* ------------------------------------------------------ hyperparameters */
#define CONV_PARAMS                                                                      \
    {"cin", DCB_PT_INT, 0, NULL, 1, "input channels (required)"},                        \
    {"cout", DCB_PT_INT, 0, NULL, 1, "output channels (required)"},                      \
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
    xc_hp *h = calloc(1, sizeof *h);
    if (!h) return dcb_fail(DCB_OUT_OF_MEMORY, "%s: out of memory", op->info->name);
    op->hp = h;
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
    int ho, wo;
    dcb_status st = dcb_conv2d_check_input(HP(op)->name, &HP(op)->c, ndim, x, &ho, &wo);
    if (st != DCB_OK) return st;
    *yn = 4;
    y[0] = x[0];
    y[1] = HP(op)->c.cout;
    y[2] = ho;
    y[3] = wo;
    return DCB_OK;
}

/* ---------------------------------------------------------------- costs
 * Per sample (then times N), following OPERATORS.md COSTS:
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
static double engine_macs1(const xc_hp *h, const int64_t *x, int cout) {
    const dcb_conv2d_p *p = &h->c;
    int ho, wo;
    out_hw(p, x, &ho, &wo);
    if (h->engine == DCB_ENGINE_WINOGRAD || h->engine == DCB_ENGINE_WINOGRAD_F2) {
        const int m = h->engine == DCB_ENGINE_WINOGRAD_F2 ? 2 : 4, a = m + 2;
        const double tiles = ceil((double)ho / m) * ceil((double)wo / m);
        return tiles * a * a * (p->cin / p->groups) * (double)cout;
    }
    return conv_macs1(p, (double)ho * wo, cout);
}

static double xc_executed(const dcb_op *op, const int64_t *x) {
    const xc_hp *h = HP(op);
    const dcb_conv2d_p *p = &h->c;
    int ho, wo;
    out_hw(p, x, &ho, &wo);
    if (!h->stacked) return (double)x[0] * (route_macs1(h) + kgen_macs1(h) + engine_macs1(h, x, p->cout));
    return (double)x[0] * (route_macs1(h) + h->E * engine_macs1(h, x, p->cout) + (double)h->E * p->cout * ho * wo);
}

/* -------------------------------------------------------------- routing */
static size_t rnd(size_t floats) { return (floats * sizeof(float) + DCB_ALIGN - 1) / DCB_ALIGN * DCB_ALIGN; }

/* Scratch of the router: gap (N, cin), dyconv's hidden (N, hidden). */
static size_t route_scratch(const xc_hp *h, int N) {
    return rnd((size_t)N * h->c.cin) + (h->dy ? rnd((size_t)N * h->hidden) : 0);
}

/* r (N, E) for x; scratch of route_scratch bytes. */
static void xc_route(const dcb_op *op, const float *x, int N, size_t HW, void *scratch, float *r) {
    const xc_hp *h = HP(op);
    const int cin = h->c.cin;
    float *g = scratch;
    dcb_gap(x, N, cin, HW, g, op->threads);
    if (!h->dy) {
        dcb_linear(g, N, cin, dcb_w(op, "route_w")->data, dcb_w(op, "route_b")->data, h->E, r, op->threads);
        dcb_sigmoid(r, (size_t)N * h->E);
        return;
    }
    float *t = (float *)((char *)scratch + rnd((size_t)N * cin));
    dcb_linear(g, N, cin, dcb_w(op, "fc1_w")->data, dcb_w(op, "fc1_b")->data, h->hidden, t, op->threads);
    dcb_relu(t, (size_t)N * h->hidden);
    dcb_linear(t, N, h->hidden, dcb_w(op, "fc2_w")->data, dcb_w(op, "fc2_b")->data, h->E, r, op->threads);
    dcb_softmax_rows(r, N, h->E, h->tau);
}

static size_t kernel_floats(const dcb_conv2d_p *p) {
    return (size_t)p->cout * (p->cin / p->groups) * p->kh * p->kw;
}

/* Every sample's mixed kernel in one GEMM: Wm (N, P) = r (N, E) . weight (E, P);
 * bm (N, cout) = r . bias likewise. */
static void mix_kernels(const dcb_op *op, const float *r, int N, float *Wm, float *bm) {
    const xc_hp *h = HP(op);
    const int P = (int)kernel_floats(&h->c);
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
    void *scratch = dcb_aligned_alloc(route_scratch(h, N));
    if (!r || !scratch) {
        dcb_tensor_free(r);
        dcb_aligned_free(scratch);
        return dcb_fail(DCB_OUT_OF_MEMORY, "%s: out of memory for the routing weights", h->name);
    }
    xc_route(op, x->data, N, (size_t)x->shape[2] * x->shape[3], scratch, r->data);
    dcb_aligned_free(scratch);
    *out = r;
    return DCB_OK;
}

static dcb_status xc_kernels(dcb_op *op, const dcb_tensor *x, dcb_tensor **out) {
    const xc_hp *h = HP(op);
    const dcb_conv2d_p *p = &h->c;
    const int N = (int)x->shape[0];
    dcb_tensor *k = dcb_tensor_new(5, (int64_t[]){N, p->cout, p->cin / p->groups, p->kh, p->kw});
    void *scratch = dcb_aligned_alloc(route_scratch(h, N) + rnd((size_t)N * h->E));
    if (!k || !scratch) {
        dcb_tensor_free(k);
        dcb_aligned_free(scratch);
        return dcb_fail(DCB_OUT_OF_MEMORY, "%s: out of memory for the kernels", h->name);
    }
    float *r = (float *)((char *)scratch + route_scratch(h, N));
    xc_route(op, x->data, N, (size_t)x->shape[2] * x->shape[3], scratch, r);
    mix_kernels(op, r, N, k->data, NULL);
    dcb_aligned_free(scratch);
    *out = k;
    return DCB_OK;
}

/* -------------------------------------------------------- implementations */
static dcb_status xc_check(dcb_op *op) {
    xc_hp *h = HP(op);
    const char *slash = strchr(op->impl->name, '/');
    h->stacked = strncmp(op->impl->name, "conv_then_combine/", 18) == 0;
    h->engine = dcb_engine_parse(slash ? slash + 1 : NULL);
    if (h->engine < 0)
        return dcb_fail(DCB_UNKNOWN_IMPL, "%s: implementation '%s' names no conv2d engine", h->name, op->impl->name);
    char who[128];
    snprintf(who, sizeof who, "%s/%s", h->name, op->impl->name);
    return dcb_engine_check((dcb_engine)h->engine, &h->c, who);
}

static int is_winograd_e(int e) { return e == DCB_ENGINE_WINOGRAD || e == DCB_ENGINE_WINOGRAD_F2; }
static int is_winograd(const xc_hp *h) { return is_winograd_e(h->engine); }

/* combine_then_conv: routing, the mixing, then the engine once per sample.
 * On the Winograd engines (where dcb_winograd_dyn_supported) the bank is kept
 * in the engine's panel layout (prepare) and each sample's kernel is mixed
 * block by block inside the engine, fused with its float kernel transform and
 * GEMM (dcb_winograd_dyn_run): no per-sample plan. Elsewhere the mixing GEMM
 * writes every sample's kernel and dcb_engine_conv runs per sample.
 * Workspace: router scratch, r (N, E), bm (N, cout), then either Wm (N, P) and
 * the engine's, or the fused engine's. */
typedef struct ctc_state {
    float *bank; /* E kernels in panel layout (+ 8 floats the vector loads may touch) */
} ctc_state;

static int ctc_fused(const dcb_op *op) {
    const xc_hp *h = HP(op);
    return is_winograd_e(h->engine) && dcb_winograd_dyn_supported(&h->c, h->engine == DCB_ENGINE_WINOGRAD_F2 ? 2 : 4);
}

static void ctc_release(dcb_op *op) {
    ctc_state *s = op->state;
    if (!s) return;
    dcb_aligned_free(s->bank);
    free(s);
}

static dcb_status ctc_prepare(dcb_op *op) {
    const xc_hp *h = HP(op);
    if (!ctc_fused(op)) return DCB_OK;
    ctc_state *s = calloc(1, sizeof *s);
    const size_t Pp = dcb_winograd_bank_floats(&h->c);
    if (s) s->bank = dcb_aligned_alloc(sizeof(float) * (Pp * h->E + 8));
    if (!s || !s->bank) {
        free(s);
        return dcb_fail(DCB_OUT_OF_MEMORY, "%s/%s: out of memory for the expert bank", h->name, op->impl->name);
    }
    const float *w = dcb_w(op, "weight")->data;
    for (int e = 0; e < h->E; e++) dcb_winograd_bank_pack(&h->c, w + (size_t)e * kernel_floats(&h->c), s->bank + e * Pp);
    memset(s->bank + (size_t)h->E * Pp, 0, 8 * sizeof(float));
    op->state = s;
    return DCB_OK;
}

static size_t ctc_ws(const dcb_op *op, const int64_t *x) {
    const xc_hp *h = HP(op);
    const int N = (int)x[0];
    size_t n = route_scratch(h, N) + rnd((size_t)N * h->E) + (h->c.bias ? rnd((size_t)N * h->c.cout) : 0);
    if (ctc_fused(op))
        return n + dcb_winograd_dyn_ws(&h->c, h->engine == DCB_ENGINE_WINOGRAD_F2 ? 2 : 4, N, (int)x[2], (int)x[3],
                                       op->threads);
    return n + rnd((size_t)N * kernel_floats(&h->c)) +
           dcb_engine_ws((dcb_engine)h->engine, &h->c, 1, (int)x[2], (int)x[3], op->threads);
}

static dcb_status ctc_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    const xc_hp *h = HP(op);
    const dcb_conv2d_p *p = &h->c;
    const int N = (int)x->shape[0], H = (int)x->shape[2], W = (int)x->shape[3];
    const size_t P = kernel_floats(p);
    char *b = ws;
    void *scratch = b;
    b += route_scratch(h, N);
    float *r = (float *)b;
    b += rnd((size_t)N * h->E);
    float *bm = NULL;
    if (p->bias) {
        bm = (float *)b;
        b += rnd((size_t)N * p->cout);
    }
    double t0 = dcb_now();
    xc_route(op, x->data, N, (size_t)H * W, scratch, r);
    DCB_PHASE_ADD(prof, DCB_PHASE_ROUTING, t0);
    if (ctc_fused(op)) {
        t0 = dcb_now();
        if (bm)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, p->cout, h->E, 1.0f, r, h->E,
                        dcb_w(op, "bias")->data, p->cout, 0.0f, bm, p->cout);
        DCB_PHASE_ADD(prof, DCB_PHASE_KERNEL_GEN, t0);
        const ctc_state *s = op->state;
        const dcb_wino_dyn k = {NULL, s->bank, r, bm, h->E, 0};
        dcb_winograd_dyn_run(p, h->engine == DCB_ENGINE_WINOGRAD_F2 ? 2 : 4, N, H, W, x->data, &k, y->data, b,
                             op->threads, prof);
        return DCB_OK;
    }
    float *Wm = (float *)b;
    b += rnd((size_t)N * P);
    t0 = dcb_now();
    mix_kernels(op, r, N, Wm, bm);
    DCB_PHASE_ADD(prof, DCB_PHASE_KERNEL_GEN, t0);
    const size_t xs = (size_t)p->cin * H * W, ys = (size_t)y->shape[1] * y->shape[2] * y->shape[3];
    for (int n = 0; n < N; n++)
        dcb_engine_conv((dcb_engine)h->engine, p, 1, H, W, x->data + n * xs, Wm + n * P, bm ? bm + (size_t)n * p->cout : NULL,
                        y->data + n * ys, b, op->threads, prof);
    return DCB_OK;
}

/* conv_then_combine. With groups == 1 the bank (E, cout, cin, kh, kw) already
 * is the stacked weight (E*cout, cin, kh, kw) and the bias (E, cout) the
 * stacked bias, so one convolution shared by the batch computes every expert's
 * output; sum_e r_e (conv_e + b_e) then is the mixed output with the mixed
 * bias. With groups > 1, stacking as E*cout channels breaks the group
 * structure (stacked channel e*cout + o would read group (e*cout + o) /
 * (E*cout/groups)), so the E expert convolutions run one after another over
 * the whole batch: the same work. The weight-only part (Winograd's kernel
 * transform of the stacked weight or of each expert) is done in prepare. */
typedef struct ctc2_state {
    int nplans;
    dcb_winograd_plan *pl[]; /* 1 (stacked) or E (groups > 1) */
} ctc2_state;

static dcb_conv2d_p stacked_params(const xc_hp *h) {
    dcb_conv2d_p pe = h->c;
    if (h->c.groups == 1) pe.cout = h->E * h->c.cout;
    return pe;
}

static int wino_m(const xc_hp *h) { return h->engine == DCB_ENGINE_WINOGRAD_F2 ? 2 : 4; }

static void ctc2_release(dcb_op *op) {
    ctc2_state *s = op->state;
    if (!s) return;
    for (int i = 0; i < s->nplans; i++) dcb_winograd_plan_free(s->pl[i]);
    free(s);
}

static dcb_status ctc2_prepare(dcb_op *op) {
    const xc_hp *h = HP(op);
    if (!is_winograd(h)) return DCB_OK; /* the bank is used as it is */
    const int np = h->c.groups == 1 ? 1 : h->E;
    ctc2_state *s = calloc(1, sizeof *s + (size_t)np * sizeof s->pl[0]);
    if (!s) return dcb_fail(DCB_OUT_OF_MEMORY, "%s/%s: out of memory", h->name, op->impl->name);
    op->state = s;
    const dcb_conv2d_p pe = stacked_params(h);
    const float *w = dcb_w(op, "weight")->data;
    for (int i = 0; i < np; i++) {
        s->pl[i] = dcb_winograd_plan_new(&pe, wino_m(h), w + (size_t)i * kernel_floats(&h->c));
        if (!s->pl[i]) {
            ctc2_release(op);
            op->state = NULL;
            return dcb_fail(DCB_OUT_OF_MEMORY, "%s/%s: out of memory for the kernel transform", h->name, op->impl->name);
        }
        s->nplans = i + 1;
    }
    return DCB_OK;
}

static size_t ctc2_conv_ws(const dcb_op *op, int N, int H, int W) {
    const xc_hp *h = HP(op);
    const dcb_conv2d_p pe = stacked_params(h);
    switch (h->engine) {
    case DCB_ENGINE_NAIVE: return 0;
    case DCB_ENGINE_IM2COL: return dcb_conv2d_im2col_ws(&pe, N, H, W, op->threads);
    case DCB_ENGINE_DIRECT: return dcb_engine_ws(h->engine, &pe, N, H, W, op->threads);
    default: {
        const ctc2_state *s = op->state;
        if (s) return dcb_winograd_ws(s->pl[0], N, H, W, op->threads);
        dcb_winograd_plan *pl = dcb_winograd_plan_new(&pe, wino_m(h), NULL); /* shapes only */
        size_t n = pl ? dcb_winograd_ws(pl, N, H, W, op->threads) : 0;
        dcb_winograd_plan_free(pl);
        return n;
    }
    }
}

/* Workspace: router scratch, r (N, E), the expert outputs (N*E*cout*H'*W'), conv's. */
static size_t ctc2_ws(const dcb_op *op, const int64_t *x) {
    const xc_hp *h = HP(op);
    const int N = (int)x[0];
    int ho, wo;
    out_hw(&h->c, x, &ho, &wo);
    return route_scratch(h, N) + rnd((size_t)N * h->E) + rnd((size_t)N * h->E * h->c.cout * ho * wo) +
           ctc2_conv_ws(op, N, (int)x[2], (int)x[3]);
}

static void ctc2_conv(const dcb_op *op, int plan, const dcb_conv2d_p *pe, int N, int H, int W, const float *x,
                      const float *w, const float *b, float *Y, void *ws, dcb_profile *prof) {
    const xc_hp *h = HP(op);
    switch (h->engine) {
    case DCB_ENGINE_NAIVE: {
        double t0 = dcb_now();
        dcb_conv2d_naive(pe, N, H, W, x, w, b, Y, op->threads);
        DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
        break;
    }
    case DCB_ENGINE_IM2COL: dcb_conv2d_im2col(pe, N, H, W, x, w, b, Y, ws, op->threads, prof); break;
    case DCB_ENGINE_DIRECT: dcb_engine_conv(h->engine, pe, N, H, W, x, w, b, Y, ws, op->threads, prof); break;
    default: {
        const ctc2_state *s = op->state;
        dcb_winograd_run(s->pl[plan], N, H, W, x, b, Y, ws, op->threads, prof);
        break;
    }
    }
}

static dcb_status ctc2_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    const xc_hp *h = HP(op);
    const dcb_conv2d_p *p = &h->c;
    const int N = (int)x->shape[0], H = (int)x->shape[2], W = (int)x->shape[3], E = h->E, cout = p->cout;
    const size_t HWo = (size_t)y->shape[2] * y->shape[3];
    char *b = ws;
    void *scratch = b;
    b += route_scratch(h, N);
    float *r = (float *)b;
    b += rnd((size_t)N * E);
    float *Y = (float *)b;
    b += rnd((size_t)N * E * cout * HWo);
    double t0 = dcb_now();
    xc_route(op, x->data, N, (size_t)H * W, scratch, r);
    DCB_PHASE_ADD(prof, DCB_PHASE_ROUTING, t0);

    const float *w = dcb_w(op, "weight")->data;
    const dcb_tensor *bt = dcb_w(op, "bias");
    const float *bias = bt ? bt->data : NULL;
    size_t sn, se; /* strides of Y over n and e, in floats */
    if (p->groups == 1) {
        const dcb_conv2d_p pe = stacked_params(h);
        ctc2_conv(op, 0, &pe, N, H, W, x->data, w, bias, Y, b, prof);
        sn = (size_t)E * cout * HWo;
        se = (size_t)cout * HWo;
    } else {
        for (int e = 0; e < E; e++)
            ctc2_conv(op, e, p, N, H, W, x->data, w + (size_t)e * kernel_floats(p), bias ? bias + (size_t)e * cout : NULL,
                      Y + (size_t)e * N * cout * HWo, b, prof);
        sn = (size_t)cout * HWo;
        se = (size_t)N * cout * HWo;
    }

    t0 = dcb_now();
    const long NO = (long)N * cout;
#pragma omp parallel for schedule(static) num_threads(op->threads) if (op->threads > 1)
    for (long no = 0; no < NO; no++) {
        const int n = (int)(no / cout), o = (int)(no % cout);
        float *yp = y->data + (size_t)no * HWo;
        const float *Yp = Y + n * sn + (size_t)o * HWo;
        const float r0 = r[(size_t)n * E];
        for (size_t i = 0; i < HWo; i++) yp[i] = r0 * Yp[i];
        for (int e = 1; e < E; e++) {
            const float re = r[(size_t)n * E + e];
            const float *Ye = Yp + e * se;
            for (size_t i = 0; i < HWo; i++) yp[i] += re * Ye[i];
        }
    }
    DCB_PHASE_ADD(prof, DCB_PHASE_COMBINE, t0);
    return DCB_OK;
}

/* One vtable per strategy and engine. The engine list must follow
 * dcb_engine_names (the assertion below catches a new engine; xc_check
 * parses the engine from the name, so a misspelt one fails at create). */
#define XC_ENGINES(X) X(naive) X(im2col) X(winograd) X(winograd_f2) X(direct)
_Static_assert(DCB_ENGINE_COUNT == 5, "add the new conv2d engine to XC_ENGINES");

#define XC_CTC(e)                                                                                              \
    static const dcb_impl_vt ctc_##e = {"combine_then_conv/" #e,                                               \
                                        "mix each sample's kernel (one GEMM), then conv per sample with " #e, \
                                        xc_check, ctc_ws, ctc_prepare, ctc_run, ctc_release, xc_executed};
#define XC_CTC2(e)                                                                                               \
    static const dcb_impl_vt ctc2_##e = {"conv_then_combine/" #e,                                                \
                                         "conv with all experts stacked (" #e "), then the routing-weighted sum", \
                                         xc_check, ctc2_ws, ctc2_prepare, ctc2_run, ctc2_release, xc_executed};
XC_ENGINES(XC_CTC)
XC_ENGINES(XC_CTC2)
#define XC_REF_CTC(e) &ctc_##e,
#define XC_REF_CTC2(e) &ctc2_##e,
static const dcb_impl_vt *const xc_impls[] = {XC_ENGINES(XC_REF_CTC) XC_ENGINES(XC_REF_CTC2)};

const dcb_op_info dcb_condconv_info = {
    "condconv",
    "CondConv: sigmoid-routed mixture of E expert kernels per sample",
    condconv_params,
    (int)(sizeof condconv_params / sizeof condconv_params[0]),
    condconv_validate,
    xc_weights,
    xc_out_shape,
    xc_cost,
    xc_impls,
    (int)(sizeof xc_impls / sizeof xc_impls[0]),
    xc_kernels,
    xc_routing,
};

const dcb_op_info dcb_dyconv_info = {
    "dyconv",
    "Dynamic Convolution: softmax(/tau)-attention over K kernels per sample",
    dyconv_params,
    (int)(sizeof dyconv_params / sizeof dyconv_params[0]),
    dyconv_validate,
    xc_weights,
    xc_out_shape,
    xc_cost,
    xc_impls,
    (int)(sizeof xc_impls / sizeof xc_impls[0]),
    xc_kernels,
    xc_routing,
};
