/* Backward passes of mhattention (docs/TRAINING.md). With A = concat_h(O_h)
 * the attention output before out_proj and P_h the probabilities:
 *   dA = dy out_proj_w,  d out_proj_w = dy^T A,  d out_proj_b = sum dy
 *   per head: dV = P^T dO,  dP = dO V^T,  dS = P (dP - rowsum(P dP)),
 *             dQ = scale dS K,  dK = scale dS^T Q
 *   d in_proj_w = dqkv^T x,  d in_proj_b = sum dqkv,  dx = dqkv in_proj_w.
 * Masked (causal) scores have P = 0, hence dS = 0: the mask carries over.
 *   naive  the forward recomputed and everything in double: the oracle;
 *   gemm   a training forward (the gemm forward) keeping qkv, A and every
 *          P; sgemm for the projections' gradients (threaded BLAS) and, per
 *          (sample, head) over the OpenMP team with single-threaded BLAS, for
 *          dP, dV, dQ, dK. */
#include "mhattention.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ naive */
static dcb_status naive_run(dcb_op *op, const dcb_train_ctx *c) {
    const mha_p *p = DCB_MHA_P(op);
    const int d = p->d, H = p->H, dh = d / H, causal = p->causal, d3 = 3 * d;
    const int N = (int)c->x->shape[0], T = (int)c->x->shape[1];
    const long NT = (long)N * T;
    const float *x = c->x->data, *dy = c->dy->data;
    const float *W = dcb_w(op, "in_proj_w")->data, *B = dcb_w(op, "in_proj_b")->data;
    const float *OW = dcb_w(op, "out_proj_w")->data;
    float *dW = dcb_dw(op, c, "in_proj_w"), *dB = dcb_dw(op, c, "in_proj_b");
    float *dOW = dcb_dw(op, c, "out_proj_w"), *dOB = dcb_dw(op, c, "out_proj_b");
    float *dx = c->dx ? c->dx->data : NULL;
    const double scale = 1.0 / sqrt((double)dh);
    /* qkv, dqkv (NT, 3d); att, datt (NT, d); P (N, H, T, T) */
    double *qkv = malloc(sizeof(double) * ((size_t)NT * (2 * d3 + 2 * d) + (size_t)N * H * T * T));
    if (!qkv) return dcb_fail(DCB_OUT_OF_MEMORY, "mhattention backward naive: out of memory");
    double *dqkv = qkv + (size_t)NT * d3, *att = dqkv + (size_t)NT * d3, *datt = att + (size_t)NT * d;
    double *P = datt + (size_t)NT * d;
#pragma omp parallel for schedule(static) num_threads(op->threads)
    for (long nt = 0; nt < NT; nt++)
        for (int o = 0; o < d3; o++) {
            double acc = B[o];
            for (int e = 0; e < d; e++) acc += (double)W[(size_t)o * d + e] * x[(size_t)nt * d + e];
            qkv[(size_t)nt * d3 + o] = acc;
        }
#pragma omp parallel for collapse(2) schedule(static) num_threads(op->threads)
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                const double *q = qkv + ((size_t)n * T + i) * d3 + (size_t)h * dh;
                double *pr = P + (((size_t)n * H + h) * T + i) * T;
                const int last = causal ? i : T - 1;
                double m = -INFINITY, sum = 0;
                for (int j = 0; j < T; j++) {
                    pr[j] = 0;
                    if (j > last) continue;
                    const double *k = qkv + ((size_t)n * T + j) * d3 + d + (size_t)h * dh;
                    double a = 0;
                    for (int e = 0; e < dh; e++) a += q[e] * k[e];
                    pr[j] = a * scale;
                    m = pr[j] > m ? pr[j] : m;
                }
                for (int j = 0; j <= last; j++) sum += (pr[j] = exp(pr[j] - m));
                for (int j = 0; j <= last; j++) pr[j] /= sum;
                double *o = att + ((size_t)n * T + i) * d + (size_t)h * dh;
                for (int e = 0; e < dh; e++) {
                    double a = 0;
                    for (int j = 0; j <= last; j++) a += pr[j] * qkv[((size_t)n * T + j) * d3 + 2 * d + h * dh + e];
                    o[e] = a;
                }
            }
    if (dOW)
