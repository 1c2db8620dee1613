/* batchnorm (docs/TRAINING.md "Layers"), PyTorch's BatchNorm{1,2,3}d on
 * x (N, C, ...) of any ndim >= 2, channels at dim 1:
 *   inference  y = (x - running_mean) / sqrt(running_var + eps) * weight + bias;
 *   training   the same with the batch's mean and biased variance over N and
 *              every position; the running statistics are updated in place,
 *              r = (1 - momentum) r + momentum b, with the unbiased variance
 *              for running_var (M / (M - 1), M the values per channel), and
 *              like PyTorch it refuses M = 1.
 * Weights: weight (C) = 1, bias (C) = 0, and the buffers running_mean (C) = 0
 * and running_var (C) = 1 (zero gradient; not counted as params).
 * Cost (netcost.lua): params 2*C, flops 2 per element (scale and shift), no
 * macs or acts. Work is split over the N*C planes, each owned by one thread;
 * per-channel statistics are plane partial sums combined in a fixed order,
 * so that the results do not depend on the thread count. */
#include "dcb_internal.h"

#include <stdlib.h>
#include <string.h>

#define PAR_MIN 32768

typedef struct bn_hp {
    int C;
    double eps, momentum;
    int ndim; /* of the last shape out_shape saw: the cost hook gets none (layer_act.c) */
} bn_hp;

#define HP(op) ((const bn_hp *)(op)->hp)
enum { W_WEIGHT, W_BIAS, W_MEAN, W_VAR };

static const dcb_param_spec bn_params[] = {
    {"channels", DCB_PT_INT, 0, NULL, 1, "channels C, dimension 1 of x (required)"},
    {"eps", DCB_PT_FLOAT, 1e-5, NULL, 0, "added to the variance"},
    {"momentum", DCB_PT_FLOAT, 0.1, NULL, 0, "running statistics: r = (1 - momentum) r + momentum batch"},
};

static dcb_status bn_validate(dcb_op *op) {
    bn_hp *h = dcb_new_hp(op, sizeof *h);
    if (!h) return DCB_OUT_OF_MEMORY;
    dcb_status st;
    if ((st = dcb_get_required_int(op, "channels", 1, &h->C)) != DCB_OK) return st;
    h->eps = dcb_pv(op, "eps");
    h->momentum = dcb_pv(op, "momentum");
    if (!(h->eps > 0)) return dcb_fail(DCB_INVALID_PARAM, "batchnorm: eps=%g is invalid (need > 0)", h->eps);
    if (!(h->momentum >= 0 && h->momentum <= 1))
        return dcb_fail(DCB_INVALID_PARAM, "batchnorm: momentum=%g is invalid (need 0 <= momentum <= 1)", h->momentum);
    h->ndim = 4;
    return DCB_OK;
}

static int bn_weights(const dcb_op *op, dcb_weight_spec *s) {
    const int64_t C = HP(op)->C;
    s[W_WEIGHT] = (dcb_weight_spec){.name = "weight", .ndim = 1, .shape = {C}, .fan_in = 1, .flags = DCB_W_INIT_ONE};
    s[W_BIAS] = (dcb_weight_spec){
        .name = "bias", .ndim = 1, .shape = {C}, .fan_in = 1, .flags = DCB_W_INIT_ZERO | DCB_W_BIAS};
    s[W_MEAN] = (dcb_weight_spec){
        .name = "running_mean", .ndim = 1, .shape = {C}, .fan_in = 1, .flags = DCB_W_BUFFER | DCB_W_INIT_ZERO};
    s[W_VAR] = (dcb_weight_spec){
        .name = "running_var", .ndim = 1, .shape = {C}, .fan_in = 1, .flags = DCB_W_BUFFER | DCB_W_INIT_ONE};
    return 4;
}

static dcb_status bn_out_shape(const dcb_op *op, int ndim, const int64_t *x, int *yn, int64_t *y) {
    char s[128];
    if (ndim < 2)
        return dcb_fail(DCB_INVALID_SHAPE, "batchnorm: input must be (N, C, ...), got %s", dcb_shape_str(ndim, x, s, sizeof s));
    for (int d = 0; d < ndim; d++)
        if (x[d] < 1)
            return dcb_fail(DCB_INVALID_SHAPE, "batchnorm: input shape %s has a bad size", dcb_shape_str(ndim, x, s, sizeof s));
    if (x[1] != HP(op)->C)
        return dcb_fail(DCB_INVALID_SHAPE, "batchnorm: input %s has %lld channels, channels=%d",
                        dcb_shape_str(ndim, x, s, sizeof s), (long long)x[1], HP(op)->C);
    ((bn_hp *)op->hp)->ndim = ndim;
    *yn = ndim;
    memcpy(y, x, sizeof(int64_t) * (size_t)ndim);
    return DCB_OK;
}

