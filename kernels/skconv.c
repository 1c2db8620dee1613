/* skconv: Selective Kernel convolution (Li et al. 2019). M branches of 3x3
 * grouped convs (branch i: dilation i+1, pad i+1, bias, ReLU) are mixed per
 * sample and channel by a softmax attention over the branches, computed from
 * the global average of their sum. The branch weights are static, so every
 * conv2d engine is an implementation ("naive", "im2col", "winograd",
 * "winograd_f2") and Winograd transforms its kernels once, in prepare.
 *
 * COSTS (per image; P = H'*W', H' = (H-1)/stride + 1 for every branch;
 * d = max(cout/r, L); cg = cin/groups):
 *   macs    = M*(9*cg*cout*P + cout*P)        the branch convs with bias
 *           + d*cout + d                      fc
 *           + M*cout*d + M*cout               fcs
 *   dynamic_macs = fc + fcs (the attention)
 *   params  = M*(9*cg*cout + cout) + d*cout + d + M*cout*d + M*cout
 *   acts    = M*cout*P + d + M*cout           conv and FC outputs; the gap
 *             adds none (pycls's gap2d_cx)
 *   flops   = 2*macs + elementwise:
 *             M*cout*P       branch ReLUs
 *           + (M-1)*cout*P   branch sum
 *           + cout*P         gap adds
 *           + d              ReLU after fc
 *           + 3*M*cout       softmax (exp, sum, divide per element)
 *           + (2M-1)*cout*P  weighted sum (M multiplies, M-1 adds)
 *   bytes   = 4 * (input + params + output)
 */
#include "dcb_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const dcb_param_spec skconv_params[] = {
    DCB_CHANNEL_PARAMS,
    {"branches", DCB_PT_INT, 2, NULL, 0, "M: branch i is a 3x3 conv with dilation and pad i+1"},
    {"groups", DCB_PT_INT, 32, NULL, 0, "groups of every branch conv"},
    {"stride", DCB_PT_INT, 1, NULL, 0, "stride of every branch conv"},
    {"reduction", DCB_PT_INT, 16, NULL, 0, "r: d = max(cout / r, L)"},
    {"L", DCB_PT_INT, 32, NULL, 0, "lower bound of the attention width d"},
};

typedef struct skconv_hp {
    int cin, cout, M, groups, stride, r, L, d;
} skconv_hp;

#define HP(op) ((const skconv_hp *)(op)->hp)

static dcb_conv2d_p branch_p(const skconv_hp *p, int i) {
    return (dcb_conv2d_p){p->cin, p->cout, 3, 3, p->stride, i + 1, i + 1, p->groups, 1};
}

static dcb_status skconv_validate(dcb_op *op) {
    skconv_hp *p = dcb_new_hp(op, sizeof *p);
    if (!p) return DCB_OUT_OF_MEMORY;
    dcb_status st;
    if (isnan(dcb_pv(op, "cin"))) return dcb_fail(DCB_INVALID_PARAM, "skconv: cin is required");
    if (isnan(dcb_pv(op, "cout"))) return dcb_fail(DCB_INVALID_PARAM, "skconv: cout is required");
    if ((st = dcb_get_int(op, "cin", 1, &p->cin)) != DCB_OK) return st;
    if ((st = dcb_get_int(op, "cout", 1, &p->cout)) != DCB_OK) return st;
    if ((st = dcb_get_int(op, "branches", 1, &p->M)) != DCB_OK) return st;
    if ((st = dcb_get_int(op, "groups", 1, &p->groups)) != DCB_OK) return st;
    if ((st = dcb_get_int(op, "stride", 1, &p->stride)) != DCB_OK) return st;
    if ((st = dcb_get_int(op, "reduction", 1, &p->r)) != DCB_OK) return st;
    if ((st = dcb_get_int(op, "L", 1, &p->L)) != DCB_OK) return st;
    if (p->cin % p->groups)
        return dcb_fail(DCB_INVALID_PARAM, "skconv: groups=%d does not divide cin=%d", p->groups, p->cin);
    if (p->cout % p->groups)
        return dcb_fail(DCB_INVALID_PARAM, "skconv: groups=%d does not divide cout=%d", p->groups, p->cout);
    p->d = p->cout / p->r > p->L ? p->cout / p->r : p->L;
    return DCB_OK;
}

