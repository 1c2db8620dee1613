/* dynmix_avx512.c — the AVX-512 variant of the dynamic operators' helpers
 * (dynmix.h): 16-lane mixing and kernel transform with masked tails;
 * transposes in 8 x 16 blocks (zmm unpacks and two-source permutes), then
 * 8 x 8; sums in four 8-double accumulators.
 * The mixing and the transform compute the avx2 variant's chains, so they
 * give its bits. Compiled with ISA_FLAGS_avx512 (x86-64-v4); chosen at run
 * time where the CPU and OS run AVX-512 F/BW/DQ/VL. */
#include "dynmix.h"

#if DCB_ISA_X86
#if !defined(__AVX512F__) || !defined(__AVX512VL__) || !defined(__AVX512DQ__) || !defined(__FMA__)
#error "dynmix_avx512.c needs AVX-512: build it with the Makefile's ISA_FLAGS_avx512"
#endif
#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))

#include "avx512_lanes.h"

static void mix_avx512(const float *src, size_t es, const float *r, int E, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 acc = _mm512_mul_ps(_mm512_set1_ps(r[0]), _mm512_loadu_ps(src + i));
        for (int e = 1; e < E; e++) acc = _mm512_fmadd_ps(_mm512_set1_ps(r[e]), _mm512_loadu_ps(src + e * es + i), acc);
        _mm512_storeu_ps(dst + i, acc);
    }
    if (i < n) {
        const __mmask16 k = lanes(n - i);
        __m512 acc = _mm512_mul_ps(_mm512_set1_ps(r[0]), _mm512_maskz_loadu_ps(k, src + i));
        for (int e = 1; e < E; e++)
            acc = _mm512_fmadd_ps(_mm512_set1_ps(r[e]), _mm512_maskz_loadu_ps(k, src + e * es + i), acc);
        _mm512_mask_storeu_ps(dst + i, k, acc);
    }
}

#define DV __m512
#define DV_SET1 _mm512_set1_ps
#define DV_ADD _mm512_add_ps
#define DV_SUB _mm512_sub_ps
#define DV_MUL _mm512_mul_ps
#define DV_FMADD _mm512_fmadd_ps
#include "dynmix_grows.inc"

/* One 16-lane group of wino_taps (lanes k): G g column by column (3a values
 * in registers: 32 of them), then U row by row. m is a constant in every
 * inlined copy. */
INLINE void taps16(const int m, const float *g, size_t ts, float *u, size_t us, __mmask16 k) {
    const int a = m + 2;
    __m512 t[3][6];
    for (int c = 0; c < 3; c++)
        g_rows(m, _mm512_maskz_loadu_ps(k, g + c * ts), _mm512_maskz_loadu_ps(k, g + (3 + c) * ts),
               _mm512_maskz_loadu_ps(k, g + (6 + c) * ts), t[c]);
    for (int r = 0; r < a; r++) {
        __m512 o[6];
        g_rows(m, t[0][r], t[1][r], t[2][r], o);
        for (int c = 0; c < a; c++) _mm512_mask_storeu_ps(u + (size_t)(r * a + c) * us, k, o[c]);
    }
}

INLINE void taps_m(const int m, const float *g, size_t ts, size_t n, float *u, size_t us) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) taps16(m, g + i, ts, u + i, us, 0xFFFF);
    if (i < n) taps16(m, g + i, ts, u + i, us, lanes(n - i));
}

static void wino_taps_avx512(int m, const float *g, size_t ts, size_t n, float *u, size_t us) {
    if (m == 4)
        taps_m(4, g, ts, n, u, us);
    else
        taps_m(2, g, ts, n, u, us);
}

/* The first two stages of an 8 x 8 transpose in every 128-bit lane of
 * r[0..8): afterwards lane L of r[q] (q < 4) holds element q of lane L of
 * inputs 0..3, and r[q + 4] the same of inputs 4..7. */