static void bn_cost(const dcb_op *op, const int64_t *x, dcb_cost *c) {
    double e = 1;
    for (int d = 0; d < HP(op)->ndim; d++) e *= (double)x[d];
    c->macs = 0;
    c->flops = 2 * e;
    c->params = 2.0 * HP(op)->C;
    c->acts = 0;
    c->bytes = 4.0 * (2 * e + c->params);
    c->dynamic_macs = 0;
}

/* N, C and the positions S of one plane, of input x. */
static void bn_dims(const dcb_op *op, const int64_t *x, int64_t *N, int64_t *S) {
    *N = x[0];
    *S = 1;
    for (int d = 2; d < HP(op)->ndim; d++) *S *= x[d];
}

static inline const float *wdata(const dcb_op *op, int i) { return op->w[i]->data; }

/* y = (x - m) * a + b over one plane of n values. */
static inline void affine(const float *x, float *y, size_t n, float m, float a, float b) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) y[i] = (x[i] - m) * a + b;
}

/* ------------------------------------------------------------- inference */
static dcb_status bn_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    (void)ws;
    const bn_hp *h = HP(op);
    int64_t N, S;
    bn_dims(op, x->shape, &N, &S);
    const int C = h->C;
    const float *w = wdata(op, W_WEIGHT), *b = wdata(op, W_BIAS), *rm = wdata(op, W_MEAN), *rv = wdata(op, W_VAR);
    const double t0 = dcb_now();
#pragma omp parallel for schedule(static) num_threads(op->threads) if (op->threads > 1 && x->size > PAR_MIN)
    for (int64_t nc = 0; nc < N * C; nc++) {
        const int c = (int)(nc % C);
        const float a = (float)(w[c] / sqrt((double)rv[c] + h->eps));
        affine(x->data + (size_t)nc * S, y->data + (size_t)nc * S, (size_t)S, rm[c], a, b[c]);
    }
    DCB_PHASE_ADD(prof, DCB_PHASE_COMBINE, t0);
    return DCB_OK;
}

/* -------------------------------------------------------------- training */
/* What the training forward keeps: the batch mean and 1/sqrt(var + eps)
 * per channel, and room for the per-plane partial sums (2 per plane). */
typedef struct bn_saved {
    double *mean, *istd, *part;
} bn_saved;

static void bn_free_saved(void *p) {
    bn_saved *s = p;
    if (s) free(s->mean);
    free(s);
}

static bn_saved *bn_saved_new(int C, int64_t NC) {
    bn_saved *s = calloc(1, sizeof *s);
    double *m = malloc(sizeof(double) * (size_t)(2 * C + 2 * NC));
    if (!s || !m) {
        free(s);
        free(m);
        return NULL;
    }
    s->mean = m;
    s->istd = m + C;
    s->part = m + 2 * C;
    return s;
}

static dcb_status bn_train_fwd(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void **saved) {
    const bn_hp *h = HP(op);
    int64_t N, S;
    bn_dims(op, x->shape, &N, &S);
    const int C = h->C;
    const int64_t NC = N * C;
    const double M = (double)N * S;
    if (M < 2) {
        char s[128];
        return dcb_fail(DCB_INVALID_SHAPE, "batchnorm: training needs more than 1 value per channel, got input %s",
                        dcb_shape_str(x->ndim, x->shape, s, sizeof s));
    }
    bn_saved *sv = bn_saved_new(C, NC);
    if (!sv) return dcb_fail(DCB_OUT_OF_MEMORY, "batchnorm: out of memory for the training forward");
    const int par = op->threads > 1 && x->size > PAR_MIN;
    /* Per plane, the sums of x - K and (x - K)^2, K = the channel's first
     * value: one pass, without the cancellation of E[x^2] - E[x]^2 when the
     * mean is large against the spread. */
#pragma omp parallel for schedule(static) num_threads(op->threads) if (par)
    for (int64_t nc = 0; nc < NC; nc++) {
        const float *xp = x->data + (size_t)nc * S;
        const double K = x->data[(size_t)(nc % C) * S];
        double s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
        for (int64_t i = 0; i < S; i++) {
            const double d = (double)xp[i] - K;
            s1 += d;
            s2 += d * d;
        }
        sv->part[2 * nc] = s1;
        sv->part[2 * nc + 1] = s2;
    }
    float *rm = op->w[W_MEAN]->data, *rv = op->w[W_VAR]->data;
    const double mom = h->momentum;
    for (int c = 0; c < C; c++) {
        double s1 = 0, s2 = 0;
        for (int64_t n = 0; n < N; n++) s1 += sv->part[2 * (n * C + c)], s2 += sv->part[2 * (n * C + c) + 1];
        const double d = s1 / M, var0 = s2 / M - d * d, var = var0 > 0 ? var0 : 0;
        sv->mean[c] = x->data[(size_t)c * S] + d;
        sv->istd[c] = 1.0 / sqrt(var + h->eps);
        rm[c] = (float)((1 - mom) * rm[c] + mom * sv->mean[c]);
        rv[c] = (float)((1 - mom) * rv[c] + mom * var * M / (M - 1));
    }
    const float *w = wdata(op, W_WEIGHT), *b = wdata(op, W_BIAS);
#pragma omp parallel for schedule(static) num_threads(op->threads) if (par)
    for (int64_t nc = 0; nc < NC; nc++) {
        const int c = (int)(nc % C);
        affine(x->data + (size_t)nc * S, y->data + (size_t)nc * S, (size_t)S, (float)sv->mean[c],
               (float)(sv->istd[c] * w[c]), b[c]);
    }
    *saved = sv;
    return DCB_OK;
}

