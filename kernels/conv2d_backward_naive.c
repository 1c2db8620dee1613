/* conv2d backward as direct loops in double: the oracle of every conv
 * backward, and the building block of the naive backward of every operator
 * built on a conv. Each output element is owned by one thread (dx by input
 * element, dw by weight element), so no reduction races and the result does
 * not depend on the thread count. */
#include "dcb_internal.h"

#include <string.h>

void dcb_conv2d_bwd_data_naive(const dcb_conv2d_p *p, int N, int H, int W, const float *dy, const float *w,
                               float *dx, int threads) {
    const int Ho = dcb_conv_out(H, p->kh, p->stride, p->pad, p->dil);
    const int Wo = dcb_conv_out(W, p->kw, p->stride, p->pad, p->dil);
    const int cig = p->cin / p->groups, cog = p->cout / p->groups;
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads)
    for (int n = 0; n < N; n++)
        for (int ci = 0; ci < p->cin; ci++) {
            const int g = ci / cig, c = ci % cig;
            float *dxc = dx + ((size_t)n * p->cin + ci) * H * W;
            for (int ii = 0; ii < H; ii++)
                for (int jj = 0; jj < W; jj++) {
                    double acc = 0;
                    for (int ol = 0; ol < cog; ol++) {
                        const int o = g * cog + ol;
                        const float *dyo = dy + ((size_t)n * p->cout + o) * Ho * Wo;
                        const float *wc = w + ((size_t)o * cig + c) * p->kh * p->kw;
                        for (int u = 0; u < p->kh; u++) {
                            const int t = ii + p->pad - u * p->dil; /* = i * stride */
                            if (t < 0 || t % p->stride) continue;
                            const int i = t / p->stride;
                            if (i >= Ho) continue;
                            for (int v = 0; v < p->kw; v++) {
                                const int s = jj + p->pad - v * p->dil;
                                if (s < 0 || s % p->stride) continue;
                                const int j = s / p->stride;
                                if (j >= Wo) continue;
                                acc += (double)wc[u * p->kw + v] * dyo[(size_t)i * Wo + j];
                            }
                        }
                    }
                    dxc[(size_t)ii * W + jj] = (float)acc;
                }
        }
}

void dcb_conv2d_bwd_weight_naive(const dcb_conv2d_p *p, int N, int H, int W, const float *x, const float *dy,
                                 float *dw, float *db, int threads) {
    const int Ho = dcb_conv_out(H, p->kh, p->stride, p->pad, p->dil);
    const int Wo = dcb_conv_out(W, p->kw, p->stride, p->pad, p->dil);
    const int cig = p->cin / p->groups, cog = p->cout / p->groups;
    const int kk = p->kh * p->kw;
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads)
    for (int o = 0; o < p->cout; o++)
        for (int c = 0; c < cig; c++) {
            const int g = o / cog;
            for (int u = 0; u < p->kh; u++)
                for (int v = 0; v < p->kw; v++) {
                    double acc = 0;
                    for (int n = 0; n < N; n++) {
                        const float *xc = x + ((size_t)n * p->cin + g * cig + c) * H * W;
                        const float *dyo = dy + ((size_t)n * p->cout + o) * Ho * Wo;
                        for (int i = 0; i < Ho; i++) {
                            const int ii = i * p->stride + u * p->dil - p->pad;
                            if (ii < 0 || ii >= H) continue;
                            for (int j = 0; j < Wo; j++) {
                                const int jj = j * p->stride + v * p->dil - p->pad;
                                if (jj < 0 || jj >= W) continue;
                                acc += (double)xc[(size_t)ii * W + jj] * dyo[(size_t)i * Wo + j];
                            }
                        }
                    }
                    dw[((size_t)o * cig + c) * kk + u * p->kw + v] = (float)acc;
                }
        }
    if (db)
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int o = 0; o < p->cout; o++) {
            double acc = 0;
            for (int n = 0; n < N; n++) acc += dcb_sum_f64(dy + ((size_t)n * p->cout + o) * Ho * Wo, (size_t)Ho * Wo);
            db[o] = (float)acc;
        }
}
