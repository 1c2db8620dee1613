/* im2col + CBLAS sgemm over blocks of images. Per block of m images and
 * group: col (cin_g*kh*kw, m*Ho*Wo), image b's columns at b*Ho*Wo, then
 * Y (cout_g, m*Ho*Wo) = W_g (cout_g, cin_g*kh*kw) * col, scattered into y.
 * Blocks are sized so that col stays in L2 while the GEMM is long enough to
 * be efficient even on 7x7 maps (one image alone gives N = 49). With enough
 * blocks, threads take whole blocks (single-threaded GEMMs, no fork per
 * small loop); otherwise blocks run one after the other on BLAS threads.
 * A 1x1 stride-1 unpadded conv on single-image blocks needs no col: x is
 * already the right matrix. The block helpers are shared with the conv2d
 * "batch" backward (conv2d_backward_batch.c). */
#include "dcb_internal.h"

#include <cblas.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Plain loops, not memcpy/memset calls: the rows are ~28 floats, where a
 * libc call per row cost more than the copy (GCC turns such loops back into
 * calls unless told not to). */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_LIBCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define NO_LIBCALLS
#endif

/* Bytes of a block's column matrix to aim for: about half of a 1-2 MiB L2. */
#define BLOCK_COL_BYTES (512u * 1024u)

static int is_pointwise(const dcb_conv2d_p *p) {
    return p->kh == 1 && p->kw == 1 && p->stride == 1 && p->pad == 0;
}

/* Images per block: a function of the shape only (so the sums never depend
 * on the thread count), balanced so that the blocks are about equal. */
int dcb_conv2d_block_images(const dcb_conv2d_p *p, int N, int H, int W) {
    const size_t Ho = (size_t)dcb_conv_out(H, p->kh, p->stride, p->pad, p->dil);
    const size_t Wo = (size_t)dcb_conv_out(W, p->kw, p->stride, p->pad, p->dil);
    const size_t per = sizeof(float) * (size_t)(p->cin / p->groups) * p->kh * p->kw * Ho * Wo;
    size_t m = per ? BLOCK_COL_BYTES / per : 1;
    if (m < 1) m = 1;
    if (m > (size_t)N) m = (size_t)N;
    if (m < 1) return 1;
    const size_t nb = ((size_t)N + m - 1) / m;
    return (int)(((size_t)N + nb - 1) / nb);
}

/* Valid output indices j (0 <= j*stride + off < n) as [*j0, *j1). */
void dcb_conv2d_valid_range(int n, int no, int stride, int off, int *j0, int *j1) {
    int a = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int b = n - 1 - off < 0 ? 0 : (n - 1 - off) / stride + 1;
    if (b > no) b = no;
    if (a > b) a = b;
    *j0 = a;
    *j1 = b;
}

/* The kh*kw rows of channel plane xc (H x W), each Ho*Wo long, at dst + r*ld. */
NO_LIBCALLS static void im2col_plane(const dcb_conv2d_p *p, int H, int W, int Ho, int Wo, const float *xc,
                                     float *dst, size_t ld) {
    const int P = Ho * Wo;
    for (int u = 0; u < p->kh; u++)
        for (int v = 0; v < p->kw; v++) {
            float *d = dst + (size_t)(u * p->kw + v) * ld;
            const int offh = u * p->dil - p->pad, off = v * p->dil - p->pad;
            int i0, i1, j0, j1;
            dcb_conv2d_valid_range(H, Ho, p->stride, offh, &i0, &i1);
            dcb_conv2d_valid_range(W, Wo, p->stride, off, &j0, &j1);
            for (int k = 0; k < i0 * Wo; k++) d[k] = 0.0f;
            for (int k = i1 * Wo; k < P; k++) d[k] = 0.0f;
            if (i0 >= i1) continue;
            if (p->stride == 1 && Wo == W && j1 > j0) {
                /* rows are as long in col as in x: rows i0..i1-1 are one
                 * shifted run of x (every read in bounds), and the columns
                 * it wraps into are the padding, zeroed after, column by
                 * column (a loop per row cost more than the copy) */
                const float *s = xc + (size_t)(i0 + offh) * W + off + j0;
                float *d0 = d + (size_t)i0 * Wo + j0;
                const int len = (i1 - 1 - i0) * Wo + j1 - j0;
                for (int k = 0; k < len; k++) d0[k] = s[k];
                for (int j = 0; j < j0; j++)
                    for (int i = i0 + 1; i < i1; i++) d[(size_t)i * Wo + j] = 0.0f;
                for (int j = j1; j < Wo; j++)
                    for (int i = i0; i < i1 - 1; i++) d[(size_t)i * Wo + j] = 0.0f;
                for (int j = 0; j < j0; j++) d[(size_t)i0 * Wo + j] = 0.0f;
                for (int j = j1; j < Wo; j++) d[(size_t)(i1 - 1) * Wo + j] = 0.0f;
                continue;
            }
            for (int i = i0; i < i1; i++) {
                const float *xr = xc + (size_t)(i * p->stride + offh) * W + off;
                float *r = d + (size_t)i * Wo;
                for (int j = 0; j < j0; j++) r[j] = 0.0f;
                if (p->stride == 1)
                    for (int j = j0; j < j1; j++) r[j] = xr[j];
                else
                    for (int j = j0; j < j1; j++) r[j] = xr[j * p->stride];
                for (int j = j1; j < Wo; j++) r[j] = 0.0f;
            }
        }
}

