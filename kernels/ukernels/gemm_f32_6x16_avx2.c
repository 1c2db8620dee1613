/* gemm_f32_6x16_avx2.c — the AVX2 + FMA variant of the f32 GEMM
 * micro-kernel (ukernels.h): 6 x 16 accumulators in 12 ymm registers, B
 * loaded 16 floats a step, A broadcast a row at a time. Compiled with
 * ISA_FLAGS_avx2 (x86-64-v3); chosen at run time where the CPU has AVX2 and
 * FMA. */
#include "ukernels.h"

#if DCB_ISA_X86
#if !defined(__AVX2__) || !defined(__FMA__)
#error "gemm_f32_6x16_avx2.c needs AVX2 and FMA: build it with the Makefile's ISA_FLAGS_avx2"
#endif
#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))
#define PREFETCH_L2(p) __builtin_prefetch((p), 0, 2)

/* Named accumulators (with an array GCC keeps them in memory); rows past R
 * are compiled out. */
#define ROWS6(X) X(0) X(1) X(2) X(3) X(4) X(5)

/* Lanes j < n. */
INLINE __m256i lanes_below(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The first n (0..4) lanes of v to dst. */
INLINE void store4_part(float *dst, __m128 v, int n) {
    if (n == 4) {
        _mm_storeu_ps(dst, v);
        return;
    }
    if (n >= 2) {
        _mm_storel_pi((__m64 *)dst, v);
        v = _mm_movehl_ps(v, v);
        dst += 2;
        n -= 2;
    }
    if (n) _mm_store_ss(dst, v);
}

/* The first n (0..8) lanes of v to dst. */
INLINE void store8_part(float *dst, __m256 v, int n) {
    if (n == 8) {
        _mm256_storeu_ps(dst, v);
        return;
    }
    __m128 h = _mm256_castps256_ps128(v);
    if (n >= 4) {
        _mm_storeu_ps(dst, h);
        h = _mm256_extractf128_ps(v, 1);
        dst += 4;
        n -= 4;
    }
    store4_part(dst, h, n);
}

/* One row of a W-column tile (v1: columns 8..15 when W == 16), n <= W of
 * its columns: = or += (the old value plus the new). */
INLINE void store_row(float *cr, __m256 v0, __m256 v1, const int W, int n, int accumulate) {
    if (n == W) {
        if (accumulate) {
            v0 = _mm256_add_ps(v0, _mm256_loadu_ps(cr));
            if (W == 16) v1 = _mm256_add_ps(v1, _mm256_loadu_ps(cr + 8));
        }
        _mm256_storeu_ps(cr, v0);
        if (W == 16) _mm256_storeu_ps(cr + 8, v1);
        return;
    }
    if (accumulate) {
        float buf[16];
        _mm256_storeu_ps(buf, v0);
        if (W == 16) _mm256_storeu_ps(buf + 8, v1);
        for (int t = 0; t < n; t++) cr[t] = cr[t] + buf[t];
        return;
    }
    if (W == 16 && n >= 8) {
        _mm256_storeu_ps(cr, v0);
        store8_part(cr + 8, v1, n - 8);
    } else {
        store8_part(cr, v0, n);
    }
}

/* The tile: rows [0, mr) (R = 6 accumulated, or 4 where mr <= 4) by W = 16
 * or 8 columns, of which n are loaded (masked: n < W; the lanes past n read
 * nothing) and stored; pack: B's rows are also copied to bpack [k][16] (W =
 * 16, unmasked). R, W, masked and pack are constants in every inlined copy. */
INLINE void tile(const int R, const int W, const int masked, const int pack, int k, const float *a,
                 const float *b, size_t ldb, float *bpack, float *c, size_t ldc, int mr, int n, int accumulate,
                 const float *bias) {
#define DECL(r) __m256 c##r##0 = _mm256_setzero_ps(), c##r##1 = _mm256_setzero_ps();
    ROWS6(DECL)
#undef DECL
    const __m256i mask = lanes_below(W == 16 ? n - 8 : n);
    _Pragma("GCC unroll 4") for (int p = 0; p < k; p++, a += DCB_UK_MR, b += ldb) {
        __m256 b0, b1 = _mm256_setzero_ps();
        if (W == 16) {
            b0 = _mm256_loadu_ps(b);
            b1 = masked ? _mm256_maskload_ps(b + 8, mask) : _mm256_loadu_ps(b + 8);
        } else {
            b0 = masked ? _mm256_maskload_ps(b, mask) : _mm256_loadu_ps(b);
        }
        if (pack) {
            PREFETCH_L2(b + DCB_UK_NR); /* the next panel's columns */
            _mm256_storeu_ps(bpack, b0);
            _mm256_storeu_ps(bpack + 8, b1);
            bpack += DCB_UK_NR;
        }
#define FMA(r)                                                     \
    if (r < R) {                                                   \
        const __m256 w = _mm256_broadcast_ss(a + r);               \
        c##r##0 = _mm256_fmadd_ps(w, b0, c##r##0);                 \
        if (W == 16) c##r##1 = _mm256_fmadd_ps(w, b1, c##r##1);    \
    }
        ROWS6(FMA)
#undef FMA
    }
    if (bias) {
#define BIAS(r)                                                    \
    if (r < R && r < mr) {                                         \
        const __m256 bb = _mm256_broadcast_ss(bias + r);           \
        c##r##0 = _mm256_add_ps(c##r##0, bb);                      \
        if (W == 16) c##r##1 = _mm256_add_ps(c##r##1, bb);         \
    }
        ROWS6(BIAS)
#undef BIAS
    }
#define STORE(r) \
    if (r < R && r < mr) store_row(c + r * ldc, c##r##0, c##r##1, W, n, accumulate);
    ROWS6(STORE)
#undef STORE
}

/* Columns in 16-wide tiles, the rest (< 16) in one tile of 16 or 8. */
INLINE void gemm_rows(const int R, int k, const float *a, const float *b, size_t ldb, float *c, size_t ldc, int mr,
                      int n, int accumulate, const float *bias) {
    int j = 0;
    for (; j + 16 <= n; j += 16) tile(R, 16, 0, 0, k, a, b + j, ldb, NULL, c + j, ldc, mr, 16, accumulate, bias);
    const int rest = n - j;
    if (rest > 8)
        tile(R, 16, 1, 0, k, a, b + j, ldb, NULL, c + j, ldc, mr, rest, accumulate, bias);
    else if (rest == 8)
        tile(R, 8, 0, 0, k, a, b + j, ldb, NULL, c + j, ldc, mr, 8, accumulate, bias);
    else if (rest > 0)
        tile(R, 8, 1, 0, k, a, b + j, ldb, NULL, c + j, ldc, mr, rest, accumulate, bias);
}

static void gemm_avx2(int k, const float *a, const float *b, size_t ldb, float *c, size_t ldc, int mr, int n,
                      int accumulate, const float *bias) {
    /* mr <= 4 takes 4 accumulated rows: 64 rows are 10 panels of 6 and one
     * of 4. One whole packed panel (the direct engine's call) goes straight
     * to its tile, with the panel's steps as constants: immediate offsets in
     * the unrolled loop, and none of the column bookkeeping per call. */
    if (n == DCB_UK_NR && ldb == DCB_UK_NR) {
        if (mr > 4)
            tile(6, 16, 0, 0, k, a, b, DCB_UK_NR, NULL, c, ldc, mr, 16, accumulate, bias);
        else
            tile(4, 16, 0, 0, k, a, b, DCB_UK_NR, NULL, c, ldc, mr, 16, accumulate, bias);
    } else if (mr > 4) {
        gemm_rows(6, k, a, b, ldb, c, ldc, mr, n, accumulate, bias);
    } else {
        gemm_rows(4, k, a, b, ldb, c, ldc, mr, n, accumulate, bias);
    }
}

static void gemm_pack_avx2(int k, const float *a, const float *b, size_t ldb, float *bpack, float *c, size_t ldc,
                           int mr, int accumulate, const float *bias) {
    if (mr > 4)
        tile(6, 16, 0, 1, k, a, b, ldb, bpack, c, ldc, mr, 16, accumulate, bias);
    else
        tile(4, 16, 0, 1, k, a, b, ldb, bpack, c, ldc, mr, 16, accumulate, bias);
}

/* Up to 4 columns of NPR products of PP panels each (rows [0, mr) of every
 * product, mr <= 6 PP; product i's panel q at a + i*as + 6kq, its B at
 * b + i*bs, its C at c + i*cs): 8-float loads at a + 6p (lanes 6, 7 are the
 * next step's and are dropped), B broadcast a column at a time, only the NC
 * columns asked for. NC, NPR and PP are constants in every inlined copy,
 * NPR x PP x NC = 8 accumulator chains where the rows and products allow it:
 * one column of 49 tiles (128@28) over one pair of panels is 2 chains,
 * latency-bound, and made the dynamic GEMM 27% slower than 48 columns; the
 * dynamic path's 12-row blocks therefore pass the tails of 4 Winograd
 * positions at once. Also the avx512 variant's gemm_n4 (ukernels.h): 4
 * columns give a zmm nothing more to do. */
INLINE void n4_cols(const int NC, const int NPR, const int PP, int k, const float *a, size_t as, const float *b,
                    size_t ldb, size_t bs, float *c, size_t ldc, size_t cs, int mr, int accumulate) {
    /* Accumulator n: slot s = n / NC (product s / PP, panel s % PP), column
     * n % NC. Named variables, not an array: GCC kept an 8 x 4 array of them
     * in memory, a store per multiply-add (the 128@28 tail, 4 products of 2
     * panels, B in L1: 117 ns a product, 89 ns named). */
    const size_t ps = (size_t)DCB_UK_MR * k; /* one panel */
#define ACC8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define USED(n) (n < NPR * PP * NC)
#define DECL(n) __m256 c##n = _mm256_setzero_ps();
    ACC8(DECL)
#undef DECL
    for (int p = 0; p < k; p++, a += DCB_UK_MR, b += ldb) {
#define FMA(n)                                                                                          \
    if (USED(n))                                                                                        \
        c##n = _mm256_fmadd_ps(_mm256_loadu_ps(a + (n / NC / PP) * as + (n / NC % PP) * ps),            \
                               _mm256_broadcast_ss(b + (n / NC / PP) * bs + n % NC), c##n);
        ACC8(FMA)
#undef FMA
    }
    const __m256 z = _mm256_setzero_ps();
    for (int s = 0; s < NPR * PP; s++) {
        /* slot s's NC columns (the rest zero) */
        __m256 col[4] = {z, z, z, z};
#define PICK(n) \
    if (USED(n) && n / NC == s) col[n % NC] = c##n;
        ACC8(PICK)
#undef PICK
        const int i = s / PP, q = s % PP;
        /* (4 columns x 8 rows) -> (8 rows x 4 columns) */
        const __m256 t0 = _mm256_unpacklo_ps(col[0], col[1]);
        const __m256 t1 = _mm256_unpacklo_ps(col[2], col[3]);
        const __m256 t2 = _mm256_unpackhi_ps(col[0], col[1]);
        const __m256 t3 = _mm256_unpackhi_ps(col[2], col[3]);
        const __m256 r04 = _mm256_shuffle_ps(t0, t1, 0x44), r15 = _mm256_shuffle_ps(t0, t1, 0xEE);
        const __m256 r26 = _mm256_shuffle_ps(t2, t3, 0x44), r37 = _mm256_shuffle_ps(t2, t3, 0xEE);
        const __m128 rows[DCB_UK_MR] = {_mm256_castps256_ps128(r04),  _mm256_castps256_ps128(r15),
                                        _mm256_castps256_ps128(r26),  _mm256_castps256_ps128(r37),
                                        _mm256_extractf128_ps(r04, 1), _mm256_extractf128_ps(r15, 1)};
        const int rows_here = mr - DCB_UK_MR * q < DCB_UK_MR ? mr - DCB_UK_MR * q : DCB_UK_MR;
        for (int r = 0; r < rows_here; r++) {
            float *cr = c + i * cs + (size_t)(DCB_UK_MR * q + r) * ldc;
            __m128 x = rows[r];
            if (accumulate) /* the old C's NC values, none past them */
                x = _mm_add_ps(x, _mm_maskload_ps(cr, _mm_cmpgt_epi32(_mm_set1_epi32(NC), _mm_setr_epi32(0, 1, 2, 3))));
            store4_part(cr, x, NC);
        }
    }
#undef USED
#undef ACC8
}

/* How many of `left` panels or products one n4_cols call takes: 8, 4, 2 or
 * 1, at most `most`. */
INLINE int n4_take(int most, int left) {
    return most >= 8 && left >= 8 ? 8 : most >= 4 && left >= 4 ? 4 : most >= 2 && left >= 2 ? 2 : 1;
}

/* NC columns of one product over its panels of mr rows, NPMAX at a time
 * (NPMAX <= 8 / NC), the rest in smaller groups. */
INLINE void n4_panels(const int NC, const int NPMAX, int k, const float *a, const float *b, size_t ldb, float *c,
                      size_t ldc, int mr, int accumulate) {
    const int np = (mr + DCB_UK_MR - 1) / DCB_UK_MR;
    for (int q0 = 0; q0 < np;) {
        const int left = np - q0, rows = mr - DCB_UK_MR * q0;
        const float *aq = a + (size_t)DCB_UK_MR * k * q0;
        float *cq = c + (size_t)DCB_UK_MR * q0 * ldc;
        const int g = n4_take(NPMAX, left);
        const int r = rows < DCB_UK_MR * g ? rows : DCB_UK_MR * g;
        if (g == 8)
            n4_cols(NC, 1, 8, k, aq, 0, b, ldb, 0, cq, ldc, 0, r, accumulate);
        else if (g == 4)
            n4_cols(NC, 1, 4, k, aq, 0, b, ldb, 0, cq, ldc, 0, r, accumulate);
        else if (g == 2)
            n4_cols(NC, 1, 2, k, aq, 0, b, ldb, 0, cq, ldc, 0, r, accumulate);
        else
            n4_cols(NC, 1, 1, k, aq, 0, b, ldb, 0, cq, ldc, 0, r, accumulate);
        q0 += g;
    }
}

/* count products of PP (1 or 2) panels, NPMAX / PP of them at a time, the
 * rest in smaller groups. */
INLINE void n4_products(const int NC, const int NPMAX, const int PP, int k, const float *a, size_t as,
                        const float *b, size_t ldb, size_t bs, float *c, size_t ldc, size_t cs, int count, int mr,
                        int accumulate) {
    for (int i0 = 0; i0 < count;) {
        const int g = n4_take(NPMAX / PP, count - i0);
        const float *ai = a + i0 * as, *bi = b + i0 * bs;
        float *ci = c + i0 * cs;
        if (g == 8 && PP == 1)
            n4_cols(NC, 8, 1, k, ai, as, bi, ldb, bs, ci, ldc, cs, mr, accumulate);
        else if (g == 4)
            n4_cols(NC, 4, PP, k, ai, as, bi, ldb, bs, ci, ldc, cs, mr, accumulate);
        else if (g == 2)
            n4_cols(NC, 2, PP, k, ai, as, bi, ldb, bs, ci, ldc, cs, mr, accumulate);
        else
            n4_cols(NC, 1, PP, k, ai, as, bi, ldb, bs, ci, ldc, cs, mr, accumulate);
        i0 += g;
    }
}

INLINE void n4_batch(const int NC, const int NPMAX, int k, const float *a, size_t as, const float *b, size_t ldb,
                     size_t bs, float *c, size_t ldc, size_t cs, int count, int mr, int accumulate) {
    const int np = (mr + DCB_UK_MR - 1) / DCB_UK_MR;
    if (count > 1 && np == 1 && NPMAX >= 2)
        n4_products(NC, NPMAX, 1, k, a, as, b, ldb, bs, c, ldc, cs, count, mr, accumulate);
    else if (count > 1 && np == 2 && NPMAX >= 4)
        n4_products(NC, NPMAX, 2, k, a, as, b, ldb, bs, c, ldc, cs, count, mr, accumulate);
    else
        for (int i = 0; i < count; i++)
            n4_panels(NC, NPMAX, k, a + i * as, b + i * bs, ldb, c + i * cs, ldc, mr, accumulate);
}

void dcb_uk_gemm_n4_avx2(int k, const float *a, const float *b, size_t ldb, float *c, size_t ldc, int mr, int n,
                         int accumulate, int count, size_t as, size_t bs, size_t cs) {
    switch (n) {
    case 1: n4_batch(1, 8, k, a, as, b, ldb, bs, c, ldc, cs, count, mr, accumulate); break;
    case 2: n4_batch(2, 4, k, a, as, b, ldb, bs, c, ldc, cs, count, mr, accumulate); break;
    case 3: n4_batch(3, 2, k, a, as, b, ldb, bs, c, ldc, cs, count, mr, accumulate); break;
    case 4: n4_batch(4, 2, k, a, as, b, ldb, bs, c, ldc, cs, count, mr, accumulate); break;
    default: break;
    }
}

#define gemm_n4_avx2 dcb_uk_gemm_n4_avx2
DCB_UK_DEFINE(avx2, DCB_ISA_AVX2, DCB_UK_NR, NULL)
#else
typedef int dcb_uk_no_avx2; /* not an empty translation unit */
#endif
