/* dwconv.h — the depthwise direct engine's kernels (conv2d_direct_dw.c),
 * one file per ISA variant (dwconv_<isa>.c), chosen at run time like the
 * GEMM micro-kernel's (isa.h, ukernels.h).
 *
 *   split2  the stride-2 phase split of one input row: even[t] = x[2t] for
 *           t < (w + 1) / 2, odd[t] = x[2t + 1] for t < w / 2. Reads x[0, w)
 *           only, writes exactly those even and odd elements.
 *   row     one output row of one channel:
 *               dst[j] = bias + sum_{t < kk} wt[t] * src[off[t] + j],  j < n,
 *           each element one chain over the taps t in order from bias
 *           (fused multiply-adds in the SIMD variants). Writes dst[0, n) and
 *           nothing else; the avx2 variant reads src[off[t] + j] for j up to
 *           n rounded up to 8 (the engine's buffer keeps that room), the
 *           others only j < n.
 *   rows2_3x3  two output rows of one channel of a 3x3, stride 1,
 *           dilation 1 kernel, rows i and i+1 sharing their input rows:
 *               dst0[j] = bias + sum_{u,v < 3} wt[3u + v] * src[u * rs + v + j],
 *               dst1[j] = the same on src + rs,  j < n;
 *           each element the chain of row's (taps in order from bias), so
 *           rows2_3x3 gives row's bits with off[3u + v] = u * rs + v. Reads
 *           src rows 0..3 as row reads them (avx2: j up to n rounded up to 8);
 *           writes dst0[0, n) and dst1[0, n) only. Only the avx2 variant
 *           shares the loads (12 for 18 FMAs a vector); the others run row
 *           twice, which measured faster on AVX-512.
 *
 * The avx2 and avx512 variants give the same bits (the same fused chain);
 * the scalar one rounds each product (plain C, compiled for x86-64). */
#ifndef DCB_UK_DWCONV_H
#define DCB_UK_DWCONV_H

#include "isa.h"

#include <stddef.h>

typedef void (*dcb_dwk_split2_fn)(const float *x, int w, float *even, float *odd);
typedef void (*dcb_dwk_row_fn)(int kk, const float *wt, const int *off, const float *src, float bias, float *dst,
                              int n);
typedef void (*dcb_dwk_rows2_fn)(const float *wt, const float *src, size_t rs, float bias, float *dst0, float *dst1,
                                int n);

typedef struct dcb_dwk_kernels {
    const char *name;   /* "avx512", "avx2", "scalar" */
    dcb_isa_level isa;  /* the instructions it needs */
    dcb_dwk_split2_fn split2;
    dcb_dwk_row_fn row;
    dcb_dwk_rows2_fn rows2_3x3;
} dcb_dwk_kernels;

/* A variant's descriptor from its file's split2_<isa>, row_<isa> and rows2_3x3_<isa>. */
#define DCB_DWK_DEFINE(isa_, level)                                                                       \
    const dcb_dwk_kernels dcb_dwk_##isa_ = {.name = #isa_, .isa = level, .split2 = split2_##isa_,          \
                                            .row = row_##isa_, .rows2_3x3 = rows2_3x3_##isa_};

extern const dcb_dwk_kernels dcb_dwk_scalar;
#if DCB_ISA_X86
extern const dcb_dwk_kernels dcb_dwk_avx2;
extern const dcb_dwk_kernels dcb_dwk_avx512;
#endif

/* The variant the engine calls: chosen once per process (dcb_isa_current()). */
const dcb_dwk_kernels *dcb_dwk(void);
/* Every variant compiled in, best first, NULL-terminated (tests). */
const dcb_dwk_kernels *const *dcb_dwk_variants(void);

#endif
