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
#include "attention_backward.h"

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
/* The attention of the branch outputs U (M, N, cout, P): s = gap(sum_i U_i),
 * z = relu(fc(s)), a = softmax_i(fcs(z)); shared by run and the training
 * forward, so that both compute the same a. */
static void sk_attend(const dcb_op *op, const float *U, int N, size_t P, float *s, float *z, float *a) {
    const skconv_hp *p = HP(op);
    const int M = p->M, C = p->cout;
    dcb_branch_gap(U, N, C, M, P, (size_t)C * P, (size_t)N * C * P, s, op->threads);
    dcb_linear(s, N, C, dcb_w(op, "fc_w")->data, dcb_w(op, "fc_b")->data, p->d, z, op->threads);
    dcb_relu(z, (size_t)N * p->d);
    dcb_linear(z, N, p->d, dcb_w(op, "fcs_w")->data, dcb_w(op, "fcs_b")->data, M * C, a, op->threads);
    for (int n = 0; n < N; n++)   /* a is (N, M, cout): the softmax runs down a column */
        for (int c = 0; c < C; c++) {
            float *col = a + (size_t)n * M * C + c;
            dcb_softmax_strided(col, C, col, C, M);
        }
}

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

    double t0 = dcb_now();
    sk_attend(op, U, N, P, s, z, a);
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

/* --------------------------------------------------------------- backward
 * y = sum_i a_i U_i with U_i = relu(conv_i(x) + b_i) and a from gap(sum U):
 * attention_backward.h gives dV_i (the gradient at the conv outputs, masked
 * by the ReLU); each branch's conv backward gives dx (summed over the
 * branches, in branch order) and its branch_w, branch_b rows. */

/* The conv engine of the training forward: the op's own, except that naive
 * runs as im2col (the saved forward is the GEMM path of the GEMM backward). */
static const dcb_engine_desc *train_engine(const dcb_op *op) {
    const dcb_engine_desc *e = DCB_ENGINE(op);
    return e == &dcb_engine_naive ? &dcb_engine_im2col : e;
}

/* Naive: the forward recomputed (convs by dcb_conv2d_naive, the attention in
 * double), the backward as direct loops in double and the naive conv blocks. */
