/* Winograd F(m x m, 3x3) convolution, m = 2 (4x4 tiles), m = 4 (6x6 tiles)
 * or m = 6 (8x8 tiles).
 *
 * Points: F(2x2) uses (0, 1, -1, inf); F(4x4) uses Lavin & Gray's
 * (0, 1, -1, 2, -2, inf), whose B^T, G, A^T have small integer / 1/6, 1/24
 * entries (tables below); F(6x6) uses (0, 1, -1, 1/2, -1/2, 2, -2, inf),
 * the usual choice for 8x8 tiles, with entries down to 1/90 and up to 32:
 * 1.78 multiplications per output instead of 2.25, for about 2x F(4x4)'s
 * rounding error (docs/PERFORMANCE.md, numerical error). F(6x6) has no fused dynamic path: per-sample kernels go
 * through a plan in the workspace.
 *
 * Layouts (a = m + 2, xi = 0 .. a*a-1 the transformed positions):
 *   U  weight-only, built by plan_new, per (xi, group) a cout_g x cin_g
 *      matrix: plain row-major for BLAS, or in panels of 6 rows
 *      [cout_g/6][cin_g][6] for the micro-kernel (ukernels/ukernels.h);
 *   V  [xi][cin][tbp]   input transform of one block of tb tiles;
 *   M  [xi][cout][tbp]  U * V per xi and group.
 * (tbp and the xi strides are padded off powers of two: 36 streams 32 KiB
 * apart would all fall into one L1 set.)
 * Tiles are numbered over (n, tile row, tile col), so all images of the
 * batch share one GEMM; blocks of tb tiles keep V and M cache-sized while U
 * is read once per block. Rows of V and M have tbp >= tb + DCB_OVERREAD_FLOATS
 * floats so that the vector code may always read and write 8 whole lanes.
 *
 * The transforms work on 8 neighbouring tiles of one tile row at a time: a
 * row of x is deinterleaved with shuffles so that lane j holds tile j. */
#include "conv2d_winograd.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ------------------------------------------------------------ the matrices
 * G (a x 3) for the kernel transform; B^T (a x a) and A^T (m x a) are in the
 * portable path below and written out as code in the AVX2 one. */
