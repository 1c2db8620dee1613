/* splat: split-attention convolution (ResNeSt). One grouped conv (groups
 * Kc*R, bias, ReLU) gives R splits of cout channels; a per-sample, per-channel
 * attention over the splits (softmax over R, sigmoid when R = 1), computed
 * from the global average of their sum by two grouped FCs, mixes them. The
 * conv weight is static, so every conv2d engine is an implementation and
 * Winograd transforms the kernel once, in prepare.
 *
 * COSTS (per image; P = H'*W'; cg = cin/(Kc*R); inter = max(cin*R/4, 32)):
 *   macs    = kh*kw*cg*cout*R*P + cout*R*P      the conv with bias
 *           + inter*cout/Kc + inter             fc1 (grouped by Kc)
 *           + cout*R*inter/Kc + cout*R          fc2 (grouped by Kc)
 *   dynamic_macs = fc1 + fc2 (the attention)
 *   params  = kh*kw*cg*cout*R + cout*R + fc1 + fc2 (same counts as above)
 *   acts    = cout*R*P + inter + cout*R         conv and FC outputs; the gap
 *             adds none (pycls's gap2d_cx)
 *   flops   = 2*macs + elementwise:
 *             cout*R*P       conv ReLU
 *           + (R-1)*cout*P   sum of the splits
 *           + cout*P         gap adds
 *           + inter          ReLU after fc1
 *           + 3*R*cout       softmax over R, or the sigmoid when R = 1
 *                            (exp, sum, divide per element)
 *           + (2R-1)*cout*P  weighted sum (R multiplies, R-1 adds)
 *   bytes   = 4 * (input + params + output)
 */
#include "dcb_internal.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const dcb_param_spec splat_params[] = {
    DCB_CHANNEL_PARAMS,
    DCB_CONV_GEOMETRY_PARAMS,
    {"radix", DCB_PT_INT, 2, NULL, 0, "R: splits mixed by the attention (1: sigmoid gate)"},
    {"cardinality", DCB_PT_INT, 1, NULL, 0, "Kc: cardinal groups (conv groups Kc*R, FCs grouped by Kc)"},
};

typedef struct splat_hp {
    dcb_conv2d_p conv;   /* cout*R output channels, groups Kc*R, bias */
    int cout, R, Kc, inter;
} splat_hp;

#define HP(op) ((const splat_hp *)(op)->hp)

static dcb_status splat_validate(dcb_op *op) {
    splat_hp *p = dcb_new_hp(op, sizeof *p);
    if (!p) return DCB_OUT_OF_MEMORY;
    dcb_status st = dcb_conv2d_read_params(op, "splat", &p->conv);   /* no groups/bias params: 1, 0 */
    if (st != DCB_OK) return st;
    if ((st = dcb_get_int(op, "radix", 1, &p->R)) != DCB_OK) return st;
    if ((st = dcb_get_int(op, "cardinality", 1, &p->Kc)) != DCB_OK) return st;
    const int cin = p->conv.cin, cout = p->conv.cout, R = p->R, Kc = p->Kc;
    const long g = (long)Kc * R;
    if (g > 1000000 || (long)cout * R > 1000000000L)
        return dcb_fail(DCB_INVALID_PARAM, "splat: radix=%d with cardinality=%d and cout=%d is too large", R, Kc, cout);
    if (cin % g)
        return dcb_fail(DCB_INVALID_PARAM,
                        "splat: cardinality*radix=%ld (cardinality=%d, radix=%d) does not divide cin=%d", g, Kc, R, cin);
    /* the same condition as cout divisible by Kc, which fc1's input groups need */
    if (((long)cout * R) % g)
        return dcb_fail(DCB_INVALID_PARAM,
                        "splat: cardinality*radix=%ld does not divide cout*radix=%ld (cardinality=%d does not divide cout=%d)",
                        g, (long)cout * R, Kc, cout);
    p->inter = (int)((long)cin * R / 4 > 32 ? (long)cin * R / 4 : 32);
    if (p->inter % Kc)
        return dcb_fail(DCB_INVALID_PARAM,
                        "splat: cardinality=%d does not divide inter=%d (= max(cin*radix/4, 32), cin=%d, radix=%d)",
                        Kc, p->inter, cin, R);
    p->cout = cout;
    p->conv.cout = cout * R;
    p->conv.groups = (int)g;
    p->conv.bias = 1;
    return DCB_OK;
}

static dcb_status splat_check(dcb_op *op) { return dcb_engine_check_op(op, &HP(op)->conv); }