static dcb_status sk_bwd_naive_run(dcb_op *op, const dcb_train_ctx *c) {
    const skconv_hp *p = HP(op);
    const int N = (int)c->x->shape[0], H = (int)c->x->shape[2], W = (int)c->x->shape[3];
    const int M = p->M, C = p->cout, d = p->d, MC = M * C;
    const size_t P = (size_t)c->y->shape[2] * c->y->shape[3], UN = (size_t)N * C * P;
    const size_t per = (size_t)C * (p->cin / p->groups) * 9, xsz = (size_t)c->x->size;
    const float *bw = dcb_w(op, "branch_w")->data, *bb = dcb_w(op, "branch_b")->data;
    const float *fc_w = dcb_w(op, "fc_w")->data, *fcs_w = dcb_w(op, "fcs_w")->data;
    float *U = malloc(sizeof(float) * 2 * M * UN), *dV = U ? U + M * UN : NULL;
    float *tmpx = malloc(sizeof(float) * (xsz + per));
    double *dbuf = malloc(sizeof(double) * ((size_t)N * (2 * C + 3 * d + 2 * MC)));
    if (!U || !tmpx || !dbuf) {
        free(U), free(tmpx), free(dbuf);
        return dcb_fail(DCB_OUT_OF_MEMORY, "skconv naive backward: out of memory");
    }
    double *s = dbuf, *t = s + (size_t)N * C, *z = t + (size_t)N * d, *a = z + (size_t)N * d;
    double *da = a + (size_t)N * MC, *dz = da + (size_t)N * MC, *ds = dz + (size_t)N * d;
    for (int i = 0; i < M; i++) {
        const dcb_conv2d_p cp = branch_p(p, i);
        dcb_conv2d_naive(&cp, N, H, W, c->x->data, bw + i * per, bb + (size_t)i * C, U + i * UN, op->threads);
        dcb_relu(U + i * UN, UN);
    }
    for (int n = 0; n < N; n++)
        for (int ch = 0; ch < C; ch++) {
            double acc = 0;
            for (int i = 0; i < M; i++)
                for (size_t k = 0; k < P; k++) acc += U[i * UN + ((size_t)n * C + ch) * P + k];
            s[(size_t)n * C + ch] = acc / (double)P;
        }
    attb_linear_f64(s, N, C, fc_w, dcb_w(op, "fc_b")->data, d, 1, t);
    for (size_t k = 0; k < (size_t)N * d; k++) z[k] = t[k] > 0 ? t[k] : 0;
    attb_linear_f64(z, N, d, fcs_w, dcb_w(op, "fcs_b")->data, MC, 1, a);
    for (int n = 0; n < N; n++)
        for (int ch = 0; ch < C; ch++) attb_softmax_f64(a + (size_t)n * MC + ch, C, M);

    attb_da_f64(U, c->dy->data, N, C, M, P, C * P, UN, da);
    for (int n = 0; n < N; n++)   /* softmax backward down each column */
        for (int ch = 0; ch < C; ch++) {
            double *an = a + (size_t)n * MC + ch, *gn = da + (size_t)n * MC + ch, dot = 0;
            for (int i = 0; i < M; i++) dot += an[(size_t)i * C] * gn[(size_t)i * C];
            for (int i = 0; i < M; i++) gn[(size_t)i * C] = an[(size_t)i * C] * (gn[(size_t)i * C] - dot);
        }
    attb_linear_bwd_f64(z, N, d, fcs_w, MC, 1, da, dz, dcb_dw(op, c, "fcs_w"), dcb_dw(op, c, "fcs_b"));
    for (size_t k = 0; k < (size_t)N * d; k++) dz[k] = t[k] > 0 ? dz[k] : 0;
    attb_linear_bwd_f64(s, N, C, fc_w, d, 1, dz, ds, dcb_dw(op, c, "fc_w"), dcb_dw(op, c, "fc_b"));
    attb_dv_f64(U, a, c->dy->data, ds, N, C, M, P, C * P, UN, dV);

    float *dbw = dcb_dw(op, c, "branch_w"), *dbb = dcb_dw(op, c, "branch_b");
    for (int i = 0; i < M; i++) {
        const dcb_conv2d_p cp = branch_p(p, i);
        if (c->dx) {
            float *dst = i ? tmpx : c->dx->data;
            dcb_conv2d_bwd_data_naive(&cp, N, H, W, dV + i * UN, bw + i * per, dst, op->threads);
            if (i)
                for (size_t k = 0; k < xsz; k++) c->dx->data[k] += tmpx[k];
        }
        if (dbw || dbb)
            dcb_conv2d_bwd_weight_naive(&cp, N, H, W, c->x->data, dV + i * UN, dbw ? dbw + i * per : tmpx + xsz,
                                        dbb ? dbb + (size_t)i * C : NULL, op->threads);
    }
    free(U), free(tmpx), free(dbuf);
    return DCB_OK;
}

/* What the GEMM backward's training forward keeps: U (M, N, cout, P) after
 * the ReLU, s (N, cout), z (N, d) after the ReLU, a (N, M, cout). */
typedef struct sk_saved {
    float *U, *s, *z, *a;
} sk_saved;

static void sk_free_saved(void *v) {
    if (v) dcb_aligned_free(((sk_saved *)v)->U);
    free(v);
}

