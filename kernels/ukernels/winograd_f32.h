/* winograd_f32.h — the Winograd engine's tile-group transforms
 * (conv2d_winograd.c, conv2d_winograd_dyn.c), one file per ISA variant,
 * chosen at run time like the GEMM micro-kernel (isa.h, family.h).
 *
 * A group is k <= 8 consecutive tiles of one tile row of F(m x m, 3 x 3),
 * m = 2, 4 or 6, a = m + 2.
 *   in_group   the a*a transformed values B^T d B of channel plane xc
 *              (H x W, zero outside) for each tile j < k, tile j's input
 *              window at rows row0 .., columns col0 + j*m ..: value xi of
 *              tile j to v[xi * vs + j]. The SIMD variants write all 8 lanes
 *              j (callers keep room; the next group overwrites the surplus),
 *              the scalar one only j < k.
 *   out_group  reads m[xi * ms + j] for j < k and writes A^T M A + bias, the
 *              m x m outputs of each tile, into plane yc (Ho x Wo) at rows
 *              row0 .., columns col0 + j*m .., clipped to Ho x Wo; nothing
 *              else of yc.
 * The avx2 and avx512 variants are one source (winograd_f32_x86.inc) and give
 * the same bits; the scalar one follows the generic tables in plain C. */
#ifndef DCB_UK_WINOGRAD_F32_H
#define DCB_UK_WINOGRAD_F32_H

#include "isa.h"

#include <stddef.h>

typedef void (*dcb_wk_in_fn)(int m, const float *xc, int H, int W, int row0, int col0, int k, float *v, size_t vs);
typedef void (*dcb_wk_out_fn)(int m, const float *mm, size_t ms, int k, float bias, float *yc, int Ho, int Wo,
                              int row0, int col0);

typedef struct dcb_wk_kernels {
    const char *name;  /* "avx512", "avx2", "scalar" */
    dcb_isa_level isa; /* the instructions it needs */
    dcb_wk_in_fn in_group;
    dcb_wk_out_fn out_group;
} dcb_wk_kernels;

#define DCB_WK_DEFINE(isa_, level)                                                                         \
    const dcb_wk_kernels dcb_wk_##isa_ = {.name = #isa_, .isa = level, .in_group = in_group_##isa_,       \
                                          .out_group = out_group_##isa_};

extern const dcb_wk_kernels dcb_wk_scalar;
#if DCB_ISA_X86
extern const dcb_wk_kernels dcb_wk_avx2;
extern const dcb_wk_kernels dcb_wk_avx512;
#endif

/* The variant the engine calls: chosen once per process (dcb_isa_current()). */
const dcb_wk_kernels *dcb_wk(void);
/* Every variant compiled in, best first, NULL-terminated (tests). */
const dcb_wk_kernels *const *dcb_wk_variants(void);

#endif