static const double G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
static const double G4[6][3] = {{1.0 / 4, 0, 0},
                                {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                {0, 0, 1}};

static const double G6[8][3] = {{1, 0, 0},
                                {-2.0 / 9, -2.0 / 9, -2.0 / 9},
                                {-2.0 / 9, 2.0 / 9, -2.0 / 9},
                                {1.0 / 90, 1.0 / 45, 2.0 / 45},
                                {1.0 / 90, -1.0 / 45, 2.0 / 45},
                                {32.0 / 45, 16.0 / 45, 8.0 / 45},
                                {32.0 / 45, -16.0 / 45, 8.0 / 45},
                                {0, 0, 1}};

/* Small groups (depthwise, ResNeXt with few channels per group) make GEMMs
 * too small to pay off: they are multiplied directly. */
static int small_groups(int cig, int cog) { return cig < 8 || cog < 8; }

/* ------------------------------------------------------------------- plan */
int dcb_wino_plan_setup(dcb_winograd_plan *pl, const dcb_conv2d_p *p, int m) {
    if (!p || (m != 2 && m != 4 && m != 6) || p->kh != 3 || p->kw != 3 || p->stride != 1 || p->dil != 1 ||
        p->groups < 1 || p->cin < 1 || p->cout < 1 || p->cin % p->groups || p->cout % p->groups ||
        p->pad < 0) {
        dcb_fail(DCB_INVALID_ARGUMENT, "winograd: needs m in {2,4,6}, a 3x3 kernel, stride 1, dilation 1");
        return -1;
    }
    memset(pl, 0, sizeof *pl);
    pl->m = m;
    pl->a = m + 2;
    pl->cin = p->cin;
    pl->cout = p->cout;
    pl->groups = p->groups;
    pl->cig = p->cin / p->groups;
    pl->cog = p->cout / p->groups;
    pl->pad = p->pad;
    pl->packed = !small_groups(pl->cig, pl->cog);
    const int rows = pl->packed ? (pl->cog + MR - 1) / MR * MR : pl->cog; /* zero rows pad the last panel */
    pl->u_stride = (size_t)rows * pl->cig;
    return 0;
}

/* + DCB_OVERREAD_FLOATS: the micro-kernel's gemm_n4 loads 8 floats at a time
 * from 6-float rows */
static size_t u_bytes(const dcb_winograd_plan *pl) {
    return sizeof(float) * ((size_t)pl->a * pl->a * pl->groups * pl->u_stride + DCB_OVERREAD_FLOATS);
}

static void kernel_transform(dcb_winograd_plan *pl, const float *w) {
    const int a = pl->a, cig = pl->cig, cog = pl->cog, G = pl->groups;
    memset(pl->U, 0, u_bytes(pl));
    const double(*Gm)[3] = pl->m == 2 ? G2 : pl->m == 4 ? G4 : G6;
    /* In double: for static weights the transform is not timed, so it spends
     * nothing of the error budget. */
    for (int o = 0; o < pl->cout; o++) {
        const int g = o / cog, ol = o % cog;
        for (int c = 0; c < cig; c++) {
            const float *k = w + ((size_t)o * cig + c) * 9;
            double t[8][3];
            for (int i = 0; i < a; i++)
                for (int j = 0; j < 3; j++)
                    t[i][j] = Gm[i][0] * k[j] + Gm[i][1] * k[3 + j] + Gm[i][2] * k[6 + j];
            const size_t pos = pl->packed ? ((size_t)(ol / MR) * cig + c) * MR + ol % MR : (size_t)ol * cig + c;
            for (int i = 0; i < a; i++)
                for (int j = 0; j < a; j++) {
                    const double u = t[i][0] * Gm[j][0] + t[i][1] * Gm[j][1] + t[i][2] * Gm[j][2];
                    pl->U[((size_t)(i * a + j) * G + g) * pl->u_stride + pos] = (float)u;
                }
        }
    }
}

dcb_winograd_plan *dcb_winograd_plan_new(const dcb_conv2d_p *p, int m, const float *w) {
    dcb_winograd_plan *pl = calloc(1, sizeof *pl);
    if (!pl) {
        dcb_fail(DCB_OUT_OF_MEMORY, "winograd: out of memory for the plan");
        return NULL;
    }
    if (dcb_wino_plan_setup(pl, p, m)) {
        free(pl);
        return NULL;
    }
    if (!w) return pl; /* shape-only: enough for dcb_winograd_ws */
    pl->U = dcb_aligned_alloc(u_bytes(pl));
    if (!pl->U) {
        free(pl);
        dcb_fail(DCB_OUT_OF_MEMORY, "winograd: out of memory for the kernel transform");
        return NULL;
    }
    kernel_transform(pl, w);
    return pl;
}

#define PLAN_HEAD ((sizeof(dcb_winograd_plan) + DCB_ALIGN - 1) / DCB_ALIGN * DCB_ALIGN)

size_t dcb_winograd_plan_bytes(const dcb_conv2d_p *p, int m) {
    dcb_winograd_plan pl;
    if (dcb_wino_plan_setup(&pl, p, m)) return 0;
    return PLAN_HEAD + u_bytes(&pl);
}

/* The plan lives in caller memory: the dynamic operators transform each
 * sample's kernel inside run without allocating. */
dcb_winograd_plan *dcb_winograd_plan_init(void *mem, const dcb_conv2d_p *p, int m, const float *w) {
    dcb_winograd_plan *pl = mem;
    if (dcb_wino_plan_setup(pl, p, m)) return NULL;
    pl->U = (float *)((char *)mem + PLAN_HEAD);
    kernel_transform(pl, w);
    return pl;
}

void dcb_winograd_plan_free(dcb_winograd_plan *pl) {
    if (!pl) return;
    dcb_aligned_free(pl->U);
    free(pl);
}

/* ---------------------------------------------------------------- blocking
 * (the layout of a block, wino_geom, is in conv2d_winograd.h)
 *
 * V + M of a block aim at WINO_BLOCK_BYTES (L2 plus a slice of L3) but hold
 * at least WINO_MIN_TB tiles: fewer make the GEMMs inefficient and re-read U
 * (a^2 cin cout floats) too often. */
#define WINO_BLOCK_BYTES (2u << 20)
#define WINO_MIN_TB 64

/* Two ways to share the work of a block among threads. Shared: every phase
 * of a block is split over the team (channels, then xi, then channels), so
 * V and M cross from core to core twice per block, and the team meets at
 * three barriers per block: cheap while U is large and the tiles few
 * (256@14, 512@7), costly at 64@56 (36 barriers per run, and a barrier
 * waits for a thread that the shared machine has descheduled: one run took
 * 165 ms instead of 3.4). Private: each thread takes whole blocks through all
 * three phases in its own V and M (half the bytes of a shared block), only
 * U is shared (read only), and each private block reads all of U. Private is
 * chosen when every thread gets at least two blocks and the tile data that
 * would cross between cores (V and M, written on one core, read on another)
 * outweighs the extra reads of U. */
static int g_sharing = DCB_WINO_AUTO;

void dcb_winograd_set_sharing(int mode) { g_sharing = mode; }

static int choose_private(const dcb_winograd_plan *pl, long T, size_t per_tile, long tb_priv, int threads) {
    if (threads < 2 || g_sharing == DCB_WINO_SHARED) return 0;
    if (g_sharing == DCB_WINO_PRIVATE) return 1;
    if (T < 2L * threads * tb_priv) return 0;
    const double u = sizeof(float) * (double)pl->a * pl->a * pl->cin * pl->cog;
    const double cross = 2.0 * (double)T * per_tile;
    const double extra_u = (double)T / tb_priv * u;
    return cross > extra_u;
}

wino_geom dcb_wino_make_geom(const dcb_winograd_plan *pl, int N, int H, int W, int threads) {
    wino_geom g;
    g.Ho = H + 2 * pl->pad - 2;
    g.Wo = W + 2 * pl->pad - 2;
    g.tH = (g.Ho + pl->m - 1) / pl->m;
    g.tW = (g.Wo + pl->m - 1) / pl->m;
    g.T = (long)N * g.tH * g.tW;
    const size_t per_tile = sizeof(float) * (size_t)pl->a * pl->a * (pl->cin + pl->cout);
    long tb = (long)(WINO_BLOCK_BYTES / per_tile), tb_priv = (long)(WINO_BLOCK_BYTES / 2 / per_tile);
    if (tb < WINO_MIN_TB) tb = WINO_MIN_TB;
    if (tb_priv < WINO_MIN_TB) tb_priv = WINO_MIN_TB;
    g.priv = 1;
    if (choose_private(pl, g.T, per_tile, tb_priv, threads)) {
        tb = tb_priv;
        g.priv = threads;
    }
    tb = (tb + 7) & ~7L;
    if (tb > g.T) tb = g.T;
    if (tb < 1) tb = 1;
    g.tb = (int)tb;
    g.tbp = (int)round_up((size_t)tb + DCB_OVERREAD_FLOATS, 16);
    if (g.tbp % 32 == 0) g.tbp += 16; /* an odd number of cache lines */
    g.vxs = (size_t)pl->cin * g.tbp + 16;
    g.mxs = (size_t)pl->cout * g.tbp + 16;
    return g;
}

static size_t v_bytes(const dcb_winograd_plan *pl, const wino_geom *g) {
    return round_up(sizeof(float) * (size_t)pl->a * pl->a * g->vxs, DCB_ALIGN);
}
static size_t m_bytes(const dcb_winograd_plan *pl, const wino_geom *g) {
    return round_up(sizeof(float) * (size_t)pl->a * pl->a * g->mxs, DCB_ALIGN);
}

static size_t spans_bytes(const wino_geom *g) { return round_up(sizeof(wino_span) * (size_t)g->tb, DCB_ALIGN); }

size_t dcb_winograd_ws(const dcb_winograd_plan *pl, int N, int H, int W, int threads) {
    if (!pl || N < 1 || H + 2 * pl->pad - 2 < 1 || W + 2 * pl->pad - 2 < 1) return 0;
    const wino_geom g = dcb_wino_make_geom(pl, N, H, W, threads < 1 ? 1 : threads);
    return (size_t)g.priv * (v_bytes(pl, &g) + m_bytes(pl, &g) + spans_bytes(&g));
}

/* ------------------------------------------------------- tile-group kernels
 * A "group" is k <= 8 consecutive tiles of one tile row; its transforms are
 * ukernels/winograd_f32.h's (in_group, out_group: semantics there), their
 * variant picked at run time for the CPU (DCB_ISA). */
static void in_group(int m, const float *xc, int H, int W, int row0, int col0, int k, float *v, size_t vs) {
    dcb_wk()->in_group(m, xc, H, W, row0, col0, k, v, vs);
}

static void out_group(int m, const float *mm, size_t ms, int k, float bias, float *yc, int Ho, int Wo,
                      int row0, int col0) {
    dcb_wk()->out_group(m, mm, ms, k, bias, yc, Ho, Wo, row0, col0);
}

/* ------------------------------------------------------------ packed GEMM
 * Columns go 16, then 8 at a time while more than 4 remain (the micro-
 * kernel's gemm, one call per 6-row panel, or its gemm2 per pair of panels
 * where the variant has one); the last <= 4 (dcb_wino_tail_cols) take its
 * gemm_n4 over all the panels at once, vectorised over the rows, and over
 * the products of up to 8 positions at once (a 12-row block's tail has 2
 * panels, 2 chains alone). Positions go 8 at a time so that their U is still
 * in L1 for the tails. */
int dcb_wino_tail_cols(int nb) {
    const int rest = nb % DCB_UK_NR;
    return rest <= 4 ? rest : rest > 8 && rest <= 12 ? rest - 8 : 0;
}

void dcb_wino_gemm_packed(const float *U, size_t us, int cog, int cig, const float *V, size_t vs, float *M,
                          size_t ms, size_t ld, int nb, int count, int accumulate, const float *Vt, size_t vts) {
    const dcb_ukernels *uk = dcb_uk();
    const int n4 = dcb_wino_tail_cols(nb), nmain = nb - n4;
    for (int x0 = 0; x0 < count; x0 += 8) {
        const int nx = count - x0 < 8 ? count - x0 : 8;
        for (int xi = x0; xi < x0 + nx; xi++) {
            const float *Ux = U + xi * us, *Vx = V + xi * vs;
            float *Mx = M + xi * ms;
            if (nmain > 0 && uk->gemm2)
                for (int i0 = 0; i0 < cog; i0 += 2 * MR) {
                    const int mr = cog - i0 < 2 * MR ? cog - i0 : 2 * MR;
                    uk->gemm2(cig, Ux + (size_t)i0 * cig, Vx, ld, Mx + (size_t)i0 * ld, ld, mr, nmain, accumulate,
                              NULL);
                }
            else if (nmain > 0)
                for (int i0 = 0; i0 < cog; i0 += MR) {
                    const int mr = cog - i0 < MR ? cog - i0 : MR;
                    uk->gemm(cig, Ux + (size_t)i0 * cig, Vx, ld, Mx + (size_t)i0 * ld, ld, mr, nmain, accumulate,
                             NULL);
                }
        }
        if (n4) /* the tail columns from Vt where given, else from V */
            uk->gemm_n4(cig, U + x0 * us, Vt ? Vt + x0 * vts : V + x0 * vs + nmain, Vt ? (size_t)n4 : ld,
                        M + x0 * ms + nmain, ld, cog, n4, accumulate, nx, us, Vt ? vts : vs, ms);
    }
}

/* -------------------------------------------------------------------- run */
int dcb_wino_make_spans(const wino_geom *g, long t0, int nb, wino_span *sp) {
    int ns = 0;
    for (int off = 0; off < nb;) {
        const long t = t0 + off, rowi = t / g->tW;
        const int tj = (int)(t % g->tW);
        int k = g->tW - tj;
        if (k > 8) k = 8;
        if (k > nb - off) k = nb - off;
        sp[ns].n = (int)(rowi / g->tH);
        sp[ns].ti = (int)(rowi % g->tH);
        sp[ns].tj = tj;
        sp[ns].k = k;
        sp[ns].off = off;
        ns++;
        off += k;
    }
    return ns;
}

void dcb_wino_transform_in(const dcb_winograd_plan *pl, const float *x, int H, int W, const wino_span *sp, int ns,
                           float *V, size_t ld, size_t vxs, size_t vns, int tps, int threads) {
    const int m = pl->m, cin = pl->cin;
    (void)threads;
    /* A channel's spans go in order on one thread: each writes 8 lanes,
     * and the next span overwrites the surplus. */
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int c = 0; c < cin; c++)
        for (int s = 0; s < ns; s++) {
            const wino_span *q = &sp[s];
            const float *xc = x + ((size_t)q->n * cin + c) * H * W;
            in_group(m, xc, H, W, q->ti * m - pl->pad, q->tj * m - pl->pad, q->k,
                     V + q->n * vns + c * ld + (q->off - q->n * tps), vxs);
        }
}

