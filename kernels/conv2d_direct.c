/* The "direct" conv2d engine: no im2col matrix in memory, no BLAS.
 *
 * Depthwise (groups == cin, any multiplier, kernel, stride, pad, dilation):
 *   every input plane is copied once into a zero-bordered buffer whose rows
 *   are split into `stride` phases (phase q holds padded columns q, q+s,
 *   q+2s, ...), so that for any stride the outputs j..j+7 of one tap read 8
 *   consecutive floats; the taps then run as broadcast-FMAs along the output
 *   row with no bounds checks.
 *
 * Everything else (1x1 above all, and k > 1 with groups < cin) is an
 * implicit GEMM per image and group,
 *   y_g (cout_g x Ho*Wo) = W_g (cout_g x K) * B_g (K x Ho*Wo),
 *   K = cin_g*kh*kw, row (c, u, v) of B = input channel c shifted by (u, v),
 *   where B is never formed: blocks of NB*16 columns and KC rows are packed
 *   straight from x into [NB][KC][16] panels (a plain copy for 1x1 stride 1),
 *   and a 6x16 register tile multiplies them by W_g, packed [K][6] per panel
 *   of 6 rows (in prepare for static weights; into the workspace for
 *   dynamic ones). Block sizes: a 16-column panel of KC rows (<= 20 KiB)
 *   stays in L1 while the 6-row weight panels stream from L2; the B block
 *   (<= 160 KiB) and the weights of an MC-row block share L2. */
#include "dcb_internal.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define DIRECT_AVX2 1
#endif

#if defined(__GNUC__)
#define PREFETCH_L2(p) __builtin_prefetch((p), 0, 2)
#else
#define PREFETCH_L2(p) ((void)(p))
#endif

#define MR 6
#define NR 16
#define KC_MAX 320   /* rows of B per block */
#define NB_MAX 8     /* 16-column panels per B block */
#define MC_PANELS 24 /* 6-row weight panels per L2 block (144 rows) */

static int is_depthwise(const dcb_conv2d_p *p) { return p->groups == p->cin; }

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
    int cig, cog, K, panels;     /* weight panels of 6 rows per group */
    int kc, nkb;                 /* K blocks */
    int Ho, Wo, P, mp;           /* output plane, its 16-column panels */
    int nblk;                    /* column blocks per (image, group) */
} gplan;

static gplan make_gplan(const dcb_conv2d_p *p, int N, int H, int W, int threads) {
    gplan g;
    g.cig = p->cin / p->groups;
    g.cog = p->cout / p->groups;
    g.K = g.cig * p->kh * p->kw;
    g.panels = (g.cog + MR - 1) / MR;
    g.nkb = (g.K + KC_MAX - 1) / KC_MAX;
    g.kc = (g.K + g.nkb - 1) / g.nkb;
    g.Ho = dcb_conv_out(H, p->kh, p->stride, p->pad, p->dil);
    g.Wo = dcb_conv_out(W, p->kw, p->stride, p->pad, p->dil);
    g.P = g.Ho * g.Wo;
    g.mp = (g.P + NR - 1) / NR;
    g.nblk = (g.mp + NB_MAX - 1) / NB_MAX;
    /* an equal share of blocks for every thread (blocks differ by at most one panel) */
    const long per_img = (long)N * p->groups;
    while (threads > 1 && (per_img * g.nblk) % threads && g.nblk < g.mp) g.nblk++;
    return g;
}

size_t dcb_direct_wpack_bytes(const dcb_conv2d_p *p) {
    if (is_depthwise(p)) return 0;
    const int cig = p->cin / p->groups, cog = p->cout / p->groups;
    const size_t panels = (size_t)(cog + MR - 1) / MR;
    return sizeof(float) * (size_t)p->groups * panels * MR * cig * p->kh * p->kw;
}

