/* drconv: Dynamic Region-Aware Convolution (Chen et al. 2021), the paper form
 * of docs/OPERATORS.md. Per sample: a guide conv (m outputs, same geometry as the
 * main conv) whose per-pixel argmax is the region mask; m kernels generated
 * from adaptive_avg_pool(x, (kh, kw)); each output pixel convolved with its
 * region's kernel. Three strategies for the last step:
 *   all_regions    every region's full output, then a per-pixel select
 *                  (m times the conv work, as the public PyTorch port);
 *   gather         per pixel, its im2col row times its region's kernel;
 *   region_sorted  pixels bucketed by region, one sgemm per region.
 * All three share the routing: a pixel-major im2col ("rows", (H'W', cin*kh*kw))
 * built once per sample feeds the guide conv and the main conv. */
#include "dcb_internal.h"
#include "ukernels/dynmix.h"

#include <cblas.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static const dcb_param_spec drc_params[] = {
    DCB_CHANNEL_PARAMS,
    DCB_CONV_GEOMETRY_PARAMS_FOR(" (main and guide conv)"),
    {"regions", DCB_PT_INT, 8, NULL, 0, "regions m (guide conv outputs, generated kernels)"},
    {"groups", DCB_PT_INT, 1, NULL, 0, "must be 1: regions need a dense kernel"},
};

typedef struct drc_hp {
    dcb_conv2d_p c;
    int m;
    int Kd;    /* cin*kh*kw: one im2col row */
    int khw;   /* kh*kw */
    size_t cc; /* cout*cin */
} drc_hp;

static const drc_hp *hp_of(const dcb_op *op) { return op->hp; }

static dcb_status drc_validate(dcb_op *op) {
    drc_hp *h = dcb_new_hp(op, sizeof *h);
    if (!h) return DCB_OUT_OF_MEMORY;
    dcb_status st;
    if ((st = dcb_conv2d_read_params(op, "drconv", &h->c)) != DCB_OK) return st;
    if ((st = dcb_get_int(op, "regions", 1, &h->m)) != DCB_OK) return st;
    if (h->c.groups != 1)
        return dcb_fail(DCB_UNSUPPORTED_PARAM, "drconv: groups=%d is not supported (regions need groups = 1)",
                        h->c.groups);
    const double kd = (double)h->c.cin * h->c.kh * h->c.kw;
    const double kern = (double)h->m * h->m * h->c.cout * kd;
    if (kd > INT32_MAX || kern > 1e13)
        return dcb_fail(DCB_INVALID_PARAM, "drconv: regions=%d with cout=%d, cin=%d, %dx%d gives too large a kernel bank",
                        h->m, h->c.cout, h->c.cin, h->c.kh, h->c.kw);
    h->Kd = (int)kd;
    h->khw = h->c.kh * h->c.kw;
    h->cc = (size_t)h->c.cout * h->c.cin;
    return DCB_OK;
}

static int drc_weights(const dcb_op *op, dcb_weight_spec *s) {
    const drc_hp *h = hp_of(op);
    const int64_t m = h->m;
    int n = 0;
    /* the guide's gradient is the softmax surrogate (the backward's comment) */
    s[n++] = (dcb_weight_spec){"guide_w", 4, {m, h->c.cin, h->c.kh, h->c.kw}, 0, DCB_W_SURROGATE};
    s[n++] = (dcb_weight_spec){"guide_b", 1, {m}, h->Kd, DCB_W_BIAS | DCB_W_SURROGATE};
    s[n++] = (dcb_weight_spec){"gen1_w", 2, {m * m, h->c.cin}, 0, 0};
    s[n++] = (dcb_weight_spec){"gen1_b", 1, {m * m}, h->c.cin, DCB_W_BIAS};
    /* grouped 1x1 with m groups: fan_in = m */
    s[n++] = (dcb_weight_spec){"gen2_w", 2, {m * (int64_t)h->cc, m}, 0, 0};
    s[n++] = (dcb_weight_spec){"gen2_b", 1, {m * (int64_t)h->cc}, (double)m, DCB_W_BIAS};
    return n;
}

static dcb_status drc_out_shape(const dcb_op *op, int ndim, const int64_t *x, int *yn, int64_t *y) {
    return dcb_conv2d_out_shape("drconv", &hp_of(op)->c, ndim, x, yn, y);
}

/* PyTorch's adaptive pooling bins: [floor(i*n/k), ceil((i+1)*n/k)). */
static int bin_lo(int i, int n, int k) { return (int)(((long)i * n) / k); }
static int bin_hi(int i, int n, int k) { return (int)(((long)(i + 1) * n + k - 1) / k); }

static void out_hw(const drc_hp *h, const int64_t *x, double *ho, double *wo) {
    *ho = dcb_conv_out((int)x[2], h->c.kh, h->c.stride, h->c.pad, h->c.dil);
    *wo = dcb_conv_out((int)x[3], h->c.kw, h->c.stride, h->c.pad, h->c.dil);
}

/* Per sample, with P' = H'*W':
 *   conv   cout*cin*kh*kw*P'                      (the static-conv work)
 *   guide  m*cin*kh*kw*P' + m*P'
 *   gen1   (m*m*cin + m*m) * kh*kw                 (an FC per pooled position)
 *   gen2   m*cout*cin*kh*kw*m + m*cout*cin*kh*kw   (grouped 1x1, m groups)
 * dynamic_macs = guide + gen1 + gen2; macs = conv + dynamic.
 * flops = 2*macs + pool adds (each input element once per bin holding it) +
 *         one per sigmoid (m*m*kh*kw) + argmax compares ((m-1)*P').
 * acts (pycls rule) = conv outputs + guide outputs + pool outputs (cin*kh*kw)
 *         + gen1 outputs (m*m*kh*kw) + gen2 outputs (m*cout*cin*kh*kw). */
static void drc_cost(const dcb_op *op, const int64_t *x, dcb_cost *c) {
    const drc_hp *h = hp_of(op);
    double ho, wo;
    out_hw(h, x, &ho, &wo);
    const double N = (double)x[0], P = ho * wo, m = h->m, khw = h->khw, Kd = h->Kd, cc = (double)h->cc;
    const double conv = h->c.cout * Kd * P;
    const double guide = m * Kd * P + m * P;
    const double gen1 = (m * m * h->c.cin + m * m) * khw;
    const double gen2 = m * cc * khw * m + m * cc * khw;
    double binh = 0, binw = 0;
    for (int i = 0; i < h->c.kh; i++) binh += bin_hi(i, (int)x[2], h->c.kh) - bin_lo(i, (int)x[2], h->c.kh);
    for (int j = 0; j < h->c.kw; j++) binw += bin_hi(j, (int)x[3], h->c.kw) - bin_lo(j, (int)x[3], h->c.kw);
    c->dynamic_macs = N * (guide + gen1 + gen2);
    c->macs = N * conv + c->dynamic_macs;
    c->flops = 2 * c->macs + N * (h->c.cin * binh * binw + m * m * khw + (m - 1) * P);
    c->params = m * Kd + m + m * m * h->c.cin + m * m + m * cc * m + m * cc;
    c->acts = N * (h->c.cout * P + m * P + h->c.cin * khw + m * m * khw + m * cc * khw);
    c->bytes = 4.0 * (N * h->c.cin * (double)x[2] * x[3] + c->params + N * h->c.cout * P);
}

