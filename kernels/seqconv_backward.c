/* Backward passes of lightconv and dynconv1d (docs/TRAINING.md), over the
 * sequence convolution y[n,t,c] = bias[c] + sum_j k(n,t)[h(c), j] x[n, t+j-lp, c]:
 *   dx[n,s,c]      = sum_j k(n, s-j+lp)[h, j] dy[n, s-j+lp, c]   (the conv path)
 *   dk(n,t)[h, j]  = sum_{c in head h} dy[n,t,c] x[n, t+j-lp, c]
 *   dbias[c]       = sum_{n,t} dy[n,t,c]
 * then through the softmax over K (dl_j = w_j (g_j - sum_i w_i g_i)) into
 * lightconv's weight (summed over n, t), or into dynconv1d's predictor:
 * dwlin_w = dL^T x, dwlin_b = sum dL, and dx += dL wlin_w.
 *   naive  direct loops in double (kernels predicted in double): the oracle;
 *   direct (lightconv) / gemm (dynconv1d)  OpenMP over samples, loops over
 *          contiguous channels that the compiler vectorises, per-thread
 *          partial sums reduced in thread order (deterministic for a thread
 *          count); dynconv1d keeps its softmaxed kernels from a training
 *          forward and does the predictor's gradients with sgemm. */
#include "seqconv.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Valid taps of output step t: j in [j0, j1) read inside [0, T). */
static inline void taps_of(int t, int T, int K, int lp, int *j0, int *j1) {
    *j0 = t - lp < 0 ? lp - t : 0;
    *j1 = t - lp + K > T ? T + lp - t : K;
    if (*j1 < *j0) *j1 = *j0;
}

static void softmax_d(double *v, int K) {
    double m = -INFINITY, s = 0;
    for (int j = 0; j < K; j++) m = v[j] > m ? v[j] : m;
    for (int j = 0; j < K; j++) s += (v[j] = exp(v[j] - m));
    for (int j = 0; j < K; j++) v[j] /= s;
}

/* g <- w * (g - <w, g>) on one K-long row: the softmax's vector-Jacobian product. */
static void softmax_bwd_d(const double *w, double *g, int K) {
    double s = 0;
    for (int j = 0; j < K; j++) s += w[j] * g[j];
    for (int j = 0; j < K; j++) g[j] = w[j] * (g[j] - s);
}

static void softmax_bwd_f(const float *w, float *g, int K) {
    float s = 0;
    for (int j = 0; j < K; j++) s += w[j] * g[j];
    for (int j = 0; j < K; j++) g[j] = w[j] * (g[j] - s);
}

static dcb_status oom(const dcb_op *op, const char *impl) {
    return dcb_fail(DCB_OUT_OF_MEMORY, "%s backward %s: out of memory", op->info->name, impl);
}

/* ------------------------------------------------------------ naive (both) */
/* The oracle on kernels kd (double), kstride 0 (lightconv: one (H, K) block)
 * or H*K: dx (float, may be NULL) the conv path only; dk (double, NULL: not
 * wanted) per step, or summed over all steps when kstride is 0; dbias (NULL:
 * not wanted). */
