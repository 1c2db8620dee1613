/* Pooling layers (docs/TRAINING.md "Layers"):
 *   maxpool, avgpool  k (required), stride (0 = k), pad (0, at most k/2 as in
 *       PyTorch); (N, C, H, W) -> (N, C, H', W'), H' = (H + 2 pad - k) / stride + 1
 *       (no ceil mode). maxpool pads with -inf, its ties (forward and
 *       gradient) go to the first maximum in row-major window order; avgpool
 *       divides by k*k, the padding included (count_include_pad=True).
 *   gap  layout "image": (N, C, ...) -> (N, C), the mean over everything
 *       after C ((N, C, H, W) the usual case); "sequence": (N, ..., C) -> (N, C),
 *       the mean over everything between N and C ((N, T, C) the usual case).
 * Costs (netcost.lua): pools acts = outputs and flops = k*k per output; gap
 * flops = input elements only. Work is split over the N*C planes (gap
 * sequence: over N), each plane owned by one thread: the results do not
 * depend on the thread count. */
#include "dcb_internal.h"

#include <stdlib.h>
#include <string.h>

/* Input elements below which a parallel region costs more than it saves. */
#define PAR_MIN 32768

typedef struct pool_hp {
    int k, stride, pad;
} pool_hp;

#define PHP(op) ((const pool_hp *)(op)->hp)

static const dcb_param_spec pool_params[] = {
    {"k", DCB_PT_INT, 0, NULL, 1, "square window size (required)"},
    {"stride", DCB_PT_INT, 0, NULL, 0, "stride (0: k)"},
    {"pad", DCB_PT_INT, 0, NULL, 0, "padding on every side (at most k/2)"},
};

static dcb_status pool_validate(dcb_op *op) {
    pool_hp *h = dcb_new_hp(op, sizeof *h);
    if (!h) return DCB_OUT_OF_MEMORY;
    dcb_status st;
    if ((st = dcb_get_required_int(op, "k", 1, &h->k)) != DCB_OK) return st;
    if ((st = dcb_get_int(op, "stride", 0, &h->stride)) != DCB_OK) return st;
    if ((st = dcb_get_int(op, "pad", 0, &h->pad)) != DCB_OK) return st;
    if (!h->stride) h->stride = h->k;
    if (2 * h->pad > h->k)
        return dcb_fail(DCB_INVALID_PARAM, "%s: pad=%d exceeds half the window k=%d", op->info->name, h->pad, h->k);
    return DCB_OK;
}

static int no_weights(const dcb_op *op, dcb_weight_spec *s) {
    (void)op, (void)s;
    return 0;
}

static dcb_status pool_out_shape(const dcb_op *op, int ndim, const int64_t *x, int *yn, int64_t *y) {
    const pool_hp *h = PHP(op);
    const char *nm = op->info->name;
    char s[128];
    if (ndim != 4)
        return dcb_fail(DCB_INVALID_SHAPE, "%s: input must be (N, C, H, W), got %s", nm, dcb_shape_str(ndim, x, s, sizeof s));
    for (int d = 0; d < 4; d++)
        if (x[d] < 1 || x[d] > INT32_MAX)
            return dcb_fail(DCB_INVALID_SHAPE, "%s: input shape %s has a bad size", nm, dcb_shape_str(ndim, x, s, sizeof s));
    if (x[2] + 2 * h->pad < h->k || x[3] + 2 * h->pad < h->k)
        return dcb_fail(DCB_INVALID_SHAPE, "%s: window k=%d exceeds the padded input %lldx%lld (pad=%d)", nm, h->k,
                        (long long)(x[2] + 2 * h->pad), (long long)(x[3] + 2 * h->pad), h->pad);
    *yn = 4;
    y[0] = x[0];
    y[1] = x[1];
    y[2] = (x[2] + 2 * h->pad - h->k) / h->stride + 1;
    y[3] = (x[3] + 2 * h->pad - h->k) / h->stride + 1;
    return DCB_OK;
}

