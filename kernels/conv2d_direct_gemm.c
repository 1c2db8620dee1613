/* The direct engine's implicit GEMM (conv2d_direct.c dispatches to it for
 * every conv2d that is not depthwise: 1x1 above all, and k > 1 with
 * groups < cin), per image and group,
 *   y_g (cout_g x Ho*Wo) = W_g (cout_g x K) * B_g (K x Ho*Wo),
 *   K = cin_g*kh*kw, row (c, u, v) of B = input channel c shifted by (u, v),
 *   where B is never formed: blocks of NB*nr columns and KC rows are packed
 *   straight from x into [NB][KC][nr] panels (a plain copy for 1x1 stride 1),
 *   nr the micro-kernel's panel width (16; 32 for avx512: ukernels.h), and
 *   the micro-kernel multiplies them by W_g, packed [K][6] per panel of 6
 *   rows (in prepare for static weights; into the workspace for dynamic
 *   ones). Block sizes: an nr-column panel of KC rows (<= 20 KiB at nr = 16,
 *   <= 32 KiB at 32) stays in L1 while the 6-row weight panels stream from
 *   L2; the B block (<= 160 KiB) and the weights of an MC-row block share L2. */
#include "dcb_internal.h"
#include "ukernels/ukernels.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define MR DCB_UK_MR
#define KC_MAX 320   /* rows of B per block at nr = 16 (256 at 32) */
#define NB_COLS 128  /* columns per B block: NB_COLS / nr panels */
#define MC_PANELS 24 /* 6-row weight panels per L2 block (144 rows) */

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* ================================================================= GEMM path */
typedef struct gplan {
    int nr, nb_max;              /* panel width, panels per B block */
    int cig, cog, K, panels;     /* weight panels of 6 rows per group */
    int kc, nkb;                 /* K blocks */
    int Ho, Wo, P, mp;           /* output plane, its 16-column panels */
    int nblk;                    /* column blocks per (image, group) */
} gplan;

static gplan make_gplan(const dcb_conv2d_p *p, int N, int H, int W, int threads) {
    gplan g;
    g.nr = dcb_uk()->nr;
    g.nb_max = NB_COLS / g.nr;
    const int kc_max = g.nr > 16 ? 256 : KC_MAX;
    g.cig = p->cin / p->groups;
    g.cog = p->cout / p->groups;
    g.K = g.cig * p->kh * p->kw;
    g.panels = (g.cog + MR - 1) / MR;
    g.nkb = (g.K + kc_max - 1) / kc_max;
    g.kc = (g.K + g.nkb - 1) / g.nkb;
    g.Ho = dcb_conv_out(H, p->kh, p->stride, p->pad, p->dil);
    g.Wo = dcb_conv_out(W, p->kw, p->stride, p->pad, p->dil);
    g.P = g.Ho * g.Wo;
    g.mp = (g.P + g.nr - 1) / g.nr;
    g.nblk = (g.mp + g.nb_max - 1) / g.nb_max;
    /* an equal share of blocks for every thread (blocks differ by at most one panel) */
    const long per_img = (long)N * p->groups;
    while (threads > 1 && (per_img * g.nblk) % threads && g.nblk < g.mp) g.nblk++;
    return g;
}

size_t dcb_direct_gemm_wpack_bytes(const dcb_conv2d_p *p) {
    const int cig = p->cin / p->groups, cog = p->cout / p->groups;
    const size_t panels = (size_t)(cog + MR - 1) / MR;
    return sizeof(float) * (size_t)p->groups * panels * MR * cig * p->kh * p->kw;
}