static void naive_core(const dcb_seqconv_p *p, int N, int T, const float *x, const float *dy, const double *kd,
                       size_t kstride, float *dx, double *dk, float *dbias, int threads) {
    const int C = p->C, K = p->K, H = p->H, R = C / H, lp = dcb_seqconv_left_pad(p);
    const long NT = (long)N * T;
    if (dx) {
#pragma omp parallel for schedule(static) num_threads(threads)
        for (long ns = 0; ns < NT; ns++) {
            const long n = ns / T, s = ns % T;
            for (int c = 0; c < C; c++) {
                double acc = 0;
                for (int j = 0; j < K; j++) {
                    const long t = s - j + lp;
                    if (t < 0 || t >= T) continue;
                    acc += kd[(size_t)(n * T + t) * kstride + (size_t)(c / R) * K + j] * dy[(size_t)(n * T + t) * C + c];
                }
                dx[(size_t)ns * C + c] = (float)acc;
            }
        }
    }
    if (dk && kstride) {
#pragma omp parallel for schedule(static) num_threads(threads)
        for (long nt = 0; nt < NT; nt++) {
            const long n = nt / T, t = nt % T;
            for (int h = 0; h < H; h++)
                for (int j = 0; j < K; j++) {
                    const long s = t + j - lp;
                    double acc = 0;
                    if (s >= 0 && s < T)
                        for (int c = h * R; c < (h + 1) * R; c++)
                            acc += (double)dy[(size_t)nt * C + c] * x[(size_t)(n * T + s) * C + c];
                    dk[(size_t)nt * kstride + (size_t)h * K + j] = acc;
                }
        }
    } else if (dk) {
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int hj = 0; hj < H * K; hj++) {
            const int h = hj / K, j = hj % K;
            double acc = 0;
            for (long nt = 0; nt < NT; nt++) {
                const long n = nt / T, s = nt % T + j - lp;
                if (s < 0 || s >= T) continue;
                for (int c = h * R; c < (h + 1) * R; c++)
                    acc += (double)dy[(size_t)nt * C + c] * x[(size_t)(n * T + s) * C + c];
            }
            dk[hj] = acc;
        }
    }
    if (dbias)
        for (int c = 0; c < C; c++) {
            double acc = 0;
            for (long nt = 0; nt < NT; nt++) acc += dy[(size_t)nt * C + c];
            dbias[c] = (float)acc;
        }
}

static dcb_status lc_naive_run(dcb_op *op, const dcb_train_ctx *c) {
    const dcb_seqconv_p *p = DCB_SEQ_P(op);
    const int N = (int)c->x->shape[0], T = (int)c->x->shape[1], HK = p->H * p->K;
    const float *wt = dcb_w(op, "weight")->data;
    float *dw = dcb_dw(op, c, "weight");
    double *w = malloc(sizeof(double) * 2 * (size_t)HK);
    if (!w) return oom(op, "naive");
    double *g = w + HK;
    for (int i = 0; i < HK; i++) w[i] = wt[i];
    if (p->softmax)
        for (int h = 0; h < p->H; h++) softmax_d(w + (size_t)h * p->K, p->K);
    naive_core(p, N, T, c->x->data, c->dy->data, w, 0, c->dx ? c->dx->data : NULL, dw ? g : NULL,
               dcb_dw(op, c, "bias"), op->threads);
    if (dw) {
        if (p->softmax)
            for (int h = 0; h < p->H; h++) softmax_bwd_d(w + (size_t)h * p->K, g + (size_t)h * p->K, p->K);
        for (int i = 0; i < HK; i++) dw[i] = (float)g[i];
    }
    free(w);
    return DCB_OK;
}

