/* The direct engine's depthwise path (groups == cin, any multiplier,
 * kernel, stride, pad, dilation; conv2d_direct.c dispatches to it): every
 * input plane is copied once into a zero-bordered buffer whose rows are
 * split into `stride` phases (phase q holds padded columns q, q+s, q+2s,
 * ...), so that for any stride the outputs j..j+7 of one tap read 8
 * consecutive floats; the taps then run as broadcast-FMAs along the output
 * row with no bounds checks. The stride-2 split and the rows are the
 * depthwise kernel family's (ukernels/dwconv.h), its variant picked at run
 * time for the CPU (DCB_ISA). */
#include "dcb_internal.h"
#include "ukernels/dwconv.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

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
        if (s == 2) {
            /* x[2t] lands in phase (pad & 1) at pad/2 + t, x[1 + 2t] in the
             * other phase at (pad + 1)/2 + t */
            dcb_dwk()->split2(xr, W, row + (size_t)(pad & 1) * d->Wq + (pad >> 1),
                             row + (size_t)((pad + 1) & 1) * d->Wq + ((pad + 1) >> 1));
            continue;
        }
        int j = 0;
        /* the rest one by one, the phase and position counted (no division) */
        int q = (j + pad) % s, t = (j + pad) / s;
        for (; j < W; j++) {
            row[(size_t)q * d->Wq + t] = xr[j];
            if (++q == s) q = 0, t++;
        }
    }
}

static void dw_channel(const dcb_conv2d_p *p, const dplan *d, const float *buf, const float *wt, const int *off,
                       float bias, float *yc) {
    const int kk = p->kh * p->kw;
    const size_t rs = (size_t)d->s * d->s * d->Wq; /* buffer step per output row */
    const dcb_dwk_kernels *k = dcb_dwk();
    int i = 0;
    /* 3x3, stride 1, dilation 1: two rows at a time share their input rows
     * (12 loads for 18 FMAs a vector instead of 18); the same bits as row */
    if (p->kh == 3 && p->kw == 3 && d->s == 1 && p->dil == 1)
        for (; i + 2 <= d->Ho; i += 2)
            k->rows2_3x3(wt, buf + (size_t)i * rs, rs, bias, yc + (size_t)i * d->Wo, yc + (size_t)(i + 1) * d->Wo,
                         d->Wo);
    for (; i < d->Ho; i++) {
        const float *src = buf + (size_t)i * rs;
        float *yr = yc + (size_t)i * d->Wo;
        k->row(kk, wt, off, src, bias, yr, d->Wo);
    }
}

static size_t dw_off_bytes(const dcb_conv2d_p *p) {
    return round_up(sizeof(int) * (size_t)p->kh * p->kw, DCB_ALIGN);
}

size_t dcb_direct_dw_ws(const dcb_conv2d_p *p, int H, int W, int threads) {
    const dplan d = make_dplan(p, H, W);
    return dw_off_bytes(p) + sizeof(float) * dw_thread_floats(&d) * threads;
}

void dcb_direct_dw_run(const dcb_conv2d_p *p, int N, int H, int W, const float *x, const float *w, const float *b,
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
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *buf = bufs + (size_t)tid * tf;
        memset(buf, 0, sizeof(float) * tf);
        /* nowait: the region's end is the one barrier (the loop's own was a
         * second wait per run for a thread another process has descheduled:
         * dw 144@56 N=1 on 2 threads beside a second 2-thread process, 0.33 ->
         * 0.29 ms against 0.205 on 1 thread); guided: a thread that runs
         * while the other waits for its core takes more of the channels. The
         * channels are independent, so their bits do not depend on who runs
         * which. */
#pragma omp for schedule(guided) nowait
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