/* -------------------------------------------------------------- the parts */
/* rows[p][(c*kh + u)*kw + v] = x[c, i*s + u*d - pad, j*s + v*d - pad], p = i*W' + j. */
static void im2row(const drc_hp *h, int H, int W, int Ho, int Wo, const float *x, float *rows, int threads) {
    const dcb_conv2d_p *p = &h->c;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int i = 0; i < Ho; i++)
        for (int j = 0; j < Wo; j++) {
            float *r = rows + ((size_t)i * Wo + j) * h->Kd;
            for (int c = 0; c < p->cin; c++) {
                const float *xc = x + (size_t)c * H * W;
                for (int u = 0; u < p->kh; u++) {
                    const int ii = i * p->stride + u * p->dil - p->pad;
                    float *d = r + ((size_t)c * p->kh + u) * p->kw;
                    if (ii < 0 || ii >= H) {
                        memset(d, 0, sizeof(float) * p->kw);
                        continue;
                    }
                    const float *xr = xc + (size_t)ii * W;
                    const int j0 = j * p->stride - p->pad;
                    if (j0 >= 0 && j0 + (p->kw - 1) * p->dil < W) { /* interior: no test per tap */
                        for (int v = 0; v < p->kw; v++) d[v] = xr[j0 + v * p->dil];
                        continue;
                    }
                    for (int v = 0; v < p->kw; v++) {
                        const int jj = j * p->stride + v * p->dil - p->pad;
                        d[v] = (jj >= 0 && jj < W) ? xr[jj] : 0.0f;
                    }
                }
            }
        }
}

/* Guide conv F (m, P') from rows, at the BLAS's current thread count. */
static void guide_F(const dcb_op *op, const float *rows, int P, float *F) {
    const drc_hp *h = hp_of(op);
    const float *gb = dcb_w(op, "guide_b")->data;
    for (int t = 0; t < h->m; t++)
        for (int p = 0; p < P; p++) F[(size_t)t * P + p] = gb[t];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, h->m, P, h->Kd, 1.0f, dcb_w(op, "guide_w")->data, h->Kd,
                rows, h->Kd, 1.0f, F, P);
}

/* Guide conv F (m, P') from rows, then mask[p] = first argmax over regions. */
static void guide_mask_t(const dcb_op *op, const float *rows, int P, float *F, int *mask, int threads) {
    const drc_hp *h = hp_of(op);
    guide_F(op, rows, P, F);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && P > 4096)
    for (int p = 0; p < P; p++) {
        float best = F[p];
        int bi = 0;
        for (int t = 1; t < h->m; t++)
            if (F[(size_t)t * P + p] > best) {  /* strict: ties keep the first */
                best = F[(size_t)t * P + p];
                bi = t;
            }
        mask[p] = bi;
    }
}

static void guide_mask(const dcb_op *op, const float *rows, int P, float *F, int *mask) {
    dcb_blas_threads_for(op->threads);
    guide_mask_t(op, rows, P, F, mask, op->threads);
}

/* The m kernels of one sample, K (m*cout*cin, kh*kw); pooled (cin, kh*kw)
 * and S (m*m, kh*kw) are scratch. At the BLAS's current thread count. */
static void gen_kernels_t(const dcb_op *op, const float *x, int H, int W, float *pooled, float *S, float *K) {
    const drc_hp *h = hp_of(op);
    const int kh = h->c.kh, kw = h->c.kw, khw = h->khw, m = h->m;
    for (int c = 0; c < h->c.cin; c++) {
        const float *xc = x + (size_t)c * H * W;
        for (int i = 0; i < kh; i++) {
            const int i0 = bin_lo(i, H, kh), i1 = bin_hi(i, H, kh);
            for (int j = 0; j < kw; j++) {
                const int j0 = bin_lo(j, W, kw), j1 = bin_hi(j, W, kw);
                double s = 0;
                for (int ii = i0; ii < i1; ii++) s += dcb_sum_f64(xc + (size_t)ii * W + j0, (size_t)(j1 - j0));
                pooled[(size_t)c * khw + i * kw + j] = (float)(s / ((double)(i1 - i0) * (j1 - j0)));
            }
        }
    }
    const float *b1 = dcb_w(op, "gen1_b")->data, *b2 = dcb_w(op, "gen2_b")->data;
    for (int r = 0; r < m * m; r++)
        for (int q = 0; q < khw; q++) S[(size_t)r * khw + q] = b1[r];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m * m, khw, h->c.cin, 1.0f, dcb_w(op, "gen1_w")->data,
                h->c.cin, pooled, khw, 1.0f, S, khw);
    dcb_sigmoid(S, (size_t)m * m * khw);
    const size_t rowsK = (size_t)m * h->cc;
    for (size_t r = 0; r < rowsK; r++)
        for (int q = 0; q < khw; q++) K[r * khw + q] = b2[r];
    const float *g2 = dcb_w(op, "gen2_w")->data;
    for (int t = 0; t < m; t++)  /* group t: inputs S[t*m .. t*m+m), outputs rows [t*cc, (t+1)*cc) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)h->cc, khw, m, 1.0f, g2 + (size_t)t * h->cc * m, m,
                    S + (size_t)t * m * khw, khw, 1.0f, K + (size_t)t * h->cc * khw, khw);
}

static void gen_kernels(const dcb_op *op, const float *x, int H, int W, float *pooled, float *S, float *K) {
    dcb_blas_threads_for(op->threads);
    gen_kernels_t(op, x, H, W, pooled, S, K);
}

/* ------------------------------------------------------------- workspace */
enum { S_ALL, S_GATHER, S_SORTED };
static int strategy(const dcb_op *op) { return op->impl->strategy_id; }

typedef struct drc_ws {
    size_t rows, F, mask, pooled, S, K, extra, idx, cnt, B, total;
} drc_ws;

static drc_ws drc_layout(const dcb_op *op, const int64_t *x) {
    const drc_hp *h = hp_of(op);
    double ho, wo;
    out_hw(h, x, &ho, &wo);
    const size_t P = (size_t)(ho * wo), m = (size_t)h->m, cout = (size_t)h->c.cout, f = sizeof(float);
    const int st = strategy(op);
    drc_ws l;
    memset(&l, 0, sizeof l);
    l.rows = 0;
    l.F = l.rows + dcb_align_up(f * P * h->Kd);
    l.mask = l.F + dcb_align_up(f * m * P);
    l.pooled = l.mask + dcb_align_up(sizeof(int) * P);
    l.S = l.pooled + dcb_align_up(f * (size_t)h->c.cin * h->khw);
    l.K = l.S + dcb_align_up(f * m * m * h->khw);
    l.extra = l.K + dcb_align_up(f * m * h->cc * h->khw);
    l.total = l.extra;
    if (st == S_ALL) {
        l.total = l.extra + dcb_align_up(f * m * cout * P);  /* every region's output */
    } else if (st == S_SORTED) {
        l.idx = l.extra;                                     /* pixel indices by region */
        l.cnt = l.idx + dcb_align_up(sizeof(int) * P);
        l.B = l.cnt + dcb_align_up(sizeof(int) * (m + 1));
        const size_t Yt = l.B + dcb_align_up(f * P * h->Kd); /* a bucket's rows, then its outputs */
        l.extra = Yt;
        l.total = Yt + dcb_align_up(f * cout * P);
    }
    return l;
}

