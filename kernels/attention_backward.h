/* attention_backward.h — backward pieces shared by skconv and splat, whose
 * forwards are the same shape: B branch outputs U (branch b of sample n,
 * channel c at U + n*sn + b*sb + c*P, P pixels), an attention a (N, B, C)
 * computed from s = gap(sum_b U_b), and y = sum_b a_b * U_b. Backward:
 *   da[n,b,c] = <dy[n,c], U_b[n,c]>
 *   dl        = the softmax (or sigmoid) backward of da
 *   ds        = the FC chain backward of dl (the operator's own)
 *   dV_b      = (U_b > 0) * (a_b * dy + ds / P)   (ReLU' = 0 at 0)
 * and dV goes through the convolution's backward. Static functions: each
 * operator's file includes this once (se uses attb_dot alone). */
#ifndef DCB_ATTENTION_BACKWARD_H
#define DCB_ATTENTION_BACKWARD_H

#include "dcb_internal.h"

#include <cblas.h>
#include <string.h>

/* <a, b> in float with fixed lanes: 32 (four independent 8-wide chains, so
 * the FMA latency is hidden) for long rows, 16 for short ones, then 8, then
 * a scalar tail. Vectorised without -ffast-math; the order of the sums
 * depends on n only, never on the pointers' alignment. */
static inline float attb_dot(const float *a, const float *b, size_t n) {
    float l[32] = {0};
    size_t i = 0;
    if (n >= 128) {
        for (; i + 32 <= n; i += 32)
            for (int k = 0; k < 32; k++) l[k] += a[i + k] * b[i + k];
        for (int k = 0; k < 8; k++) l[k] += (l[k + 8] + l[k + 16]) + l[k + 24];
    } else if (n >= 32) { /* short rows (se at 7x7): two chains, a cheaper fold */
        for (; i + 16 <= n; i += 16)
            for (int k = 0; k < 16; k++) l[k] += a[i + k] * b[i + k];
        for (int k = 0; k < 8; k++) l[k] += l[k + 8];
    }
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) l[k] += a[i + k] * b[i + k];
    float t = 0;
    for (; i < n; i++) t += a[i] * b[i];
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7])) + t;
}

/* da (N, B, C) = <dy[n,c], U_b[n,c]>; dy is (N, C, P). */
static inline void attb_da(const float *U, const float *dy, int N, int C, int B, size_t P, size_t sn, size_t sb,
                           float *da, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const int n = (int)(nc / C), c = (int)(nc % C);
        const float *u = U + (size_t)n * sn + (size_t)c * P, *g = dy + (size_t)nc * P;
        for (int b = 0; b < B; b++) da[((size_t)n * B + b) * C + c] = attb_dot(g, u + (size_t)b * sb, P);
    }
}

/* dV (U's layout) = (U > 0) * (a[n,b,c] * dy + ds[n,c] / P). */
static inline void attb_dv(const float *U, const float *a, const float *dy, const float *ds, int N, int C, int B,
                           size_t P, size_t sn, size_t sb, float *dV, int threads) {
    const float invP = (float)(1.0 / (double)P);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const int n = (int)(nc / C), c = (int)(nc % C);
        const float *g = dy + (size_t)nc * P;
        const float dsv = ds[nc] * invP;
        for (int b = 0; b < B; b++) {
            const size_t off = (size_t)n * sn + (size_t)b * sb + (size_t)c * P;
            const float *u = U + off;
            float *d = dV + off;
            const float ab = a[((size_t)n * B + b) * C + c];
            for (size_t k = 0; k < P; k++) d[k] = u[k] > 0 ? ab * g[k] + dsv : 0.0f;
        }
    }
}

/* Softmax backward over n values at stride st: d_i = a_i (g_i - sum_j a_j g_j),
 * in place over g. */
static inline void attb_softmax_bwd(const float *a, float *g, size_t st, int n) {
    double dot = 0;
    for (int i = 0; i < n; i++) dot += (double)a[(size_t)i * st] * g[(size_t)i * st];
    for (int i = 0; i < n; i++) g[(size_t)i * st] = (float)(a[(size_t)i * st] * (g[(size_t)i * st] - dot));
}

/* g *= (z > 0) over n values: the ReLU backward through its output z. */
static inline void attb_relu_bwd(const float *z, float *g, size_t n) {
    for (size_t i = 0; i < n; i++) g[i] = z[i] > 0 ? g[i] : 0.0f;
}

/* Backward of y (N, out) = x (N, in) . w^T + b with `groups` diagonal blocks
 * (block q: inputs [q*in/groups, ...) through rows [q*out/groups, ...) of w
 * (out, in/groups)), given dy (N, out): dw and db (each may be NULL) are
 * overwritten with the sums over n, dx (N, in; may be NULL) with dy . w. */
