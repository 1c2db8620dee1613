/* The dynamic path of the Winograd engine (conv2d_winograd.h has what it
 * shares with the static one in conv2d_winograd.c): kernels known only
 * inside run, transformed in float and fused with the GEMM. */
#include "conv2d_winograd.h"
#include "ukernels/dynmix.h"

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
 * The spatial kernels are consumed in "panel layout": per group, per
 * micro-kernel panel of 6 output channels (rows past cout_g zero), the input
 * channels in chunks of DYN_KC, each chunk tap-major: [group][panel][chunk]
 * [9][kc][6], tap t of the chunk's kc input channels' 6 output channels side
 * by side (kc = DYN_KC but in a last, shorter chunk). The kernel transform is
 * then elementwise over a tap's contiguous 6*kc floats, in full vectors, and
 * writes U straight into the GEMM's packed [kc][6] rows; a chunk is one
 * contiguous read. Mixing a bank in that layout is elementwise too, so
 * condconv / dyconv keep their experts in it (prepare) and mix straight
 * into it.
 *
 * Work is split in blocks of OB output channels (whole panels): per block and
 * sample, the kernels are mixed (or copied), then per chunk of DYN_KC input
 * channels all a*a positions of the block's U are transformed in one pass
 * over the chunk's taps and multiplied at once, accumulating into M. The
 * earlier order, a row of positions over all input channels at a time, read
 * every kernel a times and wrote U through 8-lane stores of 6 channels:
 * condconv E=8 256@14 N=8 on one thread took 11.7 ms, 9.3 ms now (best of
 * 3 or more, AVX-512; dyn_make_geom has the block sizes). A chunk of U small
 * enough for L1 (16 input channels of 12 outputs) made the GEMMs too short.
 * The input transform is shared by the batch as in the static engine.
 * The mixing and the kernel transform are the dynmix family's
 * (ukernels/dynmix.h), its variant picked at run time for the CPU. */

_Static_assert(DCB_DYNMIX_PANEL == MR, "dynmix's panel layout is the micro-kernel's");

#define DYN_OB_MAX 12 /* output channels per block, a multiple of MR: gemm2's two panels */
#define DYN_KC 128    /* input channels per chunk of the panel layout */

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
        float *dst = out + ((size_t)g * np + ol / MR) * 9 * cig * MR + ol % MR;
        for (int c = 0; c < cig; c++) {
            const int c0 = c / DYN_KC * DYN_KC, kc = cig - c0 < DYN_KC ? cig - c0 : DYN_KC;
            for (int k = 0; k < 9; k++)
                dst[((size_t)9 * c0 + (size_t)k * kc + (c - c0)) * MR] = w[((size_t)o * cig + c) * 9 + k];
        }
    }
}

int dcb_winograd_dyn_supported(const dcb_conv2d_p *p, int m) {
    dcb_winograd_plan pl;
    /* the float kernel transform of dynmix is F(2x2)'s and F(4x4)'s */
    return (m == 2 || m == 4) && dcb_wino_plan_setup(&pl, p, m) == 0 && pl.packed;
}