static size_t drc_workspace(const dcb_op *op, const int64_t *x) { return drc_layout(op, x).total; }

/* -------------------------------------------------------------------- run */
static void conv_all_regions(const dcb_op *op, const float *rows, const float *K, const int *mask, int P, float *Yall,
                             float *y, dcb_profile *prof) {
    const drc_hp *h = hp_of(op);
    const int cout = h->c.cout;
    double t0 = dcb_now();
    dcb_blas_threads_for(op->threads);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, h->m * cout, P, h->Kd, 1.0f, K, h->Kd, rows, h->Kd, 0.0f,
                Yall, P);
    DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
    t0 = dcb_now();
#pragma omp parallel for schedule(static) num_threads(op->threads) if (op->threads > 1)
    for (int o = 0; o < cout; o++)
        for (int p = 0; p < P; p++) y[(size_t)o * P + p] = Yall[((size_t)mask[p] * cout + o) * P + p];
    DCB_PHASE_ADD(prof, DCB_PHASE_COMBINE, t0);
}

/* Eight partial sums so that the compiler may vectorise without -ffast-math. */
static inline float dot(const float *a, const float *b, int n) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) s[l] += a[i + l] * b[i + l];
    float r = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

static void conv_gather(const dcb_op *op, const float *rows, const float *K, const int *mask, int P, float *y,
                        dcb_profile *prof) {
    const drc_hp *h = hp_of(op);
    const int cout = h->c.cout, Kd = h->Kd;
    double t0 = dcb_now();
#pragma omp parallel for schedule(static) num_threads(op->threads) if (op->threads > 1)
    for (int p = 0; p < P; p++) {
        const float *Kt = K + (size_t)mask[p] * cout * Kd, *r = rows + (size_t)p * Kd;
        for (int o = 0; o < cout; o++) y[(size_t)o * P + p] = dot(Kt + (size_t)o * Kd, r, Kd);
    }
    DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
}

static void conv_sorted(const dcb_op *op, const float *rows, const float *K, const int *mask, int P, int *idx,
                        int *cnt, float *B, float *Yt, float *y, dcb_profile *prof) {
    const drc_hp *h = hp_of(op);
    const int cout = h->c.cout, Kd = h->Kd, m = h->m;
    double t0 = dcb_now();
    /* counting sort: cnt[t] becomes the bucket start, stable in p */
    memset(cnt, 0, sizeof(int) * (size_t)(m + 1));
    for (int p = 0; p < P; p++) cnt[mask[p] + 1]++;
    for (int t = 0; t < m; t++) cnt[t + 1] += cnt[t];
    for (int p = 0; p < P; p++) idx[cnt[mask[p]]++] = p;
    for (int t = m; t > 0; t--) cnt[t] = cnt[t - 1];  /* restore starts: bucket t is [cnt[t], cnt[t+1]) */
    cnt[0] = 0;
    DCB_PHASE_ADD(prof, DCB_PHASE_COMBINE, t0);
    dcb_blas_threads_for(op->threads);
    for (int t = 0; t < m; t++) {
        const int s0 = cnt[t], n = cnt[t + 1] - s0;
        if (n == 0) continue;
        t0 = dcb_now();
#pragma omp parallel for schedule(static) num_threads(op->threads) if (op->threads > 1 && (size_t)n * Kd > 65536)
        for (int j = 0; j < n; j++) memcpy(B + (size_t)j * Kd, rows + (size_t)idx[s0 + j] * Kd, sizeof(float) * Kd);
        DCB_PHASE_ADD(prof, DCB_PHASE_TRANSFORM, t0);
        t0 = dcb_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, cout, n, Kd, 1.0f, K + (size_t)t * cout * Kd, Kd, B, Kd,
                    0.0f, Yt, n);
        DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
        t0 = dcb_now();
#pragma omp parallel for schedule(static) num_threads(op->threads) if (op->threads > 1 && (size_t)n * cout > 65536)
        for (int o = 0; o < cout; o++)
            for (int j = 0; j < n; j++) y[(size_t)o * P + idx[s0 + j]] = Yt[(size_t)o * n + j];
        DCB_PHASE_ADD(prof, DCB_PHASE_COMBINE, t0);
    }
}

static dcb_status drc_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    const drc_hp *h = hp_of(op);
    const int N = (int)x->shape[0], H = (int)x->shape[2], W = (int)x->shape[3];
    const int Ho = (int)y->shape[2], Wo = (int)y->shape[3], P = Ho * Wo;
    const drc_ws l = drc_layout(op, x->shape);
    char *b = ws;
    float *rows = (float *)(b + l.rows), *F = (float *)(b + l.F), *pooled = (float *)(b + l.pooled);
    float *S = (float *)(b + l.S), *K = (float *)(b + l.K);
    int *mask = (int *)(b + l.mask);
    const int st = strategy(op);
    for (int n = 0; n < N; n++) {
        const float *xn = x->data + (size_t)n * h->c.cin * H * W;
        float *yn = y->data + (size_t)n * h->c.cout * P;
        double t0 = dcb_now();
        im2row(h, H, W, Ho, Wo, xn, rows, op->threads);
        DCB_PHASE_ADD(prof, DCB_PHASE_TRANSFORM, t0);
        t0 = dcb_now();
        guide_mask(op, rows, P, F, mask);
        DCB_PHASE_ADD(prof, DCB_PHASE_ROUTING, t0);
        t0 = dcb_now();
        gen_kernels(op, xn, H, W, pooled, S, K);
        DCB_PHASE_ADD(prof, DCB_PHASE_KERNEL_GEN, t0);
        if (st == S_ALL)
            conv_all_regions(op, rows, K, mask, P, (float *)(b + l.extra), yn, prof);
        else if (st == S_GATHER)
            conv_gather(op, rows, K, mask, P, yn, prof);
        else
            conv_sorted(op, rows, K, mask, P, (int *)(b + l.idx), (int *)(b + l.cnt), (float *)(b + l.B),
                        (float *)(b + l.extra), yn, prof);
    }
    return DCB_OK;
}

/* all_regions convolves with all m kernels: m times the static-conv work. */
static double all_regions_executed(const dcb_op *op, const int64_t *x) {
    const drc_hp *h = hp_of(op);
    double ho, wo;
    out_hw(h, x, &ho, &wo);
    return dcb_op_macs(op, x) + (h->m - 1.0) * (double)x[0] * h->c.cout * h->Kd * ho * wo;
}

/* ------------------------------------------------------------------ hooks */
static dcb_status drc_kernels(dcb_op *op, const dcb_tensor *x, dcb_tensor **out) {
    const drc_hp *h = hp_of(op);
    const int N = (int)x->shape[0], H = (int)x->shape[2], W = (int)x->shape[3];
    const int64_t s[6] = {N, h->m, h->c.cout, h->c.cin, h->c.kh, h->c.kw};
    dcb_tensor *t = dcb_tensor_new(6, s);
    float *pooled = malloc(sizeof(float) * (size_t)h->c.cin * h->khw);
    float *S = malloc(sizeof(float) * (size_t)h->m * h->m * h->khw);
    if (!t || !pooled || !S) {
        dcb_tensor_free(t);
        free(pooled);
        free(S);
        return dcb_fail(DCB_OUT_OF_MEMORY, "drconv: out of memory for the kernels");
    }
    const size_t per = (size_t)h->m * h->cc * h->khw;
    for (int n = 0; n < N; n++)
        gen_kernels(op, x->data + (size_t)n * h->c.cin * H * W, H, W, pooled, S, t->data + n * per);
    free(pooled);
    free(S);
    *out = t;
    return DCB_OK;
}