static dcb_status dc_naive_run(dcb_op *op, const dcb_train_ctx *c) {
    const dcb_seqconv_p *p = DCB_SEQ_P(op);
    const int N = (int)c->x->shape[0], T = (int)c->x->shape[1], HK = p->H * p->K, C = p->C, K = p->K;
    const long NT = (long)N * T;
    const float *x = c->x->data, *W = dcb_w(op, "wlin_w")->data;
    const dcb_tensor *bt = dcb_w(op, "wlin_b");
    float *dW = dcb_dw(op, c, "wlin_w"), *db = dcb_dw(op, c, "wlin_b"), *dx = c->dx ? c->dx->data : NULL;
    const int need_dk = dx || dW || db;
    double *kd = malloc(sizeof(double) * (size_t)NT * HK * (need_dk ? 2 : 1));
    if (!kd) return oom(op, "naive");
    double *dk = need_dk ? kd + (size_t)NT * HK : NULL;
#pragma omp parallel for schedule(static) num_threads(op->threads)
    for (long nt = 0; nt < NT; nt++) {
        for (int o = 0; o < HK; o++) {
            double acc = bt ? bt->data[o] : 0.0;
            for (int ci = 0; ci < C; ci++) acc += (double)W[(size_t)o * C + ci] * x[(size_t)nt * C + ci];
            kd[(size_t)nt * HK + o] = acc;
        }
        if (p->softmax)
            for (int h = 0; h < p->H; h++) softmax_d(kd + (size_t)nt * HK + (size_t)h * K, K);
    }
    naive_core(p, N, T, x, c->dy->data, kd, (size_t)HK, dx, dk, dcb_dw(op, c, "bias"), op->threads);
    if (dk) {
        if (p->softmax)
#pragma omp parallel for schedule(static) num_threads(op->threads)
            for (long r = 0; r < NT * p->H; r++) softmax_bwd_d(kd + (size_t)r * K, dk + (size_t)r * K, K);
        if (dW)
#pragma omp parallel for schedule(static) num_threads(op->threads)
            for (int o = 0; o < HK; o++)
                for (int ci = 0; ci < C; ci++) {
                    double acc = 0;
                    for (long nt = 0; nt < NT; nt++) acc += dk[(size_t)nt * HK + o] * x[(size_t)nt * C + ci];
                    dW[(size_t)o * C + ci] = (float)acc;
                }
        if (db)
            for (int o = 0; o < HK; o++) {
                double acc = 0;
                for (long nt = 0; nt < NT; nt++) acc += dk[(size_t)nt * HK + o];
                db[o] = (float)acc;
            }
        if (dx)
#pragma omp parallel for schedule(static) num_threads(op->threads)
            for (long nt = 0; nt < NT; nt++)
                for (int ci = 0; ci < C; ci++) {
                    double acc = dx[(size_t)nt * C + ci];
                    for (int o = 0; o < HK; o++) acc += dk[(size_t)nt * HK + o] * W[(size_t)o * C + ci];
                    dx[(size_t)nt * C + ci] = (float)acc;
                }
    }
    free(kd);
    return DCB_OK;
}

/* ------------------------------------------------------------- fast parts */
/* Per-thread partial sums: thread i's block at base + i * stride doubles. */
static void reduce_partials(const double *base, size_t stride, int nth, size_t n, double *out) {
    for (size_t i = 0; i < n; i++) out[i] = 0;
    for (int t = 0; t < nth; t++)
        for (size_t i = 0; i < n; i++) out[i] += base[(size_t)t * stride + i];
}

/* <a, b> over R floats with 8 independent lanes (vectorisable, fixed order). */
static inline float dot_lanes(const float *restrict a, const float *restrict b, int R) {
    float acc[8] = {0};
    int r = 0;
    for (; r + 8 <= R; r += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[r + l] * b[r + l];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; r < R; r++) s += a[r] * b[r];
    return s;
}

/* ----------------------------------------------------- lightconv: direct */
typedef struct lc_scratch {
    float *wc;       /* (K, C): tap j's weight per channel, wc[j*C + c] = w[h(c), j] */
    double *part;    /* per thread: K*C weight partials, then C bias partials */
} lc_scratch;

/* One sample's gradients on channels [c0, c0 + cw), cw <= CB: each sum is
 * held in a cw-wide accumulator while the time steps or taps stream by.
 * Inlined with cw = CB (a constant trip count: acc lives in vector
 * registers) and once for the remainder block. */
