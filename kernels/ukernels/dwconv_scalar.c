/* dwconv_scalar.c — the portable variant of the depthwise kernels
 * (dwconv.h): plain C, where no SIMD variant runs, under DCB_ISA=scalar, and
 * the reference the tests hold the others to. */
#include "dwconv.h"

static void split2_scalar(const float *x, int w, float *even, float *odd) {
    int t = 0;
    for (; 2 * t + 1 < w; t++) {
        even[t] = x[2 * t];
        odd[t] = x[2 * t + 1];
    }
    if (2 * t < w) even[t] = x[2 * t];
}

static void row_scalar(int kk, const float *wt, const int *off, const float *src, float bias, float *dst, int n) {
    for (int j = 0; j < n; j++) dst[j] = bias;
    for (int t = 0; t < kk; t++) {
        const float w = wt[t];
        const float *q = src + off[t];
        for (int j = 0; j < n; j++) dst[j] += w * q[j];
    }
}

static void rows2_3x3_scalar(const float *wt, const float *src, size_t rs, float bias, float *dst0, float *dst1,
                             int n) {
    const int off[9] = {0, 1, 2, (int)rs, (int)rs + 1, (int)rs + 2, 2 * (int)rs, 2 * (int)rs + 1, 2 * (int)rs + 2};
    row_scalar(9, wt, off, src, bias, dst0, n);
    row_scalar(9, wt, off, src + rs, bias, dst1, n);
}

DCB_DWK_DEFINE(scalar, DCB_ISA_SCALAR)
