/* The dynamic path of the Winograd engine (conv2d_winograd.h has what it
 * shares with the static one in conv2d_winograd.c): kernels known only
 * inside run, transformed in float and fused with the GEMM. */
#include "conv2d_winograd.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ============================================================ dynamic kernels
 * Per-sample kernels (condconv, dyconv, weightnet): the kernel transform is
 * part of every run, so it is done in float, vectorised, and fused with the
 * GEMM instead of materialising a whole plan per sample (9.4 MB at C=256,
 * written and read back from memory).
 *
 * The spatial kernels are consumed in "panel layout" [group][panel][cin_g][9][6]:
 * the 9 taps of the 6 output channels of one micro-kernel panel side by side,
 * rows past cout_g zero. One 8-lane vector then holds one tap of a panel's
 * 6 channels, so the transform writes U's packed [cin_g][6] rows with plain
 * stores (lanes 6, 7 spill into the next slot and are overwritten by it).
 * Mixing a bank in that layout is elementwise, so condconv / dyconv keep
 * their experts in it (prepare) and mix straight into it.
 *
 * Work is split in blocks of OB output channels (whole panels): per block and
 * sample, the kernel rows are mixed (or copied), then for each row i of the
 * a x a transform the a positions xi = i*a + j are transformed and multiplied
 * at once, so that the mixed rows, one row of U and the sample's V stay in L2.
 * The input transform is shared by the batch as in the static engine. */

#define DYN_OB_MAX 48 /* output channels per block, a multiple of MR */

static int dyn_panels(int cog) { return (cog + MR - 1) / MR; }

size_t dcb_winograd_bank_floats(const dcb_conv2d_p *p) {
    const int cig = p->cin / p->groups, cog = p->cout / p->groups;
    return (size_t)p->groups * dyn_panels(cog) * cig * 9 * MR;
}

void dcb_winograd_bank_pack(const dcb_conv2d_p *p, const float *w, float *out) {
    const int cig = p->cin / p->groups, cog = p->cout / p->groups, np = dyn_panels(cog);
    memset(out, 0, sizeof(float) * dcb_winograd_bank_floats(p));
    for (int o = 0; o < p->cout; o++) {
        const int g = o / cog, ol = o % cog;
        float *dst = out + ((size_t)g * np + ol / MR) * cig * 9 * MR + ol % MR;
        for (int c = 0; c < cig; c++)
            for (int k = 0; k < 9; k++) dst[((size_t)c * 9 + k) * MR] = w[((size_t)o * cig + c) * 9 + k];
    }
}

int dcb_winograd_dyn_supported(const dcb_conv2d_p *p, int m) {
#ifdef WINO_AVX2
    dcb_winograd_plan pl;
    return dcb_wino_plan_setup(&pl, p, m) == 0 && pl.packed;
#else
    (void)p, (void)m;
    return 0;
#endif
}

#ifdef WINO_AVX2
/* Rows of the kernel transform, G (a x 3) applied to (g0, g1, g2). */
static inline void g_rows(int m, __m256 g0, __m256 g1, __m256 g2, __m256 *t) {
    if (m == 4) {
        const __m256 s = _mm256_add_ps(g0, g2);
        const __m256 q = _mm256_fmadd_ps(_mm256_set1_ps(1.0f / 24), g0, _mm256_mul_ps(_mm256_set1_ps(1.0f / 6), g2));
        const __m256 h = _mm256_mul_ps(_mm256_set1_ps(1.0f / 12), g1);
        t[0] = _mm256_mul_ps(_mm256_set1_ps(0.25f), g0);
        t[1] = _mm256_mul_ps(_mm256_set1_ps(-1.0f / 6), _mm256_add_ps(s, g1));
        t[2] = _mm256_mul_ps(_mm256_set1_ps(1.0f / 6), _mm256_sub_ps(g1, s));
        t[3] = _mm256_add_ps(q, h);
        t[4] = _mm256_sub_ps(q, h);
        t[5] = g2;
    } else {
        const __m256 s = _mm256_add_ps(g0, g2), half = _mm256_set1_ps(0.5f);
        t[0] = g0;
        t[1] = _mm256_mul_ps(half, _mm256_add_ps(s, g1));
        t[2] = _mm256_mul_ps(half, _mm256_sub_ps(s, g1));
        t[3] = g2;
    }
}