/* [g][panel][K][6]; the rows past cout_g are zero. */
void dcb_direct_gemm_pack_weights(const dcb_conv2d_p *p, const float *w, float *wp) {
    const int cig = p->cin / p->groups, cog = p->cout / p->groups, K = cig * p->kh * p->kw;
    const int panels = (cog + MR - 1) / MR;
    for (int g = 0; g < p->groups; g++)
        for (int pi = 0; pi < panels; pi++) {
            float *dst = wp + ((size_t)g * panels + pi) * K * MR;
            for (int k = 0; k < K; k++)
                for (int r = 0; r < MR; r++) {
                    const int o = pi * MR + r;
                    dst[(size_t)k * MR + r] = o < cog ? w[((size_t)g * cog + o) * K + k] : 0.0f;
                }
        }
}

static size_t gemm_thread_floats(const gplan *g) {
    /* B block + one im2col line of the block (+ nr for whole-panel copies) */
    return round_up((size_t)NB_COLS * g->kc + (size_t)NB_COLS + g->nr, DCB_ALIGN / sizeof(float));
}

static inline int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/* One row (c, u, v) of the implicit B for columns j0 .. j0+n-1: line[t]. */
static void b_line(const dcb_conv2d_p *p, const gplan *g, int H, int W, const float *xc, int u, int v, int j0,
                   int n, float *line) {
    const int s = p->stride, off = v * p->dil - p->pad;
    int i = j0 / g->Wo, jj = j0 % g->Wo;
    for (int t = 0; t < n;) {
        const int run = g->Wo - jj < n - t ? g->Wo - jj : n - t;
        const int ii = i * s + u * p->dil - p->pad;
        float *d = line + t;
        if (ii < 0 || ii >= H) {
            memset(d, 0, sizeof(float) * run);
        } else {
            /* valid q in [lo, hi): 0 <= (jj + q) * s + off < W */
            int lo = -floor_div(off + jj * s, s);
            int hi = floor_div(W - 1 - off - jj * s, s) + 1;
            if (lo < 0) lo = 0;
            if (hi > run) hi = run;
            if (hi < lo) hi = lo = 0;
            const float *xr = xc + (size_t)ii * W + (size_t)jj * s + off;
            for (int q = 0; q < lo; q++) d[q] = 0.0f;
            if (s == 1)
                memcpy(d + lo, xr + lo, sizeof(float) * (hi - lo));
            else
                for (int q = lo; q < hi; q++) d[q] = xr[(size_t)q * s];
            for (int q = hi; q < run; q++) d[q] = 0.0f;
        }
        t += run;
        jj = 0;
        i++;
    }
}

/* Rows k0 .. k0+kc-1, columns j0 .. j0+n-1 of B into bp [panel][kc][nr],
 * zero past column n. */
static void pack_b(const dcb_conv2d_p *p, const gplan *g, int H, int W, const float *xg, int k0, int kc, int j0,
                   int n, float *bp, float *line) {
    const int NR = g->nr, npan = (n + NR - 1) / NR;
    const int plain = p->kh == 1 && p->kw == 1 && p->stride == 1 && p->pad == 0;
    const int kk = p->kh * p->kw;
    for (int k = 0; k < kc; k++) {
        const int kg = k0 + k, c = kg / kk, u = (kg % kk) / p->kw, v = kg % p->kw;
        const float *src;
        if (plain) {
            src = xg + (size_t)c * H * W + j0;
        } else {
            b_line(p, g, H, W, xg + (size_t)c * H * W, u, v, j0, n, line);
            src = line;
        }
        for (int pi = 0; pi < npan; pi++) {
            float *d = bp + ((size_t)pi * kc + k) * NR;
            const int m = n - pi * NR;
            if (m >= NR)
                memcpy(d, src + pi * NR, sizeof(float) * NR);
            else {
                memcpy(d, src + pi * NR, sizeof(float) * m);
                memset(d + m, 0, sizeof(float) * (NR - m));
            }
        }
    }
}

size_t dcb_direct_gemm_ws(const dcb_conv2d_p *p, int N, int H, int W, int threads) {
    const gplan g = make_gplan(p, N, H, W, threads);
    return sizeof(float) * gemm_thread_floats(&g) * threads;
}

