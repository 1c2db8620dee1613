/* condconv / dyconv backward "batch": a training forward of its own that
 * keeps the routing for the backward, with every per-sample GEMM on one
 * thread of an OpenMP team.
 *
 * Forward: r (N, E) = the router (dcb_xc_route, whose gap and hidden stay in
 * the saved state), the mixed kernels Wm (N, P) = r . weight (one GEMM per
 * chunk of samples), then per sample and group, K = cin_g*kh*kw, P' = H'*W':
 *   col_n = im2col(x_n) (kept under XB_SAVE_BYTES), y_n,g = Wm_n,g . col_n,g
 * Backward, in two passes over the samples:
 *   1. dW_n,g (cout_g, K) = dy_n,g . col_n,g^T into a (chunk, P) matrix, then
 *      dweight += r^T . dW and dr = dW . weight^T (one GEMM each per chunk),
 *      the bias terms, then the router's backward in double -> dg;
 *   2. dx_n = dg_n / (H*W) (the gap path) + col2im(Wm_n,g^T . dy_n,g).
 * Stacking the experts as E*cout output channels (conv_then_combine's algebra)
 * makes the batch a few big GEMMs, but with E times the MACs; at E = 4 on the
 * 28x28 ResNet's shapes the per-sample GEMMs (16..64 x 144..576 x 49..784)
 * already run at the stacked GEMM's rate on one core, so stacking only loses.
 * Samples go to threads one at a time (dynamic: a thread that shares its
 * core takes fewer), BLAS single-threaded inside, one parallel region per
 * pass; the small GEMMs run on one thread (fewer joins, which on a shared
 * machine wait for descheduled threads). Every output float is written by
 * one thread and the batch sums are GEMMs over the chunk, summed in chunk
 * order, so results do not depend on the threads or the schedule. */
#include "expert_backward.h"

#include <cblas.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* The batch's column matrices are kept when they fit in this; else the
 * backward recomputes each sample's (in L2). Off by default: in the 28x28
 * ResNet keeping them (~70 MB of fresh memory per step over the six layers)
 * cost more in first-touch page faults than the second im2col does. */
#ifndef XB_SAVE_BYTES
#define XB_SAVE_BYTES ((size_t)0)
#endif
/* What Wm or dW of one chunk of samples may take (about). */
#ifndef XB_CHUNK_BYTES
#define XB_CHUNK_BYTES ((size_t)64 << 20)
#endif

typedef struct geo {
    int N, H, W, Ho, Wo, cig, cog, K, pw, T, B;
    size_t HW, PO, P, colf; /* colf: floats of one sample's col, all groups */
} geo;

typedef struct bsaved {
    geo G;
    float *scr; /* the router's scratch: gap (N, cin), dyconv's hidden */
    float *r;   /* (N, E) */
    float *col; /* (N, colf), or NULL: recompute (or 1x1: x itself) */
} bsaved;

static void free_saved(void *s) { dcb_aligned_free(s); }

static void geo_of(const dcb_op *op, const dcb_tensor *x, const dcb_tensor *y, geo *G) {
    const dcb_conv2d_p *p = &XC_HP(op)->c;
    G->N = (int)x->shape[0], G->H = (int)x->shape[2], G->W = (int)x->shape[3];
    G->Ho = (int)y->shape[2], G->Wo = (int)y->shape[3];
    G->cig = p->cin / p->groups, G->cog = p->cout / p->groups;
    G->K = G->cig * p->kh * p->kw;
    G->pw = p->kh == 1 && p->kw == 1 && p->stride == 1 && p->pad == 0;
    G->HW = (size_t)G->H * G->W, G->PO = (size_t)G->Ho * G->Wo, G->P = dcb_xc_kernel_floats(p);
    G->colf = G->pw ? 0 : (size_t)p->cin * p->kh * p->kw * G->PO;
    G->T = op->threads > 1 && G->N >= op->threads ? op->threads : 1;
    int B = (int)(XB_CHUNK_BYTES / (sizeof(float) * G->P));
    B = B < G->T ? G->T : B;
    G->B = B < 1 ? 1 : B > G->N ? G->N : B;
}

