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

/* nv (1..4) vectors of 8 outputs of rows i and i+1: input rows 0..3 loaded
 * once each per column shift, row i taking rows 0..2 and row i+1 rows 1..3
 * (12 loads for 18 FMAs a vector, against 18 and 18 for two rows apart),
 * 2 nv independent chains, each accumulator its taps in row's order; the
 * weights are broadcast from memory (8 accumulators leave no room for 9
 * more registers). */
INLINE void vecs2(const int nv, const float *wt, const float *src, size_t rs, float bias, float *d0, float *d1,
                  int nvalid) {
    __m256 a0[4], a1[4];
    for (int v = 0; v < 4; v++)
        if (v < nv) a0[v] = a1[v] = _mm256_set1_ps(bias);
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 3; c++) {
            const float *q = src + (size_t)r * rs + c;
            const __m256 w0 = r < 3 ? _mm256_broadcast_ss(wt + 3 * r + c) : _mm256_setzero_ps();
            const __m256 w1 = r > 0 ? _mm256_broadcast_ss(wt + 3 * (r - 1) + c) : _mm256_setzero_ps();
            for (int v = 0; v < 4; v++)
                if (v < nv) {
                    const __m256 x = _mm256_loadu_ps(q + 8 * v);
                    if (r < 3) a0[v] = _mm256_fmadd_ps(w0, x, a0[v]);
                    if (r > 0) a1[v] = _mm256_fmadd_ps(w1, x, a1[v]);
                }
        }
    for (int v = 0; v + 1 < nv; v++) {
        _mm256_storeu_ps(d0 + 8 * v, a0[v]);
        _mm256_storeu_ps(d1 + 8 * v, a1[v]);
    }
    const int last = nvalid - 8 * (nv - 1);
    if (last == 8) {
        _mm256_storeu_ps(d0 + 8 * (nv - 1), a0[nv - 1]);
        _mm256_storeu_ps(d1 + 8 * (nv - 1), a1[nv - 1]);
    } else {
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(last), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        _mm256_maskstore_ps(d0 + 8 * (nv - 1), m, a0[nv - 1]);
        _mm256_maskstore_ps(d1 + 8 * (nv - 1), m, a1[nv - 1]);
    }
}

static void rows2_3x3_avx2(const float *wt, const float *src, size_t rs, float bias, float *dst0, float *dst1,
                           int n) {
    int j = 0;
    for (; j + 32 <= n; j += 32) vecs2(4, wt, src + j, rs, bias, dst0 + j, dst1 + j, 32);
    const int rest = n - j;
    switch ((rest + 7) / 8) {
    case 1: vecs2(1, wt, src + j, rs, bias, dst0 + j, dst1 + j, rest); break;
    case 2: vecs2(2, wt, src + j, rs, bias, dst0 + j, dst1 + j, rest); break;
    case 3: vecs2(3, wt, src + j, rs, bias, dst0 + j, dst1 + j, rest); break;
    case 4: vecs2(4, wt, src + j, rs, bias, dst0 + j, dst1 + j, rest); break;
    default: break;
    }
}

DCB_DWK_DEFINE(avx2, DCB_ISA_AVX2)
#endif