static dcb_status sk_bwd_forward(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void **saved) {
    const skconv_hp *p = HP(op);
    const int N = (int)x->shape[0], H = (int)x->shape[2], W = (int)x->shape[3], M = p->M, C = p->cout;
    const size_t P = (size_t)y->shape[2] * y->shape[3], UN = (size_t)N * C * P;
    const size_t per = (size_t)C * (p->cin / p->groups) * 9;
    const dcb_engine_desc *e = train_engine(op);
    size_t wsb = 0;
    for (int i = 0; i < M; i++) {
        const dcb_conv2d_p cp = branch_p(p, i);
        const size_t b = dcb_engine_dyn_workspace(e, &cp, N, H, W, op->threads);
        wsb = b > wsb ? b : wsb;
    }
    sk_saved *sv = calloc(1, sizeof *sv);
    const size_t fl = dcb_align_up(sizeof(float) * M * UN) + dcb_align_up(sizeof(float) * N * C) +
                      dcb_align_up(sizeof(float) * N * p->d) + dcb_align_up(sizeof(float) * N * M * C);
    void *ws = wsb ? dcb_aligned_alloc(wsb) : NULL;
    if (!sv || !(sv->U = dcb_aligned_alloc(fl)) || (wsb && !ws)) {
        sk_free_saved(sv);
        dcb_aligned_free(ws);
        return dcb_fail(DCB_OUT_OF_MEMORY, "skconv training forward: out of memory");
    }
    *saved = sv;
    sv->s = (float *)((char *)sv->U + dcb_align_up(sizeof(float) * M * UN));
    sv->z = (float *)((char *)sv->s + dcb_align_up(sizeof(float) * N * C));
    sv->a = (float *)((char *)sv->z + dcb_align_up(sizeof(float) * N * p->d));
    const float *bw = dcb_w(op, "branch_w")->data, *bb = dcb_w(op, "branch_b")->data;
    for (int i = 0; i < M; i++) {
        const dcb_conv2d_p cp = branch_p(p, i);
        e->dyn_run(&cp, N, H, W, x->data, bw + i * per, bb + (size_t)i * C, sv->U + i * UN, ws, op->threads, NULL);
        dcb_relu(sv->U + i * UN, UN);
    }
    dcb_aligned_free(ws);
    sk_attend(op, sv->U, N, P, sv->s, sv->z, sv->a);
    dcb_branch_mix(sv->U, sv->a, N, C, M, P, (size_t)C * P, UN, y->data, op->threads);
    return DCB_OK;
}

/* dx of a stride-1 branch is the forward conv of dV with the transposed,
 * flipped kernel, same groups, dilation d and pad 2d - pad = d: as an
 * im2col forward it skips col2im's scattered adds, 3.3 against 4.6 ms a
 * branch at skconv's 4 channels per group (32@14x14, groups 8, N=64).
 * tconv_p is that conv, tconv_w its kernel (cin, cout/groups, 3, 3). Stride
 * 2 stays on dcb_conv2d_bwd_data_gemm. */
static dcb_conv2d_p tconv_p(const dcb_conv2d_p *c) {
    return (dcb_conv2d_p){c->cout, c->cin, 3, 3, 1, 2 * c->dil - c->pad, c->dil, c->groups, 0};
}

static void tconv_w(const dcb_conv2d_p *c, const float *w, float *wt) {
    const int cig = c->cin / c->groups, cog = c->cout / c->groups;
    for (int g = 0; g < c->groups; g++)
        for (int ci = 0; ci < cig; ci++)
            for (int ol = 0; ol < cog; ol++)
                for (int k = 0; k < 9; k++)
                    wt[((size_t)(g * cig + ci) * cog + ol) * 9 + k] = w[((size_t)(g * cog + ol) * cig + ci) * 9 + 8 - k];
}

