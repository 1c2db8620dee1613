/* condconv / dyconv backward "gemm". With W_n the mixed kernel of sample n
 * (one GEMM r . weight for the batch, as the forward mixes it), per sample
 * and group, K = cin_g*kh*kw, P' = H'*W':
 *   dW_n,g (cout_g, K) = dy_n,g (cout_g, P') . col(x_n,g)^T (P', K)
 *   dcol (K, P')      = W_n,g^T (K, cout_g) . dy_n,g, then col2im into dx_n
 * (a 1x1 stride-1 unpadded conv uses x and dx as the matrices). The samples'
 * dW_n are kept as one (N, P) matrix, so that the bank's gradient and the
 * routing gradient are one GEMM each over the whole batch (or chunk):
 *   dweight (E, P) = r^T (E, N) . dW (N, P),   dr (N, E) = dW . weight^T
 * (+ the bias terms with db (N, cout)), then the router's backward in double.
 * With threads > 1 and at least as many samples, samples run on separate
 * threads, each with its own col/dcol and BLAS single-threaded inside; else
 * one sample at a time on BLAS threads. Every output float is written by one
 * thread and the batch-wide sums are the GEMMs' (not split along the batch),
 * so the result does not depend on how samples fall to threads (big layers
 * go in chunks of samples, summed into dweight in chunk order). The routing
 * and mixed kernels are recomputed from x (N*E*P MACs, a few % of the work). */
#include "expert_backward.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* What dW and Wm of one chunk of samples may take each (about). */
#ifndef XC_CHUNK_BYTES
#define XC_CHUNK_BYTES ((size_t)64 << 20)
#endif

typedef struct geo {
    int H, W, Ho, Wo, cig, cog, K, pw;
    size_t HW, PO, P;
} geo;

/* Rows (c, u, v) of the column matrix of nc channels of one image. */
static void im2col(const dcb_conv2d_p *p, const geo *G, const float *x, int nc, float *col) {
    const int kk = p->kh * p->kw;
    for (int r = 0; r < nc * kk; r++)
        dcb_conv2d_im2col_row(p, G->H, G->W, G->Ho, G->Wo, x + (size_t)(r / kk) * G->HW, (r % kk) / p->kw, r % p->kw,
                              col + (size_t)r * G->Ho * G->Wo);
}

/* dx (nc, H, W) += the column matrix dcol folded back, rows in order. */
static void col2im_add(const dcb_conv2d_p *p, const geo *G, const float *dcol, int nc, float *dx) {
    const int kk = p->kh * p->kw;
    for (int r = 0; r < nc * kk; r++)
        dcb_conv2d_col2im_row(p, G->H, G->W, G->Ho, G->Wo, dcol + (size_t)r * G->Ho * G->Wo, (r % kk) / p->kw,
                              r % p->kw, dx + (size_t)(r / kk) * G->HW);
}

/* One sample: dWn (cout, cin_g, kh, kw) when wanted, dxn (cin, H, W) (the
 * conv part) when wanted; col and dcol of K*P' floats each. */
static void sample_bwd(const dcb_conv2d_p *p, const geo *G, const float *xn, const float *dyn, const float *Wn,
                       float *dWn, float *dxn, float *col, float *dcol) {
    const int K = G->K, PO = (int)G->PO, cog = G->cog;
    if (dxn && !G->pw) memset(dxn, 0, sizeof(float) * (size_t)p->cin * G->HW);
    for (int g = 0; g < p->groups; g++) {
        const float *xg = xn + (size_t)g * G->cig * G->HW, *dyg = dyn + (size_t)g * cog * PO;
        if (dWn) {
            const float *B = xg;
            if (!G->pw) {
                im2col(p, G, xg, G->cig, col);
                B = col;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, cog, K, PO, 1.0f, dyg, PO, B, PO, 0.0f,
                        dWn + (size_t)g * cog * K, K);
        }
        if (dxn) {
            float *dxg = dxn + (size_t)g * G->cig * G->HW;
            const float *Wg = Wn + (size_t)g * cog * K;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, PO, cog, 1.0f, Wg, K, dyg, PO, 0.0f,
                        G->pw ? dxg : dcol, PO);
            if (!G->pw) col2im_add(p, G, dcol, G->cig, dxg);
        }
    }
}

