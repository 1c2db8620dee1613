/* vexp.h — a vectorised float exp for the softmaxes of the sequence
 * operators (lightconv, dynconv1d, mhattention). Internal.
 *
 * Cody-Waite reduction x = n ln2 + r, a degree-6 polynomial for e^r (the
 * Cephes expf coefficients, ~1 ulp), 2^n by exponent bits. Softmax inputs
 * are logits minus their row maximum (<= 0); they are clamped at -87, where
 * e^x is below 2^-125 and vanishes next to the row's largest term, 1. */
#ifndef DCB_VEXP_H
#define DCB_VEXP_H

#include <math.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
static inline __m256 dcb_exp256(__m256 x) {
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
#define DCB_HAVE_EXP256 1
#endif

/* v[j] = exp(v[j] - m) for j < n, in place; returns their sum. */
static inline float dcb_exp_shift_sum(float *v, int n, float m) {
    int j = 0;
    float sum = 0;
#ifdef DCB_HAVE_EXP256
    __m256 acc = _mm256_setzero_ps();
    const __m256 mv = _mm256_set1_ps(m);
    for (; j + 8 <= n; j += 8) {
        const __m256 e = dcb_exp256(_mm256_sub_ps(_mm256_loadu_ps(v + j), mv));
        _mm256_storeu_ps(v + j, e);
        acc = _mm256_add_ps(acc, e);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, acc);
    for (int l = 0; l < 8; l++) sum += lanes[l];
#endif
    for (; j < n; j++) {
        const float d = v[j] - m;
        sum += (v[j] = expf(d < -87.0f ? -87.0f : d));
    }
    return sum;
}

#endif