/* Row i of G applied to (g0, g1, g2): one of the values g_rows gives. */
static inline __attribute__((always_inline)) __m256 g_row(int m, int i, __m256 g0, __m256 g1, __m256 g2) {
    if (m == 4) {
        switch (i) {
        case 0: return _mm256_mul_ps(_mm256_set1_ps(0.25f), g0);
        case 1: return _mm256_mul_ps(_mm256_set1_ps(-1.0f / 6), _mm256_add_ps(_mm256_add_ps(g0, g2), g1));
        case 2: return _mm256_mul_ps(_mm256_set1_ps(1.0f / 6), _mm256_sub_ps(g1, _mm256_add_ps(g0, g2)));
        case 3:
        case 4: {
            const __m256 q = _mm256_fmadd_ps(_mm256_set1_ps(1.0f / 24), g0, _mm256_mul_ps(_mm256_set1_ps(1.0f / 6), g2));
            const __m256 h = _mm256_mul_ps(_mm256_set1_ps(1.0f / 12), g1);
            return i == 3 ? _mm256_add_ps(q, h) : _mm256_sub_ps(q, h);
        }
        default: return g2;
        }
    }
    switch (i) {
    case 0: return g0;
    case 1: return _mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_add_ps(_mm256_add_ps(g0, g2), g1));
    case 2: return _mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_sub_ps(_mm256_add_ps(g0, g2), g1));
    default: return g2;
    }
}

/* Row i of U = G g G^T for the panels np of wt (panel layout, cig channels):
 * U position xi = i*a + j goes to ur + j*us + (panel*cig + c)*6. m and i
 * are constants in every inlined copy, so only row i of G g is computed. */
static inline __attribute__((always_inline)) void transform_row_c(int m, int i, const float *wt, int np, int cig,
                                                                  float *ur, size_t us) {
    const int a = m + 2;
    const size_t n = (size_t)np * cig;
    for (size_t pc = 0; pc < n; pc++) {
        const float *s = wt + pc * 9 * MR;
        const __m256 t0 = g_row(m, i, _mm256_loadu_ps(s), _mm256_loadu_ps(s + 3 * MR), _mm256_loadu_ps(s + 6 * MR));
        const __m256 t1 = g_row(m, i, _mm256_loadu_ps(s + MR), _mm256_loadu_ps(s + 4 * MR), _mm256_loadu_ps(s + 7 * MR));
        const __m256 t2 = g_row(m, i, _mm256_loadu_ps(s + 2 * MR), _mm256_loadu_ps(s + 5 * MR), _mm256_loadu_ps(s + 8 * MR));
        __m256 u[6];
        g_rows(m, t0, t1, t2, u);
        float *d = ur + pc * MR;
        for (int j = 0; j < a; j++) _mm256_storeu_ps(d + j * us, u[j]);
    }
}

static void transform_row(int m, int i, const float *wt, int np, int cig, float *ur, size_t us) {
#define TR(mm, ii) \
    case ii: transform_row_c(mm, ii, wt, np, cig, ur, us); break;
    if (m == 4) {
        switch (i) { TR(4, 0) TR(4, 1) TR(4, 2) TR(4, 3) TR(4, 4) TR(4, 5) }
    } else {
        switch (i) { TR(2, 0) TR(2, 1) TR(2, 2) TR(2, 3) }
    }
#undef TR
}