void dcb_wino_transform_out(const dcb_winograd_plan *pl, const wino_geom *g, const wino_span *sp, int ns,
                            const float *M, size_t ld, size_t mxs, size_t mns, int tps, const float *b, size_t bns,
                            float *y, int threads) {
    const int m = pl->m, cout = pl->cout, Ho = g->Ho, Wo = g->Wo;
    (void)threads;
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads) if (threads > 1)
    for (int o = 0; o < cout; o++)
        for (int s = 0; s < ns; s++) {
            const wino_span *q = &sp[s];
            float *yc = y + ((size_t)q->n * cout + o) * Ho * Wo;
            out_group(m, M + q->n * mns + o * ld + (q->off - q->n * tps), mxs, q->k, b ? b[q->n * bns + o] : 0.0f,
                      yc, Ho, Wo, q->ti * m, q->tj * m);
        }
}

static void multiply_direct(const dcb_winograd_plan *pl, const wino_geom *gm, const float *V, float *M, int nb,
                            int threads) {
    const size_t ld = (size_t)gm->tbp;
    const int a2 = pl->a * pl->a, cig = pl->cig, cog = pl->cog, G = pl->groups;
    (void)threads;
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads) if (threads > 1)
    for (int xi = 0; xi < a2; xi++)
        for (int g = 0; g < G; g++) {
            const float *u = pl->U + ((size_t)xi * G + g) * pl->u_stride;
            const float *v = V + xi * gm->vxs + (size_t)g * cig * ld;
            float *mo = M + xi * gm->mxs + (size_t)g * cog * ld;
            for (int o = 0; o < cog; o++) {
                float *dst = mo + (size_t)o * ld;
                const float *uo = u + (size_t)o * cig;
                const float u0 = uo[0];
                for (int t = 0; t < nb; t++) dst[t] = u0 * v[t];
                for (int c = 1; c < cig; c++) {
                    const float uc = uo[c];
                    const float *vc = v + (size_t)c * ld;
                    for (int t = 0; t < nb; t++) dst[t] += uc * vc[t];
                }
            }
        }
}

