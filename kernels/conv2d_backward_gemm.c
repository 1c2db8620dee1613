/* conv2d backward with im2col / col2im and CBLAS sgemm, per group:
 *   data:   dcol (K, P) = W_g^T (K, cout_g) * dy_g (cout_g, P), then col2im
 *           (a 1x1 stride-1 unpadded conv writes dx_g directly);
 *   weight: dW_g (cout_g, K) += dy_g (cout_g, P') * col^T (P', K), over
 *           batches of images (P' = images * P, so that small feature maps
 *           still give the GEMM a long reduction); beta = 1 after the first
 *           batch, so the sum's order does not depend on the thread count.
 * K = cin_g*kh*kw, P = H'*W'. Depthwise (groups == cin) runs direct loops:
 * its GEMMs would have K = kh*kw and one output row.
 * Every float of dx is written by one thread; col2im adds a channel's rows
 * in a fixed order. */
#include "dcb_internal.h"

#include <cblas.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int is_pointwise(const dcb_conv2d_p *p) {
    return p->kh == 1 && p->kw == 1 && p->stride == 1 && p->pad == 0;
}

static int is_depthwise(const dcb_conv2d_p *p) { return p->groups > 1 && p->groups == p->cin; }

/* Columns of the weight GEMM's reduction to aim for per batch of images. */
#define WGT_COLS 1024

typedef struct geom {
    int Ho, Wo, cig, cog, K, P;
} geom;

static geom geom_of(const dcb_conv2d_p *p, int H, int W) {
    geom g;
    g.Ho = dcb_conv_out(H, p->kh, p->stride, p->pad, p->dil);
    g.Wo = dcb_conv_out(W, p->kw, p->stride, p->pad, p->dil);
    g.cig = p->cin / p->groups;
    g.cog = p->cout / p->groups;
    g.K = g.cig * p->kh * p->kw;
    g.P = g.Ho * g.Wo;
    return g;
}

/* Images per weight-GEMM batch: a function of the shape only. */
static int wgt_batch(const geom *g, int N) {
    int nb = g->P >= WGT_COLS ? 1 : WGT_COLS / g->P;
    if (nb > N) nb = N;
    return nb < 1 ? 1 : nb;
}

/* bwd_data runs its images on separate threads (BLAS single-threaded inside)
 * when there are enough of them, else one image at a time on BLAS threads. */
static int data_workers(int N, int threads) { return threads > 1 && N >= threads ? threads : 1; }

static size_t floats_up(size_t n) { return dcb_align_up(n * sizeof(float)) / sizeof(float); }

size_t dcb_conv2d_bwd_gemm_ws(const dcb_conv2d_p *p, int N, int H, int W, int threads) {
    if (is_depthwise(p) || N < 1) return 0;
    const geom g = geom_of(p, H, W);
    const size_t kp = (size_t)g.K * g.P;
    const size_t data = is_pointwise(p) ? 0 : floats_up(kp) * (size_t)data_workers(N, threads);
    const int nb = wgt_batch(&g, N);
    const size_t wgt = (is_pointwise(p) && nb == 1) ? 0 : floats_up(kp * nb) + floats_up((size_t)g.cog * g.P * nb);
    return sizeof(float) * (data > wgt ? data : wgt);
}

/* Row (u, v) of the column matrix of channel plane xc, into dst (Ho x Wo). */
void dcb_conv2d_im2col_row(const dcb_conv2d_p *p, int H, int W, int Ho, int Wo, const float *xc, int u, int v,
                           float *dst) {
    const int off = v * p->dil - p->pad;
    int j0, j1;
    dcb_conv2d_valid_range(W, Wo, p->stride, off, &j0, &j1);
    for (int i = 0; i < Ho; i++) {
        const int ii = i * p->stride + u * p->dil - p->pad;
        float *d = dst + (size_t)i * Wo;
        if (ii < 0 || ii >= H) {
            memset(d, 0, sizeof(float) * Wo);
            continue;
        }
        const float *xr = xc + (size_t)ii * W;
        memset(d, 0, sizeof(float) * j0);
        if (p->stride == 1) {
            if (j1 > j0) memcpy(d + j0, xr + j0 + off, sizeof(float) * (j1 - j0));
        }
        else
            for (int j = j0; j < j1; j++) d[j] = xr[j * p->stride + off];
        memset(d + j1, 0, sizeof(float) * (Wo - j1));
    }
}

/* dxc += the scatter of row (u, v) src (Ho x Wo) of a column matrix. */
void dcb_conv2d_col2im_row(const dcb_conv2d_p *p, int H, int W, int Ho, int Wo, const float *src, int u, int v,
                           float *dxc) {
    const int off = v * p->dil - p->pad;
    int j0, j1;
    dcb_conv2d_valid_range(W, Wo, p->stride, off, &j0, &j1);
    for (int i = 0; i < Ho; i++) {
        const int ii = i * p->stride + u * p->dil - p->pad;
        if (ii < 0 || ii >= H) continue;
        float *xr = dxc + (size_t)ii * W;
        const float *s = src + (size_t)i * Wo;
        if (p->stride == 1)
            for (int j = j0; j < j1; j++) xr[j + off] += s[j];
        else
            for (int j = j0; j < j1; j++) xr[j * p->stride + off] += s[j];
    }
}

