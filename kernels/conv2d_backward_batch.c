/* conv2d backward "batch": im2col/col2im + CBLAS sgemm over blocks of m
 * images (m from the shape: the block's column matrix about half of L2),
 * so that 7x7 maps still give GEMMs thousands of columns long while the
 * column matrix never leaves the cache. Per block and group, with
 * cols = m*P and dy' (cout_g, cols) the block's dy gathered by channel:
 *   weight: dW_g (cout_g, K) += dy' * col^T   (col recomputed here: an
 *           im2col from L2 is cheaper than keeping N*K*P floats from the
 *           forward and streaming them back from memory);
 *   data:   dcol (K, cols) = W_g^T * dy', then col2im per (image, channel)
 *           plane: each plane of dx is written by one thread, its taps added
 *           in a fixed order.
 * Threads take whole slots of consecutive blocks (single-threaded GEMMs);
 * each slot sums its dW in its own buffer and the slots are added in slot
 * order, so dW does not depend on which thread ran which slot. db: sums in
 * double. The training forward is the blocked im2col engine
 * (conv2d_im2col.c). Depthwise is declined (the gemm backward's direct
 * loops): its GEMMs would have one output row. */
#include "dcb_internal.h"

#include <cblas.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* dW partial sums kept apart (at least; more with more threads). */
#define DW_SLOTS 8

#define P(op) ((const dcb_conv2d_p *)(op)->hp)

static int is_pointwise(const dcb_conv2d_p *p) {
    return p->kh == 1 && p->kw == 1 && p->stride == 1 && p->pad == 0;
}

static size_t floats_up(size_t n) { return dcb_align_up(n * sizeof(float)) / sizeof(float); }

typedef struct bgeom {
    int H, W, Ho, Wo, cig, cog, K, P, m, nblk, nslot, workers, nocol;
    size_t col_f, dy_f, dw_f; /* col and dy' per worker; dW per slot */
} bgeom;

static bgeom geom_of(const dcb_conv2d_p *p, int N, int H, int W, int threads) {
    bgeom g;
    g.H = H;
    g.W = W;
    g.Ho = dcb_conv_out(H, p->kh, p->stride, p->pad, p->dil);
    g.Wo = dcb_conv_out(W, p->kw, p->stride, p->pad, p->dil);
    g.cig = p->cin / p->groups;
    g.cog = p->cout / p->groups;
    g.K = g.cig * p->kh * p->kw;
    g.P = g.Ho * g.Wo;
    g.m = dcb_conv2d_block_images(p, N, H, W);
    g.nblk = (N + g.m - 1) / g.m;
    g.nslot = threads > DW_SLOTS ? threads : DW_SLOTS;
    if (g.nslot > g.nblk) g.nslot = g.nblk;
    g.workers = threads > 1 && g.nslot >= 2 ? (threads < g.nslot ? threads : g.nslot) : 1;
    /* one image of a pointwise conv: x, dy and dx are the GEMMs' matrices */
    g.nocol = is_pointwise(p) && g.m == 1;
    const size_t cols = (size_t)g.m * g.P;
    g.col_f = g.nocol ? 0 : floats_up((size_t)g.K * cols);
    g.dy_f = g.m == 1 ? 0 : floats_up((size_t)g.cog * cols);
    g.dw_f = floats_up((size_t)p->cout * g.K);
    return g;
}

/* dxc (H x W) = the sum of the scatters of the kh*kw rows at src + r*ld.
 * src is scratch: a stride-1 conv whose rows keep their length (W' = W)
 * zeroes the padding columns of a row of src and adds it as one run. */
static void col2im_plane(const dcb_conv2d_p *p, const bgeom *g, float *src, size_t ld, float *dxc) {
    const int H = g->H, W = g->W, Ho = g->Ho, Wo = g->Wo;
    memset(dxc, 0, sizeof(float) * (size_t)H * W);
    for (int u = 0; u < p->kh; u++)
        for (int v = 0; v < p->kw; v++) {
            float *s = src + (size_t)(u * p->kw + v) * ld;
            const int offh = u * p->dil - p->pad, off = v * p->dil - p->pad;
            int i0, i1, j0, j1;
            dcb_conv2d_valid_range(H, Ho, p->stride, offh, &i0, &i1);
            dcb_conv2d_valid_range(W, Wo, p->stride, off, &j0, &j1);
            if (i0 >= i1 || j0 >= j1) continue;
            if (p->stride == 1 && Wo == W) {
                for (int j = 0; j < j0; j++)
                    for (int i = i0 + 1; i < i1; i++) s[(size_t)i * Wo + j] = 0.0f;
                for (int j = j1; j < Wo; j++)
                    for (int i = i0; i < i1 - 1; i++) s[(size_t)i * Wo + j] = 0.0f;
                float *xr = dxc + (size_t)(i0 + offh) * W + off + j0;
                const float *s0 = s + (size_t)i0 * Wo + j0;
                const int len = (i1 - 1 - i0) * Wo + j1 - j0;
                for (int k = 0; k < len; k++) xr[k] += s0[k];
                continue;
            }
            for (int i = i0; i < i1; i++) {
                float *xr = dxc + (size_t)(i * p->stride + offh) * W + off;
                const float *sr = s + (size_t)i * Wo;
                if (p->stride == 1)
                    for (int j = j0; j < j1; j++) xr[j] += sr[j];
                else
                    for (int j = j0; j < j1; j++) xr[j * p->stride] += sr[j];
            }
        }
}