/* One block of nb tiles from tile t0: input transform, GEMMs, output
 * transform, each phase over `threads` (1 inside a private-mode thread). */
static void run_block(const dcb_winograd_plan *pl, const wino_geom *gp, long t0, int nb, int H, int W,
                      const float *x, const float *b, float *y, float *V, float *M, wino_span *sp, int threads,
                      dcb_profile *prof) {
    const wino_geom g = *gp;
    const int a2 = pl->a * pl->a;
    const size_t ld = (size_t)g.tbp;
    const int cig = pl->cig, cog = pl->cog, G = pl->groups;
    const int ns = dcb_wino_make_spans(&g, t0, nb, sp);

    double ts = dcb_now();
    dcb_wino_transform_in(pl, x, H, W, sp, ns, V, ld, g.vxs, 0, 0, threads);
    DCB_PHASE_ADD(prof, DCB_PHASE_TRANSFORM, ts);

    ts = dcb_now();
    if (small_groups(cig, cog)) {
        multiply_direct(pl, &g, V, M, nb, threads);
    } else if (pl->packed) {
#pragma omp parallel for collapse(2) schedule(dynamic) num_threads(threads) if (threads > 1)
        for (int xi = 0; xi < a2; xi++)
            for (int gi = 0; gi < G; gi++)
                dcb_wino_gemm_packed(pl->U + ((size_t)xi * G + gi) * pl->u_stride, 0, cog, cig,
                                     V + xi * g.vxs + (size_t)gi * cig * ld, 0, M + xi * g.mxs + (size_t)gi * cog * ld,
                                     0, ld, nb, 1, 0, NULL, 0);
    } else {
        for (int xi = 0; xi < a2; xi++)
            for (int gi = 0; gi < G; gi++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cog, nb, cig, 1.0f,
                            pl->U + ((size_t)xi * G + gi) * pl->u_stride, cig,
                            V + xi * g.vxs + (size_t)gi * cig * ld, (int)ld, 0.0f,
                            M + xi * g.mxs + (size_t)gi * cog * ld, (int)ld);
    }
    DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, ts);

    ts = dcb_now();
    dcb_wino_transform_out(pl, &g, sp, ns, M, ld, g.mxs, 0, 0, b, 0, y, threads);
    DCB_PHASE_ADD(prof, DCB_PHASE_TRANSFORM, ts);
}

