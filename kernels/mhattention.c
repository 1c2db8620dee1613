/* mhattention: multi-head self-attention over x (N, T, d) in PyTorch
 * nn.MultiheadAttention's weight layout, the baseline DynamicConv replaces.
 *   naive  double precision throughout, masked scores never computed: the oracle;
 *   gemm   in-projection as one sgemm over the N*T rows; per (n, head) S = QK^T
 *          (scaled by 1/sqrt(d/H)) by sgemm, the max-subtracted softmax row by
 *          row (causal rows stop at the diagonal, the rest of the row is set to
 *          exactly 0), then PV by sgemm; the out-projection as one sgemm. */
#include "mhattention.h"
#include "vexp.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static const dcb_param_spec mha_params[] = {
    {"channels", DCB_PT_INT, 0, NULL, 1, "model width d (required)"},
    {"heads", DCB_PT_INT, 1, NULL, 0, "heads H; must divide channels"},
    {"causal", DCB_PT_BOOL, 0, NULL, 0, "mask the future: query i attends to keys j <= i"},
};

#define P(op) DCB_MHA_P(op)

static dcb_status mha_validate(dcb_op *op) {
    mha_p *p = dcb_new_hp(op, sizeof *p);
    if (!p) return DCB_OUT_OF_MEMORY;
    dcb_status st = dcb_get_required_int(op, "channels", 1, &p->d);
    if (st != DCB_OK || (st = dcb_get_int(op, "heads", 1, &p->H)) != DCB_OK) return st;
    if (p->d % p->H)
        return dcb_fail(DCB_INVALID_PARAM, "mhattention: heads=%d does not divide channels=%d", p->H, p->d);
    p->causal = dcb_pv(op, "causal") != 0;
    return DCB_OK;
}

static int mha_weights(const dcb_op *op, dcb_weight_spec *s) {
    const int d = P(op)->d;
    s[0] = (dcb_weight_spec){"in_proj_w", 2, {3 * (int64_t)d, d}, (double)d, 0};
    s[1] = (dcb_weight_spec){"in_proj_b", 1, {3 * (int64_t)d}, (double)d, 1};
    s[2] = (dcb_weight_spec){"out_proj_w", 2, {d, d}, (double)d, 0};
    s[3] = (dcb_weight_spec){"out_proj_b", 1, {d}, (double)d, 1};
    return 4;
}

static dcb_status mha_out_shape(const dcb_op *op, int ndim, const int64_t *x, int *yn, int64_t *y) {
    char s[128];
    if (ndim != 3)
        return dcb_fail(DCB_INVALID_SHAPE, "mhattention: input must be (N, T, C), got %s",
                        dcb_shape_str(ndim, x, s, sizeof s));
    if (x[0] < 1 || x[1] < 1 || x[0] > INT32_MAX || x[1] > INT32_MAX || x[0] * x[1] > INT32_MAX)
        return dcb_fail(DCB_INVALID_SHAPE, "mhattention: input shape %s has a bad size",
                        dcb_shape_str(ndim, x, s, sizeof s));
    if (x[2] != P(op)->d)
        return dcb_fail(DCB_INVALID_SHAPE, "mhattention: input has %lld channels, channels=%d",
                        (long long)x[2], P(op)->d);
    *yn = 3;
    y[0] = x[0];
    y[1] = x[1];
    y[2] = x[2];
    return DCB_OK;
}

/* Per time step: in-projection 3*d*d + 3d, QK^T and PV 2*T*d (per query row,
 * over all heads; the analytic count ignores the causal mask), out-projection
 * d*d + d. flops = 2*macs + 4 per score (the 1/sqrt(d/H) scaling, and ~3 for
 * the softmax: max/sub, exp, divide), N*H*T*T scores. acts: the outputs of
 * the two linears, 3d + d per time step. */
static void mha_cost(const dcb_op *op, const int64_t *x, dcb_cost *c) {
    const double d = P(op)->d, H = P(op)->H, N = (double)x[0], T = (double)x[1];
    c->macs = N * T * (3 * d * d + 3 * d + 2 * T * d + d * d + d);
    c->flops = 2 * c->macs + 4 * N * H * T * T;
    c->params = 4 * d * d + 4 * d;
    c->acts = N * T * 4 * d;
    c->bytes = 4.0 * (2 * N * T * d + c->params);
    c->dynamic_macs = 0;
}

