/* conv2d_winograd.h — what the Winograd engine's two files share: the plan,
 * the blocking, the tile spans, the input and output transforms and the
 * packed GEMM (conv2d_winograd.c), used by the static engine there and by
 * the dynamic path (conv2d_winograd_dyn.c). Internal to those two files. */
#ifndef DCB_CONV2D_WINOGRAD_H
#define DCB_CONV2D_WINOGRAD_H

#include "dcb_internal.h"
#include "ukernels/ukernels.h"

#include "ukernels/winograd_f32.h"

#include <stddef.h>

#define MR DCB_UK_MR /* rows of a packed U panel: the micro-kernel's */

struct dcb_winograd_plan {
    int m, a;                       /* output tile, input tile (m + 2) */
    int cin, cout, groups, cig, cog, pad;
    int packed;                     /* U in 6-row panels for the micro-kernel */
    size_t u_stride;                /* floats of U per (xi, group) */
    float *U;                       /* NULL for a shape-only plan */
};

static inline size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

/* Checks p and m and fills the shape of a plan (no U). 0, or -1 with the
 * message set. */
int dcb_wino_plan_setup(dcb_winograd_plan *pl, const dcb_conv2d_p *p, int m);

/* ---------------------------------------------------------------- blocking */
typedef struct wino_geom {
    int Ho, Wo, tH, tW;
    long T;     /* tiles in the whole batch */
    int tb;     /* tiles per block */
    int tbp;    /* row stride of V and M */
    size_t vxs, mxs; /* xi strides of V and M */
    int priv;   /* workspaces: 1 (the team shares each block) or threads */
} wino_geom;

/* The blocks of N images of H x W for `threads` (conv2d_winograd.c says how
 * their size and the sharing mode are chosen). */
wino_geom dcb_wino_make_geom(const dcb_winograd_plan *pl, int N, int H, int W, int threads);

/* A block's tiles cut into runs of <= 8 tiles that share a tile row. */
typedef struct wino_span {
    int n, ti, tj, k; /* image, tile row, first tile col, count */
    int off;          /* position of the first tile in the block */
} wino_span;

/* Cuts tiles t0 .. t0+nb-1 into spans (at most one per tile); their count. */
int dcb_wino_make_spans(const wino_geom *g, long t0, int nb, wino_span *sp);

/* ------------------------------------------------------------ transforms
 * The input transform of the tiles of spans sp[0 .. ns-1] (channels over
 * `threads`), x holding the images (or samples) q->n counts from, and the
 * output transform back (output channels and spans over `threads`), with
 * bias b[q->n * bns + o] (b may be NULL). Span q's transformed tiles are at
 * V + q->n * vns + c * ld + (q->off - q->n * tps) + xi * vxs (M likewise):
 * vns = tps = 0 for one V over the whole block of images (the static
 * engine), V per sample otherwise (the dynamic path). Rows of V and M need
 * room for 8 whole lanes past the last tile. */
void dcb_wino_transform_in(const dcb_winograd_plan *pl, const float *x, int H, int W, const wino_span *sp, int ns,
                           float *V, size_t ld, size_t vxs, size_t vns, int tps, int threads);
void dcb_wino_transform_out(const dcb_winograd_plan *pl, const wino_geom *g, const wino_span *sp, int ns,
                            const float *M, size_t ld, size_t mxs, size_t mns, int tps, const float *b, size_t bns,
                            float *y, int threads);

/* For count positions x: M_x (cog x nb) = U_x (packed panels [cog/6][cig][6])
 * * V_x (cig x nb) (+ M_x where accumulate), V and M with leading dimension
 * ld, U_x = U + x*us, V_x = V + x*vs, M_x = M + x*ms, through the micro-
 * kernel dcb_uk(); each M_x has the bits of a call with count 1. The last
 * dcb_wino_tail_cols(nb) columns of V_x are read from Vt + x*vts instead,
 * [cig][tail] contiguous, where Vt is not NULL (the dynamic path's copy:
 * one column a row of V is a cache line a row for gemm_n4). */
int dcb_wino_tail_cols(int nb);
void dcb_wino_gemm_packed(const float *U, size_t us, int cog, int cig, const float *V, size_t vs, float *M,
                          size_t ms, size_t ld, int nb, int count, int accumulate, const float *Vt, size_t vts);

#endif
