/* seq1d_avx512.c — the AVX-512 variant of the sequence row (seq1d.h):
 * blocks of 64 channels (4 zmm accumulators, each vector with its own
 * head's weight), the last block of 1..4 vectors with its partial vector
 * masked, in registers while the taps stream by. Where R = C/H is a multiple
 * of 16 the blocks run across heads (R = 32: 4 independent chains, not 2);
 * otherwise per head for any R >= 8; plain loops for narrower heads. rows4:
 * 64 channels by 4 output rows (16 accumulators) where R % 16 == 0, row by
 * row otherwise. The chain per
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

/* rows4's block: nv (1..4) full vectors of 16 channels from c for 4 output
 * rows, 4 x nv accumulators. Input row s feeds output r with tap s - r;
 * `checked` steps test that range (the first and last 3 rows), the others
 * feed all 4. Each output's chain runs over its taps in order from b, as in
 * block. */
INLINE void step4(const int nv, const int vph, const int checked, int s, int C, int K, int js, size_t ks,
                  const float *const kv[4], const float *restrict xs, int c, __m512 acc[4][4]) {
    const float *xp = xs + (size_t)s * C + c;
    __m512 xv[4];
    for (int v = 0; v < 4; v++)
        if (v < nv) xv[v] = _mm512_loadu_ps(xp + 16 * v);
    for (int r = 0; r < 4; r++) {
        const int j = s - r;
        if (checked && (j < 0 || j >= K)) continue;
        __m512 w = _mm512_setzero_ps();
        for (int v = 0; v < 4; v++)
            if (v < nv) {
                if (v % vph == 0) w = _mm512_set1_ps(kv[v][r * ks + (size_t)j * js]);
                acc[r][v] = _mm512_fmadd_ps(w, xv[v], acc[r][v]);
            }
    }
}

INLINE void block4(const int nv, const int vph, int C, int R, int hs, int js, const float *restrict k, size_t ks, int K,
                   const float *restrict xs, const float *restrict b, float *restrict y, int c) {
    __m512 acc[4][4];
    const float *kv[4];
    for (int v = 0; v < 4; v++)
        if (v < nv) {
            kv[v] = k + (size_t)((c + 16 * v) / R) * hs;
            const __m512 b0 = b ? _mm512_loadu_ps(b + c + 16 * v) : _mm512_setzero_ps();
            for (int r = 0; r < 4; r++) acc[r][v] = b0;
        }
    const int s_lo = K < 3 ? K : 3; /* the unchecked steps: s in [3, K) */
    int s = 0;
    for (; s < s_lo; s++) step4(nv, vph, 1, s, C, K, js, ks, kv, xs, c, acc);
    for (; s < K; s++) step4(nv, vph, 0, s, C, K, js, ks, kv, xs, c, acc);
    for (; s < K + 3; s++) step4(nv, vph, 1, s, C, K, js, ks, kv, xs, c, acc);
    for (int r = 0; r < 4; r++)
        for (int v = 0; v < 4; v++)
            if (v < nv) _mm512_storeu_ps(y + (size_t)r * C + c + 16 * v, acc[r][v]);
}

INLINE void blocks4(const int vph, int C, int R, int hs, int js, const float *restrict k, size_t ks, int K,
                    const float *restrict xs, const float *restrict b, float *restrict y) {
    int c = 0;
    for (; c + 64 <= C; c += 64) block4(4, vph, C, R, hs, js, k, ks, K, xs, b, y, c);
    switch ((C - c) / 16) {
    case 1: block4(1, vph, C, R, hs, js, k, ks, K, xs, b, y, c); break;
    case 2: block4(2, vph, C, R, hs, js, k, ks, K, xs, b, y, c); break;
    case 3: block4(3, vph, C, R, hs, js, k, ks, K, xs, b, y, c); break;
    default: break;
    }
}

static void rows4_avx512(int C, int H, int hs, int js, const float *restrict k, size_t ks, int K,
                         const float *restrict xs, const float *restrict b, float *restrict y) {
    const int R = C / H;
    if (R % 16) { /* vectors would straddle heads: row by row */
        for (int r = 0; r < 4; r++) row_avx512(C, H, hs, js, k + r * ks, 0, K, xs + (size_t)r * C, b, y + (size_t)r * C);
        return;
    }
    /* vectors per head (blocks start at multiples of 64 channels): one
     * broadcast serves them all */
    if (R % 64 == 0)
        blocks4(4, C, R, hs, js, k, ks, K, xs, b, y);
    else if (R % 32 == 0)
        blocks4(2, C, R, hs, js, k, ks, K, xs, b, y);
    else
        blocks4(1, C, R, hs, js, k, ks, K, xs, b, y);
}

DCB_SEQ1D_DEFINE(avx512, DCB_ISA_AVX512, rows4_avx512)
#endif
