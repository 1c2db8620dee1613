/* Small dense building blocks shared by the dynamic operators. */
#include "dcb_internal.h"
#include "ukernels/dynmix.h"

#include <cblas.h>

/* Sum of n floats in double: the dynmix family's (ukernels/dynmix.h), in
 * vector accumulators (one scalar chain of dependent double adds ran at ~4
 * cycles a float: 0.7 ms of condconv's routing at 128@28 N=8). */
double dcb_sum_f64(const float *p, size_t n) { return dcb_dynmix()->sum_f64(p, n); }

void dcb_gap(const float *x, int N, int C, size_t HW, float *out, int threads) {
    const double inv = 1.0 / (double)HW;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && (size_t)N * C * HW > 65536)
    for (long nc = 0; nc < (long)N * C; nc++) out[nc] = (float)(dcb_sum_f64(x + (size_t)nc * HW, HW) * inv);
}

void dcb_linear(const float *x, int N, int in, const float *w, const float *b, int out, float *y,
                int threads) {
    if (b)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < out; o++) y[(size_t)n * out + o] = b[o];
    dcb_blas_threads_for(threads);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, in, 1.0f, x, in, w, in, b ? 1.0f : 0.0f, y,
                out);
}

void dcb_relu(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0;
}

/* Written so that neither branch overflows for large |x|. */
void dcb_sigmoid(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        if (v >= 0) {
            x[i] = 1.0f / (1.0f + expf(-v));
        } else {
            float e = expf(v);
            x[i] = e / (1.0f + e);
        }
    }
}

void dcb_softmax_rows(float *x, int rows, int cols, float temperature) {
    for (int r = 0; r < rows; r++) {
        float *p = x + (size_t)r * cols;
        float m = -INFINITY;
        for (int c = 0; c < cols; c++) {
            p[c] /= temperature;
            if (p[c] > m) m = p[c];
        }
        double s = 0;
        for (int c = 0; c < cols; c++) {
            p[c] = expf(p[c] - m);
            s += p[c];
        }
        for (int c = 0; c < cols; c++) p[c] = (float)(p[c] / s);
    }
}

void dcb_branch_gap(const float *U, int N, int C, int B, size_t P, size_t sn, size_t sb, float *s, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const int n = (int)(nc / C), c = (int)(nc % C);
        const float *u = U + (size_t)n * sn + (size_t)c * P;
        double acc = 0;
        for (int b = 0; b < B; b++) acc += dcb_sum_f64(u + (size_t)b * sb, P);
        s[nc] = (float)(acc / (double)P);
    }
}

void dcb_branch_mix(const float *U, const float *a, int N, int C, int B, size_t P, size_t sn, size_t sb, float *y,
                    int threads) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const int n = (int)(nc / C), c = (int)(nc % C);
        float *yo = y + (size_t)nc * P;
        const float *an = a + (size_t)n * B * C + c;
        const float *un = U + (size_t)n * sn + (size_t)c * P;
        for (size_t k = 0; k < P; k++) yo[k] = an[0] * un[k];
        for (int b = 1; b < B; b++) {
            const float ab = an[(size_t)b * C];
            const float *ub = un + (size_t)b * sb;
            for (size_t k = 0; k < P; k++) yo[k] += ab * ub[k];
        }
    }
}

void dcb_softmax_strided(const float *in, size_t is, float *out, size_t os, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = in[(size_t)i * is] > mx ? in[(size_t)i * is] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        out[(size_t)i * os] = expf(in[(size_t)i * is] - mx);
        sum += out[(size_t)i * os];
    }
    for (int i = 0; i < n; i++) out[(size_t)i * os] = (float)(out[(size_t)i * os] / sum);
}