static dcb_status drc_routing(dcb_op *op, const dcb_tensor *x, dcb_tensor **out) {
    const drc_hp *h = hp_of(op);
    const int N = (int)x->shape[0], H = (int)x->shape[2], W = (int)x->shape[3];
    const int Ho = dcb_conv_out(H, h->c.kh, h->c.stride, h->c.pad, h->c.dil);
    const int Wo = dcb_conv_out(W, h->c.kw, h->c.stride, h->c.pad, h->c.dil), P = Ho * Wo;
    const int64_t s[3] = {N, Ho, Wo};
    dcb_tensor *t = dcb_tensor_new(3, s);
    float *rows = malloc(sizeof(float) * (size_t)P * h->Kd), *F = malloc(sizeof(float) * (size_t)h->m * P);
    int *mask = malloc(sizeof(int) * (size_t)P);
    if (!t || !rows || !F || !mask) {
        dcb_tensor_free(t);
        free(rows);
        free(F);
        free(mask);
        return dcb_fail(DCB_OUT_OF_MEMORY, "drconv: out of memory for the mask");
    }
    for (int n = 0; n < N; n++) {
        im2row(h, H, W, Ho, Wo, x->data + (size_t)n * h->c.cin * H * W, rows, op->threads);
        guide_mask(op, rows, P, F, mask);
        for (int p = 0; p < P; p++) t->data[(size_t)n * P + p] = (float)mask[p];
    }
    free(rows);
    free(F);
    free(mask);
    *out = t;
    return DCB_OK;
}

/* ------------------------------------------------------------- backward
 * The rule (docs/TRAINING.md): the forward's mask is the one-hot argmax, and
 * every weight but the guide gets the exact gradient of that forward. The
 * argmax has no gradient, so the guided feature F gets the paper's surrogate:
 * the gradient as if y = sum_t s_t * y_t with s = softmax_t(F) (at the pixel),
 * y_t = region t's kernel applied there, i.e. with g_t = <dy[:,p], y_t[:,p]>,
 *     dF[t,p] = s_t * (g_t - sum_t' s_t' g_t').
 * The guide conv's backward then gives dguide_w, dguide_b, and a share of dx
 * (x feeds the guide), added to the exact one. The naive backward recomputes
 * rows, F, the mask and the kernels with the forward's own float code, so the
 * mask is the one the forward used; the fast one has its own training forward
 * (the same rows and guide sgemm) and keeps them. */

/* rows[at[p]][k] = cols[k][p] (at NULL: p), cols (Kd, P), rows (P, Kd), and
 * the inverse: blocked register transposes, the dynmix family's
 * (ukernels/dynmix.h), its variant picked at run time for the CPU. */
static void tr_c2r(const float *cols, size_t P, size_t Kd, float *rows, const int *at) {
    dcb_dynmix()->c2r(cols, P, Kd, rows, at);
}

/* cols[k][p] = rows[at[p]][k]: tr_c2r's inverse. */
static void tr_r2c(const float *rows, size_t P, size_t Kd, float *cols, const int *at) {
    dcb_dynmix()->r2c(rows, P, Kd, cols, at);
}

/* im2row's rows through the column layout: cols (Kd, P') = im2col, each tap
 * copying contiguous runs (im2col_taps), then a blocked transpose into rows
 * (P', Kd) (im2row_cols); the values are the same copies, so the same F and
 * mask, without stores at a stride of Kd. */
static void im2col_taps(const drc_hp *h, int H, int W, int Ho, int Wo, const float *x, float *cols) {
    const dcb_conv2d_p *p = &h->c;
    const size_t P = (size_t)Ho * Wo;
    for (int c = 0; c < p->cin; c++)
        for (int u = 0; u < p->kh; u++) {
            const int ou = u * p->dil - p->pad;
            int i0, i1;
            dcb_conv2d_valid_range(H, Ho, p->stride, ou, &i0, &i1);
            for (int v = 0; v < p->kw; v++) {
                const int ov = v * p->dil - p->pad;
                int j0, j1;
                dcb_conv2d_valid_range(W, Wo, p->stride, ov, &j0, &j1);
                float *d = cols + (((size_t)c * p->kh + u) * p->kw + v) * P;
                const int ie = i1 > i0 ? i1 : i0;
                memset(d, 0, sizeof(float) * (size_t)i0 * Wo);
                if (p->stride == 1 && Wo == W && ie > i0 && j1 > j0) {
                    /* the tap is the channel shifted by (ou, ov): one copy of
                     * its in-bounds span, then the wrapped columns zeroed */
                    const size_t a = (size_t)i0 * Wo + j0, e = (size_t)(ie - 1) * Wo + j1;
                    memcpy(d + a, x + (size_t)c * H * W + (ptrdiff_t)a + (ptrdiff_t)ou * W + ov, sizeof(float) * (e - a));
                    for (int i = i0; i < ie; i++) {
                        float *dr = d + (size_t)i * Wo;
                        for (int j = 0; j < j0; j++) dr[j] = 0.0f;
                        for (int j = j1; j < Wo; j++) dr[j] = 0.0f;
                    }
                    memset(d + (size_t)ie * Wo, 0, sizeof(float) * (size_t)(Ho - ie) * Wo);
                    continue;
                }
                for (int i = i0; i < ie; i++) {
                    float *dr = d + (size_t)i * Wo;
                    const float *xr = x + ((size_t)c * H + (size_t)(i * p->stride + ou)) * W + ov;
                    for (int j = 0; j < j0 && j < Wo; j++) dr[j] = 0.0f;
                    if (p->stride == 1)
                        for (int j = j0; j < j1; j++) dr[j] = xr[j];
                    else
                        for (int j = j0; j < j1; j++) dr[j] = xr[(size_t)j * p->stride];
                    for (int j = j1 > j0 ? j1 : j0; j < Wo; j++) dr[j] = 0.0f;
                }
                memset(d + (size_t)ie * Wo, 0, sizeof(float) * (size_t)(Ho - ie) * Wo);
            }
        }
}

static void im2row_cols(const drc_hp *h, int H, int W, int Ho, int Wo, const float *x, float *cols, float *rows) {
    im2col_taps(h, H, W, Ho, Wo, x, cols);
    tr_c2r(cols, (size_t)Ho * Wo, (size_t)h->Kd, rows, NULL);
}

/* dx[c, ii, jj] += dcols[(c*kh + u)*kw + v][p]: the adjoint of im2row with the
 * gradient in column layout (Kd, P'), so that each tap adds contiguous runs. */