INLINE void stages512(__m512 r[8]) {
    const __m512 t0 = _mm512_unpacklo_ps(r[0], r[1]), t1 = _mm512_unpackhi_ps(r[0], r[1]);
    const __m512 t2 = _mm512_unpacklo_ps(r[2], r[3]), t3 = _mm512_unpackhi_ps(r[2], r[3]);
    const __m512 t4 = _mm512_unpacklo_ps(r[4], r[5]), t5 = _mm512_unpackhi_ps(r[4], r[5]);
    const __m512 t6 = _mm512_unpacklo_ps(r[6], r[7]), t7 = _mm512_unpackhi_ps(r[6], r[7]);
    r[0] = _mm512_shuffle_ps(t0, t2, 0x44);
    r[1] = _mm512_shuffle_ps(t0, t2, 0xEE);
    r[2] = _mm512_shuffle_ps(t1, t3, 0x44);
    r[3] = _mm512_shuffle_ps(t1, t3, 0xEE);
    r[4] = _mm512_shuffle_ps(t4, t6, 0x44);
    r[5] = _mm512_shuffle_ps(t4, t6, 0xEE);
    r[6] = _mm512_shuffle_ps(t5, t7, 0x44);
    r[7] = _mm512_shuffle_ps(t5, t7, 0xEE);
}

/* 8 rows of 16 (in[i]) to 16 rows of 8 (out[c][0..8) = column c). */
INLINE void tr8x16(const float *const in[8], float *const out[16]) {
    __m512 r[8];
    for (int i = 0; i < 8; i++) r[i] = _mm512_loadu_ps(in[i]);
    stages512(r);
    /* out[4L + q] = (lane L of r[q], lane L of r[q + 4]) */
    const __m512i i01 = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i i23 = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    for (int q = 0; q < 4; q++) {
        const __m512 a = _mm512_permutex2var_ps(r[q], i01, r[q + 4]);
        const __m512 b = _mm512_permutex2var_ps(r[q], i23, r[q + 4]);
        _mm256_storeu_ps(out[q], _mm512_castps512_ps256(a));
        _mm256_storeu_ps(out[4 + q], _mm512_extractf32x8_ps(a, 1));
        _mm256_storeu_ps(out[8 + q], _mm512_castps512_ps256(b));
        _mm256_storeu_ps(out[12 + q], _mm512_extractf32x8_ps(b, 1));
    }
}

/* 16 rows of 8 (in[p]) to 8 rows of 16 (out[k][0..16) = column k). */
INLINE void tr16x8(const float *const in[16], float *const out[8]) {
    __m512 r[8];
    /* lanes 0, 1: row i; lanes 2, 3: row i + 8 */
    for (int i = 0; i < 8; i++)
        r[i] = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(in[i])), _mm256_loadu_ps(in[i + 8]), 1);
    stages512(r);
    /* out[q] = lanes 0, 2 of r[q] and r[q + 4] interleaved; out[q + 4] = lanes 1, 3 */
    const __m512i i02 = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
    const __m512i i13 = _mm512_setr_epi32(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
    for (int q = 0; q < 4; q++) {
        _mm512_storeu_ps(out[q], _mm512_permutex2var_ps(r[q], i02, r[q + 4]));
        _mm512_storeu_ps(out[q + 4], _mm512_permutex2var_ps(r[q], i13, r[q + 4]));
    }
}

/* The 8 x 8 transpose in ymm: out[i][0..8) = column i of in[0..8)[0..8). */
INLINE void tr8(const float *const in[8], float *const out[8]) {
    __m256 r0 = _mm256_loadu_ps(in[0]), r1 = _mm256_loadu_ps(in[1]), r2 = _mm256_loadu_ps(in[2]);
    __m256 r3 = _mm256_loadu_ps(in[3]), r4 = _mm256_loadu_ps(in[4]), r5 = _mm256_loadu_ps(in[5]);
    __m256 r6 = _mm256_loadu_ps(in[6]), r7 = _mm256_loadu_ps(in[7]);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    r0 = _mm256_shuffle_ps(t0, t2, 0x44);
    r1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    r2 = _mm256_shuffle_ps(t1, t3, 0x44);
    r3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    r4 = _mm256_shuffle_ps(t4, t6, 0x44);
    r5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    r6 = _mm256_shuffle_ps(t5, t7, 0x44);
    r7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(out[0], _mm256_permute2f128_ps(r0, r4, 0x20));
    _mm256_storeu_ps(out[1], _mm256_permute2f128_ps(r1, r5, 0x20));
    _mm256_storeu_ps(out[2], _mm256_permute2f128_ps(r2, r6, 0x20));
    _mm256_storeu_ps(out[3], _mm256_permute2f128_ps(r3, r7, 0x20));
    _mm256_storeu_ps(out[4], _mm256_permute2f128_ps(r0, r4, 0x31));
    _mm256_storeu_ps(out[5], _mm256_permute2f128_ps(r1, r5, 0x31));
    _mm256_storeu_ps(out[6], _mm256_permute2f128_ps(r2, r6, 0x31));
    _mm256_storeu_ps(out[7], _mm256_permute2f128_ps(r3, r7, 0x31));
}