typedef struct dyn_geom {
    dcb_winograd_plan pl;  /* shape only */
    wino_geom g;           /* Ho, Wo, tH, tW (of one sample) */
    int tps;               /* tiles per sample */
    int S;                 /* samples per chunk */
    int OB;                /* output channels per block */
    /* V and M are per sample ([n][xi][channel][ld]), so that the GEMMs of
     * one sample read compact, aligned rows */
    size_t ld, vxs, mxs, vns, mns;
    /* the GEMMs' last tail columns of V (dcb_wino_tail_cols) again, per
     * sample [xi][channel][tail], so that gemm_n4 reads them contiguous:
     * floats a sample (with gemm_n4's over-read), 0 without a tail */
    int tail;
    size_t vtns;
    size_t wt_floats, ur_floats, us; /* per-thread buffers; us: xi stride of the U chunk */
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
    /* an odd number of cache lines where rows are long; short rows stay
     * tight: at 16 tiles a sample (256@14) 48 floats made V and M 3x the
     * tiles and the dynamic path 5-7% slower than 32 (condconv E=8 N=8,
     * 1 thread: 10.1-10.3 against 9.2-9.7 ms) */
    if (d->ld % 32 == 0 && d->ld >= 128) d->ld += 16;
    d->vxs = (size_t)pl->cin * d->ld + 16;
    d->mxs = (size_t)pl->cout * d->ld + 16;
    d->vns = (size_t)a2 * d->vxs;
    d->mns = (size_t)a2 * d->mxs;
    d->tail = dcb_wino_tail_cols(d->tps);
    d->vtns = d->tail ? round_up((size_t)a2 * pl->cin * d->tail + 4, 16) : 0;
    long S = (long)(DYN_CHUNK_BYTES / (sizeof(float) * (d->vns + d->mns + d->vtns)));
    if (S < 1) S = 1;
    if (S > N) S = N;
    d->S = (int)S;
    /* Larger blocks re-read the sample's V less often, smaller ones keep
     * the mixed kernels and the chunk of U in L2. Best of 3, condconv E=8
     * N=8, 1 thread, AVX-512 (128@28 / 256@14 ms): 12 channels in chunks of
     * 128 inputs 5.96 / 9.30, of 256 5.86 / 9.28, of 64 6.35 / 10.08;
     * 6 channels (one panel, half of gemm2's tile) 7.19 / 9.69; 18: 6.39 /
     * 9.84; 48 in chunks of 64: 6.49 / 10.67 (also the best under
     * DCB_ISA=avx2: 7.73 / 12.62 against 7.90 / 13.85 at 48). */
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
    /* room past the mixed kernels and past each position of the U chunk
     * for gemm_n4's over-read */
    d->wt_floats = round_up((size_t)ob * pl->cig * 9 + DCB_OVERREAD_FLOATS, 16);
    _Static_assert(16 >= DCB_OVERREAD_FLOATS, "the U chunk room of dyn_make_geom");
    d->us = (size_t)ob * DYN_KC + 16;
    d->ur_floats = round_up((size_t)a2 * d->us, 16);
    return 0;
}