#define CB 16
static inline __attribute__((always_inline)) void lc_block(const int cw, int c0, int C, int T, int K, int lp,
                                                           const float *restrict xn, const float *restrict dyn,
                                                           const float *restrict wc, double *restrict Gw,
                                                           double *restrict Gb, float *restrict dxn) {
    float acc[CB];
    if (Gw)
        for (int j = 0; j < K; j++) {
            /* G[j][c] = sum_t dy[t,c] x[t+j-lp,c], over the t that read inside [0, T) */
            const int ta = lp - j > 0 ? lp - j : 0, tb = T + lp - j < T ? T + lp - j : T;
            for (int l = 0; l < cw; l++) acc[l] = 0.0f;
            for (int t = ta; t < tb; t++) {
                const float *a = dyn + (size_t)t * C + c0, *b = xn + (size_t)(t + j - lp) * C + c0;
                for (int l = 0; l < cw; l++) acc[l] += a[l] * b[l];
            }
            for (int l = 0; l < cw; l++) Gw[(size_t)j * C + c0 + l] += acc[l];
        }
    if (Gb) {
        for (int l = 0; l < cw; l++) acc[l] = 0.0f;
        for (int t = 0; t < T; t++)
            for (int l = 0; l < cw; l++) acc[l] += dyn[(size_t)t * C + c0 + l];
        for (int l = 0; l < cw; l++) Gb[c0 + l] += acc[l];
    }
    if (dxn)
        for (int sx = 0; sx < T; sx++) {
            /* gather form: taps j with t = sx-j+lp in [0, T) */
            const int ja = sx + lp - (T - 1) > 0 ? sx + lp - (T - 1) : 0;
            const int jb = sx + lp + 1 < K ? sx + lp + 1 : K;
            for (int l = 0; l < cw; l++) acc[l] = 0.0f;
            for (int j = ja; j < jb; j++) {
                const float *a = wc + (size_t)j * C + c0, *b = dyn + (size_t)(sx - j + lp) * C + c0;
                for (int l = 0; l < cw; l++) acc[l] += a[l] * b[l];
            }
            for (int l = 0; l < cw; l++) dxn[(size_t)sx * C + c0 + l] = acc[l];
        }
}

static dcb_status lc_direct_run(dcb_op *op, const dcb_train_ctx *ctx) {
    const dcb_seqconv_p *p = DCB_SEQ_P(op);
    const int N = (int)ctx->x->shape[0], T = (int)ctx->x->shape[1];
    const int C = p->C, K = p->K, H = p->H, R = C / H, HK = H * K, lp = dcb_seqconv_left_pad(p);
    const int nth = op->threads;
    const float *x = ctx->x->data, *dy = ctx->dy->data;
    float *dx = ctx->dx ? ctx->dx->data : NULL, *dw = dcb_dw(op, ctx, "weight"), *db = dcb_dw(op, ctx, "bias");
    const size_t KC = (size_t)K * C, pstride = KC + (size_t)C;
    lc_scratch s;
    double *w = malloc(sizeof(double) * 2 * (size_t)HK), *g = w + HK;
    s.wc = malloc(sizeof(float) * KC);
    s.part = calloc((size_t)nth * pstride, sizeof(double));
    if (!w || !s.wc || !s.part) {
        free(w);
        free(s.wc);
        free(s.part);
        return oom(op, "direct");
    }
    const float *wt = dcb_w(op, "weight")->data;
    for (int i = 0; i < HK; i++) w[i] = wt[i];
    if (p->softmax)
        for (int h = 0; h < H; h++) softmax_d(w + (size_t)h * K, K);
    for (int j = 0; j < K; j++)
        for (int ci = 0; ci < C; ci++) s.wc[(size_t)j * C + ci] = (float)w[(ci / R) * K + j];
    int team = 1;
#pragma omp parallel num_threads(nth)
    {
        const int id = omp_get_thread_num();
#pragma omp single
        team = omp_get_num_threads();
        double *restrict Gd = s.part + (size_t)id * pstride;
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *xn = x + (size_t)n * T * C, *dyn = dy + (size_t)n * T * C;
            double *Gw = dw ? Gd : NULL, *Gb = db ? Gd + KC : NULL;
            float *dxn = dx ? dx + (size_t)n * T * C : NULL;
            int c0 = 0;
            for (; c0 + CB <= C; c0 += CB) lc_block(CB, c0, C, T, K, lp, xn, dyn, s.wc, Gw, Gb, dxn);
            if (c0 < C) lc_block(C - c0, c0, C, T, K, lp, xn, dyn, s.wc, Gw, Gb, dxn);
        }
    }
    if (dw || db) {
        double *tot = malloc(sizeof(double) * pstride);
        if (!tot) {
            free(w);
            free(s.wc);
            free(s.part);
            return oom(op, "direct");
        }
        reduce_partials(s.part, pstride, team, pstride, tot);
        if (dw) {
            for (int h = 0; h < H; h++)
                for (int j = 0; j < K; j++) {
                    double a = 0;
                    for (int r = 0; r < R; r++) a += tot[(size_t)j * C + (size_t)h * R + r];
                    g[h * K + j] = a;
                }
            if (p->softmax)
                for (int h = 0; h < H; h++) softmax_bwd_d(w + (size_t)h * K, g + (size_t)h * K, K);
            for (int i = 0; i < HK; i++) dw[i] = (float)g[i];
        }
        if (db)
            for (int ci = 0; ci < C; ci++) db[ci] = (float)tot[KC + ci];
        free(tot);
    }
    free(w);
    free(s.wc);
    free(s.part);
    return DCB_OK;
}