static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* The j in [0, Wo) whose input column j*stride + off lies in [0, W). */
static void j_range(int off, int stride, int W, int Wo, int *j0, int *j1) {
    int a = off < 0 ? (-off + stride - 1) / stride : 0;
    int b = off < W ? (W - 1 - off) / stride + 1 : 0;
    if (b > Wo) b = Wo;
    if (a > b) a = b;
    *j0 = a, *j1 = b;
}

/* Rows of 7..28 floats: plain loops, not a memcpy/memset call per row
 * (which costs more than the copy; GCC makes such loops calls unless told). */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_LIBCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define NO_LIBCALLS
#endif

/* Rows (c, u, v) of the column matrix of one image's cin channels. With
 * stride 1 and W' = W the valid rows of a (c, u, v) row are one shifted run
 * of x (every read in bounds); the columns it wraps into are padding, zeroed
 * after: one long copy instead of H' short ones. */
NO_LIBCALLS static void im2col(const dcb_conv2d_p *p, const geo *G, const float *x, float *col) {
    const int kk = p->kh * p->kw, H = G->H, W = G->W, Ho = G->Ho, Wo = G->Wo, s = p->stride;
    const int flat = s == 1 && Wo == W;
    for (int r = 0; r < p->cin * kk; r++) {
        const int c = r / kk, u = (r % kk) / p->kw, v = r % p->kw, off = v * p->dil - p->pad;
        const int du = u * p->dil - p->pad;
        const float *xc = x + (size_t)c * G->HW;
        float *dst = col + (size_t)r * G->PO;
        int i0, i1, j0, j1;
        j_range(du, s, H, Ho, &i0, &i1);
        j_range(off, s, W, Wo, &j0, &j1);
        for (int k = 0; k < i0 * Wo; k++) dst[k] = 0;
        for (int k = i1 * Wo; k < Ho * Wo; k++) dst[k] = 0;
        if (i0 >= i1) continue;
        if (flat && j0 < j1) {
            const ptrdiff_t k0 = (ptrdiff_t)i0 * W + j0, k1 = (ptrdiff_t)(i1 - 1) * W + j1;
            const float *sx = xc + k0 + (ptrdiff_t)du * W + off;
            for (ptrdiff_t k = 0; k < k1 - k0; k++) dst[k0 + k] = sx[k];
            for (int i = i0; i < i1; i++) {
                float *d = dst + (size_t)i * Wo;
                for (int j = 0; j < j0; j++) d[j] = 0;
                for (int j = j1; j < Wo; j++) d[j] = 0;
            }
            continue;
        }
        for (int i = i0; i < i1; i++) {
            const float *xr = xc + (size_t)(i * s + du) * W;
            float *d = dst + (size_t)i * Wo;
            for (int j = 0; j < j0; j++) d[j] = 0;
            if (s == 1)
                for (int j = j0; j < j1; j++) d[j] = xr[j + off];
            else
                for (int j = j0; j < j1; j++) d[j] = xr[j * s + off];
            for (int j = j1; j < Wo; j++) d[j] = 0;
        }
    }
}

/* d[j*s + off] += src[j] for j in [j0, j1): restrict lets it vectorise. */
static inline void row_add(float *restrict d, const float *restrict src, int j0, int j1, int s, int off) {
    if (s == 1) {
        float *restrict e = d + off;
        for (int j = j0; j < j1; j++) e[j] += src[j];
    } else
        for (int j = j0; j < j1; j++) d[j * s + off] += src[j];
}

/* dx (nc, H, W) += the column matrix dcol of nc channels folded back. With
 * stride 1 and W' = W a row block of dcol lands on a contiguous run of dx
 * once the columns that fall off the image are zeroed (they belong to the
 * padding): one long vectorised add instead of H' short rows. dcol is
 * scratch and gets those columns zeroed. */
