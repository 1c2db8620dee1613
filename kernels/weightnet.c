/* weightnet: WeightNet (Ma et al. 2020), dense and depthwise, as docs/OPERATORS.md
 * states it. Routing a = sigmoid(fc2(fc1(gap(x)))) (no nonlinearity between
 * the FCs, as in the reference code); the per-sample kernel comes from a
 * grouped FC over a; then one conv per sample on any conv2d engine
 * ("combine_then_conv/<engine>"). */
#include "dcb_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

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

/* ------------------------------------------------------------ backward
 * Both backwards recompute the routing and the kernels with the forward's own
 * float code (so W_n is bit-identical to what the forward convolved with),
 * take dW_n (N, P) from a per-sample conv backward, then run the chain back:
 * dwgen and da from the grouped FC, dz = da * a(1-a), the two FCs, and the
 * gap's share of dx (dg / (H*W) on every pixel). */
typedef struct wn_fwd {
    float *g, *hid, *a, *W, *dW;  /* (N, cin), (N, hidden), (N, A), (N, P), (N, P) */
} wn_fwd;

static void wn_fwd_free(wn_fwd *f) {
    dcb_aligned_free(f->g);
    dcb_aligned_free(f->hid);
    dcb_aligned_free(f->a);
    dcb_aligned_free(f->W);
    dcb_aligned_free(f->dW);
}

static dcb_status wn_fwd_recompute(dcb_op *op, const dcb_tensor *x, wn_fwd *f) {
    const wn_hp *h = HP(op);
    const size_t N = (size_t)x->shape[0];
    memset(f, 0, sizeof *f);
    if (!op->prepared) {
        dcb_status st = dcb_op_prepare(op);
        if (st != DCB_OK) return st;
    }
    f->g = dcb_aligned_alloc(sizeof(float) * N * h->c.cin);
    f->hid = dcb_aligned_alloc(sizeof(float) * N * h->hidden);
    f->a = dcb_aligned_alloc(sizeof(float) * N * h->A);
    f->W = dcb_aligned_alloc(sizeof(float) * N * (size_t)h->P);
    f->dW = dcb_aligned_alloc(sizeof(float) * N * (size_t)h->P);
    if (!f->g || !f->hid || !f->a || !f->W || !f->dW) {
        wn_fwd_free(f);
        return dcb_fail(DCB_OUT_OF_MEMORY, "weightnet backward: out of memory");
    }
    wn_route(op, x->data, (int)N, (size_t)x->shape[2] * x->shape[3], f->g, f->hid, f->a);
    wn_generate(op, op->state, f->a, (int)N, f->W);
    return DCB_OK;
}

/* From da (N, A): dfc2_w, dfc2_b, dfc1_w, dfc1_b and the gap's share of dx
 * (added). O(N*A*hidden): in double for both backwards. */
static dcb_status wn_bwd_route(dcb_op *op, const dcb_train_ctx *c, const wn_fwd *f, const double *da) {
    const wn_hp *h = HP(op);
    const int N = (int)c->x->shape[0], A = h->A, hd = h->hidden, cin = h->c.cin;
    const size_t HW = (size_t)c->x->shape[2] * c->x->shape[3];
    double *dz = malloc(sizeof(double) * ((size_t)N * A + (size_t)N * hd + (size_t)N * cin));
    if (!dz) return dcb_fail(DCB_OUT_OF_MEMORY, "weightnet backward: out of memory");
    double *dh = dz + (size_t)N * A, *dg = dh + (size_t)N * hd;
    for (size_t i = 0; i < (size_t)N * A; i++) dz[i] = da[i] * f->a[i] * (1.0 - f->a[i]);
    const float *w2 = dcb_w(op, "fc2_w")->data, *w1 = dcb_w(op, "fc1_w")->data;
    float *dw2 = dcb_dw(op, c, "fc2_w"), *db2 = dcb_dw(op, c, "fc2_b");
    float *dw1 = dcb_dw(op, c, "fc1_w"), *db1 = dcb_dw(op, c, "fc1_b");
    for (int j = 0; j < A; j++) {
        double sb = 0;
        for (int n = 0; n < N; n++) sb += dz[(size_t)n * A + j];
        if (db2) db2[j] = (float)sb;
        if (dw2)
            for (int k = 0; k < hd; k++) {
                double s = 0;
                for (int n = 0; n < N; n++) s += dz[(size_t)n * A + j] * f->hid[(size_t)n * hd + k];
                dw2[(size_t)j * hd + k] = (float)s;
            }
    }
    for (int n = 0; n < N; n++)
        for (int k = 0; k < hd; k++) {
            double s = 0;
            for (int j = 0; j < A; j++) s += dz[(size_t)n * A + j] * w2[(size_t)j * hd + k];
            dh[(size_t)n * hd + k] = s;
        }
    for (int k = 0; k < hd; k++) {
        double sb = 0;
        for (int n = 0; n < N; n++) sb += dh[(size_t)n * hd + k];
        if (db1) db1[k] = (float)sb;
        if (dw1)
            for (int ci = 0; ci < cin; ci++) {
                double s = 0;
                for (int n = 0; n < N; n++) s += dh[(size_t)n * hd + k] * f->g[(size_t)n * cin + ci];
                dw1[(size_t)k * cin + ci] = (float)s;
            }
    }
    if (c->dx) {
        for (int n = 0; n < N; n++)
            for (int ci = 0; ci < cin; ci++) {
                double s = 0;
                for (int k = 0; k < hd; k++) s += dh[(size_t)n * hd + k] * w1[(size_t)k * cin + ci];
                dg[(size_t)n * cin + ci] = s / (double)HW;
            }
#pragma omp parallel for schedule(static) num_threads(op->threads) if (op->threads > 1)
        for (int nc = 0; nc < N * cin; nc++) {
            float *d = c->dx->data + (size_t)nc * HW;
            const float v = (float)dg[nc];
            for (size_t i = 0; i < HW; i++) d[i] += v;
        }
    }
    free(dz);
    return DCB_OK;
}

