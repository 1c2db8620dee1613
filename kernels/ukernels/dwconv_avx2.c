/* dwconv_avx2.c — the AVX2 + FMA variant of the depthwise kernels
 * (dwconv.h): rows in blocks of 4 ymm accumulators (32 outputs), the last
 * block of 1..4 vectors with a masked store of its partial vector.
 * Compiled with ISA_FLAGS_avx2 (x86-64-v3); chosen at run time where the
 * CPU has AVX2 and FMA. */
#include "dwconv.h"

#if DCB_ISA_X86
#if !defined(__AVX2__) || !defined(__FMA__)
#error "dwconv_avx2.c needs AVX2 and FMA: build it with the Makefile's ISA_FLAGS_avx2"
#endif
#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))

static void split2_avx2(const float *x, int w, float *even, float *odd) {
    int j = 0;
    for (; j + 16 <= w; j += 16) {
        const __m256 lo = _mm256_loadu_ps(x + j), hi = _mm256_loadu_ps(x + j + 8);
        const __m256 ev = _mm256_shuffle_ps(lo, hi, 0x88), od = _mm256_shuffle_ps(lo, hi, 0xDD);
        _mm256_storeu_ps(even + j / 2, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), 0xD8)));
        _mm256_storeu_ps(odd + j / 2, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od), 0xD8)));
    }
    const __m256i split = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    for (; j + 8 <= w; j += 8) {
        const __m256 v = _mm256_permutevar8x32_ps(_mm256_loadu_ps(x + j), split);
        _mm_storeu_ps(even + j / 2, _mm256_castps256_ps128(v));
        _mm_storeu_ps(odd + j / 2, _mm256_extractf128_ps(v, 1));
    }
    for (; j + 1 < w; j += 2) {
        even[j / 2] = x[j];
        odd[j / 2] = x[j + 1];
    }
    if (j < w) even[j / 2] = x[j];
}

/* nv (1..4) vectors of 8 outputs from src, nvalid (> 8 (nv - 1)) of them
 * stored; nv is a constant in every inlined copy, so the accumulators stay
 * in registers. */
INLINE void vecs(const int nv, int kk, const float *wt, const int *off, const float *src, float bias, float *dst,
                 int nvalid) {
    __m256 acc[4];
    for (int v = 0; v < 4; v++)
        if (v < nv) acc[v] = _mm256_set1_ps(bias);
    for (int t = 0; t < kk; t++) {
        const __m256 w = _mm256_broadcast_ss(wt + t);
        const float *q = src + off[t];
        for (int v = 0; v < 4; v++)
            if (v < nv) acc[v] = _mm256_fmadd_ps(w, _mm256_loadu_ps(q + 8 * v), acc[v]);
    }
    for (int v = 0; v + 1 < nv; v++) _mm256_storeu_ps(dst + 8 * v, acc[v]);
    const int last = nvalid - 8 * (nv - 1);
    if (last == 8) {
        _mm256_storeu_ps(dst + 8 * (nv - 1), acc[nv - 1]);
    } else {
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(last), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        _mm256_maskstore_ps(dst + 8 * (nv - 1), m, acc[nv - 1]);
    }
}

static void row_avx2(int kk, const float *wt, const int *off, const float *src, float bias, float *dst, int n) {
    int j = 0;
    for (; j + 32 <= n; j += 32) vecs(4, kk, wt, off, src + j, bias, dst + j, 32);
    const int rest = n - j;
    switch ((rest + 7) / 8) {
    case 1: vecs(1, kk, wt, off, src + j, bias, dst + j, rest); break;
    case 2: vecs(2, kk, wt, off, src + j, bias, dst + j, rest); break;
    case 3: vecs(3, kk, wt, off, src + j, bias, dst + j, rest); break;
    case 4: vecs(4, kk, wt, off, src + j, bias, dst + j, rest); break;
    default: break;
    }
}

DCB_DWK_DEFINE(avx2, DCB_ISA_AVX2)
#endif
