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
#include "attention_backward.h"

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

/* The attention of the conv output U (N, cout*R, P): s = gap(sum_r U_r);
 * g = relu(fc1(s)); logits = fc2(g); a = softmax_r (sigmoid when R = 1);
 * shared by run and the training forward. */
static void sp_attend(const dcb_op *op, const float *U, int N, size_t P, float *s, float *g, float *logit, float *a) {
    const splat_hp *p = HP(op);
    const int R = p->R, C = p->cout, Kc = p->Kc, cpg = C / Kc, CR = p->conv.cout;
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
}

static dcb_status splat_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    const splat_hp *p = HP(op);
    const int N = (int)x->shape[0], H = (int)x->shape[2], W = (int)x->shape[3];
    const int R = p->R, C = p->cout, CR = p->conv.cout;
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

    t0 = dcb_now();
    sp_attend(op, U, N, P, s, g, logit, a);
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

/* --------------------------------------------------------------- backward
 * y = sum_r a_r U_r with U = relu(conv(x) + b) and a from gap(sum U):
 * attention_backward.h gives dV (the gradient at the conv output, masked by
 * the ReLU), which the grouped conv's backward takes to dx, conv_w, conv_b.
 * The attention's reorder: a[r, q*cpg + j] comes from logit[q*R*cpg + r*cpg + j]. */

/* The conv engine of the training forward: the op's own, except that naive
 * runs as im2col (the saved forward is the GEMM path of the GEMM backward). */
static const dcb_engine_desc *train_engine(const dcb_op *op) {
    const dcb_engine_desc *e = DCB_ENGINE(op);
    return e == &dcb_engine_naive ? &dcb_engine_im2col : e;
}

/* Naive: the forward recomputed (the conv by dcb_conv2d_naive, the attention
 * in double), the backward as direct loops in double and the naive conv blocks. */
static dcb_status sp_bwd_naive_run(dcb_op *op, const dcb_train_ctx *c) {
    const splat_hp *p = HP(op);
    const int N = (int)c->x->shape[0], H = (int)c->x->shape[2], W = (int)c->x->shape[3];
    const int R = p->R, C = p->cout, Kc = p->Kc, cpg = C / Kc, CR = p->conv.cout, NI = p->inter;
    const size_t P = (size_t)c->y->shape[2] * c->y->shape[3], UN = (size_t)N * CR * P;
    const size_t wsz = (size_t)dcb_w(op, "conv_w")->size;
    const float *cw = dcb_w(op, "conv_w")->data, *fc1_w = dcb_w(op, "fc1_w")->data, *fc2_w = dcb_w(op, "fc2_w")->data;
    float *U = malloc(sizeof(float) * (2 * UN + wsz)), *dV = U ? U + UN : NULL;
    double *dbuf = malloc(sizeof(double) * ((size_t)N * (2 * C + 3 * NI + 3 * CR)));
    if (!U || !dbuf) {
        free(U), free(dbuf);
        return dcb_fail(DCB_OUT_OF_MEMORY, "splat naive backward: out of memory");
    }
    double *s = dbuf, *t = s + (size_t)N * C, *gz = t + (size_t)N * NI, *lg = gz + (size_t)N * NI;
    double *a = lg + (size_t)N * CR, *da = a + (size_t)N * CR, *dg = da + (size_t)N * CR, *ds = dg + (size_t)N * NI;
    dcb_conv2d_naive(&p->conv, N, H, W, c->x->data, cw, dcb_w(op, "conv_b")->data, U, op->threads);
    dcb_relu(U, UN);
    for (int n = 0; n < N; n++)
        for (int ch = 0; ch < C; ch++) {
            double acc = 0;
            for (int r = 0; r < R; r++)
                for (size_t k = 0; k < P; k++) acc += U[((size_t)n * CR + (size_t)r * C + ch) * P + k];
            s[(size_t)n * C + ch] = acc / (double)P;
        }
    attb_linear_f64(s, N, C, fc1_w, dcb_w(op, "fc1_b")->data, NI, Kc, t);
    for (size_t k = 0; k < (size_t)N * NI; k++) gz[k] = t[k] > 0 ? t[k] : 0;
    attb_linear_f64(gz, N, NI, fc2_w, dcb_w(op, "fc2_b")->data, CR, Kc, lg);
    for (int n = 0; n < N; n++)
        for (int q = 0; q < Kc; q++)
            for (int j = 0; j < cpg; j++) {
                const double *l = lg + (size_t)n * CR + (size_t)q * R * cpg + j;
                double *an = a + (size_t)n * CR + (size_t)q * cpg + j;
                for (int r = 0; r < R; r++) an[(size_t)r * C] = l[(size_t)r * cpg];
                if (R == 1) an[0] = 1.0 / (1.0 + exp(-an[0]));
                else attb_softmax_f64(an, C, R);
            }

    attb_da_f64(U, c->dy->data, N, C, R, P, (size_t)CR * P, (size_t)C * P, da);
    double *dl = lg; /* the logits are no longer needed */
    for (int n = 0; n < N; n++)
        for (int q = 0; q < Kc; q++)
            for (int j = 0; j < cpg; j++) {
                const double *an = a + (size_t)n * CR + (size_t)q * cpg + j, *gn = da + (size_t)n * CR + (size_t)q * cpg + j;
                double *l = dl + (size_t)n * CR + (size_t)q * R * cpg + j, dot = 0;
                for (int r = 0; r < R; r++) dot += an[(size_t)r * C] * gn[(size_t)r * C];
                for (int r = 0; r < R; r++)
                    l[(size_t)r * cpg] = R == 1 ? an[0] * (1 - an[0]) * gn[0] : an[(size_t)r * C] * (gn[(size_t)r * C] - dot);
            }
    attb_linear_bwd_f64(gz, N, NI, fc2_w, CR, Kc, dl, dg, dcb_dw(op, c, "fc2_w"), dcb_dw(op, c, "fc2_b"));
    for (size_t k = 0; k < (size_t)N * NI; k++) dg[k] = t[k] > 0 ? dg[k] : 0;
    attb_linear_bwd_f64(s, N, C, fc1_w, NI, Kc, dg, ds, dcb_dw(op, c, "fc1_w"), dcb_dw(op, c, "fc1_b"));
    attb_dv_f64(U, a, c->dy->data, ds, N, C, R, P, (size_t)CR * P, (size_t)C * P, dV);

    if (c->dx) dcb_conv2d_bwd_data_naive(&p->conv, N, H, W, dV, cw, c->dx->data, op->threads);
    float *dcw = dcb_dw(op, c, "conv_w"), *dcb = dcb_dw(op, c, "conv_b");
    if (dcw || dcb)
        dcb_conv2d_bwd_weight_naive(&p->conv, N, H, W, c->x->data, dV, dcw ? dcw : dV + UN, dcb, op->threads);
    free(U), free(dbuf);
    return DCB_OK;
}