static void pool_cost(const dcb_op *op, const int64_t *x, dcb_cost *c) {
    const pool_hp *h = PHP(op);
    const double ho = (double)((x[2] + 2 * h->pad - h->k) / h->stride + 1);
    const double wo = (double)((x[3] + 2 * h->pad - h->k) / h->stride + 1);
    const double outs = (double)x[0] * x[1] * ho * wo, ins = (double)x[0] * x[1] * x[2] * x[3];
    c->macs = 0;
    c->flops = (double)h->k * h->k * outs;
    c->params = 0;
    c->acts = outs;
    c->bytes = 4.0 * (ins + outs);
    c->dynamic_macs = 0;
}

/* The geometry of one run. */
typedef struct pgeo {
    int NC, H, W, Ho, Wo, k, s, p;
} pgeo;

static pgeo geo_of(const dcb_op *op, const int64_t *x) {
    const pool_hp *h = PHP(op);
    pgeo g = {.NC = (int)(x[0] * x[1]), .H = (int)x[2], .W = (int)x[3], .k = h->k, .s = h->stride, .p = h->pad};
    g.Ho = (g.H + 2 * g.p - g.k) / g.s + 1;
    g.Wo = (g.W + 2 * g.p - g.k) / g.s + 1;
    return g;
}

/* The window rows [*lo, *hi) of output i that lie inside the input. */
static inline void clip(int i, int s, int p, int k, int n, int *lo, int *hi) {
    const int a = i * s - p;
    *lo = a < 0 ? 0 : a;
    *hi = a + k < n ? a + k : n;
}

/* ------------------------------------------------------------- maxpool */
/* One plane: y and, when idx is non-NULL, the input offset of each
 * output's (first) maximum. The padding is -inf, so the maximum over the
 * window is the maximum over its in-bounds part (never empty: pad <= k/2). */
static void maxpool_plane(const pgeo *g, const float *x, float *y, int32_t *idx) {
    for (int i = 0; i < g->Ho; i++) {
        int u0, u1;
        clip(i, g->s, g->p, g->k, g->H, &u0, &u1);
        for (int j = 0; j < g->Wo; j++) {
            int v0, v1;
            clip(j, g->s, g->p, g->k, g->W, &v0, &v1);
            float m = -INFINITY;
            int at = u0 * g->W + v0;
            for (int u = u0; u < u1; u++) {
                const float *xr = x + (size_t)u * g->W;
                for (int v = v0; v < v1; v++)
                    if (xr[v] > m || isnan(xr[v])) { /* NaN propagates, as in PyTorch */
                        m = xr[v];
                        at = u * g->W + v;
                        if (isnan(m)) goto done;
                    }
            }
        done:
            y[(size_t)i * g->Wo + j] = m;
            if (idx) idx[(size_t)i * g->Wo + j] = at;
        }
    }
}

static void maxpool_all(const dcb_op *op, const pgeo *g, const float *x, float *y, int32_t *idx) {
    const size_t in = (size_t)g->H * g->W, on = (size_t)g->Ho * g->Wo;
#pragma omp parallel for schedule(static) num_threads(op->threads) if (op->threads > 1 && (double)g->NC * in > PAR_MIN)
    for (int nc = 0; nc < g->NC; nc++) maxpool_plane(g, x + nc * in, y + nc * on, idx ? idx + nc * on : NULL);
}

static dcb_status maxpool_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    (void)ws;
    const pgeo g = geo_of(op, x->shape);
    const double t0 = dcb_now();
    maxpool_all(op, &g, x->data, y->data, NULL);
    DCB_PHASE_ADD(prof, DCB_PHASE_COMBINE, t0);
    return DCB_OK;
}

/* The training forward keeps the argmax of every output (an offset in its plane). */
static dcb_status maxpool_train_fwd(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void **saved) {
    const pgeo g = geo_of(op, x->shape);
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)y->size);
    if (!idx) return dcb_fail(DCB_OUT_OF_MEMORY, "maxpool: out of memory for the training forward's argmax");
    maxpool_all(op, &g, x->data, y->data, idx);
    *saved = idx;
    return DCB_OK;
}

static void free_saved(void *saved) { free(saved); }

