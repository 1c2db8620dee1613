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

const dcb_op_info dcb_localconv_info = {
    .name = "localconv", .doc = "unshared (locally connected) convolution: one kernel per output position",
    DCB_PARAMS(localconv_params), DCB_IMPLS(localconv_impls), .layout = DCB_INPUT_IMAGE, .channels_param = "cin",
    .hw_are_params = 1,
    .validate = localconv_validate, .weights = localconv_weights, .out_shape = localconv_out_shape,
    .cost = localconv_cost,
};