/* ------------------------------------------------------------------ naive */
static size_t naive_ws(const dcb_op *op, const int64_t *x) {
    const size_t NT = (size_t)x[0] * x[1], d = (size_t)P(op)->d;
    return dcb_align_up(sizeof(double) * NT * 3 * d) + dcb_align_up(sizeof(double) * NT * d) +
           sizeof(double) * (size_t)x[1] * (size_t)op->threads;
}

static dcb_status naive_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    const int d = P(op)->d, H = P(op)->H, dh = d / H, causal = P(op)->causal;
    const int N = (int)x->shape[0], T = (int)x->shape[1];
    const long NT = (long)N * T;
    double *qkv = ws;
    double *att = (double *)((char *)ws + dcb_align_up(sizeof(double) * (size_t)NT * 3 * d));
    double *scr = (double *)((char *)att + dcb_align_up(sizeof(double) * (size_t)NT * d));
    const float *W = dcb_w(op, "in_proj_w")->data, *B = dcb_w(op, "in_proj_b")->data;
    const float *OW = dcb_w(op, "out_proj_w")->data, *OB = dcb_w(op, "out_proj_b")->data;
    const double scale = 1.0 / sqrt((double)dh);
    double t0 = dcb_now();
#pragma omp parallel for schedule(static) num_threads(op->threads)
    for (long nt = 0; nt < NT; nt++)
        for (int o = 0; o < 3 * d; o++) {
            double acc = B[o];
            for (int c = 0; c < d; c++) acc += (double)W[(size_t)o * d + c] * x->data[(size_t)nt * d + c];
            qkv[(size_t)nt * 3 * d + o] = acc;
        }
    DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
    t0 = dcb_now();
#pragma omp parallel num_threads(op->threads)
    {
        double *s = scr + (size_t)omp_get_thread_num() * T;
#pragma omp for collapse(3) schedule(static)
        for (int n = 0; n < N; n++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < T; i++) {
                    const double *q = qkv + ((size_t)n * T + i) * 3 * d + (size_t)h * dh;
                    const int last = causal ? i : T - 1;
                    double m = -INFINITY, sum = 0;
                    for (int j = 0; j <= last; j++) {
                        const double *k = qkv + ((size_t)n * T + j) * 3 * d + d + (size_t)h * dh;
                        double a = 0;
                        for (int e = 0; e < dh; e++) a += q[e] * k[e];
                        s[j] = a * scale;
                        if (s[j] > m) m = s[j];
                    }
                    for (int j = 0; j <= last; j++) {
                        s[j] = exp(s[j] - m);
                        sum += s[j];
                    }
                    double *o = att + ((size_t)n * T + i) * d + (size_t)h * dh;
                    for (int e = 0; e < dh; e++) o[e] = 0;
                    for (int j = 0; j <= last; j++) {
                        const double *v = qkv + ((size_t)n * T + j) * 3 * d + 2 * d + (size_t)h * dh;
                        for (int e = 0; e < dh; e++) o[e] += s[j] * v[e];
                    }
                    for (int e = 0; e < dh; e++) o[e] /= sum;
                }
    }
    DCB_PHASE_ADD(prof, DCB_PHASE_COMBINE, t0);
    t0 = dcb_now();
#pragma omp parallel for schedule(static) num_threads(op->threads)
    for (long nt = 0; nt < NT; nt++)
        for (int o = 0; o < d; o++) {
            double acc = OB[o];
            for (int c = 0; c < d; c++) acc += (double)OW[(size_t)o * d + c] * att[(size_t)nt * d + c];
            y->data[(size_t)nt * d + o] = (float)acc;
        }
    DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
    return DCB_OK;
}

/* naive skips the masked scores: query i does (i+1)*d MACs for each of QK^T, PV. */
static double naive_executed(const dcb_op *op, const int64_t *x) {
    const double d = P(op)->d, N = (double)x[0], T = (double)x[1];
    if (!P(op)->causal) return N * T * (3 * d * d + 3 * d + 2 * T * d + d * d + d);
    return N * (T * (3 * d * d + 3 * d + d * d + d) + T * (T + 1) * d);
}

/* ------------------------------------------------------------------- gemm */
static size_t gemm_ws(const dcb_op *op, const int64_t *x) {
    const size_t NT = (size_t)x[0] * x[1], d = (size_t)P(op)->d, T = (size_t)x[1];
    return dcb_align_up(sizeof(float) * NT * 3 * d) + dcb_align_up(sizeof(float) * NT * d) + (size_t)op->threads * dcb_align_up(sizeof(float) * T * T);
}

