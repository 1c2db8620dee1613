/* localconv: unshared (locally connected) convolution. Every output position
 * (i, j) has its own (cout, cin, kh, kw) kernel, so the weights depend on the
 * input size: H and W are hyperparameters and an input of another size is
 * rejected rather than silently cropped.
 *
 * COSTS (per image, H' x W' the output size; docs/OPERATORS.md COSTS, conv rule
 * without weight sharing):
 *   macs   = kh*kw*cin*cout*H'*W'  (+ cout*H'*W' with bias); no dynamic term
 *   params = H'*W'*cout*cin*kh*kw  (+ cout*H'*W' with bias)
 *   acts   = cout*H'*W'
 *   flops  = 2*macs (no elementwise work besides the bias, already in macs)
 *   bytes  = 4 * (input + params + output)
 */
#include "dcb_internal.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static const dcb_param_spec localconv_params[] = {
    DCB_CHANNEL_PARAMS,
    DCB_CONV_GEOMETRY_PARAMS,
    {"bias", DCB_PT_BOOL, 0, NULL, 0, "add a bias per output element (cout, H', W')"},
    {"H", DCB_PT_INT, 0, NULL, 1, "input height (required: the weights depend on position)"},
    {"W", DCB_PT_INT, 0, NULL, 1, "input width (required: the weights depend on position)"},
};

typedef struct localconv_hp {
    dcb_conv2d_p c;     /* groups is always 1 */
    int H, W, ho, wo;
} localconv_hp;

#define HP(op) ((const localconv_hp *)(op)->hp)

static dcb_status localconv_validate(dcb_op *op) {
    localconv_hp *p = dcb_new_hp(op, sizeof *p);
    if (!p) return DCB_OUT_OF_MEMORY;
    dcb_status st = dcb_conv2d_read_params(op, "localconv", &p->c);
    if (st != DCB_OK) return st;
    if (isnan(dcb_pv(op, "H"))) return dcb_fail(DCB_INVALID_PARAM, "localconv: H is required (the input height)");
    if (isnan(dcb_pv(op, "W"))) return dcb_fail(DCB_INVALID_PARAM, "localconv: W is required (the input width)");
    if ((st = dcb_get_int(op, "H", 1, &p->H)) != DCB_OK) return st;
    if ((st = dcb_get_int(op, "W", 1, &p->W)) != DCB_OK) return st;
    const long eh = (long)p->c.dil * (p->c.kh - 1) + 1, ew = (long)p->c.dil * (p->c.kw - 1) + 1;
    if (eh > (long)p->H + 2L * p->c.pad)
        return dcb_fail(DCB_INVALID_PARAM,
                        "localconv: kernel height %ld (kh=%d, dilation=%d) exceeds the padded input height %ld (H=%d, pad=%d)",
                        eh, p->c.kh, p->c.dil, (long)p->H + 2L * p->c.pad, p->H, p->c.pad);
    if (ew > (long)p->W + 2L * p->c.pad)
        return dcb_fail(DCB_INVALID_PARAM,
                        "localconv: kernel width %ld (kw=%d, dilation=%d) exceeds the padded input width %ld (W=%d, pad=%d)",
                        ew, p->c.kw, p->c.dil, (long)p->W + 2L * p->c.pad, p->W, p->c.pad);
    p->ho = dcb_conv_out(p->H, p->c.kh, p->c.stride, p->c.pad, p->c.dil);
    p->wo = dcb_conv_out(p->W, p->c.kw, p->c.stride, p->c.pad, p->c.dil);
    return DCB_OK;
}

static int localconv_weights(const dcb_op *op, dcb_weight_spec *s) {
    const localconv_hp *p = HP(op);
    const double fan_in = (double)p->c.cin * p->c.kh * p->c.kw;
    int n = 0;
    s[n++] = (dcb_weight_spec){"weight", 6, {p->ho, p->wo, p->c.cout, p->c.cin, p->c.kh, p->c.kw}, fan_in, 0};
    if (p->c.bias) s[n++] = (dcb_weight_spec){"bias", 3, {p->c.cout, p->ho, p->wo}, fan_in, 1};
    return n;
}

static dcb_status localconv_out_shape(const dcb_op *op, int ndim, const int64_t *x, int *yn, int64_t *y) {
    const localconv_hp *p = HP(op);
    /* The size check comes first: a wrong size is the likelier mistake than
     * a kernel that does not fit, and its message says what was expected. */
    if (ndim == 4 && (x[2] != p->H || x[3] != p->W))
        return dcb_fail(DCB_INVALID_SHAPE, "localconv: input is %lldx%lld but H=%d, W=%d", (long long)x[2],
                        (long long)x[3], p->H, p->W);
    return dcb_conv2d_out_shape("localconv", &p->c, ndim, x, yn, y);
}