static int splat_weights(const dcb_op *op, dcb_weight_spec *s) {
    const splat_hp *p = HP(op);
    const dcb_conv2d_p *c = &p->conv;
    const int cg = c->cin / c->groups;
    int n = 0;
    s[n++] = (dcb_weight_spec){"conv_w", 4, {c->cout, cg, c->kh, c->kw}, 0, 0};
    s[n++] = (dcb_weight_spec){"conv_b", 1, {c->cout}, (double)cg * c->kh * c->kw, 1};
    s[n++] = (dcb_weight_spec){"fc1_w", 2, {p->inter, p->cout / p->Kc}, 0, 0};
    s[n++] = (dcb_weight_spec){"fc1_b", 1, {p->inter}, p->cout / p->Kc, 1};
    s[n++] = (dcb_weight_spec){"fc2_w", 2, {c->cout, p->inter / p->Kc}, 0, 0};
    s[n++] = (dcb_weight_spec){"fc2_b", 1, {c->cout}, p->inter / p->Kc, 1};
    return n;
}

/* conv2d's output but for the channels: the R splits of cout are mixed into one. */
static dcb_status splat_out_shape(const dcb_op *op, int ndim, const int64_t *x, int *yn, int64_t *y) {
    dcb_status st = dcb_conv2d_out_shape("splat", &HP(op)->conv, ndim, x, yn, y);
    if (st == DCB_OK) y[1] = HP(op)->cout;
    return st;
}

static double out_pixels(const splat_hp *p, const int64_t *x) {
    const dcb_conv2d_p *c = &p->conv;
    return (double)dcb_conv_out((int)x[2], c->kh, c->stride, c->pad, c->dil) *
           dcb_conv_out((int)x[3], c->kw, c->stride, c->pad, c->dil);
}

static void splat_cost(const dcb_op *op, const int64_t *x, dcb_cost *c) {
    const splat_hp *p = HP(op);
    const double N = (double)x[0], P = out_pixels(p, x), R = p->R, Kc = p->Kc, cout = p->cout, inter = p->inter;
    const double cg = p->conv.cin / p->conv.groups, kk = (double)p->conv.kh * p->conv.kw;
    const double convw = kk * cg * cout * R;
    const double fc1 = inter * cout / Kc + inter, fc2 = cout * R * inter / Kc + cout * R;
    c->macs = N * (convw * P + cout * R * P + fc1 + fc2);
    c->dynamic_macs = N * (fc1 + fc2);
    c->params = convw + cout * R + fc1 + fc2;
    c->acts = N * (cout * R * P + inter + cout * R);
    const double elem = cout * R * P + (R - 1) * cout * P + cout * P + inter + 3 * R * cout + (2 * R - 1) * cout * P;
    c->flops = 2 * c->macs + N * elem;
    c->bytes = 4.0 * (N * p->conv.cin * (double)x[2] * x[3] + c->params + N * cout * P);
}

/* The engine's work in place of the direct count (Winograd: alpha^2 per
 * m x m tile instead of 9 per output). */
static double splat_executed(const dcb_op *op, const int64_t *x) {
    return dcb_op_macs(op, x) + dcb_engine_extra_macs(DCB_ENGINE(op), &HP(op)->conv, (int)x[0], (int)x[2], (int)x[3]);
}

/* ------------------------------------------------------------- workspace */
typedef struct sp_layout {
    size_t u, s, g, a, eng, total;   /* byte offsets */
} sp_layout;


static sp_layout layout(const dcb_op *op, const int64_t *x) {
    const splat_hp *p = HP(op);
    const size_t N = (size_t)x[0], P = (size_t)out_pixels(p, x), CR = (size_t)p->conv.cout;
    sp_layout l;
    l.u = 0;
    l.s = l.u + dcb_align_up(sizeof(float) * N * CR * P);
    l.g = l.s + dcb_align_up(sizeof(float) * N * p->cout);
    l.a = l.g + dcb_align_up(sizeof(float) * N * p->inter);
    /* a holds the logits (N, Kc, R, cout/Kc), then the weights (N, R, cout) */
    l.eng = l.a + dcb_align_up(sizeof(float) * N * CR * 2);
    l.total = l.eng + dcb_align_up(dcb_engine_workspace(DCB_ENGINE(op), &p->conv, op->state, (int)x[0], (int)x[2],
                                                        (int)x[3], op->threads));
    return l;
}

static size_t splat_ws(const dcb_op *op, const int64_t *x) { return layout(op, x).total; }

/* The engine's weight-only work (kernel transform, packing). */
static dcb_status splat_prepare(dcb_op *op) {
    if (dcb_engine_prepare(DCB_ENGINE(op), &HP(op)->conv, dcb_w(op, "conv_w")->data, &op->state) != DCB_OK)
        return dcb_fail(DCB_OUT_OF_MEMORY, "splat/%s: out of memory for the conv kernel", op->impl->name);
    return DCB_OK;
}

static void splat_release(dcb_op *op) { dcb_engine_release(DCB_ENGINE(op), op->state); }

/* y (N, out) = x (N, in) . w^T + b with `groups` diagonal blocks: block g
 * maps inputs [g*in/groups, ...) through rows [g*out/groups, ...) of w. */
