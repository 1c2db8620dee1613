/* seq1d.h — the direct strategy's output row of the 1-D sequence
 * convolutions (kernels/seqconv.c: lightconv, dynconv1d), one file per ISA
 * variant (seq1d_<isa>.c), chosen at run time like the GEMM micro-kernel's
 * (isa.h, ukernels.h). (The softmaxes over K are vmath.h's.)
 *
 *   row   y[c] = b[c] + sum_{j0 <= j < j1} k[h(c)*hs + j*js] * xs[(j - j0)*C + c]
 *         for c < C, h(c) = c / (C/H): xs is the input row of tap j0 (rows
 *         C apart), (hs, js) = (K, 1) for an (H, K) kernel block, (1, H) for
 *         a (K, H) one; b may be NULL (0). Each y[c] is one chain over the
 *         taps j in order from b[c] (fused multiply-adds in the SIMD
 *         variants where they vectorise). Writes y[0, C) only; reads only
 *         the C floats of each input row and of b. j0 < j1.
 *   rows4 four consecutive output rows with all K taps: y[r*C + c] = row's
 *         y[c] for the kernel block k + r*ks and the input rows from
 *         xs + r*C (r < 4; taps 0 .. K-1, input rows 0 .. K+2), each the
 *         bits row gives for it. One pass over the K + 3 input rows serves
 *         the four outputs (each row is loaded once, not up to four times)
 *         and keeps four times the accumulator chains in flight. NULL in
 *         the variants without it (callers call row four times).
 *
 * The SIMD variants hold a block of channels in registers while
 * the taps stream by: avx2 32 then 8 channels where C/H is a multiple of 8
 * (plain loops otherwise), avx512 blocks of 4 vectors of 16, the last
 * masked, across heads where C/H is a multiple of 16 and per head for any
 * other C/H >= 8. */
#ifndef DCB_UK_SEQ1D_H
#define DCB_UK_SEQ1D_H

#include "isa.h"

#include <stddef.h>

typedef void (*dcb_seq1d_row_fn)(int C, int H, int hs, int js, const float *k, int j0, int j1, const float *xs,
                                 const float *b, float *y);

typedef void (*dcb_seq1d_rows4_fn)(int C, int H, int hs, int js, const float *k, size_t ks, int K, const float *xs,
                                   const float *b, float *y);

typedef struct dcb_seq1d_kernels {
    const char *name;   /* "avx512", "avx2", "scalar" */
    dcb_isa_level isa;  /* the instructions it needs */
    dcb_seq1d_row_fn row;
    dcb_seq1d_rows4_fn rows4; /* or NULL */
} dcb_seq1d_kernels;

/* A variant's descriptor from its row_<isa> and its rows4 (a function or NULL). */
#define DCB_SEQ1D_DEFINE(isa_, level, rows4_) \
    const dcb_seq1d_kernels dcb_seq1d_##isa_ = {.name = #isa_, .isa = level, .row = row_##isa_, .rows4 = rows4_};

extern const dcb_seq1d_kernels dcb_seq1d_scalar;
#if DCB_ISA_X86
extern const dcb_seq1d_kernels dcb_seq1d_avx2;
extern const dcb_seq1d_kernels dcb_seq1d_avx512;
#endif

/* The variant the engine calls: chosen once per process (dcb_isa_current()). */
const dcb_seq1d_kernels *dcb_seq1d(void);
/* Every variant compiled in, best first, NULL-terminated (tests). */
const dcb_seq1d_kernels *const *dcb_seq1d_variants(void);

#endif