static void localconv_cost(const dcb_op *op, const int64_t *x, dcb_cost *c) {
    const localconv_hp *p = HP(op);
    const double N = (double)x[0];
    const double outs = (double)p->c.cout * p->ho * p->wo;
    const double wparams = (double)p->c.kh * p->c.kw * p->c.cin * outs;
    const double bparams = p->c.bias ? outs : 0;
    c->macs = N * (wparams + bparams);
    c->flops = 2 * c->macs;
    c->params = wparams + bparams;
    c->acts = N * outs;
    c->bytes = 4.0 * (N * p->c.cin * (double)p->H * p->W + c->params + c->acts);
    c->dynamic_macs = 0;
}

static const float *bias_of(const dcb_op *op) {
    const dcb_tensor *b = dcb_w(op, "bias");
    return b ? b->data : NULL;
}

/* ------------------------------------------------------------------ naive */
static dcb_status naive_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    (void)ws;
    const localconv_hp *p = HP(op);
    const dcb_conv2d_p *c = &p->c;
    const int N = (int)x->shape[0], H = p->H, W = p->W, Ho = p->ho, Wo = p->wo;
    const int K = c->cin * c->kh * c->kw;
    const float *w = dcb_w(op, "weight")->data, *b = bias_of(op);
    const double t0 = dcb_now();
#pragma omp parallel for collapse(2) schedule(static) num_threads(op->threads)
    for (int n = 0; n < N; n++)
        for (int o = 0; o < c->cout; o++)
            for (int i = 0; i < Ho; i++)
                for (int j = 0; j < Wo; j++) {
                    const size_t pos = (size_t)i * Wo + j;
                    const float *wo_ = w + (pos * c->cout + o) * K;
                    double acc = b ? b[(size_t)o * Ho * Wo + pos] : 0.0;
                    for (int ci = 0; ci < c->cin; ci++) {
                        const float *xc = x->data + ((size_t)n * c->cin + ci) * H * W;
                        for (int u = 0; u < c->kh; u++) {
                            const int ii = i * c->stride + u * c->dil - c->pad;
                            if (ii < 0 || ii >= H) continue;
                            for (int v = 0; v < c->kw; v++) {
                                const int jj = j * c->stride + v * c->dil - c->pad;
                                if (jj < 0 || jj >= W) continue;
                                acc += (double)wo_[((size_t)ci * c->kh + u) * c->kw + v] * xc[(size_t)ii * W + jj];
                            }
                        }
                    }
                    y->data[((size_t)n * c->cout + o) * Ho * Wo + pos] = (float)acc;
                }
    DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
    return DCB_OK;
}

static const dcb_impl_vt impl_naive = {.name = "naive", .doc = "direct loops with double accumulation: the oracle",
                                       .tol = 1e-06, .run = naive_run};

/* ----------------------------------------------------------------- im2col
 * One small GEMM per output position, batched over N: the (N, cin*kh*kw)
 * patch matrix times weight[i, j]^T (cin*kh*kw, cout) gives (N, cout), which
 * is scattered into y[:, :, i, j]. The GEMMs are tiny (N rows), so the
 * threads go to the positions, each thread with its own slab of workspace,
 * and BLAS runs single-threaded inside. */
static size_t slab_floats(const localconv_hp *p, int N) {
    const size_t k = (size_t)p->c.cin * p->c.kh * p->c.kw;
    const size_t f = (size_t)N * (k + (size_t)p->c.cout);
    return (f + DCB_ALIGN / sizeof(float) - 1) / (DCB_ALIGN / sizeof(float)) * (DCB_ALIGN / sizeof(float));
}

static size_t im2col_ws(const dcb_op *op, const int64_t *x) {
    return sizeof(float) * slab_floats(HP(op), (int)x[0]) * (size_t)op->threads;
}

static dcb_status im2col_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    const localconv_hp *p = HP(op);
    const dcb_conv2d_p *c = &p->c;
    const int N = (int)x->shape[0], H = p->H, W = p->W, Ho = p->ho, Wo = p->wo;
    const int K = c->cin * c->kh * c->kw, kk = c->kh * c->kw, cout = c->cout;
    const size_t P = (size_t)Ho * Wo, slab = slab_floats(p, N);
    const float *w = dcb_w(op, "weight")->data, *b = bias_of(op);
    double t_gather = 0, t_gemm = 0, t_scatter = 0;
    int team = 1;
    dcb_blas_threads_for(1);
