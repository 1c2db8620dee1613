/* dynmix_scalar.c — the portable variant of the dynamic operators' helpers
 * (dynmix.h): plain C, where no SIMD variant runs, under DCB_ISA=scalar,
 * and the reference the tests hold the others to. The kernel transform
 * takes the SIMD variants' operations in their order (unfused). */
#include "dynmix.h"

static void mix_scalar(const float *src, size_t es, const float *r, int E, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float acc = r[0] * src[i];
        for (int e = 1; e < E; e++) acc += r[e] * src[e * es + i];
        dst[i] = acc;
    }
}

/* Row i of G (a x 3) applied to (g0, g1, g2). */
static float g_row(int m, int i, float g0, float g1, float g2) {
    if (m == 4) {
        switch (i) {
        case 0: return 0.25f * g0;
        case 1: return (-1.0f / 6) * ((g0 + g2) + g1);
        case 2: return (1.0f / 6) * (g1 - (g0 + g2));
        case 3:
        case 4: {
            const float q = (1.0f / 24) * g0 + (1.0f / 6) * g2, h = (1.0f / 12) * g1;
            return i == 3 ? q + h : q - h;
        }
        default: return g2;
        }
    }
    switch (i) {
    case 0: return g0;
    case 1: return 0.5f * ((g0 + g2) + g1);
    case 2: return 0.5f * ((g0 + g2) - g1);
    default: return g2;
    }
}

static void wino_taps_scalar(int m, const float *g, size_t ts, size_t n, float *u, size_t us) {
    const int a = m + 2;
    for (size_t i = 0; i < n; i++) {
        float t[6][3]; /* G g: row r of G applied to kernel column c */
        for (int c = 0; c < 3; c++)
            for (int r = 0; r < a; r++) t[r][c] = g_row(m, r, g[c * ts + i], g[(3 + c) * ts + i], g[(6 + c) * ts + i]);
        for (int r = 0; r < a; r++)
            for (int c = 0; c < a; c++) u[(size_t)(r * a + c) * us + i] = g_row(m, c, t[r][0], t[r][1], t[r][2]);
    }
}

static void c2r_scalar(const float *cols, size_t P, size_t Kd, float *rows, const int *at) {
    for (size_t p = 0; p < P; p++) {
        float *r = rows + (at ? (size_t)at[p] : p) * Kd;
        for (size_t k = 0; k < Kd; k++) r[k] = cols[k * P + p];
    }
}

static void r2c_scalar(const float *rows, size_t P, size_t Kd, float *cols, const int *at) {
    for (size_t p = 0; p < P; p++) {
        const float *r = rows + (at ? (size_t)at[p] : p) * Kd;
        for (size_t k = 0; k < Kd; k++) cols[k * P + p] = r[k];
    }
}

static double sum_f64_scalar(const float *p, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += p[i];
    return s;
}

DCB_DYNMIX_DEFINE(scalar, DCB_ISA_SCALAR)