/* With xh = (x - mean) istd over the M values of a channel:
 *   dbias = sum dy,  dweight = sum dy xh,
 *   dx = weight istd (dy - dbias / M - xh dweight / M). */
static dcb_status bn_bwd_run(dcb_op *op, const dcb_train_ctx *c) {
    const bn_hp *h = HP(op);
    bn_saved *sv = c->saved;
    if (!sv) return dcb_fail(DCB_INVALID_ARGUMENT, "batchnorm backward: no saved statistics");
    int64_t N, S;
    bn_dims(op, c->x->shape, &N, &S);
    const int C = h->C;
    const int64_t NC = N * C;
    const double M = (double)N * S;
    const float *x = c->x->data, *dy = c->dy->data;
    const int par = op->threads > 1 && c->x->size > PAR_MIN;
#pragma omp parallel for schedule(static) num_threads(op->threads) if (par)
    for (int64_t nc = 0; nc < NC; nc++) {
        const float *xp = x + (size_t)nc * S, *gp = dy + (size_t)nc * S;
        const double m = sv->mean[nc % C];
        double g1 = 0, g2 = 0;
#pragma omp simd reduction(+ : g1, g2)
        for (int64_t i = 0; i < S; i++) {
            g1 += gp[i];
            g2 += (double)gp[i] * ((double)xp[i] - m);
        }
        sv->part[2 * nc] = g1;
        sv->part[2 * nc + 1] = g2;
    }
    /* per channel, in place: channel ch's sums go to the slots of its plane
     * n = 0, which no later channel reads */
    for (int ch = 0; ch < C; ch++) {
        double g1 = 0, g2 = 0;
        for (int64_t n = 0; n < N; n++) g1 += sv->part[2 * (n * C + ch)], g2 += sv->part[2 * (n * C + ch) + 1];
        sv->part[2 * ch] = g1;
        sv->part[2 * ch + 1] = g2;
    }
    float *dw = dcb_dw(op, c, "weight"), *db = dcb_dw(op, c, "bias");
    float *dm = dcb_dw(op, c, "running_mean"), *dv = dcb_dw(op, c, "running_var");
    for (int ch = 0; ch < C; ch++) {
        if (db) db[ch] = (float)sv->part[2 * ch];
        if (dw) dw[ch] = (float)(sv->part[2 * ch + 1] * sv->istd[ch]);
    }
    if (dm) memset(dm, 0, sizeof(float) * (size_t)C);
    if (dv) memset(dv, 0, sizeof(float) * (size_t)C);
    if (c->dx) {
        const float *w = wdata(op, W_WEIGHT);
        float *dx = c->dx->data;
#pragma omp parallel for schedule(static) num_threads(op->threads) if (par)
        for (int64_t nc = 0; nc < NC; nc++) {
            const int ch = (int)(nc % C);
            const double is = sv->istd[ch];
            const float k1 = (float)(w[ch] * is), k2 = (float)(sv->part[2 * ch] / M);
            const float k3 = (float)(is * is * sv->part[2 * ch + 1] / M), m = (float)sv->mean[ch];
            const float *xp = x + (size_t)nc * S, *gp = dy + (size_t)nc * S;
            float *d = dx + (size_t)nc * S;
#pragma omp simd
            for (int64_t i = 0; i < S; i++) d[i] = k1 * (gp[i] - k2 - (xp[i] - m) * k3);
        }
    }
    return DCB_OK;
}

static const dcb_impl_vt bn_naive = {.name = "naive", .doc = "per-channel scale and shift from the running statistics",
                                     .tol = 1e-6, .run = bn_run};
static const dcb_impl_vt *const bn_impls[] = {&bn_naive};
static const dcb_bwd_vt bn_bwd_naive = {.name = "naive",
                                        .doc = "batch statistics in double; the training forward keeps mean and 1/std",
                                        .tol = 1e-6, .forward = bn_train_fwd, .free_saved = bn_free_saved,
                                        .run = bn_bwd_run};
static const dcb_bwd_vt *const bn_bwds[] = {&bn_bwd_naive};

const dcb_op_info dcb_batchnorm_info = {
    .name = "batchnorm", .doc = "batch normalisation over (N, C, ...): batch statistics in training, running ones in inference",
    DCB_PARAMS(bn_params), DCB_IMPLS(bn_impls), DCB_BWDS(bn_bwds), .layout = DCB_INPUT_IMAGE,
    .channels_param = "channels", .validate = bn_validate, .weights = bn_weights, .out_shape = bn_out_shape,
    .cost = bn_cost, .train_differs = 1,
};