static inline void attb_linear_bwd(const float *x, int N, int in, const float *w, int out, int groups,
                                   const float *dy, float *dx, float *dw, float *db, int threads) {
    const int ig = in / groups, og = out / groups;
    dcb_blas_threads_for(threads);
    for (int q = 0; q < groups; q++) {
        if (dw)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, og, ig, N, 1.0f, dy + (size_t)q * og, out,
                        x + (size_t)q * ig, in, 0.0f, dw + (size_t)q * og * ig, ig);
        if (dx)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, ig, og, 1.0f, dy + (size_t)q * og, out,
                        w + (size_t)q * og * ig, ig, 0.0f, dx + (size_t)q * ig, in);
    }
    if (db)
        for (int o = 0; o < out; o++) {
            double acc = 0;
            for (int n = 0; n < N; n++) acc += dy[(size_t)n * out + o];
            db[o] = (float)acc;
        }
}

/* The same in double, as direct loops (the naive backwards): x, dy, dx in
 * double; dw and db (float, may be NULL) overwritten. */
static inline void attb_linear_bwd_f64(const double *x, int N, int in, const float *w, int out, int groups,
                                       const double *dy, double *dx, float *dw, float *db) {
    const int ig = in / groups, og = out / groups;
    for (int o = 0; o < out; o++) {
        const int q = o / og;
        if (dw)
            for (int i = 0; i < ig; i++) {
                double acc = 0;
                for (int n = 0; n < N; n++) acc += dy[(size_t)n * out + o] * x[(size_t)n * in + q * ig + i];
                dw[(size_t)o * ig + i] = (float)acc;
            }
        if (db) {
            double acc = 0;
            for (int n = 0; n < N; n++) acc += dy[(size_t)n * out + o];
            db[o] = (float)acc;
        }
    }
    if (dx)
        for (int n = 0; n < N; n++)
            for (int i = 0; i < in; i++) {
                const int q = i / ig;
                double acc = 0;
                for (int ol = 0; ol < og; ol++)
                    acc += dy[(size_t)n * out + q * og + ol] * (double)w[(size_t)(q * og + ol) * ig + i % ig];
                dx[(size_t)n * in + i] = acc;
            }
}

/* Forward of the same grouped linear in double: y = x . w^T + b. */
static inline void attb_linear_f64(const double *x, int N, int in, const float *w, const float *b, int out,
                                   int groups, double *y) {
    const int ig = in / groups, og = out / groups;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < out; o++) {
            const int q = o / og;
            double acc = b[o];
            for (int i = 0; i < ig; i++) acc += (double)w[(size_t)o * ig + i] * x[(size_t)n * in + q * ig + i];
            y[(size_t)n * out + o] = acc;
        }
}

/* Softmax of n doubles at stride st, in place, max-subtracted. */
static inline void attb_softmax_f64(double *v, size_t st, int n) {
    double mx = v[0], sum = 0;
    for (int i = 1; i < n; i++) mx = v[(size_t)i * st] > mx ? v[(size_t)i * st] : mx;
    for (int i = 0; i < n; i++) sum += (v[(size_t)i * st] = exp(v[(size_t)i * st] - mx));
    for (int i = 0; i < n; i++) v[(size_t)i * st] /= sum;
}

/* The naive backward of the mixing, in double, with the forward recomputed
 * by the caller: U (float, the conv outputs after ReLU, U's layout), a
 * (N, B, C) double, dy (N, C, P): da (N, B, C) double. */
static inline void attb_da_f64(const float *U, const float *dy, int N, int C, int B, size_t P, size_t sn, size_t sb,
                               double *da) {
    for (int n = 0; n < N; n++)
        for (int b = 0; b < B; b++)
            for (int c = 0; c < C; c++) {
                const float *u = U + (size_t)n * sn + (size_t)b * sb + (size_t)c * P;
                const float *g = dy + ((size_t)n * C + c) * P;
                double acc = 0;
                for (size_t k = 0; k < P; k++) acc += (double)g[k] * u[k];
                da[((size_t)n * B + b) * C + c] = acc;
            }
}

/* dV (float, U's layout) = (U > 0) * (a * dy + ds / P), in double. */
static inline void attb_dv_f64(const float *U, const double *a, const float *dy, const double *ds, int N, int C,
                               int B, size_t P, size_t sn, size_t sb, float *dV) {
    for (int n = 0; n < N; n++)
        for (int b = 0; b < B; b++)
            for (int c = 0; c < C; c++) {
                const size_t off = (size_t)n * sn + (size_t)b * sb + (size_t)c * P;
                const float *g = dy + ((size_t)n * C + c) * P;
                const double ab = a[((size_t)n * B + b) * C + c], dsv = ds[(size_t)n * C + c] / (double)P;
                for (size_t k = 0; k < P; k++) dV[off + k] = U[off + k] > 0 ? (float)(ab * g[k] + dsv) : 0.0f;
            }
}

#endif