static dcb_status maxpool_bwd_run(dcb_op *op, const dcb_train_ctx *c) {
    if (!c->dx) return DCB_OK;
    const pgeo g = geo_of(op, c->x->shape);
    const size_t in = (size_t)g.H * g.W, on = (size_t)g.Ho * g.Wo;
    const int32_t *idx = c->saved;
    const float *dy = c->dy->data;
    float *dx = c->dx->data;
#pragma omp parallel for schedule(static) num_threads(op->threads) if (op->threads > 1 && (double)g.NC * in > PAR_MIN)
    for (int nc = 0; nc < g.NC; nc++) {
        float *d = dx + nc * in;
        const float *gy = dy + nc * on;
        const int32_t *ix = idx + nc * on;
        memset(d, 0, sizeof(float) * in);
        for (size_t o = 0; o < on; o++) d[ix[o]] += gy[o];
    }
    return DCB_OK;
}

static const dcb_impl_vt maxpool_naive = {.name = "naive", .doc = "window loops clipped to the input", .tol = 1e-6,
                                          .run = maxpool_run};
static const dcb_impl_vt *const maxpool_impls[] = {&maxpool_naive};
static const dcb_bwd_vt maxpool_bwd_naive = {.name = "naive",
                                             .doc = "the training forward keeps the argmax; dy scattered to it",
                                             .tol = 1e-6, .forward = maxpool_train_fwd, .free_saved = free_saved,
                                             .run = maxpool_bwd_run};
static const dcb_bwd_vt *const maxpool_bwds[] = {&maxpool_bwd_naive};

const dcb_op_info dcb_maxpool_info = {
    .name = "maxpool", .doc = "2-D max pooling (-inf padding, ties to the first maximum)", DCB_PARAMS(pool_params),
    DCB_IMPLS(maxpool_impls), DCB_BWDS(maxpool_bwds), .layout = DCB_INPUT_IMAGE, .channels_param = NULL,
    .validate = pool_validate, .weights = no_weights, .out_shape = pool_out_shape, .cost = pool_cost,
};

/* ------------------------------------------------------------- avgpool */
static dcb_status avgpool_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    (void)ws;
    const pgeo g = geo_of(op, x->shape);
    const size_t in = (size_t)g.H * g.W, on = (size_t)g.Ho * g.Wo;
    const float inv = 1.0f / ((float)g.k * g.k);
    const double t0 = dcb_now();
#pragma omp parallel for schedule(static) num_threads(op->threads) if (op->threads > 1 && (double)g.NC * in > PAR_MIN)
    for (int nc = 0; nc < g.NC; nc++) {
        const float *xp = x->data + nc * in;
        float *yp = y->data + nc * on;
        for (int i = 0; i < g.Ho; i++) {
            int u0, u1;
            clip(i, g.s, g.p, g.k, g.H, &u0, &u1);
            for (int j = 0; j < g.Wo; j++) {
                int v0, v1;
                clip(j, g.s, g.p, g.k, g.W, &v0, &v1);
                float acc = 0;
                for (int u = u0; u < u1; u++)
                    for (int v = v0; v < v1; v++) acc += xp[(size_t)u * g.W + v];
                yp[(size_t)i * g.Wo + j] = acc * inv;
            }
        }
    }
    DCB_PHASE_ADD(prof, DCB_PHASE_COMBINE, t0);
    return DCB_OK;
}

/* dx: every output's dy / k^2 added over its window's in-bounds part. */
static dcb_status avgpool_bwd_run(dcb_op *op, const dcb_train_ctx *c) {
    if (!c->dx) return DCB_OK;
    const pgeo g = geo_of(op, c->x->shape);
    const size_t in = (size_t)g.H * g.W, on = (size_t)g.Ho * g.Wo;
    const float inv = 1.0f / ((float)g.k * g.k);
#pragma omp parallel for schedule(static) num_threads(op->threads) if (op->threads > 1 && (double)g.NC * in > PAR_MIN)
    for (int nc = 0; nc < g.NC; nc++) {
        float *d = c->dx->data + nc * in;
        const float *gy = c->dy->data + nc * on;
        memset(d, 0, sizeof(float) * in);
        for (int i = 0; i < g.Ho; i++) {
            int u0, u1;
            clip(i, g.s, g.p, g.k, g.H, &u0, &u1);
            for (int j = 0; j < g.Wo; j++) {
                int v0, v1;
                clip(j, g.s, g.p, g.k, g.W, &v0, &v1);
                const float t = gy[(size_t)i * g.Wo + j] * inv;
                for (int u = u0; u < u1; u++)
                    for (int v = v0; v < v1; v++) d[(size_t)u * g.W + v] += t;
            }
        }
    }
    return DCB_OK;
}