static void col2im_taps(const drc_hp *h, int H, int W, int Ho, int Wo, const float *dcols, float *dx) {
    const dcb_conv2d_p *p = &h->c;
    const size_t P = (size_t)Ho * Wo;
    for (int c = 0; c < p->cin; c++)
        for (int u = 0; u < p->kh; u++) {
            const int ou = u * p->dil - p->pad;
            int i0, i1;
            dcb_conv2d_valid_range(H, Ho, p->stride, ou, &i0, &i1);
            for (int v = 0; v < p->kw; v++) {
                const int ov = v * p->dil - p->pad;
                int j0, j1;
                dcb_conv2d_valid_range(W, Wo, p->stride, ov, &j0, &j1);
                const float *d = dcols + (((size_t)c * p->kh + u) * p->kw + v) * P;
                for (int i = i0; i < i1; i++) {
                    float *xr = dx + ((size_t)c * H + (size_t)(i * p->stride + ou)) * W + ov;
                    const float *dr = d + (size_t)i * Wo;
                    if (p->stride == 1)
                        for (int j = j0; j < j1; j++) xr[j] += dr[j];
                    else
                        for (int j = j0; j < j1; j++) xr[(size_t)j * p->stride] += dr[j];
                }
            }
        }
}

/* dx[c] += dQ[c, u, v] / |bin| on every pixel of bin (u, v): the pooling's adjoint. */
static void pool_bwd(const drc_hp *h, int H, int W, const float *dQ, float *dx) {
    const int kh = h->c.kh, kw = h->c.kw;
    for (int c = 0; c < h->c.cin; c++)
        for (int u = 0; u < kh; u++) {
            const int i0 = bin_lo(u, H, kh), i1 = bin_hi(u, H, kh);
            for (int v = 0; v < kw; v++) {
                const int j0 = bin_lo(v, W, kw), j1 = bin_hi(v, W, kw);
                const float g = (float)(dQ[(size_t)c * h->khw + u * kw + v] / ((double)(i1 - i0) * (j1 - j0)));
                for (int ii = i0; ii < i1; ii++)
                    for (int jj = j0; jj < j1; jj++) dx[((size_t)c * H + ii) * W + jj] += g;
            }
        }
}

/* The weight gradients, in the order of drc_weights: offsets into one block. */
typedef struct drc_gl { size_t gw, gb, g1w, g1b, g2w, g2b, total; } drc_gl;

static drc_gl grad_layout(const drc_hp *h) {
    const size_t m = (size_t)h->m;
    drc_gl g;
    g.gw = 0;
    g.gb = g.gw + m * h->Kd;
    g.g1w = g.gb + m;
    g.g1b = g.g1w + m * m * h->c.cin;
    g.g2w = g.g1b + m * m;
    g.g2b = g.g2w + m * h->cc * m;
    g.total = g.g2b + m * h->cc;
    return g;
}

static const char *const grad_names[6] = {"guide_w", "guide_b", "gen1_w", "gen1_b", "gen2_w", "gen2_b"};

static dcb_status drc_bwd_naive_run(dcb_op *op, const dcb_train_ctx *c) {
    const drc_hp *h = hp_of(op);
    const int N = (int)c->x->shape[0], H = (int)c->x->shape[2], W = (int)c->x->shape[3];
    const int Ho = (int)c->dy->shape[2], Wo = (int)c->dy->shape[3], P = Ho * Wo;
    const int m = h->m, cout = h->c.cout, cin = h->c.cin, Kd = h->Kd, khw = h->khw;
    const size_t cc = h->cc, KK = (size_t)m * cc * khw, xs = (size_t)cin * H * W;
    const drc_gl gl = grad_layout(h);
    float *rows = malloc(sizeof(float) * ((size_t)P * Kd + (size_t)m * P + (size_t)cin * khw +
                                          (size_t)m * m * khw + KK + xs));
    int *mask = malloc(sizeof(int) * (size_t)P);
    double *acc = calloc(gl.total + KK + (size_t)P * Kd + 3 * (size_t)m * m * khw + (size_t)cin * khw + xs + 3 * (size_t)m,
                         sizeof(double));
    if (!rows || !mask || !acc) {
        free(rows);
        free(mask);
        free(acc);
        return dcb_fail(DCB_OUT_OF_MEMORY, "drconv backward: out of memory");
    }
    float *F = rows + (size_t)P * Kd, *Q = F + (size_t)m * P, *S = Q + (size_t)cin * khw, *K = S + (size_t)m * m * khw;
    float *dxf = K + KK;
    double *dK = acc + gl.total, *drows = dK + KK, *dS = drows + (size_t)P * Kd, *dZ = dS + (size_t)m * m * khw;
    double *dQ = dZ + (size_t)m * m * khw, *dxn = dQ + (size_t)cin * khw, *gt = dxn + xs, *st = gt + m;
    const float *gw = dcb_w(op, "guide_w")->data, *g1w = dcb_w(op, "gen1_w")->data, *g2w = dcb_w(op, "gen2_w")->data;
    for (int n = 0; n < N; n++) {
        const float *xn = c->x->data + (size_t)n * xs, *dy = c->dy->data + (size_t)n * cout * P;
        im2row(h, H, W, Ho, Wo, xn, rows, op->threads);
        guide_mask(op, rows, P, F, mask);
        gen_kernels(op, xn, H, W, Q, S, K);
        memset(dK, 0, sizeof(double) * KK);
        memset(drows, 0, sizeof(double) * (size_t)P * Kd);
        for (int p = 0; p < P; p++) {
            const float *r = rows + (size_t)p * Kd;
            double *dr = drows + (size_t)p * Kd;
            /* the one-hot forward: region mask[p] */
            for (int o = 0; o < cout; o++) {
                const size_t ko = ((size_t)mask[p] * cout + o) * Kd;
                const double d = dy[(size_t)o * P + p];
                for (int k = 0; k < Kd; k++) {
                    dK[ko + k] += d * r[k];
                    dr[k] += d * K[ko + k];
                }
            }
            /* the surrogate: g_t, softmax s, dF */
            double mx = F[p], se = 0, gbar = 0;
            for (int t = 1; t < m; t++) mx = F[(size_t)t * P + p] > mx ? F[(size_t)t * P + p] : mx;
            for (int t = 0; t < m; t++) {
                double g = 0;
                for (int o = 0; o < cout; o++) {
                    const float *kt = K + ((size_t)t * cout + o) * Kd;
                    double yo = 0;
                    for (int k = 0; k < Kd; k++) yo += (double)kt[k] * r[k];
                    g += yo * dy[(size_t)o * P + p];
                }
                gt[t] = g;
                st[t] = exp((double)F[(size_t)t * P + p] - mx);
                se += st[t];
            }
            for (int t = 0; t < m; t++) gbar += st[t] / se * gt[t];
            for (int t = 0; t < m; t++) {
                const double dF = st[t] / se * (gt[t] - gbar);
                acc[gl.gb + t] += dF;
                for (int k = 0; k < Kd; k++) {
                    acc[gl.gw + (size_t)t * Kd + k] += dF * r[k];
                    dr[k] += dF * gw[(size_t)t * Kd + k];
                }
            }
        }
        /* generation: dK read as dB (m*cc, khw), group t = rows [t*cc, (t+1)*cc) */
        memset(dS, 0, sizeof(double) * (size_t)m * m * khw);
        for (int t = 0; t < m; t++)
            for (size_t rr = (size_t)t * cc; rr < (size_t)(t + 1) * cc; rr++)
                for (int q = 0; q < khw; q++) {
                    const double d = dK[rr * khw + q];
                    acc[gl.g2b + rr] += d;
                    for (int sx = 0; sx < m; sx++) {
                        acc[gl.g2w + rr * m + sx] += d * S[((size_t)t * m + sx) * khw + q];
                        dS[((size_t)t * m + sx) * khw + q] += d * g2w[rr * m + sx];
                    }
                }
        for (size_t i = 0; i < (size_t)m * m * khw; i++) dZ[i] = dS[i] * S[i] * (1.0 - S[i]);
        for (int rr = 0; rr < m * m; rr++)
            for (int q = 0; q < khw; q++) {
                acc[gl.g1b + rr] += dZ[(size_t)rr * khw + q];
                for (int ci = 0; ci < cin; ci++)
                    acc[gl.g1w + (size_t)rr * cin + ci] += dZ[(size_t)rr * khw + q] * Q[(size_t)ci * khw + q];
            }
        if (!c->dx) continue;
        for (int ci = 0; ci < cin; ci++)
            for (int q = 0; q < khw; q++) {
                double d = 0;
                for (int rr = 0; rr < m * m; rr++) d += g1w[(size_t)rr * cin + ci] * dZ[(size_t)rr * khw + q];
                dQ[(size_t)ci * khw + q] = d;
            }
        /* dx = the adjoint of im2row of drows + the pooling's adjoint, in double */
        memset(dxn, 0, sizeof(double) * xs);
        for (int i = 0; i < Ho; i++)
            for (int j = 0; j < Wo; j++) {
                const double *r = drows + ((size_t)i * Wo + j) * Kd;
                for (int ci = 0; ci < cin; ci++)
                    for (int u = 0; u < h->c.kh; u++) {
                        const int ii = i * h->c.stride + u * h->c.dil - h->c.pad;
                        if (ii < 0 || ii >= H) continue;
                        for (int v = 0; v < h->c.kw; v++) {
                            const int jj = j * h->c.stride + v * h->c.dil - h->c.pad;
                            if (jj >= 0 && jj < W)
                                dxn[((size_t)ci * H + ii) * W + jj] += r[((size_t)ci * h->c.kh + u) * h->c.kw + v];
                        }
                    }
            }
        for (int ci = 0; ci < cin; ci++)
            for (int u = 0; u < h->c.kh; u++) {
                const int i0 = bin_lo(u, H, h->c.kh), i1 = bin_hi(u, H, h->c.kh);
                for (int v = 0; v < h->c.kw; v++) {
                    const int j0 = bin_lo(v, W, h->c.kw), j1 = bin_hi(v, W, h->c.kw);
                    const double g = dQ[(size_t)ci * khw + u * h->c.kw + v] / ((double)(i1 - i0) * (j1 - j0));
                    for (int ii = i0; ii < i1; ii++)
                        for (int jj = j0; jj < j1; jj++) dxn[((size_t)ci * H + ii) * W + jj] += g;
                }
            }
        for (size_t i = 0; i < xs; i++) dxf[i] = (float)dxn[i];
        memcpy(c->dx->data + (size_t)n * xs, dxf, sizeof(float) * xs);
    }
    const size_t offs[7] = {gl.gw, gl.gb, gl.g1w, gl.g1b, gl.g2w, gl.g2b, gl.total};
    for (int i = 0; i < 6; i++) {
        float *d = dcb_dw(op, c, grad_names[i]);
        if (d)
            for (size_t k = offs[i]; k < offs[i + 1]; k++) d[k - offs[i]] = (float)acc[k];
    }
    free(rows);
    free(mask);
    free(acc);
    return DCB_OK;
}