static dcb_status wn_bwd_naive_run(dcb_op *op, const dcb_train_ctx *c) {
    const wn_hp *h = HP(op);
    const int N = (int)c->x->shape[0], H = (int)c->x->shape[2], W = (int)c->x->shape[3];
    const size_t P = (size_t)h->P, xs = (size_t)h->c.cin * H * W, ys = (size_t)c->dy->size / N;
    const int lam = h->lam, A = h->A, Pg = h->Pg;
    wn_fwd f;
    dcb_status st = wn_fwd_recompute(op, c->x, &f);
    if (st != DCB_OK) return st;
    double *da = malloc(sizeof(double) * (size_t)N * A);
    if (!da) {
        wn_fwd_free(&f);
        return dcb_fail(DCB_OUT_OF_MEMORY, "weightnet backward: out of memory");
    }
    for (int n = 0; n < N; n++) {
        dcb_conv2d_bwd_weight_naive(&h->c, 1, H, W, c->x->data + n * xs, c->dy->data + n * ys, f.dW + n * P, NULL,
                                    op->threads);
        if (c->dx)
            dcb_conv2d_bwd_data_naive(&h->c, 1, H, W, c->dy->data + n * ys, f.W + n * P, c->dx->data + n * xs,
                                      op->threads);
    }
    const float *wg = dcb_w(op, "wgen_w")->data;
    float *dwg = dcb_dw(op, c, "wgen_w");
    if (dwg)
#pragma omp parallel for schedule(static) num_threads(op->threads)
        for (long fi = 0; fi < (long)P; fi++) {
            const size_t gam = (size_t)fi / Pg;
            for (int m = 0; m < lam; m++) {
                double s = 0;
                for (int n = 0; n < N; n++) s += (double)f.dW[n * P + fi] * f.a[(size_t)n * A + gam * lam + m];
                dwg[(size_t)fi * lam + m] = (float)s;
            }
        }
#pragma omp parallel for schedule(static) num_threads(op->threads)
    for (int n = 0; n < N; n++)
        for (int j = 0; j < A; j++) {
            const size_t f0 = (size_t)(j / lam) * Pg;
            const int m = j % lam;
            double s = 0;
            for (int r = 0; r < Pg; r++) s += (double)f.dW[n * P + f0 + r] * wg[(f0 + r) * lam + m];
            da[(size_t)n * A + j] = s;
        }
    st = wn_bwd_route(op, c, &f, da);
    free(da);
    wn_fwd_free(&f);
    return st;
}

/* Fast: per sample, the dense conv backward as two sgemms around an
 * im2col / col2im, or depthwise as direct loops; samples run in parallel
 * (each writes only its own dW_n and dx_n, so no reduction depends on the
 * thread count); the generation's gradients are contiguous float loops. */
/* Two 8-float vector accumulators (GCC vector extensions): the plain C
 * version kept horizontal adds inside the loop. A fixed order, so results do
 * not depend on alignment or threads. */
