/* dynmix_avx2.c — the AVX2 + FMA variant of the dynamic operators' helpers
 * (dynmix.h): 8-lane mixing, the kernel transform 8 elements at a time
 * (masked loads and stores for the last < 8), 8 x 8 register transposes,
 * and four 4-double accumulators. Compiled with ISA_FLAGS_avx2
 * (x86-64-v3); chosen at run time where the CPU has AVX2 and FMA. */
#include "dynmix.h"

#if DCB_ISA_X86
#if !defined(__AVX2__) || !defined(__FMA__)
#error "dynmix_avx2.c needs AVX2 and FMA: build it with the Makefile's ISA_FLAGS_avx2"
#endif
#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))

static void mix_avx2(const float *src, size_t es, const float *r, int E, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 acc = _mm256_mul_ps(_mm256_set1_ps(r[0]), _mm256_loadu_ps(src + i));
        for (int e = 1; e < E; e++) acc = _mm256_fmadd_ps(_mm256_set1_ps(r[e]), _mm256_loadu_ps(src + e * es + i), acc);
        _mm256_storeu_ps(dst + i, acc);
    }
    for (; i < n; i++) {
        float acc = r[0] * src[i];
        for (int e = 1; e < E; e++) acc += r[e] * src[e * es + i];
        dst[i] = acc;
    }
}

#define DV __m256
#define DV_SET1 _mm256_set1_ps
#define DV_ADD _mm256_add_ps
#define DV_SUB _mm256_sub_ps
#define DV_MUL _mm256_mul_ps
#define DV_FMADD _mm256_fmadd_ps
#include "dynmix_grows.inc"

/* Row i of G applied to (g0, g1, g2): one of the values g_rows gives. */
INLINE __m256 g_row(int m, int i, __m256 g0, __m256 g1, __m256 g2) {
    if (m == 4) {
        switch (i) {
        case 0: return _mm256_mul_ps(_mm256_set1_ps(0.25f), g0);
        case 1: return _mm256_mul_ps(_mm256_set1_ps(-1.0f / 6), _mm256_add_ps(_mm256_add_ps(g0, g2), g1));
        case 2: return _mm256_mul_ps(_mm256_set1_ps(1.0f / 6), _mm256_sub_ps(g1, _mm256_add_ps(g0, g2)));
        case 3:
        case 4: {
            const __m256 q = _mm256_fmadd_ps(_mm256_set1_ps(1.0f / 24), g0, _mm256_mul_ps(_mm256_set1_ps(1.0f / 6), g2));
            const __m256 h = _mm256_mul_ps(_mm256_set1_ps(1.0f / 12), g1);
            return i == 3 ? _mm256_add_ps(q, h) : _mm256_sub_ps(q, h);
        }
        default: return g2;
        }
    }
    switch (i) {
    case 0: return g0;
    case 1: return _mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_add_ps(_mm256_add_ps(g0, g2), g1));
    case 2: return _mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_sub_ps(_mm256_add_ps(g0, g2), g1));
    default: return g2;
    }
}

/* One 8-lane group (masked: the first n lanes, loads and stores masked by
 * k) of wino_taps, kernel row by kernel row of U: the row's three values of
 * G g from the 9 taps (reloaded per row: 16 registers), then its a values.
 * m is a constant in every inlined copy. */
INLINE void taps8(const int m, const int masked, const float *g, size_t ts, float *u, size_t us, __m256i k) {
    const int a = m + 2;
#define LD(t) (masked ? _mm256_maskload_ps(g + (t) * ts, k) : _mm256_loadu_ps(g + (t) * ts))
    for (int r = 0; r < a; r++) {
        const __m256 t0 = g_row(m, r, LD(0), LD(3), LD(6));
        const __m256 t1 = g_row(m, r, LD(1), LD(4), LD(7));
        const __m256 t2 = g_row(m, r, LD(2), LD(5), LD(8));
        __m256 o[6];
        g_rows(m, t0, t1, t2, o);
        for (int c = 0; c < a; c++) {
            float *d = u + (size_t)(r * a + c) * us;
            if (masked)
                _mm256_maskstore_ps(d, k, o[c]);
            else
                _mm256_storeu_ps(d, o[c]);
        }
    }
#undef LD
}

INLINE void taps_m(const int m, const float *g, size_t ts, size_t n, float *u, size_t us) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) taps8(m, 0, g + i, ts, u + i, us, _mm256_setzero_si256());
    if (i < n) {
        const __m256i k = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - i)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        taps8(m, 1, g + i, ts, u + i, us, k);
    }
}

static void wino_taps_avx2(int m, const float *g, size_t ts, size_t n, float *u, size_t us) {
    if (m == 4)
        taps_m(4, g, ts, n, u, us);
    else
        taps_m(2, g, ts, n, u, us);
}

/* 8x8 blocks transposed in registers: out[i][0..8) = column i of in[0..8)[0..8). */
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

static void c2r_avx2(const float *cols, size_t P, size_t Kd, float *rows, const int *at) {
    size_t p0 = 0;
    const size_t k8 = Kd / 8 * 8;
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

static void r2c_avx2(const float *rows, size_t P, size_t Kd, float *cols, const int *at) {
    size_t p0 = 0;
    const size_t k8 = Kd / 8 * 8;
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

/* Four vector accumulators: one scalar chain of dependent double adds ran
 * at ~4 cycles a float (0.7 ms of condconv's routing at 128@28 N=8). */
static double sum_f64_avx2(const float *p, size_t n) {
    size_t i = 0;
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm_loadu_ps(p + i)));
        a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm_loadu_ps(p + i + 4)));
        a2 = _mm256_add_pd(a2, _mm256_cvtps_pd(_mm_loadu_ps(p + i + 8)));
        a3 = _mm256_add_pd(a3, _mm256_cvtps_pd(_mm_loadu_ps(p + i + 12)));
    }
    double t[4];
    _mm256_storeu_pd(t, _mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
    double s = (t[0] + t[1]) + (t[2] + t[3]);
    for (; i < n; i++) s += p[i];
    return s;
}

DCB_DYNMIX_DEFINE(avx2, DCB_ISA_AVX2)
#endif