/* [g][panel][K][6]; the rows past cout_g are zero. */
void dcb_direct_pack_weights(const dcb_conv2d_p *p, const float *w, float *wp) {
    if (is_depthwise(p)) return;
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
    /* B block + one im2col line of the block (+ 16 for whole-panel copies) */
    return round_up((size_t)NB_MAX * NR * g->kc + (size_t)NB_MAX * NR + NR, DCB_ALIGN / sizeof(float));
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

/* Rows k0 .. k0+kc-1, columns j0 .. j0+n-1 of B into bp [panel][kc][16],
 * zero past column n. */
static void pack_b(const dcb_conv2d_p *p, const gplan *g, int H, int W, const float *xg, int k0, int kc, int j0,
                   int n, float *bp, float *line) {
    const int npan = (n + NR - 1) / NR;
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

/* C (mr x nr, ld ldc) (+)= A panel [kc][6] * B (+ bias per row).
 * B is the packed panel [kc][16] (bsrc = NULL), or, for 1x1 stride 1, rows
 * of x itself: bsrc with leading dimension ldb, copied on the way into the
 * packed panel b for the panel's next row blocks ("fused packing": x is
 * read once, and no separate packing pass goes through L2).
 * mr <= 4 takes a 4-row kernel: 64 rows are 10 panels of 6 and one of 4. */
#ifdef DIRECT_AVX2
#define ROWS6(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define ROWS4(X) X(0) X(1) X(2) X(3)
/* named accumulators: with an array GCC keeps them in memory */
#define K_DECL(r) __m256 c##r##0 = _mm256_setzero_ps(), c##r##1 = _mm256_setzero_ps();
#define K_FMA(r)                                       \
    {                                                  \
        const __m256 w = _mm256_broadcast_ss(a + r);   \
        c##r##0 = _mm256_fmadd_ps(w, b0, c##r##0);     \
        c##r##1 = _mm256_fmadd_ps(w, b1, c##r##1);     \
    }
#define K_BIAS(r)                                                  \
    if (r < mr) {                                                  \
        const __m256 bb = _mm256_broadcast_ss(bias + r);           \
        c##r##0 = _mm256_add_ps(c##r##0, bb);                      \
        c##r##1 = _mm256_add_ps(c##r##1, bb);                      \
    }
#define K_STORE(r)                                                     \
    if (r < mr) {                                                      \
        float *cr = c + r * ldc;                                       \
        if (accumulate) {                                              \
            c##r##0 = _mm256_add_ps(c##r##0, _mm256_loadu_ps(cr));     \
            c##r##1 = _mm256_add_ps(c##r##1, _mm256_loadu_ps(cr + 8)); \
        }                                                              \
        _mm256_storeu_ps(cr, c##r##0);                                 \
        _mm256_storeu_ps(cr + 8, c##r##1);                             \
    }
#define K_SPILL(r)                           \
    _mm256_storeu_ps(buf[r], c##r##0);       \
    _mm256_storeu_ps(buf[r] + 8, c##r##1);

#define DEFINE_KERN(name, ROWS)                                                                            \
    static void name(int kc, const float *a, float *b, const float *bsrc, size_t ldb, float *c,         \
                     size_t ldc, int mr, int nr, int accumulate, const float *bias) {                      \
        ROWS(K_DECL)                                                                                       \
        if (bsrc) {                                                                                        \
            for (int k = 0; k < kc; k++, a += MR, b += NR, bsrc += ldb) {                                  \
                const __m256 b0 = _mm256_loadu_ps(bsrc), b1 = _mm256_loadu_ps(bsrc + 8);                   \
                PREFETCH_L2(bsrc + NR); /* the next panel's columns */                                     \
                _mm256_store_ps(b, b0);                                                                    \
                _mm256_store_ps(b + 8, b1);                                                                \
                ROWS(K_FMA)                                                                                \
            }                                                                                              \
        } else {                                                                                           \
            _Pragma("GCC unroll 4") for (int k = 0; k < kc; k++, a += MR, b += NR) {                       \
                const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);                           \
                ROWS(K_FMA)                                                                                \
            }                                                                                              \
        }                                                                                                  \
        if (bias) { ROWS(K_BIAS) }                                                                         \
        if (nr == NR) {                                                                                    \
            ROWS(K_STORE)                                                                                  \
            return;                                                                                        \
        }                                                                                                  \
        float buf[MR][NR];                                                                                 \
        ROWS(K_SPILL)                                                                                      \
        for (int r = 0; r < mr; r++)                                                                       \
            for (int t = 0; t < nr; t++)                                                                   \
                c[r * ldc + t] = accumulate ? c[r * ldc + t] + buf[r][t] : buf[r][t];                      \
    }
DEFINE_KERN(kern_6x16, ROWS6)
DEFINE_KERN(kern_4x16, ROWS4)
#else
static void kern_6x16(int kc, const float *a, float *b, const float *bsrc, size_t ldb, float *c, size_t ldc,
                      int mr, int nr, int accumulate, const float *bias) {
    float acc[MR][NR] = {{0}};
    for (int k = 0; k < kc; k++, a += MR, b += NR) {
        if (bsrc) {
            memcpy(b, bsrc, sizeof(float) * NR);
            bsrc += ldb;
        }
        for (int r = 0; r < MR; r++)
            for (int t = 0; t < NR; t++) acc[r][t] += a[r] * b[t];
    }
    for (int r = 0; r < mr; r++)
        for (int t = 0; t < nr; t++) {
            const float v = acc[r][t] + (bias ? bias[r] : 0.0f);
            c[r * ldc + t] = accumulate ? c[r * ldc + t] + v : v;
        }
}
#define kern_4x16 kern_6x16
#endif

static void gemm_conv(const dcb_conv2d_p *p, int N, int H, int W, const float *x, const float *wp,
                      const float *b, float *y, void *ws, int threads) {
    const gplan g = make_gplan(p, N, H, W, threads);
    const size_t tf = gemm_thread_floats(&g);
    const long items = (long)N * p->groups * g.nblk;
#pragma omp parallel num_threads(threads) if (threads > 1 && items > 1)
    {
        float *bp = (float *)ws + (size_t)thread_id() * tf;
        float *line = bp + (size_t)NB_MAX * NR * g.kc;
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
                            (mr > 4 ? kern_6x16 : kern_4x16)(kc, wg + ((size_t)ir * g.K + k0) * MR, bpan,
                                                             ir == ic ? bsrc : NULL, (size_t)g.P,
                                                             yg + (size_t)ir * MR * g.P + j0 + jr * NR,
                                                             (size_t)g.P, mr, nr, kb > 0,
                                                             last && bg ? bg + ir * MR : NULL);
                        }
                    }
                }
            }
        }
    }
}