static const dcb_impl_vt avgpool_naive = {.name = "naive", .doc = "window sums clipped to the input, / k^2",
                                          .tol = 1e-6, .run = avgpool_run};
static const dcb_impl_vt *const avgpool_impls[] = {&avgpool_naive};
static const dcb_bwd_vt avgpool_bwd_naive = {.name = "naive", .doc = "dy / k^2 added over each window", .tol = 1e-6,
                                             .run = avgpool_bwd_run};
static const dcb_bwd_vt *const avgpool_bwds[] = {&avgpool_bwd_naive};

const dcb_op_info dcb_avgpool_info = {
    .name = "avgpool", .doc = "2-D average pooling (the zero padding counted: divides by k*k)",
    DCB_PARAMS(pool_params), DCB_IMPLS(avgpool_impls), DCB_BWDS(avgpool_bwds), .layout = DCB_INPUT_IMAGE,
    .channels_param = NULL, .validate = pool_validate, .weights = no_weights, .out_shape = pool_out_shape,
    .cost = pool_cost,
};

/* ----------------------------------------------------------------- gap */
typedef struct gap_hp {
    int sequence;
    int ndim; /* of the last shape out_shape saw: the cost hook gets none (layer_act.c) */
} gap_hp;

#define GHP(op) ((const gap_hp *)(op)->hp)

static const dcb_param_spec gap_params[] = {
    {"layout", DCB_PT_STRING, 0, "image", 0,
     "image: (N, C, H, W) -> (N, C); sequence: (N, T, C) -> (N, C), the mean over T"},
};

static dcb_status gap_validate(dcb_op *op) {
    gap_hp *h = dcb_new_hp(op, sizeof *h);
    if (!h) return DCB_OUT_OF_MEMORY;
    const char *l = dcb_ps(op, "layout");
    if (!l || (strcmp(l, "image") && strcmp(l, "sequence")))
        return dcb_fail(DCB_INVALID_PARAM, "gap: layout='%s' is invalid (valid: image, sequence)", l ? l : "");
    h->sequence = !strcmp(l, "sequence");
    h->ndim = 4;
    return DCB_OK;
}

static dcb_status gap_out_shape(const dcb_op *op, int ndim, const int64_t *x, int *yn, int64_t *y) {
    char s[128];
    const int seq = GHP(op)->sequence;
    if (ndim < 3)
        return dcb_fail(DCB_INVALID_SHAPE, "gap: input must be %s, got %s", seq ? "(N, T, C)" : "(N, C, H, W)",
                        dcb_shape_str(ndim, x, s, sizeof s));
    for (int d = 0; d < ndim; d++)
        if (x[d] < 1)
            return dcb_fail(DCB_INVALID_SHAPE, "gap: input shape %s has a bad size", dcb_shape_str(ndim, x, s, sizeof s));
    ((gap_hp *)op->hp)->ndim = ndim;
    *yn = 2;
    y[0] = x[0];
    y[1] = seq ? x[ndim - 1] : x[1];
    return DCB_OK;
}

/* N, C and the count S averaged over, of input x. */
static void gap_dims(const dcb_op *op, const int64_t *x, int64_t *N, int64_t *C, int64_t *S) {
    const int nd = GHP(op)->ndim, seq = GHP(op)->sequence;
    *N = x[0];
    *C = seq ? x[nd - 1] : x[1];
    *S = 1;
    for (int d = seq ? 1 : 2; d < (seq ? nd - 1 : nd); d++) *S *= x[d];
}