/* ------------------------------------------------------------ depthwise */
static void dw_data(const dcb_conv2d_p *p, int N, int H, int W, const geom *g, const float *dy, const float *w,
                    float *dx, int threads) {
    const int kk = p->kh * p->kw;
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < p->cin; c++) {
            float *dxc = dx + ((size_t)n * p->cin + c) * H * W;
            memset(dxc, 0, sizeof(float) * H * W);
            for (int ol = 0; ol < g->cog; ol++) {
                const int o = c * g->cog + ol;
                const float *dyo = dy + ((size_t)n * p->cout + o) * g->P;
                for (int u = 0; u < p->kh; u++)
                    for (int v = 0; v < p->kw; v++) {
                        const float wv = w[(size_t)o * kk + u * p->kw + v];
                        const int off = v * p->dil - p->pad;
                        int j0, j1;
                        dcb_conv2d_valid_range(W, g->Wo, p->stride, off, &j0, &j1);
                        for (int i = 0; i < g->Ho; i++) {
                            const int ii = i * p->stride + u * p->dil - p->pad;
                            if (ii < 0 || ii >= H) continue;
                            float *xr = dxc + (size_t)ii * W;
                            const float *s = dyo + (size_t)i * g->Wo;
                            if (p->stride == 1)
                                for (int j = j0; j < j1; j++) xr[j + off] += wv * s[j];
                            else
                                for (int j = j0; j < j1; j++) xr[j * p->stride + off] += wv * s[j];
                        }
                    }
            }
        }
}

/* Per output channel and tap: the products of an image go into a float
 * vector over the columns (vectorisable), summed in double per image. */
#define DW_CHUNK 256
static void dw_weight(const dcb_conv2d_p *p, int N, int H, int W, const geom *g, const float *x, const float *dy,
                      float *dw, int threads) {
    const int kk = p->kh * p->kw;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int o = 0; o < p->cout; o++) {
        const int c = o / g->cog;
        float part[DW_CHUNK];
        for (int u = 0; u < p->kh; u++)
            for (int v = 0; v < p->kw; v++) {
                const int off = v * p->dil - p->pad;
                int j0, j1;
                dcb_conv2d_valid_range(W, g->Wo, p->stride, off, &j0, &j1);
                double acc = 0;
                for (int n = 0; n < N; n++) {
                    const float *xc = x + ((size_t)n * p->cin + c) * H * W;
                    const float *dyo = dy + ((size_t)n * p->cout + o) * g->P;
                    for (int jb = j0; jb < j1; jb += DW_CHUNK) {
                        const int je = j1 - jb < DW_CHUNK ? j1 : jb + DW_CHUNK, len = je - jb;
                        for (int j = 0; j < len; j++) part[j] = 0;
                        for (int i = 0; i < g->Ho; i++) {
                            const int ii = i * p->stride + u * p->dil - p->pad;
                            if (ii < 0 || ii >= H) continue;
                            const float *xr = xc + (size_t)ii * W + (size_t)(jb * p->stride + off);
                            const float *s = dyo + (size_t)i * g->Wo + jb;
                            if (p->stride == 1)
                                for (int j = 0; j < len; j++) part[j] += xr[j] * s[j];
                            else
                                for (int j = 0; j < len; j++) part[j] += xr[j * p->stride] * s[j];
                        }
                        float r = 0;
                        for (int j = 0; j < len; j++) r += part[j];
                        acc += r;
                    }
                }
                dw[(size_t)o * kk + u * p->kw + v] = (float)acc;
            }
    }
}

/* ------------------------------------------------------------------ data */
/* Image n, every group, into dx; col (K x P) is this worker's. */
static void data_image(const dcb_conv2d_p *p, int H, int W, const geom *g, const float *dyn, const float *w,
                       float *dxn, float *col, int threads) {
    const int pw = is_pointwise(p), kk = p->kh * p->kw;
    for (int gr = 0; gr < p->groups; gr++) {
        const float *dyg = dyn + (size_t)gr * g->cog * g->P;
        const float *wg = w + (size_t)gr * g->cog * g->K;
        float *dxg = dxn + (size_t)gr * g->cig * H * W;
        if (pw) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g->K, g->P, g->cog, 1.0f, wg, g->K, dyg, g->P,
                        0.0f, dxg, g->P);
            continue;
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g->K, g->P, g->cog, 1.0f, wg, g->K, dyg, g->P, 0.0f,
                    col, g->P);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && g->cig > 1)
        for (int c = 0; c < g->cig; c++) {
            float *dxc = dxg + (size_t)c * H * W;
            memset(dxc, 0, sizeof(float) * H * W);
            for (int r = 0; r < kk; r++)
                dcb_conv2d_col2im_row(p, H, W, g->Ho, g->Wo, col + ((size_t)c * kk + r) * g->P, r / p->kw, r % p->kw, dxc);
        }
    }
}

