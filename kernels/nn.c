/* Small dense building blocks shared by the dynamic operators. */
#include "dcb_internal.h"

#include <cblas.h>

void dcb_gap(const float *x, int N, int C, size_t HW, float *out, int threads) {
    const double inv = 1.0 / (double)HW;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && (size_t)N * C * HW > 65536)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float *p = x + (size_t)nc * HW;
        double s = 0;
        for (size_t i = 0; i < HW; i++) s += p[i];
        out[nc] = (float)(s * inv);
    }
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
