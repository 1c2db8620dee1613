/* vmath_avx2.c — the AVX2 + FMA variant of the exp family (vmath.h): the
 * 8-lane polynomial exp, its tails (< 8 elements) through libm's expf.
 * Compiled with ISA_FLAGS_avx2 (x86-64-v3); chosen at run time where the
 * CPU has AVX2 and FMA. */
#include "vmath.h"

#if DCB_ISA_X86
#if !defined(__AVX2__) || !defined(__FMA__)
#error "vmath_avx2.c needs AVX2 and FMA: build it with the Makefile's ISA_FLAGS_avx2"
#endif
#include <immintrin.h>
#include <math.h>

#define INLINE static inline __attribute__((always_inline))

/* e^x, x clamped to [-87, 88] (vmath.h). */
INLINE __m256 exp8(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

INLINE float clamp_exp(float v) { return expf(v < -87.0f ? -87.0f : v > 88.0f ? 88.0f : v); }

static void exp_avx2(float *v, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(v + i, exp8(_mm256_loadu_ps(v + i)));
    for (; i < n; i++) v[i] = clamp_exp(v[i]);
}

static float exp_shift_sum_avx2(float *v, int n, float m) {
    int j = 0;
    float sum = 0;
    __m256 acc = _mm256_setzero_ps();
    const __m256 mv = _mm256_set1_ps(m);
    for (; j + 8 <= n; j += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(v + j), mv));
        _mm256_storeu_ps(v + j, e);
        acc = _mm256_add_ps(acc, e);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, acc);
    for (int l = 0; l < 8; l++) sum += lanes[l];
    for (; j < n; j++) {
        const float d = v[j] - m;
        sum += (v[j] = expf(d < -87.0f ? -87.0f : d));
    }
    return sum;
}

static void sigmoid_avx2(const float *x, float *y, size_t n) {
    size_t i = 0;
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp8(_mm256_sub_ps(zero, _mm256_loadu_ps(x + i)));
        _mm256_storeu_ps(y + i, _mm256_div_ps(one, _mm256_add_ps(one, e)));
    }
    for (; i < n; i++) y[i] = 1.0f / (1.0f + clamp_exp(-x[i]));
}

/* The exponentials of all H*K shifted logits are taken in one contiguous pass. */
static void softmax_heads_avx2(float *v, int H, int K) {
    for (int h = 0; h < H; h++) {
        float *r = v + (size_t)h * K;
        float mx = r[0];
        for (int j = 1; j < K; j++) mx = r[j] > mx ? r[j] : mx;
        for (int j = 0; j < K; j++) r[j] -= mx;
    }
    exp_avx2(v, (size_t)H * K);
    for (int h = 0; h < H; h++) {
        float *r = v + (size_t)h * K;
        float s = 0;
        for (int j = 0; j < K; j++) s += r[j];
        const float inv = 1.0f / s;
        for (int j = 0; j < K; j++) r[j] *= inv;
    }
}

static void softmax_taps_avx2(float *v, int H, int K) {
    int h = 0;
    for (; h + 8 <= H; h += 8) {
        __m256 m = _mm256_loadu_ps(v + h);
        for (int j = 1; j < K; j++) m = _mm256_max_ps(m, _mm256_loadu_ps(v + (size_t)j * H + h));
        __m256 s = _mm256_setzero_ps();
        for (int j = 0; j < K; j++) {
            const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(v + (size_t)j * H + h), m));
            _mm256_storeu_ps(v + (size_t)j * H + h, e);
            s = _mm256_add_ps(s, e);
        }
        const __m256 inv = _mm256_div_ps(_mm256_set1_ps(1.0f), s);
        for (int j = 0; j < K; j++)
            _mm256_storeu_ps(v + (size_t)j * H + h, _mm256_mul_ps(_mm256_loadu_ps(v + (size_t)j * H + h), inv));
    }
    for (; h < H; h++) {
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

DCB_VMATH_DEFINE(avx2, DCB_ISA_AVX2)
#endif
