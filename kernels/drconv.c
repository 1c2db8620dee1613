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

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    s[n++] = (dcb_weight_spec){"guide_w", 4, {m, h->c.cin, h->c.kh, h->c.kw}, 0, 0};
    s[n++] = (dcb_weight_spec){"guide_b", 1, {m}, h->Kd, 1};
    s[n++] = (dcb_weight_spec){"gen1_w", 2, {m * m, h->c.cin}, 0, 0};
    s[n++] = (dcb_weight_spec){"gen1_b", 1, {m * m}, h->c.cin, 1};
    /* grouped 1x1 with m groups: fan_in = m */
    s[n++] = (dcb_weight_spec){"gen2_w", 2, {m * (int64_t)h->cc, m}, 0, 0};
    s[n++] = (dcb_weight_spec){"gen2_b", 1, {m * (int64_t)h->cc}, (double)m, 1};
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
                    for (int v = 0; v < p->kw; v++) {
                        const int jj = j * p->stride + v * p->dil - p->pad;
                        d[v] = (jj >= 0 && jj < W) ? xr[jj] : 0.0f;
                    }
                }
            }
        }
}

/* Guide conv F (m, P') from rows, then mask[p] = first argmax over regions. */
static void guide_mask(const dcb_op *op, const float *rows, int P, float *F, int *mask) {
    const drc_hp *h = hp_of(op);
    const float *gb = dcb_w(op, "guide_b")->data;
    for (int t = 0; t < h->m; t++)
        for (int p = 0; p < P; p++) F[(size_t)t * P + p] = gb[t];
    dcb_blas_threads_for(op->threads);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, h->m, P, h->Kd, 1.0f, dcb_w(op, "guide_w")->data, h->Kd,
                rows, h->Kd, 1.0f, F, P);
#pragma omp parallel for schedule(static) num_threads(op->threads) if (op->threads > 1 && P > 4096)
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

/* The m kernels of one sample, K (m*cout*cin, kh*kw); pooled (cin, kh*kw)
 * and S (m*m, kh*kw) are scratch. */
static void gen_kernels(const dcb_op *op, const float *x, int H, int W, float *pooled, float *S, float *K) {
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
    dcb_blas_threads_for(op->threads);
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
    .name = "drconv", .layout = DCB_INPUT_IMAGE, .channels_param = "cin",
    .doc = "Dynamic Region-Aware Convolution (Chen et al. 2021, paper form): per-pixel region kernels from a guide argmax",
    DCB_PARAMS(drc_params), DCB_IMPLS(drc_impls), .validate = drc_validate, .weights = drc_weights,
    .out_shape = drc_out_shape, .cost = drc_cost, .kernels = drc_kernels, .routing = drc_routing,
};
