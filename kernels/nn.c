/* Small dense building blocks shared by the dynamic operators. */
#include "dcb_internal.h"

#ifdef __AVX__
#include <immintrin.h>
#endif

#include <cblas.h>

/* Sum of n floats in double. Four vector accumulators: one scalar chain of
 * dependent double adds ran at ~4 cycles a float (0.7 ms of condconv's
 * routing at 128@28 N=8). */
double dcb_sum_f64(const float *p, size_t n) {
    double s = 0;
    size_t i = 0;
#ifdef __AVX__
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm_loadu_ps(p + i)));
        a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm_loadu_ps(p + i + 4)));
        a2 = _mm256_add_pd(a2, _mm256_cvtps_pd(_mm_loadu_ps(p + i + 8)));
        a3 = _mm256_add_pd(a3, _mm256_cvtps_pd(_mm_loadu_ps(p + i + 12)));
    }
    double t[4];
    _mm256_storeu_pd(t, _mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
    s = (t[0] + t[1]) + (t[2] + t[3]);
#endif
    for (; i < n; i++) s += p[i];
    return s;
}

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