typedef float wn_v8 __attribute__((vector_size(32)));
static inline float dotf(const float *a, const float *b, int n) {
    wn_v8 s0 = {0}, s1 = {0}, a0, b0, a1, b1;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        memcpy(&a0, a + i, sizeof a0);
        memcpy(&b0, b + i, sizeof b0);
        memcpy(&a1, a + i + 8, sizeof a1);
        memcpy(&b1, b + i + 8, sizeof b1);
        s0 += a0 * b0;
        s1 += a1 * b1;
    }
    for (; i + 8 <= n; i += 8) {
        memcpy(&a0, a + i, sizeof a0);
        memcpy(&b0, b + i, sizeof b0);
        s0 += a0 * b0;
    }
    s0 += s1;
    float r = ((s0[0] + s0[4]) + (s0[1] + s0[5])) + ((s0[2] + s0[6]) + (s0[3] + s0[7]));
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

/* [lo, hi): the outputs i whose tap k reads an input row in [0, L). */
static void tap_range(int L, int Lo, int k, const dcb_conv2d_p *p, int *lo, int *hi) {
    const int off = k * p->dil - p->pad; /* input = i*stride + off */
    int a = off >= 0 ? 0 : (-off + p->stride - 1) / p->stride;
    int b = (L - 1 - off) < 0 ? 0 : (L - 1 - off) / p->stride + 1;
    if (b > Lo) b = Lo;
    *lo = a;
    *hi = b > a ? b : a;
}

/* Depthwise at stride 1 on zero-padded planes read flat: output (i, j) is
 * q = i*Wp + j and its tap (u, v) is q + u*dil*Wp + v*dil, so each tap is one
 * long dot (dW) and one long axpy (dx) instead of H' rows of W' (the
 * columns j >= W' carry dy = 0). pad: 2 * Hp*Wp + Ho*Wp floats. */
static void dw_bwd_sample_s1(const dcb_conv2d_p *p, int H, int W, int Ho, int Wo, const float *x, const float *dy,
                             const float *w, float *dw, float *dx, float *pad) {
    const int kk = p->kh * p->kw, Hp = H + 2 * p->pad, Wp = W + 2 * p->pad, L = (Ho - 1) * Wp + Wo;
    float *restrict xp = pad, *restrict dxp = xp + (size_t)Hp * Wp, *restrict dyp = dxp + (size_t)Hp * Wp;
    memset(xp, 0, sizeof(float) * (size_t)Hp * Wp);
    memset(dyp, 0, sizeof(float) * (size_t)Ho * Wp);
    for (int ch = 0; ch < p->cin; ch++) {
        const float *xc = x + (size_t)ch * H * W, *dyc = dy + (size_t)ch * Ho * Wo, *wc = w + (size_t)ch * kk;
        for (int i = 0; i < H; i++) memcpy(xp + (size_t)(i + p->pad) * Wp + p->pad, xc + (size_t)i * W, sizeof(float) * W);
        for (int i = 0; i < Ho; i++) memcpy(dyp + (size_t)i * Wp, dyc + (size_t)i * Wo, sizeof(float) * Wo);
        if (dx) memset(dxp, 0, sizeof(float) * (size_t)Hp * Wp);
        for (int u = 0; u < p->kh; u++)
            for (int v = 0; v < p->kw; v++) {
                const size_t off = (size_t)u * p->dil * Wp + (size_t)v * p->dil;
                dw[(size_t)ch * kk + u * p->kw + v] = dotf(dyp, xp + off, L);
                if (dx) {
                    const float wv = wc[u * p->kw + v];
                    float *restrict d = dxp + off;
                    for (int q = 0; q < L; q++) d[q] += wv * dyp[q];
                }
            }
        if (dx)
            for (int i = 0; i < H; i++)
                memcpy(dx + ((size_t)ch * H + i) * W, dxp + (size_t)(i + p->pad) * Wp + p->pad, sizeof(float) * W);
    }
}

