/* gemm_f32_6x32_avx512.c — the AVX-512 variant of the f32 GEMM
 * micro-kernel (ukernels.h): 6 rows by 32 columns in 12 zmm accumulators,
 * B loaded 32 floats a step, A broadcast a row at a time; the last columns
 * (< 32) in one masked tile of 32 or 16, where mask registers make the
 * tails as cheap as a full tile. Its panel width (gemm_pack, the direct
 * engine's B panels) is 32: a whole panel is one 12-accumulator tile.
 * gemm2 takes two panels at once and cuts the last <= 16 columns into a
 * 12 x 16 tile (the Winograd GEMMs of 16 tiles a sample: 256@14 at F(4x4),
 * 512@7 at F(2x2)). Compiled with ISA_FLAGS_avx512
 * (x86-64-v4); chosen at run time where the CPU and OS run AVX-512
 * F/BW/DQ/VL.
 *
 * The chain per element is the avx2 variant's (fused multiply-adds over p
 * from zero, then + bias, then + the old C), so both give the same bits.
 * gemm_n4 is the avx2 file's: 4 columns are no work for a zmm. */
#include "ukernels.h"

#if DCB_ISA_X86
#if !defined(__AVX512F__) || !defined(__AVX512VL__) || !defined(__FMA__)
#error "gemm_f32_6x32_avx512.c needs AVX-512: build it with the Makefile's ISA_FLAGS_avx512"
#endif
#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))
#define PREFETCH_L2(p) __builtin_prefetch((p), 0, 2)
#define ROWS6(X) X(0) X(1) X(2) X(3) X(4) X(5)

#include "avx512_lanes.h"

/* One row of a W-column tile (v1: columns 16..31 when W == 32), n <= W of
 * them stored: = or += (the old value plus the new). Masked lanes are
 * neither read nor written. */
INLINE void store_row(float *cr, __m512 v0, __m512 v1, const int W, int n, int accumulate) {
    const __mmask16 m0 = lanes(n), m1 = W == 32 ? lanes(n - 16) : 0;
    if (accumulate) {
        v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, cr));
        if (W == 32) v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, cr + 16));
    }
    _mm512_mask_storeu_ps(cr, m0, v0);
    if (W == 32) _mm512_mask_storeu_ps(cr + 16, m1, v1);
}

/* The tile: rows [0, mr) (R = 6 accumulated, or 4 where mr <= 4) by W = 32
 * or 16 columns, n of them loaded and stored (masked: n < W); pack: B's 32
 * columns are also copied to bpack [k][32] (W = 32, unmasked). R, W, masked
 * and pack are constants in every inlined copy. */