static void grouped_linear(const float *x, int N, int in, const float *w, const float *b, int out,
                           int groups, float *y, int threads) {
    const int ig = in / groups, og = out / groups;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < out; o++) y[(size_t)n * out + o] = b[o];
    dcb_blas_threads_for(threads);
    for (int g = 0; g < groups; g++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, og, ig, 1.0f, x + (size_t)g * ig, in,
                    w + (size_t)g * og * ig, ig, 1.0f, y + (size_t)g * og, out);
}

static dcb_status splat_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    const splat_hp *p = HP(op);
    const int N = (int)x->shape[0], H = (int)x->shape[2], W = (int)x->shape[3];
    const int R = p->R, C = p->cout, Kc = p->Kc, cpg = C / Kc, CR = p->conv.cout;
    const size_t P = (size_t)y->shape[2] * y->shape[3];
    const sp_layout l = layout(op, x->shape);
    char *base = ws;
    float *U = (float *)(base + l.u), *s = (float *)(base + l.s), *g = (float *)(base + l.g);
    float *logit = (float *)(base + l.a), *a = logit + (size_t)N * CR;
    const float *cb = dcb_w(op, "conv_b")->data;

    DCB_ENGINE(op)->run(&p->conv, op->state, N, H, W, x->data, dcb_w(op, "conv_w")->data, cb, U, base + l.eng,
                    op->threads, prof);
    double t0 = dcb_now();
    dcb_relu(U, (size_t)N * CR * P);
    DCB_PHASE_ADD(prof, DCB_PHASE_COMBINE, t0);

    /* attention: s = gap(sum_r U_r); g = relu(fc1(s)); logits = fc2(g) */
    t0 = dcb_now();
    dcb_branch_gap(U, N, C, R, P, (size_t)CR * P, (size_t)C * P, s, op->threads);
    grouped_linear(s, N, C, dcb_w(op, "fc1_w")->data, dcb_w(op, "fc1_b")->data, p->inter, Kc, g, op->threads);
    dcb_relu(g, (size_t)N * p->inter);
    grouped_linear(g, N, p->inter, dcb_w(op, "fc2_w")->data, dcb_w(op, "fc2_b")->data, CR, Kc, logit, op->threads);
    /* logits (Kc, R, cout/Kc) per sample -> a (R, cout) with channel k*cpg + j */
    for (int n = 0; n < N; n++)
        for (int k = 0; k < Kc; k++)
            for (int j = 0; j < cpg; j++) {
                const float *lg = logit + (size_t)n * CR + (size_t)k * R * cpg + j;
                float *an = a + (size_t)n * CR + (size_t)k * cpg + j;
                if (R == 1) {
                    an[0] = lg[0];
                    dcb_sigmoid(an, 1);
                } else {
                    dcb_softmax_strided(lg, (size_t)cpg, an, (size_t)C, R);
                }
            }
    DCB_PHASE_ADD(prof, DCB_PHASE_ROUTING, t0);

    t0 = dcb_now();
    dcb_branch_mix(U, a, N, C, R, P, (size_t)CR * P, (size_t)C * P, y->data, op->threads);
    DCB_PHASE_ADD(prof, DCB_PHASE_COMBINE, t0);
    return DCB_OK;
}

/* ------------------------------------------------------------------ hooks */
static dcb_status splat_routing(dcb_op *op, const dcb_tensor *x, dcb_tensor **out) {
    /* the workspace holds the logits (N, R, cout), then the r-softmax of them */
    const int64_t shape[3] = {x->shape[0], HP(op)->R, HP(op)->cout};
    return dcb_capture_ws(op, x, layout(op, x->shape).a + sizeof(float) * (size_t)(shape[0] * shape[1] * shape[2]),
                          3, shape, out);
}

static dcb_status splat_kernels(dcb_op *op, const dcb_tensor *x, dcb_tensor **out) {
    return dcb_fail(DCB_UNSUPPORTED_PARAM,
                    "splat: its conv kernel is static (the attention mixes outputs: see dcb_op_routing)");
}

#define SP_IMPL(e)                                                                                           \
    static const dcb_impl_vt impl_##e = {                                                                    \
        .name = #e, .doc = "the grouped conv by the " #e " engine", .engine = &dcb_engine_##e,               \
        .check = splat_check, .workspace = splat_ws, .prepare = splat_prepare, .run = splat_run,             \
        .release = splat_release, .executed_macs = splat_executed};
DCB_CONV_ENGINES(SP_IMPL)
static const dcb_impl_vt *const splat_impls[] = {DCB_CONV_ENGINES(DCB_ENGINE_IMPL_REF)};

const dcb_op_info dcb_splat_info = {
    .name = "splat", .doc = "split-attention convolution (ResNeSt): softmax over radix splits, grouped by cardinality",
    DCB_PARAMS(splat_params), DCB_IMPLS(splat_impls), .layout = DCB_INPUT_IMAGE, .channels_param = "cin",
    .validate = splat_validate, .weights = splat_weights, .out_shape = splat_out_shape, .cost = splat_cost,
    .kernels = splat_kernels, .routing = splat_routing,
};