#pragma omp parallel for schedule(static) num_threads(op->threads)
        for (int o = 0; o < d; o++)
            for (int e = 0; e < d; e++) {
                double acc = 0;
                for (long nt = 0; nt < NT; nt++) acc += (double)dy[(size_t)nt * d + o] * att[(size_t)nt * d + e];
                dOW[(size_t)o * d + e] = (float)acc;
            }
    if (dOB)
        for (int o = 0; o < d; o++) {
            double acc = 0;
            for (long nt = 0; nt < NT; nt++) acc += dy[(size_t)nt * d + o];
            dOB[o] = (float)acc;
        }
    if (dx || dW || dB) {
#pragma omp parallel for schedule(static) num_threads(op->threads)
        for (long nt = 0; nt < NT; nt++)
            for (int e = 0; e < d; e++) {
                double acc = 0;
                for (int o = 0; o < d; o++) acc += (double)dy[(size_t)nt * d + o] * OW[(size_t)o * d + e];
                datt[(size_t)nt * d + e] = acc;
            }
        memset(dqkv, 0, sizeof(double) * (size_t)NT * d3);
        /* one (sample, head) per iteration: dK and dV accumulate over its queries */
        double *dpbase = malloc(sizeof(double) * (size_t)T * op->threads);
        if (!dpbase) {
            free(qkv);
            return dcb_fail(DCB_OUT_OF_MEMORY, "mhattention backward naive: out of memory");
        }
#pragma omp parallel num_threads(op->threads)
        {
        double *dp = dpbase + (size_t)T * omp_get_thread_num();
#pragma omp for collapse(2) schedule(static)
        for (int n = 0; n < N; n++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < T; i++) {
                    const double *pr = P + (((size_t)n * H + h) * T + i) * T;
                    const double *da = datt + ((size_t)n * T + i) * d + (size_t)h * dh;
                    const double *q = qkv + ((size_t)n * T + i) * d3 + (size_t)h * dh;
                    double *dq = dqkv + ((size_t)n * T + i) * d3 + (size_t)h * dh;
                    const int last = causal ? i : T - 1;
                    double s = 0;
                    for (int j = 0; j <= last; j++) {
                        const double *v = qkv + ((size_t)n * T + j) * d3 + 2 * d + (size_t)h * dh;
                        double a = 0;
                        for (int e = 0; e < dh; e++) a += da[e] * v[e];
                        dp[j] = a;
                        s += pr[j] * a;
                    }
                    for (int j = 0; j <= last; j++) {
                        const double ds = pr[j] * (dp[j] - s) * scale;
                        const double *k = qkv + ((size_t)n * T + j) * d3 + d + (size_t)h * dh;
                        double *dk = dqkv + ((size_t)n * T + j) * d3 + d + (size_t)h * dh;
                        double *dv = dk + d;
                        for (int e = 0; e < dh; e++) {
                            dq[e] += ds * k[e];
                            dk[e] += ds * q[e];
                            dv[e] += pr[j] * da[e];
                        }
                    }
                }
        }
        free(dpbase);
        if (dW)
#pragma omp parallel for schedule(static) num_threads(op->threads)
            for (int o = 0; o < d3; o++)
                for (int e = 0; e < d; e++) {
                    double acc = 0;
                    for (long nt = 0; nt < NT; nt++) acc += dqkv[(size_t)nt * d3 + o] * x[(size_t)nt * d + e];
                    dW[(size_t)o * d + e] = (float)acc;
                }
        if (dB)
            for (int o = 0; o < d3; o++) {
                double acc = 0;
                for (long nt = 0; nt < NT; nt++) acc += dqkv[(size_t)nt * d3 + o];
                dB[o] = (float)acc;
            }
        if (dx)
#pragma omp parallel for schedule(static) num_threads(op->threads)
            for (long nt = 0; nt < NT; nt++)
                for (int e = 0; e < d; e++) {
                    double acc = 0;
                    for (int o = 0; o < d3; o++) acc += dqkv[(size_t)nt * d3 + o] * W[(size_t)o * d + e];
                    dx[(size_t)nt * d + e] = (float)acc;
                }
    }
    free(qkv);
    return DCB_OK;
}

/* ------------------------------------------------------------------- gemm */
typedef struct gemm_saved {
    float *qkv, *att, *P;   /* (NT, 3d), (NT, d), (N*H, T, T); one allocation at qkv */
} gemm_saved;

static void gemm_free(void *saved) {
    gemm_saved *s = saved;
    if (!s) return;
    dcb_aligned_free(s->qkv);
    free(s);
}

static dcb_status gemm_forward(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void **saved) {
    const mha_p *p = DCB_MHA_P(op);
    const int N = (int)x->shape[0], T = (int)x->shape[1], d = p->d;
    const size_t NT = (size_t)N * T, a = dcb_align_up(sizeof(float) * NT * 3 * d),
                 b = dcb_align_up(sizeof(float) * NT * d);
    gemm_saved *s = calloc(1, sizeof *s);
    if (!s || !(s->qkv = dcb_aligned_alloc(a + b + sizeof(float) * (size_t)N * p->H * T * T))) {
        free(s);
        return dcb_fail(DCB_OUT_OF_MEMORY, "mhattention backward gemm: out of memory");
    }
    s->att = (float *)((char *)s->qkv + a);
    s->P = (float *)((char *)s->att + b);
    dcb_mha_gemm_forward(op, x->data, N, T, y->data, s->qkv, s->att, s->P, 1, NULL);
    *saved = s;
    return DCB_OK;
}