void dcb_winograd_run(const dcb_winograd_plan *pl, int N, int H, int W, const float *x, const float *b,
                      float *y, void *ws, int threads, dcb_profile *prof) {
    if (threads < 1) threads = 1;
    const wino_geom g = dcb_wino_make_geom(pl, N, H, W, threads);
    const int tb = g.tb;
    const size_t one = v_bytes(pl, &g) + m_bytes(pl, &g) + spans_bytes(&g);
    const long nblocks = (g.T + tb - 1) / tb;
    if (!small_groups(pl->cig, pl->cog) && !pl->packed) dcb_blas_threads_for(g.priv > 1 ? 1 : threads);

    if (g.priv == 1) {
        float *V = ws;
        float *M = (float *)((char *)ws + v_bytes(pl, &g));
        wino_span *sp = (wino_span *)((char *)M + m_bytes(pl, &g)); /* at most one span per tile */
        for (long t0 = 0; t0 < g.T; t0 += tb)
            run_block(pl, &g, t0, (int)(g.T - t0 < tb ? g.T - t0 : tb), H, W, x, b, y, V, M, sp, threads, prof);
        return;
    }
    /* Private blocks, each thread with its own profile (dcb_profile_max). */
    dcb_profile most = {{0}};
#pragma omp parallel num_threads(g.priv)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        char *base = (char *)ws + (size_t)tid * one;
        float *V = (float *)base;
        float *M = (float *)(base + v_bytes(pl, &g));
        wino_span *sp = (wino_span *)((char *)M + m_bytes(pl, &g));
        dcb_profile mine = {{0}};
#pragma omp for schedule(dynamic, 1)
        for (long k = 0; k < nblocks; k++) {
            const long t0 = k * tb;
            run_block(pl, &g, t0, (int)(g.T - t0 < tb ? g.T - t0 : tb), H, W, x, b, y, V, M, sp, 1,
                      prof ? &mine : NULL);
        }
#pragma omp critical(dcb_wino_profile)
        dcb_profile_max(&most, &mine);
    }
    dcb_profile_add(prof, &most);
}