static dcb_status gemm_run(dcb_op *op, const dcb_train_ctx *c) {
    const xc_hp *h = XC_HP(op);
    const dcb_conv2d_p *p = &h->c;
    const int N = (int)c->x->shape[0], E = h->E, cin = p->cin, cout = p->cout;
    geo G;
    G.H = (int)c->x->shape[2], G.W = (int)c->x->shape[3];
    G.Ho = (int)c->dy->shape[2], G.Wo = (int)c->dy->shape[3];
    G.cig = cin / p->groups, G.cog = cout / p->groups;
    G.K = G.cig * p->kh * p->kw;
    G.pw = p->kh == 1 && p->kw == 1 && p->stride == 1 && p->pad == 0;
    G.HW = (size_t)G.H * G.W, G.PO = (size_t)G.Ho * G.Wo, G.P = dcb_xc_kernel_floats(p);
    const size_t P = G.P, xs = (size_t)cin * G.HW, ys = (size_t)cout * G.PO;
    const float *x = c->x->data, *dy = c->dy->data;
    const float *wt = dcb_w(op, "weight")->data, *bs = p->bias ? dcb_w(op, "bias")->data : NULL;
    float *dx = c->dx ? c->dx->data : NULL;
    float *dweight = dcb_dw(op, c, "weight"), *dbias = p->bias ? dcb_dw(op, c, "bias") : NULL;
    const int need_dr = dx || dcb_xc_router_wanted(op, c);
    const int need_dW = need_dr || dweight;
    if (!need_dW && !dbias) return DCB_OK;

    const int T = op->threads > 1 && N >= op->threads ? op->threads : 1;
    /* Samples in chunks of B, so that dW and Wm (B, P) each stay near
     * XC_CHUNK_BYTES on big layers (a chunk holds at least T samples). */
    int B = (int)(XC_CHUNK_BYTES / (sizeof(float) * P));
    B = B < T ? T : B;
    B = B < 1 ? 1 : B > N ? N : B;
    const size_t colb = G.pw ? 0 : dcb_xc_rnd((size_t)G.K * G.PO);
    const size_t scr = dcb_xc_route_scratch(h, N), rb = dcb_xc_rnd((size_t)N * E);
    const size_t wmb = dx ? dcb_xc_rnd((size_t)B * P) : 0, dwb = need_dW ? dcb_xc_rnd((size_t)B * P) : 0;
    const size_t dbb = bs ? dcb_xc_rnd((size_t)N * cout) : 0;
    char *buf = dcb_aligned_alloc(scr + 2 * rb + wmb + dwb + dbb + (size_t)T * 2 * colb);
    const size_t nd = (size_t)N * (2 * cin + (h->dy ? h->hidden : 0) + 2 * E);
    double *dbuf = need_dr ? malloc(sizeof(double) * nd) : NULL;
    if (!buf || (need_dr && !dbuf)) {
        dcb_aligned_free(buf);
        free(dbuf);
        return dcb_fail(DCB_OUT_OF_MEMORY, "%s backward: out of memory", h->name);
    }
    char *b = buf;
    float *scratch = (float *)b;
    b += scr;
    float *r = (float *)b, *drf = (float *)(b + rb);
    b += 2 * rb;
    float *Wm = dx ? (float *)b : NULL;
    b += wmb;
    float *dW = need_dW ? (float *)b : NULL;
    b += dwb;
    float *dB = bs ? (float *)b : NULL;
    b += dbb;
    float *cols = (float *)b;

    dcb_xc_route(op, x, N, G.HW, scratch, r);
    if (dB)
        for (size_t i = 0; i < (size_t)N * cout; i++) dB[i] = (float)dcb_sum_f64(dy + i * G.PO, G.PO);
    for (int n0 = 0; need_dW && n0 < N; n0 += B) {
        const int nb = N - n0 < B ? N - n0 : B;
        const float *rc = r + (size_t)n0 * E;
        if (dx) dcb_xc_mix_kernels(op, rc, nb, Wm, NULL);
        if (T > 1) {
            dcb_blas_threads_for(1);
#pragma omp parallel num_threads(T)
            {
#ifdef _OPENMP
                const int t = omp_get_thread_num();
#else
                const int t = 0;
#endif
                float *col = (float *)((char *)cols + (size_t)t * 2 * colb), *dcol = (float *)((char *)col + colb);
#pragma omp for schedule(static)
                for (int k = 0; k < nb; k++) {
                    const size_t n = (size_t)n0 + k;
                    sample_bwd(p, &G, x + n * xs, dy + n * ys, dx ? Wm + k * P : NULL, dW + k * P,
                               dx ? dx + n * xs : NULL, col, dcol);
                }
            }
        } else {
            dcb_blas_threads_for(op->threads);
            for (int k = 0; k < nb; k++) {
                const size_t n = (size_t)n0 + k;
                sample_bwd(p, &G, x + n * xs, dy + n * ys, dx ? Wm + k * P : NULL, dW + k * P,
                           dx ? dx + n * xs : NULL, cols, (float *)((char *)cols + colb));
            }
        }
        dcb_blas_threads_for(op->threads);
        if (dweight)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, E, (int)P, nb, 1.0f, rc, E, dW, (int)P,
                        n0 ? 1.0f : 0.0f, dweight, (int)P);
        if (need_dr)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, E, (int)P, 1.0f, dW, (int)P, wt, (int)P, 0.0f,
                        drf + (size_t)n0 * E, E);
    }
    dcb_blas_threads_for(op->threads);
    if (dbias)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, E, cout, N, 1.0f, r, E, dB, cout, 0.0f, dbias, cout);
    dcb_status st = DCB_OK;
    if (need_dr) {
        if (bs) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, E, cout, 1.0f, dB, cout, bs, cout, 1.0f, drf, E);
        /* the router in double: g and hid are where dcb_xc_route left them */
        const size_t nh = h->dy ? (size_t)N * h->hidden : 0;
        double *g = dbuf, *dg = g + (size_t)N * cin, *hid = dg + (size_t)N * cin, *rd = hid + nh;
        double *drd = rd + (size_t)N * E;
        const float *hidf = (const float *)((const char *)scratch + dcb_xc_rnd((size_t)N * cin));
        for (size_t i = 0; i < (size_t)N * cin; i++) g[i] = scratch[i];
        for (size_t i = 0; i < nh; i++) hid[i] = hidf[i];
        for (size_t i = 0; i < (size_t)N * E; i++) rd[i] = r[i], drd[i] = drf[i];
        st = dcb_xc_router_backward(op, c, N, g, h->dy ? hid : NULL, rd, drd, dx ? dg : NULL);
        if (st == DCB_OK && dx)
            for (size_t i = 0; i < (size_t)N * cin; i++) {
                const float add = (float)(dg[i] / (double)G.HW);
                float *d = dx + i * G.HW;
                for (size_t k = 0; k < G.HW; k++) d[k] += add;
            }
    }
    free(dbuf);
    dcb_aligned_free(buf);
    return st;
}

const dcb_bwd_vt dcb_xc_bwd_gemm = {
    .name = "gemm",
    .doc = "im2col + sgemm per sample (OpenMP across samples), the bank and routing gradients as batch GEMMs",
    .tol = 2e-5,
    .run = gemm_run,
};
