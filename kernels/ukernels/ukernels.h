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
 *   gemm_pack  the same for one 16-column tile (n = 16) while copying B into
 *              a packed panel bpack [k][16] (the direct engine's fused packing
 *              of 1x1 convolutions: x is read once), prefetching each row's
 *              next 16 columns.
 *   gemm_n4    n <= 4 columns for up to two panels (1 <= mr <= 12; the second
 *              panel, rows 6 .. 11, at a + 6k): vectorised over the rows, so
 *              that A, the big operand when the columns are few, is loaded
 *              once per 6 rows. Reads DCB_OVERREAD_FLOATS past the end of
 *              the last panel (8-float loads of 6-float rows) and 4 columns
 *              of every B row (up to 3 past n).
 *   bias       NULL or mr floats, one per row.
 *
 * Variants: gemm_f32_6x16_<isa>.c each define one dcb_ukernels,
 * dcb_uk_<isa>, compiled to an empty file where the compiler does not target
 * that ISA; ukernels.c lists them (best first) and dcb_uk() picks the first
 * the CPU runs, or the one named by the environment variable DCB_ISA (e.g.
 * DCB_ISA=scalar). A new ISA is one file plus one line of that list. */
#ifndef DCB_UKERNELS_H
#define DCB_UKERNELS_H

#include "dcb_internal.h" /* DCB_OVERREAD_FLOATS */
#include <stddef.h>

#define DCB_UK_MR 6
#define DCB_UK_NR 16

typedef void (*dcb_uk_gemm_fn)(int k, const float *a, const float *b, size_t ldb, float *c, size_t ldc, int mr,
                               int n, int accumulate, const float *bias);
typedef void (*dcb_uk_gemm_pack_fn)(int k, const float *a, const float *b, size_t ldb, float *bpack, float *c,
                                    size_t ldc, int mr, int accumulate, const float *bias);
typedef void (*dcb_uk_gemm_n4_fn)(int k, const float *a, const float *b, size_t ldb, float *c, size_t ldc, int mr,
                                  int n);

typedef struct dcb_ukernels {
    const char *name;       /* what DCB_ISA names it by: "avx2", "scalar" */
    int (*usable)(void);    /* the CPU runs it; NULL: always */
    dcb_uk_gemm_fn gemm;
    dcb_uk_gemm_pack_fn gemm_pack;
    dcb_uk_gemm_n4_fn gemm_n4;
} dcb_ukernels;

/* A variant's descriptor, from its file's gemm_<isa>, gemm_pack_<isa> and
 * gemm_n4_<isa>: DCB_UK_DEFINE(avx2, avx2_usable). */
#define DCB_UK_DEFINE(isa, usable_fn)                                                                     \
    const dcb_ukernels dcb_uk_##isa = {                                                                   \
        .name = #isa, .usable = usable_fn, .gemm = gemm_##isa, .gemm_pack = gemm_pack_##isa,              \
        .gemm_n4 = gemm_n4_##isa,                                                                         \
    };

/* The variants compiled in. */
extern const dcb_ukernels dcb_uk_scalar;
#if defined(__AVX2__) && defined(__FMA__)
#define DCB_UK_HAVE_AVX2 1
extern const dcb_ukernels dcb_uk_avx2;
#endif

/* The variant the engines call: chosen once per process. */
const dcb_ukernels *dcb_uk(void);
/* Every variant compiled in, best first, NULL-terminated (tests); a
 * variant's usable() says whether this CPU runs it. */
const dcb_ukernels *const *dcb_uk_variants(void);

#endif
