/* seq1d_avx2.c — the AVX2 + FMA variant of the sequence row (seq1d.h):
 * where every head's run R = C/H is a multiple of 8, blocks of 32 channels
 * (4 ymm accumulators), then 8, in registers while the taps stream by;
 * plain loops otherwise. rows4: 16 channels by 4 output rows (8
 * accumulators), row by row where R % 8 != 0. Compiled with ISA_FLAGS_avx2 (x86-64-v3); chosen at
 * run time where the CPU has AVX2 and FMA. */
#include "seq1d.h"

#if DCB_ISA_X86
#if !defined(__AVX2__) || !defined(__FMA__)
#error "seq1d_avx2.c needs AVX2 and FMA: build it with the Makefile's ISA_FLAGS_avx2"
#endif
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "seq1d_loops.inc"

static void row_avx2(int C, int H, int hs, int js, const float *restrict k, int j0, int j1,
                     const float *restrict xs, const float *restrict b, float *restrict y) {
    const int R = C / H;
    if (R % 8) {
        row_loops(C, H, hs, js, k, j0, j1, xs, b, y);
        return;
    }
    for (int h = 0; h < H; h++) {
        const float *kh = k + (size_t)h * hs;
        int c = h * R;
        const int ce = c + R;
        for (; c + 32 <= ce; c += 32) {
            __m256 a0 = b ? _mm256_loadu_ps(b + c) : _mm256_setzero_ps();
            __m256 a1 = b ? _mm256_loadu_ps(b + c + 8) : _mm256_setzero_ps();
            __m256 a2 = b ? _mm256_loadu_ps(b + c + 16) : _mm256_setzero_ps();
            __m256 a3 = b ? _mm256_loadu_ps(b + c + 24) : _mm256_setzero_ps();
            const float *xp = xs + c;
            for (int j = j0; j < j1; j++, xp += C) {
                const __m256 w = _mm256_broadcast_ss(kh + (size_t)j * js);
                a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(xp), a0);
                a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(xp + 8), a1);
                a2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(xp + 16), a2);
                a3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(xp + 24), a3);
            }
            _mm256_storeu_ps(y + c, a0);
            _mm256_storeu_ps(y + c + 8, a1);
            _mm256_storeu_ps(y + c + 16, a2);
            _mm256_storeu_ps(y + c + 24, a3);
        }
        for (; c < ce; c += 8) {
            __m256 a0 = b ? _mm256_loadu_ps(b + c) : _mm256_setzero_ps();
            const float *xp = xs + c;
            for (int j = j0; j < j1; j++, xp += C)
                a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(kh + (size_t)j * js), _mm256_loadu_ps(xp), a0);
            _mm256_storeu_ps(y + c, a0);
        }
    }
}

/* rows4's block: nv (1 or 2) vectors of 8 channels of one head from c, for
 * 4 output rows (4 x nv accumulators of 16 ymm). Input row s feeds output r
 * with tap s - r; `checked` steps test that range. Each output's chain is
 * row_avx2's: over its taps in order from b. */
#define INLINE static inline __attribute__((always_inline))
INLINE void step4(const int nv, const int checked, int s, int C, int K, int js, size_t ks, const float *kh,
                  const float *restrict xs, int c, __m256 acc[4][2]) {
    const float *xp = xs + (size_t)s * C + c;
    const __m256 x0 = _mm256_loadu_ps(xp), x1 = nv > 1 ? _mm256_loadu_ps(xp + 8) : x0;
    for (int r = 0; r < 4; r++) {
        const int j = s - r;
        if (checked && (j < 0 || j >= K)) continue;
        const __m256 w = _mm256_broadcast_ss(kh + r * ks + (size_t)j * js);
        acc[r][0] = _mm256_fmadd_ps(w, x0, acc[r][0]);
        if (nv > 1) acc[r][1] = _mm256_fmadd_ps(w, x1, acc[r][1]);
    }
}

INLINE void block4(const int nv, int C, int js, const float *restrict kh, size_t ks, int K, const float *restrict xs,
                   const float *restrict b, float *restrict y, int c) {
    __m256 acc[4][2];
    const __m256 b0 = b ? _mm256_loadu_ps(b + c) : _mm256_setzero_ps();
    const __m256 b1 = b && nv > 1 ? _mm256_loadu_ps(b + c + 8) : _mm256_setzero_ps();
    for (int r = 0; r < 4; r++) acc[r][0] = b0, acc[r][1] = b1;
    const int s_lo = K < 3 ? K : 3;
    int s = 0;
    for (; s < s_lo; s++) step4(nv, 1, s, C, K, js, ks, kh, xs, c, acc);
    for (; s < K; s++) step4(nv, 0, s, C, K, js, ks, kh, xs, c, acc);
    for (; s < K + 3; s++) step4(nv, 1, s, C, K, js, ks, kh, xs, c, acc);
    for (int r = 0; r < 4; r++) {
        _mm256_storeu_ps(y + (size_t)r * C + c, acc[r][0]);
        if (nv > 1) _mm256_storeu_ps(y + (size_t)r * C + c + 8, acc[r][1]);
    }
}

static void rows4_avx2(int C, int H, int hs, int js, const float *restrict k, size_t ks, int K,
                       const float *restrict xs, const float *restrict b, float *restrict y) {
    const int R = C / H;
    if (R % 8) {
        for (int r = 0; r < 4; r++) row_avx2(C, H, hs, js, k + r * ks, 0, K, xs + (size_t)r * C, b, y + (size_t)r * C);
        return;
    }
    for (int h = 0; h < H; h++) {
        const float *kh = k + (size_t)h * hs;
        int c = h * R;
        const int ce = c + R;
        for (; c + 16 <= ce; c += 16) block4(2, C, js, kh, ks, K, xs, b, y, c);
        if (c < ce) block4(1, C, js, kh, ks, K, xs, b, y, c);
    }
}

DCB_SEQ1D_DEFINE(avx2, DCB_ISA_AVX2, rows4_avx2)
#endif