/* Column matrix of m images of nc channels (image b at x + b*xstride): row
 * (c, u, v), columns b*P .. b*P+P-1, rows m*P long. Parallel over the
 * (image, channel) planes when threads > 1. */
void dcb_conv2d_im2col_block(const dcb_conv2d_p *p, int H, int W, const float *x, size_t xstride, int m, int nc,
                             float *col, int threads) {
    const int Ho = dcb_conv_out(H, p->kh, p->stride, p->pad, p->dil);
    const int Wo = dcb_conv_out(W, p->kw, p->stride, p->pad, p->dil);
    const size_t P = (size_t)Ho * Wo, ld = (size_t)m * P, kk = (size_t)p->kh * p->kw;
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads) if (threads > 1 && m * nc > 1)
    for (int b = 0; b < m; b++)
        for (int c = 0; c < nc; c++)
            im2col_plane(p, H, W, Ho, Wo, x + (size_t)b * xstride + (size_t)c * H * W, col + c * kk * ld + b * P, ld);
}

/* ------------------------------------------------------- the forward */
typedef struct fwd_geom {
    int Ho, Wo, cig, cog, K, P, m, nblk, workers;
    size_t col_floats, y_floats; /* per worker */
} fwd_geom;

static size_t floats_up(size_t n) { return dcb_align_up(n * sizeof(float)) / sizeof(float); }

static fwd_geom fwd_geom_of(const dcb_conv2d_p *p, int N, int H, int W, int threads) {
    fwd_geom g;
    g.Ho = dcb_conv_out(H, p->kh, p->stride, p->pad, p->dil);
    g.Wo = dcb_conv_out(W, p->kw, p->stride, p->pad, p->dil);
    g.cig = p->cin / p->groups;
    g.cog = p->cout / p->groups;
    g.K = g.cig * p->kh * p->kw;
    g.P = g.Ho * g.Wo;
    g.m = N > 0 ? dcb_conv2d_block_images(p, N, H, W) : 1;
    g.nblk = N > 0 ? (N + g.m - 1) / g.m : 0;
    g.workers = threads > 1 && g.nblk >= 2 ? (threads < g.nblk ? threads : g.nblk) : 1;
    const size_t cols = (size_t)g.m * g.P;
    g.col_floats = (is_pointwise(p) && g.m == 1) ? 0 : floats_up((size_t)g.K * cols);
    g.y_floats = g.m == 1 ? 0 : floats_up((size_t)g.cog * cols);
    return g;
}

size_t dcb_conv2d_im2col_ws(const dcb_conv2d_p *p, int N, int H, int W, int threads) {
    const fwd_geom g = fwd_geom_of(p, N, H, W, threads);
    return sizeof(float) * (g.col_floats + g.y_floats) * (size_t)g.workers;
}

