/* seq1d_avx512.c — the AVX-512 variant of the sequence row (seq1d.h):
 * blocks of 64 channels (4 zmm accumulators, each vector with its own
 * head's weight), the last block of 1..4 vectors with its partial vector
 * masked, in registers while the taps stream by. Where R = C/H is a multiple
 * of 16 the blocks run across heads (R = 32: 4 independent chains, not 2);
 * otherwise per head for any R >= 8; plain loops for narrower heads. The chain per
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

#include "avx512_lanes.h"

#include "seq1d_loops.inc"

/* nv (1..4) vectors of 16 channels from c (the last with mask m), each
 * vector's weights those of its own head hv[v]; nv is a constant in every
 * inlined copy, so the accumulators stay in registers. */
INLINE void block(const int nv, int C, int R, int hs, int js, const float *restrict k, int j0, int j1,
                  const float *restrict xs, const float *restrict b, float *restrict y, int c, __mmask16 m) {
    __m512 acc[4];
    const float *kv[4];
    for (int v = 0; v < 4; v++)
        if (v < nv) {
            const __mmask16 mv = v + 1 < nv ? (__mmask16)0xFFFF : m;
            acc[v] = b ? _mm512_maskz_loadu_ps(mv, b + c + 16 * v) : _mm512_setzero_ps();
            kv[v] = k + (size_t)((c + 16 * v) / R) * hs;
        }
    const float *xp = xs + c;
    for (int j = j0; j < j1; j++, xp += C)
        for (int v = 0; v < 4; v++)
            if (v < nv) {
                const __m512 xv = v + 1 < nv ? _mm512_loadu_ps(xp + 16 * v) : _mm512_maskz_loadu_ps(m, xp + 16 * v);
                acc[v] = _mm512_fmadd_ps(_mm512_set1_ps(kv[v][(size_t)j * js]), xv, acc[v]);
            }
    for (int v = 0; v + 1 < nv; v++) _mm512_storeu_ps(y + c + 16 * v, acc[v]);
    _mm512_mask_storeu_ps(y + c + 16 * (nv - 1), m, acc[nv - 1]);
}

/* Channels [c, c + n) (n >= 1) in blocks of 4 vectors, the last block of
 * 1..4 with its partial vector masked. */
INLINE void span(int C, int R, int hs, int js, const float *restrict k, int j0, int j1, const float *restrict xs,
                 const float *restrict b, float *restrict y, int c, int n) {
    const int ce = c + n;
    for (; c + 64 <= ce; c += 64) block(4, C, R, hs, js, k, j0, j1, xs, b, y, c, 0xFFFF);
    const int rest = ce - c;
    const __mmask16 m = lanes(rest - (rest - 1) / 16 * 16);
    switch ((rest + 15) / 16) {
    case 1: block(1, C, R, hs, js, k, j0, j1, xs, b, y, c, m); break;
    case 2: block(2, C, R, hs, js, k, j0, j1, xs, b, y, c, m); break;
    case 3: block(3, C, R, hs, js, k, j0, j1, xs, b, y, c, m); break;
    case 4: block(4, C, R, hs, js, k, j0, j1, xs, b, y, c, m); break;
    default: break;
    }
}

static void row_avx512(int C, int H, int hs, int js, const float *restrict k, int j0, int j1,
                       const float *restrict xs, const float *restrict b, float *restrict y) {
    const int R = C / H;
    if (R % 16 == 0) { /* every vector lies in one head: the blocks run across heads */
        span(C, R, hs, js, k, j0, j1, xs, b, y, 0, C);
    } else if (R >= 8) {
        for (int h = 0; h < H; h++) span(C, R, hs, js, k, j0, j1, xs, b, y, h * R, R);
    } else {
        row_loops(C, H, hs, js, k, j0, j1, xs, b, y);
    }
}

DCB_SEQ1D_DEFINE(avx512, DCB_ISA_AVX512)
#endif