/* ------------------------------------------------------- the engines
 * winograd (F(4x4,3x3)) and winograd_f2 (F(2x2,3x3)): one implementation,
 * two tile sizes. */
static size_t wround(size_t n) { return (n + DCB_ALIGN - 1) / DCB_ALIGN * DCB_ALIGN; }

static dcb_status wino_check(const dcb_conv2d_p *p, const char *who) {
    if (p->kh != 3 || p->kw != 3 || p->stride != 1 || p->dil != 1)
        return dcb_fail(DCB_UNSUPPORTED_PARAM,
                        "%s: needs a 3x3 kernel, stride 1 and dilation 1 (got %dx%d, stride=%d, dilation=%d)",
                        who, p->kh, p->kw, p->stride, p->dil);
    return DCB_OK;
}

static dcb_status wino_prepare(const dcb_conv2d_p *p, int m, const float *w, void **state) {
    *state = dcb_winograd_plan_new(p, m, w);
    return *state ? DCB_OK : dcb_fail(DCB_OUT_OF_MEMORY, "winograd: out of memory for the kernel transform");
}

static void wino_release(void *state) { dcb_winograd_plan_free(state); }

static size_t wino_ws(const dcb_conv2d_p *p, int m, const void *state, int N, int H, int W, int threads) {
    if (state) return dcb_winograd_ws(state, N, H, W, threads);
    dcb_winograd_plan *pl = dcb_winograd_plan_new(p, m, NULL); /* the size depends on shapes only */
    const size_t s = pl ? dcb_winograd_ws(pl, N, H, W, threads) : 0;
    dcb_winograd_plan_free(pl);
    return s;
}