/* Block n0 .. n0+m-1, every group. */
static void fwd_block(const dcb_conv2d_p *p, int H, int W, const fwd_geom *g, int n0, int m, const float *x,
                      const float *w, const float *b, float *y, float *col, float *ybuf, int threads,
                      dcb_profile *prof) {
    const size_t in_sz = (size_t)p->cin * H * W, out_sz = (size_t)p->cout * g->P, cols = (size_t)m * g->P;
    for (int gr = 0; gr < p->groups; gr++) {
        const float *xg = x + n0 * in_sz + (size_t)gr * g->cig * H * W;
        const float *B = xg;
        if (g->col_floats) {
            double t0 = dcb_now();
            dcb_conv2d_im2col_block(p, H, W, xg, in_sz, m, g->cig, col, threads);
            DCB_PHASE_ADD(prof, DCB_PHASE_TRANSFORM, t0);
            B = col;
        }
        double t0 = dcb_now();
        /* one image: straight into y; else into ybuf, then scattered */
        float *C = m == 1 ? y + n0 * out_sz + (size_t)gr * g->cog * g->P : ybuf;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->cog, (int)cols, g->K, 1.0f,
                    w + (size_t)gr * g->cog * g->K, g->K, B, (int)cols, 0.0f, C, (int)cols);
        DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
        if (m == 1 && !b) continue;
        t0 = dcb_now();
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads) if (threads > 1)
        for (int i = 0; i < m; i++)
            for (int o = 0; o < g->cog; o++) {
                float *yo = y + (n0 + i) * out_sz + ((size_t)gr * g->cog + o) * g->P;
                const float *s = m == 1 ? yo : ybuf + (size_t)o * cols + (size_t)i * g->P;
                const float bo = b ? b[gr * g->cog + o] : 0.0f;
                for (int k = 0; k < g->P; k++) yo[k] = s[k] + bo;
            }
        DCB_PHASE_ADD(prof, m == 1 ? DCB_PHASE_COMBINE : DCB_PHASE_TRANSFORM, t0);
    }
}

void dcb_conv2d_im2col(const dcb_conv2d_p *p, int N, int H, int W, const float *x,
                       const float *w, const float *b, float *y, void *ws, int threads,
                       dcb_profile *prof) {
    if (N < 1) return;
    const fwd_geom g = fwd_geom_of(p, N, H, W, threads);
    const size_t slab = g.col_floats + g.y_floats;
    if (g.workers == 1) {
        dcb_blas_threads_for(threads);
        for (int k = 0; k < g.nblk; k++) {
            const int n0 = k * g.m, m = N - n0 < g.m ? N - n0 : g.m;
            fwd_block(p, H, W, &g, n0, m, x, w, b, y, ws, g.y_floats ? (float *)ws + g.col_floats : NULL, threads,
                      prof);
        }
        return;
    }
    /* whole blocks per thread, each GEMM single-threaded */
    dcb_profile tp[64];
    const int nt = g.workers < 64 ? g.workers : 64;
    if (prof) memset(tp, 0, sizeof tp);
    dcb_blas_threads_for(1);
#pragma omp parallel num_threads(nt)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *col = slab ? (float *)ws + (size_t)tid * slab : NULL, *ybuf = g.y_floats ? col + g.col_floats : NULL;
#pragma omp for schedule(dynamic, 1)
        for (int k = 0; k < g.nblk; k++) {
            const int n0 = k * g.m, m = N - n0 < g.m ? N - n0 : g.m;
            fwd_block(p, H, W, &g, n0, m, x, w, b, y, col, ybuf, 1, prof ? &tp[tid] : NULL);
        }
    }
    dcb_blas_threads_for(threads);
    if (prof) {
        dcb_profile mx;
        memset(&mx, 0, sizeof mx);
        for (int t = 0; t < nt; t++) dcb_profile_max(&mx, &tp[t]);
        dcb_profile_add(prof, &mx);
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
    .name = "im2col", .doc = "im2col + CBLAS sgemm over blocks of images, per group",
    /* OpenBLAS's AVX-512 sgemm (SkylakeX kernels) sums a K = 1666 row to
     * 1.8e-6 where its Haswell kernels give 6e-7 (test_conformance): room for
     * the kernel OpenBLAS picks on the machine at hand. */
    .tol = 5e-6,
    .workspace = im2col_engine_ws, .run = im2col_engine_run,
    .dyn_workspace = dcb_conv2d_im2col_ws, .dyn_run = dcb_conv2d_im2col,
};
