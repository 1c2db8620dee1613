/* seq1d_avx512.c — the AVX-512 variant of the sequence row (seq1d.h): per
 * head, blocks of 64 channels (4 zmm accumulators), then 16, then the last
 * (< 16) in one masked vector, in registers while the taps stream by, for
 * any head run R = C/H >= 8; plain loops for narrower heads. The chain per
 * channel is the avx2 variant's, so both give the same bits where R % 8 ==
 * 0. Compiled with ISA_FLAGS_avx512 (x86-64-v4); chosen at run time where
 * the CPU and OS run AVX-512 F/BW/DQ/VL. */
#include "seq1d.h"

#if DCB_ISA_X86
#if !defined(__AVX512F__) || !defined(__AVX512VL__) || !defined(__FMA__)
#error "seq1d_avx512.c needs AVX-512: build it with the Makefile's ISA_FLAGS_avx512"
#endif
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

/* The first n (0..16) lanes. */
INLINE __mmask16 lanes(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n < 0 ? 0 : n)) - 1); }

#include "seq1d_loops.inc"

static void row_avx512(int C, int H, int hs, int js, const float *restrict k, int j0, int j1,
                       const float *restrict xs, const float *restrict b, float *restrict y) {
    const int R = C / H;
    if (R < 8) {
        row_loops(C, H, hs, js, k, j0, j1, xs, b, y);
        return;
    }
    for (int h = 0; h < H; h++) {
        const float *kh = k + (size_t)h * hs;
        int c = h * R;
        const int ce = c + R;
        for (; c + 64 <= ce; c += 64) {
            __m512 a0 = b ? _mm512_loadu_ps(b + c) : _mm512_setzero_ps();
            __m512 a1 = b ? _mm512_loadu_ps(b + c + 16) : _mm512_setzero_ps();
            __m512 a2 = b ? _mm512_loadu_ps(b + c + 32) : _mm512_setzero_ps();
            __m512 a3 = b ? _mm512_loadu_ps(b + c + 48) : _mm512_setzero_ps();
            const float *xp = xs + c;
            for (int j = j0; j < j1; j++, xp += C) {
                const __m512 w = _mm512_set1_ps(kh[(size_t)j * js]);
                a0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(xp), a0);
                a1 = _mm512_fmadd_ps(w, _mm512_loadu_ps(xp + 16), a1);
                a2 = _mm512_fmadd_ps(w, _mm512_loadu_ps(xp + 32), a2);
                a3 = _mm512_fmadd_ps(w, _mm512_loadu_ps(xp + 48), a3);
            }
            _mm512_storeu_ps(y + c, a0);
            _mm512_storeu_ps(y + c + 16, a1);
            _mm512_storeu_ps(y + c + 32, a2);
            _mm512_storeu_ps(y + c + 48, a3);
        }
        for (; c < ce; c += 16) {
            const __mmask16 m = lanes(ce - c);
            __m512 a0 = b ? _mm512_maskz_loadu_ps(m, b + c) : _mm512_setzero_ps();
            const float *xp = xs + c;
            for (int j = j0; j < j1; j++, xp += C)
                a0 = _mm512_fmadd_ps(_mm512_set1_ps(kh[(size_t)j * js]), _mm512_maskz_loadu_ps(m, xp), a0);
            _mm512_mask_storeu_ps(y + c, m, a0);
        }
    }
}

DCB_SEQ1D_DEFINE(avx512, DCB_ISA_AVX512)
#endif