INLINE void tile(const int R, const int W, const int masked, const int pack, int k, const float *a,
                 const float *b, size_t ldb, float *bpack, float *c, size_t ldc, int mr, int n, int accumulate,
                 const float *bias) {
#define DECL(r) __m512 c##r##0 = _mm512_setzero_ps(), c##r##1 = _mm512_setzero_ps();
    ROWS6(DECL)
#undef DECL
    const __mmask16 m0 = masked ? lanes(n) : 0xFFFF, m1 = W == 32 ? (masked ? lanes(n - 16) : 0xFFFF) : 0;
    _Pragma("GCC unroll 4") for (int p = 0; p < k; p++, a += DCB_UK_MR, b += ldb) {
        const __m512 b0 = masked ? _mm512_maskz_loadu_ps(m0, b) : _mm512_loadu_ps(b);
        __m512 b1 = _mm512_setzero_ps();
        if (W == 32) b1 = masked ? _mm512_maskz_loadu_ps(m1, b + 16) : _mm512_loadu_ps(b + 16);
        if (pack) {
            PREFETCH_L2(b + 32); /* the next panel's columns */
            _mm512_storeu_ps(bpack, b0);
            _mm512_storeu_ps(bpack + 16, b1);
            bpack += 32;
        }
#define FMA(r)                                                  \
    if (r < R) {                                                \
        const __m512 w = _mm512_set1_ps(a[r]);                  \
        c##r##0 = _mm512_fmadd_ps(w, b0, c##r##0);              \
        if (W == 32) c##r##1 = _mm512_fmadd_ps(w, b1, c##r##1); \
    }
        ROWS6(FMA)
#undef FMA
    }
    if (bias) {
#define BIAS(r)                                                 \
    if (r < R && r < mr) {                                      \
        const __m512 bb = _mm512_set1_ps(bias[r]);              \
        c##r##0 = _mm512_add_ps(c##r##0, bb);                   \
        if (W == 32) c##r##1 = _mm512_add_ps(c##r##1, bb);      \
    }
        ROWS6(BIAS)
#undef BIAS
    }
#define STORE(r) \
    if (r < R && r < mr) store_row(c + r * ldc, c##r##0, c##r##1, W, n, accumulate);
    ROWS6(STORE)
#undef STORE
}

/* Columns in 32-wide tiles, the rest (< 32) in one masked tile of 32 or 16. */
INLINE void gemm_rows(const int R, int k, const float *a, const float *b, size_t ldb, float *c, size_t ldc, int mr,
                      int n, int accumulate, const float *bias) {
    int j = 0;
    for (; j + 32 <= n; j += 32) tile(R, 32, 0, 0, k, a, b + j, ldb, NULL, c + j, ldc, mr, 32, accumulate, bias);
    const int rest = n - j;
    if (rest > 16)
        tile(R, 32, 1, 0, k, a, b + j, ldb, NULL, c + j, ldc, mr, rest, accumulate, bias);
    else if (rest == 16)
        tile(R, 16, 0, 0, k, a, b + j, ldb, NULL, c + j, ldc, mr, 16, accumulate, bias);
    else if (rest > 0)
        tile(R, 16, 1, 0, k, a, b + j, ldb, NULL, c + j, ldc, mr, rest, accumulate, bias);
}

static void gemm_avx512(int k, const float *a, const float *b, size_t ldb, float *c, size_t ldc, int mr, int n,
                        int accumulate, const float *bias) {
    /* One whole packed panel (the direct engine's call) goes straight to its
     * tile, with the panel's steps as constants. */
    if (n == 32 && ldb == 32) {
        if (mr > 4)
            tile(6, 32, 0, 0, k, a, b, 32, NULL, c, ldc, mr, 32, accumulate, bias);
        else
            tile(4, 32, 0, 0, k, a, b, 32, NULL, c, ldc, mr, 32, accumulate, bias);
    } else if (mr > 4) {
        gemm_rows(6, k, a, b, ldb, c, ldc, mr, n, accumulate, bias);
    } else {
        gemm_rows(4, k, a, b, ldb, c, ldc, mr, n, accumulate, bias);
    }
}

static void gemm_pack_avx512(int k, const float *a, const float *b, size_t ldb, float *bpack, float *c, size_t ldc,
                             int mr, int accumulate, const float *bias) {
    if (mr > 4)
        tile(6, 32, 0, 1, k, a, b, ldb, bpack, c, ldc, mr, 32, accumulate, bias);
    else
        tile(4, 32, 0, 1, k, a, b, ldb, bpack, c, ldc, mr, 32, accumulate, bias);
}

/* gemm2's tile for the last <= 16 columns: rows [0, mr) of two panels
 * (a, a + 6k; 6 < mr <= 12) in 12 accumulators. A 6 x 16 tile has 6 chains
 * of 4-cycle FMAs for 2 FMA ports, at most 3/4 of the peak; this one has 12.
 * Same chain per element as tile. */
INLINE void tile12(const int masked, int k, const float *a, const float *b, size_t ldb, float *c, size_t ldc,
                   int mr, int n, int accumulate, const float *bias) {
#define ROWS12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define DECL(r) __m512 c##r = _mm512_setzero_ps();
    ROWS12(DECL)
#undef DECL
    const __mmask16 m0 = masked ? lanes(n) : 0xFFFF;
    const float *a1 = a + (size_t)DCB_UK_MR * k;
    _Pragma("GCC unroll 4") for (int p = 0; p < k; p++, a += DCB_UK_MR, a1 += DCB_UK_MR, b += ldb) {
        const __m512 b0 = masked ? _mm512_maskz_loadu_ps(m0, b) : _mm512_loadu_ps(b);
#define FMA(r) c##r = _mm512_fmadd_ps(_mm512_set1_ps(r < 6 ? a[r] : a1[r - 6]), b0, c##r);
        ROWS12(FMA)
#undef FMA
    }
#define FIN(r)                                                                     \
    if (r < mr) {                                                                  \
        if (bias) c##r = _mm512_add_ps(c##r, _mm512_set1_ps(bias[r]));             \
        store_row(c + r * ldc, c##r, c##r, 16, n, accumulate);                     \
    }
    ROWS12(FIN)
#undef FIN
#undef ROWS12
}

static void gemm2_avx512(int k, const float *a, const float *b, size_t ldb, float *c, size_t ldc, int mr, int n,
                         int accumulate, const float *bias) {
    if (mr <= DCB_UK_MR) {
        gemm_avx512(k, a, b, ldb, c, ldc, mr, n, accumulate, bias);
        return;
    }
    /* 32-column blocks (and a rest over 16) panel by panel: 12 chains each */
    const int j16 = n % 32 > 0 && n % 32 <= 16 ? n - n % 32 : n;
    if (j16 > 0) {
        gemm_avx512(k, a, b, ldb, c, ldc, DCB_UK_MR, j16, accumulate, bias);
        gemm_avx512(k, a + (size_t)DCB_UK_MR * k, b, ldb, c + DCB_UK_MR * ldc, ldc, mr - DCB_UK_MR, j16, accumulate,
                    bias ? bias + DCB_UK_MR : NULL);
    }
    if (n - j16 == 16)
        tile12(0, k, a, b + j16, ldb, c + j16, ldc, mr, 16, accumulate, bias);
    else if (n > j16)
        tile12(1, k, a, b + j16, ldb, c + j16, ldc, mr, n - j16, accumulate, bias);
}

#define gemm_n4_avx512 dcb_uk_gemm_n4_avx2
DCB_UK_DEFINE(avx512, DCB_ISA_AVX512, 32, gemm2_avx512)
#else
typedef int dcb_uk_no_avx512; /* not an empty translation unit */
#endif