/* What the GEMM backward's training forward keeps: U (N, cout*R, P) after
 * the ReLU, s (N, cout), g (N, inter) after the ReLU, the logits and
 * a (N, R, cout), in one block laid out as the forward's workspace. */
typedef struct sp_saved {
    float *U, *s, *g, *logit, *a;
} sp_saved;

static void sp_free_saved(void *v) {
    if (v) dcb_aligned_free(((sp_saved *)v)->U);
    free(v);
}

static dcb_status sp_bwd_forward(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void **saved) {
    const splat_hp *p = HP(op);
    const int N = (int)x->shape[0], H = (int)x->shape[2], W = (int)x->shape[3];
    const int R = p->R, C = p->cout, CR = p->conv.cout;
    const size_t P = (size_t)y->shape[2] * y->shape[3];
    const dcb_engine_desc *e = train_engine(op);
    const size_t wsb = dcb_engine_dyn_workspace(e, &p->conv, N, H, W, op->threads);
    const size_t o_s = dcb_align_up(sizeof(float) * N * CR * P), o_g = o_s + dcb_align_up(sizeof(float) * N * C);
    const size_t o_l = o_g + dcb_align_up(sizeof(float) * N * p->inter), total = o_l + sizeof(float) * N * CR * 2;
    sp_saved *sv = calloc(1, sizeof *sv);
    void *ws = wsb ? dcb_aligned_alloc(wsb) : NULL;
    if (!sv || !(sv->U = dcb_aligned_alloc(total)) || (wsb && !ws)) {
        sp_free_saved(sv);
        dcb_aligned_free(ws);
        return dcb_fail(DCB_OUT_OF_MEMORY, "splat training forward: out of memory");
    }
    *saved = sv;
    sv->s = (float *)((char *)sv->U + o_s);
    sv->g = (float *)((char *)sv->U + o_g);
    sv->logit = (float *)((char *)sv->U + o_l);
    sv->a = sv->logit + (size_t)N * CR;
    e->dyn_run(&p->conv, N, H, W, x->data, dcb_w(op, "conv_w")->data, dcb_w(op, "conv_b")->data, sv->U, ws,
               op->threads, NULL);
    dcb_aligned_free(ws);
    dcb_relu(sv->U, (size_t)N * CR * P);
    sp_attend(op, sv->U, N, P, sv->s, sv->g, sv->logit, sv->a);
    dcb_branch_mix(sv->U, sv->a, N, C, R, P, (size_t)CR * P, (size_t)C * P, y->data, op->threads);
    return DCB_OK;
}