NO_LIBCALLS static void col2im_add(const dcb_conv2d_p *p, const geo *G, float *dcol, int nc, float *dx) {
    const int kk = p->kh * p->kw, H = G->H, W = G->W, Ho = G->Ho, Wo = G->Wo, s = p->stride;
    const int flat = s == 1 && Wo == W;
    for (int r = 0; r < nc * kk; r++) {
        const int c = r / kk, u = (r % kk) / p->kw, v = r % p->kw, off = v * p->dil - p->pad;
        const int du = u * p->dil - p->pad; /* ii = i*s + du */
        float *dxc = dx + (size_t)c * G->HW, *src = dcol + (size_t)r * G->PO;
        int j0, j1;
        j_range(off, s, W, Wo, &j0, &j1);
        if (flat) {
            const int i0 = du < 0 ? -du : 0, i1 = H - du < Ho ? H - du : Ho;
            if (i0 >= i1 || j0 >= j1) continue;
            for (int i = i0; i < i1; i++) {
                float *sr = src + (size_t)i * Wo;
                for (int j = 0; j < j0; j++) sr[j] = 0;
                for (int j = j1; j < Wo; j++) sr[j] = 0;
            }
            const ptrdiff_t k0 = (ptrdiff_t)i0 * W + j0, k1 = (ptrdiff_t)(i1 - 1) * W + j1;
            row_add(dxc + k0 + (ptrdiff_t)du * W + off, src + k0, 0, (int)(k1 - k0), 1, 0);
            continue;
        }
        for (int i = 0; i < Ho; i++) {
            const int ii = i * s + du;
            if (ii >= 0 && ii < H) row_add(dxc + (size_t)ii * W, src + (size_t)i * Wo, j0, j1, s, off);
        }
    }
}

/* Sample n's column matrix: x_n itself (1x1), the saved one (built there
 * when build: the training forward), or built in buf. */
static const float *col_of(const dcb_conv2d_p *p, const geo *G, const bsaved *s, const float *x, size_t n,
                           float *buf, int build) {
    const float *xn = x + n * p->cin * G->HW;
    if (G->pw) return xn;
    float *col = s->col ? s->col + n * G->colf : buf;
    if (build || !s->col) im2col(p, G, xn, col);
    return col;
}

static dcb_status batch_forward(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void **saved) {
    const xc_hp *h = XC_HP(op);
    const dcb_conv2d_p *p = &h->c;
    geo G;
    geo_of(op, x, y, &G);
    const int N = G.N, E = h->E, cout = p->cout;
    const size_t scr = dcb_xc_route_scratch(h, N), rb = dcb_xc_rnd((size_t)N * E);
    const size_t keep = G.pw || (size_t)N * G.colf * sizeof(float) > XB_SAVE_BYTES ? 0 : dcb_xc_rnd((size_t)N * G.colf);
    const size_t hb = dcb_align_up(sizeof(bsaved));
    bsaved *s = dcb_aligned_alloc(hb + scr + rb + keep);
    const size_t colb = G.pw || keep ? 0 : dcb_xc_rnd(G.colf);
    const int bias = p->bias;
    char *wb = dcb_aligned_alloc(dcb_xc_rnd((size_t)G.B * G.P) + (bias ? dcb_xc_rnd((size_t)G.B * cout) : 0) +
                                 (size_t)G.T * colb);
    if (!s || !wb) {
        dcb_aligned_free(s);
        dcb_aligned_free(wb);
        return dcb_fail(DCB_OUT_OF_MEMORY, "%s training forward: out of memory", h->name);
    }
    s->G = G;
    s->scr = (float *)((char *)s + hb);
    s->r = (float *)((char *)s->scr + scr);
    s->col = keep ? (float *)((char *)s->r + rb) : NULL;
    float *Wm = (float *)wb, *bm = bias ? (float *)(wb + dcb_xc_rnd((size_t)G.B * G.P)) : NULL;
    char *cols = wb + dcb_xc_rnd((size_t)G.B * G.P) + (bias ? dcb_xc_rnd((size_t)G.B * cout) : 0);

    /* The router and the kernel mixing are small (N*E*P MACs, one gap pass):
     * on one thread they cost less than a fork and join, which on a shared
     * machine can wait a time slice for a descheduled thread. */
    const int th = op->threads;
    op->threads = 1;
    dcb_xc_route(op, x->data, N, G.HW, s->scr, s->r);
    const size_t ys = (size_t)cout * G.PO;
    for (int n0 = 0; n0 < N; n0 += G.B) {
        const int nb = N - n0 < G.B ? N - n0 : G.B;
        dcb_xc_mix_kernels(op, s->r + (size_t)n0 * E, nb, Wm, bm);
        dcb_blas_threads_for(G.T > 1 ? 1 : th);
#pragma omp parallel num_threads(G.T) if (G.T > 1)
        {
            float *buf = (float *)(cols + (size_t)thread_id() * colb);
#pragma omp for schedule(dynamic, 1)
            for (int k = 0; k < nb; k++) {
                const size_t n = (size_t)n0 + k;
                const float *col = col_of(p, &G, s, x->data, n, buf, 1);
                float *yn = y->data + n * ys;
                for (int g = 0; g < p->groups; g++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, G.cog, (int)G.PO, G.K, 1.0f,
                                Wm + k * G.P + (size_t)g * G.cog * G.K, G.K, col + (size_t)g * G.K * G.PO,
                                (int)G.PO, 0.0f, yn + (size_t)g * G.cog * G.PO, (int)G.PO);
                if (bm)
                    for (int o = 0; o < cout; o++) {
                        const float b = bm[(size_t)k * cout + o];
                        float *yo = yn + (size_t)o * G.PO;
                        for (size_t i = 0; i < G.PO; i++) yo[i] += b;
                    }
            }
        }
    }
    op->threads = th;
    dcb_blas_threads_for(th);
    dcb_aligned_free(wb);
    *saved = s;
    return DCB_OK;
}