/* Branch i runs with dilation i+1: an engine limited to dilation 1 (Winograd)
 * covers only branch 0. Saying which branch stops it is the useful part of
 * the message. */
static dcb_status skconv_check(dcb_op *op) {
    const skconv_hp *p = HP(op);
    if (!DCB_ENGINE(op)->check) return DCB_OK;
    for (int i = 0; i < p->M; i++) {
        const dcb_conv2d_p c = branch_p(p, i);
        char who[128];
        snprintf(who, sizeof who, "skconv/%s (branches=%d: dilation %d in branch %d)", op->impl->name, p->M, i + 1, i);
        dcb_status st = DCB_ENGINE(op)->check(&c, who);
        if (st != DCB_OK) return st;
    }
    return DCB_OK;
}

static int skconv_weights(const dcb_op *op, dcb_weight_spec *s) {
    const skconv_hp *p = HP(op);
    const int cg = p->cin / p->groups;
    int n = 0;
    s[n++] = (dcb_weight_spec){"branch_w", 5, {p->M, p->cout, cg, 3, 3}, 9.0 * cg, 0};
    s[n++] = (dcb_weight_spec){"branch_b", 2, {p->M, p->cout}, 9.0 * cg, 1};
    s[n++] = (dcb_weight_spec){"fc_w", 2, {p->d, p->cout}, 0, 0};
    s[n++] = (dcb_weight_spec){"fc_b", 1, {p->d}, p->cout, 1};
    s[n++] = (dcb_weight_spec){"fcs_w", 2, {(int64_t)p->M * p->cout, p->d}, 0, 0};
    s[n++] = (dcb_weight_spec){"fcs_b", 1, {(int64_t)p->M * p->cout}, p->d, 1};
    return n;
}

static dcb_status skconv_out_shape(const dcb_op *op, int ndim, const int64_t *x, int *yn, int64_t *y) {
    /* every branch keeps the size (pad = dilation); the widest is the last */
    const dcb_conv2d_p c = branch_p(HP(op), HP(op)->M - 1);
    return dcb_conv2d_out_shape("skconv", &c, ndim, x, yn, y);
}

static void skconv_cost(const dcb_op *op, const int64_t *x, dcb_cost *c) {
    const skconv_hp *p = HP(op);
    const double N = (double)x[0], M = p->M, cout = p->cout, d = p->d, cg = p->cin / p->groups;
    const double P = (double)((x[2] - 1) / p->stride + 1) * ((x[3] - 1) / p->stride + 1);
    const double conv = M * (9 * cg * cout * P + cout * P);
    const double fc = d * cout + d, fcs = M * cout * d + M * cout;
    c->macs = N * (conv + fc + fcs);
    c->dynamic_macs = N * (fc + fcs);
    c->params = M * (9 * cg * cout + cout) + fc + fcs;
    c->acts = N * (M * cout * P + d + M * cout);
    const double elem = M * cout * P + (M - 1) * cout * P + cout * P + d + 3 * M * cout + (2 * M - 1) * cout * P;
    c->flops = 2 * c->macs + N * elem;
    c->bytes = 4.0 * (N * p->cin * (double)x[2] * x[3] + c->params + N * cout * P);
}

/* What the engine performs in place of the direct count of each branch
 * (Winograd: alpha^2 per m x m tile instead of 9 per output). */