/* ------------------------------------------------------- dynconv1d: gemm */
/* The training forward keeps the (softmaxed) kernels, (N*T, H*K), exactly as
 * the convolution used them. */
static dcb_status dc_gemm_forward(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void **saved) {
    const dcb_seqconv_p *p = DCB_SEQ_P(op);
    const int N = (int)x->shape[0], T = (int)x->shape[1], HK = p->H * p->K;
    float *k = dcb_aligned_alloc(sizeof(float) * (size_t)N * T * HK);
    if (!k) return oom(op, "gemm");
    const dcb_tensor *bt = dcb_w(op, "wlin_b"), *ct = dcb_w(op, "bias");
    dcb_linear(x->data, N * T, p->C, dcb_w(op, "wlin_w")->data, bt ? bt->data : NULL, HK, k, op->threads);
    if (p->softmax) /* normalises k in place */
        dcb_seqconv_run_logits(DCB_SEQ_DIRECT, p, N, T, x->data, k, (size_t)HK, ct ? ct->data : NULL, y->data, NULL,
                               op->threads, NULL);
    else
        dcb_seqconv_run(DCB_SEQ_DIRECT, p, N, T, x->data, k, (size_t)HK, ct ? ct->data : NULL, y->data, NULL,
                        op->threads, NULL);
    *saved = k;
    return DCB_OK;
}

static void dc_gemm_free(void *saved) { dcb_aligned_free(saved); }