static dcb_status batch_run(dcb_op *op, const dcb_train_ctx *c) {
    const xc_hp *h = XC_HP(op);
    const dcb_conv2d_p *p = &h->c;
    const bsaved *s = c->saved;
    if (!s) return dcb_fail(DCB_INVALID_ARGUMENT, "%s backward batch: no saved training forward", h->name);
    const geo G = s->G;
    const int N = G.N, E = h->E, cin = p->cin, cout = p->cout, T = G.T;
    const size_t P = G.P, xs = (size_t)cin * G.HW, ys = (size_t)cout * G.PO;
    const float *x = c->x->data, *dy = c->dy->data, *r = s->r;
    const float *wt = dcb_w(op, "weight")->data, *bs = p->bias ? dcb_w(op, "bias")->data : NULL;
    float *dx = c->dx ? c->dx->data : NULL;
    float *dweight = dcb_dw(op, c, "weight"), *dbias = p->bias ? dcb_dw(op, c, "bias") : NULL;
    const int need_dr = dx || dcb_xc_router_wanted(op, c);
    const int need_dW = need_dr || dweight;
    if (!need_dW && !dbias) return DCB_OK;

    const size_t colb = G.pw || s->col ? 0 : dcb_xc_rnd(G.colf);
    const size_t dcolb = G.pw ? 0 : dcb_xc_rnd((size_t)G.K * G.PO);
    const size_t mb = dcb_xc_rnd((size_t)G.B * P), drb = dcb_xc_rnd((size_t)N * E);
    const size_t dbb = bs ? dcb_xc_rnd((size_t)N * cout) : 0;
    char *buf = dcb_aligned_alloc(mb + drb + dbb + (size_t)T * (colb + dcolb));
    const size_t nd = (size_t)N * (2 * cin + (h->dy ? h->hidden : 0) + 2 * E);
    double *dbuf = need_dr ? malloc(sizeof(double) * nd) : NULL;
    if (!buf || (need_dr && !dbuf)) {
        dcb_aligned_free(buf);
        free(dbuf);
        return dcb_fail(DCB_OUT_OF_MEMORY, "%s backward: out of memory", h->name);
    }
    float *M = (float *)buf; /* dW in pass 1, Wm in pass 2 */
    float *drf = (float *)(buf + mb), *dB = bs ? (float *)(buf + mb + drb) : NULL;
    char *tb = buf + mb + drb + dbb; /* per thread: col, dcol */

    if (dB)
        for (size_t i = 0; i < (size_t)N * cout; i++) dB[i] = (float)dcb_sum_f64(dy + i * G.PO, G.PO);
    /* pass 1: dW per sample, then the bank's and the routing's gradients */
    for (int n0 = 0; need_dW && n0 < N; n0 += G.B) {
        const int nb = N - n0 < G.B ? N - n0 : G.B;
        dcb_blas_threads_for(T > 1 ? 1 : op->threads);
#pragma omp parallel num_threads(T) if (T > 1)
        {
            float *cb = (float *)(tb + (size_t)thread_id() * (colb + dcolb));
#pragma omp for schedule(dynamic, 1)
            for (int k = 0; k < nb; k++) {
                const size_t n = (size_t)n0 + k;
                const float *col = col_of(p, &G, s, x, n, cb, 0), *dyn = dy + n * ys;
                for (int g = 0; g < p->groups; g++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, G.cog, G.K, (int)G.PO, 1.0f,
                                dyn + (size_t)g * G.cog * G.PO, (int)G.PO, col + (size_t)g * G.K * G.PO, (int)G.PO,
                                0.0f, M + k * P + (size_t)g * G.cog * G.K, G.K);
            }
        }
        dcb_blas_threads_for(1);
        const float *rc = r + (size_t)n0 * E;
        if (dweight)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, E, (int)P, nb, 1.0f, rc, E, M, (int)P,
                        n0 ? 1.0f : 0.0f, dweight, (int)P);
        if (need_dr)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, E, (int)P, 1.0f, M, (int)P, wt, (int)P, 0.0f,
                        drf + (size_t)n0 * E, E);
    }
    dcb_blas_threads_for(1);
    if (dbias)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, E, cout, N, 1.0f, r, E, dB, cout, 0.0f, dbias, cout);
    dcb_status st = DCB_OK;
    double *dg = NULL;
    if (need_dr) {
        if (bs) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, E, cout, 1.0f, dB, cout, bs, cout, 1.0f, drf, E);
        const size_t nh = h->dy ? (size_t)N * h->hidden : 0;
        double *g = dbuf, *hid = g + 2 * (size_t)N * cin, *rd = hid + nh, *drd = rd + (size_t)N * E;
        dg = g + (size_t)N * cin;
        const float *hidf = (const float *)((const char *)s->scr + dcb_xc_rnd((size_t)N * cin));
        for (size_t i = 0; i < (size_t)N * cin; i++) g[i] = s->scr[i];
        for (size_t i = 0; i < nh; i++) hid[i] = hidf[i];
        for (size_t i = 0; i < (size_t)N * E; i++) rd[i] = r[i], drd[i] = drf[i];
        st = dcb_xc_router_backward(op, c, N, g, h->dy ? hid : NULL, rd, drd, dx ? dg : NULL);
    }
    /* pass 2: dx = the gap path + the transposed conv with each sample's kernel */
    for (int n0 = 0; st == DCB_OK && dx && n0 < N; n0 += G.B) {
        const int nb = N - n0 < G.B ? N - n0 : G.B;
        const int th = op->threads;
        op->threads = 1; /* a small GEMM (see batch_forward) */
        dcb_xc_mix_kernels(op, r + (size_t)n0 * E, nb, M, NULL);
        op->threads = th;
        dcb_blas_threads_for(T > 1 ? 1 : op->threads);
#pragma omp parallel num_threads(T) if (T > 1)
        {
            float *dcol = (float *)(tb + (size_t)thread_id() * (colb + dcolb) + colb);
#pragma omp for schedule(dynamic, 1)
            for (int k = 0; k < nb; k++) {
                const size_t n = (size_t)n0 + k;
                float *dxn = dx + n * xs;
                const float *dyn = dy + n * ys;
                for (int ch = 0; ch < cin; ch++) {
                    const float a = (float)(dg[n * cin + ch] / (double)G.HW);
                    float *d = dxn + (size_t)ch * G.HW;
                    for (size_t i = 0; i < G.HW; i++) d[i] = a;
                }
                for (int g = 0; g < p->groups; g++) {
                    float *dxg = dxn + (size_t)g * G.cig * G.HW;
                    /* 1x1: accumulate straight into dx (beta 1 keeps the gap path) */
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G.K, (int)G.PO, G.cog, 1.0f,
                                M + k * P + (size_t)g * G.cog * G.K, G.K, dyn + (size_t)g * G.cog * G.PO,
                                (int)G.PO, G.pw ? 1.0f : 0.0f, G.pw ? dxg : dcol, (int)G.PO);
                    if (!G.pw) col2im_add(p, &G, dcol, G.cig, dxg);
                }
            }
        }
        dcb_blas_threads_for(op->threads);
    }
    free(dbuf);
    dcb_aligned_free(buf);
    return st;
}

const dcb_bwd_vt dcb_xc_bwd_batch = {
    .name = "batch",
    .doc = "own training forward keeping routing and im2col; per-sample sgemm on OpenMP threads, bank and routing "
           "gradients as batch GEMMs",
    .tol = 2e-5,
    .forward = batch_forward,
    .free_saved = free_saved,
    .run = batch_run,
};