/* dst (n floats) = sum_e r[e] * src[e * es + i]. */
static void mix_rows(const float *src, size_t es, const float *r, int E, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 acc = _mm256_mul_ps(_mm256_set1_ps(r[0]), _mm256_loadu_ps(src + i));
        for (int e = 1; e < E; e++) acc = _mm256_fmadd_ps(_mm256_set1_ps(r[e]), _mm256_loadu_ps(src + e * es + i), acc);
        _mm256_storeu_ps(dst + i, acc);
    }
    for (; i < n; i++) {
        float acc = 0;
        for (int e = 0; e < E; e++) acc += r[e] * src[e * es + i];
        dst[i] = acc;
    }
}
#endif

typedef struct dyn_geom {
    dcb_winograd_plan pl;  /* shape only */
    wino_geom g;           /* Ho, Wo, tH, tW (of one sample) */
    int tps;               /* tiles per sample */
    int S;                 /* samples per chunk */
    int OB;                /* output channels per block */
    /* V and M are per sample ([n][xi][channel][ld]), so that the GEMMs of
     * one sample read compact, aligned rows */
    size_t ld, vxs, mxs, vns, mns;
    size_t wt_floats, ur_floats, us; /* per-thread buffers; us: xi stride of the U row */
} dyn_geom;

/* V + M of a chunk of samples aim at this; at least one sample. A chunk of
 * 8 samples at 128@28 (24 MB) made every GEMM read the sample's V from
 * memory and the GEMMs ran at half the static engine's speed; one sample
 * (3 MB) keeps V in L2 and L3: condconv 128@28 N=8 13.5 -> 9.7 ms. */
#define DYN_CHUNK_BYTES (4u << 20)

static int dyn_make_geom(dyn_geom *d, const dcb_conv2d_p *p, int m, int N, int H, int W, int threads) {
    if (dcb_wino_plan_setup(&d->pl, p, m)) return -1;
    const dcb_winograd_plan *pl = &d->pl;
    const int a2 = pl->a * pl->a;
    d->g = dcb_wino_make_geom(pl, 1, H, W, 1);
    d->tps = d->g.tH * d->g.tW;
    d->ld = round_up((size_t)d->tps + DCB_OVERREAD_FLOATS, 16);
    if (d->ld % 32 == 0) d->ld += 16; /* an odd number of cache lines */
    d->vxs = (size_t)pl->cin * d->ld + 16;
    d->mxs = (size_t)pl->cout * d->ld + 16;
    d->vns = (size_t)a2 * d->vxs;
    d->mns = (size_t)a2 * d->mxs;
    long S = (long)(DYN_CHUNK_BYTES / (sizeof(float) * (d->vns + d->mns)));
    if (S < 1) S = 1;
    if (S > N) S = N;
    d->S = (int)S;
    /* Larger blocks re-read the sample's V less often, smaller ones keep
     * the mixed rows and the U row in L2: of 6..144 channels, 48 was the best
     * measured at C=128@28 and C=256@14 (6: 2.6x the GEMM time). */
    int ob = DYN_OB_MAX;
    const int cogp = dyn_panels(pl->cog) * MR;
    if (ob > cogp) ob = cogp;
    d->OB = ob;
    /* threads sharing a chunk need work items: at least two (block, sample)
     * pairs each, even past the cache target (3 blocks of one sample left
     * 16 threads idle) */
    const long nblk = (long)pl->groups * ((pl->cog + ob - 1) / ob);
    if (threads > 1 && S * nblk < 2L * threads) {
        S = (2L * threads + nblk - 1) / nblk;
        if (S > N) S = N;
        d->S = (int)S;
    }
    /* room past the mixed rows and past each U row for the 8-float loads and
     * stores of 6-float slots (and gemm_n4's over-read) */
    d->wt_floats = round_up((size_t)ob * pl->cig * 9 + DCB_OVERREAD_FLOATS, 16);
    _Static_assert(16 >= DCB_OVERREAD_FLOATS, "the U row room of dyn_make_geom");
    d->us = (size_t)ob * pl->cig + 16;
    d->ur_floats = round_up((size_t)pl->a * d->us, 16);
    return 0;
}

static size_t dyn_fixed_bytes(const dyn_geom *d) {
    return round_up(sizeof(float) * (size_t)d->S * (d->vns + d->mns), DCB_ALIGN) +
           round_up(sizeof(wino_span) * (size_t)d->S * d->tps, DCB_ALIGN);
}

