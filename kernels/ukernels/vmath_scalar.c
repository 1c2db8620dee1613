/* vmath_scalar.c — the portable variant of the exp family (vmath.h): libm's
 * expf on the clamped inputs, where no SIMD variant runs, under
 * DCB_ISA=scalar, and the reference the tests hold the others to. */
#include "vmath.h"

#include <math.h>

static inline float clamp_exp(float v) { return expf(v < -87.0f ? -87.0f : v > 88.0f ? 88.0f : v); }

static void exp_scalar(float *v, size_t n) {
    for (size_t i = 0; i < n; i++) v[i] = clamp_exp(v[i]);
}

static float exp_shift_sum_scalar(float *v, int n, float m) {
    float sum = 0;
    for (int j = 0; j < n; j++) {
        const float d = v[j] - m;
        sum += (v[j] = expf(d < -87.0f ? -87.0f : d));
    }
    return sum;
}

static void sigmoid_scalar(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + clamp_exp(-x[i]));
}

static void softmax_heads_scalar(float *v, int H, int K) {
    for (int h = 0; h < H; h++) {
        float *r = v + (size_t)h * K;
        float mx = r[0];
        for (int j = 1; j < K; j++) mx = r[j] > mx ? r[j] : mx;
        float s = 0;
        for (int j = 0; j < K; j++) {
            const float d = r[j] - mx;
            s += (r[j] = expf(d < -87.0f ? -87.0f : d));
        }
        const float inv = 1.0f / s;
        for (int j = 0; j < K; j++) r[j] *= inv;
    }
}

static void softmax_taps_scalar(float *v, int H, int K) {
    for (int h = 0; h < H; h++) {
        float m = v[h], s = 0;
        for (int j = 1; j < K; j++) m = v[(size_t)j * H + h] > m ? v[(size_t)j * H + h] : m;
        for (int j = 0; j < K; j++) {
            const float d = v[(size_t)j * H + h] - m;
            s += (v[(size_t)j * H + h] = expf(d < -87.0f ? -87.0f : d));
        }
        const float inv = 1.0f / s;
        for (int j = 0; j < K; j++) v[(size_t)j * H + h] *= inv;
    }
}

DCB_VMATH_DEFINE(scalar, DCB_ISA_SCALAR)