static void dw_bwd_sample(const dcb_conv2d_p *p, int H, int W, int Ho, int Wo, const float *x, const float *dy,
                          const float *w, float *dw, float *dx) {
    const int kk = p->kh * p->kw, s = p->stride;
    for (int ch = 0; ch < p->cin; ch++) {
        const float *xc = x + (size_t)ch * H * W, *dyc = dy + (size_t)ch * Ho * Wo, *wc = w + (size_t)ch * kk;
        float *dxc = dx ? dx + (size_t)ch * H * W : NULL;
        if (dxc) memset(dxc, 0, sizeof(float) * (size_t)H * W);
        for (int u = 0; u < p->kh; u++) {
            int i0, i1;
            tap_range(H, Ho, u, p, &i0, &i1);
            for (int v = 0; v < p->kw; v++) {
                int j0, j1;
                tap_range(W, Wo, v, p, &j0, &j1);
                const int ou = u * p->dil - p->pad, ov = v * p->dil - p->pad, nj = j1 - j0;
                const float wv = wc[u * p->kw + v];
                float acc = 0;
                for (int i = i0; i < i1 && nj > 0; i++) {
                    const float *dyr = dyc + (size_t)i * Wo + j0;
                    const size_t xr = (size_t)(i * s + ou) * W + (size_t)(j0 * s + ov);
                    if (s == 1) {
                        acc += dotf(dyr, xc + xr, nj);
                        if (dxc) {
                            float *d = dxc + xr;
                            for (int j = 0; j < nj; j++) d[j] += wv * dyr[j];
                        }
                    } else {
                        for (int j = 0; j < nj; j++) acc += dyr[j] * xc[xr + (size_t)j * s];
                        if (dxc)
                            for (int j = 0; j < nj; j++) dxc[xr + (size_t)j * s] += wv * dyr[j];
                    }
                }
                dw[(size_t)ch * kk + u * p->kw + v] = acc;
            }
        }
    }
}

/* cols (cin*kh*kw, Ho*Wo) of one image, and its adjoint (added into x). */
static void im2col(const dcb_conv2d_p *p, int H, int W, int Ho, int Wo, const float *x, float *cols) {
    const size_t P = (size_t)Ho * Wo;
    for (int ch = 0; ch < p->cin; ch++)
        for (int u = 0; u < p->kh; u++)
            for (int v = 0; v < p->kw; v++) {
                float *d = cols + (((size_t)ch * p->kh + u) * p->kw + v) * P;
                int i0, i1, j0, j1;
                tap_range(H, Ho, u, p, &i0, &i1);
                tap_range(W, Wo, v, p, &j0, &j1);
                memset(d, 0, sizeof(float) * P);
                const float *xc = x + (size_t)ch * H * W;
                for (int i = i0; i < i1; i++) {
                    const float *xr = xc + (size_t)(i * p->stride + u * p->dil - p->pad) * W + v * p->dil - p->pad;
                    for (int j = j0; j < j1; j++) d[(size_t)i * Wo + j] = xr[(size_t)j * p->stride];
                }
            }
}

static void col2im(const dcb_conv2d_p *p, int H, int W, int Ho, int Wo, const float *cols, float *x) {
    const size_t P = (size_t)Ho * Wo;
    memset(x, 0, sizeof(float) * (size_t)p->cin * H * W);
    for (int ch = 0; ch < p->cin; ch++)
        for (int u = 0; u < p->kh; u++)
            for (int v = 0; v < p->kw; v++) {
                const float *d = cols + (((size_t)ch * p->kh + u) * p->kw + v) * P;
                int i0, i1, j0, j1;
                tap_range(H, Ho, u, p, &i0, &i1);
                tap_range(W, Wo, v, p, &j0, &j1);
                float *xc = x + (size_t)ch * H * W;
                for (int i = i0; i < i1; i++) {
                    float *xr = xc + (size_t)(i * p->stride + u * p->dil - p->pad) * W + v * p->dil - p->pad;
                    for (int j = j0; j < j1; j++) xr[(size_t)j * p->stride] += d[(size_t)i * Wo + j];
                }
            }
}