static void c2r_avx512(const float *cols, size_t P, size_t Kd, float *rows, const int *at) {
    size_t p0 = 0;
    const size_t k8 = Kd / 8 * 8;
    for (; p0 + 16 <= P; p0 += 16) {
        float *r[16];
        for (int i = 0; i < 16; i++) r[i] = rows + (at ? (size_t)at[p0 + i] : p0 + i) * Kd;
        for (size_t k0 = 0; k0 < k8; k0 += 8) {
            const float *in[8];
            float *out[16];
            for (int i = 0; i < 8; i++) in[i] = cols + (k0 + i) * P + p0;
            for (int i = 0; i < 16; i++) out[i] = r[i] + k0;
            tr8x16(in, out);
        }
        for (int i = 0; i < 16; i++)
            for (size_t k = k8; k < Kd; k++) r[i][k] = cols[k * P + p0 + i];
    }
    for (; p0 + 8 <= P; p0 += 8) {
        float *r[8];
        for (int i = 0; i < 8; i++) r[i] = rows + (at ? (size_t)at[p0 + i] : p0 + i) * Kd;
        for (size_t k0 = 0; k0 < k8; k0 += 8) {
            const float *in[8];
            float *out[8];
            for (int i = 0; i < 8; i++) {
                in[i] = cols + (k0 + i) * P + p0;
                out[i] = r[i] + k0;
            }
            tr8(in, out);
        }
        for (int i = 0; i < 8; i++)
            for (size_t k = k8; k < Kd; k++) r[i][k] = cols[k * P + p0 + i];
    }
    for (; p0 < P; p0++) {
        float *r = rows + (at ? (size_t)at[p0] : p0) * Kd;
        for (size_t k = 0; k < Kd; k++) r[k] = cols[k * P + p0];
    }
}

static void r2c_avx512(const float *rows, size_t P, size_t Kd, float *cols, const int *at) {
    size_t p0 = 0;
    const size_t k8 = Kd / 8 * 8;
    for (; p0 + 16 <= P; p0 += 16) {
        const float *r[16];
        for (int i = 0; i < 16; i++) r[i] = rows + (at ? (size_t)at[p0 + i] : p0 + i) * Kd;
        for (size_t k0 = 0; k0 < k8; k0 += 8) {
            const float *in[16];
            float *out[8];
            for (int i = 0; i < 16; i++) in[i] = r[i] + k0;
            for (int i = 0; i < 8; i++) out[i] = cols + (k0 + i) * P + p0;
            tr16x8(in, out);
        }
        for (int i = 0; i < 16; i++)
            for (size_t k = k8; k < Kd; k++) cols[k * P + p0 + i] = r[i][k];
    }
    for (; p0 + 8 <= P; p0 += 8) {
        const float *r[8];
        for (int i = 0; i < 8; i++) r[i] = rows + (at ? (size_t)at[p0 + i] : p0 + i) * Kd;
        for (size_t k0 = 0; k0 < k8; k0 += 8) {
            const float *in[8];
            float *out[8];
            for (int i = 0; i < 8; i++) {
                in[i] = r[i] + k0;
                out[i] = cols + (k0 + i) * P + p0;
            }
            tr8(in, out);
        }
        for (int i = 0; i < 8; i++)
            for (size_t k = k8; k < Kd; k++) cols[k * P + p0 + i] = r[i][k];
    }
    for (; p0 < P; p0++) {
        const float *r = rows + (at ? (size_t)at[p0] : p0) * Kd;
        for (size_t k = 0; k < Kd; k++) cols[k * P + p0] = r[k];
    }
}

static double sum_f64_avx512(const float *p, size_t n) {
    size_t i = 0;
    __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm256_loadu_ps(p + i)));
        a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm256_loadu_ps(p + i + 8)));
        a2 = _mm512_add_pd(a2, _mm512_cvtps_pd(_mm256_loadu_ps(p + i + 16)));
        a3 = _mm512_add_pd(a3, _mm512_cvtps_pd(_mm256_loadu_ps(p + i + 24)));
    }
    for (; i < n; i += 8) { /* the last < 32 floats, 8 at a time, the last masked */
        const __mmask8 k = (__mmask8)lanes(n - i < 8 ? n - i : 8);
        a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(k, p + i)));
    }
    double t[8];
    _mm512_storeu_pd(t, _mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
    return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

DCB_DYNMIX_DEFINE(avx512, DCB_ISA_AVX512)
#endif