/* Block n0 .. n0+m-1, every group: dW into dws (beta 0 when first), dx. */
static void bwd_block(const dcb_conv2d_p *p, const bgeom *g, int n0, int m, const float *x, const float *dy,
                      const float *w, float *dx, float *dws, int first, float *col, float *dyb, int threads) {
    const size_t in_sz = (size_t)p->cin * g->H * g->W, out_sz = (size_t)p->cout * g->P, cols = (size_t)m * g->P;
    const size_t plane = (size_t)g->H * g->W, kk = (size_t)p->kh * p->kw;
    for (int gr = 0; gr < p->groups; gr++) {
        const float *A = dy + n0 * out_sz + (size_t)gr * g->cog * g->P;
        if (m > 1) {
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads) if (threads > 1)
            for (int i = 0; i < m; i++)
                for (int o = 0; o < g->cog; o++)
                    memcpy(dyb + (size_t)o * cols + (size_t)i * g->P, A + i * out_sz + (size_t)o * g->P,
                           sizeof(float) * g->P);
            A = dyb;
        }
        const float *xg = x + n0 * in_sz + (size_t)gr * g->cig * plane;
        const float *wg = w + (size_t)gr * g->cog * g->K;
        if (dws) {
            const float *B = xg;
            if (!g->nocol) {
                dcb_conv2d_im2col_block(p, g->H, g->W, xg, in_sz, m, g->cig, col, threads);
                B = col;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->cog, g->K, (int)cols, 1.0f, A, (int)cols, B,
                        (int)cols, first ? 0.0f : 1.0f, dws + (size_t)gr * g->cog * g->K, g->K);
        }
        if (!dx) continue;
        float *dxg = dx + n0 * in_sz + (size_t)gr * g->cig * plane;
        if (g->nocol) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g->K, g->P, g->cog, 1.0f, wg, g->K, A, g->P, 0.0f,
                        dxg, g->P);
            continue;
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g->K, (int)cols, g->cog, 1.0f, wg, g->K, A, (int)cols,
                    0.0f, col, (int)cols);
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads) if (threads > 1 && m * g->cig > 1)
        for (int i = 0; i < m; i++)
            for (int c = 0; c < g->cig; c++)
                col2im_plane(p, g, col + (size_t)c * kk * cols + (size_t)i * g->P, cols,
                             dxg + i * in_sz + (size_t)c * plane);
    }
}

/* Blocks of slot s, in order; its dW into dws. */
static void bwd_slot(const dcb_conv2d_p *p, const bgeom *g, int N, int s, const float *x, const float *dy,
                     const float *w, float *dx, float *dws, float *col, float *dyb, int threads) {
    const int k0 = (int)((long)s * g->nblk / g->nslot), k1 = (int)((long)(s + 1) * g->nblk / g->nslot);
    for (int k = k0; k < k1; k++) {
        const int n0 = k * g->m, m = N - n0 < g->m ? N - n0 : g->m;
        bwd_block(p, g, n0, m, x, dy, w, dx, dws, k == k0, col, dyb, threads);
    }
}