void dcb_mha_gemm_forward(const dcb_op *op, const float *x, int N, int T, float *y, float *qkv, float *att,
                          float *Sbase, int keep_p, dcb_profile *prof) {
    const int d = P(op)->d, H = P(op)->H, dh = d / H, causal = P(op)->causal;
    const float scale = (float)(1.0 / sqrt((double)dh));
    double t0 = dcb_now();
    dcb_linear(x, N * T, d, dcb_w(op, "in_proj_w")->data, dcb_w(op, "in_proj_b")->data, 3 * d, qkv,
               op->threads);
    DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
    /* The (sample, head) pairs are spread over the OpenMP team, each with
     * single-threaded BLAS and its own T x T score buffer: threaded BLAS on
     * these small products, between OpenMP regions for the softmax, left
     * BLAS and OpenMP workers spinning against each other (4x slower at 2
     * threads than at 1, T = 128). */
    const size_t sb = dcb_align_up(sizeof(float) * (size_t)T * T);
    double tg = 0, tc = 0;
    dcb_blas_threads_for(1);
#pragma omp parallel num_threads(op->threads) reduction(+ : tg, tc)
    {
        float *S = (float *)((char *)Sbase + sb * (size_t)omp_get_thread_num());
#pragma omp for schedule(static)
        for (int nh = 0; nh < N * H; nh++) {
            const int n = nh / H, h = nh % H;
            if (keep_p) S = Sbase + (size_t)nh * T * T;
            const float *Q = qkv + (size_t)n * T * 3 * d + (size_t)h * dh;
            double a = dcb_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, dh, scale, Q, 3 * d, Q + d, 3 * d, 0.0f,
                        S, T);
            double b = dcb_now();
            for (int i = 0; i < T; i++) {
                float *sr = S + (size_t)i * T;
                const int len = causal ? i + 1 : T;
                float m = -INFINITY;
                for (int j = 0; j < len; j++) m = sr[j] > m ? sr[j] : m;
                const float inv = 1.0f / dcb_exp_shift_sum(sr, len, m);
                for (int j = 0; j < len; j++) sr[j] *= inv;
                for (int j = len; j < T; j++) sr[j] = 0.0f;
            }
            double c = dcb_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, dh, T, 1.0f, S, T, Q + 2 * d, 3 * d, 0.0f,
                        att + (size_t)n * T * d + (size_t)h * dh, d);
            tg += (b - a) + (dcb_now() - c);
            tc += c - b;
        }
    }
    /* the threads' summed times, scaled to the team: wall-clock shares */
    if (prof) {
        prof->seconds[DCB_PHASE_GEMM] += tg / op->threads;
        prof->seconds[DCB_PHASE_COMBINE] += tc / op->threads;
    }
    t0 = dcb_now();
    dcb_linear(att, N * T, d, dcb_w(op, "out_proj_w")->data, dcb_w(op, "out_proj_b")->data, d, y,
               op->threads);
    DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
}

static dcb_status gemm_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    const int d = P(op)->d, N = (int)x->shape[0], T = (int)x->shape[1];
    float *qkv = ws;
    float *att = (float *)((char *)ws + dcb_align_up(sizeof(float) * (size_t)N * T * 3 * d));
    float *Sbase = (float *)((char *)att + dcb_align_up(sizeof(float) * (size_t)N * T * d));
    dcb_mha_gemm_forward(op, x->data, N, T, y->data, qkv, att, Sbase, 0, prof);
    return DCB_OK;
}

static const dcb_impl_vt mha_naive = {.name = "naive", .doc = "double precision, masked scores skipped: the oracle",
                                      .tol = 1e-06, .workspace = naive_ws, .run = naive_run,
                                      .executed_macs = naive_executed};
static const dcb_impl_vt mha_gemm = {.name = "gemm", .doc = "sgemm projections, QK^T and PV per (n, head); row softmax",
                                     .tol = 3e-06, .workspace = gemm_ws, .run = gemm_run};
static const dcb_impl_vt *const mha_impls[] = {&mha_naive, &mha_gemm};
static const dcb_bwd_vt *const mha_bwds[] = {&dcb_mha_bwd_naive, &dcb_mha_bwd_gemm};

const dcb_op_info dcb_mhattention_info = {
    .name = "mhattention",
    .doc = "multi-head self-attention (nn.MultiheadAttention layout) over (N, T, C), optionally causal",
    DCB_PARAMS(mha_params), DCB_IMPLS(mha_impls), DCB_BWDS(mha_bwds), .layout = DCB_INPUT_SEQUENCE, .channels_param = "channels",
    .validate = mha_validate, .weights = mha_weights, .out_shape = mha_out_shape, .cost = mha_cost,
};
