/* ukernels.h — the f32 GEMM micro-kernel the Winograd and direct engines
 * share, one file per ISA variant, and the run-time choice among them.
 *
 * The register tile is DCB_UK_MR x DCB_UK_NR (6 x 16) with FMA. A is one
 * packed panel of 6 rows, [k][6] (row r of step p at a[6p + r]; rows past mr
 * may hold anything: they are never stored). B is k rows of n columns with
 * row stride ldb: the Winograd engine's V (ldb its padded row length) or the
 * direct engine's packed [k][16] panel (ldb 16). All three entries of a
 * variant store exactly the mr x n block of C they are given, and each
 * element of C is one chain of multiply-adds over p = 0 .. k-1 from zero
 * (fused in the SIMD variants), then + bias[r], then + the old C
 * (accumulate), whatever tile the variant cuts it into: a block's result
 * does not depend on how a caller splits its columns or rows.
 *
 *   gemm       C (mr x n) = A * B (+ bias) (+ C); 1 <= mr <= 6, any n >= 0.
 *              Columns go in 16-wide tiles, the last < 16 in one narrower
 *              tile; reads no element of B outside k x n.
 *   gemm_pack  the same for one tile of nr columns (n = nr, the variant's
 *              panel width: 16, or 32 for avx512) while copying B into a
 *              packed panel bpack [k][nr] (the direct engine's fused packing
 *              of 1x1 convolutions: x is read once), prefetching each row's
 *              next nr columns. The direct engine packs its B panels nr wide,
 *              so that a whole panel is one register tile.
 *   gemm_n4    C_i (mr x n) = A_i * B_i (+ C_i), n <= 4 columns, for
 *              count >= 1 independent products i (A_i = a + i*as, B_i =
 *              b + i*bs, C_i = c + i*cs; count 1 ignores the strides), each
 *              of any number of panels (mr >= 1; panel q, rows 6q .. 6q + 5,
 *              at A_i + 6kq): vectorised over the rows, so that A, the big
 *              operand when the columns are few, is loaded once per 6 rows,
 *              and over several panels, of one product or of several, at
 *              once, so that few columns still make enough chains (the
 *              Winograd positions' one-column tails, 2 panels each, go 4
 *              products a call). Each product's bits are those of a call
 *              with count 1. Reads DCB_OVERREAD_FLOATS past the end of each
 *              product's last panel (8-float loads of 6-float rows) and 4
 *              columns of every B row (up to 3 past n).
 *   gemm2      gemm over two panels at once (1 <= mr <= 12; the second
 *              panel, rows 6 .. 11, at a + 6k, as for gemm_n4): the bits of
 *              gemm called panel by panel, cut into a taller tile where the
 *              columns are few (avx512: 12 x 16, so that a 16-column block
 *              has 12 accumulator chains, not 6). NULL in the variants whose
 *              gemm tile already has enough chains (callers loop over
 *              panels).
 *   bias       NULL or mr floats, one per row.
 *
 * Variants: gemm_f32_<tile>_<isa>.c each define one dcb_ukernels,
 * dcb_uk_<isa>. Every variant file is compiled with its own target flags
 * (the Makefile's ISA_FLAGS_<isa>), whatever the baseline -march, so one
 * binary carries all of them; ukernels.c lists them (best first) and dcb_uk()
 * picks the first whose ISA is at most dcb_isa_current(): the widest the CPU
 * runs, or the narrower one the environment variable DCB_ISA names
 * (DCB_ISA=avx2, DCB_ISA=scalar). Other kernel families (isa.h) pick their
 * variants by the same level, so one process runs one ISA throughout. */
#ifndef DCB_UKERNELS_H
#define DCB_UKERNELS_H

#include "dcb_internal.h" /* DCB_OVERREAD_FLOATS */
#include "isa.h"
#include <stddef.h>

#define DCB_UK_MR 6
#define DCB_UK_NR 16     /* the narrowest panel: avx2 and scalar */
#define DCB_UK_NR_MAX 32 /* the widest: avx512 */

typedef void (*dcb_uk_gemm_fn)(int k, const float *a, const float *b, size_t ldb, float *c, size_t ldc, int mr,
                               int n, int accumulate, const float *bias);
typedef void (*dcb_uk_gemm_pack_fn)(int k, const float *a, const float *b, size_t ldb, float *bpack, float *c,
                                    size_t ldc, int mr, int accumulate, const float *bias);
typedef void (*dcb_uk_gemm_n4_fn)(int k, const float *a, const float *b, size_t ldb, float *c, size_t ldc, int mr,
                                  int n, int accumulate, int count, size_t as, size_t bs, size_t cs);

typedef struct dcb_ukernels {
    const char *name;       /* its ISA's name: "avx512", "avx2", "scalar" */
    dcb_isa_level isa;      /* the instructions it needs */
    int nr;                 /* gemm_pack's (and the direct engine's) panel width */
    dcb_uk_gemm_fn gemm;
    dcb_uk_gemm_pack_fn gemm_pack;
    dcb_uk_gemm_n4_fn gemm_n4;
    dcb_uk_gemm_fn gemm2; /* or NULL */
} dcb_ukernels;

/* A variant's descriptor, from its file's gemm_<isa>, gemm_pack_<isa> and
 * gemm_n4_<isa>, and its gemm2 (a function or NULL):
 * DCB_UK_DEFINE(avx2, DCB_ISA_AVX2, 16, NULL). */
#define DCB_UK_DEFINE(isa_, level, nr_, gemm2_)                                                           \
    const dcb_ukernels dcb_uk_##isa_ = {                                                                  \
        .name = #isa_, .isa = level, .nr = nr_, .gemm = gemm_##isa_, .gemm_pack = gemm_pack_##isa_,       \
        .gemm_n4 = gemm_n4_##isa_, .gemm2 = gemm2_,                                                       \
    };

/* The variants compiled in. */
extern const dcb_ukernels dcb_uk_scalar;
#if DCB_ISA_X86
extern const dcb_ukernels dcb_uk_avx2;
extern const dcb_ukernels dcb_uk_avx512;
/* gemm_n4 of the avx2 file, which the avx512 variant shares */
void dcb_uk_gemm_n4_avx2(int k, const float *a, const float *b, size_t ldb, float *c, size_t ldc, int mr, int n,
                         int accumulate, int count, size_t as, size_t bs, size_t cs);
#endif

/* The variant the engines call: chosen once per process. */
const dcb_ukernels *dcb_uk(void);
/* Every variant compiled in, best first, NULL-terminated (tests); the CPU
 * runs a variant where dcb_isa_runs(v->isa). */
const dcb_ukernels *const *dcb_uk_variants(void);

#endif