static dcb_status dc_gemm_run(dcb_op *op, const dcb_train_ctx *ctx) {
    const dcb_seqconv_p *p = DCB_SEQ_P(op);
    const int N = (int)ctx->x->shape[0], T = (int)ctx->x->shape[1];
    const int C = p->C, K = p->K, H = p->H, R = C / H, HK = H * K, lp = dcb_seqconv_left_pad(p);
    const long NT = (long)N * T;
    const int nth = op->threads;
    const float *x = ctx->x->data, *dy = ctx->dy->data, *kern = ctx->saved;
    float *dx = ctx->dx ? ctx->dx->data : NULL, *dW = dcb_dw(op, ctx, "wlin_w"), *dwb = dcb_dw(op, ctx, "wlin_b"),
          *db = dcb_dw(op, ctx, "bias");
    const int need_dl = dx || dW || dwb;
    float *dL = need_dl ? dcb_aligned_alloc(sizeof(float) * (size_t)NT * HK) : NULL;
    /* per thread: C bias partials, then HK predictor-bias partials */
    const size_t pstride = (size_t)C + HK;
    double *part = calloc((size_t)nth * pstride, sizeof(double));
    float *local = malloc(sizeof(float) * (size_t)nth * C);
    if ((need_dl && !dL) || !part || !local) {
        dcb_aligned_free(dL);
        free(part);
        free(local);
        return oom(op, "gemm");
    }
    int team = 1;
#pragma omp parallel num_threads(nth)
    {
        const int id = omp_get_thread_num();
#pragma omp single
        team = omp_get_num_threads();
        double *restrict pd = part + (size_t)id * pstride;
        float *restrict bs = local + (size_t)id * C;
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            const size_t row0 = (size_t)n * T;
            const float *xn = x + row0 * C, *dyn = dy + row0 * C;
            float *dxn = dx ? dx + row0 * C : NULL;
            if (dxn) memset(dxn, 0, sizeof(float) * (size_t)T * C);
            if (need_dl)
                for (int t = 0; t < T; t++) {
                    int j0, j1;
                    taps_of(t, T, K, lp, &j0, &j1);
                    const float *restrict dyr = dyn + (size_t)t * C;
                    const float *restrict k = kern + (row0 + t) * HK;
                    float *restrict g = dL + (row0 + t) * HK;
                    memset(g, 0, sizeof(float) * (size_t)HK);
                    for (int j = j0; j < j1; j++) {
                        const int sx = t + j - lp;
                        const float *restrict xs = xn + (size_t)sx * C;
                        for (int h = 0; h < H; h++) g[h * K + j] = dot_lanes(dyr + h * R, xs + h * R, R);
                        if (dxn) {
                            float *restrict dxs = dxn + (size_t)sx * C;
                            for (int h = 0; h < H; h++) {
                                const float wv = k[h * K + j];
                                for (int r = 0; r < R; r++) dxs[h * R + r] += wv * dyr[h * R + r];
                            }
                        }
                    }
                    if (p->softmax)
                        for (int h = 0; h < H; h++) softmax_bwd_f(k + h * K, g + h * K, K);
                    if (dwb)
                        for (int o = 0; o < HK; o++) pd[C + o] += g[o];
                }
            if (db) {
                memset(bs, 0, sizeof(float) * (size_t)C);
                for (int t = 0; t < T; t++)
                    for (int ci = 0; ci < C; ci++) bs[ci] += dyn[(size_t)t * C + ci];
                for (int ci = 0; ci < C; ci++) pd[ci] += bs[ci];
            }
        }
    }
    if (db || dwb) {
        double *tot = malloc(sizeof(double) * pstride);
        if (!tot) {
            dcb_aligned_free(dL);
            free(part);
            free(local);
            return oom(op, "gemm");
        }
        reduce_partials(part, pstride, team, pstride, tot);
        if (db)
            for (int ci = 0; ci < C; ci++) db[ci] = (float)tot[ci];
        if (dwb)
            for (int o = 0; o < HK; o++) dwb[o] = (float)tot[C + o];
        free(tot);
    }
    dcb_blas_threads_for(nth);
    /* dwlin_w (HK, C) = dL^T x; dx += dL wlin_w */
    if (dW)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, HK, C, (int)NT, 1.0f, dL, HK, x, C, 0.0f, dW, C);
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)NT, C, HK, 1.0f, dL, HK,
                    dcb_w(op, "wlin_w")->data, C, 1.0f, dx, C);
    dcb_aligned_free(dL);
    free(part);
    free(local);
    return DCB_OK;
}

/* ------------------------------------------------------------- the tables */
const dcb_bwd_vt dcb_lightconv_bwd_naive = {.name = "naive", .doc = "direct loops in double: the oracle",
                                            .tol = 1e-6, .run = lc_naive_run};
const dcb_bwd_vt dcb_lightconv_bwd_direct = {
    .name = "direct", .doc = "OpenMP over samples, loops vectorised over channels, per-thread partials",
    .tol = 2e-5, .run = lc_direct_run};
const dcb_bwd_vt dcb_dynconv1d_bwd_naive = {
    .name = "naive", .doc = "kernels predicted in double, direct loops in double: the oracle", .tol = 1e-6,
    .run = dc_naive_run};
const dcb_bwd_vt dcb_dynconv1d_bwd_gemm = {
    .name = "gemm",
    .doc = "saved kernels; per sample vectorised conv gradients; sgemm for the predictor's gradients and dx",
    .tol = 5e-5, .forward = dc_gemm_forward, .free_saved = dc_gemm_free, .run = dc_gemm_run};