static void gap_cost(const dcb_op *op, const int64_t *x, dcb_cost *c) {
    int64_t N, C, S;
    gap_dims(op, x, &N, &C, &S);
    const double ins = (double)N * C * S;
    c->macs = 0;
    c->flops = ins;
    c->params = 0;
    c->acts = 0;
    c->bytes = 4.0 * (ins + (double)N * C);
    c->dynamic_macs = 0;
}

static dcb_status gap_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    (void)ws;
    int64_t N, C, S;
    gap_dims(op, x->shape, &N, &C, &S);
    const double inv = 1.0 / (double)S, t0 = dcb_now();
    const int par = op->threads > 1 && (double)x->size > PAR_MIN;
    if (!GHP(op)->sequence) {
        dcb_gap(x->data, (int)N, (int)C, (size_t)S, y->data, par ? op->threads : 1);
    } else {
        /* per sample, the column means of its (S, C) rows, in double, a
         * block of channels at a time (no scratch to allocate) */
        enum { CB = 256 };
        const int64_t nb = (C + CB - 1) / CB;
#pragma omp parallel for collapse(2) schedule(static) num_threads(op->threads) if (par)
        for (int64_t n = 0; n < N; n++)
            for (int64_t b = 0; b < nb; b++) {
                double acc[CB];
                const int64_t c0 = b * CB, m = C - c0 < CB ? C - c0 : CB;
                const float *xn = x->data + (size_t)n * S * C + c0;
                for (int64_t c = 0; c < m; c++) acc[c] = 0;
                for (int64_t t = 0; t < S; t++) {
                    const float *xr = xn + (size_t)t * C;
#pragma omp simd
                    for (int64_t c = 0; c < m; c++) acc[c] += xr[c];
                }
                float *yn = y->data + (size_t)n * C + c0;
                for (int64_t c = 0; c < m; c++) yn[c] = (float)(acc[c] * inv);
            }
    }
    DCB_PHASE_ADD(prof, DCB_PHASE_COMBINE, t0);
    return DCB_OK;
}

/* dx = dy[n, c] / S at every position averaged over. */
static dcb_status gap_bwd_run(dcb_op *op, const dcb_train_ctx *c) {
    if (!c->dx) return DCB_OK;
    int64_t N, C, S;
    gap_dims(op, c->x->shape, &N, &C, &S);
    const float inv = (float)(1.0 / (double)S);
    const float *dy = c->dy->data;
    float *dx = c->dx->data;
    const int par = op->threads > 1 && (double)c->x->size > PAR_MIN;
    if (!GHP(op)->sequence) {
#pragma omp parallel for schedule(static) num_threads(op->threads) if (par)
        for (int64_t nc = 0; nc < N * C; nc++) {
            const float v = dy[nc] * inv;
            float *d = dx + (size_t)nc * S;
            for (int64_t i = 0; i < S; i++) d[i] = v;
        }
    } else {
#pragma omp parallel for schedule(static) num_threads(op->threads) if (par)
        for (int64_t nt = 0; nt < N * S; nt++) {
            const float *g = dy + (size_t)(nt / S) * C;
            float *d = dx + (size_t)nt * C;
            for (int64_t ch = 0; ch < C; ch++) d[ch] = g[ch] * inv;
        }
    }
    return DCB_OK;
}

static const dcb_impl_vt gap_naive = {.name = "naive", .doc = "sums in double", .tol = 1e-6, .run = gap_run};
static const dcb_impl_vt *const gap_impls[] = {&gap_naive};
static const dcb_bwd_vt gap_bwd_naive = {.name = "naive", .doc = "dy / S broadcast", .tol = 1e-6, .run = gap_bwd_run};
static const dcb_bwd_vt *const gap_bwds[] = {&gap_bwd_naive};

const dcb_op_info dcb_gap_info = {
    .name = "gap", .doc = "global average pooling: image (N, C, H, W) -> (N, C), or sequence (N, T, C) -> (N, C)",
    DCB_PARAMS(gap_params), DCB_IMPLS(gap_impls), DCB_BWDS(gap_bwds), .layout = DCB_INPUT_IMAGE,
    .channels_param = NULL, .validate = gap_validate, .weights = no_weights, .out_shape = gap_out_shape,
    .cost = gap_cost,
};
