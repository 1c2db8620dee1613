/* seq1d_avx2.c — the AVX2 + FMA variant of the sequence row (seq1d.h):
 * where every head's run R = C/H is a multiple of 8, blocks of 32 channels
 * (4 ymm accumulators), then 8, in registers while the taps stream by;
 * plain loops otherwise. Compiled with ISA_FLAGS_avx2 (x86-64-v3); chosen at
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

DCB_SEQ1D_DEFINE(avx2, DCB_ISA_AVX2)
#endif