static double skconv_executed(const dcb_op *op, const int64_t *x) {
    const skconv_hp *p = HP(op);
    double m = dcb_op_macs(op, x);
    for (int i = 0; i < p->M; i++) {
        const dcb_conv2d_p b = branch_p(p, i);
        m += dcb_engine_extra_macs(DCB_ENGINE(op), &b, (int)x[0], (int)x[2], (int)x[3]);
    }
    return m;
}

/* ------------------------------------------------------------- workspace */
typedef struct sk_layout {
    size_t u, s, z, a, eng, total;   /* byte offsets */
} sk_layout;

/* Branch i's engine state (prepare), or NULL. */
static void *branch_state(const dcb_op *op, int i) { return op->state ? ((void **)op->state)[i] : NULL; }

static size_t engine_ws(const dcb_op *op, int i, int N, int H, int W) {
    const dcb_conv2d_p c = branch_p(HP(op), i);
    return dcb_engine_workspace(DCB_ENGINE(op), &c, branch_state(op, i), N, H, W, op->threads);
}

static sk_layout layout(const dcb_op *op, const int64_t *x) {
    const skconv_hp *p = HP(op);
    const size_t N = (size_t)x[0], P = (size_t)((x[2] - 1) / p->stride + 1) * (size_t)((x[3] - 1) / p->stride + 1);
    sk_layout l;
    l.u = 0;
    l.s = l.u + dcb_align_up(sizeof(float) * (size_t)p->M * N * p->cout * P);
    l.z = l.s + dcb_align_up(sizeof(float) * N * p->cout);
    l.a = l.z + dcb_align_up(sizeof(float) * N * p->d);
    l.eng = l.a + dcb_align_up(sizeof(float) * N * p->M * p->cout);
    size_t e = 0;
    for (int i = 0; i < p->M; i++) {
        size_t b = engine_ws(op, i, (int)x[0], (int)x[2], (int)x[3]);
        if (b > e) e = b;
    }
    l.total = l.eng + dcb_align_up(e);
    return l;
}

static size_t skconv_ws(const dcb_op *op, const int64_t *x) { return layout(op, x).total; }

/* ---------------------------------------------------------------- prepare */
static void skconv_release(dcb_op *op) {
    void **st = op->state;
    if (!st) return;
    for (int i = 0; i < HP(op)->M; i++) dcb_engine_release(DCB_ENGINE(op), st[i]);
    free(st);
}

/* The engine's weight-only work (kernel transform, packing) per branch. */
static dcb_status skconv_prepare(dcb_op *op) {
    const skconv_hp *p = HP(op);
    if (!DCB_ENGINE(op)->prepare) return DCB_OK;
    void **st = calloc((size_t)p->M, sizeof *st);
    if (!st) return dcb_fail(DCB_OUT_OF_MEMORY, "skconv/%s: out of memory", op->impl->name);
    op->state = st;
    const float *w = dcb_w(op, "branch_w")->data;
    const size_t per = (size_t)p->cout * (p->cin / p->groups) * 9;
    for (int i = 0; i < p->M; i++) {
        const dcb_conv2d_p c = branch_p(p, i);
        if (dcb_engine_prepare(DCB_ENGINE(op), &c, w + i * per, &st[i]) != DCB_OK) {
            skconv_release(op);
            op->state = NULL;
            return dcb_fail(DCB_OUT_OF_MEMORY, "skconv/%s: out of memory for the branch kernels", op->impl->name);
        }
    }
    return DCB_OK;
}