static size_t dyn_fixed_bytes(const dyn_geom *d) {
    return round_up(sizeof(float) * (size_t)d->S * (d->vns + d->mns + d->vtns), DCB_ALIGN) +
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
    float *Vt = M + (size_t)S * d.mns;
    wino_span *sp = (wino_span *)(fixed + round_up(sizeof(float) * (size_t)S * (d.vns + d.mns + d.vtns), DCB_ALIGN));
    const int ns = dcb_wino_make_spans(g, 0, S * tps, sp); /* q->n is the sample within the chunk */
    const float *xb = x + (size_t)n0 * cin * H * W;
    const dcb_dynmix_kernels *dk = dcb_dynmix();

    double ts = dcb_now();
    dcb_wino_transform_in(pl, xb, H, W, sp, ns, V, ld, d.vxs, d.vns, tps, threads);
    if (d.tail) {
        /* read once here, not once per output block by the GEMMs' tails */
        const int tl = d.tail, t0 = tps - tl;
        for (int sl = 0; sl < S; sl++) {
            float *vt = Vt + (size_t)sl * d.vtns;
            for (int xi = 0; xi < a * a; xi++)
                for (int c = 0; c < cin; c++) {
                    const float *v = V + sl * d.vns + xi * d.vxs + (size_t)c * ld + t0;
                    for (int j = 0; j < tl; j++) *vt++ = v[j];
                }
            for (int j = 0; j < 4; j++) *vt++ = 0.0f; /* gemm_n4's over-read of the last row */
        }
    }
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
                dk->mix(k->bank + off, Pp, k->r + (size_t)n * k->E, k->E, wt, len);
                src = wt;
            } else {
                src = k->w + (k->shared ? 0 : (size_t)n * Pp) + off;
            }
            double t1 = dcb_now();
            l_kg += t1 - t0;
            const float *Vn = V + sl * d.vns + (size_t)gi * cig * ld;
            const float *Vtn = Vt + sl * d.vtns + (size_t)gi * cig * d.tail;
            float *Mn = M + sl * d.mns + (size_t)(gi * cog + o0) * ld;
            const size_t ps = (size_t)9 * cig * MR; /* one panel of src */
            for (int k0 = 0; k0 < cig; k0 += DYN_KC) {
                const int kc = cig - k0 < DYN_KC ? cig - k0 : DYN_KC;
                const float *sk = src + (size_t)9 * k0 * MR; /* the chunk in panel 0 */
                if (prof) t0 = dcb_now();
                for (int q = 0; q < npb; q++)
                    dk->wino_taps(m, sk + q * ps, (size_t)kc * MR, (size_t)kc * MR, ur + (size_t)q * kc * MR, d.us);
                if (prof) {
                    t1 = dcb_now();
                    l_tr += t1 - t0;
                }
                dcb_wino_gemm_packed(ur, d.us, ob, kc, Vn + (size_t)k0 * ld, d.vxs, Mn, d.mxs, ld, tps, a * a,
                                     k0 > 0, d.tail ? Vtn + (size_t)k0 * d.tail : NULL, (size_t)cin * d.tail);
                if (prof) l_gm += dcb_now() - t1;
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

void dcb_winograd_dyn_run(const dcb_conv2d_p *p, int m, int N, int H, int W, const float *x,
                          const dcb_wino_dyn *k, float *y, void *ws, int threads, dcb_profile *prof) {
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
}

/* ============================================================ a bank, mixed once
 * Mixing block by block inside dyn_chunk reads the whole bank (E kernels) once
 * per sample: at 256@14 with E = 8 that is 151 MB of cache traffic for N = 8,
 * and it was the largest phase (7.3 of 16.2 ms on one thread). When
 * E + 2N < N*E words per kernel, it moves less to mix every sample's kernel
 * first, reading the bank once in chunks that stay in L1 while all N samples
 * are mixed from them, and to let the chunks read their sample's kernel back
 * (E = 0): N*(E - 2) - E kernel sizes less. The mixing itself is dynmix's
 * mix, element by element as in dyn_chunk, so both give the same bits. */
static int bank_premix(int N, int E) { return N > 1 && E + 2 * N < N * E; }

/* Floats per mixing chunk: E of them in L1 (about 24 KB). */
static size_t premix_chunk(int E) {
    size_t c = (24u << 10) / (sizeof(float) * (size_t)E);
    c = c / 16 * 16;
    return c < 64 ? 64 : c;
}

static size_t premix_bytes(const dcb_conv2d_p *p, int N) {
    return round_up(sizeof(float) * ((size_t)N * dcb_winograd_bank_floats(p) + DCB_OVERREAD_FLOATS), DCB_ALIGN);
}

size_t dcb_winograd_bank_ws(const dcb_conv2d_p *p, int m, int N, int H, int W, int E, int threads) {
    const size_t rest = dcb_winograd_dyn_ws(p, m, N, H, W, threads);
    if (!rest) return 0;
    return (bank_premix(N, E) ? premix_bytes(p, N) : 0) + rest;
}

void dcb_winograd_bank_run(const dcb_conv2d_p *p, int m, int N, int H, int W, const float *x,
                           const dcb_wino_dyn *k, float *y, void *ws, int threads, dcb_profile *prof) {
    if (!bank_premix(N, k->E)) {
        dcb_winograd_dyn_run(p, m, N, H, W, x, k, y, ws, threads, prof);
        return;
    }
    if (threads < 1) threads = 1;
    const size_t Pp = dcb_winograd_bank_floats(p), ch = premix_chunk(k->E);
    const long nch = (long)((Pp + ch - 1) / ch);
    float *Wm = ws;
    const dcb_dynmix_kernels *dk = dcb_dynmix();
    const double t0 = dcb_now();
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && nch > 1)
    for (long c = 0; c < nch; c++) {
        const size_t i0 = (size_t)c * ch, len = Pp - i0 < ch ? Pp - i0 : ch;
        for (int n = 0; n < N; n++)
            dk->mix(k->bank + i0, Pp, k->r + (size_t)n * k->E, k->E, Wm + (size_t)n * Pp + i0, len);
    }
    memset(Wm + (size_t)N * Pp, 0, DCB_OVERREAD_FLOATS * sizeof(float));
    DCB_PHASE_ADD(prof, DCB_PHASE_KERNEL_GEN, t0);
    const dcb_wino_dyn d = {Wm, NULL, NULL, k->b, 0, 0};
    dcb_winograd_dyn_run(p, m, N, H, W, x, &d, y, (char *)ws + premix_bytes(p, N), threads, prof);
}
