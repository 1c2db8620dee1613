/* dwconv_avx512.c — the AVX-512 variant of the depthwise kernels
 * (dwconv.h): rows in blocks of 4 zmm accumulators (64 outputs), the last
 * block of 1..4 vectors with its partial vector's loads and store masked
 * (no reads past n). The chain per output is the avx2 variant's, so both
 * give the same bits. Compiled with ISA_FLAGS_avx512 (x86-64-v4); chosen at
 * run time where the CPU and OS run AVX-512 F/BW/DQ/VL. */
#include "dwconv.h"

#if DCB_ISA_X86
#if !defined(__AVX512F__) || !defined(__AVX512VL__) || !defined(__AVX512BW__) || !defined(__FMA__)
#error "dwconv_avx512.c needs AVX-512: build it with the Makefile's ISA_FLAGS_avx512"
#endif
#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))

#include "avx512_lanes.h"

static void split2_avx512(const float *x, int w, float *even, float *odd) {
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    int j = 0;
    for (; j + 32 <= w; j += 32) {
        const __m512 lo = _mm512_loadu_ps(x + j), hi = _mm512_loadu_ps(x + j + 16);
        _mm512_storeu_ps(even + j / 2, _mm512_permutex2var_ps(lo, ie, hi));
        _mm512_storeu_ps(odd + j / 2, _mm512_permutex2var_ps(lo, io, hi));
    }
    if (j < w) { /* the last 1..31 columns: masked loads and stores */
        const int r = w - j;
        const __m512 lo = _mm512_maskz_loadu_ps(lanes(r), x + j), hi = _mm512_maskz_loadu_ps(lanes(r - 16), x + j + 16);
        _mm512_mask_storeu_ps(even + j / 2, lanes((r + 1) / 2), _mm512_permutex2var_ps(lo, ie, hi));
        _mm512_mask_storeu_ps(odd + j / 2, lanes(r / 2), _mm512_permutex2var_ps(lo, io, hi));
    }
}

/* nv (1..4) vectors of 16 outputs, nvalid (> 16 (nv - 1)) of them loaded
 * and stored; nv is a constant in every inlined copy. */
INLINE void vecs(const int nv, int kk, const float *wt, const int *off, const float *src, float bias, float *dst,
                 int nvalid) {
    const __mmask16 m = lanes(nvalid - 16 * (nv - 1));
    __m512 acc[4];
    for (int v = 0; v < 4; v++)
        if (v < nv) acc[v] = _mm512_set1_ps(bias);
    for (int t = 0; t < kk; t++) {
        const __m512 w = _mm512_set1_ps(wt[t]);
        const float *q = src + off[t];
        for (int v = 0; v < 4; v++)
            if (v < nv) {
                const __m512 xv = v + 1 < nv ? _mm512_loadu_ps(q + 16 * v) : _mm512_maskz_loadu_ps(m, q + 16 * v);
                acc[v] = _mm512_fmadd_ps(w, xv, acc[v]);
            }
    }
    for (int v = 0; v + 1 < nv; v++) _mm512_storeu_ps(dst + 16 * v, acc[v]);
    _mm512_mask_storeu_ps(dst + 16 * (nv - 1), m, acc[nv - 1]);
}

static void row_avx512(int kk, const float *wt, const int *off, const float *src, float bias, float *dst, int n) {
    int j = 0;
    for (; j + 64 <= n; j += 64) vecs(4, kk, wt, off, src + j, bias, dst + j, 64);
    const int rest = n - j;
    switch ((rest + 15) / 16) {
    case 1: vecs(1, kk, wt, off, src + j, bias, dst + j, rest); break;
    case 2: vecs(2, kk, wt, off, src + j, bias, dst + j, rest); break;
    case 3: vecs(3, kk, wt, off, src + j, bias, dst + j, rest); break;
    case 4: vecs(4, kk, wt, off, src + j, bias, dst + j, rest); break;
    default: break;
    }
}

/* Two rows apart: sharing the input rows (as the avx2 variant does, 8
 * accumulators) measured 4-13% slower here at 144@56 on 1 thread, so the
 * rows stay one at a time, 4 zmm accumulators each. */
static void rows2_3x3_avx512(const float *wt, const float *src, size_t rs, float bias, float *dst0, float *dst1,
                             int n) {
    const int off[9] = {0, 1, 2, (int)rs, (int)rs + 1, (int)rs + 2, 2 * (int)rs, 2 * (int)rs + 1, 2 * (int)rs + 2};
    row_avx512(9, wt, off, src, bias, dst0, n);
    row_avx512(9, wt, off, src + rs, bias, dst1, n);
}

DCB_DWK_DEFINE(avx512, DCB_ISA_AVX512)
#endif