/* With at least as many samples as threads, each thread takes whole samples
 * (chunks of one) in buffers of its own: no barrier, and V, M, the mixed
 * kernels and U stay in that core's caches. Otherwise the threads share each
 * chunk's (output block, sample) pairs. */
static int dyn_private(int N, int threads) { return threads > 1 && N >= threads; }

static size_t dyn_thread_bytes(const dyn_geom *d) { return sizeof(float) * (d->wt_floats + d->ur_floats); }

size_t dcb_winograd_dyn_ws(const dcb_conv2d_p *p, int m, int N, int H, int W, int threads) {
    dyn_geom d;
    if (threads < 1) threads = 1;
    if (N < 1 || H + 2 * p->pad - 2 < 1 || W + 2 * p->pad - 2 < 1 || dyn_make_geom(&d, p, m, N, H, W, threads)) return 0;
    if (dyn_private(N, threads)) {
        d.S = 1;
        return (size_t)threads * (dyn_fixed_bytes(&d) + dyn_thread_bytes(&d));
    }
    return dyn_fixed_bytes(&d) + (size_t)threads * dyn_thread_bytes(&d);
}

#ifdef WINO_AVX2
/* Samples n0 .. n0+S-1 through the three phases, over `threads`; fixed: V,
 * M and the spans of S samples; tbuf: `threads` pairs of mixed-kernel and
 * U-row buffers. */
static void dyn_chunk(const dyn_geom *dp, int m, int n0, int S, int H, int W, const float *x,
                      const dcb_wino_dyn *k, float *y, char *fixed, float *tbuf, int threads, dcb_profile *prof) {
    const dyn_geom d = *dp;
    const dcb_winograd_plan *pl = &d.pl;
    const wino_geom *g = &d.g;
    const int a = pl->a, cin = pl->cin, cout = pl->cout, cig = pl->cig, cog = pl->cog, G = pl->groups;
    const int OB = d.OB, nob = (cog + OB - 1) / OB, nblk = G * nob, tps = d.tps;
    const size_t ld = d.ld, gstride = (size_t)dyn_panels(cog) * cig * 9 * MR, Pp = (size_t)G * gstride;
    float *V = (float *)fixed;
    float *M = V + (size_t)S * d.vns;
    wino_span *sp = (wino_span *)(fixed + round_up(sizeof(float) * (size_t)S * (d.vns + d.mns), DCB_ALIGN));
    const int ns = dcb_wino_make_spans(g, 0, S * tps, sp); /* q->n is the sample within the chunk */
    const float *xb = x + (size_t)n0 * cin * H * W;

    double ts = dcb_now();
    dcb_wino_transform_in(pl, xb, H, W, sp, ns, V, ld, d.vxs, d.vns, tps, threads);
    DCB_PHASE_ADD(prof, DCB_PHASE_TRANSFORM, ts);

    /* (output block, sample) pairs over the threads (blocks alone were too
     * few: 3 at C=128 left 2 threads at 1.6x); each phase inside is reported
     * as the largest of the threads' own times in it (the threads share the
     * pairs, so their sums are about the wall time). */
    double t_kg = 0, t_tr = 0, t_gm = 0;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        int tid = 0;
#ifdef _OPENMP
        if (threads > 1) tid = omp_get_thread_num();
#endif
        float *wt = tbuf + (size_t)tid * (d.wt_floats + d.ur_floats);
        float *ur = wt + d.wt_floats;
        double l_kg = 0, l_tr = 0, l_gm = 0;
#pragma omp for schedule(dynamic)
        for (int item = 0; item < nblk * S; item++) {
            const int blk = item / S, sl = item % S, n = n0 + sl;
            const int gi = blk / nob, o0 = blk % nob * OB, ob = cog - o0 < OB ? cog - o0 : OB;
            const int npb = dyn_panels(ob);
            const size_t off = (size_t)gi * gstride + (size_t)(o0 / MR) * cig * 9 * MR,
                         len = (size_t)npb * cig * 9 * MR;
            double t0 = dcb_now();
            const float *src;
            if (k->E > 0) {
                mix_rows(k->bank + off, Pp, k->r + (size_t)n * k->E, k->E, wt, len);
                src = wt;
            } else {
                src = k->w + (k->shared ? 0 : (size_t)n * Pp) + off;
            }
            double t1 = dcb_now();
            l_kg += t1 - t0;
            const float *Vn = V + sl * d.vns + (size_t)gi * cig * ld;
            float *Mn = M + sl * d.mns + (size_t)(gi * cog + o0) * ld;
            for (int i = 0; i < a; i++) {
                t0 = dcb_now();
                transform_row(m, i, src, npb, cig, ur, d.us);
                t1 = dcb_now();
                l_tr += t1 - t0;
                for (int j = 0; j < a; j++) {
                    const int xi = i * a + j;
                    dcb_wino_gemm_packed(ur + j * d.us, ob, cig, Vn + xi * d.vxs, Mn + xi * d.mxs, ld, tps);
                }
                l_gm += dcb_now() - t1;
            }
        }
#pragma omp critical(dcb_wino_dyn_phases)
        {
            t_kg = l_kg > t_kg ? l_kg : t_kg;
            t_tr = l_tr > t_tr ? l_tr : t_tr;
            t_gm = l_gm > t_gm ? l_gm : t_gm;
        }
    }
    if (prof) {
        prof->seconds[DCB_PHASE_KERNEL_GEN] += t_kg;
        prof->seconds[DCB_PHASE_TRANSFORM] += t_tr;
        prof->seconds[DCB_PHASE_GEMM] += t_gm;
    }

    ts = dcb_now();
    float *yb = y + (size_t)n0 * cout * g->Ho * g->Wo;
    const float *bb = k->b ? k->b + (k->shared ? 0 : (size_t)n0 * cout) : NULL; /* sample n0's bias */
    dcb_wino_transform_out(pl, g, sp, ns, M, ld, d.mxs, d.mns, tps, bb, k->shared ? 0 : (size_t)cout, yb, threads);
    DCB_PHASE_ADD(prof, DCB_PHASE_TRANSFORM, ts);
}
#endif