/* C (mr x nr) (+)= a weight panel [kc][6] * a B panel (+ bias per row, in the
 * last K block): the packed panel [kc][nr], or, for 1x1 stride 1, rows of x
 * itself, copied on the way into the packed panel for the panel's next row
 * blocks ("fused packing", gemm_pack: x is read once, and no separate
 * packing pass goes through L2). */
void dcb_direct_gemm_run(const dcb_conv2d_p *p, int N, int H, int W, const float *x, const float *wp,
                         const float *b, float *y, void *ws, int threads) {
    const gplan g = make_gplan(p, N, H, W, threads);
    const dcb_ukernels *uk = dcb_uk();
    const int NR = g.nr;
    const size_t tf = gemm_thread_floats(&g);
    const long items = (long)N * p->groups * g.nblk;
#pragma omp parallel num_threads(threads) if (threads > 1 && items > 1)
    {
        float *bp = (float *)ws + (size_t)thread_id() * tf;
        float *line = bp + (size_t)NB_COLS * g.kc;
#pragma omp for schedule(static)
        for (long it = 0; it < items; it++) {
            const int blk = (int)(it % g.nblk), gi = (int)(it / g.nblk % p->groups);
            const int n = (int)(it / g.nblk / p->groups);
            /* panels [mp*blk/nblk, mp*(blk+1)/nblk) */
            const int p0 = (int)((long)g.mp * blk / g.nblk), p1 = (int)((long)g.mp * (blk + 1) / g.nblk);
            const int j0 = p0 * NR, ncol = (p1 * NR < g.P ? p1 * NR : g.P) - j0;
            if (ncol <= 0) continue;
            const float *xg = x + ((size_t)n * p->cin + (size_t)gi * g.cig) * H * W;
            float *yg = y + ((size_t)n * p->cout + (size_t)gi * g.cog) * g.P;
            const float *wg = wp + (size_t)gi * g.panels * g.K * MR;
            const float *bg = b ? b + (size_t)gi * g.cog : NULL;
            const int plain = p->kh == 1 && p->kw == 1 && p->stride == 1 && p->pad == 0;
            for (int kb = 0; kb < g.nkb; kb++) {
                const int k0 = kb * g.kc, kc = g.K - k0 < g.kc ? g.K - k0 : g.kc;
                if (!plain) pack_b(p, &g, H, W, xg, k0, kc, j0, ncol, bp, line);
                const int last = kb == g.nkb - 1;
                for (int ic = 0; ic < g.panels; ic += MC_PANELS) {
                    const int ie = ic + MC_PANELS < g.panels ? ic + MC_PANELS : g.panels;
                    for (int jr = 0; jr * NR < ncol; jr++) {
                        const int nr = ncol - jr * NR < NR ? ncol - jr * NR : NR;
                        float *bpan = bp + (size_t)jr * kc * NR;
                        /* the first row block packs while it multiplies; a
                         * ragged last panel is packed apart (zero-filled) */
                        const float *bsrc = NULL;
                        if (plain && ic == 0) {
                            if (nr == NR)
                                bsrc = xg + (size_t)k0 * g.P + j0 + jr * NR;
                            else
                                pack_b(p, &g, H, W, xg, k0, kc, j0 + jr * NR, nr, bpan, line);
                        }
                        for (int ir = ic; ir < ie; ir++) {
                            const int mr = g.cog - ir * MR < MR ? g.cog - ir * MR : MR;
                            const float *a = wg + ((size_t)ir * g.K + k0) * MR;
                            float *c = yg + (size_t)ir * MR * g.P + j0 + jr * NR;
                            const float *bias = last && bg ? bg + ir * MR : NULL;
                            if (ir == ic && bsrc)
                                uk->gemm_pack(kc, a, bsrc, (size_t)g.P, bpan, c, (size_t)g.P, mr, kb > 0, bias);
                            else
                                uk->gemm(kc, a, bpan, NR, c, (size_t)g.P, mr, nr, kb > 0, bias);
                        }
                    }
                }
            }
        }
    }
}
