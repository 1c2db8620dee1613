/* se: Squeeze-and-Excitation (docs/OPERATORS.md "se").
 *   s = sigmoid(fc2_w . relu(fc1_w . gap(x) + fc1_b) + fc2_b);  y = s[n,c] * x[n,c].
 * One implementation, "naive": it is the M = G = 1 corner of WeightNet, and
 * its cost is the two FCs; there is no convolution to choose an engine for. */
#include "dcb_internal.h"
#include "attention_backward.h"

#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

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

/* --------------------------------------------------------------- backward
 * With g = gap(x), h = relu(fc1(g)), s = sigmoid(fc2(h)), y = s * x:
 *   ds[n,c] = <dy[n,c], x[n,c]>,  dz2 = ds s (1 - s),  dh = fc2_w^T dz2,
 *   dz1 = dh (h > 0),  dg = fc1_w^T dz1,  dx = s dy + dg / HW;
 * the weight gradients are the outer products summed over n. */

/* Naive: the router recomputed in double, direct loops, samples in order. */
static dcb_status se_bwd_naive_run(dcb_op *op, const dcb_train_ctx *c) {
    const se_hp *h = HP(op);
    const int N = (int)c->x->shape[0], C = h->C, Hd = h->hidden;
    const size_t HW = (size_t)c->x->shape[2] * c->x->shape[3];
    const float *w1 = dcb_w(op, "fc1_w")->data, *b1 = dcb_w(op, "fc1_b")->data;
    const float *w2 = dcb_w(op, "fc2_w")->data, *b2 = dcb_w(op, "fc2_b")->data;
    const float *x = c->x->data, *dy = c->dy->data;
    const size_t F = 2 * (size_t)C * Hd + Hd + C;
    double *buf = calloc(F + 4 * (size_t)C + 3 * (size_t)Hd, sizeof(double));
    if (!buf) return dcb_fail(DCB_OUT_OF_MEMORY, "se naive backward: out of memory");
    double *dw1 = buf, *db1 = dw1 + (size_t)Hd * C, *dw2 = db1 + Hd, *db2 = dw2 + (size_t)C * Hd;
    double *g = db2 + C, *s = g + C, *dz2 = s + C, *dg = dz2 + C, *hh = dg + C, *dh = hh + Hd, *z1 = dh + Hd;
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * C * HW, *dyn = dy + (size_t)n * C * HW;
        for (int ch = 0; ch < C; ch++) {
            double acc = 0;
            for (size_t k = 0; k < HW; k++) acc += xn[(size_t)ch * HW + k];
            g[ch] = acc / (double)HW;
        }
        for (int j = 0; j < Hd; j++) {
            double acc = b1[j];
            for (int ch = 0; ch < C; ch++) acc += (double)w1[(size_t)j * C + ch] * g[ch];
            z1[j] = acc;
            hh[j] = acc > 0 ? acc : 0;
        }
        for (int ch = 0; ch < C; ch++) {
            double acc = b2[ch];
            for (int j = 0; j < Hd; j++) acc += (double)w2[(size_t)ch * Hd + j] * hh[j];
            s[ch] = 1.0 / (1.0 + exp(-acc));
            double d = 0;
            for (size_t k = 0; k < HW; k++) d += (double)dyn[(size_t)ch * HW + k] * xn[(size_t)ch * HW + k];
            dz2[ch] = d * s[ch] * (1.0 - s[ch]);
            db2[ch] += dz2[ch];
            for (int j = 0; j < Hd; j++) dw2[(size_t)ch * Hd + j] += dz2[ch] * hh[j];
        }
        for (int j = 0; j < Hd; j++) {
            double acc = 0;
            for (int ch = 0; ch < C; ch++) acc += (double)w2[(size_t)ch * Hd + j] * dz2[ch];
            dh[j] = z1[j] > 0 ? acc : 0;
            db1[j] += dh[j];
            for (int ch = 0; ch < C; ch++) dw1[(size_t)j * C + ch] += dh[j] * g[ch];
        }
        for (int ch = 0; ch < C; ch++) {
            double acc = 0;
            for (int j = 0; j < Hd; j++) acc += (double)w1[(size_t)j * C + ch] * dh[j];
            dg[ch] = acc / (double)HW;
        }
        if (c->dx)
            for (int ch = 0; ch < C; ch++) {
                float *dxc = c->dx->data + ((size_t)n * C + ch) * HW;
                for (size_t k = 0; k < HW; k++) dxc[k] = (float)(s[ch] * dyn[(size_t)ch * HW + k] + dg[ch]);
            }
    }
    const char *names[4] = {"fc1_w", "fc1_b", "fc2_w", "fc2_b"};
    const double *src[4] = {dw1, db1, dw2, db2};
    const size_t len[4] = {(size_t)Hd * C, (size_t)Hd, (size_t)C * Hd, (size_t)C};
    for (int i = 0; i < 4; i++) {
        float *d = dcb_dw(op, c, names[i]);
        if (d)
            for (size_t k = 0; k < len[i]; k++) d[k] = (float)src[i][k];
    }
    free(buf);
    return DCB_OK;
}