/* ============================================================ depthwise path */
typedef struct dplan {
    int Ho, Wo, Hp, s, Wq, Wo8;  /* padded rows, phases, phase width */
} dplan;

static dplan make_dplan(const dcb_conv2d_p *p, int H, int W) {
    dplan d;
    d.Ho = dcb_conv_out(H, p->kh, p->stride, p->pad, p->dil);
    d.Wo = dcb_conv_out(W, p->kw, p->stride, p->pad, p->dil);
    d.s = p->stride;
    d.Hp = H + 2 * p->pad;
    const int Wp = W + 2 * p->pad;
    d.Wo8 = (d.Wo + 7) / 8 * 8;
    /* room for whole 8-lane vectors past Wo: they read zeros (or the next
     * channel's nothing) and their lanes are dropped */
    int need = d.Wo8 + (p->kw - 1) * p->dil / d.s + 1;
    const int have = (Wp + d.s - 1) / d.s;
    d.Wq = (int)round_up((size_t)(need > have ? need : have), 8);
    return d;
}

static size_t dw_thread_floats(const dplan *d) {
    return round_up((size_t)d->Hp * d->s * d->Wq, DCB_ALIGN / sizeof(float));
}

/* Padded row r, phase q, position t: buf[(r * s + q) * Wq + t]. Only the
 * interior is written: the border stays zero from the first fill. */
static void dw_fill(const dcb_conv2d_p *p, const dplan *d, int H, int W, const float *xc, float *buf) {
    const int s = d->s, pad = p->pad;
    for (int i = 0; i < H; i++) {
        const float *xr = xc + (size_t)i * W;
        float *row = buf + (size_t)(i + pad) * s * d->Wq;
        if (s == 1) {
            memcpy(row + pad, xr, sizeof(float) * W);
            continue;
        }
        int j = 0;
#ifdef DIRECT_AVX2
        if (s == 2) {
            /* even and odd columns of 16 at a time: x[j + 2t] lands in phase
             * (pad & 1) at j/2 + pad/2 + t, x[j + 1 + 2t] in the other phase
             * at j/2 + (pad + 1)/2 + t */
            float *pe = row + (size_t)(pad & 1) * d->Wq + (pad >> 1);
            float *po = row + (size_t)((pad + 1) & 1) * d->Wq + ((pad + 1) >> 1);
            for (; j + 16 <= W; j += 16) {
                const __m256 lo = _mm256_loadu_ps(xr + j), hi = _mm256_loadu_ps(xr + j + 8);
                const __m256 ev = _mm256_shuffle_ps(lo, hi, 0x88), od = _mm256_shuffle_ps(lo, hi, 0xDD);
                _mm256_storeu_ps(pe + j / 2, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), 0xD8)));
                _mm256_storeu_ps(po + j / 2, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od), 0xD8)));
            }
            const __m256i split = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
            for (; j + 8 <= W; j += 8) {
                const __m256 v = _mm256_permutevar8x32_ps(_mm256_loadu_ps(xr + j), split);
                _mm_storeu_ps(pe + j / 2, _mm256_castps256_ps128(v));
                _mm_storeu_ps(po + j / 2, _mm256_extractf128_ps(v, 1));
            }
        }