#pragma omp parallel num_threads(op->threads) reduction(+ : t_gather, t_gemm, t_scatter)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#pragma omp single
        team = omp_get_num_threads();
#endif
        float *patch = (float *)ws + (size_t)tid * slab;
        float *out = patch + (size_t)N * K;
#pragma omp for schedule(static)
        for (long pos = 0; pos < (long)P; pos++) {
            const int i = (int)(pos / Wo), j = (int)(pos % Wo);
            double t0 = dcb_now();
            for (int n = 0; n < N; n++)
                for (int ci = 0; ci < c->cin; ci++) {
                    const float *xc = x->data + ((size_t)n * c->cin + ci) * H * W;
                    float *d = patch + (size_t)n * K + (size_t)ci * kk;
                    for (int u = 0; u < c->kh; u++) {
                        const int ii = i * c->stride + u * c->dil - c->pad;
                        for (int v = 0; v < c->kw; v++) {
                            const int jj = j * c->stride + v * c->dil - c->pad;
                            d[u * c->kw + v] = (ii >= 0 && ii < H && jj >= 0 && jj < W) ? xc[(size_t)ii * W + jj] : 0.0f;
                        }
                    }
                }
            double t1 = dcb_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, cout, K, 1.0f, patch, K,
                        w + (size_t)pos * cout * K, K, 0.0f, out, cout);
            double t2 = dcb_now();
            for (int n = 0; n < N; n++)
                for (int o = 0; o < cout; o++)
                    y->data[((size_t)n * cout + o) * P + pos] =
                        out[(size_t)n * cout + o] + (b ? b[(size_t)o * P + pos] : 0.0f);
            t_gather += t1 - t0;
            t_gemm += t2 - t1;
            t_scatter += dcb_now() - t2;
        }
    }
    dcb_blas_threads_for(op->threads);
    if (prof) {
        /* the threads overlap: their mean per phase approximates wall time */
        prof->seconds[DCB_PHASE_TRANSFORM] += t_gather / team;
        prof->seconds[DCB_PHASE_GEMM] += t_gemm / team;
        prof->seconds[DCB_PHASE_COMBINE] += t_scatter / team;
    }
    return DCB_OK;
}

static const dcb_impl_vt impl_im2col = {
    .name = "im2col",
    .doc = "per output position: gather the (N, cin*kh*kw) patches, one sgemm with that position's kernel",
    .tol = 2e-06, .workspace = im2col_ws, .run = im2col_run};
static const dcb_impl_vt *const localconv_impls[] = {&impl_naive, &impl_im2col};

/* --------------------------------------------------------------- backward */
static dcb_status bwd_naive_run(dcb_op *op, const dcb_train_ctx *t) {
    const localconv_hp *p = HP(op);
    const dcb_conv2d_p *c = &p->c;
    const int N = (int)t->x->shape[0], H = p->H, W = p->W, Ho = p->ho, Wo = p->wo;
    const int K = c->cin * c->kh * c->kw, kk = c->kh * c->kw;
    const size_t P = (size_t)Ho * Wo;
    const float *x = t->x->data, *dy = t->dy->data, *w = dcb_w(op, "weight")->data;
    float *dw = dcb_dw(op, t, "weight"), *db = dcb_dw(op, t, "bias");
    if (t->dx) {
        float *dx = t->dx->data;
#pragma omp parallel for collapse(2) schedule(static) num_threads(op->threads)
        for (int n = 0; n < N; n++)
            for (int ci = 0; ci < c->cin; ci++)
                for (int ii = 0; ii < H; ii++)
                    for (int jj = 0; jj < W; jj++) {
                        double acc = 0;
                        for (int u = 0; u < c->kh; u++) {
                            const int ti = ii + c->pad - u * c->dil; /* = i * stride */
                            if (ti < 0 || ti % c->stride || ti / c->stride >= Ho) continue;
                            const int i = ti / c->stride;
                            for (int v = 0; v < c->kw; v++) {
                                const int tj = jj + c->pad - v * c->dil;
                                if (tj < 0 || tj % c->stride || tj / c->stride >= Wo) continue;
                                const size_t pos = (size_t)i * Wo + tj / c->stride;
                                for (int o = 0; o < c->cout; o++)
                                    acc += (double)w[(pos * c->cout + o) * K + (size_t)ci * kk + u * c->kw + v] *
                                           dy[((size_t)n * c->cout + o) * P + pos];
                            }
                        }
                        dx[(((size_t)n * c->cin + ci) * H + ii) * W + jj] = (float)acc;
                    }
    }
    if (dw)
#pragma omp parallel for collapse(2) schedule(static) num_threads(op->threads)
        for (long pos = 0; pos < (long)P; pos++)
            for (int o = 0; o < c->cout; o++) {
                const int i = (int)(pos / Wo), j = (int)(pos % Wo);
                for (int ci = 0; ci < c->cin; ci++)
                    for (int u = 0; u < c->kh; u++)
                        for (int v = 0; v < c->kw; v++) {
                            const int ii = i * c->stride + u * c->dil - c->pad;
                            const int jj = j * c->stride + v * c->dil - c->pad;
                            double acc = 0;
                            if (ii >= 0 && ii < H && jj >= 0 && jj < W)
                                for (int n = 0; n < N; n++)
                                    acc += (double)x[(((size_t)n * c->cin + ci) * H + ii) * W + jj] *
                                           dy[((size_t)n * c->cout + o) * P + pos];
                            dw[((size_t)pos * c->cout + o) * K + (size_t)ci * kk + u * c->kw + v] = (float)acc;
                        }
            }
    if (db)
#pragma omp parallel for schedule(static) num_threads(op->threads)
        for (long e = 0; e < (long)(c->cout * P); e++) {
            const int o = (int)(e / (long)P);
            const size_t pos = (size_t)e % P;
            double acc = 0;
            for (int n = 0; n < N; n++) acc += dy[((size_t)n * c->cout + o) * P + pos];
            db[e] = (float)acc;
        }
    return DCB_OK;
}

