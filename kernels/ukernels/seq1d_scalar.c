/* seq1d_scalar.c — the portable variant of the sequence row (seq1d.h):
 * plain loops, taps outermost; the reference the tests hold the others to. */
#include "seq1d.h"

#include <stddef.h>
#include <string.h>

/* The row in plain loops; also the SIMD variants' path for the head widths
 * they do not vectorise (each file has its own copy, compiled for its ISA). */
static void row_scalar(int C, int H, int hs, int js, const float *restrict k, int j0, int j1,
                       const float *restrict xs, const float *restrict b, float *restrict y) {
    const int R = C / H;
    if (b)
        memcpy(y, b, sizeof(float) * (size_t)C);
    else
        memset(y, 0, sizeof(float) * (size_t)C);
    for (int j = j0; j < j1; j++) {
        const float *restrict xr = xs + (size_t)(j - j0) * C;
        for (int h = 0; h < H; h++) {
            const float w = k[(size_t)h * hs + (size_t)j * js];
            float *restrict yh = y + (size_t)h * R;
            const float *restrict xh = xr + (size_t)h * R;
            for (int r = 0; r < R; r++) yh[r] += w * xh[r];
        }
    }
}

DCB_SEQ1D_DEFINE(scalar, DCB_ISA_SCALAR)
