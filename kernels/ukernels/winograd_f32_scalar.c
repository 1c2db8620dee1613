/* winograd_f32_scalar.c — the portable variant of the Winograd engine's
 * tile-group transforms (winograd_f32.h): one tile at a time with the
 * generic B^T and A^T tables, writing only the k tiles of the group. Plain C,
 * compiled for x86-64 (ISA_FLAGS_scalar). */
#include "winograd_f32.h"

#include <stddef.h>

static const float BT2[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
static const float AT2[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
static const float BT4[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
static const float AT4[4][6] = {
    {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};

/* F(6x6): points 0, 1, -1, 1/2, -1/2, 2, -2, inf */
static const float BT6[8][8] = {
    {1, 0, -21.f / 4, 0, 21.f / 4, 0, -1, 0},      {0, 1, 1, -17.f / 4, -17.f / 4, 1, 1, 0},
    {0, -1, 1, 17.f / 4, -17.f / 4, -1, 1, 0},     {0, 0.5f, 0.25f, -2.5f, -1.25f, 2, 1, 0},
    {0, -0.5f, 0.25f, 2.5f, -1.25f, -2, 1, 0},     {0, 2, 4, -2.5f, -5, 0.5f, 1, 0},
    {0, -2, 4, 2.5f, -5, -0.5f, 1, 0},             {0, -1, 0, 21.f / 4, 0, -21.f / 4, 0, 1}};
static const float AT6[6][8] = {{1, 1, 1, 1, 1, 1, 1, 0},           {0, 1, -1, 2, -2, 0.5f, -0.5f, 0},
                                {0, 1, 1, 4, 4, 0.25f, 0.25f, 0},     {0, 1, -1, 8, -8, 0.125f, -0.125f, 0},
                                {0, 1, 1, 16, 16, 1.f / 16, 1.f / 16, 0}, {0, 1, -1, 32, -32, 1.f / 32, -1.f / 32, 1}};

static void in_group_scalar(int m, const float *xc, int H, int W, int row0, int col0, int k, float *v, size_t vs) {
    const int a = m + 2;
    const float *BT = m == 2 ? &BT2[0][0] : m == 4 ? &BT4[0][0] : &BT6[0][0];
    for (int j = 0; j < k; j++) {
        float d[8][8], t[8][8];
        for (int r = 0; r < a; r++)
            for (int c = 0; c < a; c++) {
                const int ii = row0 + r, jj = col0 + j * m + c;
                d[r][c] = ii >= 0 && ii < H && jj >= 0 && jj < W ? xc[(size_t)ii * W + jj] : 0.0f;
            }
        for (int i = 0; i < a; i++)
            for (int c = 0; c < a; c++) {
                float s = 0;
                for (int r = 0; r < a; r++) s += BT[i * a + r] * d[r][c];
                t[i][c] = s;
            }
        for (int i = 0; i < a; i++)
            for (int c = 0; c < a; c++) {
                float s = 0;
                for (int q = 0; q < a; q++) s += t[i][q] * BT[c * a + q];
                v[(size_t)(i * a + c) * vs + j] = s;
            }
    }
}

static void out_group_scalar(int m, const float *mm, size_t ms, int k, float bias, float *yc, int Ho, int Wo,
                      int row0, int col0) {
    const int a = m + 2;
    const float *AT = m == 2 ? &AT2[0][0] : m == 4 ? &AT4[0][0] : &AT6[0][0];
    for (int j = 0; j < k; j++) {
        float t[6][8];
        for (int i = 0; i < m; i++)
            for (int c = 0; c < a; c++) {
                float s = 0;
                for (int r = 0; r < a; r++) s += AT[i * a + r] * mm[(size_t)(r * a + c) * ms + j];
                t[i][c] = s;
            }
        for (int i = 0; i < m && row0 + i < Ho; i++)
            for (int c = 0; c < m && col0 + j * m + c < Wo; c++) {
                float s = bias;
                for (int q = 0; q < a; q++) s += t[i][q] * AT[c * a + q];
                yc[(size_t)(row0 + i) * Wo + col0 + j * m + c] = s;
            }
    }
}


DCB_WK_DEFINE(scalar, DCB_ISA_SCALAR)