#endif
        /* the rest one by one, the phase and position counted (no division) */
        int q = (j + pad) % s, t = (j + pad) / s;
        for (; j < W; j++) {
            row[(size_t)q * d->Wq + t] = xr[j];
            if (++q == s) q = 0, t++;
        }
    }
}

#ifdef DIRECT_AVX2
/* nv (1..4) vectors of 8 outputs from src (tap offsets off[]); constant nv
 * after inlining keeps the accumulators in registers. */
static inline void dw_vecs(int nv, int kk, const float *wt, const int *off, const float *src, float bias,
                           float *dst, int nvalid) {
    __m256 acc[4];
    for (int v = 0; v < 4; v++)
        if (v < nv) acc[v] = _mm256_set1_ps(bias);
    for (int t = 0; t < kk; t++) {
        const __m256 w = _mm256_broadcast_ss(wt + t);
        const float *q = src + off[t];
        for (int v = 0; v < 4; v++)
            if (v < nv) acc[v] = _mm256_fmadd_ps(w, _mm256_loadu_ps(q + 8 * v), acc[v]);
    }
    if (nvalid == 8 * nv) {
        for (int v = 0; v < 4; v++)
            if (v < nv) _mm256_storeu_ps(dst + 8 * v, acc[v]);
    } else {
        float tmp[32];
        for (int v = 0; v < 4; v++)
            if (v < nv) _mm256_storeu_ps(tmp + 8 * v, acc[v]);
        for (int j = 0; j < nvalid; j++) dst[j] = tmp[j]; /* once per plane */
    }
}
#endif

static void dw_channel(const dcb_conv2d_p *p, const dplan *d, const float *buf, const float *wt, const int *off,
                       float bias, float *yc) {
    const int kk = p->kh * p->kw;
    const size_t rs = (size_t)d->s * d->s * d->Wq; /* buffer step per output row */
    for (int i = 0; i < d->Ho; i++) {
        const float *src = buf + (size_t)i * rs;
        float *yr = yc + (size_t)i * d->Wo;
#ifdef DIRECT_AVX2
        int j = 0;
        for (; j + 32 <= d->Wo; j += 32) dw_vecs(4, kk, wt, off, src + j, bias, yr + j, 32);
        int rest = d->Wo - j;
        const int nv = (rest + 7) / 8;
        /* whole vectors may spill into the rows below, which are written
         * after this one: only the plane's end needs the careful store */
        if ((size_t)i * d->Wo + j + 8 * nv <= (size_t)d->Ho * d->Wo) rest = 8 * nv;
        switch (nv) {
        case 1: dw_vecs(1, kk, wt, off, src + j, bias, yr + j, rest); break;
        case 2: dw_vecs(2, kk, wt, off, src + j, bias, yr + j, rest); break;
        case 3: dw_vecs(3, kk, wt, off, src + j, bias, yr + j, rest); break;
        case 4: dw_vecs(4, kk, wt, off, src + j, bias, yr + j, rest); break;
        default: break;
        }
#else
        for (int j = 0; j < d->Wo; j++) yr[j] = bias;
        for (int t = 0; t < kk; t++) {
            const float w = wt[t];
            const float *q = src + off[t];
            for (int j = 0; j < d->Wo; j++) yr[j] += w * q[j];
        }
#endif
    }
}

static size_t dw_off_bytes(const dcb_conv2d_p *p) {
    return round_up(sizeof(int) * (size_t)p->kh * p->kw, DCB_ALIGN);
}

