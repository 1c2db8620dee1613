/* The oracle: direct loops, double accumulation, no cleverness. */
#include "dcb_internal.h"

void dcb_conv2d_naive(const dcb_conv2d_p *p, int N, int H, int W, const float *x,
                      const float *w, const float *b, float *y, int threads) {
    const int Ho = dcb_conv_out(H, p->kh, p->stride, p->pad, p->dil);
    const int Wo = dcb_conv_out(W, p->kw, p->stride, p->pad, p->dil);
    const int cig = p->cin / p->groups, cog = p->cout / p->groups;
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads)
    for (int n = 0; n < N; n++)
        for (int o = 0; o < p->cout; o++) {
            const int g = o / cog;
            float *yo = y + ((size_t)n * p->cout + o) * Ho * Wo;
            for (int i = 0; i < Ho; i++)
                for (int j = 0; j < Wo; j++) {
                    double acc = b ? b[o] : 0.0;
                    for (int c = 0; c < cig; c++) {
                        const float *xc = x + ((size_t)n * p->cin + g * cig + c) * H * W;
                        const float *wc = w + ((size_t)o * cig + c) * p->kh * p->kw;
                        for (int u = 0; u < p->kh; u++) {
                            int ii = i * p->stride + u * p->dil - p->pad;
                            if (ii < 0 || ii >= H) continue;
                            for (int v = 0; v < p->kw; v++) {
                                int jj = j * p->stride + v * p->dil - p->pad;
                                if (jj < 0 || jj >= W) continue;
                                acc += (double)wc[u * p->kw + v] * xc[(size_t)ii * W + jj];
                            }
                        }
                    }
                    yo[(size_t)i * Wo + j] = (float)acc;
                }
        }
}

/* ------------------------------------------------------- the engine */
static void naive_engine_dyn(const dcb_conv2d_p *p, int N, int H, int W, const float *x, const float *w,
                             const float *b, float *y, void *ws, int threads, dcb_profile *prof) {
    double t0 = dcb_now();
    dcb_conv2d_naive(p, N, H, W, x, w, b, y, threads);
    DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
}

static void naive_engine_run(const dcb_conv2d_p *p, const void *state, int N, int H, int W, const float *x,
                             const float *w, const float *b, float *y, void *ws, int threads, dcb_profile *prof) {
    naive_engine_dyn(p, N, H, W, x, w, b, y, ws, threads, prof);
}

const dcb_engine_desc dcb_engine_naive = {.name = "naive", .doc = "direct loops with double accumulation: the oracle",
                                          .tol = 1e-6, .run = naive_engine_run, .dyn_run = naive_engine_dyn};
