/* gemm_f32_6x16_scalar.c — the portable variant of the f32 GEMM
 * micro-kernel (ukernels.h), the same semantics in plain C: where no SIMD
 * variant is compiled in or the CPU lacks one, under DCB_ISA=scalar, and
 * as the reference the tests hold the others to. */
#include "ukernels.h"

#include <string.h>

/* Rows [0, mr) (mr <= 6) by columns [0, n) (n <= 16) of one panel. */
static void tile(int k, const float *a, const float *b, size_t ldb, float *c, size_t ldc, int mr, int n,
                 int accumulate, const float *bias) {
    float acc[DCB_UK_MR][DCB_UK_NR] = {{0}};
    for (int p = 0; p < k; p++) {
        const float *ap = a + (size_t)p * DCB_UK_MR, *bp = b + (size_t)p * ldb;
        for (int r = 0; r < mr; r++)
            for (int t = 0; t < n; t++) acc[r][t] += ap[r] * bp[t];
    }
    for (int r = 0; r < mr; r++)
        for (int t = 0; t < n; t++) {
            float v = acc[r][t];
            if (bias) v += bias[r];
            float *cv = c + (size_t)r * ldc + t;
            *cv = accumulate ? *cv + v : v;
        }
}

static void gemm_scalar(int k, const float *a, const float *b, size_t ldb, float *c, size_t ldc, int mr, int n,
                        int accumulate, const float *bias) {
    for (int j = 0; j < n; j += DCB_UK_NR)
        tile(k, a, b + j, ldb, c + j, ldc, mr, n - j < DCB_UK_NR ? n - j : DCB_UK_NR, accumulate, bias);
}

static void gemm_pack_scalar(int k, const float *a, const float *b, size_t ldb, float *bpack, float *c, size_t ldc,
                             int mr, int accumulate, const float *bias) {
    for (int p = 0; p < k; p++) memcpy(bpack + (size_t)p * DCB_UK_NR, b + (size_t)p * ldb, sizeof(float) * DCB_UK_NR);
    tile(k, a, bpack, DCB_UK_NR, c, ldc, mr, DCB_UK_NR, accumulate, bias);
}

static void gemm_n4_scalar(int k, const float *a, const float *b, size_t ldb, float *c, size_t ldc, int mr, int n,
                           int accumulate, int count, size_t as, size_t bs, size_t cs) {
    for (int i = 0; i < count; i++, a += as, b += bs, c += cs)
        for (int r0 = 0; r0 < mr; r0 += DCB_UK_MR)
            tile(k, a + (size_t)k * r0, b, ldb, c + (size_t)r0 * ldc, ldc, mr - r0 < DCB_UK_MR ? mr - r0 : DCB_UK_MR,
                 n, accumulate, NULL);
}

DCB_UK_DEFINE(scalar, DCB_ISA_SCALAR, DCB_UK_NR, NULL)