static dcb_status wn_bwd_fast_run(dcb_op *op, const dcb_train_ctx *c) {
    const wn_hp *h = HP(op);
    const dcb_conv2d_p *p = &h->c;
    const int N = (int)c->x->shape[0], H = (int)c->x->shape[2], W = (int)c->x->shape[3];
    const int Ho = (int)c->dy->shape[2], Wo = (int)c->dy->shape[3], Pix = Ho * Wo;
    const size_t P = (size_t)h->P, xs = (size_t)p->cin * H * W, ys = (size_t)p->cout * Pix;
    const int lam = h->lam, A = h->A, Pg = h->Pg, Kd = p->cin * p->kh * p->kw;
    wn_fwd f;
    dcb_status st = wn_fwd_recompute(op, c->x, &f);
    if (st != DCB_OK) return st;
    const int T = op->threads;
    const size_t Hp = (size_t)H + 2 * p->pad, Wp = (size_t)W + 2 * p->pad;
    const size_t per = h->dw ? (p->stride == 1 ? dcb_align_up(sizeof(float) * (2 * Hp * Wp + (size_t)Ho * Wp)) / sizeof(float) : 0)
                             : 2 * dcb_align_up(sizeof(float) * (size_t)Kd * Pix) / sizeof(float);
    float *scratch = per ? dcb_aligned_alloc(sizeof(float) * per * T) : NULL;
    double *da = malloc(sizeof(double) * (size_t)N * A);
    if ((per && !scratch) || !da) {
        dcb_aligned_free(scratch);
        free(da);
        wn_fwd_free(&f);
        return dcb_fail(DCB_OUT_OF_MEMORY, "weightnet backward: out of memory");
    }
    dcb_blas_threads_for(1);
#pragma omp parallel num_threads(T)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *cols = scratch ? scratch + (size_t)tid * per : NULL, *dcols = cols && !h->dw ? cols + per / 2 : NULL;
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *xn = c->x->data + n * xs, *dyn = c->dy->data + n * ys;
            float *dxn = c->dx ? c->dx->data + n * xs : NULL;
            if (h->dw) {
                if (p->stride == 1)
                    dw_bwd_sample_s1(p, H, W, Ho, Wo, xn, dyn, f.W + n * P, f.dW + n * P, dxn, cols);
                else
                    dw_bwd_sample(p, H, W, Ho, Wo, xn, dyn, f.W + n * P, f.dW + n * P, dxn);
                continue;
            }
            im2col(p, H, W, Ho, Wo, xn, cols);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p->cout, Kd, Pix, 1.0f, dyn, Pix, cols, Pix, 0.0f,
                        f.dW + n * P, Kd);
            if (dxn) {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Kd, Pix, p->cout, 1.0f, f.W + n * P, Kd, dyn,
                            Pix, 0.0f, dcols, Pix);
                col2im(p, H, W, Ho, Wo, dcols, dxn);
            }
        }
    }
    /* generation: wt (lam, P) is wgen_w transposed (the prepared state) */
    const float *wt = op->state;
    float *dwg = dcb_dw(op, c, "wgen_w");
    if (dwg)
#pragma omp parallel for schedule(static) num_threads(T)
        for (long g = 0; g < h->ngroups; g++) {
            const size_t f0 = (size_t)g * Pg;
            for (int r = 0; r < Pg; r++)
                for (int m = 0; m < lam; m++) dwg[(f0 + r) * lam + m] = 0;
            for (int n = 0; n < N; n++)
                for (int m = 0; m < lam; m++) {
                    const float am = f.a[(size_t)n * A + (size_t)g * lam + m];
                    const float *d = f.dW + n * P + f0;
                    for (int r = 0; r < Pg; r++) dwg[(f0 + r) * lam + m] += am * d[r];
                }
        }
#pragma omp parallel for schedule(static) num_threads(T)
    for (int n = 0; n < N; n++)
        for (int j = 0; j < A; j++) {
            const size_t f0 = (size_t)(j / lam) * Pg;
            da[(size_t)n * A + j] = dotf(f.dW + n * P + f0, wt + (size_t)(j % lam) * P + f0, Pg);
        }
    st = wn_bwd_route(op, c, &f, da);
    dcb_aligned_free(scratch);
    free(da);
    wn_fwd_free(&f);
    return st;
}

static const dcb_bwd_vt wn_bwd_naive = {
    .name = "naive", .doc = "per-sample conv backward as direct loops in double, the chain rule in double",
    .tol = 1e-6, .run = wn_bwd_naive_run};
static const dcb_bwd_vt wn_bwd_fast = {
    .name = "gemm", .doc = "per-sample im2col + sgemm (depthwise: direct loops), samples in parallel",
    .tol = 1e-4, .run = wn_bwd_fast_run};
static const dcb_bwd_vt *const wn_bwds[] = {&wn_bwd_naive, &wn_bwd_fast};

const dcb_op_info dcb_weightnet_info = {
    DCB_BWDS(wn_bwds),
    .name = "weightnet", .layout = DCB_INPUT_IMAGE, .channels_param = "cin",
    .doc = "WeightNet (Ma et al. 2020): kernels from a grouped FC over sigmoid routing; dense or depthwise",
    DCB_PARAMS(wn_params), DCB_IMPLS(wn_impls), .validate = wn_validate, .weights = wn_weights,
    .out_shape = wn_out_shape, .cost = wn_cost, .kernels = wn_kernels, .routing = wn_routing,
};