/* Fast: a training forward of its own that keeps, per sample, what the
 * backward needs (rows, F, the mask, the kernels and every region's output
 * Yall, from which y is the per-pixel select), then the backward with
 * samples in parallel, each with sgemms: the guide's backward and per region
 * the bucket of its pixels (dK_t and the rows' gradient). The weight
 * gradients go to per-thread partials (static schedule), summed in thread
 * order: deterministic for a given thread count. */
typedef struct drc_sl {
    size_t F, Yall, Q, S, K, mask, total;
} drc_sl;

#define DRC_AT(field, bytes) (l.field = o, o += dcb_align_up(bytes))
static drc_sl saved_layout(const drc_hp *h, int P) {
    const size_t m = (size_t)h->m, cout = (size_t)h->c.cout, khw = (size_t)h->khw;
    const size_t f = sizeof(float);
    drc_sl l;
    size_t o = 0;
    DRC_AT(F, f * m * P);
    DRC_AT(Yall, f * m * cout * P);
    DRC_AT(Q, f * h->c.cin * khw);
    DRC_AT(S, f * m * m * khw);
    DRC_AT(K, f * m * h->cc * khw);
    DRC_AT(mask, sizeof(int) * P);
    l.total = o;
    return l;
}

typedef struct drc_tl {
    size_t rows, G, dF, DyS, RowS, dRowS, drows, dK, dS, dQ, pos, idx, cnt, total;
} drc_tl;

static drc_tl thread_layout(const drc_hp *h, int P) {
    const size_t m = (size_t)h->m, Kd = (size_t)h->Kd, cout = (size_t)h->c.cout, khw = (size_t)h->khw;
    const size_t f = sizeof(float);
    drc_tl l;
    size_t o = 0;
    DRC_AT(rows, f * P * Kd);
    DRC_AT(G, f * m * P);
    DRC_AT(dF, f * m * P);
    DRC_AT(DyS, f * P * cout);
    DRC_AT(RowS, f * P * Kd);
    DRC_AT(dRowS, f * P * Kd);
    DRC_AT(drows, f * P * Kd);
    DRC_AT(dK, f * m * h->cc * khw);
    DRC_AT(dS, f * m * m * khw);
    DRC_AT(dQ, f * h->c.cin * khw);
    DRC_AT(pos, sizeof(int) * P);
    DRC_AT(idx, sizeof(int) * P);
    DRC_AT(cnt, sizeof(int) * (m + 1));
    l.total = o;
    return l;
}
#undef DRC_AT

/* One sample of the training forward into its saved block b; y (cout, P). */
static void drc_fwd_sample(const dcb_op *op, const float *xn, float *yn, int H, int W, int Ho, int Wo, char *b,
                           const drc_sl *l, float *rows, float *cols) {
    const drc_hp *h = hp_of(op);
    const int P = Ho * Wo, m = h->m, cout = h->c.cout, Kd = h->Kd;
    float *F = (float *)(b + l->F), *Yall = (float *)(b + l->Yall);
    float *Q = (float *)(b + l->Q), *S = (float *)(b + l->S), *K = (float *)(b + l->K);
    int *mask = (int *)(b + l->mask);
    im2row_cols(h, H, W, Ho, Wo, xn, cols, rows);
    guide_mask_t(op, rows, P, F, mask, 1);
    gen_kernels_t(op, xn, H, W, Q, S, K);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m * cout, P, Kd, 1.0f, K, Kd, rows, Kd, 0.0f, Yall, P);
    for (int o = 0; o < cout; o++)
        for (int p = 0; p < P; p++) yn[(size_t)o * P + p] = Yall[((size_t)mask[p] * cout + o) * P + p];
}