void dcb_winograd_dyn_run(const dcb_conv2d_p *p, int m, int N, int H, int W, const float *x,
                          const dcb_wino_dyn *k, float *y, void *ws, int threads, dcb_profile *prof) {
#ifdef WINO_AVX2
    if (threads < 1) threads = 1;
    dyn_geom d;
    if (dyn_make_geom(&d, p, m, N, H, W, threads)) return;
    if (!dyn_private(N, threads)) {
        float *tbuf = (float *)((char *)ws + dyn_fixed_bytes(&d));
        for (int n0 = 0; n0 < N; n0 += d.S)
            dyn_chunk(&d, m, n0, N - n0 < d.S ? N - n0 : d.S, H, W, x, k, y, ws, tbuf, threads,
                      prof);
        return;
    }
    d.S = 1;
    const size_t per = dyn_fixed_bytes(&d) + dyn_thread_bytes(&d);
    dcb_profile most = {{0}}; /* each thread's own profile, merged by dcb_profile_max */
#pragma omp parallel num_threads(threads)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        char *mine = (char *)ws + (size_t)tid * per;
        dcb_profile own = {{0}};
#pragma omp for schedule(dynamic, 1)
        for (int n = 0; n < N; n++)
            dyn_chunk(&d, m, n, 1, H, W, x, k, y, mine, (float *)(mine + dyn_fixed_bytes(&d)), 1,
                      prof ? &own : NULL);
#pragma omp critical(dcb_wino_profile)
        dcb_profile_max(&most, &own);
    }
    dcb_profile_add(prof, &most);
#else
    (void)p, (void)m, (void)N, (void)H, (void)W, (void)x, (void)k, (void)y, (void)ws, (void)threads, (void)prof;
#endif
}