/* What the fused backward's training forward keeps: the router's g (N, C),
 * h (N, hidden) after the ReLU and s (N, C), each aligned. */
static dcb_status se_bwd_forward(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void **saved) {
    void *ws = dcb_aligned_alloc(se_ws(op, x->shape));
    if (!ws) return dcb_fail(DCB_OUT_OF_MEMORY, "se training forward: out of memory");
    *saved = ws;
    return se_run(op, x, y, ws, NULL); /* se_run leaves g, s and h in ws */
}

static void se_free_saved(void *v) { dcb_aligned_free(v); }

/* Fused: one sample at a time, so that its x and dy stay in cache between the
 * <dy, x> sums and the dx write; the tiny FC backward runs per sample. Each
 * thread takes a fixed block of samples and sums its weight gradients in its
 * own partial; the partials are added in thread order. */
static dcb_status se_bwd_fused_run(dcb_op *op, const dcb_train_ctx *c) {
    const se_hp *h = HP(op);
    const int N = (int)c->x->shape[0], C = h->C, Hd = h->hidden;
    const size_t HW = (size_t)c->x->shape[2] * c->x->shape[3];
    const char *base = c->saved;
    const float *G = (const float *)base, *S = (const float *)(base + rnd((size_t)N * C));
    const float *Hh = (const float *)((const char *)S + rnd((size_t)N * C));
    const float *w1 = dcb_w(op, "fc1_w")->data, *w2 = dcb_w(op, "fc2_w")->data;
    const float *x = c->x->data, *dy = c->dy->data;
    const int T = op->threads > N ? (N > 0 ? N : 1) : op->threads;
    const size_t F = 2 * (size_t)C * Hd + Hd + C, FS = rnd(F + 2 * (size_t)C + (size_t)Hd) / sizeof(float);
    float *part = dcb_aligned_alloc(sizeof(float) * FS * T);
    if (!part) return dcb_fail(DCB_OUT_OF_MEMORY, "se backward: out of memory");
#pragma omp parallel num_threads(T) if (T > 1)
    {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        /* restrict: the FC loops below vectorise only when nothing aliases */
        float *restrict dw1 = part + FS * t, *restrict db1 = dw1 + (size_t)Hd * C;
        float *restrict dw2 = db1 + Hd, *restrict db2 = dw2 + (size_t)C * Hd;
        float *restrict dz2 = db2 + C, *restrict dg = dz2 + C, *restrict dh = dg + C;
        memset(dw1, 0, sizeof(float) * F);
        const int n0 = (int)((long)N * t / T), n1 = (int)((long)N * (t + 1) / T);
        const float invHW = (float)(1.0 / (double)HW);
        for (int n = n0; n < n1; n++) {
            const float *xn = x + (size_t)n * C * HW, *dyn = dy + (size_t)n * C * HW;
            const float *restrict sn = S + (size_t)n * C, *restrict hn = Hh + (size_t)n * Hd;
            const float *restrict gn = G + (size_t)n * C;
            for (int ch = 0; ch < C; ch++) {
                dz2[ch] = attb_dot(dyn + (size_t)ch * HW, xn + (size_t)ch * HW, HW) * sn[ch] * (1.0f - sn[ch]);
                db2[ch] += dz2[ch];
            }
            for (int j = 0; j < Hd; j++) dh[j] = 0;
            for (int ch = 0; ch < C; ch++) {
                const float dzc = dz2[ch];
                const float *restrict w2r = w2 + (size_t)ch * Hd;
                float *restrict dw2r = dw2 + (size_t)ch * Hd;
                for (int j = 0; j < Hd; j++) {
                    dw2r[j] += dzc * hn[j];
                    dh[j] += dzc * w2r[j];
                }
            }
            for (int ch = 0; ch < C; ch++) dg[ch] = 0;
            for (int j = 0; j < Hd; j++) {
                const float dj = hn[j] > 0 ? dh[j] : 0.0f;
                if (dj == 0.0f) continue; /* adds nothing anywhere */
                db1[j] += dj;
                const float *restrict w1r = w1 + (size_t)j * C;
                float *restrict dw1r = dw1 + (size_t)j * C;
                for (int ch = 0; ch < C; ch++) {
                    dw1r[ch] += dj * gn[ch];
                    dg[ch] += dj * w1r[ch];
                }
            }
            if (c->dx)
                for (int ch = 0; ch < C; ch++) {
                    const float sv = sn[ch], gv = dg[ch] * invHW;
                    const float *dyc = dyn + (size_t)ch * HW;
                    float *dxc = c->dx->data + ((size_t)n * C + ch) * HW;
                    for (size_t k = 0; k < HW; k++) dxc[k] = sv * dyc[k] + gv;
                }
        }
    }
    for (int t = 1; t < T; t++)
        for (size_t k = 0; k < F; k++) part[k] += part[FS * t + k];
    const char *names[4] = {"fc1_w", "fc1_b", "fc2_w", "fc2_b"};
    const size_t off[4] = {0, (size_t)Hd * C, (size_t)Hd * C + Hd, 2 * (size_t)Hd * C + Hd};
    const size_t len[4] = {(size_t)Hd * C, (size_t)Hd, (size_t)C * Hd, (size_t)C};
    for (int i = 0; i < 4; i++) {
        float *d = dcb_dw(op, c, names[i]);
        if (d) memcpy(d, part + off[i], sizeof(float) * len[i]);
    }
    dcb_aligned_free(part);
    return DCB_OK;
}

static const dcb_bwd_vt se_bwd_naive = {.name = "naive", .doc = "router recomputed, direct loops in double",
                                        .tol = 1e-6, .run = se_bwd_naive_run};
static const dcb_bwd_vt se_bwd_fused = {.name = "fused",
                                        .doc = "training forward keeps the router; per-sample fused backward",
                                        .tol = 1e-4, .forward = se_bwd_forward, .free_saved = se_free_saved,
                                        .run = se_bwd_fused_run};
static const dcb_bwd_vt *const se_bwds[] = {&se_bwd_naive, &se_bwd_fused};

const dcb_op_info dcb_se_info = {
    .name = "se", .doc = "Squeeze-and-Excitation: channel scaling by sigmoid(fc2(relu(fc1(gap(x)))))",
    DCB_PARAMS(se_params), DCB_IMPLS(se_impls), .layout = DCB_INPUT_IMAGE, .channels_param = "channels",
    .validate = se_validate, .weights = se_weights, .out_shape = se_out_shape, .cost = se_cost,
    .kernels = se_kernels, .routing = se_routing, DCB_BWDS(se_bwds),
};