/* The saved block: a header, the N samples' saved state, then the backward's
 * scratch (T threads' drc_tl blocks, each followed by its weight-gradient
 * partial). It lives in op->train_ws, which op.c keeps across training
 * forwards (and frees at destroy) and which no other path uses while this
 * backward's training forward is in place: a fresh block per call would
 * take a page fault per 4 KiB on every call. */
typedef struct drc_hdr {
    int N, T;
    size_t sample, thread, bytes;
} drc_hdr;

static size_t drc_grad_bytes(const drc_hp *h) { return dcb_align_up(sizeof(float) * grad_layout(h).total); }

static dcb_status drc_bwd_fast_forward(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void **saved) {
    const drc_hp *h = hp_of(op);
    const int N = (int)x->shape[0], H = (int)x->shape[2], W = (int)x->shape[3];
    const int Ho = (int)y->shape[2], Wo = (int)y->shape[3], T = op->threads > 0 ? op->threads : 1;
    const size_t xs = (size_t)h->c.cin * H * W, ys = (size_t)h->c.cout * Ho * Wo;
    const drc_sl l = saved_layout(h, Ho * Wo);
    const size_t hb = dcb_align_up(sizeof(drc_hdr)), tb = thread_layout(h, Ho * Wo).total + drc_grad_bytes(h);
    const size_t bytes = hb + l.total * (size_t)N + tb * (size_t)T;
    if (bytes > op->train_ws_bytes) {
        dcb_aligned_free(op->train_ws);
        op->train_ws_bytes = 0;
        if (!(op->train_ws = dcb_aligned_alloc(bytes)))
            return dcb_fail(DCB_OUT_OF_MEMORY, "drconv training forward: out of memory (%zu bytes)", bytes);
        op->train_ws_bytes = bytes;
    }
    char *mem = op->train_ws;
    *(drc_hdr *)mem = (drc_hdr){.N = N, .T = T, .sample = l.total, .thread = tb, .bytes = bytes};
    char *sv = mem + hb, *scratch = sv + l.total * (size_t)N;
    const drc_tl tl = thread_layout(h, Ho * Wo); /* a thread's backward scratch, free until then */
    dcb_blas_threads_for(1);
#pragma omp parallel num_threads(T) if (T > 1)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *rows = (float *)(scratch + (size_t)tid * tb + tl.rows), *cols = (float *)(scratch + (size_t)tid * tb + tl.drows);
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++)
            drc_fwd_sample(op, x->data + (size_t)n * xs, y->data + (size_t)n * ys, H, W, Ho, Wo,
                           sv + (size_t)n * l.total, &l, rows, cols);
    }
    *saved = mem;
    return DCB_OK;
}

static void drc_bwd_sample(const dcb_op *op, const float *xn, const float *dy, float *dxn, int H, int W, int Ho, int Wo,
                           const char *sv, const drc_sl *sl, char *b, const drc_tl *l, float *part, const drc_gl *gl) {
    const drc_hp *h = hp_of(op);
    const int P = Ho * Wo, m = h->m, cout = h->c.cout, cin = h->c.cin, Kd = h->Kd, khw = h->khw, cc = (int)h->cc;
    const float *F = (const float *)(sv + sl->F);
    const float *Yall = (const float *)(sv + sl->Yall), *Q = (const float *)(sv + sl->Q);
    const float *S = (const float *)(sv + sl->S), *K = (const float *)(sv + sl->K);
    const int *mask = (const int *)(sv + sl->mask);
    float *G = (float *)(b + l->G), *dF = (float *)(b + l->dF), *DyS = (float *)(b + l->DyS);
    float *RowS = (float *)(b + l->RowS), *dRowS = (float *)(b + l->dRowS), *drows = (float *)(b + l->drows);
    float *dK = (float *)(b + l->dK), *dS = (float *)(b + l->dS), *dQ = (float *)(b + l->dQ);
    int *pos = (int *)(b + l->pos), *idx = (int *)(b + l->idx), *cnt = (int *)(b + l->cnt);
    const float *gw = dcb_w(op, "guide_w")->data, *g1w = dcb_w(op, "gen1_w")->data, *g2w = dcb_w(op, "gen2_w")->data;

    /* the pixels bucketed by region (counting sort, stable in p): bucket t
     * is [cnt[t], cnt[t+1]) of idx, pos[p] = p's place in that order */
    memset(cnt, 0, sizeof(int) * (size_t)(m + 1));
    for (int p = 0; p < P; p++) cnt[mask[p] + 1]++;
    for (int t = 0; t < m; t++) cnt[t + 1] += cnt[t];
    for (int p = 0; p < P; p++) idx[cnt[mask[p]]++] = p;
    for (int t = m; t > 0; t--) cnt[t] = cnt[t - 1];
    cnt[0] = 0;
    for (int j = 0; j < P; j++) pos[idx[j]] = j;
    /* the columns again, in this thread's cache (drows is free until the
     * end), and the rows from them straight into bucket order */
    float *cols = drows;
    im2col_taps(h, H, W, Ho, Wo, xn, cols);
    tr_c2r(cols, (size_t)P, (size_t)Kd, RowS, pos);
    /* surrogate: g_t[p] = <dy[:,p], y_t[:,p]>, then dF = s (g - <s, g>) */
    for (int t = 0; t < m; t++) {
        float *g = G + (size_t)t * P;
        memset(g, 0, sizeof(float) * P);
        for (int o = 0; o < cout; o++) {
            const float *yt = Yall + ((size_t)t * cout + o) * P, *d = dy + (size_t)o * P;
            for (int p = 0; p < P; p++) g[p] += d[p] * yt[p];
        }
    }
    for (int p = 0; p < P; p++) {
        float mx = F[p], se = 0, gbar = 0;
        for (int t = 1; t < m; t++) mx = F[(size_t)t * P + p] > mx ? F[(size_t)t * P + p] : mx;
        for (int t = 0; t < m; t++) {
            const float e = expf(F[(size_t)t * P + p] - mx);
            dF[(size_t)t * P + p] = e;
            se += e;
        }
        const float inv = 1.0f / se;
        for (int t = 0; t < m; t++) gbar += dF[(size_t)t * P + p] * inv * G[(size_t)t * P + p];
        for (int t = 0; t < m; t++) dF[(size_t)t * P + p] *= inv * (G[(size_t)t * P + p] - gbar);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, Kd, P, 1.0f, dF, P, cols, P, 1.0f, part + gl->gw, Kd);
    for (int t = 0; t < m; t++) {
        float s = 0;
        for (int p = 0; p < P; p++) s += dF[(size_t)t * P + p];
        part[gl->gb + t] += s;
    }
    /* the one-hot forward, region by region */
    for (int j = 0; j < P; j++) {
        const int p = idx[j];
        for (int o = 0; o < cout; o++) DyS[(size_t)j * cout + o] = dy[(size_t)o * P + p];
    }
    for (int t = 0; t < m; t++) {
        const int s0 = cnt[t], nt = cnt[t + 1] - s0;
        float *dKt = dK + (size_t)t * cout * Kd;
        if (nt == 0) {
            memset(dKt, 0, sizeof(float) * (size_t)cout * Kd);
            continue;
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cout, Kd, nt, 1.0f, DyS + (size_t)s0 * cout, cout,
                    RowS + (size_t)s0 * Kd, Kd, 0.0f, dKt, Kd);
        if (dxn) /* the bucket's row gradients (nt, Kd), rows s0.. of (P, Kd) in bucket order */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nt, Kd, cout, 1.0f, DyS + (size_t)s0 * cout, cout,
                        K + (size_t)t * cout * Kd, Kd, 0.0f, dRowS + (size_t)s0 * Kd, Kd);
    }
    /* generation: dK read as dB (m*cc, khw) */
    for (int t = 0; t < m; t++) {
        const float *dBt = dK + (size_t)t * cc * khw, *St = S + (size_t)t * m * khw, *g2t = g2w + (size_t)t * cc * m;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, cc, m, khw, 1.0f, dBt, khw, St, khw, 1.0f,
                    part + gl->g2w + (size_t)t * cc * m, m);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, khw, cc, 1.0f, g2t, m, dBt, khw, 0.0f,
                    dS + (size_t)t * m * khw, khw);
    }
    for (size_t r = 0; r < (size_t)m * cc; r++) {
        float s = 0;
        for (int q = 0; q < khw; q++) s += dK[r * khw + q];
        part[gl->g2b + r] += s;
    }
    for (size_t i = 0; i < (size_t)m * m * khw; i++) dS[i] *= S[i] * (1.0f - S[i]); /* now dZ */
    for (int r = 0; r < m * m; r++) {
        float s = 0;
        for (int q = 0; q < khw; q++) s += dS[(size_t)r * khw + q];
        part[gl->g1b + r] += s;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m * m, cin, khw, 1.0f, dS, khw, Q, khw, 1.0f,
                part + gl->g1w, cin);
    if (!dxn) return;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cin, khw, m * m, 1.0f, g1w, cin, dS, khw, 0.0f, dQ, khw);
    /* the rows' gradient in column layout (Kd, P): the guide's share, plus
     * each pixel's region kernel's (bucket order back to pixel order) */
    float *dcols = drows;
    tr_r2c(dRowS, (size_t)P, (size_t)Kd, dcols, pos);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Kd, P, m, 1.0f, gw, Kd, dF, P, 1.0f, dcols, P);
    memset(dxn, 0, sizeof(float) * (size_t)cin * H * W);
    col2im_taps(h, H, W, Ho, Wo, dcols, dxn);
    pool_bwd(h, H, W, dQ, dxn);
}