/* -------------------------------------------------------------------- run */
static dcb_status skconv_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    const skconv_hp *p = HP(op);
    const int N = (int)x->shape[0], H = (int)x->shape[2], W = (int)x->shape[3];
    const int M = p->M, C = p->cout;
    const size_t P = (size_t)y->shape[2] * y->shape[3], UN = (size_t)N * C * P;
    const sk_layout l = layout(op, x->shape);
    char *base = ws;
    float *U = (float *)(base + l.u), *s = (float *)(base + l.s), *z = (float *)(base + l.z);
    float *a = (float *)(base + l.a);
    void *ews = base + l.eng;
    const float *bw = dcb_w(op, "branch_w")->data, *bb = dcb_w(op, "branch_b")->data;
    const size_t per = (size_t)C * (p->cin / p->groups) * 9;

    for (int i = 0; i < M; i++) {
        dcb_conv2d_p c = branch_p(p, i);
        float *Ui = U + (size_t)i * UN;
        DCB_ENGINE(op)->run(&c, branch_state(op, i), N, H, W, x->data, bw + i * per, bb + (size_t)i * C, Ui, ews,
                        op->threads, prof);
        double t0 = dcb_now();
        dcb_relu(Ui, UN);
        DCB_PHASE_ADD(prof, DCB_PHASE_COMBINE, t0);
    }

    /* attention: s = gap(sum_i U_i), z = relu(fc(s)), a = softmax_i(fcs(z)) */
    double t0 = dcb_now();
    dcb_branch_gap(U, N, C, M, P, (size_t)C * P, UN, s, op->threads);
    dcb_linear(s, N, C, dcb_w(op, "fc_w")->data, dcb_w(op, "fc_b")->data, p->d, z, op->threads);
    dcb_relu(z, (size_t)N * p->d);
    dcb_linear(z, N, p->d, dcb_w(op, "fcs_w")->data, dcb_w(op, "fcs_b")->data, M * C, a, op->threads);
    for (int n = 0; n < N; n++)   /* a is (N, M, cout): the softmax runs down a column */
        for (int c = 0; c < C; c++) {
            float *col = a + (size_t)n * M * C + c;
            dcb_softmax_strided(col, C, col, C, M);
        }
    DCB_PHASE_ADD(prof, DCB_PHASE_ROUTING, t0);

    t0 = dcb_now();
    dcb_branch_mix(U, a, N, C, M, P, (size_t)C * P, UN, y->data, op->threads);
    DCB_PHASE_ADD(prof, DCB_PHASE_COMBINE, t0);
    return DCB_OK;
}

/* ------------------------------------------------------------------ hooks */
static dcb_status skconv_routing(dcb_op *op, const dcb_tensor *x, dcb_tensor **out) {
    /* the attention a (N, M, cout) is an intermediate of run, in the workspace */
    return dcb_capture_ws(op, x, layout(op, x->shape).a, 3, (int64_t[]){x->shape[0], HP(op)->M, HP(op)->cout},
                          out);
}

static dcb_status skconv_kernels(dcb_op *op, const dcb_tensor *x, dcb_tensor **out) {
    return dcb_fail(DCB_UNSUPPORTED_PARAM,
                    "skconv: its branch kernels are static (the attention mixes outputs: see dcb_op_routing)");
}

#define SK_IMPL(e)                                                                                           \
    static const dcb_impl_vt impl_##e = {                                                                    \
        .name = #e, .doc = "branch convs by the " #e " engine", .engine = &dcb_engine_##e,                   \
        .check = skconv_check, .workspace = skconv_ws, .prepare = skconv_prepare, .run = skconv_run,         \
        .release = skconv_release, .executed_macs = skconv_executed};
DCB_CONV_ENGINES(SK_IMPL)
static const dcb_impl_vt *const skconv_impls[] = {DCB_CONV_ENGINES(DCB_ENGINE_IMPL_REF)};

const dcb_op_info dcb_skconv_info = {
    .name = "skconv", .doc = "Selective Kernel convolution: softmax attention over dilated 3x3 grouped branches",
    DCB_PARAMS(skconv_params), DCB_IMPLS(skconv_impls), .layout = DCB_INPUT_IMAGE, .channels_param = "cin",
    .validate = skconv_validate, .weights = skconv_weights, .out_shape = skconv_out_shape, .cost = skconv_cost,
    .kernels = skconv_kernels, .routing = skconv_routing,
};