static void wino_run(const void *state, int N, int H, int W, const float *x, const float *b, float *y, void *ws,
                     int threads, dcb_profile *prof) {
    dcb_winograd_run(state, N, H, W, x, b, y, ws, threads, prof);
}

/* A kernel that changes every call: into the fused path's panel layout (the
 * float transform runs inside the GEMM loop), or, where that path does not
 * apply, a plan built in the workspace. */
static size_t wino_dyn_ws(const dcb_conv2d_p *p, int m, int N, int H, int W, int threads) {
    if (dcb_winograd_dyn_supported(p, m))
        return wround(sizeof(float) * (dcb_winograd_bank_floats(p) + DCB_OVERREAD_FLOATS)) +
               dcb_winograd_dyn_ws(p, m, N, H, W, threads);
    return wround(dcb_winograd_plan_bytes(p, m)) + wround(wino_ws(p, m, NULL, N, H, W, threads));
}

static void wino_dyn_run(const dcb_conv2d_p *p, int m, int N, int H, int W, const float *x, const float *w,
                         const float *b, float *y, void *ws, int threads, dcb_profile *prof) {
    double t0 = dcb_now();
    if (dcb_winograd_dyn_supported(p, m)) {
        float *wp = ws;
        dcb_winograd_bank_pack(p, w, wp);
        memset(wp + dcb_winograd_bank_floats(p), 0, DCB_OVERREAD_FLOATS * sizeof(float));
        DCB_PHASE_ADD(prof, DCB_PHASE_TRANSFORM, t0);
        const dcb_wino_dyn k = {wp, NULL, NULL, b, 0, 1};
        char *rest = (char *)ws + wround(sizeof(float) * (dcb_winograd_bank_floats(p) + DCB_OVERREAD_FLOATS));
        dcb_winograd_dyn_run(p, m, N, H, W, x, &k, y, rest, threads, prof);
        return;
    }
    dcb_winograd_plan *pl = dcb_winograd_plan_init(ws, p, m, w);
    DCB_PHASE_ADD(prof, DCB_PHASE_TRANSFORM, t0);
    dcb_winograd_run(pl, N, H, W, x, b, y, (char *)ws + wround(dcb_winograd_plan_bytes(p, m)), threads, prof);
}

static void wino_bank_run(const dcb_conv2d_p *p, int m, int N, int H, int W, const float *x, const dcb_dyn_bank *k,
                          float *y, void *ws, int threads, dcb_profile *prof) {
    const dcb_wino_dyn d = {NULL, k->bank, k->r, k->b, k->E, 0};
    dcb_winograd_bank_run(p, m, N, H, W, x, &d, y, ws, threads, prof);
}