static dcb_status drc_bwd_fast_run(dcb_op *op, const dcb_train_ctx *c) {
    const drc_hp *h = hp_of(op);
    const int N = (int)c->x->shape[0], H = (int)c->x->shape[2], W = (int)c->x->shape[3];
    const int Ho = (int)c->dy->shape[2], Wo = (int)c->dy->shape[3];
    const size_t xs = (size_t)h->c.cin * H * W, ys = (size_t)h->c.cout * Ho * Wo;
    const drc_sl sl = saved_layout(h, Ho * Wo);
    const drc_tl l = thread_layout(h, Ho * Wo);
    const drc_gl gl = grad_layout(h);
    const drc_hdr *hd = c->saved;
    const size_t hb = dcb_align_up(sizeof(drc_hdr)), tb = l.total + drc_grad_bytes(h);
    const int T = op->threads > 0 ? op->threads : 1;
    const char *sv = (const char *)c->saved + hb;
    char *own = NULL, *mem = (char *)c->saved + hb + sl.total * (size_t)N;
    if (hd->N != N || hd->sample != sl.total || hd->thread != tb) /* cannot happen: the forward sized it */
        return dcb_fail(DCB_INVALID_ARGUMENT, "drconv backward: the training forward's state does not match");
    if (T > hd->T) { /* threads raised since the training forward */
        if (!(own = mem = dcb_aligned_alloc(tb * (size_t)T)))
            return dcb_fail(DCB_OUT_OF_MEMORY, "drconv backward: out of memory");
    }
    dcb_blas_threads_for(1);
#pragma omp parallel num_threads(T)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        char *b = mem + (size_t)tid * tb;
        float *part = (float *)(b + l.total);
        memset(part, 0, sizeof(float) * gl.total);
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++)
            drc_bwd_sample(op, c->x->data + (size_t)n * xs, c->dy->data + (size_t)n * ys, c->dx ? c->dx->data + (size_t)n * xs : NULL, H, W, Ho,
                           Wo, sv + (size_t)n * sl.total, &sl, b, &l, part, &gl);
    }
    const size_t offs[7] = {gl.gw, gl.gb, gl.g1w, gl.g1b, gl.g2w, gl.g2b, gl.total};
    for (int i = 0; i < 6; i++) {
        float *d = dcb_dw(op, c, grad_names[i]);
        if (!d) continue;
        for (size_t k = offs[i]; k < offs[i + 1]; k++) {
            float s = 0;
            for (int t = 0; t < T; t++) s += ((const float *)(mem + (size_t)t * tb + l.total))[k];
            d[k - offs[i]] = s;
        }
    }
    dcb_aligned_free(own);
    return DCB_OK;
}

static const dcb_bwd_vt drc_bwd_naive = {
    .name = "naive", .doc = "direct loops in double (surrogate guide gradient: softmax over the regions)",
    .tol = 1e-6, .run = drc_bwd_naive_run};
static const dcb_bwd_vt drc_bwd_fast = {
    .name = "gemm",
    .doc = "training forward keeps rows, mask, kernels and every region's output; per sample the region buckets as "
           "sgemms; samples in parallel",
    .tol = 1e-4, .forward = drc_bwd_fast_forward, .run = drc_bwd_fast_run};
static const dcb_bwd_vt *const drc_bwds[] = {&drc_bwd_naive, &drc_bwd_fast};

/* -------------------------------------------------------- implementations */
/* One vtable per strategy s (S_<id>); all_regions performs more (executed). */
#define DRC_IMPL(var, s, id, what, executed)                                                                 \
    static const dcb_impl_vt var = {.name = s, .doc = what, .strategy = s, .strategy_id = id, .tol = 2e-06,  \
                                    .workspace = drc_workspace, .run = drc_run, .executed_macs = executed};
DRC_IMPL(impl_all, "all_regions", S_ALL,
         "every region's output (m convs as one sgemm), then a per-pixel select: m times the conv work",
         all_regions_executed)
DRC_IMPL(impl_gather, "gather", S_GATHER,
         "per output pixel, its im2col row times its region's kernel: static-conv work", NULL)
DRC_IMPL(impl_sorted, "region_sorted", S_SORTED,
         "pixels bucketed by region, each bucket's rows gathered and one sgemm per region", NULL)
#undef DRC_IMPL
static const dcb_impl_vt *const drc_impls[] = {&impl_all, &impl_gather, &impl_sorted};

const dcb_op_info dcb_drconv_info = {
    DCB_BWDS(drc_bwds),
    .name = "drconv", .layout = DCB_INPUT_IMAGE, .channels_param = "cin",
    .doc = "Dynamic Region-Aware Convolution (Chen et al. 2021, paper form): per-pixel region kernels from a guide argmax",
    DCB_PARAMS(drc_params), DCB_IMPLS(drc_impls), .validate = drc_validate, .weights = drc_weights,
    .out_shape = drc_out_shape, .cost = drc_cost, .kernels = drc_kernels, .routing = drc_routing,
};
