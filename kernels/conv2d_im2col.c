/* im2col + CBLAS sgemm. Per image and group: col (cin_g*kh*kw, Ho*Wo), then
 * y_g (cout_g, Ho*Wo) = W_g (cout_g, cin_g*kh*kw) * col. A 1x1 stride-1
 * unpadded conv needs no col at all: x is already the right matrix. */
#include "dcb_internal.h"

#include <cblas.h>
#include <string.h>

static int is_pointwise(const dcb_conv2d_p *p) {
    return p->kh == 1 && p->kw == 1 && p->stride == 1 && p->pad == 0;
}

size_t dcb_conv2d_im2col_ws(const dcb_conv2d_p *p, int N, int H, int W, int threads) {
    (void)N;
    (void)threads;
    if (is_pointwise(p)) return 0;
    const size_t Ho = (size_t)dcb_conv_out(H, p->kh, p->stride, p->pad, p->dil);
    const size_t Wo = (size_t)dcb_conv_out(W, p->kw, p->stride, p->pad, p->dil);
    return sizeof(float) * (size_t)(p->cin / p->groups) * p->kh * p->kw * Ho * Wo;
}

/* Rows (c, u, v) of the column matrix for channels [c0, c0+nc) of one image. */
static void im2col(const dcb_conv2d_p *p, int H, int W, int Ho, int Wo, const float *x,
                   int nc, float *col, int threads) {
    const int kk = p->kh * p->kw;
#pragma omp parallel for schedule(static) num_threads(threads) if (nc * kk > 8 && threads > 1)
    for (int r = 0; r < nc * kk; r++) {
        const int c = r / kk, u = (r % kk) / p->kw, v = r % p->kw;
        const float *xc = x + (size_t)c * H * W;
        float *dst = col + (size_t)r * Ho * Wo;
        for (int i = 0; i < Ho; i++) {
            const int ii = i * p->stride + u * p->dil - p->pad;
            float *d = dst + (size_t)i * Wo;
            if (ii < 0 || ii >= H) {
                memset(d, 0, sizeof(float) * Wo);
                continue;
            }
            const float *xr = xc + (size_t)ii * W;
            const int off = v * p->dil - p->pad;
            if (p->stride == 1) {
                /* the valid j satisfy 0 <= j + off < W */
                int j0 = off < 0 ? -off : 0;
                int j1 = W - off < Wo ? W - off : Wo;
                if (j1 < j0) j1 = j0;
                if (j0 > Wo) j0 = j1 = Wo;
                memset(d, 0, sizeof(float) * j0);
                if (j1 > j0) memcpy(d + j0, xr + j0 + off, sizeof(float) * (j1 - j0));
                memset(d + j1, 0, sizeof(float) * (Wo - j1));
            } else {
                for (int j = 0; j < Wo; j++) {
                    const int jj = j * p->stride + off;
                    d[j] = (jj >= 0 && jj < W) ? xr[jj] : 0.0f;
                }
            }
        }
    }
}

void dcb_conv2d_im2col(const dcb_conv2d_p *p, int N, int H, int W, const float *x,
                       const float *w, const float *b, float *y, void *ws, int threads,
                       dcb_profile *prof) {
    const int Ho = dcb_conv_out(H, p->kh, p->stride, p->pad, p->dil);
    const int Wo = dcb_conv_out(W, p->kw, p->stride, p->pad, p->dil);
    const int cig = p->cin / p->groups, cog = p->cout / p->groups;
    const int K = cig * p->kh * p->kw, P = Ho * Wo;
    const int pw = is_pointwise(p);
    float *col = ws;
    dcb_blas_threads_for(threads);
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * p->cin * H * W;
        float *yn = y + (size_t)n * p->cout * P;
        for (int g = 0; g < p->groups; g++) {
            const float *xg = xn + (size_t)g * cig * H * W;
            const float *B = xg;
            if (!pw) {
                double t0 = dcb_now();
                im2col(p, H, W, Ho, Wo, xg, cig, col, threads);
                DCB_PHASE_ADD(prof, DCB_PHASE_TRANSFORM, t0);
                B = col;
            }
            double t0 = dcb_now();
            float *yg = yn + (size_t)g * cog * P;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cog, P, K, 1.0f,
                        w + (size_t)g * cog * K, K, B, P, 0.0f, yg, P);
            DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
        }
        if (b) {
            double t0 = dcb_now();
            for (int o = 0; o < p->cout; o++) {
                float *yo = yn + (size_t)o * P;
                for (int k = 0; k < P; k++) yo[k] += b[o];
            }
            DCB_PHASE_ADD(prof, DCB_PHASE_COMBINE, t0);
        }
    }
}

/* ------------------------------------------------------- the engine */
static size_t im2col_engine_ws(const dcb_conv2d_p *p, const void *state, int N, int H, int W, int threads) {
    return dcb_conv2d_im2col_ws(p, N, H, W, threads);
}

static void im2col_engine_run(const dcb_conv2d_p *p, const void *state, int N, int H, int W, const float *x,
                              const float *w, const float *b, float *y, void *ws, int threads, dcb_profile *prof) {
    dcb_conv2d_im2col(p, N, H, W, x, w, b, y, ws, threads, prof);
}

const dcb_engine_desc dcb_engine_im2col = {
    .name = "im2col", .doc = "im2col + CBLAS sgemm per image and group",
    /* OpenBLAS's AVX-512 sgemm (SkylakeX kernels) sums a K = 1666 row to
     * 1.8e-6 where its Haswell kernels give 6e-7 (test_conformance): room for
     * the kernel OpenBLAS picks on the machine at hand. */
    .tol = 5e-6,
    .workspace = im2col_engine_ws, .run = im2col_engine_run,
    .dyn_workspace = dcb_conv2d_im2col_ws, .dyn_run = dcb_conv2d_im2col,
};
