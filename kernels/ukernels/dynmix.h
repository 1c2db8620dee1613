/* dynmix.h — the dynamic operators' kernel-side helpers, one file per ISA
 * variant (dynmix_<isa>.c), chosen at run time like the GEMM micro-kernel's
 * (isa.h, ukernels.h): the Winograd dynamic path's mixing of experts'
 * kernels and its kernel-domain transform (conv2d_winograd_dyn.c), drconv's
 * blocked transposes between the column and row layouts of im2col
 * (drconv.c), and the double-accumulating sum of nn.c (dcb_sum_f64).
 *
 *   mix        dst[i] = sum_{e < E} r[e] * src[e*es + i] for i < n (E >= 1),
 *              from r[0] * src[i], in order over e (fused in the SIMD
 *              variants). Writes dst[0, n), reads src[e*es + i], i < n only.
 *   wino_taps  the kernel transform U = G g G^T (a x a, a = m + 2, m = 2 or
 *              4), element by element: for i < n the 9 taps of one 3 x 3
 *              kernel are g[t*ts + i] (t = 3*row + column), and U's value
 *              at position xi = r*a + c goes to u[xi*us + i]. The Winograd
 *              dynamic path keeps a panel's kernels tap-major ([9][cin][6]:
 *              tap t of every input channel's 6 output channels side by
 *              side, conv2d_winograd_dyn.c), so that n = 6*cin floats of one
 *              tap are contiguous and U comes out in the GEMM's packed
 *              [cin][6] rows. Reads only those 9n floats, writes only those
 *              a*a*n; every element is the same chain of operations in every
 *              variant (G's rows by sums and differences, as in dynmix_*.c).
 *   c2r        rows[at[p]][k] = cols[k][p] (at NULL: p) for p < P, k < Kd;
 *              cols is (Kd, P), rows (P', Kd) with P' > every at[p].
 *   r2c        c2r's inverse: cols[k][p] = rows[at[p]][k] (at NULL: p).
 *   sum_f64    the sum of n floats, accumulated in double (in lanes, then
 *              across them: the order is the variant's).
 * The transposes move the values unchanged: every variant gives the same
 * bits. */
#ifndef DCB_UK_DYNMIX_H
#define DCB_UK_DYNMIX_H

#include "isa.h"

#include <stddef.h>

#define DCB_DYNMIX_PANEL 6 /* output channels of a panel: the GEMM micro-kernel's rows (DCB_UK_MR) */

typedef struct dcb_dynmix_kernels {
    const char *name;   /* "avx512", "avx2", "scalar" */
    dcb_isa_level isa;  /* the instructions it needs */
    void (*mix)(const float *src, size_t es, const float *r, int E, float *dst, size_t n);
    void (*wino_taps)(int m, const float *g, size_t ts, size_t n, float *u, size_t us);
    void (*c2r)(const float *cols, size_t P, size_t Kd, float *rows, const int *at);
    void (*r2c)(const float *rows, size_t P, size_t Kd, float *cols, const int *at);
    double (*sum_f64)(const float *p, size_t n);
} dcb_dynmix_kernels;

/* A variant's descriptor from its file's <entry>_<isa> functions. */
#define DCB_DYNMIX_DEFINE(isa_, level)                                                                    \
    const dcb_dynmix_kernels dcb_dynmix_##isa_ = {                                                        \
        .name = #isa_, .isa = level, .mix = mix_##isa_, .wino_taps = wino_taps_##isa_, .c2r = c2r_##isa_,    \
        .r2c = r2c_##isa_, .sum_f64 = sum_f64_##isa_,                                                     \
    };

extern const dcb_dynmix_kernels dcb_dynmix_scalar;
#if DCB_ISA_X86
extern const dcb_dynmix_kernels dcb_dynmix_avx2;
extern const dcb_dynmix_kernels dcb_dynmix_avx512;
#endif

/* The variant the library calls: chosen once per process (dcb_isa_current()). */
const dcb_dynmix_kernels *dcb_dynmix(void);
/* Every variant compiled in, best first, NULL-terminated (tests). */
const dcb_dynmix_kernels *const *dcb_dynmix_variants(void);

#endif