static dcb_status sk_bwd_gemm_run(dcb_op *op, const dcb_train_ctx *c) {
    const skconv_hp *p = HP(op);
    const sk_saved *sv = c->saved;
    const int N = (int)c->x->shape[0], H = (int)c->x->shape[2], W = (int)c->x->shape[3];
    const int M = p->M, C = p->cout, d = p->d, MC = M * C;
    const size_t P = (size_t)c->y->shape[2] * c->y->shape[3], UN = (size_t)N * C * P;
    const size_t per = (size_t)C * (p->cin / p->groups) * 9, xsz = (size_t)c->x->size;
    const float *bw = dcb_w(op, "branch_w")->data;
    float *dbw = dcb_dw(op, c, "branch_w"), *dbb = dcb_dw(op, c, "branch_b");
    const int Ho = (int)c->y->shape[2], Wo = (int)c->y->shape[3], tconv = p->stride == 1;
    size_t cws = 0;
    for (int i = 0; i < M; i++) {
        const dcb_conv2d_p cp = branch_p(p, i), tp = tconv_p(&cp);
        size_t b = dcb_conv2d_bwd_gemm_ws(&cp, N, H, W, op->threads);
        cws = b > cws ? b : cws;
        b = tconv ? dcb_engine_dyn_workspace(&dcb_engine_im2col, &tp, N, Ho, Wo, op->threads) : 0;
        cws = b > cws ? b : cws;
    }
    const size_t o_da = dcb_align_up(sizeof(float) * M * UN), o_dz = o_da + dcb_align_up(sizeof(float) * N * MC);
    const size_t o_ds = o_dz + dcb_align_up(sizeof(float) * N * d), o_wt = o_ds + dcb_align_up(sizeof(float) * N * C);
    const size_t o_ws = o_wt + dcb_align_up(sizeof(float) * per);
    const size_t o_tx = o_ws + dcb_align_up(cws);
    const size_t total = o_tx + (c->dx && M > 1 ? dcb_align_up(sizeof(float) * xsz) : 0);
    char *buf = dcb_aligned_alloc(total);
    if (!buf) return dcb_fail(DCB_OUT_OF_MEMORY, "skconv backward: out of memory");
    float *dV = (float *)buf, *da = (float *)(buf + o_da), *dz = (float *)(buf + o_dz), *ds = (float *)(buf + o_ds);
    float *tmpx = (float *)(buf + o_tx);

    attb_da(sv->U, c->dy->data, N, C, M, P, C * P, UN, da, op->threads);
    for (int n = 0; n < N; n++)
        for (int ch = 0; ch < C; ch++)
            attb_softmax_bwd(sv->a + (size_t)n * MC + ch, da + (size_t)n * MC + ch, C, M);
    attb_linear_bwd(sv->z, N, d, dcb_w(op, "fcs_w")->data, MC, 1, da, dz, dcb_dw(op, c, "fcs_w"),
                    dcb_dw(op, c, "fcs_b"), op->threads);
    attb_relu_bwd(sv->z, dz, (size_t)N * d);
    attb_linear_bwd(sv->s, N, C, dcb_w(op, "fc_w")->data, d, 1, dz, ds, dcb_dw(op, c, "fc_w"), dcb_dw(op, c, "fc_b"),
                    op->threads);
    attb_dv(sv->U, sv->a, c->dy->data, ds, N, C, M, P, C * P, UN, dV, op->threads);

    for (int i = 0; i < M; i++) {
        const dcb_conv2d_p cp = branch_p(p, i);
        if (c->dx) {
            float *dst = i ? tmpx : c->dx->data;
            if (tconv) {
                const dcb_conv2d_p tp = tconv_p(&cp);
                float *wt = (float *)(buf + o_wt);
                tconv_w(&cp, bw + i * per, wt);
                dcb_engine_im2col.dyn_run(&tp, N, Ho, Wo, dV + i * UN, wt, NULL, dst, buf + o_ws, op->threads, NULL);
            } else {
                dcb_conv2d_bwd_data_gemm(&cp, N, H, W, dV + i * UN, bw + i * per, dst, buf + o_ws, op->threads);
            }
            if (i) {
                float *dx = c->dx->data;
#pragma omp parallel for schedule(static) num_threads(op->threads) if (op->threads > 1)
                for (size_t k = 0; k < xsz; k++) dx[k] += tmpx[k];
            }
        }
        dcb_conv2d_bwd_weight_gemm(&cp, N, H, W, c->x->data, dV + i * UN, dbw ? dbw + i * per : NULL,
                                   dbb ? dbb + (size_t)i * C : NULL, buf + o_ws, op->threads);
    }
    dcb_aligned_free(buf);
    return DCB_OK;
}

static const dcb_bwd_vt sk_bwd_naive = {.name = "naive",
                                        .doc = "forward recomputed, direct loops in double, naive conv backward",
                                        .tol = 1e-6, .run = sk_bwd_naive_run};
static const dcb_bwd_vt sk_bwd_gemm = {.name = "gemm",
                                       .doc = "training forward keeps U and the attention; im2col + sgemm conv backward (dx "
                                               "as the transposed conv at stride 1)",
                                       .tol = 1e-4, .forward = sk_bwd_forward, .free_saved = sk_free_saved,
                                       .run = sk_bwd_gemm_run};
static const dcb_bwd_vt *const skconv_bwds[] = {&sk_bwd_naive, &sk_bwd_gemm};

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
    .kernels = skconv_kernels, .routing = skconv_routing, DCB_BWDS(skconv_bwds),
};