/* Per output position, products over the batch: with patch (N, K) and
 * g = dy[:, :, i, j] (N, cout),
 *   dW[i, j] (cout, K) = g^T patch,   dpatch (N, K) = g W[i, j],
 * dpatch being scattered into dx. They are too small for sgemm's call
 * overhead (cout and K are a few dozen), so they are loops over K, which
 * vectorise. Positions own their dW; for dx, the output rows go in phases
 * of rows R apart, R making their input rows disjoint, so that the threads
 * of a phase (each on whole rows, for a block of samples) never add to the
 * same dx element, and each dx element gets its terms in the same order
 * whatever the thread count. */
#define LC_BWD_BLOCK 16 /* samples per dx work item */

static void gather_dy(const float *dy, int n0, int m, int cout, size_t P, size_t pos, float *g) {
    for (int b = 0; b < m; b++)
        for (int o = 0; o < cout; o++) g[(size_t)b * cout + o] = dy[((size_t)(n0 + b) * cout + o) * P + pos];
}

static dcb_status bwd_gemm_run(dcb_op *op, const dcb_train_ctx *t) {
    const localconv_hp *p = HP(op);
    const dcb_conv2d_p *c = &p->c;
    const int N = (int)t->x->shape[0], H = p->H, W = p->W, Ho = p->ho, Wo = p->wo;
    const int K = c->cin * c->kh * c->kw, kk = c->kh * c->kw, cout = c->cout;
    const size_t P = (size_t)Ho * Wo, slab = slab_floats(p, N);
    const float *x = t->x->data, *dy = t->dy->data, *w = dcb_w(op, "weight")->data;
    float *dw = dcb_dw(op, t, "weight"), *db = dcb_dw(op, t, "bias");
    if (N < 1) {
        if (t->dx) memset(t->dx->data, 0, sizeof(float) * (size_t)t->dx->size);
        if (dw) memset(dw, 0, sizeof(float) * P * cout * K);
        if (db) memset(db, 0, sizeof(float) * P * cout);
        return DCB_OK;
    }
    float *ws = dcb_aligned_alloc(sizeof(float) * slab * (size_t)op->threads);
    if (!ws) return dcb_fail(DCB_OUT_OF_MEMORY, "localconv backward: out of memory");
#pragma omp parallel num_threads(op->threads)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *patch = ws + (size_t)tid * slab, *g = patch + (size_t)N * K;
        if (dw)
#pragma omp for schedule(static)
            for (long pos = 0; pos < (long)P; pos++) {
                const int i = (int)(pos / Wo), j = (int)(pos % Wo);
                for (int n = 0; n < N; n++)
                    for (int ci = 0; ci < c->cin; ci++) {
                        const float *xc = x + ((size_t)n * c->cin + ci) * H * W;
                        float *d = patch + (size_t)n * K + (size_t)ci * kk;
                        for (int u = 0; u < c->kh; u++) {
                            const int ii = i * c->stride + u * c->dil - c->pad;
                            for (int v = 0; v < c->kw; v++) {
                                const int jj = j * c->stride + v * c->dil - c->pad;
                                d[u * c->kw + v] =
                                    (ii >= 0 && ii < H && jj >= 0 && jj < W) ? xc[(size_t)ii * W + jj] : 0.0f;
                            }
                        }
                    }
                gather_dy(dy, 0, N, cout, P, (size_t)pos, g);
                float *dwp = dw + (size_t)pos * cout * K;
                memset(dwp, 0, sizeof(float) * cout * K);
                for (int n = 0; n < N; n++)
                    for (int o = 0; o < cout; o++) {
                        const float a = g[(size_t)n * cout + o], *pr = patch + (size_t)n * K;
                        float *d = dwp + (size_t)o * K;
                        for (int q = 0; q < K; q++) d[q] += a * pr[q];
                    }
            }
        if (db)
#pragma omp for schedule(static)
            for (long e = 0; e < (long)(cout * P); e++) {
                const int o = (int)(e / (long)P);
                const size_t pos = (size_t)e % P;
                double acc = 0;
                for (int n = 0; n < N; n++) acc += dy[((size_t)n * cout + o) * P + pos];
                db[e] = (float)acc;
            }
        if (t->dx) {
            float *dx = t->dx->data;
#pragma omp for schedule(static)
            for (int n = 0; n < N; n++) memset(dx + (size_t)n * c->cin * H * W, 0, sizeof(float) * c->cin * H * W);
            const int R = (c->kh - 1) * c->dil / c->stride + 1;
            const int nblk = (N + LC_BWD_BLOCK - 1) / LC_BWD_BLOCK;
            for (int ph = 0; ph < R && ph < Ho; ph++) {
                const int rows = (Ho - ph + R - 1) / R;
#pragma omp for collapse(2) schedule(static)
                for (int r = 0; r < rows; r++)
                    for (int blk = 0; blk < nblk; blk++) {
                        const int i = ph + r * R, n0 = blk * LC_BWD_BLOCK;
                        const int m = N - n0 < LC_BWD_BLOCK ? N - n0 : LC_BWD_BLOCK;
                        float *dp = patch; /* (m, K) */
                        float *gb = patch + (size_t)N * K;
                        for (int j = 0; j < Wo; j++) {
                            const size_t pos = (size_t)i * Wo + j;
                            gather_dy(dy, n0, m, cout, P, pos, gb);
                            const float *wp = w + pos * cout * K;
                            for (int b = 0; b < m; b++) {
                                float *d = dp + (size_t)b * K;
                                memset(d, 0, sizeof(float) * K);
                                for (int o = 0; o < cout; o++) {
                                    const float a = gb[(size_t)b * cout + o], *wr = wp + (size_t)o * K;
                                    for (int q = 0; q < K; q++) d[q] += a * wr[q];
                                }
                            }
                            for (int b = 0; b < m; b++)
                                for (int ci = 0; ci < c->cin; ci++) {
                                    float *xc = dx + ((size_t)(n0 + b) * c->cin + ci) * H * W;
                                    const float *s = dp + (size_t)b * K + (size_t)ci * kk;
                                    for (int u = 0; u < c->kh; u++) {
                                        const int ii = i * c->stride + u * c->dil - c->pad;
                                        if (ii < 0 || ii >= H) continue;
                                        for (int v = 0; v < c->kw; v++) {
                                            const int jj = j * c->stride + v * c->dil - c->pad;
                                            if (jj >= 0 && jj < W) xc[(size_t)ii * W + jj] += s[u * c->kw + v];
                                        }
                                    }
                                }
                        }
                    }
            }
        }
    }
    dcb_aligned_free(ws);
    return DCB_OK;
}

static const dcb_bwd_vt bwd_naive = {.name = "naive", .doc = "direct loops in double: the oracle", .tol = 1e-6,
                                     .run = bwd_naive_run};
/* Float sums: N terms for dweight, cout (times up to kh*kw positions) for dx. */
static const dcb_bwd_vt bwd_gemm = {
    .name = "gemm",
    .doc = "per output position: products over the batch for dweight and the patch gradient (vectorised over "
           "cin*kh*kw); dx scattered in race-free phases of output rows",
    .tol = 1e-5, .run = bwd_gemm_run};
static const dcb_bwd_vt *const localconv_bwds[] = {&bwd_naive, &bwd_gemm};

const dcb_op_info dcb_localconv_info = {
    DCB_BWDS(localconv_bwds),
    .name = "localconv", .doc = "unshared (locally connected) convolution: one kernel per output position",
    DCB_PARAMS(localconv_params), DCB_IMPLS(localconv_impls), .layout = DCB_INPUT_IMAGE, .channels_param = "cin",
    .hw_are_params = 1,
    .validate = localconv_validate, .weights = localconv_weights, .out_shape = localconv_out_shape,
    .cost = localconv_cost,
};