static dcb_status batch_run(dcb_op *op, const dcb_train_ctx *c) {
    const dcb_conv2d_p *p = P(op);
    const int N = (int)c->x->shape[0], H = (int)c->x->shape[2], W = (int)c->x->shape[3];
    const int threads = op->threads > 0 ? op->threads : 1;
    float *dw = dcb_dw(op, c, "weight"), *db = dcb_dw(op, c, "bias");
    float *dx = c->dx ? c->dx->data : NULL;
    const bgeom g = geom_of(p, N, H, W, threads);
    if (db) {
        const size_t out_sz = (size_t)p->cout * g.P;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
        for (int o = 0; o < p->cout; o++) {
            double acc = 0;
            for (int n = 0; n < N; n++) acc += dcb_sum_f64(c->dy->data + n * out_sz + (size_t)o * g.P, (size_t)g.P);
            db[o] = (float)acc;
        }
    }
    if (!dw && !dx) return DCB_OK;
    /* per worker col + dy'; slots 1.. of dW (slot 0 is dw itself) */
    const size_t slab = g.col_f + g.dy_f, extra = dw ? (size_t)(g.nslot - 1) * g.dw_f : 0;
    const size_t bytes = sizeof(float) * (slab * (size_t)g.workers + extra);
    float *ws = bytes ? dcb_aligned_alloc(bytes) : NULL;
    if (bytes && !ws) return dcb_fail(DCB_OUT_OF_MEMORY, "conv2d/batch backward: out of memory (%zu bytes)", bytes);
    float *slots = ws ? ws + slab * (size_t)g.workers : NULL;
    const float *x = c->x->data, *dy = c->dy->data, *w = dcb_w(op, "weight")->data;
    if (g.workers == 1) {
        dcb_blas_threads_for(threads);
        for (int s = 0; s < g.nslot; s++)
            bwd_slot(p, &g, N, s, x, dy, w, dx, dw ? (s ? slots + (size_t)(s - 1) * g.dw_f : dw) : NULL, ws,
                     g.dy_f ? ws + g.col_f : NULL, threads);
    } else {
        dcb_blas_threads_for(1);
#pragma omp parallel num_threads(g.workers)
        {
            int tid = 0;
#ifdef _OPENMP
            tid = omp_get_thread_num();
#endif
            float *col = slab ? ws + (size_t)tid * slab : NULL, *dyb = g.dy_f ? col + g.col_f : NULL;
#pragma omp for schedule(dynamic, 1)
            for (int s = 0; s < g.nslot; s++)
                bwd_slot(p, &g, N, s, x, dy, w, dx, dw ? (s ? slots + (size_t)(s - 1) * g.dw_f : dw) : NULL, col,
                         dyb, 1);
        }
        dcb_blas_threads_for(threads);
    }
    if (dw && g.nslot > 1) {
        const long n = (long)p->cout * g.K;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && n > 4096)
        for (long i = 0; i < n; i++) {
            float a = dw[i];
            for (int s = 1; s < g.nslot; s++) a += slots[(size_t)(s - 1) * g.dw_f + i];
            dw[i] = a;
        }
    }
    dcb_aligned_free(ws);
    return DCB_OK;
}

static dcb_status batch_check(const dcb_op *op) {
    const dcb_conv2d_p *p = P(op);
    if (p->groups > 1 && p->groups == p->cin)
        return dcb_fail(DCB_UNSUPPORTED_PARAM,
                        "conv2d/batch backward: depthwise (groups = cin = %d) is the gemm backward's direct loops",
                        p->cin);
    return DCB_OK;
}

/* The blocked im2col engine, whatever the op's forward implementation. */
static dcb_status batch_forward(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void **saved) {
    const dcb_conv2d_p *p = P(op);
    const int N = (int)x->shape[0], H = (int)x->shape[2], W = (int)x->shape[3];
    const int threads = op->threads > 0 ? op->threads : 1;
    *saved = NULL;
    const size_t bytes = dcb_conv2d_im2col_ws(p, N, H, W, threads);
    void *ws = bytes ? dcb_aligned_alloc(bytes) : NULL;
    if (bytes && !ws) return dcb_fail(DCB_OUT_OF_MEMORY, "conv2d/batch forward: out of memory (%zu bytes)", bytes);
    const dcb_tensor *b = dcb_w(op, "bias");
    dcb_conv2d_im2col(p, N, H, W, x->data, dcb_w(op, "weight")->data, b ? b->data : NULL, y->data, ws, threads,
                      NULL);
    dcb_aligned_free(ws);
    return DCB_OK;
}

/* Float sums: cout_g terms (times up to kh*kw taps in col2im) for dx; for
 * dw N*H'*W' in at most 8 (or threads) partial sums. */
const dcb_bwd_vt dcb_conv2d_bwd_batch = {
    .name = "batch",
    .doc = "im2col/col2im + CBLAS sgemm over cache-sized blocks of images, threads over blocks; "
           "its own blocked training forward; depthwise: declined (gemm)",
    .tol = 1e-5, .check = batch_check, .forward = batch_forward, .run = batch_run};