static void dw_conv(const dcb_conv2d_p *p, int N, int H, int W, const float *x, const float *w, const float *b,
                    float *y, void *ws, int threads) {
    const dplan d = make_dplan(p, H, W);
    const size_t tf = dw_thread_floats(&d);
    const int mult = p->cout / p->cin, kk = p->kh * p->kw;
    const long items = (long)N * p->cin;
    /* the tap offsets, then a buffer per thread */
    int *off = ws;
    for (int u = 0; u < p->kh; u++)
        for (int v = 0; v < p->kw; v++) {
            const int du = u * p->dil, dv = v * p->dil;
            off[u * p->kw + v] = (du * d.s + dv % d.s) * d.Wq + dv / d.s;
        }
    float *bufs = (float *)((char *)ws + dw_off_bytes(p));
#pragma omp parallel num_threads(threads) if (threads > 1 && items > 1)
    {
        float *buf = bufs + (size_t)thread_id() * tf;
        memset(buf, 0, sizeof(float) * tf);
#pragma omp for schedule(static)
        for (long it = 0; it < items; it++) {
            const int n = (int)(it / p->cin), c = (int)(it % p->cin);
            dw_fill(p, &d, H, W, x + ((size_t)n * p->cin + c) * H * W, buf);
            for (int m = 0; m < mult; m++) {
                const int o = c * mult + m;
                dw_channel(p, &d, buf, w + (size_t)o * kk, off, b ? b[o] : 0.0f,
                           y + ((size_t)n * p->cout + o) * d.Ho * d.Wo);
            }
        }
    }
}

/* ==================================================================== entry */
size_t dcb_direct_ws(const dcb_conv2d_p *p, int N, int H, int W, int threads) {
    if (threads < 1) threads = 1;
    if (is_depthwise(p)) {
        const dplan d = make_dplan(p, H, W);
        return dw_off_bytes(p) + sizeof(float) * dw_thread_floats(&d) * threads;
    }
    const gplan g = make_gplan(p, N, H, W, threads);
    return sizeof(float) * gemm_thread_floats(&g) * threads;
}

void dcb_direct_run(const dcb_conv2d_p *p, int N, int H, int W, const float *x, const float *w,
                    const float *wpacked, const float *b, float *y, void *ws, int threads, dcb_profile *prof) {
    if (threads < 1) threads = 1;
    const double t0 = dcb_now();
    if (is_depthwise(p))
        dw_conv(p, N, H, W, x, w, b, y, ws, threads);
    else
        gemm_conv(p, N, H, W, x, wpacked, b, y, ws, threads);
    DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
}

/* ------------------------------------------------------- the engine */
static size_t dround(size_t n) { return (n + DCB_ALIGN - 1) / DCB_ALIGN * DCB_ALIGN; }

static dcb_status direct_engine_prepare(const dcb_conv2d_p *p, const float *w, void **state) {
    *state = NULL;
    const size_t bytes = dcb_direct_wpack_bytes(p);
    if (!bytes) return DCB_OK; /* depthwise reads the weights as they are */
    float *wp = dcb_aligned_alloc(bytes);
    if (!wp) return dcb_fail(DCB_OUT_OF_MEMORY, "direct: out of memory for the packed weights (%zu bytes)", bytes);
    dcb_direct_pack_weights(p, w, wp);
    *state = wp;
    return DCB_OK;
}

static void direct_engine_release(void *state) { dcb_aligned_free(state); }

static size_t direct_engine_ws(const dcb_conv2d_p *p, const void *state, int N, int H, int W, int threads) {
    (void)state;
    return dcb_direct_ws(p, N, H, W, threads);
}

static void direct_engine_run(const dcb_conv2d_p *p, const void *state, int N, int H, int W, const float *x,
                              const float *w, const float *b, float *y, void *ws, int threads, dcb_profile *prof) {
    dcb_direct_run(p, N, H, W, x, w, state, b, y, ws, threads, prof);
}

/* A kernel that changes every call is packed into the workspace first. */
static size_t direct_engine_dyn_ws(const dcb_conv2d_p *p, int N, int H, int W, int threads) {
    return dround(dcb_direct_wpack_bytes(p)) + dcb_direct_ws(p, N, H, W, threads);
}

static void direct_engine_dyn(const dcb_conv2d_p *p, int N, int H, int W, const float *x, const float *w,
                              const float *b, float *y, void *ws, int threads, dcb_profile *prof) {
    double t0 = dcb_now();
    dcb_direct_pack_weights(p, w, ws);
    DCB_PHASE_ADD(prof, DCB_PHASE_TRANSFORM, t0);
    char *rest = (char *)ws + dround(dcb_direct_wpack_bytes(p));
    dcb_direct_run(p, N, H, W, x, w, (const float *)ws, b, y, rest, threads, prof);
}

const dcb_engine_desc dcb_engine_direct = {
    .name = "direct",
    .doc = "depthwise as direct loops, the rest as implicit GEMM with a packed AVX2 6x16 micro-kernel",
    .tol = 2e-6,
    .prepare = direct_engine_prepare,
    .release = direct_engine_release,
    .workspace = direct_engine_ws,
    .run = direct_engine_run,
    .dyn_workspace = direct_engine_dyn_ws,
    .dyn_run = direct_engine_dyn,
};