/* Multiplications in the transformed domain: (m+2)^2 per m x m tile. */
static double wino_executed(const dcb_conv2d_p *p, int m, int N, int H, int W) {
    const int a = m + 2;
    const double ho = H + 2.0 * p->pad - 2, wo = W + 2.0 * p->pad - 2;
    return (double)N * ceil(ho / m) * ceil(wo / m) * a * a * (p->cin / p->groups) * p->cout;
}

#define WINO_ENGINE(NAME, M, DOC, TOL)                                                                               \
    static dcb_status NAME##_prepare(const dcb_conv2d_p *p, const float *w, void **state) {                          \
        return wino_prepare(p, M, w, state);                                                                         \
    }                                                                                                                \
    static size_t NAME##_ws(const dcb_conv2d_p *p, const void *state, int N, int H, int W, int threads) {            \
        return wino_ws(p, M, state, N, H, W, threads);                                                               \
    }                                                                                                                \
    static void NAME##_run(const dcb_conv2d_p *p, const void *state, int N, int H, int W, const float *x,            \
                           const float *w, const float *b, float *y, void *ws, int threads, dcb_profile *prof) {      \
        (void)p, (void)w;                                                                                            \
        wino_run(state, N, H, W, x, b, y, ws, threads, prof);                                                        \
    }                                                                                                                \
    static size_t NAME##_dyn_ws(const dcb_conv2d_p *p, int N, int H, int W, int threads) {                           \
        return wino_dyn_ws(p, M, N, H, W, threads);                                                                  \
    }                                                                                                                \
    static void NAME##_dyn_run(const dcb_conv2d_p *p, int N, int H, int W, const float *x, const float *w,           \
                               const float *b, float *y, void *ws, int threads, dcb_profile *prof) {                 \
        wino_dyn_run(p, M, N, H, W, x, w, b, y, ws, threads, prof);                                                  \
    }                                                                                                                \
    static int NAME##_bank_ok(const dcb_conv2d_p *p) { return dcb_winograd_dyn_supported(p, M); }                    \
    static size_t NAME##_bank_ws(const dcb_conv2d_p *p, int N, int H, int W, int E, int threads) {                   \
        return dcb_winograd_bank_ws(p, M, N, H, W, E, threads);                                                      \
    }                                                                                                                \
    static void NAME##_bank_run(const dcb_conv2d_p *p, int N, int H, int W, const float *x, const dcb_dyn_bank *k,   \
                                float *y, void *ws, int threads, dcb_profile *prof) {                                \
        wino_bank_run(p, M, N, H, W, x, k, y, ws, threads, prof);                                                    \
    }                                                                                                                \
    static double NAME##_executed(const dcb_conv2d_p *p, int N, int H, int W) {                                      \
        return wino_executed(p, M, N, H, W);                                                                         \
    }                                                                                                                \
    const dcb_engine_desc dcb_engine_##NAME = {                                                                      \
        .name = #NAME,                                                                                               \
        .doc = DOC,                                                                                                  \
        .tol = TOL,                                                                                                  \
        .check = wino_check,                                                                                         \
        .prepare = NAME##_prepare,                                                                                   \
        .release = wino_release,                                                                                     \
        .workspace = NAME##_ws,                                                                                      \
        .run = NAME##_run,                                                                                           \
        .dyn_workspace = NAME##_dyn_ws,                                                                              \
        .dyn_run = NAME##_dyn_run,                                                                                   \
        .bank_supported = NAME##_bank_ok,                                                                            \
        .bank_floats = dcb_winograd_bank_floats,                                                                     \
        .bank_pack = dcb_winograd_bank_pack,                                                                         \
        .bank_workspace = NAME##_bank_ws,                                                                            \
        .bank_run = NAME##_bank_run,                                                                                 \
        .executed_macs = NAME##_executed,                                                                            \
    };

WINO_ENGINE(winograd, 4, "Winograd F(4x4,3x3): 3x3, stride 1, dilation 1", 5e-5)
WINO_ENGINE(winograd_f2, 2, "Winograd F(2x2,3x3): 3x3, stride 1, dilation 1", 1e-5)
WINO_ENGINE(winograd_f6, 6, "Winograd F(6x6,3x3): 3x3, stride 1, dilation 1", 2e-4)