static dcb_status sp_bwd_gemm_run(dcb_op *op, const dcb_train_ctx *c) {
    const splat_hp *p = HP(op);
    const sp_saved *sv = c->saved;
    const int N = (int)c->x->shape[0], H = (int)c->x->shape[2], W = (int)c->x->shape[3];
    const int R = p->R, C = p->cout, Kc = p->Kc, cpg = C / Kc, CR = p->conv.cout, NI = p->inter;
    const size_t P = (size_t)c->y->shape[2] * c->y->shape[3], UN = (size_t)N * CR * P;
    const size_t cws = dcb_conv2d_bwd_gemm_ws(&p->conv, N, H, W, op->threads);
    const size_t o_da = dcb_align_up(sizeof(float) * UN), o_dl = o_da + dcb_align_up(sizeof(float) * N * CR);
    const size_t o_dg = o_dl + dcb_align_up(sizeof(float) * N * CR), o_ds = o_dg + dcb_align_up(sizeof(float) * N * NI);
    const size_t o_ws = o_ds + dcb_align_up(sizeof(float) * N * C), total = o_ws + dcb_align_up(cws);
    char *buf = dcb_aligned_alloc(total);
    if (!buf) return dcb_fail(DCB_OUT_OF_MEMORY, "splat backward: out of memory");
    float *dV = (float *)buf, *da = (float *)(buf + o_da), *dl = (float *)(buf + o_dl);
    float *dg = (float *)(buf + o_dg), *ds = (float *)(buf + o_ds);

    attb_da(sv->U, c->dy->data, N, C, R, P, (size_t)CR * P, (size_t)C * P, da, op->threads);
    for (int n = 0; n < N; n++) /* back through the softmax (sigmoid), into the logits' order */
        for (int q = 0; q < Kc; q++)
            for (int j = 0; j < cpg; j++) {
                const float *an = sv->a + (size_t)n * CR + (size_t)q * cpg + j;
                float *gn = da + (size_t)n * CR + (size_t)q * cpg + j;
                float *l = dl + (size_t)n * CR + (size_t)q * R * cpg + j;
                if (R == 1) gn[0] *= an[0] * (1 - an[0]);
                else attb_softmax_bwd(an, gn, C, R);
                for (int r = 0; r < R; r++) l[(size_t)r * cpg] = gn[(size_t)r * C];
            }
    attb_linear_bwd(sv->g, N, NI, dcb_w(op, "fc2_w")->data, CR, Kc, dl, dg, dcb_dw(op, c, "fc2_w"),
                    dcb_dw(op, c, "fc2_b"), op->threads);
    attb_relu_bwd(sv->g, dg, (size_t)N * NI);
    attb_linear_bwd(sv->s, N, C, dcb_w(op, "fc1_w")->data, NI, Kc, dg, ds, dcb_dw(op, c, "fc1_w"),
                    dcb_dw(op, c, "fc1_b"), op->threads);
    attb_dv(sv->U, sv->a, c->dy->data, ds, N, C, R, P, (size_t)CR * P, (size_t)C * P, dV, op->threads);

    if (c->dx)
        dcb_conv2d_bwd_data_gemm(&p->conv, N, H, W, dV, dcb_w(op, "conv_w")->data, c->dx->data, buf + o_ws,
                                 op->threads);
    dcb_conv2d_bwd_weight_gemm(&p->conv, N, H, W, c->x->data, dV, dcb_dw(op, c, "conv_w"), dcb_dw(op, c, "conv_b"),
                               buf + o_ws, op->threads);
    dcb_aligned_free(buf);
    return DCB_OK;
}

static const dcb_bwd_vt sp_bwd_naive = {.name = "naive",
                                        .doc = "forward recomputed, direct loops in double, naive conv backward",
                                        .tol = 1e-6, .run = sp_bwd_naive_run};
static const dcb_bwd_vt sp_bwd_gemm = {.name = "gemm",
                                       .doc = "training forward keeps U and the attention; im2col + sgemm conv backward",
                                       .tol = 1e-4, .forward = sp_bwd_forward, .free_saved = sp_free_saved,
                                       .run = sp_bwd_gemm_run};
static const dcb_bwd_vt *const splat_bwds[] = {&sp_bwd_naive, &sp_bwd_gemm};

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
    .kernels = splat_kernels, .routing = splat_routing, DCB_BWDS(splat_bwds),
};
