/* vmath.h — the vectorised float exp and what is built on it: the
 * softmaxes of the sequence operators (seqconv.c: lightconv, dynconv1d),
 * the attention softmax's exp-and-sum (mhattention.c, through kernels/vexp.h)
 * and the sigmoid of the activation layers (layer_act.c). One file per ISA
 * variant (vmath_<isa>.c), chosen at run time like the GEMM micro-kernel's
 * (isa.h, ukernels.h).
 *
 * The SIMD exp: Cody-Waite reduction x = n ln2 + r, a degree-6 polynomial
 * for e^r (the Cephes expf coefficients, ~1 ulp), 2^n by exponent bits,
 * its input clamped to [-87, 88] (e^-87 is below 2^-125 and vanishes next
 * to a softmax row's largest term, 1). The avx2 (8 lanes) and avx512 (16
 * lanes) variants compute it alike, so an element gives the same bits in
 * both; the avx2 variant takes its tails (n % 8) and the scalar variant
 * everything with libm's expf on the same clamp.
 *
 *   exp            v[i] = e^clamp(v[i]) for i < n, in place.
 *   exp_shift_sum  v[j] = e^max(v[j] - m, -87) for j < n, in place; their
 *                  sum (summed in lanes, then across them: the order is the
 *                  variant's).
 *   sigmoid        y[i] = 1 / (1 + e^clamp(-x[i])), i < n (y may be x).
 *   softmax_heads  the softmax over K of each of the H rows of v (H*K
 *                  floats, row h at h*K), in place.
 *   softmax_taps   the softmax over j of v[j*H + h] for every head h of a
 *                  (K, H) block, in place, vectorised across heads.
 * Each reads and writes only the n (H*K) elements it is given. */
#ifndef DCB_UK_VMATH_H
#define DCB_UK_VMATH_H

#include "isa.h"

#include <stddef.h>

typedef struct dcb_vmath_kernels {
    const char *name;   /* "avx512", "avx2", "scalar" */
    dcb_isa_level isa;  /* the instructions it needs */
    void (*exp)(float *v, size_t n);
    float (*exp_shift_sum)(float *v, int n, float m);
    void (*sigmoid)(const float *x, float *y, size_t n);
    void (*softmax_heads)(float *v, int H, int K);
    void (*softmax_taps)(float *v, int H, int K);
} dcb_vmath_kernels;

/* A variant's descriptor from its file's <entry>_<isa> functions. */
#define DCB_VMATH_DEFINE(isa_, level)                                                                      \
    const dcb_vmath_kernels dcb_vmath_##isa_ = {                                                           \
        .name = #isa_, .isa = level, .exp = exp_##isa_, .exp_shift_sum = exp_shift_sum_##isa_,             \
        .sigmoid = sigmoid_##isa_, .softmax_heads = softmax_heads_##isa_, .softmax_taps = softmax_taps_##isa_, \
    };

extern const dcb_vmath_kernels dcb_vmath_scalar;
#if DCB_ISA_X86
extern const dcb_vmath_kernels dcb_vmath_avx2;
extern const dcb_vmath_kernels dcb_vmath_avx512;
#endif

/* The variant the library calls: chosen once per process (dcb_isa_current()). */
const dcb_vmath_kernels *dcb_vmath(void);
/* Every variant compiled in, best first, NULL-terminated (tests). */
const dcb_vmath_kernels *const *dcb_vmath_variants(void);

#endif