/* out[o] = sum over rows of m (rows, cols), in double, row by row (fixed order). */
static void col_sums(const float *m, long rows, int cols, float *out) {
    double *acc = calloc((size_t)cols, sizeof(double));
    if (acc) {
        for (long r = 0; r < rows; r++)
            for (int o = 0; o < cols; o++) acc[o] += m[(size_t)r * cols + o];
        for (int o = 0; o < cols; o++) out[o] = (float)acc[o];
        free(acc);
        return;
    }
    for (int o = 0; o < cols; o++) { /* no memory: the same sums, column by column */
        double a = 0;
        for (long r = 0; r < rows; r++) a += m[(size_t)r * cols + o];
        out[o] = (float)a;
    }
}

static dcb_status gemm_run(dcb_op *op, const dcb_train_ctx *c) {
    const mha_p *p = DCB_MHA_P(op);
    const int d = p->d, H = p->H, dh = d / H, causal = p->causal, d3 = 3 * d;
    const int N = (int)c->x->shape[0], T = (int)c->x->shape[1], NT = N * T;
    const gemm_saved *sv = c->saved;
    const float *x = c->x->data, *dy = c->dy->data;
    const float *W = dcb_w(op, "in_proj_w")->data, *OW = dcb_w(op, "out_proj_w")->data;
    float *dW = dcb_dw(op, c, "in_proj_w"), *dB = dcb_dw(op, c, "in_proj_b");
    float *dOW = dcb_dw(op, c, "out_proj_w"), *dOB = dcb_dw(op, c, "out_proj_b");
    float *dx = c->dx ? c->dx->data : NULL;
    const float scale = (float)(1.0 / sqrt((double)dh));
    dcb_blas_threads_for(op->threads);
    if (dOW)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, d, NT, 1.0f, dy, d, sv->att, d, 0.0f, dOW, d);
    if (dOB) col_sums(dy, NT, d, dOB);
    if (!dx && !dW && !dB) return DCB_OK;
    const size_t a = dcb_align_up(sizeof(float) * (size_t)NT * d3), b = dcb_align_up(sizeof(float) * (size_t)NT * d),
                 sb = dcb_align_up(sizeof(float) * (size_t)T * T);
    float *dqkv = dcb_aligned_alloc(a + b + sb * (size_t)op->threads);
    if (!dqkv) return dcb_fail(DCB_OUT_OF_MEMORY, "mhattention backward gemm: out of memory");
    float *datt = (float *)((char *)dqkv + a), *dPbase = (float *)((char *)datt + b);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, NT, d, d, 1.0f, dy, d, OW, d, 0.0f, datt, d);
    /* per (sample, head), single-threaded BLAS inside the team (see the forward) */
    dcb_blas_threads_for(1);
#pragma omp parallel num_threads(op->threads)
    {
        float *dP = (float *)((char *)dPbase + sb * (size_t)omp_get_thread_num());
#pragma omp for schedule(static)
        for (int nh = 0; nh < N * H; nh++) {
            const int n = nh / H, h = nh % H;
            const float *Pm = sv->P + (size_t)nh * T * T;
            const size_t r0 = (size_t)n * T;
            const float *Q = sv->qkv + r0 * d3 + (size_t)h * dh, *Kh = Q + d, *V = Q + 2 * d;
            const float *dO = datt + r0 * d + (size_t)h * dh;
            float *dQ = dqkv + r0 * d3 + (size_t)h * dh, *dK = dQ + d, *dV = dQ + 2 * d;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, dh, T, 1.0f, Pm, T, dO, d, 0.0f, dV, d3);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, dh, 1.0f, dO, d, V, d3, 0.0f, dP, T);
            for (int i = 0; i < T; i++) {
                const float *pr = Pm + (size_t)i * T;
                float *g = dP + (size_t)i * T;
                const int len = causal ? i + 1 : T;
                float s = 0;
                for (int j = 0; j < len; j++) s += pr[j] * g[j];
                for (int j = 0; j < len; j++) g[j] = pr[j] * (g[j] - s) * scale;
                for (int j = len; j < T; j++) g[j] = 0.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, dh, T, 1.0f, dP, T, Kh, d3, 0.0f, dQ, d3);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, dh, T, 1.0f, dP, T, Q, d3, 0.0f, dK, d3);
        }
    }
    dcb_blas_threads_for(op->threads);
    if (dW) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d3, d, NT, 1.0f, dqkv, d3, x, d, 0.0f, dW, d);
    if (dB) col_sums(dqkv, NT, d3, dB);
    if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, NT, d, d3, 1.0f, dqkv, d3, W, d, 0.0f, dx, d);
    dcb_aligned_free(dqkv);
    return DCB_OK;
}

const dcb_bwd_vt dcb_mha_bwd_naive = {.name = "naive", .doc = "forward recomputed, everything in double: the oracle",
                                      .tol = 1e-6, .run = naive_run};
const dcb_bwd_vt dcb_mha_bwd_gemm = {
    .name = "gemm", .doc = "saved qkv, attention output and probabilities; sgemm projections and per-head products",
    .tol = 5e-5, .forward = gemm_forward, .free_saved = gemm_free, .run = gemm_run};