void dcb_conv2d_bwd_data_gemm(const dcb_conv2d_p *p, int N, int H, int W, const float *dy, const float *w,
                              float *dx, void *ws, int threads) {
    const geom g = geom_of(p, H, W);
    if (is_depthwise(p)) {
        dw_data(p, N, H, W, &g, dy, w, dx, threads);
        return;
    }
    const size_t in_sz = (size_t)p->cin * H * W, out_sz = (size_t)p->cout * g.P;
    const int nwk = data_workers(N, threads);
    if (nwk == 1) {
        dcb_blas_threads_for(threads);
        for (int n = 0; n < N; n++)
            data_image(p, H, W, &g, dy + n * out_sz, w, dx + n * in_sz, ws, threads);
        return;
    }
    const size_t slab = floats_up((size_t)g.K * g.P);
    dcb_blas_threads_for(1);
#pragma omp parallel num_threads(nwk)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *col = ws ? (float *)ws + (size_t)tid * slab : NULL;
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) data_image(p, H, W, &g, dy + n * out_sz, w, dx + n * in_sz, col, 1);
    }
    dcb_blas_threads_for(threads);
}

/* ---------------------------------------------------------------- weight */
void dcb_conv2d_bwd_weight_gemm(const dcb_conv2d_p *p, int N, int H, int W, const float *x, const float *dy,
                                float *dw, float *db, void *ws, int threads) {
    const geom g = geom_of(p, H, W);
    const size_t in_sz = (size_t)p->cin * H * W, out_sz = (size_t)p->cout * g.P;
    if (db)
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int o = 0; o < p->cout; o++) {
            double acc = 0;
            for (int n = 0; n < N; n++) acc += dcb_sum_f64(dy + n * out_sz + (size_t)o * g.P, (size_t)g.P);
            db[o] = (float)acc;
        }
    if (!dw) return;
    if (N < 1) {
        memset(dw, 0, sizeof(float) * (size_t)p->cout * g.K);
        return;
    }
    if (is_depthwise(p)) {
        dw_weight(p, N, H, W, &g, x, dy, dw, threads);
        return;
    }
    const int nb = wgt_batch(&g, N), pw = is_pointwise(p), kk = p->kh * p->kw;
    float *col = ws, *dyb = col + floats_up((size_t)g.K * g.P * nb);
    dcb_blas_threads_for(threads);
    for (int gr = 0; gr < p->groups; gr++) {
        float *dwg = dw + (size_t)gr * g.cog * g.K;
        for (int n0 = 0; n0 < N; n0 += nb) {
            const int m = N - n0 < nb ? N - n0 : nb;
            const float *A, *B;
            int lda, ldb;
            if (nb == 1) { /* one image: dy_g is already a (cout_g, P) matrix */
                A = dy + n0 * out_sz + (size_t)gr * g.cog * g.P;
                lda = ldb = g.P;
                B = pw ? x + n0 * in_sz + (size_t)gr * g.cig * H * W : col;
                if (!pw) {
                    const float *xg = x + n0 * in_sz + (size_t)gr * g.cig * H * W;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && g.K > 8)
                    for (int r = 0; r < g.K; r++)
                        dcb_conv2d_im2col_row(p, H, W, g.Ho, g.Wo, xg + (size_t)(r / kk) * H * W, (r % kk) / p->kw,
                                   r % p->kw, col + (size_t)r * g.P);
                }
            } else {
                /* rows of length m*P: image b's part at b*P */
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads) if (threads > 1)
                for (int b = 0; b < m; b++)
                    for (int r = 0; r < g.K; r++) {
                        const float *xg = x + (n0 + b) * in_sz + (size_t)gr * g.cig * H * W;
                        dcb_conv2d_im2col_row(p, H, W, g.Ho, g.Wo, xg + (size_t)(r / kk) * H * W, (r % kk) / p->kw,
                                   r % p->kw, col + (size_t)r * m * g.P + (size_t)b * g.P);
                    }
                for (int b = 0; b < m; b++)
                    for (int o = 0; o < g.cog; o++)
                        memcpy(dyb + (size_t)o * m * g.P + (size_t)b * g.P,
                               dy + (n0 + b) * out_sz + ((size_t)gr * g.cog + o) * g.P, sizeof(float) * g.P);
                A = dyb;
                lda = ldb = m * g.P;
                B = col;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g.cog, g.K, m * g.P, 1.0f, A, lda, B, ldb,
                        n0 ? 1.0f : 0.0f, dwg, g.K);
        }
    }
}
