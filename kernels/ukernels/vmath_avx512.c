/* vmath_avx512.c — the AVX-512 variant of the exp family (vmath.h): the
 * 16-lane polynomial exp (the avx2 variant's algorithm, coefficients and
 * clamps, so an element gives the same bits), tails in one masked vector.
 * Compiled with ISA_FLAGS_avx512 (x86-64-v4); chosen at run time where the
 * CPU and OS run AVX-512 F/BW/DQ/VL. */
#include "vmath.h"

#if DCB_ISA_X86
#if !defined(__AVX512F__) || !defined(__AVX512VL__) || !defined(__AVX512DQ__) || !defined(__FMA__)
#error "vmath_avx512.c needs AVX-512: build it with the Makefile's ISA_FLAGS_avx512"
#endif
#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))

#include "avx512_lanes.h"

/* e^x, x clamped to [-87, 88] (vmath.h). */
INLINE __m512 exp16(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    x = _mm512_min_ps(x, _mm512_set1_ps(88.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(y, _mm512_castsi512_ps(e));
}

static void exp_avx512(float *v, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(v + i, exp16(_mm512_loadu_ps(v + i)));
    if (i < n) {
        const __mmask16 m = lanes((long)(n - i));
        _mm512_mask_storeu_ps(v + i, m, exp16(_mm512_maskz_loadu_ps(m, v + i)));
    }
}

static float exp_shift_sum_avx512(float *v, int n, float m) {
    int j = 0;
    __m512 acc = _mm512_setzero_ps();
    const __m512 mv = _mm512_set1_ps(m);
    for (; j + 16 <= n; j += 16) {
        const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(v + j), mv));
        _mm512_storeu_ps(v + j, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (j < n) {
        const __mmask16 k = lanes(n - j);
        const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, v + j), mv));
        _mm512_mask_storeu_ps(v + j, k, e);
        acc = _mm512_mask_add_ps(acc, k, acc, e);
    }
    float l[16], sum = 0;
    _mm512_storeu_ps(l, acc);
    for (int i = 0; i < 16; i++) sum += l[i];
    return sum;
}

static void sigmoid_avx512(const float *x, float *y, size_t n) {
    const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 e = exp16(_mm512_sub_ps(zero, _mm512_loadu_ps(x + i)));
        _mm512_storeu_ps(y + i, _mm512_div_ps(one, _mm512_add_ps(one, e)));
    }
    if (i < n) {
        const __mmask16 m = lanes((long)(n - i));
        const __m512 e = exp16(_mm512_sub_ps(zero, _mm512_maskz_loadu_ps(m, x + i)));
        _mm512_mask_storeu_ps(y + i, m, _mm512_div_ps(one, _mm512_add_ps(one, e)));
    }
}

/* The exponentials of all H*K shifted logits are taken in one contiguous pass. */
static void softmax_heads_avx512(float *v, int H, int K) {
    for (int h = 0; h < H; h++) {
        float *r = v + (size_t)h * K;
        float mx = r[0];
        for (int j = 1; j < K; j++) mx = r[j] > mx ? r[j] : mx;
        for (int j = 0; j < K; j++) r[j] -= mx;
    }
    exp_avx512(v, (size_t)H * K);
    for (int h = 0; h < H; h++) {
        float *r = v + (size_t)h * K;
        float s = 0;
        for (int j = 0; j < K; j++) s += r[j];
        const float inv = 1.0f / s;
        for (int j = 0; j < K; j++) r[j] *= inv;
    }
}

/* Heads in blocks of 16 lanes, the last (< 16) masked. */
static void softmax_taps_avx512(float *v, int H, int K) {
    for (int h = 0; h < H; h += 16) {
        const __mmask16 k = lanes(H - h);
        float *c = v + h;
        __m512 m = _mm512_maskz_loadu_ps(k, c);
        for (int j = 1; j < K; j++) m = _mm512_max_ps(m, _mm512_maskz_loadu_ps(k, c + (size_t)j * H));
        __m512 s = _mm512_setzero_ps();
        for (int j = 0; j < K; j++) {
            const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, c + (size_t)j * H), m));
            _mm512_mask_storeu_ps(c + (size_t)j * H, k, e);
            s = _mm512_add_ps(s, e);
        }
        const __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), s);
        for (int j = 0; j < K; j++)
            _mm512_mask_storeu_ps(c + (size_t)j * H, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, c + (size_t)j * H), inv));
    }
}

DCB_VMATH_DEFINE(avx512, DCB_ISA_AVX512)
#endif
